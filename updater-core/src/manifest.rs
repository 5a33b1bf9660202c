//! The release manifest: every file of one release, with size, executable bit and BLAKE3.
//!
//! A manifest is the content of a release's TUF target, so it is covered by the signed
//! targets metadata (length and sha256). File contents are not TUF targets: they are
//! content-addressed blobs (see [`crate::blob`]) verified against the BLAKE3 and size listed
//! here. Parsing refuses anything that could write outside a version folder: every path is a
//! [`RelativePath`], no path may be listed twice, and no file may sit "inside" another file.

use std::collections::BTreeSet;

use appstart_layout::{RelativePath, VersionName};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The manifest format this code reads and writes.
pub const MANIFEST_FORMAT: u32 = 1;
/// Most files one release may list.
pub const MAX_FILES: usize = 1_000_000;
/// Largest manifest file a client downloads, whatever length the targets metadata signs.
pub const MAX_MANIFEST_SIZE: u64 = 128 * 1024 * 1024;

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

    /// Checks the rules that types alone cannot express.
    pub fn validate(&self, what: &str) -> Result<()> {
        let invalid = |message: String| Err(Error::format(what, message));
        if self.format != MANIFEST_FORMAT {
            return invalid(format!(
                "field `format` is {}, this client reads format {MANIFEST_FORMAT}",
                self.format
            ));
        }
        for (field, value) in [
            ("app", &self.app),
            ("channel", &self.channel),
            ("platform", &self.platform),
        ] {
            check_label(field, value).or_else(|e| invalid(e.to_string()))?;
        }
        if self.files.len() > MAX_FILES {
            return invalid(format!("field `files`: more than {MAX_FILES} files"));
        }
        let mut paths = BTreeSet::new();
        for file in &self.files {
            if !is_blake3_hex(&file.blake3) {
                return invalid(format!(
                    "files[{}].blake3: not 64 lowercase hex digits",
                    file.path
                ));
            }
            if file.deltas.iter().any(|d| !is_blake3_hex(&d.base)) {
                return invalid(format!(
                    "files[{}].deltas: a base is not 64 lowercase hex digits",
                    file.path
                ));
            }
            if !paths.insert(file.path.as_str()) {
                return invalid(format!("files: {} is listed twice", file.path));
            }
            if let Some(archive) = &file.archive {
                archive
                    .validate(file.size)
                    .or_else(|m| invalid(format!("files[{}].archive: {m}", file.path)))?;
            }
        }
        // A file may not be a folder of another file ("a" and "a/b").
        for file in &self.files {
            for parent in file.path.parents() {
                if paths.contains(parent) {
                    return invalid(format!("files: {} is inside the file {parent}", file.path));
                }
            }
        }
        for dir in &self.directories {
            if paths.contains(dir.as_str()) {
                return invalid(format!("directories: {dir} is also a file"));
            }
        }
        let files = self.files.iter().map(|f| &f.path);
        appstart_layout::names::check_portable_names(files.chain(&self.directories))
            .or_else(|e| invalid(format!("files and directories: {e}")))?;
        if let Some(pack) = &self.pack {
            if !pack.path.as_str().starts_with("packs/") {
                return invalid(format!(
                    "field `pack.path`: {} is not under packs/",
                    pack.path
                ));
            }
            let beyond = |c: &dyn Content| {
                c.pack_offset()
                    .is_some_and(|o| o.saturating_add(c.blob_size()) > pack.size)
            };
            if let Some(file) = self
                .files
                .iter()
                .find(|f| beyond(*f) || f.parts().into_iter().any(beyond))
            {
                return invalid(format!(
                    "files[{}].pack_offset: beyond the end of the pack",
                    file.path
                ));
            }
        }
        let executable = self.files.iter().find(|f| f.path == self.executable);
        match executable {
            Some(f) if f.executable => {}
            Some(_) => {
                return invalid(format!(
                    "field `executable`: {} is not marked executable",
                    self.executable
                ));
            }
            None => {
                return invalid(format!(
                    "field `executable`: {} is not among the files",
                    self.executable
                ));
            }
        }
        if let Some(launcher) = &self.launcher
            && !self
                .files
                .iter()
                .any(|f| &f.path == launcher && f.executable)
        {
            return invalid(format!(
                "field `launcher`: {launcher} is not an executable file of the release"
            ));
        }
        Ok(())
    }

    /// Total size of all files.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

