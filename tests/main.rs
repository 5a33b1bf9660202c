//! End-to-end tests of appstart: one test binary, modules by area, a shared harness.
//!
//! Everything here is real: the workspace's binaries run as child processes, repositories are
//! served over HTTP on 127.0.0.1, and installs are real folders.

mod harness;
mod launcher;
