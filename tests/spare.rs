//! The folder a prune sets aside (`versions/.spare`) and the next staging starts from:
//! through the real CLI, over real HTTP, on real files.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::{Publisher, Server, appupdate_json, noise, run, tree_snapshot};

const APP_SCRIPT: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

type Files = BTreeMap<String, Vec<u8>>;

fn publish(publisher: &Publisher, version: &str, files: &Files) {
    let mut all: Vec<(&str, &[u8], bool)> = vec![("bin/app", APP_SCRIPT, true)];
    all.extend(files.iter().map(|(p, c)| (p.as_str(), c.as_slice(), false)));
    publisher.publish("spare", version, &all, &["--delta-depth", "0"]);
}

fn update(dir: &Path) -> serde_json::Value {
    appupdate_json(&["update", "--dir", dir.to_str().unwrap()])
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The third update of a client prunes its oldest version: its folder is set aside, and the
/// next update starts from it, keeping exactly the files proven to be untouched installed
/// files (a copy with the right bytes, a file with other bytes and a stray file are not
/// kept), while the installed versions stay as they were.
#[test]
fn a_pruned_folder_is_set_aside_and_the_next_update_keeps_only_proven_files() {
    let publisher = Publisher::new();
    let mut files: Files = (0..20)
        .map(|i| (format!("data/f{i:02}"), noise(i, 5_000)))
        .collect();
    publish(&publisher, "1.0.0", &files);
    let server = Server::start(&publisher.repo());
    let home = crate::harness::temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "spare", &dir);
    let versions = dir.join("versions");

    files.insert("data/f00".into(), noise(100, 5_000));
    publish(&publisher, "2.0.0", &files);
    let report = update(&dir);
    assert_eq!(report["to"], "2.0.0");
    assert_eq!(
        report["plan"]["kept_files"], 0,
        "nothing set aside yet: {report}"
    );
    assert_eq!(entries(&versions), ["1.0.0", "2.0.0"]);

    files.insert("data/f01".into(), noise(101, 5_000));
    publish(&publisher, "3.0.0", &files);
    let v1_app_inode = std::fs::metadata(versions.join("1.0.0/bin/app"))
        .unwrap()
        .ino();
    let report = update(&dir);
    assert_eq!(report["to"], "3.0.0");
    assert_eq!(report["removed"], serde_json::json!(["1.0.0"]));
    assert_eq!(
        entries(&versions),
        [".spare", "2.0.0", "3.0.0"],
        "1.0.0's folder was set aside, not deleted"
    );
    let spare = versions.join(".spare");
    assert_eq!(
        std::fs::metadata(spare.join("bin/app")).unwrap().ino(),
        v1_app_inode
    );
    let status = appupdate_json(&["status", "--dir", dir.to_str().unwrap()]);
    assert_eq!(status["installed"], serde_json::json!(["3.0.0", "2.0.0"]));

    // Change the spare the ways a user or a crash could: a copy with the right bytes (another
    // file, not a recorded one), other bytes of the same size, a stray file and folder.
    let copied = spare.join("data/f05");
    let bytes = std::fs::read(&copied).unwrap();
    std::fs::remove_file(&copied).unwrap();
    std::fs::write(&copied, &bytes).unwrap();
    let other = spare.join("data/f06");
    std::fs::remove_file(&other).unwrap();
    std::fs::write(&other, noise(666, 5_000)).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::write(spare.join("stray.txt"), b"stray").unwrap();
    std::fs::create_dir_all(spare.join("stray/deeper")).unwrap();

    files.insert("data/f02".into(), noise(102, 5_000));
    files.remove("data/f19");
    files.insert("new/g".into(), noise(103, 7_000));
    publish(&publisher, "4.0.0", &files);
    let v3_before = tree_snapshot(&versions.join("3.0.0"));
    let report = update(&dir);
    assert_eq!(report["to"], "4.0.0");
    // Kept: bin/app and f03..f18 but f05 and f06 (16 + 1 - 2). Linked from installed
    // versions: f00 and f01 (changed since 1.0.0), f05 and f06. Downloaded: f02 and new/g.
    assert_eq!(report["plan"]["kept_files"], 15, "{report}");
    assert_eq!(report["files_reused"], 19, "{report}");
    assert_eq!(report["files_downloaded"], 2, "{report}");
    assert_eq!(report["removed"], serde_json::json!(["2.0.0"]));
    assert_eq!(entries(&versions), [".spare", "3.0.0", "4.0.0"]);

    // The new version is exactly the release, and runs.
    let v4 = versions.join("4.0.0");
    let mut found = Files::new();
    let mut stack = vec![v4.clone()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(&v4).unwrap().display().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if relative != "bin/app" {
                found.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    assert!(found == files, "4.0.0 holds exactly its release's files");
    assert_ne!(
        std::fs::metadata(v4.join("bin/app")).unwrap().mode() & 0o111,
        0
    );
    assert_eq!(
        std::fs::metadata(v4.join("data/f10")).unwrap().ino(),
        std::fs::metadata(versions.join("3.0.0/data/f10"))
            .unwrap()
            .ino(),
        "an unchanged file is the installed one"
    );
    // Nothing kept from the spare changed an installed version.
    assert_eq!(tree_snapshot(&versions.join("3.0.0")), v3_before);
    let output = run(&mut std::process::Command::new(dir.join("appstart")));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "app 4.0.0\n");
}
