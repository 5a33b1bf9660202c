//! The smallest app that keeps itself up to date. Started by the `appstart` launcher, it
//! updates once at start; when it took a new version it exits with the launcher's restart
//! code, and the launcher starts the new version at once. Ten lines of `main`.
//!
//! An app that runs for hours would use [`updater_core::Poller`] instead (see `prompt.rs`
//! and docs/embedding.md). Tested end to end by `tests/examples.rs`.

fn main() -> Result<(), updater_core::Error> {
    let updater = updater_core::Updater::from_launcher_environment()?;
    let report = updater.update()?;
    if let Some(version) = &report.to {
        println!("updated to {version}, restarting");
        updater_core::request_restart();
    }
    let running = std::env::var("APPSTART_VERSION").unwrap_or_default();
    println!("running {running}");
    Ok(())
}
