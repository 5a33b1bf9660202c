//! Mirrors: one install, several repository base URLs, tried in order of recent health
//! (docs/hosting.md, "Mirrors"; docs/security.md, "A malicious mirror").
//!
//! [`Mirrors`] is a [`Transport`] in front of one watched transport per base. The updater
//! builds every URL from the install's primary `url`; a request for `PRIMARY/rel` is sent to
//! `BASE/rel` for each base in turn, in [`health::order`], until one answers:
//! 1. the bases are the install's `url`, then its `mirrors` (`install --mirror`), then the
//!    publisher's signed list ([`signed`], from the last verified targets role): the
//!    install's own choices first because whoever installed chose them for this machine
//!    (a LAN mirror, a proxy's allow-list); health reorders them anyway;
//! 2. a connection error, a 5xx/429 (any non-404 error answer), a stall, a body that breaks
//!    off or ends short of its `Content-Length` marks the base failed and the next is
//!    tried (a broken body fails the read; the retry loop above asks again, and the base is
//!    then last);
//! 3. a 404 is asked of the other healthy bases too: a file the signed metadata names may
//!    be missing on one stale mirror only. The TUF root probe (`N.root.json`, normally 404)
//!    does not count as a failure of the base; every other 404 does;
//! 4. `metadata/timestamp.json` is asked of every healthy base (unconditionally, without
//!    the ETag: a mirror must not answer 304 for a timestamp it does not have) and the one
//!    with the highest version is handed to the TUF client. This is the freeze rule: one
//!    stale mirror cannot hide a release another base offers. A mirror that claims a high
//!    version with bad signatures fails verification and is then excluded (step 5);
//! 5. content that fails verification after it arrived (a hash or length mismatch, metadata
//!    that fails TUF verification or is a rollback or expired) is reported with
//!    [`Transport::reject`]: the base that served it is marked failed and excluded for that
//!    path (for `metadata`, the whole refresh) for [`health::RECENT`], and the caller asks
//!    again while another base remains;
//! 6. when every base failed, the error names each base and why.
//!
//! Nothing a mirror serves is trusted beyond what the signed metadata verifies: mirrors
//! change where bytes come from, never what is accepted.

pub mod health;
pub mod signed;
mod tracked;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::settings::InstallSettings;
use crate::tls::TlsTrust;
use crate::transport::{HttpTimeouts, Request, Response, Status, Transport, for_url_via, join_url};
use crate::watched::Watched;
use health::Entry;
use tracked::Tracked;

/// The name of the health file in the state folder.
pub const HEALTH_FILE: &str = "mirrors.toml";

/// Most bases one install uses (its URL, its mirrors and the signed list together).
pub const MAX_BASES: usize = 16;

/// Responses remembered for [`Transport::reject`].
const SERVED: usize = 256;

/// One base URL and the transport that reaches it.
#[derive(Debug)]
struct Base {
    url: String,
    transport: Box<dyn Transport>,
}

/// What the bases did lately.
#[derive(Debug)]
struct State {
    health: Vec<Entry>,
    /// (path, base) of recent responses, newest last.
    served: VecDeque<(String, usize)>,
    /// (path, base, since): a base excluded for a path and everything under it.
    excluded: Vec<(String, usize, Instant)>,
}

/// A [`Transport`] over several base URLs (see the module docs).
#[derive(Debug)]
pub struct Mirrors {
    primary: String,
    bases: Vec<Base>,
    state: Arc<Mutex<State>>,
    health_path: Option<PathBuf>,
}

