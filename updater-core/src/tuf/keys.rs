//! Keys: ids, ed25519 signing keys on disk, and signature verification.
//!
//! A key id is the SHA-256 of the canonical JSON of the public key object, as in the TUF
//! specification and python-tuf. Publisher keys live in a key folder as `<role>.key` files
//! (one per top-level role by default, so the root key can be kept offline), with
//! `default.key` used for every role that has no file of its own (one shared key, only on
//! request). Beside every private key, `<role>.pub` holds its public half: the file a
//! delegated role's owner hands to the targets key holder (`appupdate repo delegate`).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use sha2::Digest;

use crate::error::{Error, Result};
use crate::tuf::metadata::{Key, KeyValue, Signature, quote};
use crate::tuf::sign::canonical_json;

/// The four top-level roles.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// The TUF key id of `key`.
pub fn key_id(key: &Key) -> String {
    let value = serde_json::to_value(key).unwrap_or_default();
    // A key with a float (in a field we do not know) has no canonical form; its plain JSON
    // still gives it an id of its own, which no canonical key's id can equal.
    let bytes = canonical_json(&value).unwrap_or_else(|_| value.to_string().into_bytes());
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Whether `signature` (hex) by `key` over `message` is valid. Unknown key types and
/// malformed keys or signatures are simply invalid: they never count towards a threshold.
pub fn verify_signature(key: &Key, message: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex) else {
        return false;
    };
    match (key.keytype.as_str(), key.scheme.as_str()) {
        ("ed25519", "ed25519") => verify_ed25519(&key.keyval.public, message, &signature),
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            verify_ecdsa_p256(&key.keyval.public, message, &signature)
        }
        ("rsa", "rsassa-pss-sha256") => {
            verify_rsa_pss_sha256(&key.keyval.public, message, &signature)
        }
        _ => false,
    }
}

/// The key material `key` stands for, in one canonical encoding per algorithm, so that the
/// same public key listed under two key ids (or spelled in upper-case hex, or as a PEM with
/// other line breaks) is recognised as one key. `None` for keys [`verify_signature`] does
/// not accept: they never verify anything.
pub fn key_identity(key: &Key) -> Option<Vec<u8>> {
    let public = key.keyval.public.trim();
    let (label, material): (&[u8], Vec<u8>) = match (key.keytype.as_str(), key.scheme.as_str()) {
        ("ed25519", "ed25519") => (b"ed25519:", hex::decode(public).ok()?),
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            use p256::pkcs8::DecodePublicKey as _;
            let key = p256::ecdsa::VerifyingKey::from_public_key_pem(public).ok()?;
            (b"p256:", key.to_encoded_point(true).as_bytes().to_vec())
        }
        ("rsa", "rsassa-pss-sha256") => {
            use rsa::pkcs8::DecodePublicKey as _;
            use rsa::traits::PublicKeyParts as _;
            let key = rsa::RsaPublicKey::from_public_key_pem(public).ok()?;
            let (modulus, exponent) = (key.n().to_bytes_be(), key.e().to_bytes_be());
            let mut material = (modulus.len() as u64).to_be_bytes().to_vec();
            material.extend(modulus);
            material.extend(exponent);
            (b"rsa-pss-sha256:", material)
        }
        _ => return None,
    };
    let mut identity = label.to_vec();
    identity.extend(material);
    Some(identity)
}

/// ECDSA over P-256 with SHA-256; the key is a PEM SubjectPublicKeyInfo, the signature DER.
fn verify_ecdsa_p256(public_pem: &str, message: &[u8], signature: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_pem(public_pem.trim()) else {
        return false;
    };
    let Ok(signature) = p256::ecdsa::Signature::from_der(signature) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

/// RSA-PSS with SHA-256 and MGF1-SHA-256, any salt length; the key is a PEM
/// SubjectPublicKeyInfo. Only verification: no private-key operation ever runs here.
fn verify_rsa_pss_sha256(public_pem: &str, message: &[u8], signature: &[u8]) -> bool {
    use rsa::pkcs8::DecodePublicKey as _;
    use rsa::signature::Verifier as _;
    let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(public_pem.trim()) else {
        return false;
    };
    let Ok(signature) = rsa::pss::Signature::try_from(signature) else {
        return false;
    };
    rsa::pss::VerifyingKey::<sha2::Sha256>::new(key)
        .verify(message, &signature)
        .is_ok()
}

fn verify_ed25519(public_hex: &str, message: &[u8], signature: &[u8]) -> bool {
    let Ok(public) = hex::decode(public_hex) else {
        return false;
    };
    let Ok(public) = <[u8; 32]>::try_from(public.as_slice()) else {
        return false;
    };
    let Ok(verifying) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    verifying.verify(message, &signature).is_ok()
}

/// A private ed25519 key that signs metadata.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.key_id())
    }
}

