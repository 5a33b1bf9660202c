//! TUF metadata as serde types.
//!
//! Every struct keeps fields it does not know in `extra`, so a file written by another TUF
//! implementation survives a read-modify-write here. Signature checks never use these types:
//! they run over the canonical form of the JSON exactly as received (see `sign`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::tuf::keys::TOP_LEVEL_ROLES;

/// A signed metadata file: `{"signatures": [...], "signed": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signed<T> {
    /// Signatures over the canonical JSON of `signed`.
    pub signatures: Vec<Signature>,
    /// The role's content.
    pub signed: T,
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id.
    pub keyid: String,
    /// Hex-encoded signature.
    pub sig: String,
}

/// A public key as it appears in root (or a delegating targets role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// `ed25519`, `ecdsa`, `rsa`, ...
    pub keytype: String,
    /// `ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256`, ...
    pub scheme: String,
    /// The public value.
    pub keyval: KeyValue,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A key's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Public key (hex for ed25519, PEM for ECDSA and RSA).
    pub public: String,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Which keys may sign a role and how many must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Key ids allowed to sign.
    pub keyids: Vec<String>,
    /// Distinct valid signatures required.
    pub threshold: u64,
}

/// The root role: the keys of every top-level role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Whether metadata and targets are stored under versioned and hashed names.
    pub consistent_snapshot: bool,
    /// Increments by one at each change.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// Public keys by key id.
    pub keys: BTreeMap<String, Key>,
    /// Keys and threshold of `root`, `targets`, `snapshot`, `timestamp`.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the timestamp or snapshot says about another metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The file's version.
    pub version: u64,
    /// Its length in bytes, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its hashes, if listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The timestamp role: which snapshot is current. Short-lived, re-signed often.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// Exactly one entry: `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The snapshot role: the version of every targets metadata file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// `targets.json` and every delegated role's file.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A target file: its length, hashes and application-defined fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes by algorithm (`sha256`, `sha512`).
    pub hashes: BTreeMap<String, String>,
    /// Application fields (appstart: app, version, channel, platform, executable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The targets role: the files clients may install.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// TUF version of the writer.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// RFC 3339 expiry.
    pub expires: String,
    /// Target files by name.
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations to other targets roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A targets role's delegations: keys, and the roles trusted for some target paths.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles, by key id.
    pub keys: BTreeMap<String, Key>,
    /// Delegated roles, in priority order.
    pub roles: Vec<DelegatedRole>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One delegated role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// Role name (its metadata file is `<name>.json`).
    pub name: String,
    /// Key ids allowed to sign.
    pub keyids: Vec<String>,
    /// Distinct valid signatures required.
    pub threshold: u64,
    /// Whether a match here ends the search (no later sibling is consulted).
    #[serde(default)]
    pub terminating: bool,
    /// Target path patterns (`*` and `?` never match `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Prefixes of the hex SHA-256 of target paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Fields we do not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Delegations {
    /// Refuses role names a client must never use as a delegated role's file name: empty, a
    /// top-level role's (the delegated file would be stored over the trusted `root.json`), or
    /// listed twice (python-tuf: "Delegated roles cannot be empty or use top-level role
    /// names"). The message names the field.
    pub fn check_names(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for (index, role) in self.roles.iter().enumerate() {
            let field = format!("field `delegations.roles[{index}].name`");
            if role.name.is_empty() || TOP_LEVEL_ROLES.contains(&role.name.as_str()) {
                return Err(format!(
                    "{field}: {:?}: delegated roles cannot be empty or use top-level role names",
                    role.name
                ));
            }
            if !seen.insert(role.name.as_str()) {
                return Err(format!(
                    "{field}: {:?} is delegated twice in one list",
                    role.name
                ));
            }
        }
        Ok(())
    }
}

impl DelegatedRole {
    /// Whether this role is trusted for `target_path`.
    pub fn is_for(&self, target_path: &str) -> bool {
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| path_matches(p, target_path));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            use sha2::Digest;
            let hash = hex::encode(sha2::Sha256::digest(target_path.as_bytes()));
            return prefixes.iter().any(|p| hash.starts_with(p.as_str()));
        }
        false
    }
}

/// TUF path pattern matching: the pattern and the path must have the same number of
/// `/`-separated parts, and each part matches shell-style (`*`, `?`, `[...]`, `[!...]`).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern_parts: Vec<&str> = pattern.split('/').collect();
    let path_parts: Vec<&str> = path.split('/').collect();
    pattern_parts.len() == path_parts.len()
        && pattern_parts.iter().zip(&path_parts).all(|(p, n)| {
            glob_part(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        })
}

