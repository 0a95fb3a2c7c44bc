//! spark-submit's command line, parsed the way Spark's launcher parses it
//! (`org.apache.spark.launcher.SparkSubmitOptionParser` and `SparkSubmitArguments`), so that the
//! dependency options can be rewritten while every other argument passes through unchanged and in
//! order.
//!
//! The rules, as Spark applies them:
//! - an option that takes a value takes the next argument, or the part after `=` when written
//!   `--opt=value` (a value after `=` must not be empty);
//! - a switch takes none;
//! - the first argument that is neither is the primary resource (an argument starting with `-`
//!   there is an error), and every argument after it belongs to the application, untouched.
//!
//! [`OPTIONS`] is the complete list of spark-submit 4.x; a test checks it against the launcher of
//! the real `spark-submit` from the `pyspark` wheel.

use std::fmt;

/// One option of spark-submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub takes_value: bool,
}

const fn opt(name: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        alias: None,
        takes_value: true,
    }
}

const fn switch(name: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        alias: None,
        takes_value: false,
    }
}

/// Every option of spark-submit (Spark 4.x), with or without a value.
pub const OPTIONS: &[OptionSpec] = &[
    opt("--archives"),
    opt("--class"),
    OptionSpec {
        alias: Some("-c"),
        ..opt("--conf")
    },
    opt("--deploy-mode"),
    opt("--driver-class-path"),
    opt("--driver-cores"),
    opt("--driver-default-class-path"),
    opt("--driver-java-options"),
    opt("--driver-library-path"),
    opt("--driver-memory"),
    opt("--executor-cores"),
    opt("--executor-memory"),
    opt("--files"),
    opt("--jars"),
    opt("--keytab"),
    opt("--kill"),
    opt("--master"),
    opt("--remote"),
    opt("--name"),
    opt("--num-executors"),
    opt("--packages"),
    opt("--exclude-packages"),
    opt("--principal"),
    opt("--properties-file"),
    opt("--extra-properties-file"),
    opt("--proxy-user"),
    opt("--py-files"),
    opt("--queue"),
    opt("--repositories"),
    opt("--status"),
    opt("--total-executor-cores"),
    OptionSpec {
        alias: Some("-h"),
        ..switch("--help")
    },
    switch("--supervise"),
    switch("--usage-error"),
    OptionSpec {
        alias: Some("-v"),
        ..switch("--verbose")
    },
    switch("--version"),
    switch("--load-spark-defaults"),
];

fn find(written: &str) -> Option<&'static OptionSpec> {
    OPTIONS
        .iter()
        .find(|o| o.name == written || o.alias == Some(written))
}

/// One argument of the command line, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An option with its value. `written` is the option as the user wrote it (`-c` or
    /// `--conf`); `joined` when written `--opt=value` in one argument.
    Option {
        name: &'static str,
        written: String,
        value: String,
        joined: bool,
    },
    Switch {
        name: &'static str,
        written: String,
    },
    /// The application: a jar, a `.py` or `.R` file, or one of Spark's internal names.
    Primary(String),
    /// An argument of the application.
    AppArg(String),
}

