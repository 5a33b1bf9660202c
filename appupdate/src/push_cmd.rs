//! `appupdate repo push`: the push endpoint running installs listen to for new timestamp
//! versions, named in signed metadata (`docs/hosting.md#push`). The URL is checked by the
//! library before anything is written.

use std::path::PathBuf;

use anyhow::Result;
use appstart_publish::{Expiry, Repository};
use clap::Args;
use updater_core::advanced::tuf::keys::KeyDir;

/// `appupdate repo push --repo R --keys K (--url URL | --off)`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Repository folder.
    #[arg(long, value_parser = crate::cli::local_repo)]
    pub repo: PathBuf,
    /// Key folder (needs the targets, snapshot and timestamp keys).
    #[arg(long)]
    pub keys: PathBuf,
    /// The push endpoint's full URL (http:// or https://), e.g. `appupdate serve`'s
    /// `http://HOST:PORT/_appstart/push`.
    #[arg(long, required_unless_present = "off", conflicts_with = "off")]
    pub url: Option<String>,
    /// Stop installs from listening for pushes (removes the signed setting); they keep
    /// polling.
    #[arg(long)]
    pub off: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `repo push`.
pub fn run(args: PushArgs) -> Result<()> {
    let report = Repository::new(&args.repo).set_push(
        &KeyDir::new(&args.keys),
        &Expiry::default(),
        if args.off { None } else { args.url.as_deref() },
    )?;
    if args.json {
        let value = serde_json::json!({
            "url": report.url,
            "changed": report.changed,
            "targets_version": report.targets_version,
        });
        println!("{value}");
        return Ok(());
    }
    match (&report.url, report.changed) {
        (Some(url), true) => println!(
            "installs now listen for pushes at {url} (targets version {})",
            report.targets_version.unwrap_or_default()
        ),
        (None, true) => println!(
            "push off: installs only poll (targets version {})",
            report.targets_version.unwrap_or_default()
        ),
        (Some(url), false) => println!("unchanged: installs already listen at {url}"),
        (None, false) => println!("unchanged: push was already off"),
    }
    Ok(())
}
