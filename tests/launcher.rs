//! The launcher (`appstart`) with real child processes: arguments, exit codes, signals,
//! restarts, probation fallback and config errors.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{self, bin, run, text, write_executable};

/// An install folder with the real launcher and hand-written version folders.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = harness::temp_dir();
        std::fs::copy(bin("appstart"), dir.path().join("appstart")).expect("copy launcher");
        Fixture { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    /// Adds `versions/<version>/bin/app` with the given shell script body.
    fn add_version(&self, version: &str, script: &str) {
        write_executable(
            &self.path(&format!("versions/{version}/bin/app")),
            &format!("#!/bin/sh\n{script}\n"),
        );
    }

    fn write_config(&self, extra: &str) {
        std::fs::write(self.path("appstart.toml"), extra).expect("write config");
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.path("appstart.toml")).expect("read config")
    }

    fn launcher(&self) -> Command {
        let mut command = Command::new(self.path("appstart"));
        command.env("OUT", self.root());
        command
    }
}

const CONFIG_V1: &str = "current = \"1.0.0\"\nexecutable = \"bin/app\"\n";

#[test]
fn arguments_arrive_unchanged() {
    let fixture = Fixture::new();
    fixture.add_version(
        "1.0.0",
        r#"for a in "$@"; do printf '%s\0' "$a"; done > "$OUT/args""#,
    );
    fixture.write_config(CONFIG_V1);
    let args: Vec<OsString> = vec![
        "two words".into(),
        "quotes \" and ' here".into(),
        "".into(),
        "ünïcødé ✓ 日本".into(),
        OsString::from_vec(b"bytes \xff\xfe not utf-8".to_vec()),
        "--flag=$HOME *".into(),
    ];
    let output = run(fixture.launcher().args(&args));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let recorded = std::fs::read(fixture.path("args")).expect("args written");
    let mut expected = Vec::new();
    for arg in &args {
        expected.extend_from_slice(arg.as_encoded_bytes());
        expected.push(0);
    }
    assert_eq!(recorded, expected);
}

#[test]
fn environment_tells_the_app_where_it_is() {
    let fixture = Fixture::new();
    fixture.add_version(
        "1.0.0",
        r#"printf '%s\n' "$APPSTART_DIR" "$APPSTART_VERSION" "$APPSTART_LAUNCHER" "$APPSTART_RESTART_CODE" "$PWD" > "$OUT/env""#,
    );
    fixture.write_config(&format!("{CONFIG_V1}restart_code = 42\n"));
    let cwd = harness::temp_dir();
    let output = run(fixture.launcher().current_dir(cwd.path()));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let env = std::fs::read_to_string(fixture.path("env")).expect("env written");
    let lines: Vec<&str> = env.lines().collect();
    let root = fixture.root().canonicalize().expect("canonical");
    assert_eq!(lines[0], root.to_str().expect("utf-8"));
    assert_eq!(lines[1], "1.0.0");
    assert_eq!(lines[2], root.join("appstart").to_str().expect("utf-8"));
    assert_eq!(lines[3], "42");
    // The working directory is inherited, not the install folder.
    assert_eq!(
        Path::new(lines[4]).canonicalize().expect("cwd"),
        cwd.path().canonicalize().expect("cwd")
    );
}

#[test]
fn exit_codes_are_forwarded() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", r#"echo out; echo err >&2; exit "$1""#);
    fixture.write_config(CONFIG_V1);
    for code in [0, 1, 3, 255] {
        let output = run(fixture.launcher().arg(code.to_string()));
        assert_eq!(output.status.code(), Some(code), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), "out\n", "stdout is inherited");
        assert!(
            text(&output.stderr).starts_with("err\n"),
            "stderr is inherited"
        );
    }
}

