//! The example programs in `updater-core/examples/` (issue 17, item 7), run as the app of a
//! real install: published, served, installed and started through the `appstart` launcher,
//! so the few lines a README shows are known to work.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{
    DEADLINE, Publisher, Server, appupdate_json, example, install, temp_dir, text,
    wait_with_deadline,
};

/// `app` 1.0.0 (the example binary as `bin/app`) published, served and installed; 1.1.0
/// published after the install, so the installed app finds it.
fn installed_with_an_update(name: &str) -> (Publisher, Server, tempfile::TempDir, PathBuf) {
    let binary = std::fs::read(example(name)).unwrap();
    let publisher = Publisher::new();
    let publish = |version: &str| {
        publisher.publish(
            name,
            version,
            &[
                ("bin/app", &binary, true),
                ("VERSION", version.as_bytes(), false),
            ],
            &[],
        );
    };
    publish("1.0.0");
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    install(&publisher, &server.url, name, &dir);
    publish("1.1.0");
    (publisher, server, home, dir)
}

/// Starts the install's launcher with `input` on its standard input; its exit status and
/// standard output.
fn launch(dir: &Path, input: &str) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(dir.join("appstart"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).unwrap();
        out
    });
    let status = wait_with_deadline(&mut child, DEADLINE);
    (status, text(&reader.join().unwrap()))
}

fn current(dir: &Path) -> String {
    let status = appupdate_json(&["status", "--dir", dir.to_str().unwrap()]);
    status["current"].as_str().unwrap().to_string()
}

#[test]
fn the_embed_example_updates_itself_and_restarts_into_the_new_version() {
    let (_publisher, _server, _home, dir) = installed_with_an_update("embed");
    assert_eq!(current(&dir), "1.0.0");
    let (status, stdout) = launch(&dir, "");
    assert!(status.success(), "{status:?}: {stdout}");
    // 1.0.0 took the update and asked for a restart; the launcher started 1.1.0, which found
    // nothing newer and ran.
    assert!(
        stdout.contains("updated to 1.1.0, restarting\n") && stdout.ends_with("running 1.1.0\n"),
        "{stdout}"
    );
    assert_eq!(current(&dir), "1.1.0");
}

#[test]
fn the_prompt_example_skips_on_no_and_updates_on_yes() {
    let (_publisher, _server, _home, dir) = installed_with_an_update("prompt");
    let (status, stdout) = launch(&dir, "n\n");
    assert!(status.success(), "{status:?}: {stdout}");
    assert!(
        stdout.contains("version 1.1.0 is available (you have 1.0.0)")
            && stdout.contains("no update taken"),
        "{stdout}"
    );
    assert_eq!(current(&dir), "1.0.0", "a no leaves the install as it was");

    let (status, stdout) = launch(&dir, "y\n");
    assert!(status.success(), "{status:?}: {stdout}");
    assert!(stdout.contains("updated to 1.1.0"), "{stdout}");
    assert_eq!(current(&dir), "1.1.0");
}
