//! Publishing one release: scan the folder, store its blobs and archives (on every core),
//! add deltas and a pack, write the manifest, make all of it durable with one sync, then sign
//! the metadata that names them, and last delete the packs of older releases beyond
//! `keep_packs` (in that order; the argument is in [`super`]'s docs).

use super::source::{check_hooks, marks_executable, scan_source};
use super::store::Run;
use super::{Expiry, PublishReport, PublishRequest, Repository};
use std::collections::BTreeMap;
use std::time::SystemTime;

use appstart_layout::fsutil;
use serde_json::Map;
use sha2::Digest;

use rayon::prelude::*;
use updater_core::Phase;
use updater_core::advanced::control::MAX_CUSTOM_DATA_BYTES;
use updater_core::advanced::manifest::{FileEntry, MANIFEST_FORMAT, Manifest, check_label};
use updater_core::advanced::manifest_encoding;
use updater_core::advanced::progress::ProgressMeter;
use updater_core::{Error, Result};

use updater_core::advanced::release::{DEFAULT_CHANNEL, ReleaseCustom, target_name};
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::advanced::tuf::metadata::{TargetFile, expires_in_days};

impl Repository {
    /// Publishes `request.source` as a release.
    pub fn publish(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        request: &PublishRequest,
    ) -> Result<PublishReport> {
        for (field, value) in [
            ("app", &request.app),
            ("channel", &request.channel),
            ("platform", &request.platform),
        ] {
            check_label(field, value)?;
        }
        let version = semver::Version::parse(request.version.as_str()).map_err(|e| {
            Error::Invalid(format!(
                "version {}: not a SemVer version (like 1.2.3): {e}",
                request.version
            ))
        })?;
        check_prerelease(request, &version)?;
        check_control_and_data(request)?;
        let _lock = self.lock()?;
        let (mut targets, snapshot) = self.current_targets()?;
        let name = target_name(
            &request.app,
            &request.channel,
            &request.platform,
            &request.version,
        );
        // Checked before any file is written: the role, its paths and its keys.
        let delegated = match &request.role {
            Some(role) => Some(self.delegated_for_publish(keys, &targets, &snapshot, role, &name)?),
            None => None,
        };
        let published = self.all_release_targets(&targets, &snapshot)?;
        if published.contains_key(&name) {
            return Err(Error::Invalid(format!(
                "{} {} is already published for channel {} and platform {}; versions are immutable, publish a new one",
                request.app, request.version, request.channel, request.platform
            )));
        }
        check_same_precedence(&published, request, &version)?;
        // Clients keep each version in a folder named after it; on macOS and Windows two
        // versions differing only in case would be one folder.
        let prefix = format!("{}/{}/{}/", request.app, request.channel, request.platform);
        if let Some(existing) = targets.targets.keys().find_map(|other| {
            let version = other
                .strip_prefix(&prefix)?
                .strip_suffix("/manifest.json")?;
            (version != request.version.as_str()
                && version.eq_ignore_ascii_case(request.version.as_str()))
            .then_some(version)
        }) {
            return Err(Error::Invalid(format!(
                "{} {} differs only in letter case from the published version {existing} (channel {}, platform {}); clients on macOS and Windows cannot keep both, choose another version",
                request.app, request.version, request.channel, request.platform
            )));
        }
        // Step 1: blobs, deltas, the pack, then the manifest target; then one sync.
        let (files, directories) = scan_source(&request.source)?;
        check_hooks(request, &files)?;
        check_before_writing(request, &files, &directories)?;
        let mut roles = vec!["snapshot", "timestamp"];
        if delegated.is_none() {
            roles.push("targets");
        }
        self.check_signers(keys, &roles)?;
        // The releases before this one: deltas are made against them, and their blobs are
        // reused without being checked again (a signed manifest names only durable blobs).
        let previous = self.previous_manifests(&published, request, request.delta_depth.max(1))?;
        let run = Run::default();
        run.trust(&self.root, &previous);
        super::durable::make_fan_out(&self.root.join("blobs"), &run.pending)?;
        let source_bytes = files
            .iter()
            .filter_map(|(path, _)| std::fs::metadata(path.join_to(&request.source)).ok())
            .map(|meta| meta.len())
            .sum();
        let progress = ProgressMeter::started(
            request.events.as_ref().map(|e| e.sink().clone()),
            Phase::PublishCompress,
            source_bytes,
            files.len() as u64,
        );
        // Hashing and compressing on every core; `collect` keeps the files' order, and a
        // blob's bytes do not depend on the thread that made it, so the manifest is the same
        // whatever the number of threads.
        let stored: Vec<(FileEntry, usize, u64, bool)> = files
            .into_par_iter()
            .map(|(path, execute_bit)| {
                let executable = marks_executable(request, &path, execute_bit);
                let source = path.join_to(&request.source);
                let (mut entry, written) =
                    self.store_blob(&run, &source, path, executable, request.level)?;
                let (mut new_blobs, mut new_blob_bytes) = (0, 0);
                if written {
                    new_blobs += 1;
                    new_blob_bytes += entry.blob_size;
                }
                let mut new = (0, 0);
                let archive = self.store_archive(&run, &source, request.level, &mut new)?;
                let is_archive = archive.is_some();
                if let Some(archive) = archive {
                    entry.archive = Some(Box::new(archive));
                    new_blobs += new.0;
                    new_blob_bytes += new.1;
                }
                progress.file_done(entry.size);
                Ok((entry, new_blobs, new_blob_bytes, is_archive))
            })
            .collect::<Result<_>>()?;
        progress.finish();
        let mut entries = Vec::with_capacity(stored.len());
        let (mut new_blobs, mut new_blob_bytes, mut archives) = (0, 0, 0);
        for (entry, blobs, bytes, is_archive) in stored {
            entries.push(entry);
            new_blobs += blobs;
            new_blob_bytes += bytes;
            archives += usize::from(is_archive);
        }
        let deltas = self.add_deltas(&previous, request, &mut entries)?;
        let pack = self.write_pack(request, &mut entries, &run.pending)?;
        let manifest = manifest_of(request, entries, directories, Some(pack));
        manifest
            .validate(&request.source.display().to_string())
            .map_err(manifest_refused)?;
        let bytes = manifest.to_bytes();
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        let target_path = self
            .root
            .join("targets")
            .join(dir)
            .join(format!("{sha256}.{base}"));
        fsutil::create_dir_all(&fsutil::parent_of(&target_path))?;
        fsutil::write_atomic(&target_path, &bytes)?;
        let mut encodings = self.write_manifest_encodings(&published, request, &name, &bytes)?;
        if let (Some(pack), Some(zst)) = (&manifest.pack, &encodings.zst) {
            // The pack begins with the compressed manifest: one request for a fresh install.
            let zst_path = fsutil::parent_of(&target_path).join(manifest_encoding::file_name(
                &zst.sha256,
                manifest_encoding::ZST_SUFFIX,
            ));
            self.prefix_pack(pack, &fsutil::read(&zst_path)?, &run.pending)?;
            encodings.in_pack = Some(pack.path.as_str().to_string());
        }
        // Everything above is durable before anything that names it is signed.
        run.pending.sync(&self.root)?;

        // Step 2 and 3: targets, snapshot, timestamp.
        let custom = ReleaseCustom {
            app: request.app.clone(),
            version: request.version.clone(),
            channel: request.channel.clone(),
            platform: request.platform.clone(),
            executable: request.executable.clone(),
            control: request.control.clone(),
            data: request.data.clone(),
            hooks: request.hooks.clone(),
        };
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".to_string(), sha256);
        let target = TargetFile {
            length: bytes.len() as u64,
            hashes,
            custom: Some(encodings.added_to(
                serde_json::to_value(&custom).map_err(|e| Error::Invalid(e.to_string()))?,
            )?),
            extra: Map::new(),
        };
        let (role, version) = match delegated {
            None => {
                targets.targets.insert(name.clone(), target);
                targets.version += 1;
                targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
                self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))?;
                ("targets".to_string(), targets.version)
            }
            Some(mut delegated) => {
                delegated.targets.targets.insert(name.clone(), target);
                delegated.targets.version += 1;
                delegated.targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
                let version = delegated.targets.version;
                self.write_delegated_snapshot_timestamp(
                    keys,
                    expiry,
                    &delegated.name,
                    &delegated.targets,
                    &delegated.signers,
                    &snapshot,
                )?;
                (delegated.name, version)
            }
        };
        // Step 4: the new metadata is live; older packs only cost space now.
        let pruned_packs = match request.keep_packs {
            Some(keep) => self.prune_packs_locked(keep, Some(request))?,
            None => Vec::new(),
        };
        Ok(PublishReport {
            target_name: name,
            files: manifest.files.len(),
            new_blobs,
            new_blob_bytes,
            role,
            targets_version: version,
            deltas,
            archives,
            pruned_packs,
        })
    }
}