/// The on-disk form of a private key (securesystemslib-like, hex values).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    keytype: String,
    scheme: String,
    keyval: KeyFileValue,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileValue {
    public: String,
    private: String,
}

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| Error::Invalid(format!("the system random generator failed: {e}")))?;
        Ok(SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The public half, as published in root.
    pub fn public_key(&self) -> Key {
        Key {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyValue {
                public: hex::encode(self.inner.verifying_key().as_bytes()),
                extra: Map::new(),
            },
            extra: Map::new(),
        }
    }

    /// The key id of the public half.
    pub fn key_id(&self) -> String {
        key_id(&self.public_key())
    }

    /// Signs `message` (canonical JSON of a `signed` object).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature {
            keyid: self.key_id(),
            sig: hex::encode(self.inner.sign(message).to_bytes()),
        }
    }

    /// Writes the key to `path` (mode 0600 on Unix), refusing to overwrite an existing key.
    pub fn save(&self, path: &Path) -> Result<()> {
        let file = KeyFile {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyFileValue {
                public: hex::encode(self.inner.verifying_key().as_bytes()),
                private: hex::encode(self.inner.to_bytes()),
            },
        };
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| Error::format(path.display().to_string(), e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut handle = options
            .open(path)
            .map_err(|e| Error::io("creating key file", path, e))?;
        std::io::Write::write_all(&mut handle, text.as_bytes())
            .map_err(|e| Error::io("writing", path, e))?;
        handle.sync_all().map_err(|e| Error::io("syncing", path, e))
    }

    /// Writes the public half to `path` as a TUF key object (`{"keytype", "scheme",
    /// "keyval": {"public"}}`, as listed in root), refusing to overwrite an existing file.
    pub fn save_public(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.public_key())
            .map_err(|e| Error::format(path.display().to_string(), e.to_string()))?;
        let mut handle = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io("creating public key file", path, e))?;
        std::io::Write::write_all(&mut handle, format!("{text}\n").as_bytes())
            .map_err(|e| Error::io("writing", path, e))?;
        handle.sync_all().map_err(|e| Error::io("syncing", path, e))
    }

    /// Reads a key written by [`SigningKey::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("reading key file", path, e))?;
        let what = path.display().to_string();
        let file: KeyFile =
            serde_json::from_str(&text).map_err(|e| Error::format(&what, e.to_string()))?;
        if file.keytype != "ed25519" || file.scheme != "ed25519" {
            return Err(Error::format(
                what,
                "field `keytype`/`scheme`: only ed25519 signing keys are supported",
            ));
        }
        let private = hex::decode(&file.keyval.private)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| {
                Error::format(&what, "field `keyval.private`: not 32 hex-encoded bytes")
            })?;
        let key = SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(&private),
        };
        if hex::encode(key.inner.verifying_key().as_bytes()) != file.keyval.public {
            return Err(Error::format(
                what,
                "field `keyval.public` does not match the private key",
            ));
        }
        Ok(key)
    }
}

/// Reads a public key file written by [`SigningKey::save_public`] (any TUF key object of a
/// type [`verify_signature`] accepts). A private key file is refused: its secret must never
/// be copied into metadata.
pub fn load_public_key(path: &Path) -> Result<Key> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("reading public key file", path, e))?;
    let what = path.display().to_string();
    let key: Key = serde_json::from_str(&text).map_err(|e| Error::format(&what, e.to_string()))?;
    if key.keyval.extra.contains_key("private") {
        return Err(Error::format(
            what,
            "field `keyval.private`: this is a private key; pass its public half (the `.pub` file beside it)",
        ));
    }
    if key_identity(&key).is_none() {
        return Err(Error::format(
            what,
            format!(
                "field `keyval.public`: not a valid {}/{} public key",
                key.keytype, key.scheme
            ),
        ));
    }
    Ok(key)
}

