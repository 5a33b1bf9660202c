//! Delivery receipts: what each install tells the publisher about each step of an update.
//!
//! This module is the wire format, shared by the client (which writes receipts to an outbox
//! under `state/` and posts them) and the receiver in the `fleet` crate (which stores them).
//! `docs/receipts.md` lists every field. A receipt never holds a user name, host name,
//! address or hardware id: only the install's random id ([`crate::control::install_id`]),
//! what was installed, and what it cost.
//!
//! Receipts are posted as a [`Batch`] to the URL the publisher names in signed metadata
//! ([`ReceiptsConfig`], the target [`CONFIG_TARGET`]); each has a random `id`, so a batch sent
//! twice (a retry after a lost answer) is stored once.

//!
//! [`outbox`] keeps receipts on disk until they are posted; [`post`] posts them.

pub mod outbox;
pub mod post;

pub use outbox::{Outbox, Pending};
pub use post::{PostReport, post_outbox, receipts_url};

use serde::{Deserialize, Serialize};

/// The target whose signed `custom` says where receipts go (top-level targets role only: a
/// delegated role cannot redirect a fleet's receipts). The name cannot be a release's: app
/// names start with a letter or digit.
pub const CONFIG_TARGET: &str = "_appstart/receipts.json";

/// Most receipts in one batch.
pub const MAX_BATCH: usize = 500;

/// Largest batch body a receiver accepts, in bytes.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReceiptEvent {
    /// A check ran (`to`: the release found, if any).
    Checked,
    /// A release to take was found.
    Found,
    /// Its files were downloaded.
    Downloaded,
    /// Its version folder was built and put in place.
    Staged,
    /// `appstart.toml` now names it.
    Switched,
    /// The launcher fell back from it (`from`) to the previous version (`to`).
    FellBack,
    /// A rollback (by command or hand edit) from `from` to `to`.
    RolledBack,
    /// A step failed (`error`: a stable code).
    Failed,
    /// An app hook ran.
    Hook,
}

impl ReceiptEvent {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptEvent::Checked => "checked",
            ReceiptEvent::Found => "found",
            ReceiptEvent::Downloaded => "downloaded",
            ReceiptEvent::Staged => "staged",
            ReceiptEvent::Switched => "switched",
            ReceiptEvent::FellBack => "fell_back",
            ReceiptEvent::RolledBack => "rolled_back",
            ReceiptEvent::Failed => "failed",
            ReceiptEvent::Hook => "hook",
        }
    }
}

