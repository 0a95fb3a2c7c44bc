//! What may be shown of text that comes from outside or carries secrets: in an error body, a log
//! line or a terminal. The one home of URL redaction and of cutting outside text down, so that the
//! server, the init container, the client and the Maven resolver all show the same thing.

/// How many characters of outside text a message shows by default: enough for a checksum, a
/// server's one-line reason or a file name, never a whole file.
pub const OUTSIDE_TEXT_CHARS: usize = 200;

/// A URL for messages: no user name, no password, no query, no fragment (each may carry a
/// credential: `user:pass@`, `?token=`, `?X-Amz-Signature=`, `#sig=`).
pub fn url(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// [`url`] for text that should be a URL or a local path (a storage setting, a repository a
/// request names). A local path is shown as it is up to a `?` or `#`; text that looks like a URL
/// but does not parse shows its scheme only, since where its credentials end cannot be told.
pub fn url_text(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(u) => url(&u),
        _ => match text.split_once("://") {
            Some((scheme, _)) if is_scheme(scheme) => format!("{scheme}://(not a valid URL)"),
            Some(_) => "(not a valid URL)".to_owned(),
            None => outside(
                text.split(['?', '#']).next().unwrap_or_default(),
                OUTSIDE_TEXT_CHARS,
            ),
        },
    }
}

fn is_scheme(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Outside text (a remote server's message, a checksum file, a name) made safe to show on one
/// line: control characters (ANSI escapes, newlines, NUL) are written as escapes (`\u{1b}`),
/// and text longer than `max_chars` is cut there with a note of how long it was.
pub fn outside(text: &str, max_chars: usize) -> String {
    cut(text, max_chars, text.len())
}

/// [`outside`] of `text`, the first part of `total` bytes.
fn cut(text: &str, max_chars: usize, total: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 32));
    for (shown, c) in text.chars().enumerate() {
        if shown == max_chars {
            out.push_str(&format!("… ({total} bytes in all)"));
            return out;
        }
        if c.is_control() || is_invisible_format(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that change how a terminal shows the rest of a line without being control
/// characters: bidirectional overrides and isolates (the "Trojan source" characters).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// [`outside`] for bytes that may not be UTF-8: reads at most what it shows.
pub fn outside_bytes(bytes: &[u8], max_chars: usize) -> String {
    let head = &bytes[..bytes.len().min(max_chars.saturating_mul(4))];
    let text = String::from_utf8_lossy(head);
    let mut shown = cut(&text, max_chars, bytes.len());
    if head.len() < bytes.len() && !shown.ends_with("in all)") {
        shown.push_str(&format!("… ({} bytes in all)", bytes.len()));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_every_credential_form() {
        for (input, expected) in [
            (
                "https://alice:s3cret@repo.example/m2/",
                "https://repo.example/m2/",
            ),
            ("https://alice@repo.example/m2/", "https://repo.example/m2/"),
            (
                "https://repo.example/m2/?token=s3cret",
                "https://repo.example/m2/",
            ),
            (
                "https://repo.example/m2/#sig=s3cret",
                "https://repo.example/m2/",
            ),
            (
                "s3://key:s3cret@bucket/p?X-Amz-Signature=s3cret#x",
                "s3://bucket/p",
            ),
            ("file:///srv/repo?s3cret", "file:///srv/repo"),
            ("./data?s3cret", "./data"),
            ("memory://", "memory://"),
            ("/var/lib/sparkstage", "/var/lib/sparkstage"),
            ("https://alice:s3cret@[::1", "https://(not a valid URL)"),
            ("not a url://alice:s3cret@", "(not a valid URL)"),
        ] {
            let shown = url_text(input);
            assert_eq!(shown, expected, "{input}");
            assert!(!shown.contains("s3cret"), "{input} -> {shown}");
        }
    }

    #[test]
    fn outside_text_is_one_line_and_bounded() {
        assert_eq!(outside("plain text", 200), "plain text");
        assert_eq!(
            outside("red \u{1b}[31mtext\r\nnext\0", 200),
            "red \\u{1b}[31mtext\\r\\nnext\\u{0}"
        );
        assert_eq!(outside("a\u{202e}b", 200), "a\\u{202e}b");
        let long = "x".repeat(10_000);
        let shown = outside(&long, 200);
        assert!(shown.starts_with(&"x".repeat(200)));
        assert!(shown.ends_with("… (10000 bytes in all)"), "{shown}");
        assert!(shown.len() < 240);
        assert_eq!(outside("ééé", 2), "éé… (6 bytes in all)");
        let bytes = vec![b'y'; 50 << 20];
        let shown = outside_bytes(&bytes, 100);
        assert!(
            shown.ends_with(&format!("({} bytes in all)", 50 << 20)),
            "{shown}"
        );
        assert!(shown.len() < 140);
        assert_eq!(outside_bytes(b"ab\xffc", 10), "ab\u{fffd}c");
    }
}
