//! Bounds on what one resolution may cost, whatever a repository sends. A repository is outside
//! input (a request may name one): a POM that never ends, a property that doubles at every
//! level, a parent chain ten thousand deep or a repository that sends one byte a second must end
//! in a clear error, not in an exhausted server.
//!
//! | bound | default | what it stops |
//! | --- | --- | --- |
//! | `max_file_size` | 4 MiB | a POM or `maven-metadata.xml` that never ends or is huge (cut off while streaming) |
//! | `max_value_length` | 64 KiB | one interpolated value (`${p}` nested ten times per level: 10^12 characters) |
//! | `max_model_bytes` | 64 MiB | the effective models of one resolution together, with what child POMs inherit from them (memory) |
//! | `max_modules` | 2,000 | POMs read by one resolution |
//! | `max_artifact_size` | 4 GiB | one jar (streamed to disk, never held) |
//! | `deadline` | 5 min | the whole resolution, downloads included (a trickling repository) |
//!
//! Checksum files are read up to [`CHECKSUM_FILE_MAX`] bytes and must hold a hex digest; the
//! parent chain (with BOM imports) is at most [`MAX_PARENT_DEPTH`] deep. DTD entities are refused
//! outright (Maven's parser does not expand them either).

use std::time::Duration;

/// The most a `.sha256` or `.sha1` file may hold (a digest, a file name and some space).
pub const CHECKSUM_FILE_MAX: u64 = 1024;

/// How deep parents and BOM imports may nest.
pub const MAX_PARENT_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A POM or `maven-metadata.xml`, in bytes.
    pub max_file_size: u64,
    /// One value after `${...}` interpolation, in bytes.
    pub max_value_length: usize,
    /// The effective models of one resolution together, with what child POMs inherit from them,
    /// in bytes (an estimate: the text they hold).
    pub max_model_bytes: u64,
    /// POMs one resolution reads.
    pub max_modules: usize,
    /// One artifact (jar), in bytes.
    pub max_artifact_size: u64,
    /// The whole resolution, from the first POM to the last jar.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_size: 4 << 20,
            max_value_length: 64 << 10,
            max_model_bytes: 64 << 20,
            max_modules: 2_000,
            max_artifact_size: 4 << 30,
            deadline: Duration::from_secs(300),
        }
    }
}

/// The flags that set [`Limits`], the same for the server and `sparkstage resolve`.
#[cfg(feature = "clap")]
#[derive(Debug, Clone, clap::Args)]
pub struct LimitsArgs {
    /// The largest POM or `maven-metadata.xml` a repository may send; a larger one is cut off
    /// while it streams and fails the resolution.
    #[arg(long, env = "SPARKSTAGE_MAVEN_MAX_FILE_SIZE", default_value = "4MiB",
          value_parser = sparkstage_api::size::parse_size)]
    pub maven_max_file_size: u64,

    /// The longest a POM value may grow when its `${...}` properties are expanded.
    #[arg(long, env = "SPARKSTAGE_MAVEN_MAX_VALUE_LENGTH", default_value = "64KiB",
          value_parser = sparkstage_api::size::parse_size)]
    pub maven_max_value_length: u64,

    /// How much text the effective POMs of one resolution may hold together (bounds its memory).
    #[arg(long, env = "SPARKSTAGE_MAVEN_MAX_MODEL_BYTES", default_value = "64MiB",
          value_parser = sparkstage_api::size::parse_size)]
    pub maven_max_model_bytes: u64,

    /// How many POMs one resolution may read.
    #[arg(long, env = "SPARKSTAGE_MAVEN_MAX_MODULES", default_value_t = 2_000)]
    pub maven_max_modules: usize,

    /// The largest artifact (jar) a repository may send.
    #[arg(long, env = "SPARKSTAGE_MAVEN_MAX_ARTIFACT_SIZE", default_value = "4GiB",
          value_parser = sparkstage_api::size::parse_size)]
    pub maven_max_artifact_size: u64,

    /// How long one resolution may take, downloads included.
    #[arg(long, env = "SPARKSTAGE_RESOLVE_TIMEOUT", default_value = "5m",
          value_parser = humantime::parse_duration)]
    pub resolve_timeout: Duration,
}

#[cfg(feature = "clap")]
impl LimitsArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_file_size: self.maven_max_file_size,
            max_value_length: usize::try_from(self.maven_max_value_length).unwrap_or(usize::MAX),
            max_model_bytes: self.maven_max_model_bytes,
            max_modules: self.maven_max_modules,
            max_artifact_size: self.maven_max_artifact_size,
            deadline: self.resolve_timeout,
        }
    }
}

#[cfg(all(test, feature = "clap"))]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitsArgs,
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["x"]).map_err(|e| e.to_string());
        assert_eq!(cli.map(|c| c.limits.limits()), Ok(Limits::default()));
        let cli = Cli::try_parse_from([
            "x",
            "--maven-max-file-size",
            "1MiB",
            "--resolve-timeout",
            "30s",
        ])
        .map_err(|e| e.to_string());
        let limits = cli.map(|c| c.limits.limits());
        assert_eq!(
            limits.map(|l| (l.max_file_size, l.deadline)),
            Ok((1 << 20, Duration::from_secs(30)))
        );
    }
}
