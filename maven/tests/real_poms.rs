//! Every POM Debian installs under /usr/share/maven-repo (real POMs of the Java libraries Debian
//! packages; `maven` alone brings about 190) is read without error, and what it declares is found.

use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use sparkstage_maven::pom::Pom;

fn poms(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            poms(&path, out);
        } else if path.extension().is_some_and(|e| e == "pom") {
            out.push(path);
        }
    }
}

#[test]
fn debians_poms_parse() -> Result<()> {
    let mut files = Vec::new();
    poms(Path::new("/usr/share/maven-repo"), &mut files);
    ensure!(
        files.len() >= 100,
        "only {} POMs under /usr/share/maven-repo: install Debian's maven (scripts/test-deps.sh)",
        files.len()
    );
    let mut failures = Vec::new();
    let mut with_dependencies = 0;
    for file in &files {
        let bytes = std::fs::read(file)?;
        match Pom::parse(&String::from_utf8_lossy(&bytes)) {
            Ok(pom) => {
                // Every POM names its artifact; a group or version may come from the parent.
                if pom.artifact.is_none() {
                    failures.push(format!("{}: no artifactId", file.display()));
                }
                if pom.group.is_none() && pom.parent.is_none() {
                    failures.push(format!("{}: no groupId and no parent", file.display()));
                }
                if !pom.dependencies.is_empty() {
                    with_dependencies += 1;
                }
            }
            Err(e) => failures.push(format!("{}: {e}", file.display())),
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    ensure!(
        with_dependencies >= 20,
        "only {with_dependencies} POMs with dependencies"
    );
    Ok(())
}
