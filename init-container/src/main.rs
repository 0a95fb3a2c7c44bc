//! `sparkstage-init`: see the library's documentation for what it does and its spec file.

use std::process::ExitCode;

use clap::Parser;
use sparkstage_init::spec::{Args, Config};
use sparkstage_init::{Options, run};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_args(Args::parse()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sparkstage-init: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&config, &Options::default()).await {
        Ok(summary) => {
            for warning in &summary.warnings {
                eprintln!("{warning}");
            }
            eprintln!("{}", summary.line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}
