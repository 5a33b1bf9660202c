//! Release control, the publisher's side (issue 15): `publish`'s control flags, the
//! `release rollout|pause|resume|pull|list` commands, the version rules of `publish`, and
//! python-tuf reading a repository that uses them.
//!
//! The promise checked throughout: a control change re-signs metadata only. Every file under
//! `blobs/` and `targets/` stays byte for byte as it was, every metadata file already there
//! too (new versions are new files), and only `timestamp.json` is replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::{
    Publisher, Server, appupdate, appupdate_ok, python_with_tuf, run, test_file, text,
    tree_snapshot,
};

const APP: &[u8] = b"#!/bin/sh\necho \"demo $APPSTART_VERSION\"\n";
const INSTALL_ID: &str = "0123456789ABCDEF0123456789abcdef";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The one source folder every release of this module is published from.
fn source(publisher: &Publisher) -> PathBuf {
    let dir = publisher.dir.path().join("control-src");
    if !dir.exists() {
        crate::harness::write_executable(&dir.join("bin/app"), std::str::from_utf8(APP).unwrap());
        std::fs::write(dir.join("data.bin"), crate::harness::noise(7, 6000)).unwrap();
    }
    dir
}

/// `appupdate publish --json` of app `demo` with `extra` flags (`--platform any` unless
/// given), signed with `keys`.
fn publish_with(publisher: &Publisher, keys: &Path, version: &str, extra: &[&str]) -> Output {
    let repo = publisher.repo();
    let source = source(publisher);
    let mut args = vec![
        "publish",
        "--repo",
        s(&repo),
        "--keys",
        s(keys),
        "--app",
        "demo",
        "--version",
        version,
        "--exe",
        "bin/app",
        "--json",
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--platform") {
        args.extend_from_slice(&["--platform", "any"]);
    }
    args.push(s(&source));
    appupdate(&args)
}

fn publish(publisher: &Publisher, version: &str, extra: &[&str]) -> Output {
    publish_with(publisher, &publisher.keys(), version, extra)
}

fn publish_ok(publisher: &Publisher, version: &str, extra: &[&str]) {
    let output = publish(publisher, version, extra);
    assert!(
        output.status.success(),
        "publish {version} {extra:?}: {}",
        text(&output.stderr)
    );
}

/// `appupdate release VERB --repo REPO --keys KEYS --app demo ARGS...`.
fn release(publisher: &Publisher, keys: &Path, verb: &str, args: &[&str]) -> Output {
    let repo = publisher.repo();
    let mut all = vec![
        "release",
        verb,
        "--repo",
        s(&repo),
        "--keys",
        s(keys),
        "--app",
        "demo",
    ];
    all.extend_from_slice(args);
    appupdate(&all)
}

