//! What the benchmark programs share: deterministic test data, the execute bit, a log sink
//! for the development server, medians, running `appupdate` and measuring a command's peak
//! memory under `/usr/bin/time -v`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Deterministic incompressible bytes (xorshift), different for each `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Marks `path` executable. Windows has no execute bit: the publisher goes by `--exe`.
pub fn set_executable(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
    }
    #[cfg(windows)]
    {
        let _ = path;
        Ok(())
    }
}

/// The development server's access log, kept in memory: one line per request.
#[derive(Debug, Clone, Default)]
pub struct SharedLog(pub Arc<Mutex<Vec<u8>>>);

impl SharedLog {
    /// Bytes logged so far (a mark for [`SharedLog::lines_since`]).
    pub fn len(&self) -> usize {
        self.0.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Whether nothing is logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lines logged after `mark`.
    pub fn lines_since(&self, mark: usize) -> Vec<String> {
        self.0
            .lock()
            .map(|l| {
                String::from_utf8_lossy(l.get(mark..).unwrap_or_default())
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl std::io::Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The median of `samples` (the upper one of an even count).
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// What [`timed`] measured of one command.
#[derive(Debug)]
pub struct Timed {
    /// Its standard output, trimmed.
    pub stdout: String,
    /// Wall time.
    pub seconds: f64,
    /// Peak resident set ("Maximum resident set size"), KiB.
    pub peak_kib: u64,
}

/// Runs `command` under `/usr/bin/time -v`: its stdout, wall time and peak resident set.
pub fn timed(command: &mut Command) -> Result<Timed, Box<dyn std::error::Error>> {
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-v")
        .arg(command.get_program())
        .args(command.get_args());
    let start = std::time::Instant::now();
    let output = wrapped.output()?;
    let seconds = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("{command:?} failed: {stderr}").into());
    }
    let peak_kib = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no peak memory from /usr/bin/time -v")?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok(Timed {
        stdout,
        seconds,
        peak_kib,
    })
}

/// Writes the executable `bin/app` under `dir`.
pub fn write_app(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::write(bin.join("app"), "#!/bin/sh\necho app\n")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("app"), std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

pub fn check(command: &mut Command) -> Result<std::process::Output, Box<dyn std::error::Error>> {
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(output)
}

/// A fresh repository with its keys under `dir`; returns (repo, keys).
pub fn fresh_repo(
    appupdate: &Path,
    dir: &Path,
) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let _ = std::fs::remove_dir_all(dir);
    let (repo, keys) = (dir.join("repo"), dir.join("keys"));
    check(
        Command::new(appupdate)
            .arg("keys")
            .arg("generate")
            .arg("--out")
            .arg(&keys),
    )?;
    check(
        Command::new(appupdate)
            .args(["repo", "init", "--repo"])
            .arg(&repo)
            .arg("--keys")
            .arg(&keys),
    )?;
    Ok((repo, keys))
}

/// A TCP relay on 127.0.0.1 that holds what the client sends for `delay` before passing it
/// on, so that each request costs one more round trip of `delay`, as over a long link (this
/// machine has no `netem`). Answers pass straight through. It runs until the process ends.
#[derive(Debug)]
pub struct DelayRelay {
    addr: std::net::SocketAddr,
}

impl DelayRelay {
    /// Relays to `upstream` (`http://HOST:PORT`, as `RepoServer::url` gives it).
    pub fn start(upstream: &str, delay: Duration) -> Result<Self, Box<dyn std::error::Error>> {
        let upstream: std::net::SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let (Ok(client_back), Ok(server_back)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                std::thread::spawn(move || pump(client, server, delay));
                std::thread::spawn(move || pump(server_back, client_back, Duration::ZERO));
            }
        });
        Ok(DelayRelay { addr })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Copies `from` to `to`, each chunk `delay` late, until `from` ends.
fn pump(mut from: std::net::TcpStream, mut to: std::net::TcpStream, delay: Duration) {
    use std::io::{Read, Write};
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
