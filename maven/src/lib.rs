//! Maven dependency resolution for `spark-submit --packages` (issue 5, in progress).
//!
//! - [`version`]: version ordering as Maven Resolver and as Apache Ivy order versions.

pub mod version;