fn release_ok(publisher: &Publisher, verb: &str, args: &[&str]) -> String {
    let output = release(publisher, &publisher.keys(), verb, args);
    assert!(
        output.status.success(),
        "release {verb} {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// `release list --json`, keyed by `VERSION PLATFORM`.
fn list(publisher: &Publisher) -> BTreeMap<String, Value> {
    let repo = publisher.repo();
    let stdout = appupdate_ok(&["release", "list", "--repo", s(&repo), "--json"]);
    let all: Vec<Value> = serde_json::from_str(stdout.trim()).unwrap();
    all.into_iter()
        .map(|r| {
            let key = format!(
                "{} {}",
                r["version"].as_str().unwrap(),
                r["platform"].as_str().unwrap()
            );
            (key, r)
        })
        .collect()
}

fn timestamp_version(repo: &Path) -> u64 {
    let value: Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    value["signed"]["version"].as_u64().unwrap()
}

/// Every file of the repository with its content hash, but `timestamp.json`.
fn files_but_the_timestamp(repo: &Path) -> BTreeMap<String, (u32, String)> {
    let mut all = tree_snapshot(repo);
    all.retain(|path, _| path != "metadata/timestamp.json" && !path.starts_with(".publish.lock"));
    all
}

/// Checks that a control change wrote new metadata files only: everything under `blobs/`
/// and `targets/` and every metadata file from `before` is unchanged, and the timestamp's
/// version went up.
fn assert_only_new_metadata(repo: &Path, before: &BTreeMap<String, (u32, String)>, timestamp: u64) {
    let after = files_but_the_timestamp(repo);
    for (path, entry) in before {
        assert_eq!(after.get(path), Some(entry), "{path} changed or vanished");
    }
    let added: Vec<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(
        added.iter().all(|p| p.starts_with("metadata/")),
        "only metadata is added: {added:?}"
    );
    assert!(!added.is_empty(), "new metadata versions are written");
    assert!(
        timestamp_version(repo) > timestamp,
        "the timestamp is re-signed"
    );
}

#[test]
fn publish_with_every_control_flag_shows_in_release_list() {
    let publisher = Publisher::new();
    let custom_file = publisher.dir.path().join("custom.json");
    std::fs::write(
        &custom_file,
        br#"{"notes": "from file", "size": {"mb": 12}}"#,
    )
    .unwrap();
    publish_ok(
        &publisher,
        "1.0.0",
        &[
            "--rollout",
            "12.5",
            "--groups",
            "qa,beta-testers",
            "--installs",
            INSTALL_ID,
            "--from",
            ">=0.9, <1.0",
            "--stop",
            "--critical",
            "--expires",
            "2030-01-01T00:00:00Z",
            "--custom-file",
            s(&custom_file),
            "--custom",
            "notes=from flag",
            "--custom",
            "build=42",
        ],
    );
    publish_ok(
        &publisher,
        "1.1.0",
        &["--rollout-schedule", "1%@0h,10%@24h,100%@3d"],
    );
    let releases = list(&publisher);
    let first = &releases["1.0.0 any"];
    assert_eq!(first["app"], "demo");
    assert_eq!(first["channel"], "stable");
    assert_eq!(first["state"], "active");
    // A fraction is a string in signed metadata: canonical JSON has no floats.
    assert_eq!(first["rollout"], json!({"percent": "12.5"}));
    assert_eq!(first["rollout_percent"], 12.5);
    assert_eq!(first["groups"], json!(["qa", "beta-testers"]));
    assert_eq!(
        first["installs"],
        json!([INSTALL_ID.to_ascii_lowercase()]),
        "stored lowercase"
    );
    assert_eq!(first["from"], ">=0.9, <1.0");
    assert_eq!(first["stop"], true);
    assert_eq!(first["critical"], true);
    assert_eq!(first["expires"], "2030-01-01T00:00:00Z");
    assert_eq!(
        first["custom"],
        json!({"notes": "from flag", "size": {"mb": 12}, "build": "42"}),
        "--custom values are strings and override --custom-file"
    );
    assert_eq!(first["role"], "targets");

    let second = &releases["1.1.0 any"];
    let schedule = second["rollout"]["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 3, "{second}");
    assert_eq!(
        second["rollout_percent"], 1.0,
        "the first step is in force now"
    );
    let at = |i: usize| {
        let text = schedule[i]["at"].as_str().unwrap();
        assert!(text.ends_with('Z'), "UTC: {text}");
        text.parse::<humantime_free::Rfc3339>().unwrap().0
    };
    assert_eq!(at(1) - at(0), 86_400);
    assert_eq!(at(2) - at(0), 3 * 86_400);
    for field in ["groups", "installs"] {
        assert_eq!(second[field], json!([]), "{field}");
    }
    for field in ["from", "expires"] {
        assert!(second[field].is_null(), "{field}");
    }
    assert_eq!(second["state"], "active");
    assert_eq!(second["custom"], json!({}));

    // The signed entry holds them as the format says (`docs/rollout.md`).
    let repo = publisher.repo();
    let targets = signed_targets(&repo);
    let custom = &targets["targets"]["demo/stable/any/1.0.0/manifest.json"]["custom"];
    assert_eq!(custom["control"]["rollout"], json!({"percent": "12.5"}));
    assert_eq!(custom["data"]["build"], "42");
    let untouched = &targets["targets"]["demo/stable/any/1.1.0/manifest.json"]["custom"];
    assert!(
        untouched.get("data").is_none(),
        "empty data is left out: {untouched}"
    );

    // The text form: a header and one aligned line per release.
    let text_list = appupdate_ok(&["release", "list", "--repo", s(&repo), "--app", "demo"]);
    let lines: Vec<&str> = text_list.lines().collect();
    assert_eq!(lines.len(), 3, "{text_list}");
    let column = |line: &str| line.find("active").unwrap();
    assert_eq!(column(lines[1]), column(lines[2]), "{text_list}");
    assert!(
        lines[1].contains("12.5%") && lines[1].contains("critical"),
        "{text_list}"
    );
    let none = appupdate_ok(&[
        "release",
        "list",
        "--repo",
        s(&repo),
        "--app",
        "other",
        "--json",
    ]);
    assert_eq!(none.trim(), "[]");
}

/// Parses the RFC 3339 UTC times `release list` prints into seconds since the epoch, without
/// a date library: enough to compare the schedule's steps.
mod humantime_free {
    pub struct Rfc3339(pub i64);

    impl std::str::FromStr for Rfc3339 {
        type Err = String;
        fn from_str(text: &str) -> Result<Self, String> {
            let digits: Vec<i64> = text
                .split(|c: char| !c.is_ascii_digit())
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().map_err(|_| text.to_string()))
                .collect::<Result<_, _>>()?;
            let [year, month, day, hour, minute, second] = digits[..] else {
                return Err(text.to_string());
            };
            // Days from the civil date (Howard Hinnant's algorithm).
            let (y, m) = if month <= 2 {
                (year - 1, month + 9)
            } else {
                (year, month - 3)
            };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let doy = (153 * m + 2) / 5 + day - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            Ok(Rfc3339(days * 86_400 + hour * 3600 + minute * 60 + second))
        }
    }
}

fn signed_targets(repo: &Path) -> Value {
    let metadata = repo.join("metadata");
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(metadata.join(name)).unwrap()).unwrap()
    };
    let snapshot_version =
        read("timestamp.json")["signed"]["meta"]["snapshot.json"]["version"].clone();
    let snapshot = read(&format!("{snapshot_version}.snapshot.json"));
    let targets_version = snapshot["signed"]["meta"]["targets.json"]["version"].clone();
    read(&format!("{targets_version}.targets.json"))["signed"].clone()
}

