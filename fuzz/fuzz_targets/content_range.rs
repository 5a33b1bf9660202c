//! The HTTP `Content-Range` parser: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = updater_core::transport::parse_content_range_start(text);
    }
});