/// One element of a path pattern part; every element but `*` matches exactly one character.
#[derive(Debug)]
enum GlobToken {
    /// `*`: any run of characters (never `/`, as parts are split on it).
    Star,
    /// `?`: any one character.
    AnyChar,
    /// `[...]` or `[!...]`: one character in (or not in) the set; `a-z` is a range.
    Class { negate: bool, set: Vec<char> },
    /// Itself (also a `[` with no closing `]`).
    Literal(char),
}

impl GlobToken {
    /// Splits a pattern part into tokens. A class closes at the first `]` after its first
    /// character, so `[]]` matches `]`.
    fn parse(pattern: &[char]) -> Vec<GlobToken> {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let token = match pattern[i] {
                '*' => GlobToken::Star,
                '?' => GlobToken::AnyChar,
                '[' => match pattern.iter().skip(i + 2).position(|c| *c == ']') {
                    Some(offset) => {
                        let close = i + 2 + offset;
                        let negate = pattern[i + 1] == '!';
                        let first = if negate { i + 2 } else { i + 1 };
                        let set = pattern[first..close].to_vec();
                        i = close + 1;
                        tokens.push(GlobToken::Class { negate, set });
                        continue;
                    }
                    None => GlobToken::Literal('['),
                },
                c => GlobToken::Literal(c),
            };
            tokens.push(token);
            i += 1;
        }
        tokens
    }

    /// Whether this single-character token matches `c` (`*` is handled by the matcher).
    fn matches(&self, c: char) -> bool {
        match self {
            GlobToken::Star => false,
            GlobToken::AnyChar => true,
            GlobToken::Literal(literal) => *literal == c,
            GlobToken::Class { negate, set } => {
                let mut matched = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        matched |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        matched |= set[i] == c;
                        i += 1;
                    }
                }
                matched != *negate
            }
        }
    }
}

/// Shell-style match of one pattern part against one name part, in O(pattern x name) steps
/// whatever the pattern (a delegation's patterns come from a signer we only partly trust):
/// on a mismatch, only the last `*` seen takes one more character; earlier stars never need
/// to, because every other token matches exactly one character.
fn glob_part(pattern: &[char], name: &[char]) -> bool {
    let tokens = GlobToken::parse(pattern);
    let (mut token, mut position) = (0, 0);
    // The last `*` seen and the name position its current (shortest) match ends at.
    let mut last_star: Option<(usize, usize)> = None;
    while position < name.len() {
        match tokens.get(token) {
            Some(GlobToken::Star) => {
                last_star = Some((token, position));
                token += 1;
                continue;
            }
            Some(single) if single.matches(name[position]) => {
                token += 1;
                position += 1;
                continue;
            }
            _ => {}
        }
        let Some((star, end)) = last_star else {
            return false;
        };
        last_star = Some((star, end + 1));
        token = star + 1;
        position = end + 1;
    }
    tokens[token..].iter().all(|t| matches!(t, GlobToken::Star))
}

