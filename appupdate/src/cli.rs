//! The command-line definition. Names and flags are an interface: add, never rename.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use updater_core::ShortcutLocation;

/// Publish signed application releases to a static repository, and install, check, update
/// and roll back installations.
#[derive(Debug, Parser)]
#[command(name = "appupdate", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// `--quiet`, `--progress`.
    #[command(flatten)]
    pub output: crate::progress::OutputArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create or maintain a repository.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Publish a folder as a signed release.
    Publish(Box<PublishArgs>),
    /// Change a published release's rollout or state (metadata only), or list releases.
    #[command(subcommand)]
    Release(crate::release_cmd::ReleaseCommand),
    /// Serve a repository over HTTP, for development and tests.
    Serve(ServeArgs),
    /// Install the newest eligible release of an app into a new folder.
    Install(InstallArgs),
    /// Write a self-contained installer: one file that installs an app (from the repository
    /// at --url, trusting REPO's first root) and starts it, run or double-clicked.
    Installer(InstallerArgs),
    /// Look for a newer release (refreshes the trusted metadata).
    Check(CheckArgs),
    /// Download, verify and switch to the newest eligible release (or only download it, or
    /// switch to what was downloaded earlier).
    Update(UpdateArgs),
    /// Show what is installed.
    Status(DirArgs),
    /// Follow another channel (`stable`, `beta`, ...): the next update takes its newest
    /// release, even if that version is lower (leaving beta for stable).
    Channel(ChannelArgs),
    /// Show or change an install's settings: the bandwidth limit of background downloads
    /// and what they do on a metered connection.
    Settings(SettingsArgs),
    /// Remove an install completely: its shortcuts, then its folder.
    Uninstall(DirArgs),
    /// Let updates take a version again that a rollback or a fallback marked as bad.
    Unskip(UnskipArgs),
    /// Switch back to the previous version, or to any installed one.
    Rollback(RollbackArgs),
    /// Check every file of the current version against its signed manifest (BLAKE3, size,
    /// mode); with --repair, rebuild a damaged version in a new folder and swap it in.
    Verify(crate::verify_cmd::VerifyArgs),
    /// Print what the installs reported (receipts): installs by version and each release's
    /// funnel.
    Fleet(crate::fleet_cmd::FleetArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish), e.g.
    /// `appupdate completions bash > /etc/bash_completion.d/appupdate`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into --out
    /// (`appupdate.1`, `appupdate-publish.1`, ...).
    Man {
        /// Folder to write every page into (created). Default: print the top page on stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the whole path end to end in a temporary folder: keys, publish, serve, install,
    /// run through appstart, publish v2, update in the background, relaunch.
    Demo(DemoArgs),
}

/// `appupdate keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate signing keys: one per role (`root.key`, `targets.key`, `snapshot.key`,
    /// `timestamp.key`), each with its public half (`.pub`).
    Generate {
        /// Folder to write the keys to (created; existing keys are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// One `default.key` for every role instead of one key per role (the root key then
        /// cannot be kept offline).
        #[arg(long, conflicts_with = "per_role")]
        shared: bool,
        /// One key per role: the default; accepted for older scripts.
        #[arg(long)]
        per_role: bool,
        /// Add one more key for this role (repeatable), for thresholds above 1 or for a
        /// delegated role (`appupdate repo delegate`): writes `ROLE.key` and `ROLE.pub`, then
        /// `ROLE.2.key`, ...
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
}

