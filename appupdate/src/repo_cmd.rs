//! The publisher's commands: keys, repository upkeep (`repo ...`) and `publish`.

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

use appstart_publish::{
    DelegationRequest, Expiry, ExportRequest, PublishRequest, Repository, S3Repository,
    default_s3_cache, is_s3_url,
};
use updater_core::advanced::hooks::{Hook, HookKind, Hooks};
use updater_core::advanced::release::current_platform;
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::{RelativePath, VersionName};

use crate::cli::{KeysCommand, PublishArgs, RepoCommand};
use crate::commands::print_json;
use crate::progress::OutputArgs;

/// `appupdate keys ...`.
pub fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate {
            out,
            shared,
            per_role: _, // one key per role is the default
            roles,
        } => {
            let keys = KeyDir::new(&out);
            let written = if roles.is_empty() {
                keys.generate(shared)?
            } else {
                let mut written = Vec::new();
                for role in &roles {
                    written.extend(keys.add_role_key(role)?);
                }
                written
            };
            for path in written {
                println!("wrote {}", path.display());
            }
            println!(
                "keep the .key files secret (.pub files are public); the root key can stay offline after `repo init`"
            );
        }
    }
    Ok(())
}

/// `appupdate repo ...`.
pub fn repo(command: RepoCommand) -> Result<()> {
    match command {
        RepoCommand::Init {
            repo,
            cache,
            keys,
            thresholds,
        } => {
            let thresholds = thresholds.into_iter().collect();
            on_repository(&repo, cache, true, |repository| {
                repository.init(&KeyDir::new(keys), &Expiry::default(), &thresholds)
            })?;
            if repo.to_str().is_some_and(is_s3_url) {
                println!(
                    "created repository {}; give clients its metadata/1.root.json (also in the working copy named above)",
                    repo.display()
                );
            } else {
                println!(
                    "created repository {}; give clients {}",
                    repo.display(),
                    repo.join("metadata/1.root.json").display()
                );
            }
        }
        RepoCommand::Rotate {
            repo,
            cache,
            keys,
            new_keys,
            thresholds,
        } => {
            let thresholds = thresholds.into_iter().collect();
            let version = on_repository(&repo, cache, false, |repository| {
                repository.rotate_root(
                    &KeyDir::new(keys),
                    &KeyDir::new(new_keys),
                    &Expiry::default(),
                    &thresholds,
                )
            })?;
            println!(
                "published root version {version}; clients follow the chain at their next check"
            );
        }
        RepoCommand::PrunePacks { repo, cache, keep } => {
            let removed = on_repository(&repo, cache, false, |repository| {
                repository.prune_packs(keep)
            })?;
            for path in &removed {
                println!("removed {}", path.display());
            }
            println!("{} packs removed", removed.len());
        }
        RepoCommand::Export {
            repo,
            app,
            version,
            channel,
            platforms,
            out,
            json,
        } => {
            let version = VersionName::parse(&version).context("--version")?;
            let mut request = ExportRequest::new(app, version, channel, out);
            request.platforms = platforms;
            let report = Repository::new(&repo).export(&request)?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "exported {} ({} files, {} bytes) into {}; install from it with --url {}",
                    report.releases.join(", "),
                    report.files,
                    report.bytes,
                    report.out.display(),
                    report.out.display()
                );
            }
        }
        RepoCommand::Delegate {
            repo,
            keys,
            role,
            paths,
            key_files,
            threshold,
            terminating,
        } => {
            let version = Repository::new(&repo).delegate(
                &KeyDir::new(keys),
                &Expiry::default(),
                &DelegationRequest {
                    role: role.clone(),
                    paths: paths.clone(),
                    key_files,
                    threshold,
                    terminating,
                },
            )?;
            println!(
                "delegated {} to role {role} (its metadata version {version}); publish with `appupdate publish --role {role}`",
                paths.join(" ")
            );
        }
        RepoCommand::RevokeDelegation { repo, keys, role } => {
            Repository::new(&repo).revoke_delegation(
                &KeyDir::new(keys),
                &Expiry::default(),
                &role,
            )?;
            println!("revoked role {role}: clients no longer trust its releases");
        }
        RepoCommand::Receipts(args) => crate::receipts_cmd::run(args)?,
        RepoCommand::Push(args) => crate::push_cmd::run(args)?,
        RepoCommand::Mirrors(args) => crate::mirrors_cmd::run(args)?,
        RepoCommand::Refresh { repo, cache, keys } => {
            let version = on_repository(&repo, cache, false, |repository| {
                repository.refresh(&KeyDir::new(keys), &Expiry::default())
            })?;
            println!("re-signed snapshot and timestamp (timestamp version {version})");
        }
    }
    Ok(())
}

