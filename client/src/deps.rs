//! Which local files a submission names, and the submission rewritten to the paths the init
//! container fills.
//!
//! Spark's precedence decides which value of a dependency list counts (as in
//! `SparkSubmitArguments.loadEnvironmentArguments`): `--jars` over `--conf spark.jars=` over the
//! properties file's `spark.jars` (likewise `--files`/`spark.files`, `--py-files`/
//! `spark.submit.pyFiles`, `--archives`/`spark.archives`). Only that value is staged and rewritten:
//! in place when it is an option or a `--conf`, and with an added `--conf` (which wins over the
//! file, whose text is left alone) when it comes from the properties file.
//!
//! A list entry is local when it has no scheme or the `file:` scheme; `local:` and remote URIs
//! are left as they are. A `#fragment` (an archive's alias) is kept. A local entry becomes
//! `local://<dir>/<name>`, `<dir>` being the jars directory for jars and the files directory for
//! the rest, as the init container sorts them.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sparkstage_api::bundles::{EntryKind, TargetDir};

use crate::submit_args::SubmitArgs;

/// The dependency lists: the option, its configuration key, and the kind of its entries.
pub const LISTS: [(&str, &str, EntryKind); 4] = [
    ("--jars", "spark.jars", EntryKind::Jar),
    ("--files", "spark.files", EntryKind::File),
    ("--py-files", "spark.submit.pyFiles", EntryKind::Pyfile),
    ("--archives", "spark.archives", EntryKind::Archive),
];

/// Where the init container puts files in the pods.
pub use sparkstage_injection::Layout;

/// A local file to stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDep {
    pub path: PathBuf,
    /// Its name in the bundle and in the pod: the file name.
    pub name: String,
    pub kind: EntryKind,
}

/// A submission with its local dependencies found and its arguments rewritten.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: SubmitArgs,
    /// Unique by (kind, name), in the order first named.
    pub deps: Vec<LocalDep>,
    /// Remote URIs for the init container to fetch (with `fetch_remote`).
    pub remote: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{0}: no such file (named by {1})")]
    Missing(String, String),
    #[error("{0} is a directory, not a file (named by {1}); name the files in it")]
    Directory(String, String),
    #[error("{a} and {b} would both be staged as {kind} {name}; rename one of them")]
    Clash {
        a: String,
        b: String,
        kind: EntryKind,
        name: String,
    },
    #[error("{0}: {1}")]
    BadEntry(String, String),
    #[error(
        "{0} matches no file (named by {1}); spark-submit would drop it without a word, which \
         fails later in the cluster"
    )]
    NoMatch(String, String),
}

/// What an entry of a dependency list is.
enum Entry<'a> {
    Local {
        path: Cow<'a, str>,
        fragment: Option<&'a str>,
    },
    Other,
}

fn classify(entry: &str) -> Entry<'_> {
    let (body, fragment) = match entry.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (entry, None),
    };
    if let Some(rest) = body.strip_prefix("file:") {
        // file:/abs, file:///abs, file://localhost/abs; a URI's path is percent-encoded
        // (`a%20b.jar` names `a b.jar`), as java.net.URI decodes it for Spark. A plain path is
        // taken as written.
        let path = rest
            .strip_prefix("//localhost")
            .or_else(|| rest.strip_prefix("//"))
            .unwrap_or(rest);
        let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        return Entry::Local { path, fragment };
    }
    if has_scheme(body) {
        Entry::Other
    } else {
        Entry::Local {
            path: Cow::Borrowed(body),
            fragment,
        }
    }
}

/// Whether `s` starts with a URI scheme (`[a-zA-Z][a-zA-Z0-9+.-]*:`).
fn has_scheme(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        }
        None => false,
    }
}

/// Finds the local files of dependency entries, and what each becomes in the pod: the submit
/// hook's [`plan`] and `sparkstage apply` read their entries through it.
pub struct Planner<'a> {
    cwd: &'a Path,
    layout: &'a Layout,
    deps: Vec<LocalDep>,
    seen: HashMap<(EntryKind, String), PathBuf>,
    /// Remote URIs handed to the init container, when asked; with the pod path of each.
    fetch_remote: bool,
    remote: Vec<String>,
    remote_paths: HashMap<String, String>,
}

/// The schemes the init container fetches (Spark's `s3a` included).
const REMOTE_SCHEMES: [&str; 11] = [
    "http", "https", "s3", "s3a", "gs", "az", "abfs", "abfss", "hdfs", "webhdfs", "swebhdfs",
];

