//! `appupdate release`: changing the signed controls of published releases (rollout,
//! pause, resume, pull), and listing every release with its state.
//!
//! A release's controls are its target entry's `custom.control` (see [`updater_core::advanced::control`]),
//! inside the targets metadata that names it. Changing one therefore re-signs metadata only:
//! the role holding the entry (the top-level targets role, or the delegated role the release
//! was published into, with that role's own keys), then the snapshot and the timestamp. The
//! manifest, blobs and pack of a release are never written again, and the other fields of
//! the entry (length, hashes, the manifest encodings, `custom.data`) stay as they are.
//!
//! A change, in order (the write order is the publish order of [`super`], steps 2 and 3):
//! 1. the change is checked (a rollout's percentages and times), before the lock;
//! 2. under the publish lock, the current metadata is read through the timestamp, and every
//!    entry the [`ReleaseSelector`] matches is found, in the top-level role and in each
//!    delegated role; none is an error naming the app, version and channel;
//! 3. the keys of every role to re-sign are loaded: a missing one fails here, before any
//!    file is written;
//! 4. each entry's `custom.control` is changed and checked as a client will check it;
//! 5. the changed delegated roles and the top-level targets role are written under new
//!    versioned names, then the snapshot, and `timestamp.json` last by atomic rename: the
//!    one switch that makes the change visible to clients.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

use super::delegation::signers_for;
use super::{Expiry, Repository};
use updater_core::advanced::control::{Control, ReleaseState, Rollout};
use updater_core::advanced::release::releases;
use updater_core::advanced::tuf::keys::{KeyDir, SigningKey};
use updater_core::advanced::tuf::metadata::{TargetFile, Targets, expires_in_days};
use updater_core::{Error, Result};

/// Which releases a change applies to: one version of one app on one channel, on one
/// platform, or on every platform it was published for (`platform: None`).
#[derive(Debug, Clone)]
pub struct ReleaseSelector {
    /// App name.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// Version, exactly as published.
    pub version: String,
    /// Platform (or `any`); `None`: every platform.
    pub platform: Option<String>,
}

impl ReleaseSelector {
    /// Whether the target `name` (`APP/CHANNEL/PLATFORM/VERSION/manifest.json`) is selected.
    fn matches(&self, name: &str) -> bool {
        let Some(rest) = name.strip_suffix("/manifest.json") else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        matches!(parts.as_slice(), [app, channel, platform, version]
            if *app == self.app
                && *channel == self.channel
                && *version == self.version
                && self.platform.as_deref().is_none_or(|p| p == *platform))
    }

    fn describe(&self) -> String {
        let platform = match &self.platform {
            Some(platform) => format!(" and platform {platform}"),
            None => String::new(),
        };
        format!(
            "{} {} on channel {}{platform}",
            self.app, self.version, self.channel
        )
    }
}

/// A change to the controls of published releases.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ControlChange {
    /// Sets the rollout: a fixed percentage or a schedule (`release rollout`).
    Rollout(Rollout),
    /// State `paused`: no new install takes the release (`release pause`).
    Pause,
    /// State back to `active`, from `paused` or `pulled` (`release resume`).
    Resume,
    /// State `pulled`: no install takes it, installs on it move away (`release pull`).
    Pull,
}

impl ControlChange {
    fn apply(&self, control: &mut Control) {
        match self {
            ControlChange::Rollout(rollout) => control.rollout = Some(rollout.clone()),
            ControlChange::Pause => control.state = ReleaseState::Paused,
            ControlChange::Resume => control.state = ReleaseState::Active,
            ControlChange::Pull => control.state = ReleaseState::Pulled,
        }
    }
}

/// What [`Repository::change_release_control`] did.
#[derive(Debug, Clone, Default)]
pub struct ControlReport {
    /// Target names whose control changed.
    pub changed: Vec<String>,
    /// Target names selected that were already so (nothing is re-signed for them).
    pub unchanged: Vec<String>,
    /// Roles re-signed: `targets` and/or delegated role names.
    pub roles: Vec<String>,
}

/// One release as `appupdate release list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseListing {
    /// App name.
    pub app: String,
    /// Channel.
    pub channel: String,
    /// Platform or `any`.
    pub platform: String,
    /// Version.
    pub version: String,
    /// `active`, `paused` or `pulled`.
    pub state: ReleaseState,
    /// The rollout as signed, or `None` (every install).
    pub rollout: Option<Rollout>,
    /// The rollout percentage in force now (100 without a rollout).
    pub rollout_percent: f64,
    /// Groups it is limited to.
    pub groups: Vec<String>,
    /// Install ids it is limited to.
    pub installs: Vec<String>,
    /// SemVer requirement on the installed version.
    pub from: Option<String>,
    /// Whether update chains stop at it.
    pub stop: bool,
    /// Whether it is critical.
    pub critical: bool,
    /// When installs on it treat their update as critical.
    pub expires: Option<String>,
    /// The publisher's data (`custom.data`).
    pub custom: Map<String, Value>,
    /// The targets role holding it: `targets` or a delegated role.
    pub role: String,
    /// Its target name.
    pub target: String,
}

