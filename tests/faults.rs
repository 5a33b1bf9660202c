//! Faulty networks and full disks: a fault-injecting HTTP server on 127.0.0.1 (which, like
//! S3, answers a request for several ranges with the whole file) and a small tmpfs. Each fault ends with a completed update or a clean failure that leaves the install
//! as it was; corrupt data is never installed.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Publisher, appupdate, appupdate_json, run, temp_dir, text, tree_snapshot};

/// What the server does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Headers and half the body, then the connection closes.
    DropMidBody,
    /// Headers and half the body, then silence for 5 s.
    Stall,
    /// This status with an empty body.
    Status(u16),
    /// 429 with `Retry-After: 1`.
    TooManyRequests,
    /// 200 with the whole body even when a range was asked for.
    IgnoreRange,
    /// `Content-Length` of half the body, then the whole body, then close.
    WrongContentLength,
    /// `Content-Length` larger than the signed size.
    OverDeclared,
    /// More bytes than `Content-Length` declares.
    LongerBody,
    /// The right answer, 300 ms late (a long round trip): requests made one after the other
    /// never overlap, requests made at once do.
    Slow,
    /// A request for several ranges answered in parts, every part after the first with its
    /// bytes flipped.
    CorruptParts,
    /// A request for several ranges answered in parts, cut off in the middle of the second
    /// part.
    TruncatedParts,
}

#[derive(Debug, Default)]
struct Plan {
    pattern: String,
    fault: Option<Fault>,
    remaining: usize,
    /// (path, range start, status or fault) of every request.
    log: Vec<(String, Option<u64>, String)>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    peak_in_flight: usize,
}

/// A test HTTP server for a repository folder that injects faults.
struct FaultServer {
    url: String,
    plan: Arc<Mutex<Plan>>,
}

impl FaultServer {
    fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let plan = Arc::new(Mutex::new(Plan::default()));
        let shared = Arc::clone(&plan);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let plan = Arc::clone(&shared);
                std::thread::spawn(move || serve_connection(stream, &root, &plan));
            }
        });
        FaultServer { url, plan }
    }

    /// Applies `fault` to the next `times` requests whose path contains `pattern`.
    fn inject(&self, pattern: &str, fault: Fault, times: usize) {
        let mut plan = self.plan.lock().unwrap();
        plan.pattern = pattern.into();
        plan.fault = Some(fault);
        plan.remaining = times;
    }

    fn log(&self) -> Vec<(String, Option<u64>, String)> {
        self.plan.lock().unwrap().log.clone()
    }

    /// The most requests this server was answering at once since the last call.
    fn take_peak_in_flight(&self) -> usize {
        std::mem::take(&mut self.plan.lock().unwrap().peak_in_flight)
    }
}

fn serve_connection(stream: TcpStream, root: &Path, plan: &Mutex<Plan>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut range = None;
        let mut range_end = None;
        let mut several: Vec<(usize, usize)> = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line
                .strip_prefix("Range: bytes=")
                .or_else(|| line.strip_prefix("range: bytes="))
                .filter(|value| value.contains(','))
            {
                several = value
                    .split(',')
                    .filter_map(|r| {
                        let (a, b) = r.trim().split_once('-')?;
                        Some((a.parse().ok()?, b.parse().ok()?))
                    })
                    .collect();
            }
            // Several ranges are answered with the whole file (as S3 does), unless a fault
            // answers them in parts.
            if let Some(value) = line
                .strip_prefix("Range: bytes=")
                .or_else(|| line.strip_prefix("range: bytes="))
                .filter(|value| !value.contains(','))
            {
                let (start, end) = value.split_once('-').unwrap_or((value, ""));
                range = start.parse::<u64>().ok();
                range_end = end.parse::<u64>().ok();
            }
        }
        let fault = {
            let mut plan = plan.lock().unwrap();
            let fault = if plan.remaining > 0 && path.contains(&plan.pattern) {
                plan.remaining -= 1;
                plan.fault
            } else {
                None
            };
            let label = fault.map_or("ok".to_string(), |f| format!("{f:?}"));
            plan.log.push((path.clone(), range, label));
            plan.in_flight += 1;
            plan.peak_in_flight = plan.peak_in_flight.max(plan.in_flight);
            fault
        };
        let done = || plan.lock().unwrap().in_flight -= 1;
        let file = root.join(path.trim_start_matches('/'));
        let Ok(body) = std::fs::read(&file) else {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            done();
            continue;
        };
        if fault == Some(Fault::Slow) {
            std::thread::sleep(Duration::from_millis(300));
        }
        if matches!(fault, Some(Fault::CorruptParts | Fault::TruncatedParts)) && !several.is_empty()
        {
            respond_in_parts(&mut stream, &body, &several, fault);
            done();
            return;
        }
        // `bytes=N-M`: bytes N to M of the file (a server ignoring ranges sends all of it).
        let total = body.len();
        let body = match range_end {
            Some(end) if (end as usize) < body.len() && fault != Some(Fault::IgnoreRange) => {
                &body[..=end as usize]
            }
            _ => &body[..],
        };
        let keep_going = respond(&mut stream, body, total, range, fault);
        done();
        if !keep_going {
            return;
        }
    }
}

