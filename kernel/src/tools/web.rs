//! `web.fetch`: one HTTP GET hop at a time, so the kernel can check every redirect target's host
//! against the grants before following it. Bodies and time are bounded.

use std::time::Duration;

use reqwest::Url;

use super::ToolError;

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

/// The HTTP client tools use: no automatic redirects (the kernel checks each one).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
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
        let quick = reqwest::Client::builder()
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
