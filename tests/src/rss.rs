//! Peak memory of processes the tests start: a running process's high-water mark
//! (`VmHWM` in `/proc/<pid>/status`), and the peak of a command that runs to its end (measured
//! by a parent that waits for it: `getrusage(RUSAGE_CHILDREN)` of a small python3 wrapper, whose
//! only child the command is).

use std::path::Path;
use std::process::Output;

use anyhow::{Context, Result};

/// The peak resident set of a running process, in KiB.
pub fn peak_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

const WRAPPER: &str = "import resource, subprocess, sys
r = subprocess.run(sys.argv[2:])
open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)";

/// Runs `command` to its end (its environment and directory kept) and returns its output and
/// its peak resident set in KiB.
pub async fn run_measured(
    command: &tokio::process::Command,
    scratch: &Path,
) -> Result<(Output, u64)> {
    let std = command.as_std();
    let peak_file = scratch.join(format!("peak-{}", rand::random::<u64>()));
    let mut wrapped = tokio::process::Command::new("python3");
    wrapped
        .arg("-c")
        .arg(WRAPPER)
        .arg(&peak_file)
        .arg(std.get_program())
        .args(std.get_args());
    for (name, value) in std.get_envs() {
        match value {
            Some(v) => wrapped.env(name, v),
            None => wrapped.env_remove(name),
        };
    }
    if let Some(dir) = std.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let output = wrapped.output().await.context("cannot run python3")?;
    let peak = std::fs::read_to_string(&peak_file)
        .context("the wrapper wrote no peak")?
        .trim()
        .parse()
        .context("the wrapper's peak is not a number")?;
    let _ = std::fs::remove_file(&peak_file);
    Ok((output, peak))
}
