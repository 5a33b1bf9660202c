//! Repositories in object storage: `--repo s3://BUCKET/PREFIX`.
//!
//! A bucket has no rename and no lock, and a publish reads what it writes (earlier manifests,
//! the blobs it reuses and makes deltas against). So the publisher keeps working on a local
//! folder, the *working copy*, and this module moves files between it and the bucket:
//!
//! 1. lock the working copy (`CACHE/.s3.lock`: one publisher per machine and cache);
//! 2. list the bucket; make the working copy equal to it: download what is missing or of
//!    another size, and every name rewritten in place (`timestamp.json`, `root.json`);
//!    delete local files the bucket does not have (left by an interrupted run). The working
//!    copy persists between runs (see [`default_cache`]), so a publish downloads only what
//!    changed since the last one;
//! 3. set aside versioned metadata that no timestamp leads to (the `N.targets.json` and
//!    `N.snapshot.json` of a publish interrupted before its `timestamp.json`): they are
//!    written again, and may be overwritten in the bucket;
//! 4. run the local operation (`Repository::publish`, `refresh`, `rotate_root`,
//!    `prune_packs`, `init`) on the working copy, under its usual lock;
//! 5. upload every file it added or changed, one at a time, in the order and with the cache
//!    headers of `plan`: content, manifests, roots, targets, snapshot, and `timestamp.json`
//!    last, only after every upload before it succeeded; then delete what it removed
//!    (pruned packs).
//!
//! A publish interrupted anywhere in step 5 leaves the bucket's `timestamp.json` as it was,
//! so clients keep seeing the previous complete release; the new files are unreferenced
//! until a later run, which re-uploads whatever it needs (content-addressed names get the
//! same bytes).
//!
//! Two publishers on different machines: new versioned metadata is uploaded only if its name
//! does not exist yet (`If-None-Match: *`), and `timestamp.json` only if it still has the
//! entity tag listed in step 2 (`If-Match`). Two publishers that started from the same
//! release both write `N+1.targets.json`; the second fails there, before its
//! `timestamp.json`, with the "locked" error (exit 5), and nothing of the first is
//! overwritten. This needs a server with conditional writes (AWS S3 since 2024, MinIO, moto,
//! R2); on one without, run one publisher at a time.

mod plan;
mod remote;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use appstart_layout::fsutil;
use updater_core::advanced::fault;
use updater_core::advanced::lock;
use updater_core::advanced::tuf::metadata::{Snapshot, Timestamp};
use updater_core::{Error, Result};

use crate::Repository;
use crate::metadata::read_role;
use remote::{Listed, Remote};

use plan::IMMUTABLE;

/// Whether `repo`, as given on the command line, names a bucket (`s3://...`).
pub fn is_s3_url(repo: &str) -> bool {
    repo.starts_with("s3://")
}

/// The default working copy of `s3://BUCKET/PREFIX`: `appstart/s3/BUCKET/PREFIX` in the
/// user's cache folder (`$XDG_CACHE_HOME`, else `~/.cache`; `%LOCALAPPDATA%` on Windows),
/// or `None` when the environment names none. The CLI passes the environment in (`vars`),
/// so this stays free of process-global reads.
pub fn default_cache(url: &str, vars: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let (bucket, prefix) = parse(url).ok()?;
    let base = if cfg!(windows) {
        PathBuf::from(vars("LOCALAPPDATA")?)
    } else {
        match vars("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(vars("HOME")?).join(".cache"),
        }
    };
    let mut dir = base.join("appstart").join("s3").join(bucket);
    for part in prefix.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
    }
    Some(dir)
}

