//! Binary deltas end to end: taken when the client has the base, skipped when it has not,
//! never trusted (a corrupt delta falls back to the blob), and correct across version jumps.

use std::path::Path;
use std::process::Command;

use crate::harness::{Publisher, Server, appupdate_json, noise, run, temp_dir, text};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// Version `n` of a 300 KB data file: the same bytes with a few small edits per version.
fn data(n: usize) -> Vec<u8> {
    let mut bytes = noise(1, 300_000);
    for edit in 1..n {
        let at = edit * 37_000;
        bytes[at..at + 200].copy_from_slice(&noise(100 + edit as u64, 200));
    }
    bytes
}

fn publish(publisher: &Publisher, n: usize, extra: &[&str]) -> serde_json::Value {
    let bytes = data(n);
    publisher.publish(
        "delta",
        &format!("{n}.0.0"),
        &[("bin/app", APP, true), ("data.bin", &bytes, false)],
        extra,
    )
}

fn install(publisher: &Publisher, server: &Server, dir: &Path) -> serde_json::Value {
    crate::harness::install(publisher, &server.url, "delta", dir)
}

fn update(dir: &Path) -> serde_json::Value {
    appupdate_json(&["update", "--dir", dir.to_str().unwrap()])
}

fn assert_runs(dir: &Path, n: usize) {
    assert_eq!(
        std::fs::read(dir.join(format!("versions/{n}.0.0/data.bin"))).unwrap(),
        data(n)
    );
    let output = run(&mut Command::new(dir.join("appstart")));
    assert_eq!(text(&output.stdout), format!("app {n}.0.0\n"));
}

fn blob_size(publisher: &Publisher, n: usize) -> u64 {
    let manifest = publisher.manifest(&format!("delta/stable/any/{n}.0.0/manifest.json"));
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "data.bin")
        .unwrap()["blob_size"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_delta_is_used_when_the_base_is_installed_and_skipped_when_not() {
    let publisher = Publisher::new();
    publish(&publisher, 1, &[]);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let a = home.path().join("a");
    install(&publisher, &server, &a);
    let report = publish(&publisher, 2, &[]);
    assert_eq!(report["deltas"], 1);

    let report = update(&a);
    assert_eq!(report["to"], "2.0.0");
    assert_eq!(report["plan"]["delta_files"], 1, "{report}");
    assert_eq!(report["plan"]["blob_files"], 0, "{report}");
    assert_eq!(report["plan"]["local_files"], 1, "{report}");
    let delta_bytes = report["plan"]["delta_bytes"].as_u64().unwrap();
    assert_eq!(report["content_bytes"].as_u64().unwrap(), delta_bytes);
    assert!(
        delta_bytes * 20 < blob_size(&publisher, 2),
        "delta {delta_bytes} vs blob {}",
        blob_size(&publisher, 2)
    );
    assert_runs(&a, 2);

    // A fresh install has no base: whole blobs.
    let b = home.path().join("b");
    let report = install(&publisher, &server, &b);
    assert_eq!(report["plan"]["delta_files"], 0, "{report}");
    assert_eq!(report["plan"]["blob_files"], 2, "{report}");
    assert_runs(&b, 2);

    // With --delta-depth 1, 4.0.0 has a delta from 3.0.0 only; a client at 2.0.0 takes the blob.
    publish(&publisher, 3, &["--delta-depth", "1"]);
    publish(&publisher, 4, &["--delta-depth", "1"]);
    let report = update(&b);
    assert_eq!(report["to"], "4.0.0");
    assert_eq!(report["plan"]["delta_files"], 0, "{report}");
    assert_eq!(report["plan"]["blob_files"], 1, "{report}");
    assert_runs(&b, 4);
}

#[test]
fn a_three_version_jump_patches_from_the_installed_version() {
    let publisher = Publisher::new();
    publish(&publisher, 1, &[]);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server, &dir);
    for n in 2..=4 {
        publish(&publisher, n, &[]);
    }
    let manifest = publisher.manifest("delta/stable/any/4.0.0/manifest.json");
    let deltas = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "data.bin")
        .unwrap()["deltas"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        deltas, 3,
        "one delta against each of the last three releases"
    );
    let report = update(&dir);
    assert_eq!(report["from"], "1.0.0");
    assert_eq!(report["to"], "4.0.0");
    assert_eq!(report["plan"]["delta_files"], 1, "{report}");
    assert_runs(&dir, 4);
}

#[test]
fn a_corrupt_delta_falls_back_to_the_blob() {
    let publisher = Publisher::new();
    publish(&publisher, 1, &[]);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server, &dir);
    publish(&publisher, 2, &[]);
    // Corrupt every delta on the server, keeping its size.
    let mut corrupted = 0;
    let mut stack = vec![publisher.repo().join("deltas")];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                std::fs::write(&path, noise(77, len)).unwrap();
                corrupted += 1;
            }
        }
    }
    assert_eq!(corrupted, 1);
    let report = update(&dir);
    assert_eq!(report["to"], "2.0.0");
    assert_eq!(report["plan"]["delta_files"], 0, "{report}");
    assert_eq!(report["plan"]["blob_files"], 1, "{report}");
    assert_runs(&dir, 2);
}

