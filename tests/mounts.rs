//! A file system mounted inside an install (a user's data bound into a version's folder, a
//! tmpfs) is never deleted: not by the prune of an update, not by the spare's sweep, not by
//! `uninstall`. Through the real CLI, over real HTTP, with real mounts (root: CI fails
//! without them, elsewhere the tests skip and say so).

use std::path::Path;

use crate::harness::{
    Publisher, Server, appupdate, appupdate_json, mount_or_skip, noise, temp_dir, text,
    tree_snapshot,
};

const APP_SCRIPT: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

fn publish(publisher: &Publisher, version: &str) {
    let data = noise(version.len() as u64 + version.as_bytes()[0] as u64, 3_000);
    let files: Vec<(&str, &[u8], bool)> = vec![
        ("bin/app", APP_SCRIPT, true),
        ("data/shared", b"the same in every release", false),
        ("data/changing", &data, false),
    ];
    publisher.publish("mounted", version, &files, &["--delta-depth", "0"]);
}

/// A publisher with 1.0.0, its server, and a temporary home with 1.0.0 installed in `app`.
fn installed() -> (Publisher, Server, tempfile::TempDir) {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    crate::harness::install(&publisher, &server.url, "mounted", &home.path().join("app"));
    (publisher, server, home)
}

/// A user's folder outside the install, with one file in it: `precious`.
fn users_folder(home: &Path) -> std::path::PathBuf {
    let bound = home.join("user data");
    std::fs::create_dir_all(&bound).unwrap();
    std::fs::write(bound.join("precious"), b"the user's data").unwrap();
    bound
}

/// The one file on the mounted file system, wherever renames have moved the mount.
fn precious(home: &Path) -> Vec<u8> {
    let guard_points = crate::harness::MountsUnder::points_under(home);
    let point = guard_points
        .first()
        .expect("the file system is still mounted");
    std::fs::read(point.join("precious")).expect("the file on the mounted file system")
}

/// An old version's folder with a folder mounted inside it: the update that prunes that
/// version sets the folder aside with the mount in it; the next update's staging does not
/// sweep a folder holding a mount (it moves it aside as `.damaged-`), and the prune after
/// it does not delete it, saying why. Every update succeeds, and the mounted file system's
/// file is intact throughout.
#[test]
fn a_file_system_mounted_in_an_old_version_survives_prune_and_sweep() {
    let (publisher, _server, home) = installed();
    let dir = home.path().join("app");
    let dir_arg = dir.to_str().unwrap();
    publish(&publisher, "2.0.0");
    assert_eq!(appupdate_json(&["update", "--dir", dir_arg])["to"], "2.0.0");

    // A user's folder bound over a folder the release has: the same file system, so only
    // the mount table tells it, and a sweep would otherwise remove what the release lacks.
    let bound = users_folder(home.path());
    let Some(mounts) = mount_or_skip(
        &["--bind", bound.to_str().unwrap()],
        &dir.join("versions/1.0.0/data"),
        home.path(),
        "that a mounted file system survives a prune",
    ) else {
        return;
    };

    // 3.0.0 prunes 1.0.0: its folder is set aside, mount and all.
    publish(&publisher, "3.0.0");
    let report = appupdate_json(&["update", "--dir", dir_arg]);
    assert_eq!(report["to"], "3.0.0");
    assert_eq!(precious(home.path()), b"the user's data");

    // 4.0.0's staging finds the mount in the spare: not swept, moved aside; its prune leaves
    // that folder and says why.
    publish(&publisher, "4.0.0");
    let output = appupdate(&["update", "--json", "--dir", dir_arg]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["to"], "4.0.0");
    assert_eq!(
        report["plan"]["kept_files"], 0,
        "nothing kept from it: {report}"
    );
    assert!(
        stderr.contains("a file system is mounted inside it"),
        "says why: {stderr}"
    );
    assert_eq!(precious(home.path()), b"the user's data");
    let points = crate::harness::MountsUnder::points_under(home.path());
    assert!(
        points[0].starts_with(dir.join("versions")),
        "still in the install: {points:?}"
    );
    let launched = crate::harness::run(&mut std::process::Command::new(dir.join("appstart")));
    assert_eq!(text(&launched.stdout), "app 4.0.0\n");

    // Unmounted, the next update's prune removes the folder as always.
    drop(mounts);
    publish(&publisher, "5.0.0");
    assert_eq!(appupdate_json(&["update", "--dir", dir_arg])["to"], "5.0.0");
    let left: Vec<String> = std::fs::read_dir(dir.join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".damaged-"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "removed once unmounted");
    assert_eq!(
        std::fs::read(bound.join("precious")).unwrap(),
        b"the user's data"
    );
}

/// `uninstall` of an install holding a mount point refuses before it removes anything
/// (shortcuts included), names the mount point, and exits 1; once unmounted it
/// removes the install.
#[test]
fn uninstall_refuses_an_install_holding_a_mount_point_and_removes_nothing() {
    let (_publisher, _server, home) = installed();
    let dir = home.path().join("app");
    let bound = users_folder(home.path());
    let mount = dir.join("versions/1.0.0/data/linked");
    std::fs::create_dir_all(&mount).unwrap();
    // A bind mount: the same file system, which only the mount table tells.
    let Some(mounts) = mount_or_skip(
        &["--bind", bound.to_str().unwrap()],
        &mount,
        home.path(),
        "that uninstall keeps a mounted file system",
    ) else {
        return;
    };
    let before = tree_snapshot(&dir);
    let output = appupdate(&["uninstall", "--dir", dir.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(mount.to_str().unwrap()) && stderr.contains("unmount it"),
        "names the mount point: {stderr}"
    );
    assert_eq!(tree_snapshot(&dir), before, "nothing removed");
    assert_eq!(
        std::fs::read(bound.join("precious")).unwrap(),
        b"the user's data"
    );

    drop(mounts);
    let output = appupdate(&["uninstall", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!dir.exists());
    assert_eq!(
        std::fs::read(bound.join("precious")).unwrap(),
        b"the user's data"
    );
}
