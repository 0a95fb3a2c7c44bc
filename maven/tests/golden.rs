//! The resolver against what the real tools resolve: for every case of
//! `maven/fixtures/cases.tsv`, the `spark` mode's jars equal what `spark-submit --packages`
//! (pyspark's Ivy 2.5.3) put on the class path, and the `maven` mode's artifacts equal what
//! `mvn dependency:list` (runtime scope) listed: the golden files `maven/fixtures/golden/` that
//! `scripts/maven-golden.sh` produced with those tools, from the same repositories served the
//! same way (the hand-made fixture repository and Debian's /usr/share/maven-repo, over HTTP on
//! loopback). A failure of the real tool is a failure here too, naming the same modules.
//!
//! Every case runs; the test fails at the end with every difference listed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sparkstage_maven::coords::{Coordinate, Exclusion};
use sparkstage_maven::resolver::{Mode, Resolution, Resolver};
use sparkstage_tests::maven_repo::MavenRepo;

const DEBIAN: &str = "/usr/share/maven-repo";

/// Where we differ from the tools on purpose: both resolve an artifact whose published `.sha256`
/// is wrong (Ivy checks none, Maven 3.8 only `.sha1`/`.md5`, with the default `warn` policy); we
/// refuse it, because a wrong checksum means a corrupt or tampered artifact. These cases must
/// fail with a checksum mismatch.
const CHECKSUM_REFUSED: [&str; 2] = ["checksum-bad-sha256-jar", "checksum-bad-sha256-only-jar"];

/// `java.version` of the JVM the tools ran on (`${java.version}` in a POM reads it).
fn java_version() -> Result<String> {
    let out = std::process::Command::new("java")
        .args(["-XshowSettings:properties", "-version"])
        .output()
        .context("java")?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("java.version = "))
        .map(str::to_owned)
        .context("no java.version in java -XshowSettings:properties")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

struct Case {
    name: String,
    repo: String,
    coordinates: Vec<Coordinate>,
    excludes: Vec<Exclusion>,
}

fn cases() -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(fixtures().join("cases.tsv"))?;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, repo, coordinates, excludes] = cols[..] else {
            bail!("cases.tsv: not 4 columns: {line:?}");
        };
        out.push(Case {
            name: name.to_owned(),
            repo: repo.to_owned(),
            coordinates: sparkstage_maven::coords::parse_list(coordinates)?,
            excludes: if excludes == "-" {
                Vec::new()
            } else {
                excludes
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            },
        });
    }
    Ok(out)
}

/// What a golden file says: the sorted lines, or a failure naming modules (`g:a:v`).
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Lines(Vec<String>),
    Failure(Vec<String>),
}

fn golden(case: &str, mode: Mode) -> Result<Option<Expected>> {
    let path = fixtures().join("golden").join(format!("{case}.{mode}"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.first().map(String::as_str) != Some("error") {
        return Ok(Some(Expected::Lines(lines)));
    }
    // Ivy names a module `g#a;v` (in `download failed: g#a;v!file` or `unresolved dependency:
    // g#a;v: not found`); Maven an artifact `g:a:ext[:c]:v`.
    let modules = lines[1..]
        .iter()
        .map(|l| {
            if let Some(ivy) = l.split(' ').find(|w| w.contains('#') && w.contains(';')) {
                let (ga, rest) = ivy.split_once(';').unwrap_or((ivy, ""));
                let v = rest.split(['!', ':']).next().unwrap_or(rest);
                format!("{}:{v}", ga.replace('#', ":"))
            } else {
                let parts: Vec<&str> = l.split(':').collect();
                format!(
                    "{}:{}:{}",
                    parts[0],
                    parts.get(1).copied().unwrap_or_default(),
                    parts.last().copied().unwrap_or_default()
                )
            }
        })
        .collect();
    Ok(Some(Expected::Failure(modules)))
}

/// Our result in the golden file's terms.
fn lines(resolution: &Resolution, mode: Mode) -> Vec<String> {
    let mut out: Vec<String> = match mode {
        Mode::Spark => resolution
            .artifacts
            .iter()
            .map(|a| a.coordinate.spark_file_name())
            .collect(),
        Mode::Maven => resolution
            .artifacts
            .iter()
            .map(|a| &a.coordinate)
            .chain(&resolution.skipped)
            .map(|c| match &c.classifier {
                Some(k) => format!(
                    "{}:{}:{}:{k}:{}",
                    c.group, c.artifact, c.extension, c.version
                ),
                None => format!("{}:{}:{}:{}", c.group, c.artifact, c.extension, c.version),
            })
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_matches_the_real_tools() -> Result<()> {
    let fixture = MavenRepo::serve(fixtures().join("repo"), Duration::ZERO).await?;
    let debian = MavenRepo::serve(DEBIAN, Duration::ZERO).await?;
    let cache = tempfile::tempdir()?;
    let context = sparkstage_maven::model::Context {
        jdk: java_version()?,
        ..Default::default()
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in cases()? {
        let url = match case.repo.as_str() {
            "fixture" => &fixture.url,
            "debian" => &debian.url,
            other => bail!("{}: unknown repository {other}", case.name),
        };
        for mode in [Mode::Spark, Mode::Maven] {
            let Some(expected) = golden(&case.name, mode)? else {
                failures.push(format!("{} ({mode}): no golden file", case.name));
                continue;
            };
            compared += 1;
            // A cache per case and mode: each resolution sees the repository as the tool did.
            let dir = cache.path().join(format!("{}-{mode}", case.name));
            let resolver = Resolver::new(std::slice::from_ref(url), &dir, false, 16)
                .context("resolver")?
                .with_context(context.clone());
            let got = resolver
                .resolve(&case.coordinates, &case.excludes, mode)
                .await;
            if CHECKSUM_REFUSED.contains(&case.name.as_str()) {
                match got {
                    Err(e) if e.to_string().contains("checksum mismatch") => {}
                    other => failures.push(format!(
                        "{} ({mode}): a wrong .sha256 must be refused; got {other:?}",
                        case.name
                    )),
                }
                continue;
            }
            match (expected, got) {
                (Expected::Lines(want), Ok(resolution)) => {
                    let have = lines(&resolution, mode);
                    if have != want {
                        let missing: Vec<_> = want.iter().filter(|l| !have.contains(l)).collect();
                        let extra: Vec<_> = have.iter().filter(|l| !want.contains(l)).collect();
                        failures.push(format!(
                            "{} ({mode}): missing {missing:?}, extra {extra:?}",
                            case.name
                        ));
                    }
                }
                (Expected::Lines(_), Err(e)) => {
                    failures.push(format!(
                        "{} ({mode}): the tool resolved; we failed: {e}",
                        case.name
                    ));
                }
                (Expected::Failure(modules), Ok(resolution)) => failures.push(format!(
                    "{} ({mode}): the tool failed on {modules:?}; we resolved {:?}",
                    case.name,
                    lines(&resolution, mode)
                )),
                (Expected::Failure(modules), Err(e)) => {
                    let message = e.to_string();
                    for m in modules {
                        if !message.contains(&m) {
                            failures.push(format!(
                                "{} ({mode}): our error does not name {m}: {message}",
                                case.name
                            ));
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{compared} golden files compared, {} differences",
        failures.len()
    );
    if !failures.is_empty() {
        bail!("{} differences:\n{}", failures.len(), failures.join("\n"));
    }
    Ok(())
}
