//! Never broken: kill `appupdate update` at every step boundary and at many random instants,
//! and check each time that the install still launches a complete version and that the next
//! update finishes the job and leaves nothing behind. Also: the single-writer lock.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    DEADLINE, FAULT_HOOK_VARIABLE, Publisher, Server, appupdate, appupdate_ok, bin,
    names_the_fault_hook, noise, plain_binaries_with_the_fault_hook, run, temp_dir, text,
    wait_with_deadline,
};

type Release = BTreeMap<String, (Vec<u8>, bool)>;

/// Version 1 and 2 of an app with enough files for an update to take a while; 2.0.0 changes,
/// removes and adds files, and ships a launcher (so every step exists).
fn releases() -> (Release, Release) {
    let mut v1 = Release::new();
    // With HOLD set, the app keeps running while that file exists.
    let app = b"#!/bin/sh\nif [ -n \"$HOLD\" ]; then while [ -e \"$HOLD\" ]; do sleep 0.02; done; fi\necho \"app $APPSTART_VERSION\"\n";
    v1.insert("bin/app".into(), (app.to_vec(), true));
    for i in 0..24 {
        v1.insert(format!("data/file{i:02}.bin"), (noise(i, 24_000), false));
    }
    let mut v2 = v1.clone();
    for i in (0..24).step_by(2) {
        v2.insert(
            format!("data/file{i:02}.bin"),
            (noise(100 + i, 24_000), false),
        );
    }
    v2.remove("data/file23.bin");
    v2.insert("new/extra.bin".into(), (noise(999, 30_000), false));
    let mut launcher = std::fs::read(bin("appstart")).unwrap();
    launcher.extend_from_slice(b"\nshipped with 2.0.0\n");
    v2.insert("bin/appstart".into(), (launcher, true));
    (v1, v2)
}

fn publish(publisher: &Publisher, version: &str, files: &Release, extra: &[&str]) {
    let borrowed: Vec<(&str, &[u8], bool)> = files
        .iter()
        .map(|(p, (c, e))| (p.as_str(), c.as_slice(), *e))
        .collect();
    publisher.publish("crash", version, &borrowed, extra);
}

/// An installed 1.0.0 (kept pristine) with 2.0.0 published, and a way to get fresh copies.
struct Bench {
    publisher: Publisher,
    server: Server,
    home: tempfile::TempDir,
    v1: Release,
    v2: Release,
}

impl Bench {
    fn new() -> Self {
        let (v1, v2) = releases();
        let publisher = Publisher::new();
        publish(&publisher, "1.0.0", &v1, &[]);
        let server = Server::start(&publisher.repo());
        let home = temp_dir();
        let pristine = home.path().join("pristine");
        crate::harness::install(&publisher, &server.url, "crash", &pristine);
        publish(&publisher, "2.0.0", &v2, &["--launcher", "bin/appstart"]);
        Bench {
            publisher,
            server,
            home,
            v1,
            v2,
        }
    }

