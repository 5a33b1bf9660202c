//! How a rollout percentage is written in signed metadata.
//!
//! TUF signs the canonical JSON (OLPC) of its metadata, which has no floating-point numbers:
//! python-tuf refuses to verify metadata holding one, and so does our signer
//! ([`crate::tuf::sign::canonical_json`]). So a whole percentage is written as a JSON integer
//! (`25`) and a fraction as a decimal string with at most two decimals (`"12.5"`: two
//! decimals are the rollout bucket's resolution; more are rounded). Both are read back, and
//! so is a JSON number with a fraction (in a hand-made file; it cannot be signed).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Writes `percent` as an integer or a decimal string (see the module docs).
pub fn serialize<S: Serializer>(percent: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if !percent.is_finite() || percent.abs() > 1e12 {
        return Err(serde::ser::Error::custom(format!(
            "rollout percentage {percent} is not a number from 0 to 100"
        )));
    }
    // In range after the check above: the cast cannot saturate.
    let hundredths = (percent * 100.0).round() as i64;
    if hundredths % 100 == 0 {
        return serializer.serialize_i64(hundredths / 100);
    }
    let sign = if hundredths < 0 { "-" } else { "" };
    let abs = hundredths.unsigned_abs();
    let text = format!("{sign}{}.{:02}", abs / 100, abs % 100);
    serializer.serialize_str(text.trim_end_matches('0'))
}

/// Reads a percentage written as a number or as a decimal string.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(f64),
        Text(String),
    }
    match Written::deserialize(deserializer)? {
        Written::Number(percent) => Ok(percent),
        Written::Text(text) => {
            let decimal = !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
            text.parse::<f64>().ok().filter(|_| decimal).ok_or_else(|| {
                D::Error::custom(format!("percentage {text:?} is not a decimal number"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::control::{Rollout, RolloutStep};
    use serde_json::json;

    #[test]
    fn percentages_are_written_without_floats_and_read_back() {
        for (percent, written) in [
            (25.0, json!(25)),
            (100.0, json!(100)),
            (0.0, json!(0)),
            (12.5, json!("12.5")),
            (0.01, json!("0.01")),
            (33.333, json!("33.33")),
        ] {
            let value = serde_json::to_value(Rollout::fixed(percent)).unwrap();
            assert_eq!(value, json!({ "percent": written }), "{percent}");
            crate::tuf::sign::canonical_json(&value).unwrap();
            let back: Rollout = serde_json::from_value(value).unwrap();
            assert!((back.percent - percent).abs() < 0.005, "{percent}");
        }
        let rollout = Rollout::scheduled(vec![RolloutStep {
            percent: 7.25,
            at: "2026-12-01T00:00:00Z".into(),
        }]);
        let value = serde_json::to_value(&rollout).unwrap();
        assert_eq!(value["schedule"][0]["percent"], "7.25");
        crate::tuf::sign::canonical_json(&value).unwrap();
        let read: Rollout = serde_json::from_value(json!({"percent": 12.5})).unwrap();
        assert_eq!(read.percent, 12.5);
        for bad in [json!("1e2"), json!("inf"), json!(""), json!(true)] {
            assert!(serde_json::from_value::<Rollout>(json!({ "percent": bad })).is_err());
        }
    }
}
