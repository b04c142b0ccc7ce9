//! Local model servers found by asking them: Ollama (`/api/tags` lists its models) and
//! llama.cpp's `llama-server` (`/props` gives its context size and slots), each with a short
//! time limit. The kernel calls [`discover`]; addresses are given, so tests can point anywhere.
//! An OpenAI-compatible server the user added (vLLM, LM Studio, …) is asked for its models
//! (`/models`, which costs no tokens), with its key.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{ModelError, TimeoutStage};
use crate::stream::parse;
use crate::transport::Http;

/// Where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddresses {
    pub ollama: String,
    pub llama_server: String,
    /// How long each probe may take.
    pub time_limit: Duration,
}

impl Default for LocalAddresses {
    fn default() -> Self {
        LocalAddresses {
            ollama: "http://127.0.0.1:11434".into(),
            llama_server: "http://127.0.0.1:8080".into(),
            time_limit: Duration::from_millis(800),
        }
    }
}

/// An Ollama server and the models it has pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaServer {
    pub base_url: String,
    pub models: Vec<String>,
}

impl OllamaServer {
    /// Its OpenAI-compatible API, for [`crate::OpenAi`].
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url)
    }
}

/// A `llama-server` and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlamaServer {
    pub base_url: String,
    /// Tokens of context each slot has.
    pub context_size: Option<u64>,
    /// Requests it serves at once.
    pub slots: Option<u32>,
    /// The model file it loaded.
    pub model_path: Option<String>,
}

impl LlamaServer {
    /// Its OpenAI-compatible API, for [`crate::OpenAi`].
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url)
    }
}

/// What answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalServers {
    pub ollama: Option<OllamaServer>,
    pub llama_server: Option<LlamaServer>,
}

/// The port of `url` if it names this machine's loopback interface (`127.0.0.0/8`, `::1`,
/// `localhost`): where any local process may listen.
pub fn loopback_port(url: &str) -> Option<u16> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| url.port_or_known_default()).flatten()
}

/// Probe both servers at once; one that does not answer in time is taken as absent.
pub async fn discover(http: &Http, at: &LocalAddresses) -> LocalServers {
    let (ollama, llama) = tokio::join!(
        probe_ollama(http, &at.ollama, at.time_limit),
        probe_llama_server(http, &at.llama_server, at.time_limit)
    );
    LocalServers {
        ollama: ollama.ok(),
        llama_server: llama.ok(),
    }
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    models: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
}

/// Ask an Ollama server at `base_url` for its models.
pub async fn probe_ollama(
    http: &Http,
    base_url: &str,
    time: Duration,
) -> Result<OllamaServer, ModelError> {
    let base_url = base_url.trim_end_matches('/');
    let text = get(http, &format!("{base_url}/api/tags"), time).await?;
    let tags: Tags = parse(&text)?;
    Ok(OllamaServer {
        base_url: base_url.to_owned(),
        models: tags.models.into_iter().map(|t| t.name).collect(),
    })
}

#[derive(Deserialize)]
struct Props {
    default_generation_settings: Option<Settings>,
    total_slots: Option<u32>,
    model_path: Option<String>,
}

#[derive(Deserialize)]
struct Settings {
    n_ctx: Option<u64>,
}

/// Ask a `llama-server` at `base_url` for its context size and slots.
pub async fn probe_llama_server(
    http: &Http,
    base_url: &str,
    time: Duration,
) -> Result<LlamaServer, ModelError> {
    let base_url = base_url.trim_end_matches('/');
    let text = get(http, &format!("{base_url}/props"), time).await?;
    let props: Props = parse(&text)?;
    Ok(LlamaServer {
        base_url: base_url.to_owned(),
        context_size: props.default_generation_settings.and_then(|s| s.n_ctx),
        slots: props.total_slots,
        model_path: props.model_path,
    })
}

#[derive(Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ListedModel>,
}

#[derive(Deserialize)]
struct ListedModel {
    id: String,
    /// vLLM's context window.
    max_model_len: Option<u64>,
}

/// A model an OpenAI-compatible server lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedModel {
    pub id: String,
    /// Its context window in tokens, where the server says (vLLM's `max_model_len`).
    pub context: Option<u64>,
}

/// Ask an OpenAI-compatible server at `base_url` (its API's root, such as
/// `http://host:8000/v1`) for the models it serves, with `key` if it has one.
pub async fn probe_openai_models(
    http: &Http,
    base_url: &str,
    key: Option<&crate::ApiKey>,
    time: Duration,
) -> Result<Vec<ServedModel>, ModelError> {
    let base_url = base_url.trim_end_matches('/');
    let auth = key.map(|k| format!("Bearer {}", k.expose()));
    let text = get_with(http, &format!("{base_url}/models"), auth.as_deref(), time).await?;
    let list: ModelList = parse(&text)?;
    Ok(list
        .data
        .into_iter()
        .filter(|m| !m.id.trim().is_empty())
        .map(|m| ServedModel {
            id: m.id,
            context: m.max_model_len,
        })
        .collect())
}

/// At most this much of a probe's reply is read.
const PROBE_BYTES: usize = 1024 * 1024;

/// GET `url` within `time`, its body as text.
async fn get(http: &Http, url: &str, time: Duration) -> Result<String, ModelError> {
    get_with(http, url, None, time).await
}

/// GET `url` within `time`, with `authorization` if given; its body as text.
async fn get_with(
    http: &Http,
    url: &str,
    authorization: Option<&str>,
    time: Duration,
) -> Result<String, ModelError> {
    let fetch = async {
        let mut request = http.client.get(url);
        if let Some(auth) = authorization {
            request = request.header("authorization", auth);
        }
        let mut resp = request.send().await.map_err(|e| http.send_error(url, e))?;
        if matches!(resp.status().as_u16(), 401 | 403) {
            return Err(ModelError::WrongKey {
                status: resp.status().as_u16(),
            });
        }
        if !resp.status().is_success() {
            return Err(ModelError::Server {
                status: resp.status().as_u16(),
                excerpt: "the server is not the one looked for".into(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| ModelError::Protocol {
            detail: "the connection broke in the middle of the reply".into(),
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > PROBE_BYTES {
                return Err(ModelError::Protocol {
                    detail: "the reply is too large".into(),
                });
            }
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(time, fetch)
        .await
        .map_err(|_| ModelError::Timeout {
            stage: TimeoutStage::FirstToken,
            limit: time,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_give_their_port() {
        assert_eq!(loopback_port("http://127.0.0.1:8080"), Some(8080));
        assert_eq!(loopback_port("http://127.1.2.3:9/v1"), Some(9));
        assert_eq!(loopback_port("http://[::1]:11434"), Some(11434));
        assert_eq!(loopback_port("http://LOCALHOST"), Some(80));
        assert_eq!(loopback_port("http://192.168.1.5:8080"), None);
        assert_eq!(loopback_port("http://example.org:8080"), None);
        assert_eq!(loopback_port("not a url"), None);
    }
}
