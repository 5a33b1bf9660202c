//! `appstart`: the launcher a desktop shortcut points at (see the `appstart_launcher` crate
//! docs and `docs/launcher.md`).

fn main() {
    // `exit`, not `ExitCode`: an `ExitCode` holds 8 bits, a Windows exit code 32.
    std::process::exit(appstart_launcher::launch())
}
