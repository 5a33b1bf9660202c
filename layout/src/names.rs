//! Untrusted names parsed into types.
//!
//! A version name becomes a folder name and a manifest path becomes a file path under the
//! install folder. Both arrive from files a user or a server controls, so they are parsed once
//! into types that cannot hold anything dangerous: the type is the proof (after tough's
//! `TargetName`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Longest accepted version name, in bytes.
pub const MAX_VERSION_NAME_LEN: usize = 128;
/// Longest accepted relative path, in bytes.
pub const MAX_RELATIVE_PATH_LEN: usize = 4096;

/// A version's name, safe to use as a single folder name on every platform.
///
/// Allowed: 1 to 128 characters from `A-Z a-z 0-9 . _ + -`, not starting with `.` or `-`.
/// This covers SemVer (`1.2.3-beta.1+build.5`) and date versions (`2026.11.23`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionName(String);

impl VersionName {
    /// Parses `value`, refusing anything that is not a plain folder name.
    pub fn parse(value: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidName {
            kind: "version name",
            value: value.to_string(),
            reason,
        };
        if value.is_empty() {
            return Err(invalid("it is empty"));
        }
        if value.len() > MAX_VERSION_NAME_LEN {
            return Err(invalid("it is longer than 128 bytes"));
        }
        if value.starts_with('.') || value.starts_with('-') {
            return Err(invalid("it starts with '.' or '-'"));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        {
            return Err(invalid("only A-Z a-z 0-9 . _ + - are allowed"));
        }
        if is_windows_device_name(value) {
            return Err(invalid(
                "it is a device name on Windows (CON, PRN, AUX, NUL, COM1, LPT1, ...)",
            ));
        }
        Ok(VersionName(value.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `versions` for a message: `1.0.0, 2.0.0`, or `none`.
pub fn list_versions(versions: &[VersionName]) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    versions
        .iter()
        .map(VersionName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for VersionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for VersionName {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for VersionName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        VersionName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Characters Windows cannot use in a file name, beyond `/ \\ :` and control characters
/// (refused separately).
const WINDOWS_FORBIDDEN_CHARS: [char; 6] = ['<', '>', '"', '|', '?', '*'];

/// Whether Windows treats `component` as a device rather than a file: `CON`, `PRN`, `AUX`,
/// `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9` (also with the superscript digits `¹ ² ³`),
/// `CONIN$` and `CONOUT$`, in any case, also with an extension (`aux.txt`, `nul.tar.gz`)
/// and with spaces before the dot (`con .txt`).
pub fn is_windows_device_name(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or(component);
    let stem = stem.trim_end_matches(' ');
    // The longest device name is `CONOUT$` (`COM¹` is 5 bytes): a longer stem is none, and
    // most are longer, so they are not upper-cased (every path of a manifest is checked).
    if stem.len() > "CONOUT$".len() {
        return false;
    }
    // Compared ignoring ASCII case, not upper-cased into a new string: a manifest's short
    // folder names would each cost an allocation.
    if ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
        .iter()
        .any(|device| stem.eq_ignore_ascii_case(device))
    {
        return true;
    }
    let Some((prefix, number)) = stem.split_at_checked(3) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case("COM") && !prefix.eq_ignore_ascii_case("LPT") {
        return false;
    }
    let mut chars = number.chars();
    matches!(
        (chars.next(), chars.next()),
        (Some('0'..='9' | '¹' | '²' | '³'), None)
    )
}

/// A relative path that stays inside the folder it is joined to.
///
/// Stored with `/` separators. Refused: empty paths, absolute paths, drive letters and
/// backslashes, `.` and `..` components, empty components (`a//b`), NUL and other control
/// characters, and names Windows cannot create, on every platform so that a release is
/// portable: device names in any component (`CON`, `aux.txt`, `com1`, see
/// [`is_windows_device_name`]), the characters `< > " | ? * :`, and components ending with
/// a dot or a space.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelativePath(String);

impl RelativePath {
    /// Parses `value` as a relative, contained path.
    pub fn parse(value: &str) -> Result<Self> {
        Self::check(value)?;
        Ok(RelativePath(value.to_string()))
    }

    /// [`RelativePath::parse`], keeping `value`'s allocation.
    fn parse_owned(value: String) -> Result<Self> {
        Self::check(&value)?;
        Ok(RelativePath(value))
    }

    fn check(value: &str) -> Result<()> {
        let invalid = |reason| Error::InvalidName {
            kind: "relative path",
            value: value.to_string(),
            reason,
        };
        if value.is_empty() {
            return Err(invalid("it is empty"));
        }
        if value.len() > MAX_RELATIVE_PATH_LEN {
            return Err(invalid("it is longer than 4096 bytes"));
        }
        if value.starts_with('/') {
            return Err(invalid("it is absolute"));
        }
        // One pass over the bytes finds what is refused anywhere; the checks below keep
        // their order (the first reason found is the one given) and look again only where
        // this pass found something. Every path of a manifest is checked.
        let bytes = value.as_bytes();
        let (mut backslash, mut control, mut colon, mut forbidden) = (false, false, false, false);
        let mut after_c2 = false;
        for &byte in bytes {
            backslash |= byte == b'\\';
            // C0 and DEL, and C1 (U+0080 to U+009F: 0xC2 0x80 to 0xC2 0x9F in UTF-8), as
            // `char::is_control`.
            control |= byte < 0x20 || byte == 0x7f || (after_c2 && (0x80..=0x9f).contains(&byte));
            after_c2 = byte == 0xc2;
            colon |= byte == b':';
            forbidden |= WINDOWS_FORBIDDEN_CHARS.contains(&char::from(byte));
        }
        if backslash {
            return Err(invalid("it contains a backslash"));
        }
        if control {
            return Err(invalid("it contains a NUL or control character"));
        }
        if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
            return Err(invalid("it starts with a drive letter"));
        }
        for component in value.split('/') {
            match component {
                "" => return Err(invalid("it has an empty component")),
                "." | ".." => return Err(invalid("it has a '.' or '..' component")),
                _ => {}
            }
            if component.ends_with('.') || component.ends_with(' ') {
                return Err(invalid("a component ends with '.' or a space"));
            }
            if colon && component.contains(':') {
                return Err(invalid("it contains ':'"));
            }
            if forbidden && component.contains(WINDOWS_FORBIDDEN_CHARS) {
                return Err(invalid(
                    "it contains a character Windows cannot use in names (< > \" | ? *)",
                ));
            }
            if is_windows_device_name(component) {
                return Err(invalid(
                    "a component is a device name on Windows (CON, PRN, AUX, NUL, COM1, LPT1, CONIN$, ..., also with an extension)",
                ));
            }
        }
        Ok(())
    }

    /// Builds a relative path from a path found on disk below some root.
    pub fn from_path(path: &Path) -> Result<Self> {
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                std::path::Component::Normal(part) => match part.to_str() {
                    Some(part) => parts.push(part),
                    None => {
                        return Err(Error::InvalidName {
                            kind: "relative path",
                            value: path.to_string_lossy().into_owned(),
                            reason: "it is not valid UTF-8",
                        });
                    }
                },
                _ => {
                    return Err(Error::InvalidName {
                        kind: "relative path",
                        value: path.to_string_lossy().into_owned(),
                        reason: "it is not a plain relative path",
                    });
                }
            }
        }
        RelativePath::parse(&parts.join("/"))
    }

    /// The path as `/`-separated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path joined below `root`, using the platform's separators.
    pub fn join_to(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        path.extend(self.0.split('/'));
        path
    }

    /// The parent folders of this path, outermost first (`a/b/c` gives `a`, `a/b`).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices('/')
            .map(move |(index, _)| &self.0[..index])
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RelativePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RelativePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RelativePath::parse_owned(text).map_err(serde::de::Error::custom)
    }
}

/// The key under which case-insensitive or normalising file systems (Windows, macOS) store
/// `path`: NFC-normalised, then lower-cased. Two paths with the same key are one entry there.
pub fn portable_key(path: &str) -> String {
    portable_key_of(path).into_owned()
}

/// [`portable_key`], borrowing `path` where it is its own key (lower-case ASCII, the common
/// case: a manifest of 10,000 files is keyed on every parse).
fn portable_key_of(path: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    use unicode_normalization::UnicodeNormalization as _;
    // ASCII is already in NFC and lower-cases byte by byte, about ten times cheaper than
    // normalising.
    if path.is_ascii() {
        return if path.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(path.to_ascii_lowercase())
        } else {
            Cow::Borrowed(path)
        };
    }
    Cow::Owned(path.nfc().collect::<String>().to_lowercase())
}

/// Two paths of one release that are one entry on Windows or macOS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{first:?} and {second:?} differ only in case or Unicode normalization, so Windows and macOS would store them as one file or folder: rename one"
)]
pub struct PortableNameClash {
    /// The spelling seen first.
    pub first: String,
    /// The other spelling.
    pub second: String,
}

