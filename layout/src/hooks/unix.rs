//! Unix: a hook runs in its own process group, so that killing it at its timeout also kills
//! what a script started (a `sleep`, a child holding the output pipe).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Puts the hook in a new process group (its id is the hook's pid).
pub(super) fn own_process_group(command: &mut Command) {
    command.process_group(0);
}

/// Kills the hook's process group, then the hook itself (in case the group is gone).
pub(super) fn kill(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: `kill` takes plain integers; a negative pid names the process group the
        // hook leads (`own_process_group`), which holds only the hook and its children.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}
