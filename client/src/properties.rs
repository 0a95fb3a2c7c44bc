//! The properties files spark-submit reads (Spark's `Utils.getPropertiesFromFile`: every value
//! trimmed); the format is read by `sparkstage_injection::properties`.

use std::collections::BTreeMap;

pub use sparkstage_injection::properties::parse;

/// The `spark-defaults.conf` spark-submit reads (`Utils.getDefaultPropertiesFile`):
/// `$SPARK_CONF_DIR/spark-defaults.conf`, else `$SPARK_HOME/conf/spark-defaults.conf`, when it is
/// a file.
pub fn spark_defaults_file(
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<std::path::PathBuf> {
    let dir = var("SPARK_CONF_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| var("SPARK_HOME").map(|home| std::path::PathBuf::from(home).join("conf")))?;
    let file = dir.join("spark-defaults.conf");
    file.is_file().then_some(file)
}

/// The properties spark-submit reads from files, as `SparkSubmitArguments` merges them: the
/// `--properties-file`, then `spark-defaults.conf` for the keys it lacks, read only when no
/// properties file is given or `--load-spark-defaults` is (Spark 4). `--conf` wins over both;
/// the caller looks there first.
pub fn merged(
    properties_file: Option<&str>,
    defaults: Option<&str>,
    load_defaults: bool,
) -> BTreeMap<String, String> {
    let mut out = properties_file.map(parse).unwrap_or_default();
    if (properties_file.is_none() || load_defaults)
        && let Some(text) = defaults
    {
        for (key, value) in parse(text) {
            out.entry(key).or_insert(value);
        }
    }
    out
}
