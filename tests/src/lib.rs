//! End-to-end tests of the sparkstage binaries against real peers.
//!
//! The tests in `tests/tests/` start real processes on 127.0.0.1: the sparkstage binaries and
//! the services they talk to, such as S3 (moto), GCS (fake-gcs-server) and Azure Blob (azurite).
//! This library holds the fixtures that start, reach and clean up those peers ([`peers`]).
//! Install the peers with `scripts/test-deps.sh` before running `cargo test -p sparkstage-tests`.

pub mod conformance;
pub mod deploy;
pub mod faults;
pub mod fork;
pub mod hostile_repo;
pub mod kube_double;
pub mod maven_repo;
pub mod peers;
pub mod rss;
pub mod server;
pub mod spark;
