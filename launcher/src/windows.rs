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
//! Lifetime: the child is put in a job object with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` right
//! after it starts. The launcher holds the only handle to the job; when the launcher ends for
//! any reason (even `TerminateProcess`) the handle closes and Windows ends the child: the
//! equivalent of Linux's `PR_SET_PDEATHSIG`. Like that, it holds for the direct child only:
//! `JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK` leaves processes the app starts (an updater it runs
//! before exiting with the restart code) outside the job.
//!
//! Off-spec from uv's trampoline, which puts itself in the job before spawning: Wine (our
//! CI) does not end the job's processes when a launcher inside its own job is killed, but
//! does when the launcher only holds the handle. The cost is a window of microseconds
//! between the child's start and its assignment in which a killed launcher leaves it
//! running; std cannot start a child suspended and resume it without its thread handle.

use std::ffi::OsString;
use std::os::windows::ffi::OsStringExt;
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Win32::Foundation::{FALSE, HANDLE, TRUE};
use windows_sys::Win32::Storage::FileSystem::GetShortPathNameW;
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    SetConsoleCtrlHandler,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectExtendedLimitInformation, SetInformationJobObject,
};
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

/// The job that ends its members when the launcher ends (module docs), created once. Its
/// handle is never closed: it must stay open for the launcher's whole life, and closing it
/// is what ends the child. Stored as an address because raw handles are not `Sync`.
fn kill_on_close_job() -> std::io::Result<HANDLE> {
    static JOB: OnceLock<Result<usize, i32>> = OnceLock::new();
    let job = JOB.get_or_init(|| {
        create_kill_on_close_job()
            .map(|handle| handle as usize)
            .map_err(|e| e.raw_os_error().unwrap_or(0))
    });
    match *job {
        Ok(handle) => Ok(handle as HANDLE),
        Err(code) => Err(std::io::Error::from_raw_os_error(code)),
    }
}

fn create_kill_on_close_job() -> std::io::Result<HANDLE> {
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
    Ok(job)
}

/// Ties `child` to the launcher's lifetime. Failing is logged, not fatal: the app still runs,
/// only not tied to the launcher (e.g. an old Windows where the launcher already sits in a job
/// that forbids nesting).
fn tie_to_launcher(child: &std::process::Child) {
    let result = kill_on_close_job().and_then(|job| {
        // SAFETY: both handles are valid: the job is never closed, the child is not yet
        // waited for.
        if unsafe { AssignProcessToJobObject(job, child.as_raw_handle()) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    });
    if let Err(err) = result {
        log::warn!("the app will not end with the launcher: cannot put it in a job object: {err}");
    }
}

/// Runs `exe` with `args` and extra environment `env`; waits for it and returns how it ended.
/// Arguments are passed unchanged: `Command` quotes them by the rules `CommandLineToArgvW`
/// and the C runtime use to split them again.
pub fn run_child(
    exe: &Path,
    args: &[OsString],
    env: &[(&'static str, OsString)],
) -> std::io::Result<Outcome> {
    let mut command = Command::new(startable(exe)?);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn()?;
    tie_to_launcher(&child);
    let status = child.wait()?;
    // On Windows `code()` is always `Some`: the full DWORD, as i32.
    Ok(Outcome::Exited(
        status
            .code()
            .unwrap_or(i32::from(super::launch::LAUNCHER_FAILURE)),
    ))
}

/// `CreateProcessW` takes a program path of at most `MAX_PATH` (260) characters, even where
/// Windows has long paths turned on, while the install itself (std's file functions and
/// `fsutil`) handles longer ones with `\\?\`. A longer path is started by its 8.3 short form
/// (`GetShortPathNameW`), which NTFS makes by default; where short names are off, the error
/// says what to do.
fn startable(exe: &Path) -> std::io::Result<PathBuf> {
    const MAX_PATH: usize = 260;
    if exe.as_os_str().len() < MAX_PATH {
        return Ok(exe.to_path_buf());
    }
    let long = appstart_layout::fsutil::wide_path(exe);
    let mut short = vec![0u16; 32_768];
    let capacity = u32::try_from(short.len()).unwrap_or(u32::MAX);
    // SAFETY: `long` is NUL-terminated; `short` is writable for `capacity` units.
    let written = unsafe { GetShortPathNameW(long.as_ptr(), short.as_mut_ptr(), capacity) };
    let written = usize::try_from(written).unwrap_or(usize::MAX);
    if written == 0 || written >= short.len() {
        let cause = std::io::Error::last_os_error();
        return Err(std::io::Error::other(format!(
            "{} is longer than the {MAX_PATH} characters Windows starts a program from, and it has no short (8.3) name ({cause}): install into a shorter folder",
            exe.display()
        )));
    }
    short.truncate(written);
    let short = OsString::from_wide(&short);
    let short = short.to_string_lossy();
    // CreateProcessW wants a plain path: `\\?\C:\x` -> `C:\x`, `\\?\UNC\s\x` -> `\\s\x`.
    let plain = if let Some(rest) = short.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{rest}")
    } else {
        short.strip_prefix(r"\\?\").unwrap_or(&short).to_owned()
    };
    if plain.len() >= MAX_PATH {
        return Err(std::io::Error::other(format!(
            "{} is longer than the {MAX_PATH} characters Windows starts a program from, even as {plain}: install into a shorter folder",
            exe.display()
        )));
    }
    Ok(PathBuf::from(plain))
}
