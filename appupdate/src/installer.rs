//! Self-contained installers: one file a user runs (or double-clicks) to install an app and
//! start it, like Velopack's `Setup.exe`.
//!
//! An installer is a copy of `appupdate` for the target platform with a [`Payload`] appended
//! (app, URL, channel, platform, the repository's `1.root.json`, the launcher); see
//! `payload.rs` for the format. Building one needs no toolchain: `appupdate installer`
//! concatenates files. At start, [`embedded_payload`] looks at the end of the running
//! executable; when a payload is there, `main` runs [`run`] instead of the usual command
//! line:
//!
//! 1. Parse the installer's own flags ([`InstallerCli`]).
//! 2. Write the trusted root and the launcher to a temporary folder.
//! 3. Install with `updater_core::install` into `--dir` or the per-user default
//!    ([`default_install_dir`]).
//!    It makes the shortcuts asked for: by default one on the desktop and one in the start
//!    menu, as a double-clicked `Setup.exe` is expected to; `appupdate uninstall` removes them.
//! 4. Start the app through the installed launcher (unless `--no-start`) and exit without
//!    waiting for it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser};
use updater_core::advanced::release::current_platform;
use updater_core::{InstallOptions, ShortcutLocation};

use crate::cli::InstallerArgs;
use crate::payload::{self, Payload};

/// The installer's command line (an installer is run with no arguments, usually).
#[derive(Debug, Parser)]
#[command(
    about = "Installs the app this installer was made for, then starts it.",
    disable_version_flag = true,
    after_help = "Example:\n  hello-setup --dir ~/apps/hello --no-shortcut --no-start"
)]
pub struct InstallerCli {
    /// Install folder (new or empty). Default: `$XDG_DATA_HOME/APP` (else
    /// `~/.local/share/APP`) on Linux, `%LOCALAPPDATA%\APP` on Windows.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Install only; do not start the app.
    #[arg(long = "no-start", action = clap::ArgAction::SetFalse)]
    start: bool,
    /// Make a shortcut to the app here (repeatable). Default: on the desktop and in the start
    /// menu (the applications menu on Linux).
    #[arg(long = "shortcut", value_name = "WHERE", value_parser = ShortcutLocation::NAMES)]
    shortcuts: Vec<String>,
    /// Make no shortcut.
    #[arg(long = "no-shortcut", conflicts_with = "shortcuts")]
    no_shortcut: bool,
    /// Arguments for the app's first start (after `--`).
    #[arg(last = true)]
    app_args: Vec<String>,
}

/// The payload appended to the running executable, `None` for a plain `appupdate`.
pub fn embedded_payload() -> Result<Option<Payload>> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    read_payload(&exe)
}

fn read_payload(path: &Path) -> Result<Option<Payload>> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    payload::read(&mut file).with_context(|| format!("reading {}", path.display()))
}

/// `appupdate installer`: writes the installer file.
pub fn build(args: InstallerArgs) -> Result<()> {
    let this_platform = current_platform();
    let platform = args.platform.unwrap_or_else(|| this_platform.clone());
    let other_platform = |flag: &str| {
        anyhow::anyhow!(
            "--platform {platform} is not this machine's ({this_platform}): pass {flag} with the binary built for {platform}"
        )
    };
    let base = match args.appupdate_binary {
        Some(path) => path,
        None if platform == this_platform => {
            std::env::current_exe().context("finding this program's path")?
        }
        None => return Err(other_platform("--appupdate-binary")),
    };
    let launcher = match args.launcher_binary {
        Some(path) => path,
        None if platform == this_platform => crate::commands::beside_this_program("appstart")?,
        None => return Err(other_platform("--launcher-binary")),
    };
    if read_payload(&base)?.is_some() {
        bail!(
            "{} is already an installer: pass a plain appupdate binary",
            base.display()
        );
    }
    let root_path = args.repo.join("metadata/1.root.json");
    let payload = Payload {
        app: args.app,
        url: args.url,
        channel: args.channel,
        platform,
        trusted_root: read(&root_path)?,
        launcher: read(&launcher)?,
    };
    let tail = payload::encode(&payload).context("building the installer payload")?;
    let mut bytes = read(&base)?;
    bytes.extend_from_slice(&tail);
    write_executable(&args.out, &bytes)?;
    println!(
        "wrote {} ({} bytes): installs {} ({} on {}) from {} and starts it",
        args.out.display(),
        bytes.len(),
        payload.app,
        payload.channel,
        payload.platform,
        payload.url
    );
    Ok(())
}

