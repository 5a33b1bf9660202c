//! `appupdate verify --dir D [--repair] [--json]`: checks the current version's files against
//! its signed manifest and, with `--repair`, rebuilds a damaged version beside it
//! (`Updater::verify`, `Updater::repair`). Exit code 1 when `verify` finds damage, so scripts
//! and monitoring can act on it; 0 after a successful repair.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use updater_core::VerifyReport;

/// `appupdate verify ...`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Install folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// Rebuild a damaged current version in a new folder (fetching only the damaged files)
    /// and swap it in; rebuild an unreadable appstart.toml.
    #[arg(long)]
    pub repair: bool,
    /// Seconds to wait for another updater working on the same install.
    #[arg(long, default_value_t = 30)]
    pub lock_timeout: u64,
    /// Stall timeout (for --repair's downloads).
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `verify`.
pub fn run(args: &VerifyArgs, events: Option<updater_core::Events>) -> Result<ExitCode> {
    let updater =
        crate::commands::open_fetching(&args.dir, args.lock_timeout, &args.network, events)?;
    if args.repair {
        let report = updater.repair()?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_found(&report.found);
            if report.config_rebuilt {
                println!("rebuilt appstart.toml (current {})", report.found.version);
            }
            if let Some(folder) = &report.repaired_to {
                println!(
                    "repaired {} in {} ({} files downloaded, {} reused)",
                    report.found.version,
                    folder.display(),
                    report.downloaded_files,
                    report.reused_files
                );
            }
            if let Some(aside) = &report.damaged_moved_to {
                println!(
                    "the damaged folder is now {} (removed at the next update)",
                    aside.display()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = updater.verify()?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_found(&report);
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_found(report: &VerifyReport) {
    if !report.config_ok {
        println!("appstart.toml: unreadable");
    }
    for (label, names) in [
        ("damaged", &report.damaged),
        ("missing", &report.missing),
        ("extra", &report.extra),
    ] {
        for name in names {
            println!("{label}: {name}");
        }
    }
    if !report.record_checked {
        println!("note: the trusted targets do not list this release; its record was not checked");
    }
    let verdict = if report.ok { "ok" } else { "DAMAGED" };
    println!(
        "{} {verdict}: {} files checked",
        report.version, report.files_checked
    );
}
