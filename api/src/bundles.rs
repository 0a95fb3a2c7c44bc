//! `POST /v1/bundles`, `GET /v1/bundles/{id}`, `GET /v1/bundles/{id}/blobs/sha256:<hex>`,
//! `DELETE /v1/bundles/{id}`.
//!
//! A bundle is an application's manifest: which blobs go into the pod under which name and of
//! which kind. Creating one needs the upload token; reading, downloading and deleting need the
//! bundle's own token, sent as `Authorization: Bearer <token>`, returned once at creation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Digest;

/// The route that creates bundles.
pub const BUNDLES_PATH: &str = "/v1/bundles";

/// `/v1/bundles/{id}`.
pub fn bundle_path(id: &str) -> String {
    format!("{BUNDLES_PATH}/{id}")
}

/// `/v1/bundles/{id}/blobs/sha256:<hex>`.
pub fn bundle_blob_path(id: &str, digest: &Digest) -> String {
    format!("{BUNDLES_PATH}/{id}/blobs/{digest}")
}

/// What Spark does with an entry, which decides the directory the init container writes it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A jar for the driver's and executors' class path (`--jars`, `spark.jars`).
    Jar,
    /// A plain file (`--files`, `spark.files`).
    File,
    /// A Python file or zip for `--py-files`.
    Pyfile,
    /// An archive Spark unpacks (`--archives`).
    Archive,
}

impl EntryKind {
    pub const ALL: [EntryKind; 4] = [Self::Jar, Self::File, Self::Pyfile, Self::Archive];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jar => "jar",
            Self::File => "file",
            Self::Pyfile => "pyfile",
            Self::Archive => "archive",
        }
    }
}

/// The directory of a pod an entry is written to. Jars go to the jars directory; files, Python
/// files and archives to the files directory, as the fork's init container laid them out. The
/// submit hook rewrites paths with this mapping and the init container writes by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetDir {
    Jars,
    Files,
}

impl TargetDir {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jars => "jars",
            Self::Files => "files",
        }
    }
}

impl EntryKind {
    /// Where entries of this kind go in a pod.
    pub fn target_dir(self) -> TargetDir {
        match self {
            Self::Jar => TargetDir::Jars,
            Self::File | Self::Pyfile | Self::Archive => TargetDir::Files,
        }
    }
}

/// Names that start with this belong to the init container in its target directories (its
/// state file `.sparkstage-verified.json`, and what it writes on the way); no entry may take one.
pub const RESERVED_PREFIX: &str = ".sparkstage";

/// The init container writes each file under a temporary name ending in this; no entry may end
/// in it.
pub const TEMP_SUFFIX: &str = ".sparkstage-tmp";

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    /// The file name in the pod: a single path component, see [`validate_entry_name`].
    pub name: String,
    pub digest: Digest,
    pub size: u64,
    pub kind: EntryKind,
}

/// Who a bundle belongs to; the lifecycle sweeper uses it to tell when the application is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// The Kubernetes namespace of the application's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels that the driver pod carries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The Spark application id (`spark-...`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark_app_id: Option<String>,
}

/// The pod label that ties a driver or executor pod to its bundle: `sparkstage submit` sets it
/// (`spark.kubernetes.{driver,executor}.label.sparkstage.io/bundle=<id>`), the server adds it to
/// the owner of a bundle created with a namespace, and owner tracking watches the pods that
/// carry it.
pub const BUNDLE_LABEL: &str = "sparkstage.io/bundle";

