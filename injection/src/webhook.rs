//! How a pod asks the server's admission webhook for the init container: the label it opts in
//! with and the annotations that say what to fetch. The webhook reads them; `sparkstage submit
//! --inject webhook` (through `spark.kubernetes.{driver,executor}.{label,annotation}.*`) and the
//! examples write them.

/// The label a pod opts in with: `"true"` (the webhook configuration's objectSelector).
pub const INJECT_LABEL: &str = "sparkstage.io/inject";
/// A bundle id to fetch.
pub const BUNDLE_ANNOTATION: &str = "sparkstage.io/bundle";
/// Comma-separated URLs to fetch, each optionally ending in `#sha256=<hex>`.
pub const SOURCES_ANNOTATION: &str = "sparkstage.io/sources";
/// Where jars go [default: `layout::DEFAULT_JARS_DIR`].
pub const JARS_DIR_ANNOTATION: &str = "sparkstage.io/jars-dir";
/// Where other files go [default: `layout::DEFAULT_FILES_DIR`].
pub const FILES_DIR_ANNOTATION: &str = "sparkstage.io/files-dir";
/// Spark's container, when a pod template named it otherwise than Spark does.
pub const CONTAINER_ANNOTATION: &str = "sparkstage.io/container";
/// Every annotation the webhook reads.
pub const ANNOTATIONS: [&str; 5] = [
    BUNDLE_ANNOTATION,
    SOURCES_ANNOTATION,
    JARS_DIR_ANNOTATION,
    FILES_DIR_ANNOTATION,
    CONTAINER_ANNOTATION,
];