    /// A fresh copy of the pristine 1.0.0 install.
    fn fresh(&self, name: &str) -> PathBuf {
        let dir = self.home.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.home.path().join("pristine"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
        dir
    }

    /// [`Bench::fresh`] as a prune would have left it a while after installing: its record
    /// describes this copy's files (so they are linked, not copied, as on a real install),
    /// and 1.0.0's folder set aside as `versions/.spare` (hard links, as a prune leaves
    /// it), with one file replaced by a copy of its bytes and a stray file.
    fn fresh_with_spare(&self, name: &str) -> PathBuf {
        use std::os::unix::fs::MetadataExt;
        let dir = self.fresh(name);
        let v1 = dir.join("versions/1.0.0");
        let record_path = dir.join("state/manifests/1.0.0.json");
        let mut record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
        // `file_stats`: `[ino, volume, size, mtime_ns]` per file, in the manifest's order.
        let paths: Vec<String> = record["manifest"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file["path"].as_str().unwrap().to_string())
            .collect();
        let rows = record["file_stats"].as_array_mut().unwrap();
        assert_eq!(rows.len(), paths.len());
        for (path, row) in paths.iter().zip(rows) {
            let meta = std::fs::symlink_metadata(v1.join(path)).unwrap();
            row[0] = meta.ino().into();
            row[2] = meta.size().into();
            row[3] = (meta.mtime() * 1_000_000_000 + meta.mtime_nsec()).into();
        }
        std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
        let spare = dir.join("versions/.spare");
        let status = Command::new("cp")
            .arg("-al")
            .arg(&v1)
            .arg(&spare)
            .status()
            .unwrap();
        assert!(status.success());
        let copied = spare.join("data/file01.bin");
        let bytes = std::fs::read(&copied).unwrap();
        std::fs::remove_file(&copied).unwrap();
        std::fs::write(&copied, bytes).unwrap();
        std::fs::write(spare.join("data/stray.bin"), b"stray").unwrap();
        dir
    }

    /// The install launches a complete version, old or new, and `appstart.toml` parses.
    fn assert_launchable(&self, dir: &Path, context: &str) -> String {
        let config = appstart_layout::LauncherConfig::load(&dir.join("appstart.toml"))
            .unwrap_or_else(|e| panic!("{context}: appstart.toml does not parse: {e}"));
        let current = config.current.to_string();
        let expected = match current.as_str() {
            "1.0.0" => &self.v1,
            "2.0.0" => &self.v2,
            other => panic!("{context}: unexpected current version {other}"),
        };
        assert_tree(&dir.join("versions").join(&current), expected, context);
        let output = run(&mut Command::new(dir.join("appstart")));
        assert!(
            output.status.success(),
            "{context}: appstart failed: {}",
            text(&output.stderr)
        );
        assert_eq!(
            text(&output.stdout),
            format!("app {current}\n"),
            "{context}"
        );
        current
    }

    /// After a clean update: 2.0.0 is current and complete, nothing is left behind.
    fn assert_finished(&self, dir: &Path, context: &str) {
        let args = ["update", "--dir", dir.to_str().unwrap()];
        let output = appupdate(&args);
        // 0 when it finishes a crashed update's work, 6 when that was already done.
        crate::harness::assert_succeeded(&args, &output);
        assert_eq!(
            self.assert_launchable(dir, context),
            "2.0.0",
            "{context}: the update did not finish"
        );
        assert_eq!(
            std::fs::read(dir.join("appstart")).unwrap(),
            self.v2["bin/appstart"].0,
            "{context}: the launcher shipped with 2.0.0 is in place"
        );
        assert_eq!(leftovers(dir), Vec::<String>::new(), "{context}: leftovers");
        assert!(
            !dir.join("versions/.spare").exists(),
            "{context}: the spare was started from"
        );
    }
}

/// The folder holds exactly `expected` (content and executable bit).
fn assert_tree(dir: &Path, expected: &Release, context: &str) {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{context}: {}: {e}", folder.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let exec = std::fs::metadata(&path).unwrap().permissions().mode() & 0o111 != 0;
                found.insert(relative, (std::fs::read(&path).unwrap(), exec));
            }
        }
    }
    assert!(
        found == *expected,
        "{context}: {} does not match its release ({} files, expected {})",
        dir.display(),
        found.len(),
        expected.len()
    );
}

/// Staging folders, partial downloads, caches and temporary files anywhere in the install.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(".staging-")
                || name.starts_with(".appstart-tmp-")
                || name.ends_with(".partial")
                || name == "cache"
            {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            } else if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

const STEPS: &[&str] = &[
    "refreshed",
    "manifest",
    "recycled",
    "stage-file-1",
    "stage-file-7",
    "stage-file-20",
    "stage-file-26",
    "verified",
    "staged",
    "recorded",
    "renamed",
    "launcher",
    "probation",
    "switched",
    "pruned",
];

