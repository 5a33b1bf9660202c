//! The rules a manifest's types cannot express, checked when it is parsed: supported format,
//! labels, paths that cannot escape or collide, an executable that is listed, hashes for
//! every download, pack slices and archive members in bounds and not overlapping.

use super::{Archive, Content, MANIFEST_FORMAT, MAX_FILES, Manifest};
use crate::error::{Error, Result};

impl Manifest {
    /// Checks the rules that types alone cannot express.
    pub fn validate(&self, what: &str) -> Result<()> {
        let invalid = |message: String| Err(Error::format(what, message));
        if self.format == 1 {
            return invalid(
                "field `format` is 1: such a manifest lists no hash for its blobs and deltas, \
                 so they could only be checked after decoding; this client needs format 2 \
                 (republish the release with this version of appupdate)"
                    .to_string(),
            );
        }
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
        // Membership only: hashed, not ordered (10,000 paths compared as strings in a tree
        // were as costly as parsing the manifest).
        let mut paths = std::collections::HashSet::with_capacity(self.files.len());
        for file in &self.files {
            if !is_blake3_hex(&file.blake3) {
                return invalid(format!(
                    "files[{}].blake3: not 64 lowercase hex digits",
                    file.path
                ));
            }
            for content in std::iter::once(file as &dyn Content).chain(file.parts()) {
                check_downloads(content)
                    .or_else(|m| invalid(format!("files[{}]: {m}", file.path)))?;
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
            self.check_pack_slices(pack.size)
                .or_else(|m| invalid(format!("field `pack`: {m}")))?;
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

    /// The pack's slices (one per distinct blob) lie inside the pack, in any order, without
    /// overlapping: a slice is fetched and authenticated on its own, and the client skips
    /// the gaps between the slices it needs.
    fn check_pack_slices(&self, pack_size: u64) -> std::result::Result<(), String> {
        let mut slices: Vec<(u64, u64, &str, &str)> = Vec::new();
        for file in &self.files {
            for content in std::iter::once(file as &dyn Content).chain(file.parts()) {
                if let Some(offset) = content.pack_offset() {
                    slices.push((
                        offset,
                        content.blob_size(),
                        content.blob_blake3(),
                        content.expected().name,
                    ));
                }
            }
        }
        slices.sort_unstable();
        slices.dedup_by(|b, a| (a.0, a.1, a.2) == (b.0, b.1, b.2));
        let mut end = 0u64;
        for (offset, size, _, name) in slices {
            let slice_end = offset
                .checked_add(size)
                .filter(|&e| e <= pack_size)
                .ok_or_else(|| {
                    format!("the blob of {name} at {offset}+{size} lies beyond the end of the pack ({pack_size} bytes)")
                })?;
            if offset < end {
                return Err(format!(
                    "the blob of {name} at {offset}+{size} overlaps another blob's slice (which ends at {end})"
                ));
            }
            end = slice_end;
        }
        Ok(())
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

/// The hashes that authenticate what the client may download for `content`: its blob, and
/// each delta with its base.
fn check_downloads(content: &dyn Content) -> std::result::Result<(), String> {
    let name = content.expected().name;
    if !is_blake3_hex(content.expected().blake3) {
        return Err(format!("{name}: blake3 is not 64 lowercase hex digits"));
    }
    if !is_blake3_hex(content.blob_blake3()) {
        return Err(format!(
            "{name}: blob_blake3 is not 64 lowercase hex digits"
        ));
    }
    for delta in content.deltas() {
        if !is_blake3_hex(&delta.base) || !is_blake3_hex(&delta.blake3) {
            return Err(format!(
                "{name}: a delta's base or blake3 is not 64 lowercase hex digits"
            ));
        }
    }
    Ok(())
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
            r#"{{"format":2,"app":"demo","version":"1.0.0","channel":"stable","platform":"any","executable":"{exe}","files":[{files}]}}"#
        )
    }

    fn file(path: &str, exe: bool) -> String {
        format!(
            r#"{{"path":"{path}","size":1,"executable":{exe},"blake3":"{}","blob_size":1,"blob_blake3":"{}"}}"#,
            "a".repeat(64),
            "b".repeat(64)
        )
    }

    /// A file whose blob sits at `offset` (`size` bytes) of a 100-byte pack.
    fn packed(path: &str, exe: bool, hash: char, offset: u64, size: u64) -> String {
        format!(
            r#"{{"path":"{path}","size":1,"executable":{exe},"blake3":"{}","blob_size":{size},"blob_blake3":"{}","pack_offset":{offset}}}"#,
            "a".repeat(64),
            hash.to_string().repeat(64)
        )
    }

    fn with_pack(json: String) -> String {
        json.replace(
            r#""files":"#,
            r#""pack":{"path":"packs/demo/stable/any/1.0.0.pack","size":100},"files":"#,
        )
    }

    #[test]
    fn refuses_format_1_and_unauthenticated_downloads() {
        let good = manifest_json(&file("bin/app", true), "bin/app");
        let old = good.replace(r#""format":2"#, r#""format":1"#);
        let err = Manifest::parse(old.as_bytes(), "m")
            .unwrap_err()
            .to_string();
        assert!(err.contains("format 2"), "{err}");
        let no_blob_hash = good.replace(&format!(r#","blob_blake3":"{}""#, "b".repeat(64)), "");
        let err = Manifest::parse(no_blob_hash.as_bytes(), "m")
            .unwrap_err()
            .to_string();
        assert!(err.contains("blob_blake3"), "{err}");
        let delta = format!(
            r#""deltas":[{{"base":"{}","base_size":1,"algorithm":"bsdiff","size":1}}],"path""#,
            "c".repeat(64)
        );
        let unhashed_delta = good.replacen(r#""path""#, &delta, 1);
        let err = Manifest::parse(unhashed_delta.as_bytes(), "m")
            .unwrap_err()
            .to_string();
        assert!(err.contains("delta"), "{err}");
        let hashed = unhashed_delta.replace(
            r#""size":1}]"#,
            &format!(r#""size":1,"blake3":"{}"}}]"#, "d".repeat(64)),
        );
        Manifest::parse(hashed.as_bytes(), "m").unwrap();
    }

    #[test]
    fn pack_slices_must_not_overlap() {
        // Regression: overlapping slices made the pack prefetch compute `offset - position`
        // below zero (a panic in debug builds, garbage in release builds).
        let overlapping = with_pack(manifest_json(
            &[
                packed("bin/app", true, 'b', 0, 50),
                packed("data", false, 'c', 40, 20),
            ]
            .join(","),
            "bin/app",
        ));
        let err = Manifest::parse(overlapping.as_bytes(), "m")
            .unwrap_err()
            .to_string();
        assert!(err.contains("overlaps"), "{err}");
        let beyond = with_pack(manifest_json(
            &packed("bin/app", true, 'b', 90, 20),
            "bin/app",
        ));
        let err = Manifest::parse(beyond.as_bytes(), "m")
            .unwrap_err()
            .to_string();
        assert!(err.contains("beyond the end"), "{err}");
        let wrapping = with_pack(manifest_json(
            &packed("bin/app", true, 'b', u64::MAX, 2),
            "bin/app",
        ));
        assert!(Manifest::parse(wrapping.as_bytes(), "m").is_err());
        // One blob shared by two files sits once in the pack: the same slice is fine.
        let shared = with_pack(manifest_json(
            &[
                packed("bin/app", true, 'b', 0, 50),
                packed("data", false, 'b', 0, 50),
            ]
            .join(","),
            "bin/app",
        ));
        Manifest::parse(shared.as_bytes(), "m").unwrap();
        let adjacent = with_pack(manifest_json(
            &[
                packed("bin/app", true, 'b', 50, 50),
                packed("data", false, 'c', 0, 50),
            ]
            .join(","),
            "bin/app",
        ));
        Manifest::parse(adjacent.as_bytes(), "m").unwrap();
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
