//! Maven dependency resolution for `spark-submit --packages`: what the staging server's
//! `POST /v1/resolve` and `sparkstage resolve` run.
//!
//! - [`coords`]: coordinates (`group:artifact[:extension[:classifier]]:version`) and exclusions;
//! - [`version`]: version ordering as Maven Resolver and as Apache Ivy order versions;
//! - [`range`]: version requirements and ranges (`[1.0,2.0)`), with either ordering;
//! - [`pom`]: POM files as written (before inheritance, interpolation and profiles);
//! - [`model`]: profile activation, inheritance and interpolation, as Maven's model builder;
//! - [`repo`]: repositories (http(s), file) through a verified, lock-free local cache;
//! - [`shared`]: a second cache under the local one, that the server's replicas share;
//! - [`credentials`]: `Authorization` headers for repositories, by URL prefix;
//! - [`limits`]: what one resolution may cost (file sizes, values, modules, time), whatever a
//!   repository sends;
//! - [`resolve`]: effective POMs (parents, profiles, BOM imports) and the `maven` mode's graph;
//! - [`spark`]: the `spark` mode's graph, as Ivy resolves `spark-submit --packages`;
//! - [`resolver`]: a whole resolution over repositories, artifacts downloaded and hashed.
//!
//! Both modes are checked against the real tools on golden files (`maven/tests/golden.rs`).

pub mod coords;
pub mod credentials;
pub mod limits;
pub mod model;
pub mod pom;
pub mod range;
pub mod repo;
pub mod resolve;
pub mod resolver;
pub mod shared;
pub mod spark;
pub mod version;
