//! `tuf-client`: a TUF 1.0 client with the command-line contract conformance suites drive.
//!
//! ```text
//! tuf-client --metadata-dir DIR init TRUSTED_ROOT_FILE
//! tuf-client --metadata-dir DIR --metadata-url URL refresh
//! tuf-client --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH2 ...] \
//!            --target-base-url URL --target-dir DIR download
//! ```
//!
//! Exit code exactly 0 on success and exactly 1 on any failure: bad arguments, errors and
//! panics alike. The refresh follows the specification's order (root chain first), storing
//! each role as soon as it is verified.
//! Downloaded targets are stored in the target dir under their percent-encoded name; one
//! already there with matching length and hashes is not downloaded again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use updater_core::advanced::download::{RetryPolicy, fetch_bytes};
use updater_core::advanced::error::chain;
use updater_core::advanced::transport::{HttpTimeouts, Transport, for_url};
use updater_core::advanced::tuf::client::{Fetch, Limits, TrustedMetadata, check_target, quote};

#[derive(Debug, Parser)]
#[command(name = "tuf-client", version, about = "A TUF 1.0 client")]
struct Cli {
    /// Folder of the trusted metadata.
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Base URL of the metadata files.
    #[arg(long)]
    metadata_url: Option<String>,
    /// A target to download (repeatable; downloaded in order).
    #[arg(long)]
    target_name: Vec<String>,
    /// Base URL of the target files.
    #[arg(long)]
    target_base_url: Option<String>,
    /// Folder to download targets into.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Trust the given root metadata file (no network access).
    Init {
        /// The root metadata file.
        trusted_root_file: PathBuf,
    },
    /// Refresh the top-level metadata.
    Refresh,
    /// Refresh, then download and verify each --target-name.
    Download,
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("tuf-client: internal error: {info}");
        std::process::exit(1);
    }));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tuf-client: error: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match &cli.command {
        Command::Init { trusted_root_file } => {
            let bytes = std::fs::read(trusted_root_file)
                .map_err(|e| format!("reading {}: {e}", trusted_root_file.display()))?;
            TrustedMetadata::init(
                &cli.metadata_dir,
                &bytes,
                &trusted_root_file.display().to_string(),
            )
            .map_err(|e| chain(&e))
        }
        Command::Refresh => {
            let url = required(&cli.metadata_url, "--metadata-url")?;
            let transport = transport(url)?;
            refresh(&cli.metadata_dir, url, transport.as_ref()).map(drop)
        }
        Command::Download => {
            let url = required(&cli.metadata_url, "--metadata-url")?;
            let base = required(&cli.target_base_url, "--target-base-url")?;
            let dir = cli.target_dir.as_ref().ok_or("--target-dir is required")?;
            if cli.target_name.is_empty() {
                return Err("at least one --target-name is required".into());
            }
            let transport = transport(url)?;
            let mut trusted = refresh(&cli.metadata_dir, url, transport.as_ref())?;
            let retry = retry_policy();
            let fetch = Fetch {
                transport: transport.as_ref(),
                metadata_url: url,
                retry: &retry,
            };
            let target_transport = self::transport(base)?;
            for name in &cli.target_name {
                download(
                    &mut trusted,
                    fetch,
                    target_transport.as_ref(),
                    base,
                    name,
                    dir,
                )?;
            }
            Ok(())
        }
    }
}

fn required<'a>(value: &'a Option<String>, flag: &str) -> Result<&'a str, String> {
    value
        .as_deref()
        .ok_or_else(|| format!("{flag} is required"))
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        base_delay: std::time::Duration::from_millis(50),
        max_delay: std::time::Duration::from_secs(1),
        ..RetryPolicy::default()
    }
}

fn transport(url: &str) -> Result<Box<dyn Transport>, String> {
    for_url(url, HttpTimeouts::default()).map_err(|e| chain(&e))
}

fn refresh(dir: &Path, url: &str, transport: &dyn Transport) -> Result<TrustedMetadata, String> {
    let mut trusted = TrustedMetadata::load(dir, Limits::default()).map_err(|e| chain(&e))?;
    trusted
        .refresh(transport, url, &retry_policy())
        .map_err(|e| chain(&e))?;
    Ok(trusted)
}

fn download(
    trusted: &mut TrustedMetadata,
    fetch: Fetch<'_>,
    transport: &dyn Transport,
    base: &str,
    name: &str,
    dir: &Path,
) -> Result<(), String> {
    let target = trusted
        .target(fetch, name)
        .map_err(|e| chain(&e))?
        .ok_or_else(|| format!("target {name} is not in the trusted targets metadata"))?;
    let path = dir.join(quote(name));
    if let Ok(bytes) = std::fs::read(&path)
        && check_target(&target, &bytes, name).is_ok()
    {
        return Ok(());
    }
    let url = trusted.target_url(base, name, &target);
    let bytes = fetch_bytes(transport, &url, target.length, fetch.retry).map_err(|e| chain(&e))?;
    check_target(&target, &bytes, &url).map_err(|e| chain(&e))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    updater_core::advanced::fsutil::write_atomic(&path, &bytes).map_err(|e| chain(&e))
}
