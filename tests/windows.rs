//! Windows, tested from Linux: the workspace cross-built for `x86_64-pc-windows-gnu` and run
//! under Wine (set up by [`harness::wine`]).
//!
//! Releases are published for `windows-x86_64` by the Linux `appupdate` (cross-publishing, as
//! a Linux CI job does) and hold the sample app built for Windows. Everything on the client
//! side is the Windows build: `appupdate.exe` installs from a `file://` repository, updates
//! and rolls back; `appstart.exe` runs the app. Wine maps drive `Z:` to `/`, so the Unix paths
//! of the temporary folders are valid Windows paths on the current drive, and
//! `file:///tmp/...` is the repository. Skipped loudly without Wine outside CI.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{self, Publisher, Wine, run, text};

const APP: &str = "sample";
/// The app the installer test installs (its shortcuts must not meet the shortcut test's).
const SETUP_APP: &str = "sample-setup";

/// Publishes `version` for `windows-x86_64`: the sample app as `bin/app.exe` and `message`
/// in `share/message.txt`, with the Linux `appupdate`.
fn publish_for_windows(publisher: &Publisher, wine: &Wine, version: &str, message: &str) {
    publish_app_for_windows(publisher, wine, APP, version, message);
}

/// [`publish_for_windows`] for another app name: tests that make shortcuts (named after the
/// app, in the one Wine prefix all tests share) each use their own.
fn publish_app_for_windows(
    publisher: &Publisher,
    wine: &Wine,
    app: &str,
    version: &str,
    message: &str,
) {
    publish_windows_release(publisher, wine, app, version, message, &[], &[]);
}

/// [`publish_app_for_windows`] with `files` (path, content) added to the release and `flags`
/// added to `publish` (the hook tests' `--hook`).
pub(crate) fn publish_windows_release(
    publisher: &Publisher,
    wine: &Wine,
    app: &str,
    version: &str,
    message: &str,
    files: &[(&str, &str)],
    flags: &[&str],
) {
    let source = publisher.dir.path().join(format!("windows-src-{version}"));
    std::fs::create_dir_all(source.join("bin")).expect("mkdir");
    std::fs::create_dir_all(source.join("share")).expect("mkdir");
    std::fs::copy(wine.exe("sample-app"), source.join("bin/app.exe")).expect("copy app");
    std::fs::write(source.join("share/message.txt"), message).expect("write message");
    for (path, content) in files {
        let full = source.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
    }
    let (repo, keys) = (publisher.repo(), publisher.keys());
    let mut args = vec![
        "publish",
        "--repo",
        repo.to_str().expect("utf-8"),
        "--keys",
        keys.to_str().expect("utf-8"),
        "--app",
        app,
        "--version",
        version,
        "--platform",
        "windows-x86_64",
        "--exe",
        "bin/app.exe",
        // The debug sample app is 18 MB: the fastest zstd level keeps publishing quick.
        "--level",
        "1",
    ];
    args.extend_from_slice(flags);
    args.push(source.to_str().expect("utf-8"));
    harness::appupdate_ok(&args);
}