/// Whether `id` has the shape of a bundle id (32 lowercase hex characters, as the server makes
/// them).
pub fn is_bundle_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `POST /v1/bundles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBundleRequest {
    pub entries: Vec<BundleEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// How long the bundle lives, as a human duration (`"2h"`, `"7d"`); the server's default
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Entries the server fetches from their origin (once for the cluster) instead of an
    /// upload: the bundle is answered at once, and its manifest is served when they are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceEntry>,
}

/// An entry of a bundle that the server fetches from `source` (http(s), s3/s3a, gs, az/abfs,
/// hdfs/webhdfs), verified against `digest` when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// The file name in the pod [default: the URL's last path segment].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: EntryKind,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// 201 answer to `POST /v1/bundles` (202 while source entries are being fetched). The token is
/// shown once and never stored in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBundleResponse {
    pub id: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Source entries still being fetched; the manifest is served once they are stored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// 409 answer to `POST /v1/bundles` when some entries name blobs the server does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingBlobsBody {
    pub code: String,
    pub message: String,
    pub missing: Vec<Digest>,
}

/// `GET /v1/bundles/{id}`: the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub id: String,
    pub entries: Vec<BundleEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why an entry name cannot be written into a pod's directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("entry {index}: the name is empty")]
    Empty { index: usize },
    #[error("entry {index}: the name {name:?} is longer than {max} bytes", max = MAX_NAME_LEN)]
    TooLong { index: usize, name: String },
    #[error("entry {index}: the name {name:?} is a path; use a plain file name without '/'")]
    Path { index: usize, name: String },
    #[error("entry {index}: the name {name:?} is not a file name ('.' and '..' are not allowed)")]
    Dots { index: usize, name: String },
    #[error("entry {index}: the name {name:?} contains a NUL or control character")]
    Control { index: usize, name: String },
    #[error(
        "entry {index}: the name {name:?} is reserved for the init container (names starting \
         with {RESERVED_PREFIX:?} or ending in {TEMP_SUFFIX:?}); rename the file"
    )]
    Reserved { index: usize, name: String },
    #[error(
        "entry {index}: the name {name:?} appears twice in the pods' {} directory (a {kind} \
         and a {other}); jars go to the jars directory, files, pyfiles and archives to the \
         files directory; rename one", dir.as_str()
    )]
    Duplicate {
        index: usize,
        name: String,
        kind: EntryKind,
        other: EntryKind,
        dir: TargetDir,
    },
}

/// The longest entry name, in bytes (the usual file name limit).
pub const MAX_NAME_LEN: usize = 255;

/// Checks one entry name: a single, plain path component that is safe to create in a directory.
pub fn validate_entry_name(index: usize, name: &str) -> Result<(), NameError> {
    let shown = || name.chars().take(MAX_NAME_LEN).collect::<String>();
    if name.is_empty() {
        return Err(NameError::Empty { index });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            index,
            name: shown(),
        });
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control {
            index,
            name: shown(),
        });
    }
    if name.contains('/') || name.contains('\\') {
        return Err(NameError::Path {
            index,
            name: shown(),
        });
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots {
            index,
            name: shown(),
        });
    }
    if name.starts_with(RESERVED_PREFIX) || name.ends_with(TEMP_SUFFIX) {
        return Err(NameError::Reserved {
            index,
            name: shown(),
        });
    }
    Ok(())
}

/// Checks every name of a manifest, and that no two entries land in one directory of the pod
/// under one name (a jar and a file may share a name: they go to different directories; a file
/// and a pyfile may not). The server refuses such a bundle and the init container refuses such
/// a manifest, with this one rule.
pub fn validate_entries(entries: &[BundleEntry]) -> Result<(), NameError> {
    let mut seen: HashMap<(TargetDir, &str), EntryKind> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        validate_entry_name(index, &entry.name)?;
        let dir = entry.kind.target_dir();
        if let Some(other) = seen.insert((dir, entry.name.as_str()), entry.kind) {
            return Err(NameError::Duplicate {
                index,
                name: entry.name.clone(),
                kind: entry.kind,
                other,
                dir,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: EntryKind) -> BundleEntry {
        BundleEntry {
            name: name.into(),
            digest: Digest::of(name.as_bytes()),
            size: 1,
            kind,
        }
    }

    #[test]
    fn accepts_plain_names() {
        for name in [
            "app.jar",
            "log4j2.properties",
            "a b.txt",
            "über.jar",
            ".hidden",
            "..x",
            "sparkstage.jar",
            "a.sparkstage-tmp.jar",
        ] {
            assert_eq!(validate_entry_name(0, name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_unsafe_names() {
        let long = "a".repeat(256);
        let cases = [
            "",
            "/etc/passwd",
            "../x",
            "..",
            ".",
            "a/b",
            "a\\b",
            "a\0b",
            "a\nb",
            "\u{7f}",
            long.as_str(),
            ".sparkstage-verified.json",
            ".sparkstage-verified.json.tmp",
            ".sparkstage",
            ".real.jar.sparkstage-tmp",
            "x.sparkstage-tmp",
        ];
        for name in cases {
            assert!(
                validate_entry_name(3, name).is_err(),
                "{name:?} must be rejected"
            );
        }
    }

    #[test]
    fn duplicates_within_a_target_directory() {
        let ok = [
            entry("a.txt", EntryKind::Jar),
            entry("a.txt", EntryKind::File),
        ];
        assert_eq!(validate_entries(&ok), Ok(()));
        let dup = [
            entry("a.jar", EntryKind::Jar),
            entry("a.jar", EntryKind::Jar),
        ];
        assert!(matches!(
            validate_entries(&dup),
            Err(NameError::Duplicate { index: 1, .. })
        ));
        // A file and a pyfile both go to the files directory.
        let collide = [
            entry("b.txt", EntryKind::Jar),
            entry("a.py", EntryKind::File),
            entry("a.py", EntryKind::Pyfile),
        ];
        let e = validate_entries(&collide).expect_err("collide");
        assert!(
            matches!(
                e,
                NameError::Duplicate {
                    index: 2,
                    kind: EntryKind::Pyfile,
                    other: EntryKind::File,
                    dir: TargetDir::Files,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("files directory"), "{e}");
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        let unknown_field = r#"{"entries": [], "colour": "red"}"#;
        assert!(serde_json::from_str::<CreateBundleRequest>(unknown_field).is_err());
        let d = Digest::of(b"x");
        let bad_kind =
            format!(r#"{{"entries": [{{"name":"a","digest":"{d}","size":1,"kind":"zip"}}]}}"#);
        assert!(serde_json::from_str::<CreateBundleRequest>(&bad_kind).is_err());
        let good =
            format!(r#"{{"entries": [{{"name":"a","digest":"{d}","size":1,"kind":"pyfile"}}]}}"#);
        assert!(serde_json::from_str::<CreateBundleRequest>(&good).is_ok());
    }
}

/// One bundle in `GET /v1/bundles` (upload token): what an operator sees, never a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSummary {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Number of entries.
    pub entries: usize,
    /// Bytes of all entries.
    pub size: u64,
    pub state: crate::lifecycle::BundleState,
}

impl BundleSummary {
    pub fn of(manifest: &BundleManifest, state: crate::lifecycle::BundleState) -> Self {
        Self {
            id: manifest.id.clone(),
            owner: manifest.owner.clone(),
            created_at: manifest.created_at,
            expires_at: manifest.expires_at,
            entries: manifest.entries.len(),
            size: manifest.entries.iter().map(|e| e.size).sum(),
            state,
        }
    }
}

/// The answer of `GET /v1/bundles`: bundles not yet expired, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListBundlesResponse {
    pub bundles: Vec<BundleSummary>,
}
