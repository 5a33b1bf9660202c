//! Releases as TUF targets, and picking the one this machine may have.
//!
//! A release is the target `<app>/<channel>/<platform>/<version>/manifest.json` whose signed
//! `custom` object repeats those four fields and names the executable. Both must agree: a
//! target whose name and custom fields differ is ignored, so a release cannot be relabelled
//! for another app or platform.

use appstart_layout::hooks::Hooks;
use appstart_layout::{RelativePath, VersionName};
use serde::{Deserialize, Serialize};

use crate::control::Control;
use crate::manifest::check_label;
use crate::tuf::metadata::TargetFile;

/// Platform name of releases that run anywhere.
pub const ANY_PLATFORM: &str = "any";
/// Default channel.
pub const DEFAULT_CHANNEL: &str = "stable";

/// This machine's platform, e.g. `linux-x86_64`.
pub fn current_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The target name of a release.
pub fn target_name(app: &str, channel: &str, platform: &str, version: &VersionName) -> String {
    format!("{app}/{channel}/{platform}/{version}/manifest.json")
}

/// The signed `custom` fields of a release target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseCustom {
    /// App name.
    pub app: String,
    /// Version.
    pub version: VersionName,
    /// Channel.
    pub channel: String,
    /// Platform or `any`.
    pub platform: String,
    /// Executable inside the version folder.
    pub executable: RelativePath,
    /// Who may take it, and when (`docs/rollout.md`); absent: everyone, now.
    #[serde(default, skip_serializing_if = "is_open")]
    pub control: Control,
    /// The publisher's own data (`publish --custom`), passed to the app as it is.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Programs of the release to run around the install and switch (`publish --hook`);
    /// a release whose hooks this client cannot read is ignored, never taken without them.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
}

fn is_open(control: &Control) -> bool {
    *control == Control::default()
}

/// A release found in trusted targets metadata.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Release {
    /// Its target name.
    pub target_name: String,
    /// Its target entry (length and hashes of the manifest).
    pub target: TargetFile,
    /// Its custom fields.
    pub custom: ReleaseCustom,
    /// Its version, parsed as SemVer for ordering.
    pub semver: semver::Version,
}

impl Release {
    /// The version.
    pub fn version(&self) -> &VersionName {
        &self.custom.version
    }
}

/// Every well-formed release among `targets` (name, entry). Other targets are skipped.
pub fn releases<'a>(
    targets: impl IntoIterator<Item = (&'a String, &'a TargetFile)>,
) -> Vec<Release> {
    targets
        .into_iter()
        .filter_map(|(name, target)| parse_release(name, target))
        .collect()
}

fn parse_release(name: &str, target: &TargetFile) -> Option<Release> {
    let custom: ReleaseCustom = match serde_json::from_value(target.custom.clone()?) {
        Ok(custom) => custom,
        Err(err) => {
            log::warn!("ignoring target {name}: its custom fields cannot be read: {err}");
            return None;
        }
    };
    for (field, value) in [
        ("app", &custom.app),
        ("channel", &custom.channel),
        ("platform", &custom.platform),
    ] {
        check_label(field, value).ok()?;
    }
    if name
        != target_name(
            &custom.app,
            &custom.channel,
            &custom.platform,
            &custom.version,
        )
    {
        log::warn!("ignoring target {name}: its name does not match its custom fields");
        return None;
    }
    if let Err(message) = custom
        .control
        .check(name)
        .and_then(|()| custom.hooks.check())
    {
        log::warn!("ignoring target {name}: {message}");
        return None;
    }
    let semver = match semver::Version::parse(custom.version.as_str()) {
        Ok(v) => v,
        Err(e) => {
            log::warn!("ignoring target {name}: version is not SemVer: {e}");
            return None;
        }
    };
    Some(Release {
        target_name: name.to_string(),
        target: target.clone(),
        custom,
        semver,
    })
}

/// What a machine may install.
#[derive(Debug, Clone)]
pub struct Eligibility<'a> {
    /// The app.
    pub app: &'a str,
    /// The channel.
    pub channel: &'a str,
    /// The machine's platform.
    pub platform: &'a str,
}

impl Eligibility<'_> {
    /// Whether `release` is for this app, channel and platform (or any platform).
    pub fn allows(&self, release: &Release) -> bool {
        release.custom.channel == self.channel && self.allows_any_channel(release)
    }

    /// Whether `release` is for this app and platform (or any platform), in any channel.
    pub fn allows_any_channel(&self, release: &Release) -> bool {
        release.custom.app == self.app
            && (release.custom.platform == self.platform || release.custom.platform == ANY_PLATFORM)
    }
}

