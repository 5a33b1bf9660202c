//! Self-contained installers (`appupdate installer`) on this platform: the installer file
//! installs the app with one command and starts it; a damaged installer installs nothing.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{self, Publisher, run, text};

const APP: &str = "hello";

/// A publisher with `hello` 1.0.0, whose `bin/app` prints its arguments.
fn published() -> Publisher {
    let publisher = Publisher::new();
    publisher.publish(
        APP,
        "1.0.0",
        &[(
            "bin/app",
            b"#!/bin/sh\necho \"hello 1.0.0 running with: $*\"\n",
            true,
        )],
        &[],
    );
    publisher
}

/// `appupdate installer` for `publisher`'s repository, served from `file://`; returns the
/// installer's path.
fn build_installer(publisher: &Publisher, out: &Path) {
    let url = format!("file://{}", publisher.repo().display());
    let stdout = harness::appupdate_ok(&[
        "installer",
        "--repo",
        publisher.repo().to_str().expect("utf-8"),
        "--app",
        APP,
        "--url",
        &url,
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(stdout.contains("wrote"), "{stdout}");
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The installer installs into --dir, makes a desktop and a start-menu shortcut, and starts
/// the app (passing the arguments after `--`); without --dir it installs into
/// `$XDG_DATA_HOME/APP`, else `~/.local/share/APP`. `--no-shortcut` and `--shortcut` choose
/// the shortcuts; `appupdate uninstall` removes the ones it made.
#[test]
fn installer_installs_and_starts_the_app() {
    let publisher = published();
    let home = harness::temp_dir();
    let installer = home.path().join("hello-setup");
    build_installer(&publisher, &installer);

    // Every run gets its own HOME: shortcuts never go to this machine's real desktop.
    let first_home = home.path().join("first-home");
    let dir = home.path().join("app");
    let output = run(Command::new(&installer)
        .args(["--dir", dir.to_str().expect("utf-8"), "--", "first"])
        .env("HOME", &first_home)
        .env_remove("XDG_DATA_HOME"));
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("installed hello 1.0.0 into"), "{stdout}");
    assert!(
        stdout.contains("hello 1.0.0 running with: first"),
        "the app is started: {}",
        describe(&output)
    );
    let status = harness::appupdate_json(&["status", "--dir", dir.to_str().expect("utf-8")]);
    assert_eq!(status["current"], "1.0.0", "{status}");
    assert_eq!(status["app"], APP, "{status}");
    let desktop = first_home.join("Desktop/hello.desktop");
    let menu = first_home.join(".local/share/applications/hello.desktop");
    for shortcut in [&desktop, &menu] {
        let entry = std::fs::read_to_string(shortcut)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", shortcut.display(), describe(&output)));
        assert!(
            entry.contains(dir.join("appstart").to_str().expect("utf-8")),
            "the shortcut starts the launcher: {entry}"
        );
        assert!(
            stdout.contains(&format!("made a shortcut: {}", shortcut.display())),
            "{stdout}"
        );
    }
    harness::appupdate_ok(&["uninstall", "--dir", dir.to_str().expect("utf-8")]);
    assert!(
        !desktop.exists() && !menu.exists(),
        "uninstall removes them"
    );
    assert!(!dir.exists(), "uninstall removes the install");

    // The default folders, with --no-start and --no-shortcut.
    let user = home.path().join("user");
    let output = run(Command::new(&installer)
        .args(["--no-start", "--no-shortcut"])
        .env("HOME", &user)
        .env_remove("XDG_DATA_HOME"));
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        !text(&output.stdout).contains("running with"),
        "--no-start starts nothing: {}",
        describe(&output)
    );
    let default_dir = user.join(".local/share").join(APP);
    let status =
        harness::appupdate_json(&["status", "--dir", default_dir.to_str().expect("utf-8")]);
    assert_eq!(status["current"], "1.0.0", "{status}");
    assert!(
        !user.join("Desktop").exists() && !user.join(".local/share/applications").exists(),
        "--no-shortcut makes none"
    );

    // --shortcut start-menu: only that one, in $XDG_DATA_HOME/applications.
    let data = home.path().join("data");
    let output = run(Command::new(&installer)
        .args(["--shortcut", "start-menu"])
        .env("HOME", &user)
        .env("XDG_DATA_HOME", &data));
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("hello 1.0.0 running with:"),
        "{}",
        describe(&output)
    );
    assert!(data.join(APP).join("appstart").is_file());
    assert!(data.join("applications/hello.desktop").is_file());
    assert!(
        !user.join("Desktop").exists(),
        "no desktop shortcut asked for"
    );
}

/// A byte flipped in the payload (a damaged download, or a changed URL) is caught by the
/// payload's digest: the installer says so and installs nothing.
#[test]
fn installer_with_a_corrupted_payload_installs_nothing() {
    let publisher = published();
    let home = harness::temp_dir();
    let installer = home.path().join("hello-setup");
    build_installer(&publisher, &installer);
    let mut bytes = std::fs::read(&installer).unwrap();
    // Inside the payload: the trailer is the last 56 bytes, the launcher comes before it.
    let at = bytes.len() - 56 - 1000;
    bytes[at] ^= 0x01;
    std::fs::write(&installer, &bytes).unwrap();

    let dir = home.path().join("app");
    let output = run(Command::new(&installer).args(["--dir", dir.to_str().expect("utf-8")]));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains("the installer payload is corrupt"),
        "{}",
        describe(&output)
    );
    assert!(!dir.exists(), "nothing is installed");
}

/// The installer is made for one platform: for another, the binaries built for it are needed.
#[test]
fn installer_for_another_platform_needs_its_binaries() {
    let publisher = Publisher::new();
    let home = harness::temp_dir();
    let output = harness::appupdate(&[
        "installer",
        "--repo",
        publisher.repo().to_str().expect("utf-8"),
        "--app",
        APP,
        "--url",
        "https://example.com/repo",
        "--platform",
        "windows-x86_64",
        "--out",
        home.path().join("setup.exe").to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("pass --appupdate-binary"),
        "{}",
        text(&output.stderr)
    );
    assert!(!home.path().join("setup.exe").exists());
}
