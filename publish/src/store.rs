//! Content-addressed blob storage: `blobs/<xx>/<blake3>.zst`, written once, never rewritten.

use super::compress::{HashTee, Worker, copy_with, with_worker};
use super::durable::Pending;
use super::{MAX_ARCHIVE_IN_MEMORY, Repository};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;

use appstart_layout::{RelativePath, fsutil};

use updater_core::advanced::archive;
use updater_core::advanced::blob;
use updater_core::advanced::manifest;
use updater_core::advanced::manifest::{
    Archive, ArchiveFormat, Content, Expected, FileEntry, Member, Skeleton,
};
use updater_core::{Error, Result};

/// Files up to this size are read into memory once (hashed and compressed from there);
/// larger ones are streamed.
pub(super) const SMALL_FILE: u64 = 1 << 20;

/// Archives over this size are taken apart one at a time (see [`Repository::store_archive`]).
const LARGE_ARCHIVE: u64 = 64 << 20;
static LARGE_ARCHIVES: Mutex<()> = Mutex::new(());

/// What the workers of one publish share: the blobs stored or checked so far (by content
/// BLAKE3), and the files to make durable before signing.
#[derive(Debug, Default)]
pub(super) struct Run {
    stored: Mutex<HashMap<String, StoredFile>>,
    pub(super) pending: Pending,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The error for a source file that changed while it was being read.
fn changed(source: &Path) -> Error {
    Error::Invalid(format!(
        "{} changed while it was being published; publish a folder that nothing writes to",
        source.display()
    ))
}

impl Run {
    /// Takes the blobs named by already published manifests as stored: they were durable
    /// before those manifests were signed, so they are reused without being read (only
    /// checked to exist, in case one was deleted by hand).
    pub(super) fn trust(&self, root: &Path, manifests: &[manifest::Manifest]) {
        let mut stored = lock(&self.stored);
        for file in manifests.iter().flat_map(|m| &m.files) {
            let parts = file.parts();
            for content in std::iter::once(file as &dyn Content).chain(parts.iter().copied()) {
                let blake3 = content.expected().blake3;
                if !stored.contains_key(blake3) && root.join(blob::blob_path(blake3)).is_file() {
                    let blob = StoredFile {
                        size: content.blob_size(),
                        blake3: content.blob_blake3().to_string(),
                    };
                    stored.insert(blake3.to_string(), blob);
                }
            }
        }
    }
}

/// A file as stored in the repository: what clients download and authenticate.
#[derive(Debug, Clone)]
pub(super) struct StoredFile {
    pub(super) size: u64,
    pub(super) blake3: String,
}

impl Repository {
    /// The content of a published file or part, from its blob, verified.
    pub(super) fn blob_content(&self, expected: &Expected<'_>) -> Result<Vec<u8>> {
        let path = self.root.join(blob::blob_path(expected.blake3));
        let file = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        let decoder = zstd::stream::read::Decoder::new(file)
            .map_err(|e| Error::io("decompressing", &path, e))?;
        let mut out = Vec::with_capacity(expected.size as usize);
        blob::copy_verified(
            decoder,
            &mut out,
            expected,
            &path.display().to_string(),
            &path,
        )?;
        Ok(out)
    }