impl Repository {
    /// Changes the control of every release `selector` matches, re-signing only the roles
    /// holding them (with their keys from `keys`), then the snapshot and timestamp; see the
    /// module docs for the steps. Releases already in the requested state are left alone; when
    /// all are, nothing is written.
    pub fn change_release_control(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        selector: &ReleaseSelector,
        change: &ControlChange,
    ) -> Result<ControlReport> {
        // Step 1.
        if let ControlChange::Rollout(rollout) = change {
            rollout
                .check()
                .map_err(|message| Error::Invalid(format!("rollout: {message}")))?;
        }
        let _lock = self.lock()?;
        // Step 2 (and 4, on copies in memory).
        let (mut targets, mut snapshot) = self.current_targets()?;
        let mut report = ControlReport::default();
        let top_changed = change_matching(&mut targets, selector, change, &mut report)?;
        let mut delegated: Vec<(String, Targets, Vec<SigningKey>)> = Vec::new();
        let specs = targets
            .delegations
            .as_ref()
            .map(|d| d.roles.clone())
            .unwrap_or_default();
        for spec in &specs {
            let mut role_targets = self.delegated_targets(&snapshot, &spec.name)?;
            let first = report.changed.len();
            if !change_matching(&mut role_targets, selector, change, &mut report)? {
                continue;
            }
            // Step 3, for a delegated role: its own keys.
            let release = report.changed.get(first).cloned().unwrap_or_default();
            let candidates = keys.role_keys(&spec.name).map_err(|e| {
                Error::Invalid(format!(
                    "{release} is in delegated role {}, whose key must sign the change: {e}",
                    spec.name
                ))
            })?;
            let signers = signers_for(spec, candidates).map_err(|found| {
                Error::Invalid(format!(
                    "{release} is in delegated role {}: {found} of the keys in {} sign for it, it needs {}",
                    spec.name,
                    keys.path(&spec.name).display(),
                    spec.threshold
                ))
            })?;
            delegated.push((spec.name.clone(), role_targets, signers));
        }
        if report.changed.is_empty() && report.unchanged.is_empty() {
            return Err(Error::Invalid(format!(
                "no release of {} is published in {}",
                selector.describe(),
                self.root.display()
            )));
        }
        if report.changed.is_empty() {
            return Ok(report);
        }
        // Step 3, for the top-level roles: KEYDIR must hold keys the root lists for them
        // (check_signers names the missing file or the foreign key) before any delegated
        // metadata is written below.
        if top_changed {
            self.check_signers(keys, &["targets"])?;
        }
        self.check_signers(keys, &["snapshot", "timestamp"])?;
        // Step 5.
        let now = SystemTime::now();
        for (role, role_targets, signers) in &mut delegated {
            role_targets.version += 1;
            role_targets.expires = expires_in_days(now, expiry.targets_days);
            let meta = self.write_delegated_role(role, role_targets, signers)?;
            snapshot.meta.insert(format!("{role}.json"), meta);
            report.roles.push(role.clone());
        }
        if top_changed {
            targets.version += 1;
            targets.expires = expires_in_days(now, expiry.targets_days);
            self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))?;
            report.roles.insert(0, "targets".to_string());
        } else {
            snapshot.version += 1;
            snapshot.expires = expires_in_days(now, expiry.snapshot_days);
            self.write_snapshot_timestamp(keys, expiry, &snapshot)?;
        }
        Ok(report)
    }

    /// Every release clients can see, with its controls and the role holding it, ordered by
    /// app, channel, platform and version (SemVer order); only `app`'s when given. Reads the
    /// metadata through the timestamp, without the publish lock.
    pub fn list_releases(&self, app: Option<&str>) -> Result<Vec<ReleaseListing>> {
        let (targets, snapshot) = self.current_targets()?;
        let mut roles = vec![("targets".to_string(), targets.targets.clone())];
        for spec in targets.delegations.iter().flat_map(|d| &d.roles) {
            let role_targets = self.delegated_targets(&snapshot, &spec.name)?;
            // Clients take from a delegated role only the paths it is trusted for.
            let trusted = role_targets
                .targets
                .into_iter()
                .filter(|(name, _)| spec.is_for(name))
                .collect();
            roles.push((spec.name.clone(), trusted));
        }
        // The top-level role is searched first by clients: its entry wins.
        let mut seen = BTreeSet::new();
        let now = SystemTime::now();
        let mut listed = Vec::new();
        for (role, role_targets) in &roles {
            for release in releases(role_targets) {
                if app.is_some_and(|app| app != release.custom.app)
                    || !seen.insert(release.target_name.clone())
                {
                    continue;
                }
                let control = &release.custom.control;
                listed.push((
                    release.semver.clone(),
                    ReleaseListing {
                        app: release.custom.app.clone(),
                        channel: release.custom.channel.clone(),
                        platform: release.custom.platform.clone(),
                        version: release.custom.version.to_string(),
                        state: control.state,
                        rollout: control.rollout.clone(),
                        rollout_percent: control
                            .rollout
                            .as_ref()
                            .map_or(100.0, |r| r.percent_at(now)),
                        groups: control.groups.clone(),
                        installs: control.installs.clone(),
                        from: control.from.clone(),
                        stop: control.stop,
                        critical: control.critical,
                        expires: control.expires.clone(),
                        custom: release.custom.data.clone(),
                        role: role.clone(),
                        target: release.target_name.clone(),
                    },
                ));
            }
        }
        listed.sort_by(|(a_version, a), (b_version, b)| {
            (&a.app, &a.channel, &a.platform)
                .cmp(&(&b.app, &b.channel, &b.platform))
                .then_with(|| a_version.cmp(b_version))
        });
        Ok(listed.into_iter().map(|(_, listing)| listing).collect())
    }
}

