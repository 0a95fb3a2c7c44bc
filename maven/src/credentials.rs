//! Repository credentials sent as an `Authorization` header, by repository URL prefix: what a
//! platform team mounts from a Kubernetes Secret for its in-cluster mirror (a bearer token, or
//! basic auth without putting the password in a URL that flags and environments show).
//!
//! The file has one repository per line, `#` starting a comment:
//!
//! ```text
//! # repository URL prefix                      Authorization header value
//! https://nexus.internal/repository/           Bearer eyJhbGciOi...
//! https://artifactory.example/artifactory/     Basic dXNlcjpwYXNzd29yZA==
//! ```
//!
//! A repository takes the value of the longest prefix it is under ([`is_under`]); credentials
//! in a repository's own URL (`https://user:pass@host/...`) come first. Values are never printed.

use std::path::Path;

/// Whether `url` is `prefix` or below it: same scheme, host and port, and a path under the
/// prefix's path in whole segments (`/maven` covers `/maven/releases/`, not `/maven-evil/`).
/// User names and passwords are not compared.
pub fn is_under(url: &url::Url, prefix: &url::Url) -> bool {
    fn dir(u: &url::Url) -> String {
        let path = u.path();
        if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        }
    }
    prefix.scheme() == url.scheme()
        && prefix.host() == url.host()
        && prefix.port_or_known_default() == url.port_or_known_default()
        && dir(url).starts_with(&dir(prefix))
}

/// `Authorization` header values by repository URL prefix.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Vec<(url::Url, String)>,
}

impl std::fmt::Debug for Credentials {
    /// The prefixes only: the values are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(u, _)| u.as_str()))
            .finish()
    }
}

impl Credentials {
    /// Parses the file format above. Errors name the line, never its value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (prefix, value) = line
                .split_once(char::is_whitespace)
                .map(|(p, v)| (p, v.trim()))
                .unwrap_or((line, ""));
            let line = n + 1;
            let prefix = match url::Url::parse(prefix) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
                _ => {
                    return Err(format!(
                        "line {line}: expected an http(s) repository URL, then the \
                         Authorization header value"
                    ));
                }
            };
            if !prefix.username().is_empty() || prefix.password().is_some() {
                return Err(format!(
                    "line {line}: the URL carries credentials; put them in the header value"
                ));
            }
            if value.split_whitespace().count() < 2 {
                // Empty, or a scheme without its credentials (a token alone is not a value).
                return Err(format!(
                    "line {line}: no Authorization header value after the URL \
                     (`Bearer <token>` or `Basic <base64 of user:password>`)"
                ));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(format!(
                    "line {line}: the Authorization value has characters a header cannot carry"
                ));
            }
            entries.push((prefix, value.to_owned()));
        }
        Ok(Self { entries })
    }

    /// Reads and parses a credentials file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The header value for a repository at `url`: the longest prefix's.
    pub fn authorization(&self, url: &url::Url) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(prefix, _)| is_under(url, prefix))
            .max_by_key(|(prefix, _)| prefix.path().trim_end_matches('/').len())
            .map(|(_, value)| value.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("test URL")
    }

    #[test]
    fn prefixes_match_whole_path_segments_on_the_same_origin() {
        let prefix = url("https://nexus.example/maven");
        for ok in [
            "https://nexus.example/maven",
            "https://nexus.example/maven/",
            "https://nexus.example/maven/releases/",
            "https://nexus.example:443/maven/",
            "https://user:token@nexus.example/maven/",
            "https://NEXUS.example/maven/",
        ] {
            assert!(is_under(&url(ok), &prefix), "{ok}");
        }
        for refused in [
            "https://nexus.example/maven-evil/",
            "https://nexus.example/",
            "http://nexus.example/maven/",
            "https://nexus.example:8443/maven/",
            "https://nexus.example.evil.io/maven/",
        ] {
            assert!(!is_under(&url(refused), &prefix), "{refused}");
        }
        assert!(is_under(
            &url("http://mirror:8081/a/"),
            &url("http://mirror:8081/")
        ));
    }

    #[test]
    fn the_longest_prefix_gives_the_header_and_values_stay_secret() {
        let c = Credentials::parse(
            "# comment\n\n https://nexus.example/   Bearer all \n\
             https://nexus.example/private/ Basic dTpw\n",
        )
        .expect("parse");
        assert_eq!(
            c.authorization(&url("https://nexus.example/private/releases/")),
            Some("Basic dTpw")
        );
        assert_eq!(
            c.authorization(&url("https://nexus.example/public/")),
            Some("Bearer all")
        );
        assert_eq!(c.authorization(&url("https://other.example/")), None);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("dTpw") && !shown.contains("Bearer"),
            "{shown}"
        );
    }

    #[test]
    fn bad_lines_are_named_without_their_secret() {
        for (text, expected) in [
            (
                "nexus.example/ Bearer s3cret",
                "line 1: expected an http(s)",
            ),
            (
                "# c\nhttps://nexus.example/",
                "line 2: no Authorization header value",
            ),
            (
                "https://nexus.example/ s3cret",
                "line 1: no Authorization header value",
            ),
            (
                "https://u:s3cret@nexus.example/ Bearer s3cret",
                "line 1: the URL carries",
            ),
            ("file:///srv/ Bearer s3cret", "line 1: expected an http(s)"),
            (
                "https://nexus.example/ Bearer s3\u{7}cret",
                "line 1: the Authorization value",
            ),
        ] {
            let e = Credentials::parse(text).expect_err(text);
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains("s3cret") && !e.contains("s3\u{7}cret"), "{e}");
        }
    }
}
