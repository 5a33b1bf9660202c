//! The history log: one line per event, appended, for people and support scripts.
//!
//! Format: `<RFC 3339 UTC time> <event> key=value ...`, values quoted when they contain
//! spaces. Appends are single `write` calls on a file opened in append mode, so lines from
//! the launcher and the updater never interleave. The log is diagnostic, so it is not
//! `fsync`ed: a launch must stay fast.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;

/// Appends one event line to the history log at `path`, creating the file and its folder.
pub fn append(path: &Path, event: &str, fields: &[(&str, &str)]) -> Result<()> {
    let mut line = format!("{} {event}", fsutil::now_rfc3339());
    for (key, value) in fields {
        if value.is_empty() || value.contains(char::is_whitespace) || value.contains('"') {
            line.push_str(&format!(" {key}={value:?}"));
        } else {
            line.push_str(&format!(" {key}={value}"));
        }
    }
    line.push('\n');
    let folder = fsutil::parent_of(path);
    if !folder.exists() {
        fsutil::create_dir_all(&folder)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    file.write_all(line.as_bytes())
        .map_err(|e| Error::io("appending to", path, e))
}
