//! The attacks of the TUF specification and of updater post-mortems, as generated cases.
//!
//! Each test builds a real repository with the CLI, installs a client, then plays the
//! attacker: it rewrites files on the server, re-signing them with a stolen key where the
//! attack assumes one. Every attack must be refused with a clear error, and `appstart.toml`
//! and the version folders must be exactly as before. The trusted metadata follows the
//! specification (1.0.34, section 5): each role is stored as soon as it is verified, so an
//! attack refused at a later step leaves the roles verified before it stored (the new
//! timestamp before a bad snapshot, say) and nothing after it;
//! [`Scenario::assert_refused_storing`] names those roles, [`Scenario::assert_refused`]
//! expects none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::Digest;
use updater_core::advanced::tuf::keys::{KeyDir, SigningKey};
use updater_core::advanced::tuf::sign::sign_metadata;

use crate::harness::{
    Publisher, Server, appupdate, appupdate_json, appupdate_ok, temp_dir, text, tree_snapshot,
};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// A client installed from a repository that has since published 2.0.0 (not yet checked).
pub(crate) struct Scenario {
    pub(crate) publisher: Publisher,
    /// Kept running for the scenario's lifetime.
    _server: Server,
    _home: tempfile::TempDir,
    pub(crate) dir: PathBuf,
}

impl Scenario {
    pub(crate) fn new() -> Self {
        let publisher = Publisher::new();
        publisher.publish("sample", "1.0.0", &[("bin/app", APP, true)], &[]);
        let server = Server::start(&publisher.repo());
        let home = temp_dir();
        let dir = home.path().join("app");
        crate::harness::install(&publisher, &server.url, "sample", &dir);
        publisher.publish(
            "sample",
            "2.0.0",
            &[("bin/app", APP, true), ("two", b"2", false)],
            &[],
        );
        Scenario {
            publisher,
            _server: server,
            _home: home,
            dir,
        }
    }

    pub(crate) fn editor(&self) -> Editor {
        Editor {
            repo: self.publisher.repo(),
            keys: KeyDir::new(self.publisher.keys()),
        }
    }

    /// What must not change when an attack is refused: trusted metadata, the launcher
    /// config, and the version folders.
    fn state(&self) -> InstallState {
        let mut metadata = tree_snapshot(&self.dir.join("state/metadata"));
        metadata.remove("timestamp.etag");
        InstallState {
            metadata,
            config: std::fs::read(self.dir.join("appstart.toml")).unwrap(),
            versions: tree_snapshot(&self.dir.join("versions")),
        }
    }

    /// Runs `appupdate COMMAND --dir DIR`: it must fail, say `needle`, and change nothing.
    fn assert_refused(&self, command: &str, needle: &str) {
        self.assert_refused_storing(command, needle, &[]);
    }

    /// Like [`Scenario::assert_refused`] for an attack that fails after earlier roles of the
    /// same refresh verified. The specification stores each role as soon as it is verified
    /// (5.3.8, 5.4.5, 5.5.7, 5.6.6), so the roles in `stored` must now be the ones the server
    /// serves, and those written `-role` must be gone (deleted by 5.3.11 after a key
    /// rotation); every other trusted file, `appstart.toml` and the version folders must be
    /// exactly as before.
    fn assert_refused_storing(&self, command: &str, needle: &str, stored: &[&str]) {
        let mut before = self.state();
        let output = appupdate(&[command, "--dir", self.dir.to_str().unwrap()]);
        let stderr = text(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(4),
            "the attack was not refused as unverified (exit 4): {}{stderr}",
            text(&output.stdout)
        );
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
        let mut after = self.state();
        let editor = self.editor();
        for role in stored {
            if let Some(deleted) = role.strip_prefix('-') {
                let name = format!("{deleted}.json");
                assert!(
                    !self.dir.join("state/metadata").join(&name).exists(),
                    "{name} kept"
                );
                before.metadata.remove(&name);
                after.metadata.remove(&name);
                continue;
            }
            let served = match *role {
                "timestamp" => "timestamp.json".to_string(),
                "snapshot" => format!("{}.snapshot.json", editor.snapshot_version()),
                "targets" => format!("{}.targets.json", editor.targets_version()),
                "root" => {
                    let root = std::fs::read(self.dir.join("state/metadata/root.json")).unwrap();
                    let root: Value = serde_json::from_slice(&root).unwrap();
                    format!("{}.root.json", root["signed"]["version"])
                }
                other => panic!("no served file for {other}"),
            };
            let trusted =
                std::fs::read(self.dir.join("state/metadata").join(format!("{role}.json")));
            assert!(
                trusted.ok() == std::fs::read(editor.path(&served)).ok(),
                "{role}.json: the {served} that verified was not stored"
            );
            before.metadata.remove(&format!("{role}.json"));
            after.metadata.remove(&format!("{role}.json"));
        }
        let changed: Vec<&String> = after
            .metadata
            .keys()
            .chain(before.metadata.keys())
            .filter(|name| after.metadata.get(*name) != before.metadata.get(*name))
            .collect();
        assert!(
            after == before,
            "the trusted state or the install changed (metadata: {changed:?})"
        );
        assert!(
            std::fs::read_to_string(self.dir.join("appstart.toml"))
                .unwrap()
                .contains("current = \"1.0.0\"")
        );
    }

