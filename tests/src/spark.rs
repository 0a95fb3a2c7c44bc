//! The real `spark-submit` of the `pyspark` wheel that `scripts/test-deps.sh` installs into
//! `.tools/venv`.

use std::path::{Path, PathBuf};

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// The workspace's `.tools` install, or `SPARKSTAGE_TEST_SPARK_SUBMIT`.
pub fn spark_submit() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SPARKSTAGE_TEST_SPARK_SUBMIT") {
        let path = PathBuf::from(path);
        ensure!(
            path.exists(),
            "SPARKSTAGE_TEST_SPARK_SUBMIT={} does not exist; run scripts/test-deps.sh",
            path.display()
        );
        return Ok(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.tools/venv/bin/spark-submit")
        .canonicalize();
    match path {
        Ok(path) => Ok(path),
        Err(_) => bail!(
            "spark-submit not found: set SPARKSTAGE_TEST_SPARK_SUBMIT or run scripts/test-deps.sh \
             (installs pyspark into .tools/venv)"
        ),
    }
}

/// Spark's jars directory of the pyspark installation that `spark_submit` belongs to.
pub fn spark_jars(spark_submit: &Path) -> Result<PathBuf> {
    let python = spark_submit.with_file_name("python");
    let output = std::process::Command::new(&python)
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        output.status.success(),
        "{} cannot import pyspark ({}); run scripts/test-deps.sh",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let jars = PathBuf::from(String::from_utf8(output.stdout)?.trim()).join("jars");
    ensure!(jars.is_dir(), "{} is not a directory", jars.display());
    Ok(jars)
}

/// `SPARK_HOME` for `spark_submit`: the pyspark package directory (pip's `spark-submit` script
/// cannot always find it from `PATH`).
pub fn spark_home(spark_submit: &Path) -> Result<PathBuf> {
    Ok(spark_jars(spark_submit)?
        .parent()
        .context("the jars directory has no parent")?
        .to_path_buf())
}

/// A Java Spark job for end-to-end tests: counts the lines and words of the file named by its
/// first argument and prints `SPARKSTAGE_WORDCOUNT lines=<n> words=<m>`.
pub const MAIN_CLASS: &str = "io.sparkstage.e2e.WordCount";

pub const WORD_COUNT_JAVA: &str = r#"package io.sparkstage.e2e;

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
pub fn build_job_jar(work: &Path, spark_jars: &Path) -> Result<Vec<u8>> {
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

/// A text file for the job and its (lines, words).
pub fn data_file() -> (Vec<u8>, usize, usize) {
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

/// `spark_submit` ready to run a job in `work` as a cold, isolated Spark: its own `HOME` (Ivy
/// also reads `~/.m2`) and Ivy directory, loopback only, no UI, no inherited Spark or Python
/// configuration. Add the job's arguments.
pub fn spark_command(spark_submit: &Path, work: &Path) -> Result<tokio::process::Command> {
    let home = work.join("home");
    std::fs::create_dir_all(&home)?;
    let mut command = tokio::process::Command::new(spark_submit);
    command
        .arg("--conf")
        .arg("spark.ui.enabled=false")
        .arg("--conf")
        .arg("spark.driver.host=127.0.0.1")
        .arg("--conf")
        .arg(format!("spark.jars.ivy={}", work.join("ivy").display()))
        .current_dir(work)
        .env("HOME", &home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        // The wheel's `find-spark-home` imports pyspark with whatever `python3` is first on
        // PATH; name the installation instead.
        .env("SPARK_HOME", spark_home(spark_submit)?)
        .env_remove("PYSPARK_PYTHON")
        .env_remove("PYSPARK_DRIVER_PYTHON")
        .env_remove("SPARK_CONF_DIR")
        .env_remove("HADOOP_CONF_DIR")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    Ok(command)
}

/// Runs a Spark job within 300 s; its stdout, or an error with both outputs.
pub async fn run_spark(mut command: tokio::process::Command) -> Result<String> {
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .context("spark-submit did not finish within 300 s")??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "spark-submit failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}
