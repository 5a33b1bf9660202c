//! The fleet on the command line (issue 16): `appupdate fleet` prints what the installs
//! reported, `appupdate release guard` pauses a release whose installs fall back or fail too
//! often, and `serve --receipts-db` turns the receiver on. The stores and the counting live in
//! the `appstart-fleet` crate; see `docs/fleet.md`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use appstart_publish::{ControlChange, Expiry, ReleaseSelector, Repository, parse_percent};
use appstart_serve::RepoServer;
use clap::Args;
use updater_core::advanced::tuf::keys::KeyDir;

/// `appupdate fleet ...`
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Receipt database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    pub db: String,
    /// Only this app's installs.
    #[arg(long)]
    pub app: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `appupdate release guard ...`
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// Repository folder.
    #[arg(long, value_parser = crate::cli::local_repo)]
    pub repo: PathBuf,
    /// Key folder (targets, snapshot and timestamp keys), to pause the release.
    #[arg(long)]
    pub keys: PathBuf,
    /// Receipt database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    pub db: String,
    /// App name.
    #[arg(long)]
    pub app: String,
    /// Version, as published.
    #[arg(long)]
    pub version: String,
    /// Pause when more than this share of the installs that reached the release fell back
    /// from it or failed on it, like '2%'.
    #[arg(long, value_name = "PERCENT")]
    pub max_fallback_rate: String,
    /// Channel (of the release, and of the receipts counted).
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Platform; default: every platform.
    #[arg(long)]
    pub platform: Option<String>,
    /// Decide nothing until this many installs reached the release.
    #[arg(long, default_value_t = 1)]
    pub min_installs: u64,
    /// Print the decision as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Opens the receipt store named by `db` (file path or URL).
fn open(db: &str) -> Result<Box<dyn appstart_fleet::Store>> {
    if !db.contains("://") && !std::path::Path::new(db).exists() {
        bail!("receipt database {db} does not exist; give the file `serve --receipts-db` writes");
    }
    Ok(appstart_fleet::open(db)?)
}

/// Runs `appupdate serve`: over HTTPS when `--tls-cert` and `--tls-key` are given, with the
/// receiver's routes when `--receipts-db` is.
pub fn serve(args: &crate::cli::ServeArgs) -> Result<()> {
    let (repo, listen) = (&args.repo, args.listen.as_str());
    // A file, or a folder that does not exist, would be served as a repository that answers
    // 404 to everything: refused before listening.
    if !repo.is_dir() {
        return Err(anyhow!(
            "--repo {}: not a folder (give the repository's folder, the one holding metadata/)",
            repo.display()
        ));
    }
    let mut server = match args.tls_cert.as_deref().zip(args.tls_key.as_deref()) {
        Some((cert, key)) => RepoServer::bind_tls(repo, listen, cert, key)?,
        None => RepoServer::bind(repo, listen)?,
    };
    if args.one_range_per_request {
        server = server.one_range_per_request();
    }
    // The first line names the URL (scripts and the e2e harness read it).
    println!("serving {} at {}/", repo.display(), server.url());
    if let Some(db) = args.receipts_db.as_deref() {
        let store: Arc<dyn appstart_fleet::Store> = Arc::from(appstart_fleet::open(db)?);
        server = server.with_handler(Arc::new(appstart_fleet::Receiver::new(store)));
        println!(
            "receiving receipts: POST {url}/receipts; fleet page {url}/fleet and {url}/fleet.json",
            url = server.url()
        );
    }
    println!(
        "announcing new timestamp versions at {}{} (name it with `appupdate repo push`)",
        server.url(),
        appstart_serve::push::SERVE_PATH
    );
    server.run(8, std::io::stdout());
    Ok(())
}

/// Runs `appupdate fleet`.
pub fn fleet(args: &FleetArgs) -> Result<()> {
    if let Some(app) = &args.app {
        updater_core::advanced::manifest::check_label("--app", app)?;
    }
    let summary = open(&args.db)?.summary(args.app.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

/// Runs `appupdate release guard`: pauses the release when its receipts are bad enough.
pub fn guard(args: GuardArgs) -> Result<()> {
    let threshold =
        parse_percent(&args.max_fallback_rate).map_err(|e| anyhow!("--max-fallback-rate: {e}"))?;
    // A guard of a release that is not published (a typo in a cron line) would guard
    // nothing, and say nothing: refused, as `release pause` refuses it.
    let published = Repository::new(&args.repo)
        .list_releases(Some(&args.app))?
        .iter()
        .any(|listed| {
            listed.version == args.version
                && listed.channel == args.channel
                && args.platform.as_ref().is_none_or(|p| *p == listed.platform)
        });
    if !published {
        return Err(anyhow!(
            "no release of {} {} on channel {}{} is published in {}",
            args.app,
            args.version,
            args.channel,
            args.platform
                .as_ref()
                .map_or(String::new(), |p| format!(" for {p}")),
            args.repo.display()
        ));
    }
    let health = open(&args.db)?
        .release_health(&appstart_fleet::ReleaseQuery {
            app: args.app.clone(),
            version: args.version.clone(),
            channel: Some(args.channel.clone()),
            platform: args.platform.clone(),
        })
        .with_context(|| format!("reading the receipts of {} {}", args.app, args.version))?;
    let rate = health.bad_percent();
    let release = format!("{} {} on channel {}", args.app, args.version, args.channel);
    let (pause, reason) = if health.reached < args.min_installs.max(1) {
        (
            false,
            format!(
                "only {} installs reached {release}; waiting for {}",
                health.reached,
                args.min_installs.max(1)
            ),
        )
    } else if rate > threshold {
        (
            true,
            format!(
                "{} of {} installs fell back or failed ({rate:.2}%), above {threshold}%",
                health.bad, health.reached
            ),
        )
    } else {
        (
            false,
            format!(
                "{} of {} installs fell back or failed ({rate:.2}%), within {threshold}%",
                health.bad, health.reached
            ),
        )
    };
    let mut changed = Vec::new();
    if pause {
        let report = Repository::new(&args.repo).change_release_control(
            &KeyDir::new(&args.keys),
            &Expiry::default(),
            &ReleaseSelector {
                app: args.app.clone(),
                channel: args.channel.clone(),
                version: args.version.clone(),
                platform: args.platform.clone(),
            },
            &ControlChange::Pause,
        )?;
        changed = report.changed;
    }
    if args.json {
        let value = serde_json::json!({
            "app": args.app,
            "version": args.version,
            "channel": args.channel,
            "reached": health.reached,
            "bad": health.bad,
            "rate_percent": rate,
            "max_percent": threshold,
            "paused": pause,
            "changed": changed,
            "reason": reason,
        });
        println!("{}", serde_json::to_string(&value)?);
    } else if pause {
        println!("paused {release}: {reason}");
        if changed.is_empty() {
            println!("it was already paused; no metadata re-signed");
        }
    } else {
        println!("left {release} as it is: {reason}");
    }
    Ok(())
}
