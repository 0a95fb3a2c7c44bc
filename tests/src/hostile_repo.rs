//! A Maven repository that attacks its client, served on loopback: every answer is generated
//! while it streams (nothing is held, so the test process stays small too), and each module of
//! group `t` is one attack. The POM of `t:<module>:1` is at `/t/<module>/1/<module>-1.pom`.
//!
//! | module | what the repository sends |
//! | --- | --- |
//! | `bomb` | a POM whose properties name the one below ten times per level, twelve levels (10^12 characters expanded) |
//! | `endless` | a POM body that never ends |
//! | `laughs` | a POM with one 100 KB entity referenced 20,000 times |
//! | `huge` | a 200 MiB POM (well formed, with a `Content-Length`) |
//! | `sum` | a good POM whose `.sha256` is 200 MiB |
//! | `ansi` | a good POM whose `.sha256` is ANSI escape sequences |
//! | `deep` | a parent chain 10,000 deep (`deep-<n>` has parent `deep-<n+1>`) |
//! | `trickle` | a POM sent one byte a second |
//! | `hugejar` | a good POM and a jar that never ends |
//! | `c1` | a POM depending on a module whose group holds a C1 control (U+009B, a terminal's CSI) |
//!
//! Anything else is 404.

use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;

/// A running hostile repository; it stops when the test's runtime ends.
pub struct HostileRepo {
    pub url: String,
}

const MIB: usize = 1 << 20;

impl HostileRepo {
    pub async fn serve() -> Result<Self> {
        let app = Router::new().route(
            "/{*path}",
            get(|UrlPath(path): UrlPath<String>| answer(path)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url })
    }
}

fn pom(artifact: &str, inside: &str) -> String {
    format!(
        "<project><modelVersion>4.0.0</modelVersion><groupId>t</groupId>\
         <artifactId>{artifact}</artifactId><version>1</version>{inside}</project>"
    )
}

/// `count` chunks of `chunk` after `head` and before `tail`, generated as they are sent.
fn repeated(head: String, chunk: Bytes, count: usize, tail: String) -> Body {
    let stream = futures::stream::once(async move { Bytes::from(head) })
        .chain(futures::stream::iter(std::iter::repeat_n(chunk, count)))
        .chain(futures::stream::once(async move { Bytes::from(tail) }))
        .map(Ok::<_, std::io::Error>);
    Body::from_stream(stream)
}

fn sized(body: Body, length: usize) -> Response {
    ([(header::CONTENT_LENGTH, length.to_string())], body).into_response()
}

async fn answer(path: String) -> Response {
    let Some(rest) = path.strip_prefix("t/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut parts = rest.splitn(3, '/');
    let (Some(module), Some(version), Some(file)) = (parts.next(), parts.next(), parts.next())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let is_pom = file == format!("{module}-{version}.pom");
    let is_jar = file == format!("{module}-{version}.jar");
    let is_sha256 = file == format!("{module}-{version}.pom.sha256");
    match module {
        "bomb" if is_pom => {
            let mut properties = "<p0>x</p0>".to_owned();
            for level in 1..=12 {
                let inner = format!("${{p{}}}", level - 1).repeat(10);
                properties.push_str(&format!("<p{level}>{inner}</p{level}>"));
            }
            pom(
                module,
                &format!(
                    "<properties>{properties}</properties><dependencies><dependency>\
                     <groupId>t</groupId><artifactId>x</artifactId><version>${{p12}}</version>\
                     </dependency></dependencies>"
                ),
            )
            .into_response()
        }
        "endless" if is_pom => {
            let stream = futures::stream::once(async { Bytes::from_static(b"<project><!--") })
                .chain(futures::stream::repeat(Bytes::from(vec![b' '; 64 << 10])))
                .map(Ok::<_, std::io::Error>);
            Body::from_stream(stream).into_response()
        }
        "laughs" if is_pom => {
            let head = format!(
                "<!DOCTYPE project [<!ENTITY big \"{}\">]><project><groupId>t</groupId>\
                 <artifactId>laughs</artifactId><version>1</version><description>",
                "x".repeat(100_000)
            );
            let tail = "</description></project>".to_owned();
            let length = head.len() + 5 * 20_000 + tail.len();
            sized(
                repeated(head, Bytes::from_static(b"&big;"), 20_000, tail),
                length,
            )
        }
        "huge" if is_pom => {
            let head = pom(module, "<description>");
            let head = head.trim_end_matches("</project>").to_owned();
            let tail = "</description></project>".to_owned();
            let length = head.len() + 200 * MIB + tail.len();
            sized(
                repeated(head, Bytes::from(vec![b'x'; MIB]), 200, tail),
                length,
            )
        }
        "sum" | "ansi" | "hugejar" if is_pom => pom(module, "").into_response(),
        "c1" if is_pom => pom(
            module,
            "<dependencies><dependency><groupId>t\u{9b}2J\u{9b}31mevil</groupId>\
             <artifactId>x</artifactId><version>1</version></dependency></dependencies>",
        )
        .into_response(),
        "sum" if is_sha256 => Body::from_stream(
            futures::stream::iter(std::iter::repeat_n(Bytes::from(vec![b'a'; MIB]), 200))
                .map(Ok::<_, std::io::Error>),
        )
        .into_response(),
        "ansi" if is_sha256 => "\u{1b}[2J\u{1b}[31mPWNED\u{1b}[0m\r\n".into_response(),
        "hugejar" if is_jar => Body::from_stream(
            futures::stream::repeat(Bytes::from(vec![b'j'; MIB])).map(Ok::<_, std::io::Error>),
        )
        .into_response(),
        m if is_pom && m.starts_with("deep-") => {
            let n: u64 = m["deep-".len()..].parse().unwrap_or(0);
            let parent = if n < 10_000 {
                format!(
                    "<parent><groupId>t</groupId><artifactId>deep-{}</artifactId>\
                     <version>1</version></parent>",
                    n + 1
                )
            } else {
                String::new()
            };
            pom(m, &parent).into_response()
        }
        "trickle" if is_pom => {
            let text = pom(module, "");
            let stream = futures::stream::iter(text.into_bytes()).then(|b| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(Bytes::from(vec![b]))
            });
            Body::from_stream(stream).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