/// `s3://BUCKET/PREFIX` split into the bucket and the prefix (no leading or trailing `/`).
fn parse(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| Error::Invalid(format!("{url}: not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    let valid_bucket = !bucket.is_empty()
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    let valid_prefix = prefix
        .split('/')
        .all(|part| !matches!(part, "." | "..") && !part.starts_with('.'))
        && !prefix.contains("//");
    if !valid_bucket || !valid_prefix {
        return Err(Error::Invalid(format!(
            "{url}: expected s3://BUCKET/PREFIX with a bucket name of lower-case letters, digits, `-` and `.`, and a prefix without `.`, `..` or hidden parts"
        )));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// What one run moved.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Files downloaded into the working copy.
    pub downloaded: usize,
    /// Files uploaded, in upload order (keys relative to the prefix).
    pub uploaded: Vec<String>,
    /// Files deleted from the bucket.
    pub deleted: Vec<String>,
}

/// A repository in a bucket, worked on through a local working copy.
#[derive(Debug)]
pub struct S3Repository {
    url: String,
    remote: Remote,
    cache: PathBuf,
}

impl S3Repository {
    /// Opens `s3://BUCKET/PREFIX` (credentials and endpoint from the environment, see
    /// `remote`), with its working copy in `cache`.
    pub fn open(url: &str, cache: PathBuf) -> Result<S3Repository> {
        Self::open_with_config(url, cache, &[])
    }

    /// [`S3Repository::open`] with settings given in code over those of the environment, by
    /// object_store's names (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_region`, `aws_allow_http`, ...), for a program that publishes without setting
    /// its own environment.
    pub fn open_with_config(
        url: &str,
        cache: PathBuf,
        config: &[(&str, &str)],
    ) -> Result<S3Repository> {
        let (bucket, prefix) = parse(url)?;
        Ok(S3Repository {
            url: url.trim_end_matches('/').to_string(),
            remote: Remote::open(&bucket, &prefix, config)?,
            cache,
        })
    }

    /// The working copy.
    pub fn working_copy(&self) -> &Path {
        &self.cache
    }

    /// Runs `change` on an up-to-date working copy and uploads what it changed (module docs,
    /// steps 1 to 5). `creating`: for `repo init`, which needs an empty prefix.
    pub fn change<T>(
        &self,
        creating: bool,
        change: impl FnOnce(&Repository) -> Result<T>,
    ) -> Result<(T, SyncReport)> {
        fsutil::create_dir_all(&self.cache)?;
        let _lock = lock::lock_file(
            &self.cache.join(".s3.lock"),
            Duration::from_secs(60),
            || "another publisher using this working copy (for over 60 s)".into(),
        )?;
        let listed: BTreeMap<String, Listed> = self
            .remote
            .list()?
            .into_iter()
            .filter(|entry| plan::is_repository_file(&entry.key))
            .map(|entry| (entry.key.clone(), entry))
            .collect();
        let has_root = listed.contains_key("metadata/1.root.json");
        if creating && has_root {
            return Err(Error::Invalid(format!(
                "{} already holds a repository",
                self.url
            )));
        }
        if !creating && !has_root {
            return Err(Error::Invalid(format!(
                "{} is not a repository (no metadata/1.root.json): create it with `appupdate repo init --repo {} --keys KEYDIR`",
                self.url, self.url
            )));
        }
        let mut report = SyncReport {
            downloaded: self.pull(&listed)?,
            ..SyncReport::default()
        };
        let orphans = if creating {
            BTreeSet::new()
        } else {
            self.set_aside_orphans()?
        };
        let before = files_of(&self.cache)?;
        let value = change(&Repository::new(&self.cache))?;
        let after = files_of(&self.cache)?;
        let mut uploads: Vec<&String> = after
            .iter()
            .filter(|(key, state)| before.get(*key) != Some(state))
            .map(|(key, _)| key)
            .collect();
        uploads.sort_by_key(|key| plan::order_key(key));
        let mut last_rank: Option<plan::Rank> = None;
        for key in uploads {
            let upload = plan::upload_of(key);
            if let Some(last) = last_rank.filter(|last| *last < upload.rank) {
                // Between ranks: the crash tests kill a publish here (updater-core/src/fault.rs).
                fault::step(&format!("s3-uploaded-{}", last.name()));
            }
            last_rank = Some(upload.rank);
            let expected = match upload.rank {
                plan::Rank::Timestamp => {
                    Some(listed.get(key.as_str()).and_then(|l| l.e_tag.clone()))
                }
                plan::Rank::Root | plan::Rank::Targets | plan::Rank::Snapshot
                    if upload.cache_control == IMMUTABLE && !orphans.contains(key) =>
                {
                    Some(None)
                }
                _ => None,
            };
            let path = self.cache.join(key);
            let size = after.get(key).map_or(0, |state| state.0);
            if expected.is_none() && size > remote::PART as u64 {
                self.remote.put_file_in_parts(key, &path, &upload)?;
            } else {
                self.remote
                    .put(key, fsutil::read(&path)?, &upload, expected)?;
            }
            report.uploaded.push(key.clone());
        }
        for key in before.keys().filter(|key| !after.contains_key(*key)) {
            if listed.contains_key(key) {
                self.remote.delete(key)?;
                report.deleted.push(key.clone());
            }
        }
        Ok((value, report))
    }

    /// Step 2: makes the working copy hold exactly the listed files. Returns how many were
    /// downloaded.
    fn pull(&self, listed: &BTreeMap<String, Listed>) -> Result<usize> {
        for (key, _) in files_of(&self.cache)? {
            if !listed.contains_key(&key) {
                fsutil::remove_file_if_exists(&self.cache.join(&key))?;
            }
        }
        let mut downloaded = 0;
        for (key, entry) in listed {
            let path = self.cache.join(key);
            let current = std::fs::metadata(&path).ok().map(|m| m.len());
            if current == Some(entry.size) && !plan::is_rewritten_in_place(key) {
                continue;
            }
            self.remote.download(key, entry.size, &path)?;
            downloaded += 1;
        }
        Ok(downloaded)
    }

    /// Step 3: removes from the working copy the versioned snapshot and targets metadata
    /// newer than what the timestamp leads to, and returns their keys.
    fn set_aside_orphans(&self) -> Result<BTreeSet<String>> {
        let metadata = self.cache.join("metadata");
        let timestamp: Timestamp = read_role(&metadata.join("timestamp.json"))?;
        let snapshot_version = timestamp.meta.get("snapshot.json").map_or(0, |m| m.version);
        let snapshot: Snapshot =
            read_role(&metadata.join(format!("{snapshot_version}.snapshot.json")))?;
        let mut current: BTreeMap<String, u64> = snapshot
            .meta
            .iter()
            .map(|(name, meta)| (name.clone(), meta.version))
            .collect();
        current.insert("snapshot.json".into(), snapshot_version);
        let mut orphans = BTreeSet::new();
        for (key, _) in files_of(&metadata)? {
            let Some((version, role)) = key.split_once('.') else {
                continue;
            };
            let (Ok(version), Some(&live)) = (version.parse::<u64>(), current.get(role)) else {
                continue;
            };
            if version > live {
                fsutil::remove_file_if_exists(&metadata.join(&key))?;
                orphans.insert(format!("metadata/{key}"));
            }
        }
        Ok(orphans)
    }
}

/// What tells a file the operation wrote from one it left alone: size, modification time,
/// and for the small files rewritten in place, their BLAKE3 (a rewrite within the clock's
/// granularity, at the same size, is still seen).
type FileState = (u64, Option<SystemTime>, Option<[u8; 32]>);

/// Every repository file under `root` (keys `/`-separated), with its [`FileState`].
fn files_of(root: &Path) -> Result<BTreeMap<String, FileState>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![(root.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("listing", &folder, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &folder, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not a name the publisher writes
            };
            let key = format!("{prefix}{name}");
            if !plan::is_repository_file(&key) {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            if meta.is_dir() {
                folders.push((entry.path(), format!("{key}/")));
            } else {
                let digest = if plan::is_rewritten_in_place(&key) {
                    Some(*blake3::hash(&fsutil::read(&entry.path())?).as_bytes())
                } else {
                    None
                };
                files.insert(key, (meta.len(), meta.modified().ok(), digest));
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(parse("s3://b/p/q/").unwrap(), ("b".into(), "p/q".into()));
        assert_eq!(parse("s3://b").unwrap(), ("b".into(), "".into()));
        for bad in [
            "s3://",
            "s3://B/x",
            "s3://b/../x",
            "s3://b/.x",
            "http://b/x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_cache_is_in_the_user_cache_folder() {
        let vars = |name: &str| (name == "HOME").then(|| "/home/u".to_string());
        if !cfg!(windows) {
            assert_eq!(
                default_cache("s3://b/apps/x", &vars).unwrap(),
                PathBuf::from("/home/u/.cache/appstart/s3/b/apps/x")
            );
        }
    }
}