impl Archive {
    /// Most members one archive may list.
    pub const MAX_MEMBERS: usize = 1_000_000;

    /// The rules types cannot express: members in order, inside the archive, not
    /// overlapping, and together with the skeleton exactly the archive's size.
    fn validate(&self, archive_size: u64) -> std::result::Result<(), String> {
        if self.members.len() > Self::MAX_MEMBERS {
            return Err(format!("more than {} members", Self::MAX_MEMBERS));
        }
        if !is_blake3_hex(&self.skeleton.blake3) {
            return Err("skeleton.blake3: not 64 lowercase hex digits".into());
        }
        let mut end = 0u64;
        let mut total = self.skeleton.size;
        for member in &self.members {
            if member.name.len() > 65_535 {
                return Err("a member name is longer than a zip allows".into());
            }
            if !is_blake3_hex(&member.blake3) {
                return Err(format!(
                    "member {:?}: blake3 is not 64 lowercase hex digits",
                    member.name
                ));
            }
            let member_end = member.offset.checked_add(member.stream_size);
            if member.offset < end || member_end.is_none_or(|e| e > archive_size) {
                return Err(format!(
                    "member {:?}: data at {}+{} overlaps another or lies outside the archive",
                    member.name, member.offset, member.stream_size
                ));
            }
            end = member_end.unwrap_or(u64::MAX);
            total = total.saturating_add(member.stream_size);
        }
        if self
            .members
            .iter()
            .flat_map(|m| &m.deltas)
            .chain(&self.skeleton.deltas)
            .any(|d| !is_blake3_hex(&d.base))
        {
            return Err("a delta base is not 64 lowercase hex digits".into());
        }
        if total != archive_size {
            return Err(format!(
                "skeleton and member data add up to {total} bytes, the archive has {archive_size}"
            ));
        }
        Ok(())
    }
}

/// Whether `text` is a lowercase hex BLAKE3 digest.
pub fn is_blake3_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Validates an app, channel or platform name: 1 to 64 of `a-z 0-9 . _ -`, starting with a
/// letter or digit. These become parts of target names and URLs.
pub fn check_label(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{field} {value:?}: use 1 to 64 characters from a-z 0-9 . _ - starting with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_json(files: &str, exe: &str) -> String {
        format!(
            r#"{{"format":1,"app":"demo","version":"1.0.0","channel":"stable","platform":"any","executable":"{exe}","files":[{files}]}}"#
        )
    }

    fn file(path: &str, exe: bool) -> String {
        format!(
            r#"{{"path":"{path}","size":1,"executable":{exe},"blake3":"{}","blob_size":1}}"#,
            "a".repeat(64)
        )
    }

    #[test]
    fn accepts_a_good_manifest() {
        let json = manifest_json(
            &[file("bin/app", true), file("data/x", false)].join(","),
            "bin/app",
        );
        Manifest::parse(json.as_bytes(), "m").unwrap();
    }

    #[test]
    fn refuses_escaping_or_conflicting_paths() {
        for files in [
            file("../evil", false),
            file("/etc/passwd", false),
            file("a/../../b", false),
            file("C:/x", false),
            format!("{},{}", file("bin/app", true), file("bin/app", true)),
            format!("{},{}", file("bin/app", true), file("bin/app/x", false)),
        ] {
            let json = manifest_json(&format!("{},{files}", file("bin/app", true)), "bin/app");
            assert!(Manifest::parse(json.as_bytes(), "m").is_err(), "{files}");
        }
    }

    #[test]
    fn refuses_a_missing_or_non_executable_executable() {
        let json = manifest_json(&file("bin/app", false), "bin/app");
        assert!(Manifest::parse(json.as_bytes(), "m").is_err());
        let json = manifest_json(&file("bin/app", true), "bin/other");
        assert!(Manifest::parse(json.as_bytes(), "m").is_err());
    }

    #[test]
    fn labels() {
        assert!(check_label("app", "my-app.2").is_ok());
        for bad in ["", "-x", "A", "a/b", "a b", &"a".repeat(65)] {
            assert!(check_label("app", bad).is_err(), "{bad}");
        }
    }
}
