//! End-to-end tests of appstart: one test binary, modules by area, a shared harness.
//!
//! Everything here is real: the workspace's binaries run as child processes, repositories are
//! served over HTTP on 127.0.0.1, and installs are real folders.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is a test failure with a backtrace"
)]

mod archives;
mod attacks;
mod crash;
mod delegation;
mod deltas;
mod faults;
mod harness;
mod hostile;
mod interop;
mod launcher;
mod packs;
mod platforms;
mod update;
#[cfg(unix)]
mod windows;
mod workflow;
