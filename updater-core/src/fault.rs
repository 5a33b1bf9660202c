//! Fault injection at step boundaries, for the crash tests only.
//!
//! The hook exists only when updater-core is built with its `fault-injection` cargo feature
//! (off by default; the end-to-end harness turns it on through `appupdate/fault-injection`).
//! Then, when the environment variable `APPSTART_FAULT_KILL_AT` names a step, the process
//! kills itself with SIGKILL (no cleanup, no destructors: exactly a crash or power cut from
//! the install's point of view) when it reaches that step. The crash tests use it to kill an
//! update at every step boundary; `docs/crash-safety.md` lists the steps.
//!
//! Without the feature, [`step`] is an empty inline function and the crate never reads the
//! variable (its name is not even in the binary): a hook like this in a shipped build would
//! let anyone who can set an updater's environment stop its updates for good.

/// Marks the boundary after `step`; kills the process if the fault hook names it.
#[cfg(feature = "fault-injection")]
pub fn step(step: &str) {
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("APPSTART_FAULT_KILL_AT").ok());
    if target.as_deref() == Some(step) {
        kill_self();
    }
}

/// Marks the boundary after `step`; does nothing (the `fault-injection` feature is off).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn step(_step: &str) {}

#[cfg(all(feature = "fault-injection", unix))]
fn kill_self() {
    // SAFETY: raising SIGKILL on ourselves; nothing runs after it.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

#[cfg(all(feature = "fault-injection", not(unix)))]
fn kill_self() {
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// The step the helper marks, and the name of the helper test the child process runs.
    const HELPER_STEP: &str = "fault-test-step";
    const HELPER: &str = "advanced::fault::tests::helper_marks_a_step_named_by_the_environment";

    /// Runs only [`helper_marks_a_step_named_by_the_environment`] in a child copy of this
    /// test binary, with the hook's variable naming the step the helper marks.
    fn run_helper_with_the_variable_set() -> std::process::Output {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        Command::new(exe)
            .args([HELPER, "--exact", "--test-threads", "1", "--nocapture"])
            .env("APPSTART_FAULT_KILL_AT", HELPER_STEP)
            .output()
            .expect("running the test binary as a child")
    }

    /// Not a test on its own: the child process of the tests below. With the variable unset
    /// (a normal test run) it only marks a step nobody named.
    #[test]
    fn helper_marks_a_step_named_by_the_environment() {
        super::step(HELPER_STEP);
        println!("survived the step");
    }

    /// Regression: every build, release included, used to SIGKILL itself at a step named by
    /// `APPSTART_FAULT_KILL_AT`, so anyone who could set an updater's environment could stop
    /// its updates for good. Without the `fault-injection` feature the variable is ignored.
    #[cfg(not(feature = "fault-injection"))]
    #[test]
    fn without_the_feature_a_step_named_by_the_variable_does_not_kill() {
        let output = run_helper_with_the_variable_set();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("survived the step"),
            "the child died at the step ({:?}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// With the feature, the hook kills the process at the named step (what the crash tests
    /// rely on): `cargo test -p updater-core --features fault-injection fault::`.
    #[cfg(all(feature = "fault-injection", unix))]
    #[test]
    fn with_the_feature_a_step_named_by_the_variable_kills() {
        use std::os::unix::process::ExitStatusExt;
        let output = run_helper_with_the_variable_set();
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGKILL),
            "the child was not killed at the step: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
