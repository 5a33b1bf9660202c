//! The test harness: temporary folders, the real binaries, child processes with deadlines.
//!
//! Every test drives the real `appstart` and `appupdate` binaries as child processes. They
//! are built once per test run by [`bin`], through the same cargo that runs the tests, so a
//! plain `cargo test` never tests stale binaries.
//!
//! The binaries are built with `--features appupdate/fault-injection`, the crash tests' hook
//! (`updater-core/src/fault.rs`). Features are part of each artifact's hash, so the builds
//! with and without it live side by side in the target folder and neither rebuilds the other;
//! only the copies in `target/<profile>/` switch. To check that a build without the feature
//! carries no hook, the harness first builds the binaries exactly as a plain
//! `cargo build --bins --workspace` does and records which of them name the hook's variable
//! ([`plain_binaries_with_the_fault_hook`]); then it builds the ones the tests run.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long any child process may run before the test fails (generous: CI machines are slow).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The fault-injection hook's variable (`updater-core/src/fault.rs`).
pub const FAULT_HOOK_VARIABLE: &str = "APPSTART_FAULT_KILL_AT";

/// The binaries that embed updater-core or ship to users: none may carry the fault hook
/// unless built with the `fault-injection` feature.
const SHIPPED_BINARIES: &[&str] = &[
    "appupdate",
    "appstart",
    "appstart-gui",
    "sample-app",
    "tuf-client",
];

/// Prefixes of the variables cargo sets for a test process (not its configuration).
const SET_BY_CARGO_FOR_TESTS: &[&str] = &[
    "CARGO_MANIFEST_",
    "CARGO_PKG_",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
];

struct Built {
    /// `target/<profile>`, holding the binaries built with the fault hook.
    dir: PathBuf,
    /// The shipped binaries of a plain build that name the hook's variable; `None` when the
    /// tests run outside cargo (no `CARGO`) and so build nothing.
    plain_with_hook: Option<Vec<String>>,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        // target/<profile>/deps/e2e-<hash> -> target/<profile>
        let exe = std::env::current_exe().expect("the test binary knows its path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in target/<profile>/deps")
            .to_path_buf();
        let Some(cargo) = std::env::var_os("CARGO") else {
            return Built {
                dir,
                plain_with_hook: None,
            };
        };
        let build = |features: &[&str]| {
            let mut command = Command::new(&cargo);
            // `--examples`: updater-core's example apps, which tests/examples.rs runs.
            command.args(["build", "--bins", "--examples", "--workspace", "--quiet"]);
            command.args(features);
            // Cargo sets these for the test process only. Passed on, they change what build
            // scripts see (ring's tracks CARGO_MANIFEST_DIR), so this build and the outer
            // `cargo test` or a plain `cargo build` would each rebuild what the other built.
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy();
                if SET_BY_CARGO_FOR_TESTS.iter().any(|p| key.starts_with(p)) {
                    command.env_remove(&*key);
                }
            }
            if dir.file_name() == Some(OsStr::new("release")) {
                command.arg("--release");
            }
            let status = command.status().expect("running cargo build");
            assert!(status.success(), "cargo build --bins {features:?} failed");
        };
        build(&[]);
        let plain_with_hook = SHIPPED_BINARIES
            .iter()
            .filter(|name| names_the_fault_hook(&dir.join(name)))
            .map(|name| name.to_string())
            .collect();
        build(&["--features", "appupdate/fault-injection"]);
        Built {
            dir,
            plain_with_hook: Some(plain_with_hook),
        }
    })
}

/// Whether the file at `path` contains the hook's variable name (`grep` is fast on the
/// large debug binaries, where a byte loop in this unoptimised test code is not).
pub fn names_the_fault_hook(path: &Path) -> bool {
    assert!(path.exists(), "binary {} is missing", path.display());
    let status = Command::new("grep")
        .args(["-q", "-a", "-F", FAULT_HOOK_VARIABLE])
        .arg(path)
        .status()
        .expect("running grep");
    match status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!("grep failed on {}: {status}", path.display()),
    }
}

/// The path of the example program `name` (`updater-core/examples/<name>.rs`).
pub fn example(name: &str) -> PathBuf {
    let path = bin_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "example {} is missing", path.display());
    path
}

