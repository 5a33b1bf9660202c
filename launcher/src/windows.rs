//! Windows process handling: run the child in a job object, let console Ctrl events reach it,
//! return its exit code.
//!
//! Ctrl-C and Ctrl-Break: every process attached to a console gets the event itself, so the
//! launcher does not re-send it. Its handler only records that termination was requested
//! (then a restart code does not relaunch) and tells Windows the event was handled, so the
//! launcher keeps waiting and the child's own exit code comes back. Closing the console,
//! logging off and shutting down end the launcher after the handler returns; the job object
//! then ends the child. Windows has no catchable equivalent of SIGTERM from another process
//! (`TerminateProcess` cannot be seen), so nothing else is forwarded.
//!
//! Lifetime: the launcher puts itself in a job object with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`
//! before starting the child, so the child is in the job from its first instruction. When the
//! launcher ends for any reason (even `TerminateProcess`) the last handle to the job closes
//! and Windows ends the child: the equivalent of Linux's `PR_SET_PDEATHSIG`. Like that, it
//! holds for the direct child only: `JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK` leaves processes
//! the app starts (an updater it runs before exiting with the restart code) outside the job.

use std::ffi::OsString;
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Win32::Foundation::{FALSE, TRUE};
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    SetConsoleCtrlHandler,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectExtendedLimitInformation, SetInformationJobObject,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;
use windows_sys::core::BOOL;

/// How the child ended. Windows has no signals: every end is an exit code (a crash is an
/// `NTSTATUS` such as `0xC0000005`, passed on unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code (all 32 bits; negative when the top bit is set).
    Exited(i32),
}

impl Outcome {
    /// A short description for logs.
    pub fn describe(self) -> String {
        match self {
            Outcome::Exited(code) => format!("exited with code {code} ({:#010x})", code as u32),
        }
    }
}

/// Whether a Ctrl event reached the launcher (then a restart code does not relaunch).
static TERMINATION: AtomicBool = AtomicBool::new(false);

unsafe extern "system" fn on_console_event(event: u32) -> BOOL {
    match event {
        CTRL_C_EVENT | CTRL_BREAK_EVENT => {
            TERMINATION.store(true, Ordering::SeqCst);
            TRUE // Handled: the child in the same console got it too; wait for it.
        }
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => {
            TERMINATION.store(true, Ordering::SeqCst);
            FALSE // Let Windows end the launcher; the job object ends the child.
        }
        _ => FALSE,
    }
}

/// Installs the console Ctrl handler.
pub fn forward_signals() {
    // SAFETY: the handler is a plain function that only touches an atomic.
    if unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) } == 0 {
        log::warn!("cannot handle Ctrl-C: {}", std::io::Error::last_os_error());
    }
}

/// Whether Ctrl-C, Ctrl-Break or a console close reached the launcher.
pub fn termination_requested() -> bool {
    TERMINATION.load(Ordering::SeqCst)
}

/// Puts the launcher in a job that kills its members when the launcher ends (module docs).
/// Failing is logged, not fatal: the app still runs, only not tied to the launcher (e.g. an
/// old Windows where the launcher already sits in a job that forbids nesting).
fn tie_children_to_launcher() -> std::io::Result<()> {
    // SAFETY: null security attributes and name are allowed and mean default, unnamed.
    let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    if job.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the structure is plain data for which all zeros is valid.
    let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
    limits.BasicLimitInformation.LimitFlags =
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK;
    // SAFETY: `job` is a valid job handle; the pointer and size describe `limits`.
    let set = unsafe {
        SetInformationJobObject(
            job,
            JobObjectExtendedLimitInformation,
            (&raw const limits).cast(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        )
    };
    if set == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both handles are valid. The job handle is never closed: it must stay open for
    // the launcher's whole life, and closing it is what ends the child.
    if unsafe { AssignProcessToJobObject(job, GetCurrentProcess()) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `exe` with `args` and extra environment `env`; waits for it and returns how it ended.
/// Arguments are passed unchanged: `Command` quotes them by the rules `CommandLineToArgvW`
/// and the C runtime use to split them again.
pub fn run_child(
    exe: &Path,
    args: &[OsString],
    env: &[(&'static str, OsString)],
) -> std::io::Result<Outcome> {
    static JOB: Once = Once::new();
    JOB.call_once(|| {
        if let Err(err) = tie_children_to_launcher() {
            log::warn!("the app will not end with the launcher: cannot create a job object: {err}");
        }
    });
    let mut command = Command::new(exe);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn()?;
    log::debug!("started process {:?}", child.as_raw_handle());
    let status = child.wait()?;
    // On Windows `code()` is always `Some`: the full DWORD, as i32.
    Ok(Outcome::Exited(
        status
            .code()
            .unwrap_or(i32::from(super::launch::LAUNCHER_FAILURE)),
    ))
}
