//! Archive-aware updates end to end: a zip archive in a release is taken apart at publish
//! time and rebuilt byte for byte on the client from the members that changed.

use std::path::Path;

use updater_core::advanced::archive::zip::write_test_zip;
use updater_core::advanced::archive::{Engine, Method};

use crate::harness::{Publisher, Server, appupdate_json, noise, temp_dir};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";
const ZLIB: Option<Method> = Some(Method::Deflate {
    engine: Engine::Zlib,
    level: 6,
});
const MINIZ: Option<Method> = Some(Method::Deflate {
    engine: Engine::Miniz,
    level: 6,
});

/// Text-like data (compresses like code or documents), different for each seed.
fn words(seed: u64, len: usize) -> Vec<u8> {
    let vocabulary: [&[u8]; 8] = [
        b"fn ", b"let ", b"match ", b"self.", b"return ", b"Ok(()) ", b"{\n", b"}\n",
    ];
    noise(seed, len)
        .chunks(4)
        .flat_map(|c| {
            let mut word = vocabulary[c[0] as usize % 8].to_vec();
            word.push(b'a' + c[1] % 26);
            word
        })
        .take(len)
        .collect()
}

/// Version `n` of a wheel-like archive: a library that changes a little each version
/// (zlib), a big binary-like member that never changes (miniz, as Rust's `zip` writes),
/// a member no known compressor reproduces, and small files.
fn archive(n: usize) -> Vec<u8> {
    let mut library = words(1, 400_000);
    for edit in 1..n {
        let at = edit * 50_000;
        library[at..at + 300].copy_from_slice(&words(100 + edit as u64, 300));
    }
    let binary = noise(2, 150_000);
    let foreign = words(3, 50_000);
    let version = format!("Version: {n}.0.0\n");
    write_test_zip(&[
        ("pkg/METADATA", version.as_bytes(), ZLIB),
        ("pkg/lib.py", &library, ZLIB),
        ("pkg/bin/tool", &binary, MINIZ),
        ("pkg/foreign.dat", &foreign, None),
        ("pkg/stored.txt", &words(4, 20_000), Some(Method::Stored)),
    ])
}

fn publish(publisher: &Publisher, n: usize) -> serde_json::Value {
    publisher.publish(
        "wheel",
        &format!("{n}.0.0"),
        &[("bin/app", APP, true), ("lib/pkg.whl", &archive(n), false)],
        &[],
    )
}

fn installed(dir: &Path, n: usize) -> Vec<u8> {
    std::fs::read(dir.join(format!("versions/{n}.0.0/lib/pkg.whl"))).unwrap()
}

fn whl_entry(publisher: &Publisher, n: usize) -> serde_json::Value {
    let manifest = publisher.manifest(&format!("wheel/stable/any/{n}.0.0/manifest.json"));
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "lib/pkg.whl")
        .unwrap()
        .clone()
}

#[test]
fn a_zip_archive_is_rebuilt_byte_identical_from_its_changed_members() {
    let publisher = Publisher::new();
    let report = publish(&publisher, 1);
    assert_eq!(report["archives"], 1, "{report}");
    let entry = whl_entry(&publisher, 1);
    let members: Vec<&str> = entry["archive"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    // lib.py (zlib), bin/tool (miniz), stored.txt; not METADATA (small), not foreign.dat.
    assert_eq!(members, ["deflate-zlib-6", "deflate-miniz-6", "stored"]);

    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "wheel", &dir);
    assert_eq!(installed(&dir, 1), archive(1));

    publish(&publisher, 2);
    let whole_blob = whl_entry(&publisher, 2)["blob_size"].as_u64().unwrap();
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    let plan = &report["plan"];
    assert_eq!(plan["archive_files"], 1, "{report}");
    assert_eq!(plan["blob_files"], 0, "{report}");
    // bin/tool and stored.txt are copied from the installed archive; lib.py and the headers
    // come as deltas.
    assert_eq!(plan["archive_parts_delta"], 2, "{report}");
    assert_eq!(plan["archive_parts_blob"], 0, "{report}");
    assert_eq!(installed(&dir, 2), archive(2));
    let bytes = report["content_bytes"].as_u64().unwrap();
    assert!(
        bytes * 20 < whole_blob,
        "the update cost {bytes} bytes; the whole archive's blob is {whole_blob}"
    );

    // Three versions on: the client rebuilds 5.0.0 straight from 2.0.0's parts.
    for n in 3..=5 {
        publish(&publisher, n);
    }
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "5.0.0", "{report}");
    assert_eq!(report["plan"]["archive_files"], 1, "{report}");
    assert_eq!(installed(&dir, 5), archive(5));
}

#[test]
fn a_damaged_part_falls_back_to_the_whole_archive() {
    let publisher = Publisher::new();
    publish(&publisher, 1);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "wheel", &dir);
    publish(&publisher, 2);
    // Corrupt every delta of 2.0.0's parts and the skeleton's blob: the rebuild cannot
    // succeed, so the client must take the whole file.
    let entry = whl_entry(&publisher, 2);
    let skeleton = entry["archive"]["skeleton"]["blake3"].as_str().unwrap();
    let blob = publisher
        .repo()
        .join(format!("blobs/{}/{skeleton}.zst", &skeleton[..2]));
    std::fs::write(&blob, b"not zstd").unwrap();
    for delta in entry["archive"]["skeleton"]["deltas"].as_array().unwrap() {
        let base = delta["base"].as_str().unwrap();
        for extension in ["bsdl", "bsdiff", "zst-patch"] {
            let path = publisher.repo().join(format!(
                "deltas/{}/{base}-{skeleton}.{extension}",
                &skeleton[..2]
            ));
            if path.exists() {
                let mut bytes = std::fs::read(&path).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0xff;
                std::fs::write(&path, bytes).unwrap();
            }
        }
    }
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert_eq!(report["plan"]["archive_files"], 0, "{report}");
    assert_eq!(installed(&dir, 2), archive(2));
}

#[test]
fn an_archive_that_cannot_be_rebuilt_gets_whole_file_deltas() {
    // Every member compressed by an unknown tool: nothing to take apart.
    let foreign = |n: usize| {
        let mut data = words(7, 300_000);
        data[1000..1010].copy_from_slice(format!("version {n:>2}").as_bytes());
        write_test_zip(&[("data.txt", &data, None)])
    };
    let publisher = Publisher::new();
    let publish_foreign = |n: usize| {
        publisher.publish(
            "foreign",
            &format!("{n}.0.0"),
            &[("bin/app", APP, true), ("data.zip", &foreign(n), false)],
            &[],
        )
    };
    let report = publish_foreign(1);
    assert_eq!(report["archives"], 0, "{report}");
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "foreign", &dir);
    let report = publish_foreign(2);
    assert_eq!(report["deltas"], 1, "{report}");
    let manifest = publisher.manifest("foreign/stable/any/2.0.0/manifest.json");
    let entry = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "data.zip")
        .unwrap();
    assert!(entry.get("archive").is_none(), "{entry}");
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["plan"]["delta_files"], 1, "{report}");
    assert_eq!(
        std::fs::read(dir.join("versions/2.0.0/data.zip")).unwrap(),
        foreign(2)
    );
}
