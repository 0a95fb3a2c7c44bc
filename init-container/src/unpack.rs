//! Unpacking a tar.gz (a resource of the 2017 fork's staging server) into its directory, all or
//! nothing, and never outside it.
//!
//! The fork's archives are flat: each entry is one regular file whose name is a plain file name
//! (`./name` is taken as `name`; a `./` directory entry is skipped). Refused, with a message that
//! names the entry, and with nothing written at a final path:
//!
//! - a path with `..`, an absolute path, or a path with a directory in it;
//! - symbolic and hard links (whatever they point at: the fork never wrote one), device files,
//!   FIFOs and any other entry that is not a regular file;
//! - a name no bundle entry may have (`validate_entry_name`: our reserved names, control
//!   characters, ...), and a name given twice;
//! - more than [`Limits::max_entries`] entries, and more than [`Limits::max_bytes`] of
//!   decompressed bytes in all (headers and padding included: a gzip bomb stops there, whatever
//!   its headers say).
//!
//! Each file is written under a temporary name of its directory (removed when the unpacking
//! fails, and by the next run's start when it was killed), hashed while written and fsynced;
//! only when the whole archive has been read are they renamed to their names.

use std::collections::HashSet;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path};

use sha2::{Digest as _, Sha256};
use sparkstage_api::Digest;

use crate::fetch::{TempFile, temp_path};

/// Bounds of one archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes, in all.
    pub max_bytes: u64,
    /// Entries, of every kind.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 8 << 30,
            max_entries: 10_000,
        }
    }
}

/// A file unpacked at its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub name: String,
    pub digest: Digest,
    pub size: u64,
}

/// The decompressed stream, failing once more than its bound was read.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => Err(std::io::Error::other(format!(
                "it expands past {} bytes, the bound of an archive (--max-unpacked-size)",
                self.limit
            ))),
        }
    }
}

/// The file name an entry's path gives, or why it is refused.
fn entry_name(path: &Path) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => return Err("a path with `..`".to_owned()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("an absolute path".to_owned());
            }
        }
    }
    match parts[..] {
        [] => Ok(None),
        [name] => name
            .to_str()
            .map(|n| Some(n.to_owned()))
            .ok_or_else(|| "a name that is not UTF-8".to_owned()),
        _ => Err("a path with a directory in it (the fork's archives are flat)".to_owned()),
    }
}

/// Unpacks the tar.gz `archive` into `dir` (which exists): every file or none. `what` names the
/// archive in messages.
pub fn unpack(
    archive: &Path,
    dir: &Path,
    limits: Limits,
    what: &str,
) -> Result<Vec<Unpacked>, String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("{what}: {e}"))?;
    let decoder = flate2::read::GzDecoder::new(BufReader::with_capacity(256 * 1024, file));
    let mut tar = tar::Archive::new(Bounded {
        inner: decoder,
        left: limits.max_bytes,
        limit: limits.max_bytes,
    });
    let mut written: Vec<(TempFile, Unpacked)> = Vec::new();
    let mut names = HashSet::new();
    let entries = tar
        .entries()
        .map_err(|e| format!("{what} is not a tar.gz: {e}"))?;
    for (index, entry) in entries.enumerate() {
        if index >= limits.max_entries {
            return Err(format!(
                "{what} has more than {} entries, the bound of an archive",
                limits.max_entries
            ));
        }
        let mut entry = entry.map_err(|e| format!("{what} cannot be read: {e}"))?;
        let shown = String::from_utf8_lossy(&entry.path_bytes())
            .chars()
            .take(200)
            .collect::<String>();
        let refuse = |why: &str| format!("{what}: entry {shown:?} is refused: {why}");
        let name = entry_name(&entry.path().map_err(|e| refuse(&e.to_string()))?)
            .map_err(|why| refuse(&why))?;
        let kind = entry.header().entry_type();
        let name = match (kind, name) {
            (tar::EntryType::Directory, None) => continue,
            (tar::EntryType::Directory, Some(_)) => {
                return Err(refuse("a directory (the fork's archives are flat)"));
            }
            (tar::EntryType::Regular | tar::EntryType::Continuous, Some(name)) => name,
            (tar::EntryType::Regular | tar::EntryType::Continuous, None) => {
                return Err(refuse("a file without a name"));
            }
            (tar::EntryType::Symlink | tar::EntryType::Link, _) => {
                return Err(refuse("a link (only regular files are unpacked)"));
            }
            (tar::EntryType::Char | tar::EntryType::Block, _) => {
                return Err(refuse("a device file"));
            }
            (tar::EntryType::Fifo, _) => return Err(refuse("a FIFO")),
            (other, _) => return Err(refuse(&format!("an entry of type {other:?}"))),
        };
        sparkstage_api::bundles::validate_entry_name(index, &name)
            .map_err(|e| refuse(&e.to_string()))?;
        if !names.insert(name.clone()) {
            return Err(refuse("its name is given twice"));
        }
        let temp = TempFile::new(temp_path(dir, &name));
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp.path())
            .map_err(|e| format!("{}: {e}", temp.path().display()))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(|e| refuse(&e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| format!("{}: {e}", temp.path().display()))?;
            size += n as u64;
        }
        out.sync_all()
            .map_err(|e| format!("{}: {e}", temp.path().display()))?;
        written.push((
            temp,
            Unpacked {
                name,
                digest: Digest::from_bytes(hasher.finalize().into()),
                size,
            },
        ));
    }
    // The whole archive is good: every file to its name.
    let mut unpacked = Vec::with_capacity(written.len());
    for (mut temp, file) in written {
        std::fs::rename(temp.path(), dir.join(&file.name))
            .map_err(|e| format!("{}: {e}", dir.join(&file.name).display()))?;
        temp.moved();
        unpacked.push(file);
    }
    crate::state::sync_dir(dir);
    Ok(unpacked)
}