/// A pre-release (`1.2.0-beta.1`) is refused on channel `stable` unless the request allows
/// it: every install on the default channel would take it.
fn check_prerelease(request: &PublishRequest, version: &semver::Version) -> Result<()> {
    if !version.pre.is_empty() && request.channel == DEFAULT_CHANNEL && !request.allow_prerelease {
        return Err(Error::Invalid(format!(
            "{} {} is a pre-release and the channel is {DEFAULT_CHANNEL}, which every install follows by default: publish it on another channel (--channel beta), or pass --allow-prerelease",
            request.app, request.version
        )));
    }
    Ok(())
}

/// The release's control and custom data, checked as clients will (a release whose control
/// fails the check is ignored by them), and the data's size.
fn check_control_and_data(request: &PublishRequest) -> Result<()> {
    let what = format!("{} {}", request.app, request.version);
    request.control.check(&what).map_err(Error::Invalid)?;
    let size = serde_json::to_vec(&request.data)
        .map_err(|e| Error::Invalid(format!("{what}: custom data: {e}")))?
        .len();
    if let Some(path) = first_float(&request.data, "data") {
        return Err(Error::Invalid(format!(
            "{what}: custom data field {path} holds a number with a fraction; TUF metadata is signed as canonical JSON, which has none (python-tuf refuses it): write it as a string or an integer (--custom, --custom-file)"
        )));
    }
    if size > MAX_CUSTOM_DATA_BYTES {
        return Err(Error::Invalid(format!(
            "{what}: custom data is {size} bytes as JSON, at most {MAX_CUSTOM_DATA_BYTES} are allowed (--custom, --custom-file): every client downloads every release's entry"
        )));
    }
    Ok(())
}

