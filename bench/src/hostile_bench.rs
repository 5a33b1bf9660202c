//! Hostile-delta benchmark: peak memory and time of applying crafted deltas, against normal
//! ones and against Debian's `bspatch` on the same inputs.
//!
//! Usage: `cargo build --release --workspace && target/release/hostile-bench [MIB]`
//!
//! In an update a crafted delta never reaches a decoder (it is refused by its signed BLAKE3
//! first, see docs/security.md); this measures the decoders *without* that check, to show the
//! second line of defence: whatever the bytes, a decoder's memory stays within a small
//! constant of a normal delta's, and it ends with an error instead of a crash. Each case runs
//! in a child process under `/usr/bin/time -f %M` (peak resident set, the kernel's count), so
//! cases cannot disturb each other's numbers. The crafted inputs are the fixture set in
//! `tests/adversarial/` plus a few made here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use updater_core::advanced::delta::{self, Algorithm};
use updater_core::advanced::manifest::Expected;

use appstart_bench::noise;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).map(String::as_str) == Some("apply") {
        apply_child(&args[2..])
    } else {
        run(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(16))
    };
    if let Err(err) = result {
        eprintln!("hostile-bench: {err}");
        std::process::exit(1);
    }
}

type Error = Box<dyn std::error::Error>;

/// `apply ALGORITHM BASE DELTA SIZE BLAKE3`: one application, in its own process.
fn apply_child(args: &[String]) -> Result<(), Error> {
    let [algorithm, base, delta_path, size, blake3] = args else {
        return Err("usage: hostile-bench apply ALGORITHM BASE DELTA SIZE BLAKE3".into());
    };
    let algorithm: Algorithm = serde_json::from_value(serde_json::json!(algorithm))?;
    let size: u64 = size.parse()?;
    let bytes = std::fs::read(delta_path)?;
    let mut base = std::io::BufReader::new(std::fs::File::open(base)?);
    let expected = Expected {
        name: "target",
        size,
        blake3,
    };
    let out = PathBuf::from(format!("{delta_path}.out"));
    let mut output = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let result = delta::apply(
        algorithm,
        &mut base,
        &bytes,
        &mut output,
        &expected,
        delta_path,
        &out,
    );
    drop(output);
    let _ = std::fs::remove_file(&out);
    result.map_err(|e| updater_core::advanced::error::chain(&e).into())
}

struct Case {
    name: String,
    algorithm: Algorithm,
    delta: PathBuf,
    /// The base it applies to, and the size and BLAKE3 it must produce (for a crafted delta:
    /// what it declares, so that the decoder runs as far as the input lets it).
    base: PathBuf,
    size: u64,
    blake3: String,
}

/// The base the fixtures in `tests/adversarial/` were made against (see its README).
const FIXTURE_BASE: &[u8] =
    b"hello world, this is the base file of the adversarial delta fixtures\n";
/// What the valid fixtures turn it into.
const FIXTURE_TARGET: &[u8] = b"helloXYZ";

/// The output size a delta declares in its header, if its format has one.
fn declared_size(bytes: &[u8]) -> Option<u64> {
    let field = |at: usize| -> Option<[u8; 8]> { bytes.get(at..at + 8)?.try_into().ok() };
    if bytes.starts_with(b"BSDIFF40") {
        let raw = u64::from_le_bytes(field(24)?);
        return Some(raw & (u64::MAX >> 1));
    }
    if bytes.starts_with(b"APBSDL01") {
        return Some(u64::from_le_bytes(field(8)?));
    }
    None
}

