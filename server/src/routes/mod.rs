//! The endpoints, one module per resource; each module exposes its own router.

pub mod blobs;
pub mod bundles;
pub mod fork;
pub mod gc;
pub mod health;
pub mod resolve;
pub mod sources;
