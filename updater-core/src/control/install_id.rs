//! The install id: 128 random bits, made once per install and kept in `state/install-id` as
//! 32 lowercase hex digits. It holds no hardware or user data; it only places the install
//! in rollouts (see [`super::bucket`]) and lets a publisher target single installs.

use std::io::Write;
use std::path::Path;

use appstart_layout::fsutil;

use crate::error::{Error, Result};

/// A parsed install id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstallId(String);

impl InstallId {
    /// Parses 32 hex digits (either case; kept lowercase).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(InstallId(text.to_ascii_lowercase()))
        } else {
            Err(format!("install id {text:?} is not 32 hex digits"))
        }
    }

    /// A new random id.
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Invalid(format!("no randomness for the install id: {e}")))?;
        Ok(InstallId(hex::encode(bytes)))
    }

    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the id at `path`; `None` if the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        if !path.exists() {
            return Ok(None);
        }
        let text = fsutil::read_to_string_capped(path, 1024)?;
        InstallId::parse(&text)
            .map(Some)
            .map_err(|e| Error::format(path.display().to_string(), e))
    }

    /// Reads the id at `path`, making it first if there is none. A file that does not hold
    /// an id (damaged, or cut short by a crash while it was written) is replaced by a new id,
    /// with a warning: the id carries nothing worth more than updates that keep working.
    /// Two processes making it at once agree: the file is created exclusively, and the loser
    /// reads the winner's.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match InstallId::load(path) {
            Ok(Some(id)) => return Ok(id),
            Ok(None) => {}
            Err(err) => {
                log::warn!("{err}; making a new install id");
                fsutil::remove_file_if_exists(path)?;
            }
        }
        let id = InstallId::random()?;
        fsutil::create_dir_all(&fsutil::parent_of(path))?;
        // `create_new` rather than a temporary file and a hard link: it works on every file
        // system (FAT and some network shares have no hard links).
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut file) => {
                file.write_all(format!("{}\n", id.as_str()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::io("writing", path, e))?;
                fsutil::sync_dir(&fsutil::parent_of(path))?;
                Ok(id)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another process made it just now; if it is still being written, wait for it.
                for _ in 0..50 {
                    if let Ok(Some(id)) = InstallId::load(path) {
                        return Ok(id);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                InstallId::load(path)?.ok_or_else(|| Error::io("reading", path, e))
            }
            Err(e) => Err(Error::io("creating", path, e)),
        }
    }
}

impl std::fmt::Display for InstallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_once_and_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("install-id");
        let first = InstallId::load_or_create(&path).unwrap();
        assert_eq!(first.as_str().len(), 32);
        assert_eq!(InstallId::load_or_create(&path).unwrap(), first);
        assert_ne!(InstallId::random().unwrap(), first);
        std::fs::write(&path, "zz").unwrap();
        let err = InstallId::load(&path).unwrap_err().to_string();
        assert!(err.contains("install-id"), "{err}");
        // A damaged id does not wedge anything: a new one replaces it.
        let new = InstallId::load_or_create(&path).unwrap();
        assert_ne!(new, first);
        assert_eq!(InstallId::load(&path).unwrap(), Some(new));
    }
}
