//! Installs behind an HTTP proxy (issue 18, item 2), through a real tinyproxy started here
//! on a free loopback port: `install --proxy` (credentials in the URL or a 0600 file),
//! `--no-proxy`, and the `HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` variables without settings. That
//! a request went through the proxy is read from the proxy's own log (`CONNECT host:port`
//! lines); that it must go through it is shown by stopping the proxy, after which the same
//! command fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Publisher, Server, bin, run, set_mode, temp_dir, text};

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

/// The variables a test sets itself: none may leak in from the machine running the tests.
pub(crate) const PROXY_VARIABLES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// A tinyproxy process on 127.0.0.1 with its own config and log, stopped on drop.
pub(crate) struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy, with `BasicAuth user password` when `auth` is given. `None` (with the
    /// reason printed) when tinyproxy is not installed, outside CI; in CI (`CI` set) a missing
    /// tinyproxy fails the test: `.ci/run` installs it.
    pub(crate) fn start(auth: Option<(&str, &str)>) -> Option<Self> {
        let installed = Command::new("tinyproxy")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "tinyproxy is not installed; .ci/run installs it with apt-get install tinyproxy"
            );
            eprintln!(
                "SKIPPED: tinyproxy is not installed (apt-get install tinyproxy) - proxies not checked"
            );
            return None;
        }
        let dir = temp_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.path().join("tinyproxy.log");
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nMaxClients 50\n\
             LogLevel Info\nLogFile \"{}\"\n",
            log.display()
        );
        if let Some((user, password)) = auth {
            config.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let config_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&config_path, config).expect("write tinyproxy.conf");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tinyproxy");
        let mut proxy = Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("tinyproxy exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "tinyproxy never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(proxy)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many tunnels the proxy opened to `server` (`http://host:port`).
    pub(crate) fn connects_to(&self, server: &str) -> usize {
        let target = server.trim_start_matches("http://");
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|line| line.contains(&format!("CONNECT {target} ")))
            .count()
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `appupdate ARGS` with no proxy variable but those in `env`.
fn appupdate_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(bin("appupdate"));
    command.args(args);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    run(&mut command)
}

fn publish(publisher: &Publisher, version: &str) {
    publisher.publish("sample", version, &[("bin/app", APP, true)], &[]);
}

/// A repository with 1.0.0 served by a real `appupdate serve`.
fn served() -> (Publisher, Server) {
    let publisher = Publisher::new();
    publish(&publisher, "1.0.0");
    let server = Server::start(&publisher.repo());
    (publisher, server)
}

