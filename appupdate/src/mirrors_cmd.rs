//! `appupdate repo mirrors`: the repository's mirrors, named in signed metadata
//! (docs/hosting.md, "Mirrors"). The URLs are checked by the library before anything is
//! written.

use std::path::PathBuf;

use anyhow::Result;
use appstart_publish::{Expiry, Repository};
use clap::Args;
use updater_core::advanced::tuf::keys::KeyDir;

/// `appupdate repo mirrors --repo R --keys K (--url URL... | --off)`.
#[derive(Debug, Args)]
pub struct MirrorsArgs {
    /// Repository folder.
    #[arg(long, value_parser = crate::cli::local_repo)]
    pub repo: PathBuf,
    /// Key folder (needs the targets, snapshot and timestamp keys).
    #[arg(long)]
    pub keys: PathBuf,
    /// A mirror's base URL (http:// or https://), a full copy of this repository; repeat
    /// for more, in the order installs should prefer them. Replaces the list.
    #[arg(
        long = "url",
        value_name = "URL",
        required_unless_present = "off",
        conflicts_with = "off"
    )]
    pub urls: Vec<String>,
    /// Remove the signed mirror list.
    #[arg(long)]
    pub off: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `repo mirrors`.
pub fn run(args: MirrorsArgs) -> Result<()> {
    let urls = if args.off { Vec::new() } else { args.urls };
    let report = Repository::new(&args.repo).set_mirrors(
        &KeyDir::new(&args.keys),
        &Expiry::default(),
        &urls,
    )?;
    if args.json {
        let value = serde_json::json!({
            "urls": report.urls,
            "changed": report.changed,
            "targets_version": report.targets_version,
        });
        println!("{value}");
        return Ok(());
    }
    let list = report.urls.join(", ");
    match (report.urls.is_empty(), report.changed) {
        (false, true) => println!(
            "installs now also fetch from {list} (targets version {})",
            report.targets_version.unwrap_or_default()
        ),
        (true, true) => println!(
            "mirror list removed (targets version {})",
            report.targets_version.unwrap_or_default()
        ),
        (false, false) => println!("unchanged: the mirrors are already {list}"),
        (true, false) => println!("unchanged: there was no mirror list"),
    }
    Ok(())
}
