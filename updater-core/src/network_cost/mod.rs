//! Whether the operating system says the current connection is metered (a phone tether, a
//! capped mobile plan): background downloads pause there (`metered = "pause"`, the default).
//!
//! One seam, one small file per platform:
//! - Windows (`windows.rs`): WinRT `NetworkInformation::GetInternetConnectionProfile()` →
//!   `GetConnectionCost()`: metered when the cost type is `Fixed` or `Variable`, or when
//!   roaming or over the data limit. What the Settings app shows as "metered connection".
//! - Linux (`linux.rs`): NetworkManager's `Metered` property on the system D-Bus
//!   (`org.freedesktop.NetworkManager`): `YES` (1) and `GUESS_YES` (3) are metered. No
//!   system bus or no NetworkManager (systemd-networkd, a container) is "unknown".
//! - macOS and the rest (`undetected.rs`): not detected. macOS has the answer only in the
//!   Network framework (`NWPath.isExpensive`), an Objective-C/Swift API with no C entry point
//!   we could call without a bridge; it is always "unknown" there.
//!
//! "Unknown" is treated as not metered (logged once per process): a machine where we
//! cannot tell keeps updating, as it did before this check existed.

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod platform;
#[cfg(not(any(target_os = "linux", windows)))]
#[path = "undetected.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// What the OS says about the connection's cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cost {
    /// Metered: background downloads pause.
    Metered,
    /// Not metered.
    Unmetered,
    /// The OS could not tell (why): treated as not metered.
    Unknown(String),
}

/// What background downloads do on a metered connection (`metered` in `policy.toml` and
/// `state/install.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeteredMode {
    /// Skip the round: nothing is downloaded. The default.
    #[default]
    Pause,
    /// Download anyway.
    Allow,
}

impl MeteredMode {
    /// `pause` or `allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            MeteredMode::Pause => "pause",
            MeteredMode::Allow => "allow",
        }
    }
}

impl std::str::FromStr for MeteredMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "pause" => Ok(MeteredMode::Pause),
            "allow" => Ok(MeteredMode::Allow),
            _ => Err(format!("{text:?} is not `pause` or `allow`")),
        }
    }
}

static LOGGED_UNKNOWN: AtomicBool = AtomicBool::new(false);

/// Asks the OS now (a D-Bus or WinRT call: milliseconds).
pub fn current() -> Cost {
    let cost = platform::current();
    if let Cost::Unknown(why) = &cost
        && !LOGGED_UNKNOWN.swap(true, Ordering::Relaxed)
    {
        log::info!("cannot tell whether the connection is metered ({why}); assuming it is not");
    }
    cost
}

/// Whether the OS says the connection is metered ("unknown" is not).
pub fn is_metered() -> bool {
    current() == Cost::Metered
}
