//! Dispatches the parsed command line to its handler: the publisher's commands in
//! `repo_cmd`, the install's in `client_cmd`, and one module each for `release`, `fleet` and
//! `serve`, `verify`, `repo receipts`, `demo`, and the generated docs. The helpers they share
//! (opening an install, printing JSON, "nothing to do") are here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use updater_core::{Updater, VersionName};

use crate::cli::{Cli, Command};
use crate::exit;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let output = cli.output;
    match cli.command {
        Command::Keys(command) => crate::repo_cmd::keys(command)?,
        Command::Repo(command) => crate::repo_cmd::repo(command)?,
        Command::Publish(args) => crate::repo_cmd::publish(args, &output)?,
        Command::Release(command) => crate::release_cmd::run(command)?,
        Command::Fleet(args) => crate::fleet_cmd::fleet(&args)?,
        Command::Serve(args) => {
            crate::fleet_cmd::serve(&args)?;
        }
        Command::Install(args) => return crate::client_cmd::install(args, &output),
        Command::Installer(args) => crate::installer::build(args)?,
        Command::Check(args) => return crate::client_cmd::check(args),
        Command::Update(args) => return crate::client_cmd::update(args, &output),
        Command::Channel(args) => return crate::client_cmd::channel(args),
        Command::Settings(args) => return crate::client_cmd::settings(args),
        Command::Status(args) => return crate::client_cmd::status(args),
        Command::Uninstall(args) => return crate::client_cmd::uninstall(args),
        Command::Unskip(args) => return crate::client_cmd::unskip(args),
        Command::Rollback(args) => return crate::client_cmd::rollback(args),
        Command::Verify(args) => {
            let events = output.events(args.json);
            return crate::verify_cmd::run(&args, events);
        }
        Command::Demo(args) => crate::demo::run(args.dir)?,
        Command::Completions { shell } => crate::docs_cmd::completions(shell)?,
        Command::Man { out } => crate::docs_cmd::man(out.as_deref())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports that there was nothing to do (exit 6): a result, so on stdout, and with `--json`
/// as `{"from": CURRENT, "to": null, "nothing_to_do": WHY}`.
pub fn nothing_to_do(updater: &Updater, why: &str, json: bool) -> Result<ExitCode> {
    if json {
        let current = updater.status()?.current;
        print_json(&serde_json::json!({ "from": current, "to": null, "nothing_to_do": why }))?;
    } else {
        println!("nothing to do: {why}");
    }
    Ok(ExitCode::from(exit::NOTHING_TO_DO))
}

pub fn open(dir: &std::path::Path, lock_timeout: u64) -> Result<Updater> {
    let mut updater = Updater::open(dir)?;
    updater.set_lock_wait(std::time::Duration::from_secs(lock_timeout));
    Ok(updater)
}

/// [`open`] for a command that fetches: Ctrl-C cancels it ([`crate::interrupt`]),
/// `--timeout` sets the stall timeout, and progress goes to `events`.
pub fn open_fetching(
    dir: &std::path::Path,
    lock_timeout: u64,
    network: &crate::cli::NetworkArgs,
    events: Option<updater_core::Events>,
) -> Result<Updater> {
    let mut updater = open(dir, lock_timeout)?.with_cancel(crate::interrupt::token());
    if let Some(seconds) = network.timeout {
        updater.set_timeout(std::time::Duration::from_secs(seconds));
    }
    if let Some(events) = events {
        updater.on_event(move |event| events.sink()(event));
    }
    Ok(updater)
}

pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

pub fn join(versions: &[VersionName]) -> String {
    versions
        .iter()
        .map(VersionName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name` in the folder of the running `appupdate` (where cargo puts all workspace binaries).
pub fn beside_this_program(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let dir = exe.parent().context("this program's folder")?;
    Ok(dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX)))
}