/// `appupdate publish`.
pub fn publish(args: Box<PublishArgs>, output: &OutputArgs) -> Result<()> {
    let args = *args;
    let (control, data, allow_prerelease) = crate::release_cmd::publish_controls(&args.controls)?;
    let request = PublishRequest {
        app: args.app,
        version: VersionName::parse(&args.version).context("--version")?,
        executable: RelativePath::parse(&plain_relative(&args.exe)).context("--exe")?,
        channel: args.channel,
        platform: args.platform.unwrap_or_else(current_platform),
        launcher: args
            .launcher
            .as_deref()
            .map(|path| RelativePath::parse(&plain_relative(path)))
            .transpose()
            .context("--launcher")?,
        source: args.source_dir,
        level: args.level,
        delta_depth: args.delta_depth,
        role: args.role,
        keep_packs: Some(args.keep_packs),
        delta_time_limit: (args.delta_time_limit > 0.0)
            .then(|| std::time::Duration::from_secs_f64(args.delta_time_limit)),
        control,
        data,
        allow_prerelease,
        events: output.events(args.json),
        hooks: publish_hooks(&args.hooks, args.hook_timeout)?,
    };
    let keys = KeyDir::new(args.keys);
    let report = on_repository(&args.repo, args.cache, false, |repository| {
        repository.publish(&keys, &Expiry::default(), &request)
    })?;
    if args.json {
        print_json(&serde_json::json!({
            "target": report.target_name,
            "role": report.role,
            "files": report.files,
            "new_blobs": report.new_blobs,
            "new_blob_bytes": report.new_blob_bytes,
            "targets_version": report.targets_version,
            "deltas": report.deltas,
            "archives": report.archives,
            "pruned_packs": report.pruned_packs.len(),
        }))?;
    } else {
        println!(
            "published {} ({} files, {} new blobs, {} bytes, {} deltas, {} archives taken apart, {} older packs removed)",
            report.target_name,
            report.files,
            report.new_blobs,
            report.new_blob_bytes,
            report.deltas,
            report.archives,
            report.pruned_packs.len()
        );
    }
    Ok(())
}

/// Runs `change` on the repository `repo` names: a folder, or `s3://BUCKET/PREFIX` through
/// its working copy (`cache`, or the default in the user cache folder), uploading what it
/// changed (`appstart_publish::S3Repository`). `creating`: `repo init`.
fn on_repository<T>(
    repo: &Path,
    cache: Option<PathBuf>,
    creating: bool,
    change: impl FnOnce(&Repository) -> updater_core::Result<T>,
) -> Result<T> {
    let Some(url) = repo.to_str().filter(|repo| is_s3_url(repo)) else {
        return Ok(change(&Repository::new(repo))?);
    };
    let cache = match cache {
        Some(cache) => cache,
        None => default_s3_cache(url, &|name| std::env::var(name).ok()).ok_or_else(|| {
            anyhow!("{url}: no user cache folder for its working copy (HOME is not set): give --cache DIR")
        })?,
    };
    let bucket = S3Repository::open(url, cache)?;
    let (value, report) = bucket.change(creating, change)?;
    eprintln!(
        "{url}: {} files downloaded into {}, {} uploaded (timestamp.json last), {} deleted",
        report.downloaded,
        bucket.working_copy().display(),
        report.uploaded.len(),
        report.deleted.len()
    );
    Ok(value)
}

/// A path as users type it (`./bin/hello`, `bin\\hello.exe`), with `.` parts and backslashes
/// taken out, for the strict [`RelativePath`] parser (which still refuses `..`).
/// The `--hook KIND=RELPATH` flags of `publish`, each with `timeout_secs`. Whether each file
/// is in the release is checked by the library, which reads the folder.
fn publish_hooks(flags: &[String], timeout_secs: u64) -> Result<Hooks> {
    let mut hooks = Hooks::default();
    for flag in flags {
        let (kind, path) = flag.split_once('=').ok_or_else(|| {
            anyhow!("--hook {flag:?}: expected KIND=RELPATH, like pre-switch=bin/check")
        })?;
        let kind = HookKind::parse(kind).ok_or_else(|| {
            anyhow!(
                "--hook {flag:?}: unknown hook kind {kind:?}; the kinds are post-install, pre-switch and first-run"
            )
        })?;
        let path = RelativePath::parse(&plain_relative(path))
            .with_context(|| format!("--hook {flag:?}"))?;
        let hook = Hook { path, timeout_secs };
        if hooks.set(kind, hook).is_some() {
            bail!("--hook {kind} is given twice; a release has at most one hook of each kind");
        }
    }
    Ok(hooks)
}

fn plain_relative(path: &str) -> String {
    if path.starts_with(['/', '\\']) || path.as_bytes().get(1) == Some(&b':') {
        // Absolute: left for the parser to refuse, naming it.
        return path.to_string();
    }
    path.split(['/', '\\'])
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}
