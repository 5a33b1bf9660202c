//! The Windows system proxy (issue 18, item 2), under Wine: with no `--proxy` and no proxy
//! variable, `appupdate.exe` goes through the proxy the Internet Options setting names
//! (`ProxyEnable`, `ProxyServer` in the user's registry, set here with Wine's own `reg`), a
//! real tinyproxy on loopback; turned off, it connects directly; on, with the proxy gone, it
//! fails naming the proxy. The registry is changed in a Wine prefix of this test's own.

use std::process::{Command, Output};

use crate::harness::{self, Publisher, Server, Wine, run, text};
use crate::proxy::{PROXY_VARIABLES, Tinyproxy};

const SETTINGS_KEY: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings";

/// `wine reg add` of one value under [`SETTINGS_KEY`].
fn set_registry(wine: &Wine, name: &str, kind: &str, data: &str) {
    let out = run(wine.command(std::path::Path::new("reg")).args([
        "add",
        SETTINGS_KEY,
        "/v",
        name,
        "/t",
        kind,
        "/d",
        data,
        "/f",
    ]));
    assert!(
        out.status.success(),
        "reg add {name}: {}",
        text(&out.stderr)
    );
}

/// `appupdate.exe ARGS` under Wine with no proxy variable (Wine passes the Unix environment
/// on to Windows programs).
fn appupdate_exe(wine: &Wine, args: &[&str]) -> Output {
    let mut command: Command = wine.command(&wine.exe("appupdate"));
    command.args(args);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    run(&mut command)
}

#[test]
fn windows_system_proxy_setting_is_used_under_wine() {
    let Some(mut proxy) = Tinyproxy::start(None) else {
        return;
    };
    let Some(shared) = harness::wine() else {
        return;
    };
    let wine = shared.with_own_prefix("proxy");
    let publisher = Publisher::new();
    let release = |version: &str| {
        let files: &[(&str, &[u8], bool)] = &[("bin/app", b"MZ not run here", true)];
        publisher.publish("sample", version, files, &["--platform", "windows-x86_64"]);
    };
    release("1.0.0");
    let server = Server::start(&publisher.repo());
    let port = proxy.url().rsplit(':').next().unwrap().to_string();
    set_registry(&wine, "ProxyServer", "REG_SZ", &format!("127.0.0.1:{port}"));
    set_registry(&wine, "ProxyOverride", "REG_SZ", "<local>");
    set_registry(&wine, "ProxyEnable", "REG_DWORD", "1");

    let home = harness::temp_dir();
    let dir = home.path().join("app");
    let root = publisher.root_json();
    let out = appupdate_exe(
        &wine,
        &[
            "install",
            "--url",
            &server.url,
            "--trusted-root",
            root.to_str().unwrap(),
            "--app",
            "sample",
            "--platform",
            "windows-x86_64",
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let through = proxy.connects_to(&server.url);
    assert!(through > 0, "the install went through the system proxy");
    let dir_arg = dir.to_str().unwrap();
    let status = appupdate_exe(&wine, &["status", "--json", "--dir", dir_arg]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["proxy"].as_str(),
        Some(proxy.url().as_str()),
        "{status}"
    );

    // Turned off in the settings: a direct connection.
    set_registry(&wine, "ProxyEnable", "REG_DWORD", "0");
    let out = appupdate_exe(&wine, &["check", "--dir", dir_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(proxy.connects_to(&server.url), through, "direct when off");

    // On again with the proxy gone: a network failure naming it, nothing changed.
    set_registry(&wine, "ProxyEnable", "REG_DWORD", "1");
    proxy.stop();
    release("2.0.0");
    let out = appupdate_exe(&wine, &["update", "--dir", dir_arg]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("through the proxy {}", proxy.url())),
        "{stderr}"
    );
    let status = appupdate_exe(&wine, &["status", "--json", "--dir", dir_arg]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["current"], "1.0.0", "{status}");
}
