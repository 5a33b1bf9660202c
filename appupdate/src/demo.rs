//! `appupdate demo`: the whole product, end to end, on this machine.
//!
//! In a temporary folder: generate keys, create a repository, publish the sample app 1.0.0,
//! serve the repository on 127.0.0.1, install the app, start it through `appstart`, publish
//! 2.0.0 while it runs, and watch the running app find, stage and switch to 2.0.0 in the
//! background and ask the launcher to relaunch it as 2.0.0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstart_publish::{Expiry, PublishRequest, Repository};
use appstart_serve::RepoServer;
use updater_core::advanced::release::current_platform;
use updater_core::advanced::tuf::keys::KeyDir;
use updater_core::{InstallOptions, RelativePath, Updater, VersionName};

use crate::commands::beside_this_program;

const APP: &str = "sample-app";

/// Runs the demo in `dir`, or in a new temporary folder that is kept when the demo succeeds
/// (so the folders it prints can be looked at) and removed when it fails.
pub fn run(dir: Option<PathBuf>) -> Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            run_in(dir)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("appstart-demo-")
                .tempdir()?;
            run_in(temp.path().to_path_buf())?;
            let kept = temp.keep();
            println!(
                "everything is kept in {} (remove it when you are done)",
                kept.display()
            );
            Ok(())
        }
    }
}

fn run_in(root: PathBuf) -> Result<()> {
    let app_binary = beside_this_program(APP)?;
    let launcher = beside_this_program("appstart")?;
    for needed in [&app_binary, &launcher] {
        if !needed.is_file() {
            bail!(
                "{} is missing: build the whole workspace first (cargo build --release --workspace)",
                needed.display()
            );
        }
    }
    println!("appstart demo in {}", root.display());

    step(1, "generating signing keys");
    let keys = KeyDir::new(root.join("keys"));
    keys.generate(false)?;

    step(2, "creating a repository of static files");
    let repo = Repository::new(root.join("repo"));
    repo.init(&keys, &Expiry::default(), &Default::default())?;

    step(3, "publishing sample-app 1.0.0");
    publish(
        &repo,
        &keys,
        &root,
        &app_binary,
        "1.0.0",
        "Hello from the first release.",
    )?;

    step(4, "serving the repository on loopback");
    let server = RepoServer::bind(&root.join("repo"), "127.0.0.1:0")?.spawn(4);
    println!("    {}/", server.url());

    step(5, "installing sample-app with appupdate install");
    let install_dir = root.join("installed");
    let report = updater_core::install(
        &InstallOptions::new(
            server.url(),
            root.join("repo/metadata/1.root.json"),
            APP,
            &install_dir,
        )
        .with_platform(current_platform())
        .with_launcher(launcher),
    )?;
    println!(
        "    installed 1.0.0: {} bytes downloaded",
        report.bytes_downloaded
    );

    step(
        6,
        "starting it through appstart; it polls for updates in the background",
    );
    let mut child = Command::new(install_dir.join("appstart"))
        .args([
            "--poll-ms",
            "300",
            "--until-version",
            "2.0.0",
            "--max-secs",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting appstart")?;
    let stdout = child.stdout.take().context("app stdout")?;
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("    app | {line}");
            let _ = lines.send(line);
        }
    });
    wait_for_line(&received, "sample-app 1.0.0")?;

    step(7, "publishing sample-app 2.0.0 while 1.0.0 runs");
    publish(
        &repo,
        &keys,
        &root,
        &app_binary,
        "2.0.0",
        "Hello from the second release, installed in the background.",
    )?;

    step(
        8,
        "waiting for the app to update itself and appstart to relaunch it",
    );
    wait_for_line(&received, "sample-app 2.0.0")?;
    let status = child.wait().context("waiting for appstart")?;
    if !status.success() {
        bail!("appstart exited with {status}");
    }
    let state = Updater::open(&install_dir)?.status()?;
    if state.current.as_str() != "2.0.0" {
        bail!("expected 2.0.0 to be current, found {}", state.current);
    }
    println!(
        "\ndone: {} now runs {} (previous {}); installed: {}",
        install_dir.display(),
        state.current,
        state
            .previous
            .as_ref()
            .map_or("-".into(), ToString::to_string),
        state
            .installed
            .iter()
            .map(VersionName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let history =
        std::fs::read_to_string(install_dir.join("state/history.log")).unwrap_or_default();
    println!(
        "history ({}):",
        install_dir.join("state/history.log").display()
    );
    for line in history.lines() {
        println!("    {line}");
    }
    drop(server);
    Ok(())
}

fn step(number: u32, text: &str) {
    println!("[{number}/8] {text}");
}

fn publish(
    repo: &Repository,
    keys: &KeyDir,
    root: &Path,
    binary: &Path,
    version: &str,
    message: &str,
) -> Result<()> {
    let source = root.join(format!("build-{version}"));
    std::fs::create_dir_all(source.join("bin"))?;
    std::fs::create_dir_all(source.join("share"))?;
    std::fs::copy(binary, source.join("bin").join(APP)).context("copying the sample app")?;
    std::fs::write(source.join("share/message.txt"), format!("{message}\n"))?;
    let report = repo.publish(
        keys,
        &Expiry::default(),
        &PublishRequest {
            app: APP.into(),
            version: VersionName::parse(version)?,
            executable: RelativePath::parse(&format!("bin/{APP}"))?,
            channel: "stable".into(),
            platform: current_platform(),
            launcher: None,
            source,
            level: 3,
            delta_depth: 3,
            role: None,
            keep_packs: Some(appstart_publish::DEFAULT_KEEP_PACKS),
            delta_time_limit: Some(appstart_publish::DEFAULT_DELTA_TIME_LIMIT),
            control: Default::default(),
            data: Default::default(),
            allow_prerelease: false,
            events: None,
            hooks: Default::default(),
        },
    )?;
    println!(
        "    {} ({} files, {} new blobs)",
        report.target_name, report.files, report.new_blobs
    );
    Ok(())
}

fn wait_for_line(lines: &mpsc::Receiver<String>, prefix: &str) -> Result<()> {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with(prefix) => return Ok(()),
            Ok(_) => {}
            Err(_) => bail!("the app never printed {prefix:?}"),
        }
    }
}
