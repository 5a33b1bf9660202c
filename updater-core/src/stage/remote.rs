//! Content from the network (step 3): a delta applied to a base on disk, else the blob;
//! each authenticated against its signed size and BLAKE3 before it is cached or decoded.

use std::fs::File;
use std::path::Path;

use appstart_layout::fsutil;

use super::plan::usable_deltas;
use super::{LocalFiles, Stager, durable};
use crate::blob;
use crate::download::{CachedFile, fetch_authenticated};
use crate::error::{Error, Result};
use crate::manifest::{Content, Expected};
use crate::transport::join_url;

/// How a piece of content was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Obtained {
    Delta(u64),
    Blob(u64),
}

impl Stager<'_> {
    /// Makes `content` at `dest` from a delta, or else from its blob.
    pub(super) fn obtain_remote(
        &self,
        content: &dyn Content,
        dest: &Path,
        local: &LocalFiles,
        scratch: &Path,
    ) -> Result<Obtained> {
        if let Some(received) = self.patch(content, dest, local, scratch)? {
            return Ok(Obtained::Delta(received));
        }
        Ok(Obtained::Blob(self.fetch_blob(content, dest)?))
    }

    /// Rebuilds `content` at `dest` from a local base and a delta, smallest delta first.
    /// Returns the bytes received, or `None` when no delta applies (no base on disk, or every
    /// delta failed: then the caller falls back to the blob, never to a broken file).
    fn patch(
        &self,
        content: &dyn Content,
        dest: &Path,
        local: &LocalFiles,
        scratch: &Path,
    ) -> Result<Option<u64>> {
        let expected = content.expected();
        for delta in usable_deltas(content, local) {
            let base_expected = Expected {
                name: "delta base",
                size: delta.base_size,
                blake3: &delta.base,
            };
            let Some(base_path) = local.materialize(&base_expected, scratch) else {
                continue;
            };
            let path = crate::delta::delta_path(&delta.base, expected.blake3, delta.algorithm);
            let url = join_url(self.repo_url, &path);
            let cache = self.install.cache_dir();
            fsutil::create_dir_all(&cache)?;
            let name = format!(
                "{}-{}.{}",
                delta.base,
                expected.blake3,
                delta.algorithm.extension()
            );
            let cached = cache.join(&name);
            let partial = cache.join(format!("{name}.partial"));
            let attempt = (|| -> Result<u64> {
                // Authenticated before it is cached or applied: a crafted delta from a mirror
                // never reaches the decoder, and a bad cached one is deleted, not retried.
                let received = fetch_authenticated(
                    self.transport,
                    &url,
                    &CachedFile {
                        path: &cached,
                        partial: &partial,
                        size: delta.size,
                        blake3: &delta.blake3,
                    },
                    &self.retry,
                )?;
                let mut base = std::io::BufReader::new(
                    File::open(&base_path).map_err(|e| Error::io("opening", &base_path, e))?,
                );
                let mut output = std::io::BufWriter::new(
                    File::create(dest).map_err(|e| Error::io("creating", dest, e))?,
                );
                crate::delta::apply_file(
                    delta.algorithm,
                    &mut base,
                    &cached,
                    delta.size,
                    &mut output,
                    &expected,
                    &url,
                    dest,
                )?;
                let output = output
                    .into_inner()
                    .map_err(|e| Error::io("writing", dest, e.into_error()))?;
                durable::file_written(&output, dest)?;
                Ok(received)
            })();
            match attempt {
                Ok(received) => return Ok(Some(received)),
                // The delta's verified bytes stay cached for the next run.
                Err(err) if err.ends_operation() => return Err(err),
                Err(err) => {
                    log::warn!(
                        "delta {url} failed, using the whole file instead: {}",
                        crate::error::chain(&err)
                    );
                    fsutil::remove_file_if_exists(&cached)?;
                    fsutil::remove_file_if_exists(dest)?;
                }
            }
        }
        Ok(None)
    }

    /// Downloads (or finds in the cache) the blob of `content`, authenticated by its signed
    /// size and BLAKE3, and decompresses it to `dest`, verifying the output. Returns the
    /// bytes received over the network.
    pub(super) fn fetch_blob(&self, content: &dyn Content, dest: &Path) -> Result<u64> {
        let expected = content.expected();
        let cache = self.install.cache_dir();
        fsutil::create_dir_all(&cache)?;
        let blob_file = cache.join(format!("{}.zst", expected.blake3));
        let partial = cache.join(format!("{}.zst.partial", expected.blake3));
        let url = join_url(self.repo_url, &blob::blob_path(expected.blake3));
        let received = fetch_authenticated(
            self.transport,
            &url,
            &CachedFile {
                path: &blob_file,
                partial: &partial,
                size: content.blob_size(),
                blake3: content.blob_blake3(),
            },
            &self.retry,
        )?;
        let written = blob::decompress_to_file(&blob_file, dest, &expected)
            .and_then(|file| durable::file_written(&file, dest));
        if let Err(err) = written {
            // Signed, yet not the content the manifest describes (a publisher's fault): never
            // kept, so the next run fetches it again once the repository is fixed.
            fsutil::remove_file_if_exists(&blob_file)?;
            return Err(err.mismatch_of(&url));
        }
        Ok(received)
    }
}
