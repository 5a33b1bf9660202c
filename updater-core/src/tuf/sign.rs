//! Canonical JSON, and signing and verifying whole metadata files.
//!
//! Signatures cover the canonical JSON (OLPC) of the `signed` object *as received*: the
//! bytes are parsed into a generic JSON value, never through our structs, so fields we do not
//! know are still covered by the check (spec: "unknown fields kept when checking
//! signatures").

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::tuf::keys::{SigningKey, key_identity, verify_signature};
use crate::tuf::metadata::{Key, Role, RoleKeys, Signature};

/// The canonical JSON encoding of `value`. Fails on a floating-point number, which canonical
/// JSON (OLPC, as TUF and python-tuf use it) cannot encode.
///
/// Regression: the error used to be ignored, leaving the bytes written up to the first
/// float; a signature then covered only that prefix of the metadata (for a targets role: not
/// the hashes of the release whose `custom` held the float, nor anything after it).
pub fn canonical_json(value: &Value) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut serializer)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Signs `signed` with `keys` and returns the file's bytes (pretty JSON, as python-tuf writes).
pub fn sign_metadata<T: Serialize>(signed: &T, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let value =
        serde_json::to_value(signed).map_err(|e| Error::format("metadata", e.to_string()))?;
    let message = canonical_json(&value)
        .map_err(|e| Error::format("metadata", format!("cannot sign: {e}")))?;
    let mut seen = HashSet::new();
    let signatures: Vec<Signature> = keys
        .iter()
        .filter(|k| seen.insert(k.key_id()))
        .map(|k| k.sign(&message))
        .collect();
    let file = serde_json::json!({ "signatures": signatures, "signed": value });
    let mut bytes =
        serde_json::to_vec_pretty(&file).map_err(|e| Error::format("metadata", e.to_string()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A metadata file parsed but not yet trusted: its signatures and the raw `signed` value.
#[derive(Debug)]
pub struct Envelope {
    /// Signatures as listed.
    pub signatures: Vec<Signature>,
    /// The `signed` object exactly as received.
    pub signed: Value,
    /// Its canonical bytes (what the signatures cover).
    pub message: Vec<u8>,
}

impl Envelope {
    /// Parses `bytes` into signatures and the `signed` object. `what` names the file or URL.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::format(what, format!("not valid JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(Error::format(what, "not a JSON object"));
        };
        let signed = object
            .remove("signed")
            .ok_or_else(|| Error::format(what, "missing field `signed`"))?;
        if !signed.is_object() {
            return Err(Error::format(what, "field `signed` is not an object"));
        }
        let signatures = object
            .remove("signatures")
            .ok_or_else(|| Error::format(what, "missing field `signatures`"))?;
        let signatures: Vec<Signature> = serde_json::from_value(signatures)
            .map_err(|e| Error::format(what, format!("field `signatures`: {e}")))?;
        // As python-tuf does: a file with two signatures by one key id is malformed, whatever
        // the threshold (counting the key once would be safe, but hides a broken signer).
        let mut seen = HashSet::new();
        if let Some(twice) = signatures.iter().find(|s| !seen.insert(s.keyid.as_str())) {
            return Err(Error::format(
                what,
                format!(
                    "field `signatures` has more than one signature by key id {}",
                    twice.keyid
                ),
            ));
        }
        let message = canonical_json(&signed)
            .map_err(|e| Error::format(what, format!("field `signed` cannot be checked: {e}")))?;
        Ok(Envelope {
            signatures,
            signed,
            message,
        })
    }

    /// The number of distinct keys in `role` with a valid signature. Each key counts once,
    /// however many times it signed and however many key ids list it (keys are compared by
    /// their public value, see [`key_identity`]); keys not listed for the role never count.
    pub fn valid_signatures(&self, keys: &BTreeMap<String, Key>, role: &RoleKeys) -> usize {
        let allowed: HashSet<&str> = role.keyids.iter().map(String::as_str).collect();
        let mut checked_ids = HashSet::new();
        let mut counted = HashSet::new();
        for signature in &self.signatures {
            if !allowed.contains(signature.keyid.as_str())
                || !checked_ids.insert(signature.keyid.as_str())
            {
                continue;
            }
            let Some(key) = keys.get(&signature.keyid) else {
                continue;
            };
            let Some(identity) = key_identity(key) else {
                continue;
            };
            if verify_signature(key, &self.message, &signature.sig) {
                counted.insert(identity);
            }
        }
        counted.len()
    }

    /// Checks the threshold of `role_name` against `keys`/`role`.
    pub fn check_threshold(
        &self,
        what: &str,
        role_name: &str,
        keys: &BTreeMap<String, Key>,
        role: &RoleKeys,
    ) -> Result<()> {
        let valid = self.valid_signatures(keys, role);
        if role.threshold == 0 || (valid as u64) < role.threshold {
            return Err(Error::Threshold {
                role: role_name.to_string(),
                what: what.to_string(),
                valid,
                threshold: role.threshold,
            });
        }
        Ok(())
    }

    /// Deserializes the `signed` object as role `T`, checking `_type`, the role's own rules
    /// ([`Role::check`]) and the spec's major version.
    pub fn decode<T: Role>(&self, what: &str) -> Result<T> {
        let decoded: T = serde_json::from_value(self.signed.clone())
            .map_err(|e| Error::format(what, format!("{} metadata: {e}", T::TYPE)))?;
        if decoded.type_field() != T::TYPE {
            return Err(Error::format(
                what,
                format!(
                    "field `_type` is {:?}, expected {:?}",
                    decoded.type_field(),
                    T::TYPE
                ),
            ));
        }
        decoded
            .check()
            .map_err(|message| Error::format(what, message))?;
        let major = decoded.spec_version().split('.').next().unwrap_or("");
        if major != "1" {
            return Err(Error::format(
                what,
                format!(
                    "field `spec_version` is {:?}; this client supports TUF 1.x",
                    decoded.spec_version()
                ),
            ));
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::keys::SigningKey;

    fn role_for(key: &SigningKey, threshold: u64) -> (BTreeMap<String, Key>, RoleKeys) {
        let mut keys = BTreeMap::new();
        keys.insert(key.key_id(), key.public_key());
        (
            keys,
            RoleKeys {
                keyids: vec![key.key_id()],
                threshold,
            },
        )
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let value: Value = serde_json::from_str(r#"{ "b": 1, "a": [true, "x\"y"] }"#).unwrap();
        assert_eq!(
            canonical_json(&value).unwrap(),
            br#"{"a":[true,"x\"y"],"b":1}"#
        );
    }

    /// Regression: a float made the canonical form stop there, so a signature covered only
    /// the metadata before it. Such metadata is now refused when signing and when parsing.
    #[test]
    fn metadata_with_a_float_is_neither_signed_nor_accepted() {
        let value: Value = serde_json::from_str(r#"{"a": 1.5, "z": "unsigned?"}"#).unwrap();
        assert!(canonical_json(&value).is_err());
        let key = SigningKey::generate().unwrap();
        assert!(sign_metadata(&value, &[&key]).is_err());
        let file = serde_json::json!({"signatures": [], "signed": value});
        let bytes = serde_json::to_vec(&file).unwrap();
        assert!(Envelope::parse(&bytes, "x").is_err());
    }

    #[test]
    fn duplicate_signatures_by_one_key_count_once() {
        let key = SigningKey::generate().unwrap();
        let bytes = sign_metadata(&serde_json::json!({"_type": "x", "v": 1}), &[&key]).unwrap();
        let mut envelope = Envelope::parse(&bytes, "x").unwrap();
        let (keys, role) = role_for(&key, 2);
        envelope.signatures.push(envelope.signatures[0].clone());
        assert_eq!(envelope.valid_signatures(&keys, &role), 1);
        assert!(envelope.check_threshold("x", "x", &keys, &role).is_err());
    }

    fn targets_delegating_to(names: &[&str]) -> Vec<u8> {
        let roles: Vec<Value> = names
            .iter()
            .map(|name| serde_json::json!({"name": name, "keyids": [], "threshold": 1, "paths": ["*"]}))
            .collect();
        let signed = serde_json::json!({
            "_type": "targets", "spec_version": "1.0.31", "version": 1,
            "expires": "2030-01-01T00:00:00Z", "targets": {},
            "delegations": {"keys": {}, "roles": roles},
        });
        sign_metadata(&signed, &[&SigningKey::generate().unwrap()]).unwrap()
    }

    #[test]
    fn delegations_to_top_level_or_empty_or_repeated_names_are_refused() {
        // Regression: a delegated role named `root` was stored over the trusted root.json.
        let decode = |names: &[&str]| {
            Envelope::parse(&targets_delegating_to(names), "3.targets.json")
                .unwrap()
                .decode::<crate::tuf::metadata::Targets>("3.targets.json")
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(decode(&["apps", "apps-beta"]).is_ok());
        for name in ["root", "timestamp", "snapshot", "targets", ""] {
            let err = decode(&["apps", name]).unwrap_err();
            assert!(
                err.contains("3.targets.json")
                    && err.contains("field `delegations.roles[1].name`")
                    && err.contains("cannot be empty or use top-level role names"),
                "{err}"
            );
        }
        let err = decode(&["apps", "other", "apps"]).unwrap_err();
        assert!(
            err.contains("field `delegations.roles[2].name`") && err.contains("delegated twice"),
            "{err}"
        );
    }

    #[test]
    fn one_key_listed_under_two_ids_counts_once() {
        // Regression: the same public key under two key ids met a threshold of 2.
        let key = SigningKey::generate().unwrap();
        let bytes = sign_metadata(&serde_json::json!({"_type": "x", "v": 1}), &[&key]).unwrap();
        let mut envelope = Envelope::parse(&bytes, "x").unwrap();
        let (mut keys, mut role) = role_for(&key, 2);
        // The copy also spells the hex in upper case: the value, not the text, is the key.
        let mut copy = key.public_key();
        copy.keyval.public = copy.keyval.public.to_uppercase();
        keys.insert("another-id".into(), copy);
        role.keyids.push("another-id".into());
        let mut second = envelope.signatures[0].clone();
        second.keyid = "another-id".into();
        envelope.signatures.push(second);
        assert_eq!(envelope.valid_signatures(&keys, &role), 1);
        assert!(envelope.check_threshold("x", "x", &keys, &role).is_err());
        // Two different keys still meet it.
        let other = SigningKey::generate().unwrap();
        keys.insert(other.key_id(), other.public_key());
        role.keyids.push(other.key_id());
        envelope.signatures.push(other.sign(&envelope.message));
        assert_eq!(envelope.valid_signatures(&keys, &role), 2);
    }

    #[test]
    fn two_signatures_by_one_key_id_are_refused_when_parsing() {
        let key = SigningKey::generate().unwrap();
        let bytes = sign_metadata(&serde_json::json!({"_type": "x", "v": 1}), &[&key]).unwrap();
        let mut file: Value = serde_json::from_slice(&bytes).unwrap();
        let signature = file["signatures"][0].clone();
        file["signatures"].as_array_mut().unwrap().push(signature);
        let twice = serde_json::to_vec(&file).unwrap();
        let err = Envelope::parse(&twice, "timestamp.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("timestamp.json")
                && err.contains("more than one signature by key id")
                && err.contains(&key.key_id()),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_covered_by_the_signature() {
        let key = SigningKey::generate().unwrap();
        let bytes =
            sign_metadata(&serde_json::json!({"_type": "x", "extra": "a"}), &[&key]).unwrap();
        let tampered = String::from_utf8(bytes).unwrap().replace("\"a\"", "\"b\"");
        let envelope = Envelope::parse(tampered.as_bytes(), "x").unwrap();
        let (keys, role) = role_for(&key, 1);
        assert_eq!(envelope.valid_signatures(&keys, &role), 0);
    }
}
