//! The fork's archives (`sparkstage-init --fork-properties`): any bytes as a tar.gz, unpacked
//! into an empty directory, either unpack every file they list (each at its name, with the
//! digest and size reported, and nothing else in the directory) or are refused and leave the
//! directory empty; nothing is ever written beside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkstage_init::unpack::{Limits, unpack};

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir().expect("tempdir");
    let archive = root.path().join("archive.tgz");
    std::fs::write(&archive, data).expect("write");
    let dir = root.path().join("dir");
    std::fs::create_dir(&dir).expect("mkdir");
    let limits = Limits {
        max_bytes: 16 << 20,
        max_entries: 100,
    };
    let listing = |path: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(path)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    match unpack(&archive, &dir, limits, "fuzz") {
        Ok(files) => {
            let mut names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
            names.sort();
            assert_eq!(listing(&dir), names);
            for file in &files {
                let bytes = std::fs::read(dir.join(&file.name)).expect("read");
                assert_eq!(bytes.len() as u64, file.size);
                assert_eq!(sparkstage_api::Digest::of(&bytes), file.digest);
            }
        }
        Err(_) => assert!(listing(&dir).is_empty(), "{:?}", listing(&dir)),
    }
    assert_eq!(listing(root.path()), ["archive.tgz", "dir"]);
});
