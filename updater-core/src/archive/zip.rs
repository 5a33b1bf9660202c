//! Taking a zip archive apart at publish time.
//!
//! Reads the central directory (not the local headers alone: they may lack sizes when the
//! archive was streamed), finds each member's data, and proves which members the client can
//! re-compress exactly. Zip64 archives and archives with a prefix (self-extractors) are not
//! taken apart: they are published as plain files.

use std::io::Read;

use super::{Method, reproduces};

/// Members whose data is smaller than this stay in the skeleton: a member costs a manifest
/// entry (a few hundred bytes every client downloads), and small unchanged data costs almost
/// nothing in a skeleton delta.
pub const MIN_MEMBER_DATA: u64 = 4096;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;

/// One member the client will rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenMember {
    /// Its name in the archive.
    pub name: String,
    /// Where its data starts.
    pub offset: u64,
    /// Length of its data.
    pub stream_size: u64,
    /// How the content becomes the data (proven).
    pub method: Method,
    /// The uncompressed content.
    pub content: Vec<u8>,
}

/// An archive taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenApart {
    /// Every byte outside the members' data, in order.
    pub skeleton: Vec<u8>,
    /// The members, by offset.
    pub members: Vec<ProvenMember>,
}

/// Whether `bytes` start like a zip archive.
pub fn looks_like_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(&LOCAL_SIGNATURE.to_le_bytes())
}

/// Takes `archive` apart, or returns `None` when it is not a zip this code can rebuild
/// (then it is published as a plain file), or when no member is worth rebuilding.
pub fn take_apart(archive: &[u8]) -> Option<TakenApart> {
    if !looks_like_zip(archive) {
        return None;
    }
    let entries = central_directory(archive)?;
    let mut candidates = Vec::new();
    for entry in entries {
        let local = usize::try_from(entry.local_offset).ok()?;
        if u32_at(archive, local)? != LOCAL_SIGNATURE {
            return None;
        }
        let name_len = usize::from(u16_at(archive, local + 26)?);
        let extra_len = usize::from(u16_at(archive, local + 28)?);
        let start = (local + 30 + name_len + extra_len) as u64;
        let end = start.checked_add(entry.compressed)?;
        if end > archive.len() as u64 {
            return None;
        }
        let encrypted = entry.flags & 1 != 0;
        if encrypted || !matches!(entry.method, 0 | 8) || entry.compressed < MIN_MEMBER_DATA {
            continue;
        }
        candidates.push((start, entry));
    }
    candidates.sort_by_key(|(start, _)| *start);
    let mut members: Vec<ProvenMember> = Vec::new();
    let mut last: Option<Method> = None;
    let mut previous_end = 0u64;
    for (start, entry) in candidates {
        if start < previous_end {
            return None; // overlapping data: not an archive we rebuild
        }
        let data = &archive[start as usize..(start + entry.compressed) as usize];
        let Some((method, content)) = prove(&entry, data, last) else {
            continue;
        };
        last = Some(method);
        previous_end = start + entry.compressed;
        members.push(ProvenMember {
            name: entry.name,
            offset: start,
            stream_size: entry.compressed,
            method,
            content,
        });
    }
    if members.is_empty() {
        return None;
    }
    let mut skeleton = Vec::new();
    let mut position = 0usize;
    for member in &members {
        skeleton.extend_from_slice(&archive[position..member.offset as usize]);
        position = (member.offset + member.stream_size) as usize;
    }
    skeleton.extend_from_slice(&archive[position..]);
    Some(TakenApart { skeleton, members })
}

/// Decodes a member and finds the method that re-creates its data exactly, trying the one
/// that worked for the previous member first.
fn prove(entry: &CentralEntry, data: &[u8], last: Option<Method>) -> Option<(Method, Vec<u8>)> {
    let stored = entry.method == 0;
    let method = if stored {
        Method::Stored
    } else {
        Method::Deflate {
            engine: super::Engine::Zlib,
            level: 6,
        }
    };
    let mut content = Vec::new();
    method
        .decoder(data)
        .take(entry.uncompressed + 1)
        .read_to_end(&mut content)
        .ok()?;
    if content.len() as u64 != entry.uncompressed || crc32(&content) != entry.crc32 {
        return None;
    }
    if stored {
        return Some((Method::Stored, content));
    }
    let candidates = last
        .into_iter()
        .chain(Method::deflate_candidates())
        .filter(|m| *m != Method::Stored);
    let mut tried = Vec::new();
    for candidate in candidates {
        if tried.contains(&candidate) {
            continue;
        }
        tried.push(candidate);
        if reproduces(candidate, &content, data) {
            return Some((candidate, content));
        }
    }
    None
}

