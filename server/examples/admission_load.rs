//! Sends one AdmissionReview many times to a webhook over HTTPS, as the API server does (one
//! kept-alive connection per worker), and prints the latency distribution.
//!
//! Usage: admission_load URL CA_PEM REVIEW_JSON COUNT [CONCURRENCY]
//! Prints: `count=N concurrency=C p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. per_s=..`; exits 1 when
//! an answer is not a 200 AdmissionReview with `allowed: true`.

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, ca, review, count, rest @ ..] = args.as_slice() else {
        return Err("usage: admission_load URL CA_PEM REVIEW_JSON COUNT [CONCURRENCY]".into());
    };
    let count: usize = count.parse()?;
    let concurrency: usize = rest.first().map_or(Ok(1), |c| c.parse())?;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca)?)?;
    let body = std::fs::read(review)?;
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .pool_max_idle_per_host(concurrency)
        .build()?;
    // Warm-up: connections open, caches filled.
    for _ in 0..concurrency.max(20) {
        send(&client, url, &body).await?;
    }
    let started = Instant::now();
    let per_worker = count / concurrency;
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        let body = body.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let t = Instant::now();
                send(&client, &url, &body)
                    .await
                    .map_err(|e| e.to_string())?;
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "count={} concurrency={concurrency} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} per_s={:.0}",
        latencies.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await?;
    let status = answer.status();
    let review: serde_json::Value = answer.json().await?;
    if !status.is_success() || review["response"]["allowed"] != true {
        return Err(format!("unexpected answer {status}: {review}").into());
    }
    Ok(())
}
