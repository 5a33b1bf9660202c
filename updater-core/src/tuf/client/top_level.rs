//! The top-level roles, in the specification's order (1.0.34, sections 5.3 to 5.6).
//!
//! This file exists so that each step of the workflow for `root`, `timestamp`, `snapshot`
//! and `targets` reads top to bottom beside the step numbers it implements:
//! - 5.3 the root chain: `N+1.root.json` until 404, each signed by the old and its own root
//!   keys, version exactly N+1, stored at once (5.3.8); then expiry (5.3.10) and the
//!   fast-forward recovery that deletes roles whose keys rotated (5.3.11);
//! - 5.4 the timestamp (conditional on the stored ETag; a 304 keeps the trusted one);
//! - 5.5 the snapshot the timestamp names, 5.6 the targets the snapshot names.
//!
//! Each role is stored as soon as it is verified (5.4.5, 5.5.7, 5.6.6) by `persist.rs`.

use std::time::SystemTime;

use crate::download::{RetryPolicy, fetch_bytes, read_capped};
use crate::error::{Error, Result};
use crate::transport::{Request, Status, Transport, join_url};
use crate::tuf::metadata::{MetaFile, Role, Root, Snapshot, Targets, Timestamp};
use crate::tuf::sign::Envelope;

use super::hashes::{capped, check_meta_file};
use super::{Trusted, TrustedMetadata, check_expiry, check_root_self_signed, role_keys};