impl Planner<'_> {
    /// Stages a local path and returns its pod URI.
    fn local(
        &mut self,
        path: &str,
        fragment: Option<&str>,
        kind: EntryKind,
        named_by: &str,
    ) -> Result<String, PlanError> {
        let full = self.cwd.join(path);
        let meta = std::fs::metadata(&full)
            .map_err(|_| PlanError::Missing(full.display().to_string(), named_by.to_owned()))?;
        if meta.is_dir() {
            return Err(PlanError::Directory(
                full.display().to_string(),
                named_by.to_owned(),
            ));
        }
        let name = full
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                PlanError::BadEntry(path.to_owned(), "the file name is not UTF-8".to_owned())
            })?
            .to_owned();
        sparkstage_api::bundles::validate_entry_name(0, &name)
            .map_err(|e| PlanError::BadEntry(full.display().to_string(), e.to_string()))?;
        let canonical = std::fs::canonicalize(&full).unwrap_or(full.clone());
        match self.seen.get(&(kind, name.clone())) {
            Some(other) if *other != canonical => {
                return Err(PlanError::Clash {
                    a: other.display().to_string(),
                    b: canonical.display().to_string(),
                    kind,
                    name,
                });
            }
            Some(_) => {}
            None => {
                self.seen.insert((kind, name.clone()), canonical.clone());
                self.deps.push(LocalDep {
                    path: canonical,
                    name: name.clone(),
                    kind,
                });
            }
        }
        let mut uri = format!("local://{}/{name}", self.layout.dir(kind.target_dir()));
        if let Some(fragment) = fragment {
            uri.push('#');
            uri.push_str(fragment);
        }
        Ok(uri)
    }

    /// Hands a remote URI to the init container; its pod URI, or `None` for a scheme the init
    /// container does not fetch (left to Spark). The init container puts a name ending in `.jar`
    /// into the jars directory and others into the files directory, so the pod path follows the
    /// name, not the list.
    fn remote(&mut self, entry: &str, named_by: &str) -> Result<Option<String>, PlanError> {
        let (body, fragment) = match entry.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (entry, None),
        };
        let scheme = body.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        if !scheme.is_some_and(|s| REMOTE_SCHEMES.contains(&s.as_str())) {
            return Ok(None);
        }
        let path = body.split(['?']).next().unwrap_or(body);
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        sparkstage_api::bundles::validate_entry_name(0, &name)
            .map_err(|e| PlanError::BadEntry(format!("{body} ({named_by})"), e.to_string()))?;
        let pod_path = self.layout.path_of(&name);
        match self.remote_paths.get(&pod_path) {
            Some(other) if other != body => {
                return Err(PlanError::Clash {
                    a: other.clone(),
                    b: body.to_owned(),
                    kind: match sparkstage_injection::layout::target_of(&name) {
                        TargetDir::Jars => EntryKind::Jar,
                        TargetDir::Files => EntryKind::File,
                    },
                    name,
                });
            }
            Some(_) => {}
            None => {
                self.remote_paths.insert(pod_path.clone(), body.to_owned());
                self.remote.push(body.to_owned());
            }
        }
        let mut uri = format!("local://{pod_path}");
        if let Some(fragment) = fragment {
            uri.push('#');
            uri.push_str(fragment);
        }
        Ok(Some(uri))
    }

    /// Rewrites a comma-separated list; `None` when nothing in it changed.
    fn list(
        &mut self,
        value: &str,
        kind: EntryKind,
        named_by: &str,
    ) -> Result<Option<String>, PlanError> {
        let mut changed = false;
        let mut out = Vec::new();
        // Spark's `stringToSeq`: split on commas, trim, drop empty entries.
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match classify(entry) {
                Entry::Local { path, fragment } if is_glob(&path) => {
                    for file in self.expand(&path, fragment, named_by)? {
                        out.push(self.local(&file, None, kind, named_by)?);
                    }
                    changed = true;
                }
                Entry::Local { path, fragment } => {
                    out.push(self.local(&path, fragment, kind, named_by)?);
                    changed = true;
                }
                Entry::Other if self.fetch_remote => match self.remote(entry, named_by)? {
                    Some(uri) => {
                        out.push(uri);
                        changed = true;
                    }
                    None => out.push(entry.to_owned()),
                },
                Entry::Other => out.push(entry.to_owned()),
            }
        }
        Ok(changed.then(|| out.join(",")))
    }
}

