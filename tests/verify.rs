//! `appupdate verify [--repair]` (issue 17 item 4): a version folder damaged after install
//! (a file changed, deleted or added) is named and fails the check; `--repair` rebuilds it in
//! a new folder fetching only the damaged files, swaps it in, and the app runs again; an
//! unreadable `appstart.toml` is rebuilt from the updater's state.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Publisher, Server, appupdate, appupdate_json, run, set_mode, temp_dir, text};

const APP_SCRIPT: &[u8] =
    b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\ncat \"$(dirname \"$0\")/../data/a\"\n";

/// A client with `1.0.0` installed from a served repository of `bin/app`, `data/a`,
/// `data/b` and `data/c` (the data files differ, so each is its own blob).
struct Installed {
    _publisher: Publisher,
    server: Server,
    _home: tempfile::TempDir,
    dir: PathBuf,
}

impl Installed {
    fn new() -> Self {
        let publisher = Publisher::new();
        publisher.publish(
            "sample",
            "1.0.0",
            &[
                ("bin/app", APP_SCRIPT, true),
                ("data/a", b"alpha\n", false),
                ("data/b", b"bravo\n", false),
                ("data/c", b"charlie\n", false),
            ],
            &[],
        );
        let server = Server::start(&publisher.repo());
        let home = temp_dir();
        let dir = home.path().join("app");
        crate::harness::install(&publisher, &server.url, "sample", &dir);
        Installed {
            _publisher: publisher,
            server,
            _home: home,
            dir,
        }
    }

    fn dir(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn version_dir(&self) -> PathBuf {
        self.dir.join("versions/1.0.0")
    }

    /// `appupdate verify --json`, and whether it exited 0.
    fn verify(&self) -> (serde_json::Value, Option<i32>) {
        let output = appupdate(&["verify", "--dir", self.dir(), "--json"]);
        let report = serde_json::from_str(text(&output.stdout).trim())
            .unwrap_or_else(|e| panic!("{e}: {}{}", text(&output.stdout), text(&output.stderr)));
        (report, output.status.code())
    }

    /// Blob requests the server has answered so far.
    fn blob_requests(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|line| line.contains("/blobs/"))
            .count()
    }

    fn run_app(&self) -> String {
        let output = run(&mut Command::new(self.dir.join("appstart")));
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    }
}

/// Installed files are read-only: make one writable to damage it, as a user or a disk would.
fn writable(path: &Path) {
    set_mode(path, 0o644);
    set_mode(path.parent().unwrap(), 0o755);
}

fn names(report: &serde_json::Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}: {report}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn verify_of_a_clean_install_is_ok() {
    let client = Installed::new();
    let (report, code) = client.verify();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["version"], "1.0.0");
    assert_eq!(report["files_checked"], 4);
    // The record was checked against the signed targets, not just trusted.
    assert_eq!(report["record_checked"], true);
    assert!(names(&report, "damaged").is_empty());
}

