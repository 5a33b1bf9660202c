//! The receiver's routes, served through the development server's request hook:
//!
//! - `POST /receipts`: a JSON [`Batch`] of at most [`MAX_BATCH_BYTES`] bytes (413 past that,
//!   read no further); 400 with a message naming the receipt and field when it does not parse
//!   or a receipt fails [`updater_core::advanced::receipts::Receipt::check`]; stored in one
//!   transaction, committed, then 200 `{"inserted": n, "duplicates": m}`. A database failure
//!   is 503: the install keeps the batch and retries.
//! - `GET /fleet`: the fleet page ([`crate::page`]); `GET /fleet.json`: the
//!   [`crate::FleetSummary`]. Both take `?app=NAME`.
//!
//! Anything else goes back to the file server.

use std::io::Read;
use std::sync::Arc;

use appstart_serve::Handler;
use appstart_serve::tiny_http::{Header, Method, Request, Response};
use updater_core::advanced::receipts::{Batch, MAX_BATCH_BYTES};

use crate::error::Error;
use crate::store::{Store, check_batch};

/// The receiver: routes requests to a store.
#[derive(Debug, Clone)]
pub struct Receiver {
    store: Arc<dyn Store>,
}

impl Receiver {
    /// A receiver storing into `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Receiver { store }
    }

    /// Checks and stores a batch body; the status and JSON answer.
    pub fn receive(&self, body: &[u8]) -> (u16, String) {
        let batch: Batch = match serde_json::from_slice(body) {
            Ok(batch) => batch,
            Err(e) => return (400, error_json(&format!("batch refused: not a batch: {e}"))),
        };
        if let Err(e) = check_batch(&batch) {
            return (400, error_json(&e.to_string()));
        }
        match self.store.insert_batch(&batch) {
            Ok(inserted) => (
                200,
                serde_json::to_string(&inserted).unwrap_or_else(|_| "{}".into()),
            ),
            Err(e @ Error::BadBatch(_)) => (400, error_json(&e.to_string())),
            Err(e) => {
                log::error!("{e}");
                (
                    503,
                    error_json("the receipt database is unavailable; retry later"),
                )
            }
        }
    }

    fn page(&self, url: &str, json: bool) -> (u16, String, &'static str) {
        let app = match query_app(url) {
            Ok(app) => app,
            Err(message) => return (400, error_json(&message), "application/json"),
        };
        match self.store.summary(app.as_deref()) {
            Ok(summary) if json => (
                200,
                serde_json::to_string(&summary).unwrap_or_else(|_| "{}".into()),
                "application/json",
            ),
            Ok(summary) => (
                200,
                crate::page::render(&summary),
                "text/html; charset=utf-8",
            ),
            Err(e) => {
                log::error!("{e}");
                (
                    503,
                    error_json("the receipt database is unavailable"),
                    "application/json",
                )
            }
        }
    }
}

impl Handler for Receiver {
    #[allow(
        clippy::result_large_err,
        reason = "the trait hands the request back by value (serve::Handler)"
    )]
    fn handle(&self, mut request: Request) -> Result<(u16, u64), Request> {
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let (status, body, content_type) = match (request.method(), path.as_str()) {
            (Method::Post, "/receipts") => match read_body(&mut request) {
                Ok(body) => {
                    let (status, answer) = self.receive(&body);
                    (status, answer, "application/json")
                }
                Err((status, message)) => (status, error_json(&message), "application/json"),
            },
            (Method::Get, "/fleet") => self.page(request.url(), false),
            (Method::Get, "/fleet.json") => self.page(request.url(), true),
            (_, "/receipts" | "/fleet" | "/fleet.json") => {
                (405, error_json("method not allowed"), "application/json")
            }
            _ => return Err(request),
        };
        let length = body.len() as u64;
        let response = Response::from_string(body)
            .with_status_code(status)
            .with_header(header("Content-Type", content_type))
            .with_header(header("Cache-Control", "no-store"));
        let _ = request.respond(response);
        Ok((status, length))
    }
}

/// The body, at most [`MAX_BATCH_BYTES`]: a larger declared length is refused before reading,
/// and a body that runs past it (no or a false length) is cut off and refused.
fn read_body(request: &mut Request) -> Result<Vec<u8>, (u16, String)> {
    let too_large = || {
        (
            413,
            format!("batch refused: body larger than {MAX_BATCH_BYTES} bytes; send fewer receipts"),
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_BATCH_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BATCH_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| (400, format!("batch refused: reading the body: {e}")))?;
    if body.len() > MAX_BATCH_BYTES {
        return Err(too_large());
    }
    Ok(body)
}

/// `app` from `?app=NAME`, checked as a label.
fn query_app(url: &str) -> Result<Option<String>, String> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(None);
    };
    for pair in query.split('&') {
        if let Some(app) = pair.strip_prefix("app=") {
            updater_core::advanced::manifest::check_label("app", app).map_err(|e| e.to_string())?;
            return Ok(Some(app.to_string()));
        }
    }
    Ok(None)
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn header(name: &str, value: &str) -> Header {
    // Names and values here are ASCII constants of this file, which tiny_http accepts.
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("an ASCII header"))
}