    pub(crate) fn check(&self) -> Value {
        appupdate_json(&["check", "--dir", self.dir.to_str().unwrap()])
    }
}

#[derive(Debug, PartialEq)]
struct InstallState {
    metadata: BTreeMap<String, (u32, String)>,
    config: Vec<u8>,
    versions: BTreeMap<String, (u32, String)>,
}

/// Rewrites a repository's metadata the way an attacker (or a compromised key) would.
pub(crate) struct Editor {
    repo: PathBuf,
    keys: KeyDir,
}

impl Editor {
    /// An editor of `publisher`'s repository, signing with its keys.
    pub(crate) fn of(publisher: &Publisher) -> Self {
        Editor {
            repo: publisher.repo(),
            keys: KeyDir::new(publisher.keys()),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.repo.join("metadata").join(name)
    }

    pub(crate) fn signed(&self, name: &str) -> Value {
        let file: Value = serde_json::from_slice(&std::fs::read(self.path(name)).unwrap()).unwrap();
        file["signed"].clone()
    }

    pub(crate) fn key(&self, role: &str) -> SigningKey {
        self.keys.role_key(role).unwrap()
    }

    pub(crate) fn write(&self, name: &str, signed: &Value, keys: &[&SigningKey]) -> Vec<u8> {
        let bytes = sign_metadata(signed, keys).unwrap();
        std::fs::write(self.path(name), &bytes).unwrap();
        bytes
    }

    pub(crate) fn timestamp(&self) -> Value {
        self.signed("timestamp.json")
    }

    pub(crate) fn snapshot_version(&self) -> u64 {
        self.timestamp()["meta"]["snapshot.json"]["version"]
            .as_u64()
            .unwrap()
    }

    pub(crate) fn targets_version(&self) -> u64 {
        let snapshot = self.signed(&format!("{}.snapshot.json", self.snapshot_version()));
        snapshot["meta"]["targets.json"]["version"]
            .as_u64()
            .unwrap()
    }

    /// A new timestamp (version + 1) naming `snapshot` (its version and bytes).
    pub(crate) fn new_timestamp(
        &self,
        snapshot_version: u64,
        snapshot_bytes: &[u8],
        edit: impl FnOnce(&mut Value),
    ) {
        let mut timestamp = self.timestamp();
        timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
        timestamp["meta"]["snapshot.json"] = meta(snapshot_version, snapshot_bytes);
        edit(&mut timestamp);
        self.write("timestamp.json", &timestamp, &[&self.key("timestamp")]);
    }

    /// A new snapshot (version + 1) naming `targets`, and a timestamp for it.
    pub(crate) fn new_snapshot(
        &self,
        targets_version: u64,
        targets_bytes: &[u8],
        edit: impl FnOnce(&mut Value),
    ) {
        let mut snapshot = self.signed(&format!("{}.snapshot.json", self.snapshot_version()));
        let version = snapshot["version"].as_u64().unwrap() + 1;
        snapshot["version"] = json!(version);
        snapshot["meta"]["targets.json"] = meta(targets_version, targets_bytes);
        edit(&mut snapshot);
        let bytes = self.write(
            &format!("{version}.snapshot.json"),
            &snapshot,
            &[&self.key("snapshot")],
        );
        self.new_timestamp(version, &bytes, |_| {});
    }

    /// A new targets version made by `edit`, with snapshot and timestamp for it.
    pub(crate) fn new_targets(&self, edit: impl FnOnce(&mut Value)) {
        let mut targets = self.signed(&format!("{}.targets.json", self.targets_version()));
        let version = targets["version"].as_u64().unwrap() + 1;
        targets["version"] = json!(version);
        edit(&mut targets);
        let bytes = self.write(
            &format!("{version}.targets.json"),
            &targets,
            &[&self.key("targets")],
        );
        self.new_snapshot(version, &bytes, |_| {});
    }

    /// Publishes `manifest` (raw JSON, bypassing the publisher's checks) as a release.
    fn publish_raw_release(&self, manifest: &Value) {
        let bytes = serde_json::to_vec_pretty(manifest).unwrap();
        self.publish_release_file(manifest, &bytes, |_, _| {});
    }

    /// Publishes `bytes` as the manifest file of `manifest`'s release; `edit` may then change
    /// the file on the server and the signed target entry.
    fn publish_release_file(
        &self,
        manifest: &Value,
        bytes: &[u8],
        edit: impl FnOnce(&Path, &mut Value),
    ) {
        let sha = format!("{:x}", sha2::Sha256::digest(bytes));
        let (app, version) = (
            manifest["app"].as_str().unwrap(),
            manifest["version"].as_str().unwrap(),
        );
        let dir = self
            .repo
            .join(format!("targets/{app}/stable/any/{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{sha}.manifest.json"));
        std::fs::write(&file, bytes).unwrap();
        let name = format!("{app}/stable/any/{version}/manifest.json");
        let mut entry = json!({
            "length": bytes.len(),
            "hashes": {"sha256": sha},
            "custom": {"app": app, "version": version, "channel": "stable", "platform": "any", "executable": manifest["executable"]},
        });
        edit(&file, &mut entry);
        self.new_targets(|targets| {
            targets["targets"][name] = entry;
        });
    }
}

pub(crate) fn meta(version: u64, bytes: &[u8]) -> Value {
    json!({"version": version, "length": bytes.len(), "hashes": {"sha256": format!("{:x}", sha2::Sha256::digest(bytes))}})
}

fn past() -> Value {
    json!("2001-01-01T00:00:00Z")
}

#[test]
fn a_bad_signature_is_refused() {
    let scenario = Scenario::new();
    // Tamper with the signed content without re-signing.
    let path = scenario.editor().path("timestamp.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let tampered = text.replacen("\"version\": ", "\"version\": 9", 1);
    assert_ne!(text, tampered);
    std::fs::write(&path, tampered).unwrap();
    scenario.assert_refused(
        "check",
        "0 valid signature(s) from distinct trusted keys, threshold is 1",
    );
}

#[test]
fn a_signature_by_an_unknown_key_is_refused() {
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let mut timestamp = editor.timestamp();
    timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
    editor.write(
        "timestamp.json",
        &timestamp,
        &[&SigningKey::generate().unwrap()],
    );
    scenario.assert_refused("check", "timestamp metadata");
    scenario.assert_refused("check", "0 valid signature(s)");
}

#[test]
fn duplicate_signatures_by_one_key_do_not_meet_a_threshold_of_two() {
    // A repository whose timestamp role needs 2 of its 2 keys.
    let publisher = Publisher::new();
    let keys = publisher.dir.path().join("keys2");
    // One key per role, then a second timestamp key (timestamp.2.key).
    appupdate_ok(&["keys", "generate", "--out", keys.to_str().unwrap()]);
    appupdate_ok(&[
        "keys",
        "generate",
        "--out",
        keys.to_str().unwrap(),
        "--role",
        "timestamp",
    ]);
    let repo = publisher.dir.path().join("repo2");
    appupdate_ok(&[
        "repo",
        "init",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--threshold",
        "timestamp=2",
    ]);
    let root: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/1.root.json")).unwrap()).unwrap();
    assert_eq!(root["signed"]["roles"]["timestamp"]["threshold"], 2);
    assert_eq!(
        root["signed"]["roles"]["timestamp"]["keyids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let source = publisher.dir.path().join("src2");
    std::fs::create_dir_all(source.join("bin")).unwrap();
    std::fs::write(source.join("bin/app"), APP).unwrap();
    crate::harness::set_mode(&source.join("bin/app"), 0o755);
    appupdate_ok(&[
        "publish",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--app",
        "sample",
        "--version",
        "1.0.0",
        "--exe",
        "bin/app",
        "--platform",
        "any",
        source.to_str().unwrap(),
    ]);
    let server = Server::start(&repo);
    let home = temp_dir();
    let dir = home.path().join("app");
    appupdate_ok(&[
        "install",
        "--url",
        &server.url,
        "--trusted-root",
        repo.join("metadata/1.root.json").to_str().unwrap(),
        "--app",
        "sample",
        "--dir",
        dir.to_str().unwrap(),
    ]);

    // The attacker holds one timestamp key and signs twice with it.
    let editor = Editor {
        repo: repo.clone(),
        keys: KeyDir::new(&keys),
    };
    let mut timestamp = editor.timestamp();
    timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
    let one = editor.keys.role_keys("timestamp").unwrap().remove(0);
    let bytes = sign_metadata(&timestamp, &[&one]).unwrap();
    let mut file: Value = serde_json::from_slice(&bytes).unwrap();
    let signature = file["signatures"][0].clone();
    file["signatures"].as_array_mut().unwrap().push(signature);
    std::fs::write(
        editor.path("timestamp.json"),
        serde_json::to_vec(&file).unwrap(),
    )
    .unwrap();
    let scenario = Scenario {
        publisher,
        _server: server,
        _home: home,
        dir,
    };
    // python-tuf refuses such a file outright; so do we, before counting (that each key
    // counts once towards a threshold is checked in tuf/sign.rs's unit tests).
    scenario.assert_refused("check", "more than one signature by key id");
}

#[test]
fn one_key_listed_under_two_key_ids_does_not_meet_a_threshold_of_two() {
    // Regression: thresholds counted key ids, so a root listing the same public key twice
    // (here once in upper-case hex, which gives another key id) let one stolen timestamp
    // key meet a threshold of 2.
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let key = editor.key("timestamp");
    let mut copy = key.public_key();
    copy.keyval.public = copy.keyval.public.to_uppercase();
    let copy_id = updater_core::advanced::tuf::keys::key_id(&copy);
    assert_ne!(copy_id, key.key_id());
    let mut root = editor.signed("1.root.json");
    root["version"] = json!(2);
    root["keys"][&copy_id] = serde_json::to_value(&copy).unwrap();
    root["roles"]["timestamp"] = json!({"keyids": [key.key_id(), copy_id], "threshold": 2});
    editor.write("2.root.json", &root, &[&editor.key("root")]);

    let mut timestamp = editor.timestamp();
    timestamp["version"] = json!(timestamp["version"].as_u64().unwrap() + 1);
    let mut file: Value =
        serde_json::from_slice(&sign_metadata(&timestamp, &[&key]).unwrap()).unwrap();
    let mut second = file["signatures"][0].clone();
    second["keyid"] = json!(copy_id);
    file["signatures"].as_array_mut().unwrap().push(second);
    std::fs::write(
        editor.path("timestamp.json"),
        serde_json::to_vec(&file).unwrap(),
    )
    .unwrap();
    // Root 2 verified and is stored; it changed the timestamp keys, so the trusted timestamp
    // and snapshot are deleted (5.3.11).
    scenario.assert_refused_storing(
        "check",
        "timestamp metadata (http",
        &["root", "-timestamp", "-snapshot"],
    );
    scenario.assert_refused_storing(
        "check",
        "1 valid signature(s) from distinct trusted keys, threshold is 2",
        &["root", "-timestamp", "-snapshot"],
    );
}

#[test]
fn rollback_of_the_timestamp_is_refused() {
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let old = std::fs::read(editor.path("timestamp.json")).unwrap();
    scenario.publisher.publish(
        "sample",
        "3.0.0",
        &[("bin/app", APP, true), ("three", b"3", false)],
        &[],
    );
    assert_eq!(scenario.check()["available"], "3.0.0");
    std::fs::write(editor.path("timestamp.json"), old).unwrap();
    scenario.assert_refused("check", "rollback");
}

#[test]
fn rollback_of_the_snapshot_is_refused() {
    let scenario = Scenario::new();
    assert_eq!(scenario.check()["available"], "2.0.0");
    // A validly signed new timestamp naming an older snapshot.
    let editor = scenario.editor();
    let old_version = editor.snapshot_version() - 1;
    let old_bytes = std::fs::read(editor.path(&format!("{old_version}.snapshot.json"))).unwrap();
    editor.new_timestamp(old_version, &old_bytes, |_| {});
    scenario.assert_refused("check", "snapshot metadata");
    scenario.assert_refused("check", &format!("version {old_version}, expected >="));
}

#[test]
fn rollback_of_the_targets_is_refused() {
    let scenario = Scenario::new();
    assert_eq!(scenario.check()["available"], "2.0.0");
    // A validly signed new snapshot naming an older targets version.
    let editor = scenario.editor();
    let old_version = editor.targets_version() - 1;
    let old_bytes = std::fs::read(editor.path(&format!("{old_version}.targets.json"))).unwrap();
    editor.new_snapshot(old_version, &old_bytes, |_| {});
    scenario.assert_refused_storing(
        "check",
        &format!("version {old_version}, expected >= {}", old_version + 1),
        &["timestamp"],
    );
}

#[test]
fn freeze_attacks_with_expired_metadata_are_refused() {
    // Each role expired in turn, validly signed with its own key.
    for role in ["timestamp", "snapshot", "targets", "root"] {
        let scenario = Scenario::new();
        let editor = scenario.editor();
        match role {
            "timestamp" => {
                let version = editor.snapshot_version();
                let bytes =
                    std::fs::read(editor.path(&format!("{version}.snapshot.json"))).unwrap();
                editor.new_timestamp(version, &bytes, |t| t["expires"] = past());
            }
            "snapshot" => {
                let version = editor.targets_version();
                let bytes = std::fs::read(editor.path(&format!("{version}.targets.json"))).unwrap();
                editor.new_snapshot(version, &bytes, |s| s["expires"] = past());
            }
            "targets" => editor.new_targets(|t| t["expires"] = past()),
            _ => {
                let mut root = editor.signed("1.root.json");
                root["version"] = json!(2);
                root["expires"] = past();
                editor.write("2.root.json", &root, &[&editor.key("root")]);
            }
        }
        // The roles verified before the expired one are stored (a root is stored before
        // its expiry is checked, 5.3.8 then 5.3.10).
        let stored: &[&str] = match role {
            "timestamp" => &[],
            "snapshot" => &["timestamp"],
            "targets" => &["timestamp", "snapshot"],
            _ => &["root"],
        };
        scenario.assert_refused_storing(
            "check",
            &format!("{role} metadata expired at 2001-01-01T00:00:00Z"),
            stored,
        );
    }
}

#[test]
fn mix_and_match_of_metadata_from_different_publishes_is_refused() {
    let scenario = Scenario::new();
    let editor = scenario.editor();
    // The snapshot the timestamp names is replaced by the previous one's content.
    let current = editor.snapshot_version();
    let previous = std::fs::read(editor.path(&format!("{}.snapshot.json", current - 1))).unwrap();
    let good = std::fs::read(editor.path(&format!("{current}.snapshot.json"))).unwrap();
    std::fs::write(editor.path(&format!("{current}.snapshot.json")), &previous).unwrap();
    scenario.assert_refused_storing("check", "mismatch", &["timestamp"]);
    std::fs::write(editor.path(&format!("{current}.snapshot.json")), &good).unwrap();
    // Likewise targets.
    let targets = editor.targets_version();
    let previous = std::fs::read(editor.path(&format!("{}.targets.json", targets - 1))).unwrap();
    std::fs::write(editor.path(&format!("{targets}.targets.json")), &previous).unwrap();
    scenario.assert_refused_storing("check", "mismatch", &["timestamp", "snapshot"]);
}

#[test]
fn endless_metadata_and_oversized_blobs_are_cut_off() {
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let path = editor.path("timestamp.json");
    let good = std::fs::read(&path).unwrap();
    let mut endless = good.clone();
    endless.extend(std::iter::repeat_n(b' ', 100_000));
    std::fs::write(&path, &endless).unwrap();
    scenario.assert_refused("check", "more than 16384 bytes");
    std::fs::write(&path, &good).unwrap();

    // A blob larger than its signed size: the download stops at the signed size.
    let two = scenario
        .publisher
        .manifest("sample/stable/any/2.0.0/manifest.json");
    let entry = two["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "two")
        .unwrap();
    let hash = entry["blake3"].as_str().unwrap();
    let blob = scenario
        .publisher
        .repo()
        .join(format!("blobs/{}/{hash}.zst", &hash[..2]));
    let mut big = std::fs::read(&blob).unwrap();
    big.extend(std::iter::repeat_n(0u8, 1_000_000));
    std::fs::write(&blob, big).unwrap();
    scenario.assert_refused_storing(
        "update",
        &format!("more than {} bytes", entry["blob_size"]),
        &["timestamp", "snapshot", "targets"],
    );
}

#[test]
fn a_signed_length_does_not_lift_the_snapshot_cap() {
    // Regression: the timestamp's signed length used to replace the 4 MiB snapshot cap, so a
    // stolen timestamp key could make every client download (and buffer) 100 GB.
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let version = editor.snapshot_version();
    let path = editor.path(&format!("{version}.snapshot.json"));
    let mut snapshot = std::fs::read(&path).unwrap();
    snapshot.extend(std::iter::repeat_n(b' ', 5 << 20));
    std::fs::write(&path, &snapshot).unwrap();
    editor.new_timestamp(version, &snapshot, |t| {
        t["meta"]["snapshot.json"]["length"] = json!(100u64 << 30);
    });
    scenario.assert_refused_storing(
        "check",
        &format!("more than {} bytes", 4 << 20),
        &["timestamp"],
    );
}

#[test]
fn a_signed_length_does_not_lift_the_manifest_cap() {
    // Regression: the manifest download was capped only by the target's signed length, so a
    // stolen targets key could make every client download (and buffer) any amount.
    let scenario = Scenario::new();
    let mut manifest = scenario
        .publisher
        .manifest("sample/stable/any/2.0.0/manifest.json");
    manifest["version"] = json!("3.0.0");
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let cap = updater_core::advanced::manifest::MAX_MANIFEST_SIZE;
    scenario
        .editor()
        .publish_release_file(&manifest, &bytes, |file, entry| {
            // A sparse file just over the cap costs no disk space.
            let served = std::fs::OpenOptions::new().write(true).open(file).unwrap();
            served.set_len(cap + 1024).unwrap();
            entry["length"] = json!(200u64 << 30);
        });
    scenario.assert_refused_storing(
        "update",
        &format!("more than {cap} bytes"),
        &["timestamp", "snapshot", "targets"],
    );
}

#[test]
fn a_delegation_named_like_a_top_level_role_is_refused() {
    // Regression: delegated role files are stored as `<name>.json` beside the trusted
    // metadata, so a delegation named `root` (signed by a stolen targets key) was written
    // over the trusted root.json.
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let attacker = SigningKey::generate().unwrap();
    let delegated = json!({
        "_type": "targets", "spec_version": "1.0.31", "version": 7,
        "expires": editor.timestamp()["expires"], "targets": {},
    });
    let delegated_bytes = editor.write("7.root.json", &delegated, &[&attacker]);
    let mut targets = editor.signed(&format!("{}.targets.json", editor.targets_version()));
    let version = targets["version"].as_u64().unwrap() + 1;
    targets["version"] = json!(version);
    targets["delegations"] = json!({
        "keys": {attacker.key_id(): attacker.public_key()},
        "roles": [{"name": "root", "keyids": [attacker.key_id()], "threshold": 1,
                   "terminating": false, "paths": ["*"]}],
    });
    let bytes = editor.write(
        &format!("{version}.targets.json"),
        &targets,
        &[&editor.key("targets")],
    );
    editor.new_snapshot(version, &bytes, |snapshot| {
        snapshot["meta"]["root.json"] = meta(7, &delegated_bytes);
    });
    scenario.assert_refused_storing(
        "check",
        &format!("{version}.targets.json: field `delegations.roles[0].name`: \"root\": delegated roles cannot be empty or use top-level role names"),
        &["timestamp", "snapshot"],
    );
}

#[test]
fn fast_forward_recovery_after_the_timestamp_key_is_rotated() {
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let legit = std::fs::read(editor.path("timestamp.json")).unwrap();
    // With the stolen timestamp key, the attacker serves timestamp version 1000.
    let version = editor.snapshot_version();
    let bytes = std::fs::read(editor.path(&format!("{version}.snapshot.json"))).unwrap();
    let mut timestamp = editor.timestamp();
    timestamp["version"] = json!(1000);
    timestamp["meta"]["snapshot.json"] = meta(version, &bytes);
    editor.write("timestamp.json", &timestamp, &[&editor.key("timestamp")]);
    assert_eq!(
        scenario.check()["available"],
        "2.0.0",
        "a validly signed jump is accepted"
    );

    // The publisher restores its repository and rotates every key: a new root names them.
    std::fs::write(editor.path("timestamp.json"), legit).unwrap();
    let new_keys = scenario.publisher.dir.path().join("new-keys");
    appupdate_ok(&[
        "keys",
        "generate",
        "--out",
        new_keys.to_str().unwrap(),
        "--per-role",
    ]);
    appupdate_ok(&[
        "repo",
        "rotate",
        "--repo",
        scenario.publisher.repo().to_str().unwrap(),
        "--keys",
        scenario.publisher.keys().to_str().unwrap(),
        "--new-keys",
        new_keys.to_str().unwrap(),
    ]);
    let timestamp = editor.timestamp();
    assert!(timestamp["version"].as_u64().unwrap() < 1000);
    // The client follows the root chain, forgets the poisoned timestamp and recovers.
    assert_eq!(scenario.check()["available"], "2.0.0");
    let trusted: Value = serde_json::from_slice(
        &std::fs::read(scenario.dir.join("state/metadata/timestamp.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(trusted["signed"]["version"], timestamp["version"]);
    let report = appupdate_json(&["update", "--dir", scenario.dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0");
}

#[test]
fn the_root_chain_is_followed_and_a_skipped_version_is_refused() {
    let scenario = Scenario::new();
    let publisher = &scenario.publisher;
    let keys_b = publisher.dir.path().join("keys-b");
    let keys_c = publisher.dir.path().join("keys-c");
    appupdate_ok(&["keys", "generate", "--out", keys_b.to_str().unwrap()]);
    appupdate_ok(&["keys", "generate", "--out", keys_c.to_str().unwrap()]);
    let repo = publisher.repo();
    appupdate_ok(&[
        "repo",
        "rotate",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        publisher.keys().to_str().unwrap(),
        "--new-keys",
        keys_b.to_str().unwrap(),
    ]);
    appupdate_ok(&[
        "repo",
        "rotate",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys_b.to_str().unwrap(),
        "--new-keys",
        keys_c.to_str().unwrap(),
    ]);

    // Serving root 3 as 2.root.json (skipping 2) is refused: it is not signed by root 1's keys.
    let two = std::fs::read(repo.join("metadata/2.root.json")).unwrap();
    std::fs::copy(
        repo.join("metadata/3.root.json"),
        repo.join("metadata/2.root.json"),
    )
    .unwrap();
    scenario.assert_refused("check", "root metadata");
    // Even correctly signed by the old and new keys, a root must have exactly version N+1.
    let mut wrong: Value = serde_json::from_slice(&two).unwrap();
    let mut signed = wrong["signed"].take();
    signed["version"] = json!(3);
    let old_key = KeyDir::new(publisher.keys()).role_key("root").unwrap();
    let new_key = KeyDir::new(&keys_b).role_key("root").unwrap();
    std::fs::write(
        repo.join("metadata/2.root.json"),
        sign_metadata(&signed, &[&old_key, &new_key]).unwrap(),
    )
    .unwrap();
    scenario.assert_refused("check", "version 3, expected 2");
    // Without 2.root.json the client cannot reach the keys that sign the rest.
    std::fs::remove_file(repo.join("metadata/2.root.json")).unwrap();
    scenario.assert_refused("check", "valid signature(s)");
    // A root 2 signed only by the new keys is refused.
    let mut forged: Value = serde_json::from_slice(&two).unwrap();
    let signed = forged["signed"].take();
    let only_new =
        sign_metadata(&signed, &[&KeyDir::new(&keys_b).role_key("root").unwrap()]).unwrap();
    std::fs::write(repo.join("metadata/2.root.json"), only_new).unwrap();
    scenario.assert_refused("check", "root metadata");
    // The real chain 1 -> 2 -> 3 is followed.
    std::fs::write(repo.join("metadata/2.root.json"), two).unwrap();
    assert_eq!(scenario.check()["available"], "2.0.0");
    let trusted: Value = serde_json::from_slice(
        &std::fs::read(scenario.dir.join("state/metadata/root.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(trusted["signed"]["version"], 3);
}

#[test]
fn path_traversal_in_a_signed_manifest_is_refused() {
    for evil in [
        "../evil.txt",
        "/tmp/evil.txt",
        "a/../../evil.txt",
        "C:/evil.txt",
        "a\\..\\evil.txt",
        "a/\u{0}/evil.txt",
        "./evil.txt",
    ] {
        let scenario = Scenario::new();
        let two = scenario
            .publisher
            .manifest("sample/stable/any/2.0.0/manifest.json");
        let mut manifest = two.clone();
        manifest["version"] = json!("3.0.0");
        manifest["files"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|f| f["path"] == "two")
            .unwrap()["path"] = json!(evil);
        scenario.editor().publish_raw_release(&manifest);
        scenario.assert_refused_storing(
            "update",
            "relative path",
            &["timestamp", "snapshot", "targets"],
        );
        assert!(!scenario.dir.parent().unwrap().join("evil.txt").exists());
        assert!(!Path::new("/tmp/evil.txt").exists() || evil != "/tmp/evil.txt");
    }
}

/// Runs `appupdate publish` of a source folder holding `files` (plus `bin/app`): it must
/// fail. Returns its stderr.
fn publish_refused(publisher: &Publisher, files: &[&str]) -> String {
    let source = publisher.dir.path().join("src-refused");
    let _ = std::fs::remove_dir_all(&source);
    for path in files.iter().chain(&["bin/app"]) {
        let full = source.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, APP).unwrap();
        crate::harness::set_mode(&full, 0o755);
    }
    let (repo, keys) = (publisher.repo(), publisher.keys());
    let output = appupdate(&[
        "publish",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--app",
        "sample",
        "--version",
        "9.0.0",
        "--exe",
        "bin/app",
        "--platform",
        "any",
        source.to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "published {files:?}: {stderr}"
    );
    stderr
}

/// Replaces the path of file `two` in release 2.0.0's manifest and publishes it as 3.0.0,
/// signed (the publisher's checks bypassed).
fn publish_with_path(scenario: &Scenario, path: &str) {
    let mut manifest = scenario
        .publisher
        .manifest("sample/stable/any/2.0.0/manifest.json");
    manifest["version"] = json!("3.0.0");
    manifest["files"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["path"] == "two")
        .unwrap()["path"] = json!(path);
    scenario.editor().publish_raw_release(&manifest);
}

#[test]
fn names_windows_cannot_create_are_refused_at_publish_and_install() {
    // Regression: a release with `aux.txt` or `a?b` was published on Linux and installed
    // half-way on Windows, where such names are devices or cannot be created.
    let scenario = Scenario::new();
    for (evil, reason) in [
        ("docs/aux.txt", "device name on Windows"),
        ("NUL .tar.gz", "device name on Windows"),
        ("com¹", "device name on Windows"),
        ("what?.txt", "character Windows cannot use"),
        ("a<b>", "character Windows cannot use"),
    ] {
        let stderr = publish_refused(&scenario.publisher, &[evil]);
        assert!(
            stderr.contains(&format!("{evil:?}")) && stderr.contains(reason),
            "{evil}: {stderr}"
        );
        publish_with_path(&scenario, evil);
        scenario.assert_refused_storing(
            "update",
            &format!("relative path {evil:?}: "),
            &["timestamp", "snapshot", "targets"],
        );
        scenario.assert_refused_storing("update", reason, &["timestamp", "snapshot", "targets"]);
    }
}

#[test]
fn names_that_are_one_entry_on_windows_or_macos_are_refused_at_publish_and_install() {
    // Regression: `README` and `readme` (or `café` in NFC and NFD, or a file `BIN/x` beside
    // the folder `bin/`) were published in one release; on Windows and macOS they are one
    // entry, so one overwrote the other and the install did not match the manifest.
    let scenario = Scenario::new();
    for (files, first, second) in [
        (&["README", "readme"][..], "README", "readme"),
        // Sorted by bytes, the NFD spelling comes first.
        (&["caf\u{e9}", "cafe\u{301}"], "cafe\u{301}", "caf\u{e9}"),
        (&["BIN/x"], "BIN", "bin"),
    ] {
        let stderr = publish_refused(&scenario.publisher, files);
        let needle =
            format!("{first:?} and {second:?} differ only in case or Unicode normalization");
        assert!(stderr.contains(&needle), "{files:?}: {stderr}");
    }
    for (added, first, second) in [
        (&["Two"][..], "two", "Two"),
        (&["caf\u{e9}", "cafe\u{301}"], "caf\u{e9}", "cafe\u{301}"),
        (&["BIN/x"], "bin", "BIN"),
    ] {
        let mut manifest = scenario
            .publisher
            .manifest("sample/stable/any/2.0.0/manifest.json");
        manifest["version"] = json!("3.0.0");
        let files = manifest["files"].as_array_mut().unwrap();
        let two = files.iter().find(|f| f["path"] == "two").unwrap().clone();
        for path in added {
            let mut copy = two.clone();
            copy["path"] = json!(path);
            files.push(copy);
        }
        scenario.editor().publish_raw_release(&manifest);
        scenario.assert_refused_storing(
            "update",
            &format!("{first:?} and {second:?}"),
            &["timestamp", "snapshot", "targets"],
        );
        scenario.assert_refused_storing(
            "update",
            "differ only in case or Unicode normalization",
            &["timestamp", "snapshot", "targets"],
        );
    }
}

#[test]
fn a_decompression_bomb_stops_at_the_declared_size() {
    let scenario = Scenario::new();
    // A real blob of 4 MiB of zeros (a few hundred bytes compressed), declared as 1,000 bytes.
    let zeros = vec![0u8; 4 << 20];
    let report = scenario.publisher.publish(
        "bomb",
        "1.0.0",
        &[("bin/app", APP, true), ("zeros", &zeros, false)],
        &[],
    );
    let bomb = scenario
        .publisher
        .manifest(report["target"].as_str().unwrap());
    let zero_entry = bomb["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "zeros")
        .unwrap()
        .clone();
    let mut manifest = scenario
        .publisher
        .manifest("sample/stable/any/2.0.0/manifest.json");
    manifest["version"] = json!("3.0.0");
    let mut entry = zero_entry;
    entry["path"] = json!("zeros");
    entry["size"] = json!(1000);
    // Its offset points into the other release's pack (itself refused, see the manifest
    // checks): without it the client fetches the blob, where the bomb is.
    entry.as_object_mut().unwrap().remove("pack_offset");
    manifest["files"].as_array_mut().unwrap().push(entry);
    scenario.editor().publish_raw_release(&manifest);
    scenario.assert_refused_storing(
        "update",
        "decompressed size mismatch: expected 1000, got more than 1000",
        &["timestamp", "snapshot", "targets"],
    );
}

/// Regression (hostile-input issue): overlapping pack slices made the client's pack prefetch
/// compute `offset - position` below zero (a panic in debug builds, garbage in release
/// builds). A manifest whose slices overlap is refused as a whole, naming the pack, and the
/// next good release installs normally.
#[test]
fn overlapping_pack_slices_in_a_signed_manifest_are_refused() {
    let scenario = Scenario::new();
    let two = scenario
        .publisher
        .manifest("sample/stable/any/2.0.0/manifest.json");
    let mut manifest = two.clone();
    manifest["version"] = json!("3.0.0");
    for file in manifest["files"].as_array_mut().unwrap() {
        // Every blob at the start of the pack: "two" now overlaps "bin/app".
        file["pack_offset"] = json!(0);
    }
    scenario.editor().publish_raw_release(&manifest);
    scenario.assert_refused_storing("update", "overlaps", &["timestamp", "snapshot", "targets"]);
    // The publisher notices and publishes a good release: it installs with no manual step.
    scenario.publisher.publish(
        "sample",
        "4.0.0",
        &[("bin/app", APP, true), ("four", b"4", false)],
        &[],
    );
    let report = appupdate_json(&["update", "--dir", scenario.dir.to_str().unwrap()]);
    assert_eq!(report["to"], "4.0.0", "{report}");
}