/// The folder holding the workspace's binaries (with the fault hook), built on first use.
pub fn bin_dir() -> &'static Path {
    &built().dir
}

/// Which shipped binaries of a build without the `fault-injection` feature name the hook's
/// variable (it should be none), or `None` when the tests run outside cargo.
pub fn plain_binaries_with_the_fault_hook() -> Option<&'static [String]> {
    built().plain_with_hook.as_deref()
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

/// Writes `content` to `path` (creating folders) with the executable bit set (Unix; Windows
/// has no such bit).
pub fn write_executable(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
    #[cfg(unix)]
    set_mode(path, 0o755);
}

/// Sets the Unix permission bits of `path`.
#[cfg(unix)]
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

/// Runs the real `appupdate` with `args`.
pub fn appupdate(args: &[&str]) -> Output {
    run(Command::new(bin("appupdate")).args(args))
}

/// Runs `appupdate` and panics with its output unless it succeeds; returns stdout.
/// Success is exit 0, or exit 6 exactly when the output says there was nothing to do
/// ([`success_code`]).
pub fn appupdate_ok(args: &[&str]) -> String {
    let output = appupdate(args);
    assert_succeeded(args, &output);
    text(&output.stdout)
}

/// Panics with its output unless `appupdate ARGS` ended with its [`success_code`].
pub fn assert_succeeded(args: &[&str], output: &Output) {
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(success_code(args, &stdout)),
        "appupdate {args:?} failed: {stdout}{}",
        text(&output.stderr)
    );
}

/// The exit code of `appupdate ARGS` that worked and printed `stdout`: 6 (nothing to do)
/// when `update`, `unskip` or `rollback` says it had nothing to do, else 0 (docs/cli.md).
pub fn success_code(args: &[&str], stdout: &str) -> i32 {
    if !matches!(args.first(), Some(&("update" | "unskip" | "rollback"))) {
        return 0;
    }
    let nothing = match serde_json::from_str::<serde_json::Value>(stdout.trim()) {
        Ok(json) => {
            json.get("to").is_some_and(serde_json::Value::is_null)
                || json.get("staged").is_some_and(serde_json::Value::is_null)
                || json.get("was_skipped") == Some(&serde_json::Value::Bool(false))
        }
        Err(_) => {
            stdout.contains(" is up to date")
                || stdout.contains(" was not skipped")
                || stdout.starts_with("nothing to do: ")
        }
    };
    if nothing { 6 } else { 0 }
}

/// Runs `appupdate ... --json` and parses its one JSON object.
pub fn appupdate_json(args: &[&str]) -> serde_json::Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let stdout = appupdate_ok(&all);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

/// A publisher's workspace: keys and a repository made by the real CLI.
pub struct Publisher {
    pub dir: tempfile::TempDir,
}

impl Publisher {
    pub fn new() -> Self {
        let dir = temp_dir();
        let publisher = Publisher { dir };
        appupdate_ok(&[
            "keys",
            "generate",
            "--out",
            publisher.keys().to_str().expect("utf-8"),
        ]);
        appupdate_ok(&[
            "repo",
            "init",
            "--repo",
            publisher.repo().to_str().expect("utf-8"),
            "--keys",
            publisher.keys().to_str().expect("utf-8"),
        ]);
        publisher
    }

    pub fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn root_json(&self) -> PathBuf {
        self.repo().join("metadata/1.root.json")
    }

    /// Writes `files` (path, content, executable) into a fresh source folder and publishes
    /// it with `extra` flags (e.g. `--channel beta`). The executable is `bin/app`.
    pub fn publish(
        &self,
        app: &str,
        version: &str,
        files: &[(&str, &[u8], bool)],
        extra: &[&str],
    ) -> serde_json::Value {
        self.publish_with_keys(&self.keys(), app, version, files, extra)
    }

