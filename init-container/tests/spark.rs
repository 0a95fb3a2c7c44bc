//! Real Spark end to end: a tiny Java Spark job is compiled into a jar, staged on the real
//! `sparkstage-server` with a data file, fetched by `sparkstage-init` into temporary directories,
//! and run by `spark-submit --master local[2]` from the `pyspark` wheel (installed by
//! `scripts/test-deps.sh`), which must print the right counts.

use std::time::Instant;

use anyhow::{Result, ensure};
use sparkstage_tests::server::Server;
use sparkstage_tests::spark::{
    MAIN_CLASS, build_job_jar, data_file, run_spark, spark_command, spark_jars, spark_submit,
};

mod common;
use common::{Dirs, init, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_submit_runs_a_job_with_the_jar_and_file_sparkstage_init_fetched() -> Result<()> {
    let spark_submit = spark_submit()?;
    let jars = spark_jars(&spark_submit)?;
    let work = tempfile::Builder::new()
        .prefix("sparkstage-spark-")
        .tempdir()?;
    let job_jar = build_job_jar(&work.path().join("build"), &jars)?;
    let (data, lines, words) = data_file();

    let server = Server::start(&["--storage", "memory://"], &[]).await?;
    let (id, token) = server
        .stage(&[
            ("wordcount.jar", "jar", &job_jar),
            ("words.txt", "file", &data),
        ])
        .await?;
    let dirs = Dirs::new()?;
    let output = init(&dirs.bundle_args(&server.url(), &id, &token)?, &[]).await?;
    ensure!(
        output.status.success(),
        "sparkstage-init failed: {}",
        stderr(&output)
    );
    let (jars_dir, files_dir) = (&dirs.jars, &dirs.files);
    let fetched_jar = jars_dir.join("wordcount.jar");
    let fetched_data = files_dir.join("words.txt");
    assert_eq!(std::fs::read(&fetched_jar)?, job_jar);
    assert_eq!(std::fs::read(&fetched_data)?, data);

    let started = Instant::now();
    let mut command = spark_command(&spark_submit, work.path())?;
    command
        .arg("--master")
        .arg("local[2]")
        .arg("--class")
        .arg(MAIN_CLASS)
        .arg("--jars")
        .arg(&fetched_jar)
        .arg("--files")
        .arg(&fetched_data)
        .arg(&fetched_jar)
        // `--files` puts the file into SparkFiles; the job reads it where the init container
        // wrote it, as a pod would with `local://` paths.
        .arg(&fetched_data);
    let stdout = run_spark(command).await?;
    let expected = format!("SPARKSTAGE_WORDCOUNT lines={lines} words={words}");
    ensure!(
        stdout.lines().any(|l| l.trim() == expected),
        "expected `{expected}` in spark-submit's output\nstdout:\n{stdout}"
    );
    eprintln!(
        "spark-submit ran the job in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
