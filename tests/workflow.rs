//! The TUF client workflow, case by case from the specification (1.0.34, section 5).
//!
//! Each test names the step it checks. Top-level roles are played against a real installed
//! client (`appupdate check`, as in `attacks.rs`); delegations against `tuf-client` and a
//! repository built with python-tuf, served by a small server that does not decode paths
//! (so a percent-encoded role name reaches the disk as it was sent).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use updater_core::advanced::tuf::keys::SigningKey;

use crate::attacks::Scenario;
use crate::harness::{appupdate, python_with_tuf, run, test_file, text};

fn trusted(scenario: &Scenario, name: &str) -> Vec<u8> {
    std::fs::read(scenario.dir.join("state/metadata").join(name)).unwrap()
}

fn version_of(bytes: &[u8]) -> u64 {
    let file: Value = serde_json::from_slice(bytes).unwrap();
    file["signed"]["version"].as_u64().unwrap()
}

/// `check` fails saying `needle`: refused as unverified (exit 4) unless `needle` is an HTTP
/// status (a network error, exit 3).
fn check_fails(scenario: &Scenario, needle: &str) -> String {
    let output = appupdate(&["check", "--dir", scenario.dir.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    let code = if needle == "404" { 3 } else { 4 };
    assert_eq!(output.status.code(), Some(code), "not refused: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    stderr
}

/// 5.5.7 then 5.6.3: the new snapshot verified, so it is stored before the targets it
/// names fail their signature check; the targets are not stored.
/// Regression: the refresh was a transaction and kept the old snapshot.
#[test]
fn a_refresh_that_fails_after_the_snapshot_stores_the_new_snapshot() {
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let old_targets = trusted(&scenario, "targets.json");
    let mut targets = editor.signed(&format!("{}.targets.json", editor.targets_version()));
    let version = targets["version"].as_u64().unwrap() + 1;
    targets["version"] = json!(version);
    let forged = editor.write(
        &format!("{version}.targets.json"),
        &targets,
        &[&SigningKey::generate().unwrap()],
    );
    editor.new_snapshot(version, &forged, |_| {});
    check_fails(&scenario, "targets metadata");
    let served_snapshot =
        std::fs::read(editor.path(&format!("{}.snapshot.json", editor.snapshot_version())))
            .unwrap();
    assert!(trusted(&scenario, "snapshot.json") == served_snapshot);
    assert!(
        trusted(&scenario, "timestamp.json")
            == std::fs::read(editor.path("timestamp.json")).unwrap()
    );
    assert!(
        trusted(&scenario, "targets.json") == old_targets,
        "the forged targets were stored"
    );
}

/// 5.4.5 then 5.5.1 / 5.5.3: the new timestamp verified, so it is stored before the snapshot
/// it names fails (missing on the server, or a `_type` other than `snapshot`); the old
/// snapshot stays. Regression: the transactional refresh kept the old timestamp.
#[test]
fn a_refresh_that_fails_after_the_timestamp_stores_the_new_timestamp() {
    for failure in ["404", "wrong _type"] {
        let scenario = Scenario::new();
        let editor = scenario.editor();
        let old_snapshot = trusted(&scenario, "snapshot.json");
        let version = editor.snapshot_version();
        let path = editor.path(&format!("{version}.snapshot.json"));
        let needle = if failure == "404" {
            std::fs::remove_file(&path).unwrap();
            "404"
        } else {
            let mut snapshot = editor.signed(&format!("{version}.snapshot.json"));
            snapshot["_type"] = json!("targets");
            let bytes = editor.write(
                &format!("{version}.snapshot.json"),
                &snapshot,
                &[&editor.key("snapshot")],
            );
            editor.new_timestamp(version, &bytes, |_| {});
            "field `_type`"
        };
        check_fails(&scenario, needle);
        assert!(
            trusted(&scenario, "timestamp.json")
                == std::fs::read(editor.path("timestamp.json")).unwrap(),
            "{failure}: the new timestamp was not stored"
        );
        assert!(
            trusted(&scenario, "snapshot.json") == old_snapshot,
            "{failure}"
        );
    }
}

/// Metadata whose `signatures` list one key id twice is refused outright, as python-tuf
/// does, even when one of the signatures alone meets the threshold.
/// Regression: the duplicate was counted once and the file accepted.
#[test]
fn duplicate_key_ids_among_signatures_are_refused() {
    let scenario = Scenario::new();
    let editor = scenario.editor();
    let old_timestamp = trusted(&scenario, "timestamp.json");
    let version = editor.snapshot_version();
    let snapshot = std::fs::read(editor.path(&format!("{version}.snapshot.json"))).unwrap();
    editor.new_timestamp(version, &snapshot, |_| {});
    let mut file: Value =
        serde_json::from_slice(&std::fs::read(editor.path("timestamp.json")).unwrap()).unwrap();
    let signature = file["signatures"][0].clone();
    file["signatures"].as_array_mut().unwrap().push(signature);
    std::fs::write(
        editor.path("timestamp.json"),
        serde_json::to_vec_pretty(&file).unwrap(),
    )
    .unwrap();
    let stderr = check_fails(&scenario, "more than one signature by key id");
    assert!(stderr.contains("timestamp.json"), "{stderr}");
    assert!(trusted(&scenario, "timestamp.json") == old_timestamp);
}

/// 5.3 comes first on every refresh: a new root is seen even when the timestamp did not
/// change (answered 304). Here the new root revokes the timestamp key, so the timestamp
/// still served (signed by the revoked key) must be refused (5.3.11, then 5.4.2).
/// Regression: the timestamp was checked first, and a 304 skipped the root chain, so a
/// revoked timestamp key stayed trusted until the next release.
#[test]
fn a_root_rotation_is_seen_by_a_client_whose_timestamp_did_not_change() {
    let scenario = Scenario::new();
    assert_eq!(scenario.check()["available"], "2.0.0");
    let editor = scenario.editor();
    let mut root = editor.signed("1.root.json");
    let new_key = SigningKey::generate().unwrap();
    root["version"] = json!(2);
    root["keys"][new_key.key_id()] = serde_json::to_value(new_key.public_key()).unwrap();
    root["roles"]["timestamp"]["keyids"] = json!([new_key.key_id()]);
    editor.write("2.root.json", &root, &[&editor.key("root")]);
    check_fails(&scenario, "timestamp metadata");
    assert_eq!(version_of(&trusted(&scenario, "root.json")), 2);
    // 5.3.11: the timestamp key rotated, so the trusted timestamp and snapshot are gone.
    assert!(!scenario.dir.join("state/metadata/timestamp.json").exists());
    // The publisher re-signs the timestamp with the new key: the client recovers.
    let timestamp = editor.timestamp();
    editor.write("timestamp.json", &timestamp, &[&new_key]);
    assert_eq!(scenario.check()["available"], "2.0.0");
}

/// A static server over `dir` that does not percent-decode request paths (tests/workflow/
/// raw_server.py), with its access log.
struct RawServer {
    child: Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RawServer {
    fn start(python: &str, dir: &Path) -> Self {
        let mut child = Command::new(python)
            .arg(test_file("workflow/raw_server.py"))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut url = String::new();
        reader.read_line(&mut url).unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        RawServer {
            child,
            url: url.trim().to_string(),
            log,
        }
    }

    fn requests(&self) -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.log.lock().unwrap().clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A python-tuf repository with the delegated role `../delegatedrole` (see
/// tests/workflow/delegated_repo.py), served live from state v1, and a `tuf-client` that
/// trusts its root.
struct Delegated {
    work: tempfile::TempDir,
    server: RawServer,
}

impl Delegated {
    fn new() -> Option<Self> {
        let python = python_with_tuf()?;
        let work = crate::harness::temp_dir();
        let states = work.path().join("states");
        let output = run(Command::new(python)
            .arg(test_file("workflow/delegated_repo.py"))
            .arg(&states));
        assert!(output.status.success(), "{}", text(&output.stderr));
        let live = work.path().join("live");
        std::fs::create_dir_all(&live).unwrap();
        copy_tree(&states.join("v1"), &live);
        let server = RawServer::start(python, &live);
        let delegated = Delegated { work, server };
        let root = live.join("metadata/1.root.json");
        assert_eq!(
            delegated
                .client(&["init", root.to_str().unwrap()])
                .status
                .code(),
            Some(0)
        );
        Some(delegated)
    }

    fn metadata_dir(&self) -> std::path::PathBuf {
        self.work.path().join("client-metadata")
    }

    fn client(&self, args: &[&str]) -> std::process::Output {
        let dir = self.metadata_dir();
        let mut all = vec!["--metadata-dir", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        run(Command::new(crate::harness::bin("tuf-client")).args(&all))
    }

    fn download(&self, name: &str) -> std::process::Output {
        let metadata_url = format!("{}/metadata", self.server.url);
        let targets_url = format!("{}/targets", self.server.url);
        let target_dir = self.work.path().join("downloads");
        self.client(&[
            "--metadata-url",
            &metadata_url,
            "--target-name",
            name,
            "--target-base-url",
            &targets_url,
            "--target-dir",
            target_dir.to_str().unwrap(),
            "download",
        ])
    }

    fn publish_state(&self, state: &str) {
        copy_tree(
            &self.work.path().join("states").join(state),
            &self.work.path().join("live"),
        );
    }
}

/// 5.6.7.2 / python-tuf: a delegated role's name is percent-encoded exactly like
/// `urllib.parse.quote(name, '')` in its versioned URL and in its stored file name, so
/// `../delegatedrole` can neither address another URL nor escape the metadata folder.
#[test]
fn a_role_named_dot_dot_slash_is_fetched_and_stored_percent_encoded() {
    let Some(repo) = Delegated::new() else {
        return;
    };
    let output = repo.download("file.txt");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let requests = repo.server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /metadata/1...%2Fdelegatedrole.json 200"),
        "{requests:?}"
    );
    assert_eq!(
        std::fs::read(repo.metadata_dir().join("..%2Fdelegatedrole.json")).unwrap(),
        std::fs::read(
            repo.work
                .path()
                .join("live/metadata/1...%2Fdelegatedrole.json")
        )
        .unwrap()
    );
    assert!(!repo.work.path().join("delegatedrole.json").exists());
}

/// 5.6.7.2 (applied to every delegated role on every refresh): after the delegator names a
/// new key for the role, the stored copy signed by the old (revoked) key is refused, even
/// though the snapshot still lists the same version of it.
#[test]
fn a_cached_delegated_role_signed_by_a_revoked_key_is_refused() {
    let Some(repo) = Delegated::new() else {
        return;
    };
    let output = repo.download("file.txt");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(repo.metadata_dir().join("..%2Fdelegatedrole.json").exists());
    std::fs::remove_dir_all(repo.work.path().join("downloads")).unwrap();
    repo.publish_state("v2");
    let output = repo.download("file.txt");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "accepted: {stderr}");
    assert!(stderr.contains("../delegatedrole"), "{stderr}");
    assert!(!repo.work.path().join("downloads/file.txt").exists());
}