    /// Stores `source` as a blob unless the repository already has a sound one for its
    /// content. Returns the entry and whether a blob was written now.
    pub(super) fn store_blob(
        &self,
        run: &Run,
        source: &Path,
        path: RelativePath,
        executable: bool,
        level: i32,
    ) -> Result<(FileEntry, bool)> {
        let (blake3, size, stored, written) =
            with_worker(level, |worker| self.store_file(run, worker, source))?;
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

    /// [`Repository::store_blob`]'s work with one worker's buffers. A file up to
    /// [`SMALL_FILE`] is read once into memory; a larger one is streamed twice (hashed first,
    /// so that content already stored is never compressed; then compressed, hashed again and
    /// refused if it changed in between), so memory stays bounded whatever its size.
    fn store_file(
        &self,
        run: &Run,
        worker: &mut Worker,
        source: &Path,
    ) -> Result<(String, u64, StoredFile, bool)> {
        let mut input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
        let length = input
            .metadata()
            .map_err(|e| Error::io("reading", source, e))?
            .len();
        if length <= SMALL_FILE {
            let mut bytes = std::mem::take(&mut worker.input);
            bytes.clear();
            let result = (&mut input)
                .take(SMALL_FILE + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io("reading", source, e))
                .and_then(|read| match read as u64 == length {
                    true => self.store_bytes_with(run, worker, &bytes, source),
                    false => Err(changed(source)),
                });
            worker.input = bytes;
            return result;
        }
        let mut hasher = blake3::Hasher::new();
        let size = copy_with(&mut input, &mut hasher, &mut worker.input, source)?;
        let blake3 = hasher.finalize().to_hex().to_string();
        if let Some(stored) = self.reusable_blob(run, &blake3, size)? {
            return Ok((blake3, size, stored, false));
        }
        let mut input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
        let (stored, written) = self.write_blob(run, &blake3, source, |out| {
            let mut encoder = zstd::stream::raw::Encoder::with_context(&mut worker.context);
            encoder
                .set_pledged_src_size(Some(size))
                .map_err(|e| Error::io("compressing", source, e))?;
            let mut writer = zstd::stream::zio::Writer::new(out, encoder);
            let mut again = HashTee {
                inner: &mut writer,
                hasher: blake3::Hasher::new(),
            };
            let copied = copy_with(&mut input, &mut again, &mut worker.input, source)?;
            let again = again.hasher.finalize().to_hex().to_string();
            if copied != size || again != blake3 {
                return Err(changed(source));
            }
            writer
                .finish()
                .map_err(|e| Error::io("compressing", source, e))
        })?;
        Ok((blake3, size, stored, written))
    }

    /// Stores `content` (a small file, or a part of an archive) as a blob unless the
    /// repository already has a sound one for it. Returns its BLAKE3, size, the stored blob
    /// and whether it was written now.
    pub(super) fn store_bytes(
        &self,
        run: &Run,
        content: &[u8],
        source: &Path,
        level: i32,
    ) -> Result<(String, u64, StoredFile, bool)> {
        with_worker(level, |worker| {
            self.store_bytes_with(run, worker, content, source)
        })
    }

    fn store_bytes_with(
        &self,
        run: &Run,
        worker: &mut Worker,
        content: &[u8],
        source: &Path,
    ) -> Result<(String, u64, StoredFile, bool)> {
        let blake3 = blake3::hash(content).to_hex().to_string();
        let size = content.len() as u64;
        if let Some(stored) = self.reusable_blob(run, &blake3, size)? {
            return Ok((blake3, size, stored, false));
        }
        let mut compressed = std::mem::take(&mut worker.output);
        compressed.clear();
        compressed.reserve(zstd::zstd_safe::compress_bound(content.len()));
        let result = worker
            .context
            .compress2(&mut compressed, content)
            .map_err(|code| {
                Error::io(
                    "compressing",
                    source,
                    std::io::Error::other(zstd::zstd_safe::get_error_name(code)),
                )
            })
            .and_then(|_| {
                self.write_blob(run, &blake3, source, |out| {
                    out.write_all(&compressed)
                        .map_err(|e| Error::io("writing blob of", source, e))
                })
            });
        worker.output = compressed;
        let (stored, written) = result?;
        Ok((blake3, size, stored, written))
    }

    /// The blob already stored for content `blake3` of `size` bytes, if it is sound: stored
    /// by this publish, or found on disk and checked (it decompresses to exactly that
    /// content). Blobs are renamed into place without their own `fsync` (see `durable.rs`),
    /// so after a power cut a blob's name may exist with incomplete data: it is rewritten.
    fn reusable_blob(&self, run: &Run, blake3: &str, size: u64) -> Result<Option<StoredFile>> {
        if let Some(stored) = lock(&run.stored).get(blake3) {
            return Ok(Some(stored.clone()));
        }
        let path = self.root.join(blob::blob_path(blake3));
        let Ok(file) = File::open(&path) else {
            return Ok(None);
        };
        let expected = Expected {
            name: blake3,
            size,
            blake3,
        };
        let mut tee = HashTee {
            inner: std::io::BufReader::new(file),
            hasher: blake3::Hasher::new(),
        };
        let sound = zstd::stream::read::Decoder::new(&mut tee)
            .map_err(|e| Error::io("decompressing", &path, e))
            .and_then(|decoder| {
                blob::copy_verified(
                    decoder,
                    &mut std::io::sink(),
                    &expected,
                    &path.display().to_string(),
                    &path,
                )
            });
        if let Err(err) = sound {
            log::warn!("rewriting {}: {err}", path.display());
            return Ok(None);
        }
        // The decoder may stop before the end of the file: hash what it left.
        std::io::copy(&mut tee, &mut std::io::sink())
            .map_err(|e| Error::io("reading", &path, e))?;
        let stored = StoredFile {
            size: path
                .metadata()
                .map_err(|e| Error::io("reading", &path, e))?
                .len(),
            blake3: tee.hasher.finalize().to_hex().to_string(),
        };
        lock(&run.stored).insert(blake3.to_string(), stored.clone());
        Ok(Some(stored))
    }

    /// Writes the blob of content `blake3`: `compress` writes the compressed bytes to a
    /// temporary file in its fan-out folder, which is then renamed into place (no `fsync`:
    /// the publish syncs all blobs at once, see `durable.rs`). Returns the stored blob and
    /// whether this call is the one that stored it (two identical files of one release are
    /// stored once, and counted once).
    fn write_blob(
        &self,
        run: &Run,
        blake3: &str,
        source: &Path,
        compress: impl FnOnce(&mut HashTee<std::io::BufWriter<File>>) -> Result<()>,
    ) -> Result<(StoredFile, bool)> {
        let final_path = self.root.join(blob::blob_path(blake3));
        let folder = fsutil::parent_of(&final_path);
        let temp_path = folder.join(fsutil::temp_name("blob"));
        let result = (|| {
            let file =
                File::create(&temp_path).map_err(|e| Error::io("creating", &temp_path, e))?;
            let mut out = HashTee {
                inner: std::io::BufWriter::with_capacity(256 * 1024, file),
                hasher: blake3::Hasher::new(),
            };
            compress(&mut out)?;
            out.inner
                .flush()
                .map_err(|e| Error::io("writing blob of", source, e))?;
            let size = out
                .inner
                .get_ref()
                .metadata()
                .map_err(|e| Error::io("reading", &temp_path, e))?
                .len();
            let stored = StoredFile {
                size,
                blake3: out.hasher.finalize().to_hex().to_string(),
            };
            drop(out);
            fsutil::rename(&temp_path, &final_path)?;
            Ok(stored)
        })();
        let stored = match result {
            Ok(stored) => stored,
            Err(err) => {
                let _ = std::fs::remove_file(&temp_path);
                return Err(err);
            }
        };
        run.pending.wrote(final_path, &folder);
        let mut map = lock(&run.stored);
        let first = !map.contains_key(blake3);
        let stored = map.entry(blake3.to_string()).or_insert(stored).clone();
        Ok((stored, first))
    }

    /// Takes a zip archive apart (see [`updater_core::advanced::archive`]) and stores its parts as blobs.
    /// Returns `None` when it is not an archive the client can rebuild exactly: then it is
    /// published as a plain file, with whole-file deltas. Counts new blobs in `new`.
    pub(super) fn store_archive(
        &self,
        run: &Run,
        source: &Path,
        level: i32,
        new: &mut (usize, u64),
    ) -> Result<Option<Archive>> {
        let mut magic = [0u8; 4];
        let looks = File::open(source)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && archive::zip::looks_like_zip(&magic);
        if !looks || std::fs::metadata(source).map_or(u64::MAX, |m| m.len()) > MAX_ARCHIVE_IN_MEMORY
        {
            return Ok(None);
        }
        // An archive is taken apart in memory (the whole file and its members' contents): a
        // large one is taken apart while no other large one is, so a publish holds one at a
        // time, not one per thread.
        let size = std::fs::metadata(source).map_or(0, |m| m.len());
        let _alone = (size > LARGE_ARCHIVE).then(|| lock(&LARGE_ARCHIVES));
        let bytes = fsutil::read(source)?;
        let Some(parts) = archive::zip::take_apart(&bytes) else {
            return Ok(None);
        };
        let mut store = |content: &[u8]| -> Result<(String, u64, StoredFile)> {
            let (blake3, size, stored, written) = self.store_bytes(run, content, source, level)?;
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
