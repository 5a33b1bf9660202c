//! Posting the outbox to the receiver the publisher names.
//!
//! Why it is this careful to be harmless: receipts are for the publisher's dashboards, so a
//! receiver that is down, slow or wrong must never fail or noticeably slow an update. Posting
//! therefore returns what happened instead of an error, uses short timeouts, and gives up after
//! [`ATTEMPTS`] tries; the receipts stay in the outbox for the next check.
//!
//! Steps, after each check (`docs/receipts.md`):
//! 1. the receiver's base URL is the `url` of [`ReceiptsConfig`], the signed `custom` of the
//!    target [`CONFIG_TARGET`] in the *top-level* targets role of the metadata the check just
//!    verified ([`receipts_url`]); a delegated role cannot name it. No URL: nothing is posted;
//! 2. the outbox is read and cut into batches of at most [`MAX_BATCH`] receipts and
//!    [`MAX_BATCH_BYTES`] bytes, oldest first; the dropped counter goes with the first;
//! 3. each batch is posted as JSON to `URL/receipts`; any 2xx answer removes its receipts
//!    from the outbox (by id, so receipts written meanwhile stay); a failure is retried with
//!    backoff up to [`ATTEMPTS`] times, then posting stops until the next check.

use std::collections::BTreeSet;
use std::time::Duration;

use super::outbox::{Outbox, Pending};
use super::{Batch, CONFIG_TARGET, MAX_BATCH, MAX_BATCH_BYTES, ReceiptsConfig};
use crate::error::Result;
use crate::tuf::metadata::Targets;

/// Tries per batch.
pub const ATTEMPTS: u32 = 3;

/// Longest receiver URL accepted.
pub use crate::config_target::MAX_URL_LEN;

/// Timeouts: a receiver gets far less patience than the repository.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before the second try; doubled before each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The receiver's base URL named by the top-level targets role `targets`, or `None` when it
/// names none, or names one that is not a plain `http(s)://` URL (logged).
pub fn receipts_url(targets: &Targets) -> Option<String> {
    let config: ReceiptsConfig =
        crate::config_target::read(targets, CONFIG_TARGET, "a receipts config")?;
    let url = config.url?;
    match check_url(&url) {
        Ok(()) => Some(url.trim_end_matches('/').to_string()),
        Err(e) => {
            log::warn!("ignoring target {CONFIG_TARGET}: {e}");
            None
        }
    }
}

/// Checks that `url` can name a receiver: `http://` or `https://`, no spaces or control
/// characters, at most [`MAX_URL_LEN`] bytes.
pub fn check_url(url: &str) -> Result<()> {
    crate::config_target::check_url(url, "receipts")
}

/// What [`post_outbox`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostReport {
    /// Receipts the receiver accepted (and that left the outbox).
    pub sent: usize,
    /// Receipts still in the outbox.
    pub left: usize,
    /// Why posting stopped early, if it did.
    pub failure: Option<String>,
}

/// Posts the outbox to `base_url/receipts` in batches (steps 2 and 3 of the module docs).
/// Never fails: a failure is in the report (and logged), and the receipts stay.
/// HTTPS receivers are trusted as the install's repository is (`trust`: the OS store and its
/// `--ca-file`), and reached through the proxy the repository would be (`proxies`: the
/// install's `--proxy`, the environment, the system setting; see [`crate::proxy`]).
pub fn post_outbox(
    outbox: &Outbox,
    base_url: &str,
    trust: &crate::tls::TlsTrust,
    proxies: &crate::proxy::Proxies,
) -> PostReport {
    let mut report = PostReport::default();
    let pending = match outbox.pending() {
        Ok(pending) => pending,
        Err(e) => {
            report.failure = Some(crate::error::chain(&e));
            log::warn!("not posting receipts: {}", crate::error::chain(&e));
            return report;
        }
    };
    let url = format!("{base_url}/receipts");
    let agent = agent(trust, proxies.route(&url).map(|route| route.proxy.clone()));
    let total = pending.receipts.len();
    for batch in batches(pending) {
        let body = match serde_json::to_vec(&batch) {
            Ok(body) => body,
            Err(e) => {
                report.failure = Some(format!("encoding a batch: {e}"));
                break;
            }
        };
        if let Err(message) = post_with_retries(&agent, &url, &body) {
            log::warn!("receipts not delivered to {url} (kept for the next check): {message}");
            report.failure = Some(message);
            break;
        }
        let sent: BTreeSet<String> = batch.receipts.iter().map(|r| r.id.clone()).collect();
        if let Err(e) = outbox.remove(&sent, batch.dropped) {
            // Delivered but still in the outbox: the receiver stores each id once.
            log::warn!("{}", crate::error::chain(&e));
            report.failure = Some(crate::error::chain(&e));
            break;
        }
        report.sent += sent.len();
    }
    report.left = total - report.sent;
    report
}

