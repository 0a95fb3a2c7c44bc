//! End to end as a pod of the 2017 fork ran it: the fork's client uploads the jars and the files
//! of a submission through API v0 (two flat tar.gz, multipart), the pod has the fork's
//! `spark-init.properties` and its secrets directory, `sparkstage-init --fork-properties` fetches
//! and unpacks both resources and the remote file the properties name, and the real
//! `spark-submit --master local[2]` runs the job on what was unpacked. A second run downloads
//! nothing; a resource whose archive is hostile is refused and leaves nothing.

use anyhow::{Result, ensure};
use sparkstage_injection::fork::{
    FILES_DIR, FILES_RESOURCE, FILES_SECRET, INTERNAL_SERVER, JARS_DIR, JARS_RESOURCE, JARS_SECRET,
    REMOTE_FILES, SERVER, TIMEOUT,
};
use sparkstage_tests::fork::{archive, upload};
use sparkstage_tests::maven_repo::MavenRepo;
use sparkstage_tests::server::Server;
use sparkstage_tests::spark::{
    MAIN_CLASS, build_job_jar, data_file, run_spark, spark_command, spark_jars, spark_submit,
};

mod common;
use common::{init, listing, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_pod_unpacks_its_resources_and_spark_runs_the_job() -> Result<()> {
    let spark = spark_submit()?;
    let work = tempfile::Builder::new()
        .prefix("sparkstage-fork-")
        .tempdir()?;
    let job_jar = build_job_jar(&work.path().join("build"), &spark_jars(&spark)?)?;
    let (data, lines, words) = data_file();
    let server = Server::start(&["--storage", "memory://"], &[]).await?;

    // What the fork's submission client uploaded: jars and files, one archive each.
    let jars = upload(&server.url(), archive(&[("wordcount.jar", &job_jar)])?).await?;
    let files = upload(
        &server.url(),
        archive(&[("words.txt", &data), ("notes.txt", b"notes")])?,
    )
    .await?;
    // A remote file, from an HTTP origin; the fork put remote files in the files directory.
    let origin_root = work.path().join("origin");
    std::fs::create_dir_all(&origin_root)?;
    std::fs::write(origin_root.join("extra.jar"), b"not a jar, a file")?;
    let origin = MavenRepo::serve(&origin_root, Default::default()).await?;

    // The pod: the ConfigMap and the secrets directory as the fork mounted them.
    let pod = work.path().join("pod");
    let secrets = pod.join("mnt/secrets/spark-init");
    std::fs::create_dir_all(&secrets)?;
    std::fs::write(secrets.join("downloadJarsSecret"), &jars.resource_secret)?;
    std::fs::write(secrets.join("downloadFilesSecret"), &files.resource_secret)?;
    let (jars_dir, files_dir) = (
        pod.join("var/spark-data/spark-jars"),
        pod.join("var/spark-data/spark-files"),
    );
    let properties = pod.join("spark-init.properties");
    std::fs::write(
        &properties,
        format!(
            "{SERVER}=http://unreachable.example:10000\n\
             {INTERNAL_SERVER}={}\n\
             {JARS_RESOURCE}={}\n{JARS_SECRET}={}\n\
             {FILES_RESOURCE}={}\n{FILES_SECRET}={}\n\
             {REMOTE_FILES}={}/extra.jar\n\
             {JARS_DIR}={}\n{FILES_DIR}={}\n{TIMEOUT}=2\n",
            server.url(),
            jars.resource_id,
            secrets.join("downloadJarsSecret").display(),
            files.resource_id,
            secrets.join("downloadFilesSecret").display(),
            origin.url.trim_end_matches('/'),
            jars_dir.display(),
            files_dir.display(),
        ),
    )?;
    let args = [
        "--fork-properties".to_owned(),
        properties.display().to_string(),
    ];
    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    ensure!(std::fs::read(jars_dir.join("wordcount.jar"))? == job_jar);
    ensure!(std::fs::read(files_dir.join("words.txt"))? == data);
    ensure!(std::fs::read(files_dir.join("notes.txt"))? == b"notes");
    ensure!(std::fs::read(files_dir.join("extra.jar"))? == b"not a jar, a file");
    // Nothing but the files and the state: the archives are gone.
    ensure!(
        listing(&jars_dir) == [".sparkstage-verified.json", "wordcount.jar"],
        "{:?}",
        listing(&jars_dir)
    );

    // The job, on what was unpacked.
    let mut command = spark_command(&spark, work.path())?;
    command
        .args(["--master", "local[2]", "--class", MAIN_CLASS])
        .arg(jars_dir.join("wordcount.jar"))
        .arg(files_dir.join("words.txt"));
    let out = run_spark(command).await?;
    let expected = format!("SPARKSTAGE_WORDCOUNT lines={lines} words={words}");
    ensure!(
        out.lines().any(|l| l.trim() == expected),
        "expected {expected}:\n{out}"
    );

    // A restarted pod downloads nothing again.
    let sent = server.bytes_sent().await?;
    let output = init(&args, &[]).await?;
    ensure!(output.status.success(), "{}", stderr(&output));
    ensure!(
        server.bytes_sent().await? == sent,
        "downloaded again: {}",
        stderr(&output)
    );
    ensure!(origin.count("extra.jar") == 1, "{:?}", origin.requests());

    // A resource whose archive is hostile: refused, named, nothing written.
    let hostile = {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        builder.append_link(&mut header, "evil.jar", "/etc/passwd")?;
        builder.into_inner()?.finish()?
    };
    let bad = upload(&server.url(), hostile).await?;
    std::fs::write(secrets.join("downloadJarsSecret"), &bad.resource_secret)?;
    let other_dir = pod.join("other-jars");
    let text = std::fs::read_to_string(&properties)?
        .replace(&jars.resource_id, &bad.resource_id)
        .replace(
            &jars_dir.display().to_string(),
            &other_dir.display().to_string(),
        );
    std::fs::write(&properties, text)?;
    let output = init(&args, &[]).await?;
    ensure!(!output.status.success());
    let message = stderr(&output);
    ensure!(
        message.contains(&bad.resource_id)
            && message.contains("evil.jar")
            && message.contains("link"),
        "{message}"
    );
    ensure!(
        listing(&other_dir)
            .iter()
            .all(|n| n.starts_with(".sparkstage-verified")),
        "{:?}",
        listing(&other_dir)
    );
    Ok(())
}