/// The path (`data.a.b[2]`) of the first floating-point number in `map`, if any.
fn first_float(map: &Map<String, serde_json::Value>, path: &str) -> Option<String> {
    use serde_json::Value;
    fn walk(value: &Value, path: String) -> Option<String> {
        match value {
            Value::Number(n) if n.is_f64() => Some(path),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, format!("{path}[{i}]"))),
            Value::Object(map) => map
                .iter()
                .find_map(|(key, item)| walk(item, format!("{path}.{key}"))),
            _ => None,
        }
    }
    map.iter()
        .find_map(|(key, value)| walk(value, format!("{path}.{key}")))
}

/// Two versions equal in SemVer precedence but spelled differently (`1.2.0` and
/// `1.2.0+build5`) cannot both be published for one app and channel, on any platform:
/// clients order releases by precedence, so which of the two is newer would be undefined.
/// The same version string on another platform is the same release, and allowed.
fn check_same_precedence(
    published: &BTreeMap<String, TargetFile>,
    request: &PublishRequest,
    version: &semver::Version,
) -> Result<()> {
    let prefix = format!("{}/{}/", request.app, request.channel);
    for name in published.keys() {
        let Some(rest) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("/manifest.json"))
        else {
            continue;
        };
        let Some((platform, other)) = rest.split_once('/') else {
            continue;
        };
        if other == request.version.as_str() {
            continue;
        }
        let Ok(other_version) = semver::Version::parse(other) else {
            continue;
        };
        if other_version.cmp_precedence(version).is_eq() {
            return Err(Error::Invalid(format!(
                "{} {} has the same SemVer precedence as the published version {other} (channel {}, platform {platform}): build metadata does not order versions, so clients could not tell which is newer; publish a higher version",
                request.app, request.version, request.channel
            )));
        }
    }
    Ok(())
}

/// What the manifest's checks say of the release, as the publisher says it.
fn manifest_refused(err: Error) -> Error {
    Error::Invalid(format!(
        "{err} (check --exe, --launcher and the file modes)"
    ))
}

/// The manifest's checks that need only the files' names and modes (the executable, the
/// launcher, names that clash on case-insensitive systems), made on a stand-in manifest
/// before any blob or pack is written: the same checks refuse the real one at the end, but
/// by then the repository would hold files no release names.
fn check_before_writing(
    request: &PublishRequest,
    files: &[(appstart_layout::RelativePath, Option<bool>)],
    directories: &[appstart_layout::RelativePath],
) -> Result<()> {
    let placeholder = "0".repeat(64);
    let files = files
        .iter()
        .map(|(path, execute_bit)| FileEntry {
            path: path.clone(),
            size: 1,
            executable: marks_executable(request, path, *execute_bit),
            blake3: placeholder.clone(),
            blob_size: 1,
            blob_blake3: placeholder.clone(),
            deltas: Vec::new(),
            pack_offset: None,
            archive: None,
        })
        .collect();
    manifest_of(request, files, directories.to_vec(), None)
        .validate(&request.source.display().to_string())
        .map_err(manifest_refused)
}