/// A publisher's key folder.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// Wraps the folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyDir { dir: dir.into() }
    }

    /// `KEYDIR/<name>.key`, the name percent-encoded like a delegated role's metadata file
    /// (so any role name is one file name; top-level role names are unchanged).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.key", quote(name)))
    }

    /// Generates keys: one per top-level role (`root.key`, `targets.key`, `snapshot.key`,
    /// `timestamp.key`), so the root key can go offline after `repo init`; or with `shared`
    /// one `default.key` for every role. Each comes with its `.pub` file. Refuses to overwrite
    /// existing keys. Returns the files written.
    pub fn generate(&self, shared: bool) -> Result<Vec<PathBuf>> {
        appstart_layout::fsutil::create_dir_all(&self.dir)?;
        let names: Vec<&str> = if shared {
            vec!["default"]
        } else {
            TOP_LEVEL_ROLES.to_vec()
        };
        let mut written = Vec::new();
        for name in names {
            written.extend(self.write_new_key(&self.path(name))?);
        }
        appstart_layout::fsutil::sync_dir(&self.dir)?;
        Ok(written)
    }

    /// Writes a new key to `path` and its public half beside it (`.pub`).
    fn write_new_key(&self, path: &Path) -> Result<[PathBuf; 2]> {
        let key = SigningKey::generate()?;
        key.save(path)?;
        let public = path.with_extension("pub");
        key.save_public(&public)?;
        Ok([path.to_path_buf(), public])
    }

    /// Adds one more key for `role` (`<role>.key`, then `<role>.2.key`, ...), for roles signed
    /// by several keys with a threshold, or a key for a delegated role. Returns the files
    /// written: the key and its `.pub`.
    pub fn add_role_key(&self, role: &str) -> Result<Vec<PathBuf>> {
        appstart_layout::fsutil::create_dir_all(&self.dir)?;
        let path = (1..)
            .map(|n| self.slot(role, n))
            .find(|p| !p.exists())
            .unwrap_or_else(|| self.slot(role, 1));
        let written = self.write_new_key(&path)?;
        appstart_layout::fsutil::sync_dir(&self.dir)?;
        Ok(written.to_vec())
    }

    fn slot(&self, role: &str, n: usize) -> PathBuf {
        if n == 1 {
            self.path(role)
        } else {
            self.dir.join(format!("{}.{n}.key", quote(role)))
        }
    }

    /// The first key that signs `role`.
    pub fn role_key(&self, role: &str) -> Result<SigningKey> {
        Ok(self.role_keys(role)?.remove(0))
    }

    /// Every key of `role`: `<role>.key`, `<role>.2.key`, ... in order, else `default.key`.
    pub fn role_keys(&self, role: &str) -> Result<Vec<SigningKey>> {
        let mut keys = Vec::new();
        for n in 1.. {
            let path = self.slot(role, n);
            if !path.exists() {
                break;
            }
            keys.push(SigningKey::load(&path)?);
        }
        if keys.is_empty() {
            let default = self.path("default");
            if default.exists() {
                keys.push(SigningKey::load(&default)?);
            }
        }
        if keys.is_empty() {
            return Err(Error::Invalid(format!(
                "no key for the {role} role: neither {} nor {} exists (appupdate keys generate --out {})",
                self.path(role).display(),
                self.path("default").display(),
                self.dir.display()
            )));
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let signature = key.sign(b"message");
        assert!(verify_signature(
            &key.public_key(),
            b"message",
            &signature.sig
        ));
        assert!(!verify_signature(
            &key.public_key(),
            b"messagE",
            &signature.sig
        ));
        assert!(!verify_signature(
            &other.public_key(),
            b"message",
            &signature.sig
        ));
        assert!(!verify_signature(&key.public_key(), b"message", "zz"));
        assert_eq!(signature.keyid, key_id(&key.public_key()));
    }

    #[test]
    fn key_identity_ignores_how_the_public_value_is_spelled() {
        use p256::pkcs8::EncodePublicKey as _;
        let secret = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
        let pem = secret
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let key = |keytype: &str, public: String| Key {
            keytype: keytype.into(),
            scheme: "ecdsa-sha2-nistp256".into(),
            keyval: KeyValue {
                public,
                extra: Map::new(),
            },
            extra: Map::new(),
        };
        let one = key_identity(&key("ecdsa", pem.clone())).unwrap();
        let crlf = key("ecdsa-sha2-nistp256", pem.replace('\n', "\r\n"));
        assert_eq!(key_identity(&crlf), Some(one.clone()));
        let ed = SigningKey::generate().unwrap().public_key();
        let mut upper = ed.clone();
        upper.keyval.public = upper.keyval.public.to_uppercase();
        assert_eq!(key_identity(&ed), key_identity(&upper));
        assert_ne!(key_identity(&ed), Some(one));
        assert_eq!(key_identity(&key("ecdsa", "not a key".into())), None);
    }

    #[test]
    fn keys_are_per_role_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::new(dir.path());
        keys.generate(false).unwrap();
        assert!(!keys.path("default").exists());
        let ids: std::collections::BTreeSet<String> = TOP_LEVEL_ROLES
            .iter()
            .map(|role| keys.role_key(role).unwrap().key_id())
            .collect();
        assert_eq!(ids.len(), 4, "one distinct key per role");
        std::fs::remove_file(keys.path("root")).unwrap();
        assert!(keys.role_key("root").is_err());
        assert!(keys.role_key("timestamp").is_ok());
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::new(dir.path());
        keys.generate(true).unwrap();
        let a = keys.role_key("targets").unwrap();
        let b = keys.role_key("root").unwrap();
        assert_eq!(a.key_id(), b.key_id(), "default.key serves every role");
        assert!(keys.generate(true).is_err(), "never overwrites a key");
        let public = load_public_key(&dir.path().join("default.pub")).unwrap();
        assert_eq!(key_id(&public), a.key_id());
        assert!(
            load_public_key(&keys.path("default")).is_err(),
            "a private key file is not a public key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(keys.path("default"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
