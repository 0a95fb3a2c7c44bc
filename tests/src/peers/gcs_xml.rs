//! An adapter that lets `object_store`'s GCS client write to fake-gcs-server.
//!
//! object_store talks to GCS through the XML API. fake-gcs-server (1.54, the version in the PyPI
//! wheel) serves the XML API's GET/HEAD (with ranges), DELETE and `list-type=2` listing, but
//! answers the XML API's object PUT, copy (`x-goog-copy-source`) and multipart upload
//! (`?uploads`, `?partNumber&uploadId`, `?uploadId`) with `400 invalid uploadType` (see
//! fsouza/fake-gcs-server#1164; object_store's own CI uses a patched fork that is not published
//! anywhere this machine can reach).
//!
//! This adapter listens on its own port and forwards every request to fake-gcs-server unchanged,
//! except those three, which it translates into the JSON API that fake-gcs-server implements:
//! - `PUT /BUCKET/OBJECT` -> `POST /upload/storage/v1/b/BUCKET/o?uploadType=multipart` with
//!   `ifGenerationMatch` from `x-goog-if-generation-match` (so `PutMode::Create` and
//!   `PutMode::Update` are enforced by fake-gcs-server itself), content type, `Content-*`,
//!   `Cache-Control` and `x-goog-meta-*` as object metadata; the reply carries `ETag` and
//!   `x-goog-generation` like the XML API's.
//! - `PUT /BUCKET/OBJECT` with `x-goog-copy-source: SRCBUCKET/SRCOBJECT` -> the JSON API's
//!   `rewriteTo`. fake-gcs-server ignores `ifGenerationMatch` on copies, so the adapter checks
//!   `x-goog-if-generation-match` itself first (`copy_if_not_exists` then fails with
//!   `AlreadyExists` as on GCS, but the check and the copy are not atomic).
//! - `GET /BUCKET?list-type=2&start-after=K`: fake-gcs-server ignores `start-after`, so the
//!   adapter drops the listed keys `<= K` (object_store's `list_with_offset`).
//! - XML multipart uploads: parts are spooled to files by the adapter and sent as one upload on
//!   completion, which is therefore not atomic with respect to concurrent writers beyond what a
//!   single upload is.
//!
//! It runs on its own thread and tokio runtime so that it keeps serving whatever the test's own
//! runtime is doing (blocking on a child process, for instance).

use std::collections::HashMap;
use std::future::IntoFuture as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};

