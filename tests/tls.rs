//! HTTPS trust (issue 18, item 1): a real `appupdate serve --tls-cert --tls-key` on loopback
//! with certificates from a test CA made here by rcgen. The test CA is in no trust store, so
//! an install trusts it only through `install --ca-file`, kept in `state/ca.pem` for every
//! later update; without it, or with a certificate for another host name, the install is
//! refused naming the URL and the untrusted certificate (exit 3, network), and nothing is
//! left installed. A bad CA file is refused naming it before anything is made.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::harness::{Publisher, Server, appupdate, appupdate_json, temp_dir, text};

/// A test CA and the server certificates it signs, as PEM files in a temporary folder.
struct TestCa {
    folder: tempfile::TempDir,
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "appstart test CA");
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let folder = temp_dir();
        std::fs::write(folder.path().join("ca.pem"), cert.pem()).expect("write CA");
        TestCa { folder, cert, key }
    }

    /// The CA certificate's PEM file (what `--ca-file` gets).
    fn pem(&self) -> PathBuf {
        self.folder.path().join("ca.pem")
    }

    /// A server certificate for `names` and its key, signed by this CA: (cert, key) files.
    fn server_cert(&self, label: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        let cert_path = self.folder.path().join(format!("{label}.crt"));
        let key_path = self.folder.path().join(format!("{label}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

fn publish(publisher: &Publisher, version: &str) {
    publisher.publish(
        "sample",
        version,
        &[
            ("bin/app", b"#!/bin/sh\necho app\n", true),
            ("v", version.as_bytes(), false),
        ],
        &[],
    );
}

fn https_server(publisher: &Publisher, cert: &Path, key: &Path) -> Server {
    let server = Server::start_with(
        &publisher.repo(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    server
}

fn install_args<'a>(url: &'a str, root: &'a Path, dir: &'a Path) -> Vec<&'a str> {
    vec![
        "install",
        "--url",
        url,
        "--trusted-root",
        root.to_str().unwrap(),
        "--app",
        "sample",
        "--dir",
        dir.to_str().unwrap(),
    ]
}

#[test]
fn installs_and_updates_over_https_trusting_the_ca_file() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert("loopback", &["127.0.0.1", "localhost"]);
    let server = https_server(&publisher, &cert, &key);
    let home = temp_dir();
    let dir = home.path().join("app");
    let root = publisher.root_json();

    let mut args = install_args(&server.url, &root, &dir);
    let ca_pem = ca.pem();
    args.extend(["--ca-file", ca_pem.to_str().unwrap()]);
    let report = appupdate_json(&args);
    assert_eq!(report["to"], "1.0.0", "{report}");
    // The CA is kept in the install, and recorded, so later updates trust it too.
    assert_eq!(
        std::fs::read(dir.join("state/ca.pem")).unwrap(),
        std::fs::read(&ca_pem).unwrap()
    );
    let settings = std::fs::read_to_string(dir.join("state/install.toml")).unwrap();
    assert!(settings.contains("ca_file = \"ca.pem\""), "{settings}");

    // The original CA file may go away: the install's copy is what updates use.
    std::fs::remove_file(&ca_pem).unwrap();
    publish(&publisher, "2.0.0");
    let check = appupdate_json(&["check", "--dir", dir.to_str().unwrap()]);
    assert!(check.to_string().contains("2.0.0"), "{check}");
    let report = appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(report["to"], "2.0.0", "{report}");
    let status = appupdate_json(&["status", "--dir", dir.to_str().unwrap()]);
    assert!(status.to_string().contains("2.0.0"), "{status}");
    assert_eq!(
        status["ca_file"].as_str(),
        dir.join("state/ca.pem").to_str(),
        "{status}"
    );
}

/// Asserts `args` fail with exit 3, naming the URL and an untrusted certificate, and leave
/// no install folder behind.
fn assert_refused_as_untrusted(args: &[&str], url: &str, dir: &Path) -> String {
    let out = appupdate(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(url), "names the URL: {stderr}");
    assert!(
        stderr.contains("TLS certificate is not trusted"),
        "says why: {stderr}"
    );
    assert!(!dir.exists(), "nothing is left installed: {stderr}");
    stderr
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_and_nothing_is_installed() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert("loopback", &["127.0.0.1", "localhost"]);
    let server = https_server(&publisher, &cert, &key);
    let home = temp_dir();
    let dir = home.path().join("app");
    let root = publisher.root_json();
    let stderr =
        assert_refused_as_untrusted(&install_args(&server.url, &root, &dir), &server.url, &dir);
    assert!(stderr.contains("--ca-file"), "says how to fix it: {stderr}");

    // Trusting another CA does not help either.
    let other = TestCa::new();
    let other_pem = other.pem();
    let mut args = install_args(&server.url, &root, &dir);
    args.extend(["--ca-file", other_pem.to_str().unwrap()]);
    assert_refused_as_untrusted(&args, &server.url, &dir);
}

#[test]
fn a_certificate_for_another_host_name_is_refused() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert("elsewhere", &["updates.example.com"]);
    let server = https_server(&publisher, &cert, &key);
    let home = temp_dir();
    let dir = home.path().join("app");
    let root = publisher.root_json();
    let ca_pem = ca.pem();
    let mut args = install_args(&server.url, &root, &dir);
    args.extend(["--ca-file", ca_pem.to_str().unwrap()]);
    assert_refused_as_untrusted(&args, &server.url, &dir);
}

#[test]
fn a_bad_ca_file_is_refused_naming_it_before_anything_is_made() {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let dir = home.path().join("app");
    let root = publisher.root_json();
    let url = format!("file://{}", publisher.repo().display());
    let bad = home.path().join("not-a-ca.pem");
    std::fs::write(&bad, "this is no certificate\n").unwrap();
    let missing = home.path().join("missing-ca.pem");
    for ca_file in [&bad, &missing] {
        let mut args = install_args(&url, &root, &dir);
        args.extend(["--ca-file", ca_file.to_str().unwrap()]);
        let out = appupdate(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(ca_file.to_str().unwrap()),
            "names it: {stderr}"
        );
        assert!(!dir.exists(), "nothing is made: {stderr}");
    }
}

#[test]
fn receipts_are_posted_over_https_trusting_the_install_ca_file() {
    // The receiver is `appupdate serve --receipts-db` on the same HTTPS server: posting uses
    // its own connection, which must trust the install's CA file too.
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert("loopback", &["127.0.0.1"]);
    let home = temp_dir();
    let db = home.path().join("receipts.sqlite");
    let server = Server::start_with(
        &publisher.repo(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--receipts-db",
            db.to_str().unwrap(),
        ],
    );
    let (repo, keys) = (publisher.repo(), publisher.keys());
    appupdate_json(&[
        "repo",
        "receipts",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--url",
        &server.url,
    ]);
    let dir = home.path().join("app");
    let root = publisher.root_json();
    let ca_pem = ca.pem();
    let mut args = install_args(&server.url, &root, &dir);
    args.extend(["--ca-file", ca_pem.to_str().unwrap()]);
    appupdate_json(&args);
    publish(&publisher, "2.0.0");
    appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    let posted = server
        .requests()
        .iter()
        .filter(|line| line.starts_with("POST /receipts 200"))
        .count();
    assert!(
        posted >= 1,
        "receipts posted over HTTPS: {:?}",
        server.requests()
    );
    let outbox = std::fs::read_to_string(dir.join("state/receipts.jsonl")).unwrap_or_default();
    assert!(outbox.trim().is_empty(), "nothing left to post: {outbox}");
}

/// `serve --tls-cert/--tls-key` refuses files that are not a certificate and a key, naming
/// the file, and serves nothing.
#[test]
fn serve_refuses_a_bad_certificate_or_key_naming_the_file() {
    let ca = TestCa::new();
    let (cert, key) = ca.server_cert("server", &["127.0.0.1"]);
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let home = temp_dir();
    let garbage = home.path().join("garbage.pem");
    std::fs::write(&garbage, "not a pem file\n").unwrap();
    let missing = home.path().join("missing.pem");
    let repo = publisher.repo();
    for (cert, key, named) in [
        (&garbage, &key, &garbage),
        (&cert, &garbage, &garbage),
        (&missing, &key, &missing),
        // A certificate where the key should be.
        (&cert, &cert, &cert),
    ] {
        let out = appupdate(&[
            "serve",
            "--repo",
            repo.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(named.to_str().unwrap()),
            "names {}: {stderr}",
            named.display()
        );
    }
}
