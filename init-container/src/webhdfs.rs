//! `hdfs://`, `webhdfs://` and `swebhdfs://` sources through the WebHDFS REST API (HttpFS speaks
//! the same protocol), as Hadoop documents it: `GET /webhdfs/v1/<path>?op=OPEN` on the NameNode,
//! which answers `307 Temporary Redirect` to a DataNode that serves the bytes (HttpFS answers
//! `200` directly). Resuming re-issues `OPEN` with `offset=<bytes so far>`, not a `Range` header
//! (WebHDFS ignores `Range`, HDFS-2527). Errors come as
//! `{"RemoteException":{"exception":..,"javaClassName":..,"message":..}}`.

use serde::Deserialize;
use url::Url;

/// The Hadoop 3 NameNode HTTP port (`dfs.namenode.http-address`).
pub const DEFAULT_HTTP_PORT: u16 = 9870;
/// The Hadoop 3 NameNode HTTPS port (`dfs.namenode.https-address`).
pub const DEFAULT_HTTPS_PORT: u16 = 9871;

/// How to reach WebHDFS and who to be there.
#[derive(Debug, Clone, Default)]
pub struct HdfsConfig {
    /// The NameNode's HTTP address (`host:port` or `http(s)://host:port`) for `hdfs://` sources.
    pub address: Option<String>,
    /// `user.name` (simple authentication).
    pub user: Option<String>,
    /// A file holding a delegation token (`delegation=`), never printed.
    pub token_file: Option<std::path::PathBuf>,
}

/// The schemes served through WebHDFS.
pub fn is_webhdfs_url(url: &Url) -> bool {
    matches!(url.scheme(), "hdfs" | "webhdfs" | "swebhdfs")
}

/// The `op=OPEN` URL on the NameNode (or HttpFS) for `source`, with `user.name` and
/// `delegation` when given.
pub fn open_url(
    source: &Url,
    config: &HdfsConfig,
    token: Option<&str>,
) -> Result<reqwest::Url, String> {
    let host = source.host_str().filter(|h| !h.is_empty());
    let address = config
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let host = match (host, source.scheme(), address) {
        (Some(host), _, _) => host,
        // `hdfs:///path` (the default file system) needs the WebHDFS address.
        (None, "hdfs", Some(_)) => "",
        _ => {
            return Err(
                "the URL names no NameNode host (for hdfs:///path, set --webhdfs-address)".into(),
            );
        }
    };
    let base = match source.scheme() {
        "webhdfs" => format!(
            "http://{host}:{}",
            source.port().unwrap_or(DEFAULT_HTTP_PORT)
        ),
        "swebhdfs" => format!(
            "https://{host}:{}",
            source.port().unwrap_or(DEFAULT_HTTPS_PORT)
        ),
        // hdfs://namenode:8020 names the RPC port; WebHDFS listens on the HTTP address.
        _ => match address {
            Some(a) if a.contains("://") => a.trim_end_matches('/').to_owned(),
            Some(a) => format!("http://{a}"),
            None => format!("http://{host}:{DEFAULT_HTTP_PORT}"),
        },
    };
    let mut url = Url::parse(&format!("{base}/webhdfs/v1{}", source.path()))
        .map_err(|e| format!("bad WebHDFS address {base:?}: {e}"))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("op", "OPEN");
        if let Some(user) = &config.user {
            query.append_pair("user.name", user);
        }
        if let Some(token) = token {
            query.append_pair("delegation", token);
        }
    }
    Ok(url)
}

/// `url` with `name` set to `value` (replacing any earlier value).
pub(crate) fn with_param(url: &reqwest::Url, name: &str, value: &str) -> reqwest::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut url = url.clone();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
    url
}

/// The DataNode URL from a redirect: `location` resolved against `from`, carrying over
/// `user.name` and `delegation` when the NameNode left them out, and `offset` set to `offset`.
pub(crate) fn follow(
    from: &reqwest::Url,
    location: &str,
    offset: u64,
) -> Result<reqwest::Url, String> {
    let mut next = from
        .join(location)
        .map_err(|e| format!("the NameNode redirected to a bad Location: {e}"))?;
    for name in ["user.name", "delegation"] {
        let present = next.query_pairs().any(|(k, _)| k == name);
        if !present && let Some((_, v)) = from.query_pairs().find(|(k, _)| k == name) {
            next = with_param(&next, name, &v);
        }
    }
    if offset > 0 || next.query_pairs().any(|(k, _)| k == "offset") {
        next = with_param(&next, "offset", &offset.to_string());
    }
    Ok(next)
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "RemoteException")]
    remote: RemoteException,
}

#[derive(Deserialize)]
struct RemoteException {
    #[serde(default)]
    exception: String,
    #[serde(default, rename = "javaClassName")]
    java_class_name: String,
    #[serde(default)]
    message: String,
}

