//! Update benchmark: a 200 MiB, 2,000-file app in which 1 % of the files change.
//!
//! Usage: `cargo build --release --workspace && target/release/update-bench [FILES] [MIB]
//! [RTT_MS]`
//!
//! Publishes v1 and v2 into a repository, serves it on 127.0.0.1 with the real development
//! server, installs v1, then updates to v2 through the library, and reports:
//! - bytes downloaded against the bytes that changed (raw and compressed), and the update's
//!   wire bytes from the server's access log, split into metadata (TUF roles and the release
//!   manifest) and content, against issue 14's goal (<= 1.1x the compressed changed files
//!   + 64 KiB);
//! - staging time (building v2 beside v1) against `cp -a` of the v1 folder, run in the same
//!   process right after, as a ratio, and against `cp -al` (hard links: the floor for any
//!   staging that keeps whole version folders), and against one `lstat` per file of the v1
//!   folder (the floor for any staging that checks each unchanged file by its stat);
//! - with `RTT_MS`, the update goes through [`DelayRelay`], which adds that round trip to
//!   every request (the pack's range requests then show what running them at once saves);
//! - requests and body bytes of a no-op check;
//! - the steady state: after a third update (which prunes v1, setting its folder aside as
//!   `versions/.spare`), the staging of [`STEADY_RUNS`] more, each starting from the folder
//!   the one before set aside, and their median.
//!
//! File contents are pseudo-random (incompressible): the worst case for bytes on the wire.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appstart_bench::{DelayRelay, SharedLog, noise, set_executable};
use appstart_publish::{Expiry, PublishRequest, Repository};
use appstart_serve::RepoServer;
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::{InstallOptions, RelativePath, Updater, VersionName};

/// Steady-state updates timed (each from the folder the previous one's prune set aside).
const STEADY_RUNS: usize = 5;

