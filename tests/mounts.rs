//! A file system mounted inside an install (a user's data bound into a version's folder, a
//! tmpfs) is never deleted: not by the prune of an update, not by the spare's sweep, not by
//! `uninstall`. Through the real CLI, over real HTTP, with real mounts (root: CI fails
//! without them, elsewhere the tests skip and say so).

use std::path::Path;

use crate::harness::{
    Publisher, Server, appupdate, mount_or_skip, noise, temp_dir, text, tree_snapshot,
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

/// Binds the user's folder `bound` over `at` (the same file system: only the mount table
/// tells it); `None` where this machine cannot mount (see `mount_or_skip`).
fn bind(bound: &Path, at: &Path, home: &Path, what: &str) -> Option<crate::harness::MountsUnder> {
    mount_or_skip(&["--bind", bound.to_str().unwrap()], at, home, what)
}

/// Where the file systems mounted under `home` are now, relative to `dir`.
fn mounted_at(home: &Path, dir: &Path) -> Vec<String> {
    crate::harness::MountsUnder::points_under(home)
        .iter()
        .map(|point| {
            let dir = std::fs::canonicalize(dir).unwrap();
            point.strip_prefix(&dir).unwrap().display().to_string()
        })
        .collect()
}

fn update(dir: &Path, to: &str) -> (serde_json::Value, String) {
    let output = appupdate(&["update", "--json", "--dir", dir.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["to"], to, "{report}");
    (report, stderr)
}

/// A user's folder bound over a folder the release has (the same file system, so only the
/// mount table tells it; a sweep would otherwise remove what the release lacks), in turn in
/// an old version, in the spare and in a leftover staging folder. The prune leaves an old
/// version holding it where it is and says why; staging does not start from a spare holding
/// it, which stays where it is; a leftover staging folder holding one is not swept but moved
/// aside. Every update succeeds, the user's file is intact throughout, and once unmounted
/// the folders go as always.
#[test]
fn a_file_system_mounted_in_an_install_survives_prune_and_sweep() {
    let (publisher, _server, home) = installed();
    let dir = home.path().join("app");
    let versions = dir.join("versions");
    let bound = users_folder(home.path());
    let bind = |at: &Path| {
        bind(
            &bound,
            at,
            home.path(),
            "that a mounted file system survives a prune",
        )
    };
    let intact = || {
        assert_eq!(
            std::fs::read(bound.join("precious")).unwrap(),
            b"the user's data"
        )
    };
    publish(&publisher, "2.0.0");
    update(&dir, "2.0.0");

    // An old version holding a mount: not set aside, not removed, left where it is.
    let Some(mounts) = bind(&versions.join("1.0.0/data")) else {
        return;
    };
    publish(&publisher, "3.0.0");
    let (report, stderr) = update(&dir, "3.0.0");
    assert_eq!(report["removed"], serde_json::json!([]), "{report}");
    assert!(
        stderr.contains("a file system is mounted inside it") && stderr.contains("unmount it"),
        "says why: {stderr}"
    );
    assert_eq!(mounted_at(home.path(), &dir), ["versions/1.0.0/data"]);
    intact();
    drop(mounts);

    // Unmounted, it is removed; 2.0.0 is set aside. A mount in that spare: not started from.
    publish(&publisher, "4.0.0");
    update(&dir, "4.0.0");
    assert!(!versions.join("1.0.0").exists());
    assert!(versions.join(".spare").is_dir());
    let mounts = bind(&versions.join(".spare/data")).unwrap();
    publish(&publisher, "5.0.0");
    let (report, stderr) = update(&dir, "5.0.0");
    assert_eq!(report["plan"]["kept_files"], 0, "{report}");
    assert!(stderr.contains("not starting from"), "says why: {stderr}");
    assert_eq!(mounted_at(home.path(), &dir), ["versions/.spare/data"]);
    intact();
    drop(mounts);

    // A leftover staging folder holding a mount: not swept (its unwanted files stay), moved
    // aside; the prune leaves that folder, saying why.
    publish(&publisher, "6.0.0");
    let leftover = versions.join(".staging-6.0.0");
    std::fs::create_dir_all(leftover.join("data")).unwrap();
    let mounts = bind(&leftover.join("data")).unwrap();
    let (report, stderr) = update(&dir, "6.0.0");
    assert_eq!(report["plan"]["kept_files"], 0, "{report}");
    assert!(
        stderr.contains("a file system is mounted inside it at"),
        "says why: {stderr}"
    );
    assert_eq!(
        mounted_at(home.path(), &dir),
        ["versions/.damaged-6.0.0-0/data"]
    );
    intact();
    let launched = crate::harness::run(&mut std::process::Command::new(dir.join("appstart")));
    assert_eq!(text(&launched.stdout), "app 6.0.0\n");

    // Unmounted, the next update's prune removes the folder as always.
    drop(mounts);
    publish(&publisher, "7.0.0");
    update(&dir, "7.0.0");
    let left: Vec<String> = std::fs::read_dir(&versions)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".damaged-"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "removed once unmounted");
    intact();
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
    let Some(mounts) = bind(
        &bound,
        &mount,
        home.path(),
        "that uninstall keeps a mounted file system",
    ) else {
        return;
    };
    let before = tree_snapshot(&dir);
    // Named directly, and through a link to it.
    let link = home.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    for named in [&dir, &link] {
        let output = appupdate(&["uninstall", "--dir", named.to_str().unwrap()]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(mount.to_str().unwrap()) && stderr.contains("unmount it"),
            "names the mount point: {stderr}"
        );
        assert_eq!(tree_snapshot(&dir), before, "nothing removed");
    }
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

/// An install that is a volume of its own (its folder is a mount point) is emptied by
/// `uninstall`, which leaves the mount point: what is on that volume was the install.
#[test]
fn uninstall_empties_an_install_that_is_a_volume_of_its_own() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("volume");
    std::fs::create_dir_all(&dir).unwrap();
    let Some(_mounts) = mount_or_skip(
        &["-t", "tmpfs", "-o", "size=512m", "tmpfs"],
        &dir,
        home.path(),
        "uninstall of an install on its own volume",
    ) else {
        return;
    };
    crate::harness::install(&publisher, &server.url, "mounted", &dir);
    let output = appupdate(&["uninstall", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(dir.is_dir(), "the mount point stays");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "emptied");
}

/// A folder in the way of the version being committed (left by a run that died before
/// switching) that holds a mount point: the update fails before the new version's record is
/// committed, names the mount point, and leaves the install and the mount as they were.
#[test]
fn a_mount_in_the_way_of_a_new_version_fails_the_update_cleanly() {
    let (publisher, _server, home) = installed();
    let dir = home.path().join("app");
    let bound = users_folder(home.path());
    let in_the_way = dir.join("versions/2.0.0/data");
    std::fs::create_dir_all(&in_the_way).unwrap();
    let Some(_mounts) = bind(
        &bound,
        &in_the_way,
        home.path(),
        "that a mount in the way of a new version is kept",
    ) else {
        return;
    };
    publish(&publisher, "2.0.0");
    let output = appupdate(&["update", "--dir", dir.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(in_the_way.to_str().unwrap()), "{stderr}");
    assert!(
        !dir.join("state/manifests/2.0.0.json").exists(),
        "no record of 2.0.0"
    );
    let launched = crate::harness::run(&mut std::process::Command::new(dir.join("appstart")));
    assert_eq!(text(&launched.stdout), "app 1.0.0\n");
    assert_eq!(
        std::fs::read(bound.join("precious")).unwrap(),
        b"the user's data"
    );
}