/// A running adapter; stops when dropped.
#[derive(Debug)]
pub(crate) struct GcsXmlShim {
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GcsXmlShim {
    /// Starts the adapter on a free port in front of `http://127.0.0.1:{upstream_port}`,
    /// spooling multipart parts under `spool`.
    pub(crate) fn start(upstream_port: u16, spool: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&spool).with_context(|| format!("creating {}", spool.display()))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let shim = Arc::new(Shim {
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            client,
            spool,
            uploads: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new().fallback(handle).with_state(shim);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gcs-xml-shim")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("gcs-xml-shim".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = rx => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(Self {
            port,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for GcsXmlShim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Debug)]
struct Shim {
    upstream: String,
    client: reqwest::Client,
    spool: PathBuf,
    uploads: Mutex<HashMap<String, PendingUpload>>,
}

#[derive(Debug, Clone)]
struct PendingUpload {
    bucket: String,
    object: String,
    metadata: serde_json::Value,
    content_type: String,
}

async fn handle(State(shim): State<Arc<Shim>>, req: Request) -> Response {
    match shim.route(req).await {
        Ok(resp) => resp,
        Err(e) => (StatusCode::BAD_GATEWAY, format!("gcs xml shim: {e:#}")).into_response(),
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    fn hex_val(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    hex::encode(buf)
}

/// Object metadata for the JSON API from XML API request headers.
fn metadata_from_headers(headers: &HeaderMap, name: &str) -> (serde_json::Value, String) {
    let get = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = get("content-type").unwrap_or_else(|| "application/octet-stream".into());
    let mut meta = serde_json::Map::new();
    meta.insert("name".into(), name.into());
    meta.insert("contentType".into(), content_type.clone().into());
    for (header, field) in [
        ("content-encoding", "contentEncoding"),
        ("content-disposition", "contentDisposition"),
        ("content-language", "contentLanguage"),
        ("cache-control", "cacheControl"),
    ] {
        if let Some(v) = get(header) {
            meta.insert(field.into(), v.into());
        }
    }
    let custom: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix("x-goog-meta-")?;
            Some((key.to_string(), v.to_str().ok()?.into()))
        })
        .collect();
    if !custom.is_empty() {
        meta.insert("metadata".into(), custom.into());
    }
    (meta.into(), content_type)
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade" | "host"
    )
}

type ByteStream = futures::stream::BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

impl Shim {
    async fn route(&self, req: Request) -> Result<Response> {
        let path = req.uri().path().to_string();
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let has = |k: &str| query.iter().any(|(name, _)| name == k);
        let param = |k: &str| {
            query
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        let object_path = [
            "/storage/",
            "/upload/",
            "/download/",
            "/batch/",
            "/_internal/",
        ]
        .iter()
        .all(|p| !path.starts_with(p))
        .then(|| {
            let (bucket, object) = path.strip_prefix('/')?.split_once('/')?;
            (!bucket.is_empty() && !object.is_empty())
                .then(|| (percent_decode(bucket), percent_decode(object)))
        })
        .flatten();
        let Some((bucket, object)) = object_path else {
            if req.method() == Method::GET
                && param("list-type").as_deref() == Some("2")
                && let Some(start_after) = param("start-after")
            {
                return self.list_start_after(req, &start_after).await;
            }
            return self.forward(req).await;
        };
        let method = req.method().clone();
        if method == Method::POST && has("uploads") {
            let (metadata, content_type) = metadata_from_headers(req.headers(), &object);
            return self.initiate(bucket, object, metadata, content_type);
        }
        if let Some(upload_id) = param("uploadId") {
            if method == Method::PUT {
                let part: u32 = param("partNumber")
                    .ok_or_else(|| anyhow!("partNumber missing"))?
                    .parse()?;
                return self.put_part(&upload_id, part, req.into_body()).await;
            }
            if method == Method::POST {
                return self.complete(&upload_id, &bucket, &object, req).await;
            }
            if method == Method::DELETE {
                return self.abort(&upload_id).await;
            }
        }
        if method == Method::PUT {
            if let Some(source) = req.headers().get("x-goog-copy-source") {
                let source = source.to_str()?.trim_start_matches('/').to_string();
                let (src_bucket, src_object) = source
                    .split_once('/')
                    .ok_or_else(|| anyhow!("bad x-goog-copy-source {source:?}"))?;
                let generation = req
                    .headers()
                    .get("x-goog-if-generation-match")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                return self
                    .copy(
                        &percent_decode(src_bucket),
                        &percent_decode(src_object),
                        &bucket,
                        &object,
                        generation,
                    )
                    .await;
            }
            let (metadata, content_type) = metadata_from_headers(req.headers(), &object);
            let generation = req
                .headers()
                .get("x-goog-if-generation-match")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body: ByteStream = req
                .into_body()
                .into_data_stream()
                .map_err(std::io::Error::other)
                .boxed();
            let resp = self
                .upload(&bucket, metadata, &content_type, generation, body)
                .await?;
            return Ok(self.put_response(resp, None).await);
        }
        self.forward(req).await
    }

    /// Sends the request on to fake-gcs-server unchanged and streams the answer back.
    async fn forward(&self, req: Request) -> Result<Response> {
        let (parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut out = self
            .client
            .request(parts.method, format!("{}{path_and_query}", self.upstream));
        for (k, v) in &parts.headers {
            if !is_hop_by_hop(k) {
                out = out.header(k, v);
            }
        }
        let body = reqwest::Body::wrap_stream(body.into_data_stream());
        let resp = out.body(body).send().await?;
        Ok(stream_response(resp))
    }

    /// A JSON API multipart upload (metadata + content) honouring `ifGenerationMatch`.
    async fn upload(
        &self,
        bucket: &str,
        metadata: serde_json::Value,
        content_type: &str,
        if_generation_match: Option<String>,
        content: ByteStream,
    ) -> Result<reqwest::Response> {
        let mut url = url::Url::parse(&self.upstream)?;
        url.path_segments_mut()
            .map_err(|()| anyhow!("bad upstream URL"))?
            .extend(["upload", "storage", "v1", "b", bucket, "o"]);
        url.query_pairs_mut().append_pair("uploadType", "multipart");
        if let Some(generation) = &if_generation_match {
            url.query_pairs_mut()
                .append_pair("ifGenerationMatch", generation);
        }
        let boundary = format!("sparkstage{}", random_hex(16));
        let head = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n\
             --{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let body = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
            .chain(content)
            .chain(stream::once(async move { Ok(Bytes::from(tail)) }));
        Ok(self
            .client
            .post(url)
            .header(
                "content-type",
                format!("multipart/related; boundary={boundary}"),
            )
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?)
    }

    /// Turns the JSON API's object resource into the XML API's PUT answer (`ETag`,
    /// `x-goog-generation`, optionally an XML body); errors are passed through.
    async fn put_response(
        &self,
        resp: reqwest::Response,
        xml_body: Option<&(dyn Fn(&str) -> String + Sync)>,
    ) -> Response {
        let status = resp.status();
        if !status.is_success() {
            return stream_response(resp);
        }
        let object: serde_json::Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => {
                return (StatusCode::BAD_GATEWAY, format!("gcs xml shim: {e}")).into_response();
            }
        };
        let etag = format!("\"{}\"", object["etag"].as_str().unwrap_or_default());
        let generation = object["generation"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| object["generation"].to_string());
        let body = xml_body.map(|f| f(&etag)).unwrap_or_default();
        let mut out = Response::new(Body::from(body));
        let headers = out.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            headers.insert("etag", v);
        }
        if let Ok(v) = HeaderValue::from_str(&generation) {
            headers.insert("x-goog-generation", v);
        }
        out
    }

    fn initiate(
        &self,
        bucket: String,
        object: String,
        metadata: serde_json::Value,
        content_type: String,
    ) -> Result<Response> {
        let upload_id = random_hex(16);
        std::fs::create_dir_all(self.spool.join(&upload_id))?;
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>\
             <Bucket>{}</Bucket><Key>{}</Key><UploadId>{upload_id}</UploadId>\
             </InitiateMultipartUploadResult>",
            xml_escape(&bucket),
            xml_escape(&object)
        );
        self.uploads
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .insert(
                upload_id,
                PendingUpload {
                    bucket,
                    object,
                    metadata,
                    content_type,
                },
            );
        Ok(([("content-type", "application/xml")], body).into_response())
    }

