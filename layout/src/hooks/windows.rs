//! Windows: the hook is killed with `TerminateProcess` (`Child::kill`). Processes a `.cmd`
//! started are not in a job object and may outlive it; the runner then stops reading their
//! output after a short grace period, so they cannot hold the updater or the launcher.

use std::process::{Child, Command};

/// Nothing to do: the hook gets no console of its own and no job object.
pub(super) fn own_process_group(_command: &mut Command) {}

/// Terminates the hook.
pub(super) fn kill(child: &mut Child) {
    let _ = child.kill();
}
