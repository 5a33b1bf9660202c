//! The outbox: receipts waiting to be posted, in `state/receipts.jsonl`.
//!
//! Why a file: receipts are written at each step of an update, but posted only after a check,
//! and the receiver may be down for days; they must survive restarts and crashes without
//! ever stopping an update.
//!
//! Format: one entry per line, `<16 hex digits> <JSON>\n`, where the hex digits are the first
//! 8 bytes of the SHA-256 of the JSON. An entry is a [`Receipt`], or `{"dropped": N}`: N
//! receipts dropped because the outbox was full (the counter travels with the next batch).
//!
//! Crash safety:
//! - an append is one `write` of one line on a file opened in append mode, then `fsync`. A
//!   crash mid-append leaves at most a torn last line: it has no newline or a wrong checksum,
//!   and is skipped (logged), never a parse error. The next append starts a new line first,
//!   so a torn fragment never swallows the receipt after it;
//! - dropping the oldest entries when full, and removing posted receipts, rewrite the file
//!   atomically (temporary file, `fsync`, rename).
//!
//! Bounds: at most [`MAX_RECEIPTS`] receipts and [`MAX_BYTES`] bytes; an append beyond either
//! drops the oldest receipts and counts them. The file is read with a cap of
//! [`MAX_READ_BYTES`] (its last bytes, the newest receipts, when it is larger).
//!
//! Concurrency: every writer holds the install lock ([`crate::lock::InstallLock`]); the
//! launcher never writes here. [`Outbox::remove`] removes the receipts it is given by id, so
//! receipts appended between reading a batch and removing it after the post are kept.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use appstart_layout::fsutil;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::Receipt;
use crate::error::{Error, Result};

/// Most receipts kept; beyond, the oldest are dropped (and counted).
pub const MAX_RECEIPTS: usize = 1000;

/// Most bytes kept; beyond, the oldest receipts are dropped (and counted).
pub const MAX_BYTES: usize = 512 * 1024;

/// Most bytes read from the outbox: more than it ever holds when only appstart writes it.
pub const MAX_READ_BYTES: u64 = 2 * MAX_BYTES as u64;

/// One line's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Receipt(Box<Receipt>),
    Dropped { dropped: u64 },
}

/// What the outbox holds: receipts oldest first, and how many were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// Receipts, oldest first.
    pub receipts: Vec<Receipt>,
    /// Receipts dropped because the outbox was full, not yet reported to a receiver.
    pub dropped: u64,
}

/// The outbox file of one install.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: PathBuf,
}

impl Outbox {
    /// The outbox at `path` (`InstallDir::receipts_outbox_path`); it need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Outbox { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `receipt`; when that makes the outbox exceed its bounds, drops the oldest
    /// receipts (counting them) and rewrites it atomically.
    pub fn append(&self, receipt: &Receipt) -> Result<()> {
        self.append_all(std::slice::from_ref(receipt))
    }

    /// Appends `receipts` in one write and one flush (a step that records several receipts
    /// at once pays for one `fsync`, not one each); bounds as for [`Outbox::append`].
    pub fn append_all(&self, receipts: &[Receipt]) -> Result<()> {
        let mut lines = Vec::new();
        for receipt in receipts {
            lines.extend_from_slice(&encode(&Entry::Receipt(Box::new(receipt.clone())))?);
        }
        if lines.is_empty() {
            return Ok(());
        }
        let pending = self.pending()?;
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if pending.receipts.len() + receipts.len() <= MAX_RECEIPTS
            && size as usize + lines.len() < MAX_BYTES
        {
            return self.append_line(&lines);
        }
        let mut all = pending.receipts;
        all.extend_from_slice(receipts);
        self.rewrite(all, pending.dropped)
    }

