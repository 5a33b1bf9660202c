//! TUF `Envelope::parse` and `decode` for every role: must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updater_core::tuf::metadata::{Root, Snapshot, Targets, Timestamp};
use updater_core::tuf::sign::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::parse(data, "fuzz") {
        let _ = envelope.decode::<Root>("fuzz");
        let _ = envelope.decode::<Timestamp>("fuzz");
        let _ = envelope.decode::<Snapshot>("fuzz");
        let _ = envelope.decode::<Targets>("fuzz");
    }
});
