//! `--packages` in a submission: the coordinates, repositories and exclusions spark-submit
//! would hand to Ivy (each as an option, a `--conf` or a properties-file entry, in Spark's order
//! of precedence), resolved by the staging server instead; the submission is rewritten so that
//! Spark runs no Ivy at all, in the submitter or in the driver pod.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::submit_args::SubmitArgs;

/// The option and configuration key of each setting.
const PACKAGES: (&str, &str) = ("--packages", "spark.jars.packages");
const REPOSITORIES: (&str, &str) = ("--repositories", "spark.jars.repositories");
const EXCLUDES: (&str, &str) = ("--exclude-packages", "spark.jars.excludes");
const IVY_SETTINGS: &str = "spark.jars.ivySettings";

/// What a submission asks Ivy to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packages {
    pub coordinates: Vec<String>,
    pub repositories: Vec<String>,
    pub excludes: Vec<String>,
}

/// Spark's precedence: the option, else the last `--conf`, else the properties file.
fn setting(
    args: &SubmitArgs,
    properties: &BTreeMap<String, String>,
    (option, key): (&str, &str),
) -> Vec<String> {
    let value = args
        .value(option)
        .map(str::to_owned)
        .or_else(|| args.effective_conf(key, properties))
        .unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The submission's packages; `None` when it has none.
pub fn find(args: &SubmitArgs, properties: &BTreeMap<String, String>) -> Result<Option<Packages>> {
    let coordinates = setting(args, properties, PACKAGES);
    if coordinates.is_empty() {
        return Ok(None);
    }
    if let Some(file) = args.effective_conf(IVY_SETTINGS, properties) {
        bail!(
            "{IVY_SETTINGS} is set ({file}): the staging server resolves --packages and does not \
             read Ivy settings files; give the repositories with --repositories instead"
        );
    }
    Ok(Some(Packages {
        coordinates,
        repositories: setting(args, properties, REPOSITORIES),
        excludes: setting(args, properties, EXCLUDES),
    }))
}

/// Removes the packages settings, so that spark-submit (and the driver pod) run no Ivy; one in
/// the properties file is overridden with an empty `--conf`.
pub fn remove(args: &mut SubmitArgs, properties: &BTreeMap<String, String>) {
    for (option, key) in [PACKAGES, REPOSITORIES, EXCLUDES] {
        args.remove_option(option);
        args.remove_conf(key);
        if properties.contains_key(key) {
            args.add_conf(key, "");
        }
    }
}

/// Appends `uris` to the submission's jars, where spark-submit reads them: `--jars`, else
/// `--conf spark.jars`, else the properties file's `spark.jars` (overridden by a `--conf`).
pub fn add_jars(args: &mut SubmitArgs, properties: &BTreeMap<String, String>, uris: &[String]) {
    if uris.is_empty() {
        return;
    }
    let join = |existing: &str| {
        let mut all: Vec<&str> = existing
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        all.extend(uris.iter().map(String::as_str));
        all.join(",")
    };
    if let Some(index) = args.last_index("--jars") {
        let value = join(args.value("--jars").unwrap_or_default());
        args.set_value(index, value);
    } else if let Some(index) = args.conf_index("spark.jars") {
        let existing = args.conf("spark.jars").unwrap_or_default().to_owned();
        args.set_value(index, format!("spark.jars={}", join(&existing)));
    } else {
        let existing = properties.get("spark.jars").cloned().unwrap_or_default();
        args.add_conf("spark.jars", &join(&existing));
    }
}

/// The resolved jars as entries of the bundle: stored by the server already, nothing to upload.
pub fn bundle_entries(
    artifacts: &[sparkstage_api::resolve::ResolvedArtifact],
) -> Vec<sparkstage_api::bundles::BundleEntry> {
    artifacts
        .iter()
        .map(|a| sparkstage_api::bundles::BundleEntry {
            name: a.file_name.clone(),
            digest: a.digest,
            size: a.size,
            kind: sparkstage_api::bundles::EntryKind::Jar,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> SubmitArgs {
        SubmitArgs::parse(args).expect("parses")
    }

    #[test]
    fn precedence_removal_and_jars() -> Result<()> {
        let properties = BTreeMap::from([
            ("spark.jars.packages".to_owned(), "p:from-file:1".to_owned()),
            ("spark.jars.excludes".to_owned(), "x:y".to_owned()),
            ("spark.jars".to_owned(), "/opt/a.jar".to_owned()),
        ]);
        let mut args = parse(&[
            "--packages",
            "g:a:1, g:b:2",
            "--conf",
            "spark.jars.packages=ignored:c:3",
            "--conf",
            "spark.jars.repositories=https://r.example/m2",
            "app.py",
            "--packages",
        ]);
        let found = find(&args, &properties)?.expect("packages");
        assert_eq!(found.coordinates, ["g:a:1", "g:b:2"]);
        assert_eq!(found.repositories, ["https://r.example/m2"]);
        assert_eq!(found.excludes, ["x:y"]);
        remove(&mut args, &properties);
        add_jars(&mut args, &properties, &["local:///j/g_a-1.jar".to_owned()]);
        assert_eq!(
            args.to_args(),
            [
                "--conf",
                "spark.jars.packages=",
                "--conf",
                "spark.jars.excludes=",
                "--conf",
                "spark.jars=/opt/a.jar,local:///j/g_a-1.jar",
                "app.py",
                "--packages"
            ]
        );
        // The application's own `--packages` argument is the application's.
        assert!(find(&parse(&["app.py", "--packages", "g:a:1"]), &BTreeMap::new())?.is_none());
        let settings = parse(&[
            "--packages",
            "g:a:1",
            "--conf",
            "spark.jars.ivySettings=/x.xml",
        ]);
        assert!(find(&settings, &BTreeMap::new()).is_err());
        Ok(())
    }
}
