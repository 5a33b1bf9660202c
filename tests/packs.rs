//! Packs: a fresh install of a many-file app fetches its blobs with a handful of range
//! requests, also from a server that ignores `Range`, and from a corrupt pack falls back
//! to the blobs; an update whose changed files lie far apart in the pack asks for them in
//! one request answered in parts, or, from a server that answers several ranges with the
//! whole pack (as S3 does), one range at a time without reading that whole pack.

use std::process::Command;

use crate::harness::{Publisher, Server, run, temp_dir, text};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

fn many_files(count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            (
                format!("data/{:03}/file.bin", i),
                format!("file number {i}\n").repeat(50 + i).into_bytes(),
            )
        })
        .collect()
}

fn publish(publisher: &Publisher, files: &[(String, Vec<u8>)]) {
    let mut all: Vec<(&str, &[u8], bool)> = vec![("bin/app", APP, true)];
    all.extend(files.iter().map(|(p, c)| (p.as_str(), c.as_slice(), false)));
    publisher.publish("many", "1.0.0", &all, &[]);
}

fn install(publisher: &Publisher, url: &str, dir: &std::path::Path) -> serde_json::Value {
    crate::harness::install(publisher, url, "many", dir)
}

fn assert_installed(dir: &std::path::Path, files: &[(String, Vec<u8>)]) {
    for (path, content) in files {
        assert_eq!(
            &std::fs::read(dir.join("versions/1.0.0").join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    let output = run(&mut Command::new(dir.join("appstart")));
    assert_eq!(text(&output.stdout), "app 1.0.0\n");
}

#[test]
fn a_fresh_install_of_many_files_takes_a_handful_of_requests() {
    let publisher = Publisher::new();
    let files = many_files(300);
    publish(&publisher, &files);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    let before = server.requests().len();
    let report = install(&publisher, &server.url, &dir);
    assert_eq!(report["plan"]["blob_files"], 301, "{report}");
    let requests: Vec<String> = server.requests()[before..].to_vec();
    let content_requests: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("/packs/") || r.contains("/blobs/"))
        .collect();
    // One request for all 301 files: the whole pack, which also carries the manifest.
    assert_eq!(
        content_requests.len(),
        1,
        "301 files in {} requests: {content_requests:?}",
        content_requests.len()
    );
    assert!(
        content_requests[0].contains("/packs/") && content_requests[0].contains(" 200 "),
        "{content_requests:?}"
    );
    assert_eq!(requests.len(), 5, "{requests:?}");
    assert_installed(&dir, &files);
}

#[test]
fn a_corrupt_pack_falls_back_to_the_blobs() {
    let publisher = Publisher::new();
    let files = many_files(20);
    publish(&publisher, &files);
    // Overwrite the end of the pack (the last blob slices; the manifest is at the start):
    // those slices no longer match their BLAKE3.
    let pack = publisher.repo().join("packs/many/stable/any/1.0.0.pack");
    let mut bytes = std::fs::read(&pack).unwrap();
    let end = bytes.len();
    for byte in &mut bytes[end - 64..end] {
        *byte ^= 0x5a;
    }
    std::fs::write(&pack, bytes).unwrap();
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    let before = server.requests().len();
    install(&publisher, &server.url, &dir);
    assert_installed(&dir, &files);
    let blob_requests = server.requests()[before..]
        .iter()
        .filter(|r| r.contains("/blobs/"))
        .count();
    assert!(
        blob_requests >= 1,
        "the damaged slices came from their blobs"
    );
}

#[test]
fn old_packs_can_be_pruned_and_installs_still_work() {
    let publisher = Publisher::new();
    let files = many_files(12);
    for version in ["1.0.0", "2.0.0", "3.0.0"] {
        let mut all: Vec<(&str, &[u8], bool)> = vec![("bin/app", APP, true)];
        all.extend(files.iter().map(|(p, c)| (p.as_str(), c.as_slice(), false)));
        // Keeping every pack at publish time leaves the pruning to `repo prune-packs`.
        publisher.publish(
            "many",
            version,
            &all,
            &["--delta-depth", "0", "--keep-packs", "3"],
        );
    }
    let repo = publisher.repo();
    let output = crate::harness::appupdate_ok(&[
        "repo",
        "prune-packs",
        "--repo",
        repo.to_str().unwrap(),
        "--keep",
        "1",
    ]);
    assert!(output.contains("2 packs removed"), "{output}");
    assert!(!repo.join("packs/many/stable/any/1.0.0.pack").exists());
    assert!(!repo.join("packs/many/stable/any/2.0.0.pack").exists());
    assert!(repo.join("packs/many/stable/any/3.0.0.pack").exists());
    // An install of the newest still works (and uses its pack).
    let server = Server::start(&repo);
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "many", &dir);
    let output = run(&mut Command::new(dir.join("appstart")));
    assert_eq!(text(&output.stdout), "app 3.0.0\n");
}

/// Installs 1.0.0 of [`crate::harness::scattered_files`] from `appupdate serve` with `serve_flags`, publishes 2.0.0
/// with every eighth file changed (5 blobs 140 KB apart in the pack: too far apart to
/// bridge) and updates. Returns the update report and the pack requests of the update.
fn update_scattered(serve_flags: &[&str]) -> (serde_json::Value, Vec<String>) {
    let publisher = Publisher::new();
    let publish = |version: &str, contents: &[(String, Vec<u8>)]| {
        publisher.publish_beside("scattered", version, APP, contents);
    };
    publish("1.0.0", &crate::harness::scattered_files(0, &[]));
    let server = Server::start_with(&publisher.repo(), serve_flags);
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "scattered", &dir);
    let v2 = crate::harness::scattered_files(7, &[0, 8, 16, 24, 32]);
    publish("2.0.0", &v2);
    let before = server.requests().len();
    let report = crate::harness::appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    for (path, content) in &v2 {
        assert_eq!(
            &std::fs::read(dir.join("versions/2.0.0").join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    let requests = server.requests()[before..].to_vec();
    assert!(
        !requests.iter().any(|r| r.contains("/blobs/")),
        "everything came from the pack: {requests:?}"
    );
    let packs = requests
        .into_iter()
        .filter(|r| r.contains("/packs/"))
        .collect();
    (report, packs)
}

#[test]
fn scattered_changes_come_in_one_request_answered_in_parts() {
    let (report, packs) = update_scattered(&[]);
    assert_eq!(packs.len(), 1, "one request for 5 ranges: {packs:?}");
    assert!(packs[0].contains(" 206 "), "{packs:?}");
    assert_eq!(report["plan"]["pack_requests"], 1, "{report}");
    assert_eq!(report["plan"]["blob_files"], 5, "{report}");
    // The 5 slices and the parts' headers (counted too: they are on the wire), at most
    // 1 KiB a part, not the 800 KB pack.
    let content = report["content_bytes"].as_u64().unwrap();
    let slices = report["plan"]["blob_bytes"].as_u64().unwrap();
    assert!(
        (100_000..101_000).contains(&slices) && content > slices && content <= slices + 5 * 1024,
        "{report}"
    );
}

#[test]
fn a_server_that_answers_several_ranges_whole_gets_one_range_at_a_time() {
    let (report, packs) = update_scattered(&["--one-range-per-request"]);
    // The request for several ranges, answered 200 and dropped unread, then one per range.
    assert_eq!(packs.len(), 6, "{packs:?}");
    assert!(packs[0].contains(" 200 "), "{packs:?}");
    assert!(packs[1..].iter().all(|r| r.contains(" 206 ")), "{packs:?}");
    assert_eq!(report["plan"]["pack_requests"], 6, "{report}");
    // Nothing of the whole pack was read: the content is the 5 slices' bytes alone.
    let content = report["content_bytes"].as_u64().unwrap();
    let slices = report["plan"]["blob_bytes"].as_u64().unwrap();
    assert!(
        (100_000..101_000).contains(&slices) && content == slices,
        "{report}"
    );
}