impl Mirrors {
    /// Requests for `primary/...` go to each base of `bases` (the first is usually
    /// `primary` itself); health is kept in `health_path` when given.
    pub fn new(
        primary: &str,
        bases: Vec<(String, Box<dyn Transport>)>,
        health_path: Option<PathBuf>,
    ) -> Self {
        let urls: Vec<String> = bases.iter().map(|(url, _)| url.clone()).collect();
        let health = match &health_path {
            Some(path) => health::load(path, &urls),
            None => urls.iter().map(|url| Entry::new(url)).collect(),
        };
        Mirrors {
            primary: primary.trim_end_matches('/').to_string(),
            bases: bases
                .into_iter()
                .map(|(url, transport)| Base {
                    url: url.trim_end_matches('/').to_string(),
                    transport,
                })
                .collect(),
            state: Arc::new(Mutex::new(State {
                health,
                served: VecDeque::new(),
                excluded: Vec::new(),
            })),
            health_path,
        }
    }

    /// The transport of an install: its `url`, its `mirrors` and the `signed` list, each
    /// through the proxies and TLS trust of the install and watched for stalls of `stall`
    /// and for `cancel`. Health is kept in `state_dir/mirrors.toml` when there are several.
    pub fn for_install(
        settings: &InstallSettings,
        signed: &[String],
        state_dir: &std::path::Path,
        trust: &TlsTrust,
        stall: Duration,
        cancel: &CancelToken,
    ) -> Result<Self> {
        let urls = base_urls(settings, signed);
        let mut bases = Vec::new();
        for url in &urls {
            let inner = for_url_via(
                url,
                HttpTimeouts::backstop(stall),
                settings.proxies()?,
                trust,
            )?;
            let watched: Box<dyn Transport> =
                Box::new(Watched::new(Arc::from(inner), cancel.clone(), stall));
            bases.push((url.clone(), watched));
        }
        let health_path = (urls.len() > 1).then(|| state_dir.join(HEALTH_FILE));
        Ok(Mirrors::new(&settings.url, bases, health_path))
    }

