//! Delta benchmark on real consecutive releases (issue 6).
//!
//! Usage:
//! ```sh
//! ../shared/bench/fetch-corpus.sh bench-corpus        # cmake and uv wheels from PyPI
//! apt-get install zstd bsdiff xdelta3 && pip install hdiffpatch   # the tools compared
//! cargo build --release --workspace && target/release/delta-bench bench-corpus [PAIR-FILTER]
//! ```
//!
//! For each pair it publishes the older release as 1.0.0 and the newer as 2.0.0 (blobs at
//! zstd level 19, deltas against the previous release), serves the repository on 127.0.0.1,
//! installs 1.0.0, then runs the real `appupdate update` and reports bytes downloaded,
//! requests, wall time and peak memory (`VmHWM`). Beside it: the new release compressed
//! whole, its changed and new files compressed (what a blob-only update costs), and the sum over
//! changed files of what `zstd -19 --long=31 --patch-from`, `bsdiff`, `xdelta3 -9` and
//! HDiffPatch (LZMA2) produce, new files counted at `zstd -19`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use appstart_bench::{SharedLog, set_executable};
use appstart_publish::{Expiry, PublishRequest, Repository};
use appstart_serve::RepoServer;
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::{InstallOptions, RelativePath, VersionName};

mod delta_encoder;

type Failure = Box<dyn std::error::Error>;

