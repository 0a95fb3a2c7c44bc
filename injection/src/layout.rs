//! Where the init container puts what it fetches, and which directory a file goes to.

pub use sparkstage_api::bundles::TargetDir;

/// Where jars go in the pod unless told otherwise (as the 2017 fork's init container did).
pub const DEFAULT_JARS_DIR: &str = "/var/spark-data/spark-jars";
/// Where every other file goes unless told otherwise.
pub const DEFAULT_FILES_DIR: &str = "/var/spark-data/spark-files";

/// The directory rule: a file whose name ends in `.jar` goes to the jars directory, any other
/// file to the files directory. The submit hook rewrites Spark's arguments by it and the init
/// container writes by it.
pub fn target_of(name: &str) -> TargetDir {
    if name.ends_with(".jar") {
        TargetDir::Jars
    } else {
        TargetDir::Files
    }
}

/// The two download directories in the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub jars_dir: String,
    pub files_dir: String,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            jars_dir: DEFAULT_JARS_DIR.to_owned(),
            files_dir: DEFAULT_FILES_DIR.to_owned(),
        }
    }
}

impl Layout {
    /// One of the two directories, without a trailing slash.
    pub fn dir(&self, target: TargetDir) -> &str {
        match target {
            TargetDir::Jars => self.jars_dir.trim_end_matches('/'),
            TargetDir::Files => self.files_dir.trim_end_matches('/'),
        }
    }

    /// The directory `name` goes to, without a trailing slash.
    pub fn dir_for(&self, name: &str) -> &str {
        self.dir(target_of(name))
    }

    /// Where `name` is in the pod: `<dir>/<name>`.
    pub fn path_of(&self, name: &str) -> String {
        format!("{}/{name}", self.dir_for(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jars_and_other_files_go_to_their_directories() {
        let layout = Layout {
            jars_dir: "/j/".into(),
            files_dir: "/f".into(),
        };
        assert_eq!(layout.path_of("a.jar"), "/j/a.jar");
        assert_eq!(layout.path_of("a.jar.txt"), "/f/a.jar.txt");
        assert_eq!(layout.path_of("lib.py"), "/f/lib.py");
        assert_eq!(Layout::default().dir_for("x.jar"), DEFAULT_JARS_DIR);
    }
}
