//! Release hooks (issue 17 item 3): `publish --hook KIND=RELPATH` signs hooks into the
//! release's `custom.hooks`; the updater runs `post-install` and `pre-switch`, the launcher
//! runs `first-run` once. Real shell scripts in the release, real processes, a real server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{
    Publisher, Server, appupdate, appupdate_json, install, python_with_tuf, run, temp_dir,
    test_file, text,
};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// Prints what a hook is given: its kind, the variables and its working folder.
const REPORT_HOOK: &[u8] = b"#!/bin/sh\n\
echo \"kind=$APPSTART_HOOK version=$APPSTART_VERSION\"\n\
echo \"version_dir=$APPSTART_VERSION_DIR\"\n\
echo \"install_dir=$APPSTART_INSTALL_DIR\"\n\
echo \"cwd=$(pwd)\"\n\
echo 'to stderr' >&2\n";

/// Publishes `sample` `version` with `files` added to the app and `extra` flags.
fn publish(publisher: &Publisher, version: &str, files: &[(&str, &[u8], bool)], extra: &[&str]) {
    let mut all: Vec<(&str, &[u8], bool)> = vec![("bin/app", APP, true)];
    all.extend_from_slice(files);
    publisher.publish("sample", version, &all, extra);
}

/// `sample` 1.0.0 (no hooks) published, served and installed.
fn installed() -> (Publisher, Server, tempfile::TempDir, PathBuf) {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0", &[], &[]);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample", &dir);
    (publisher, server, home, dir)
}

fn run_app(dir: &Path) -> String {
    let out = run(&mut Command::new(dir.join("appstart")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

fn history(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("state/history.log")).unwrap_or_default()
}

/// The `hook` lines of the history log.
fn hook_lines(dir: &Path) -> Vec<String> {
    history(dir)
        .lines()
        .filter(|line| line.split(' ').nth(1) == Some("hook"))
        .map(str::to_string)
        .collect()
}

/// The receipts waiting in the outbox, as JSON (each line is a checksum, a space, the JSON).
fn receipts(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("state/receipts.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line.split_once(' ').unwrap().1).unwrap())
        .collect()
}

fn hook_receipts(dir: &Path) -> Vec<serde_json::Value> {
    receipts(dir)
        .into_iter()
        .filter(|r| r["event"] == "hook")
        .collect()
}

/// Whether process `pid` is gone (or a zombie, which runs nothing).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn post_install_runs_with_the_hook_environment_and_its_output_goes_to_history() {
    // At a fresh install...
    let publisher = Publisher::new();
    publish(
        &publisher,
        "1.0.0",
        &[("hooks/post", REPORT_HOOK, true)],
        &["--hook", "post-install=hooks/post"],
    );
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, "sample", &dir);
    let lines = hook_lines(&dir);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("kind=post-install version=1.0.0 result=ok exit_code=0"),
        "{}",
        lines[0]
    );

    // ...and at an update, in the new version's folder.
    publish(
        &publisher,
        "2.0.0",
        &[("hooks/post", REPORT_HOOK, true)],
        &["--hook", "post-install=hooks/post"],
    );
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    let lines = hook_lines(&dir);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let line = &lines[1];
    assert!(
        line.contains("kind=post-install version=2.0.0 result=ok exit_code=0"),
        "{line}"
    );
    let version_dir = std::fs::canonicalize(dir.join("versions/2.0.0")).unwrap();
    for expected in [
        "kind=post-install version=2.0.0".to_string(),
        format!("version_dir={}", dir.join("versions/2.0.0").display()),
        format!("install_dir={}", dir.display()),
        format!("cwd={}", version_dir.display()),
        "to stderr".to_string(),
    ] {
        assert!(line.contains(&expected), "{expected:?} not in {line}");
    }
    let receipts = hook_receipts(&dir);
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["hook"], "post-install");
    assert_eq!(receipts[0]["to"], "2.0.0");
    assert_eq!(receipts[0]["exit_code"], 0);
    assert!(receipts[0].get("error").is_none(), "{}", receipts[0]);
    assert_eq!(run_app(&dir), "app 2.0.0");
}

