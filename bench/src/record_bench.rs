//! `record-bench`: what reading and writing an installed version's record costs (issue 14).
//!
//! An update reads two records (the running version's, which is also the manifest delta's
//! base, and the previous version's, for files to reuse), parses the new manifest and writes
//! the new version's record: on an app of 10,000 files these were a third of the steady
//! state's staging time. This measures each on a record of `FILES` files (default 10,000, the
//! update benchmark's tree), the median of 15 runs, beside the same work on the record's
//! earlier layout (stats in a map by path), measured in the same run.
//!
//! Usage: `record-bench [FILES]`; prints a markdown table.

use std::collections::BTreeMap;
use std::time::Instant;

use updater_core::VersionName;
use updater_core::advanced::fsutil;
use updater_core::advanced::manifest::Manifest;
use updater_core::advanced::stage::{FileStat, InstalledRecord, LocalFiles, Records};

/// A record as records were written before `file_stats`: the reference.
#[derive(serde::Serialize, serde::Deserialize)]
struct EarlierRecord {
    manifest: Manifest,
    stats: BTreeMap<String, FileStat>,
}

fn main() {
    if let Err(err) = run() {
        eprintln!("record-bench: {err}");
        std::process::exit(1);
    }
}

/// The median of 15 runs of `work`, in milliseconds.
fn time(
    mut work: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut runs = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        work()?;
        runs.push(start.elapsed());
    }
    Ok(appstart_bench::median(&mut runs).as_secs_f64() * 1e3)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let files: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    // The update benchmark's shape: 100 folders of 7 subfolders, one blob each, in a pack.
    let entries: Vec<String> = (0..files)
        .map(|i| {
            let content = blake3::hash(format!("content {i}").as_bytes()).to_hex();
            let blob = blake3::hash(format!("blob {i}").as_bytes()).to_hex();
            format!(
                r#"{{"path":"dir{:02}/sub{}/file{i:05}.bin","size":2097,"executable":{},"blake3":"{content}","blob_size":2107,"blob_blake3":"{blob}","pack_offset":{}}}"#,
                i % 100,
                i % 7,
                i == 0,
                i * 2107
            )
        })
        .collect();
    let pack_size = files * 2107;
    let json = format!(
        r#"{{"format":2,"app":"bench","version":"1.0.0","channel":"stable","platform":"any","executable":"dir00/sub0/file00000.bin","pack":{{"path":"packs/bench/1.0.0.pack","size":{pack_size}}},"files":[{}]}}"#,
        entries.join(",")
    );
    let manifest = Manifest::parse(json.as_bytes(), "bench manifest")?;
    let stats: Vec<FileStat> = (0..files)
        .map(|i| FileStat {
            ino: 1_000_000 + i as u64,
            volume: 0,
            size: 2097,
            mtime_ns: 1_764_000_000_123_456_789 + i as i128,
        })
        .collect();
    let earlier = EarlierRecord {
        stats: manifest
            .files
            .iter()
            .zip(&stats)
            .map(|(file, stat)| (file.path.to_string(), *stat))
            .collect(),
        manifest: manifest.clone(),
    };
    let record = InstalledRecord {
        manifest,
        stats,
        hooks: Default::default(),
    };
    let dir = tempfile::tempdir()?;
    let install = updater_core::InstallDir::new(dir.path());
    let version = VersionName::parse("1.0.0")?;
    let path = InstalledRecord::path(&install, &version);
    let earlier_path = dir.path().join("earlier.json");

    let parse = time(|| {
        Manifest::parse(json.as_bytes(), "bench manifest")?;
        Ok(())
    })?;
    let save = time(|| Ok(record.save(&install)?))?;
    let save_earlier = time(|| {
        fsutil::write_atomic(&earlier_path, &serde_json::to_vec(&earlier)?)?;
        Ok(())
    })?;
    let load = time(|| {
        InstalledRecord::load(&install, &version).ok_or("the record did not load")?;
        Ok(())
    })?;
    let load_earlier = time(|| {
        let bytes = std::fs::read(&earlier_path)?;
        let _: EarlierRecord = serde_json::from_slice(&bytes)?;
        Ok(())
    })?;
    // What an update does with the two records it reads: index their files by content.
    let mut second = record.clone();
    second.manifest.version = VersionName::parse("2.0.0")?;
    second.save(&install)?;
    let versions = [version.clone(), second.manifest.version.clone()];
    let records = Records::new(&install);
    for version in &versions {
        records.get(version).ok_or("a record did not load")?;
    }
    let index = time(|| {
        let local = LocalFiles::index(&records, &versions);
        if !local.has_file(&record.manifest.files[0].blake3) {
            return Err("the index lacks a recorded file".into());
        }
        Ok(())
    })?;
    let size = std::fs::metadata(&path)?.len();
    let earlier_size = std::fs::metadata(&earlier_path)?.len();
    println!("record of {files} files, median of 15 runs");
    println!();
    println!("| measurement | `file_stats` (now) | stats by path (earlier) |");
    println!("|---|---|---|");
    println!("| record size | {size} bytes | {earlier_size} bytes |");
    println!("| read and parse | {load:.2} ms | {load_earlier:.2} ms |");
    println!("| write atomically (with `fsync`) | {save:.2} ms | {save_earlier:.2} ms |");
    println!("| parse and check the manifest alone (`Manifest::parse`) | {parse:.2} ms | |");
    println!(
        "| index two loaded records' files by content (`LocalFiles::index`) | {index:.2} ms | |"
    );
    Ok(())
}