fn main() {
    if let Err(err) = run() {
        eprintln!("delta-bench: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, base, target] = args.as_slice()
        && flag == "--encode"
    {
        return delta_encoder::encode_one(Path::new(base), Path::new(target));
    }
    let corpus = PathBuf::from(
        args.get(1)
            .ok_or("usage: delta-bench CORPUS_DIR [PAIR|encoder]")?,
    );
    let only = args.get(2).cloned();
    if only.as_deref() == Some("encoder") {
        let work = tempfile::Builder::new().prefix("delta-bench-").tempdir()?;
        return delta_encoder::table(&corpus, work.path());
    }
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let pairs = [
        ("uv tree", "uv-0.5.10", "uv-0.5.11", None),
        ("cmake tree", "cmake-3.31.1", "cmake-3.31.2", None),
        ("uv wheel", "uv-0.5.10.whl", "uv-0.5.11.whl", Some("uv.whl")),
        (
            "cmake wheel",
            "cmake-3.31.1.whl",
            "cmake-3.31.2.whl",
            Some("cmake.whl"),
        ),
    ];
    println!(
        "| pair | files changed/new | appstart bytes | manifest bytes | requests | time | peak RSS | plan (delta/blob files, archives rebuilt) | archive parts (local/delta/blob) | new release compressed | changed files compressed | zstd --patch-from | bsdiff | xdelta3 -9 | HDiffPatch | publish 2.0.0 | bsdiff time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, old, new, single) in pairs {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let work = tempfile::Builder::new().prefix("delta-bench-").tempdir()?;
        let (v1, v2) = match single {
            None => (corpus.join(old), corpus.join(new)),
            Some(file) => {
                // An archive as a single-file release.
                let (a, b) = (work.path().join("v1"), work.path().join("v2"));
                for (dir, source) in [(&a, old), (&b, new)] {
                    std::fs::create_dir_all(dir.join("bin"))?;
                    std::fs::copy(corpus.join(source), dir.join(file))?;
                    std::fs::write(dir.join("bin/app"), "#!/bin/sh\n")?;
                    set_executable(&dir.join("bin/app"))?;
                }
                (a, b)
            }
        };
        let row = measure(&bin_dir, work.path(), &v1, &v2)?;
        println!(
            "| {name} | {} | {} | {} | {} | {:.2} s | {} MiB | {}/{}, {} | {}/{}/{} | {} | {} | {} | {} | {} | {} | {:.1} s | {:.1} s |",
            row.changed,
            mb(row.bytes),
            mb(row.plan["manifest_bytes"].as_u64().unwrap_or(0)),
            row.requests,
            row.seconds,
            row.peak_kib / 1024,
            row.delta_files,
            row.blob_files,
            row.plan["archive_files"],
            row.plan["archive_parts_local"],
            row.plan["archive_parts_delta"],
            row.plan["archive_parts_blob"],
            mb(row.full),
            mb(row.changed_compressed),
            mb(row.zstd),
            mb(row.bsdiff),
            mb(row.xdelta),
            mb(row.hdiff),
            row.publish_seconds,
            row.bsdiff_seconds,
        );
    }
    if only.is_none() {
        let work = tempfile::Builder::new().prefix("delta-bench-").tempdir()?;
        delta_encoder::table(&corpus, work.path())?;
    }
    Ok(())
}

#[derive(Default)]
struct Row {
    changed: String,
    bytes: u64,
    requests: usize,
    seconds: f64,
    peak_kib: i64,
    delta_files: u64,
    blob_files: u64,
    full: u64,
    changed_compressed: u64,
    zstd: u64,
    bsdiff: u64,
    xdelta: u64,
    hdiff: u64,
    publish_seconds: f64,
    bsdiff_seconds: f64,
    plan: serde_json::Value,
}

fn measure(bin_dir: &Path, work: &Path, v1: &Path, v2: &Path) -> Result<Row, Failure> {
    let exe = if v1.join("bin/app").exists() {
        "bin/app".to_string()
    } else {
        common_file(v1, v2)?
    };
    set_executable(&v1.join(&exe))?;
    set_executable(&v2.join(&exe))?;
    let keys = KeyDir::new(work.join("keys"));
    keys.generate(false)?;
    let repo = Repository::new(work.join("repo"));
    repo.init(&keys, &Expiry::default(), &Default::default())?;
    let publish =
        |source: &Path, version: &str| -> Result<appstart_publish::PublishReport, Failure> {
            Ok(repo.publish(
                &keys,
                &Expiry::default(),
                &PublishRequest {
                    app: "bench".into(),
                    version: VersionName::parse(version)?,
                    executable: RelativePath::parse(&exe)?,
                    channel: "stable".into(),
                    platform: "any".into(),
                    launcher: None,
                    source: source.to_path_buf(),
                    level: 19,
                    delta_depth: 1,
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
        };
    publish(v1, "1.0.0")?;
    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let server = RepoServer::bind(&work.join("repo"), "127.0.0.1:0")?
        .spawn_with_log(4, SharedLog(Arc::clone(&log)));
    let dir = work.join("installed");
    updater_core::install(
        &InstallOptions::new(
            server.url(),
            work.join("repo/metadata/1.root.json"),
            "bench",
            &dir,
        )
        .with_platform("any")
        .with_launcher(bin_dir.join("appstart")),
    )?;
    let start = Instant::now();
    publish(v2, "2.0.0")?;
    let publish_seconds = start.elapsed().as_secs_f64();
    let before = lines(&log);
    let start = Instant::now();
    let child = Command::new(bin_dir.join("appupdate"))
        .args(["update", "--json", "--dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let (output, peak_kib) = wait_with_rusage(child)?;
    let seconds = start.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_slice(&output)?;
    let requests = lines(&log) - before;

    // Baselines, file by file.
    let old_files = files(v1)?;
    let new_files = files(v2)?;
    let mut row = Row {
        bytes: report["content_bytes"].as_u64().unwrap_or(0),
        requests,
        seconds,
        peak_kib,
        delta_files: report["plan"]["delta_files"].as_u64().unwrap_or(0),
        blob_files: report["plan"]["blob_files"].as_u64().unwrap_or(0),
        plan: report["plan"].clone(),
        publish_seconds,
        ..Row::default()
    };
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let (mut changed, mut added) = (0, 0);
    for (path, content) in &new_files {
        let new_path = v2.join(path);
        let compressed = size_of_output(
            Command::new("zstd")
                .args(["-19", "--long=31", "-q", "-c"])
                .arg(&new_path),
        )?;
        row.full += compressed;
        // The same base as the publisher picks: the same path, else the same file name.
        let base = old_files.get_key_value(path).or_else(|| {
            let name = path.rsplit('/').next();
            old_files
                .iter()
                .find(|(p, _)| p.rsplit('/').next() == name && !new_files.contains_key(*p))
        });
        match base {
            Some((_, old)) if old == content => {}
            Some((old_path, _)) => {
                changed += 1;
                row.changed_compressed += compressed;
                let old_path = v1.join(old_path);
                row.zstd += size_of_output(
                    Command::new("zstd")
                        .args(["-19", "--long=31", "-q", "-c", "--patch-from"])
                        .arg(&old_path)
                        .arg(&new_path),
                )?;
                let patch = scratch.join("patch");
                let start = Instant::now();
                run_tool(
                    Command::new("bsdiff")
                        .arg(&old_path)
                        .arg(&new_path)
                        .arg(&patch),
                )?;
                row.bsdiff_seconds += start.elapsed().as_secs_f64();
                row.bsdiff += std::fs::metadata(&patch)?.len();
                run_tool(
                    Command::new("xdelta3")
                        .args(["-9", "-f", "-e", "-s"])
                        .arg(&old_path)
                        .arg(&new_path)
                        .arg(&patch),
                )?;
                row.xdelta += std::fs::metadata(&patch)?.len();
                let hdiff = Command::new("python3")
                    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("hdiff_size.py"))
                    .arg(&old_path)
                    .arg(&new_path)
                    .output()?;
                row.hdiff += String::from_utf8_lossy(&hdiff.stdout)
                    .trim()
                    .parse::<u64>()
                    .map_err(|e| {
                        format!(
                            "hdiffpatch: {e}: {}",
                            String::from_utf8_lossy(&hdiff.stderr)
                        )
                    })?;
            }
            None => {
                added += 1;
                row.changed_compressed += compressed;
                for total in [
                    &mut row.zstd,
                    &mut row.bsdiff,
                    &mut row.xdelta,
                    &mut row.hdiff,
                ] {
                    *total += compressed;
                }
            }
        }
    }
    row.changed = format!("{changed}/{added}");
    drop(server);
    Ok(row)
}

/// A path both releases have (the benchmark's stand-in executable).
fn common_file(v1: &Path, v2: &Path) -> Result<String, Failure> {
    let second = files(v2)?;
    files(v1)?
        .into_keys()
        .find(|p| second.contains_key(p))
        .ok_or_else(|| "no common file".into())
}

/// Every file below `dir`: relative path -> BLAKE3.
fn files(dir: &Path) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                out.insert(
                    relative,
                    blake3::hash(&std::fs::read(&path)?).to_hex().to_string(),
                );
            }
        }
    }
    Ok(out)
}

fn size_of_output(command: &mut Command) -> Result<u64, Failure> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output.stdout.len() as u64)
}

fn run_tool(command: &mut Command) -> Result<(), Failure> {
    let status = command.status()?;
    if !status.success() {
        return Err(format!("{command:?} failed").into());
    }
    Ok(())
}

/// Waits for `child`, returning its stdout and its peak resident set in KiB, read from
/// `VmHWM` in `/proc/<pid>/status` while it runs. (`ru_maxrss` from `wait4` is no good here:
/// Linux counts the pre-exec copy of this large parent process in it.)
fn wait_with_rusage(mut child: std::process::Child) -> Result<(Vec<u8>, i64), Failure> {
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0i64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
            && let Some(kib) = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<i64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(exit) = child.try_wait()? {
            if !exit.success() {
                return Err("appupdate update failed".into());
            }
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok((reader.join().map_err(|_| "reader")?, peak))
}

fn lines(log: &Mutex<Vec<u8>>) -> usize {
    std::thread::sleep(std::time::Duration::from_millis(200));
    log.lock()
        .map(|l| l.iter().filter(|b| **b == b'\n').count())
        .unwrap_or(0)
}

pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}
