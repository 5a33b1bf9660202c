//! A hostile mirror: no signing key, but it serves whatever bytes it likes for blobs, pack
//! slices and deltas. Every such byte must be authenticated against the signed manifest
//! before anything parses it, a bad cached item must be discarded (never retried forever),
//! and once the mirror is repaired the next update must succeed with no manual step.
//!
//! Regression (hostile-input issue): a crafted 136-byte bsdiff patch made `appupdate update`
//! abort inside the bsdiff decoder, and the patch stayed in `state/cache` under its signed
//! length, so every later update aborted too.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{Publisher, Server, appupdate, noise, run, temp_dir, text, tree_snapshot};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// Version `n` of a 200 KB data file: a few small edits per version, so deltas pay.
fn data(n: usize) -> Vec<u8> {
    let mut bytes = noise(7, 200_000);
    for edit in 1..n {
        let at = edit * 31_000;
        bytes[at..at + 100].copy_from_slice(&noise(200 + edit as u64, 100));
    }
    bytes
}

/// A client on 1.0.0 of a repository that has since published 2.0.0 with a delta.
struct Mirror {
    publisher: Publisher,
    server: Server,
    _home: tempfile::TempDir,
    dir: PathBuf,
}

/// The delta and the blob a client on 1.0.0 would download for `data.bin` of 2.0.0.
struct Downloads {
    delta: PathBuf,
    delta_cache_name: String,
    blob: PathBuf,
}

impl Mirror {
    fn new() -> Self {
        let publisher = Publisher::new();
        let publish = |n: usize| {
            let data = data(n);
            publisher.publish(
                "hostile",
                &format!("{n}.0.0"),
                &[("bin/app", APP, true), ("data.bin", &data, false)],
                &[],
            )
        };
        publish(1);
        let server = Server::start(&publisher.repo());
        let home = temp_dir();
        let dir = home.path().join("app");
        crate::harness::install(&publisher, &server.url, "hostile", &dir);
        let report = publish(2);
        assert_eq!(report["deltas"], 1, "{report}");
        Mirror {
            publisher,
            server,
            _home: home,
            dir,
        }
    }

    fn downloads(&self) -> Downloads {
        let manifest = self
            .publisher
            .manifest("hostile/stable/any/2.0.0/manifest.json");
        let entry = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "data.bin")
            .unwrap()
            .clone();
        let delta = &entry["deltas"][0];
        let (base, target) = (
            delta["base"].as_str().unwrap(),
            entry["blake3"].as_str().unwrap(),
        );
        let extension = match delta["algorithm"].as_str().unwrap() {
            "zstd-patch" => "zst-patch",
            "bsdiff" => "bsdiff",
            "bsdiff-lzma" => "bsdl",
            other => panic!("unknown delta algorithm {other}"),
        };
        let name = format!("{base}-{target}.{extension}");
        Downloads {
            delta: self
                .publisher
                .repo()
                .join(format!("deltas/{}/{name}", &target[..2])),
            delta_cache_name: name,
            blob: self
                .publisher
                .repo()
                .join(format!("blobs/{}/{target}.zst", &target[..2])),
        }
    }

    /// `appupdate update --json` with warnings on stderr.
    fn update(&self) -> std::process::Output {
        run(Command::new(crate::harness::bin("appupdate"))
            .args(["update", "--dir", self.dir.to_str().unwrap(), "--json"])
            .env("RUST_LOG", "warn"))
    }

    fn launches(&self) -> String {
        text(&run(&mut Command::new(self.dir.join("appstart"))).stdout)
    }
}

/// A bsdiff 4 header whose control length wraps a bounds check (what aborted the old
/// decoder), padded with `fill` to exactly `size` bytes: same length as the signed delta, so
/// only its hash can give it away.
fn crafted(size: u64, fill: u8) -> Vec<u8> {
    let mut bytes = b"BSDIFF40".to_vec();
    bytes.extend_from_slice(&u64::MAX.to_le_bytes()); // control length: -(2^63 - 1)
    bytes.extend_from_slice(&(1u64 << 62).to_le_bytes()); // diff length: 4 EiB
    bytes.extend_from_slice(&(200_000u64).to_le_bytes()); // the right output size
    bytes.resize(size as usize, fill);
    bytes.truncate(size as usize);
    bytes
}

