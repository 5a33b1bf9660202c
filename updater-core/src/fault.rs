//! Test-only fault injection at step boundaries.
//!
//! When the environment variable `APPSTART_FAULT_KILL_AT` names a step, the process kills
//! itself with SIGKILL (no cleanup, no destructors: exactly a crash or power cut from the
//! install's point of view) when it reaches that step. The crash tests use it to kill an
//! update at every step boundary; `docs/crash-safety.md` lists the steps. Unset (always, in
//! normal use) it costs one cached comparison per step.

use std::sync::OnceLock;

/// Marks the boundary after `step`; kills the process if the fault hook names it.
pub fn step(step: &str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("APPSTART_FAULT_KILL_AT").ok());
    if target.as_deref() == Some(step) {
        kill_self();
    }
}

#[cfg(unix)]
fn kill_self() {
    // SAFETY: raising SIGKILL on ourselves; nothing runs after it.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_self() {
    std::process::abort();
}
