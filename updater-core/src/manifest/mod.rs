//! The release manifest: every file of one release, with size, executable bit and BLAKE3.
//!
//! A manifest is the content of a release's TUF target, so it is covered by the signed
//! targets metadata (length and sha256). File contents are not TUF targets: they are
//! content-addressed blobs (see [`crate::blob`]). Every byte the client downloads because of
//! a manifest is authenticated against it *before* it is parsed: a blob or a pack slice by
//! its `blob_size` and `blob_blake3`, a delta by its `size` and `blake3`. Only then is it
//! decompressed or applied, into a sink capped at the file's `size` that checks the file's
//! `blake3` (format 2; format 1 manifests, which listed no hash for blobs and deltas, are
//! refused: see `docs/repository-format.md`).
//!
//! Parsing refuses anything that could write outside a version folder: every path is a
//! [`RelativePath`], no path may be listed twice, and no file may sit "inside" another file.

use appstart_layout::{RelativePath, VersionName};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod validate;

pub use validate::{check_label, is_blake3_hex};

/// The manifest format this code reads and writes.
///
/// Format 2 added `blob_blake3` to every file and archive part and `blake3` to every delta,
/// so that downloaded bytes are authenticated before any decoder sees them. Format 1
/// manifests are refused: their blobs and deltas could only be checked after decoding.
pub const MANIFEST_FORMAT: u32 = 2;
/// Most files one release may list.
pub const MAX_FILES: usize = 1_000_000;
/// Largest manifest a client downloads or reads, whatever its signed length says.
pub const MAX_MANIFEST_SIZE: u64 = 128 << 20;

/// One release's file list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The app's name.
    pub app: String,
    /// The release's version.
    pub version: VersionName,
    /// The channel it was published to.
    pub channel: String,
    /// The platform it is for (`linux-x86_64`, or `any`).
    pub platform: String,
    /// The executable the launcher runs.
    pub executable: RelativePath,
    /// A launcher shipped in the release, installed as `DIR/appstart` when switching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<RelativePath>,
    /// Every regular file, sorted by path.
    pub files: Vec<FileEntry>,
    /// Folders that must exist even when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<RelativePath>,
    /// One file concatenating this release's blobs, for fetching many with few requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackRef>,
}

/// A release's pack file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackRef {
    /// Repository path (under `packs/`).
    pub path: RelativePath,
    /// Its size in bytes.
    pub size: u64,
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Where it goes in the version folder.
    pub path: RelativePath,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is executable.
    pub executable: bool,
    /// BLAKE3 of its content, lowercase hex.
    pub blake3: String,
    /// Size of its compressed blob in the repository.
    pub blob_size: u64,
    /// BLAKE3 of its compressed blob (checked before the blob is decompressed). Empty only in
    /// records of versions installed from format 1 manifests.
    #[serde(default)]
    pub blob_blake3: String,
    /// Deltas that rebuild this file from an older one, each smaller than the blob.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaEntry>,
    /// Where this file's blob starts in the release's pack (it is `blob_size` bytes long).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_offset: Option<u64>,
    /// For a zip archive the publisher could take apart: how to rebuild it, byte for byte,
    /// from its members' contents and its headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Box<Archive>>,
}

/// How a zip archive (zip, jar, wheel, nupkg) is rebuilt from parts.
///
/// The archive is its `skeleton` (every byte outside the members' data: local headers,
/// data descriptors, the central directory, and the data of members that cannot be
/// recompressed exactly) with each member's data inserted at `offset`: its content compressed
/// with `method`, which must give exactly `stream_size` bytes. Each part is content in its
/// own right (a blob, deltas, a place in the pack), so an update moves only the members that
/// changed, plus a small delta of the headers. The rebuilt archive is checked against the
/// file's BLAKE3; if anything differs the client takes the whole file instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// Always `zip`.
    pub format: ArchiveFormat,
    /// The bytes outside the members' data, in order.
    pub skeleton: Skeleton,
    /// The members whose data is rebuilt, by increasing offset.
    pub members: Vec<Member>,
}

/// Archive formats the client can rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveFormat {
    /// PKZIP, as used by zip, jar, wheel and nupkg files.
    Zip,
}