/// Writes one response (`body`: the file up to the range's end, `total`: its whole length);
/// returns whether the connection stays usable.
fn respond(
    stream: &mut TcpStream,
    body: &[u8],
    total: usize,
    range: Option<u64>,
    fault: Option<Fault>,
) -> bool {
    let partial =
        range.filter(|start| *start < body.len() as u64 && fault != Some(Fault::IgnoreRange));
    let (status, slice) = match partial {
        Some(start) => ("206 Partial Content", &body[start as usize..]),
        None => ("200 OK", body),
    };
    let content_range = partial.map_or(String::new(), |start| {
        format!(
            "Content-Range: bytes {start}-{}/{total}\r\n",
            body.len() - 1
        )
    });
    let head = |length: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\n{content_range}\r\n")
    };
    match fault {
        // The parts faults apply to requests for several ranges only.
        None
        | Some(Fault::IgnoreRange | Fault::Slow | Fault::CorruptParts | Fault::TruncatedParts) => {
            let _ = stream.write_all(head(slice.len()).as_bytes());
            stream.write_all(slice).is_ok()
        }
        Some(Fault::DropMidBody) => {
            let _ = stream.write_all(head(slice.len()).as_bytes());
            let _ = stream.write_all(&slice[..slice.len() / 2]);
            false
        }
        Some(Fault::Stall) => {
            let _ = stream.write_all(head(slice.len()).as_bytes());
            let _ = stream.write_all(&slice[..slice.len() / 2]);
            let _ = stream.flush();
            std::thread::sleep(Duration::from_secs(5));
            false
        }
        Some(Fault::Status(code)) => {
            let _ = stream.write_all(
                format!("HTTP/1.1 {code} Fault\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            );
            true
        }
        Some(Fault::TooManyRequests) => {
            let _ = stream.write_all(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
            );
            true
        }
        Some(Fault::WrongContentLength) => {
            let _ = stream.write_all(head(slice.len() / 2).as_bytes());
            let _ = stream.write_all(slice);
            false
        }
        Some(Fault::OverDeclared) => {
            let _ = stream.write_all(head(slice.len() + 1000).as_bytes());
            let _ = stream.write_all(slice);
            false
        }
        Some(Fault::LongerBody) => {
            let _ = stream.write_all(head(slice.len()).as_bytes());
            let _ = stream.write_all(slice);
            let _ = stream.write_all(b"EXTRA BYTES THAT WERE NEVER DECLARED");
            false
        }
    }
}

/// Answers `ranges` of `body` in `multipart/byteranges` parts, broken as `fault` says.
fn respond_in_parts(
    stream: &mut TcpStream,
    body: &[u8],
    ranges: &[(usize, usize)],
    fault: Option<Fault>,
) {
    let mut parts = Vec::new();
    for (index, &(first, last)) in ranges.iter().enumerate() {
        parts.extend_from_slice(
            format!(
                "\r\n--XYZ\r\nContent-Range: bytes {first}-{last}/{}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        let start = parts.len();
        parts.extend_from_slice(&body[first..=last]);
        if index > 0 && fault == Some(Fault::CorruptParts) {
            for byte in &mut parts[start..] {
                *byte ^= 0x5a;
            }
        }
        if index == 1 && fault == Some(Fault::TruncatedParts) {
            parts.truncate(start + (last - first) / 2);
            break;
        }
    }
    if fault == Some(Fault::CorruptParts) {
        parts.extend_from_slice(b"\r\n--XYZ--\r\n");
    }
    let length = if fault == Some(Fault::TruncatedParts) {
        // Announces the whole answer, sends part of it, then closes.
        parts.len() + 1_000_000
    } else {
        parts.len()
    };
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary=XYZ\r\nContent-Length: {length}\r\n\r\n"
        )
        .as_bytes(),
    );
    let _ = stream.write_all(&parts);
}

/// An install of 1.0.0 served by a fault server, with 2.0.0 (one 400 KB file) published.
struct Setup {
    publisher: Publisher,
    server: FaultServer,
    _home: tempfile::TempDir,
    dir: PathBuf,
    big: Vec<u8>,
}

const APP: &[u8] = b"#!/bin/sh\necho \"app $APPSTART_VERSION\"\n";

fn setup() -> Setup {
    let publisher = Publisher::new();
    publisher.publish("net", "1.0.0", &[("bin/app", APP, true)], &[]);
    let server = FaultServer::start(publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "net", &dir);
    // Stalls are detected after 1 s (and fail the run); the other faults are retried.
    let settings = dir.join("state/install.toml");
    let text = std::fs::read_to_string(&settings)
        .unwrap()
        .replace("stall_secs = 30", "stall_secs = 1");
    std::fs::write(&settings, text).unwrap();
    let big: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    publisher.publish(
        "net",
        "2.0.0",
        &[("bin/app", APP, true), ("big.bin", &big, false)],
        &["--level", "1"],
    );
    Setup {
        publisher,
        server,
        _home: home,
        dir,
        big,
    }
}

impl Setup {
    fn update(&self) -> std::process::Output {
        appupdate(&["update", "--dir", self.dir.to_str().unwrap(), "--json"])
    }

    fn assert_updated(&self, output: &std::process::Output, fault: &str) {
        assert!(output.status.success(), "{fault}: {}", text(&output.stderr));
        assert_eq!(
            std::fs::read(self.dir.join("versions/2.0.0/big.bin")).unwrap(),
            self.big,
            "{fault}"
        );
        let launched = run(&mut Command::new(self.dir.join("appstart")));
        assert_eq!(text(&launched.stdout), "app 2.0.0\n", "{fault}");
    }

    fn blob_requests(&self) -> Vec<(String, Option<u64>, String)> {
        self.server
            .log()
            .into_iter()
            .filter(|(p, _, _)| p.contains("/blobs/"))
            .collect()
    }
}

#[test]
fn transient_faults_are_retried_and_the_update_completes() {
    // Not `Fault::Stall`: a stall is not retried (issue 17 item 8), see
    // a_stall_fails_once_keeping_what_arrived_and_the_next_run_resumes.
    for fault in [
        Fault::DropMidBody,
        Fault::Status(500),
        Fault::Status(503),
        Fault::WrongContentLength,
        Fault::LongerBody,
    ] {
        let setup = setup();
        setup.server.inject("/blobs/", fault, 1);
        let output = setup.update();
        setup.assert_updated(&output, &format!("{fault:?}"));
        let requests = setup.blob_requests();
        let big_requests: Vec<_> = requests
            .iter()
            .filter(|r| r.2 != "ok" || r.1.is_some())
            .collect();
        assert!(!big_requests.is_empty(), "{fault:?}: {requests:?}");
        if matches!(fault, Fault::DropMidBody | Fault::WrongContentLength) {
            // What arrived before the fault is kept: the retry asks for the rest only.
            assert!(
                requests
                    .iter()
                    .any(|(_, range, status)| range.is_some() && status == "ok"),
                "{fault:?} did not resume: {requests:?}"
            );
        }
        drop(setup.publisher);
    }
}

/// Issue 17 item 8: a stalled server used to cost a stall timeout per try (5 x 30 s). Now
/// the first stall fails the update, naming the URL and the timeout, with the install as it
/// was; the half that arrived is kept, so the next run asks only for the rest.
#[test]
fn a_stall_fails_once_keeping_what_arrived_and_the_next_run_resumes() {
    let setup = setup();
    let before = tree_snapshot(&setup.dir.join("versions"));
    setup.server.inject("/blobs/", Fault::Stall, 1);
    let output = setup.update();
    let stderr = text(&output.stderr);
    // Exit 3: a network error (docs/cli.md, Exit codes).
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("no data from {}/blobs/", setup.server.url))
            && stderr.contains("for 1 s"),
        "{stderr}"
    );
    assert_eq!(setup.blob_requests().len(), 1, "not retried");
    assert_eq!(tree_snapshot(&setup.dir.join("versions")), before);
    let output = setup.update();
    setup.assert_updated(&output, "after a stall");
    let requests = setup.blob_requests();
    assert!(
        requests
            .iter()
            .any(|(_, range, status)| range.is_some() && status == "ok"),
        "the second run resumed: {requests:?}"
    );
}

