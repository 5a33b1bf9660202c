//! `Manifest::parse` on arbitrary bytes: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = updater_core::manifest::Manifest::parse(data, "fuzz");
});
