//! Running one hook: spawn it with no shell, in the version folder, with the `APPSTART_*`
//! variables; keep the tail of its output; kill it at its timeout.
//!
//! Steps:
//! 1. Both stdout and stderr go into one pipe, read by a thread that keeps the last
//!    [`MAX_OUTPUT`] bytes (memory is capped however much the hook writes).
//! 2. The hook is polled until it exits or its timeout passes; then it is killed (on Unix its
//!    whole process group, so a script's children die with it; on Windows `Child::kill`).
//! 3. The reader gets a short grace period to reach the end of the output: a grandchild that
//!    keeps the pipe open cannot hold the caller.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Hook, HookKind, MAX_OUTPUT, platform};
use crate::names::{RelativePath, VersionName};
use crate::paths::InstallDir;

/// How long the output reader may go on after the hook ended.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HookOutcome {
    /// Exit code 0.
    Succeeded,
    /// Another exit code, or killed by a signal (`exit_code` is then `None`).
    Failed,
    /// Still running at its timeout: killed.
    TimedOut,
    /// It could not be started (the OS error).
    NotStarted(String),
}

impl HookOutcome {
    /// The word in the history log: `ok`, `failed`, `timeout` or `not-started`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HookOutcome::Succeeded => "ok",
            HookOutcome::Failed => "failed",
            HookOutcome::TimedOut => "timeout",
            HookOutcome::NotStarted(_) => "not-started",
        }
    }
}

/// What running a hook did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HookRun {
    /// Which hook.
    pub kind: HookKind,
    /// Its path in the version folder.
    pub path: RelativePath,
    /// How it ended.
    pub outcome: HookOutcome,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// How long it ran.
    pub duration: Duration,
    /// The last [`MAX_OUTPUT`] bytes of its stdout and stderr (lossy UTF-8).
    pub output: String,
}

impl HookRun {
    /// Whether it exited with code 0.
    pub fn succeeded(&self) -> bool {
        self.outcome == HookOutcome::Succeeded
    }

    /// One line for an error message: the hook, how it ended, and the tail of its output.
    pub fn describe(&self) -> String {
        let ended = match (&self.outcome, self.exit_code) {
            (HookOutcome::Succeeded, _) => "exited with code 0".to_string(),
            (HookOutcome::Failed, Some(code)) => format!("exited with code {code}"),
            (HookOutcome::Failed, None) => "was killed by a signal".to_string(),
            (HookOutcome::TimedOut, _) => format!(
                "did not end within its timeout and was killed after {:.1} s",
                self.duration.as_secs_f64()
            ),
            (HookOutcome::NotStarted(error), _) => format!("could not be started: {error}"),
        };
        let tail = output_tail(&self.output, 400);
        if tail.is_empty() {
            format!("{} hook {} {ended} (no output)", self.kind, self.path)
        } else {
            format!(
                "{} hook {} {ended}; output ends: {tail}",
                self.kind, self.path
            )
        }
    }
}

/// The last `limit` bytes of `output`, at a character boundary, trimmed.
fn output_tail(output: &str, limit: usize) -> &str {
    let mut start = output.len().saturating_sub(limit);
    while !output.is_char_boundary(start) {
        start += 1;
    }
    output[start..].trim()
}

/// Runs `hook` of `version` in `install` (see the module docs). Never fails: a hook that
/// cannot be started is a [`HookOutcome::NotStarted`].
pub fn run(kind: HookKind, hook: &Hook, install: &InstallDir, version: &VersionName) -> HookRun {
    // Absolute: the hook runs in its version folder, so a path relative to ours (an install
    // opened as `--dir inst`) would name the wrong file, for the program and in the
    // environment the hook is given.
    let absolute = |path: std::path::PathBuf| std::path::absolute(&path).unwrap_or(path);
    let version_dir = absolute(install.version_dir(version));
    let install_dir = absolute(install.root().to_path_buf());
    let program = hook.path.join_to(&version_dir);
    let started = Instant::now();
    let ended = |outcome, exit_code, output| HookRun {
        kind,
        path: hook.path.clone(),
        outcome,
        exit_code,
        duration: started.elapsed(),
        output,
    };
    let (reader, writer) = match pipe() {
        Ok(pipe) => pipe,
        Err(err) => return ended(HookOutcome::NotStarted(err), None, String::new()),
    };
    let mut command = Command::new(&program);
    command
        .current_dir(&version_dir)
        .env("APPSTART_HOOK", kind.as_str())
        .env("APPSTART_VERSION", version.as_str())
        .env("APPSTART_VERSION_DIR", &version_dir)
        .env("APPSTART_INSTALL_DIR", &install_dir)
        .stdin(Stdio::null())
        .stdout(writer.0)
        .stderr(writer.1);
    platform::own_process_group(&mut command);
    // Step 1.
    let spawned = command.spawn();
    // The parent's copies of the pipe's write end go with the command: the reader sees the
    // end of the output once the hook (and its children) have closed theirs.
    drop(command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            return ended(
                HookOutcome::NotStarted(format!("{}: {err}", program.display())),
                None,
                String::new(),
            );
        }
    };
    let (tail, done) = read_tail(reader);
    // Step 2.
    let timeout = Duration::from_secs(hook.timeout_secs);
    let mut pause = Duration::from_millis(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                platform::kill(&mut child);
                let _ = child.wait();
                break Err(HookOutcome::TimedOut);
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(err) => {
                platform::kill(&mut child);
                let _ = child.wait();
                break Err(HookOutcome::NotStarted(format!("waiting for it: {err}")));
            }
        }
    };
    let duration = started.elapsed();
    // Step 3.
    let _ = done.recv_timeout(OUTPUT_GRACE);
    let output = tail
        .lock()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let (outcome, exit_code) = match status {
        Ok(status) if status.success() => (HookOutcome::Succeeded, status.code()),
        Ok(status) => (HookOutcome::Failed, status.code()),
        Err(outcome) => (outcome, None),
    };
    HookRun {
        kind,
        path: hook.path.clone(),
        outcome,
        exit_code,
        duration,
        output,
    }
}

/// The write end twice (stdout and stderr) and the read end of one pipe.
type Pipe = (
    std::io::PipeReader,
    (std::io::PipeWriter, std::io::PipeWriter),
);

fn pipe() -> Result<Pipe, String> {
    let (reader, writer) = std::io::pipe().map_err(|e| format!("creating a pipe: {e}"))?;
    let second = writer
        .try_clone()
        .map_err(|e| format!("creating a pipe: {e}"))?;
    Ok((reader, (writer, second)))
}

/// Reads `reader` to its end on a thread, keeping the last [`MAX_OUTPUT`] bytes; the
/// receiver gets a message at the end.
fn read_tail(mut reader: std::io::PipeReader) -> (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>) {
    let tail = Arc::new(Mutex::new(Vec::new()));
    let (sender, receiver) = mpsc::channel();
    let shared = Arc::clone(&tail);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let Ok(mut tail) = shared.lock() else { break };
                    tail.extend_from_slice(&buffer[..n]);
                    if tail.len() > MAX_OUTPUT {
                        let excess = tail.len() - MAX_OUTPUT;
                        tail.drain(..excess);
                    }
                }
            }
        }
        let _ = sender.send(());
    });
    (tail, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_cut_at_a_character_boundary() {
        assert_eq!(output_tail("abc\n", 2), "c");
        assert_eq!(output_tail("éé", 3), "é");
        assert_eq!(output_tail("", 3), "");
    }
}