    /// The base URLs, in configured order.
    pub fn urls(&self) -> Vec<String> {
        self.bases.iter().map(|b| b.url.clone()).collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bases to try for `path`, best first, without those excluded for it.
    fn order(&self, path: &str) -> Vec<usize> {
        let mut state = self.state();
        state
            .excluded
            .retain(|(_, _, since)| since.elapsed() < health::RECENT);
        let order = health::order(&state.health, health::now_millis());
        order
            .into_iter()
            .filter(|&i| !excluded(&state.excluded, path, i))
            .collect()
    }

    fn failed_recently(&self, base: usize) -> bool {
        self.state().health[base].failed_recently(health::now_millis())
    }

    fn record(&self, path: &str, base: usize) {
        let mut state = self.state();
        if state.served.len() >= SERVED {
            state.served.pop_front();
        }
        state.served.push_back((path.to_string(), base));
    }

    fn mark(&self, base: usize, ok: bool) {
        mark(&self.state, self.health_path.as_deref(), base, ok);
    }

    /// GETs `path` from the bases in order (steps 2, 3 and 6 of the module docs).
    fn get_path(&self, url: &str, path: &str, request: &Request) -> Result<Response> {
        let probe = is_root_probe(path);
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut not_found = false;
        let mut retryable = false;
        for base in self.order(path) {
            // After a 404, only the healthy bases are asked too.
            if not_found && self.failed_recently(base) {
                continue;
            }
            let target = join_url(&self.bases[base].url, path);
            match self.bases[base].transport.get(&target, request) {
                Ok(response) => {
                    self.record(path, base);
                    return Ok(self.tracked(response, base));
                }
                Err(Error::NotFound { .. }) => {
                    not_found = true;
                    if !probe {
                        self.mark(base, false);
                    }
                    failures.push((base, "not found (404)".into()));
                }
                Err(err) if fails_over(&err) => {
                    retryable |= err.is_retryable();
                    self.mark(base, false);
                    failures.push((base, reason(&err)));
                }
                Err(err) => return Err(err),
            }
        }
        Err(self.all_failed(url, path, &failures, not_found, probe, retryable))
    }

    /// The error when no base answered `path`.
    fn all_failed(
        &self,
        url: &str,
        path: &str,
        failures: &[(usize, String)],
        not_found: bool,
        probe: bool,
        retryable: bool,
    ) -> Error {
        let all_not_found = failures.iter().all(|(_, why)| why.starts_with("not found"));
        if not_found && (probe || all_not_found) {
            return Error::NotFound {
                url: url.to_string(),
            };
        }
        if failures.is_empty() {
            return Error::Transport {
                url: url.to_string(),
                message: "every repository URL is excluded after serving content that failed verification".into(),
                retryable: false,
                retry_after: None,
            };
        }
        let each: Vec<String> = failures
            .iter()
            .map(|(base, why)| format!("{}: {why}", self.bases[*base].url))
            .collect();
        Error::Transport {
            url: path.to_string(),
            message: format!(
                "all {} repository URLs failed: {}",
                failures.len(),
                each.join("; ")
            ),
            retryable,
            retry_after: None,
        }
    }

    /// Step 4: the timestamp with the highest version among the healthy bases.
    fn freshest_timestamp(&self, url: &str, path: &str, request: &Request) -> Result<Response> {
        let limit = crate::tuf::client::Limits::default().max_timestamp_size;
        let plain = Request {
            if_none_match: None,
            ..request.clone()
        };
        let mut best: Option<(u64, Vec<u8>, Option<String>, usize)> = None;
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut not_found = false;
        let mut retryable = false;
        for base in self.order(path) {
            if (best.is_some() || not_found) && self.failed_recently(base) {
                continue;
            }
            let target = join_url(&self.bases[base].url, path);
            let fetched = self.bases[base]
                .transport
                .get(&target, &plain)
                .and_then(|response| {
                    let etag = response.etag.clone();
                    let mut bytes = Vec::new();
                    crate::download::read_capped(response.body, &mut bytes, limit, &target)?;
                    Ok((bytes, etag))
                });
            match fetched {
                Ok((bytes, etag)) => {
                    self.mark(base, true);
                    let version = claimed_version(&bytes);
                    if best.as_ref().is_none_or(|(v, ..)| version > *v) {
                        best = Some((version, bytes, etag, base));
                    }
                }
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(Error::NotFound { .. }) => {
                    not_found = true;
                    self.mark(base, false);
                    failures.push((base, "not found (404)".into()));
                }
                Err(err) => {
                    retryable |= err.is_retryable();
                    self.mark(base, false);
                    failures.push((base, reason(&err)));
                }
            }
        }
        let Some((_, bytes, etag, base)) = best else {
            return Err(self.all_failed(url, path, &failures, not_found, false, retryable));
        };
        // The base with the freshest timestamp (the first in order among equals) serves the
        // rest of the refresh: it is the one that worked last.
        self.mark(base, true);
        self.record(path, base);
        Ok(Response {
            status: Status::Full,
            content_length: Some(bytes.len() as u64),
            range_start: None,
            etag,
            multipart_boundary: None,
            body: Box::new(std::io::Cursor::new(bytes)),
        })
    }

    /// `response`'s body, marking `base` failed if it breaks off or ends short, and
    /// healthy once it ends where it should.
    fn tracked(&self, mut response: Response, base: usize) -> Response {
        if response.status == Status::NotModified {
            self.mark(base, true);
            return response;
        }
        let body = std::mem::replace(&mut response.body, Box::new(std::io::empty()));
        response.body = Box::new(Tracked {
            inner: body,
            expected: response.content_length,
            read: 0,
            state: Arc::clone(&self.state),
            health_path: self.health_path.clone(),
            base,
            others: self.bases.len() > 1,
            done: false,
        });
        response
    }
}

impl Transport for Mirrors {
    fn get(&self, url: &str, request: &Request) -> Result<Response> {
        let path = url
            .strip_prefix(&self.primary)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| rest.trim_start_matches('/'));
        let (Some(path), true) = (path, self.bases.len() > 1) else {
            // One base (or a URL outside the repository): no failover.
            return match self.bases.first() {
                Some(base) => base.transport.get(url, request),
                None => Err(Error::Invalid("no repository URL".into())),
            };
        };
        if path == "metadata/timestamp.json" {
            return self.freshest_timestamp(url, path, request);
        }
        self.get_path(url, path, request)
    }

