//! The zip central directory parser (`archive::zip::take_apart`): must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = updater_core::archive::zip::looks_like_zip(data);
    let _ = updater_core::archive::zip::take_apart(data);
});
