//! `appupdate`: the publisher's and the client's command line.
//!
//! Thin by design: it parses arguments, calls `updater-core`, prints the result (as one JSON
//! object with `--json`) and turns errors into exit code 1 with the whole error chain. The
//! command names and flags are an interface that users' scripts rely on; see
//! `docs/cli.md`.

mod cli;
mod commands;
mod demo;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let args = cli::Cli::parse();
    match commands::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("appupdate: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
