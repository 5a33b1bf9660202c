//! `appupdate`: the publisher's and the client's command line.
//!
//! Thin by design: it parses arguments, calls `updater-core`, prints the result (as one JSON
//! object with `--json`) and turns errors into exit code 1 with the whole error chain. The
//! command names and flags are an interface that users' scripts rely on; see
//! `docs/cli.md`. With an installer payload at its end it is an installer instead
//! (`installer.rs`).

mod cli;
mod commands;
mod demo;
mod docs_cmd;
mod fleet_cmd;
mod installer;
mod interrupt;
mod payload;
mod receipts_cmd;
mod release_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    // A copy of appupdate with an installer payload appended is an installer (installer.rs).
    let result = match installer::embedded_payload() {
        Ok(Some(payload)) => installer::run(payload),
        Ok(None) => commands::run(cli::Cli::parse()),
        Err(err) => Err(err),
    };
    match result {
        Ok(code) => code,
        Err(err) if interrupt::cancelled() => interrupt::exit(&err),
        Err(err) => {
            eprintln!("appupdate: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