/// Runs `appupdate.exe` under Wine and panics with its output unless it succeeds; returns
/// its stdout parsed as the one JSON object `--json` prints.
pub(crate) fn appupdate_exe(wine: &Wine, args: &[&str]) -> serde_json::Value {
    let output = run(wine
        .command(&wine.exe("appupdate"))
        .args(args)
        .arg("--json"));
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(crate::harness::success_code(args, &stdout)),
        "appupdate.exe {args:?} failed ({}): {stdout}{}",
        output.status,
        text(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

/// Installs `APP` from `publisher`'s `file://` repository into `dir` with `appupdate.exe`
/// (and `extra` flags); returns its JSON report.
pub(crate) fn install_exe(
    wine: &Wine,
    publisher: &Publisher,
    dir: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let url = format!("file://{}", publisher.repo().display());
    let root_json = publisher.root_json();
    let mut args = vec![
        "install",
        "--url",
        &url,
        "--trusted-root",
        root_json.to_str().expect("utf-8"),
        "--app",
        APP,
        "--dir",
        dir.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    appupdate_exe(wine, &args)
}

/// Starts the installed `appstart.exe` under Wine with `args`.
pub(crate) fn appstart_exe(wine: &Wine, dir: &Path, args: &[&str]) -> Command {
    let mut command = wine.command(&dir.join("appstart.exe"));
    command.args(args);
    command
}

pub(crate) fn describe(output: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The whole client path on Windows: install, run through the launcher (exit code
/// forwarded), an update found by the running app and a relaunch on the restart code, an
/// update by `appupdate.exe` while the app runs, a rollback, and the fallback from a release
/// that crashes during probation.
#[test]
fn windows_install_update_relaunch_rollback_fallback_under_wine() {
    let Some(wine) = harness::wine() else {
        return;
    };
    let publisher = Publisher::new();
    publish_for_windows(&publisher, wine, "1.0.0", "one");
    let home = harness::temp_dir();
    let dir = home.path().join("app");
    let dir_arg = dir.to_str().expect("utf-8");

    // Install from the file:// repository; the launcher is appstart.exe beside appupdate.exe.
    let installed = install_exe(wine, &publisher, &dir, &[]);
    assert_eq!(installed["to"], "1.0.0", "{installed}");
    assert!(
        dir.join("appstart.exe").is_file(),
        "the launcher is installed"
    );

    // The launcher runs the current version; the app's exit code comes back unchanged.
    let output = run(&mut appstart_exe(wine, &dir, &["--until-version", "1.0.0"]));
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("sample-app 1.0.0: one"),
        "{}",
        describe(&output)
    );
    let output = run(&mut appstart_exe(
        wine,
        &dir,
        &["--crash-in-version", "1.0.0"],
    ));
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));

    // Ctrl-C on the console (a pseudo-terminal: see `Wine::console_command`) reaches the
    // app, and the launcher survives it: the app's own exit
    // code comes back (not the launcher's STATUS_CONTROL_C_EXIT). After a Ctrl-C, even the
    // restart code (75) does not relaunch: the user asked to stop.
    for code in [42, 75] {
        let output = run(&mut wine.console_command(
            &dir.join("appstart.exe"),
            &["--ctrl-c-then-exit", &code.to_string()],
        ));
        assert_eq!(output.status.code(), Some(code), "{}", describe(&output));
        let stdout = text(&output.stdout);
        assert!(
            stdout.contains(&format!("got Ctrl-C, exiting with {code}")),
            "{}",
            describe(&output)
        );
        assert_eq!(
            stdout.matches("sample-app 1.0.0: one").count(),
            1,
            "started once: {}",
            describe(&output)
        );
    }

    // 2.0.0 is found by the running app's poller, staged beside the running 1.0.0 and
    // switched to; the app exits with the restart code and appstart.exe starts 2.0.0.
    publish_for_windows(&publisher, wine, "2.0.0", "two");
    let output = run(&mut appstart_exe(
        wine,
        &dir,
        &["--poll-ms", "200", "--until-version", "2.0.0"],
    ));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", describe(&output));
    for expected in [
        "sample-app 1.0.0: one",
        "switched to 2.0.0",
        "sample-app 2.0.0: two",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?}: {}",
            describe(&output)
        );
    }

    // 3.0.0 is installed by appupdate.exe while 2.0.0 runs (its .exe open, so locked on
    // Windows); the next start runs 3.0.0.
    publish_for_windows(&publisher, wine, "3.0.0", "three");
    let mut running = appstart_exe(wine, &dir, &["--poll-ms", "600000", "--max-secs", "4"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting appstart.exe");
    // It is running once it has printed its first line.
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(running.stdout.take().expect("piped")),
        &mut first,
    )
    .expect("the app prints its version");
    assert!(first.contains("sample-app 2.0.0: two"), "{first:?}");
    let updated = appupdate_exe(wine, &["update", "--dir", dir_arg]);
    assert_eq!(updated["from"], "2.0.0", "{updated}");
    assert_eq!(updated["to"], "3.0.0", "{updated}");
    let status = harness::wait_with_deadline(&mut running, harness::DEADLINE);
    assert!(
        status.success(),
        "the running 2.0.0 finishes normally: {status}"
    );
    let output = run(&mut appstart_exe(wine, &dir, &["--until-version", "0"]));
    assert!(
        text(&output.stdout).contains("sample-app 3.0.0: three"),
        "{}",
        describe(&output)
    );

    // Rolling back returns to 2.0.0.
    let rolled = appupdate_exe(wine, &["rollback", "--dir", dir_arg]);
    assert_eq!(rolled["to"], "2.0.0", "{rolled}");
    let output = run(&mut appstart_exe(wine, &dir, &["--until-version", "0"]));
    assert!(
        text(&output.stdout).contains("sample-app 2.0.0: two"),
        "{}",
        describe(&output)
    );

    // 4.0.0 crashes on start during its probation: appstart.exe falls back to 2.0.0 (3.0.0
    // was rolled back from, so it is skipped) and runs it with the same arguments.
    publish_for_windows(&publisher, wine, "4.0.0", "four");
    let updated = appupdate_exe(wine, &["update", "--dir", dir_arg]);
    assert_eq!(updated["to"], "4.0.0", "{updated}");
    let output = run(&mut appstart_exe(
        wine,
        &dir,
        &["--crash-in-version", "4.0.0", "--until-version", "0"],
    ));
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("sample-app 2.0.0: two"),
        "{}",
        describe(&output)
    );
    let status = appupdate_exe(wine, &["status", "--dir", dir_arg]);
    assert_eq!(status["current"], "2.0.0", "{status}");
    assert!(
        std::fs::read_to_string(dir.join("state/bad-versions.toml"))
            .expect("bad versions recorded")
            .contains("4.0.0"),
        "4.0.0 is recorded as bad"
    );
}

