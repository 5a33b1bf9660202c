//! `appupdate`'s exit codes (docs/cli.md: 2 usage, 3 network, 4 verification refused, 5
//! locked, 6 nothing to do), its `--help`, and the install lock naming its live holder.
//! Codes of refusals and failures elsewhere are asserted where those are tested (attacks,
//! faults, hostile, later).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::harness::{
    DEADLINE, Publisher, Server, appupdate, appupdate_json, bin, temp_dir, text, wait_with_deadline,
};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// App `sample` 1.0.0 served and installed; the server is returned to be stopped at will.
fn installed() -> (Publisher, Server, tempfile::TempDir, PathBuf) {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "sample", &dir);
    (publisher, server, home, dir)
}

fn publish(publisher: &Publisher, version: &str) {
    publisher.publish(
        "sample",
        version,
        &[("bin/app", APP, true), ("x", version.as_bytes(), false)],
        &[],
    );
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn nothing_to_do_exits_6_with_its_result_on_stdout_and_no_alarm() {
    let (publisher, _server, _home, dir) = installed();
    let dir_text = s(&dir);

    // Already up to date: the report on stdout, exit 6, nothing on stderr.
    for extra in [&[][..], &["--download-only"][..]] {
        let mut args = vec!["update", "--dir", dir_text, "--json"];
        args.extend_from_slice(extra);
        let output = appupdate(&args);
        assert_eq!(
            output.status.code(),
            Some(6),
            "{args:?}: {}",
            text(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let field = if extra.is_empty() { "to" } else { "staged" };
        assert_eq!(report[field], serde_json::Value::Null, "{report}");
        assert!(
            output.stderr.is_empty(),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    let human = appupdate(&["update", "--dir", dir_text]);
    assert_eq!(human.status.code(), Some(6));
    assert!(text(&human.stdout).contains("1.0.0 is up to date"));
    assert!(human.stderr.is_empty(), "{}", text(&human.stderr));

    // Nothing to roll back to: said as a result, and nothing written.
    let config = std::fs::read(dir.join("appstart.toml")).unwrap();
    let output = appupdate(&["rollback", "--dir", dir_text, "--json"]);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["from"], "1.0.0");
    assert_eq!(result["to"], serde_json::Value::Null);
    assert!(
        result["nothing_to_do"]
            .as_str()
            .unwrap()
            .contains("no previous version"),
        "{result}"
    );
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    assert_eq!(std::fs::read(dir.join("appstart.toml")).unwrap(), config);
    let history = std::fs::read_to_string(dir.join("state/history.log")).unwrap();
    assert!(!history.contains("failed"), "not a failure: {history}");

    // A version that was not skipped.
    let output = appupdate(&["unskip", "--dir", dir_text, "3.0.0"]);
    assert_eq!(output.status.code(), Some(6));
    assert!(text(&output.stdout).contains("was not skipped"));

    // And once there is something to do, 0.
    publish(&publisher, "2.0.0");
    let report = appupdate_json(&["update", "--dir", dir_text]);
    assert_eq!(report["to"], "2.0.0");
    let output = appupdate(&["rollback", "--dir", dir_text]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn usage_and_network_errors_have_their_codes() {
    let (_publisher, mut server, _home, dir) = installed();
    let output = appupdate(&["update", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let output = appupdate(&["update"]);
    assert_eq!(output.status.code(), Some(2), "--dir is required");

    server.kill();
    for command in ["check", "update"] {
        let output = appupdate(&[command, "--dir", s(&dir)]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{command}: {stderr}");
        assert!(
            stderr.contains("appupdate: error: fetching http://127.0.0.1:"),
            "{stderr}"
        );
    }
}

#[test]
fn help_ends_with_the_exit_codes_and_every_command_has_an_example() {
    let top = text(&appupdate(&["--help"]).stdout);
    assert!(top.contains("Exit codes:"), "{top}");
    assert!(top.contains("  6    nothing to do"), "{top}");
    assert!(top.contains("  5    locked"), "{top}");
    let update = appupdate(&["update", "--help"]);
    assert_eq!(update.status.code(), Some(0));
    let update = text(&update.stdout);
    assert!(update.contains("[default: 30]"), "{update}");
    assert!(
        update.contains("Example:\n  appupdate update --dir"),
        "{update}"
    );
    let release = text(&appupdate(&["release", "pause", "--help"]).stdout);
    assert!(release.contains("[default: stable]"), "{release}");
    assert!(release.contains("Example:"), "{release}");
}

/// Regression: the lock's note outlived its writer, so a second updater could name a holder
/// that had finished long before. The message must name the live holder only.
#[test]
fn a_held_lock_names_its_live_holder_and_never_a_finished_one() {
    let (_publisher, _server, _home, dir) = installed();
    let lock_path = dir.join("state/lock");

    // A holder that finished normally leaves no note.
    crate::harness::appupdate_ok(&["check", "--dir", s(&dir)]);
    assert_eq!(
        std::fs::read_to_string(&lock_path).unwrap(),
        "",
        "note cleared"
    );

    // A real holder: an update stuck on a server that accepts and never answers.
    let stalling = TcpListener::bind("127.0.0.1:0").unwrap();
    let stall_url = format!("http://{}", stalling.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in stalling.incoming().flatten() {
            held.push(stream);
        }
    });
    let settings = dir.join("state/install.toml");
    let original = std::fs::read_to_string(&settings).unwrap();
    let url_line = original
        .lines()
        .find(|l| l.starts_with("url = "))
        .unwrap()
        .to_string();
    let stalled = original.replace(&url_line, &format!("url = \"{stall_url}\""));
    std::fs::write(&settings, stalled).unwrap();
    let mut holder = Command::new(bin("appupdate"))
        .args(["update", "--dir", s(&dir)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let holder_pid = holder.id();
    let start = Instant::now();
    while !std::fs::read_to_string(&lock_path)
        .unwrap_or_default()
        .starts_with(&format!("pid {holder_pid} (update) since "))
    {
        assert!(start.elapsed() < DEADLINE, "the update never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let output = appupdate(&["check", "--dir", s(&dir), "--lock-timeout", "0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "state/lock is held by another updater (pid {holder_pid} (update) since "
        )),
        "{stderr}"
    );

    // Killed: the kernel drops its lock, its note stays behind.
    holder.kill().unwrap();
    wait_with_deadline(&mut holder, DEADLINE);
    let mut note = String::new();
    std::fs::File::open(&lock_path)
        .unwrap()
        .read_to_string(&mut note)
        .unwrap();
    assert!(note.starts_with(&format!("pid {holder_pid} ")), "{note}");

    // A new holder that has the lock but has not written its note yet (held here, as
    // `InstallLock` holds it between taking the lock and writing): the finished one is not
    // named.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .unwrap();
    file.lock().unwrap();
    let output = appupdate(&["check", "--dir", s(&dir), "--lock-timeout", "0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("state/lock is held by another process (starting)"),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("pid {holder_pid}")), "{stderr}");
    drop(file);
    std::fs::write(&settings, original).unwrap();
    let output = appupdate(&["check", "--dir", s(&dir), "--lock-timeout", "0"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

/// Regression (exploratory test): output that cannot be written (a full disk, a pipe whose
/// reader has gone) aborted the process with a panic (exit 134). It is an error like any
/// other: exit 1, saying what failed.
#[test]
#[cfg(target_os = "linux")]
fn output_that_cannot_be_written_is_an_error_not_a_panic() {
    let (_publisher, _server, _home, dir) = installed();
    for args in [
        vec!["status", "--dir", s(&dir)],
        vec!["status", "--dir", s(&dir), "--json"],
        vec!["completions", "bash"],
    ] {
        let full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap();
        // Not through the harness's `run`, which pipes standard output.
        let out = Command::new(bin("appupdate"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(full)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("appupdate: error: writing"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("No space left on device"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Regression (exploratory test): `serve --repo` given a file (or nothing at all) started
/// serving a "repository" that answered 404 to everything. Refused before listening.
#[test]
fn serve_refuses_a_repository_that_is_not_a_folder() {
    let home = temp_dir();
    let file = home.path().join("root.json");
    std::fs::write(&file, "{}").unwrap();
    for repo in [file, home.path().join("missing")] {
        let output = appupdate(&["serve", "--repo", s(&repo), "--listen", "127.0.0.1:0"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("--repo {}: not a folder", repo.display())),
            "{stderr}"
        );
    }
}
