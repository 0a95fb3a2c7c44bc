//! `.sparkstage-verified.json`: what a previous run wrote and verified in a target directory, so
//! a restarted pod skips those files without downloading or hashing them again.
//!
//! A record holds the digest, size and modification time (ns) the file had right after it was
//! verified and renamed into place. A file whose size and mtime still match is taken as verified.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sparkstage_api::Digest;

pub const STATE_FILE: &str = ".sparkstage-verified.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub digest: Digest,
    pub size: u64,
    pub mtime_ns: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub files: BTreeMap<String, Record>,
    /// Archives unpacked here (the fork's resources), by digest: the names of their files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub archives: BTreeMap<String, Vec<String>>,
}

/// Size and mtime of a file, if it exists and is a regular file.
pub fn stat(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((meta.len(), u64::try_from(mtime.as_nanos()).ok()?))
}

impl State {
    /// The state of `dir`; empty when there is none or it cannot be read (then everything is
    /// fetched again, which is always safe).
    pub fn load(dir: &Path) -> Self {
        std::fs::read(dir.join(STATE_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Whether `dir/name` is present and verified: recorded with its current size and mtime, and
    /// with `expected` digest and size where they are known.
    pub fn is_verified(
        &self,
        dir: &Path,
        name: &str,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> bool {
        let Some(record) = self.files.get(name) else {
            return false;
        };
        let Some((size, mtime_ns)) = stat(&dir.join(name)) else {
            return false;
        };
        size == record.size
            && mtime_ns == record.mtime_ns
            && expected.is_none_or(|d| *d == record.digest)
            && expected_size.is_none_or(|s| s == size)
    }

    /// Whether the archive `digest` was unpacked here and every file it held is still as
    /// written.
    pub fn is_unpacked(&self, dir: &Path, digest: &Digest) -> bool {
        self.archives
            .get(&digest.to_string())
            .is_some_and(|names| names.iter().all(|n| self.is_verified(dir, n, None, None)))
    }

    /// Writes the state atomically: a temporary file, fsync, rename.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp: PathBuf = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(STATE_FILE))?;
        sync_dir(dir);
        Ok(())
    }
}

/// Makes a rename in `dir` durable; best effort (not every filesystem allows it).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_is_a_name_no_entry_can_take() {
        assert!(STATE_FILE.starts_with(sparkstage_api::bundles::RESERVED_PREFIX));
        assert!(sparkstage_api::bundles::validate_entry_name(0, STATE_FILE).is_err());
    }

    #[test]
    fn a_changed_file_is_no_longer_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.jar");
        std::fs::write(&path, b"hello").expect("write");
        let (size, mtime_ns) = stat(&path).expect("stat");
        let digest = Digest::of(b"hello");
        let mut state = State::default();
        state.files.insert(
            "a.jar".into(),
            Record {
                digest,
                size,
                mtime_ns,
            },
        );
        state.save(dir.path()).expect("save");
        let state = State::load(dir.path());
        assert!(state.is_verified(dir.path(), "a.jar", Some(&digest), Some(5)));
        assert!(state.is_verified(dir.path(), "a.jar", None, None));
        assert!(!state.is_verified(dir.path(), "a.jar", Some(&Digest::of(b"x")), None));
        assert!(!state.is_verified(dir.path(), "b.jar", None, None));
        std::fs::write(&path, b"hello, world").expect("write");
        assert!(!state.is_verified(dir.path(), "a.jar", Some(&digest), None));
    }
}