/// `install --shortcut desktop --shortcut start-menu` under Wine writes `.lnk` files to
/// `appstart.exe` in the Wine user's Desktop and Start Menu (Wine sets `USERPROFILE` and
/// `APPDATA` itself; the harness keeps the prefix's Desktop off the real one); `uninstall`
/// removes them and the install folder.
#[test]
fn windows_install_with_shortcuts_then_uninstall_under_wine() {
    let Some(wine) = harness::wine() else {
        return;
    };
    let publisher = Publisher::new();
    publish_for_windows(&publisher, wine, "1.0.0", "one");
    let home = harness::temp_dir();
    let dir = home.path().join("app");
    let dir_arg = dir.to_str().expect("utf-8");
    let profile = wine.user_profile();
    let desktop = profile.join("Desktop/sample.lnk");
    let menu = profile.join("AppData/Roaming/Microsoft/Windows/Start Menu/Programs/sample.lnk");
    for stale in [&desktop, &menu] {
        // Left by an earlier run that was killed before it uninstalled.
        let _ = std::fs::remove_file(stale);
    }

    install_exe(
        wine,
        &publisher,
        &dir,
        &["--shortcut", "desktop", "--shortcut", "start-menu"],
    );
    for shortcut in [&desktop, &menu] {
        let bytes = std::fs::read(shortcut)
            .unwrap_or_else(|e| panic!("no shortcut {}: {e}", shortcut.display()));
        // A shell link: its header starts with the header size, 0x4C.
        assert_eq!(
            &bytes[..4],
            &[0x4C, 0, 0, 0],
            "{} is a .lnk",
            shortcut.display()
        );
        // Its strings are UTF-16: the relative path names appstart.exe and the working
        // folder is the install folder, as Windows sees it (Wine maps `/` to drive Z:).
        let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            contains(&utf16("appstart.exe")),
            "{} targets appstart.exe",
            shortcut.display()
        );
        let windows_dir = format!("Z:{}", dir_arg.replace('/', "\\"));
        assert!(
            contains(&utf16(&windows_dir)),
            "{} starts in {windows_dir}",
            shortcut.display()
        );
    }

    let report = appupdate_exe(wine, &["uninstall", "--dir", dir_arg]);
    assert_eq!(
        report["shortcuts"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert!(!desktop.exists(), "the desktop shortcut is removed");
    assert!(!menu.exists(), "the start-menu shortcut is removed");
    assert!(!dir.exists(), "the install folder is removed");
}

/// An installer for Windows made on Linux (`appupdate installer --platform windows-x86_64`
/// with the cross-built `appupdate.exe` and `appstart.exe`) installs the Windows release when
/// run under Wine and starts the app through the installed `appstart.exe`.
#[test]
fn windows_installer_built_on_linux_installs_and_starts_under_wine() {
    let Some(wine) = harness::wine() else {
        return;
    };
    let publisher = Publisher::new();
    publish_app_for_windows(&publisher, wine, SETUP_APP, "1.0.0", "one");
    let url = format!("file://{}", publisher.repo().display());
    let home = harness::temp_dir();
    let installer = home.path().join("sample-setup.exe");
    harness::appupdate_ok(&[
        "installer",
        "--repo",
        publisher.repo().to_str().expect("utf-8"),
        "--app",
        SETUP_APP,
        "--url",
        &url,
        "--platform",
        "windows-x86_64",
        "--appupdate-binary",
        wine.exe("appupdate").to_str().expect("utf-8"),
        "--launcher-binary",
        wine.exe("appstart").to_str().expect("utf-8"),
        "--out",
        installer.to_str().expect("utf-8"),
    ]);

    let profile = wine.user_profile();
    let desktop = profile.join(format!("Desktop/{SETUP_APP}.lnk"));
    let menu = profile.join(format!(
        "AppData/Roaming/Microsoft/Windows/Start Menu/Programs/{SETUP_APP}.lnk"
    ));
    for stale in [&desktop, &menu] {
        // Left by an earlier run that was killed before it uninstalled.
        let _ = std::fs::remove_file(stale);
    }

    // The arguments after `--` make the sample app exit once it has printed its line.
    let dir = home.path().join("app");
    let dir_arg = dir.to_str().expect("utf-8");
    let output =
        run(wine
            .command(&installer)
            .args(["--dir", dir_arg, "--", "--until-version", "0"]));
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stdout).contains("sample-app 1.0.0: one"),
        "the app is started: {}",
        describe(&output)
    );
    assert!(dir.join("appstart.exe").is_file(), "{}", describe(&output));
    let status = appupdate_exe(wine, &["status", "--dir", dir_arg]);
    assert_eq!(status["current"], "1.0.0", "{status}");
    assert_eq!(status["platform"], "windows-x86_64", "{status}");

    // A desktop and a start-menu shortcut, as a double-clicked Setup.exe makes; the installed
    // appupdate.exe's uninstall removes them with the install.
    assert!(
        desktop.is_file(),
        "{}: {}",
        desktop.display(),
        describe(&output)
    );
    assert!(menu.is_file(), "{}: {}", menu.display(), describe(&output));
    appupdate_exe(wine, &["uninstall", "--dir", dir_arg]);
    assert!(
        !desktop.exists() && !menu.exists(),
        "uninstall removes the shortcuts"
    );
    assert!(!dir.exists(), "uninstall removes the install");
}

