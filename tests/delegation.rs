//! Delegated roles: `repo delegate`, `publish --role`, `repo revoke-delegation`. A team or a
//! CI job holds a delegated role's key (and the snapshot and timestamp keys) but not the
//! top-level targets key, and publishes releases that clients install and update.

use std::path::{Path, PathBuf};

use updater_core::advanced::tuf::metadata::quote;

use crate::harness::{Publisher, Server, appupdate, appupdate_json, appupdate_ok, install, text};

const APP_V1: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";
const APP_V2: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION, now better\"\n";

/// A publisher with a delegated role `role` for `paths`, and the team's key folder: the role's
/// key plus copies of the snapshot and timestamp keys, no targets key.
pub fn delegate(publisher: &Publisher, role: &str, paths: &str) -> PathBuf {
    let team = publisher.dir.path().join("team-keys");
    appupdate_ok(&["keys", "generate", "--out", s(&team), "--role", role]);
    let repo = publisher.repo();
    let keys = publisher.keys();
    let public = team.join(format!("{}.pub", quote(role)));
    appupdate_ok(&[
        "repo",
        "delegate",
        "--repo",
        s(&repo),
        "--keys",
        s(&keys),
        "--role",
        role,
        "--paths",
        paths,
        "--key-file",
        s(&public),
    ]);
    for role in ["snapshot", "timestamp"] {
        let name = format!("{role}.key");
        std::fs::copy(keys.join(&name), team.join(&name)).unwrap();
    }
    team
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn signed(repo: &Path, file: &str) -> serde_json::Value {
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata").join(file)).unwrap()).unwrap();
    value["signed"].clone()
}

/// The snapshot the timestamp names.
fn current_snapshot(repo: &Path) -> serde_json::Value {
    let version = signed(repo, "timestamp.json")["meta"]["snapshot.json"]["version"].clone();
    signed(repo, &format!("{version}.snapshot.json"))
}

#[test]
fn a_release_published_into_a_delegated_role_installs_and_updates() {
    let publisher = Publisher::new();
    // The form: `APP/*` means every release of the app (widened to the five parts of
    // a release name, since `*` never crosses `/`).
    let team = delegate(&publisher, "demo-team", "demo/*");
    assert!(!team.join("targets.key").exists());
    let repo = publisher.repo();
    let top = signed(
        &repo,
        &format!(
            "{}.targets.json",
            current_snapshot(&repo)["meta"]["targets.json"]["version"]
        ),
    );
    assert_eq!(
        top["delegations"]["roles"][0]["paths"],
        serde_json::json!(["demo/*/*/*/*"])
    );
    let targets_before = current_snapshot(&repo)["meta"]["targets.json"]["version"].clone();

    let v1 = publisher.publish_with_keys(
        &team,
        "demo",
        "1.0.0",
        &[("bin/app", APP_V1, true), ("data.bin", &[7; 8000], false)],
        &["--role", "demo-team"],
    );
    assert_eq!(v1["role"], "demo-team");
    let snapshot = current_snapshot(&repo);
    assert_eq!(
        snapshot["meta"]["targets.json"]["version"], targets_before,
        "the top-level targets role is not re-signed"
    );
    assert_eq!(
        snapshot["meta"]["demo-team.json"]["version"],
        v1["targets_version"]
    );
    let role = signed(&repo, &format!("{}.demo-team.json", v1["targets_version"]));
    assert!(role["targets"]["demo/stable/any/1.0.0/manifest.json"].is_object());

    let server = Server::start(&repo);
    let home = crate::harness::temp_dir();
    let dir = home.path().join("demo");
    let installed = install(&publisher, &server.url, "demo", &dir);
    assert_eq!(installed["to"], "1.0.0");

    // The next release, also from the team: a delta against the first, found in the role.
    // (Over 4 KiB: smaller files get no delta.)
    let mut data = vec![7; 8000];
    data[100] = 8;
    let v2 = publisher.publish_with_keys(
        &team,
        "demo",
        "1.1.0",
        &[("bin/app", APP_V2, true), ("data.bin", &data, false)],
        &["--role", "demo-team"],
    );
    assert!(v2["deltas"].as_u64().unwrap() >= 1, "{v2}");
    let updated = appupdate_json(&["update", "--dir", s(&dir)]);
    assert_eq!(updated["to"], "1.1.0", "{updated}");
    assert!(
        updated["plan"]["delta_files"].as_u64().unwrap() >= 1,
        "{updated}"
    );
    // Versions stay immutable across roles: the top-level role cannot publish 1.1.0 again.
    let output = appupdate(&[
        "publish",
        "--repo",
        s(&repo),
        "--keys",
        s(&publisher.keys()),
        "--app",
        "demo",
        "--version",
        "1.1.0",
        "--exe",
        "bin/app",
        "--platform",
        "any",
        s(&dir),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("already published"));

    // Revoking: clients stop seeing the role's releases, and still accept the repository
    // (the snapshot keeps listing the role's file, 5.5.5).
    publisher.publish("other", "1.0.0", &[("bin/app", APP_V1, true)], &[]);
    appupdate_ok(&[
        "repo",
        "revoke-delegation",
        "--repo",
        s(&repo),
        "--keys",
        s(&publisher.keys()),
        "--role",
        "demo-team",
    ]);
    let snapshot = current_snapshot(&repo);
    assert_eq!(
        snapshot["meta"]["demo-team.json"]["version"],
        v2["targets_version"]
    );
    let targets = signed(
        &repo,
        &format!(
            "{}.targets.json",
            snapshot["meta"]["targets.json"]["version"]
        ),
    );
    assert!(targets.get("delegations").is_none(), "{targets}");
    let check = appupdate_json(&["check", "--dir", s(&dir)]);
    assert_eq!(check["available"], serde_json::Value::Null, "{check}");
    let output = appupdate(&[
        "publish",
        "--repo",
        s(&repo),
        "--keys",
        s(&team),
        "--role",
        "demo-team",
        "--app",
        "demo",
        "--version",
        "1.2.0",
        "--exe",
        "bin/app",
        "--platform",
        "any",
        s(&dir),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("delegates no role"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn delegating_and_publishing_refuse_what_clients_could_not_use() {
    let publisher = Publisher::new();
    let repo = publisher.repo();
    let keys = publisher.keys();
    let team = publisher.dir.path().join("team-keys");
    appupdate_ok(&["keys", "generate", "--out", s(&team), "--role", "apps"]);
    let refused = |args: &[&str], expected: &str| {
        let output = appupdate(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    let delegate = |paths: &str, key_file: &Path, role: &str| {
        vec![
            "repo".to_string(),
            "delegate".into(),
            "--repo".into(),
            s(&repo).into(),
            "--keys".into(),
            s(&keys).into(),
            "--role".into(),
            role.into(),
            "--paths".into(),
            paths.into(),
            "--key-file".into(),
            s(key_file).into(),
        ]
    };
    let run = |args: Vec<String>, expected: &str| {
        refused(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            expected,
        );
    };
    let public = team.join("apps.pub");
    // `*` never crosses `/`: a pattern that cannot reach APP/CHANNEL/PLATFORM/VERSION/
    // manifest.json is refused (`demo/*` is widened instead: see the test above).
    run(delegate("demo/*.json", &public, "apps"), "demo/*");
    // A private key must never be copied into metadata.
    run(
        delegate("demo/*/*/*/*", &team.join("apps.key"), "apps"),
        "private key",
    );
    run(delegate("demo/*/*/*/*", &public, "targets"), "top-level");
    // Clients ask for `N.demo%20team.json`, which web servers decode to another file name.
    run(
        delegate("demo/*/*/*/*", &public, "demo team"),
        "A-Z a-z 0-9",
    );
    // Without the role's private key its first metadata cannot be signed.
    let elsewhere = publisher.dir.path().join("apps.pub");
    std::fs::copy(&public, &elsewhere).unwrap();
    run(
        delegate("demo/*/*/*/*", &elsewhere, "apps"),
        "must be signed",
    );
    appupdate_ok(
        &delegate("demo/*/*/*/*", &public, "apps")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    run(
        delegate("demo/*/*/*/*", &public, "apps"),
        "already delegated",
    );

    for role in ["snapshot", "timestamp"] {
        let name = format!("{role}.key");
        std::fs::copy(keys.join(&name), team.join(&name)).unwrap();
    }
    let source = publisher.dir.path().join("src");
    crate::harness::write_executable(&source.join("bin/app"), "#!/bin/sh\n");
    let publish = |app: &str, role: &str, keys: &Path| {
        vec![
            "publish".to_string(),
            "--repo".into(),
            s(&repo).into(),
            "--keys".into(),
            s(keys).into(),
            "--role".into(),
            role.into(),
            "--app".into(),
            app.into(),
            "--version".into(),
            "1.0.0".into(),
            "--exe".into(),
            "bin/app".into(),
            "--platform".into(),
            "any".into(),
            s(&source).into(),
        ]
    };
    run(
        publish("other", "apps", &team),
        "does not match the role's paths",
    );
    run(publish("demo", "nobody", &team), "delegates no role");
    // The top-level keys are not the role's keys.
    run(publish("demo", "apps", &keys), "apps");
    // Nothing was published by the refused attempts.
    assert!(!repo.join("targets/demo").exists());
    assert!(!repo.join("targets/other").exists());
}

/// Review finding: `release` on a delegated release and `repo delegate` wrote the role's new
/// metadata (`N.ROLE.json`) before finding that KEYDIR's snapshot key is not the one the
/// root lists. Both are refused now with nothing written.
#[test]
fn foreign_top_level_keys_are_refused_before_delegated_metadata_is_written() {
    let publisher = Publisher::new();
    let team = delegate(&publisher, "demo-team", "demo/*");
    publisher.publish_with_keys(
        &team,
        "demo",
        "1.0.0",
        &[("bin/app", APP_V1, true)],
        &["--role", "demo-team"],
    );
    let repo = publisher.repo();
    let foreign = publisher.dir.path().join("foreign-keys");
    appupdate_ok(&["keys", "generate", "--out", s(&foreign)]);
    // The team's folder with a snapshot key the root does not list.
    let bad_team = publisher.dir.path().join("bad-team-keys");
    std::fs::create_dir_all(&bad_team).unwrap();
    for entry in std::fs::read_dir(&team).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), bad_team.join(entry.file_name())).unwrap();
    }
    std::fs::copy(foreign.join("snapshot.key"), bad_team.join("snapshot.key")).unwrap();
    // The publisher's folder with the same foreign snapshot key.
    let bad_keys = publisher.dir.path().join("bad-keys");
    std::fs::create_dir_all(&bad_keys).unwrap();
    for entry in std::fs::read_dir(publisher.keys()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), bad_keys.join(entry.file_name())).unwrap();
    }
    std::fs::copy(foreign.join("snapshot.key"), bad_keys.join("snapshot.key")).unwrap();
    let other_team = publisher.dir.path().join("other-team");
    appupdate_ok(&[
        "keys",
        "generate",
        "--out",
        s(&other_team),
        "--role",
        "other",
    ]);

    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(repo.join("metadata"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let pause = appupdate(&[
        "release",
        "pause",
        "--repo",
        s(&repo),
        "--keys",
        s(&bad_team),
        "--app",
        "demo",
        "--version",
        "1.0.0",
    ]);
    let delegate_other = appupdate(&[
        "repo",
        "delegate",
        "--repo",
        s(&repo),
        "--keys",
        s(&bad_keys),
        "--role",
        "other",
        "--paths",
        "other/*",
        "--key-file",
        s(&other_team.join("other.pub")),
    ]);
    for (what, output) in [("release pause", pause), ("repo delegate", delegate_other)] {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains("snapshot") && stderr.contains("root.json"),
            "{what}: {stderr}"
        );
        assert_eq!(listing(), before, "{what} wrote metadata");
    }
}
