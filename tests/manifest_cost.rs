//! The manifest costs what changed (issue 14): an update fetches a delta of the release
//! manifest against the installed one, every metadata byte is counted, a tampered delta is
//! refused, repositories without the smaller forms still work, and a fresh install reads the
//! compressed manifest from the start of the pack (five requests in all).

use std::path::Path;

use serde_json::Value;

use crate::attacks::Editor;
use crate::harness::{Publisher, Server, appupdate, appupdate_json, temp_dir, text, tree_snapshot};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";
const FILES: usize = 1000;

/// `FILES` small incompressible files; in `version` 2 and later, every 100th one changes.
fn files(version: u64) -> Vec<(String, Vec<u8>)> {
    (0..FILES)
        .map(|i| {
            let changed = version > 1 && i % 100 == 7;
            let seed = if changed {
                i as u64 + 1_000_000 * version
            } else {
                i as u64
            };
            (
                format!("data/{:02}/{i:04}.bin", i % 50),
                crate::harness::noise(seed, 300),
            )
        })
        .collect()
}

fn publish(publisher: &Publisher, version: u64) {
    let files = files(version);
    let mut all: Vec<(&str, &[u8], bool)> = vec![("bin/app", APP, true)];
    all.extend(files.iter().map(|(p, c)| (p.as_str(), c.as_slice(), false)));
    publisher.publish("big", &format!("{version}.0.0"), &all, &[]);
}

/// A repository with 1.0.0 installed from it and 2.0.0 published (1 % of files changed).
struct Setup {
    publisher: Publisher,
    server: Server,
    _home: tempfile::TempDir,
    dir: std::path::PathBuf,
}

fn setup() -> Setup {
    let publisher = Publisher::new();
    publish(&publisher, 1);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "big", &dir);
    publish(&publisher, 2);
    Setup {
        publisher,
        server,
        _home: home,
        dir,
    }
}

fn release_dir(publisher: &Publisher, version: &str) -> std::path::PathBuf {
    publisher
        .repo()
        .join(format!("targets/big/stable/any/{version}"))
}

/// The files of the release folder whose name ends with `suffix`.
fn files_ending(folder: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// Body bytes the server sent in `lines` (`METHOD PATH STATUS BYTES`) with 200 or 206.
fn served_bytes(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, _, "200" | "206", bytes] => bytes.parse::<u64>().ok(),
                _ => None,
            }
        })
        .sum()
}

/// The one request for the release manifest among `requests`: it must fetch the form whose
/// file name ends with `suffix` (`.zst-patch`, `.zst` or nothing).
fn assert_manifest_fetched_as(requests: &[String], suffix: &str) {
    let manifest: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains(".manifest.json"))
        .collect();
    assert_eq!(manifest.len(), 1, "{manifest:?}");
    assert!(
        manifest[0].contains(&format!(".manifest.json{suffix} ")),
        "{manifest:?}"
    );
}

/// The install runs `version` and holds exactly its files.
fn assert_runs(dir: &Path, version: u64) {
    let output = crate::harness::run(&mut std::process::Command::new(dir.join("appstart")));
    assert_eq!(text(&output.stdout), format!("app {version}.0.0\n"));
    for (path, content) in files(version) {
        let installed = dir.join(format!("versions/{version}.0.0/{path}"));
        assert_eq!(std::fs::read(&installed).unwrap(), content, "{path}");
    }
}

fn update(dir: &Path) -> Value {
    appupdate_json(&["update", "--dir", dir.to_str().unwrap()])
}

fn assert_totals(report: &Value) -> (u64, u64, u64) {
    let total = report["bytes_downloaded"].as_u64().unwrap();
    let metadata = report["metadata_bytes"].as_u64().unwrap();
    let content = report["content_bytes"].as_u64().unwrap();
    assert_eq!(metadata + content, total, "{report}");
    (total, metadata, content)
}

#[test]
fn an_update_of_one_percent_of_files_fetches_a_manifest_delta_and_counts_every_byte() {
    let s = setup();
    let before = s.server.requests().len();
    let report = update(&s.dir);
    let requests = s.server.requests()[before..].to_vec();
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(report["files_downloaded"], 10, "{report}");
    let (total, metadata, content) = assert_totals(&report);
    // Every byte the server sent is in the report, and nothing else.
    assert_eq!(served_bytes(&requests), total, "{requests:#?}\n{report}");
    assert_manifest_fetched_as(&requests, ".zst-patch");
    let plain =
        std::fs::metadata(&files_ending(&release_dir(&s.publisher, "2.0.0"), ".manifest.json")[0])
            .unwrap()
            .len();
    let manifest_bytes = report["plan"]["manifest_bytes"].as_u64().unwrap();
    assert!(
        manifest_bytes * 20 < plain,
        "manifest delta {manifest_bytes} bytes, manifest {plain}"
    );
    // Metadata in all (timestamp, snapshot, targets, manifest delta) is small next to the
    // content that changed.
    assert!(metadata < content, "metadata {metadata}, content {content}");
}

