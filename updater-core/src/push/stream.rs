//! [`StreamTransport`]: the HTTP connection a push subscription is read from, through the
//! install's proxy settings and CA trust, like every other request of the install.
//!
//! Why not the repository's [`crate::transport::HttpTransport`]: a push stream is one long
//! GET that must not look like a keep-alive connection, so it asks for `Connection: close`
//! (a server such as `appupdate serve` then frees the per-connection worker it would keep
//! waiting for a next request) and `Accept: text/event-stream`, and it reads for hours, so
//! its per-read backstop is long (the subscriber's own stall timeout drops it first).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::proxy::Proxies;
use crate::tls::TlsTrust;
use crate::transport::{Request, Response, Status, Transport};

/// Connecting (DNS and TCP/TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait for any single read: past [`super::subscriber::STALL`].
const READ_BACKSTOP: Duration = Duration::from_secs(60);

/// GETs event streams, directly or through the proxy the install's settings choose.
#[derive(Debug)]
pub struct StreamTransport {
    direct: ureq::Agent,
    via_http: Option<ureq::Agent>,
    via_https: Option<ureq::Agent>,
    proxies: Proxies,
}

impl StreamTransport {
    /// Through `proxies`, trusting `trust`'s roots for HTTPS.
    pub fn new(proxies: Proxies, trust: &TlsTrust) -> Self {
        let agent = |proxy: Option<ureq::Proxy>| {
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(trust.root_certs())
                .build();
            ureq::Agent::config_builder()
                .proxy(proxy)
                .tls_config(tls)
                .http_status_as_error(false)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_recv_response(Some(READ_BACKSTOP))
                .timeout_per_read(Some(READ_BACKSTOP))
                .max_redirects(3)
                .user_agent(concat!("appstart/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent()
        };
        StreamTransport {
            direct: agent(None),
            via_http: proxies
                .for_scheme(false)
                .map(|r| agent(Some(r.proxy.clone()))),
            via_https: proxies
                .for_scheme(true)
                .map(|r| agent(Some(r.proxy.clone()))),
            proxies,
        }
    }

    fn agent_for(&self, url: &str) -> &ureq::Agent {
        let agent = if url.starts_with("https://") {
            self.via_https.as_ref()
        } else {
            self.via_http.as_ref()
        };
        match (agent, self.proxies.route(url)) {
            (Some(agent), Some(_)) => agent,
            _ => &self.direct,
        }
    }
}

impl Transport for StreamTransport {
    /// GETs `url` as an event stream (`request`'s fields do not apply to one).
    fn get(&self, url: &str, _request: &Request) -> Result<Response> {
        let failed = |message: String, retryable: bool| Error::Transport {
            url: url.to_string(),
            message,
            retryable,
            retry_after: None,
        };
        let response = self
            .agent_for(url)
            .get(url)
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-cache")
            .header("Connection", "close")
            .call()
            .map_err(|e| failed(crate::proxy::redact(&e.to_string()), true))?;
        let code = response.status().as_u16();
        if code != 200 {
            return Err(failed(format!("the server answered {code}"), code != 404));
        }
        Ok(Response {
            status: Status::Full,
            content_length: None,
            range_start: None,
            etag: None,
            multipart_boundary: None,
            body: Box::new(response.into_body().into_reader()),
        })
    }
}