/// One receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Receipt {
    /// Random, 32 hex digits: the receiver stores a receipt once whatever the retries.
    pub id: String,
    /// The install's random id.
    pub install_id: String,
    /// App.
    pub app: String,
    /// Channel followed.
    pub channel: String,
    /// Platform.
    pub platform: String,
    /// What happened.
    pub event: ReceiptEvent,
    /// The version before (or the one running, for `checked` and `found`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The version after (or the one found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Bytes received for the step.
    #[serde(default)]
    pub bytes: u64,
    /// How long the step took, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// For `failed`: a stable error code ([`crate::Error::code`]); for `hook`: `hook-failed`
    /// or `hook-timeout` when the hook did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `hook`: which one (`post-install`, `pre-switch`, `first-run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    /// For `hook`: its exit code; absent when it was killed or could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl Receipt {
    /// A receipt of `event` now, with a new id.
    pub fn new(
        install_id: &str,
        app: &str,
        channel: &str,
        platform: &str,
        event: ReceiptEvent,
    ) -> Receipt {
        let mut id = [0u8; 16];
        if getrandom::fill(&mut id).is_err() {
            // No randomness: a time-based id still differs between receipts of one install.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            id = nanos.to_le_bytes();
        }
        Receipt {
            id: hex::encode(id),
            install_id: install_id.to_string(),
            app: app.to_string(),
            channel: channel.to_string(),
            platform: platform.to_string(),
            event,
            from: None,
            to: None,
            bytes: 0,
            duration_ms: 0,
            at: appstart_layout::fsutil::now_rfc3339(),
            error: None,
            hook: None,
            exit_code: None,
        }
    }

    /// Checks what a receiver must not store: ids and labels that are not what they claim
    /// (so a page or a query can print them as they are), and oversized fields.
    pub fn check(&self) -> Result<(), String> {
        let hex32 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex32(&self.id) {
            return Err(format!("receipt id {:?} is not 32 hex digits", self.id));
        }
        if !hex32(&self.install_id) {
            return Err(format!(
                "install_id {:?} is not 32 hex digits",
                self.install_id
            ));
        }
        for (field, value) in [
            ("app", self.app.as_str()),
            ("channel", self.channel.as_str()),
            ("platform", self.platform.as_str()),
        ] {
            crate::manifest::check_label(field, value).map_err(|e| e.to_string())?;
        }
        for (field, value) in [("from", &self.from), ("to", &self.to)] {
            if let Some(version) = value
                && appstart_layout::VersionName::parse(version).is_err()
            {
                return Err(format!("{field} {version:?} is not a version"));
            }
        }
        if crate::control::parse_time(&self.at).is_none() {
            return Err(format!("at {:?} is not an RFC 3339 time", self.at));
        }
        if let Some(hook) = &self.hook
            && appstart_layout::hooks::HookKind::parse(hook).is_none()
        {
            return Err(format!(
                "hook {hook:?} is not post-install, pre-switch or first-run"
            ));
        }
        if let Some(error) = &self.error
            && (error.is_empty()
                || error.len() > 64
                || !error
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            return Err(format!(
                "error code {error:?} is not a code like \"network\""
            ));
        }
        Ok(())
    }
}

/// The body of `POST /receipts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Batch {
    /// The receipts, oldest first.
    pub receipts: Vec<Receipt>,
    /// Receipts this install dropped since its last batch because its outbox was full.
    #[serde(default)]
    pub dropped: u64,
}

impl Batch {
    /// A batch of `receipts`.
    pub fn new(receipts: Vec<Receipt>, dropped: u64) -> Batch {
        Batch { receipts, dropped }
    }
}

/// Where receipts go: the signed `custom` of [`CONFIG_TARGET`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReceiptsConfig {
    /// The receiver's base URL (receipts are posted to `URL/receipts`); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl ReceiptsConfig {
    /// Receipts to `url`, or off.
    pub fn new(url: Option<String>) -> Self {
        ReceiptsConfig { url }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_round_trips_and_is_checked() {
        let mut receipt = Receipt::new(
            "0123456789abcdef0123456789abcdef",
            "demo",
            "stable",
            "linux-x86_64",
            ReceiptEvent::FellBack,
        );
        receipt.from = Some("3.0.0".into());
        receipt.to = Some("2.0.0".into());
        receipt.check().unwrap();
        let json = serde_json::to_value(&receipt).unwrap();
        assert_eq!(json["event"], "fell_back");
        let back: Receipt = serde_json::from_value(json).unwrap();
        assert_eq!(back, receipt);
        receipt.install_id = "someone@host".into();
        assert!(receipt.check().is_err());
        receipt.install_id = "0123456789abcdef0123456789abcdef".into();
        receipt.error = Some("<script>".into());
        assert!(receipt.check().is_err());
        receipt.error = Some("hook-failed".into());
        receipt.event = ReceiptEvent::Hook;
        receipt.hook = Some("pre-switch".into());
        receipt.exit_code = Some(3);
        receipt.check().unwrap();
        let json = serde_json::to_value(&receipt).unwrap();
        assert_eq!(
            (&json["hook"], &json["exit_code"]),
            (&"pre-switch".into(), &3.into())
        );
        receipt.hook = Some("<script>".into());
        assert!(receipt.check().is_err());
    }
}
