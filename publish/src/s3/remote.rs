//! The bucket: list, get, put and delete under one `s3://BUCKET/PREFIX`, blocking.
//!
//! object_store is async; the rest of the publisher is synchronous (rayon for the CPU work,
//! plain files). Rather than make the publisher async for one transport, this module owns a
//! small tokio runtime (two workers: one request at a time is issued, the second keeps
//! reqwest's connection tasks moving) and blocks on each call. Uploads go one at a time, in
//! the order `plan` gives, so a failure stops the publish before anything later is sent.
//!
//! Credentials, region and endpoint come from the standard environment through
//! `AmazonS3Builder::from_env` (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_ALLOW_HTTP=true` for a plain-HTTP test
//! server). Requests are path-style (`ENDPOINT/BUCKET/KEY`), which every S3-compatible server
//! accepts; AWS itself still does. Every error names the `s3://` URL of the object.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use appstart_layout::fsutil;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, RetryConfig, UpdateVersion, WriteMultipart,
};

use updater_core::{Error, Result};

use super::plan::Upload;

/// Largest object downloaded into the working copy (a pack holds a whole release).
const MAX_OBJECT: u64 = 8 << 30;

/// Files larger than this are uploaded in parts of this size (S3's parts are 5 MiB at least).
pub(super) const PART: usize = 16 << 20;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    /// Key relative to the prefix, `/`-separated.
    pub(super) key: String,
    /// Size in bytes.
    pub(super) size: u64,
    /// The server's entity tag, when it gave one.
    pub(super) e_tag: Option<String>,
}

/// A bucket and prefix, with a client for them.
#[derive(Debug)]
pub(super) struct Remote {
    bucket: String,
    prefix: String,
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// A client for `bucket`/`prefix` configured from the environment, then `config`
    /// (object_store's names: `aws_endpoint`, `aws_access_key_id`, ...).
    pub(super) fn open(bucket: &str, prefix: &str, config: &[(&str, &str)]) -> Result<Remote> {
        // reqwest is built without a bundled TLS provider (see publish/Cargo.toml): use
        // ring's, like the rest of the workspace. Fails only when one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("s3://{bucket}/{prefix}");
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in config {
            let key = key
                .parse()
                .map_err(|e| Error::Invalid(format!("{url}: S3 setting {key:?}: {e}")))?;
            builder = builder.with_config(key, *value);
        }
        let store = builder
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| Error::Invalid(format!("{url}: {e} (set AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL for a server other than AWS)")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("appstart-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("{url}: starting the S3 client's runtime: {e}")))?;
        Ok(Remote {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            store,
            runtime,
        })
    }

    /// `s3://BUCKET/PREFIX/KEY`, for messages.
    pub(super) fn url(&self, key: &str) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}/{key}", self.bucket),
            prefix => format!("s3://{}/{prefix}/{key}", self.bucket),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(match self.prefix.as_str() {
            "" => key.to_string(),
            prefix => format!("{prefix}/{key}"),
        })
    }