/// Whether a local path is a pattern, as Spark's `resolveGlobPaths` (Hadoop's `globStatus`) reads
/// `*`, `?` and `[...]`.
fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

impl Planner<'_> {
    /// The regular files a pattern matches, sorted, as Spark expands a local pattern in a
    /// dependency list; none is an error (Spark would drop the entry silently).
    fn expand(
        &self,
        pattern: &str,
        fragment: Option<&str>,
        named_by: &str,
    ) -> Result<Vec<String>, PlanError> {
        let full = self.cwd.join(pattern);
        let shown = full.display().to_string();
        if fragment.is_some() {
            return Err(PlanError::BadEntry(
                shown,
                "a #fragment renames one file; list the file without a pattern".to_owned(),
            ));
        }
        let paths = glob::glob(&shown)
            .map_err(|e| PlanError::BadEntry(shown.clone(), format!("not a valid pattern: {e}")))?;
        let mut files: Vec<String> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .filter_map(|p| p.to_str().map(str::to_owned))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PlanError::NoMatch(shown, named_by.to_owned()));
        }
        Ok(files)
    }
}

/// The kind of the primary resource, by its extension as Spark tells them apart.
pub fn primary_kind(primary: &str) -> EntryKind {
    let body = primary.split('#').next().unwrap_or(primary);
    if body.ends_with(".py") {
        EntryKind::Pyfile
    } else if body.ends_with(".jar") {
        EntryKind::Jar
    } else {
        EntryKind::File
    }
}

/// Spark's internal primary resources, which are not files.
const INTERNAL_PRIMARIES: [&str; 5] = [
    "spark-shell",
    "pyspark-shell",
    "sparkr-shell",
    "spark-internal",
    "connect-shell",
];

/// Finds the local files `args` names (with `properties`, the parsed `--properties-file`), and
/// rewrites `args` to their pod paths. `cwd` resolves relative paths.
impl<'a> Planner<'a> {
    /// Entries relative to `cwd`, rewritten into `layout`; remote ones too with `fetch_remote`.
    pub fn new(cwd: &'a Path, layout: &'a Layout, fetch_remote: bool) -> Self {
        Self {
            cwd,
            layout,
            deps: Vec::new(),
            seen: HashMap::new(),
            fetch_remote,
            remote: Vec::new(),
            remote_paths: HashMap::new(),
        }
    }

    /// A primary resource: its pod URI when it is a local file (`None` for anything else,
    /// Spark's internal primaries included).
    pub fn primary(&mut self, primary: &str) -> Result<Option<String>, PlanError> {
        if INTERNAL_PRIMARIES.contains(&primary) {
            return Ok(None);
        }
        match classify(primary) {
            Entry::Local { path, fragment } => self
                .local(
                    &path,
                    fragment,
                    primary_kind(primary),
                    "the primary resource",
                )
                .map(Some),
            Entry::Other => Ok(None),
        }
    }

    /// A comma-separated dependency list of `kind` rewritten; `None` when nothing in it changed.
    pub fn entries(
        &mut self,
        value: &str,
        kind: EntryKind,
        named_by: &str,
    ) -> Result<Option<String>, PlanError> {
        self.list(value, kind, named_by)
    }

    /// The local files to stage and the remote sources for the init container, once no two
    /// land at one pod path.
    pub fn finish(self) -> Result<(Vec<LocalDep>, Vec<String>), PlanError> {
        // Local and remote files land in the same directories: one name, one file.
        for dep in &self.deps {
            let pod_path = format!("{}/{}", self.layout.dir(dep.kind.target_dir()), dep.name);
            if let Some(remote) = self.remote_paths.get(&pod_path) {
                return Err(PlanError::Clash {
                    a: dep.path.display().to_string(),
                    b: remote.clone(),
                    kind: dep.kind,
                    name: dep.name.clone(),
                });
            }
        }
        Ok((self.deps, self.remote))
    }
}

