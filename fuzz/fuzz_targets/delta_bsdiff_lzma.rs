//! `delta::apply` (BsdiffLzma) on arbitrary bytes against a fixed base: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updater_core::delta::{Algorithm, apply};
use updater_core::manifest::Expected;

/// The base of the delta fixtures in `tests/adversarial/`, so that they seed the corpus.
const BASE: &[u8] = b"hello world, this is the base file of the adversarial delta fixtures\n";

fuzz_target!(|data: &[u8]| {
    // The first byte picks a declared output size, small so that a valid patch can reach it.
    let Some((&size, delta)) = data.split_first() else {
        return;
    };
    let expected = Expected {
        name: "f",
        size: u64::from(size),
        blake3: "00",
    };
    let _ = apply(
        Algorithm::BsdiffLzma,
        &mut std::io::Cursor::new(BASE),
        delta,
        &mut std::io::sink(),
        &expected,
        "fuzz",
        std::path::Path::new("out"),
    );
});
