//! Rolling back, by command and by hand: `appupdate rollback`, editing the one `current` line
//! of `appstart.toml`, and what the launcher and the updater make of each (a version left is
//! skipped and `check` says why; a fallback never returns to a skipped version; local damage is
//! not a bad release; versions differing only in case never share a folder).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{
    Publisher, Server, appupdate, appupdate_json, appupdate_ok, run, temp_dir, text,
};

const APP_SCRIPT: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// A client installed from a fresh repository, and the repository's publisher. Every
/// release is `bin/app` plus a file `x` holding the version, so releases differ.
struct Installed {
    publisher: Publisher,
    _server: Server,
    _home: tempfile::TempDir,
    dir: PathBuf,
}

impl Installed {
    /// Publishes app `sample` at `version` and installs it.
    fn new(version: &str) -> Self {
        let publisher = Publisher::new();
        publish(&publisher, version);
        let server = Server::start(&publisher.repo());
        let home = temp_dir();
        let dir = home.path().join("app");
        crate::harness::install(&publisher, &server.url, "sample", &dir);
        Installed {
            publisher,
            _server: server,
            _home: home,
            dir,
        }
    }

    /// Publishes `version` (not yet installed).
    fn publish(&self, version: &str) {
        publish(&self.publisher, version);
    }

    fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// What the app prints when started through the launcher (which must succeed).
    fn run_app(&self) -> String {
        let output = run(&mut Command::new(self.dir.join("appstart")));
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    }
}

fn publish(publisher: &Publisher, version: &str) {
    // Pre-releases on the stable channel need saying so (docs/rollout.md).
    let extra: &[&str] = if version.contains('-') {
        &["--allow-prerelease"]
    } else {
        &[]
    };
    publisher.publish(
        "sample",
        version,
        &[
            ("bin/app", APP_SCRIPT, true),
            ("x", version.as_bytes(), false),
        ],
        extra,
    );
}