/// Regression (exploratory test): with the install named by a relative `--dir`, the hook's
/// path was relative to the caller's folder while the hook ran in its version folder, so it
/// could not be started and every update with a hook failed. Hooks get absolute paths.
#[test]
fn hooks_run_when_the_install_is_named_by_a_relative_path() {
    let (publisher, _server, home, dir) = installed();
    publish(
        &publisher,
        "2.0.0",
        &[
            ("hooks/post", REPORT_HOOK, true),
            ("hooks/pre", REPORT_HOOK, true),
        ],
        &[
            "--hook",
            "post-install=hooks/post",
            "--hook",
            "pre-switch=hooks/pre",
        ],
    );
    let out = run(Command::new(crate::harness::bin("appupdate"))
        .current_dir(home.path())
        .args(["update", "--dir", "app"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = hook_lines(&dir);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let absolute = std::path::absolute(&dir).unwrap();
    for (line, kind) in lines.iter().zip(["post-install", "pre-switch"]) {
        for expected in [
            format!("kind={kind} version=2.0.0 result=ok exit_code=0"),
            format!("version_dir={}", absolute.join("versions/2.0.0").display()),
            format!("install_dir={}", absolute.display()),
        ] {
            assert!(line.contains(&expected), "{expected:?} not in {line}");
        }
    }
    assert_eq!(run_app(&dir), "app 2.0.0");
}

#[test]
fn a_failing_post_install_hook_fails_the_update_and_removes_the_version_folder() {
    let (publisher, _server, _home, dir) = installed();
    publish(
        &publisher,
        "2.0.0",
        &[(
            "hooks/post",
            b"#!/bin/sh\necho 'no disk space'\nexit 1\n",
            true,
        )],
        &["--hook", "post-install=hooks/post"],
    );
    for attempt in 1..=2 {
        let out = appupdate(&["update", "--dir", dir.to_str().unwrap()]);
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("post-install hook hooks/post exited with code 1"),
            "{stderr}"
        );
        assert!(stderr.contains("no disk space"), "{stderr}");
        assert!(!dir.join("versions/2.0.0").exists(), "folder removed");
        assert!(!dir.join("state/manifests/2.0.0.json").exists());
        assert_eq!(run_app(&dir), "app 1.0.0");
        // Nothing marks the version installed: the next update runs the hook again.
        assert_eq!(hook_lines(&dir).len(), attempt);
    }
}

#[test]
fn a_failing_pre_switch_hook_keeps_the_old_version_current() {
    let (publisher, _server, _home, dir) = installed();
    let config = std::fs::read(dir.join("appstart.toml")).unwrap();
    publish(
        &publisher,
        "2.0.0",
        &[(
            "hooks/check",
            b"#!/bin/sh\necho 'checking the database'\necho 'refusing: schema too new' >&2\nexit 3\n",
            true,
        )],
        &["--hook", "pre-switch=hooks/check"],
    );
    let out = appupdate(&["update", "--dir", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for expected in [
        "pre-switch hook hooks/check",
        "exited with code 3",
        "refusing: schema too new",
        "current version stays current",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
    assert_eq!(
        std::fs::read(dir.join("appstart.toml")).unwrap(),
        config,
        "appstart.toml unchanged"
    );
    assert_eq!(run_app(&dir), "app 1.0.0");
    assert!(!dir.join("state/first-run.toml").exists());
    let lines = hook_lines(&dir);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("kind=pre-switch version=2.0.0 result=failed exit_code=3"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("checking the database"), "{}", lines[0]);
    let receipts = receipts(&dir);
    let hook = receipts.iter().find(|r| r["event"] == "hook").unwrap();
    assert_eq!(
        (&hook["hook"], &hook["exit_code"], &hook["error"]),
        (&"pre-switch".into(), &3.into(), &"hook-failed".into())
    );
    assert!(
        receipts
            .iter()
            .any(|r| r["event"] == "failed" && r["error"] == "hook-failed"),
        "{receipts:?}"
    );
}

#[test]
fn a_pre_switch_hook_past_its_timeout_is_killed_and_the_switch_aborted() {
    let (publisher, _server, _home, dir) = installed();
    // The script and the `sleep` it starts both write their pid: both must be killed.
    let hook = b"#!/bin/sh\necho $$ > \"$APPSTART_INSTALL_DIR/hook.pid\"\n\
sleep 300 &\necho $! > \"$APPSTART_INSTALL_DIR/sleep.pid\"\necho 'waiting'\nwait\n";
    publish(
        &publisher,
        "2.0.0",
        &[("hooks/slow", hook, true)],
        &["--hook", "pre-switch=hooks/slow", "--hook-timeout", "1"],
    );
    let out = appupdate(&["update", "--dir", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("did not end within its timeout"),
        "{stderr}"
    );
    assert!(stderr.contains("waiting"), "{stderr}");
    for pid_file in ["hook.pid", "sleep.pid"] {
        let pid = std::fs::read_to_string(dir.join(pid_file)).unwrap();
        assert!(process_gone(&pid), "{pid_file}: process {pid} still runs");
    }
    assert_eq!(run_app(&dir), "app 1.0.0");
    let lines = hook_lines(&dir);
    assert!(
        lines[0].contains("kind=pre-switch version=2.0.0 result=timeout exit_code=none"),
        "{lines:?}"
    );
    let hook = &hook_receipts(&dir)[0];
    assert_eq!(hook["error"], "hook-timeout", "{hook}");
    assert!(hook.get("exit_code").is_none(), "{hook}");
}

#[test]
fn a_passing_pre_switch_hook_runs_before_the_switch() {
    let (publisher, _server, _home, dir) = installed();
    // The hook sees the old version still current.
    let hook = b"#!/bin/sh\ngrep current \"$APPSTART_INSTALL_DIR/appstart.toml\"\n";
    publish(
        &publisher,
        "2.0.0",
        &[("hooks/check", hook, true)],
        &["--hook", "pre-switch=hooks/check"],
    );
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    let lines = hook_lines(&dir);
    assert!(lines[0].contains("result=ok"), "{lines:?}");
    assert!(lines[0].contains(r#"current = \"1.0.0\""#), "{lines:?}");
    assert_eq!(run_app(&dir), "app 2.0.0");
}

#[test]
fn first_run_runs_exactly_once_at_the_first_launch_of_the_new_version() {
    let (publisher, _server, _home, dir) = installed();
    let hook = b"#!/bin/sh\necho \"first-run $APPSTART_VERSION\" >> \"$APPSTART_INSTALL_DIR/first-run.log\"\necho done\n";
    publish(
        &publisher,
        "2.0.0",
        &[("hooks/first", hook, true)],
        &["--hook", "first-run=hooks/first"],
    );
    appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    let log = dir.join("first-run.log");
    assert!(!log.exists(), "the updater does not run first-run");
    assert!(dir.join("state/first-run.toml").is_file());
    for _ in 0..3 {
        assert_eq!(run_app(&dir), "app 2.0.0");
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "first-run 2.0.0\n",
        "exactly once"
    );
    let lines = hook_lines(&dir);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("kind=first-run version=2.0.0 result=ok exit_code=0"),
        "{}",
        lines[0]
    );
    // The next check turns the launcher's line into a receipt.
    appupdate_json(&["check", "--dir", dir.to_str().unwrap()]);
    let receipts = hook_receipts(&dir);
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(
        (&receipts[0]["hook"], &receipts[0]["to"]),
        (&"first-run".into(), &"2.0.0".into())
    );
}

#[test]
fn publish_refuses_a_hook_that_is_not_an_executable_file_of_the_release() {
    let publisher = Publisher::new();
    let source = publisher.dir.path().join("src");
    std::fs::create_dir_all(source.join("bin")).unwrap();
    std::fs::write(source.join("bin/app"), APP).unwrap();
    crate::harness::set_mode(&source.join("bin/app"), 0o755);
    std::fs::write(source.join("notes.txt"), "plain").unwrap();
    let publish = |hook: &[&str]| publisher.publish_folder("sample", "1.0.0", &source, hook);
    for (hook, expected) in [
        (
            "post-install=hooks/missing",
            "hooks/missing is not a file of the release",
        ),
        ("pre-switch=notes.txt", "is not executable"),
        ("pre-switch=../bin/app", "--hook"),
        ("pre-uninstall=bin/app", "unknown hook kind"),
        ("first-run", "expected KIND=RELPATH"),
    ] {
        let out = publish(&["--hook", hook]);
        assert!(!out.status.success(), "{hook} was accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{hook}: {stderr}");
    }
    let out = publish(&["--hook", "first-run=bin/app", "--hook-timeout", "0"]);
    assert!(!out.status.success());
    // Nothing was published: the same version goes out now.
    let out = publish(&["--hook", "first-run=./bin/app"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Hooks are a custom field only: python-tuf, the reference TUF client, reads the release
/// (and its hooks, as opaque custom data) like any other.
#[test]
fn python_tuf_reads_a_release_with_hooks() {
    let Some(python) = python_with_tuf() else {
        return;
    };
    let publisher = Publisher::new();
    publish(
        &publisher,
        "1.0.0",
        &[("hooks/check", b"#!/bin/sh\n", true)],
        &["--hook", "pre-switch=hooks/check", "--hook-timeout", "7"],
    );
    let server = Server::start(&publisher.repo());
    let work = temp_dir();
    let output = run(Command::new(python)
        .arg(test_file("interop/ngclient_download.py"))
        .args([
            &format!("{}/metadata/", server.url),
            &format!("{}/targets/", server.url),
            publisher.root_json().to_str().unwrap(),
            work.path().to_str().unwrap(),
            "sample/stable/any/1.0.0/manifest.json",
        ]));
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["sha256"], result["downloaded_sha256"]);
    assert_eq!(
        result["custom"]["hooks"],
        serde_json::json!({"pre-switch": {"path": "hooks/check", "timeout_secs": 7}})
    );
}

/// Windows (the cross-built binaries under Wine): `.cmd` hooks run through `cmd.exe` with the
/// hook variables; a failing `pre-switch` keeps the old version; `first-run` runs once, by
/// `appstart.exe`.
#[test]
fn windows_cmd_hooks_under_wine() {
    use crate::windows::{appstart_exe, appupdate_exe, describe, install_exe};
    let Some(wine) = crate::harness::wine() else {
        return;
    };
    let publisher = Publisher::new();
    let release = |version: &str, files: &[(&str, &str)], flags: &[&str]| {
        crate::windows::publish_windows_release(
            &publisher, wine, "sample", version, version, files, flags,
        );
    };
    release("1.0.0", &[], &[]);
    let home = temp_dir();
    let dir = home.path().join("app");
    let dir_arg = dir.to_str().unwrap();
    install_exe(wine, &publisher, &dir, &[]);

    let post = "@echo off\r\necho hook %APPSTART_HOOK% %APPSTART_VERSION%\r\necho cwd %CD%\r\n";
    let check = "@echo off\r\necho refusing to switch\r\nexit /b 3\r\n";
    release(
        "2.0.0",
        &[("hooks/post.cmd", post), ("hooks/check.cmd", check)],
        &[
            "--hook",
            "post-install=hooks/post.cmd",
            "--hook",
            "pre-switch=hooks/check.cmd",
        ],
    );
    let output = run(wine
        .command(&wine.exe("appupdate"))
        .args(["update", "--dir", dir_arg]));
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("exited with code 3"), "{stderr}");
    assert!(stderr.contains("refusing to switch"), "{stderr}");
    let status = appupdate_exe(wine, &["status", "--dir", dir_arg]);
    assert_eq!(status["current"], "1.0.0", "{status}");
    let lines = hook_lines(&dir);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("kind=post-install version=2.0.0 result=ok exit_code=0"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("hook post-install 2.0.0"), "{}", lines[0]);
    assert!(
        lines[1].contains("result=failed exit_code=3"),
        "{}",
        lines[1]
    );

    let first = "@echo off\r\necho first-run %APPSTART_VERSION%>> \"%APPSTART_INSTALL_DIR%\\first-run.log\"\r\n";
    release(
        "3.0.0",
        &[("hooks/first.cmd", first)],
        &["--hook", "first-run=hooks/first.cmd"],
    );
    let updated = appupdate_exe(wine, &["update", "--dir", dir_arg]);
    assert_eq!(updated["to"], "3.0.0", "{updated}");
    for _ in 0..2 {
        let output = run(&mut appstart_exe(wine, &dir, &["--until-version", "0"]));
        assert!(
            text(&output.stdout).contains("sample-app 3.0.0: 3.0.0"),
            "{}",
            describe(&output)
        );
    }
    let log = std::fs::read_to_string(dir.join("first-run.log")).unwrap();
    assert_eq!(log.trim_end(), "first-run 3.0.0", "exactly once: {log:?}");
}