#[test]
fn release_commands_change_only_the_signed_control() {
    let publisher = Publisher::new();
    let repo = publisher.repo();
    publish_ok(&publisher, "1.0.0", &["--custom", "notes=first"]);
    publish_ok(&publisher, "1.0.0", &["--platform", "linux-x86_64"]);
    publish_ok(&publisher, "1.1.0", &[]);
    let entry_before =
        signed_targets(&repo)["targets"]["demo/stable/any/1.0.0/manifest.json"].clone();

    // Each step: (command, its arguments, the version, and what `release list` then shows).
    type Expect = fn(&Value);
    let steps: Vec<(&str, Vec<&str>, Expect)> = vec![
        (
            "rollout",
            vec!["--version", "1.0.0", "--percent", "25"],
            |r| {
                assert_eq!(r["rollout"], json!({"percent": 25}));
                assert_eq!(r["rollout_percent"], 25.0);
                assert_eq!(r["state"], "active");
            },
        ),
        ("pause", vec!["--version", "1.0.0"], |r| {
            assert_eq!(r["state"], "paused");
            assert_eq!(r["rollout_percent"], 25.0, "the rollout stays");
        }),
        ("resume", vec!["--version", "1.0.0"], |r| {
            assert_eq!(r["state"], "active")
        }),
        ("pull", vec!["--version", "1.0.0"], |r| {
            assert_eq!(r["state"], "pulled")
        }),
        ("resume", vec!["--version", "1.0.0"], |r| {
            assert_eq!(r["state"], "active")
        }),
        (
            "rollout",
            vec!["--version", "1.0.0", "--schedule", "5%@0s,50%@2h"],
            |r| {
                assert_eq!(r["rollout"]["schedule"].as_array().unwrap().len(), 2);
                assert_eq!(r["rollout_percent"], 5.0);
            },
        ),
    ];
    for (verb, args, expect) in steps {
        let before = files_but_the_timestamp(&repo);
        let timestamp = timestamp_version(&repo);
        let stdout = release_ok(&publisher, verb, &args);
        assert!(
            stdout.contains("demo/stable/any/1.0.0/manifest.json"),
            "{stdout}"
        );
        assert_only_new_metadata(&repo, &before, timestamp);
        let releases = list(&publisher);
        // Without --platform: every platform's release of that version.
        expect(&releases["1.0.0 any"]);
        expect(&releases["1.0.0 linux-x86_64"]);
        let other = &releases["1.1.0 any"];
        assert_eq!(
            other["state"], "active",
            "{verb}: another version is untouched"
        );
        assert!(other["rollout"].is_null(), "{verb}");
    }
    // Only `custom.control` of the entry changed: length, hashes, encodings and data did not.
    let mut entry_after =
        signed_targets(&repo)["targets"]["demo/stable/any/1.0.0/manifest.json"].clone();
    assert!(entry_after["custom"]["control"].is_object());
    entry_after["custom"]
        .as_object_mut()
        .unwrap()
        .remove("control");
    assert_eq!(entry_after, entry_before);

    // With --platform, that platform's release only.
    release_ok(
        &publisher,
        "pause",
        &["--version", "1.0.0", "--platform", "linux-x86_64"],
    );
    let releases = list(&publisher);
    assert_eq!(releases["1.0.0 linux-x86_64"]["state"], "paused");
    assert_eq!(releases["1.0.0 any"]["state"], "active");

    // Asking for what is already so writes nothing.
    let before = tree_snapshot(&repo);
    let stdout = release_ok(
        &publisher,
        "pause",
        &["--version", "1.0.0", "--platform", "linux-x86_64", "--json"],
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["changed"], json!([]));
    assert_eq!(
        report["unchanged"],
        json!(["demo/stable/linux-x86_64/1.0.0/manifest.json"])
    );
    assert_eq!(tree_snapshot(&repo), before);

    // No matching release: an error naming app, version and channel, and nothing written.
    for args in [
        vec!["--version", "9.9.9"],
        vec!["--version", "1.0.0", "--channel", "beta"],
        vec!["--version", "1.0.0", "--platform", "windows-x86_64"],
    ] {
        let output = release(&publisher, &publisher.keys(), "pull", &args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("no release of demo"), "{stderr}");
        assert!(stderr.contains(args[1]), "{stderr}");
        assert_eq!(tree_snapshot(&repo), before, "{args:?}");
    }
    let output = release(
        &publisher,
        &publisher.keys(),
        "pull",
        &["--version", "9.9.9"],
    );
    assert!(
        text(&output.stderr).contains("channel stable"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_release_in_a_delegated_role_is_changed_with_the_role_key_only() {
    let publisher = Publisher::new();
    let team = crate::delegation::delegate(&publisher, "demo-team", "demo/*");
    let repo = publisher.repo();
    let output = publish_with(&publisher, &team, "1.0.0", &["--role", "demo-team"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(list(&publisher)["1.0.0 any"]["role"], "demo-team");

    // The top-level keys do not hold the role's key: refused, naming the role, nothing written.
    let before = tree_snapshot(&repo);
    let output = release(
        &publisher,
        &publisher.keys(),
        "pause",
        &["--version", "1.0.0"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("delegated role demo-team"), "{stderr}");
    assert_eq!(tree_snapshot(&repo), before);

    // The team's keys (the role's, snapshot, timestamp; no targets key) change it.
    let top_before = signed_targets(&repo)["version"].clone();
    let timestamp = timestamp_version(&repo);
    let before = files_but_the_timestamp(&repo);
    let output = release(
        &publisher,
        &team,
        "pause",
        &["--version", "1.0.0", "--json"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: Value = serde_json::from_str(text(&output.stdout).trim()).unwrap();
    assert_eq!(report["roles"], json!(["demo-team"]));
    assert_only_new_metadata(&repo, &before, timestamp);
    let listed = &list(&publisher)["1.0.0 any"];
    assert_eq!(listed["state"], "paused");
    assert_eq!(listed["role"], "demo-team");
    assert_eq!(
        signed_targets(&repo)["version"],
        top_before,
        "targets.json is not re-signed"
    );
}

#[test]
fn publish_refuses_prereleases_on_stable_and_versions_differing_only_in_build_metadata() {
    let publisher = Publisher::new();
    let repo = publisher.repo();
    let before = tree_snapshot(&repo);
    let output = publish(&publisher, "1.2.0-beta.1", &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("pre-release") && stderr.contains("--allow-prerelease"),
        "{stderr}"
    );
    assert_eq!(tree_snapshot(&repo), before, "nothing written");
    publish_ok(&publisher, "1.2.0-beta.1", &["--channel", "beta"]);
    publish_ok(&publisher, "1.2.0-beta.2", &["--allow-prerelease"]);

    publish_ok(&publisher, "1.2.0", &[]);
    // The same version on another platform is the same release: allowed.
    publish_ok(&publisher, "1.2.0", &["--platform", "linux-x86_64"]);
    let before = tree_snapshot(&repo);
    for platform in ["any", "windows-x86_64"] {
        let output = publish(&publisher, "1.2.0+build5", &["--platform", platform]);
        assert_eq!(output.status.code(), Some(1), "{platform}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("same SemVer precedence") && stderr.contains("1.2.0"),
            "{stderr}"
        );
        assert_eq!(tree_snapshot(&repo), before, "nothing written");
    }
    // On another channel it is another release line.
    publish_ok(&publisher, "1.2.0+build5", &["--channel", "beta"]);
}

#[test]
fn bad_control_values_are_refused_naming_the_flag_with_nothing_written() {
    let publisher = Publisher::new();
    publish_ok(&publisher, "1.0.0", &[]);
    let repo = publisher.repo();
    let not_an_object = publisher.dir.path().join("list.json");
    std::fs::write(&not_an_object, b"[1, 2]").unwrap();
    let missing = publisher.dir.path().join("missing.json");
    let large = format!("notes={}", "x".repeat(17 * 1024));
    let float = publisher.dir.path().join("float.json");
    std::fs::write(&float, br#"{"ratio": 0.5}"#).unwrap();
    let before = tree_snapshot(&repo);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--rollout", "101"], "--rollout"),
        (vec!["--rollout", "half"], "--rollout"),
        (vec!["--rollout", "-5"], "--rollout"),
        (
            vec!["--rollout-schedule", "10%@tomorrow"],
            "--rollout-schedule",
        ),
        (
            vec!["--rollout-schedule", "50%@2h,10%@1h"],
            "--rollout-schedule",
        ),
        (
            vec!["--rollout", "5", "--rollout-schedule", "5%@1h"],
            "--rollout",
        ),
        (vec!["--groups", "qa,no spaces"], "--groups"),
        (vec!["--installs", "abc"], "--installs"),
        (vec!["--from", ">>1"], "--from"),
        (vec!["--expires", "next week"], "--expires"),
        (vec!["--custom", "novalue"], "--custom"),
        (vec!["--custom", "=value"], "--custom"),
        (vec!["--custom-file", s(&not_an_object)], "--custom-file"),
        (vec!["--custom-file", s(&missing)], "--custom-file"),
        (vec!["--custom", &large], "--custom"),
        (vec!["--custom-file", s(&float)], "--custom-file"),
    ];
    for (args, flag) in &cases {
        let output = publish(&publisher, "2.0.0", args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert_eq!(tree_snapshot(&repo), before, "{args:?}: nothing written");
    }
    for (args, flag) in [
        (vec!["--version", "1.0.0", "--percent", "-1"], "--percent"),
        (vec!["--version", "1.0.0", "--schedule", "5%"], "--schedule"),
        (vec!["--version", "1.0.0"], "--percent"),
    ] {
        let output = release(&publisher, &publisher.keys(), "rollout", &args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert_eq!(tree_snapshot(&repo), before, "{args:?}: nothing written");
    }
    assert_eq!(list(&publisher)["1.0.0 any"]["rollout"], Value::Null);
}

/// python-tuf's ngclient refreshes a repository whose releases carry controls and custom
/// data, and whose metadata was re-signed by `release` commands, and downloads a release's
/// manifest target, with the custom fields as signed.
#[test]
fn python_tuf_reads_a_repository_with_release_controls() {
    let Some(python) = python_with_tuf() else {
        return;
    };
    let publisher = Publisher::new();
    publish_ok(
        &publisher,
        "1.0.0",
        &["--custom", "notes=first", "--groups", "qa"],
    );
    let server = Server::start(&publisher.repo());
    let work = crate::harness::temp_dir();
    let download = |target: &str| -> Value {
        let output = run(Command::new(python)
            .arg(test_file("interop/ngclient_download.py"))
            .args([
                &format!("{}/metadata/", server.url),
                &format!("{}/targets/", server.url),
                s(&publisher.root_json()),
                s(work.path()),
                target,
            ]));
        assert!(
            output.status.success(),
            "{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        let result: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(result["sha256"], result["downloaded_sha256"]);
        result
    };
    let first = download("demo/stable/any/1.0.0/manifest.json");
    assert_eq!(first["custom"]["data"]["notes"], "first");

    // The same client (its trusted metadata kept in `work`) follows the re-signed versions.
    publish_ok(&publisher, "1.1.0", &["--rollout", "10"]);
    release_ok(&publisher, "pull", &["--version", "1.0.0"]);
    release_ok(
        &publisher,
        "rollout",
        &["--version", "1.1.0", "--schedule", "20%@0s,100%@1d"],
    );
    let pulled = download("demo/stable/any/1.0.0/manifest.json");
    assert_eq!(pulled["custom"]["control"]["state"], "pulled");
    assert_eq!(pulled["custom"]["control"]["groups"], json!(["qa"]));
    assert_eq!(
        pulled["sha256"], first["sha256"],
        "the manifest is the same file"
    );
    let rolling = download("demo/stable/any/1.1.0/manifest.json");
    assert_eq!(
        rolling["custom"]["control"]["rollout"]["schedule"][0]["percent"],
        20.0
    );
}