/// The installed version that `version` equals ignoring ASCII case but is spelled differently
/// from, if any. Such a release is not eligible: on a case-insensitive file system (macOS,
/// Windows) both would be the same folder under `versions/`, so installing it would replace
/// the folder of a version that may be running.
pub fn case_conflict<'v>(
    version: &VersionName,
    installed: &'v [VersionName],
) -> Option<&'v VersionName> {
    installed
        .iter()
        .find(|other| *other != version && other.as_str().eq_ignore_ascii_case(version.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::metadata::Targets;
    use std::collections::BTreeMap;

    /// Publishers name Windows releases `windows-x86_64`: a Windows client must pick them.
    #[test]
    fn this_machines_platform_is_os_dash_arch() {
        let platform = current_platform();
        if cfg!(all(windows, target_arch = "x86_64")) {
            assert_eq!(platform, "windows-x86_64");
        } else if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(platform, "linux-x86_64");
        } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
            assert_eq!(platform, "macos-aarch64");
        }
        check_label("platform", &platform).unwrap();
    }

    fn release(app: &str, channel: &str, platform: &str, version: &str) -> (String, TargetFile) {
        let version_name = VersionName::parse(version).unwrap();
        let custom = serde_json::json!({
            "app": app, "version": version, "channel": channel, "platform": platform, "executable": "bin/app"
        });
        (
            target_name(app, channel, platform, &version_name),
            TargetFile {
                length: 1,
                hashes: BTreeMap::new(),
                custom: Some(custom),
                extra: Default::default(),
            },
        )
    }

    fn targets(entries: Vec<(String, TargetFile)>) -> Targets {
        Targets {
            type_: "targets".into(),
            spec_version: "1.0.31".into(),
            version: 1,
            expires: "2100-01-01T00:00:00Z".into(),
            targets: entries.into_iter().collect(),
            delegations: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn picks_the_highest_eligible_version() {
        let all_targets = targets(vec![
            release("demo", "stable", "any", "1.0.0"),
            release("demo", "stable", "linux-x86_64", "1.2.0"),
            release("demo", "beta", "any", "2.0.0"),
            release("other", "stable", "any", "9.0.0"),
            release("demo", "stable", "windows-x86_64", "3.0.0"),
            release("demo", "stable", "any", "1.10.0"),
        ]);
        let all = releases(&all_targets.targets);
        let eligible = Eligibility {
            app: "demo",
            channel: "stable",
            platform: "linux-x86_64",
        };
        let open: Vec<Release> = all.into_iter().filter(|r| eligible.allows(r)).collect();
        let id = crate::control::install_id::InstallId::random().unwrap();
        let policy = crate::control::policy::Policy::default();
        let local = jiff::Zoned::now();
        let context = |current| crate::control::select::Context {
            install_id: &id,
            groups: &[],
            app: "demo",
            current,
            current_release: None,
            switching_channel: false,
            stop_pending: false,
            policy: &policy,
            now: std::time::SystemTime::now(),
            local: &local,
        };
        let chosen = crate::control::select::select(&open, &context(None)).chosen;
        assert_eq!(
            chosen.unwrap().version().as_str(),
            "1.10.0",
            "SemVer order, not text order"
        );
        let current = semver::Version::parse("1.10.0").unwrap();
        let none = crate::control::select::select(&open, &context(Some(&current))).chosen;
        assert!(none.is_none());
    }

    /// Regression: `1.0.0-rc` and `1.0.0-RC` are one folder on macOS and Windows; installing
    /// one replaced the folder of the other while it ran.
    #[test]
    fn a_version_differing_only_in_case_from_an_installed_one_conflicts() {
        let v = |s: &str| VersionName::parse(s).unwrap();
        let installed = [v("1.0.0-RC"), v("0.9.0")];
        assert_eq!(
            case_conflict(&v("1.0.0-rc"), &installed),
            Some(&v("1.0.0-RC"))
        );
        assert_eq!(case_conflict(&v("1.0.0-RC"), &installed), None, "the same");
        assert_eq!(case_conflict(&v("1.0.1"), &installed), None);
    }

    /// A client must not take a release without running a hook it cannot read.
    #[test]
    fn a_release_with_hooks_this_client_cannot_read_is_ignored() {
        let (name, mut target) = release("demo", "stable", "any", "1.0.0");
        let custom = target.custom.as_mut().unwrap();
        custom["hooks"] =
            serde_json::json!({"pre-switch": {"path": "bin/check", "timeout_secs": 5}});
        let mut map = BTreeMap::new();
        map.insert(name.clone(), target.clone());
        let all = releases(&map);
        assert_eq!(
            all[0]
                .custom
                .hooks
                .pre_switch
                .as_ref()
                .unwrap()
                .timeout_secs,
            5
        );
        for hooks in [
            serde_json::json!({"pre-uninstall": {"path": "bin/x", "timeout_secs": 5}}),
            serde_json::json!({"pre-switch": {"path": "bin/x", "timeout_secs": 5, "as": "root"}}),
            serde_json::json!({"pre-switch": {"path": "bin/x", "timeout_secs": 0}}),
            serde_json::json!({"pre-switch": {"path": "../x", "timeout_secs": 5}}),
            serde_json::json!(["bin/x"]),
        ] {
            target.custom.as_mut().unwrap()["hooks"] = hooks.clone();
            map.insert(name.clone(), target.clone());
            assert!(releases(&map).is_empty(), "{hooks}");
        }
    }

    #[test]
    fn a_target_whose_name_disagrees_with_its_custom_fields_is_ignored() {
        let (_, target) = release("demo", "stable", "any", "1.0.0");
        let named = targets(vec![(
            "other/stable/any/1.0.0/manifest.json".into(),
            target,
        )]);
        let all = releases(&named.targets);
        assert!(all.is_empty());
    }
}
