//! The real small model for the sidekick's test: `llama-server` serving Qwen2.5-Coder-0.5B as
//! `scripts/local-llm` sets it up (under `$AGENTOS_LOCAL_LLM_DIR`, else
//! `${XDG_CACHE_HOME:-~/.cache}/agentos-local-llm`), with the repository's chat template that
//! turns the model's fenced JSON into OpenAI tool calls, started on a free port for one test and
//! killed with it. Without the model a test prints why and skips, unless
//! `AGENTOS_REQUIRE_LOCAL_LLM` is set (not "0"): then it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const MODEL_ALIAS: &str = "qwen2.5-coder-0.5b";

/// A running `llama-server`, killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("AGENTOS_LOCAL_LLM_DIR").filter(|d| !d.is_empty()) {
        return Some(d.into());
    }
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(cache.join("agentos-local-llm"))
}

fn skip(reason: &str) -> Option<Server> {
    let required = std::env::var("AGENTOS_REQUIRE_LOCAL_LLM")
        .is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
    if required {
        panic!("AGENTOS_REQUIRE_LOCAL_LLM is set but {reason}");
    }
    eprintln!("skipped: {reason}; run scripts/local-llm to set the model up");
    None
}

/// The model's server, healthy, or `None` after saying why the test skips.
pub async fn start_or_skip() -> Option<Server> {
    let Some(dir) = dir() else {
        return skip("neither AGENTOS_LOCAL_LLM_DIR nor HOME is set");
    };
    let server = dir.join("bin/llama-server");
    let model = dir.join("models").join(MODEL_FILE);
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/qwen25-fenced.jinja");
    if !server.is_file() || !model.is_file() {
        return skip(&format!("no real model in {}", dir.display()));
    }
    if !template.is_file() {
        return skip(&format!("no chat template at {}", template.display()));
    }
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&server)
        .arg("-m")
        .arg(&model)
        .arg("--chat-template-file")
        .arg(&template)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "-c",
            "4096",
            "-np",
            "1",
            "-t",
            "2",
            "-a",
            MODEL_ALIAS,
            "--no-webui",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", server.display()));
    let mut server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(reply) = get(port, "/health").await {
            if reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200") {
                return Some(server);
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("llama-server exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "llama-server not healthy in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A GET to 127.0.0.1:port, the whole reply (HTTP/1.0: the server closes after it).
async fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
