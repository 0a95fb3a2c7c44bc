//! The 2017 fork's side of API v0, for tests: its flat tar.gz archives and its multipart upload
//! as its Retrofit client (`ResourceStagingServiceRetrofit`) sent it: `POST api/v0/resources/`
//! (with the slash), parts named without a file name, each `Content-Transfer-Encoding: binary`,
//! the archive typed `multipart/form-data` and the owner `application/json`.

use anyhow::{Result, ensure};
use reqwest::multipart::{Form, Part};
use sparkstage_api::fork::{OWNER_PART, RESOURCES_PART, RESOURCES_PATH, UploadResponse};

/// An owner as the fork's client sent it.
pub const OWNER: &str = r#"{"ownerNamespace":"analytics","ownerLabels":{"spark-app-selector":"spark-1"},"ownerType":"Pod"}"#;

/// A flat tar.gz of `files`, as the fork's client wrote one.
pub fn archive(files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data)?;
    }
    Ok(builder.into_inner()?.finish()?)
}

/// The multipart form of an upload.
pub fn form(resources: Vec<u8>, owner: &str) -> Result<Form> {
    let mut binary = reqwest::header::HeaderMap::new();
    binary.insert(
        "content-transfer-encoding",
        reqwest::header::HeaderValue::from_static("binary"),
    );
    Ok(Form::new()
        .part(
            RESOURCES_PART,
            Part::bytes(resources)
                .mime_str("multipart/form-data")?
                .headers(binary.clone()),
        )
        .part(
            OWNER_PART,
            Part::text(owner.to_owned())
                .mime_str("application/json")?
                .headers(binary),
        ))
}

/// Uploads `resources` to the server at `url` with [`OWNER`], as the fork's client did.
pub async fn upload(url: &str, resources: Vec<u8>) -> Result<UploadResponse> {
    post(&format!("{url}{RESOURCES_PATH}/"), form(resources, OWNER)?).await
}

/// Posts `form` to `url`: the answer of a successful upload.
pub async fn post(url: &str, form: Form) -> Result<UploadResponse> {
    let answer = reqwest::Client::new()
        .post(url)
        .multipart(form)
        .send()
        .await?;
    let status = answer.status();
    ensure!(status.is_success(), "{status}: {}", answer.text().await?);
    Ok(answer.json().await?)
}
