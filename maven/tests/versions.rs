//! Version ordering against the real implementations: every pair of a list of tricky versions is
//! compared by Maven Resolver's `GenericVersionScheme` (Debian's `maven-resolver-util`, the
//! resolver of Debian's `mvn`) and by Ivy's `LatestRevisionStrategy` (the Ivy jar of the
//! `pyspark` wheel, what `spark-submit --packages` runs), through a small Java program compiled by
//! the test, and by this crate; the signs must agree.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use sparkstage_maven::version::{MavenVersion, ivy_compare};
use sparkstage_tests::spark::{spark_jars, spark_submit};

const VERSIONS: &[&str] = &[
    "1",
    "1.0",
    "1.0.0",
    "1.0.0.0",
    "1-0",
    "1_0",
    "1.0-final",
    "1.1-final",
    "1.1",
    "1.1.1",
    "1.0-sp1",
    "1.0-sp",
    "1.0-SP1",
    "1.0-rc1",
    "1.0-RC2",
    "1.0-cr1",
    "1.0-SNAPSHOT",
    "1.0-snapshot",
    "1.0-alpha",
    "1.0-alpha-1",
    "1.0a1",
    "1.0-a1",
    "1.0-beta2",
    "1.0b2",
    "1.0-m3",
    "1.0-milestone-3",
    "1.0-ga",
    "1.0-release",
    "1.0-dev",
    "1.0-foo",
    "1.0-bar",
    "1.0.foo",
    "1.0foo",
    "1.9",
    "1.10",
    "1.01",
    "2.0.0-M1",
    "2.0",
    "2.0-jre",
    "2.0-android",
    "32.1.3-jre",
    "32.1.3-android",
    "3.0-1",
    "3.0.1",
    "1.2.3.Final",
    "1.2.3.GA",
    "1.2.3-20230101",
    "1.0-min",
    "1.0-max",
    "12345678901",
    "12345678901.1",
    "0.9",
    "0",
    "",
    "1.0+build",
    "1.0-dev1",
    "1.0-rc",
    "1.0-final2",
];

const HARNESS: &str = r#"
import org.apache.ivy.plugins.latest.ArtifactInfo;
import org.apache.ivy.plugins.latest.LatestRevisionStrategy;
import org.eclipse.aether.util.version.GenericVersionScheme;

public final class VersionOrder {
    static ArtifactInfo info(final String revision) {
        return new ArtifactInfo() {
            public String getRevision() { return revision; }
            public long getLastModified() { return 0; }
        };
    }

    public static void main(String[] args) throws Exception {
        GenericVersionScheme maven = new GenericVersionScheme();
        LatestRevisionStrategy ivy = new LatestRevisionStrategy();
        for (String a : args) {
            StringBuilder m = new StringBuilder("maven");
            StringBuilder i = new StringBuilder("ivy");
            for (String b : args) {
                m.append(' ').append(Integer.signum(maven.parseVersion(a).compareTo(maven.parseVersion(b))));
                i.append(' ').append(Integer.signum(ivy.getComparator().compare(info(a), info(b))));
            }
            System.out.println(m);
            System.out.println(i);
        }
    }
}
"#;

fn maven_jars() -> Result<Vec<PathBuf>> {
    let lib = Path::new("/usr/share/maven/lib");
    let jars: Vec<PathBuf> = ["maven-resolver-api.jar", "maven-resolver-util.jar"]
        .iter()
        .map(|j| lib.join(j))
        .collect();
    for jar in &jars {
        ensure!(
            jar.exists(),
            "{} is missing: install Debian's maven (scripts/test-deps.sh does)",
            jar.display()
        );
    }
    Ok(jars)
}

fn ivy_jar() -> Result<PathBuf> {
    let jars = spark_jars(&spark_submit()?)?;
    std::fs::read_dir(&jars)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ivy-") && n.ends_with(".jar"))
        })
        .context("no ivy jar in the pyspark wheel")
}

fn sign(o: Ordering) -> i32 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

#[test]
fn orders_agree_with_maven_resolver_and_ivy() -> Result<()> {
    let work = tempfile::tempdir()?;
    let mut classpath = maven_jars()?;
    classpath.push(ivy_jar()?);
    let cp = std::env::join_paths(&classpath)?;
    let source = work.path().join("VersionOrder.java");
    std::fs::write(&source, HARNESS)?;
    let javac = Command::new("javac")
        .arg("-nowarn")
        .arg("-cp")
        .arg(&cp)
        .arg("-d")
        .arg(work.path())
        .arg(&source)
        .output()?;
    ensure!(
        javac.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let mut run_cp = std::ffi::OsString::from(work.path());
    run_cp.push(":");
    run_cp.push(&cp);
    let output = Command::new("java")
        .arg("-cp")
        .arg(run_cp)
        .arg("VersionOrder")
        .args(VERSIONS)
        .output()?;
    ensure!(
        output.status.success(),
        "java: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    // Ivy announces its settings on stdout; the answers are the `maven`/`ivy` lines.
    let mut lines = text
        .lines()
        .filter(|l| l.starts_with("maven ") || l.starts_with("ivy "));
    let mut mismatches = Vec::new();
    for a in VERSIONS {
        for (scheme, line) in [("maven", lines.next()), ("ivy", lines.next())] {
            let line = line.context("short output")?;
            let signs: Vec<i32> = line
                .split_whitespace()
                .skip(1)
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            for (b, expected) in VERSIONS.iter().zip(signs) {
                let ours = match scheme {
                    "maven" => sign(MavenVersion::parse(a).cmp(&MavenVersion::parse(b))),
                    _ => sign(ivy_compare(a, b)),
                };
                if ours != expected {
                    mismatches.push(format!(
                        "{scheme}: {a:?} vs {b:?}: real {expected}, ours {ours}"
                    ));
                }
            }
        }
    }
    ensure!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    Ok(())
}
