//! Release controls on the command line: the control flags of `appupdate publish`
//! (`--rollout`, `--groups`, `--custom`, ...) and the `appupdate release` commands, which
//! change a published release's controls (`rollout`, `pause`, `resume`, `pull`) by re-signing
//! metadata only, and list releases with their state (`list`).
//!
//! Every value is checked here, before the library is called, so that a bad one fails naming
//! its flag and nothing is written. The format and what clients do with it are in
//! `docs/rollout.md`; the commands in `docs/cli.md`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use appstart_publish::{
    ControlChange, ControlReport, Expiry, ReleaseListing, ReleaseSelector, Repository,
    parse_percent, parse_rollout_schedule,
};
use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use updater_core::advanced::control::install_id::InstallId;
use updater_core::advanced::control::{Control, Rollout, check_group, parse_time};
use updater_core::advanced::tuf::keys::KeyDir;

/// The release-control flags of `appupdate publish`.
#[derive(Debug, Args)]
pub struct PublishControlArgs {
    /// Roll out to this percentage of installs (0-100, decimals allowed); `release rollout`
    /// changes it later.
    #[arg(
        long,
        value_name = "PERCENT",
        conflicts_with = "rollout_schedule",
        allow_negative_numbers = true
    )]
    pub rollout: Option<String>,
    /// Roll out on a schedule, like '1%@0h,10%@24h,100%@72h' (offsets from now in s, m, h or
    /// d; stored as RFC 3339 UTC times).
    #[arg(long, value_name = "SCHEDULE")]
    pub rollout_schedule: Option<String>,
    /// Only installs in one of these groups may take it (comma-separated).
    #[arg(long, value_name = "G1,G2")]
    pub groups: Option<String>,
    /// Only these install ids may take it (comma-separated, 32 hex digits each).
    #[arg(long, value_name = "ID1,ID2")]
    pub installs: Option<String>,
    /// Only installs whose current version matches this SemVer requirement may take it.
    #[arg(long, value_name = "SEMVER-REQ")]
    pub from: Option<String>,
    /// Update chains stop at this release: it runs once before anything newer is applied.
    #[arg(long)]
    pub stop: bool,
    /// Critical: bypasses rollout and update windows.
    #[arg(long)]
    pub critical: bool,
    /// RFC 3339 time after which installs still on this release treat their update as
    /// critical.
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
    /// Custom data for the app, KEY=VALUE (repeatable; the value is stored as a JSON string).
    #[arg(long = "custom", value_name = "KEY=VALUE")]
    pub custom: Vec<String>,
    /// Custom data from a JSON object in FILE (`--custom` keys override its keys).
    #[arg(long, value_name = "FILE.json")]
    pub custom_file: Option<PathBuf>,
    /// Allow a pre-release version (1.2.0-beta.1) on channel stable.
    #[arg(long)]
    pub allow_prerelease: bool,
}

/// `appupdate release ...`
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Set the rollout of a published release (metadata only).
    Rollout {
        #[command(flatten)]
        release: ReleaseArgs,
        /// Percentage of installs (0-100, decimals allowed).
        #[arg(
            long,
            value_name = "N",
            required_unless_present = "schedule",
            conflicts_with = "schedule",
            allow_negative_numbers = true
        )]
        percent: Option<String>,
        /// A schedule, like '1%@0h,10%@24h,100%@72h' (offsets from now in s, m, h or d).
        #[arg(long, value_name = "SCHEDULE")]
        schedule: Option<String>,
    },
    /// Pause a release: no new install takes it (metadata only).
    Pause(ReleaseArgs),
    /// Make a paused or pulled release active again (metadata only).
    Resume(ReleaseArgs),
    /// Pull a release: no install takes it, and installs on it move to the newest release
    /// they may take (metadata only).
    Pull(ReleaseArgs),
    /// Pause a release when the receipts show too many of its installs falling back or
    /// failing (metadata only; meant for cron).
    Guard(Box<crate::fleet_cmd::GuardArgs>),
    /// List every release with its state and controls.
    List {
        /// Repository folder.
        #[arg(long, value_parser = crate::cli::local_repo)]
        repo: PathBuf,
        /// Only this app's releases.
        #[arg(long)]
        app: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
}

