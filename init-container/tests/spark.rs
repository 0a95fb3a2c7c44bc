//! Real Spark end to end: a tiny Java Spark job is compiled into a jar, staged on the real
//! `sparkstage-server` with a data file, fetched by `sparkstage-init` into temporary directories,
//! and run by `spark-submit --master local[2]` from the `pyspark` wheel (installed by
//! `scripts/test-deps.sh`), which must print the right counts.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use sparkstage_tests::server::Server;
use sparkstage_tests::spark::{spark_jars, spark_submit};

mod common;
use common::{Dirs, init, stderr};

const MAIN_CLASS: &str = "io.sparkstage.e2e.WordCount";

const WORD_COUNT_JAVA: &str = r#"package io.sparkstage.e2e;

import java.util.Arrays;

import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

public final class WordCount {
    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().appName("sparkstage-wordcount").getOrCreate();
        try {
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            JavaRDD<String> lines = jsc.textFile("file://" + args[0], 2);
            long lineCount = lines.count();
            long wordCount = lines
                .flatMap(line -> Arrays.asList(line.trim().split("\\s+")).iterator())
                .filter(word -> !word.isEmpty())
                .count();
            System.out.println("SPARKSTAGE_WORDCOUNT lines=" + lineCount + " words=" + wordCount);
        } finally {
            spark.stop();
        }
    }
}
"#;

fn run(command: &mut std::process::Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// Compiles [`WORD_COUNT_JAVA`] against Spark's jars and packages it; returns the jar's bytes.
fn build_job_jar(work: &Path, spark_jars: &Path) -> Result<Vec<u8>> {
    let src = work.join("src/io/sparkstage/e2e");
    let classes = work.join("classes");
    std::fs::create_dir_all(&src)?;
    std::fs::create_dir_all(&classes)?;
    let source = src.join("WordCount.java");
    std::fs::write(&source, WORD_COUNT_JAVA)?;
    run(std::process::Command::new("javac")
        .arg("--release")
        .arg("17")
        .arg("-nowarn")
        .arg("-cp")
        .arg(spark_jars.join("*"))
        .arg("-d")
        .arg(&classes)
        .arg(&source))?;
    let jar = work.join("wordcount.jar");
    run(std::process::Command::new("jar")
        .arg("--create")
        .arg("--file")
        .arg(&jar)
        .arg("-C")
        .arg(&classes)
        .arg("."))?;
    Ok(std::fs::read(&jar)?)
}

/// A text file and its (lines, words).
fn data_file() -> (Vec<u8>, usize, usize) {
    let mut text = String::new();
    let mut words = 0;
    let lines = 1237;
    for i in 0..lines {
        let n = i % 5 + 1;
        let line: Vec<String> = (0..n).map(|j| format!("w{}", (i * 7 + j) % 97)).collect();
        text.push_str(&line.join(" "));
        text.push('\n');
        words += n;
    }
    (text.into_bytes(), lines, words)
}

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

    // A cold Spark: its own home (Ivy also reads ~/.m2) and Ivy directory, loopback only.
    let home = work.path().join("home");
    std::fs::create_dir_all(&home)?;
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&spark_submit);
    command
        .arg("--master")
        .arg("local[2]")
        .arg("--class")
        .arg(MAIN_CLASS)
        .arg("--conf")
        .arg("spark.ui.enabled=false")
        .arg("--conf")
        .arg("spark.driver.host=127.0.0.1")
        .arg("--conf")
        .arg(format!(
            "spark.jars.ivy={}",
            work.path().join("ivy").display()
        ))
        .arg("--jars")
        .arg(&fetched_jar)
        .arg("--files")
        .arg(&fetched_data)
        .arg(&fetched_jar)
        // `--files` puts the file into SparkFiles; the job reads it where the init container
        // wrote it, as a pod would with `local://` paths.
        .arg(&fetched_data)
        .current_dir(work.path())
        .env("HOME", &home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        // The wheel's `find-spark-home` imports pyspark with whatever `python3` is first on
        // PATH; name the installation instead.
        .env("SPARK_HOME", jars.parent().context("jars dir")?)
        .env_remove("PYSPARK_PYTHON")
        .env_remove("PYSPARK_DRIVER_PYTHON")
        .env_remove("SPARK_CONF_DIR")
        .env_remove("HADOOP_CONF_DIR")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .context("spark-submit did not finish within 300 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "spark-submit failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let expected = format!("SPARKSTAGE_WORDCOUNT lines={lines} words={words}");
    ensure!(
        stdout.lines().any(|l| l.trim() == expected),
        "expected `{expected}` in spark-submit's output\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!(
        "spark-submit ran the job in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
