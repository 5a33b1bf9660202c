//! `appstart`: the launcher a desktop shortcut points at.
//!
//! It reads `appstart.toml` beside itself, runs the current version's executable as a child,
//! forwards arguments, exit code and signals (Ctrl-C / Ctrl-Break on Windows), relaunches on
//! the restart code, and falls back to the previous version when a new one cannot start. See
//! `docs/launcher.md`.
//!
//! The two binaries, `appstart` and `appstart-gui` (the same launcher linked for the Windows
//! GUI subsystem, so no console window opens), only call [`launch()`].
//!
//! This crate is kept tiny: no network, TLS, crypto or async code, and no panicking paths on
//! anything read from disk. Its own errors print `appstart: error: ...` and exit with
//! [`launch::LAUNCHER_FAILURE`]; every other exit code is the child's.
//!
//! Platform code lives behind one seam, the `platform` module: `unix.rs` or `windows.rs`.
#![deny(missing_docs)]

pub mod launch;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

/// Runs the launcher with this process's arguments; returns the code to end the process with
/// (the child's, or [`launch::LAUNCHER_FAILURE`]). Pass it to `std::process::exit`, which on
/// Windows keeps all 32 bits of the child's exit code.
pub fn launch() -> i32 {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_target(false)
        .init();
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match launch::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("appstart: error: {}", appstart_layout::error::chain(&err));
            i32::from(launch::LAUNCHER_FAILURE)
        }
    }
}