#[test]
fn a_kill_at_every_step_leaves_a_launchable_install_that_the_next_update_finishes() {
    let bench = Bench::new();
    assert_eq!(bench.v2.len(), 26, "stage-file-26 is the last file");
    // An unkilled update from the spare keeps its proven files: bin/app and the 11 data
    // files 2.0.0 does not change, but the one replaced by a copy (Linux; elsewhere the
    // spare is removed, `stage::spare::RECYCLES`).
    let dir = bench.fresh_with_spare("spare-unkilled");
    let report = crate::harness::appupdate_json(&["update", "--dir", dir.to_str().unwrap()]);
    let kept = if cfg!(target_os = "linux") { 11 } else { 0 };
    assert_eq!(report["plan"]["kept_files"], kept, "{report}");
    bench.assert_launchable(&dir, "spare, unkilled");
    // Every step twice: from a copy whose record does not match its files (each file is
    // copied and verified) and from an install with a spare.
    for (step, spare) in STEPS.iter().flat_map(|s| [(s, false), (s, true)]) {
        let dir = if spare {
            bench.fresh_with_spare(&format!("step-{step}-spare"))
        } else {
            bench.fresh(&format!("step-{step}"))
        };
        let output = run(Command::new(bin("appupdate"))
            .args(["update", "--dir", dir.to_str().unwrap()])
            .env(FAULT_HOOK_VARIABLE, step));
        assert_eq!(
            output.status.signal(),
            Some(9),
            "step {step} was not reached: {}",
            text(&output.stderr)
        );
        let current = bench.assert_launchable(&dir, &format!("killed at {step}"));
        let expected = if ["switched", "pruned"].contains(step) {
            "2.0.0"
        } else {
            "1.0.0"
        };
        assert_eq!(current, expected, "killed at {step} (spare: {spare})");
        bench.assert_finished(&dir, &format!("after the kill at {step} (spare: {spare})"));
    }
}