/// `appupdate repo ...`
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create an empty repository signed with the keys.
    Init {
        /// Repository folder, or `s3://BUCKET/PREFIX` (docs/hosting.md, "S3 and a CDN").
        #[arg(long)]
        repo: PathBuf,
        /// Working copy of an `s3://` repository (default: appstart/s3/BUCKET/PREFIX in the
        /// user cache folder).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Key folder.
        #[arg(long)]
        keys: PathBuf,
        /// Signatures required for a role, as ROLE=N (repeatable; default 1).
        #[arg(long = "threshold", value_name = "ROLE=N", value_parser = parse_threshold)]
        thresholds: Vec<(String, u64)>,
    },
    /// Rotate keys: publish a new root naming the keys in NEW_KEYS, signed by the old and the
    /// new root keys, and re-sign the other roles if their keys changed.
    Rotate {
        /// Repository folder, or `s3://BUCKET/PREFIX` (docs/hosting.md, "S3 and a CDN").
        #[arg(long)]
        repo: PathBuf,
        /// Working copy of an `s3://` repository (default: appstart/s3/BUCKET/PREFIX in the
        /// user cache folder).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// The current key folder (its root keys sign the new root).
        #[arg(long)]
        keys: PathBuf,
        /// The key folder to trust from now on.
        #[arg(long)]
        new_keys: PathBuf,
        /// Signatures required for a role, as ROLE=N (repeatable; default 1).
        #[arg(long = "threshold", value_name = "ROLE=N", value_parser = parse_threshold)]
        thresholds: Vec<(String, u64)>,
    },
    /// Delete the packs of older releases (clients then fetch those releases' files as blobs).
    PrunePacks {
        /// Repository folder, or `s3://BUCKET/PREFIX` (docs/hosting.md, "S3 and a CDN").
        #[arg(long)]
        repo: PathBuf,
        /// Working copy of an `s3://` repository (default: appstart/s3/BUCKET/PREFIX in the
        /// user cache folder).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Newest releases per app, channel and platform whose packs are kept.
        #[arg(long, default_value_t = 2)]
        keep: usize,
    },
    /// Write the smallest repository an offline machine can install VERSION (and every newer
    /// release of the app on the channel) from: signed metadata as it is, the releases'
    /// manifests, blobs and deltas; no packs, nothing re-signed.
    Export {
        /// Repository folder.
        #[arg(long, value_parser = crate::cli::local_repo)]
        repo: PathBuf,
        /// App.
        #[arg(long)]
        app: String,
        /// The oldest version exported; newer releases of the same channel and platform go
        /// with it (a client takes the newest it may).
        #[arg(long)]
        version: String,
        /// Channel.
        #[arg(long, default_value = "stable")]
        channel: String,
        /// Platform to export (repeatable). Default: every platform VERSION is published for.
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// Folder to write (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delegate some target paths to a new role with its own keys (signed with the targets
    /// key), and write the role's first, empty metadata.
    Delegate {
        /// Repository folder.
        #[arg(long, value_parser = crate::cli::local_repo)]
        repo: PathBuf,
        /// Key folder (needs the targets, snapshot and timestamp keys).
        #[arg(long)]
        keys: PathBuf,
        /// The delegated role's name.
        #[arg(long)]
        role: String,
        /// Release paths the role is trusted for (repeatable), like 'myapp/*' (every release of myapp)
        /// (releases are APP/CHANNEL/PLATFORM/VERSION/manifest.json; `*` never matches `/`).
        #[arg(long, required = true, value_name = "PATTERN")]
        paths: Vec<String>,
        /// The role's public key, a `.pub` file written by `appupdate keys generate --role
        /// ROLE` (repeatable). Its private half (beside it, or ROLE.key in --keys) signs the
        /// role's first metadata.
        #[arg(long = "key-file", required = true, value_name = "PUB")]
        key_files: Vec<PathBuf>,
        /// Signatures required.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        /// Releases matching the paths are never looked up in later delegations.
        #[arg(long)]
        terminating: bool,
    },
    /// Remove a delegation (signed with the targets key): clients stop trusting the role's
    /// releases.
    RevokeDelegation {
        /// Repository folder.
        #[arg(long, value_parser = crate::cli::local_repo)]
        repo: PathBuf,
        /// Key folder (needs the targets, snapshot and timestamp keys).
        #[arg(long)]
        keys: PathBuf,
        /// The delegated role's name.
        #[arg(long)]
        role: String,
    },
    /// Name the receiver installs post delivery receipts to (signed, in the targets role),
    /// or turn receipts off.
    Receipts(crate::receipts_cmd::ReceiptsArgs),
    /// Name the repository's mirrors (signed, in the targets role): full copies installs
    /// fetch from when this host fails; or remove the list.
    Mirrors(crate::mirrors_cmd::MirrorsArgs),
    /// Name the push endpoint running installs listen to for new releases (signed, in the
    /// targets role; e.g. `appupdate serve`'s /_appstart/push), or turn push off.
    Push(crate::push_cmd::PushArgs),
    /// Re-sign snapshot and timestamp with fresh expiry dates (run from cron).
    Refresh {
        /// Repository folder, or `s3://BUCKET/PREFIX` (docs/hosting.md, "S3 and a CDN").
        #[arg(long)]
        repo: PathBuf,
        /// Working copy of an `s3://` repository (default: appstart/s3/BUCKET/PREFIX in the
        /// user cache folder).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Key folder (needs the snapshot and timestamp keys only).
        #[arg(long)]
        keys: PathBuf,
    },
}

