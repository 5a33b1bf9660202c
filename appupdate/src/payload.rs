//! The installer payload: what `appupdate installer` appends to a copy of `appupdate` so the
//! copy installs one app by itself (see `installer.rs`).
//!
//! Layout of an installer file, all integers little-endian:
//!
//! ```text
//! [the appupdate executable][payload][trailer]
//! payload = six fields in this order: app, url, channel, platform, trusted root, launcher;
//!           each a u32 length followed by that many bytes (the first four UTF-8)
//! trailer = SHA-256 of the payload (32 bytes) | payload length (u64) | MAGIC (16 bytes)
//! ```
//!
//! Reading looks at the last [`TRAILER_LEN`] bytes only: no magic there means a plain
//! `appupdate`. With the magic, everything else must be exactly right (length within
//! [`MAX_PAYLOAD_LEN`] and the file, digest, every field within its cap, nothing left over),
//! or the installer refuses to run.

use std::io::{Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};

/// Marks the end of an installer file (format version 1).
const MAGIC: &[u8; 16] = b"appupdate-inst\x00\x01";

/// Bytes of the trailer: digest, payload length, magic.
pub const TRAILER_LEN: usize = 32 + 8 + MAGIC.len();

/// The largest payload accepted (the launcher dominates; a release launcher is under 1 MiB,
/// a debug build tens of MiB).
pub const MAX_PAYLOAD_LEN: u64 = 128 * 1024 * 1024;

/// Caps of the text fields (app, URL, channel, platform).
const MAX_TEXT_LEN: usize = 4096;

/// Cap of the trusted root (as `updater-core`'s default root size limit).
const MAX_ROOT_LEN: usize = 1024 * 1024;

/// What an installer installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// App name.
    pub app: String,
    /// Repository base URL.
    pub url: String,
    /// Channel to follow.
    pub channel: String,
    /// Platform of the release (the installer's own).
    pub platform: String,
    /// The repository's root metadata the install starts trusting (`1.root.json`).
    pub trusted_root: Vec<u8>,
    /// The launcher binary (`appstart`) for the platform.
    pub launcher: Vec<u8>,
}

/// Why an installer's payload was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Reading the file failed.
    #[error("reading the installer payload: {0}")]
    Io(#[from] std::io::Error),
    /// The trailer names a payload larger than the cap or than the file.
    #[error(
        "the installer payload claims {length} bytes, more than {limit} (the file is truncated or not an installer)"
    )]
    TooLarge {
        /// Length in the trailer.
        length: u64,
        /// The most it may be here.
        limit: u64,
    },
    /// The payload does not match the digest in the trailer.
    #[error(
        "the installer payload is corrupt (its SHA-256 does not match the trailer): download the installer again"
    )]
    DigestMismatch,
    /// The payload's fields are not as written by `appupdate installer`.
    #[error("the installer payload is malformed: {0}")]
    Malformed(String),
}

/// `payload` encoded with its trailer: the bytes to append to an `appupdate` executable.
pub fn encode(payload: &Payload) -> Result<Vec<u8>, PayloadError> {
    let mut body = Vec::new();
    let fields: [(&str, &[u8], usize); 6] = [
        ("app", payload.app.as_bytes(), MAX_TEXT_LEN),
        ("url", payload.url.as_bytes(), MAX_TEXT_LEN),
        ("channel", payload.channel.as_bytes(), MAX_TEXT_LEN),
        ("platform", payload.platform.as_bytes(), MAX_TEXT_LEN),
        ("trusted root", &payload.trusted_root, MAX_ROOT_LEN),
        ("launcher", &payload.launcher, usize::MAX),
    ];
    for (name, bytes, cap) in fields {
        if bytes.len() > cap {
            return Err(PayloadError::Malformed(format!(
                "the {name} is {} bytes, more than {cap}",
                bytes.len()
            )));
        }
        let len = u32::try_from(bytes.len())
            .map_err(|_| PayloadError::Malformed(format!("the {name} is {} bytes", bytes.len())))?;
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(bytes);
    }
    let length = body.len() as u64;
    if length > MAX_PAYLOAD_LEN {
        return Err(PayloadError::TooLarge {
            length,
            limit: MAX_PAYLOAD_LEN,
        });
    }
    let digest = Sha256::digest(&body);
    body.extend_from_slice(&digest);
    body.extend_from_slice(&length.to_le_bytes());
    body.extend_from_slice(MAGIC);
    Ok(body)
}

/// The payload at the end of `file`, `None` when it has no trailer (a plain `appupdate`).
pub fn read(file: &mut (impl Read + Seek)) -> Result<Option<Payload>, PayloadError> {
    let file_len = file.seek(SeekFrom::End(0))?;
    if file_len < TRAILER_LEN as u64 {
        return Ok(None);
    }
    file.seek(SeekFrom::End(-(TRAILER_LEN as i64)))?;
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact(&mut trailer)?;
    let (digest, rest) = trailer.split_at(32);
    let (length, magic) = rest.split_at(8);
    if magic != MAGIC {
        return Ok(None);
    }
    let mut length_bytes = [0u8; 8];
    length_bytes.copy_from_slice(length);
    let length = u64::from_le_bytes(length_bytes);
    let limit = MAX_PAYLOAD_LEN.min(file_len - TRAILER_LEN as u64);
    if length > limit {
        return Err(PayloadError::TooLarge { length, limit });
    }
    // `length` <= MAX_PAYLOAD_LEN, which fits in an i64 and a usize.
    file.seek(SeekFrom::End(-(TRAILER_LEN as i64) - length as i64))?;
    let mut body = vec![0u8; length as usize];
    file.read_exact(&mut body)?;
    if Sha256::digest(&body).as_slice() != digest {
        return Err(PayloadError::DigestMismatch);
    }
    decode(&body).map(Some)
}

