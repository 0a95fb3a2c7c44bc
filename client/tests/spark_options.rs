//! The option table of [`sparkstage::submit_args`] against the real `spark-submit` of the
//! `pyspark` wheel: every option its `--help` prints is known, and the table equals the
//! launcher's own (`org.apache.spark.launcher.SparkSubmitOptionParser`, read from the wheel's
//! `spark-launcher` jar with `javap`): the same options, aliases, and which take a value.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use sparkstage::submit_args::OPTIONS;
use sparkstage_tests::spark::{spark_home, spark_submit};

/// (name, alias, takes_value) of every option in the launcher's `opts` and `switches` arrays.
fn launcher_options() -> Result<BTreeSet<(String, Option<String>, bool)>> {
    let home = spark_home(&spark_submit()?)?;
    let launcher = std::fs::read_dir(home.join("jars"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("spark-launcher_"))
        })
        .context("no spark-launcher jar in the pyspark wheel")?;
    let output = Command::new("javap")
        .args(["-c", "-p", "-classpath"])
        .arg(&launcher)
        .arg("org.apache.spark.launcher.SparkSubmitOptionParser")
        .output()
        .context("running javap (it comes with the JDK)")?;
    ensure!(output.status.success(), "javap failed");
    let listing = String::from_utf8(output.stdout)?;
    // The constructor builds `opts` and then `switches`: String[][] literals, one `anewarray
    // java/lang/String` per inner array, its strings loaded with `ldc`.
    let mut found = BTreeSet::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for line in listing.lines() {
        if line.contains("anewarray") && line.contains("class java/lang/String") {
            groups.push(Vec::new());
        } else if let Some((_, s)) = line.split_once("// String ") {
            if let Some(group) = groups.last_mut() {
                group.push(s.trim().to_owned());
            }
        } else if line.contains("putfield") {
            let takes_value = if line.contains("Field opts:") {
                true
            } else if line.contains("Field switches:") {
                false
            } else {
                groups.clear();
                continue;
            };
            for group in groups.drain(..) {
                let mut names = group.into_iter();
                let name = names.next().context("an empty option group")?;
                found.insert((name, names.next(), takes_value));
            }
        }
    }
    ensure!(
        found.len() > 30,
        "read only {} options from javap",
        found.len()
    );
    Ok(found)
}

#[test]
fn the_option_table_is_the_launchers() -> Result<()> {
    let ours: BTreeSet<(String, Option<String>, bool)> = OPTIONS
        .iter()
        .map(|o| (o.name.to_owned(), o.alias.map(str::to_owned), o.takes_value))
        .collect();
    let theirs = launcher_options()?;
    let missing: Vec<_> = theirs.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&theirs).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "missing from OPTIONS: {missing:?}; not in the launcher: {extra:?}"
    );
    Ok(())
}

#[test]
fn every_option_of_spark_submit_help_is_known() -> Result<()> {
    let submit = spark_submit()?;
    let output = Command::new(&submit)
        .arg("--help")
        .env("SPARK_HOME", spark_home(&submit)?)
        .output()?;
    let help = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(help.contains("--properties-file"), "no usage text: {help}");
    let mut listed = BTreeSet::new();
    for line in help.lines() {
        // Option lines: "  --name VALUE   text" and "  --conf, -c PROP=VALUE   text".
        let trimmed = line.trim_start();
        if !trimmed.starts_with('-') {
            continue;
        }
        let head = trimmed.split("  ").next().unwrap_or_default();
        for word in head.split([' ', ',']) {
            if word.starts_with('-') && word.len() > 1 {
                listed.insert(word.to_owned());
            }
        }
    }
    ensure!(listed.len() > 25, "read only {listed:?}");
    let unknown: Vec<_> = listed
        .iter()
        .filter(|w| !OPTIONS.iter().any(|o| o.name == *w || o.alias == Some(w)))
        .collect();
    ensure!(
        unknown.is_empty(),
        "--help lists options we do not know: {unknown:?}"
    );
    Ok(())
}
