//! The catalog as it is now: local servers found by asking them (Ollama's `/api/tags`,
//! llama-server's `/props`, each within a short time limit) and remote providers whose keys
//! the user stored in the Secret Service (`agentctl models add`). Keys go from the keyring into
//! the provider's client and nowhere else.

use agentos_models::discovery::{probe_llama_server, probe_ollama, probe_openai_models};
use agentos_models::{Anthropic, ApiKey, Gemini, Http, OpenAi, Provider};
use agentos_portal::secrets;

use super::catalog::{Catalog, Entry, Model};
use super::listener::Listener;
use super::settings::Settings;
use super::stored_keys::StoredModelKey;

/// Requests run at once on a remote provider unless the settings say otherwise.
pub const REMOTE_SLOTS: u32 = 4;

/// A remote provider's address, default model and its context window.
struct Remote {
    base_url: &'static str,
    model: &'static str,
    context: u32,
}

fn remote_defaults(provider: secrets::Provider) -> Remote {
    match provider {
        secrets::Provider::Anthropic => Remote {
            base_url: "https://api.anthropic.com",
            model: "claude-3-5-haiku-latest",
            context: 200_000,
        },
        secrets::Provider::Gemini => Remote {
            base_url: "https://generativelanguage.googleapis.com",
            model: "gemini-2.0-flash",
            context: 1_048_576,
        },
        // An OpenAI-compatible server's models are its own: those it lists, else it is asked
        // for the one named, or for "default" (which servers of a single model accept).
        secrets::Provider::OpenAiCompatible => Remote {
            base_url: "",
            model: "default",
            context: 0,
        },
        _ => Remote {
            base_url: "https://api.openai.com/v1",
            model: "gpt-4o-mini",
            context: 128_000,
        },
    }
}

/// The model name a llama-server's model file gives (`…/qwen2.5-0.5b-q4_k_m.gguf` →
/// `qwen2.5-0.5b-q4_k_m`).
fn model_of_path(path: Option<&str>) -> String {
    path.and_then(|p| p.rsplit('/').next())
        .map(|f| f.strip_suffix(".gguf").unwrap_or(f))
        .filter(|f| !f.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// Probe the local servers the settings name, at once.
async fn local(http: &Http, settings: &Settings) -> Vec<Entry> {
    let limit = settings.probe_limit;
    let ollama = async {
        match &settings.ollama {
            Some(url) => Some(probe_ollama(http, url, limit).await),
            None => None,
        }
    };
    let llama = async {
        match &settings.llama_server {
            Some(url) => Some(probe_llama_server(http, url, limit).await),
            None => None,
        }
    };
    let (ollama, llama) = tokio::join!(ollama, llama);
    // A server that answered is used only if the user's own process (or root's) listens there.
    let llama = match (llama, &settings.llama_server) {
        (Some(Ok(_)), Some(url)) if !owned_by_user("llama-server", url, settings).await => None,
        (probe, _) => probe,
    };
    let ollama = match (ollama, &settings.ollama) {
        (Some(Ok(_)), Some(url)) if !owned_by_user("ollama", url, settings).await => None,
        (probe, _) => probe,
    };
    for (name, probe) in [
        ("ollama", ollama.as_ref().map(|r| r.as_ref().err())),
        ("llama-server", llama.as_ref().map(|r| r.as_ref().err())),
    ] {
        if let Some(Some(e)) = probe {
            tracing::debug!(server = name, error = %e, "no local model server answered");
        }
    }
    let mut found = Vec::new();
    if let Some(Ok(server)) = llama {
        let slots = settings
            .slots
            .get("llama-server")
            .copied()
            .or(server.slots)
            .unwrap_or(1)
            .max(1);
        let context = server
            .context_size
            .map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX));
        found.push(Entry {
            name: "llama-server".into(),
            local: true,
            reachable: true,
            slots,
            models: vec![Model {
                name: model_of_path(server.model_path.as_deref()),
                context,
            }],
            open: true,
            client: Some(Provider::OpenAi(OpenAi::new(
                http.clone(),
                server.openai_base_url(),
                None,
            ))),
            gemini: false,
        });
    }
    if let Some(Ok(server)) = ollama {
        if !server.models.is_empty() {
            found.push(Entry {
                name: "ollama".into(),
                local: true,
                reachable: true,
                // Ollama does not say how many requests it serves at once (OLLAMA_NUM_PARALLEL).
                slots: settings.slots.get("ollama").copied().unwrap_or(1),
                models: server
                    .models
                    .iter()
                    .map(|m| Model {
                        name: m.clone(),
                        context: 0,
                    })
                    .collect(),
                open: false,
                client: Some(Provider::OpenAi(OpenAi::new(
                    http.clone(),
                    server.openai_base_url(),
                    None,
                ))),
                gemini: false,
            });
        }
    }
    found
}