/// Parses the payload's fields strictly.
fn decode(body: &[u8]) -> Result<Payload, PayloadError> {
    let mut rest = body;
    let mut field = |name: &str, cap: usize| -> Result<Vec<u8>, PayloadError> {
        let malformed = |what: String| PayloadError::Malformed(format!("the {name} {what}"));
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("is missing".into()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > cap {
            return Err(malformed(format!("is {len} bytes, more than {cap}")));
        }
        if len > tail.len() {
            return Err(malformed(format!("is cut short ({len} bytes expected)")));
        }
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        Ok(bytes.to_vec())
    };
    let text = |name: &str, bytes: Vec<u8>| {
        String::from_utf8(bytes)
            .map_err(|_| PayloadError::Malformed(format!("the {name} is not UTF-8")))
    };
    let app = field("app", MAX_TEXT_LEN)?;
    let url = field("url", MAX_TEXT_LEN)?;
    let channel = field("channel", MAX_TEXT_LEN)?;
    let platform = field("platform", MAX_TEXT_LEN)?;
    let trusted_root = field("trusted root", MAX_ROOT_LEN)?;
    let launcher = field("launcher", usize::MAX)?;
    if !rest.is_empty() {
        return Err(PayloadError::Malformed(format!(
            "{} bytes follow the last field",
            rest.len()
        )));
    }
    Ok(Payload {
        app: text("app", app)?,
        url: text("url", url)?,
        channel: text("channel", channel)?,
        platform: text("platform", platform)?,
        trusted_root,
        launcher,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn sample() -> Payload {
        Payload {
            app: "hello".into(),
            url: "https://example.com/repo".into(),
            channel: "stable".into(),
            platform: "windows-x86_64".into(),
            trusted_root: br#"{"signed":{}}"#.to_vec(),
            launcher: vec![0x4d, 0x5a, 0, 1, 2, 3],
        }
    }

    fn installer(payload: &Payload) -> Vec<u8> {
        let mut file = b"\x7fELF pretend executable".to_vec();
        file.extend(encode(payload).unwrap());
        file
    }

    #[test]
    fn round_trip() {
        let file = installer(&sample());
        assert_eq!(read(&mut Cursor::new(file)).unwrap(), Some(sample()));
    }

    #[test]
    fn no_trailer_is_a_plain_appupdate() {
        assert!(read(&mut Cursor::new(b"plain".to_vec())).unwrap().is_none());
        assert!(read(&mut Cursor::new(vec![7u8; 4096])).unwrap().is_none());
        assert!(read(&mut Cursor::new(Vec::new())).unwrap().is_none());
    }

    #[test]
    fn truncated_is_refused() {
        let file = installer(&sample());
        // Cutting the front off leaves a trailer naming more bytes than the file holds.
        let cut = file[file.len() - TRAILER_LEN - 10..].to_vec();
        assert!(matches!(
            read(&mut Cursor::new(cut)),
            Err(PayloadError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let mut file = installer(&sample());
        let at = file.len() - TRAILER_LEN - 3;
        file[at] ^= 0x55;
        assert!(matches!(
            read(&mut Cursor::new(file)),
            Err(PayloadError::DigestMismatch)
        ));
    }

    #[test]
    fn garbage_with_a_valid_digest_is_refused() {
        // A payload whose digest matches but whose fields do not parse.
        for body in [vec![0xff; 3], vec![0xff, 0xff, 0xff, 0x7f, 1], {
            let mut extra = encode(&sample()).unwrap();
            extra.truncate(extra.len() - TRAILER_LEN);
            extra.push(0);
            extra
        }] {
            let mut file = b"exe".to_vec();
            file.extend_from_slice(&body);
            file.extend_from_slice(&Sha256::digest(&body));
            file.extend_from_slice(&(body.len() as u64).to_le_bytes());
            file.extend_from_slice(MAGIC);
            assert!(
                matches!(
                    read(&mut Cursor::new(file)),
                    Err(PayloadError::Malformed(_))
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn oversized_is_refused() {
        let mut file = vec![0u8; 100];
        file.extend_from_slice(&[0u8; 32]);
        file.extend_from_slice(&u64::MAX.to_le_bytes());
        file.extend_from_slice(MAGIC);
        assert!(matches!(
            read(&mut Cursor::new(file)),
            Err(PayloadError::TooLarge { .. })
        ));
        let mut big = sample();
        big.app = "a".repeat(MAX_TEXT_LEN + 1);
        assert!(matches!(encode(&big), Err(PayloadError::Malformed(_))));
    }
}