/// Regression (exploratory test): with `state/metadata/targets.json` unreadable or gone,
/// `verify` said the targets did not list the release, skipped the record's check and
/// reported an install whose record had been doctored as intact. It fails, naming the file.
#[test]
fn verify_without_readable_trusted_targets_fails_naming_the_file() {
    let client = Installed::new();
    let targets = client.dir.join("state/metadata/targets.json");
    for damage in ["junk", "missing"] {
        if damage == "junk" {
            std::fs::write(&targets, "junk").unwrap();
        } else {
            std::fs::remove_file(&targets).unwrap();
        }
        let output = appupdate(&["verify", "--dir", client.dir(), "--json"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{damage}: {stderr}");
        assert!(
            stderr.contains(&targets.display().to_string())
                && stderr.contains("missing or unreadable"),
            "{damage}: {stderr}"
        );
    }
    // `check` fetches the targets again, and the record is checked once more.
    crate::harness::appupdate_ok(&["check", "--dir", client.dir()]);
    let (report, code) = client.verify();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["record_checked"], true);
}

#[test]
fn verify_names_changed_deleted_and_extra_files_and_fails() {
    let client = Installed::new();
    let version = client.version_dir();
    set_mode(&version.join("data"), 0o755);
    for (damage, key, name) in [
        ("change", "damaged", "data/a"),
        ("delete", "missing", "data/b"),
        ("add", "extra", "data/new"),
    ] {
        let path = version.join(name);
        match damage {
            // Same size, other content: only the hash can tell.
            "change" => {
                writable(&path);
                std::fs::write(&path, b"ALPHA\n").unwrap();
            }
            "delete" => std::fs::remove_file(&path).unwrap(),
            _ => std::fs::write(&path, b"junk").unwrap(),
        }
        let (report, code) = client.verify();
        assert_eq!(code, Some(1), "{damage}: {report}");
        assert_eq!(report["ok"], false);
        assert!(
            names(&report, key).contains(&name.to_string()),
            "{damage}: {report}"
        );
    }
    // An extra folder is named as a folder.
    std::fs::create_dir(version.join("plugins")).unwrap();
    let (report, _) = client.verify();
    assert!(
        names(&report, "extra").contains(&"plugins/".to_string()),
        "{report}"
    );
}

#[test]
fn repair_rebuilds_in_a_new_folder_fetching_only_the_damaged_file() {
    let client = Installed::new();
    let version = client.version_dir();
    let damaged = version.join("data/a");
    writable(&damaged);
    std::fs::write(&damaged, b"ALPHA\n").unwrap();
    std::fs::remove_file(version.join("data/b")).unwrap();
    std::fs::write(version.join("data/extra"), b"junk").unwrap();
    let original_inode = inode(&version.join("data/c"));
    let blobs_before = client.blob_requests();

    let report = appupdate_json(&["verify", "--dir", client.dir(), "--repair"]);
    assert_eq!(names(&report, "damaged"), ["data/a"], "{report}");
    assert_eq!(names(&report, "missing"), ["data/b"], "{report}");
    assert_eq!(names(&report, "extra"), ["data/extra"], "{report}");
    assert_eq!(report["downloaded_files"], 2, "{report}");
    assert_eq!(
        report["repaired_to"].as_str().map(PathBuf::from),
        Some(version.clone())
    );
    assert_eq!(
        client.blob_requests() - blobs_before,
        2,
        "only the two damaged files"
    );

    // Beside it, never in place: the damaged folder was moved aside as it was.
    let aside = PathBuf::from(report["damaged_moved_to"].as_str().unwrap());
    assert!(aside.starts_with(client.dir.join("versions")));
    assert_eq!(std::fs::read(aside.join("data/a")).unwrap(), b"ALPHA\n");
    assert!(aside.join("data/extra").exists());
    // The intact file was reused (hashed, then hard-linked), not fetched.
    assert_eq!(inode(&version.join("data/c")), original_inode);

    assert_eq!(client.run_app(), "app 1.0.0\nalpha\n");
    let (again, code) = client.verify();
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["ok"], true);
}

#[test]
fn repair_rebuilds_an_unreadable_appstart_toml() {
    let client = Installed::new();
    let config = client.dir.join("appstart.toml");
    std::fs::write(&config, "current = [this is not toml").unwrap();
    let (report, code) = client.verify();
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["config_ok"], false);

    let report = appupdate_json(&["verify", "--dir", client.dir(), "--repair"]);
    assert_eq!(report["config_rebuilt"], true, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["repaired_to"], serde_json::Value::Null, "{report}");
    assert_eq!(client.run_app(), "app 1.0.0\nalpha\n");
    let (again, code) = client.verify();
    assert_eq!(code, Some(0), "{again}");
}

#[test]
fn verify_refuses_a_tampered_record() {
    // The record is the reference every file is checked against: a changed record must not
    // make a changed file look intact.
    let client = Installed::new();
    let record_path = client.dir.join("state/manifests/1.0.0.json");
    let record = std::fs::read_to_string(&record_path).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&record).unwrap();
    record["manifest"]["files"][0]["size"] = serde_json::json!(1);
    std::fs::write(&record_path, record.to_string()).unwrap();
    let output = appupdate(&["verify", "--dir", client.dir()]);
    // Its hash is not the signed one: verification refused.
    assert_eq!(output.status.code(), Some(4));
    assert!(
        text(&output.stderr).contains("1.0.0.json"),
        "{}",
        text(&output.stderr)
    );
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}
