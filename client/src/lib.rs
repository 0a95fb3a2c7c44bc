//! `sparkstage`: the submit hook and the operator's commands.
//!
//! - [`submit_args`]: spark-submit's command line, parsed as Spark's launcher parses it;
//! - [`properties`]: Java properties files (`--properties-file`);
//! - [`deps`]: the local files a submission names, and the submission rewritten to the
//!   `local://` paths the init container fills.

pub mod apply;
pub mod deps;
pub mod packages;
pub mod progress;
pub mod properties;
pub mod resolve;
pub mod secret;
pub mod stage;
pub mod submit;
pub mod submit_args;
