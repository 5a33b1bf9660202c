//! Which HTTPS servers an install trusts.
//!
//! By default the OS trust store decides, through ureq's `RootCerts::PlatformVerifier`
//! (rustls-platform-verifier), so a company CA that IT installed on the machine just works.
//! On targets where rustls-platform-verifier cannot be built (anything but Linux, Windows,
//! macOS, Android and iOS) the roots bundled in the binary (webpki-roots, Mozilla's list)
//! are used instead.
//!
//! An install may add its own CA (`appupdate install --ca-file PEM`), for a repository
//! behind a private CA that is not in the OS store. The file is checked and copied to
//! `state/ca.pem` at install time, recorded in `state/install.toml`, and every HTTPS request
//! of that install trusts it *in addition*. Off-spec for the platform verifier: it cannot take
//! extra roots through ureq, so with a CA file the roots are the OS store's certificates
//! (read by rustls-native-certs), the bundled roots where the OS store yields none, and the
//! file's certificates.

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts};

use crate::error::{Error, Result};

/// The largest CA file read (`--ca-file`, `state/ca.pem`): a bundle of a few hundred
/// certificates fits.
pub const MAX_CA_FILE: u64 = 1 << 20;

/// The extra roots an install trusts beside the default ones.
#[derive(Debug, Clone, Default)]
pub struct TlsTrust {
    extra: Arc<Vec<Certificate<'static>>>,
}

impl TlsTrust {
    /// The default: the OS trust store (or the bundled roots), nothing more.
    pub fn system() -> Self {
        TlsTrust::default()
    }

    /// The default roots and the certificates of the PEM file at `path`. A file that is
    /// missing, larger than [`MAX_CA_FILE`], not PEM, or without any certificate is an error
    /// naming it.
    pub fn with_ca_file(path: &Path) -> Result<Self> {
        let bytes = appstart_layout::fsutil::read_capped(path, MAX_CA_FILE)?;
        let extra = parse_pem_certificates(&bytes)
            .map_err(|message| Error::format(path.display().to_string(), message))?;
        Ok(TlsTrust {
            extra: Arc::new(extra),
        })
    }

    /// How many extra certificates are trusted.
    pub fn extra_count(&self) -> usize {
        self.extra.len()
    }

    /// The root certificates for ureq.
    pub(crate) fn root_certs(&self) -> RootCerts {
        if self.extra.is_empty() {
            return default_roots();
        }
        let mut roots: Vec<Certificate<'static>> = Vec::new();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            log::debug!("reading the OS trust store: {error}");
        }
        roots.extend(
            native
                .certs
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned()),
        );
        if roots.is_empty() {
            log::debug!("the OS trust store has no certificates; trusting only the CA file");
        }
        roots.extend(self.extra.iter().cloned());
        RootCerts::Specific(Arc::new(roots))
    }
}

#[cfg(any(
    target_os = "linux",
    windows,
    target_os = "macos",
    target_os = "android",
    target_os = "ios"
))]
fn default_roots() -> RootCerts {
    RootCerts::PlatformVerifier
}

#[cfg(not(any(
    target_os = "linux",
    windows,
    target_os = "macos",
    target_os = "android",
    target_os = "ios"
)))]
fn default_roots() -> RootCerts {
    RootCerts::WebPki
}

/// The certificates of a PEM text; other items (keys) are ignored. Errors say what is wrong.
fn parse_pem_certificates(bytes: &[u8]) -> std::result::Result<Vec<Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(bytes) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(format!("not a PEM certificate file: {e}")),
        }
    }
    if certs.is_empty() {
        return Err("no certificate (-----BEGIN CERTIFICATE-----) in the file".to_string());
    }
    Ok(certs)
}

/// Whether a ureq error message is a refused server certificate.
pub(crate) fn is_untrusted_certificate(message: &str) -> bool {
    message.contains("invalid peer certificate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "hello, not a certificate\n").unwrap();
        let err = TlsTrust::with_ca_file(&path).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        assert!(err.to_string().contains("no certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = TlsTrust::with_ca_file(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