#[test]
fn sigterm_reaches_the_child_and_its_code_comes_back() {
    let fixture = Fixture::new();
    fixture.add_version(
        "1.0.0",
        r#"trap 'kill $sleeper; echo got-term > "$OUT/term"; exit 42' TERM
sleep 60 & sleeper=$!
touch "$OUT/ready"
wait $sleeper"#,
    );
    fixture.write_config(CONFIG_V1);
    let mut child = fixture
        .launcher()
        .stdin(Stdio::null())
        .spawn()
        .expect("start launcher");
    harness::wait_for_file(&fixture.path("ready"));
    // SAFETY: plain kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = harness::wait_with_deadline(&mut child, harness::DEADLINE);
    assert_eq!(
        status.code(),
        Some(42),
        "the launcher exits with the child's code"
    );
    assert_eq!(
        std::fs::read_to_string(fixture.path("term")).expect("child saw SIGTERM"),
        "got-term\n"
    );
}

#[test]
fn a_child_killed_by_a_signal_gives_128_plus_signal() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", "kill -KILL $$");
    fixture.write_config(CONFIG_V1);
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(128 + 9));
    assert!(
        output.status.signal().is_none(),
        "the launcher itself exits normally"
    );
    assert!(
        text(&output.stderr).contains("signal 9"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn restart_code_relaunches_the_version_named_by_the_reread_config() {
    let fixture = Fixture::new();
    // Version 1 plays the updater: it switches the config to 2.0.0, then asks for a restart.
    fixture.add_version(
        "1.0.0",
        r#"sed -i 's/^current = .*/current = "2.0.0"/' "$APPSTART_DIR/appstart.toml"; exit 75"#,
    );
    fixture.add_version(
        "2.0.0",
        r#"for a in "$@"; do printf '%s\n' "$a"; done > "$OUT/v2-args"; exit 0"#,
    );
    fixture.write_config(CONFIG_V1);
    let output = run(fixture.launcher().args(["a b", "c"]));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        std::fs::read_to_string(fixture.path("v2-args")).expect("v2 ran"),
        "a b\nc\n",
        "the same arguments are passed again"
    );
    let history = std::fs::read_to_string(fixture.path("state/history.log")).expect("history");
    assert!(history.contains("restart version=1.0.0"), "{history}");
    assert!(history.contains("launch version=2.0.0"), "{history}");
}

#[test]
fn a_restart_loop_ends_with_a_clear_error() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", r#"echo run >> "$OUT/runs"; exit 75"#);
    fixture.write_config(&format!(
        "{CONFIG_V1}\n[restart]\nmax = 3\nwindow_secs = 60\n"
    ));
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(127));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("asked to restart 4 times within 60 s"),
        "{stderr}"
    );
    let runs = std::fs::read_to_string(fixture.path("runs")).expect("runs");
    assert_eq!(runs.lines().count(), 4, "first run plus three restarts");
}

#[test]
fn a_crashing_new_version_falls_back_and_is_recorded_as_bad() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", r#"echo v1 > "$OUT/ran"; exit 0"#);
    fixture.add_version("2.0.0", r#"echo v2 >> "$OUT/crashes"; exit 1"#);
    fixture.write_config(
        "current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\n\n[probation]\nsecs = 60\nfailures = 2\n",
    );
    std::fs::create_dir_all(fixture.path("state")).expect("mkdir");
    std::fs::write(
        fixture.path("state/probation.toml"),
        "version = \"2.0.0\"\n",
    )
    .expect("probation");

    // First crash: counted, not yet rolled back; the crash code is forwarded.
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(1));
    assert!(fixture.config().contains("current = \"2.0.0\""));
    assert!(!fixture.path("ran").exists());

    // Second crash: falls back to 1.0.0, which runs.
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        std::fs::read_to_string(fixture.path("ran")).expect("v1 ran"),
        "v1\n"
    );
    let config = fixture.config();
    assert!(config.contains("current = \"1.0.0\""), "{config}");
    assert!(!config.contains("previous"), "{config}");
    let bad = std::fs::read_to_string(fixture.path("state/bad-versions.toml")).expect("bad list");
    assert!(bad.contains("version = \"2.0.0\""), "{bad}");
    assert!(bad.contains("exited with code 1"), "{bad}");
    let history = std::fs::read_to_string(fixture.path("state/history.log")).expect("history");
    assert!(
        history.contains("fallback from=2.0.0 to=1.0.0"),
        "{history}"
    );
    assert!(!fixture.path("state/probation.toml").exists());
}

