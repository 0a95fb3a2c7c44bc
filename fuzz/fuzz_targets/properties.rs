//! Java properties files (`--properties-file`, `spark-defaults.conf`, the fork's
//! `spark-init.properties`): any text parses without a panic, and every value comes out
//! trimmed, as Spark reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = sparkstage::properties::parse(&text);
    for value in parsed.values() {
        assert_eq!(value.trim(), value);
    }
    let _ = sparkstage::properties::merged(Some(&text), Some(&text), true);
    let _ = sparkstage_injection::fork::read(&text);
});
