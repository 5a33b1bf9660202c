//! The commands that act on an install: `install`, `check`, `update`, `channel`, `status`,
//! `uninstall`, `unskip` and `rollback`. Each opens the install, calls the library and prints
//! the result (one JSON object with `--json`); "nothing to do" is exit 6 (docs/cli.md).

use std::process::ExitCode;

use anyhow::{Context, Result};
use updater_core::advanced::release::current_platform;
use updater_core::{InstallOptions, ProxySettings, Updater, VersionName};

use crate::cli::{
    ChannelArgs, CheckArgs, DirArgs, InstallArgs, RollbackArgs, UnskipArgs, UpdateArgs,
};
use crate::commands::{beside_this_program, join, nothing_to_do, open, open_fetching, print_json};
use crate::exit;
use crate::progress::OutputArgs;

/// `appupdate install`.
pub fn install(args: InstallArgs, output: &OutputArgs) -> Result<ExitCode> {
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
    let mut options = InstallOptions::new(args.url, args.trusted_root, args.app, args.dir.clone())
        .with_channel(args.channel)
        .with_platform(args.platform.unwrap_or_else(current_platform))
        .with_launcher(launcher)
        .with_shortcuts(shortcuts)
        .with_groups(args.groups)
        .with_proxy(proxy_settings(
            args.proxy,
            args.proxy_credentials,
            args.no_proxy,
        ));
    if let Some(ca_file) = args.ca_file {
        options = options.with_ca_file(ca_file);
    }
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
    Ok(ExitCode::SUCCESS)
}

/// `appupdate check`.
pub fn check(args: CheckArgs) -> Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}

/// `appupdate channel`.
pub fn channel(args: ChannelArgs) -> Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}

/// `appupdate status`.
pub fn status(args: DirArgs) -> Result<ExitCode> {
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
        if let Some(proxy) = &status.proxy {
            println!("proxy:     {proxy}");
        }
        if let Some(ca_file) = &status.ca_file {
            println!("ca file:   {}", ca_file.display());
        }
        if !status.bad_versions.is_empty() {
            println!("skipped:   {}", join(&status.bad_versions));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `appupdate uninstall`.
pub fn uninstall(args: DirArgs) -> Result<ExitCode> {
    let report =
        updater_core::uninstall(&args.dir, std::time::Duration::from_secs(args.lock_timeout))?;
    if args.json {
        print_json(&report)?;
    } else {
        for path in &report.shortcuts {
            println!("removed shortcut {}", path.display());
        }
        println!("removed {}", report.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `appupdate unskip`.
pub fn unskip(args: UnskipArgs) -> Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}

/// `appupdate rollback`.
pub fn rollback(args: RollbackArgs) -> Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}

/// `appupdate update` (also `--download-only` and `--apply`).
pub fn update(args: UpdateArgs, output: &OutputArgs) -> Result<ExitCode> {
    if args.download_only {
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
        return Ok(ExitCode::SUCCESS);
    }
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
                report.from, report.bytes_downloaded, report.files_downloaded, report.files_reused
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
    Ok(ExitCode::SUCCESS)
}

/// `install --proxy URL --proxy-credentials FILE --no-proxy HOSTS` as settings.
fn proxy_settings(
    url: Option<String>,
    credentials_file: Option<std::path::PathBuf>,
    no_proxy: Option<String>,
) -> ProxySettings {
    let mut settings = url.map(ProxySettings::with_url).unwrap_or_default();
    if let Some(path) = credentials_file {
        settings = settings.with_credentials_file(path);
    }
    if let Some(hosts) = no_proxy {
        settings = settings.with_no_proxy(hosts);
    }
    settings
}
