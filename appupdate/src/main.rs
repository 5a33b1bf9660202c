//! `appupdate`: the publisher's and the client's command line.
//!
//! Thin by design: it parses arguments, calls `updater-core`, prints the result (as one JSON
//! object with `--json`) and turns errors into the exit code of their kind (`exit.rs`) with
//! the whole error chain. The command names, flags and exit codes are an interface that
//! users' scripts rely on; see `docs/cli.md`. With an installer payload at its end it is an installer instead
//! (`installer.rs`).

mod cli;
mod client_cmd;
mod commands;
mod demo;
mod docs_cmd;
mod exit;
mod fleet_cmd;
mod help;
mod installer;
mod interrupt;
mod mirrors_cmd;
mod payload;
mod progress;
mod push_cmd;
mod receipts_cmd;
mod release_cmd;
mod repo_cmd;
mod verify_cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    exit::exit_on_output_errors();
    // A copy of appupdate with an installer payload appended is an installer (installer.rs).
    let payload = installer::embedded_payload();
    let cli = matches!(payload, Ok(None)).then(help::parse);
    // `--quiet`: errors only (warnings such as retries would be noise on stderr).
    let quiet = cli.as_ref().is_some_and(|cli| cli.output.quiet);
    let level = if quiet { "error" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_target(false)
        .init();
    let result = match payload {
        Ok(Some(payload)) => installer::run(payload),
        // Parsed above; parsing again is the no-panic way to say so.
        Ok(None) => commands::run(cli.unwrap_or_else(help::parse)),
        Err(err) => Err(err),
    };
    match result {
        Ok(code) => code,
        Err(err) if interrupt::cancelled() => interrupt::exit(&err),
        Err(err) => {
            let code = exit::exit_code(&err);
            if code == exit::NOTHING_TO_DO {
                // A result, not a failure: said without alarm.
                eprintln!("appupdate: nothing to do: {err:#}");
            } else {
                eprintln!("appupdate: error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
