//! `appstart`: the launcher a desktop shortcut points at.
//!
//! It reads `appstart.toml` beside itself, runs the current version's executable as a child,
//! forwards arguments, exit code and signals, relaunches on the restart code, and falls back
//! to the previous version when a new one cannot start. See `docs/launcher.md`.
//!
//! This binary is kept tiny: no network, TLS, crypto or async code, and no panicking paths on
//! anything read from disk. Its own errors print `appstart: error: ...` and exit with
//! [`launch::LAUNCHER_FAILURE`]; every other exit code is the child's.

mod launch;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match launch::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("appstart: error: {}", appstart_layout::error::chain(&err));
            ExitCode::from(launch::LAUNCHER_FAILURE)
        }
    }
}