/// Refuses two different spellings of one entry among `paths` (the files and folders of a
/// release) and their parent folders: `README` and `readme`, `café` in NFC and NFD, a file
/// `Foo` and a folder `foo/`, or folders `Lib/a` and `lib/b` (see [`portable_key`]).
pub fn check_portable_names<'a>(
    paths: impl IntoIterator<Item = &'a RelativePath>,
) -> std::result::Result<(), PortableNameClash> {
    use std::collections::hash_map::Entry;
    let mut spellings = std::collections::HashSet::new();
    let mut by_key: std::collections::HashMap<std::borrow::Cow<'_, str>, &str> =
        std::collections::HashMap::new();
    let mut previous = "";
    for path in paths {
        // Parents the previous path has were seen with it (in a manifest's sorted order,
        // most of them): skipped without hashing.
        let shared = |parent: &str| {
            previous.len() > parent.len()
                && previous.as_bytes()[parent.len()] == b'/'
                && previous.starts_with(parent)
        };
        let parents = path.parents().skip_while(|parent| shared(parent));
        for entry in parents.chain([path.as_str()]) {
            // A parent shared by many files is keyed once.
            if !spellings.insert(entry) {
                continue;
            }
            match by_key.entry(portable_key_of(entry)) {
                Entry::Vacant(vacant) => {
                    vacant.insert(entry);
                }
                Entry::Occupied(seen) => {
                    return Err(PortableNameClash {
                        first: seen.get().to_string(),
                        second: entry.to_string(),
                    });
                }
            }
        }
        previous = path.as_str();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checks as they were before the one-pass scan and the allocation-free device
    /// names: the new ones must give the same verdict and the same reason for every path.
    mod same_as_before {
        use super::*;
        use crate::testing::cases;
        use proptest::prelude::*;

        fn device_before(component: &str) -> bool {
            let stem = component.split('.').next().unwrap_or(component);
            let stem = stem.trim_end_matches(' ').to_ascii_uppercase();
            if matches!(
                stem.as_str(),
                "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
            ) {
                return true;
            }
            let Some(number) = stem
                .strip_prefix("COM")
                .or_else(|| stem.strip_prefix("LPT"))
            else {
                return false;
            };
            let mut chars = number.chars();
            matches!(
                (chars.next(), chars.next()),
                (Some('0'..='9' | '¹' | '²' | '³'), None)
            )
        }

        fn check_before(value: &str) -> std::result::Result<(), &'static str> {
            if value.is_empty() {
                return Err("it is empty");
            }
            if value.len() > MAX_RELATIVE_PATH_LEN {
                return Err("it is longer than 4096 bytes");
            }
            if value.starts_with('/') {
                return Err("it is absolute");
            }
            if value.contains('\\') {
                return Err("it contains a backslash");
            }
            if value.chars().any(|c| c.is_control()) {
                return Err("it contains a NUL or control character");
            }
            let bytes = value.as_bytes();
            if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
                return Err("it starts with a drive letter");
            }
            for component in value.split('/') {
                match component {
                    "" => return Err("it has an empty component"),
                    "." | ".." => return Err("it has a '.' or '..' component"),
                    _ => {}
                }
                if component.ends_with('.') || component.ends_with(' ') {
                    return Err("a component ends with '.' or a space");
                }
                if component.contains(':') {
                    return Err("it contains ':'");
                }
                if component.contains(WINDOWS_FORBIDDEN_CHARS) {
                    return Err(
                        "it contains a character Windows cannot use in names (< > \" | ? *)",
                    );
                }
                if device_before(component) {
                    return Err(
                        "a component is a device name on Windows (CON, PRN, AUX, NUL, COM1, LPT1, CONIN$, ..., also with an extension)",
                    );
                }
            }
            Ok(())
        }

        fn reason(value: &str) -> std::result::Result<(), &'static str> {
            match RelativePath::check(value) {
                Ok(()) => Ok(()),
                Err(Error::InvalidName { reason, .. }) => Err(reason),
                Err(other) => panic!("{other}"),
            }
        }

        proptest! {
            // Cheap cases (a few microseconds each): many more than the default.
            #![proptest_config(ProptestConfig { cases: cases().cases.max(4_000), ..cases() })]

            /// Paths made of the characters the checks look at (separators, dots, spaces,
            /// colons, the Windows-forbidden ones, C0 and C1 controls, DEL, letters of the
            /// device names, superscript digits, other multi-byte letters).
            #[test]
            fn same_verdict_and_reason(
                value in "[a-zA-Z0-9/\\\\.: <>\"|?*\u{0}\u{1f}\u{7f}\u{80}\u{9f}\u{a0}¹²³éCcOoNnMmPpLlTtRrUuXxIi$]{0,24}"
            ) {
                prop_assert_eq!(reason(&value), check_before(&value));
                let parts: Vec<&str> = value.split('/').collect();
                for part in parts {
                    prop_assert_eq!(is_windows_device_name(part), device_before(part));
                }
            }
        }

        #[test]
        fn device_names_in_any_case_with_extensions() {
            for name in [
                "con", "CON.txt", "Com1", "lpt9.log", "COM¹", "conout$", "nul ", "aux.a.b",
                "com10", "lpt", "co", "c", "", "CONIN$x", "é", "éé", "COMé", "LPT²",
            ] {
                assert_eq!(is_windows_device_name(name), device_before(name), "{name}");
            }
        }
    }

    #[test]
    fn version_names() {
        for ok in ["1.0.0", "2.0.0-beta.1+build.5", "2026.11.23", "v3_x"] {
            assert!(VersionName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", "-rf", ".hidden", "a b", "é",
        ] {
            assert!(VersionName::parse(bad).is_err(), "{bad}");
        }
        assert!(VersionName::parse(&"1".repeat(129)).is_err());
    }

    #[test]
    fn relative_paths() {
        for ok in ["a", "bin/app", "lib/x.so.1", "a b/c"] {
            assert!(RelativePath::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "C:/x",
            "c:x",
            "a\\b",
            "a\0b",
            "a/",
            "x.",
            "x ",
            "a:b",
        ] {
            assert!(RelativePath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_windows_cannot_create_are_refused_on_every_platform() {
        // Regression: `CON`, `aux.txt` or `a?b` were accepted, so a release published on
        // Linux failed half-way through installing on Windows (or opened a device there).
        for ok in [
            "console",
            "auxiliary.txt",
            "com10",
            "lpt",
            "a.con",
            "nul_",
            "conin",
            "x/com",
            "a$b",
            "conout$x",
            "lpt1 x.txt",
        ] {
            assert!(RelativePath::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "CON",
            "con",
            "Con/x",
            "a/PRN",
            "aux.txt",
            "nul.tar.gz",
            "NUL .txt",
            "nul        .txt",
            "com0",
            "COM9",
            "lpt5.log",
            "COM¹",
            "lpt²",
            "Lpt³.x",
            "CONIN$",
            "conout$.txt",
            "a<b",
            "a>b",
            "a\"b",
            "a|b",
            "a?b",
            "a*b",
            "dir/x*",
        ] {
            let err = RelativePath::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("Windows"),
                "{err}"
            );
        }
        assert!(VersionName::parse("aux").is_err());
        assert!(VersionName::parse("CON.1").is_err());
        assert!(VersionName::parse("con1").is_ok());
    }

    #[test]
    fn portable_keys_fold_case_and_normalization() {
        assert_eq!(portable_key("README"), portable_key("readme"));
        assert_eq!(portable_key("caf\u{e9}"), portable_key("cafe\u{301}"));
        assert_eq!(portable_key("Lib/A.txt"), "lib/a.txt");
        assert_ne!(portable_key("a"), portable_key("b"));
        // The ASCII fast path agrees with normalising and lower-casing.
        for ascii in [
            "README.TXT",
            "Lib/Site-Packages/X_1.py",
            "a b/C~D",
            "\u{7f}Z",
        ] {
            use unicode_normalization::UnicodeNormalization as _;
            let slow = ascii.nfc().collect::<String>().to_lowercase();
            assert_eq!(portable_key(ascii), slow, "{ascii}");
        }
    }

    #[test]
    fn names_that_are_one_entry_on_windows_or_macos_are_refused() {
        // Regression: `README` and `readme` in one release overwrote each other on Windows
        // and macOS, so the installed tree did not match the manifest.
        let check = |paths: &[&str]| {
            let paths: Vec<RelativePath> = paths
                .iter()
                .map(|p| RelativePath::parse(p).unwrap())
                .collect();
            check_portable_names(&paths)
        };
        assert_eq!(check(&["a/b", "a/c", "A.txt", "b/a"]), Ok(()));
        for (paths, first, second) in [
            (&["README", "readme"][..], "README", "readme"),
            (&["caf\u{e9}", "cafe\u{301}"], "caf\u{e9}", "cafe\u{301}"),
            (&["Foo", "foo/x"], "Foo", "foo"),
            (&["Lib/a", "lib/b"], "Lib", "lib"),
            (&["x/Lib/a", "x/lib/b/c"], "x/Lib", "x/lib"),
            // Parents shared with the path before are not keyed again; the rest still are,
            // in any order.
            (&["a/b/x", "a/b/y", "a/B/z"], "a/b", "a/B"),
            (&["q/A/x", "r/y", "q/a/z"], "q/A", "q/a"),
        ] {
            let clash = check(paths).unwrap_err();
            assert_eq!(
                (clash.first.as_str(), clash.second.as_str()),
                (first, second)
            );
            assert!(
                clash
                    .to_string()
                    .contains("differ only in case or Unicode normalization")
            );
        }
    }

    #[test]
    fn parents_and_join() {
        let path = RelativePath::parse("a/b/c").unwrap();
        assert_eq!(path.parents().collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(path.join_to(Path::new("/r")), Path::new("/r/a/b/c"));
    }
}
