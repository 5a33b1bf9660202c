//! Rebuilding a zip archive from its parts (see [`crate::archive`] for why and how the
//! publisher proves it is possible).
//!
//! Each part is obtained the cheapest way: a member whose data sits unchanged in an installed
//! archive (same content, method and length) is copied as compressed bytes; other contents
//! and the skeleton come from local files or extracted parts, from a delta, or from a blob,
//! into the scratch folder. Then the archive is written in one pass: skeleton bytes up to
//! each member's offset, the member's data, and so on, hashed as it is written. Anything
//! wrong (a method producing other bytes, a damaged local archive) shows as a BLAKE3 or
//! length mismatch, and the caller takes the whole file instead.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{LocalFiles, Obtained, StageReport, Stager};
use crate::blob::VerifyingWriter;
use crate::error::{Error, Result};
use crate::manifest::{Archive, Content, FileEntry};

/// Bytes it costs to rebuild `archive` here: each distinct part's [`cost`], nothing for
/// members whose data can be copied from an installed archive.
pub(super) fn cost(archive: &Archive, local: &LocalFiles) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = super::cost(&archive.skeleton, local);
    for member in parts_to_make(archive, local).skip(1) {
        if seen.insert(member.expected().blake3) {
            total += super::cost(member, local);
        }
    }
    total
}

/// The parts of `archive` a rebuild has to make (from a file on disk, a delta or the blob):
/// its skeleton first, then each member whose data no installed archive holds as it is.
pub(super) fn parts_to_make<'m>(
    archive: &'m Archive,
    local: &LocalFiles,
) -> impl Iterator<Item = &'m dyn Content> {
    let members = archive.members.iter().filter(move |member| {
        local
            .raw_member(&member.blake3, member.method, member.stream_size)
            .is_none()
    });
    std::iter::once(&archive.skeleton as &dyn Content).chain(members.map(|m| m as &dyn Content))
}

/// Where one member's data comes from.
enum Data {
    /// Copy `stream_size` bytes at this offset of an installed archive.
    Raw(PathBuf, u64),
    /// Compress this content file.
    Content(PathBuf),
}

/// Rebuilds `entry` (described by `archive`) at `dest`. Returns what its parts cost.
pub(super) fn rebuild(
    stager: &Stager<'_>,
    entry: &FileEntry,
    archive: &Archive,
    dest: &Path,
    local: &LocalFiles,
    scratch: &Path,
) -> Result<StageReport> {
    let mut report = StageReport::default();
    std::fs::create_dir_all(scratch).map_err(|e| Error::io("creating", scratch, e))?;
    let mut obtain = |content: &dyn Content| -> Result<PathBuf> {
        let expected = content.expected();
        if let Some(path) = local.materialize(&expected, scratch) {
            report.parts_local += 1;
            return Ok(path);
        }
        let path = scratch.join(expected.blake3);
        match stager.obtain_remote(content, &path, local, scratch)? {
            Obtained::Delta(bytes) => {
                report.parts_patched += 1;
                report.delta_bytes += bytes;
                report.bytes_downloaded += bytes;
            }
            Obtained::Blob(bytes) => {
                report.parts_from_blobs += 1;
                report.blob_bytes += bytes;
                report.bytes_downloaded += bytes;
            }
        }
        Ok(path)
    };
    let skeleton = obtain(&archive.skeleton)?;
    let mut data = Vec::with_capacity(archive.members.len());
    let mut contents: HashMap<&str, PathBuf> = HashMap::new();
    for member in &archive.members {
        if let Some((path, offset)) =
            local.raw_member(&member.blake3, member.method, member.stream_size)
        {
            data.push(Data::Raw(path.to_path_buf(), offset));
            continue;
        }
        let path = match contents.get(member.blake3.as_str()) {
            Some(path) => path.clone(),
            None => {
                let path = obtain(member)?;
                contents.insert(&member.blake3, path.clone());
                path
            }
        };
        data.push(Data::Content(path));
    }

    let expected = entry.expected();
    let what = format!("{} rebuilt from its parts", entry.path);
    let file = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
    let mut output = BufWriter::with_capacity(256 * 1024, file);
    let mut verifier = VerifyingWriter::new(&mut output, &expected, &what, dest);
    let mut skeleton =
        BufReader::new(File::open(&skeleton).map_err(|e| Error::io("opening", &skeleton, e))?);
    let mut position = 0u64;
    for (member, data) in archive.members.iter().zip(data) {
        copy_exact(&mut skeleton, &mut verifier, member.offset - position).map_err(io(dest))?;
        let written = match &data {
            Data::Raw(path, offset) => {
                let mut input = File::open(path).map_err(io(path))?;
                input.seek(SeekFrom::Start(*offset)).map_err(io(path))?;
                copy_exact(
                    &mut BufReader::new(input),
                    &mut verifier,
                    member.stream_size,
                )
                .map_err(io(path))?;
                member.stream_size
            }
            Data::Content(path) => {
                let input = File::open(path).map_err(io(path))?;
                member
                    .method
                    .encode(&mut BufReader::new(input), &mut verifier)
                    .map_err(io(path))?
            }
        };
        if written != member.stream_size {
            return Err(Error::Mismatch {
                what: format!("{what}: member {}", member.name),
                kind: "compressed size",
                expected: member.stream_size.to_string(),
                actual: written.to_string(),
            });
        }
        position = member.offset + member.stream_size;
    }
    std::io::copy(&mut skeleton, &mut verifier).map_err(io(dest))?;
    verifier.finish()?;
    let file = output
        .into_inner()
        .map_err(|e| Error::io("writing", dest, e.into_error()))?;
    super::durable::file_written(&file, dest)?;
    Ok(report)
}

/// An I/O error while rebuilding, naming the file involved.
fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io("rebuilding from", path, e)
}

/// Copies exactly `length` bytes.
fn copy_exact(input: &mut impl Read, output: &mut impl Write, length: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut input.take(length), output)?;
    if copied != length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("ended after {copied} of {length} bytes"),
        ));
    }
    Ok(())
}
