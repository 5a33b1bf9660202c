//! Ctrl-C during a command that fetches (`install`, `check`, `update`, `verify --repair`):
//! the first one cancels the command's [`CancelToken`], so it unwinds through its own
//! clean-up (install unchanged, verified downloads kept) and `appupdate` exits with 130,
//! the shell's code for "stopped by Ctrl-C". A second Ctrl-C exits at once.
//!
//! The handler is installed only by those commands ([`token`]): every other command keeps
//! the default Ctrl-C behaviour, and `serve` stops at once as before.

use std::process::ExitCode;
use std::sync::OnceLock;

use updater_core::CancelToken;

/// The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const CANCELLED: u8 = 130;

static TOKEN: OnceLock<CancelToken> = OnceLock::new();

/// The token Ctrl-C cancels, installing the handler on first use. If the handler cannot be
/// installed (another one is set), the token still works; Ctrl-C then ends the process as
/// it did before.
pub fn token() -> CancelToken {
    TOKEN
        .get_or_init(|| {
            let token = CancelToken::new();
            let for_handler = token.clone();
            let installed = ctrlc::set_handler(move || {
                if for_handler.is_cancelled() {
                    // The second Ctrl-C: the user does not want to wait for the clean-up.
                    std::process::exit(i32::from(CANCELLED));
                }
                eprintln!("appupdate: cancelling (Ctrl-C again to stop at once)");
                for_handler.cancel();
            });
            if let Err(err) = installed {
                log::warn!("Ctrl-C will not cancel cleanly: {err}");
            }
            token
        })
        .clone()
}

/// Whether Ctrl-C cancelled the command.
pub fn cancelled() -> bool {
    TOKEN.get().is_some_and(CancelToken::is_cancelled)
}

/// Reports a command that failed after Ctrl-C, and its exit code (130).
pub fn exit(err: &anyhow::Error) -> ExitCode {
    let message = format!("{err:#}");
    if message == "cancelled" {
        eprintln!("appupdate: cancelled");
    } else {
        eprintln!("appupdate: cancelled: {message}");
    }
    ExitCode::from(CANCELLED)
}
