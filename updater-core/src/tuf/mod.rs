//! The Update Framework (TUF 1.0) trust metadata: its types, keys, signing and the client
//! workflow.
//!
//! - [`metadata`]: the four top-level roles as serde types; unknown fields are kept.
//! - [`keys`]: key ids, ed25519 signing keys and signature verification.
//! - [`sign`]: canonical JSON (OLPC) and signing/verifying whole metadata files.
//! - [`client`]: the client workflow of the specification's section 5, with the step numbers
//!   of `docs/security.md` cited in the code, split along the specification's sections.

pub mod client;
pub mod keys;
pub mod metadata;
pub mod sign;

/// The `spec_version` we write; we read any 1.x.
pub const SPEC_VERSION: &str = "1.0.31";