/// An install folder deep enough that its paths pass `MAX_PATH` (260 characters): the
/// install, the launcher starting the app, an update (its state files and `appstart.toml`
/// replaced with `MoveFileExW`, which gets `\\?\` paths) and a rollback all work there.
#[test]
fn windows_install_update_rollback_in_a_long_path_under_wine() {
    let Some(wine) = harness::wine() else {
        return;
    };
    let publisher = Publisher::new();
    publish_for_windows(&publisher, wine, "1.0.0", "one");
    let home = harness::temp_dir();
    let mut dir = home.path().to_path_buf();
    for level in 0..8 {
        dir.push(format!("a-folder-with-a-long-name-{level}"));
    }
    dir.push("app");
    let dir_arg = dir.to_str().expect("utf-8");
    let config = dir.join("appstart.toml");
    assert!(
        config.as_os_str().len() > 260,
        "{} is not long enough",
        config.display()
    );

    let installed = install_exe(wine, &publisher, &dir, &[]);
    assert_eq!(installed["to"], "1.0.0", "{installed}");
    let output = run(&mut appstart_exe(wine, &dir, &["--until-version", "0"]));
    assert!(
        text(&output.stdout).contains("sample-app 1.0.0: one"),
        "{}",
        describe(&output)
    );

    publish_for_windows(&publisher, wine, "2.0.0", "two");
    let updated = appupdate_exe(wine, &["update", "--dir", dir_arg]);
    assert_eq!(updated["to"], "2.0.0", "{updated}");
    let output = run(&mut appstart_exe(wine, &dir, &["--until-version", "0"]));
    assert!(
        text(&output.stdout).contains("sample-app 2.0.0: two"),
        "{}",
        describe(&output)
    );

    let rolled = appupdate_exe(wine, &["rollback", "--dir", dir_arg]);
    assert_eq!(rolled["to"], "1.0.0", "{rolled}");
    let toml = std::fs::read_to_string(&config).expect("read appstart.toml");
    assert!(toml.contains("\"1.0.0\""), "{toml}");
}