impl TrustedMetadata {
    /// Fetches `timestamp.json`, conditional on the stored ETag. `None` means 304.
    pub(super) fn fetch_timestamp(
        &self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
    ) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let url = join_url(metadata_url, "timestamp.json");
        let etag = match &self.timestamp {
            Some(_) => self.stored_etag(),
            None => None,
        };
        let limit = self.limits.max_timestamp_size;
        retry.run(|_| {
            let response = transport.get(
                &url,
                &Request {
                    range_start: None,
                    range_end: None,
                    if_none_match: etag.clone(),
                    more_ranges: Vec::new(),
                },
            )?;
            match response.status {
                Status::NotModified => Ok(None),
                Status::Full => {
                    if let Some(length) = response.content_length
                        && length > limit
                    {
                        return Err(Error::TooLarge {
                            url: url.clone(),
                            limit,
                        });
                    }
                    let mut bytes = Vec::new();
                    read_capped(response.body, &mut bytes, limit, &url)?;
                    Ok(Some((bytes, response.etag)))
                }
                Status::Partial => Err(Error::Transport {
                    url: url.clone(),
                    message: "unexpected 206 to a plain GET".into(),
                    retryable: false,
                    retry_after: None,
                }),
            }
        })
    }

    /// 5.3: follow the root chain.
    pub(super) fn update_root(
        &mut self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        start: SystemTime,
        requests: &mut u32,
    ) -> Result<()> {
        let original = self.root.value.clone();
        for _ in 0..self.limits.max_root_rotations {
            let next = self.root.value.version + 1;
            let url = join_url(metadata_url, &format!("{next}.root.json"));
            *requests += 1;
            let bytes = match fetch_bytes(transport, &url, self.limits.max_root_size, retry) {
                Ok(bytes) => bytes,
                Err(Error::NotFound { .. }) => break,
                Err(err) => return Err(err),
            };
            let envelope = Envelope::parse(&bytes, &url)?;
            // 5.3.4: signed by a threshold of the *trusted* root's root keys ...
            let old_role = role_keys(&self.root.value, "root", &url)?;
            envelope.check_threshold(&url, "root", &self.root.value.keys, old_role)?;
            let new_root: Root = envelope.decode(&url)?;
            // ... and of the *new* root's own root keys.
            check_root_self_signed(&envelope, &new_root, &url)?;
            // 5.3.5: exactly N+1.
            if new_root.version != next {
                return Err(Error::Version {
                    role: "root".into(),
                    what: url,
                    expected: next.to_string(),
                    actual: new_root.version,
                });
            }
            // 5.3.8: persist at once, then 5.3.9: repeat.
            self.persist("root", &bytes)?;
            self.root = Trusted {
                value: new_root,
                bytes,
            };
        }
        // 5.3.10: the final root must not be expired.
        check_expiry(&self.root.value, start)?;
        // 5.3.11: fast-forward attack recovery when the timestamp or snapshot keys rotated.
        let roles = &self.root.value.roles;
        let rotated = |role: &str| original.roles.get(role) != roles.get(role);
        let (rotated_timestamp_or_snapshot, rotated_targets) = (
            rotated("timestamp") || rotated("snapshot"),
            rotated("targets"),
        );
        if rotated_timestamp_or_snapshot {
            self.forget("timestamp")?;
            self.timestamp = None;
            self.forget("snapshot")?;
            self.snapshot = None;
        }
        if rotated_targets {
            self.forget("targets")?;
            self.targets = None;
        }
        // Trusted roles must still verify under a rotated root.
        if self.root.value.version != original.version {
            self.reverify()?;
        }
        Ok(())
    }

    /// 5.4: the timestamp (already fetched; `None` = 304). Returns whether a newer one was
    /// accepted.
    pub(super) fn update_timestamp(
        &mut self,
        fetched: Option<(Vec<u8>, Option<String>)>,
        metadata_url: &str,
        start: SystemTime,
    ) -> Result<bool> {
        let url = join_url(metadata_url, "timestamp.json");
        let Some((bytes, new_etag)) = fetched else {
            // 304: the trusted timestamp is still the newest; it must not have expired.
            match &self.timestamp {
                Some(trusted) => check_expiry(&trusted.value, start)?,
                None => {
                    return Err(Error::format(
                        &url,
                        "the server answered 304 to an unconditional request",
                    ));
                }
            }
            return Ok(false);
        };
        // 5.4.2: signatures.
        let new: Timestamp = self.verify(&bytes, "timestamp", &url)?;
        let mut changed = true;
        if let Some(trusted) = &self.timestamp {
            // 5.4.3.1: no rollback; an equal version means nothing new.
            if new.version < trusted.value.version {
                return Err(Error::Version {
                    role: "timestamp".into(),
                    what: url,
                    expected: format!(">= {}", trusted.value.version),
                    actual: new.version,
                });
            }
            changed = new.version > trusted.value.version;
            // 5.4.3.2: the snapshot it names must not go back.
            let old_snapshot = snapshot_meta(&trusted.value, &url)?.version;
            let new_snapshot = snapshot_meta(&new, &url)?.version;
            if new_snapshot < old_snapshot {
                return Err(Error::Version {
                    role: "snapshot".into(),
                    what: format!("{url} (meta snapshot.json)"),
                    expected: format!(">= {old_snapshot}"),
                    actual: new_snapshot,
                });
            }
        }
        snapshot_meta(&new, &url)?;
        if changed {
            // 5.4.4: expiry, then 5.4.5: persist.
            check_expiry(&new, start)?;
            self.persist("timestamp", &bytes)?;
            self.timestamp = Some(Trusted { value: new, bytes });
        } else if let Some(trusted) = &self.timestamp {
            check_expiry(&trusted.value, start)?;
        }
        // The ETag only makes the next request conditional; it is written after the
        // timestamp it belongs to.
        self.store_etag(new_etag.as_deref())?;
        Ok(changed)
    }

    /// 5.5: the snapshot named by the timestamp.
    pub(super) fn update_snapshot(
        &mut self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        start: SystemTime,
        requests: &mut u32,
    ) -> Result<()> {
        let timestamp = self
            .timestamp
            .as_ref()
            .ok_or_else(|| Error::NotInstalled("no trusted timestamp".into()))?;
        let meta = snapshot_meta(&timestamp.value, "timestamp.json")?.clone();
        // A stored snapshot that matches what the timestamp names needs no download.
        if let Some(trusted) = &self.snapshot
            && trusted.value.version == meta.version
            && check_meta_file(&meta, &trusted.bytes, "snapshot.json").is_ok()
        {
            return check_expiry(&trusted.value, start);
        }
        // 5.5.1 to 5.5.4: fetch (capped), hashes and length, signatures, version.
        let (new, bytes, url) = self.fetch_named::<Snapshot>(
            transport,
            metadata_url,
            retry,
            "snapshot",
            &meta,
            self.limits.max_snapshot_size,
        )?;
        *requests += 1;
        // 5.5.5: no targets file goes backwards or disappears.
        if let Some(trusted) = &self.snapshot {
            for (file, old) in &trusted.value.meta {
                match new.meta.get(file) {
                    None => {
                        return Err(Error::format(
                            &url,
                            format!("field `meta`: {file} was listed before and is missing now"),
                        ));
                    }
                    Some(current) if current.version < old.version => {
                        return Err(Error::Version {
                            role: file.trim_end_matches(".json").to_string(),
                            what: format!("{url} (meta {file})"),
                            expected: format!(">= {}", old.version),
                            actual: current.version,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        // 5.5.6: expiry, then 5.5.7: persist.
        check_expiry(&new, start)?;
        self.persist("snapshot", &bytes)?;
        self.snapshot = Some(Trusted { value: new, bytes });
        Ok(())
    }

    /// 5.6: the top-level targets named by the snapshot.
    pub(super) fn update_targets(
        &mut self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        start: SystemTime,
        requests: &mut u32,
    ) -> Result<()> {
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or_else(|| Error::NotInstalled("no trusted snapshot".into()))?;
        let meta = snapshot
            .value
            .meta
            .get("targets.json")
            .cloned()
            .ok_or_else(|| Error::format("snapshot.json", "field `meta` has no `targets.json`"))?;
        if let Some(trusted) = &self.targets
            && trusted.value.version == meta.version
            && check_meta_file(&meta, &trusted.bytes, "targets.json").is_ok()
        {
            return check_expiry(&trusted.value, start);
        }
        // 5.6.1 to 5.6.4: fetch (capped), hashes and length, signatures, version.
        let (new, bytes, _) = self.fetch_named::<Targets>(
            transport,
            metadata_url,
            retry,
            "targets",
            &meta,
            self.limits.max_targets_size,
        )?;
        *requests += 1;
        // 5.6.5: expiry, then 5.6.6: persist.
        check_expiry(&new, start)?;
        self.persist("targets", &bytes)?;
        self.targets = Some(Trusted { value: new, bytes });
        Ok(())
    }

    /// Fetches top-level role `role` in the version `meta` names (`N.<role>.json` with
    /// consistent snapshots), capped at the listed length and `default_limit`, and checks the
    /// listed length and hashes, the signatures and that the version is the one named (the
    /// shared steps x.1 to x.4 of 5.5 and 5.6). Returns the role, its bytes and its URL.
    fn fetch_named<T: Role>(
        &self,
        transport: &dyn Transport,
        metadata_url: &str,
        retry: &RetryPolicy,
        role: &str,
        meta: &MetaFile,
        default_limit: u64,
    ) -> Result<(T, Vec<u8>, String)> {
        let name = if self.root.value.consistent_snapshot {
            format!("{}.{role}.json", meta.version)
        } else {
            format!("{role}.json")
        };
        let url = join_url(metadata_url, &name);
        let bytes = fetch_bytes(transport, &url, capped(meta, default_limit), retry)?;
        check_meta_file(meta, &bytes, &url)?;
        let new: T = self.verify(&bytes, role, &url)?;
        if new.version() != meta.version {
            return Err(Error::Version {
                role: role.into(),
                what: url,
                expected: meta.version.to_string(),
                actual: new.version(),
            });
        }
        Ok((new, bytes, url))
    }

    /// Drops trusted roles that no longer verify under the (rotated) root.
    fn reverify(&mut self) -> Result<()> {
        if !self.still_verifies(&self.timestamp, "timestamp") {
            self.timestamp = None;
            self.forget("timestamp")?;
        }
        if !self.still_verifies(&self.snapshot, "snapshot") {
            self.snapshot = None;
            self.forget("snapshot")?;
        }
        if !self.still_verifies(&self.targets, "targets") {
            self.targets = None;
            self.forget("targets")?;
        }
        Ok(())
    }

    /// Whether a trusted role (if any) still verifies against the current root.
    fn still_verifies<T: Role>(&self, trusted: &Option<Trusted<T>>, role: &str) -> bool {
        trusted.as_ref().is_none_or(|t| {
            self.verify::<T>(&t.bytes, role, &format!("{role}.json"))
                .is_ok()
        })
    }
}

fn snapshot_meta<'a>(timestamp: &'a Timestamp, what: &str) -> Result<&'a MetaFile> {
    timestamp
        .meta
        .get("snapshot.json")
        .ok_or_else(|| Error::format(what, "field `meta` has no `snapshot.json`"))
}
