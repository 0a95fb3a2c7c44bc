//! How a Spark pod gets sparkstage's init container, defined once.
//!
//! Three programs meet in a Spark pod: the submit hook writes pod templates, the server's
//! admission webhook patches pods as they are created, and the init container reads its command
//! line. What they must agree on lives here, so that the compiler finds a mismatch:
//! - [`layout`]: where jars and files go in the pod, and which directory a file name goes to;
//! - [`command`]: the init container's command line, parsed by it and written by the others;
//! - [`pod`]: the init container, its volumes and their mounts in Spark's container, added to a
//!   pod (a template or a pod under admission), with the token it fetches with;
//! - [`webhook`]: the label and annotations a pod asks the admission webhook with.

pub mod command;
pub mod fork;
pub mod layout;
pub mod pod;
pub mod properties;
pub mod webhook;

pub use command::InitArgs;
/// The JSON-patch types of [`Injection::patch`].
pub use json_patch;
pub use layout::Layout;
pub use pod::{InjectError, Injection, Role, SparkContainer, TokenVolume};