/// A spark-submit command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitArgs {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    MissingValue(String),
    UnknownOption(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingValue(o) => write!(f, "spark-submit option {o} needs a value"),
            Self::UnknownOption(o) => write!(
                f,
                "{o:?} is not a spark-submit option (spark-submit would refuse it too)"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

impl SubmitArgs {
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, ParseError> {
        let mut out = Vec::with_capacity(args.len());
        let mut rest = args.iter().map(AsRef::as_ref);
        while let Some(arg) = rest.next() {
            // Spark's pattern `(--[^=]+)=(.+)`: only long options, with a non-empty value.
            let (key, joined) = match arg.split_once('=') {
                Some((k, v)) if k.starts_with("--") && k.len() > 2 && !v.is_empty() => (k, Some(v)),
                _ => (arg, None),
            };
            match find(key) {
                Some(spec) if spec.takes_value => {
                    let value = match joined {
                        Some(v) => v.to_owned(),
                        None => rest
                            .next()
                            .ok_or_else(|| ParseError::MissingValue(key.to_owned()))?
                            .to_owned(),
                    };
                    out.push(Arg::Option {
                        name: spec.name,
                        written: key.to_owned(),
                        value,
                        joined: joined.is_some(),
                    });
                }
                Some(spec) => out.push(Arg::Switch {
                    name: spec.name,
                    written: arg.to_owned(),
                }),
                None if arg.starts_with('-') => {
                    return Err(ParseError::UnknownOption(arg.to_owned()));
                }
                None => {
                    out.push(Arg::Primary(arg.to_owned()));
                    out.extend(rest.map(|a| Arg::AppArg(a.to_owned())));
                    break;
                }
            }
        }
        Ok(Self { args: out })
    }

    /// The command line again, each argument as written except the values that were changed.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.args.len() * 2);
        for arg in &self.args {
            match arg {
                Arg::Option {
                    written,
                    value,
                    joined: true,
                    ..
                } => out.push(format!("{written}={value}")),
                Arg::Option { written, value, .. } => {
                    out.push(written.clone());
                    out.push(value.clone());
                }
                Arg::Switch { written, .. } => out.push(written.clone()),
                Arg::Primary(a) | Arg::AppArg(a) => out.push(a.clone()),
            }
        }
        out
    }

    /// The value of the last occurrence of option `name` (spark-submit keeps the last).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.args.iter().rev().find_map(|a| match a {
            Arg::Option { name: n, value, .. } if *n == name => Some(value.as_str()),
            _ => None,
        })
    }

    /// Whether switch `name` (`--verbose`, `--load-spark-defaults`, ...) is given.
    pub fn has_switch(&self, name: &str) -> bool {
        self.args
            .iter()
            .any(|a| matches!(a, Arg::Switch { name: n, .. } if *n == name))
    }

    /// The index of the last occurrence of option `name`, whose value spark-submit uses.
    pub fn last_index(&self, name: &str) -> Option<usize> {
        self.args
            .iter()
            .rposition(|a| matches!(a, Arg::Option { name: n, .. } if *n == name))
    }

    /// The `--conf key=value` pairs in order (`-c` too); a value without `=` is skipped, as
    /// spark-submit refuses it.
    pub fn confs(&self) -> impl Iterator<Item = (usize, &str, &str)> {
        self.args.iter().enumerate().filter_map(|(i, a)| match a {
            Arg::Option {
                name: "--conf",
                value,
                ..
            } => value.split_once('=').map(|(k, v)| (i, k, v)),
            _ => None,
        })
    }

    /// The value the last `--conf key=...` gives `key`.
    pub fn conf(&self, key: &str) -> Option<&str> {
        self.confs()
            .filter(|(_, k, _)| *k == key)
            .last()
            .map(|(_, _, v)| v)
    }

    /// `key` as Spark sees it: the last `--conf`, else the properties file.
    pub fn effective_conf(
        &self,
        key: &str,
        properties: &std::collections::BTreeMap<String, String>,
    ) -> Option<String> {
        self.conf(key)
            .map(str::to_owned)
            .or_else(|| properties.get(key).cloned())
    }

    /// The index of the `--conf key=...` that sets `key`, the last one.
    pub fn conf_index(&self, key: &str) -> Option<usize> {
        self.confs()
            .filter(|(_, k, _)| *k == key)
            .last()
            .map(|(i, _, _)| i)
    }

    /// Replaces the value of the option at `index`.
    pub fn set_value(&mut self, index: usize, new: String) {
        if let Some(Arg::Option { value, .. }) = self.args.get_mut(index) {
            *value = new;
        }
    }

    /// Inserts `--conf key=value` before the primary resource (or at the end).
    pub fn add_conf(&mut self, key: &str, value: &str) {
        let at = self
            .args
            .iter()
            .position(|a| matches!(a, Arg::Primary(_)))
            .unwrap_or(self.args.len());
        self.args.insert(
            at,
            Arg::Option {
                name: "--conf",
                written: "--conf".into(),
                value: format!("{key}={value}"),
                joined: false,
            },
        );
    }

    /// Removes every occurrence of option `name`.
    pub fn remove_option(&mut self, name: &str) {
        self.args
            .retain(|a| !matches!(a, Arg::Option { name: n, .. } if *n == name));
    }

    /// Removes every `--conf key=...`.
    pub fn remove_conf(&mut self, key: &str) {
        self.args.retain(|a| match a {
            Arg::Option {
                name: "--conf",
                value,
                ..
            } => value.split_once('=').is_none_or(|(k, _)| k != key),
            _ => true,
        });
    }

    pub fn primary(&self) -> Option<&str> {
        self.args.iter().find_map(|a| match a {
            Arg::Primary(p) => Some(p.as_str()),
            _ => None,
        })
    }

    pub fn set_primary(&mut self, new: String) {
        for arg in &mut self.args {
            if let Arg::Primary(p) = arg {
                *p = new;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> SubmitArgs {
        SubmitArgs::parse(args).expect("parses")
    }

    #[test]
    fn options_switches_primary_and_app_args() {
        let a = parse(&[
            "--master",
            "k8s://https://k:6443",
            "-v",
            "--jars=a.jar,b.jar",
            "-c",
            "spark.x=a=b",
            "--class",
            "Main",
            "app.jar",
            "--jars",
            "not-ours",
            "-v",
        ]);
        assert_eq!(a.value("--jars"), Some("a.jar,b.jar"));
        assert_eq!(a.primary(), Some("app.jar"));
        assert_eq!(
            a.confs().map(|(_, k, v)| (k, v)).collect::<Vec<_>>(),
            [("spark.x", "a=b")]
        );
        assert!(matches!(&a.args[6], Arg::AppArg(s) if s == "--jars"));
        assert_eq!(
            a.to_args(),
            [
                "--master",
                "k8s://https://k:6443",
                "-v",
                "--jars=a.jar,b.jar",
                "-c",
                "spark.x=a=b",
                "--class",
                "Main",
                "app.jar",
                "--jars",
                "not-ours",
                "-v"
            ]
        );
    }

    #[test]
    fn errors_and_edge_forms() {
        assert_eq!(
            SubmitArgs::parse(&["--jars"]),
            Err(ParseError::MissingValue("--jars".into()))
        );
        assert_eq!(
            SubmitArgs::parse(&["--bogus", "x"]),
            Err(ParseError::UnknownOption("--bogus".into()))
        );
        // `--jars=` has no value after `=`: Spark does not split it, and refuses it.
        assert!(SubmitArgs::parse(&["--jars=", "x.jar"]).is_err());
        // A switch written with `=value` is the switch.
        let a = parse(&["--verbose=true", "app.py"]);
        assert!(matches!(
            &a.args[0],
            Arg::Switch {
                name: "--verbose",
                ..
            }
        ));
        // No primary resource (spark-submit --version, --kill ID).
        assert_eq!(parse(&["--kill", "ns:driver"]).primary(), None);
    }

    #[test]
    fn last_value_wins_and_confs_are_added_before_the_primary() {
        let mut a = parse(&["--files", "a", "--files", "b", "app.py", "x"]);
        assert_eq!(a.value("--files"), Some("b"));
        assert_eq!(a.last_index("--files"), Some(1));
        a.set_value(1, "c".into());
        a.add_conf("spark.k", "v");
        assert_eq!(
            a.to_args(),
            [
                "--files",
                "a",
                "--files",
                "c",
                "--conf",
                "spark.k=v",
                "app.py",
                "x"
            ]
        );
    }
}
