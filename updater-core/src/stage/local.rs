//! What the client already has on disk, by BLAKE3: the files of installed versions, the
//! members of their zip archives, and those archives' skeletons.
//!
//! Everything here is found through the manifests of installed versions (trusted when they
//! were installed) but read from files a user could have changed since, so nothing is used
//! unverified: a file whose stat shows it untouched since we wrote it is used as it is,
//! anything else is hashed (or extracted and hashed) first.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use appstart_layout::VersionName;

use super::{FileStat, Records};
use crate::archive::Method;
use crate::manifest::Expected;

/// Content on disk, by BLAKE3.
#[derive(Debug, Default)]
pub struct LocalFiles {
    by_hash: HashMap<String, Vec<Source>>,
    /// How many installed versions were indexed.
    versions: usize,
}

/// One place some content can be taken from.
#[derive(Debug)]
enum Source {
    /// A file of an installed version.
    File(LocalFile),
    /// The data of a member of an installed zip archive.
    Member {
        archive: PathBuf,
        offset: u64,
        stream_size: u64,
        method: Method,
    },
    /// The bytes of an installed zip archive outside its members' data.
    Skeleton {
        archive: PathBuf,
        /// The members' data ranges, by offset.
        holes: Vec<(u64, u64)>,
    },
}

/// A file of an installed version.
#[derive(Debug)]
pub(super) struct LocalFile {
    pub path: PathBuf,
    pub size: u64,
    pub executable: bool,
    pub stat: Option<FileStat>,
}

impl LocalFile {
    /// Whether its stat shows it untouched since we wrote it.
    pub fn untouched(&self, meta: &std::fs::Metadata) -> bool {
        self.stat
            .is_some_and(|s| s.is_known() && s == FileStat::of(&self.path, meta))
    }
}

impl Drop for LocalFiles {
    /// Freed on another thread (`background_drop`): a path per installed file.
    fn drop(&mut self) {
        let by_hash = std::mem::take(&mut self.by_hash);
        let entries = by_hash.len();
        crate::background_drop::drop_in_background(by_hash, entries);
    }
}

impl LocalFiles {
    /// Indexes the files (and archive parts) of every installed version in `versions` that
    /// has a record.
    pub fn index(records: &Records<'_>, versions: &[VersionName]) -> Self {
        let mut local = LocalFiles::default();
        let found: Vec<_> = versions
            .iter()
            .filter_map(|version| Some((version, records.get(version)?)))
            .collect();
        // Sized for the largest version: most content is in every installed version, so
        // the others mostly add to keys already there.
        let most = found.iter().map(|(_, r)| r.manifest.files.len()).max();
        local.by_hash.reserve(most.unwrap_or(0));
        local.versions = found.len();
        for (version, record) in &found {
            let dir = records.install().version_dir(version);
            for (index, entry) in record.manifest.files.iter().enumerate() {
                let path = entry.path.join_to(&dir);
                let file = |path| {
                    Source::File(LocalFile {
                        path,
                        size: entry.size,
                        executable: entry.executable,
                        stat: record.stat(index),
                    })
                };
                let Some(archive) = &entry.archive else {
                    local.add(&entry.blake3, file(path));
                    continue;
                };
                local.add(&entry.blake3, file(path.clone()));
                local.add(
                    &archive.skeleton.blake3,
                    Source::Skeleton {
                        archive: path.clone(),
                        holes: archive
                            .members
                            .iter()
                            .map(|m| (m.offset, m.stream_size))
                            .collect(),
                    },
                );
                for member in &archive.members {
                    local.add(
                        &member.blake3,
                        Source::Member {
                            archive: path.clone(),
                            offset: member.offset,
                            stream_size: member.stream_size,
                            method: member.method,
                        },
                    );
                }
            }
        }
        local
    }

    /// Adds a file just read and found to hold `hash` (`stat`: its stat while it was read),
    /// for a repair, which takes nothing from the damaged folder without hashing it first.
    pub(crate) fn add_verified(
        &mut self,
        hash: &str,
        path: PathBuf,
        size: u64,
        executable: bool,
        stat: FileStat,
    ) {
        self.add(
            hash,
            Source::File(LocalFile {
                path,
                size,
                executable,
                stat: Some(stat),
            }),
        );
    }

    fn add(&mut self, hash: &str, source: Source) {
        // Looked up first: the key is copied only for content not seen yet, about one
        // version's files out of all installed versions' (two on an app kept updated).
        match self.by_hash.get_mut(hash) {
            Some(sources) => sources.push(source),
            None => {
                // Room for a source in each of two installed versions (the usual `keep`):
                // most content is in both.
                let mut sources = Vec::with_capacity(self.versions.clamp(1, 2));
                sources.push(source);
                self.by_hash.insert(hash.to_string(), sources);
            }
        }
    }

    /// Whether some local content has this BLAKE3.
    pub fn has(&self, hash: &str) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Whether an installed file (not an archive part) has this BLAKE3.
    pub fn has_file(&self, hash: &str) -> bool {
        self.files(hash).next().is_some()
    }