    fn pending(&self, upload_id: &str) -> Result<Option<PendingUpload>> {
        Ok(self
            .uploads
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .get(upload_id)
            .cloned())
    }

    async fn put_part(&self, upload_id: &str, part: u32, body: Body) -> Result<Response> {
        if self.pending(upload_id)?.is_none() {
            return Ok((StatusCode::NOT_FOUND, "NoSuchUpload").into_response());
        }
        use sha2::Digest as _;
        use tokio::io::AsyncWriteExt as _;
        let path = self.spool.join(upload_id).join(part.to_string());
        let mut file = tokio::fs::File::create(&path).await?;
        let mut hasher = sha2::Sha256::new();
        let mut data = body.into_data_stream();
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        let etag = format!("\"{}\"", hex::encode(hasher.finalize()));
        Ok(([("etag", etag)], "").into_response())
    }

    async fn complete(
        &self,
        upload_id: &str,
        bucket: &str,
        object: &str,
        req: Request,
    ) -> Result<Response> {
        let Some(upload) = self.pending(upload_id)? else {
            return Ok((StatusCode::NOT_FOUND, "NoSuchUpload").into_response());
        };
        if upload.bucket != bucket || upload.object != object {
            return Ok((StatusCode::BAD_REQUEST, "upload is for another object").into_response());
        }
        let generation = req
            .headers()
            .get("x-goog-if-generation-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let xml = axum::body::to_bytes(req.into_body(), 1 << 20).await?;
        let xml = String::from_utf8_lossy(&xml);
        let mut parts = Vec::new();
        for piece in xml.split("<PartNumber>").skip(1) {
            let number = piece
                .split_once("</PartNumber>")
                .ok_or_else(|| anyhow!("bad CompleteMultipartUpload body"))?
                .0;
            parts.push(number.trim().parse::<u32>()?);
        }
        if parts.is_empty() {
            return Ok((StatusCode::BAD_REQUEST, "MalformedXML: no parts").into_response());
        }
        let dir = self.spool.join(upload_id);
        for part in &parts {
            if !dir.join(part.to_string()).is_file() {
                return Ok((StatusCode::BAD_REQUEST, format!("InvalidPart {part}")).into_response());
            }
        }
        let files: Vec<PathBuf> = parts.iter().map(|p| dir.join(p.to_string())).collect();
        let content: ByteStream = stream::iter(files)
            .then(|path| async move { tokio::fs::read(path).await.map(Bytes::from) })
            .boxed();
        let resp = self
            .upload(
                bucket,
                upload.metadata.clone(),
                &upload.content_type,
                generation,
                content,
            )
            .await?;
        let success = resp.status().is_success();
        let (bucket_x, object_x) = (xml_escape(bucket), xml_escape(object));
        let xml_body = move |etag: &str| {
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>\
                 <Bucket>{bucket_x}</Bucket><Key>{object_x}</Key><ETag>{}</ETag>\
                 </CompleteMultipartUploadResult>",
                xml_escape(etag)
            )
        };
        let out = self.put_response(resp, Some(&xml_body)).await;
        if success {
            self.forget(upload_id).await;
        }
        Ok(out)
    }