/// `install --json` of `sample` from `server` into `dir`, with `extra` flags and `env`.
fn install(
    publisher: &Publisher,
    server: &Server,
    dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let root = publisher.root_json();
    let mut args = vec![
        "install",
        "--url",
        &server.url,
        "--trusted-root",
        root.to_str().unwrap(),
        "--app",
        "sample",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    appupdate_with(&args, env)
}

#[test]
fn install_and_update_go_through_the_proxy_given_and_kept() {
    let Some(mut proxy) = Tinyproxy::start(None) else {
        return;
    };
    let (publisher, server) = served();
    let home = temp_dir();
    let dir = home.path().join("app");
    // The environment names a proxy that is not there: the setting wins over it.
    let dead = "http://127.0.0.1:9";
    let out = install(
        &publisher,
        &server,
        &dir,
        &["--proxy", &proxy.url()],
        &[("HTTP_PROXY", dead), ("ALL_PROXY", dead)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after_install = proxy.connects_to(&server.url);
    assert!(after_install > 0, "the install went through the proxy");
    let settings = std::fs::read_to_string(dir.join("state/install.toml")).unwrap();
    assert!(settings.contains(&proxy.url()), "{settings}");

    publish(&publisher, "2.0.0");
    let dir_arg = dir.to_str().unwrap();
    let out = appupdate_with(&["update", "--json", "--dir", dir_arg], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["to"], "2.0.0", "{report}");
    assert!(
        proxy.connects_to(&server.url) > after_install,
        "the update went through the kept proxy"
    );

    // Without the proxy the install cannot reach its repository: a network failure (exit 3)
    // naming the proxy, and the installation as it was.
    proxy.stop();
    publish(&publisher, "3.0.0");
    let out = appupdate_with(&["update", "--json", "--dir", dir_arg], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("through the proxy {}", proxy.url())),
        "{stderr}"
    );
    let app = run(&mut Command::new(dir.join("appstart")));
    assert_eq!(text(&app.stdout).trim(), "app 2.0.0");
}

#[test]
fn basic_auth_takes_credentials_in_the_url_or_a_0600_file_and_refuses_wrong_ones() {
    let Some(proxy) = Tinyproxy::start(Some(("alice", "s3cret"))) else {
        return;
    };
    let (publisher, server) = served();
    let home = temp_dir();
    let authority = proxy.url().trim_start_matches("http://").to_string();

    let in_url = home.path().join("in-url");
    let out = install(
        &publisher,
        &server,
        &in_url,
        &["--proxy", &format!("http://alice:s3cret@{authority}")],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let through = proxy.connects_to(&server.url);
    assert!(through > 0, "the install went through the proxy");
    // The password is kept in install.toml, which only its owner may then read.
    let settings = in_url.join("state/install.toml");
    let mode = std::fs::metadata(&settings).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", settings.display());

    let credentials = home.path().join("proxy-credentials");
    std::fs::write(&credentials, "alice:s3cret\n").unwrap();
    set_mode(&credentials, 0o644);
    let from_file = home.path().join("from-file");
    let with_file = [
        "--proxy",
        &proxy.url(),
        "--proxy-credentials",
        credentials.to_str().unwrap(),
    ];
    let out = install(&publisher, &server, &from_file, &with_file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: mode 644", credentials.display())) && stderr.contains("0600"),
        "{stderr}"
    );
    assert!(!from_file.exists(), "nothing made");

    set_mode(&credentials, 0o600);
    let out = install(&publisher, &server, &from_file, &with_file, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(proxy.connects_to(&server.url) > through);
    let settings = std::fs::read_to_string(from_file.join("state/install.toml")).unwrap();
    assert!(
        !settings.contains("s3cret"),
        "read at each run, not copied: {settings}"
    );
    // Read at each run: a changed password in the file is used by the next run.
    std::fs::write(&credentials, "alice:changed\n").unwrap();
    let out = appupdate_with(&["check", "--dir", from_file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    let wrong = home.path().join("wrong");
    let out = install(
        &publisher,
        &server,
        &wrong,
        &[
            "--proxy",
            &format!("http://alice:not-the-password@{authority}"),
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the proxy http://alice:***@{authority} refused the credentials"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert!(
        !stderr.contains("retrying"),
        "refused credentials are final: {stderr}"
    );
    assert!(!wrong.exists(), "nothing made");
}

#[test]
fn no_proxy_hosts_bypass_the_proxy_as_a_setting_and_from_the_environment() {
    let Some(proxy) = Tinyproxy::start(None) else {
        return;
    };
    let (publisher, server) = served();
    let home = temp_dir();

    let setting = home.path().join("setting");
    let flags = ["--proxy", &proxy.url(), "--no-proxy", "localhost,127.0.0.1"];
    let out = install(&publisher, &server, &setting, &flags, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let variable = home.path().join("variable");
    let env = [
        ("HTTP_PROXY", proxy.url()),
        ("NO_PROXY", "127.0.0.1".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = install(&publisher, &server, &variable, &[], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        proxy.connects_to(&server.url),
        0,
        "nothing went through the proxy"
    );
}

#[test]
fn the_environment_applies_without_settings() {
    let Some(mut proxy) = Tinyproxy::start(None) else {
        return;
    };
    let (publisher, server) = served();
    let home = temp_dir();
    let mut seen = 0;
    for (i, name) in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"].iter().enumerate() {
        let dir = home.path().join(format!("app-{i}"));
        let out = install(&publisher, &server, &dir, &[], &[(name, &proxy.url())]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let now = proxy.connects_to(&server.url);
        assert!(now > seen, "{name} was honoured");
        seen = now;
    }
    // HTTPS_PROXY is for https:// URLs only: this http:// repository is reached directly.
    let dir = home.path().join("https-proxy");
    let out = install(
        &publisher,
        &server,
        &dir,
        &[],
        &[("HTTPS_PROXY", &proxy.url())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(proxy.connects_to(&server.url), seen);
    // The variables are read at each run: with the proxy gone, an update through it fails.
    proxy.stop();
    let dir = home.path().join("app-0");
    let out = appupdate_with(
        &["check", "--dir", dir.to_str().unwrap()],
        &[("HTTP_PROXY", &proxy.url())],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = appupdate_with(&["check", "--dir", dir.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Receipts go where the repository's requests go: a receiver reached only through the
/// install's `--proxy` gets them through it (before, ureq read the variables itself and an
/// install configured with `--proxy` posted directly).
#[test]
fn receipts_are_posted_through_the_install_proxy() {
    let Some(proxy) = Tinyproxy::start(None) else {
        return;
    };
    let (publisher, server) = served();
    let db = temp_dir();
    let db_path = db.path().join("receipts.sqlite");
    let receiver = Server::start_with(
        &publisher.repo(),
        &["--receipts-db", db_path.to_str().unwrap()],
    );
    let repo = publisher.repo();
    let keys = publisher.keys();
    crate::harness::appupdate_ok(&[
        "repo",
        "receipts",
        "--repo",
        repo.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--url",
        &receiver.url,
    ]);
    let home = temp_dir();
    let dir = home.path().join("app");
    let out = install(&publisher, &server, &dir, &["--proxy", &proxy.url()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    publish(&publisher, "2.0.0");
    let out = appupdate_with(&["update", "--dir", dir.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        proxy.connects_to(&receiver.url) > 0,
        "the receipts went through the proxy"
    );
    let outbox = std::fs::read_to_string(dir.join("state/receipts.jsonl")).unwrap_or_default();
    assert!(outbox.trim().is_empty(), "delivered: {outbox}");
    let posts = receiver
        .requests()
        .iter()
        .filter(|line| line.starts_with("POST /receipts"))
        .count();
    assert!(posts > 0, "{:?}", receiver.requests());
}
