//! Digests (`sha256:<hex>`, in URLs and JSON) and sizes (`512MiB`, in flags and spec files):
//! any text parses or fails cleanly; a digest prints back to the text that parses to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparkstage_api::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(digest.to_string().parse::<Digest>().ok(), Some(digest));
    }
    let _ = sparkstage_api::size::parse_size(text);
});