/// The release a `release` command changes.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Repository folder.
    #[arg(long, value_parser = crate::cli::local_repo)]
    pub repo: PathBuf,
    /// Key folder (the targets, snapshot and timestamp keys; for a release in a delegated
    /// role, that role's key instead of the targets key).
    #[arg(long)]
    pub keys: PathBuf,
    /// App name.
    #[arg(long)]
    pub app: String,
    /// Version, as published.
    #[arg(long)]
    pub version: String,
    /// Channel.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Platform; default: every platform the version was published for.
    #[arg(long)]
    pub platform: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Most bytes read from `--custom-file` (the data itself is capped at
/// `MAX_CUSTOM_DATA_BYTES` as compact JSON; this allows for indentation).
const MAX_CUSTOM_FILE_BYTES: u64 = 1 << 20;

/// The control, custom data and `allow_prerelease` of a publish, every flag checked.
pub fn publish_controls(args: &PublishControlArgs) -> Result<(Control, Map<String, Value>, bool)> {
    let mut control = Control::default();
    if let Some(text) = &args.rollout {
        let percent = parse_percent(text).map_err(|e| anyhow!("--rollout: {e}"))?;
        control.rollout = Some(Rollout::fixed(percent));
    }
    if let Some(text) = &args.rollout_schedule {
        let rollout = parse_rollout_schedule(text, SystemTime::now())
            .map_err(|e| anyhow!("--rollout-schedule: {e}"))?;
        control.rollout = Some(rollout);
    }
    if let Some(text) = &args.groups {
        for group in text.split(',').map(str::trim) {
            check_group(group).map_err(|e| anyhow!("--groups: {e}"))?;
            control.groups.push(group.to_string());
        }
    }
    if let Some(text) = &args.installs {
        for id in text.split(',') {
            let id = InstallId::parse(id).map_err(|e| anyhow!("--installs: {e}"))?;
            control.installs.push(id.as_str().to_string());
        }
    }
    if let Some(from) = &args.from {
        let mut probe = Control::default();
        probe.from = Some(from.clone());
        probe.check("--from").map_err(|e| anyhow!(e))?;
        control.from = Some(from.clone());
    }
    if let Some(expires) = &args.expires {
        if parse_time(expires).is_none() {
            bail!("--expires: {expires:?} is not an RFC 3339 time, like 2027-01-31T00:00:00Z");
        }
        control.expires = Some(expires.clone());
    }
    control.stop = args.stop;
    control.critical = args.critical;
    let mut data = match &args.custom_file {
        Some(path) => read_custom_file(path)?,
        None => Map::new(),
    };
    for pair in &args.custom {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| {
                anyhow!("--custom {pair:?}: expected KEY=VALUE, like channel_note=hello")
            })?;
        data.insert(key.to_string(), Value::String(value.to_string()));
    }
    Ok((control, data, args.allow_prerelease))
}

/// The JSON object in `path`.
fn read_custom_file(path: &Path) -> Result<Map<String, Value>> {
    let bytes = updater_core::advanced::fsutil::read_capped(path, MAX_CUSTOM_FILE_BYTES)
        .with_context(|| format!("--custom-file {}", path.display()))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => bail!("--custom-file {}: not a JSON object", path.display()),
        Err(e) => bail!("--custom-file {}: not JSON: {e}", path.display()),
    }
}