#[test]
fn rollback_switches_back_and_status_reports_it() {
    let client = Installed::new("1.0.0");
    client.publish("2.0.0");
    client.publish("3.0.0");
    appupdate_ok(&["update", "--dir", client.dir()]);

    let rolled = appupdate_json(&["rollback", "--dir", client.dir()]);
    assert_eq!(rolled, serde_json::json!({"from": "3.0.0", "to": "1.0.0"}));
    let status = appupdate_json(&["status", "--dir", client.dir()]);
    assert_eq!(status["current"], "1.0.0");
    assert_eq!(status["previous"], "3.0.0");
    assert_eq!(status["bad_versions"], serde_json::json!(["3.0.0"]));
    assert_eq!(client.run_app(), "app 1.0.0\n");

    // A version rolled back from is not offered again; an other newer one still is.
    let check = appupdate_json(&["check", "--dir", client.dir()]);
    assert_eq!(check["current"], "1.0.0");
    assert_eq!(check["available"], "2.0.0");
    assert_eq!(check["skipped"][0]["version"], "3.0.0");
    let reason = check["skipped"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("rolled back by hand on "), "{reason}");

    // Rolling forward by name works too; an unknown version is refused and changes nothing.
    let config_before = std::fs::read(client.dir.join("appstart.toml")).unwrap();
    let output = appupdate(&["rollback", "--dir", client.dir(), "--to", "9.9.9"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("versions/9.9.9"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read(client.dir.join("appstart.toml")).unwrap(),
        config_before
    );
    appupdate_ok(&["rollback", "--dir", client.dir(), "--to", "3.0.0"]);
    assert_eq!(client.run_app(), "app 3.0.0\n");
    let history = std::fs::read_to_string(client.dir.join("state/history.log")).unwrap();
    assert!(
        history.contains("rollback from=3.0.0 to=1.0.0"),
        "{history}"
    );
    assert!(
        history.contains("rollback from=1.0.0 to=3.0.0"),
        "{history}"
    );
}

/// Sets `current` in DIR/appstart.toml by hand, as a person rolling back would.
fn edit_current(dir: &Path, version: &str) {
    let path = dir.join("appstart.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let edited: Vec<String> = config
        .lines()
        .map(|line| {
            if line.starts_with("current = ") {
                format!("current = \"{version}\"")
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
}

/// Regression: after `appupdate rollback` (current 2.0.0, previous 3.0.0), setting `current`
/// back to 3.0.0 by hand made current equal previous and the launcher (and the updater)
/// refused the config.
#[test]
fn a_hand_edit_after_a_rollback_that_makes_current_equal_previous_runs() {
    let client = Installed::new("2.0.0");
    client.publish("3.0.0");
    appupdate_ok(&["update", "--dir", client.dir()]);
    appupdate_ok(&["rollback", "--dir", client.dir()]);
    edit_current(&client.dir, "3.0.0");
    assert_eq!(client.run_app(), "app 3.0.0\n");
    let status = appupdate_json(&["status", "--dir", client.dir()]);
    assert_eq!(status["current"], "3.0.0");
    assert_eq!(status["previous"], serde_json::Value::Null);
    let check = appupdate_json(&["check", "--dir", client.dir()]);
    assert_eq!(check["current"], "3.0.0");
}

/// Regression: rolling back by hand (editing `current`) was not noticed by the updater, so
/// the next `appupdate update` switched straight back to the version the user had left.
#[test]
fn a_hand_rollback_is_noticed_and_not_undone_by_the_next_update() {
    let client = Installed::new("1.0.0");
    client.publish("2.0.0");
    appupdate_ok(&["update", "--dir", client.dir()]);
    assert_eq!(client.run_app(), "app 2.0.0\n");

    // current = previous = 1.0.0 now: that must start too.
    edit_current(&client.dir, "1.0.0");
    assert_eq!(client.run_app(), "app 1.0.0\n");
    let human = appupdate_ok(&["check", "--dir", client.dir()]);
    assert!(
        human.contains("2.0.0 is skipped: left by a hand edit of appstart.toml on 20"),
        "{human}"
    );
    assert!(human.contains("1.0.0 is up to date"), "{human}");
    let check = appupdate_json(&["check", "--dir", client.dir()]);
    assert_eq!(check["available"], serde_json::Value::Null);
    assert_eq!(check["skipped"][0]["version"], "2.0.0");
    let report = appupdate_json(&["update", "--dir", client.dir()]);
    assert_eq!(report["to"], serde_json::Value::Null, "{report}");
    assert_eq!(client.run_app(), "app 1.0.0\n");
    let history = std::fs::read_to_string(client.dir.join("state/history.log")).unwrap();
    assert!(
        history.contains("hand-edit from=2.0.0 to=1.0.0 skipped=yes"),
        "{history}"
    );

    // A newer release still installs.
    client.publish("3.0.0");
    appupdate_ok(&["update", "--dir", client.dir()]);
    assert_eq!(client.run_app(), "app 3.0.0\n");
}

/// Regression (exploratory test): a hand edit naming a version that is not installed was
/// taken for a rollback: `update` marked the version left as bad, pruned it, and wrote a
/// `previous` that was not installed either, while the launcher refused to start. Refused
/// by `check`, `update` and `rollback` alike, naming the file and what is installed,
/// changing nothing; once `current` names an installed version again, updates go on.
#[test]
#[cfg(unix)]
fn a_hand_edit_to_a_version_that_is_not_installed_is_refused_and_changes_nothing() {
    let client = Installed::new("1.0.0");
    client.publish("1.1.0");
    appupdate_ok(&["update", "--dir", client.dir()]);
    client.publish("1.2.0");
    edit_current(&client.dir, "1.0.5");
    // The failure itself is logged (history, a `failed` receipt); nothing else changes.
    let snapshot = || {
        let mut tree = crate::harness::tree_snapshot(&client.dir);
        tree.retain(|path, _| path != "state/history.log" && !path.starts_with("state/receipts"));
        tree
    };
    let before = snapshot();
    for command in ["check", "update", "rollback"] {
        let output = appupdate(&[command, "--dir", client.dir()]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        for expected in [
            "appstart.toml: `current` names version 1.0.5, which is not installed",
            "installed: 1.1.0, 1.0.0",
        ] {
            assert!(
                stderr.contains(expected),
                "{command}: {expected:?} not in {stderr}"
            );
        }
        assert_eq!(snapshot(), before, "{command} changed the install");
    }
    edit_current(&client.dir, "1.1.0");
    let report = appupdate_json(&["update", "--dir", client.dir()]);
    assert_eq!(report["to"], "1.2.0", "{report}");
    assert_eq!(client.run_app(), "app 1.2.0\n");
}

/// Regression: a version deleted locally after it had proved itself was recorded as bad and
/// never installed again. The launcher falls back without blaming the release, records its
/// own switch, and the next update (which must not take that fallback for a hand rollback)
/// fetches the version again.
#[test]
fn a_version_deleted_locally_is_fetched_again_by_the_next_update() {
    let client = Installed::new("1.0.0");
    client.publish("2.0.0");
    appupdate_ok(&["update", "--dir", client.dir()]);
    assert_eq!(client.run_app(), "app 2.0.0\n", "passes probation");
    assert!(!client.dir.join("state/probation.toml").exists());

    let version_dir = client.dir.join("versions/2.0.0");
    run(Command::new("chmod").arg("-R").arg("u+w").arg(&version_dir));
    std::fs::remove_dir_all(&version_dir).unwrap();
    assert_eq!(client.run_app(), "app 1.0.0\n");
    assert!(!client.dir.join("state/bad-versions.toml").exists());

    let check = appupdate_json(&["check", "--dir", client.dir()]);
    assert_eq!(check["available"], "2.0.0", "{check}");
    assert_eq!(check["skipped"], serde_json::json!([]));
    appupdate_ok(&["update", "--dir", client.dir()]);
    assert_eq!(client.run_app(), "app 2.0.0\n");
}

/// Regression: `1.0.0-rc` and `1.0.0-RC` are one folder on macOS and Windows, and installing
/// one removed the folder of the other while it ran. The publisher refuses such a version for
/// the same app, channel and platform; a client skips one that reaches it anyway (here
/// through another platform) instead of failing every update.
#[test]
fn a_version_differing_only_in_case_is_refused_by_the_publisher_and_skipped_by_clients() {
    let client = Installed::new("1.0.0-RC");

    let source = client.publisher.dir.path().join("src-case");
    crate::harness::write_executable(&source.join("bin/app"), "#!/bin/sh\necho rc\n");
    let repo = client.publisher.repo();
    let keys = client.publisher.keys();
    let publish = |platform: &str| {
        appupdate(&[
            "publish",
            "--repo",
            repo.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--app",
            "sample",
            "--version",
            "1.0.0-rc",
            "--exe",
            "bin/app",
            "--platform",
            platform,
            "--allow-prerelease",
            source.to_str().unwrap(),
        ])
    };
    let refused = publish("any");
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("differs only in letter case from the published version 1.0.0-RC"),
        "{stderr}"
    );

    // Another platform's list may hold it; this client must neither install it nor fail.
    let platform = updater_core::advanced::release::current_platform();
    let output = publish(&platform);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let check = appupdate_json(&["check", "--dir", client.dir()]);
    assert_eq!(check["available"], serde_json::Value::Null, "{check}");
    assert_eq!(check["skipped"][0]["version"], "1.0.0-rc");
    let reason = check["skipped"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("differs only in letter case from installed version 1.0.0-RC"),
        "{reason}"
    );
    let human = appupdate_ok(&["check", "--dir", client.dir()]);
    assert!(
        human.contains("1.0.0-rc is skipped: differs only"),
        "{human}"
    );
    let report = appupdate_json(&["update", "--dir", client.dir()]);
    assert_eq!(report["to"], serde_json::Value::Null, "{report}");
    assert_eq!(client.run_app(), "app 1.0.0-RC\n");
    assert!(!client.dir.join("versions/1.0.0-rc").exists());
}

/// An inconsistent `previous` (here naming a version that is not installed) is treated as
/// absent: the update installs that version instead of refusing it as "already installed".
#[test]
fn a_previous_that_is_not_installed_does_not_block_its_update() {
    let client = Installed::new("1.0.0");
    let config_path = client.dir.join("appstart.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = config.replace(
        "current = \"1.0.0\"\n",
        "current = \"1.0.0\"\nprevious = \"2.0.0\"\n",
    );
    std::fs::write(&config_path, config).unwrap();
    assert_eq!(client.run_app(), "app 1.0.0\n");
    client.publish("2.0.0");
    let report = appupdate_json(&["update", "--dir", client.dir()]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(client.run_app(), "app 2.0.0\n");
}

/// A version rolled back from is skipped until `appupdate unskip` says it may be taken again
/// (issue 17).
#[test]
fn unskip_lets_updates_take_a_rolled_back_version_again() {
    let client = Installed::new("1.0.0");
    client.publish("2.0.0");
    appupdate_ok(&["update", "--dir", client.dir()]);
    appupdate_json(&["rollback", "--dir", client.dir()]);
    let check = appupdate_json(&["check", "--dir", client.dir()]);
    assert_eq!(check["available"], serde_json::Value::Null);
    assert_eq!(check["skipped"][0]["version"], "2.0.0");

    let unskipped = appupdate_json(&["unskip", "--dir", client.dir(), "2.0.0"]);
    assert_eq!(
        unskipped,
        serde_json::json!({"version": "2.0.0", "was_skipped": true})
    );
    let check = appupdate_json(&["check", "--dir", client.dir()]);
    assert_eq!(check["available"], "2.0.0", "{check}");
    assert_eq!(check["skipped"], serde_json::json!([]));
    assert_eq!(
        appupdate_json(&["update", "--dir", client.dir()])["to"],
        "2.0.0"
    );
    assert_eq!(client.run_app(), "app 2.0.0\n");
    let again = appupdate_json(&["unskip", "--dir", client.dir(), "2.0.0"]);
    assert_eq!(again["was_skipped"], false);
    let history = std::fs::read_to_string(client.dir.join("state/history.log")).unwrap();
    assert!(history.contains("unskip version=2.0.0"), "{history}");
}

/// Regressions (exploratory test) in the install's state files:
/// - `status` failed on a torn `state/probation.toml`, which the launcher ignores (logged):
///   it reads it the same way now;
/// - `stall_secs = 0` in `state/install.toml` made every request fail after "0 s", where
///   `--timeout 0` is refused: it is refused too, naming the file and the field.
#[test]
fn torn_probation_is_ignored_and_a_zero_stall_timeout_is_refused() {
    let client = Installed::new("1.0.0");
    std::fs::write(client.dir.join("state/probation.toml"), "\u{0}junk[[").unwrap();
    let status = appupdate_json(&["status", "--dir", client.dir()]);
    assert_eq!(status["current"], "1.0.0", "{status}");
    assert_eq!(status["probation"], serde_json::Value::Null, "{status}");
    assert_eq!(client.run_app(), "app 1.0.0\n");

    let settings = client.dir.join("state/install.toml");
    let text_before = std::fs::read_to_string(&settings).unwrap();
    let edited: String = text_before
        .lines()
        .filter(|line| !line.starts_with("stall_secs"))
        .map(|line| format!("{line}\n"))
        .collect::<String>()
        + "stall_secs = 0\n";
    std::fs::write(&settings, &edited).unwrap();
    let output = appupdate(&["check", "--dir", client.dir()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("install.toml") && stderr.contains("`stall_secs` is 0"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), edited);
}
