//! The test harness: temporary folders, the real binaries, child processes with deadlines.
//!
//! Every test drives the real `appstart` and `appupdate` binaries as child processes. They
//! are built once per test run by [`bin`], through the same cargo that runs the tests, so a
//! plain `cargo test` never tests stale binaries.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long any child process may run before the test fails (generous: CI machines are slow).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The folder holding the workspace's binaries, built on first use.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/e2e-<hash> -> target/<profile>
        let exe = std::env::current_exe().expect("the test binary knows its path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in target/<profile>/deps")
            .to_path_buf();
        if let Some(cargo) = std::env::var_os("CARGO") {
            let mut command = Command::new(cargo);
            command.args(["build", "--bins", "--workspace", "--quiet"]);
            if dir.file_name() == Some(OsStr::new("release")) {
                command.arg("--release");
            }
            let status = command.status().expect("running cargo build");
            assert!(status.success(), "cargo build --bins failed");
        }
        dir
    })
}

/// The path of the workspace binary `name`.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "binary {} is missing", path.display());
    path
}

/// A fresh temporary folder, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("appstart-test-")
        .tempdir()
        .expect("creating a temporary folder")
}

/// Waits for `child` at most `deadline`; kills it and panics past that.
pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process {} ran longer than {deadline:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `command` to completion (within [`DEADLINE`]) and captures its output.
pub fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let status = wait_with_deadline(&mut child, DEADLINE);
    Output {
        status,
        stdout: out_thread.join().expect("stdout reader"),
        stderr: err_thread.join().expect("stderr reader"),
    }
}

/// Text of a captured stream, for assertions and failure messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `content` to `path` (creating folders) with the executable bit set.
pub fn write_executable(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
    set_mode(path, 0o755);
}

/// Sets the Unix permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Polls until `path` exists, panicking after [`DEADLINE`].
pub fn wait_for_file(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < DEADLINE,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
