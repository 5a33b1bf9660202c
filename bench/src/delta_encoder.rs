//! The delta encoder alone (issue 14): time, bytes and peak memory of `delta::encode_best` on
//! the changed binaries of the corpus and on 40 MB of random bytes, beside Debian's `bsdiff`
//! on the same files in the same run. Each side runs as its own process under
//! `/usr/bin/time -v`, which gives the wall time and the peak resident set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use updater_core::advanced::delta::{self, EncodeOptions, Encoded};

use crate::Failure;
use appstart_bench::{Timed, timed};

/// The file pairs of the table: (row name, base, target), relative to the corpus.
const PAIRS: [(&str, &str, &str); 4] = [
    (
        "uv binary (35.9 MB)",
        "uv-0.5.10/uv-0.5.10.data/scripts/uv",
        "uv-0.5.11/uv-0.5.11.data/scripts/uv",
    ),
    (
        "cmake/bin/cmake (18.8 MB)",
        "cmake-3.31.1/cmake/data/bin/cmake",
        "cmake-3.31.2/cmake/data/bin/cmake",
    ),
    (
        "cmake/bin/ctest (20.4 MB)",
        "cmake-3.31.1/cmake/data/bin/ctest",
        "cmake-3.31.2/cmake/data/bin/ctest",
    ),
    (
        "cmake/bin/cpack (19.3 MB)",
        "cmake-3.31.1/cmake/data/bin/cpack",
        "cmake-3.31.2/cmake/data/bin/cpack",
    ),
];

/// Prints the encoder table.
pub fn table(corpus: &Path, work: &Path) -> Result<(), Failure> {
    let exe = std::env::current_exe()?;
    let random = (work.join("random-a"), work.join("random-b"));
    std::fs::write(&random.0, noise(1, 40_000_000))?;
    std::fs::write(&random.1, noise(2, 40_000_000))?;
    let mut rows: Vec<(String, PathBuf, PathBuf)> = PAIRS
        .iter()
        .map(|(name, a, b)| (name.to_string(), corpus.join(a), corpus.join(b)))
        .collect();
    rows.push((
        "random 40 MB → other random 40 MB".into(),
        random.0,
        random.1,
    ));
    println!();
    println!(
        "| file pair | appstart encoder | time | bytes | peak RSS | bsdiff time | bsdiff bytes | bsdiff peak RSS | time ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let patch = work.join("bsdiff.patch");
    for (name, base, target) in rows {
        let ours = timed(Command::new(&exe).arg("--encode").arg(&base).arg(&target))?;
        let theirs = timed(Command::new("bsdiff").arg(&base).arg(&target).arg(&patch))?;
        let bsdiff_bytes = std::fs::metadata(&patch)?.len();
        println!(
            "| {name} | {} | {:.2} s | {} | {} MiB | {:.2} s | {} | {} MiB | {:.2} |",
            ours.outcome(),
            ours.seconds,
            ours.stdout_bytes().map_or("–".into(), crate::mb),
            ours.peak_kib / 1024,
            theirs.seconds,
            crate::mb(bsdiff_bytes),
            theirs.peak_kib / 1024,
            ours.seconds / theirs.seconds,
        );
    }
    Ok(())
}

/// `delta-bench --encode BASE TARGET`: encodes with the publisher's options, checks that
/// the delta applies, and prints `ALGORITHM BYTES` or `skipped (REASON)`.
pub fn encode_one(base: &Path, target: &Path) -> Result<(), Failure> {
    let (base_bytes, target_bytes) = (std::fs::read(base)?, std::fs::read(target)?);
    let start = Instant::now();
    let encoded = delta::encode_best(&base_bytes, &target_bytes, &EncodeOptions::default())?;
    let seconds = start.elapsed().as_secs_f64();
    match encoded {
        Encoded::Delta { algorithm, bytes } => {
            let hash = blake3::hash(&target_bytes).to_hex().to_string();
            let expected = updater_core::advanced::manifest::Expected {
                name: "target",
                size: target_bytes.len() as u64,
                blake3: &hash,
            };
            let mut out = Vec::new();
            delta::apply(
                algorithm,
                &mut std::fs::File::open(base)?,
                &bytes,
                &mut out,
                &expected,
                "delta",
                target,
            )?;
            println!("{algorithm:?} (search+pack {seconds:.2} s) {}", bytes.len());
        }
        Encoded::Skipped(skip) => println!("skipped: {skip:?} ({seconds:.3} s)"),
        other => println!("{other:?}"),
    }
    Ok(())
}

/// Helpers on what our encoder printed.
trait EncoderOutput {
    /// The byte count our encoder printed last, if it made a delta.
    fn stdout_bytes(&self) -> Option<u64>;
    /// What our encoder printed, less the byte count.
    fn outcome(&self) -> &str;
}

impl EncoderOutput for Timed {
    fn stdout_bytes(&self) -> Option<u64> {
        self.stdout.rsplit(' ').next()?.parse().ok()
    }

    fn outcome(&self) -> &str {
        match self.stdout_bytes() {
            Some(_) => self.stdout.rsplit_once(' ').map_or("", |(head, _)| head),
            None => &self.stdout,
        }
    }
}

/// `len` deterministic random bytes (BLAKE3's extendable output of `seed`).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}