    /// [`Publisher::publish`] signing with the keys in `keys` (e.g. a delegated role's
    /// folder, with `--role ROLE` in `extra`).
    pub fn publish_with_keys(
        &self,
        keys: &Path,
        app: &str,
        version: &str,
        files: &[(&str, &[u8], bool)],
        extra: &[&str],
    ) -> serde_json::Value {
        let source = self.dir.path().join(format!(
            "src-{app}-{version}-{}",
            extra.join("_").replace(['-', ' '], "")
        ));
        let _ = std::fs::remove_dir_all(&source);
        for (path, content, executable) in files {
            let full = source.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, content).expect("write");
            #[cfg(unix)]
            set_mode(&full, if *executable { 0o755 } else { 0o644 });
            #[cfg(windows)]
            let _ = executable; // No execute bit: --exe names the executable.
        }
        let args = self.publish_args(keys, app, version, &source, extra);
        appupdate_json(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs `appupdate publish` of the folder `source` as APP VERSION with `extra` flags and
    /// returns its output, success or not (for refusals and for what it prints on the way).
    pub fn publish_folder(
        &self,
        app: &str,
        version: &str,
        source: &Path,
        extra: &[&str],
    ) -> Output {
        self.publish_folder_with_keys(&self.keys(), app, version, source, extra)
    }

    /// [`Publisher::publish_folder`] signing with the keys in `keys`.
    pub fn publish_folder_with_keys(
        &self,
        keys: &Path,
        app: &str,
        version: &str,
        source: &Path,
        extra: &[&str],
    ) -> Output {
        let args = self.publish_args(keys, app, version, source, extra);
        appupdate(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The arguments of `appupdate publish`: this repository, the keys in `keys`, the
    /// executable `bin/app`, platform `any` unless `extra` names one, then `source`.
    fn publish_args(
        &self,
        keys: &Path,
        app: &str,
        version: &str,
        source: &Path,
        extra: &[&str],
    ) -> Vec<String> {
        let repo = self.repo();
        let mut args: Vec<String> = [
            "publish",
            "--repo",
            repo.to_str().expect("utf-8"),
            "--keys",
            keys.to_str().expect("utf-8"),
            "--app",
            app,
            "--version",
            version,
            "--exe",
            "bin/app",
        ]
        .iter()
        .chain(extra)
        .map(ToString::to_string)
        .collect();
        if !extra.contains(&"--platform") {
            args.extend(["--platform".to_string(), "any".to_string()]);
        }
        args.push(source.to_str().expect("utf-8").to_string());
        args
    }

    /// The manifest of a published release, read from the repository's files.
    pub fn manifest(&self, target: &str) -> serde_json::Value {
        let (dir, _) = target.rsplit_once('/').expect("target has folders");
        let folder = self.repo().join("targets").join(dir);
        let entry = std::fs::read_dir(&folder)
            .expect("release folder")
            .map(|e| e.expect("entry").path())
            .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
            .expect("manifest file");
        serde_json::from_slice(&std::fs::read(entry).expect("read")).expect("json")
    }
}

/// A real `appupdate serve` process on 127.0.0.1, with its access log collected.
pub struct Server {
    child: Child,
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(repo: &Path) -> Self {
        Self::start_with(repo, &[])
    }

    /// `appupdate serve` with `extra` flags (e.g. `--receipts-db FILE`).
    pub fn start_with(repo: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(bin("appupdate"))
            .args([
                "serve",
                "--repo",
                repo.to_str().expect("utf-8"),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start appupdate serve");
        let stdout = child.stdout.take().expect("piped");
        let mut reader = std::io::BufReader::new(stdout);
        let mut first = String::new();
        std::io::BufRead::read_line(&mut reader, &mut first).expect("serve prints its URL");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .trim_end_matches('/')
            .to_string();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(reader).map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        Server { child, url, log }
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Access-log lines so far (`METHOD PATH STATUS BYTES`).
    pub fn requests(&self) -> Vec<String> {
        // The log is written right after each response; give a just-finished one a moment.
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().expect("log lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file below `dir` with its mode and content hash, for "unchanged" assertions.
#[cfg(unix)]
pub fn tree_snapshot(dir: &Path) -> std::collections::BTreeMap<String, (u32, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("list") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            let relative = path
                .strip_prefix(dir)
                .expect("below")
                .to_string_lossy()
                .into_owned();
            if meta.is_dir() {
                out.insert(
                    format!("{relative}/"),
                    (meta.permissions().mode(), String::new()),
                );
                stack.push(path);
            } else {
                let content = std::fs::read(&path).expect("read");
                out.insert(
                    relative,
                    (
                        meta.permissions().mode(),
                        format!("{:x}", content.len()) + &simple_hash(&content),
                    ),
                );
            }
        }
    }
    out
}

fn simple_hash(bytes: &[u8]) -> String {
    // FNV-1a: enough to tell contents apart in assertions.
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("-{hash:016x}")
}

/// Headless Chromium, or `None` (with the reason printed) outside CI. In CI (`CI` set) a
/// missing browser fails the test: `.ci/run` installs Debian's `chromium`.
pub fn chromium() -> Option<&'static str> {
    let ok = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("chromium");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium is not installed; .ci/run installs it with apt-get install chromium"
    );
    eprintln!(
        "SKIPPED: chromium is not installed (apt-get install chromium) - fleet page not checked in a browser"
    );
    None
}

/// The DOM of `url` as headless Chromium renders it (`--dump-dom`).
pub fn chromium_dom(browser: &str, url: &str) -> String {
    let output = run(Command::new(browser)
        .args(CHROMIUM_HEADLESS)
        .arg("--dump-dom")
        .arg(url));
    assert!(
        output.status.success(),
        "chromium: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A 1200×900 screenshot of `url` at `path` (printed, for CI artifacts).
pub fn chromium_screenshot(browser: &str, url: &str, path: &Path) {
    let output = run(Command::new(browser)
        .args(CHROMIUM_HEADLESS)
        .arg(format!("--screenshot={}", path.display()))
        .arg("--window-size=1200,900")
        .arg(url));
    assert!(
        output.status.success(),
        "chromium: {}",
        text(&output.stderr)
    );
    assert!(
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) > 1000,
        "empty screenshot {}",
        path.display()
    );
    eprintln!("fleet page screenshot: {}", path.display());
}

const CHROMIUM_HEADLESS: [&str; 4] = [
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--disable-dev-shm-usage",
];

/// `python3` with python-tuf importable, or `None` (with the reason printed) outside CI.
/// In CI (`CI` set) a missing python-tuf fails the test: `.ci/run` installs it.
pub fn python_with_tuf() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import tuf.ngclient, securesystemslib.signer"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some("python3");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python-tuf is not installed; .ci/run installs it with pip install tuf"
    );
    eprintln!("SKIPPED: python-tuf is not installed (pip install tuf) - interop not checked");
    None
}

/// Runs `mount ARGS AT` (a tmpfs, a bind mount). Returns a guard that unmounts every mount
/// below `root` (wherever a rename moved it) when dropped, or `None` (with the reason
/// printed) when this machine cannot mount: not root. In CI (`CI` set), which runs as root,
/// not being able to mount fails the test instead: `what` says what would go unchecked.
#[cfg(unix)]
pub fn mount_or_skip(args: &[&str], at: &Path, root: &Path, what: &str) -> Option<MountsUnder> {
    let mounted = Command::new("mount").args(args).arg(at).output();
    if mounted.as_ref().is_ok_and(|o| o.status.success()) {
        return Some(MountsUnder(root.to_path_buf()));
    }
    let reason = mounted
        .map(|o| text(&o.stderr))
        .unwrap_or_else(|e| e.to_string());
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot mount at {} ({}); CI must run as root to check {what}",
        at.display(),
        reason.trim()
    );
    eprintln!(
        "SKIPPED: cannot mount here ({}; run as root) - {what} not checked",
        reason.trim()
    );
    None
}

/// Unmounts every mount point below its folder when dropped, deepest first.
#[cfg(unix)]
pub struct MountsUnder(PathBuf);

#[cfg(unix)]
impl MountsUnder {
    /// The mount points below `root` now, deepest first (from `/proc/self/mountinfo`; test
    /// paths have no characters the kernel escapes but a space, `\040`).
    pub fn points_under(root: &Path) -> Vec<PathBuf> {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = table
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .map(|point| PathBuf::from(point.replace("\\040", " ")))
            .filter(|point| point.starts_with(&root))
            .collect();
        points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
        points
    }
}

#[cfg(unix)]
impl Drop for MountsUnder {
    fn drop(&mut self) {
        for point in Self::points_under(&self.0) {
            let _ = Command::new("umount").arg(&point).status();
        }
    }
}

/// The path of a file in `tests/` (e.g. `interop/make_repo.py`).
pub fn test_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Installs `app` from the repository at `url`, trusting `publisher`'s root, into `dir` with
/// the real `appupdate install --json`; returns its report.
pub fn install(publisher: &Publisher, url: &str, app: &str, dir: &Path) -> serde_json::Value {
    let args = install_args(publisher, url, app, dir);
    appupdate_json(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The arguments of `appupdate install` of `app` from `url` into `dir`, trusting
/// `publisher`'s root; callers add their flags.
pub fn install_args(publisher: &Publisher, url: &str, app: &str, dir: &Path) -> Vec<String> {
    let root = publisher.root_json();
    [
        "install",
        "--url",
        url,
        "--trusted-root",
        root.to_str().expect("utf-8"),
        "--app",
        app,
        "--dir",
        dir.to_str().expect("utf-8"),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Deterministic content that compresses poorly (xorshift), so sizes are meaningful.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// 40 files of 20 KB of noise (`d/NN.bin`), those in `changed` made from `seed`: in a pack
/// their blobs lie far apart, so an update of every eighth one needs a range per file.
pub fn scattered_files(seed: u64, changed: &[usize]) -> Vec<(String, Vec<u8>)> {
    (0..40)
        .map(|i| {
            let seed = if changed.contains(&i) { seed } else { 0 };
            (
                format!("d/{i:02}.bin"),
                noise(seed * 1000 + i as u64, 20_000),
            )
        })
        .collect()
}

impl Publisher {
    /// Publishes `contents` beside the executable `bin/app` (`script`), with no deltas.
    pub fn publish_beside(
        &self,
        app: &str,
        version: &str,
        script: &[u8],
        contents: &[(String, Vec<u8>)],
    ) {
        let mut files: Vec<(&str, &[u8], bool)> = vec![("bin/app", script, true)];
        files.extend(
            contents
                .iter()
                .map(|(p, c)| (p.as_str(), c.as_slice(), false)),
        );
        self.publish(app, version, &files, &["--delta-depth", "0"]);
    }
}

/// The Windows target the Wine tests cross-build for.
pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

/// Windows binaries of the workspace run under Wine on this Linux host (`tests/windows.rs`).
#[derive(Debug)]
pub struct Wine {
    /// `wine` (Debian's wrapper picks `wine64` when there is no 32-bit Wine); `None` on
    /// Windows, where the binaries run natively.
    program: Option<PathBuf>,
    /// The Wine prefix (`WINEPREFIX`): made once and kept in the target folder.
    prefix: Option<PathBuf>,
    /// `target/x86_64-pc-windows-gnu/<profile>`, holding the `.exe` files (natively: the
    /// binaries the other tests run).
    pub bin_dir: PathBuf,
}

impl Wine {
    /// The path of the workspace's Windows binary `name` (`appstart` -> `appstart.exe`).
    pub fn exe(&self, name: &str) -> PathBuf {
        let path = self.bin_dir.join(format!("{name}.exe"));
        assert!(path.exists(), "binary {} is missing", path.display());
        path
    }

    /// The Windows user's profile folder (`%USERPROFILE%`); under Wine `drive_c/users/<user>`
    /// in the prefix: Wine sets `USERPROFILE` and `APPDATA` itself, so tests look for
    /// shortcuts here rather than redirecting those variables.
    pub fn user_profile(&self) -> PathBuf {
        match &self.prefix {
            Some(prefix) => wine_user_profile(prefix).expect("the Wine prefix has a user profile"),
            None => PathBuf::from(std::env::var_os("USERPROFILE").expect("USERPROFILE is set")),
        }
    }

    /// A command running the Windows program `exe` under Wine (natively: `exe` itself). Unix
    /// paths given to it as arguments work as they are: Wine maps drive `Z:` to `/`, and a
    /// path starting with `\` or `/` is on the current drive, which is `Z:` for a Unix
    /// working folder.
    pub fn command(&self, exe: &Path) -> Command {
        match (&self.program, &self.prefix) {
            (Some(program), Some(prefix)) => {
                let mut command = Command::new(program);
                command
                    .arg(exe)
                    .env("WINEPREFIX", prefix)
                    .env("WINEDEBUG", "-all");
                command
            }
            _ => Command::new(exe),
        }
    }

    /// The same Wine and binaries with a prefix of their own, `target/wine-prefix-NAME`, made
    /// once: for a test that changes the prefix's registry (the system proxy setting), which
    /// must not reach the tests sharing the main prefix. Natively: `self` as it is.
    pub fn with_own_prefix(&self, name: &str) -> Wine {
        let Some(prefix) = &self.prefix else {
            return Wine {
                program: None,
                prefix: None,
                bin_dir: self.bin_dir.clone(),
            };
        };
        let target = prefix.parent().expect("the prefix is in the target folder");
        let own = target.join(format!("wine-prefix-{name}"));
        if let Err(reason) =
            prepare_wine_prefix(target, &own).and_then(|()| keep_wine_off_the_real_desktop(&own))
        {
            panic!("making the Wine prefix {}: {reason}", own.display());
        }
        Wine {
            program: self.program.clone(),
            prefix: Some(own),
            bin_dir: self.bin_dir.clone(),
        }
    }

    /// Like [`Wine::command`] with `args`, but on a console of its own, as when started from
    /// a terminal or a shortcut. Wine gives a console program one only when it runs on a
    /// terminal, so `script` (util-linux) runs it on a pseudo-terminal; its output comes back
    /// through the terminal (with its escape sequences) on stdout, and `script --return`
    /// returns the exit code. Natively, `CREATE_NEW_CONSOLE` (a Ctrl-C sent to that console
    /// must not reach the test runner's).
    pub fn console_command(&self, exe: &Path, args: &[&str]) -> Command {
        let (Some(program), Some(prefix)) = (&self.program, &self.prefix) else {
            let mut command = Command::new(exe);
            command.args(args);
            #[cfg(windows)]
            {
                use std::os::windows::process::CommandExt;
                const CREATE_NEW_CONSOLE: u32 = 0x10;
                command.creation_flags(CREATE_NEW_CONSOLE);
            }
            return command;
        };
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line = quote(program.to_str().expect("utf-8"));
        for arg in std::iter::once(exe.to_str().expect("utf-8")).chain(args.iter().copied()) {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let mut command = Command::new("script");
        command
            .args(["--quiet", "--return", "--command", &line, "/dev/null"])
            .env("WINEPREFIX", prefix)
            .env("WINEDEBUG", "-all");
        command
    }
}

/// Wine, the Windows binaries and a Wine prefix with the ProcessPrng shim, made on first use;
/// `None` (with the reason printed) when this machine cannot run them, outside CI. In CI (`CI`
/// set) that fails the test: `.ci/run` installs Wine, mingw and the Rust target.
pub fn wine() -> Option<&'static Wine> {
    static WINE: OnceLock<Result<Wine, String>> = OnceLock::new();
    match WINE.get_or_init(prepare_wine) {
        Ok(wine) => Some(wine),
        Err(reason) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "the Windows tests cannot run under Wine: {reason}"
            );
            eprintln!("SKIPPED: {reason} - the Windows tests did not run");
            None
        }
    }
}

/// On Windows the Windows tests run natively: the binaries are the ones every test runs.
#[cfg(windows)]
fn prepare_wine() -> Result<Wine, String> {
    Ok(Wine {
        program: None,
        prefix: None,
        bin_dir: bin_dir().to_path_buf(),
    })
}

#[cfg(not(windows))]
fn prepare_wine() -> Result<Wine, String> {
    let found = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !found("wine", "--version") {
        return Err("wine is not installed (apt-get install wine64)".into());
    }
    if !found("x86_64-w64-mingw32-gcc", "--version") {
        return Err("mingw is not installed (apt-get install gcc-mingw-w64-x86-64)".into());
    }
    // target/<profile> -> target
    let profile_dir = bin_dir();
    let target = profile_dir.parent().expect("target/<profile> has a parent");
    let profile = profile_dir
        .file_name()
        .expect("target/<profile> has a name");
    build_for_windows()?;
    let prefix = target.join("wine-prefix");
    prepare_wine_prefix(target, &prefix)?;
    keep_wine_off_the_real_desktop(&prefix)?;
    Ok(Wine {
        program: Some(PathBuf::from("wine")),
        prefix: Some(prefix),
        bin_dir: target.join(WINDOWS_TARGET).join(profile),
    })
}

/// The packages whose Windows binaries the tests run.
const WINDOWS_TESTED_PACKAGES: &[&str] = &["appupdate", "appstart-launcher", "sample-app"];

/// `cargo build --target x86_64-pc-windows-gnu --bins` of the packages the tests run, into the
/// same target folder (`target/x86_64-pc-windows-gnu/<profile>/`).
fn build_for_windows() -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Err("the tests run outside cargo, which builds the Windows binaries".into());
    };
    let mut command = Command::new(cargo);
    command.args(["build", "--target", WINDOWS_TARGET, "--bins", "--quiet"]);
    for package in WINDOWS_TESTED_PACKAGES {
        command.args(["--package", package]);
    }
    // As in `built`: cargo's variables for the test process would change what build scripts
    // see, and so rebuild what a plain cross-build built.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if SET_BY_CARGO_FOR_TESTS.iter().any(|p| key.starts_with(p)) {
            command.env_remove(&*key);
        }
    }
    if bin_dir().file_name() == Some(OsStr::new("release")) {
        command.arg("--release");
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running cargo build --target {WINDOWS_TARGET}: {e}"))?;
    if !output.status.success() {
        let stderr = text(&output.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("error"))
            .take(5)
            .collect();
        return Err(format!(
            "{} do not build for {WINDOWS_TARGET} (rustup target add {WINDOWS_TARGET}?): {}",
            WINDOWS_TESTED_PACKAGES.join(", "),
            errors.join(" | ")
        ));
    }
    Ok(())
}

/// `drive_c/users/<user>` of `prefix` (the one folder there besides `Public`).
fn wine_user_profile(prefix: &Path) -> Result<PathBuf, String> {
    let users = prefix.join("drive_c/users");
    std::fs::read_dir(&users)
        .map_err(|e| format!("{}: {e}", users.display()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.file_name().is_some_and(|name| name != "Public") && path.is_dir())
        .ok_or_else(|| format!("no user profile in {}", users.display()))
}

/// Wine links the user's `Desktop` in the prefix to `$HOME` (or `~/Desktop`): a test that
/// makes a desktop shortcut would write to this machine's real desktop. Replace the link with
/// a folder of the prefix, once.
fn keep_wine_off_the_real_desktop(prefix: &Path) -> Result<(), String> {
    let desktop = wine_user_profile(prefix)?.join("Desktop");
    if desktop.is_symlink() {
        std::fs::remove_file(&desktop).map_err(|e| format!("{}: {e}", desktop.display()))?;
    }
    std::fs::create_dir_all(&desktop).map_err(|e| format!("{}: {e}", desktop.display()))
}

/// Makes the Wine prefix once (about 10 s) and puts the ProcessPrng shim into its
/// `system32`: Rust programs need it under Wine 8 (see `tests/windows/bcryptprimitives.c`).
/// The shim is copied last, so a prefix holding it is complete.
fn prepare_wine_prefix(target: &Path, prefix: &Path) -> Result<(), String> {
    let shim_in_prefix = prefix.join("drive_c/windows/system32/bcryptprimitives.dll");
    if shim_in_prefix.exists() {
        return Ok(());
    }
    let shim = target.join("wine-shim/bcryptprimitives.dll");
    std::fs::create_dir_all(shim.parent().expect("has a parent")).expect("mkdir");
    let compiled = run(Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(&shim)
        .arg(test_file("windows/bcryptprimitives.c"))
        .arg(test_file("windows/bcryptprimitives.def"))
        .arg("-ladvapi32"));
    if !compiled.status.success() {
        return Err(format!(
            "mingw could not build the ProcessPrng shim: {}",
            text(&compiled.stderr)
        ));
    }
    let booted = run(Command::new("wine")
        .args(["wineboot", "--init"])
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        // No Mono or Gecko: nothing here needs .NET or a browser engine.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml="));
    if !booted.status.success() || !prefix.join("drive_c/windows/system32").is_dir() {
        return Err(format!(
            "wineboot could not make the prefix {}: {}",
            prefix.display(),
            text(&booted.stderr)
        ));
    }
    std::fs::copy(&shim, &shim_in_prefix).expect("copying the shim into the Wine prefix");
    Ok(())
}