#[test]
fn a_file_whose_path_carries_the_version_gets_a_delta_from_its_predecessor() {
    // Like uv-0.5.10.data/scripts/uv -> uv-0.5.11.data/scripts/uv in real wheels.
    let publisher = Publisher::new();
    let (one, two) = (data(1), data(2));
    publisher.publish(
        "moved",
        "1.0.0",
        &[("bin/app", APP, true), ("pkg-1.0.0/tool.bin", &one, false)],
        &[],
    );
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "moved", &dir);
    let report = publisher.publish(
        "moved",
        "2.0.0",
        &[("bin/app", APP, true), ("pkg-2.0.0/tool.bin", &two, false)],
        &[],
    );
    assert_eq!(report["deltas"], 1);
    let report = update(&dir);
    assert_eq!(report["plan"]["delta_files"], 1, "{report}");
    assert_eq!(
        std::fs::read(dir.join("versions/2.0.0/pkg-2.0.0/tool.bin")).unwrap(),
        two
    );
}

/// A file over 2 GiB (sparse on the publisher's disk, real on the client's): published,
/// installed through its blob (streamed, never held in memory), and hard-linked into the next
/// version when unchanged. (When such a file changes, its delta is searched a 512 MiB window
/// at a time and packed as bsdiff-lzma: `delta::search`'s unit tests cover the windows at
/// small sizes; a real 2 GiB search takes minutes and GiBs, too much for this suite.)
#[test]
fn a_file_over_2_gib_installs_and_updates() {
    const SIZE: u64 = (2 << 30) + 12_345;
    let publisher = Publisher::new();
    let home = temp_dir();
    let publish_big = |version: &str, tail: &[u8]| {
        let source = home.path().join(format!("src-{version}"));
        std::fs::create_dir_all(source.join("bin")).unwrap();
        std::fs::write(source.join("bin/app"), APP).unwrap();
        crate::harness::set_mode(&source.join("bin/app"), 0o755);
        let big = std::fs::File::create(source.join("big.img")).unwrap();
        big.set_len(SIZE).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&big, b"start", 0).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&big, tail, SIZE - tail.len() as u64).unwrap();
        std::fs::write(source.join("version.txt"), version).unwrap();
        let (repo, keys) = (publisher.repo(), publisher.keys());
        appupdate_json(&[
            "publish",
            "--repo",
            repo.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--app",
            "big",
            "--version",
            version,
            "--exe",
            "bin/app",
            "--platform",
            "any",
            "--level",
            "1",
            source.to_str().unwrap(),
        ])
    };
    publish_big("1.0.0", b"end");
    let server = Server::start(&publisher.repo());
    let dir = home.path().join("app");
    let report = crate::harness::install(&publisher, &server.url, "big", &dir);
    assert_eq!(report["to"], "1.0.0", "{report}");
    let installed = dir.join("versions/1.0.0/big.img");
    assert_eq!(std::fs::metadata(&installed).unwrap().len(), SIZE);
    let mut tail = [0u8; 3];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&installed).unwrap(),
        &mut tail,
        SIZE - 3,
    )
    .unwrap();
    assert_eq!(&tail, b"end");

    // 2.0.0 leaves the big file as it is: no byte of it is downloaded or copied again.
    publish_big("2.0.0", b"end");
    let report = update(&dir);
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(report["plan"]["local_files"], 2, "{report}");
    assert!(report["content_bytes"].as_u64().unwrap() < 1000, "{report}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dir.join("versions/2.0.0/big.img"))
            .unwrap()
            .ino(),
        std::fs::metadata(&installed).unwrap().ino()
    );
}

#[test]
fn a_delta_search_past_its_time_limit_ships_the_blob() {
    let publisher = Publisher::new();
    publish(&publisher, 1, &[]);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("install");
    install(&publisher, &server, &dir);
    // A limit no search can meet: 2.0.0 gets no delta, and clients take its blob.
    let report = publish(&publisher, 2, &["--delta-time-limit", "0.000001"]);
    assert_eq!(report["deltas"], 0, "{report}");
    let report = update(&dir);
    assert_eq!(report["plan"]["delta_files"], 0, "{report}");
    assert_eq!(report["plan"]["blob_files"], 1, "{report}");
    assert_runs(&dir, 2);
    // With the default limit the same search pays: 3.0.0 gets its deltas.
    let report = publish(&publisher, 3, &[]);
    assert!(report["deltas"].as_u64().unwrap() >= 1, "{report}");
    let report = update(&dir);
    assert_eq!(report["plan"]["delta_files"], 1, "{report}");
    assert_runs(&dir, 3);
}
