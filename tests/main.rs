//! End-to-end tests of appstart: one test binary, modules by area, a shared harness.
//!
//! Everything here is real: the workspace's binaries run as child processes, repositories are
//! served over HTTP on 127.0.0.1, and installs are real folders.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a test failure with a backtrace"
)]

mod docs;
#[cfg_attr(
    not(unix),
    allow(
        dead_code,
        reason = "the Unix suites use all of the harness; the Windows tests only part of it"
    )
)]
mod harness;
mod platforms;

// The suites below drive Unix behaviour throughout (shell-script apps, mode bits, signals,
// SIGKILL fault injection), so they build and run on Unix only. Windows is tested under Wine
// by its own module; a platform-only test says which platform in its name.
#[cfg(unix)]
mod archives;
#[cfg(unix)]
mod attacks;
#[cfg(unix)]
mod bandwidth;
#[cfg(unix)]
mod cancel;
#[cfg(unix)]
mod cli;
#[cfg(unix)]
mod control;
#[cfg(unix)]
mod crash;
#[cfg(unix)]
mod delegation;
#[cfg(unix)]
mod deltas;
#[cfg(unix)]
mod examples;
#[cfg(unix)]
mod exit_codes;
#[cfg(unix)]
mod faults;
#[cfg(unix)]
mod fleet;
#[cfg(unix)]
mod fleet_live;
#[cfg(unix)]
mod hooks;
#[cfg(unix)]
mod hostile;
#[cfg(unix)]
mod installer;
#[cfg(unix)]
mod interop;
#[cfg(unix)]
mod lan;
#[cfg(unix)]
mod later;
#[cfg(unix)]
mod launcher;
#[cfg(unix)]
mod manifest_cost;
#[cfg(unix)]
mod mirrors;
#[cfg(unix)]
mod packs;
#[cfg(unix)]
mod progress;
#[cfg(unix)]
mod proxy;
#[cfg(unix)]
mod publish;
#[cfg(unix)]
mod push;
#[cfg(unix)]
mod receipts;
#[cfg(unix)]
mod release_control;
#[cfg(unix)]
mod rollback;
#[cfg(unix)]
mod s3;
#[cfg(unix)]
mod shortcuts;
// Mount points are looked up in Linux's mount table; the tests mount with Linux's `mount`.
#[cfg(target_os = "linux")]
mod mounts;
// A spare is set aside on Linux only.
#[cfg(target_os = "linux")]
mod spare;
#[cfg(unix)]
mod tls;
#[cfg(unix)]
mod update;
#[cfg(unix)]
mod verify;
#[cfg(unix)]
mod workflow;

// Windows, from a Linux host: the cross-built binaries run under Wine.
#[cfg(unix)]
mod windows;
#[cfg(unix)]
mod windows_proxy;
