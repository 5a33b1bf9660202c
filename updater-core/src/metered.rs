//! A [`Transport`] that counts the body bytes it hands out, so `bytes_downloaded` is what
//! crossed the wire (metadata included), not what each caller thought to add up.
//!
//! The updater wraps its transport in one meter for the metadata (TUF roles and the release
//! manifest) and one for the content, and reports both (`metadata_bytes`, `content_bytes`).
//! The content meter also drives the download phase's progress ([`ProgressMeter`]).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::progress::ProgressMeter;
use crate::transport::{Request, Response, Transport};

/// Counts the body bytes read through it.
#[derive(Debug)]
pub(crate) struct Metered<'a> {
    inner: &'a dyn Transport,
    bytes: Arc<AtomicU64>,
    progress: Option<Arc<ProgressMeter>>,
}

impl<'a> Metered<'a> {
    pub(crate) fn new(inner: &'a dyn Transport) -> Self {
        Metered {
            inner,
            bytes: Arc::new(AtomicU64::new(0)),
            progress: None,
        }
    }

    /// Also counts every body byte into `progress` (the download phase's meter).
    pub(crate) fn with_progress(inner: &'a dyn Transport, progress: Arc<ProgressMeter>) -> Self {
        Metered {
            progress: Some(progress),
            ..Metered::new(inner)
        }
    }

    /// Body bytes read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Metered<'_> {
    /// `body` (of a response opened through another transport), counted from now on.
    pub(crate) fn count(&self, body: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
        Box::new(Counting {
            inner: body,
            bytes: Arc::clone(&self.bytes),
            progress: self.progress.clone(),
        })
    }
}

impl Transport for Metered<'_> {
    fn get(&self, url: &str, request: &Request) -> Result<Response> {
        let mut response = self.inner.get(url, request)?;
        response.body = self.count(response.body);
        Ok(response)
    }

    fn reject(&self, url: &str) -> bool {
        self.inner.reject(url)
    }
}

struct Counting {
    inner: Box<dyn Read + Send>,
    bytes: Arc<AtomicU64>,
    progress: Option<Arc<ProgressMeter>>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(progress) = &self.progress {
            progress.add_bytes(n as u64);
        }
        Ok(n)
    }
}