#[test]
fn a_length_beyond_the_signed_size_is_refused_cleanly() {
    let setup = setup();
    let before = tree_snapshot(&setup.dir.join("versions"));
    setup.server.inject("/blobs/", Fault::OverDeclared, 1);
    let output = setup.update();
    assert_eq!(output.status.code(), Some(4), "refused: longer than signed");
    assert!(
        text(&output.stderr).contains("refusing the rest"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(tree_snapshot(&setup.dir.join("versions")), before);
    // The next run, against a server that behaves, completes.
    let output = setup.update();
    setup.assert_updated(&output, "after an over-declared length");
}

#[test]
fn retry_after_is_honoured() {
    let setup = setup();
    setup.server.inject("/blobs/", Fault::TooManyRequests, 1);
    let start = Instant::now();
    let output = setup.update();
    setup.assert_updated(&output, "429");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "waited only {:?} after Retry-After: 1",
        start.elapsed()
    );
}

#[test]
fn a_server_that_ignores_range_still_works() {
    let setup = setup();
    // First drop mid-body so the client asks for a range, then answer 200 to that request.
    setup.server.inject("/blobs/", Fault::DropMidBody, 1);
    let output = {
        let settings = setup.dir.join("state/install.toml");
        let text = std::fs::read_to_string(&settings)
            .unwrap()
            .replace("attempts = 5", "attempts = 1");
        std::fs::write(&settings, text).unwrap();
        setup.update()
    };
    assert_eq!(
        output.status.code(),
        Some(3),
        "one attempt only: the drop ends this run, a network error"
    );
    assert!(
        text(&output.stderr).contains("/blobs/"),
        "{}",
        text(&output.stderr)
    );
    let partial = std::fs::read_dir(setup.dir.join("state/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".partial"));
    assert!(
        partial.is_some(),
        "the partial download is kept for the next run"
    );
    setup.server.inject("/blobs/", Fault::IgnoreRange, 10);
    let output = setup.update();
    setup.assert_updated(&output, "server ignoring Range");
    let last = setup
        .blob_requests()
        .into_iter()
        .rev()
        .find(|r| r.1.is_some())
        .expect("a range request");
    assert_eq!(last.2, "IgnoreRange");
}

#[test]
fn persistent_failures_end_cleanly_and_the_next_run_resumes() {
    let setup = setup();
    let before_versions = tree_snapshot(&setup.dir.join("versions"));
    let before_config = std::fs::read(setup.dir.join("appstart.toml")).unwrap();
    // Half the blob arrives, then the server fails every request.
    setup.server.inject("/blobs/", Fault::DropMidBody, 1);
    let settings = setup.dir.join("state/install.toml");
    std::fs::write(
        &settings,
        std::fs::read_to_string(&settings)
            .unwrap()
            .replace("attempts = 5", "attempts = 3"),
    )
    .unwrap();
    let failing = {
        let plan = Arc::clone(&setup.server.plan);
        std::thread::spawn(move || {
            // Once the drop has happened, every later blob request gets 503.
            let start = Instant::now();
            loop {
                {
                    let mut plan = plan.lock().unwrap();
                    if plan.remaining == 0 {
                        plan.fault = Some(Fault::Status(503));
                        plan.remaining = 1000;
                        return;
                    }
                }
                assert!(start.elapsed() < Duration::from_secs(60));
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let output = setup.update();
    failing.join().unwrap();
    assert_eq!(output.status.code(), Some(3), "a network error");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("/blobs/") && stderr.contains("503"),
        "{stderr}"
    );
    assert_eq!(
        tree_snapshot(&setup.dir.join("versions")),
        before_versions,
        "install as it was"
    );
    assert_eq!(
        std::fs::read(setup.dir.join("appstart.toml")).unwrap(),
        before_config
    );
    let partial_size: u64 = std::fs::read_dir(setup.dir.join("state/cache"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(partial_size > 0, "received bytes are kept");

    // The server recovers: the next run asks only for the missing bytes.
    setup.server.inject("/blobs/", Fault::Status(503), 0);
    let output = setup.update();
    setup.assert_updated(&output, "after recovery");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let resumed = setup
        .blob_requests()
        .into_iter()
        .rev()
        .find(|r| r.2 == "ok")
        .unwrap();
    assert_eq!(
        resumed.1,
        Some(partial_size),
        "resumed from the partial file"
    );
    let manifest = setup
        .publisher
        .manifest("net/stable/any/2.0.0/manifest.json");
    let blob_size = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "big.bin")
        .unwrap()["blob_size"]
        .as_u64()
        .unwrap();
    assert_eq!(
        report["content_bytes"].as_u64().unwrap(),
        blob_size - partial_size,
        "no byte fetched twice"
    );
}

#[test]
fn a_full_disk_fails_clearly_and_leaves_the_old_version_launchable() {
    let publisher = Publisher::new();
    publisher.publish("disk", "1.0.0", &[("bin/app", APP, true)], &[]);
    let server = crate::harness::Server::start(&publisher.repo());
    let home = temp_dir();
    let mount = home.path().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let Some(_unmount) = crate::harness::mount_or_skip(
        &["-t", "tmpfs", "-o", "size=64m", "tmpfs"],
        &mount,
        &mount,
        "disk-full behaviour",
    ) else {
        return;
    };
    let dir = mount.join("app");
    crate::harness::install(&publisher, &server.url, "disk", &dir);
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    publisher.publish(
        "disk",
        "2.0.0",
        &[("bin/app", APP, true), ("big.bin", &big, false)],
        &["--level", "1"],
    );
    // Leave about 1 MiB free: less than the update needs.
    let free = {
        let path = std::ffi::CString::new(mount.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and a zeroed out-parameter of the right type.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut stat) }, 0);
        stat.f_bavail as u64 * stat.f_frsize as u64
    };
    std::fs::write(mount.join("filler"), vec![1u8; (free - (1 << 20)) as usize]).unwrap();
    let before = tree_snapshot(&dir.join("versions"));
    let output = appupdate(&["update", "--dir", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains(mount.to_str().unwrap()),
        "names the path: {stderr}"
    );
    assert_eq!(
        tree_snapshot(&dir.join("versions")),
        before,
        "old version intact, staging removed"
    );
    let launched = run(&mut Command::new(dir.join("appstart")));
    assert!(launched.status.success() && launched.status.signal().is_none());
    assert_eq!(text(&launched.stdout), "app 1.0.0\n");
    let check = appupdate_json(&["status", "--dir", dir.to_str().unwrap()]);
    assert_eq!(check["current"], "1.0.0");
}

#[test]
fn packs_work_with_a_server_that_ignores_range() {
    let publisher = Publisher::new();
    let contents: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("d/{i:02}.bin"),
                format!("content {i} ").repeat(100 + i).into_bytes(),
            )
        })
        .collect();
    let mut files: Vec<(&str, &[u8], bool)> = vec![("bin/app", APP, true)];
    files.extend(
        contents
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice(), false)),
    );
    publisher.publish("packs", "1.0.0", &files, &[]);
    let server = FaultServer::start(publisher.repo());
    server.inject("/packs/", Fault::IgnoreRange, 100);
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "packs", &dir);
    for (path, content) in &contents {
        assert_eq!(
            &std::fs::read(dir.join("versions/1.0.0").join(path)).unwrap(),
            content
        );
    }
    let log = server.log();
    assert!(
        log.iter()
            .any(|(p, _, status)| p.contains("/packs/") && status == "IgnoreRange"),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|(p, _, _)| p.contains("/blobs/")),
        "everything came from the one whole-pack answer: {log:?}"
    );
}