fn main() {
    if let Err(err) = run() {
        eprintln!("update-bench: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let files: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    // A round trip added to every request of the update (a relay in front of the server).
    let rtt_ms: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let launcher = bin_dir.join("appstart");
    if !launcher.exists() {
        return Err(format!(
            "{} is missing: cargo build --release --workspace",
            launcher.display()
        )
        .into());
    }
    let work = tempfile::Builder::new()
        .prefix("update-bench-")
        .tempdir_in(std::env::temp_dir())?;
    let root = work.path();
    let total = mib * 1024 * 1024;
    let per_file = total / files;
    println!(
        "app: {files} files, {mib} MiB ({per_file} bytes each), 1% changed, incompressible content"
    );

    // v1 and v2 source trees.
    let v1 = root.join("v1");
    let mut changed = Vec::new();
    for i in 0..files {
        let path = v1.join(format!("dir{:02}/file{i:05}.bin", i % 50));
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, noise(i as u64, per_file))?;
    }
    std::fs::create_dir_all(v1.join("bin"))?;
    std::fs::write(v1.join("bin/app"), "#!/bin/sh\n")?;
    set_executable(&v1.join("bin/app"))?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(&v1)
        .arg(root.join("v2"))
        .status()?;
    if !status.success() {
        return Err("cp -a v1 v2 failed".into());
    }
    let v2 = root.join("v2");
    let step = 100; // 1 %
    let mut changed_bytes = 0u64;
    for i in (0..files).step_by(step) {
        let path = v2.join(format!("dir{:02}/file{i:05}.bin", i % 50));
        let data = noise(1_000_000 + i as u64, per_file);
        changed_bytes += data.len() as u64;
        std::fs::write(&path, data)?;
        changed.push(path);
    }

    let keys = KeyDir::new(root.join("keys"));
    keys.generate(false)?;
    // repo1 holds v1 only (to install from); repo is a copy of it to which v2 is added.
    let repo1 = Repository::new(root.join("repo1"));
    repo1.init(&keys, &Expiry::default(), &Default::default())?;
    let start = Instant::now();
    publish(&repo1, &keys, &v1, "1.0.0")?;
    let publish_v1 = start.elapsed();
    let status = Command::new("cp")
        .arg("-a")
        .arg(root.join("repo1"))
        .arg(root.join("repo"))
        .status()?;
    if !status.success() {
        return Err("cp -a repo1 repo failed".into());
    }
    let repo = Repository::new(root.join("repo"));
    let v2_report = publish(&repo, &keys, &v2, "2.0.0")?;
    println!(
        "publish v1: {:.2} s; publish v2: {} new blobs, {} bytes",
        publish_v1.as_secs_f64(),
        v2_report.new_blobs,
        v2_report.new_blob_bytes
    );

    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let server = RepoServer::bind(&root.join("repo"), "127.0.0.1:0")?
        .spawn_with_log(4, SharedLog(Arc::clone(&log)));
    let install_dir = root.join("installed");
    // Install only v1, from repo1 (the repository before v2 was published).
    let log1 = Arc::new(Mutex::new(Vec::<u8>::new()));
    let server1 = RepoServer::bind(&root.join("repo1"), "127.0.0.1:0")?
        .spawn_with_log(4, SharedLog(Arc::clone(&log1)));
    let start = Instant::now();
    let installed = updater_core::install(
        &InstallOptions::new(
            server1.url(),
            root.join("repo1/metadata/1.root.json"),
            "bench",
            &install_dir,
        )
        .with_platform("any")
        .with_launcher(launcher),
    )?;
    let install_log = log1
        .lock()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default();
    println!(
        "fresh install of v1: {:.2} s, {} bytes downloaded ({} metadata, {} content), {} requests: {}",
        start.elapsed().as_secs_f64(),
        installed.bytes_downloaded,
        installed.metadata_bytes,
        installed.content_bytes,
        install_log.lines().count(),
        install_log.lines().collect::<Vec<_>>().join("; ")
    );
    drop(server1);
    // Point the install at the repository that has v2 (same keys, so the same root),
    // through the delay relay when a round trip is asked for.
    let relay = if rtt_ms > 0 {
        let relay = DelayRelay::start(server.url(), Duration::from_millis(rtt_ms))?;
        println!("update through a relay adding {rtt_ms} ms to every request");
        Some(relay)
    } else {
        None
    };
    let update_url = relay
        .as_ref()
        .map_or_else(|| server.url().to_string(), DelayRelay::url);
    repoint(
        &install_dir,
        &update_url,
        &root.join("repo/metadata/1.root.json"),
    )?;

    let log_before_update = log.lock().map(|l| l.len()).unwrap_or(0);
    let (staging, report) = timed_update(&install_dir)?;
    std::thread::sleep(Duration::from_millis(200));
    let update_log = log
        .lock()
        .map(|l| String::from_utf8_lossy(&l[log_before_update..]).into_owned())
        .unwrap_or_default();
    let wire = Wire::from_log(&update_log);

    // `cp -a` three times from a clean start each (the median is reported): it varies
    // several-fold with the state of the page cache, writeback and the file system.
    let v1_dir = install_dir.join("versions/1.0.0");
    let copy = median_of_3(&v1_dir, &root.join("copy"), "-a")?;
    // `cp -al` (a copy of the folders, hard links to the files): the least any staging that
    // keeps whole, independent version folders can do for this tree.
    let link = median_of_3(&v1_dir, &root.join("links"), "-al")?;
    // `cp -a` and a `sync` after it, timed together: a copy as durable as a staged folder
    // (staging ends with a `syncfs`). Shown beside the goal's reference, not instead of it.
    let durable_copy = median_of_3_then(&v1_dir, &root.join("durable"), "-a", true)?;
    // One `lstat` per file: what any staging that checks each unchanged file by its stat
    // (as keeping a file of the spare, or linking an installed one, does) pays at least.
    let stat_floor = lstat_each_file(&v1_dir)?;
    let compressed_changed: u64 = v2_report.new_blob_bytes;
    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!("| bytes changed (raw) | {changed_bytes} |");
    println!("| bytes changed (compressed blobs) | {compressed_changed} |");
    println!(
        "| bytes downloaded by the update | {} |",
        report.bytes_downloaded
    );
    println!(
        "| downloaded / changed (raw) | {:.3} |",
        report.bytes_downloaded as f64 / changed_bytes as f64
    );
    println!(
        "| update on the wire (access log): metadata / content / total | {} / {} / {} ({} requests) |",
        wire.metadata,
        wire.content,
        wire.metadata + wire.content,
        wire.requests
    );
    println!(
        "| of which the release manifest (`plan.manifest_bytes`) | {} |",
        report.plan.manifest_bytes
    );
    let sizes = manifest_sizes(&root.join("repo/targets/bench/stable/any/2.0.0"))?;
    println!(
        "| v2 manifest: plain / compressed / delta from v1 | {} / {} / {} |",
        sizes[0], sizes[1], sizes[2]
    );
    println!(
        "| total wire / compressed changed | {:.3} |",
        (wire.metadata + wire.content) as f64 / compressed_changed as f64
    );
    let allowance = compressed_changed as f64 * 1.1 + 65536.0;
    println!(
        "| goal: total wire <= 1.1 x compressed changed + 64 KiB = {allowance:.0} | {} |",
        if ((wire.metadata + wire.content) as f64) <= allowance {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| files downloaded / reused | {} / {} |",
        report.files_downloaded, report.files_reused
    );
    println!(
        "| staging time (download + build v2) | {:.3} s |",
        staging.as_secs_f64()
    );
    println!(
        "| `cp -a` of the v1 folder (median of 3) | {:.3} s |",
        copy.as_secs_f64()
    );
    println!(
        "| staging / cp -a | {:.3} |",
        staging.as_secs_f64() / copy.as_secs_f64()
    );
    println!(
        "| `cp -al` of the v1 folder (median of 3) | {:.3} s |",
        link.as_secs_f64()
    );
    println!(
        "| staging / cp -al | {:.3} |",
        staging.as_secs_f64() / link.as_secs_f64()
    );
    println!(
        "| `cp -a` then `sync` of the v1 folder (median of 3) | {:.3} s |",
        durable_copy.as_secs_f64()
    );
    println!(
        "| one `lstat` per file of the v1 folder (a walk, then the files on 2 threads; median of 3) | {:.3} s ({:.3} x cp -a) |",
        stat_floor.as_secs_f64(),
        stat_floor.as_secs_f64() / copy.as_secs_f64()
    );

    // No-op check: requests and body bytes.
    let before = log.lock().map(|l| l.len()).unwrap_or(0);
    let updater = Updater::open(&install_dir)?;
    let check = updater.check()?;
    std::thread::sleep(Duration::from_millis(200));
    let lines = log
        .lock()
        .map(|l| String::from_utf8_lossy(&l[before..]).into_owned())
        .unwrap_or_default();
    let requests: Vec<&str> = lines.lines().collect();
    let body: u64 = requests
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    println!(
        "| no-op check: requests | {} ({}) |",
        requests.len(),
        requests.join("; ")
    );
    println!(
        "| no-op check: body bytes | {body} (available: {:?}) |",
        check.available.map(|r| r.version().to_string())
    );

    // Steady state: a client's third update prunes its oldest version, whose folder is set
    // aside (`versions/.spare`) and started from by the fourth, whose own prune sets the next
    // one aside, and so on. Each release changes another 1 % of the files; the staging of
    // STEADY_RUNS such updates is timed and the median reported (the goal is a median).
    let v3 = next_release(root, &v2, "v3", 1, files, per_file)?;
    publish(&repo, &keys, &v3, "3.0.0")?;
    let (third, _) = timed_update(&install_dir)?;
    println!();
    println!("| steady state | result |");
    println!("|---|---|");
    println!(
        "| third update (2.0.0 -> 3.0.0, prunes 1.0.0 into `.spare`) | {:.3} s |",
        third.as_secs_f64()
    );
    let mut previous = v3;
    let mut steady = Vec::new();
    for run in 0..STEADY_RUNS {
        let major = 4 + run;
        let next = next_release(
            root,
            &previous,
            &format!("v{major}"),
            2 + run,
            files,
            per_file,
        )?;
        publish(&repo, &keys, &next, &format!("{major}.0.0"))?;
        let (staging, report) = timed_update(&install_dir)?;
        println!(
            "| update {}.0.0 -> {major}.0.0 (from the spare): staging; files kept in place / linked / downloaded | {:.3} s; {} / {} / {} |",
            major - 1,
            staging.as_secs_f64(),
            report.plan.kept_files,
            report.files_reused - report.plan.kept_files,
            report.files_downloaded
        );
        steady.push(staging);
        previous = next;
    }
    let median = appstart_bench::median(&mut steady);
    println!(
        "| steady-state staging, median of {STEADY_RUNS} | {:.3} s |",
        median.as_secs_f64()
    );
    println!(
        "| steady-state staging / cp -a (medians; goal <= 0.1) | {:.3} |",
        median.as_secs_f64() / copy.as_secs_f64()
    );
    println!(
        "| steady-state staging / cp -al (medians) | {:.3} |",
        median.as_secs_f64() / link.as_secs_f64()
    );
    println!(
        "| steady-state staging / (cp -a then sync) (medians) | {:.3} |",
        median.as_secs_f64() / durable_copy.as_secs_f64()
    );
    println!(
        "| steady-state staging / one `lstat` per file (medians) | {:.3} |",
        median.as_secs_f64() / stat_floor.as_secs_f64()
    );
    drop(server);
    Ok(())
}

/// A copy of the release at `previous` with another 1 % of its files rewritten (those whose
/// number is `offset` modulo 100), at `root/name`.
fn next_release(
    root: &Path,
    previous: &Path,
    name: &str,
    offset: usize,
    files: usize,
    per_file: usize,
) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let next = root.join(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(previous)
        .arg(&next)
        .status()?;
    if !status.success() {
        return Err(format!("cp -a to {name} failed").into());
    }
    for i in (offset..files).step_by(100) {
        let path = next.join(format!("dir{:02}/file{i:05}.bin", i % 50));
        std::fs::write(&path, noise(2_000_000 * offset as u64 + i as u64, per_file))?;
    }
    Ok(next)
}

/// Updates the install at `dir` to the newest release through the library, timing its
/// staging (download and build of the new version beside the running one) and printing
/// when each phase of it ended (from the updater's progress events); then applies it.
fn timed_update(
    dir: &Path,
) -> Result<(Duration, updater_core::UpdateReport), Box<dyn std::error::Error>> {
    let mut updater = Updater::open(dir)?;
    updater.set_lock_wait(Duration::from_secs(5));
    // When staging's phases end: the download phase's first progress event comes after the
    // manifest and the plan; its last one after every file is in place (pack ranges
    // included); `Staged` after the sync and the check of the tree.
    let phases: Arc<Mutex<Vec<(&'static str, Instant)>>> = Arc::default();
    let sink = Arc::clone(&phases);
    let started = std::sync::atomic::AtomicBool::new(false);
    updater.on_event(move |event| {
        let phase = match event {
            updater_core::Event::Progress(_)
                if !started.swap(true, std::sync::atomic::Ordering::Relaxed) =>
            {
                Some("manifest and plan")
            }
            updater_core::Event::Progress(progress)
                if progress.files_done == progress.files_total
                    && progress.bytes_done == progress.bytes_total =>
            {
                Some("pack ranges and every file in place")
            }
            updater_core::Event::Staged { .. } => Some("synced and checked"),
            _ => None,
        };
        if let (Some(phase), Ok(mut phases)) = (phase, sink.lock()) {
            phases.push((phase, Instant::now()));
        }
    });
    let check = updater.check()?;
    let release = check.available.ok_or("no newer release found")?;
    // Staging ends with one `syncfs`: flush the publishes' dirty pages first, so that it
    // pays for its own writes only (a client machine has no repository being written).
    sync()?;
    let start = Instant::now();
    let staged = updater.download(&release)?;
    let staging = start.elapsed();
    if let Ok(phases) = phases.lock() {
        let mut last = start;
        for (phase, at) in phases.iter() {
            println!(
                "staging {} phase: {phase}: {:.3} s",
                release.version(),
                at.duration_since(last).as_secs_f64()
            );
            last = *at;
        }
    }
    let report = updater.apply(staged)?;
    Ok((staging, report))
}

/// Sizes of the manifest files in a release folder: plain, `.zst`, `.zst-patch` (0 if none).
fn manifest_sizes(folder: &Path) -> Result<[u64; 3], Box<dyn std::error::Error>> {
    let mut sizes = [0u64; 3];
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let slot = if name.ends_with(".manifest.json") {
            0
        } else if name.ends_with(".manifest.json.zst") {
            1
        } else if name.ends_with(".manifest.json.zst-patch") {
            2
        } else {
            continue;
        };
        sizes[slot] = entry.metadata()?.len();
    }
    Ok(sizes)
}

/// Body bytes of status 200/206 answers in an access log, split by kind of file.
struct Wire {
    metadata: u64,
    content: u64,
    requests: usize,
}

impl Wire {
    fn from_log(log: &str) -> Wire {
        let mut wire = Wire {
            metadata: 0,
            content: 0,
            requests: 0,
        };
        for line in log.lines() {
            wire.requests += 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, path, status, bytes] = fields.as_slice() else {
                continue;
            };
            let (true, Ok(bytes)) = (matches!(*status, "200" | "206"), bytes.parse::<u64>()) else {
                continue;
            };
            if path.starts_with("/metadata/") || path.starts_with("/targets/") {
                wire.metadata += bytes;
            } else {
                wire.content += bytes;
            }
        }
        wire
    }
}

fn publish(
    repo: &Repository,
    keys: &KeyDir,
    source: &Path,
    version: &str,
) -> Result<appstart_publish::PublishReport, Box<dyn std::error::Error>> {
    Ok(repo.publish(
        keys,
        &Expiry::default(),
        &PublishRequest {
            app: "bench".into(),
            version: VersionName::parse(version)?,
            executable: RelativePath::parse("bin/app")?,
            channel: "stable".into(),
            platform: "any".into(),
            launcher: None,
            source: source.to_path_buf(),
            level: 3,
            delta_depth: 3,
            role: None,
            keep_packs: None,
            delta_time_limit: Some(appstart_publish::DEFAULT_DELTA_TIME_LIMIT),
            control: Default::default(),
            data: Default::default(),
            allow_prerelease: false,
            events: None,
            hooks: Default::default(),
        },
    )?)
}

/// Rewrites the install's repository URL and trusted root (both repositories share keys).
fn repoint(install: &Path, url: &str, root: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let settings_path = install.join("state/install.toml");
    let text = std::fs::read_to_string(&settings_path)?;
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("url = ") {
                format!("url = \"{url}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&settings_path, text + "\n")?;
    let metadata = install.join("state/metadata");
    for entry in std::fs::read_dir(&metadata)? {
        std::fs::remove_file(entry?.path())?;
    }
    std::fs::copy(root, metadata.join("root.json"))?;
    Ok(())
}

/// The median time of three `cp FLAG SOURCE DEST<n>`, each after a `sync`.
fn median_of_3(
    source: &Path,
    dest: &Path,
    flag: &str,
) -> Result<Duration, Box<dyn std::error::Error>> {
    median_of_3_then(source, dest, flag, false)
}

/// One `lstat` of each file below `dir`: a walk lists them, then two threads (the cores of
/// the machines these numbers come from) `lstat` half each, as staging spreads its checks.
/// Median of 3.
fn lstat_each_file(dir: &Path) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(folder) = stack.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    stack.push(entry.path());
                } else {
                    files.push(entry.path());
                }
            }
        }
        let (first, second) = files.split_at(files.len() / 2);
        let each = |part: &[std::path::PathBuf]| {
            part.iter()
                .try_for_each(|path| std::fs::symlink_metadata(path).map(drop))
        };
        std::thread::scope(|scope| {
            let other = scope.spawn(|| each(first));
            each(second)?;
            other
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a thread panicked")))
        })?;
        times.push(start.elapsed());
    }
    Ok(appstart_bench::median(&mut times))
}

/// [`median_of_3`], each copy timed with a `sync` after it when `then_sync`.
fn median_of_3_then(
    source: &Path,
    dest: &Path,
    flag: &str,
    then_sync: bool,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut times = Vec::new();
    for run in 0..3 {
        sync()?;
        let target = format!("{}{run}", dest.display());
        let start = Instant::now();
        let status = Command::new("cp")
            .arg(flag)
            .arg(source)
            .arg(&target)
            .status()?;
        if then_sync {
            sync()?;
        }
        times.push(start.elapsed());
        if !status.success() {
            return Err(format!("cp {flag} {} {target} failed", source.display()).into());
        }
    }
    Ok(appstart_bench::median(&mut times))
}

/// Flushes every file system's dirty pages (`sync`).
fn sync() -> Result<(), Box<dyn std::error::Error>> {
    if !Command::new("sync").status()?.success() {
        return Err("sync failed".into());
    }
    Ok(())
}
