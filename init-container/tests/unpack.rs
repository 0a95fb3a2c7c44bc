//! The fork's archives unpacked safely (`sparkstage_init::unpack`): a suite of hostile archives
//! built with the `tar` crate, each entry kind the unpacker refuses, plus a gzip bomb and an
//! archive of too many entries. Each is refused with a message naming the entry, and leaves the
//! target directory exactly as it was (no file at a final path, no temporary file). A good
//! archive, with `./` names and a `./` directory entry as `tar -C dir .` writes them, unpacks.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, ensure};
use sparkstage_init::unpack::{Limits, unpack};

/// What an entry of a hostile archive is.
enum Kind {
    File(&'static [u8]),
    Dir,
    Symlink(&'static str),
    HardLink(&'static str),
    CharDevice,
    Fifo,
}

/// A tar.gz of `entries`, names written raw into the header (the `tar` crate's own path setter
/// refuses `..` and absolute paths, which is what a hostile archive has).
fn archive(entries: &[(&str, Kind)]) -> Result<Vec<u8>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for (name, kind) in entries {
        let mut header = tar::Header::new_old();
        let raw = &mut header.as_old_mut().name;
        ensure!(name.len() < raw.len(), "name too long for the test");
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        let data: &[u8] = match kind {
            Kind::File(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                data
            }
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                b""
            }
            Kind::Symlink(target) | Kind::HardLink(target) => {
                header.set_entry_type(match kind {
                    Kind::Symlink(_) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                });
                let link = &mut header.as_old_mut().linkname;
                link[..target.len()].copy_from_slice(target.as_bytes());
                b""
            }
            Kind::CharDevice => {
                header.set_entry_type(tar::EntryType::Char);
                b""
            }
            Kind::Fifo => {
                header.set_entry_type(tar::EntryType::Fifo);
                b""
            }
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data)?;
    }
    Ok(builder.into_inner()?.finish()?)
}

/// Every file of `dir` (names, hidden ones included) and its bytes.
fn snapshot(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        files.insert(
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path())?,
        );
    }
    Ok(files)
}

const GOOD: &[u8] = b"good bytes";

/// A hostile archive: its name, its entries, and a word its refusal must say.
type Case = (&'static str, Vec<(&'static str, Kind)>, &'static str);