/// An archive's bytes outside its members' data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skeleton {
    /// Its size in bytes.
    pub size: u64,
    /// BLAKE3 of those bytes.
    pub blake3: String,
    /// Size of its compressed blob.
    pub blob_size: u64,
    /// BLAKE3 of its compressed blob.
    #[serde(default)]
    pub blob_blake3: String,
    /// Deltas from older skeletons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaEntry>,
    /// Where its blob starts in the release's pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_offset: Option<u64>,
}

/// One archive member whose data the client rebuilds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Its name in the archive (for messages and for finding delta bases; never a path).
    pub name: String,
    /// Where its data starts in the archive.
    pub offset: u64,
    /// Length of its data in the archive (compressed).
    pub stream_size: u64,
    /// How its content is turned into that data.
    pub method: crate::archive::Method,
    /// Size of its content (uncompressed).
    pub size: u64,
    /// BLAKE3 of its content.
    pub blake3: String,
    /// Size of its content's blob.
    pub blob_size: u64,
    /// BLAKE3 of its content's blob.
    #[serde(default)]
    pub blob_blake3: String,
    /// Deltas from older contents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<DeltaEntry>,
    /// Where its blob starts in the release's pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_offset: Option<u64>,
}

/// What produced bytes must be: their size and BLAKE3, and a name for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// A file path, an archive member's name, or an archive's skeleton.
    pub name: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3, lowercase hex.
    pub blake3: &'a str,
}

/// Content the client can produce from a local copy, a delta or a blob: a file, an archive
/// member, or an archive's skeleton. The planner and the stager work on this.
pub trait Content {
    /// What the produced bytes must be.
    fn expected(&self) -> Expected<'_>;
    /// Size of the blob.
    fn blob_size(&self) -> u64;
    /// BLAKE3 of the blob (the compressed bytes), lowercase hex.
    fn blob_blake3(&self) -> &str;
    /// Deltas that rebuild it.
    fn deltas(&self) -> &[DeltaEntry];
    /// Where its blob starts in the release's pack.
    fn pack_offset(&self) -> Option<u64>;
}

macro_rules! content_impl {
    ($type:ty, $this:ident => $name:expr) => {
        impl Content for $type {
            fn expected(&self) -> Expected<'_> {
                let $this = self;
                Expected {
                    name: $name,
                    size: self.size,
                    blake3: &self.blake3,
                }
            }
            fn blob_size(&self) -> u64 {
                self.blob_size
            }
            fn blob_blake3(&self) -> &str {
                &self.blob_blake3
            }
            fn deltas(&self) -> &[DeltaEntry] {
                &self.deltas
            }
            fn pack_offset(&self) -> Option<u64> {
                self.pack_offset
            }
        }
    };
}
content_impl!(FileEntry, file => file.path.as_str());
content_impl!(Member, member => member.name.as_str());
content_impl!(Skeleton, _skeleton => "(archive headers)");

impl FileEntry {
    /// This file's parts other than itself: an archive's skeleton and members.
    pub fn parts(&self) -> Vec<&dyn Content> {
        let mut parts: Vec<&dyn Content> = Vec::new();
        if let Some(archive) = &self.archive {
            parts.push(&archive.skeleton);
            parts.extend(archive.members.iter().map(|m| m as &dyn Content));
        }
        parts
    }
}

/// A delta from an older file (identified by its BLAKE3) to this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaEntry {
    /// BLAKE3 of the file the delta applies to.
    pub base: String,
    /// Size of that file.
    pub base_size: u64,
    /// Encoding.
    pub algorithm: crate::delta::Algorithm,
    /// Size of the delta in the repository.
    pub size: u64,
    /// BLAKE3 of the delta file, checked before the delta is cached or applied. Empty only in
    /// records of versions installed from format 1 manifests.
    #[serde(default)]
    pub blake3: String,
}

impl Manifest {
    /// Parses and validates manifest bytes; `what` names the source in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::format(what, format!("release manifest: {e}")))?;
        manifest.validate(what)?;
        Ok(manifest)
    }

    /// The manifest as pretty JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Total size of all files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
