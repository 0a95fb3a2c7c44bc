//! Maven coordinates and exclusions as a request or `--packages` writes them, and versions and
//! ranges as a POM writes them: any text parses or fails cleanly, and a parsed coordinate
//! written back in the form it is read in (`g:a:v`, `g:a:ext:v`, `g:a:ext:classifier:v`) parses
//! to the same coordinate. (Its `Display` is the resolver's output form, not an input form.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkstage_maven::coords::{Coordinate, Exclusion};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = text.parse::<Coordinate>() {
        let written = match &c.classifier {
            Some(classifier) => format!(
                "{}:{}:{}:{classifier}:{}",
                c.group, c.artifact, c.extension, c.version
            ),
            None => format!("{}:{}:{}:{}", c.group, c.artifact, c.extension, c.version),
        };
        let again: Coordinate = written.parse().expect("a written coordinate parses");
        assert_eq!(again, c);
        let _ = c.path();
        let _ = c.spark_file_name();
    }
    let _ = text.parse::<Exclusion>();
    let _ = sparkstage_maven::range::Requirement::parse(text);
    let _ = sparkstage_maven::version::MavenVersion::parse(text);
});
