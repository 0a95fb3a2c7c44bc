//! Maven coordinates as `--packages` and `sparkstage resolve` take them, and exclusions as
//! `--exclude-packages` takes them.
//!
//! A coordinate is `group:artifact:version` (the only form spark-submit accepts) or Maven's
//! `group:artifact:extension:version` and `group:artifact:extension:classifier:version`.

use std::fmt;
use std::str::FromStr;

/// One artifact: its module, version, and which file of the module (extension, classifier).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Coordinate {
    pub group: String,
    pub artifact: String,
    pub version: String,
    pub extension: String,
    pub classifier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a Maven coordinate: {why}; write group:artifact:version or group:artifact:extension[:classifier]:version"
)]
pub struct CoordinateError {
    pub input: String,
    pub why: &'static str,
}

/// Group and artifact ids: Maven's `[A-Za-z0-9_\-.]+`.
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A version or classifier: no separators, no path characters, no white space.
fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ':' | '/' | '\\' | ','))
        && s != "."
        && s != ".."
}

impl FromStr for Coordinate {
    type Err = CoordinateError;

    fn from_str(input: &str) -> Result<Self, CoordinateError> {
        let error = |why| CoordinateError {
            input: input.to_owned(),
            why,
        };
        let parts: Vec<&str> = input.trim().split(':').collect();
        let (group, artifact, extension, classifier, version) = match parts.as_slice() {
            [g, a, v] => (*g, *a, "jar", None, *v),
            [g, a, e, v] => (*g, *a, *e, None, *v),
            [g, a, e, c, v] => (*g, *a, *e, Some(*c), *v),
            _ => return Err(error("it has not 3, 4 or 5 parts separated by ':'")),
        };
        if !valid_id(group) || !valid_id(artifact) {
            return Err(error(
                "the group or artifact id is empty or has characters Maven does not allow",
            ));
        }
        if !valid_part(version)
            || !valid_part(extension)
            || classifier.is_some_and(|c| !valid_part(c))
        {
            return Err(error(
                "the version, extension or classifier is empty or has ':', '/', ',' or white space",
            ));
        }
        Ok(Self {
            group: group.to_owned(),
            artifact: artifact.to_owned(),
            version: version.to_owned(),
            extension: extension.to_owned(),
            classifier: classifier.map(str::to_owned),
        })
    }
}

impl Coordinate {
    /// The artifact's path in a Maven repository layout:
    /// `group/as/dirs/artifact/version/artifact-version[-classifier].extension`.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.group.replace('.', "/"),
            self.artifact,
            self.version,
            self.file_name()
        )
    }

    pub fn file_name(&self) -> String {
        match &self.classifier {
            Some(c) => format!("{}-{}-{c}.{}", self.artifact, self.version, self.extension),
            None => format!("{}-{}.{}", self.artifact, self.version, self.extension),
        }
    }

    /// The name Spark gives the file in its Ivy directory and on the class path
    /// (`[organisation]_[artifact]-[revision](-[classifier]).[ext]`).
    pub fn spark_file_name(&self) -> String {
        format!("{}_{}", self.group, self.file_name())
    }

    /// The same module and version's POM.
    pub fn pom(&self) -> Self {
        Self {
            extension: "pom".to_owned(),
            classifier: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Coordinate {
    /// `group:artifact:version`, with `:classifier` when there is one (as `sparkstage resolve`
    /// prints), and the extension when it is not `jar`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.group, self.artifact, self.version)?;
        if let Some(c) = &self.classifier {
            write!(f, ":{c}")?;
        }
        if self.extension != "jar" {
            write!(f, "@{}", self.extension)?;
        }
        Ok(())
    }
}

/// Parses a comma-separated list, as `--packages` gives it; empty entries are skipped.
pub fn parse_list(list: &str) -> Result<Vec<Coordinate>, CoordinateError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// `group:artifact`, either part `*` for any (as in a POM's `<exclusion>` and
/// `--exclude-packages`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Exclusion {
    pub group: String,
    pub artifact: String,
}

impl Exclusion {
    pub fn matches(&self, group: &str, artifact: &str) -> bool {
        glob(&self.group, group) && glob(&self.artifact, artifact)
    }
}

/// `*` matches anything, a `*` inside a pattern any run of characters (Spark's built-in
/// exclusions use `spark-core_*`).
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, rest)) => {
            if !value.starts_with(prefix) {
                return false;
            }
            let value = &value[prefix.len()..];
            if rest.is_empty() {
                return true;
            }
            (0..=value.len()).any(|i| value.is_char_boundary(i) && glob(rest, &value[i..]))
        }
    }
}

impl FromStr for Exclusion {
    type Err = CoordinateError;

    fn from_str(input: &str) -> Result<Self, CoordinateError> {
        match input.trim().split(':').collect::<Vec<_>>().as_slice() {
            [g, a] if !g.is_empty() && !a.is_empty() => Ok(Self {
                group: (*g).to_owned(),
                artifact: (*a).to_owned(),
            }),
            _ => Err(CoordinateError {
                input: input.to_owned(),
                why: "an exclusion is group:artifact",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_paths() {
        let c: Coordinate = "org.apache.hadoop:hadoop-aws:3.4.1".parse().expect("gav");
        assert_eq!(
            c.path(),
            "org/apache/hadoop/hadoop-aws/3.4.1/hadoop-aws-3.4.1.jar"
        );
        assert_eq!(c.to_string(), "org.apache.hadoop:hadoop-aws:3.4.1");
        let c: Coordinate = "io.netty:netty-transport-native-epoll:jar:linux-x86_64:4.1.100.Final"
            .parse()
            .expect("classified");
        assert_eq!(
            c.file_name(),
            "netty-transport-native-epoll-4.1.100.Final-linux-x86_64.jar"
        );
        assert_eq!(
            c.to_string(),
            "io.netty:netty-transport-native-epoll:4.1.100.Final:linux-x86_64"
        );
        let c: Coordinate = "g:a:pom:1".parse().expect("extension");
        assert_eq!(c.path(), "g/a/1/a-1.pom");
        for bad in [
            "g:a",
            "g:a:b:c:d:e",
            ":a:1",
            "g:a:",
            "g:a:1/../x",
            "g a:b:1",
            "g:a:1 2",
        ] {
            assert!(bad.parse::<Coordinate>().is_err(), "{bad}");
        }
        assert_eq!(parse_list(" a:b:1, ,c:d:2").expect("list").len(), 2);
    }

    #[test]
    fn exclusions_match_with_wildcards() {
        let e: Exclusion = "org.apache.spark:spark-core_*".parse().expect("exclusion");
        assert!(e.matches("org.apache.spark", "spark-core_2.13"));
        assert!(!e.matches("org.apache.spark", "spark-avro_2.13"));
        let any: Exclusion = "*:*".parse().expect("any");
        assert!(any.matches("x", "y"));
        let scala: Exclusion = "*:scala-library".parse().expect("scala");
        assert!(scala.matches("org.scala-lang", "scala-library"));
        assert!(!scala.matches("org.scala-lang", "scala-reflect"));
        assert!("a".parse::<Exclusion>().is_err());
    }
}