pub fn plan(
    mut args: SubmitArgs,
    properties: &BTreeMap<String, String>,
    layout: &Layout,
    cwd: &Path,
    fetch_remote: bool,
) -> Result<Plan, PlanError> {
    let mut planner = Planner::new(cwd, layout, fetch_remote);
    if let Some(primary) = args.primary().map(str::to_owned)
        && let Some(uri) = planner.primary(&primary)?
    {
        args.set_primary(uri);
    }
    for (option, key, kind) in LISTS {
        if let Some(index) = args.last_index(option) {
            let value = args.value(option).unwrap_or_default().to_owned();
            if let Some(new) = planner.list(&value, kind, option)? {
                args.set_value(index, new);
            }
        } else if let Some(index) = args.conf_index(key) {
            let value = args.conf(key).unwrap_or_default().to_owned();
            if let Some(new) = planner.list(&value, kind, &format!("--conf {key}"))? {
                args.set_value(index, format!("{key}={new}"));
            }
        } else if let Some(value) = properties.get(key)
            && let Some(new) =
                planner.list(value, kind, &format!("{key} in the properties files"))?
        {
            args.add_conf(key, &new);
        }
    }
    let (deps, remote) = planner.finish()?;
    Ok(Plan { args, deps, remote })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            jars_dir: "/var/spark-data/spark-jars".into(),
            files_dir: "/var/spark-data/spark-files".into(),
        }
    }

    #[test]
    fn local_entries_are_staged_and_rewritten_others_kept() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for f in ["app.jar", "dep.jar", "data.csv", "env.tgz", "lib.py"] {
            std::fs::write(dir.path().join(f), f)?;
        }
        let args = SubmitArgs::parse(&[
            "--master",
            "k8s://https://k:6443",
            "--jars",
            "dep.jar, local:///opt/x.jar,s3a://b/y.jar",
            "--conf",
            &format!(
                "spark.archives=file://{}/env.tgz#environment",
                dir.path().display()
            ),
            "--conf",
            "spark.files=ignored-because-of---files",
            "--files=data.csv",
            "app.jar",
            "data.csv",
        ])?;
        let mut properties = BTreeMap::new();
        properties.insert("spark.submit.pyFiles".to_owned(), "lib.py".to_owned());
        properties.insert("spark.jars".to_owned(), "/nonexistent.jar".to_owned());
        let plan = plan(args, &properties, &layout(), dir.path(), false)?;
        assert_eq!(
            plan.args.to_args(),
            [
                "--master",
                "k8s://https://k:6443",
                "--jars",
                "local:///var/spark-data/spark-jars/dep.jar,local:///opt/x.jar,s3a://b/y.jar",
                "--conf",
                "spark.archives=local:///var/spark-data/spark-files/env.tgz#environment",
                "--conf",
                "spark.files=ignored-because-of---files",
                "--files=local:///var/spark-data/spark-files/data.csv",
                "--conf",
                "spark.submit.pyFiles=local:///var/spark-data/spark-files/lib.py",
                "local:///var/spark-data/spark-jars/app.jar",
                "data.csv",
            ]
        );
        let staged: Vec<(&str, EntryKind)> = plan
            .deps
            .iter()
            .map(|d| (d.name.as_str(), d.kind))
            .collect();
        assert_eq!(
            staged,
            [
                ("app.jar", EntryKind::Jar),
                ("dep.jar", EntryKind::Jar),
                ("data.csv", EntryKind::File),
                ("lib.py", EntryKind::Pyfile),
                ("env.tgz", EntryKind::Archive),
            ]
        );
        Ok(())
    }

    #[test]
    fn missing_files_and_name_clashes_are_errors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("a"))?;
        std::fs::create_dir_all(dir.path().join("b"))?;
        std::fs::write(dir.path().join("a/x.jar"), "1")?;
        std::fs::write(dir.path().join("b/x.jar"), "2")?;
        let none = BTreeMap::new();
        let e = plan(
            SubmitArgs::parse(&["--jars", "a/x.jar,b/x.jar", "spark-internal"])?,
            &none,
            &layout(),
            dir.path(),
            false,
        )
        .expect_err("clash");
        assert!(matches!(e, PlanError::Clash { .. }), "{e}");
        let e = plan(
            SubmitArgs::parse(&["--files", "nope.txt", "spark-internal"])?,
            &none,
            &layout(),
            dir.path(),
            false,
        )
        .expect_err("missing");
        assert!(e.to_string().contains("nope.txt") && e.to_string().contains("--files"));
        // The same file twice is staged once.
        let p = plan(
            SubmitArgs::parse(&["--jars", "a/x.jar", "a/x.jar"])?,
            &none,
            &layout(),
            dir.path(),
            false,
        )?;
        assert_eq!(p.deps.len(), 1);
        Ok(())
    }

    #[test]
    fn remote_entries_go_to_the_init_container_when_asked() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("app.jar"), "x")?;
        let args = || {
            SubmitArgs::parse(&[
                "--jars",
                "https://repo.example.com/a/dep.jar?sig=1,local:///opt/x.jar",
                "--files",
                "s3a://bucket/conf/lookup.csv#lookup,ftp://h/f.txt",
                "app.jar",
            ])
        };
        let none = BTreeMap::new();
        let kept = plan(args()?, &none, &layout(), dir.path(), false)?;
        assert!(kept.remote.is_empty());
        assert!(
            kept.args
                .to_args()
                .contains(&"s3a://bucket/conf/lookup.csv#lookup,ftp://h/f.txt".to_owned())
        );
        let fetched = plan(args()?, &none, &layout(), dir.path(), true)?;
        assert_eq!(
            fetched.remote,
            [
                "https://repo.example.com/a/dep.jar?sig=1",
                "s3a://bucket/conf/lookup.csv"
            ]
        );
        let rewritten = fetched.args.to_args();
        assert!(
            rewritten.contains(
                &"local:///var/spark-data/spark-jars/dep.jar,local:///opt/x.jar".to_owned()
            )
        );
        // ftp:// is not the init container's: Spark keeps it.
        assert!(rewritten.contains(
            &"local:///var/spark-data/spark-files/lookup.csv#lookup,ftp://h/f.txt".to_owned()
        ));
        // A remote jar named like a staged one is a clash.
        let e = plan(
            SubmitArgs::parse(&["--jars", "https://h/app.jar", "app.jar"])?,
            &none,
            &layout(),
            dir.path(),
            true,
        )
        .expect_err("clash");
        assert!(matches!(e, PlanError::Clash { .. }), "{e}");
        Ok(())
    }

    #[test]
    fn file_uris_are_percent_decoded_and_plain_paths_are_not() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a b.jar"), "x")?;
        std::fs::write(dir.path().join("c%20d.jar"), "y")?;
        std::fs::write(dir.path().join("app.jar"), "z")?;
        let uri = format!("file://{}/a%20b.jar", dir.path().display());
        let p = plan(
            SubmitArgs::parse(&["--jars", &format!("{uri},c%20d.jar"), "app.jar"])?,
            &BTreeMap::new(),
            &layout(),
            dir.path(),
            false,
        )?;
        let names: Vec<&str> = p.deps.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["app.jar", "a b.jar", "c%20d.jar"]);
        Ok(())
    }

    #[test]
    fn local_patterns_expand_to_the_files_they_match() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("libs"))?;
        std::fs::create_dir(dir.path().join("libs/sub.jar"))?;
        for name in ["b.jar", "a.jar", "notes.txt"] {
            std::fs::write(dir.path().join("libs").join(name), name)?;
        }
        std::fs::write(dir.path().join("app.jar"), "app")?;
        let p = plan(
            SubmitArgs::parse(&["--jars", "libs/*.jar,local:///opt/x.jar", "app.jar"])?,
            &BTreeMap::new(),
            &layout(),
            dir.path(),
            false,
        )?;
        let names: Vec<&str> = p.deps.iter().map(|d| d.name.as_str()).collect();
        // Sorted, regular files only (the directory sub.jar is not one).
        assert_eq!(names, ["app.jar", "a.jar", "b.jar"]);
        assert!(p.args.to_args().contains(
            &"local:///var/spark-data/spark-jars/a.jar,local:///var/spark-data/spark-jars/b.jar,\
              local:///opt/x.jar"
                .to_owned()
        ));
        let none = plan(
            SubmitArgs::parse(&["--jars", "libs/*.zip", "app.jar"])?,
            &BTreeMap::new(),
            &layout(),
            dir.path(),
            false,
        )
        .expect_err("no match");
        assert!(matches!(none, PlanError::NoMatch(..)), "{none}");
        Ok(())
    }

    #[test]
    fn everything_else_passes_through_in_order() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("job.py"), "print(1)")?;
        let given = [
            "--packages",
            "org.apache.hadoop:hadoop-aws:3.4.1",
            "--repositories=https://repo.example.com/maven",
            "--exclude-packages",
            "com.example:bad",
            "--driver-java-options",
            "-Dx=1 -Dy='two words'",
            "-c",
            "spark.executorEnv.A=b=c",
            "--verbose",
            "job.py",
            "--jars",
            "job.py",
        ];
        let p = plan(
            SubmitArgs::parse(&given)?,
            &BTreeMap::new(),
            &layout(),
            dir.path(),
            true,
        )?;
        let mut expected: Vec<String> = given.iter().map(|s| (*s).to_owned()).collect();
        expected[10] = "local:///var/spark-data/spark-files/job.py".into();
        assert_eq!(p.args.to_args(), expected);
        assert!(p.remote.is_empty());
        Ok(())
    }
}