/// Applies `change` to every entry of `targets` that `selector` matches, recording each in
/// `report`; returns whether any changed.
fn change_matching(
    targets: &mut Targets,
    selector: &ReleaseSelector,
    change: &ControlChange,
    report: &mut ControlReport,
) -> Result<bool> {
    let mut any = false;
    for (name, target) in targets.targets.iter_mut() {
        if !selector.matches(name) {
            continue;
        }
        if change_entry(name, target, change)? {
            report.changed.push(name.clone());
            any = true;
        } else {
            report.unchanged.push(name.clone());
        }
    }
    Ok(any)
}

/// Changes `custom.control` of one release entry, leaving every other field as it is;
/// returns whether it changed. A control this version cannot read (a newer publisher's
/// field) is refused rather than rewritten without it.
fn change_entry(name: &str, target: &mut TargetFile, change: &ControlChange) -> Result<bool> {
    let custom = target
        .custom
        .as_mut()
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::format(name, "the target has no `custom` object: not a release"))?;
    let before: Control = match custom.get("control") {
        None => Control::default(),
        Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
            Error::format(
                format!("{name}: custom.control"),
                format!("{e}; this appupdate cannot read it and does not change it (use a newer appupdate)"),
            )
        })?,
    };
    let mut control = before.clone();
    change.apply(&mut control);
    control.check(name).map_err(Error::Invalid)?;
    if control == before {
        return Ok(false);
    }
    if control == Control::default() {
        custom.remove("control");
    } else {
        let value = serde_json::to_value(&control)
            .map_err(|e| Error::Invalid(format!("{name}: custom.control: {e}")))?;
        custom.insert("control".into(), value);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(custom: Value) -> TargetFile {
        TargetFile {
            length: 1,
            hashes: BTreeMap::new(),
            custom: Some(custom),
            extra: Map::new(),
        }
    }

    #[test]
    fn a_change_touches_only_the_control() {
        let mut target = entry(serde_json::json!({
            "app": "demo", "version": "1.0.0", "channel": "stable", "platform": "any",
            "executable": "bin/app", "data": {"notes": "hi"}, "manifest_zst": {"length": 3},
        }));
        let before = target.custom.clone().unwrap();
        assert!(change_entry("demo", &mut target, &ControlChange::Pause).unwrap());
        let after = target.custom.clone().unwrap();
        assert_eq!(after["control"], serde_json::json!({"state": "paused"}));
        let mut rest = after.as_object().unwrap().clone();
        rest.remove("control");
        assert_eq!(Value::Object(rest), before);
        assert!(!change_entry("demo", &mut target, &ControlChange::Pause).unwrap());
        // Back to the default: the field goes away, as when published without a control.
        assert!(change_entry("demo", &mut target, &ControlChange::Resume).unwrap());
        assert_eq!(target.custom.unwrap(), before);
    }

    #[test]
    fn an_unreadable_control_is_not_rewritten() {
        let mut target = entry(serde_json::json!({"control": {"countries": ["fr"]}}));
        let message = change_entry("demo/x", &mut target, &ControlChange::Pull)
            .unwrap_err()
            .to_string();
        assert!(message.contains("custom.control"), "{message}");
    }

    #[test]
    fn the_selector_matches_one_version_on_one_or_every_platform() {
        let mut selector = ReleaseSelector {
            app: "demo".into(),
            channel: "stable".into(),
            version: "1.0.0".into(),
            platform: None,
        };
        assert!(selector.matches("demo/stable/any/1.0.0/manifest.json"));
        assert!(selector.matches("demo/stable/linux-x86_64/1.0.0/manifest.json"));
        assert!(!selector.matches("demo/beta/any/1.0.0/manifest.json"));
        assert!(!selector.matches("demo/stable/any/1.0.0+b/manifest.json"));
        assert!(!selector.matches("demo2/stable/any/1.0.0/manifest.json"));
        selector.platform = Some("any".into());
        assert!(!selector.matches("demo/stable/linux-x86_64/1.0.0/manifest.json"));
        assert!(selector.matches("demo/stable/any/1.0.0/manifest.json"));
    }
}
