//! Repositories on a file system (issue 18, item 4): a LAN share or a folder copied to an
//! offline machine is installed from by its plain path, absolute or relative, or its
//! `file://` URL, and updated from later whatever the working directory; `repo export` writes
//! the repository subset an offline machine needs.

use std::process::Command;

use crate::harness::{
    Publisher, appupdate, appupdate_json, bin, install, install_args, run, temp_dir, text,
};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

fn publish(publisher: &Publisher, version: &str) {
    publisher.publish(
        "sample",
        version,
        &[("bin/app", APP, true), ("v", version.as_bytes(), false)],
        &[],
    );
}

#[test]
fn installs_and_updates_from_a_plain_path_and_a_relative_one() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let repo = publisher.repo();
    let home = temp_dir();
    let root = publisher.root_json();

    // An absolute path, as a LAN share is mounted.
    let dir = home.path().join("by-path");
    let report = install(&publisher, repo.to_str().unwrap(), "sample", &dir);
    assert_eq!(report["to"], "1.0.0", "{report}");

    // A relative path, resolved against the working directory of the install only.
    let relative_dir = home.path().join("by-relative-path");
    let out = run(Command::new(bin("appupdate"))
        .current_dir(repo.parent().unwrap())
        .args(["install", "--url", "repo", "--trusted-root"])
        .arg(&root)
        .args(["--app", "sample", "--dir"])
        .arg(&relative_dir)
        .arg("--json"));
    assert!(out.status.success(), "{}", text(&out.stderr));

    for installed in [&dir, &relative_dir] {
        let status = appupdate_json(&["status", "--dir", installed.to_str().unwrap()]);
        assert_eq!(
            status["url"],
            format!("file://{}", repo.display()),
            "kept as the folder's absolute file:// URL: {status}"
        );
    }

    publish(&publisher, "2.0.0");
    for installed in [&dir, &relative_dir] {
        // From another working directory: the kept URL is absolute.
        let out = run(Command::new(bin("appupdate"))
            .current_dir(home.path())
            .args(["update", "--json", "--dir"])
            .arg(installed));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["to"], "2.0.0", "{report}");
        let app = run(&mut Command::new(installed.join("appstart")));
        assert_eq!(text(&app.stdout).trim(), "app 2.0.0");
    }
}

#[test]
fn a_path_that_is_not_a_repository_folder_is_refused_before_anything_is_made() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let dir = home.path().join("app");
    let missing = home.path().join("share/repo");
    let args = install_args(&publisher, missing.to_str().unwrap(), "sample", &dir);
    let out = appupdate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: no repository folder there",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(!dir.exists(), "nothing made");
}

fn export(publisher: &Publisher, version: &str, out: &std::path::Path) -> serde_json::Value {
    appupdate_json(&[
        "repo",
        "export",
        "--repo",
        publisher.repo().to_str().unwrap(),
        "--app",
        "sample",
        "--version",
        version,
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `repo export` (issue 18, item 4): an offline machine installs from an export, and updates
/// when the share is refreshed with a newer export; the export holds the asked release and
/// newer ones (a client takes the newest the signed metadata lists), nothing older, no packs.
#[test]
fn an_export_installs_and_updates_an_offline_machine() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let share = home.path().join("share/repo");
    let report = export(&publisher, "1.0.0", &share);
    assert_eq!(
        report["releases"],
        serde_json::json!(["sample/stable/any/1.0.0"])
    );
    let dir = home.path().join("app");
    install(&publisher, share.to_str().unwrap(), "sample", &dir);
    assert_eq!(
        text(&run(&mut Command::new(dir.join("appstart"))).stdout).trim(),
        "app 1.0.0"
    );

    // A newer release, exported and copied over the share.
    publish(&publisher, "2.0.0");
    let fresh = home.path().join("export-2");
    let report = export(&publisher, "2.0.0", &fresh);
    assert_eq!(
        report["releases"],
        serde_json::json!(["sample/stable/any/2.0.0"])
    );
    assert!(
        !fresh.join("targets/sample/stable/any/1.0.0").exists(),
        "nothing older"
    );
    assert!(!fresh.join("packs").exists(), "no packs");
    std::fs::remove_dir_all(&share).unwrap();
    std::fs::rename(&fresh, &share).unwrap();
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(
        text(&run(&mut Command::new(dir.join("appstart"))).stdout).trim(),
        "app 2.0.0"
    );

    // An export of 1.0.0 now carries 2.0.0 too, which a client would take.
    let both = home.path().join("export-both");
    let report = export(&publisher, "1.0.0", &both);
    assert_eq!(
        report["releases"],
        serde_json::json!(["sample/stable/any/1.0.0", "sample/stable/any/2.0.0"])
    );
    let fresh_dir = home.path().join("fresh-app");
    install(&publisher, both.to_str().unwrap(), "sample", &fresh_dir);
    let status = appupdate_json(&["status", "--dir", fresh_dir.to_str().unwrap()]);
    assert_eq!(status["current"], "2.0.0");
}

#[test]
fn an_export_of_an_unknown_release_or_into_a_full_folder_is_refused() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let out = home.path().join("usb");
    let repo = publisher.repo();
    let attempt = |version: &str| {
        appupdate(&[
            "repo",
            "export",
            "--repo",
            repo.to_str().unwrap(),
            "--app",
            "sample",
            "--version",
            version,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let missing = attempt("9.9.9");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("no release sample 9.9.9 on channel stable"),
        "{}",
        text(&missing.stderr)
    );
    assert!(!out.exists(), "nothing written");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let full = attempt("1.0.0");
    assert_eq!(full.status.code(), Some(1));
    assert!(
        text(&full.stderr).contains("not empty"),
        "{}",
        text(&full.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
}
