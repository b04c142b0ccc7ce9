//! A real small model for the agents' tests: the workspace's harness (`agentos_tests::local_llm`:
//! `llama-server` serving Qwen2.5-Coder-0.5B as `scripts/local-llm` sets it up, started on a free
//! port for one test and killed with it; without the model the test says why and skips, unless
//! `AGENTOS_REQUIRE_LOCAL_LLM` is set), and one chat completion over its OpenAI-compatible API.

use agentos_sdk::ChatRequest;
pub use agentos_tests::local_llm::{LocalServer as Server, MODEL_ALIAS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The model's server, healthy, or `None` after saying why the test skips.
pub async fn start_or_skip() -> Option<Server> {
    let llm = agentos_tests::local_llm::or_skip()?;
    let options = agentos_tests::local_llm::Options::default();
    Some(llm.start(&options).await.expect("llama-server"))
}

/// One request to 127.0.0.1:port, the whole reply (HTTP/1.0: the server closes after it).
async fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The model's answer to `request` (its messages, temperature and answer length), or why not.
pub async fn chat(port: u16, request: &ChatRequest) -> Result<String, String> {
    let body = serde_json::json!({
        "model": MODEL_ALIAS,
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    })
    .to_string();
    let reply = http(
        port,
        &format!(
            "POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
    .map_err(|e| e.to_string())?;
    let (_, json) = reply.split_once("\r\n\r\n").ok_or("not an HTTP response")?;
    let json: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))?;
    json["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no answer in {json}"))
}