    fn reject(&self, url: &str) -> bool {
        let Some(path) = url
            .strip_prefix(&self.primary)
            .map(|rest| rest.trim_start_matches('/').to_string())
        else {
            return false;
        };
        if self.bases.len() < 2 {
            return false;
        }
        let served = self
            .state()
            .served
            .iter()
            .rev()
            .find(|(served, _)| under(served, &path))
            .map(|(_, base)| *base);
        let Some(base) = served else {
            return false;
        };
        log::warn!(
            "{}: served {path} that failed verification; trying the next repository URL",
            self.bases[base].url
        );
        self.mark(base, false);
        let mut state = self.state();
        state.excluded.push((path.clone(), base, Instant::now()));
        (0..self.bases.len()).any(|i| !excluded(&state.excluded, &path, i))
    }
}

/// Whether `path` is `prefix` or under it.
fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn excluded(exclusions: &[(String, usize, Instant)], path: &str, base: usize) -> bool {
    exclusions
        .iter()
        .any(|(prefix, b, _)| *b == base && under(path, prefix))
}

/// Marks `base` as having worked (`ok`) or failed now, saving the file when given.
fn mark(state: &Mutex<State>, health_path: Option<&std::path::Path>, base: usize, ok: bool) {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let now = health::now_millis();
    let before = health::order(&state.health, now);
    let was_failed = state.health[base].failed_recently(now);
    let entry = &mut state.health[base];
    if ok {
        entry.last_success = now.max(entry.last_failure + 1);
    } else {
        entry.last_failure = now.max(entry.last_success + 1);
    }
    // Saved when the order or a failure changes, not on every success.
    let changed = !ok || was_failed || health::order(&state.health, now) != before;
    if let (true, Some(path)) = (changed, health_path) {
        health::save(path, &state.health);
    }
}

/// Whether an error of one base sends the request to the next: no answer, an error status
/// (not 404, handled apart), a stall, a bad or oversized body.
fn fails_over(err: &Error) -> bool {
    matches!(
        err,
        Error::Transport { .. } | Error::Stalled { .. } | Error::TooLarge { .. }
    )
}

/// Why a base failed, without the URL the error repeats.
fn reason(err: &Error) -> String {
    match err {
        Error::Transport { message, .. } => message.clone(),
        Error::Stalled { seconds, .. } => format!("no data for {seconds} s (stalled)"),
        other => crate::error::chain(other),
    }
}

/// Whether `path` is a probe of the TUF root chain (`metadata/N.root.json`), normally 404.
fn is_root_probe(path: &str) -> bool {
    path.strip_prefix("metadata/")
        .and_then(|name| name.strip_suffix(".root.json"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The `signed.version` a timestamp claims, unverified (0 if none): only to pick which
/// one to verify first.
fn claimed_version(bytes: &[u8]) -> u64 {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|value| value.get("signed")?.get("version")?.as_u64())
        .unwrap_or(0)
}

/// The install's bases: `url`, `mirrors`, then `signed`, without repeats, at most
/// [`MAX_BASES`].
pub fn base_urls(settings: &InstallSettings, signed: &[String]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    let all = std::iter::once(&settings.url)
        .chain(&settings.mirrors)
        .chain(signed);
    for url in all {
        let url = url.trim_end_matches('/').to_string();
        if !urls.contains(&url) && urls.len() < MAX_BASES {
            urls.push(url);
        }
    }
    urls
}

#[cfg(test)]
mod tests;
