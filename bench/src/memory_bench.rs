//! Peak memory of publishing, installing and updating a release with one large file, against
//! issue 14's bounds: delta search ≤ 6 × the larger file of the pair + 256 MiB, install and
//! update ≤ 64 MiB whatever the release size.
//!
//! Run with `cargo build --release -p appstart-bench -p appupdate -p appstart-launcher &&
//! target/release/memory-bench [WORKDIR] [SIZE_MB]` (default 200 MB). Every step is the real
//! `appupdate` binary in its own process under `/usr/bin/time -v` (peak resident set, as the
//! kernel counts it): publish 1.0.0, serve it on 127.0.0.1, install it, publish 2.0.0 (the
//! same file with scattered edits and an insertion, so the delta search runs in full),
//! update to it. Debian's `bsdiff` and `bspatch` on the same pair are the reference, in the
//! same run (skipped, and said so, when not installed).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use appstart_bench::{Timed, fresh_repo, noise, timed, write_app};

type Failure = Box<dyn std::error::Error>;

const MIB: u64 = 1 << 20;

fn main() {
    if let Err(err) = run() {
        eprintln!("memory-bench: {err}");
        std::process::exit(1);
    }
}

/// Version `version` (1 or 2) of the large file: 1 MiB pieces, half random, half text-like
/// (compressible, as code and data sections are). Version 2 edits 64 bytes in every eighth
/// piece and inserts 1 MiB of new bytes in the middle, shifting everything after it.
fn write_data(path: &Path, size_mb: u64, version: u32) -> Result<(), Failure> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for piece in 0..size_mb {
        let mut bytes = noise(piece, (MIB / 2) as usize);
        let text: String = (0..)
            .map(|i| format!("entry {piece}:{i} = value_{};\n", (i * 7919) % 1000))
            .take_while({
                let mut len = 0usize;
                move |line| {
                    len += line.len();
                    len < (MIB / 2) as usize
                }
            })
            .collect();
        bytes.extend_from_slice(text.as_bytes());
        bytes.resize(MIB as usize, b'\n');
        if version == 2 && piece % 8 == 3 {
            bytes[1000..1064].copy_from_slice(&noise(piece + 1_000_000, 64));
        }
        if version == 2 && piece == size_mb / 2 {
            file.write_all(&noise(7, MIB as usize))?;
        }
        file.write_all(&bytes)?;
    }
    file.flush()?;
    Ok(())
}

