//! Property-based fuzzing, on stable, of every parser of untrusted bytes: each delta
//! format's `apply`, blob decompression, the zip central directory, the release manifest,
//! TUF envelopes and roles, and the HTTP `Content-Range` header.
//!
//! Each property feeds random bytes and mutations of a valid input (flipped, overwritten,
//! inserted and removed bytes, truncation) and asserts that the parser returns (a panic
//! fails the property) within [`MEMORY_BOUND`] of heap on this thread
//! ([`crate::test_alloc`]). CI runs [`DEFAULT_CASES`] cases per property, a few seconds in
//! debug; `PROPTEST_CASES=100000 cargo test -p updater-core --release properties` runs a
//! longer campaign. The libFuzzer targets in `fuzz/` cover the same parsers with coverage
//! guidance (docs/security.md, "Fuzzing").

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;

use crate::delta::{ALGORITHMS, Algorithm};
use crate::manifest::Expected;
use crate::test_alloc::peak_during;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 64;

/// Most heap one parse may use on hostile input.
const MEMORY_BOUND: usize = 16 << 20;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    config
}

/// One edit of a valid input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Mutation::Flip(at, bits)),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0xff), Just(0x80), any::<u8>()]
        )
            .prop_map(|(at, value)| Mutation::Set(at, value)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| Mutation::Remove(at, len)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(valid: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    for mutation in mutations {
        let len = bytes.len();
        match mutation {
            Mutation::Flip(at, bits) if len > 0 => bytes[at % len] ^= bits,
            Mutation::Set(at, value) if len > 0 => bytes[at % len] = *value,
            Mutation::Insert(at, new) => {
                let at = at % (len + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Remove(at, count) if len > 0 => {
                let at = at % len;
                bytes.drain(at..(at + count).min(len));
            }
            Mutation::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }
    bytes
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

/// Runs `parse` and checks the memory bound; a panic inside fails the property by itself.
fn bounded<T>(what: &str, parse: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let (result, peak) = peak_during(parse);
    prop_assert!(peak < MEMORY_BOUND, "{what}: {peak} bytes of heap");
    Ok(result)
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A base, a target and a valid delta of each algorithm between them.
struct Deltas {
    base: Vec<u8>,
    target: Vec<u8>,
    target_hash: String,
    deltas: Vec<(Algorithm, Vec<u8>)>,
}

fn deltas() -> &'static Deltas {
    static DELTAS: OnceLock<Deltas> = OnceLock::new();
    DELTAS.get_or_init(|| {
        let base = noise(1, 20_000);
        let mut target = base.clone();
        target[500..600].copy_from_slice(&noise(2, 100));
        target.extend_from_slice(&noise(3, 700));
        let deltas = ALGORITHMS
            .iter()
            .map(|&algorithm| {
                let delta = crate::delta::encode(algorithm, &base, &target, 3)
                    .unwrap_or_else(|e| panic!("encoding the seed {algorithm:?} delta: {e}"));
                (algorithm, delta)
            })
            .collect();
        Deltas {
            target_hash: blake3::hash(&target).to_hex().to_string(),
            base,
            target,
            deltas,
        }
    })
}

/// Applies `delta` to the seed base, expecting `size` bytes; returns the output if accepted.
fn apply_delta(
    algorithm: Algorithm,
    delta: &[u8],
    size: u64,
) -> Result<Option<Vec<u8>>, TestCaseError> {
    let seed = deltas();
    let expected = Expected {
        name: "f",
        size,
        blake3: &seed.target_hash,
    };
    bounded(&format!("{algorithm:?}"), || {
        let mut output = Vec::new();
        crate::delta::apply(
            algorithm,
            &mut Cursor::new(&seed.base),
            delta,
            &mut output,
            &expected,
            "property",
            Path::new("out"),
        )
        .ok()
        .map(|()| output)
    })
}

/// A valid zstd blob of some text, and the text.
fn blob() -> &'static (Vec<u8>, Vec<u8>) {
    static BLOB: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BLOB.get_or_init(|| {
        let content = b"blob content, blob content, blob content and some more\n".repeat(40);
        let compressed = zstd::encode_all(content.as_slice(), 3)
            .unwrap_or_else(|e| panic!("compressing the seed blob: {e}"));
        (compressed, content)
    })
}

fn decompress_blob(bytes: &[u8], size: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = dir.path().join("blob");
    std::fs::write(&path, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let hash = blake3::hash(&blob().1).to_hex().to_string();
    let expected = Expected {
        name: "f",
        size,
        blake3: &hash,
    };
    let dest = dir.path().join("out");
    let accepted = bounded("blob", || {
        crate::blob::decompress_verified(&path, &dest, &expected).is_ok()
    })?;
    if accepted {
        let written = std::fs::read(&dest).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(written, blob().1.clone());
    }
    Ok(())
}

fn zip() -> &'static Vec<u8> {
    static ZIP: OnceLock<Vec<u8>> = OnceLock::new();
    ZIP.get_or_init(|| {
        // Members above MIN_MEMBER_DATA, so that the archive is really taken apart.
        let text = b"hello zip member ".repeat(400);
        crate::archive::zip::write_test_zip(&[
            ("a.txt", text.as_slice(), None),
            ("b/c.bin", &noise(4, 5000), None),
        ])
    })
}

const MANIFEST: &str = r#"{"format":2,"app":"demo","version":"1.0.0","channel":"stable","platform":"any","executable":"bin/app","files":[{"path":"bin/app","size":1,"executable":true,"blake3":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","blob_size":1,"blob_blake3":"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","pack_offset":0,"deltas":[{"base":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","base_size":5,"algorithm":"bsdiff","size":10,"blake3":"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"}]}],"pack":{"path":"packs/demo/stable/any/1.0.0.pack","size":1}}"#;

const ROLES: [&str; 4] = [
    r#"{"signatures":[{"keyid":"ab","sig":"00"}],"signed":{"_type":"root","spec_version":"1.0.0","consistent_snapshot":true,"version":1,"expires":"2030-01-01T00:00:00Z","keys":{"ab":{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"00"}}},"roles":{"root":{"keyids":["ab"],"threshold":1}}}}"#,
    r#"{"signatures":[],"signed":{"_type":"timestamp","spec_version":"1.0.0","version":1,"expires":"2030-01-01T00:00:00Z","meta":{"snapshot.json":{"version":1,"length":10,"hashes":{"sha256":"00"}}}}}"#,
    r#"{"signatures":[],"signed":{"_type":"snapshot","spec_version":"1.0.0","version":1,"expires":"2030-01-01T00:00:00Z","meta":{"targets.json":{"version":1}}}}"#,
    r#"{"signatures":[],"signed":{"_type":"targets","spec_version":"1.0.0","version":1,"expires":"2030-01-01T00:00:00Z","targets":{"a/b":{"length":1,"hashes":{"sha256":"00"},"custom":{}}},"delegations":{"keys":{},"roles":[{"name":"x","keyids":[],"threshold":1,"paths":["a/*"],"terminating":false}]}}}"#,
];

fn parse_tuf(bytes: &[u8]) -> Result<(), TestCaseError> {
    use crate::tuf::metadata::{Root, Snapshot, Targets, Timestamp};
    use crate::tuf::sign::Envelope;
    bounded("tuf", || {
        if let Ok(envelope) = Envelope::parse(bytes, "property") {
            let _ = envelope.decode::<Root>("property");
            let _ = envelope.decode::<Timestamp>("property");
            let _ = envelope.decode::<Snapshot>("property");
            let _ = envelope.decode::<Targets>("property");
        }
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn delta_apply_survives_random_bytes(
        which in 0..ALGORITHMS.len(),
        magic in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        size in prop_oneof![Just(0u64), 0..100_000u64, Just(u64::MAX)],
    ) {
        let algorithm = ALGORITHMS[which];
        // Half the cases get past the magic check, to reach the header and stream parsers.
        let mut delta = bytes;
        if magic {
            let prefix: &[u8] = match algorithm {
                Algorithm::Bsdiff => b"BSDIFF40",
                Algorithm::BsdiffLzma => b"APBSDL01",
                Algorithm::ZstdPatch => &[0x28, 0xb5, 0x2f, 0xfd],
            };
            delta.splice(0..0, prefix.iter().copied());
        }
        prop_assert!(apply_delta(algorithm, &delta, size)?.is_none());
    }

    #[test]
    fn delta_apply_survives_mutated_deltas(which in 0..ALGORITHMS.len(), edits in mutations()) {
        let seed = deltas();
        let (algorithm, valid) = &seed.deltas[which];
        let delta = mutate(valid, &edits);
        // Whatever the bytes, an accepted delta produced exactly the signed target.
        if let Some(output) = apply_delta(*algorithm, &delta, seed.target.len() as u64)? {
            prop_assert_eq!(output, seed.target.clone());
        }
    }

    #[test]
    fn blob_decompression_survives_random_and_mutated_input(
        random in prop::collection::vec(any::<u8>(), 0..1024),
        edits in mutations(),
        size in prop_oneof![Just(0u64), 0..10_000u64],
    ) {
        decompress_blob(&random, size)?;
        decompress_blob(&mutate(&blob().0, &edits), blob().1.len() as u64)?;
    }

    #[test]
    fn zip_parser_survives_random_and_mutated_archives(
        random in prop::collection::vec(any::<u8>(), 0..1024),
        edits in mutations(),
    ) {
        use crate::archive::zip::take_apart;
        bounded("zip", || take_apart(&random).is_some())?;
        bounded("zip", || take_apart(&mutate(zip(), &edits)).is_some())?;
    }

    #[test]
    fn manifest_parse_survives_random_and_mutated_json(
        random in prop::collection::vec(any::<u8>(), 0..512),
        edits in mutations(),
    ) {
        use crate::manifest::Manifest;
        bounded("manifest", || Manifest::parse(&random, "property").is_ok())?;
        bounded("manifest", || Manifest::parse(&mutate(MANIFEST.as_bytes(), &edits), "property").is_ok())?;
    }

    #[test]
    fn tuf_parse_and_decode_survive_random_and_mutated_json(
        random in prop::collection::vec(any::<u8>(), 0..512),
        which in 0..ROLES.len(),
        edits in mutations(),
    ) {
        parse_tuf(&random)?;
        parse_tuf(&mutate(ROLES[which].as_bytes(), &edits))?;
    }

    #[test]
    fn multipart_answers_survive_random_and_mutated_bodies(
        random in prop::collection::vec(any::<u8>(), 0..512),
        edits in mutations(),
    ) {
        use crate::transport::multipart::read_all;
        for body in [random, mutate(MULTIPART, &edits)] {
            let parts = bounded("multipart", || read_all(&body[..], "B0UND", 8, 1 << 20))?;
            if let Ok(parts) = parts {
                // Each part holds exactly the bytes its Content-Range names.
                for (part, bytes) in parts {
                    prop_assert_eq!(part.length(), bytes.len() as u64);
                }
            }
        }
    }

    #[test]
    fn content_range_parse_survives_any_header(
        header in "(bytes )?[0-9 \\-/*]{0,40}",
        random in ".{0,64}",
    ) {
        use crate::transport::parse_content_range_start;
        for value in [&header, &random] {
            if let Some(start) = parse_content_range_start(value) {
                // A start was only read from the digits after "bytes ".
                prop_assert!(value.contains(&start.to_string()), "{value:?} -> {start}");
            }
        }
    }
}

/// A valid `multipart/byteranges` answer of three parts, boundary `B0UND`.
const MULTIPART: &[u8] = b"\r\n--B0UND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-2/100\r\n\r\nabc\r\n--B0UND\r\nContent-Range: bytes 10-14/100\r\n\r\n\r\n--B\r\n--B0UND\r\nContent-Range: bytes 90-99/*\r\n\r\n0123456789\r\n--B0UND--\r\n";

#[test]
fn the_seed_inputs_are_valid() {
    let parts = crate::transport::multipart::read_all(MULTIPART, "B0UND", 8, 1 << 20)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parts.len(), 3);
    // The mutation properties are only as good as their seeds: check each parses.
    let seed = deltas();
    for (algorithm, delta) in &seed.deltas {
        let output = apply_delta(*algorithm, delta, seed.target.len() as u64)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(output.as_ref(), Some(&seed.target), "{algorithm:?}");
    }
    assert!(crate::archive::zip::take_apart(zip()).is_some());
    crate::manifest::Manifest::parse(MANIFEST.as_bytes(), "seed").unwrap_or_else(|e| panic!("{e}"));
    for role in ROLES {
        crate::tuf::sign::Envelope::parse(role.as_bytes(), "seed")
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
