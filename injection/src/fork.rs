//! The 2017 fork's init container configuration (`spark-init.properties`, a ConfigMap the fork's
//! submission client wrote, with the resources' secrets mounted beside it), read by
//! `sparkstage-init --fork-properties`. The key names are also the spark-submit settings the
//! submit hook accepts for the fork's users.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Where the fork's pods mounted the ConfigMap.
pub const DEFAULT_PROPERTIES: &str = "/etc/spark-init/spark-init.properties";
/// Where the fork's pods mounted the resources' secrets.
pub const SECRETS_DIR: &str = "/mnt/secrets/spark-init";
pub const SERVER: &str = "spark.kubernetes.resourceStagingServer.uri";
pub const INTERNAL_SERVER: &str = "spark.kubernetes.resourceStagingServer.internal.uri";
pub const JARS_RESOURCE: &str = "spark.kubernetes.initcontainer.downloadJarsResourceIdentifier";
pub const JARS_SECRET: &str = "spark.kubernetes.initcontainer.downloadJarsSecretLocation";
pub const FILES_RESOURCE: &str = "spark.kubernetes.initcontainer.downloadFilesResourceIdentifier";
pub const FILES_SECRET: &str = "spark.kubernetes.initcontainer.downloadFilesSecretLocation";
pub const REMOTE_JARS: &str = "spark.kubernetes.initcontainer.remoteJars";
pub const REMOTE_FILES: &str = "spark.kubernetes.initcontainer.remoteFiles";
pub const JARS_DIR: &str = "spark.kubernetes.mountdependencies.jarsDownloadDir";
pub const FILES_DIR: &str = "spark.kubernetes.mountdependencies.filesDownloadDir";
/// Minutes when a plain number (Spark's `timeConf(MINUTES)`), else a duration like `90s`.
pub const TIMEOUT: &str = "spark.kubernetes.mountdependencies.mountTimeout";
/// The fork's default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A resource of the staging server: its id and the file holding its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: String,
    pub secret_file: PathBuf,
}

/// What a `spark-init.properties` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// The internal URI when given, else the URI.
    pub server: Option<Url>,
    pub jars: Option<Resource>,
    pub files: Option<Resource>,
    /// Remote URIs for the jars directory and the files directory (`local:` ones, already in
    /// the image, left out).
    pub remote_jars: Vec<String>,
    pub remote_files: Vec<String>,
    pub jars_dir: Option<PathBuf>,
    pub files_dir: Option<PathBuf>,
    pub timeout: Option<Duration>,
}

/// Reads the text of a `spark-init.properties`; the error names the key.
pub fn read(text: &str) -> Result<Properties, String> {
    let all = crate::properties::parse(text);
    let get = |key: &str| all.get(key).filter(|v| !v.is_empty()).cloned();
    let server = match get(INTERNAL_SERVER).or_else(|| get(SERVER)) {
        Some(uri) => Some(
            Url::parse(&uri)
                .map_err(|e| format!("{INTERNAL_SERVER} / {SERVER}: {uri:?} is not a URL: {e}"))?,
        ),
        None => None,
    };
    let resource = |id_key: &str, secret_key: &str| -> Result<Option<Resource>, String> {
        match (get(id_key), get(secret_key)) {
            (Some(id), Some(secret)) => Ok(Some(Resource {
                id,
                secret_file: secret.into(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!("{id_key} is set but {secret_key} is not")),
            (None, Some(_)) => Err(format!("{secret_key} is set but {id_key} is not")),
        }
    };
    let list = |key: &str| -> Vec<String> {
        get(key)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty() && !u.starts_with("local:"))
            .map(str::to_owned)
            .collect()
    };
    let timeout = match get(TIMEOUT) {
        None => None,
        Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => Some(Duration::from_secs(
            t.parse::<u64>()
                .map_err(|e| format!("{TIMEOUT}: {t:?}: {e}"))?
                .saturating_mul(60),
        )),
        Some(t) => Some(
            humantime::parse_duration(&t)
                .map_err(|e| format!("{TIMEOUT}: {t:?} is not minutes or a duration: {e}"))?,
        ),
    };
    Ok(Properties {
        server,
        jars: resource(JARS_RESOURCE, JARS_SECRET)?,
        files: resource(FILES_RESOURCE, FILES_SECRET)?,
        remote_jars: list(REMOTE_JARS),
        remote_files: list(REMOTE_FILES),
        jars_dir: get(JARS_DIR).map(Into::into),
        files_dir: get(FILES_DIR).map(Into::into),
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forks_properties() -> Result<(), String> {
        let read = read(&format!(
            "{SERVER}=http://rss.example:10000\n\
             {INTERNAL_SERVER}=http://rss.spark.svc:10000\n\
             {JARS_RESOURCE}=j1\n{JARS_SECRET}={SECRETS_DIR}/downloadJarsSecret\n\
             {REMOTE_JARS}=hdfs://nn/a.jar,local:///opt/b.jar, https://h/c.jar\n\
             {REMOTE_FILES}=\n{JARS_DIR}=/var/spark-data/spark-jars\n{TIMEOUT}=7\n"
        ))?;
        assert_eq!(
            read.server.map(String::from).as_deref(),
            Some("http://rss.spark.svc:10000/")
        );
        assert_eq!(
            read.jars,
            Some(Resource {
                id: "j1".into(),
                secret_file: format!("{SECRETS_DIR}/downloadJarsSecret").into()
            })
        );
        assert_eq!(read.files, None);
        assert_eq!(read.remote_jars, ["hdfs://nn/a.jar", "https://h/c.jar"]);
        assert!(read.remote_files.is_empty());
        assert_eq!(read.jars_dir, Some("/var/spark-data/spark-jars".into()));
        assert_eq!(read.files_dir, None);
        assert_eq!(read.timeout, Some(Duration::from_secs(420)));
        assert_eq!(
            super::read(&format!("{TIMEOUT}=90s"))?.timeout,
            Some(Duration::from_secs(90))
        );
        let error = super::read(&format!("{FILES_RESOURCE}=f")).expect_err("no secret");
        assert!(error.contains(FILES_SECRET), "{error}");
        Ok(())
    }
}
