//! What the benchmark programs share: deterministic test data, the execute bit, a log sink
//! for the development server, medians.

use std::path::Path;
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