/// An update of an app of many files whose changed files lie far apart in the pack needs
/// one range request per run of them: those go out several at a time, not one round trip
/// after another (issue 14: an update of 1 % of 10,000 files makes about 90).
#[test]
fn pack_ranges_are_fetched_several_at_a_time() {
    let publisher = Publisher::new();
    let version = crate::harness::scattered_files;
    let publish = |name: &str, contents: &[(String, Vec<u8>)]| {
        publisher.publish_beside("ranges", name, APP, contents);
    };
    publish("1.0.0", &version(0, &[]));
    let server = FaultServer::start(publisher.repo());
    let home = temp_dir();
    let dir = home.path().join("app");
    crate::harness::install(&publisher, &server.url, "ranges", &dir);
    // Every eighth file changes: 5 blobs 140 KB apart, too far apart to bridge.
    let changed = [0, 8, 16, 24, 32];
    let v2 = version(7, &changed);
    publish("2.0.0", &v2);
    let before = server.log().len();
    assert_eq!(
        server.take_peak_in_flight(),
        1,
        "the install made one request at a time"
    );
    server.inject("/packs/", Fault::Slow, 100);
    let output = appupdate(&["update", "--dir", dir.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for (path, content) in &v2 {
        assert_eq!(
            &std::fs::read(dir.join("versions/2.0.0").join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    let log = server.log();
    let ranges: Vec<_> = log[before..]
        .iter()
        .filter(|(p, range, _)| p.contains("/packs/") && range.is_some())
        .collect();
    assert_eq!(
        ranges.len(),
        changed.len(),
        "one range per changed blob: {log:?}"
    );
    assert!(
        !log[before..].iter().any(|(p, _, _)| p.contains("/blobs/")),
        "everything came from the pack: {log:?}"
    );
    assert!(
        server.take_peak_in_flight() >= 2,
        "the ranges after the first were requested one at a time: {log:?}"
    );
}

/// A server that answers a request for several ranges in broken parts: what the parts got
/// right is used, a part whose bytes do not match their signed BLAKE3 is fetched from its
/// blob, and what a cut-off answer did not bring is asked for again one range at a time.
/// Nothing corrupt is installed either way.
#[test]
fn broken_multipart_answers_are_never_installed() {
    for fault in [Fault::CorruptParts, Fault::TruncatedParts] {
        let publisher = Publisher::new();
        let version = crate::harness::scattered_files;
        let publish = |name: &str, contents: &[(String, Vec<u8>)]| {
            publisher.publish_beside("parts", name, APP, contents);
        };
        publish("1.0.0", &version(0, &[]));
        let server = FaultServer::start(publisher.repo());
        let home = temp_dir();
        let dir = home.path().join("app");
        crate::harness::install(&publisher, &server.url, "parts", &dir);
        let v2 = version(7, &[0, 8, 16, 24, 32]);
        publish("2.0.0", &v2);
        let before = server.log().len();
        server.inject("/packs/", fault, 1);
        let output = appupdate(&["update", "--dir", dir.to_str().unwrap(), "--json"]);
        assert!(
            output.status.success(),
            "{fault:?}: {}",
            text(&output.stderr)
        );
        for (path, content) in &v2 {
            assert_eq!(
                &std::fs::read(dir.join("versions/2.0.0").join(path)).unwrap(),
                content,
                "{fault:?}: {path}"
            );
        }
        let log = server.log()[before..].to_vec();
        assert!(
            log.iter()
                .any(|(p, _, status)| p.contains("/packs/") && *status == format!("{fault:?}")),
            "{log:?}"
        );
        let blobs = log.iter().filter(|(p, _, _)| p.contains("/blobs/")).count();
        let ranges = log
            .iter()
            .filter(|(p, range, status)| p.contains("/packs/") && range.is_some() && status == "ok")
            .count();
        match fault {
            // The 4 flipped slices from their blobs.
            Fault::CorruptParts => assert_eq!((blobs, ranges), (4, 0), "{log:?}"),
            // The first part was read whole; the 4 others one range at a time.
            _ => assert_eq!((blobs, ranges), (0, 4), "{log:?}"),
        }
    }
}