fn run(mib: usize) -> Result<(), Error> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return Err("/usr/bin/time is missing (apt-get install time)".into());
    }
    let work = tempfile::Builder::new()
        .prefix("hostile-bench-")
        .tempdir()?;
    let dir = work.path();
    // A base of MIB MiB and a target with a few edits: the shape of an executable update.
    let base = noise(1, mib << 20);
    let mut target = base.clone();
    for edit in 0..64 {
        let at = edit * (target.len() / 64) + 17;
        target[at..at + 512].copy_from_slice(&noise(100 + edit as u64, 512));
    }
    let base_path = dir.join("base");
    std::fs::write(&base_path, &base)?;
    let target_hash = blake3::hash(&target).to_hex().to_string();
    println!(
        "base {} MiB, target {} bytes with 64 edits of 512 bytes",
        mib,
        target.len()
    );

    let mut cases = Vec::new();
    for algorithm in delta::ALGORITHMS {
        let started = Instant::now();
        let bytes = delta::encode(algorithm, &base, &target, 19)?;
        let path = dir.join(format!("normal.{}", algorithm.extension()));
        std::fs::write(&path, &bytes)?;
        println!(
            "normal {algorithm:?}: {} bytes (encoded in {:.1} s)",
            bytes.len(),
            started.elapsed().as_secs_f64()
        );
        cases.push(Case {
            name: format!("normal {} ({mib} MiB)", algorithm.extension()),
            algorithm,
            delta: path,
            base: base_path.clone(),
            size: target.len() as u64,
            blake3: target_hash.clone(),
        });
    }
    // The fixture set, by extension, against the base they were made for.
    let fixture_base = dir.join("fixture-base");
    std::fs::write(&fixture_base, FIXTURE_BASE)?;
    let fixture_hash = blake3::hash(FIXTURE_TARGET).to_hex().to_string();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/adversarial");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for path in names {
        let algorithm = match path.extension().and_then(|e| e.to_str()) {
            Some("zst-patch") => Algorithm::ZstdPatch,
            Some("bsdl") => Algorithm::BsdiffLzma,
            Some("bsdiff") => Algorithm::Bsdiff,
            _ => continue,
        };
        let declared = declared_size(&std::fs::read(&path)?);
        cases.push(Case {
            name: format!(
                "fixture {}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            algorithm,
            delta: path,
            base: fixture_base.clone(),
            size: declared.unwrap_or(FIXTURE_TARGET.len() as u64),
            blake3: fixture_hash.clone(),
        });
    }
    // Made here: a bsdiff header that wraps a bounds check, declaring the right size.
    let mut wrapping = b"BSDIFF40".to_vec();
    wrapping.extend_from_slice(&u64::MAX.to_le_bytes());
    wrapping.extend_from_slice(&(1u64 << 62).to_le_bytes());
    wrapping.extend_from_slice(&(target.len() as u64).to_le_bytes());
    wrapping.resize(136, 0);
    let path = dir.join("wrapping-header.bsdiff");
    std::fs::write(&path, &wrapping)?;
    cases.push(Case {
        name: "wrapping-header.bsdiff (made here)".into(),
        algorithm: Algorithm::Bsdiff,
        delta: path,
        base: base_path.clone(),
        size: target.len() as u64,
        blake3: target_hash.clone(),
    });

    let me = std::env::current_exe()?;
    println!();
    println!("| case | delta bytes | outcome | peak RSS | time |");
    println!("|---|---|---|---|---|");
    for case in &cases {
        let size = std::fs::metadata(&case.delta)?.len();
        let algorithm = serde_json::to_value(case.algorithm)?;
        let output = Command::new(time)
            .args(["-f", "%M %e"])
            .arg(&me)
            .args(["apply", algorithm.as_str().unwrap_or_default()])
            .arg(&case.base)
            .arg(&case.delta)
            .arg(case.size.to_string())
            .arg(&case.blake3)
            .output()?;
        let (peak, seconds, outcome) = measured(&output);
        println!(
            "| {} | {size} | {outcome} | {:.1} MiB | {seconds} s |",
            case.name,
            peak as f64 / 1024.0
        );
    }

    // The reference tool on the same inputs: Debian's bspatch (bsdiff 4.3).
    println!();
    match which("bspatch") {
        None => println!("bspatch not installed (apt-get install bsdiff): reference not measured"),
        Some(bspatch) => {
            println!("| reference: bspatch on | outcome | peak RSS | time |");
            println!("|---|---|---|---|");
            for case in cases.iter().filter(|c| c.algorithm == Algorithm::Bsdiff) {
                let out = dir.join("bspatch.out");
                let output = Command::new(time)
                    .args(["-f", "%M %e"])
                    .arg(&bspatch)
                    .arg(&case.base)
                    .arg(&out)
                    .arg(&case.delta)
                    .output()?;
                let (peak, seconds, outcome) = measured(&output);
                let outcome = if output.status.success() {
                    let same = std::fs::read(&out)
                        .map(|b| blake3::hash(&b).to_hex().as_str() == case.blake3)
                        .unwrap_or(false);
                    format!(
                        "{outcome}, output {}",
                        if same { "correct" } else { "WRONG" }
                    )
                } else {
                    outcome
                };
                println!(
                    "| {} | {outcome} | {:.1} MiB | {seconds} s |",
                    case.name,
                    peak as f64 / 1024.0
                );
            }
        }
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// Peak RSS (KiB), seconds and a one-line outcome from a `/usr/bin/time -f "%M %e"` run.
fn measured(output: &std::process::Output) -> (u64, String, String) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut lines: Vec<&str> = stderr.lines().collect();
    let last = lines.pop().unwrap_or_default();
    let mut fields = last.split_whitespace();
    let peak = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
    let seconds = fields.next().unwrap_or("?").to_string();
    let outcome = if output.status.success() {
        "applied".to_string()
    } else {
        let message = lines
            .iter()
            .rev()
            .find(|l| !l.starts_with("Command "))
            .map(|l| l.trim().to_string())
            .unwrap_or_default();
        let signal = if message.contains("signal") || output.status.code().is_none() {
            " (crashed)"
        } else {
            ""
        };
        // The reason, without the file path that precedes it.
        let reason = message
            .split_once("cannot apply the delta: ")
            .map_or(message.as_str(), |(_, reason)| reason);
        let short: String = reason.chars().take(90).collect();
        format!("refused{signal}: {}", short.replace('|', "/"))
    };
    (peak, seconds, outcome)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