/// Installer mode: installs the payload's app and starts it.
pub fn run(payload: Payload) -> Result<ExitCode> {
    // Help and errors name the installer file the user ran, not `appupdate`.
    let name = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "installer".into());
    let matches = InstallerCli::command().bin_name(name).get_matches();
    let cli = InstallerCli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let dir = match cli.dir {
        Some(dir) => dir,
        None => default_install_dir(&payload.app)?,
    };
    let shortcuts = if cli.no_shortcut {
        Vec::new()
    } else if cli.shortcuts.is_empty() {
        vec![ShortcutLocation::Desktop, ShortcutLocation::StartMenu]
    } else {
        cli.shortcuts
            .iter()
            .map(|name| name.parse())
            .collect::<Result<_, _>>()
            .context("--shortcut")?
    };
    let scratch = tempfile::Builder::new()
        .prefix("appupdate-installer-")
        .tempdir()
        .context("creating a temporary folder")?;
    let trusted_root = scratch.path().join("1.root.json");
    write_file(&trusted_root, &payload.trusted_root)?;
    let launcher = scratch
        .path()
        .join(format!("appstart{}", std::env::consts::EXE_SUFFIX));
    write_executable(&launcher, &payload.launcher)?;
    let mut options = InstallOptions::new(payload.url, trusted_root, payload.app, dir.clone())
        .with_channel(payload.channel)
        .with_platform(payload.platform)
        .with_launcher(launcher)
        .with_shortcuts(shortcuts);
    options.events = crate::progress::OutputArgs::default().events(false);
    let report = updater_core::install(&options)
        .with_context(|| format!("installing {} into {}", options.app, dir.display()))?;
    let installed_launcher = dir.join(format!("appstart{}", std::env::consts::EXE_SUFFIX));
    let version = report.to.as_ref().map_or("?".into(), ToString::to_string);
    println!(
        "installed {} {version} into {}; start it with {}",
        options.app,
        dir.display(),
        installed_launcher.display()
    );
    let install = updater_core::InstallDir::new(&dir);
    for shortcut in updater_core::advanced::shortcut::recorded(&install)? {
        println!("made a shortcut: {}", shortcut.path.display());
    }
    if cli.start {
        // The app's output follows ours: flush first.
        std::io::stdout().flush().context("writing to stdout")?;
        // Not waited for: the installer's job ends once the app runs, as Setup.exe's does.
        #[allow(
            clippy::zombie_processes,
            reason = "the installer exits at once; the app is then reparented and reaped"
        )]
        std::process::Command::new(&installed_launcher)
            .args(&cli.app_args)
            .spawn()
            .with_context(|| format!("starting {}", installed_launcher.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-user folder an installer installs `app` into without `--dir`.
#[cfg(unix)]
fn default_install_dir(app: &str) -> Result<PathBuf> {
    // XDG base directories: a relative XDG_DATA_HOME is invalid and ignored.
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from)
        && data.is_absolute()
    {
        return Ok(data.join(app));
    }
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".local/share").join(app)),
        _ => bail!("neither XDG_DATA_HOME nor HOME is set: pass --dir"),
    }
}

/// The per-user folder an installer installs `app` into without `--dir`.
#[cfg(windows)]
fn default_install_dir(app: &str) -> Result<PathBuf> {
    match std::env::var_os("LOCALAPPDATA") {
        Some(local) if !local.is_empty() => Ok(PathBuf::from(local).join(app)),
        _ => bail!("LOCALAPPDATA is not set: pass --dir"),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes `bytes` to `path` atomically (a temporary file beside it, renamed over it), with
/// the execute bit on Unix.
fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("creating a temporary file in {}", folder.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", file.path().display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", file.path().display()))?;
    }
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