    async fn abort(&self, upload_id: &str) -> Result<Response> {
        if self.pending(upload_id)?.is_none() {
            return Ok((StatusCode::NOT_FOUND, "NoSuchUpload").into_response());
        }
        self.forget(upload_id).await;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn forget(&self, upload_id: &str) {
        if let Ok(mut uploads) = self.uploads.lock() {
            uploads.remove(upload_id);
        }
        let _ = tokio::fs::remove_dir_all(self.spool.join(upload_id)).await;
    }

    async fn copy(
        &self,
        src_bucket: &str,
        src_object: &str,
        bucket: &str,
        object: &str,
        if_generation_match: Option<String>,
    ) -> Result<Response> {
        let mut url = url::Url::parse(&self.upstream)?;
        url.path_segments_mut()
            .map_err(|()| anyhow!("bad upstream URL"))?
            .extend([
                "storage",
                "v1",
                "b",
                src_bucket,
                "o",
                src_object,
                "rewriteTo",
                "b",
                bucket,
                "o",
                object,
            ]);
        if let Some(generation) = &if_generation_match {
            if let Some(failed) = self.check_generation(bucket, object, generation).await? {
                return Ok(failed);
            }
            url.query_pairs_mut()
                .append_pair("ifGenerationMatch", generation);
        }
        let resp = self.client.post(url).send().await?;
        if !resp.status().is_success() {
            return Ok(stream_response(resp));
        }
        let body =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult></CopyObjectResult>";
        Ok(([("content-type", "application/xml")], body).into_response())
    }
}

impl Shim {
    /// fake-gcs-server ignores `ifGenerationMatch` on copies, so check it here (not atomic with
    /// the copy that follows). Returns the 412 answer if the precondition does not hold.
    async fn check_generation(
        &self,
        bucket: &str,
        object: &str,
        expected: &str,
    ) -> Result<Option<Response>> {
        let mut url = url::Url::parse(&self.upstream)?;
        url.path_segments_mut()
            .map_err(|()| anyhow!("bad upstream URL"))?
            .extend(["storage", "v1", "b", bucket, "o", object]);
        let resp = self.client.get(url).send().await?;
        let current = match resp.status() {
            StatusCode::NOT_FOUND => "0".to_string(),
            status if status.is_success() => {
                let object: serde_json::Value = resp.json().await?;
                match &object["generation"] {
                    serde_json::Value::String(g) => g.clone(),
                    other => other.to_string(),
                }
            }
            _ => return Ok(Some(stream_response(resp))),
        };
        Ok((current != expected).then(|| {
            (
                StatusCode::PRECONDITION_FAILED,
                [("content-type", "application/xml")],
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PreconditionFailed</Code>\
                 <Message>At least one of the pre-conditions you specified did not hold.</Message>\
                 <Details>x-goog-if-generation-match (checked by the sparkstage test adapter)</Details></Error>",
            )
                .into_response()
        }))
    }

    /// fake-gcs-server ignores `start-after` in XML listings: drop the entries at or before it.
    async fn list_start_after(&self, req: Request, start_after: &str) -> Result<Response> {
        let resp = self.forward(req).await?;
        if !resp.status().is_success() {
            return Ok(resp);
        }
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, 256 << 20).await?;
        let xml = String::from_utf8_lossy(&body);
        let mut out = String::with_capacity(xml.len());
        let mut rest: &str = &xml;
        while let Some(start) = rest.find("<Contents>") {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find("</Contents>") else {
                break;
            };
            let end = start + len + "</Contents>".len();
            let entry = &rest[start..end];
            let key = entry
                .split_once("<Key>")
                .and_then(|(_, k)| k.split_once("</Key>"))
                .map(|(k, _)| xml_unescape(k))
                .unwrap_or_default();
            if key.as_str() > start_after {
                out.push_str(entry);
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        let mut resp = Response::from_parts(parts, Body::from(out));
        resp.headers_mut().remove("content-length");
        Ok(resp)
    }
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out
}

fn stream_response(resp: reqwest::Response) -> Response {
    let mut builder = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if !is_hop_by_hop(k) {
            builder = builder.header(k, v);
        }
    }
    builder
        .body(Body::from_stream(resp.bytes_stream()))
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}