/// Regression: the crash count was incremented with `+=`, so a count of u32::MAX (a corrupt or
/// hand-edited file) panicked the launcher or wrapped to 0 and skipped the fallback.
#[test]
fn a_crash_count_at_its_maximum_still_falls_back() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", r#"echo v1 > "$OUT/ran"; exit 0"#);
    fixture.add_version("2.0.0", "exit 1");
    fixture.write_config(
        "current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\n\n[probation]\nsecs = 60\nfailures = 4294967295\n",
    );
    std::fs::create_dir_all(fixture.path("state")).expect("mkdir");
    std::fs::write(
        fixture.path("state/probation.toml"),
        "version = \"2.0.0\"\nfailures = 4294967295\n",
    )
    .expect("probation");
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(fixture.path("ran").exists(), "fell back to 1.0.0");
    assert!(fixture.config().contains("current = \"1.0.0\""));
}

#[test]
fn a_version_that_exits_cleanly_ends_probation() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", "exit 0");
    fixture.add_version("2.0.0", "exit 0");
    fixture.write_config("current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\n");
    std::fs::create_dir_all(fixture.path("state")).expect("mkdir");
    std::fs::write(
        fixture.path("state/probation.toml"),
        "version = \"2.0.0\"\n",
    )
    .expect("probation");
    let output = run(&mut fixture.launcher());
    assert!(output.status.success());
    assert!(
        !fixture.path("state/probation.toml").exists(),
        "probation ended"
    );
    assert!(fixture.config().contains("current = \"2.0.0\""));
}

#[test]
fn a_crash_outside_probation_is_only_forwarded() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", "exit 0");
    fixture.add_version("2.0.0", "exit 9");
    fixture.write_config("current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\n");
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(9));
    assert!(
        fixture.config().contains("current = \"2.0.0\""),
        "no probation, no fallback"
    );
    assert!(!fixture.path("state/bad-versions.toml").exists());
}

#[test]
fn a_hand_edit_of_current_runs_that_version() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", "exit 11");
    fixture.add_version("2.0.0", "exit 22");
    fixture.write_config("current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\n");
    assert_eq!(run(&mut fixture.launcher()).status.code(), Some(22));
    let edited = fixture
        .config()
        .replace("current = \"2.0.0\"", "current = \"1.0.0\"");
    let edited = edited.replace("previous = \"1.0.0\"", "previous = \"2.0.0\"");
    fixture.write_config(&edited);
    assert_eq!(run(&mut fixture.launcher()).status.code(), Some(11));
}

/// Regression: after `appupdate rollback` (current 2.0.0, previous 3.0.0), setting
/// `current = "3.0.0"` by hand left current == previous and the launcher refused to start.
#[test]
fn a_hand_edit_that_makes_current_equal_previous_still_starts() {
    let fixture = Fixture::new();
    fixture.add_version("2.0.0", "exit 22");
    fixture.add_version("3.0.0", "exit 33");
    fixture.write_config("current = \"3.0.0\"\nprevious = \"3.0.0\"\nexecutable = \"bin/app\"\n");
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(33), "{}", text(&output.stderr));
}

#[test]
fn a_malformed_config_gives_line_and_column_and_is_left_unchanged() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", "exit 0");
    for (config, expected) in [
        (
            "current = \"1.0.0\"\nexecutable = \"bin/app\"\nrestart_code = = 3\n",
            ":3:16:",
        ),
        (
            "current = \"1.0.0\"\nexecutable = \"bin/app\"\ncurrrent = \"2\"\n",
            ":3:1:",
        ),
    ] {
        fixture.write_config(config);
        let output = run(&mut fixture.launcher());
        assert_eq!(output.status.code(), Some(127));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("appstart.toml{expected}")),
            "{stderr}"
        );
        assert_eq!(fixture.config(), config, "byte-for-byte unchanged");
    }
    let stderr = text(&run(&mut fixture.launcher()).stderr);
    assert!(stderr.contains("unknown field `currrent`"), "{stderr}");
}

