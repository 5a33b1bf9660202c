//! Where the trusted metadata lives on disk, and how it is read back (5.2) and written.
//!
//! This file exists so that every write of trusted state is in one place and atomic
//! (temporary file, fsync, rename, fsync of the folder: `fsutil::write_atomic`). Files:
//! `root.json`, `timestamp.json`, `snapshot.json`, `targets.json`, and
//! `<percent-encoded role>.json` for delegated roles, each byte for byte as downloaded;
//! `timestamp.etag` only makes the next timestamp request conditional.

use crate::error::Result;
use crate::tuf::metadata::Role;

use super::{Trusted, TrustedMetadata};

const ETAG_FILE: &str = "timestamp.etag";
/// Largest stored ETag read back (a server's header value; only ever sent back).
const MAX_ETAG_FILE: u64 = 4096;

impl TrustedMetadata {
    pub(super) fn load_local<T: Role>(&self, role: &str) -> Option<Trusted<T>> {
        let path = self.dir.join(format!("{role}.json"));
        // Stored files are capped like downloads of the same role.
        let limit = match role {
            "timestamp" => self.limits.max_timestamp_size,
            "snapshot" => self.limits.max_snapshot_size,
            _ => self.limits.max_targets_size,
        };
        let bytes = appstart_layout::fsutil::read_capped(&path, limit)
            .map_err(|err| {
                if path.exists() {
                    log::info!("not trusting stored {}: {err}", path.display());
                }
            })
            .ok()?;
        match self.verify::<T>(&bytes, role, &path.display().to_string()) {
            Ok(value) => Some(Trusted { value, bytes }),
            Err(err) => {
                log::info!("not trusting stored {}: {err}", path.display());
                None
            }
        }
    }

    /// Stores a verified role under `<file_stem>.json`, atomically (temporary file, fsync,
    /// rename).
    pub(super) fn persist(&self, file_stem: &str, bytes: &[u8]) -> Result<()> {
        appstart_layout::fsutil::write_atomic(&self.dir.join(format!("{file_stem}.json")), bytes)?;
        Ok(())
    }

    /// Deletes a stored role that is no longer trusted (and the timestamp's ETag with it).
    pub(super) fn forget(&self, role: &str) -> Result<()> {
        appstart_layout::fsutil::remove_file_if_exists(&self.dir.join(format!("{role}.json")))?;
        if role == "timestamp" {
            appstart_layout::fsutil::remove_file_if_exists(&self.dir.join(ETAG_FILE))?;
        }
        Ok(())
    }

    /// The ETag stored with the trusted timestamp, if any.
    pub(super) fn stored_etag(&self) -> Option<String> {
        appstart_layout::fsutil::read_to_string_capped(&self.dir.join(ETAG_FILE), MAX_ETAG_FILE)
            .ok()
    }

    /// Stores the ETag of the timestamp just processed (or removes a stale one).
    pub(super) fn store_etag(&self, etag: Option<&str>) -> Result<()> {
        let path = self.dir.join(ETAG_FILE);
        match etag {
            Some(etag) => appstart_layout::fsutil::write_atomic(&path, etag.as_bytes())?,
            None => appstart_layout::fsutil::remove_file_if_exists(&path)?,
        }
        Ok(())
    }
}
