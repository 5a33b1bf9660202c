//! `blob::decompress_verified` on arbitrary bytes: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updater_core::manifest::Expected;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let blob = dir.path().join("blob");
    if std::fs::write(&blob, data).is_err() {
        return;
    }
    let expected = Expected {
        name: "f",
        size: 1 << 16,
        blake3: "00",
    };
    let _ = updater_core::blob::decompress_verified(&blob, &dir.path().join("out"), &expected);
});
