//! The real `spark-submit` of the `pyspark` wheel that `scripts/test-deps.sh` installs into
//! `.tools/venv`.

use std::path::{Path, PathBuf};

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
