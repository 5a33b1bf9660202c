//! `receipts-bench`: sustained receipts per second into the fleet receiver (issue 16).
//!
//! The real receiver (`appstart_fleet::Receiver` on the development server, 8 threads, as
//! `appupdate serve --receipts-db` runs it) listens on loopback; several poster threads, each
//! with its own keep-alive connection, post batches of fresh receipts (new ids, so every one
//! is inserted, none a duplicate) as fast as the answers come back, for a fixed time. The
//! batches are built and serialised before the clock starts: the number is the receiver's
//! (HTTP, JSON parse, check, one committed transaction per batch), not the posters'.
//!
//! Usage: `receipts-bench [--seconds N] [--posters N] [--batch N] [--postgres URL]`; prints a
//! markdown table (SQLite always, PostgreSQL when a URL is given).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use appstart_serve::RepoServer;
use updater_core::advanced::receipts::{Batch, Receipt, ReceiptEvent};

struct Options {
    seconds: u64,
    posters: usize,
    batch: usize,
    postgres: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 10,
        posters: 4,
        batch: 100,
        postgres: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| text.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--seconds" => options.seconds = number(value()?)?.max(1),
            "--posters" => options.posters = number(value()?)?.clamp(1, 64) as usize,
            "--batch" => {
                options.batch = number(value()?)?
                    .clamp(1, updater_core::advanced::receipts::MAX_BATCH as u64)
                    as usize
            }
            "--postgres" => options.postgres = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

/// Batches for one poster: enough for the whole run at a generous rate, every id fresh.
fn bodies(poster: usize, count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            let install = format!("{:032x}", poster * 1_000_000 + n % 1000);
            let events = [
                ReceiptEvent::Checked,
                ReceiptEvent::Found,
                ReceiptEvent::Downloaded,
                ReceiptEvent::Switched,
            ];
            let receipts = (0..size)
                .map(|i| {
                    let mut receipt =
                        Receipt::new(&install, "bench", "stable", "linux-x86_64", events[i % 4]);
                    receipt.from = Some("1.0.0".into());
                    receipt.to = Some("2.0.0".into());
                    receipt.bytes = 1234;
                    receipt
                })
                .collect();
            serde_json::to_vec(&Batch::new(receipts, 0)).unwrap_or_default()
        })
        .collect()
}

/// Receipts per second into the store at `db` (and how many batches failed).
fn measure(db: &str, options: &Options) -> Result<(f64, u64, u64), String> {
    let store = appstart_fleet::open(db).map_err(|e| e.to_string())?;
    let repo = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = RepoServer::bind(repo.path(), "127.0.0.1:0")
        .map_err(|e| e.to_string())?
        .with_handler(Arc::new(appstart_fleet::Receiver::new(Arc::from(store))));
    let handle = server.spawn(8);
    let url = format!("{}/receipts", handle.url());
    // 20,000 receipts/s per poster at most, so batches never run out.
    let per_poster = (options.seconds as usize * 20_000 / options.batch).max(10);
    let prepared: Vec<Vec<Vec<u8>>> = (0..options.posters)
        .map(|p| bodies(p, per_poster, options.batch))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = prepared
        .into_iter()
        .map(|bodies| {
            let (url, stop, stored, failed) = (
                url.clone(),
                Arc::clone(&stop),
                Arc::clone(&stored),
                Arc::clone(&failed),
            );
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                for body in bodies {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(&body[..])
                    {
                        Ok(mut response) if response.status() == 200 => {
                            let answer = response.body_mut().read_to_string().unwrap_or_default();
                            let value: serde_json::Value =
                                serde_json::from_str(&answer).unwrap_or_default();
                            stored.fetch_add(
                                value["inserted"].as_u64().unwrap_or(0),
                                Ordering::Relaxed,
                            );
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(options.seconds));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stored = stored.load(Ordering::Relaxed);
    Ok((
        stored as f64 / elapsed,
        stored,
        failed.load(Ordering::Relaxed),
    ))
}

fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("receipts-bench: {message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("receipts-bench: temporary folder: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let sqlite = dir.path().join("fleet.db").display().to_string();
    let mut targets = vec![("SQLite (WAL, synchronous=FULL)", sqlite)];
    if let Some(url) = &options.postgres {
        targets.push(("PostgreSQL", url.clone()));
    }
    println!(
        "{} posters, batches of {} receipts, {} s each, receiver with 8 threads, loopback\n",
        options.posters, options.batch, options.seconds
    );
    println!("| store | receipts/s | receipts stored | failed batches |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, db) in targets {
        match measure(&db, &options) {
            Ok((rate, stored, failed)) => println!("| {name} | {rate:.0} | {stored} | {failed} |"),
            Err(message) => {
                eprintln!("receipts-bench: {name}: {message}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    match outbox_cost(dir.path()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("receipts-bench: outbox: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The client's side: what recording a receipt costs an update (`Outbox::append`: read the
/// outbox to keep its bound, append one checksummed line, `fsync`), in an empty outbox and in
/// a full one (a receiver down for a long time), and taking 1,000 posted receipts out.
fn outbox_cost(dir: &std::path::Path) -> Result<(), String> {
    use updater_core::advanced::receipts::outbox::{MAX_RECEIPTS, Outbox};
    let receipt = |n: usize| {
        let mut r = Receipt::new(
            &format!("{:032x}", 7),
            "bench",
            "stable",
            "linux-x86_64",
            ReceiptEvent::Switched,
        );
        r.from = Some("1.0.0".into());
        r.to = Some(format!("1.0.{n}"));
        r
    };
    let per_append = |outbox: &Outbox, count: usize| -> Result<Duration, String> {
        let start = Instant::now();
        for n in 0..count {
            outbox.append(&receipt(n)).map_err(|e| e.to_string())?;
        }
        Ok(start.elapsed() / count as u32)
    };
    let empty = Outbox::new(dir.join("empty.jsonl"));
    let mut small = Vec::new();
    for run in 0..5 {
        let _ = std::fs::remove_file(empty.path());
        small.push(per_append(&empty, 10).map_err(|e| format!("run {run}: {e}"))?);
    }
    small.sort();
    let full = Outbox::new(dir.join("full.jsonl"));
    per_append(&full, MAX_RECEIPTS)?;
    let at_bound = per_append(&full, 20)?;
    let pending = full.pending().map_err(|e| e.to_string())?;
    let ids: std::collections::BTreeSet<String> =
        pending.receipts.iter().map(|r| r.id.clone()).collect();
    let start = Instant::now();
    full.remove(&ids, pending.dropped)
        .map_err(|e| e.to_string())?;
    let removed = start.elapsed();
    println!();
    println!("| outbox (client) | cost |");
    println!("| --- | ---: |");
    println!(
        "| append, outbox of up to 10 receipts (median of 5 runs) | {:.0} us per receipt |",
        small[2].as_secs_f64() * 1e6
    );
    println!(
        "| append, full outbox ({MAX_RECEIPTS} receipts, oldest dropped) | {:.0} us per receipt |",
        at_bound.as_secs_f64() * 1e6
    );
    println!(
        "| remove {} posted receipts | {:.1} ms |",
        ids.len(),
        removed.as_secs_f64() * 1e3
    );
    Ok(())
}