/// Cuts `pending` into batches of at most [`MAX_BATCH`] receipts and [`MAX_BATCH_BYTES`]
/// bytes (a single receipt larger than that is sent alone: the receiver says no, and it waits
/// to be dropped as the oldest); the dropped counter rides on the first.
fn batches(pending: Pending) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for receipt in pending.receipts {
        let length = serde_json::to_vec(&receipt).map_or(0, |b| b.len()) + 1;
        if !current.is_empty()
            && (current.len() == MAX_BATCH || size + length > MAX_BATCH_BYTES - 64)
        {
            batches.push(Batch::new(std::mem::take(&mut current), 0));
            size = 0;
        }
        size += length;
        current.push(receipt);
    }
    if !current.is_empty() || pending.dropped > 0 {
        batches.push(Batch::new(current, 0));
    }
    if let Some(first) = batches.first_mut() {
        first.dropped = pending.dropped;
    }
    batches
}

/// An agent trusting `trust`, through `proxy` or (`None`) directly: ureq must not read the
/// proxy variables itself ([`crate::proxy`] has).
fn agent(trust: &crate::tls::TlsTrust, proxy: Option<ureq::Proxy>) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(trust.root_certs())
        .build();
    ureq::Agent::config_builder()
        .proxy(proxy)
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        // A receiver has no business redirecting receipts elsewhere.
        .max_redirects(0)
        .user_agent(concat!("appstart/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// Posts `body` up to [`ATTEMPTS`] times; retries network errors, 408, 429 and 5xx.
fn post_with_retries(agent: &ureq::Agent, url: &str, body: &[u8]) -> Result<(), String> {
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let (message, retryable) = match agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(response) => {
                let code = response.status().as_u16();
                if (200..300).contains(&code) {
                    return Ok(());
                }
                let retryable = code == 408 || code == 429 || code >= 500;
                (format!("{url}: the receiver answered {code}"), retryable)
            }
            Err(e) => (format!("{url}: {e}"), true),
        };
        if !retryable || attempt >= ATTEMPTS {
            return Err(message);
        }
        log::debug!("{message}; trying again in {wait:?}");
        std::thread::sleep(wait);
        wait *= 2;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipts::{Receipt, ReceiptEvent};

    #[test]
    fn batches_are_bounded_and_carry_the_counter_once() {
        let receipts: Vec<Receipt> = (0..MAX_BATCH + 3)
            .map(|_| {
                Receipt::new(
                    "0123456789abcdef0123456789abcdef",
                    "demo",
                    "stable",
                    "any",
                    ReceiptEvent::Found,
                )
            })
            .collect();
        let cut = batches(Pending {
            receipts,
            dropped: 4,
        });
        assert_eq!(cut.len(), 2);
        assert_eq!(cut[0].receipts.len(), MAX_BATCH);
        assert_eq!(cut[1].receipts.len(), 3);
        assert_eq!((cut[0].dropped, cut[1].dropped), (4, 0));
        let only_dropped = batches(Pending {
            receipts: Vec::new(),
            dropped: 2,
        });
        assert_eq!(only_dropped.len(), 1);
        assert!(batches(Pending::default()).is_empty());
    }

    #[test]
    fn only_http_urls_name_a_receiver() {
        assert!(check_url("https://fleet.example.com").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        for bad in [
            "file:///etc",
            "ftp://x",
            "http://",
            "http://a b",
            "https://x\n",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
