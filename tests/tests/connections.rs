//! `sparkstage-server`'s connections as a client on the network sees them: a bound on open
//! connections answered with our JSON 503, request heads that must arrive in time (trickled
//! headers and idle keep-alive connections are closed), and our JSON error body where hyper
//! answers a request it cannot parse by itself.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use sparkstage_tests::rss::peak_kib;
use sparkstage_tests::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything the server sends on `stream` until it closes it (or `within` passes).
async fn read_all(stream: &mut TcpStream, within: Duration) -> Result<String> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The status and JSON body of a raw HTTP/1.1 answer.
fn parse(answer: &str) -> Result<(u16, serde_json::Value)> {
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((status, serde_json::from_str(body).unwrap_or_default()))
}

async fn healthz(server: &Server) -> Result<reqwest::StatusCode> {
    Ok(reqwest::Client::new()
        .get(format!("{}/healthz", server.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_a_json_503_and_the_rest_are_served() -> Result<()> {
    let server = Server::start(&["--storage", "memory://", "--max-connections", "8"], &[]).await?;
    let address = format!("127.0.0.1:{}", server.port);
    // Eight connections that say nothing hold every slot.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(&address).await?);
    }
    // Once the server has accepted all eight (a loaded machine may take a moment), a ninth is
    // refused at once.
    let started = Instant::now();
    let answer = loop {
        let mut ninth = TcpStream::connect(&address).await?;
        let answer = read_all(&mut ninth, Duration::from_secs(1)).await?;
        if !answer.is_empty() || started.elapsed() > Duration::from_secs(20) {
            break answer;
        }
    };
    let (status, body) = parse(&answer).with_context(|| server.log())?;
    ensure!(
        status == 503 && body["code"] == "too_many_connections",
        "{answer}"
    );
    ensure!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    // Once they go, the server answers again.
    drop(held);
    let started = Instant::now();
    loop {
        match healthz(&server).await {
            Ok(s) if s.is_success() => break,
            _ if started.elapsed() > Duration::from_secs(5) => anyhow::bail!("never served again"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_and_idle_connections_are_closed() -> Result<()> {
    let server = Server::start(
        &["--storage", "memory://", "--header-read-timeout", "1s"],
        &[],
    )
    .await?;
    let address = format!("127.0.0.1:{}", server.port);
    // One byte every 200 ms: the head never completes within the timeout.
    let mut trickle = TcpStream::connect(&address).await?;
    let started = Instant::now();
    let mut closed = false;
    for byte in
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
    {
        if trickle.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let rest = read_all(&mut trickle, Duration::from_secs(3)).await?;
    ensure!(
        closed || !rest.contains("200 OK"),
        "a trickled request was served: {rest}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(6),
        "the trickling connection stayed open for {:?}",
        started.elapsed()
    );
    // A keep-alive connection idle past the timeout is closed by the server.
    let mut idle = TcpStream::connect(&address).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let started = Instant::now();
    let answer = read_all(&mut idle, Duration::from_secs(5)).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    ensure!(
        started.elapsed() < Duration::from_secs(4),
        "an idle keep-alive connection stayed open for {:?}",
        started.elapsed()
    );
    ensure!(healthz(&server).await?.is_success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_our_json_errors() -> Result<()> {
    let server = Server::start(
        &["--storage", "memory://", "--max-header-size", "16KiB"],
        &[],
    )
    .await?;
    let address = format!("127.0.0.1:{}", server.port);
    let big = "x".repeat(64 << 10);
    let cases = [
        (
            "GET /healthz HTTP/1.1\r\nHo st: x\r\n\r\n".to_owned(),
            400,
            "bad_http",
        ),
        ("NOT A REQUEST\r\n\r\n".to_owned(), 400, "bad_http"),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
            431,
            "headers_too_large",
        ),
    ];
    for (request, status, code) in cases {
        let mut stream = TcpStream::connect(&address).await?;
        stream.write_all(request.as_bytes()).await?;
        let answer = read_all(&mut stream, Duration::from_secs(5)).await?;
        let (got, body) = parse(&answer)?;
        ensure!(
            got == status && body["code"] == code && body["message"].is_string(),
            "{}: {answer}",
            request.chars().take(40).collect::<String>()
        );
    }
    ensure!(healthz(&server).await?.is_success());
    Ok(())
}

/// 200 clients download one 16 MiB blob at once: every download verifies, and the server's
/// memory does not grow with the number of connections (its peak RSS stays in tens of MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_downloads_keep_the_server_small() -> Result<()> {
    use sha2::{Digest as _, Sha256};
    let store = tempfile::tempdir()?;
    let server = Server::start(
        &[
            "--storage",
            store.path().to_str().context("utf-8")?,
            "--no-fsync",
        ],
        &[],
    )
    .await?;
    let data: Vec<u8> = (0..16u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    let expected = Sha256::digest(&data);
    let (id, token) = server.stage(&[("big.jar", "jar", &data)]).await?;
    let digest = sparkstage_api::Digest::of(&data);
    drop(data);
    let before_mib = peak_kib(server.process.id())? >> 10;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let url = format!("{}/v1/bundles/{id}/blobs/{digest}", server.url());
    let downloads = (0..200).map(|_| {
        let (client, url, token) = (&client, &url, &token);
        async move {
            let response = client.get(url).bearer_auth(token).send().await?;
            ensure!(response.status().is_success(), "{}", response.status());
            let mut hasher = Sha256::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
                hasher.update(&chunk?);
            }
            anyhow::Ok(hasher.finalize())
        }
    });
    let results = futures::future::join_all(downloads).await;
    for r in results {
        ensure!(r? == expected, "a download did not verify");
    }
    let peak_mib = peak_kib(server.process.id())? >> 10;
    eprintln!(
        "server peak RSS: {before_mib} MiB after staging, {peak_mib} MiB after 200 downloads"
    );
    ensure!(
        peak_mib < 64,
        "the server's peak RSS reached {peak_mib} MiB (before the downloads: {before_mib} MiB)"
    );
    Ok(())
}

/// Clients that stop reading cannot starve the others: past the send timeout the server closes
/// them and their share of the download memory goes to the clients that read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_cut_off_and_the_others_finish() -> Result<()> {
    use sha2::{Digest as _, Sha256};
    let store = tempfile::tempdir()?;
    let server = Server::start(
        &[
            "--storage",
            store.path().to_str().context("utf-8")?,
            "--no-fsync",
            "--download-memory",
            "1MiB",
            "--send-timeout",
            "2s",
        ],
        &[],
    )
    .await?;
    // Larger than what the kernel's socket buffers of a stalled connection can take in (a few
    // MiB each way on loopback): the server is left holding chunks for every stalled client.
    let data: Vec<u8> = (0..48u32 << 20).map(|i| (i % 251) as u8).collect();
    let expected = Sha256::digest(&data);
    let (id, token) = server.stage(&[("big.jar", "jar", &data)]).await?;
    let digest = sparkstage_api::Digest::of(&data);
    let path = format!("/v1/bundles/{id}/blobs/{digest}");
    // Eight clients ask for the blob and never read: together they would hold the whole budget.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(format!("127.0.0.1:{}", server.port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let body = reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(30))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    ensure!(
        Sha256::digest(&body) == expected,
        "the download did not verify"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(20),
        "the reading client waited {:?}",
        started.elapsed()
    );
    // The stalled ones were closed by the server: reading them to the end finishes. (Give the
    // last of them, which waited for a share of the budget before they stalled, their send
    // timeout first: reading one that is still open would un-stall it.)
    tokio::time::sleep(Duration::from_secs(6)).await;
    for mut stream in stalled {
        let mut sink = vec![0u8; 1 << 20];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        ensure!(closed.is_ok(), "a stalled connection was never closed");
    }
    Ok(())
}

/// A `PUT` of a blob the server already has is answered before its body is read. A client that
/// does not wait for `100 Continue` is still sending then; the server reads the rest and drops
/// it, so the client gets its 200 (not a reset that fails its write) and the connection stays
/// usable. With `Expect: 100-continue` the client sends nothing and still gets the 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_of_a_stored_blob_is_answered_after_its_body_and_keeps_the_connection() -> Result<()>
{
    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let data = sparkstage_tests::conformance::test_bytes(24 << 20, 7);
    let digest = sparkstage_api::Digest::of(&data);
    let put = reqwest::Client::new()
        .put(format!("{}/v1/blobs/{digest}", server.url()))
        .body(data.clone())
        .send()
        .await?;
    ensure!(put.status() == 201, "{}", put.status());

    let head = format!(
        "PUT /v1/blobs/{digest} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        data.len()
    );
    let stream = TcpStream::connect(("127.0.0.1", server.port)).await?;
    let (mut reader, mut writer) = stream.into_split();
    // Reading and writing at once, as a client does: 24 MiB do not fit in socket buffers, so on
    // a server that closes early the writes fail.
    let reading = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        // The 200's head and its JSON body come in one or two reads.
        while !String::from_utf8_lossy(&answer).contains("\"created\"") {
            match tokio::time::timeout(Duration::from_secs(20), reader.read(&mut buffer)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Ok(Err(e)) => return Err(anyhow::Error::from(e)),
            }
        }
        Ok((reader, String::from_utf8_lossy(&answer).into_owned()))
    });
    writer.write_all(head.as_bytes()).await?;
    let written = writer.write_all(&data).await;
    let (mut reader, answer) = reading.await??;
    ensure!(
        written.is_ok(),
        "the body could not be sent: {written:?}; answer {answer:?}"
    );
    let (status, body) = parse(&answer)?;
    ensure!(status == 200 && body["created"] == false, "{answer}");
    // The same connection serves the next request.
    writer
        .write_all(format!("HEAD /v1/blobs/{digest} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await?;
    let mut next = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut next)).await??;
    let next = String::from_utf8_lossy(&next[..n]);
    ensure!(next.starts_with("HTTP/1.1 200"), "{next:?}");

    // With `Expect: 100-continue`, the answer comes before any body byte and no 100 is sent.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).await?;
    stream
        .write_all(
            format!(
                "PUT /v1/blobs/{digest} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\
                 expect: 100-continue\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        )
        .await?;
    let mut answer = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer[..n]);
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    Ok(())
}