#[derive(Debug)]
struct CentralEntry {
    name: String,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

/// The central directory's entries, or `None` for zip64, a prefix, or damage.
fn central_directory(archive: &[u8]) -> Option<Vec<CentralEntry>> {
    // The end record is the last 22 bytes plus a comment of up to 65,535 bytes.
    let search_from = archive.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..=archive.len().checked_sub(22)?)
        .rev()
        .find(|&i| u32_at(archive, i) == Some(EOCD_SIGNATURE))?;
    let count = u16_at(archive, eocd + 10)?;
    let size = u32_at(archive, eocd + 12)?;
    let offset = u32_at(archive, eocd + 16)?;
    if count == u16::MAX || size == u32::MAX || offset == u32::MAX {
        return None; // zip64
    }
    let (offset, size) = (offset as usize, size as usize);
    if offset.checked_add(size)? != eocd {
        return None; // a prefix or a gap: not laid out as we expect
    }
    let mut entries = Vec::with_capacity(usize::from(count));
    let mut at = offset;
    for _ in 0..count {
        if u32_at(archive, at)? != CENTRAL_SIGNATURE {
            return None;
        }
        let name_len = usize::from(u16_at(archive, at + 28)?);
        let extra_len = usize::from(u16_at(archive, at + 30)?);
        let comment_len = usize::from(u16_at(archive, at + 32)?);
        let compressed = u32_at(archive, at + 20)?;
        let uncompressed = u32_at(archive, at + 24)?;
        let local_offset = u32_at(archive, at + 42)?;
        if [compressed, uncompressed, local_offset].contains(&u32::MAX) {
            return None; // zip64
        }
        let name = archive.get(at + 46..at + 46 + name_len)?;
        entries.push(CentralEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            flags: u16_at(archive, at + 8)?,
            method: u16_at(archive, at + 10)?,
            crc32: u32_at(archive, at + 16)?,
            compressed: u64::from(compressed),
            uncompressed: u64::from(uncompressed),
            local_offset: u64::from(local_offset),
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    (at == eocd).then_some(entries)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// CRC-32 (IEEE), as zip records it: checked so that a member whose data decodes to
/// something else is never taken apart.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
}

/// Writes a zip archive of `(name, content, method)` members the way common tools lay them
/// out (local headers, data, central directory, end record); `None` as method deflates with
/// zlib at level 0 (stored blocks), which the publisher does not try, to stand for a member
/// compressed by a tool it cannot reproduce. For tests and benchmarks.
pub fn write_test_zip(members: &[(&str, &[u8], Option<Method>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, content, method) in members {
        let mut data = Vec::new();
        let encoder = method.unwrap_or(Method::Deflate {
            engine: super::Engine::Zlib,
            level: 0,
        });
        let _ = encoder.encode(&mut &content[..], &mut data);
        let zip_method: u16 = if encoder == Method::Stored { 0 } else { 8 };
        let offset = out.len() as u32;
        let crc = crc32(content);
        let mut fixed = Vec::new();
        fixed.extend_from_slice(&20u16.to_le_bytes()); // version needed
        fixed.extend_from_slice(&0u16.to_le_bytes()); // flags
        fixed.extend_from_slice(&zip_method.to_le_bytes());
        fixed.extend_from_slice(&0u32.to_le_bytes()); // time and date
        fixed.extend_from_slice(&crc.to_le_bytes());
        fixed.extend_from_slice(&(data.len() as u32).to_le_bytes());
        fixed.extend_from_slice(&(content.len() as u32).to_le_bytes());
        fixed.extend_from_slice(&(name.len() as u16).to_le_bytes());
        fixed.extend_from_slice(&0u16.to_le_bytes()); // extra length
        out.extend_from_slice(&LOCAL_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&fixed);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&data);
        central.extend_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        central.extend_from_slice(&fixed);
        central.extend_from_slice(&[0u8; 10]); // comment length, disk, attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&EOCD_SIGNATURE.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip written by hand with zlib level 6 members: one big deflated, one stored, one
    /// too small to take apart.
    pub(crate) fn sample_zip(big: &[u8]) -> Vec<u8> {
        let zlib = Some(Method::Deflate {
            engine: crate::archive::Engine::Zlib,
            level: 6,
        });
        write_test_zip(&[
            ("big.bin", big, zlib),
            ("stored.bin", &[7u8; 10_000], Some(Method::Stored)),
            ("small.txt", b"hello", zlib),
            ("foreign.bin", &text(100_000), None),
        ])
    }

    /// Compressible but not trivially: words drawn pseudo-randomly.
    pub(crate) fn text(len: usize) -> Vec<u8> {
        let words: [&[u8]; 8] = [
            b"alpha ",
            b"beta ",
            b"gamma\n",
            b"delta ",
            b"epsilon ",
            b"zeta ",
            b"eta ",
            b"theta\n",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(words[(state % 8) as usize]);
        }
        out.truncate(len);
        out
    }

    #[test]
    fn takes_apart_and_the_parts_add_up() {
        let big = text(200_000);
        let archive = sample_zip(&big);
        let parts = take_apart(&archive).unwrap();
        // The small member and the one no known compressor reproduces stay in the skeleton.
        assert_eq!(parts.members.len(), 2);
        assert_eq!(parts.members[0].content, big);
        assert_eq!(parts.members[1].method, Method::Stored);
        let data: u64 = parts.members.iter().map(|m| m.stream_size).sum();
        assert_eq!(parts.skeleton.len() as u64 + data, archive.len() as u64);
    }

    #[test]
    fn refuses_what_it_cannot_rebuild() {
        assert!(take_apart(b"not a zip").is_none());
        let mut archive = sample_zip(&text(200_000));
        // A damaged end record.
        let len = archive.len();
        archive[len - 22] = 0;
        assert!(take_apart(&archive).is_none());
    }
}
