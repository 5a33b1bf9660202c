//! `delta::apply` (Bsdiff) on arbitrary bytes against a fixed base: must return, never panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use updater_core::delta::Algorithm;

fuzz_target!(|data: &[u8]| common::apply_delta(Algorithm::Bsdiff, data));