/// `appupdate publish ...`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Repository folder, or `s3://BUCKET/PREFIX` (docs/hosting.md, "S3 and a CDN").
    #[arg(long)]
    pub repo: PathBuf,
    /// Working copy of an `s3://` repository (default: appstart/s3/BUCKET/PREFIX in the
    /// user cache folder).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Key folder (needs the targets, snapshot and timestamp keys; with --role, that role's
    /// key instead of the targets key).
    #[arg(long)]
    pub keys: PathBuf,
    /// Publish into this delegated role (see `repo delegate`), signed with its key
    /// (`ROLE.key` in --keys): the top-level targets key is not needed.
    #[arg(long)]
    pub role: Option<String>,
    /// App name (a-z 0-9 . _ -).
    #[arg(long)]
    pub app: String,
    /// Release version (SemVer, e.g. 1.2.3).
    #[arg(long)]
    pub version: String,
    /// The executable, relative to SOURCE_DIR.
    #[arg(long)]
    pub exe: String,
    /// Channel.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Platform the release is for (`any` for every platform). Default: this machine's.
    #[arg(long)]
    pub platform: Option<String>,
    /// A launcher inside SOURCE_DIR to install as DIR/appstart on clients.
    #[arg(long)]
    pub launcher: Option<String>,
    /// zstd compression level for new blobs (1-22).
    #[arg(long, default_value_t = 12)]
    pub level: i32,
    /// Compute deltas against this many previous releases (0 disables deltas).
    #[arg(long, default_value_t = 3)]
    pub delta_depth: usize,
    /// Keep the packs of this many newest releases of the app, channel and platform (and
    /// always the new one's); older packs are deleted once the release is live.
    #[arg(long, default_value_t = appstart_publish::DEFAULT_KEEP_PACKS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub keep_packs: usize,
    /// Seconds the delta search of one file pair may take (0: no limit); past it the file
    /// gets no delta from that base and clients fetch its blob.
    #[arg(long, value_name = "SECONDS",
          default_value_t = appstart_publish::DEFAULT_DELTA_TIME_LIMIT.as_secs_f64(),
          value_parser = parse_seconds)]
    pub delta_time_limit: f64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// A hook, KIND=RELPATH (repeatable): run the release's file RELPATH (relative to
    /// SOURCE_DIR, executable, run with no shell) at KIND: post-install, pre-switch or
    /// first-run (docs/repository-format.md).
    #[arg(long = "hook", value_name = "KIND=RELPATH")]
    pub hooks: Vec<String>,
    /// Seconds each hook may run before it is killed and counted as failed (1-3600).
    #[arg(long, value_name = "SECS",
          default_value_t = updater_core::advanced::hooks::DEFAULT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=updater_core::advanced::hooks::MAX_TIMEOUT_SECS))]
    pub hook_timeout: u64,
    /// Release controls and custom data (`--rollout`, `--groups`, `--custom`, ...).
    #[command(flatten)]
    pub controls: crate::release_cmd::PublishControlArgs,
    /// The folder to publish.
    pub source_dir: PathBuf,
}

/// `appupdate serve ...`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Repository folder.
    #[arg(long, value_parser = crate::cli::local_repo)]
    pub repo: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Also receive delivery receipts (POST /receipts) into this database, a SQLite file or
    /// a postgres:// URL, and serve the fleet page (/fleet, /fleet.json).
    #[arg(long, value_name = "DB")]
    pub receipts_db: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8 or RSA) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Answer a request for several ranges with the whole file, as S3 and most CDNs do
    /// (one range is still answered with 206): to try how installs cope with such a host.
    #[arg(long)]
    pub one_range_per_request: bool,
}

