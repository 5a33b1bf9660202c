//! `appupdate repo receipts`: where installs post their delivery receipts, named in signed
//! metadata (`docs/receipts.md`). The URL is checked by the library before anything is written.

use std::path::PathBuf;

use anyhow::Result;
use appstart_publish::{Expiry, Repository};
use clap::Args;
use updater_core::advanced::tuf::keys::KeyDir;

/// `appupdate repo receipts --repo R --keys K (--url URL | --off)`.
#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    /// Repository folder.
    #[arg(long, value_parser = crate::cli::local_repo)]
    pub repo: PathBuf,
    /// Key folder (needs the targets, snapshot and timestamp keys).
    #[arg(long)]
    pub keys: PathBuf,
    /// The receiver's base URL (http:// or https://); installs post to URL/receipts.
    #[arg(long, required_unless_present = "off", conflicts_with = "off")]
    pub url: Option<String>,
    /// Stop installs from sending receipts (removes the signed setting).
    #[arg(long)]
    pub off: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `repo receipts`.
pub fn run(args: ReceiptsArgs) -> Result<()> {
    let report = Repository::new(&args.repo).set_receipts(
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
            "installs now post receipts to {url}/receipts (targets version {})",
            report.targets_version.unwrap_or_default()
        ),
        (None, true) => println!(
            "receipts off: installs stop sending them (targets version {})",
            report.targets_version.unwrap_or_default()
        ),
        (Some(url), false) => println!("unchanged: installs already post receipts to {url}"),
        (None, false) => println!("unchanged: receipts were already off"),
    }
    Ok(())
}