fn run() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let work = PathBuf::from(args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("memory-bench")
            .display()
            .to_string()
    }));
    let size_mb: u64 = args.next().map_or(Ok(200), |a| a.parse())?;
    let exe = std::env::current_exe()?;
    let bin = exe.parent().ok_or("no folder for this executable")?;
    let appupdate = bin.join("appupdate");
    let launcher = bin.join("appstart");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let (v1, v2) = (work.join("v1"), work.join("v2"));
    for (dir, version) in [(&v1, 1), (&v2, 2)] {
        write_app(dir)?;
        std::fs::copy(&launcher, dir.join("appstart"))?;
        write_data(&dir.join("data.bin"), size_mb, version)?;
    }
    let larger = std::fs::metadata(v2.join("data.bin"))?.len();
    let (repo, keys) = fresh_repo(&appupdate, &work.join("publisher"))?;
    let publish = |source: &Path, version: &str| -> Result<Timed, Failure> {
        timed(
            Command::new(&appupdate)
                .arg("publish")
                .arg("--repo")
                .arg(&repo)
                .arg("--keys")
                .arg(&keys)
                .args(["--app", "bench", "--version", version, "--exe", "bin/app"])
                .args(["--platform", "any", "--launcher", "appstart", "--json"])
                .arg(source),
        )
    };
    let publish1 = publish(&v1, "1.0.0")?;

    let mut server = Command::new(&appupdate)
        .args(["serve", "--listen", "127.0.0.1:0", "--repo"])
        .arg(&repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| -> Result<(), Failure> {
        let mut first = String::new();
        BufReader::new(server.stdout.take().ok_or("no server output")?).read_line(&mut first)?;
        let url = first
            .trim()
            .rsplit(' ')
            .next()
            .ok_or("no URL from appupdate serve")?
            .to_string();
        let dir = work.join("installed");
        let install = timed(
            Command::new(&appupdate)
                .args(["install", "--json", "--app", "bench", "--url", &url])
                .arg("--trusted-root")
                .arg(repo.join("metadata/1.root.json"))
                .arg("--dir")
                .arg(&dir),
        )?;
        let publish2 = publish(&v2, "2.0.0")?;
        let update = timed(
            Command::new(&appupdate)
                .args(["update", "--json", "--dir"])
                .arg(&dir),
        )?;
        let report: serde_json::Value = serde_json::from_str(&update.stdout)?;
        let published: serde_json::Value = serde_json::from_str(&publish2.stdout)?;
        let installed = std::fs::read(dir.join("versions/2.0.0/data.bin"))?;
        if installed != std::fs::read(v2.join("data.bin"))? {
            return Err("the updated data.bin differs from 2.0.0's".into());
        }

        let patch = work.join("bsdiff.patch");
        let reference = if Command::new("bsdiff").arg("--help").output().is_ok() {
            let diff = timed(
                Command::new("bsdiff")
                    .arg(v1.join("data.bin"))
                    .arg(v2.join("data.bin"))
                    .arg(&patch),
            )?;
            let patched = work.join("bspatch.out");
            let apply = timed(
                Command::new("bspatch")
                    .arg(v1.join("data.bin"))
                    .arg(&patched)
                    .arg(&patch),
            )?;
            Some((diff, apply, std::fs::metadata(&patch)?.len()))
        } else {
            println!("bsdiff not installed (apt-get install bsdiff): no reference column");
            None
        };

        let mib = |kib: u64| format!("{:.0} MiB", kib as f64 / 1024.0);
        let delta_bound = (6 * larger + 256 * MIB) / 1024;
        let client_bound = 64 * 1024;
        let met = |peak: u64, bound: u64| if peak <= bound { "met" } else { "NOT met" };
        println!(
            "\nOne file of {:.1} MB (2.0.0: {:.1} MB), Linux x86_64, {} cores",
            std::fs::metadata(v1.join("data.bin"))?.len() as f64 / 1e6,
            larger as f64 / 1e6,
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        println!("\n| step | time | peak RSS | bound | | reference | time | peak RSS |");
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| publish 1.0.0 (no delta) | {:.1} s | {} | – | | | | |",
            publish1.seconds,
            mib(publish1.peak_kib)
        );
        println!(
            "| install 1.0.0 | {:.1} s | {} | {} | {} | | | |",
            install.seconds,
            mib(install.peak_kib),
            mib(client_bound),
            met(install.peak_kib, client_bound)
        );
        let (ref_diff, ref_apply) = match &reference {
            Some((diff, apply, _)) => (
                format!("{:.1} s | {}", diff.seconds, mib(diff.peak_kib)),
                format!("{:.1} s | {}", apply.seconds, mib(apply.peak_kib)),
            ),
            None => ("– | –".into(), "– | –".into()),
        };
        println!(
            "| publish 2.0.0 (delta search, {} deltas) | {:.1} s | {} | {} | {} | bsdiff | {ref_diff} |",
            published["deltas"],
            publish2.seconds,
            mib(publish2.peak_kib),
            mib(delta_bound),
            met(publish2.peak_kib, delta_bound)
        );
        println!(
            "| update to 2.0.0 ({} delta files, {} content bytes) | {:.1} s | {} | {} | {} | bspatch | {ref_apply} |",
            report["plan"]["delta_files"],
            report["content_bytes"],
            update.seconds,
            mib(update.peak_kib),
            mib(client_bound),
            met(update.peak_kib, client_bound)
        );
        if let Some((_, _, bytes)) = reference {
            println!("\nbsdiff patch: {bytes} bytes");
        }
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&work);
    result
}
