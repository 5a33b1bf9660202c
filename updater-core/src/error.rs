//! The updater's errors. Each variant carries what a user needs to act: the file, URL or
//! field at fault, and expected against actual values.

use std::path::PathBuf;

pub use appstart_layout::error::chain;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a check, update, install, rollback or publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the install folder's own files failed.
    #[error(transparent)]
    Layout(#[from] appstart_layout::Error),

    /// An I/O operation failed on `path`.
    #[error("{action} {path}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A network request failed (after retries, where retrying made sense).
    #[error("fetching {url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
        /// Seconds the server asked us to wait (`Retry-After`).
        retry_after: Option<u64>,
    },

    /// The server answered 404 for `url`.
    #[error("fetching {url}: not found (404)")]
    NotFound {
        /// The URL.
        url: String,
    },

    /// A download was larger than its declared or capped size.
    #[error("{url}: more than {limit} bytes; refusing the rest (declared or maximum size)")]
    TooLarge {
        /// The URL or file.
        url: String,
        /// The cap.
        limit: u64,
    },

    /// Downloaded or local content does not match its signed length or hash.
    #[error("{what}: {kind} mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The file, URL or blob.
        what: String,
        /// "length", "sha256", "blake3", ...
        kind: &'static str,
        /// The signed value.
        expected: String,
        /// What we found.
        actual: String,
    },

    /// A metadata or manifest file is not the JSON we expect.
    #[error("{what}: {message}")]
    Format {
        /// The file or URL.
        what: String,
        /// What is wrong (names the field).
        message: String,
    },

    /// TUF: a role's metadata lacks enough valid signatures.
    #[error(
        "{role} metadata ({what}): {valid} valid signature(s) from distinct trusted keys, threshold is {threshold}"
    )]
    Threshold {
        /// Role name.
        role: String,
        /// File or URL.
        what: String,
        /// Valid signatures counted (each key once).
        valid: usize,
        /// Signatures required.
        threshold: u64,
    },

    /// TUF: a role's version went backwards or is not the one referenced.
    #[error(
        "{role} metadata ({what}): version {actual}, expected {expected} (rollback or mix-and-match attack?)"
    )]
    Version {
        /// Role name.
        role: String,
        /// File or URL.
        what: String,
        /// The version required.
        expected: String,
        /// The version found.
        actual: u64,
    },

    /// TUF: a role's metadata has expired (freeze attack, or the publisher must re-sign).
    #[error(
        "{role} metadata expired at {expires} (checked at {now}); the publisher must re-sign it (appupdate repo refresh)"
    )]
    Expired {
        /// Role name.
        role: String,
        /// Its expiry.
        expires: String,
        /// The update's start time.
        now: String,
    },

    /// No trusted metadata or no configured install where one is needed.
    #[error("{0}")]
    NotInstalled(String),

    /// The install is locked by another process.
    #[error("{path} is held by {holder}; try again when it has finished")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The live holder, as its note describes it ("another updater (pid 42 (update)
        /// since ...)"), or "another process (starting)" while the note is not yet its own.
        holder: String,
    },

    /// The trusted root given to `install` is not the repository's: not one signature on the
    /// repository's metadata is from a key it trusts.
    #[error("{0}")]
    RootMismatch(String),

    /// There is nothing to do: nothing staged to apply, no version to roll back to. A result
    /// rather than a failure; the CLI exits 6 for it.
    #[error("{0}")]
    NothingToDo(String),

    /// A request that makes no sense for this install or repository.
    #[error("{0}")]
    Invalid(String),

    /// The operation was cancelled ([`crate::CancelToken`], Ctrl-C). The install is as it
    /// was; verified downloads are kept for the next run.
    #[error("cancelled")]
    Cancelled,

    /// The server sent nothing for the whole stall timeout. Not retried: one stall costs
    /// one timeout, not one per try.
    #[error(
        "no data from {url} for {seconds} s; the server stalled (raise the limit with --timeout or `stall_secs` in state/install.toml)"
    )]
    Stalled {
        /// The URL.
        url: String,
        /// The stall timeout that ran out.
        seconds: u64,
    },

    /// A release's hook failed, timed out or could not start: a `post-install` hook fails
    /// the install or download, a `pre-switch` hook aborts the switch (the current version
    /// stays current).
    #[error("version {version}: {description}; {consequence} (its whole output is in {history})")]
    Hook {
        /// Which hook.
        kind: appstart_layout::hooks::HookKind,
        /// The version whose hook it is.
        version: appstart_layout::VersionName,
        /// Its exit code, if it exited.
        exit_code: Option<i32>,
        /// Whether it was killed at its timeout.
        timed_out: bool,
        /// The hook, how it ended and the tail of its output.
        description: String,
        /// What that did to the install.
        consequence: &'static str,
        /// The history log holding its output.
        history: PathBuf,
    },
}

impl Error {
    /// Wraps an I/O error with the action and path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A format error about `what`.
    pub fn format(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Format {
            what: what.into(),
            message: message.into(),
        }
    }

    /// This error, a [`Error::Mismatch`] naming `what` instead (the URL the bytes came
    /// from, where the check only knew a local file); any other error as it is.
    pub(crate) fn mismatch_of(self, what: &str) -> Self {
        match self {
            Error::Mismatch {
                kind,
                expected,
                actual,
                ..
            } => Error::Mismatch {
                what: what.to_string(),
                kind,
                expected,
                actual,
            },
            other => other,
        }
    }

    /// A stable code for receipts and scripts (`docs/receipts.md`): one per kind of failure,
    /// never a message (messages name local paths).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Layout(_) => "install-state",
            Error::Io { .. } => "io",
            Error::Transport { .. } => "network",
            Error::NotFound { .. } => "not-found",
            Error::TooLarge { .. } => "too-large",
            Error::Mismatch { .. } => "mismatch",
            Error::Format { .. } => "format",
            Error::Threshold { .. } => "signature",
            Error::Version { .. } => "rollback-attack",
            Error::Expired { .. } => "expired",
            Error::NotInstalled(_) => "not-installed",
            Error::Locked { .. } => "locked",
            Error::RootMismatch(_) => "root-mismatch",
            Error::NothingToDo(_) => "nothing-to-do",
            Error::Invalid(_) => "invalid",
            Error::Cancelled => "cancelled",
            Error::Stalled { .. } => "timeout",
            Error::Hook {
                timed_out: true, ..
            } => "hook-timeout",
            Error::Hook { .. } => "hook-failed",
        }
    }

    /// Whether this ends the whole operation at once, with no fallback to another route:
    /// a cancel, or a stalled server (trying elsewhere on it would stall again).
    pub fn ends_operation(&self) -> bool {
        matches!(self, Error::Cancelled | Error::Stalled { .. })
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Transport {
                retryable: true,
                ..
            }
        )
    }
}
