//! `appstart-gui`: the launcher for GUI apps on Windows. Linked for the `windows` subsystem,
//! so a shortcut to it opens no console window (its own error messages then go nowhere: launches
//! and fallbacks are in `state/history.log`, failures in the exit code). Elsewhere it is the same as `appstart`.
#![windows_subsystem = "windows"]

fn main() {
    std::process::exit(appstart_launcher::launch())
}