#[test]
fn a_missing_executable_names_the_path() {
    let fixture = Fixture::new();
    std::fs::create_dir_all(fixture.path("versions/1.0.0")).expect("mkdir");
    fixture.write_config(CONFIG_V1);
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(127));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("versions/1.0.0/bin/app"), "{stderr}");
    assert!(stderr.contains("executable is missing"), "{stderr}");

    // Missing version folder: the folder is named.
    fixture.write_config("current = \"9.9.9\"\nexecutable = \"bin/app\"\n");
    let stderr = text(&run(&mut fixture.launcher()).stderr);
    assert!(stderr.contains("versions/9.9.9"), "{stderr}");
}

#[test]
fn a_missing_or_unexecutable_current_falls_back_to_a_usable_previous() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", r#"echo v1 > "$OUT/ran""#);
    fixture.add_version("2.0.0", "exit 0");
    harness::set_mode(&fixture.path("versions/2.0.0/bin/app"), 0o644);
    fixture.write_config("current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\n");
    // Just switched to: a release that cannot start is a bad release.
    std::fs::create_dir_all(fixture.path("state")).expect("mkdir");
    std::fs::write(
        fixture.path("state/probation.toml"),
        "version = \"2.0.0\"\n",
    )
    .expect("probation");
    let output = run(&mut fixture.launcher());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(fixture.path("ran").exists());
    assert!(fixture.config().contains("current = \"1.0.0\""));
    let bad = std::fs::read_to_string(fixture.path("state/bad-versions.toml")).expect("bad list");
    assert!(bad.contains("not an executable file"), "{bad}");
}

/// Regression: a version whose folder was deleted locally after it passed probation (by
/// antivirus or a tidy user) was recorded as bad for good. Local damage is not a bad release:
/// fall back, but leave it out of bad-versions so the next update fetches it again.
#[test]
fn a_version_damaged_locally_after_probation_falls_back_without_being_marked_bad() {
    let fixture = Fixture::new();
    fixture.add_version("1.0.0", r#"echo v1 > "$OUT/ran""#);
    fixture.add_version("2.0.0", "exit 0");
    fixture.write_config("current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\n");
    std::fs::remove_file(fixture.path("versions/2.0.0/bin/app")).expect("delete exe");
    let output = run(&mut fixture.launcher());
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(fixture.path("ran").exists());
    assert!(fixture.config().contains("current = \"1.0.0\""));
    assert!(
        !fixture.path("state/bad-versions.toml").exists(),
        "local damage is not a bad release"
    );
    let history = std::fs::read_to_string(fixture.path("state/history.log")).expect("history");
    assert!(
        history.contains("fallback from=2.0.0 to=1.0.0"),
        "{history}"
    );
    assert!(history.contains("damaged locally"), "{history}");
    // The launcher records its own switch, so the updater does not take it for a hand edit.
    let switched = std::fs::read_to_string(fixture.path("state/switched.toml")).expect("record");
    assert!(switched.contains("current = \"1.0.0\""), "{switched}");
}

/// Regression: after `appupdate rollback` from 3.0.0 to 2.0.0, a hand edit naming a version
/// whose folder is missing made the launcher fall back to 3.0.0, the very version the user
/// had rolled back from. A fallback never picks a bad version; with none left the launcher
/// names the missing folder and lists what is installed.
#[test]
fn a_fallback_never_returns_to_a_version_recorded_as_bad() {
    let fixture = Fixture::new();
    fixture.add_version("2.0.0", "exit 22");
    fixture.add_version("3.0.0", r#"echo v3 > "$OUT/ran""#);
    let config = "current = \"4.0.0\"\nprevious = \"3.0.0\"\nexecutable = \"bin/app\"\n";
    fixture.write_config(config);
    std::fs::create_dir_all(fixture.path("state")).expect("mkdir");
    std::fs::write(
        fixture.path("state/bad-versions.toml"),
        "[[bad]]\nversion = \"3.0.0\"\nreason = \"rolled back by hand\"\nat = \"2026-11-23T11:51:24Z\"\n",
    )
    .expect("bad list");
    let output = run(&mut fixture.launcher());
    assert_eq!(output.status.code(), Some(127));
    assert!(!fixture.path("ran").exists(), "3.0.0 must not run");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("versions/4.0.0"), "{stderr}");
    assert!(stderr.contains("installed: 2.0.0, 3.0.0"), "{stderr}");
    assert_eq!(fixture.config(), config, "unchanged");
}