/// Runs `appupdate release ...`.
pub fn run(command: ReleaseCommand) -> Result<()> {
    let (release, change, verb) = match command {
        ReleaseCommand::List { repo, app, json } => return list(&repo, app.as_deref(), json),
        ReleaseCommand::Guard(args) => return crate::fleet_cmd::guard(*args),
        ReleaseCommand::Rollout {
            release,
            percent,
            schedule,
        } => {
            let rollout = match (percent, schedule) {
                (Some(text), _) => {
                    Rollout::fixed(parse_percent(&text).map_err(|e| anyhow!("--percent: {e}"))?)
                }
                (None, Some(text)) => parse_rollout_schedule(&text, SystemTime::now())
                    .map_err(|e| anyhow!("--schedule: {e}"))?,
                (None, None) => bail!("give --percent N or --schedule SCHEDULE"),
            };
            (release, ControlChange::Rollout(rollout), "rollout set")
        }
        ReleaseCommand::Pause(release) => (release, ControlChange::Pause, "paused"),
        ReleaseCommand::Resume(release) => (release, ControlChange::Resume, "resumed"),
        ReleaseCommand::Pull(release) => (release, ControlChange::Pull, "pulled"),
    };
    let selector = ReleaseSelector {
        app: release.app,
        channel: release.channel,
        version: release.version,
        platform: release.platform,
    };
    let report = Repository::new(&release.repo).change_release_control(
        &KeyDir::new(&release.keys),
        &Expiry::default(),
        &selector,
        &change,
    )?;
    print_report(&report, verb, release.json)
}

fn print_report(report: &ControlReport, verb: &str, json: bool) -> Result<()> {
    if json {
        let value = serde_json::json!({
            "changed": report.changed,
            "unchanged": report.unchanged,
            "roles": report.roles,
        });
        println!("{}", serde_json::to_string(&value)?);
        return Ok(());
    }
    for target in &report.changed {
        println!("{verb}: {target}");
    }
    for target in &report.unchanged {
        println!("already so: {target}");
    }
    if report.changed.is_empty() {
        println!("nothing changed; no metadata re-signed");
    } else {
        println!(
            "re-signed {} and the snapshot and timestamp; clients see it at their next check",
            report.roles.join(", ")
        );
    }
    Ok(())
}

fn list(repo: &Path, app: Option<&str>, json: bool) -> Result<()> {
    let releases = Repository::new(repo).list_releases(app)?;
    if json {
        println!("{}", serde_json::to_string(&releases)?);
        return Ok(());
    }
    let header = [
        "APP", "CHANNEL", "PLATFORM", "VERSION", "STATE", "ROLLOUT", "ROLE", "CONTROLS",
    ]
    .map(String::from);
    let rows: Vec<[String; 8]> = std::iter::once(header)
        .chain(releases.iter().map(row))
        .collect();
    let mut widths = [0; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

/// One release's cells in `release list`.
fn row(release: &ReleaseListing) -> [String; 8] {
    let mut rollout = format!("{}%", release.rollout_percent);
    if release
        .rollout
        .as_ref()
        .is_some_and(|r| !r.schedule.is_empty())
    {
        rollout.push_str(" (scheduled)");
    }
    let mut controls = Vec::new();
    if !release.groups.is_empty() {
        controls.push(format!("groups={}", release.groups.join(",")));
    }
    if !release.installs.is_empty() {
        controls.push(format!("installs={}", release.installs.len()));
    }
    if let Some(from) = &release.from {
        controls.push(format!("from={from}"));
    }
    if release.stop {
        controls.push("stop".into());
    }
    if release.critical {
        controls.push("critical".into());
    }
    if let Some(expires) = &release.expires {
        controls.push(format!("expires={expires}"));
    }
    if !release.custom.is_empty() {
        controls.push(format!("custom={}", release.custom.len()));
    }
    [
        release.app.clone(),
        release.channel.clone(),
        release.platform.clone(),
        release.version.clone(),
        release.state.as_str().to_string(),
        rollout,
        release.role.clone(),
        controls.join(" "),
    ]
}
