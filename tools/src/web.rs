//! `web.fetch`: one HTTP GET hop at a time, so the kernel can check every redirect target's host
//! against the grants before following it. Bodies and time are bounded.

use std::sync::OnceLock;
use std::time::Duration;

use agentos_dbus_interfaces::Capability;
use reqwest::Url;
use serde_json::{json, Value};

use crate::tool::string_arg;
use crate::{ScopeCheck, Tool, ToolError, ToolOutput};

/// Largest body returned.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 5;
/// Time limit of one fetch, all hops included.
pub const TIME_LIMIT: Duration = Duration::from_secs(20);

/// A finished fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What one hop gave.
#[derive(Debug)]
pub enum Hop {
    Redirect(Url),
    Done(Fetched),
}

/// A client builder whose TLS works: rustls's crypto is ring, installed once for the process
/// (an error only says it already was). Every client in this crate starts here; a builder made
/// any other way panics on `build` when nothing installed the provider first.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[allow(clippy::disallowed_methods)] // the provider is installed on the line above
    reqwest::Client::builder()
}

/// The HTTP client tools use: no automatic redirects (the kernel checks each one).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(TIME_LIMIT)
        .user_agent(concat!("AgentOS/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Parse a URL an agent asked for; returns it and its host (the scope to check).
pub fn parse_url(s: &str) -> Result<(Url, String), ToolError> {
    if s.len() > 8192 {
        return Err(ToolError::Invalid(
            "the URL is longer than 8192 bytes".into(),
        ));
    }
    let url = Url::parse(s).map_err(|e| ToolError::Invalid(format!("{s:?} is not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ToolError::Invalid(format!(
            "only http and https URLs can be fetched, not {}:",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ToolError::Invalid(
            "URLs with credentials are refused".into(),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| ToolError::Invalid(format!("{s:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok((url, host))
}

/// Perform one GET; a redirect is returned, not followed.
pub async fn get_once(client: &reqwest::Client, url: Url) -> Result<Hop, ToolError> {
    let mut resp = client.get(url.clone()).send().await.map_err(|e| {
        if e.is_timeout() {
            ToolError::Timeout(format!("fetching {url} took too long"))
        } else {
            ToolError::Failed(format!("fetching {url} failed: {e}"))
        }
    })?;
    let status = resp.status();
    if status.is_redirection() {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ToolError::Failed(format!("{url} redirected without a Location")))?;
        let next = url
            .join(location)
            .map_err(|e| ToolError::Failed(format!("{url} redirected to a bad location: {e}")))?;
        return Ok(Hop::Redirect(next));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ToolError::Failed(format!(
            "{url} is larger than {MAX_BODY} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ToolError::Failed(format!("reading {url} failed: {e}")))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ToolError::Failed(format!(
                "{url} is larger than {MAX_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Hop::Done(Fetched {
        status: status.as_u16(),
        content_type,
        body,
    }))
}

/// `web.fetch`: one page by HTTP GET. The kernel checks the first host; every redirect's host is
/// checked before it is followed. The HTTP client is made on first use (an idle kernel holds
/// none).
#[derive(Debug, Default)]
pub struct FetchTool {
    client: OnceLock<reqwest::Client>,
}

impl FetchTool {
    fn client(&self) -> Result<&reqwest::Client, ToolError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let made = client().map_err(|e| ToolError::Failed(format!("no HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| made))
    }
}

#[async_trait::async_trait]
impl Tool for FetchTool {
    fn name(&self) -> &str {
        "web.fetch"
    }
    fn capability(&self) -> &'static Capability {
        Capability::lookup("web.fetch").expect("web.fetch is compiled into the vocabulary")
    }
    fn description(&self) -> &str {
        "Fetch a web page by HTTP GET; redirects are followed to hosts that are allowed too."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "An http or https URL"},
            },
            "required": ["url"],
            "additionalProperties": false,
        })
    }
    fn scope(&self, args: &Value) -> Result<String, ToolError> {
        let (_, host) = parse_url(string_arg(args, "url")?)?;
        self.capability()
            .normalize_scope(&host)
            .map_err(ToolError::Invalid)
    }
    async fn run(
        &self,
        args: Value,
        _scope: String,
        check: &dyn ScopeCheck,
    ) -> Result<ToolOutput, ToolError> {
        let client = self.client()?;
        let (mut url, _) = parse_url(string_arg(&args, "url")?)?;
        let deadline = tokio::time::Instant::now() + TIME_LIMIT;
        for hop in 0..=MAX_REDIRECTS {
            if hop > 0 {
                let (_, host) = parse_url(url.as_str())?;
                check.allow(&host).await.map_err(ToolError::Kernel)?;
            }
            let got = tokio::time::timeout_at(deadline, get_once(client, url.clone()))
                .await
                .map_err(|_| {
                    ToolError::Timeout(format!(
                        "fetching {url} took longer than {} s",
                        TIME_LIMIT.as_secs()
                    ))
                })??;
            match got {
                Hop::Done(f) => {
                    return Ok(ToolOutput {
                        value: json!({
                            "url": url.as_str(),
                            "status": f.status,
                            "content_type": f.content_type,
                            "length": f.body.len(),
                        }),
                        data: f.body,
                        fds: Vec::new(),
                    })
                }
                Hop::Redirect(next) => url = next,
            }
        }
        Err(ToolError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A local HTTP server answering one request with `head` and then `body_len` bytes (slowly,
    /// after `delay`); returns its URL.
    async fn server(head: String, body_len: usize, delay: Duration) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/page", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            tokio::time::sleep(delay).await;
            let _ = s.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(chunk.len());
                if s.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        url
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_declared_or_not() {
        let big = MAX_BODY + 1;
        let declared = format!("HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n");
        let url = server(declared, big, Duration::ZERO).await;
        let err = get_once(&client().unwrap(), url).await.unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        // No length given: the limit is enforced while reading.
        let streamed = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string();
        let url = server(streamed, big, Duration::ZERO).await;
        let err = get_once(&client().unwrap(), url).await.unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[tokio::test]
    async fn a_redirect_is_returned_not_followed() {
        let head = "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/x\r\nContent-Length: 0\r\n\r\n";
        let url = server(head.to_string(), 0, Duration::ZERO).await;
        match get_once(&client().unwrap(), url).await.unwrap() {
            Hop::Redirect(next) => assert_eq!(next.as_str(), "http://elsewhere.example/x"),
            Hop::Done(f) => panic!("followed: {f:?}"),
        }
    }

    #[tokio::test]
    async fn a_server_that_takes_too_long_is_a_timeout() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n".to_string();
        let url = server(head, 1, Duration::from_secs(5)).await;
        let quick = client_builder()
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let err = get_once(&quick, url).await.unwrap_err();
        assert!(matches!(err, ToolError::Timeout(_)), "{err}");
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(parse_url("https://Example.com/x").unwrap().1, "example.com");
        assert_eq!(parse_url("http://127.0.0.1:8080/").unwrap().1, "127.0.0.1");
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("https://user:pw@example.com/").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
