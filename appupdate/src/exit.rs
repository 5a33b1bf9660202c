//! Exit codes: one per kind of outcome a script acts on differently (retry later, alert
//! someone, wait for the other updater, nothing to do). The table is an interface: it is
//! printed at the foot of `appupdate --help` and in `docs/cli.md`, and numbers are never
//! reused. Errors are sorted by their typed [`updater_core::Error::code`], never by message.

/// Success.
pub const SUCCESS: u8 = 0;
/// Any error not listed below.
pub const FAILURE: u8 = 1;
/// Usage: clap's own code for a bad command line.
pub const USAGE: u8 = 2;
/// Network: the server unreachable, an HTTP error status, a timeout, TLS.
pub const NETWORK: u8 = 3;
/// Verification refused: what the repository sent is not what its keys signed.
pub const REFUSED: u8 = 4;
/// Another updater holds the install lock.
pub const LOCKED: u8 = 5;
/// Nothing to do: a result rather than an error.
pub const NOTHING_TO_DO: u8 = 6;
/// Cancelled (Ctrl-C), as shells report a SIGINT death.
pub const CANCELLED: u8 = 130;

/// The table for `appupdate --help` (docs/cli.md has the same, with details).
pub const TABLE: &str = "\
Exit codes:
  0    success
  1    any other error
  2    usage (a bad command line)
  3    network (server unreachable, HTTP error status, timeout, TLS)
  4    verification refused (bad signature or threshold, hash or length mismatch, expired
       metadata, rollback or freeze attack, a trusted root that is not the repository's,
       metadata or a manifest from the repository failing its checks)
  5    locked (another updater holds the install lock)
  6    nothing to do (already up to date, nothing staged, nothing to roll back to, a
       version that was not skipped)
  130  cancelled (Ctrl-C)";

/// The exit code for a command that failed with `err`: that of the first typed updater
/// error in its chain, else [`FAILURE`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<updater_core::Error>())
        .map_or(FAILURE, for_error)
}

fn for_error(err: &updater_core::Error) -> u8 {
    match err {
        // A file the repository served (named by its URL) that is not what it must be: signed
        // metadata or a manifest failing its checks (a path escaping the folder, overlapping
        // pack slices, two signatures by one key). Local files stay plain failures.
        updater_core::Error::Format { what, .. } if is_repository_url(what) => REFUSED,
        other => for_error_code(other.code()),
    }
}

fn is_repository_url(what: &str) -> bool {
    ["http://", "https://", "file://"]
        .iter()
        .any(|scheme| what.starts_with(scheme))
}

/// The exit code for an [`updater_core::Error::code`].
fn for_error_code(code: &str) -> u8 {
    match code {
        "network" | "not-found" | "timeout" => NETWORK,
        "signature" | "mismatch" | "too-large" | "rollback-attack" | "expired"
        | "root-mismatch" => REFUSED,
        "locked" => LOCKED,
        "nothing-to-do" => NOTHING_TO_DO,
        "cancelled" => CANCELLED,
        _ => FAILURE,
    }
}

/// Makes a failed write to standard output an error like any other (exit [`FAILURE`] with
/// `appupdate: error: writing to standard output: ...`) instead of an abort (exit 134).
///
/// `println!` panics when it cannot write: `appupdate status | head -c 10` closes the pipe,
/// `> /dev/full` fills the disk; with `panic = "abort"` the process then died with a panic
/// message. The command has done its work by the time it prints its result; only the
/// saying failed. Any other panic is left to the default hook.
pub fn exit_on_output_errors() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(reason) = message.strip_prefix("failed printing to stdout: ") {
            use std::io::Write;
            // Standard error may be closed too: nothing more can be said then.
            let _ = writeln!(
                std::io::stderr(),
                "appupdate: error: writing to standard output: {reason}"
            );
            std::process::exit(i32::from(FAILURE));
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use anyhow::Context;
    use updater_core::Error;

    use super::*;

    fn code_of(err: Error) -> u8 {
        // Wrapped in context as commands do: the code comes from the typed cause.
        exit_code(
            &Err::<(), _>(err)
                .context("running the command")
                .unwrap_err(),
        )
    }

    #[test]
    fn each_kind_of_error_has_its_code() {
        let transport = Error::Transport {
            url: "http://127.0.0.1:1/timestamp.json".into(),
            message: "connection refused".into(),
            retryable: true,
            retry_after: None,
        };
        assert_eq!(code_of(transport), NETWORK);
        assert_eq!(code_of(Error::NotFound { url: "u".into() }), NETWORK);
        let mismatch = Error::Mismatch {
            what: "bin/app".into(),
            kind: "sha256",
            expected: "aa".into(),
            actual: "bb".into(),
        };
        assert_eq!(code_of(mismatch), REFUSED);
        let threshold = Error::Threshold {
            role: "timestamp".into(),
            what: "timestamp.json".into(),
            valid: 0,
            threshold: 1,
        };
        assert_eq!(code_of(threshold), REFUSED);
        let expired = Error::Expired {
            role: "snapshot".into(),
            expires: "then".into(),
            now: "now".into(),
        };
        assert_eq!(code_of(expired), REFUSED);
        let version = Error::Version {
            role: "targets".into(),
            what: "targets.json".into(),
            expected: "3".into(),
            actual: 2,
        };
        assert_eq!(code_of(version), REFUSED);
        let large = Error::TooLarge {
            url: "u".into(),
            limit: 1,
        };
        assert_eq!(code_of(large), REFUSED);
        assert_eq!(code_of(Error::RootMismatch("r".into())), REFUSED);
        let locked = Error::Locked {
            path: "state/lock".into(),
            holder: "another process (starting)".into(),
        };
        assert_eq!(code_of(locked), LOCKED);
        assert_eq!(code_of(Error::NothingToDo("n".into())), NOTHING_TO_DO);
        assert_eq!(code_of(Error::Invalid("i".into())), FAILURE);
        assert_eq!(
            code_of(Error::format("/home/u/app/state/x.json", "m")),
            FAILURE
        );
        let served = Error::format(
            "http://127.0.0.1:8080/targets/app/stable/any/1.0.0/manifest.json",
            "invalid relative path \"../evil\"",
        );
        assert_eq!(code_of(served), REFUSED);
    }

    #[test]
    fn an_untyped_error_is_a_plain_failure() {
        assert_eq!(exit_code(&anyhow::anyhow!("something else")), FAILURE);
    }

    #[test]
    fn cancellation_is_130_whenever_the_library_reports_it() {
        assert_eq!(for_error_code("cancelled"), CANCELLED);
        assert_eq!(code_of(Error::Cancelled), CANCELLED);
    }

    #[test]
    fn a_stalled_server_is_a_network_error() {
        assert_eq!(
            code_of(Error::Stalled {
                url: "http://127.0.0.1:1/timestamp.json".into(),
                seconds: 2,
            }),
            NETWORK
        );
    }

    #[test]
    fn the_table_lists_every_code() {
        for code in [
            SUCCESS,
            FAILURE,
            USAGE,
            NETWORK,
            REFUSED,
            LOCKED,
            NOTHING_TO_DO,
            CANCELLED,
        ] {
            assert!(
                TABLE
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{code} "))),
                "{code} missing from the table"
            );
        }
    }
}
