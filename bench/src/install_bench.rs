//! Fresh-install benchmark: a release of many small files (the shape of a Python, JavaScript
//! or game-asset app) installed by `appupdate install` from the development server on
//! 127.0.0.1, against `zstd -dc | tar -x` plus `sync` of the same content, in the same run.
//!
//! Usage: `cargo build --release --workspace && target/release/install-bench [FILES] [MB] [RUNS]`
//! (default 10,000 files + `bin/app`, 20 MB of pseudo-random bytes, 3 runs; medians).
//!
//! Reports per run: our install time (the whole process: TUF metadata, manifest, pack, every
//! file written and durable, the version switched in), the requests the server saw, and the
//! reference: `tar -c | zstd -12 -T0` made once, then timed `zstd -dc | tar -x` into a new
//! folder followed by `sync` (what "the same bytes, made durable" costs without an updater).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use appstart_bench::{SharedLog, median, noise, set_executable};
use appstart_serve::RepoServer;

fn main() {
    if let Err(err) = run() {
        eprintln!("install-bench: {err}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let files: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let appupdate = bin_dir.join("appupdate");
    if !appupdate.exists() {
        return Err(format!(
            "{} is missing: cargo build --release --workspace",
            appupdate.display()
        )
        .into());
    }
    let work = tempfile::Builder::new()
        .prefix("install-bench-")
        .tempdir_in(std::env::temp_dir())?;
    let root = work.path();
    let tree = root.join("tree");
    let per_file = mb * 1_000_000 / files;
    for i in 0..files {
        let path = tree.join(format!("dir{:03}/file{i:05}.bin", i % 100));
        std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        std::fs::write(&path, noise(i as u64, per_file))?;
    }
    std::fs::create_dir_all(tree.join("bin"))?;
    std::fs::write(tree.join("bin/app"), "#!/bin/sh\n")?;
    set_executable(&tree.join("bin/app"))?;
    println!("tree: {} files, {mb} MB ({per_file} bytes each)", files + 1);

    let keys = root.join("keys");
    let repo = root.join("repo");
    cli(&appupdate, &["keys", "generate", "--out", s(&keys)?])?;
    cli(
        &appupdate,
        &["repo", "init", "--repo", s(&repo)?, "--keys", s(&keys)?],
    )?;
    let start = Instant::now();
    cli(
        &appupdate,
        &[
            "publish",
            "--repo",
            s(&repo)?,
            "--keys",
            s(&keys)?,
            "--app",
            "bench",
            "--version",
            "1.0.0",
            "--exe",
            "bin/app",
            "--delta-depth",
            "0",
            s(&tree)?,
        ],
    )?;
    println!("publish: {:.2} s", start.elapsed().as_secs_f64());

    // The reference archive, made once.
    let archive = root.join("tree.tar.zst");
    shell(&format!(
        "tar -C '{}' -c . | zstd -12 -T0 -q -o '{}'",
        s(&tree)?,
        s(&archive)?
    ))?;

    let log = SharedLog::default();
    let server = RepoServer::bind(&repo, "127.0.0.1:0")?.spawn_with_log(4, log.clone());
    let trusted_root = repo.join("metadata/1.root.json");
    let mut ours = Vec::new();
    let mut reference = Vec::new();
    let mut requests = 0;
    for run in 0..runs {
        let dir = root.join(format!("installed-{run}"));
        let before = log.len();
        // Both sides start with nothing dirty: the reference archive and the previous run's
        // files are not ours to flush.
        shell("sync")?;
        let start = Instant::now();
        cli(
            &appupdate,
            &[
                "install",
                "--url",
                server.url(),
                "--trusted-root",
                s(&trusted_root)?,
                "--app",
                "bench",
                "--dir",
                s(&dir)?,
            ],
        )?;
        ours.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        requests = log.lines_since(before).len();

        let dest = root.join(format!("extracted-{run}"));
        std::fs::create_dir_all(&dest)?;
        shell("sync")?;
        let start = Instant::now();
        shell(&format!(
            "zstd -dc -q '{}' | tar -x -C '{}' && sync",
            s(&archive)?,
            s(&dest)?
        ))?;
        reference.push(start.elapsed());
        println!(
            "run {}: install {:.2} s ({requests} requests); zstd -dc | tar -x + sync {:.2} s",
            run + 1,
            ours.last().map_or(0.0, Duration::as_secs_f64),
            reference.last().map_or(0.0, Duration::as_secs_f64)
        );
    }
    drop(server);
    let (ours, reference) = (median(&mut ours), median(&mut reference));
    println!();
    println!("| measurement (median of {runs}) | result |");
    println!("|---|---|");
    println!("| `appupdate install` | {:.2} s |", ours.as_secs_f64());
    println!(
        "| `zstd -dc \\| tar -x` + `sync` | {:.2} s |",
        reference.as_secs_f64()
    );
    println!(
        "| install / reference | {:.2} |",
        ours.as_secs_f64() / reference.as_secs_f64()
    );
    println!("| requests per install | {requests} |");
    Ok(())
}

fn s(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| "non-UTF-8 path".into())
}

fn cli(appupdate: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new(appupdate)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "appupdate {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

fn shell(script: &str) -> Result<()> {
    let status = Command::new("sh").args(["-c", script]).status()?;
    if !status.success() {
        return Err(format!("{script}: {status}").into());
    }
    Ok(())
}
