//! Which repository file goes up when, and with which headers.
//!
//! The upload order is the local publish's write order (see the crate docs), because a bucket
//! has no rename: an object is visible the moment its `PUT` returns. Each rank below is
//! uploaded completely before the next one starts, so whenever a client reads, every file
//! that the metadata it can see names is already there:
//!
//! 1. [`Rank::Content`] — `blobs/`, `deltas/`, `packs/` (content-addressed or per-version names
//!    nothing refers to yet);
//! 2. [`Rank::Manifest`] — `targets/` (manifests, their encodings, the receipts config; names
//!    begin with their SHA-256);
//! 3. [`Rank::Root`] — `metadata/N.root.json`, then `metadata/root.json`;
//! 4. [`Rank::Targets`] — `metadata/N.targets.json` and delegated roles' `N.<role>.json`;
//! 5. [`Rank::Snapshot`] — `metadata/N.snapshot.json`;
//! 6. [`Rank::Timestamp`] — `metadata/timestamp.json`, the one switch that makes a release
//!    visible, last;
//!
//! and only then are removed files (packs pruned) deleted.
//!
//! Cache headers follow from the names: a name that can never hold other bytes (content
//! addressed, or versioned) is cached for a year as immutable; the two names rewritten in
//! place (`timestamp.json`, `root.json`) for a minute, so a CDN needs no invalidation.

/// `Cache-Control` of names that never change content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of the names rewritten in place: clients see a new release within a
/// minute of its publish, through any CDN.
pub const SHORT: &str = "public, max-age=60";

/// When a file is uploaded, relative to the others of one publish (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// Blobs, deltas, packs, and anything unknown (uploaded early: nothing names it).
    Content,
    /// `targets/`: manifests, their encodings, the receipts config.
    Manifest,
    /// `metadata/N.root.json` (then `root.json`, see [`order_key`]).
    Root,
    /// `metadata/N.targets.json`, `metadata/N.<delegated role>.json`.
    Targets,
    /// `metadata/N.snapshot.json`.
    Snapshot,
    /// `metadata/timestamp.json`.
    Timestamp,
}

impl Rank {
    /// Its name in the fault hook's steps (`s3-uploaded-NAME`, after the last file of it).
    pub fn name(self) -> &'static str {
        match self {
            Rank::Content => "content",
            Rank::Manifest => "manifests",
            Rank::Root => "root",
            Rank::Targets => "targets",
            Rank::Snapshot => "snapshot",
            Rank::Timestamp => "timestamp",
        }
    }
}

/// How one repository file (`key`, relative to the repository, `/`-separated) is uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// When.
    pub rank: Rank,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
}

/// The upload of `key`.
pub fn upload_of(key: &str) -> Upload {
    let content_type = if key.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let (rank, cache_control) = match key.strip_prefix("metadata/") {
        Some("timestamp.json") => (Rank::Timestamp, SHORT),
        Some("root.json") => (Rank::Root, SHORT),
        Some(name) => match name.split_once('.') {
            Some((version, role)) if version.parse::<u64>().is_ok() => match role {
                "root.json" => (Rank::Root, IMMUTABLE),
                "snapshot.json" => (Rank::Snapshot, IMMUTABLE),
                _ => (Rank::Targets, IMMUTABLE),
            },
            // Not a name the publisher writes: short-lived, uploaded with the targets.
            _ => (Rank::Targets, SHORT),
        },
        None if key.starts_with("targets/") => (Rank::Manifest, IMMUTABLE),
        None if ["blobs/", "deltas/", "packs/"]
            .iter()
            .any(|dir| key.starts_with(dir)) =>
        {
            (Rank::Content, IMMUTABLE)
        }
        None => (Rank::Content, SHORT),
    };
    Upload {
        rank,
        cache_control,
        content_type,
    }
}

/// Sort key of an upload: its rank, then `N.root.json` before `root.json` (a root is
/// uploaded under its versioned name first), then the name.
pub fn order_key(key: &str) -> (Rank, bool, &str) {
    (upload_of(key).rank, key == "metadata/root.json", key)
}

/// Whether a file of the working copy belongs to the repository (and so to the bucket):
/// not the publisher's lock, nor a temporary file of an interrupted write.
pub fn is_repository_file(key: &str) -> bool {
    !key.split('/').any(|part| part.starts_with('.'))
}

/// Whether the publisher may rewrite `key` in place: such a file is downloaded again at every
/// run, the others only when missing from the working copy.
pub fn is_rewritten_in_place(key: &str) -> bool {
    upload_of(key).cache_control == SHORT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_is_content_manifests_roots_targets_snapshot_timestamp() {
        let mut keys = vec![
            "metadata/timestamp.json",
            "metadata/4.snapshot.json",
            "metadata/root.json",
            "metadata/3.targets.json",
            "metadata/2.team-a.json",
            "targets/demo/stable/any/1.0.0/ab.manifest.json",
            "metadata/2.root.json",
            "packs/demo/stable/any/1.0.0.pack",
            "blobs/ab/abcd.zst",
            "deltas/ab/x-y.zstd-patch",
        ];
        keys.sort_by_key(|key| order_key(key));
        assert_eq!(
            keys,
            [
                "blobs/ab/abcd.zst",
                "deltas/ab/x-y.zstd-patch",
                "packs/demo/stable/any/1.0.0.pack",
                "targets/demo/stable/any/1.0.0/ab.manifest.json",
                "metadata/2.root.json",
                "metadata/root.json",
                "metadata/2.team-a.json",
                "metadata/3.targets.json",
                "metadata/4.snapshot.json",
                "metadata/timestamp.json",
            ]
        );
    }

    #[test]
    fn only_names_rewritten_in_place_are_short_lived() {
        for key in ["metadata/timestamp.json", "metadata/root.json"] {
            assert_eq!(upload_of(key).cache_control, SHORT, "{key}");
            assert!(is_rewritten_in_place(key));
        }
        for key in [
            "metadata/1.root.json",
            "metadata/7.snapshot.json",
            "blobs/00/00ff.zst",
            "targets/_appstart/ab.receipts.json",
        ] {
            assert_eq!(upload_of(key).cache_control, IMMUTABLE, "{key}");
        }
        assert_eq!(
            upload_of("metadata/7.snapshot.json").content_type,
            "application/json"
        );
        assert_eq!(
            upload_of("blobs/00/00ff.zst").content_type,
            "application/octet-stream"
        );
    }

    #[test]
    fn the_lock_and_temporary_files_stay_local() {
        assert!(!is_repository_file(".publish.lock"));
        assert!(!is_repository_file("blobs/ab/.tmp-blob-1"));
        assert!(is_repository_file("blobs/ab/abcd.zst"));
    }
}
