//! How a pod asks the server's admission webhook for the init container: the label it opts in
//! with and the annotations that say what to fetch, how they are written ([`annotations`]) and
//! how they are read ([`asked`]). The webhook reads them; `sparkstage submit --inject webhook`
//! (through `spark.kubernetes.{driver,executor}.{label,annotation}.*`) and the examples write
//! them.

use k8s_openapi::api::core::v1::Pod;

use crate::command::{InitArgs, Source};
use crate::pod::{Role, SparkContainer, TOKEN_DIR};

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
/// The most sources one pod may list.
pub const MAX_SOURCES: usize = 1000;

/// What the pod asked for in its annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    pub bundle: Option<String>,
    pub sources: Vec<String>,
    pub jars_dir: Option<String>,
    pub files_dir: Option<String>,
    pub container: Option<String>,
}

/// A download directory from an annotation: an absolute, normalized path other than `/`.
fn directory(annotation: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    let normal = value.starts_with('/')
        && value.len() > 1
        && value.len() <= 4096
        && value
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !value.chars().any(char::is_control);
    if !normal {
        return Err(format!(
            "{annotation}: {} is not an absolute directory path like /var/spark-data/spark-jars \
             (no `.` or `..` parts, not /)",
            sparkstage_api::shown::outside(value, 200)
        ));
    }
    if value.trim_end_matches('/') == TOKEN_DIR {
        return Err(format!(
            "{annotation}: {TOKEN_DIR} is where sparkstage mounts its token"
        ));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// Reads the annotations; the error says which one is wrong and how.
pub fn asked(pod: &Pod) -> Result<Asked, String> {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let get = |key: &str| annotations.get(key).map(|v| v.trim().to_owned());
    let bundle = match get(BUNDLE_ANNOTATION) {
        Some(id) if sparkstage_api::bundles::is_bundle_id(&id) => Some(id),
        Some(id) => {
            return Err(format!(
                "{BUNDLE_ANNOTATION}: {} is not a bundle id (32 lowercase hex characters, as \
                 `sparkstage upload` or `sparkstage submit` prints it)",
                sparkstage_api::shown::outside(&id, 100)
            ));
        }
        None => None,
    };
    let mut sources = Vec::new();
    if let Some(list) = get(SOURCES_ANNOTATION) {
        for (index, source) in list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            if index >= MAX_SOURCES {
                return Err(format!(
                    "{SOURCES_ANNOTATION}: more than {MAX_SOURCES} sources; stage them as a bundle"
                ));
            }
            Source::parse(index, source).map_err(|e| format!("{SOURCES_ANNOTATION}: {e}"))?;
            sources.push(source.to_owned());
        }
    }
    if bundle.is_none() && sources.is_empty() {
        return Err(format!(
            "the pod has the label {INJECT_LABEL}=true but says nothing to fetch: set the \
             annotation {BUNDLE_ANNOTATION} (a bundle id) or {SOURCES_ANNOTATION} (URLs), or \
             remove the label"
        ));
    }
    let jars_dir = get(JARS_DIR_ANNOTATION)
        .map(|d| directory(JARS_DIR_ANNOTATION, &d))
        .transpose()?;
    let files_dir = get(FILES_DIR_ANNOTATION)
        .map(|d| directory(FILES_DIR_ANNOTATION, &d))
        .transpose()?;
    let layout = crate::Layout {
        jars_dir: jars_dir
            .clone()
            .unwrap_or_else(|| crate::layout::DEFAULT_JARS_DIR.to_owned()),
        files_dir: files_dir
            .clone()
            .unwrap_or_else(|| crate::layout::DEFAULT_FILES_DIR.to_owned()),
    };
    if layout.jars_dir.trim_end_matches('/') == layout.files_dir.trim_end_matches('/') {
        return Err(format!(
            "{JARS_DIR_ANNOTATION} and {FILES_DIR_ANNOTATION} name the same directory {}; give \
             them two different directories",
            layout.jars_dir
        ));
    }
    let container = get(CONTAINER_ANNOTATION).filter(|c| !c.is_empty());
    Ok(Asked {
        bundle,
        sources,
        jars_dir,
        files_dir,
        container,
    })
}

impl Asked {
    /// The init container's command line for what the pod asked, fetching bundles from
    /// `server` (the server's URL as pods reach it).
    pub fn init_args(&self, server: Option<url::Url>) -> InitArgs {
        let mut args = InitArgs::none();
        args.server = self.bundle.as_ref().and(server);
        args.bundle = self.bundle.clone();
        args.jars_dir = self.jars_dir.clone().map(Into::into);
        args.files_dir = self.files_dir.clone().map(Into::into);
        args.sources = self.sources.clone();
        args
    }

    /// Spark's container in the pod: the one the annotation names, else as Spark chooses it in
    /// a pod of `role` it created, else (not a Spark pod) the first.
    pub fn spark_container(&self, role: Option<Role>) -> SparkContainer<'_> {
        match (&self.container, role) {
            (Some(name), _) => SparkContainer::Named(name),
            (None, Some(role)) => SparkContainer::CreatedBySpark(role),
            (None, None) => SparkContainer::First,
        }
    }
}

/// The annotations that ask for the init container `args` describes (its bundle, its
/// directories when not the default, its sources), and Spark's container when a template names
/// it: what [`asked`] reads back.
pub fn annotations(args: &InitArgs, container: Option<&str>) -> Vec<(&'static str, String)> {
    use crate::layout::{DEFAULT_FILES_DIR, DEFAULT_JARS_DIR};
    let mut annotations = Vec::new();
    if let Some(bundle) = &args.bundle {
        annotations.push((BUNDLE_ANNOTATION, bundle.clone()));
    }
    for (annotation, dir, default) in [
        (JARS_DIR_ANNOTATION, &args.jars_dir, DEFAULT_JARS_DIR),
        (FILES_DIR_ANNOTATION, &args.files_dir, DEFAULT_FILES_DIR),
    ] {
        if let Some(dir) = dir.as_ref().map(|d| d.display().to_string())
            && dir.trim_end_matches('/') != default
        {
            annotations.push((annotation, dir));
        }
    }
    if !args.sources.is_empty() {
        annotations.push((SOURCES_ANNOTATION, args.sources.join(",")));
    }
    if let Some(container) = container {
        annotations.push((CONTAINER_ANNOTATION, container.to_owned()));
    }
    annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the submit hook writes, the webhook reads back as the same request.
    #[test]
    fn written_annotations_are_read_back() {
        let mut args = InitArgs::none();
        args.bundle = Some("0123456789abcdef0123456789abcdef".into());
        args.jars_dir = Some("/opt/deps/jars".into());
        args.files_dir = Some(crate::layout::DEFAULT_FILES_DIR.into());
        args.sources = vec![
            format!("https://h/a.jar#sha256={}", "ab".repeat(32)),
            "s3://b/c.txt".into(),
        ];
        let mut pod = Pod::default();
        pod.metadata.annotations = Some(
            annotations(&args, Some("spark"))
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        );
        let read = asked(&pod).expect("accepted");
        assert_eq!(read.bundle, args.bundle);
        assert_eq!(read.sources, args.sources);
        assert_eq!(read.jars_dir.as_deref(), Some("/opt/deps/jars"));
        assert_eq!(read.files_dir, None, "the default directory is not written");
        assert_eq!(read.container.as_deref(), Some("spark"));
        let server: url::Url = "http://s:10000/".parse().expect("url");
        let back = read.init_args(Some(server.clone()));
        assert_eq!(back.bundle, args.bundle);
        assert_eq!(back.server, Some(server));
        assert_eq!(back.sources, args.sources);
    }
}
