//! Desktop and start-menu shortcuts on Linux (`install --shortcut`), and `uninstall`, which
//! removes them and the install. `HOME` and `XDG_DATA_HOME` point into a temporary folder,
//! so the tests never touch the real desktop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{Publisher, Server, bin, run, temp_dir, text, tree_snapshot};

const APP_SCRIPT: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// Runs the real `appupdate` with `HOME` (and `XDG_DATA_HOME`, when given) redirected.
fn appupdate_at(home: &Path, data_home: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(bin("appupdate"));
    command.args(args).env("HOME", home);
    match data_home {
        Some(path) => command.env("XDG_DATA_HOME", path),
        None => command.env_remove("XDG_DATA_HOME"),
    };
    run(&mut command)
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "appupdate failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn publish_sample() -> (Publisher, Server) {
    let publisher = Publisher::new();
    publisher.publish("sample", "1.0.0", &[("bin/app", APP_SCRIPT, true)], &[]);
    let server = Server::start(&publisher.repo());
    (publisher, server)
}

fn install_args<'a>(
    publisher_root: &'a str,
    server: &'a Server,
    dir: &'a str,
    shortcuts: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "install",
        "--url",
        &server.url,
        "--trusted-root",
        publisher_root,
        "--app",
        "sample",
        "--dir",
        dir,
    ];
    for shortcut in shortcuts {
        args.extend(["--shortcut", shortcut]);
    }
    args
}

/// The value of `key` in a Desktop Entry.
fn entry_value(entry: &str, key: &str) -> String {
    entry
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{entry}"))
        .to_string()
}

/// Checks the file with `desktop-file-validate` when it is installed (optional).
fn validate_if_possible(path: &Path) {
    match Command::new("desktop-file-validate").arg(path).output() {
        Ok(output) => assert!(
            output.status.success() && output.stdout.is_empty(),
            "desktop-file-validate {}: {}{}",
            path.display(),
            text(&output.stdout),
            text(&output.stderr)
        ),
        Err(_) => eprintln!("desktop-file-validate not installed: not validating"),
    }
}

#[test]
fn linux_install_with_shortcuts_then_uninstall_removes_them_and_the_folder() {
    let (publisher, server) = publish_sample();
    let home = temp_dir();
    let data_home = home.path().join("data");
    // A space in the path: the Exec line must quote it.
    let dir = home.path().join("my apps/sample");
    let root = publisher.root_json();
    let args = install_args(
        root.to_str().unwrap(),
        &server,
        dir.to_str().unwrap(),
        &["desktop", "start-menu"],
    );
    succeeded(&appupdate_at(home.path(), Some(&data_home), &args));

    let desktop = home.path().join("Desktop/sample.desktop");
    let menu = data_home.join("applications/sample.desktop");
    let launcher = dir.join("appstart");
    for shortcut in [&desktop, &menu] {
        let entry = std::fs::read_to_string(shortcut)
            .unwrap_or_else(|e| panic!("{}: {e}", shortcut.display()));
        assert_eq!(entry_value(&entry, "Type"), "Application");
        assert_eq!(entry_value(&entry, "Name"), "sample");
        let exec = entry_value(&entry, "Exec");
        assert_eq!(exec, format!("\"{}\"", launcher.display()), "{entry}");
        let mode = std::fs::metadata(shortcut).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{} is executable", shortcut.display());
        validate_if_possible(shortcut);
        // What a desktop does with the Exec line (no special characters in this path):
        // unquote it and run the program, which starts the app.
        let program = PathBuf::from(exec.trim_matches('"'));
        let output = run(&mut Command::new(&program));
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout).trim(), "app 1.0.0");
    }
    assert!(dir.join("state/shortcuts.toml").is_file());

    let output = appupdate_at(
        home.path(),
        Some(&data_home),
        &["uninstall", "--dir", dir.to_str().unwrap(), "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(succeeded(&output).trim()).unwrap();
    assert_eq!(
        report["shortcuts"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert!(!desktop.exists(), "the desktop shortcut is removed");
    assert!(!menu.exists(), "the start-menu shortcut is removed");
    assert!(!dir.exists(), "the install folder is removed");
    assert!(
        dir.parent().unwrap().is_dir(),
        "the folder holding the install stays"
    );
}

#[test]
fn linux_start_menu_shortcut_defaults_to_local_share_applications() {
    let (publisher, server) = publish_sample();
    let home = temp_dir();
    let dir = home.path().join("sample");
    let root = publisher.root_json();
    let args = install_args(
        root.to_str().unwrap(),
        &server,
        dir.to_str().unwrap(),
        &["start-menu"],
    );
    succeeded(&appupdate_at(home.path(), None, &args));
    let menu = home.path().join(".local/share/applications/sample.desktop");
    assert!(
        menu.is_file(),
        "XDG_DATA_HOME unset: ~/.local/share is used"
    );
    assert!(
        !home.path().join("Desktop").exists(),
        "no desktop shortcut asked for"
    );
    // Through a link to the install (docs/cli.md: "DIR may be a link to the install").
    // Regression (exploratory test): that removed the link's entries and left the folder
    // with `state/install.toml` and `state/lock`, an install that was not one.
    let link = home.path().join("sample-link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    succeeded(&appupdate_at(
        home.path(),
        None,
        &["uninstall", "--dir", link.to_str().unwrap()],
    ));
    assert!(!menu.exists());
    assert!(!dir.exists(), "the install's folder is removed");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "and the link to it"
    );
}

/// A shortcut that exists already belongs to someone else: install fails, leaves it as it
/// was, and removes the shortcuts it made and the folder.
#[test]
fn linux_install_refuses_to_replace_an_existing_shortcut_and_leaves_nothing() {
    let (publisher, server) = publish_sample();
    let home = temp_dir();
    let data_home = home.path().join("data");
    let menu = data_home.join("applications/sample.desktop");
    std::fs::create_dir_all(menu.parent().unwrap()).unwrap();
    std::fs::write(&menu, "not ours").unwrap();
    let dir = home.path().join("sample");
    let root = publisher.root_json();
    let args = install_args(
        root.to_str().unwrap(),
        &server,
        dir.to_str().unwrap(),
        &["desktop", "start-menu"],
    );
    let output = appupdate_at(home.path(), Some(&data_home), &args);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("exists already"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(std::fs::read_to_string(&menu).unwrap(), "not ours");
    assert!(!home.path().join("Desktop/sample.desktop").exists());
    assert!(!dir.exists(), "a failed install leaves nothing behind");
}

#[test]
fn uninstall_refuses_a_folder_that_is_not_an_install_and_changes_nothing() {
    let home = temp_dir();
    let dir = home.path().join("documents");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(dir.join("letter.txt"), "dear").unwrap();
    std::fs::write(dir.join("appstart.toml"), "current = \"1.0.0\"\n").unwrap();
    let before = tree_snapshot(&dir);
    let output = appupdate_at(
        home.path(),
        None,
        &["uninstall", "--dir", dir.to_str().unwrap()],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("is not an appstart install"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(tree_snapshot(&dir), before, "nothing changed");
}
