//! Download now, apply later (issue 17): `update --download-only` builds the next release
//! beside the running one without switching; `update --apply` switches to it with the
//! repository's server stopped.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{Publisher, Server, appupdate, appupdate_json, install, run, temp_dir, text};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

fn publish(publisher: &Publisher, version: &str) {
    publisher.publish(
        "sample",
        version,
        &[("bin/app", APP, true), ("x", version.as_bytes(), false)],
        &[],
    );
}

fn run_app(dir: &std::path::Path) -> String {
    let out = run(&mut Command::new(dir.join("appstart")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// `sample` 1.0.0 published, served and installed (the home folder keeps the install).
fn installed() -> (Publisher, Server, tempfile::TempDir, PathBuf) {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample", &dir);
    (publisher, server, home, dir)
}

#[test]
fn download_only_then_apply_with_the_server_stopped() {
    let (publisher, server, _home, dir) = installed();
    let dir_text = dir.to_str().unwrap();
    publish(&publisher, "2.0.0");

    let staged = appupdate_json(&["update", "--dir", dir_text, "--download-only"]);
    assert_eq!(staged["staged"], "2.0.0", "{staged}");
    assert_eq!(staged["current"], "1.0.0");
    assert!(staged["bytes_downloaded"].as_u64().unwrap() > 0);
    assert!(
        dir.join("versions/2.0.0").is_dir(),
        "built beside the running version"
    );
    assert!(dir.join("state/staged.toml").is_file());
    assert_eq!(run_app(&dir), "app 1.0.0", "not switched yet");
    let status = appupdate_json(&["status", "--dir", dir_text]);
    assert_eq!(status["current"], "1.0.0");

    // No network from here on.
    drop(server);
    let report = appupdate_json(&["update", "--dir", dir_text, "--apply"]);
    assert_eq!(report["from"], "1.0.0");
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(report["bytes_downloaded"], 0);
    assert_eq!(run_app(&dir), "app 2.0.0");
    assert!(!dir.join("state/staged.toml").exists());

    let again = appupdate(&["update", "--dir", dir_text, "--apply"]);
    assert_eq!(again.status.code(), Some(6), "nothing to do");
    let stdout = text(&again.stdout);
    assert!(stdout.contains("nothing is staged"), "{stdout}");
    let json = appupdate(&["update", "--dir", dir_text, "--apply", "--json"]);
    assert_eq!(json.status.code(), Some(6));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["from"], "2.0.0");
    assert_eq!(report["to"], serde_json::Value::Null);
    assert!(json.stderr.is_empty(), "{}", text(&json.stderr));
    assert_eq!(run_app(&dir), "app 2.0.0");
}

#[test]
fn a_staged_release_survives_pruning_and_a_later_update_replaces_it() {
    let (publisher, _server, _home, dir) = installed();
    let dir_text = dir.to_str().unwrap();
    publish(&publisher, "2.0.0");
    appupdate_json(&["update", "--dir", dir_text]);
    // current 2.0.0, previous 1.0.0: a staged 3.0.0 is a third folder, beyond `keep = 2`.
    publish(&publisher, "3.0.0");
    let staged = appupdate_json(&["update", "--dir", dir_text, "--download-only"]);
    assert_eq!(staged["staged"], "3.0.0");
    // 3.0.0 paused after it was staged: an update finds nothing to take and prunes, and the
    // staged folder stays for `--apply` (which applies what was chosen when it was staged).
    let repo = publisher.repo();
    let keys = publisher.keys();
    crate::harness::appupdate_ok(&[
        "release",
        "pause",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--app",
        "sample",
        "--version",
        "3.0.0",
    ]);
    assert_eq!(
        appupdate_json(&["update", "--dir", dir_text])["to"],
        serde_json::Value::Null
    );
    assert!(dir.join("versions/3.0.0").is_dir(), "kept by pruning");
    let report = appupdate_json(&["update", "--dir", dir_text, "--apply"]);
    assert_eq!(report["to"], "3.0.0", "{report}");
    assert_eq!(run_app(&dir), "app 3.0.0");

    // Staged, then overtaken by a normal update: the record goes with the switch.
    publish(&publisher, "4.0.0");
    appupdate_json(&["update", "--dir", dir_text, "--download-only"]);
    publish(&publisher, "5.0.0");
    assert_eq!(
        appupdate_json(&["update", "--dir", dir_text])["to"],
        "5.0.0"
    );
    assert!(!dir.join("state/staged.toml").exists());
    let out = appupdate(&["update", "--dir", dir_text, "--apply"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "a stale staged release is never applied: nothing to do"
    );
}