fn report(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "update failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_crafted_delta_from_the_mirror_is_refused_before_it_is_parsed() {
    let mirror = Mirror::new();
    let downloads = mirror.downloads();
    let size = std::fs::metadata(&downloads.delta).unwrap().len();
    std::fs::write(&downloads.delta, crafted(size, 0)).unwrap();

    let output = mirror.update();
    let report = report(&output);
    let stderr = text(&output.stderr);
    // Taken by another route: the whole file.
    assert_eq!(report["to"], "2.0.0");
    assert_eq!(report["plan"]["delta_files"], 0, "{report}");
    assert_eq!(report["plan"]["blob_files"], 1, "{report}");
    // Refused for its hash, naming the delta's URL, not by a decoder that parsed it.
    assert!(
        stderr.contains(&downloads.delta_cache_name) && stderr.contains("blake3 mismatch"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot apply the delta"), "{stderr}");
    assert_eq!(mirror.launches(), "app 2.0.0\n");
}

#[test]
fn a_bad_delta_in_the_cache_is_discarded_and_fetched_again() {
    let mirror = Mirror::new();
    let downloads = mirror.downloads();
    let size = std::fs::metadata(&downloads.delta).unwrap().len();
    // Left by an earlier run against a bad mirror, under the delta's signed length.
    let cache = mirror.dir.join("state/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join(&downloads.delta_cache_name), crafted(size, 0x55)).unwrap();

    let output = mirror.update();
    let report = report(&output);
    // The good delta from the (good) mirror was used: the cached copy was not trusted.
    assert_eq!(report["plan"]["delta_files"], 1, "{report}");
    assert_eq!(report["plan"]["blob_files"], 0, "{report}");
    assert!(
        text(&output.stderr).contains("discarding a cached download"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(mirror.launches(), "app 2.0.0\n");
}

#[test]
fn a_mirror_serving_junk_fails_cleanly_and_the_next_update_heals_by_itself() {
    let mirror = Mirror::new();
    let downloads = mirror.downloads();
    let good_delta = std::fs::read(&downloads.delta).unwrap();
    let good_blob = std::fs::read(&downloads.blob).unwrap();
    std::fs::write(&downloads.delta, crafted(good_delta.len() as u64, 1)).unwrap();
    // A zstd frame of the blob's signed length that is not the blob.
    let mut junk_blob = good_blob.clone();
    let middle = junk_blob.len() / 2;
    junk_blob[middle] ^= 0xff;
    std::fs::write(&downloads.blob, &junk_blob).unwrap();

    let config = std::fs::read(mirror.dir.join("appstart.toml")).unwrap();
    let versions = tree_snapshot(&mirror.dir.join("versions"));
    let output = appupdate(&["update", "--dir", mirror.dir.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("blobs/") && stderr.contains("blake3 mismatch"),
        "the error names the blob and the reason: {stderr}"
    );
    assert_eq!(
        std::fs::read(mirror.dir.join("appstart.toml")).unwrap(),
        config
    );
    assert_eq!(tree_snapshot(&mirror.dir.join("versions")), versions);
    assert_eq!(mirror.launches(), "app 1.0.0\n");
    assert_no_unverified_cache(&mirror.dir.join("state/cache"), &junk_blob);

    // The mirror is repaired: the next update succeeds, nothing done by hand.
    std::fs::write(&downloads.delta, &good_delta).unwrap();
    std::fs::write(&downloads.blob, &good_blob).unwrap();
    let report = report(&mirror.update());
    assert_eq!(report["to"], "2.0.0");
    assert_eq!(report["plan"]["delta_files"], 1, "{report}");
    assert_eq!(mirror.launches(), "app 2.0.0\n");
    drop(mirror.server);
}

/// Nothing in the cache holds the junk the mirror served.
fn assert_no_unverified_cache(cache: &Path, junk: &[u8]) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_ne!(
                std::fs::read(&path).unwrap(),
                junk,
                "{} keeps what the mirror served",
                path.display()
            );
        }
    }
}

/// Local files are inputs too: a state file far larger than anything appstart writes is
/// refused by name, without reading it whole, and nothing changes.
#[test]
fn an_oversized_local_state_file_is_a_clear_error_naming_it() {
    let mirror = Mirror::new();
    let settings = mirror.dir.join("state/install.toml");
    let good = std::fs::read(&settings).unwrap();
    let mut huge = good.clone();
    huge.extend(std::iter::repeat_n(b'#', 3 << 20));
    std::fs::write(&settings, &huge).unwrap();
    let versions = tree_snapshot(&mirror.dir.join("versions"));
    let output = appupdate(&["update", "--dir", mirror.dir.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("install.toml") && stderr.contains("larger than"),
        "{stderr}"
    );
    assert_eq!(tree_snapshot(&mirror.dir.join("versions")), versions);
    assert_eq!(mirror.launches(), "app 1.0.0\n");
    std::fs::write(&settings, &good).unwrap();
    assert_eq!(report(&mirror.update())["to"], "2.0.0");
}

/// The launcher caps what it reads too: a huge `appstart.toml` is refused by name (exit 127),
/// never read whole, and left as it is.
#[test]
fn the_launcher_refuses_an_oversized_config_by_name() {
    let mirror = Mirror::new();
    let config = mirror.dir.join("appstart.toml");
    let good = std::fs::read(&config).unwrap();
    let mut huge = good.clone();
    huge.extend(std::iter::repeat_n(b'#', 2 << 20));
    std::fs::write(&config, &huge).unwrap();
    let output = run(&mut Command::new(mirror.dir.join("appstart")));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("appstart.toml") && stderr.contains("larger than"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&config).unwrap(), huge);
    std::fs::write(&config, &good).unwrap();
    assert_eq!(mirror.launches(), "app 1.0.0\n");
}