#[test]
fn a_tampered_manifest_delta_is_refused_and_the_compressed_manifest_used() {
    let s = setup();
    let folder = release_dir(&s.publisher, "2.0.0");
    let deltas = files_ending(&folder, ".manifest.json.zst-patch");
    assert_eq!(deltas.len(), 1, "one delta, from 1.0.0");
    let mut bytes = std::fs::read(&deltas[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&deltas[0], &bytes).unwrap();
    let before = s.server.requests().len();
    let report = update(&s.dir);
    let requests = s.server.requests()[before..].to_vec();
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_totals(&report);
    assert!(
        requests.iter().any(|r| r.contains(".manifest.json.zst ")),
        "{requests:?}"
    );
}

#[test]
fn when_every_form_of_the_manifest_is_tampered_the_update_fails_and_changes_nothing() {
    let s = setup();
    let folder = release_dir(&s.publisher, "2.0.0");
    for file in files_ending(&folder, "")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".manifest.json"))
    {
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[10] ^= 0x01;
        std::fs::write(&file, &bytes).unwrap();
    }
    let versions = tree_snapshot(&s.dir.join("versions"));
    let config = std::fs::read(s.dir.join("appstart.toml")).unwrap();
    let output = appupdate(&["update", "--dir", s.dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("sha256"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(tree_snapshot(&s.dir.join("versions")), versions);
    assert_eq!(std::fs::read(s.dir.join("appstart.toml")).unwrap(), config);
}

#[test]
fn a_repository_without_compressed_manifests_or_deltas_still_works() {
    let s = setup();
    // As an older publisher wrote it: no `manifest_zst` or `manifest_deltas` in `custom`
    // (targets re-signed), and no such files.
    for file in files_ending(&release_dir(&s.publisher, "2.0.0"), "")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".manifest.json.zst"))
    {
        std::fs::remove_file(file).unwrap();
    }
    Editor::of(&s.publisher).new_targets(|targets| {
        for (_, target) in targets["targets"].as_object_mut().unwrap() {
            let custom = target["custom"].as_object_mut().unwrap();
            custom.remove("manifest_zst");
            custom.remove("manifest_deltas");
        }
    });
    let before = s.server.requests().len();
    let report = update(&s.dir);
    let requests = s.server.requests()[before..].to_vec();
    assert_eq!(report["to"], "2.0.0", "{report}");
    let (total, _, _) = assert_totals(&report);
    assert_eq!(served_bytes(&requests), total, "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|r| r.contains(".manifest.json ") && r.contains(" 200 ")),
        "{requests:?}"
    );
}

#[test]
fn a_fresh_install_takes_five_requests_with_the_manifest_read_from_the_pack() {
    let publisher = Publisher::new();
    publish(&publisher, 1);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    let before = server.requests().len();
    let report = crate::harness::install(&publisher, &server.url, "big", &dir);
    let requests = server.requests()[before..].to_vec();
    assert_eq!(report["plan"]["blob_files"], FILES + 1, "{report}");
    let (total, _, _) = assert_totals(&report);
    assert_eq!(served_bytes(&requests), total, "{requests:#?}");
    // Root (404), timestamp, snapshot, targets, and the pack, which begins with the
    // compressed manifest: no request for the manifest on its own.
    assert!(
        requests.iter().all(|r| !r.contains(".manifest.json")),
        "{requests:#?}"
    );
    assert_eq!(requests.len(), 5, "{requests:#?}");
    assert!(requests[4].contains(".pack 200 "), "{requests:#?}");
    assert_runs(&dir, 1);
}

/// A pack whose first bytes are not the signed compressed manifest (a mirror that swapped
/// or damaged them): the client refuses them before decoding, fetches the manifest on its
/// own and the blobs from the pack in ranges, and installs the release.
#[test]
fn a_fresh_install_from_a_pack_with_a_damaged_manifest_fetches_it_on_its_own() {
    let publisher = Publisher::new();
    publish(&publisher, 1);
    let pack = publisher.repo().join("packs/big/stable/any/1.0.0.pack");
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(&pack, &bytes).unwrap();
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    let before = server.requests().len();
    let report = crate::harness::install(&publisher, &server.url, "big", &dir);
    let requests = server.requests()[before..].to_vec();
    assert_eq!(report["to"], "1.0.0", "{report}");
    assert_manifest_fetched_as(&requests, ".zst");
    // The blobs still came from the pack, in ranges (206), not blob by blob.
    assert!(
        requests.iter().any(|r| r.contains(".pack 206 ")),
        "{requests:#?}"
    );
    assert!(requests.len() < 20, "{requests:#?}");
    assert_runs(&dir, 1);
}