/// Kills an update at random instants until `APPSTART_CRASH_KILLS` (default 120) kills have
/// landed mid-update, checking the install after each. Timing only spreads the kills: it never
/// decides pass or fail (this runs on noisy shared machines). The kill instants are drawn over
/// 110% of an estimate of a whole update's duration, and every update that finishes before its
/// kill corrects the estimate, so a machine faster or slower than the first measurement still
/// lands its kills all over the update. Rounds are capped far away (10 per wanted kill) only so
/// that a machine where kills never land cannot loop forever; reaching the cap is reported,
/// not failed.
#[test]
fn kills_at_random_instants_never_break_the_install() {
    let bench = Bench::new();
    // How long a whole update takes here, to spread the kills over it.
    let dir = bench.fresh("timing");
    let start = Instant::now();
    appupdate_ok(&["update", "--dir", dir.to_str().unwrap()]);
    let mut estimate = start.elapsed();
    let first_estimate = estimate;
    let seed: u64 = std::env::var("APPSTART_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let wanted: u32 = std::env::var("APPSTART_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let max_rounds = wanted.saturating_mul(10).max(1);
    println!(
        "crash test seed: {seed} (rerun with APPSTART_CRASH_SEED={seed}); \
         full update: {estimate:?}; {wanted} kills wanted"
    );
    let mut state = seed | 1;
    let (mut landed, mut rounds) = (0, 0);
    while landed < wanted && rounds < max_rounds {
        rounds += 1;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = estimate.mul_f64((state % 1000) as f64 / 1000.0 * 1.1);
        // Every other round starts from an install with a spare.
        let dir = if rounds % 2 == 0 {
            bench.fresh_with_spare("random")
        } else {
            bench.fresh("random")
        };
        let start = Instant::now();
        let mut child = Command::new(bin("appupdate"))
            .args(["update", "--dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Sleep in short steps to see when an update finishes before its kill.
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some((start.elapsed(), status));
            }
            let elapsed = start.elapsed();
            if elapsed >= delay {
                break None;
            }
            std::thread::sleep((delay - elapsed).min(Duration::from_millis(2)));
        };
        let context = format!("seed {seed}, round {rounds}, kill after {delay:?}");
        match finished {
            None => {
                child.kill().unwrap();
                wait_with_deadline(&mut child, DEADLINE);
                landed += 1;
            }
            Some((took, status)) => {
                assert!(status.success(), "{context}: the update failed unkilled");
                // A whole update, timed for free: move the estimate halfway towards it.
                estimate = (estimate + took) / 2;
            }
        }
        bench.assert_launchable(&dir, &context);
        bench.assert_finished(&dir, &context);
    }
    println!(
        "random kills: {landed} of {rounds} rounds landed mid-update ({wanted} wanted); \
         0 broken installs; update estimate {first_estimate:?} -> {estimate:?}"
    );
    if landed < wanted {
        eprintln!(
            "WARNING: only {landed} of {wanted} kills landed in {rounds} rounds (seed {seed}); \
             the updates were faster than their estimate every time"
        );
    }
    drop(bench.server);
    drop(bench.publisher);
}

/// Regression: the fault hook used to be in every build, release included, so anyone who
/// could set an updater's environment could stop its updates for good. A build without the
/// `fault-injection` feature must not even contain the hook's variable name.
#[test]
fn a_build_without_the_fault_injection_feature_has_no_fault_hook() {
    // The check itself works: the binaries the tests run (built with the feature) have it.
    assert!(
        names_the_fault_hook(&bin("appupdate")),
        "the test build of appupdate has no {FAULT_HOOK_VARIABLE} hook"
    );
    let Some(with_hook) = plain_binaries_with_the_fault_hook() else {
        eprintln!("SKIPPED: the tests run outside cargo, so no plain build was made to check");
        return;
    };
    assert!(
        with_hook.is_empty(),
        "built without the fault-injection feature, {with_hook:?} still name {FAULT_HOOK_VARIABLE}"
    );
}

#[test]
fn a_second_updater_waits_for_the_lock_or_names_its_holder() {
    let bench = Bench::new();
    let dir = bench.fresh("lock");
    // Hold the lock as another updater would.
    let lock_path = dir.join("state/lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    file.lock().unwrap();
    // This test process is the live holder its note names.
    let note = format!("pid {} (update) since now", std::process::id());
    std::fs::write(&lock_path, &note).unwrap();
    for command in [
        &[
            "update",
            "--dir",
            dir.to_str().unwrap(),
            "--lock-timeout",
            "1",
        ][..],
        &[
            "rollback",
            "--dir",
            dir.to_str().unwrap(),
            "--to",
            "1.0.0",
            "--lock-timeout",
            "1",
        ][..],
    ] {
        let output = appupdate(command);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(5), "locked: {stderr}");
        assert!(
            stderr.contains(&format!("state/lock is held by another updater ({note})")),
            "{stderr}"
        );
    }
    drop(file);

    // Two updates started at once: one waits for the other; both end well.
    let spawn = || {
        Command::new(bin("appupdate"))
            .args(["update", "--dir", dir.to_str().unwrap(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    // One switches (exit 0), the other then finds nothing to do (exit 6).
    for output in [&a, &b] {
        crate::harness::assert_succeeded(&["update", "--json"], output);
    }
    let reports: Vec<serde_json::Value> = [a, b]
        .iter()
        .map(|o| serde_json::from_slice(&o.stdout).unwrap())
        .collect();
    let switched = reports.iter().filter(|r| r["to"] == "2.0.0").count();
    let idle = reports
        .iter()
        .filter(|r| r["to"].is_null() && r["from"] == "2.0.0")
        .count();
    assert_eq!((switched, idle), (1, 1), "{reports:?}");
    bench.assert_finished(&dir, "after two concurrent updates");

    // A lock left by a killed updater does not block the next one.
    let dir = bench.fresh("killed-holder");
    let output = run(Command::new(bin("appupdate"))
        .args(["update", "--dir", dir.to_str().unwrap()])
        .env(FAULT_HOOK_VARIABLE, "staged"));
    assert_eq!(output.status.signal(), Some(9));
    let start = Instant::now();
    appupdate_ok(&[
        "update",
        "--dir",
        dir.to_str().unwrap(),
        "--lock-timeout",
        "0",
    ]);
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn an_update_while_the_app_runs_leaves_the_running_version_alone() {
    let bench = Bench::new();
    let dir = bench.fresh("running");
    let hold = dir.join("hold");
    std::fs::write(&hold, "").unwrap();
    let mut child = Command::new(dir.join("appstart"))
        .env("HOLD", &hold)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(dir.join("state/history.log"))
        .unwrap_or_default()
        .contains("launch version=1.0.0")
    {
        assert!(start.elapsed() < DEADLINE);
        std::thread::sleep(Duration::from_millis(10));
    }
    let running = crate::harness::tree_snapshot(&dir.join("versions/1.0.0"));
    appupdate_ok(&["update", "--dir", dir.to_str().unwrap()]);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the app is still running"
    );
    assert_eq!(
        crate::harness::tree_snapshot(&dir.join("versions/1.0.0")),
        running,
        "the running version's folder is untouched"
    );
    std::fs::remove_file(&hold).unwrap();
    wait_with_deadline(&mut child, DEADLINE);
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        text(&output.stdout),
        "app 1.0.0\n",
        "the running app finished as 1.0.0"
    );
    let output = run(&mut Command::new(dir.join("appstart")));
    assert_eq!(
        text(&output.stdout),
        "app 2.0.0\n",
        "the next launch runs the new version"
    );
}

#[test]
fn clients_updating_during_publishes_always_see_a_complete_release() {
    let publisher = Publisher::new();
    let app = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";
    let release = |n: u64| -> Release {
        let mut files = Release::new();
        files.insert("bin/app".into(), (app.to_vec(), true));
        for i in 0..6 {
            files.insert(format!("data/{i}.bin"), (noise(n * 100 + i, 20_000), false));
        }
        files
    };
    publish(&publisher, "1.0.0", &release(1), &[]);
    let server = Server::start(&publisher.repo());
    let home = temp_dir();
    let clients: Vec<PathBuf> = (0..3)
        .map(|i| home.path().join(format!("client{i}")))
        .collect();
    for dir in &clients {
        crate::harness::install(&publisher, &server.url, "crash", dir);
    }
    // Clients update in a loop on their own threads while 2.0.0 ... 7.0.0 are published.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = clients
        .iter()
        .cloned()
        .map(|dir| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut updates = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let args = ["update", "--dir", dir.to_str().unwrap(), "--json"];
                    let output = appupdate(&args);
                    crate::harness::assert_succeeded(&args, &output);
                    updates += 1;
                }
                updates
            })
        })
        .collect();
    for n in 2..=7 {
        publish(&publisher, &format!("{n}.0.0"), &release(n), &[]);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for worker in workers {
        assert!(worker.join().unwrap() > 0);
    }
    for dir in &clients {
        appupdate_ok(&["update", "--dir", dir.to_str().unwrap()]);
        let config = appstart_layout::LauncherConfig::load(&dir.join("appstart.toml")).unwrap();
        assert_eq!(config.current.as_str(), "7.0.0");
        for version in
            crate::harness::appupdate_json(&["status", "--dir", dir.to_str().unwrap()])["installed"]
                .as_array()
                .unwrap()
        {
            let version = version.as_str().unwrap();
            let n: u64 = version.split('.').next().unwrap().parse().unwrap();
            assert_tree(
                &dir.join("versions").join(version),
                &release(n),
                &format!("{} {version}", dir.display()),
            );
        }
    }
}
