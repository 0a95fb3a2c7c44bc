//! `Range` and `If-Range` request headers (RFC 9110 section 14) for single byte ranges.
//! Multiple ranges and malformed headers are ignored, as the RFC allows: the whole blob is sent.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSpec {
    Full,
    Partial(Range<u64>),
    Unsatisfiable,
}

/// Resolves a `Range` header against a blob of `size` bytes whose ETag is `etag`.
/// `if_range` is the `If-Range` header: when it names another version, the range is ignored.
pub fn resolve(range: Option<&str>, if_range: Option<&str>, etag: &str, size: u64) -> RangeSpec {
    let Some(range) = range else {
        return RangeSpec::Full;
    };
    if if_range.is_some_and(|v| v.trim() != etag) {
        return RangeSpec::Full;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes
        (true, false) => match parse(last) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Partial(size.saturating_sub(n)..size),
            None => RangeSpec::Full,
        },
        // bytes=A-
        (false, true) => match parse(first) {
            Some(a) if a < size => RangeSpec::Partial(a..size),
            Some(_) => RangeSpec::Unsatisfiable,
            None => RangeSpec::Full,
        },
        // bytes=A-B (B inclusive)
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    RangeSpec::Unsatisfiable
                } else {
                    RangeSpec::Partial(a..b.saturating_add(1).min(size))
                }
            }
            _ => RangeSpec::Full,
        },
        (true, true) => RangeSpec::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::RangeSpec::*;
    use super::*;

    const E: &str = "\"sha256:x\"";

    #[test]
    fn single_ranges() {
        assert_eq!(resolve(None, None, E, 10), Full);
        assert_eq!(resolve(Some("bytes=0-4"), None, E, 10), Partial(0..5));
        assert_eq!(resolve(Some("bytes=5-"), None, E, 10), Partial(5..10));
        assert_eq!(resolve(Some("bytes=-3"), None, E, 10), Partial(7..10));
        assert_eq!(resolve(Some("bytes=-30"), None, E, 10), Partial(0..10));
        assert_eq!(resolve(Some("bytes=8-100"), None, E, 10), Partial(8..10));
        assert_eq!(resolve(Some("bytes=10-"), None, E, 10), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), None, E, 10), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=0-"), None, E, 0), Unsatisfiable);
    }

    #[test]
    fn ignored_ranges() {
        for header in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-2",
            "bytes=x-",
            "bytes=-",
            "bytes",
        ] {
            assert_eq!(resolve(Some(header), None, E, 10), Full, "{header}");
        }
        assert_eq!(resolve(Some("bytes=0-4"), Some("\"other\""), E, 10), Full);
        assert_eq!(resolve(Some("bytes=0-4"), Some(E), E, 10), Partial(0..5));
    }
}
