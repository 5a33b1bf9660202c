//! The `multipart/byteranges` reader (several pack ranges in one answer): must return, never
//! panic, and hold no more than it was asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = updater_core::advanced::transport::multipart::read_all(data, "B0UND", 64, 1 << 20);
});