/// Whether the local server `name` that answered at `url` may be trusted with prompts: one on
/// a loopback port must be held by the user's own process (or root's, or a system account's),
/// not a sandboxed app's (unless it is one of the settings' `trusted_apps`) or another user's
/// (see [`super::listener`]); one at another address the user named is theirs to vouch for.
async fn owned_by_user(name: &'static str, url: &str, settings: &Settings) -> bool {
    let Some(port) = agentos_models::discovery::loopback_port(url) else {
        return true;
    };
    let user = rustix::process::getuid().as_raw();
    let found = tokio::task::spawn_blocking(move || {
        // Read once: the uids of system accounts do not change while the kernel runs.
        static FIRST_USER: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let first_user = *FIRST_USER.get_or_init(|| {
            let login_defs = std::fs::read_to_string("/etc/login.defs").unwrap_or_default();
            super::listener::first_user_uid(&login_defs)
        });
        super::listener::on_port(std::path::Path::new("/proc"), port, user, first_user)
    })
    .await;
    let refusal = match found {
        Ok(Listener::Sandboxed { app }) if settings.trusted_apps.contains(&app) => None,
        Ok(listener) => listener.refusal(),
        Err(_) => Some("it could not be looked at".into()),
    };
    match refusal {
        None => true,
        Some(why) => {
            tracing::warn!(
                server = name,
                port,
                why,
                "a server answers where a local model server is looked for, but it is not used"
            );
            false
        }
    }
}

/// The remote providers of the keys the user stored.
async fn remote(http: &Http, settings: &Settings, keys: &[StoredModelKey]) -> Vec<Entry> {
    let mut found = Vec::new();
    for stored in keys {
        let (provider, key) = (stored.provider, stored.key.clone());
        let defaults = remote_defaults(provider);
        let base_url = stored
            .base_url
            .clone()
            .unwrap_or_else(|| defaults.base_url.to_string());
        if base_url.is_empty() {
            continue;
        }
        let models = match provider {
            secrets::Provider::OpenAiCompatible => served_models(http, &base_url, &key).await,
            _ => Vec::new(),
        };
        let models = if models.is_empty() {
            vec![Model {
                name: defaults.model.to_string(),
                context: defaults.context,
            }]
        } else {
            models
        };
        let client = match provider {
            secrets::Provider::Anthropic => {
                Provider::Anthropic(Anthropic::new(http.clone(), base_url, key))
            }
            secrets::Provider::Gemini => Provider::Gemini(Gemini::new(http.clone(), base_url, key)),
            _ => Provider::OpenAi(OpenAi::new(http.clone(), base_url, Some(key))),
        };
        let name = super::catalog::remote_name(provider.as_str(), &stored.account);
        found.push(Entry {
            slots: settings.slots.get(&name).copied().unwrap_or(REMOTE_SLOTS),
            name,
            local: false,
            // Not probed (a request costs): taken as reachable until a request finds otherwise.
            reachable: true,
            models,
            open: true,
            client: Some(client),
            gemini: provider == secrets::Provider::Gemini,
        });
    }
    found
}

/// How long an OpenAI-compatible server the user added (perhaps across the network, over TLS)
/// may take to list its models.
const LIST_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The models an OpenAI-compatible server the user added serves (vLLM, for one, answers only
/// to their names), asked within [`LIST_LIMIT`]; none when it does not say.
async fn served_models(http: &Http, base_url: &str, key: &ApiKey) -> Vec<Model> {
    match probe_openai_models(http, base_url, Some(key), LIST_LIMIT).await {
        Ok(served) => served
            .into_iter()
            .map(|m| Model {
                name: m.id,
                context: m
                    .context
                    .map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)),
            })
            .collect(),
        Err(e) => {
            tracing::debug!(base_url, error = %e, "an OpenAI-compatible server did not list its models");
            Vec::new()
        }
    }
}

/// The catalog now: local servers first, then the remote providers of the user's keys (`keys`,
/// as they are read meanwhile, `Err` saying why they could not be); and the keys' read.
pub async fn load(
    http: &Http,
    settings: &Settings,
    keys: impl std::future::Future<Output = Result<Vec<StoredModelKey>, String>>,
) -> (Catalog, Result<Vec<StoredModelKey>, String>) {
    let remote = async {
        let keys = keys.await;
        let found = match &keys {
            Ok(stored) => remote(http, settings, stored).await,
            Err(e) => {
                tracing::debug!(error = %e, "no remote model providers: the keyring cannot be read");
                Vec::new()
            }
        };
        (found, keys)
    };
    let (mut providers, (remote, keys)) = tokio::join!(local(http, settings), remote);
    providers.extend(remote);
    (Catalog { providers }, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_llama_servers_model_is_named_by_its_file() {
        assert_eq!(
            model_of_path(Some("/m/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")),
            "qwen2.5-coder-0.5b-instruct-q4_k_m"
        );
        assert_eq!(model_of_path(Some("model.bin")), "model.bin");
        assert_eq!(model_of_path(Some("/m/")), "default");
        assert_eq!(model_of_path(None), "default");
    }
}
