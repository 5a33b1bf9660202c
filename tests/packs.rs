//! Packs: a fresh install of a many-file app fetches its blobs with a handful of range
//! requests, also from a server that ignores `Range`, and from a corrupt pack falls back
//! to the blobs.

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
