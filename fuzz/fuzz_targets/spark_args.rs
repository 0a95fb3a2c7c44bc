//! spark-submit command lines (NUL-separated arguments): any parse or fail cleanly, and a parsed
//! command line written back parses to the same command line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkstage::submit_args::SubmitArgs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = text.split('\0').collect();
    if let Ok(parsed) = SubmitArgs::parse(&args) {
        let written = parsed.to_args();
        let again = SubmitArgs::parse(&written).expect("a written command line parses");
        assert_eq!(again.to_args(), written);
        let _ = parsed.primary();
        let _ = parsed.conf("spark.jars");
    }
});
