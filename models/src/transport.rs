//! The HTTP side every provider shares: one reqwest client, time limits, and a POST retried with
//! backoff on 429 and 5xx before its reply is handed over.

use std::time::{Duration, SystemTime};

use crate::classify::{classify, Failure};
use crate::error::{ModelError, TimeoutStage};
use crate::retry::{parse_retry_after, retryable, RetryPolicy};
use crate::sent::{OnSent, TellingBody};

/// Time limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To open the connection.
    pub connect: Duration,
    /// From sending the request to the reply's first event (a local model loading counts).
    pub first_token: Duration,
    /// Between two events of a reply that had begun.
    pub idle: Duration,
    pub retry: RetryPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// The HTTP client providers share (cheap to clone).
#[derive(Debug, Clone)]
pub struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) limits: Limits,
}

/// At most this much of a failed reply's body is read.
const ERROR_BODY_BYTES: usize = 16 * 1024;

impl Http {
    pub fn new(limits: Limits) -> Result<Http, ModelError> {
        // rustls's crypto is ring, installed once for the process (an error only says it was).
        let _ = rustls::crypto::ring::default_provider().install_default();
        #[allow(clippy::disallowed_methods)] // the provider is installed on the line above
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect)
            // A model API answers where it is asked; a redirect followed would carry the key
            // headers reqwest does not strip (Anthropic's, Gemini's) to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("AgentOS/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Protocol {
                detail: format!("the HTTP client cannot be built: {e}"),
            })?;
        Ok(Http { client, limits })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// POST `body` to `url` with `headers`, retried on 429 and 5xx as the policy allows; a
    /// successful reply is returned with its body unread, with when its attempt was sent (the
    /// first-token limit counts from then). `key` is only used to keep it out of error excerpts.
    /// `on_sent` is told when the first attempt's body is handed to its connection.
    pub(crate) async fn post(
        &self,
        url: &reqwest::Url,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
        model: &str,
        key: Option<&str>,
        mut on_sent: Option<OnSent>,
    ) -> Result<(reqwest::Response, tokio::time::Instant), ModelError> {
        // Written once; each attempt shares the bytes.
        let body =
            bytes::Bytes::from(serde_json::to_vec(body).map_err(|e| ModelError::Protocol {
                detail: format!("the request cannot be written: {e}"),
            })?);
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        let mut resent = false;
        loop {
            let sent = tokio::time::Instant::now();
            let mut req = self
                .client
                .post(url.clone())
                .header("content-type", "application/json")
                .body(match on_sent.take() {
                    Some(tell) => reqwest::Body::wrap(TellingBody::new(body.clone(), tell)),
                    None => reqwest::Body::from(body.clone()),
                });
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let sent_or_not = tokio::time::timeout(self.limits.first_token, req.send())
                .await
                .map_err(|_| ModelError::Timeout {
                    stage: TimeoutStage::FirstToken,
                    limit: self.limits.first_token,
                })?;
            let resp = match sent_or_not {
                // The connection closed under the request with no reply (a kept-alive
                // connection the server had just closed): asked again, once, on a new one.
                Err(e) if !resent && !e.is_timeout() && !e.is_connect() => {
                    resent = true;
                    continue;
                }
                other => other.map_err(|e| self.send_error(url.as_str(), e))?,
            };
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Ok((resp, sent));
            }
            if resp.status().is_redirection() {
                return Err(redirected(url, &resp));
            }
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let text = read_some(resp, ERROR_BODY_BYTES, self.limits.idle).await;
            let error = classify(Failure {
                status,
                body: &text,
                model,
                key,
                retry_after,
            });
            // Only a server busy or failing is asked again, not one that named the fault.
            let transient = matches!(
                error,
                ModelError::Server { .. } | ModelError::RateLimited { .. }
            );
            if transient && retryable(status) && attempt < self.limits.retry.retries {
                if let Some(wait) = self.limits.retry.wait(attempt, retry_after, waited) {
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    attempt += 1;
                    continue;
                }
            }
            return Err(error);
        }
    }

    pub(crate) fn send_error(&self, url: &str, e: reqwest::Error) -> ModelError {
        let address = address_of(url);
        if e.is_timeout() {
            ModelError::Timeout {
                stage: TimeoutStage::Connect,
                limit: self.limits.connect,
            }
        } else if e.is_connect() {
            ModelError::Unreachable {
                address,
                reason: "the connection was refused or failed".into(),
            }
        } else {
            ModelError::Unreachable {
                address,
                reason: "the request could not be sent".into(),
            }
        }
    }
}

/// The error for a server that redirected the request to `url`: not followed (see [`Http::new`]).
fn redirected(url: &reqwest::Url, resp: &reqwest::Response) -> ModelError {
    let to = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|location| url.join(location).ok())
        .map(|to| format!(" to {}", address_of(to.as_str())))
        .unwrap_or_default();
    ModelError::Unreachable {
        address: address_of(url.as_str()),
        reason: format!(
            "it redirects the request (HTTP {}){to}, and a model request is not sent on with \
             its key: set the provider's address to where the server points",
            resp.status().as_u16()
        ),
    }
}

/// `url` parsed, or a plain error naming it invalid. A provider parses its fixed address once,
/// when it is made, not for every request.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url, ModelError> {
    reqwest::Url::parse(url).map_err(|e| ModelError::Unreachable {
        address: "an invalid address".into(),
        reason: format!("the server's address is not a valid URL ({e})"),
    })
}

/// The scheme, host and port of `url` (what an error may show of it).
pub(crate) fn address_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "an invalid address".into(),
    }
}

/// Up to `limit` bytes of a reply's body as text, whatever arrives within `time`.
async fn read_some(mut resp: reqwest::Response, limit: usize, time: Duration) -> String {
    let mut buf = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.extend_from_slice(&chunk);
            if buf.len() >= limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(time, read).await;
    buf.truncate(limit);
    String::from_utf8_lossy(&buf).into_owned()
}