/// `appupdate install ...`
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Repository base URL (http://, https:// or file://), or the path of a repository folder
    /// (a LAN share or a relative path; kept as its absolute file:// URL).
    #[arg(long)]
    pub url: String,
    /// The repository's root metadata (1.root.json), obtained from the publisher.
    #[arg(long)]
    pub trusted_root: PathBuf,
    /// App to install.
    #[arg(long)]
    pub app: String,
    /// Install folder (new or empty).
    #[arg(long)]
    pub dir: PathBuf,
    /// Channel to follow.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Platform to install for. Default: this machine's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Launcher binary to install when the release ships none. Default: `appstart` beside
    /// this program.
    #[arg(long)]
    pub launcher: Option<PathBuf>,
    /// Make a shortcut to the launcher on the desktop or in the start menu (applications
    /// menu). Repeat for both: `--shortcut desktop --shortcut start-menu`.
    #[arg(long = "shortcut", value_name = "WHERE", value_parser = ShortcutLocation::NAMES)]
    pub shortcuts: Vec<String>,
    /// Put the install in this group (repeatable), for releases published with `--groups`.
    #[arg(long = "group", value_name = "G")]
    pub groups: Vec<String>,
    /// HTTP proxy for this install, kept in state/install.toml and winning over
    /// HTTPS_PROXY/HTTP_PROXY/ALL_PROXY: `http://host:port` or `http://user:password@host:port`
    /// (the password is then stored in install.toml; prefer --proxy-credentials).
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// A file holding one `user:password` line for the proxy (mode 0600 on Unix), read at
    /// each run, never copied. Needs --proxy.
    #[arg(long, value_name = "FILE", requires = "proxy")]
    pub proxy_credentials: Option<PathBuf>,
    /// Hosts to reach without the proxy, kept and winning over NO_PROXY: a comma list with
    /// NO_PROXY's syntax (`*`, `example.com` also matches its subdomains, `.corp`).
    #[arg(long, value_name = "HOSTS")]
    pub no_proxy: Option<String>,
    /// Trust the CA certificates of this PEM file for HTTPS, beside the OS trust store (a
    /// repository behind a private CA); copied to state/ca.pem and used by every later update.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Another base URL of the same repository (a full copy), tried after --url when it
    /// fails, in order of recent health; repeatable; same forms as --url. Kept in
    /// state/install.toml. Nothing a mirror serves is trusted beyond the signed metadata.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Limit background downloads (`update --background`, an app's poller) to RATE bytes a
    /// second, kept in state/install.toml: a number with an optional K, M or G (1024-based),
    /// e.g. 512K or 2M. This install's own download keeps to it too.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_bandwidth: Option<u64>,
    /// Stall timeout.
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--timeout SECS`, for the commands that fetch.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Fail after SECS seconds without any data from the server (once: a stall is not
    /// retried). Default: `stall_secs` of the install's state/install.toml (30).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

/// `appupdate check ...`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Install folder, lock timeout, JSON.
    #[command(flatten)]
    pub common: DirArgs,
    /// Stall timeout.
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// `appupdate channel ...`
#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// Install folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// The channel to follow from now on. The next update takes its newest release, even
    /// if that version is lower than the running one.
    pub name: String,
    /// Seconds to wait for another updater holding the install lock.
    #[arg(long, default_value_t = 30)]
    pub lock_timeout: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `appupdate installer ...`
#[derive(Debug, Args)]
pub struct InstallerArgs {
    /// Repository folder (its `metadata/1.root.json` is built into the installer).
    #[arg(long, value_parser = crate::cli::local_repo)]
    pub repo: PathBuf,
    /// App the installer installs.
    #[arg(long)]
    pub app: String,
    /// Repository base URL clients install and update from (http://, https:// or file://).
    #[arg(long)]
    pub url: String,
    /// Channel the installed app follows.
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Platform the installer is for. Default: this machine's.
    #[arg(long)]
    pub platform: Option<String>,
    /// The `appupdate` executable built for --platform that the installer is made from.
    /// Default: this program (only for this machine's platform).
    #[arg(long, value_name = "PATH")]
    pub appupdate_binary: Option<PathBuf>,
    /// The launcher (`appstart`) built for --platform, installed when the release ships none.
    /// Default: `appstart` beside this program (only for this machine's platform).
    #[arg(long, value_name = "PATH")]
    pub launcher_binary: Option<PathBuf>,
    /// The installer file to write (`hello-setup.exe` for Windows).
    #[arg(long)]
    pub out: PathBuf,
}

/// `--dir DIR [--json] [--lock-timeout SECS]`
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Install folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// Seconds to wait for another updater working on the same install.
    #[arg(long, default_value_t = 30)]
    pub lock_timeout: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `appupdate update ...`
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Install folder, lock timeout, JSON.
    #[command(flatten)]
    pub common: DirArgs,
    /// Check and build the release beside the running version, verified and complete,
    /// without switching to it (recorded in `state/staged.toml`); `--apply` switches later.
    #[arg(long, conflicts_with = "apply")]
    pub download_only: bool,
    /// Switch to the release `--download-only` staged, without any network access.
    #[arg(long)]
    pub apply: bool,
    /// This is a background update (a scheduler, cron, Task Scheduler): downloads keep to
    /// the install's and the policy's max_bandwidth, and on a metered connection nothing is
    /// done (exit 6) unless `metered = "allow"`.
    #[arg(long)]
    pub background: bool,
    /// Limit this run's downloads to RATE bytes a second (K, M, G: 1024-based, e.g. 512K),
    /// background or not.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_bandwidth: Option<u64>,
    /// Stall timeout.
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// `appupdate settings ...`
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Install folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// Limit background downloads to RATE bytes a second (K, M, G: 1024-based, e.g. 512K or
    /// 2M); `off` removes the limit. The policy's max_bandwidth caps it.
    #[arg(long, value_name = "RATE|off", value_parser = parse_rate_setting)]
    pub max_bandwidth: Option<RateSetting>,
    /// What background downloads do on a metered connection: `pause` (the default) or
    /// `allow`; `default` removes the setting. The policy's `metered` wins over it.
    #[arg(long, value_name = "MODE", value_parser = ["pause", "allow", "default"])]
    pub metered: Option<String>,
    /// Seconds to wait for another updater holding the install lock.
    #[arg(long, default_value_t = 30)]
    pub lock_timeout: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--max-bandwidth RATE|off` of `appupdate settings`.
#[derive(Debug, Clone, Copy)]
pub enum RateSetting {
    /// No limit.
    Off,
    /// Bytes per second.
    Limit(u64),
}

/// `appupdate unskip ...`
#[derive(Debug, Args)]
pub struct UnskipArgs {
    /// Install folder, lock timeout, JSON.
    #[command(flatten)]
    pub common: DirArgs,
    /// The version to take again, as `check` lists it under skipped.
    pub version: String,
}

/// `appupdate rollback ...`
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Install folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// Version to switch to (default: the previous one).
    #[arg(long)]
    pub to: Option<String>,
    /// Seconds to wait for another updater working on the same install.
    #[arg(long, default_value_t = 30)]
    pub lock_timeout: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `appupdate demo ...`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Work in this folder instead of a temporary one (kept afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Parses `ROLE=N`.
fn parse_threshold(text: &str) -> Result<(String, u64), String> {
    let (role, count) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected ROLE=N, e.g. timestamp=2"))?;
    if !["root", "targets", "snapshot", "timestamp"].contains(&role) {
        return Err(format!(
            "{role:?} is not a role (root, targets, snapshot, timestamp)"
        ));
    }
    let count = count
        .parse()
        .map_err(|_| format!("{count:?} is not a number"))?;
    Ok((role.to_string(), count))
}

/// A bandwidth limit: `512K`, `2M` (bytes per second; K, M, G are 1024-based).
fn parse_rate(text: &str) -> Result<u64, String> {
    updater_core::advanced::bandwidth::Rate::parse(text).map(|rate| rate.bytes_per_second())
}

/// A bandwidth limit or `off`.
fn parse_rate_setting(text: &str) -> Result<RateSetting, String> {
    if text == "off" {
        return Ok(RateSetting::Off);
    }
    parse_rate(text).map(RateSetting::Limit)
}

/// A number of seconds, 0 or more (fractions allowed).
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if (0.0..1e9).contains(&seconds) => Ok(seconds),
        _ => Err(format!("`{text}` is not a number of seconds (0 or more)")),
    }
}

/// `--repo` of a command that works on a repository folder only: refuses `s3://` (exit 2)
/// rather than taking it for a folder name.
pub fn local_repo(value: &str) -> Result<PathBuf, String> {
    if appstart_publish::is_s3_url(value) {
        return Err(format!(
            "{value}: s3:// repositories are not supported by this command yet (publish, repo init, repo refresh, repo rotate and repo prune-packs take them); run it on a local copy of the repository"
        ));
    }
    Ok(PathBuf::from(value))
}