    fn failed(&self, key: &str, action: &str, error: object_store::Error) -> Error {
        if let object_store::Error::Precondition { .. } = error {
            return Error::Locked {
                path: self.url(key).into(),
                holder: "another publisher (it changed since this run read it)".into(),
            };
        }
        Error::Transport {
            url: self.url(key),
            message: format!("{action}: {error}"),
            retryable: !matches!(
                error,
                object_store::Error::NotFound { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
            retry_after: None,
        }
    }

    /// Every object under the prefix.
    pub(super) fn list(&self) -> Result<Vec<Listed>> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let strip = match self.prefix.as_str() {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        self.runtime.block_on(async {
            let mut stream = self.store.list(prefix.as_ref());
            let mut listed = Vec::new();
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(|e| self.failed("", "listing", e))?;
                let full = meta.location.to_string();
                let Some(key) = full.strip_prefix(&strip) else {
                    continue;
                };
                listed.push(Listed {
                    key: key.to_string(),
                    size: meta.size,
                    e_tag: meta.e_tag,
                });
            }
            Ok(listed)
        })
    }

    /// Downloads `key` into the file `path`, streamed (a pack holds a whole release):
    /// written to a temporary file beside it, checked to be exactly `size` bytes as listed
    /// (at most [`MAX_OBJECT`]), then renamed into place.
    pub(super) fn download(&self, key: &str, size: u64, path: &Path) -> Result<()> {
        if size > MAX_OBJECT {
            return Err(Error::TooLarge {
                url: self.url(key),
                limit: MAX_OBJECT,
            });
        }
        let folder = fsutil::parent_of(path);
        fsutil::create_dir_all(&folder)?;
        let temp = folder.join(fsutil::temp_name("s3"));
        let result = self.runtime.block_on(async {
            let result = self
                .store
                .get(&self.path(key))
                .await
                .map_err(|e| self.failed(key, "downloading", e))?;
            let mut stream = result.into_stream();
            let mut file =
                std::fs::File::create(&temp).map_err(|e| Error::io("creating", &temp, e))?;
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.failed(key, "downloading", e))?;
                written += chunk.len() as u64;
                if written > size {
                    return Err(Error::TooLarge {
                        url: self.url(key),
                        limit: size,
                    });
                }
                file.write_all(&chunk)
                    .map_err(|e| Error::io("writing", &temp, e))?;
            }
            if written != size {
                return Err(Error::Transport {
                    url: self.url(key),
                    message: format!("{written} bytes received, {size} listed"),
                    retryable: true,
                    retry_after: None,
                });
            }
            file.sync_all().map_err(|e| Error::io("syncing", &temp, e))
        });
        match result.and_then(|()| Ok(fsutil::rename(&temp, path)?)) {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = std::fs::remove_file(&temp);
                Err(err)
            }
        }
    }

    /// Uploads `bytes` as `key` with `upload`'s headers. With `expected`, only if the object
    /// still has that entity tag (`None` inside: only if it does not exist yet); otherwise
    /// fails with [`Error::Locked`].
    pub(super) fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        upload: &Upload,
        expected: Option<Option<String>>,
    ) -> Result<()> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::CacheControl, upload.cache_control.into());
        attributes.insert(Attribute::ContentType, upload.content_type.into());
        let mode = match expected {
            None => PutMode::Overwrite,
            Some(None) => PutMode::Create,
            Some(Some(e_tag)) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
        };
        let options = PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        };
        self.runtime.block_on(async {
            self.store
                .put_opts(&self.path(key), PutPayload::from(bytes), options)
                .await
                .map(|_| ())
                .map_err(|e| match e {
                    object_store::Error::AlreadyExists { .. } => Error::Locked {
                        path: self.url(key).into(),
                        holder: "another publisher (it created it since this run began)".into(),
                    },
                    e => self.failed(key, "uploading", e),
                })
        })
    }

    /// Uploads the file `path` as `key` with `upload`'s headers, in parts of 16 MiB read
    /// one after the other (a pack can be larger than memory allows, and than the 5 GiB a
    /// single `PUT` may carry). Unconditional: for content-addressed and per-version names.
    pub(super) fn put_file_in_parts(&self, key: &str, path: &Path, upload: &Upload) -> Result<()> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::CacheControl, upload.cache_control.into());
        attributes.insert(Attribute::ContentType, upload.content_type.into());
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
        self.runtime.block_on(async {
            let parts = self
                .store
                .put_multipart_opts(&self.path(key), options)
                .await
                .map_err(|e| self.failed(key, "uploading", e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(parts, PART);
            let mut buffer = vec![0; PART];
            let result = loop {
                let read = match file.read(&mut buffer) {
                    Ok(0) => break Ok(()),
                    Ok(read) => read,
                    Err(e) => break Err(Error::io("reading", path, e)),
                };
                // At most two parts in flight: memory stays a few parts whatever the size.
                if let Err(e) = writer.wait_for_capacity(2).await {
                    break Err(self.failed(key, "uploading", e));
                }
                writer.write(&buffer[..read]);
            };
            match result {
                Ok(()) => writer
                    .finish()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.failed(key, "uploading", e)),
                Err(err) => {
                    let _ = writer.abort().await;
                    Err(err)
                }
            }
        })
    }

    /// Deletes `key` (no error when it is already gone).
    pub(super) fn delete(&self, key: &str) -> Result<()> {
        self.runtime.block_on(async {
            match self.store.delete(&self.path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.failed(key, "deleting", e)),
            }
        })
    }
}