    /// The receipts and the dropped counter; a missing file is an empty outbox. Lines that
    /// are torn or fail their checksum are skipped (logged).
    pub fn pending(&self) -> Result<Pending> {
        let bytes = match self.read_tail()? {
            Some(bytes) => bytes,
            None => return Ok(Pending::default()),
        };
        let mut pending = Pending::default();
        let mut number = 0;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            number += 1;
            let Some(line) = line.strip_suffix(b"\n") else {
                log::warn!(
                    "{}: skipping the torn last line (an append was interrupted)",
                    self.path.display()
                );
                break;
            };
            if line.is_empty() {
                continue;
            }
            match decode(line) {
                Some(Entry::Receipt(receipt)) => pending.receipts.push(*receipt),
                Some(Entry::Dropped { dropped }) => {
                    pending.dropped = pending.dropped.saturating_add(dropped);
                }
                None => log::warn!(
                    "{}: skipping line {number}: not a receipt with a valid checksum",
                    self.path.display()
                ),
            }
        }
        Ok(pending)
    }

    /// Removes the receipts whose ids are in `sent` and `dropped` from the counter (what a
    /// receiver just accepted), keeping everything else, including receipts appended since
    /// `sent` was read.
    pub fn remove(&self, sent: &BTreeSet<String>, dropped: u64) -> Result<()> {
        if sent.is_empty() && dropped == 0 {
            return Ok(());
        }
        let pending = self.pending()?;
        let kept: Vec<Receipt> = pending
            .receipts
            .into_iter()
            .filter(|r| !sent.contains(&r.id))
            .collect();
        self.rewrite(kept, pending.dropped.saturating_sub(dropped))
    }

    /// The file's bytes, at most its last [`MAX_READ_BYTES`] starting at a line; `None` when
    /// there is no file.
    fn read_tail(&self) -> Result<Option<Vec<u8>>> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening", &self.path, e)),
        };
        let length = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &self.path, e))?
            .len();
        let start = length.saturating_sub(MAX_READ_BYTES);
        if start > 0 {
            log::warn!(
                "{} holds {length} bytes, more than appstart writes; reading its last {MAX_READ_BYTES}",
                self.path.display()
            );
            file.seek(SeekFrom::Start(start))
                .map_err(|e| Error::io("reading", &self.path, e))?;
        }
        let mut bytes = Vec::new();
        file.take(MAX_READ_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading", &self.path, e))?;
        if start > 0 {
            // The first line is probably cut: start after it.
            let first = bytes
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |i| i + 1);
            bytes.drain(..first);
        }
        Ok(Some(bytes))
    }

    /// Appends one encoded line (starting a new line first when the file ends torn).
    fn append_line(&self, line: &[u8]) -> Result<()> {
        fsutil::create_dir_all(&fsutil::parent_of(&self.path))?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(|e| Error::io("opening", &self.path, e))?;
        let torn =
            ends_without_newline(&mut file).map_err(|e| Error::io("reading", &self.path, e))?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        if torn {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(line);
        file.write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io("appending to", &self.path, e))
    }

    /// Writes `receipts` (oldest first) and a counter of `dropped` atomically, first dropping
    /// the oldest receipts beyond the bounds (added to the counter).
    fn rewrite(&self, mut receipts: Vec<Receipt>, mut dropped: u64) -> Result<()> {
        let lines: Vec<Vec<u8>> = receipts
            .iter()
            .map(|r| encode(&Entry::Receipt(Box::new(r.clone()))))
            .collect::<Result<_>>()?;
        // Room for the counter line, whatever its value.
        let counter_room = 64;
        let mut size: usize = lines.iter().map(Vec::len).sum::<usize>() + counter_room;
        let mut first = 0;
        while first < lines.len() && (lines.len() - first > MAX_RECEIPTS || size > MAX_BYTES) {
            size -= lines[first].len();
            first += 1;
        }
        if first > 0 {
            dropped = dropped.saturating_add(first as u64);
            log::warn!(
                "{}: full, dropping the {first} oldest receipt(s)",
                self.path.display()
            );
            receipts.drain(..first);
        }
        let mut bytes = Vec::with_capacity(size);
        if dropped > 0 {
            bytes.extend_from_slice(&encode(&Entry::Dropped { dropped })?);
        }
        for line in &lines[first..] {
            bytes.extend_from_slice(line);
        }
        if bytes.is_empty() {
            return fsutil::remove_file_if_exists(&self.path).map_err(Error::from);
        }
        fsutil::create_dir_all(&fsutil::parent_of(&self.path))?;
        fsutil::write_atomic(&self.path, &bytes)?;
        Ok(())
    }
}

/// Whether `file` is non-empty and its last byte is not a newline.
fn ends_without_newline(file: &mut File) -> std::io::Result<bool> {
    let length = file.metadata()?.len();
    if length == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(length - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

fn checksum(json: &[u8]) -> String {
    hex::encode(&sha2::Sha256::digest(json)[..8])
}

fn encode(entry: &Entry) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(entry)
        .map_err(|e| Error::Invalid(format!("encoding a receipt: {e}")))?;
    let mut line = checksum(&json).into_bytes();
    line.push(b' ');
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// One line without its newline; `None` when its checksum or JSON is wrong.
fn decode(line: &[u8]) -> Option<Entry> {
    let (sum, json) = (line.get(..16)?, line.get(17..)?);
    if line.get(16) != Some(&b' ') || sum != checksum(json).as_bytes() {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