/// Common accessors of the four roles.
pub trait Role: for<'de> Deserialize<'de> + Serialize {
    /// The role's `_type`.
    const TYPE: &'static str;
    /// Its `_type` field as found.
    fn type_field(&self) -> &str;
    /// Its version.
    fn version(&self) -> u64;
    /// Its expiry (RFC 3339).
    fn expires(&self) -> &str;
    /// Its `spec_version`.
    fn spec_version(&self) -> &str;
    /// Checks the rules types alone cannot express; the message names the field.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

macro_rules! role {
    ($ty:ty, $name:literal $(, $check:path)?) => {
        impl Role for $ty {
            const TYPE: &'static str = $name;
            fn type_field(&self) -> &str {
                &self.type_
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> &str {
                &self.expires
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            $(
                fn check(&self) -> std::result::Result<(), String> {
                    $check(self)
                }
            )?
        }
    };
}
role!(Root, "root");
role!(Timestamp, "timestamp");
role!(Snapshot, "snapshot");
role!(Targets, "targets", Targets::check_delegations);

impl Targets {
    /// See [`Role::check`]: the delegated role names.
    fn check_delegations(&self) -> std::result::Result<(), String> {
        self.delegations
            .as_ref()
            .map_or(Ok(()), Delegations::check_names)
    }
}

/// A delegated role's name as a file name: every byte but `A-Z a-z 0-9 _ . - ~`
/// percent-encoded, exactly like python-tuf's `urllib.parse.quote(name, "")`. Its metadata
/// file is `<quoted>.json` (`N.<quoted>.json` with consistent snapshots); the snapshot lists
/// it under the unquoted `<name>.json`.
pub fn quote(name: &str) -> String {
    let mut out = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Parses an RFC 3339 expiry.
pub fn parse_expires(role: &str, value: &str) -> Result<SystemTime> {
    humantime::parse_rfc3339(value).map_err(|e| {
        Error::format(
            format!("{role} metadata"),
            format!("field `expires` {value:?}: {e}"),
        )
    })
}

/// Formats an expiry `days` from `now` as TUF writes it: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn expires_in_days(now: SystemTime, days: u64) -> String {
    humantime::format_rfc3339_seconds(now + std::time::Duration::from_secs(days * 86_400))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        assert!(path_matches("apps/*", "apps/a.json"));
        assert!(
            !path_matches("apps/*", "apps/x/a.json"),
            "* does not cross /"
        );
        assert!(path_matches("apps/*/*", "apps/x/a.json"));
        assert!(path_matches("file?.txt", "file1.txt"));
        assert!(path_matches("f[0-9].txt", "f7.txt"));
        assert!(!path_matches("f[!0-9].txt", "f7.txt"));
        assert!(path_matches("*", "anything"));
        assert!(
            path_matches("[]]x", "]x"),
            "a class closes after its first character"
        );
        assert!(path_matches("[ab", "[ab"), "an unclosed [ is literal");
        assert!(path_matches("a*b*c", "axxbyyc"));
        assert!(!path_matches("a*b*c", "axxbyy"));
        assert!(!path_matches("a", "b"));
    }

    /// The former recursive matcher (exponential on many stars): the reference semantics.
    fn reference_glob(pattern: &[char], name: &[char]) -> bool {
        match pattern.first() {
            None => name.is_empty(),
            Some('*') => (0..=name.len()).any(|skip| reference_glob(&pattern[1..], &name[skip..])),
            Some('?') => !name.is_empty() && reference_glob(&pattern[1..], &name[1..]),
            Some('[') => {
                let Some(close) = pattern
                    .iter()
                    .skip(2)
                    .position(|c| *c == ']')
                    .map(|i| i + 2)
                else {
                    return name.first() == Some(&'[') && reference_glob(&pattern[1..], &name[1..]);
                };
                let Some(first) = name.first() else {
                    return false;
                };
                let (negate, set) = match pattern[1] {
                    '!' => (true, &pattern[2..close]),
                    _ => (false, &pattern[1..close]),
                };
                let class = GlobToken::Class {
                    negate,
                    set: set.to_vec(),
                };
                class.matches(*first) && reference_glob(&pattern[close + 1..], &name[1..])
            }
            Some(c) => name.first() == Some(c) && reference_glob(&pattern[1..], &name[1..]),
        }
    }

    /// Every string of up to `max` characters from `alphabet`.
    fn strings(alphabet: &[char], max: usize) -> Vec<Vec<char>> {
        let mut all = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s: &Vec<char>| {
                    alphabet.iter().map(move |c| {
                        let mut longer = s.clone();
                        longer.push(*c);
                        longer
                    })
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn the_linear_matcher_agrees_with_the_recursive_one() {
        let patterns = strings(&['a', 'b', '*', '?', '[', ']', '!', '-'], 4);
        let names = strings(&['a', 'b', ']', '-'], 3);
        for pattern in &patterns {
            for name in &names {
                assert_eq!(
                    glob_part(pattern, name),
                    reference_glob(pattern, name),
                    "{:?} against {:?}",
                    pattern.iter().collect::<String>(),
                    name.iter().collect::<String>()
                );
            }
        }
    }

    #[test]
    fn many_stars_do_not_backtrack_exponentially() {
        // Regression: a delegation pattern like this one took exponential time (hours for
        // this name) in the recursive matcher; a signer could stall every client with it.
        let pattern = format!("{}b", "*a".repeat(12));
        let name = "a".repeat(200);
        assert!(!path_matches(&pattern, &name));
        assert!(path_matches(&pattern, &format!("{name}b")));
        assert!(!path_matches(&format!("x/{pattern}"), &format!("x/{name}")));
    }

    #[test]
    fn expiry_round_trips() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let text = expires_in_days(now, 1);
        assert_eq!(text, "2023-11-15T22:13:20Z");
        let parsed = parse_expires("root", &text).unwrap();
        assert_eq!(parsed, now + std::time::Duration::from_secs(86_400));
        assert!(parse_expires("root", "tomorrow").is_err());
    }

    #[test]
    fn quote_matches_python_urllib_quote_with_no_safe_characters() {
        // Expected values from python3 -c 'from urllib.parse import quote; print(quote(n, ""))'.
        for (name, quoted) in [
            ("apps", "apps"),
            ("team a/b", "team%20a%2Fb"),
            ("..", ".."),
            ("../delegatedrole", "..%2Fdelegatedrole"),
            ("a?b#c", "a%3Fb%23c"),
            ("caf\u{e9}~x", "caf%C3%A9~x"),
            ("a%b", "a%25b"),
        ] {
            assert_eq!(super::quote(name), quoted, "{name}");
        }
    }
}
