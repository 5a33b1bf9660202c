//! Publishing at fleet scale (issue 14): `appupdate publish --delta-depth 0` of many small
//! files against `tar -c | zstd -12 -T0` of the same tree, in the same run.
//!
//! Usage:
//! ```sh
//! cargo build --release -p appupdate -p appstart-bench
//! target/release/publish-bench [WORK_DIR]
//! ```
//!
//! Builds two trees from a fixed seed: 10,001 files (`bin/app` and 10,000 files of 2,000
//! random bytes in 100 folders: 20 MB) and 1,001 files (the first 1,000 of those: 2 MB).
//! For each, it times three runs of the real `appupdate publish` (release build, beside this
//! binary) into a fresh repository, and three runs of `tar -c | zstd -12 -T0` of the same
//! tree to a file, and prints the medians and their ratio; also the time to publish the same
//! tree again as the next release (nothing new: no blob is written). `sync` runs before each timed run,
//! so neither tool pays for writing out data dirtied before it started (publish ends with a
//! `syncfs`; `tar | zstd` does not sync). Then it publishes one 200 MB file
//! under `/usr/bin/time -v` and prints the peak memory (maximum resident set size).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use appstart_bench::{check, fresh_repo, median, noise, write_app};

type Failure = Box<dyn std::error::Error>;

fn main() {
    if let Err(err) = run() {
        eprintln!("publish-bench: {err}");
        std::process::exit(1);
    }
}

/// Writes `bin/app` and `count` files of 2,000 bytes under `dir`.
fn make_tree(dir: &Path, count: usize) -> Result<(), Failure> {
    write_app(dir)?;
    for i in 0..count {
        let folder = dir.join(format!("data/{:02}", i % 100));
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join(format!("{i:05}.bin")), noise(i as u64, 2_000))?;
    }
    Ok(())
}

fn publish_command(
    appupdate: &Path,
    repo: &Path,
    keys: &Path,
    source: &Path,
    version: &str,
) -> Command {
    let mut command = Command::new(appupdate);
    command
        .arg("publish")
        .arg("--repo")
        .arg(repo)
        .arg("--keys")
        .arg(keys)
        .args(["--app", "bench", "--version", version, "--exe", "bin/app"])
        .args(["--platform", "any", "--delta-depth", "0"])
        .arg(source);
    command
}

fn run() -> Result<(), Failure> {
    let work = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("publish-bench"),
    };
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let appupdate = bin_dir.join("appupdate");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    println!(
        "| files | data | appupdate publish --delta-depth 0 (median of 3) | tar -c \\| zstd -12 -T0 (median of 3) | ratio | the same tree published again |"
    );
    println!("|---|---|---|---|---|---|");
    for count in [10_000, 1_000] {
        let tree = work.join(format!("tree-{count}"));
        make_tree(&tree, count)?;
        let (mut ours, mut reference, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..3 {
            let (repo, keys) = fresh_repo(&appupdate, &work.join("publisher"))?;
            // Nothing else dirty when the clock starts: publish ends with one syncfs,
            // which would otherwise also write out the tree just made (or other data).
            check(&mut Command::new("sync"))?;
            let start = Instant::now();
            check(&mut publish_command(
                &appupdate, &repo, &keys, &tree, "1.0.0",
            ))?;
            ours.push(start.elapsed());
            // The same tree again as the next release: no new blob.
            check(&mut Command::new("sync"))?;
            let start = Instant::now();
            check(&mut publish_command(
                &appupdate, &repo, &keys, &tree, "1.0.1",
            ))?;
            again.push(start.elapsed());

            let out = work.join(format!("tree-{round}.tar.zst"));
            check(&mut Command::new("sync"))?;
            let start = Instant::now();
            check(
                Command::new("sh")
                    .arg("-c")
                    .arg("tar -c -C \"$1\" . | zstd -q -12 -T0 -f -o \"$2\"")
                    .arg("sh")
                    .arg(&tree)
                    .arg(&out),
            )?;
            reference.push(start.elapsed());
            std::fs::remove_file(&out)?;
        }
        let (ours, reference, again) = (
            median(&mut ours),
            median(&mut reference),
            median(&mut again),
        );
        println!(
            "| {} | {:.1} MB | {:.2} s | {:.2} s | {:.2}x | {:.2} s |",
            count + 1,
            (count * 2_000) as f64 / 1e6,
            ours.as_secs_f64(),
            reference.as_secs_f64(),
            ours.as_secs_f64() / reference.as_secs_f64(),
            again.as_secs_f64()
        );
    }

    // Peak memory of publishing one 200 MB file (written in 1 MiB pieces).
    let big = work.join("big");
    write_app(&big)?;
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(big.join("data.bin"))?);
        for piece in 0..200u64 {
            file.write_all(&noise(piece, 1_000_000))?;
        }
        file.flush()?;
    }
    let (repo, keys) = fresh_repo(&appupdate, &work.join("publisher"))?;
    let publish = publish_command(&appupdate, &repo, &keys, &big, "1.0.0");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-v")
        .arg(publish.get_program())
        .args(publish.get_args());
    let output = check(&mut timed)?;
    let report = String::from_utf8_lossy(&output.stderr);
    let peak = report
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or("?");
    println!("\npublish of one 200 MB file (--delta-depth 0): peak RSS {peak} KiB");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