#[test]
fn hostile_archives_are_refused_and_change_nothing() -> Result<()> {
    let work = tempfile::tempdir()?;
    let dir = work.path().join("jars");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("present.jar"), "was here")?;
    let outside = work.path().join("outside.txt");
    let cases: Vec<Case> = vec![
        (
            "dot-dot",
            vec![
                ("a.jar", Kind::File(GOOD)),
                ("../outside.txt", Kind::File(GOOD)),
            ],
            "`..`",
        ),
        (
            "dot-dot-deep",
            vec![("x/../../outside.txt", Kind::File(GOOD))],
            "`..`",
        ),
        (
            "absolute",
            vec![("/tmp/evil.jar", Kind::File(GOOD))],
            "absolute",
        ),
        (
            "nested",
            vec![("lib/a.jar", Kind::File(GOOD))],
            "directory in it",
        ),
        ("directory", vec![("lib/", Kind::Dir)], "directory"),
        (
            "symlink-out",
            vec![
                ("a.jar", Kind::File(GOOD)),
                ("evil.jar", Kind::Symlink("/etc/passwd")),
            ],
            "link",
        ),
        (
            "symlink-in",
            vec![("link.jar", Kind::Symlink("a.jar"))],
            "link",
        ),
        (
            "hard-link-out",
            vec![("evil.jar", Kind::HardLink("../outside.txt"))],
            "link",
        ),
        ("device", vec![("tty", Kind::CharDevice)], "device"),
        ("fifo", vec![("pipe", Kind::Fifo)], "FIFO"),
        (
            "duplicate",
            vec![
                ("a.jar", Kind::File(GOOD)),
                ("./a.jar", Kind::File(b"other")),
            ],
            "twice",
        ),
        (
            "reserved",
            vec![(".sparkstage-verified.json", Kind::File(b"{}"))],
            "reserved",
        ),
        (
            "temporary-name",
            vec![("x.sparkstage-tmp", Kind::File(GOOD))],
            "reserved",
        ),
        (
            "overwrite-present",
            vec![
                ("present.jar", Kind::File(GOOD)),
                ("../x", Kind::File(GOOD)),
            ],
            "`..`",
        ),
    ];
    let before = snapshot(&dir)?;
    for (case, entries, expected) in cases {
        let path = work.path().join(format!("{case}.tgz"));
        std::fs::write(&path, archive(&entries)?)?;
        let error = unpack(&path, &dir, Limits::default(), case)
            .err()
            .ok_or_else(|| anyhow::anyhow!("{case}: unpacked"))?;
        ensure!(
            error.contains(expected) && error.contains(case),
            "{case}: {error}"
        );
        ensure!(snapshot(&dir)? == before, "{case}: the directory changed");
        ensure!(!outside.exists(), "{case}: wrote outside");
    }

    // A gzip bomb: 64 MiB of zeros in about 64 KiB, against a bound of 8 MiB.
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut builder = tar::Builder::new(encoder);
    let mut header = tar::Header::new_gnu();
    header.set_size(64 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(
        &mut header,
        "zeros.bin",
        std::io::Read::take(std::io::repeat(0), 64 << 20),
    )?;
    let bomb = builder.into_inner()?.finish()?;
    ensure!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let path = work.path().join("bomb.tgz");
    std::fs::write(&path, &bomb)?;
    let limits = Limits {
        max_bytes: 8 << 20,
        ..Limits::default()
    };
    let error = unpack(&path, &dir, limits, "bomb")
        .err()
        .ok_or_else(|| anyhow::anyhow!("the bomb unpacked"))?;
    ensure!(error.contains("expands past 8388608 bytes"), "{error}");
    ensure!(snapshot(&dir)? == before, "bomb: the directory changed");

    // Too many entries.
    let names: Vec<String> = (0..20).map(|i| format!("f{i}.txt")).collect();
    let many: Vec<(&str, Kind)> = names
        .iter()
        .map(|n| (n.as_str(), Kind::File(GOOD)))
        .collect();
    let path = work.path().join("many.tgz");
    std::fs::write(&path, archive(&many)?)?;
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let error = unpack(&path, &dir, limits, "many")
        .err()
        .ok_or_else(|| anyhow::anyhow!("unpacked"))?;
    ensure!(error.contains("more than 10 entries"), "{error}");
    ensure!(snapshot(&dir)? == before, "many: the directory changed");

    // Not a tar.gz at all.
    let path = work.path().join("garbage.tgz");
    std::fs::write(&path, b"this is not gzip")?;
    ensure!(unpack(&path, &dir, Limits::default(), "garbage").is_err());
    ensure!(snapshot(&dir)? == before, "garbage: the directory changed");
    Ok(())
}

#[test]
fn a_good_archive_unpacks_every_file() -> Result<()> {
    let work = tempfile::tempdir()?;
    let dir = work.path().join("files");
    std::fs::create_dir(&dir)?;
    let path = work.path().join("good.tgz");
    std::fs::write(
        &path,
        archive(&[
            ("./", Kind::Dir),
            ("./a.jar", Kind::File(b"jar a")),
            ("b.txt", Kind::File(b"text b")),
            ("empty", Kind::File(b"")),
        ])?,
    )?;
    let unpacked = unpack(&path, &dir, Limits::default(), "good").map_err(anyhow::Error::msg)?;
    let names: Vec<&str> = unpacked.iter().map(|u| u.name.as_str()).collect();
    ensure!(names == ["a.jar", "b.txt", "empty"], "{names:?}");
    ensure!(unpacked[0].digest == sparkstage_api::Digest::of(b"jar a"));
    let files = snapshot(&dir)?;
    ensure!(
        files
            == BTreeMap::from([
                ("a.jar".to_owned(), b"jar a".to_vec()),
                ("b.txt".to_owned(), b"text b".to_vec()),
                ("empty".to_owned(), Vec::new()),
            ]),
        "{files:?}"
    );
    Ok(())
}
