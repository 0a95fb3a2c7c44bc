//! Entry names and whole bundle requests as a client sends them: any JSON is read or refused
//! cleanly, and a name the validation accepts is one plain file name that no init container
//! name can collide with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkstage_api::bundles::{
    CreateBundleRequest, MAX_NAME_LEN, RESERVED_PREFIX, TEMP_SUFFIX, validate_entries,
    validate_entry_name,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<CreateBundleRequest>(data) {
        let _ = validate_entries(&request.entries);
    }
    let name = String::from_utf8_lossy(data);
    if validate_entry_name(0, &name).is_ok() {
        assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
        assert!(!name.contains(['/', '\\']) && name != "." && name != "..");
        assert!(!name.chars().any(char::is_control));
        assert!(!name.starts_with(RESERVED_PREFIX) && !name.ends_with(TEMP_SUFFIX));
    }
});
