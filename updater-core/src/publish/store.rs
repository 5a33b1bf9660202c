//! Content-addressed blob storage: `blobs/<xx>/<blake3>.zst`, written once, never rewritten.

use super::{MAX_ARCHIVE_IN_MEMORY, Repository};
use std::fs::File;
use std::path::Path;

use appstart_layout::{RelativePath, fsutil};

use crate::blob;
use crate::error::{Error, Result};
use crate::manifest::{Archive, ArchiveFormat, Content, FileEntry, Member, Skeleton};

/// A file as stored in the repository: what clients download and authenticate.
#[derive(Debug, Clone)]
pub(super) struct StoredFile {
    pub(super) size: u64,
    pub(super) blake3: String,
}

impl Repository {
    /// The content of a published file or part, from its blob, verified.
    pub(super) fn blob_content(&self, content: &dyn Content) -> Result<Vec<u8>> {
        let expected = content.expected();
        let path = self.root.join(blob::blob_path(expected.blake3));
        let file = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        let decoder = zstd::stream::read::Decoder::new(file)
            .map_err(|e| Error::io("decompressing", &path, e))?;
        let mut out = Vec::with_capacity(expected.size as usize);
        blob::copy_verified(
            decoder,
            &mut out,
            &expected,
            &path.display().to_string(),
            &path,
        )?;
        Ok(out)
    }

    /// Compresses `source` into the blob store unless its blob already exists.
    pub(super) fn store_blob(
        &self,
        source: &Path,
        path: RelativePath,
        executable: bool,
        level: i32,
    ) -> Result<(FileEntry, bool)> {
        let mut input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
        let (blake3, size, stored, written) = self.store_reader(&mut input, source, level)?;
        Ok((
            FileEntry {
                path,
                size,
                executable,
                blake3,
                blob_size: stored.size,
                blob_blake3: stored.blake3,
                deltas: Vec::new(),
                pack_offset: None,
                archive: None,
            },
            written,
        ))
    }

    /// Compresses what `input` yields into the blob store unless that blob already exists.
    /// Returns its BLAKE3, size, the stored blob and whether it was written now.
    pub(super) fn store_reader(
        &self,
        input: &mut dyn std::io::Read,
        source: &Path,
        level: i32,
    ) -> Result<(String, u64, StoredFile, bool)> {
        let blobs = self.root.join("blobs");
        let temp_path = blobs.join(fsutil::temp_name("blob"));
        let mut temp =
            File::create(&temp_path).map_err(|e| Error::io("creating", &temp_path, e))?;
        let result = blob::compress_reader(input, source, &mut temp, level);
        drop(temp);
        let (blake3, size) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&temp_path);
                return Err(e);
            }
        };
        let final_path = self.root.join(blob::blob_path(&blake3));
        let written = if final_path.exists() {
            fsutil::remove_file_if_exists(&temp_path)?;
            false
        } else {
            let folder = fsutil::parent_of(&final_path);
            fsutil::create_dir_all(&folder)?;
            fsutil::rename(&temp_path, &final_path)?;
            fsutil::sync_dir(&folder)?;
            true
        };
        // The blob that is stored (an existing one is kept as it is), as clients will get it.
        let (blob_blake3, blob_size) = blob::hash_file(&final_path)?;
        let stored = StoredFile {
            size: blob_size,
            blake3: blob_blake3,
        };
        Ok((blake3, size, stored, written))
    }

    /// Takes a zip archive apart (see [`crate::archive`]) and stores its parts as blobs.
    /// Returns `None` when it is not an archive the client can rebuild exactly: then it is
    /// published as a plain file, with whole-file deltas. Counts new blobs in `new`.
    pub(super) fn store_archive(
        &self,
        source: &Path,
        level: i32,
        new: &mut (usize, u64),
    ) -> Result<Option<Archive>> {
        let mut magic = [0u8; 4];
        let looks = File::open(source)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && crate::archive::zip::looks_like_zip(&magic);
        if !looks || std::fs::metadata(source).map_or(u64::MAX, |m| m.len()) > MAX_ARCHIVE_IN_MEMORY
        {
            return Ok(None);
        }
        let bytes = fsutil::read(source)?;
        let Some(parts) = crate::archive::zip::take_apart(&bytes) else {
            return Ok(None);
        };
        let mut store = |content: &[u8]| -> Result<(String, u64, StoredFile)> {
            let (blake3, size, stored, written) =
                self.store_reader(&mut &content[..], source, level)?;
            if written {
                new.0 += 1;
                new.1 += stored.size;
            }
            Ok((blake3, size, stored))
        };
        let (blake3, size, stored) = store(&parts.skeleton)?;
        let skeleton = Skeleton {
            size,
            blake3,
            blob_size: stored.size,
            blob_blake3: stored.blake3,
            deltas: Vec::new(),
            pack_offset: None,
        };
        let mut members = Vec::with_capacity(parts.members.len());
        for member in parts.members {
            let (blake3, size, stored) = store(&member.content)?;
            members.push(Member {
                name: member.name,
                offset: member.offset,
                stream_size: member.stream_size,
                method: member.method,
                size,
                blake3,
                blob_size: stored.size,
                blob_blake3: stored.blake3,
                deltas: Vec::new(),
                pack_offset: None,
            });
        }
        Ok(Some(Archive {
            format: ArchiveFormat::Zip,
            skeleton,
            members,
        }))
    }
}
