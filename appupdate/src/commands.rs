//! One function per command: call the library, print the result.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use appstart_publish::{DelegationRequest, Expiry, PublishRequest, Repository};
use serde::Serialize;
use updater_core::advanced::hooks::{Hook, HookKind, Hooks};
use updater_core::advanced::release::current_platform;
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::{InstallOptions, RelativePath, Updater, VersionName};

use crate::cli::{Cli, Command, KeysCommand, RepoCommand};
use crate::exit;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let output = cli.output;
    match cli.command {
        Command::Keys(KeysCommand::Generate {
            out,
            shared,
            per_role: _, // one key per role is the default
            roles,
        }) => {
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
        Command::Repo(RepoCommand::Init {
            repo,
            keys,
            thresholds,
        }) => {
            Repository::new(&repo).init(
                &KeyDir::new(keys),
                &Expiry::default(),
                &thresholds.into_iter().collect(),
            )?;
            println!(
                "created repository {}; give clients {}",
                repo.display(),
                repo.join("metadata/1.root.json").display()
            );
        }
        Command::Repo(RepoCommand::Rotate {
            repo,
            keys,
            new_keys,
            thresholds,
        }) => {
            let version = Repository::new(&repo).rotate_root(
                &KeyDir::new(keys),
                &KeyDir::new(new_keys),
                &Expiry::default(),
                &thresholds.into_iter().collect(),
            )?;
            println!(
                "published root version {version}; clients follow the chain at their next check"
            );
        }
        Command::Repo(RepoCommand::PrunePacks { repo, keep }) => {
            let removed = Repository::new(&repo).prune_packs(keep)?;
            for path in &removed {
                println!("removed {}", path.display());
            }
            println!("{} packs removed", removed.len());
        }
        Command::Repo(RepoCommand::Delegate {
            repo,
            keys,
            role,
            paths,
            key_files,
            threshold,
            terminating,
        }) => {
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
        Command::Repo(RepoCommand::RevokeDelegation { repo, keys, role }) => {
            Repository::new(&repo).revoke_delegation(
                &KeyDir::new(keys),
                &Expiry::default(),
                &role,
            )?;
            println!("revoked role {role}: clients no longer trust its releases");
        }
        Command::Repo(RepoCommand::Receipts(args)) => crate::receipts_cmd::run(args)?,
        Command::Repo(RepoCommand::Refresh { repo, keys }) => {
            let version = Repository::new(&repo).refresh(&KeyDir::new(keys), &Expiry::default())?;
            println!("re-signed snapshot and timestamp (timestamp version {version})");
        }
        Command::Publish(args) => {
            let args = *args;
            let (control, data, allow_prerelease) =
                crate::release_cmd::publish_controls(&args.controls)?;
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
            let report = Repository::new(&args.repo).publish(
                &KeyDir::new(args.keys),
                &Expiry::default(),
                &request,
            )?;
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
        }
        Command::Release(command) => crate::release_cmd::run(command)?,
        Command::Fleet(args) => crate::fleet_cmd::fleet(&args)?,
        Command::Serve(args) => {
            crate::fleet_cmd::serve(&args.repo, &args.listen, args.receipts_db.as_deref())?;
        }
        Command::Install(args) => {
            let launcher = match args.launcher {
                Some(path) => path,
                None => beside_this_program("appstart")?,
            };
            let shortcuts = args
                .shortcuts
                .iter()
                .map(|name| name.parse())
                .collect::<Result<_, _>>()
                .context("--shortcut")?;
            let mut options =
                InstallOptions::new(args.url, args.trusted_root, args.app, args.dir.clone())
                    .with_channel(args.channel)
                    .with_platform(args.platform.unwrap_or_else(current_platform))
                    .with_launcher(launcher)
                    .with_shortcuts(shortcuts)
                    .with_groups(args.groups);
            options.events = output.events(args.json);
            options.timeout = args.network.timeout.map(std::time::Duration::from_secs);
            options.cancel = crate::interrupt::token();
            let report = updater_core::install(&options)?;
            if args.json {
                print_json(&report)?;
            } else {
                let version = report.to.as_ref().map_or("?".into(), ToString::to_string);
                println!(
                    "installed {} {version} into {} ({} bytes downloaded); run {}",
                    options.app,
                    args.dir.display(),
                    report.bytes_downloaded,
                    args.dir.join("appstart").display()
                );
            }
        }
        Command::Installer(args) => crate::installer::build(args)?,
        Command::Check(args) => {
            let updater = open_fetching(
                &args.common.dir,
                args.common.lock_timeout,
                &args.network,
                None,
            )?;
            let args = args.common;
            let check = updater.check()?;
            let available = check.available.as_ref().map(|r| r.version().clone());
            if args.json {
                let custom = check
                    .available
                    .as_ref()
                    .map(|r| serde_json::Value::Object(r.custom.data.clone()));
                print_json(&serde_json::json!({
                    "current": check.current,
                    "available": available,
                    "critical": check.critical,
                    "custom": custom,
                    "skipped": check.skipped,
                    "held_back": check.held_back,
                }))?;
            } else {
                for skipped in &check.skipped {
                    println!("{} is skipped: {}", skipped.version, skipped.reason);
                }
                for held in &check.held_back {
                    println!("{} is held back: {}", held.version, held.reason.as_str());
                }
                match available {
                    Some(version) => {
                        println!("{} is available (current: {})", version, check.current)
                    }
                    None => println!("{} is up to date", check.current),
                }
            }
        }
        Command::Update(args) if args.download_only => {
            let events = output.events(args.common.json);
            let report = open_fetching(
                &args.common.dir,
                args.common.lock_timeout,
                &args.network,
                events,
            )?
            .download_only()?;
            let args = args.common;
            if args.json {
                print_json(&report)?;
            } else {
                match &report.staged {
                    Some(version) => println!(
                        "{version} is staged beside {} ({} bytes downloaded); `appupdate update --apply --dir {}` switches to it",
                        report.current,
                        report.bytes_downloaded,
                        args.dir.display()
                    ),
                    None => println!("{} is up to date; nothing staged", report.current),
                }
            }
            if report.staged.is_none() {
                return Ok(ExitCode::from(exit::NOTHING_TO_DO));
            }
        }
        Command::Update(args) => {
            let apply = args.apply;
            let events = output.events(args.common.json);
            let updater = open_fetching(
                &args.common.dir,
                args.common.lock_timeout,
                &args.network,
                events,
            )?;
            let args = args.common;
            let report = if apply {
                match updater.apply_staged() {
                    Err(updater_core::Error::NothingToDo(why)) => {
                        return nothing_to_do(&updater, &why, args.json);
                    }
                    result => result?,
                }
            } else {
                updater.update()?
            };
            if args.json {
                print_json(&report)?;
            } else {
                match &report.to {
                    Some(to) => println!(
                        "updated {} -> {to}: {} bytes downloaded, {} files downloaded, {} reused; it runs at the next start",
                        report.from,
                        report.bytes_downloaded,
                        report.files_downloaded,
                        report.files_reused
                    ),
                    None => println!("{} is up to date", report.from),
                }
                if report.steps.len() > 1 {
                    println!("  through {}", join(&report.steps));
                }
                if let Some(stop) = &report.stopped_at {
                    println!("  {stop} must run once before newer releases are applied");
                }
            }
            if let Some(error) = &report.error {
                anyhow::bail!(
                    "the update stopped part-way: {} is current and complete, then: {error}",
                    report.to.as_ref().map_or("?".into(), ToString::to_string)
                );
            }
            if report.to.is_none() {
                return Ok(ExitCode::from(exit::NOTHING_TO_DO));
            }
        }
        Command::Channel(args) => {
            let updater = open(&args.dir, args.lock_timeout)?;
            let old = updater.set_channel(&args.name)?;
            if args.json {
                print_json(&serde_json::json!({ "from": old, "to": args.name }))?;
            } else {
                println!(
                    "{} now follows channel {} (was {old}); the next update takes its newest release",
                    args.dir.display(),
                    args.name
                );
            }
        }
        Command::Status(args) => {
            let status = Updater::open(&args.dir)?.status()?;
            if args.json {
                print_json(&status)?;
            } else {
                println!("app:       {}", status.app);
                println!("current:   {}", status.current);
                println!(
                    "previous:  {}",
                    status
                        .previous
                        .as_ref()
                        .map_or("-".into(), ToString::to_string)
                );
                println!("installed: {}", join(&status.installed));
                println!("channel:   {}", status.channel);
                println!("install:   {}", status.install_id);
                if !status.groups.is_empty() {
                    println!("groups:    {}", status.groups.join(", "));
                }
                for source in &status.policy.sources {
                    println!("policy:    {}", source.display());
                }
                println!("platform:  {}", status.platform);
                println!("url:       {}", status.url);
                if !status.bad_versions.is_empty() {
                    println!("skipped:   {}", join(&status.bad_versions));
                }
            }
        }
        Command::Uninstall(args) => {
            let report = updater_core::uninstall(
                &args.dir,
                std::time::Duration::from_secs(args.lock_timeout),
            )?;
            if args.json {
                print_json(&report)?;
            } else {
                for path in &report.shortcuts {
                    println!("removed shortcut {}", path.display());
                }
                println!("removed {}", report.dir.display());
            }
        }
        Command::Unskip(args) => {
            let version = VersionName::parse(&args.version).context("VERSION")?;
            let args = args.common;
            let was_skipped = open(&args.dir, args.lock_timeout)?.unskip(&version)?;
            if args.json {
                print_json(&serde_json::json!({ "version": version, "was_skipped": was_skipped }))?;
            } else if was_skipped {
                println!("{version} is no longer skipped; the next update may take it");
            } else {
                println!("{version} was not skipped; nothing changed");
            }
            if !was_skipped {
                return Ok(ExitCode::from(exit::NOTHING_TO_DO));
            }
        }
        Command::Rollback(args) => {
            let to = args
                .to
                .as_deref()
                .map(VersionName::parse)
                .transpose()
                .context("--to")?;
            let updater = open(&args.dir, args.lock_timeout)?;
            let (from, to) = match updater.rollback(to.as_ref()) {
                Err(updater_core::Error::NothingToDo(why)) => {
                    return nothing_to_do(&updater, &why, args.json);
                }
                result => result?,
            };
            if args.json {
                print_json(&serde_json::json!({ "from": from, "to": to }))?;
            } else {
                println!("rolled back {from} -> {to}; it runs at the next start");
            }
        }
        Command::Verify(args) => {
            let events = output.events(args.json);
            return crate::verify_cmd::run(&args, events);
        }
        Command::Demo(args) => crate::demo::run(args.dir)?,
        Command::Completions { shell } => crate::docs_cmd::completions(shell)?,
        Command::Man { out } => crate::docs_cmd::man(out.as_deref())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports that there was nothing to do (exit 6): a result, so on stdout, and with `--json`
/// as `{"from": CURRENT, "to": null, "nothing_to_do": WHY}`.
fn nothing_to_do(updater: &Updater, why: &str, json: bool) -> Result<ExitCode> {
    if json {
        let current = updater.status()?.current;
        print_json(&serde_json::json!({ "from": current, "to": null, "nothing_to_do": why }))?;
    } else {
        println!("nothing to do: {why}");
    }
    Ok(ExitCode::from(exit::NOTHING_TO_DO))
}

pub fn open(dir: &std::path::Path, lock_timeout: u64) -> Result<Updater> {
    let mut updater = Updater::open(dir)?;
    updater.set_lock_wait(std::time::Duration::from_secs(lock_timeout));
    Ok(updater)
}

/// [`open`] for a command that fetches: Ctrl-C cancels it ([`crate::interrupt`]),
/// `--timeout` sets the stall timeout, and progress goes to `events`.
pub fn open_fetching(
    dir: &std::path::Path,
    lock_timeout: u64,
    network: &crate::cli::NetworkArgs,
    events: Option<updater_core::Events>,
) -> Result<Updater> {
    let mut updater = open(dir, lock_timeout)?.with_cancel(crate::interrupt::token());
    if let Some(seconds) = network.timeout {
        updater.set_timeout(std::time::Duration::from_secs(seconds));
    }
    if let Some(events) = events {
        updater.on_event(move |event| events.sink()(event));
    }
    Ok(updater)
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

fn join(versions: &[VersionName]) -> String {
    versions
        .iter()
        .map(VersionName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name` in the folder of the running `appupdate` (where cargo puts all workspace binaries).
pub fn beside_this_program(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let dir = exe.parent().context("this program's folder")?;
    Ok(dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
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