    /// Installed files with this BLAKE3.
    pub(super) fn files(&self, hash: &str) -> impl Iterator<Item = &LocalFile> {
        self.by_hash
            .get(hash)
            .into_iter()
            .flatten()
            .filter_map(|s| match s {
                Source::File(file) => Some(file),
                _ => None,
            })
    }

    /// An installed archive member whose data is exactly what `method` makes of content
    /// `hash` in `stream_size` bytes: those bytes can be copied as they are (the rebuilt
    /// archive's BLAKE3 checks them). Returns the archive and the data's offset.
    pub fn raw_member(&self, hash: &str, method: Method, stream_size: u64) -> Option<(&Path, u64)> {
        self.by_hash.get(hash)?.iter().find_map(|s| match s {
            Source::Member {
                archive,
                offset,
                stream_size: size,
                method: m,
            } if *m == method && *size == stream_size => Some((archive.as_path(), *offset)),
            _ => None,
        })
    }

    /// A verified file holding `expected`: an installed file as it is (read-only use), or an
    /// archive part extracted into `scratch`. `None` when nothing local has it intact.
    pub fn materialize(&self, expected: &Expected<'_>, scratch: &Path) -> Option<PathBuf> {
        for source in self.by_hash.get(expected.blake3)? {
            let result = match source {
                Source::File(file) => verify_in_place(file, expected),
                Source::Member {
                    archive,
                    offset,
                    stream_size,
                    method,
                } => {
                    let read = || -> std::io::Result<Box<dyn Read>> {
                        let mut input = File::open(archive)?;
                        input.seek(SeekFrom::Start(*offset))?;
                        Ok(method.decoder(std::io::BufReader::new(input.take(*stream_size))))
                    };
                    extract(read, expected, archive, scratch)
                }
                Source::Skeleton { archive, holes } => {
                    let read = || -> std::io::Result<Box<dyn Read>> {
                        Ok(Box::new(SkeletonReader::open(archive, holes.clone())?))
                    };
                    extract(read, expected, archive, scratch)
                }
            };
            if let Some(path) = result {
                return Some(path);
            }
        }
        None
    }
}

fn verify_in_place(file: &LocalFile, expected: &Expected<'_>) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(&file.path).ok()?;
    if !meta.is_file() || meta.len() != expected.size {
        return None;
    }
    if file.untouched(&meta) {
        return Some(file.path.clone());
    }
    let input = File::open(&file.path).ok()?;
    let what = file.path.display().to_string();
    crate::blob::copy_verified(input, &mut std::io::sink(), expected, &what, &file.path)
        .map_err(|e| log::warn!("not using {what}: {e}"))
        .ok()?;
    Some(file.path.clone())
}

/// Writes what `read` yields to `scratch/<blake3>`, verified; reuses a verified earlier copy.
fn extract(
    read: impl Fn() -> std::io::Result<Box<dyn Read>>,
    expected: &Expected<'_>,
    archive: &Path,
    scratch: &Path,
) -> Option<PathBuf> {
    let dest = scratch.join(expected.blake3);
    if std::fs::metadata(&dest).is_ok_and(|m| m.len() == expected.size) {
        return Some(dest);
    }
    std::fs::create_dir_all(scratch).ok()?;
    let what = format!("{} in {}", expected.name, archive.display());
    let result = (|| -> crate::Result<()> {
        let input = read().map_err(|e| crate::Error::io("reading", archive, e))?;
        let mut output = File::create(&dest).map_err(|e| crate::Error::io("creating", &dest, e))?;
        crate::blob::copy_verified(input, &mut output, expected, &what, &dest)
    })();
    match result {
        Ok(()) => Some(dest),
        Err(err) => {
            log::warn!("not using {what}: {err}");
            let _ = std::fs::remove_file(&dest);
            None
        }
    }
}

/// Reads an archive's bytes outside the given data ranges.
struct SkeletonReader {
    file: std::io::BufReader<File>,
    position: u64,
    holes: std::vec::IntoIter<(u64, u64)>,
    next_hole: Option<(u64, u64)>,
}

impl SkeletonReader {
    fn open(archive: &Path, holes: Vec<(u64, u64)>) -> std::io::Result<Self> {
        let mut holes = holes.into_iter();
        let next_hole = holes.next();
        Ok(SkeletonReader {
            file: std::io::BufReader::new(File::open(archive)?),
            position: 0,
            holes,
            next_hole,
        })
    }
}

impl Read for SkeletonReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let limit = match self.next_hole {
                Some((start, length)) if self.position >= start => {
                    self.position = start + length;
                    self.file.seek(SeekFrom::Start(self.position))?;
                    self.next_hole = self.holes.next();
                    continue;
                }
                Some((start, _)) => (start - self.position).min(buffer.len() as u64) as usize,
                None => buffer.len(),
            };
            let n = self.file.read(&mut buffer[..limit])?;
            self.position += n as u64;
            return Ok(n);
        }
    }
}