/// What an error answer means.
pub(crate) struct Refusal {
    pub message: String,
    pub transient: bool,
}

/// Classifies a non-success answer with its body. `path` is the HDFS path for messages.
pub(crate) fn refusal(status: reqwest::StatusCode, body: &[u8], path: &str) -> Refusal {
    let remote = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.remote);
    let exception = remote
        .as_ref()
        .map(|r| {
            if r.exception.is_empty() {
                r.java_class_name
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                r.exception.clone()
            }
        })
        .unwrap_or_default();
    let detail = match &remote {
        Some(r) => format!(
            "{}: {}",
            sparkstage_api::shown::outside(&exception, 100),
            sparkstage_api::shown::outside(
                &redact_text(&r.message),
                2 * sparkstage_api::shown::OUTSIDE_TEXT_CHARS
            )
        ),
        None => format!("HTTP {status}"),
    };
    let transient_exception = matches!(
        exception.as_str(),
        "StandbyException"
            | "RetriableException"
            | "SafeModeException"
            | "ObserverRetryOnActiveException"
    );
    let (message, transient) = match exception.as_str() {
        "FileNotFoundException" => (format!("not found: {path} ({detail})"), false),
        "AccessControlException"
        | "SecurityException"
        | "AuthorizationException"
        | "InvalidToken" => (format!("access denied to {path} ({detail})"), false),
        _ if transient_exception => (format!("{path}: {detail}"), true),
        _ if status == reqwest::StatusCode::NOT_FOUND => {
            (format!("not found: {path} ({detail})"), false)
        }
        _ => (
            format!("{path}: HTTP {status}: {detail}"),
            status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
        ),
    };
    Refusal { message, transient }
}

/// Removes a `delegation=...` value from text a server echoes back.
pub(crate) fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("delegation=") {
        let end = at + "delegation=".len();
        out.push_str(&rest[..end]);
        out.push_str("<redacted>");
        rest = &rest[end..];
        let skip = rest
            .find(|c: char| c == '&' || c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        rest = &rest[skip..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_webhdfs() {
        let config = HdfsConfig {
            user: Some("spark".into()),
            ..HdfsConfig::default()
        };
        let u = |s: &str, c: &HdfsConfig| {
            open_url(&Url::parse(s).expect("url"), c, Some("tok"))
                .expect("open")
                .to_string()
        };
        assert_eq!(
            u("webhdfs://nn:50070/a/b.jar", &config),
            "http://nn:50070/webhdfs/v1/a/b.jar?op=OPEN&user.name=spark&delegation=tok"
        );
        assert!(u("swebhdfs://nn/a", &config).starts_with("https://nn:9871/webhdfs/v1/a?"));
        assert!(u("hdfs://nn:8020/a", &config).starts_with("http://nn:9870/webhdfs/v1/a?"));
        let over = HdfsConfig {
            address: Some("web:1234".into()),
            ..HdfsConfig::default()
        };
        assert!(u("hdfs://nn:8020/a", &over).starts_with("http://web:1234/webhdfs/v1/a?"));
        assert!(u("hdfs:///a", &over).starts_with("http://web:1234/webhdfs/v1/a?"));
        assert!(open_url(&Url::parse("hdfs:///a").expect("url"), &config, None).is_err());
    }

    #[test]
    fn redirects_keep_credentials_and_set_the_offset() {
        let from = reqwest::Url::parse("http://nn/webhdfs/v1/a?op=OPEN&user.name=u&delegation=t")
            .expect("url");
        let next = follow(&from, "http://dn/webhdfs/v1/a?op=OPEN&offset=0", 7).expect("follow");
        let pairs: Vec<_> = next
            .query_pairs()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert!(pairs.contains(&"user.name=u".to_owned()), "{pairs:?}");
        assert!(pairs.contains(&"delegation=t".to_owned()), "{pairs:?}");
        assert!(pairs.contains(&"offset=7".to_owned()), "{pairs:?}");
    }

    #[test]
    fn remote_exceptions_are_classified() {
        let body = br#"{"RemoteException":{"exception":"FileNotFoundException","javaClassName":"java.io.FileNotFoundException","message":"File does not exist: /a"}}"#;
        let r = refusal(reqwest::StatusCode::NOT_FOUND, body, "/a");
        assert!(!r.transient);
        assert!(r.message.starts_with("not found: /a"), "{}", r.message);
        let body = br#"{"RemoteException":{"exception":"StandbyException","javaClassName":"org.apache.hadoop.ipc.StandbyException","message":"standby"}}"#;
        assert!(refusal(reqwest::StatusCode::FORBIDDEN, body, "/a").transient);
        assert!(refusal(reqwest::StatusCode::BAD_GATEWAY, b"", "/a").transient);
        assert_eq!(
            redact_text("x delegation=abc&y"),
            "x delegation=<redacted>&y"
        );
    }
}
