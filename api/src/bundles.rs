//! `POST /v1/bundles`, `GET /v1/bundles/{id}`, `GET /v1/bundles/{id}/blobs/sha256:<hex>`,
//! `DELETE /v1/bundles/{id}`.
//!
//! A bundle is an application's manifest: which blobs go into the pod under which name and of
//! which kind. Creating one needs the upload token; reading, downloading and deleting need the
//! bundle's own token, sent as `Authorization: Bearer <token>`, returned once at creation.

use std::collections::{BTreeMap, HashSet};
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
}

/// 201 answer to `POST /v1/bundles`. The token is shown once and never stored in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBundleResponse {
    pub id: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
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
    #[error("entry {index}: the name {name:?} appears twice among the {kind} entries")]
    Duplicate {
        index: usize,
        name: String,
        kind: EntryKind,
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
    Ok(())
}

/// Checks every name of a manifest, and that no name appears twice within one kind (jars and
/// files go to different directories, so `a.txt` may be both a file and a pyfile).
pub fn validate_entries(entries: &[BundleEntry]) -> Result<(), NameError> {
    let mut seen = HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        validate_entry_name(index, &entry.name)?;
        if !seen.insert((entry.kind, entry.name.as_str())) {
            return Err(NameError::Duplicate {
                index,
                name: entry.name.clone(),
                kind: entry.kind,
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
        ];
        for name in cases {
            assert!(
                validate_entry_name(3, name).is_err(),
                "{name:?} must be rejected"
            );
        }
    }

    #[test]
    fn duplicates_only_within_a_kind() {
        let ok = [
            entry("a.txt", EntryKind::File),
            entry("a.txt", EntryKind::Pyfile),
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
}

impl BundleSummary {
    pub fn of(manifest: &BundleManifest) -> Self {
        Self {
            id: manifest.id.clone(),
            owner: manifest.owner.clone(),
            created_at: manifest.created_at,
            expires_at: manifest.expires_at,
            entries: manifest.entries.len(),
            size: manifest.entries.iter().map(|e| e.size).sum(),
        }
    }
}

/// The answer of `GET /v1/bundles`: bundles not yet expired, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListBundlesResponse {
    pub bundles: Vec<BundleSummary>,
}
