//! Interoperability with python-tuf, the reference TUF implementation, in both directions.

use crate::harness::{Publisher, Server, python_with_tuf, run, test_file, text};
use std::process::Command;

/// (a) A repository built with python-tuf's Metadata API (ed25519, ECDSA and RSA-PSS keys, a
/// terminating delegation, consistent snapshots) is refreshed by `tuf-client` and its
/// targets, including the delegated one, are downloaded and verified.
#[test]
fn tuf_client_reads_a_python_tuf_repository() {
    let Some(python) = python_with_tuf() else {
        return;
    };
    let work = crate::harness::temp_dir();
    let repo = work.path().join("repo");
    let output = run(Command::new(python)
        .arg(test_file("interop/make_repo.py"))
        .arg(&repo));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let server = Server::start(&repo);
    let metadata_dir = work.path().join("client-metadata");
    let target_dir = work.path().join("downloads");
    let client = |args: &[&str]| {
        let mut all = vec!["--metadata-dir", metadata_dir.to_str().unwrap()];
        all.extend_from_slice(args);
        run(Command::new(crate::harness::bin("tuf-client")).args(&all))
    };
    let root = repo.join("metadata/1.root.json");
    assert_eq!(
        client(&["init", root.to_str().unwrap()]).status.code(),
        Some(0)
    );
    let metadata_url = format!("{}/metadata", server.url);
    let targets_url = format!("{}/targets", server.url);
    let refreshed = client(&["--metadata-url", &metadata_url, "refresh"]);
    assert_eq!(
        refreshed.status.code(),
        Some(0),
        "{}",
        text(&refreshed.stderr)
    );
    let downloaded = client(&[
        "--metadata-url",
        &metadata_url,
        "--target-name",
        "files/hello.txt",
        "--target-name",
        "apps/app.bin",
        "--target-base-url",
        &targets_url,
        "--target-dir",
        target_dir.to_str().unwrap(),
        "download",
    ]);
    assert_eq!(
        downloaded.status.code(),
        Some(0),
        "{}",
        text(&downloaded.stderr)
    );
    for (name, file) in [
        ("files/hello.txt", "files%2Fhello.txt"),
        ("apps/app.bin", "apps%2Fapp.bin"),
    ] {
        let bytes = std::fs::read(target_dir.join(file)).unwrap();
        let sha = sha256_hex(&bytes);
        assert_eq!(expected[name], sha, "{name}");
    }
    // Trusted metadata is kept under unversioned names, byte for byte as served.
    for (kept, served) in [
        ("root.json", "1.root.json"),
        ("timestamp.json", "timestamp.json"),
        ("snapshot.json", "1.snapshot.json"),
        ("targets.json", "1.targets.json"),
        ("apps.json", "1.apps.json"),
    ] {
        assert_eq!(
            std::fs::read(metadata_dir.join(kept)).unwrap(),
            std::fs::read(repo.join("metadata").join(served)).unwrap(),
            "{kept}"
        );
    }
    // Downloading again fetches no target: the files already there match their hashes.
    let before = server.requests().len();
    let again = client(&[
        "--metadata-url",
        &metadata_url,
        "--target-name",
        "files/hello.txt",
        "--target-base-url",
        &targets_url,
        "--target-dir",
        target_dir.to_str().unwrap(),
        "download",
    ]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let fetched: Vec<String> = server.requests()[before..]
        .iter()
        .filter(|l| l.contains("/targets/"))
        .cloned()
        .collect();
    assert!(fetched.is_empty(), "{fetched:?}");
    // A tampered local copy is replaced under the same name.
    std::fs::write(target_dir.join("files%2Fhello.txt"), b"tampered").unwrap();
    let again = client(&[
        "--metadata-url",
        &metadata_url,
        "--target-name",
        "files/hello.txt",
        "--target-base-url",
        &targets_url,
        "--target-dir",
        target_dir.to_str().unwrap(),
        "download",
    ]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        sha256_hex(&std::fs::read(target_dir.join("files%2Fhello.txt")).unwrap()),
        expected["files/hello.txt"]
    );

    // A target not in the metadata fails with exit code exactly 1.
    let missing = client(&[
        "--metadata-url",
        &metadata_url,
        "--target-name",
        "files/none.txt",
        "--target-base-url",
        &targets_url,
        "--target-dir",
        target_dir.to_str().unwrap(),
        "download",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    // So do bad arguments.
    assert_eq!(
        client(&["--no-such-flag", "refresh"]).status.code(),
        Some(1)
    );
}

/// (b) A repository published by `appupdate publish` is refreshed by python-tuf's
/// `ngclient.Updater`, which downloads and verifies a release target.
#[test]
fn python_tuf_reads_an_appupdate_repository() {
    let Some(python) = python_with_tuf() else {
        return;
    };
    let publisher = Publisher::new();
    publisher.publish("demo", "1.0.0", &[("bin/app", b"#!/bin/sh\n", true)], &[]);
    publisher.publish(
        "demo",
        "1.1.0",
        &[("bin/app", b"#!/bin/sh\necho 1.1\n", true)],
        &[],
    );
    let server = Server::start(&publisher.repo());
    let work = crate::harness::temp_dir();
    let output = run(Command::new(python)
        .arg(test_file("interop/ngclient_download.py"))
        .args([
            &format!("{}/metadata/", server.url),
            &format!("{}/targets/", server.url),
            publisher.root_json().to_str().unwrap(),
            work.path().to_str().unwrap(),
            "demo/stable/any/1.1.0/manifest.json",
        ]));
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["sha256"], result["downloaded_sha256"]);
    assert_eq!(result["custom"]["version"], "1.1.0");
    assert_eq!(result["custom"]["app"], "demo");
}

/// (c) A release published into a delegated role (`publish --role`, signed by the role's key
/// only) is found and downloaded by python-tuf's ngclient, through the delegation (a role name
/// with every punctuation character quoting leaves as it is). After `repo revoke-delegation` python-tuf still accepts
/// the repository (the snapshot keeps the role's entry: ngclient refuses a snapshot missing
/// a file the trusted one listed) and no longer finds the role's release.
#[test]
fn python_tuf_reads_a_release_published_into_a_delegated_role() {
    let Some(python) = python_with_tuf() else {
        return;
    };
    let publisher = Publisher::new();
    let team = crate::delegation::delegate(&publisher, "demo_team.v1~ci", "demo/*/*/*/*");
    publisher.publish_with_keys(
        &team,
        "demo",
        "1.0.0",
        &[("bin/app", b"#!/bin/sh\n", true)],
        &["--role", "demo_team.v1~ci"],
    );
    let server = Server::start(&publisher.repo());
    let work = crate::harness::temp_dir();
    let download = |target: &str| {
        run(Command::new(python)
            .arg(test_file("interop/ngclient_download.py"))
            .args([
                &format!("{}/metadata/", server.url),
                &format!("{}/targets/", server.url),
                publisher.root_json().to_str().unwrap(),
                work.path().to_str().unwrap(),
                target,
            ]))
    };
    let output = download("demo/stable/any/1.0.0/manifest.json");
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["sha256"], result["downloaded_sha256"]);
    assert_eq!(result["custom"]["version"], "1.0.0");
    assert!(
        work.path().join("metadata/demo_team.v1~ci.json").is_file(),
        "python-tuf stores the role under the same name"
    );

    publisher.publish("other", "1.0.0", &[("bin/app", b"#!/bin/sh\n", true)], &[]);
    let repo = publisher.repo();
    let keys = publisher.keys();
    crate::harness::appupdate_ok(&[
        "repo",
        "revoke-delegation",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--role",
        "demo_team.v1~ci",
    ]);
    let output = download("other/stable/any/1.0.0/manifest.json");
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let output = download("demo/stable/any/1.0.0/manifest.json");
    assert!(
        !output.status.success(),
        "a revoked role's release is not found"
    );
    assert!(
        text(&output.stderr).contains("not found"),
        "{}",
        text(&output.stderr)
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}