/// The manifest of `request` with these files, folders and pack.
fn manifest_of(
    request: &PublishRequest,
    files: Vec<FileEntry>,
    directories: Vec<appstart_layout::RelativePath>,
    pack: Option<updater_core::advanced::manifest::PackRef>,
) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        app: request.app.clone(),
        version: request.version.clone(),
        channel: request.channel.clone(),
        platform: request.platform.clone(),
        executable: request.executable.clone(),
        launcher: request.launcher.clone(),
        files,
        directories,
        pack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(names: &[&str]) -> BTreeMap<String, TargetFile> {
        names
            .iter()
            .map(|name| {
                let target = TargetFile {
                    length: 1,
                    hashes: BTreeMap::new(),
                    custom: None,
                    extra: Map::new(),
                };
                (name.to_string(), target)
            })
            .collect()
    }

    fn request(channel: &str, version: &str) -> (PublishRequest, semver::Version) {
        let request = PublishRequest {
            app: "demo".into(),
            version: appstart_layout::VersionName::parse(version).unwrap(),
            executable: appstart_layout::RelativePath::parse("bin/app").unwrap(),
            channel: channel.into(),
            platform: "linux-x86_64".into(),
            launcher: None,
            source: "src".into(),
            level: 1,
            delta_depth: 0,
            role: None,
            keep_packs: None,
            delta_time_limit: None,
            control: Default::default(),
            data: Map::new(),
            allow_prerelease: false,
            events: None,
            hooks: Default::default(),
        };
        (request, semver::Version::parse(version).unwrap())
    }

    #[test]
    fn build_metadata_alone_does_not_make_a_new_version() {
        let all = published(&[
            "demo/stable/any/1.2.0/manifest.json",
            "demo/beta/any/1.3.0/manifest.json",
            "other/stable/any/1.4.0/manifest.json",
        ]);
        let (req, v) = request("stable", "1.2.0+build5");
        let message = check_same_precedence(&all, &req, &v)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("1.2.0") && message.contains("precedence"),
            "{message}"
        );
        // The same string on another platform is the same release.
        let (req, v) = request("stable", "1.2.0");
        check_same_precedence(&all, &req, &v).unwrap();
        // Other channels and apps do not count.
        let (req, v) = request("stable", "1.3.0+b");
        check_same_precedence(&all, &req, &v).unwrap();
        let (req, v) = request("stable", "1.4.0+b");
        check_same_precedence(&all, &req, &v).unwrap();
        let (req, v) = request("beta", "1.3.0+b");
        assert!(check_same_precedence(&all, &req, &v).is_err());
    }

    #[test]
    fn a_prerelease_on_stable_needs_allowing() {
        let (mut req, v) = request("stable", "1.2.0-beta.1");
        assert!(
            check_prerelease(&req, &v)
                .unwrap_err()
                .to_string()
                .contains("--allow-prerelease")
        );
        req.allow_prerelease = true;
        check_prerelease(&req, &v).unwrap();
        let (req, v) = request("beta", "1.2.0-beta.1");
        check_prerelease(&req, &v).unwrap();
        let (req, v) = request("stable", "1.2.0+build.1");
        check_prerelease(&req, &v).unwrap();
    }

    #[test]
    fn oversized_custom_data_is_refused() {
        let (mut req, _) = request("stable", "1.0.0");
        req.data.insert(
            "notes".into(),
            serde_json::Value::String("x".repeat(MAX_CUSTOM_DATA_BYTES)),
        );
        let message = check_control_and_data(&req).unwrap_err().to_string();
        assert!(message.contains("custom data"), "{message}");
        req.data.clear();
        check_control_and_data(&req).unwrap();
        req.data
            .insert("n".into(), serde_json::json!({"list": [1, 2.5]}));
        let message = check_control_and_data(&req).unwrap_err().to_string();
        assert!(message.contains("data.n.list[1]"), "{message}");
        req.data
            .insert("n".into(), serde_json::json!({"list": [1, -2]}));
        check_control_and_data(&req).unwrap();
    }
}
