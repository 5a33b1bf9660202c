//! What the three delta targets share: `delta::apply` of one algorithm on arbitrary bytes
//! against a fixed base. It must return (an error or a verified output), never panic.

use updater_core::delta::{Algorithm, apply};
use updater_core::manifest::Expected;

/// The base of the delta fixtures in `tests/adversarial/`, so that they seed the corpus.
const BASE: &[u8] = b"hello world, this is the base file of the adversarial delta fixtures\n";

/// Applies `data` as an `algorithm` delta; its first byte picks the declared output size,
/// small so that a valid patch can reach it.
pub fn apply_delta(algorithm: Algorithm, data: &[u8]) {
    let Some((&size, delta)) = data.split_first() else {
        return;
    };
    let expected = Expected {
        name: "f",
        size: u64::from(size),
        blake3: "00",
    };
    let _ = apply(
        algorithm,
        &mut std::io::Cursor::new(BASE),
        delta,
        &mut std::io::sink(),
        &expected,
        "fuzz",
        std::path::Path::new("out"),
    );
}
