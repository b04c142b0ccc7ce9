//! `agentctl models` (no subcommand): the models the kernel's broker can serve now
//! (`Models1.ListModels`) and the providers whose keys are stored in the Secret Service (never the
//! keys). Either half is shown when the other cannot be had; the command fails only when both fail.

use agentos_client::{ChatError, Client};
use agentos_dbus_interfaces::ModelInfo;
use agentos_portal::secrets::StoredKey;
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::keyring::open_store;
use crate::output::{self, Table};

/// Said under the models when some are remote.
const REMOTE_NOTE: &str = "(a remote model sees what is sent to it: each agent or app needs your \
     model.remote grant on its provider, asked when first used, or given ahead with \
     `agentctl grant <agent> model.remote <provider>`)\n";

#[derive(Serialize)]
struct KeyRow<'a> {
    provider: &'a str,
    account: &'a str,
    label: &'a str,
    base_url: Option<&'a str>,
}

#[derive(Serialize)]
struct Listing<'a> {
    models: &'a [ModelInfo],
    /// Why no models could be listed (the kernel is not running…).
    #[serde(skip_serializing_if = "Option::is_none")]
    models_unavailable: Option<String>,
    keys: Vec<KeyRow<'a>>,
    /// Why no keys could be listed (no Secret Service, a locked keyring…).
    #[serde(skip_serializing_if = "Option::is_none")]
    keys_unavailable: Option<String>,
    /// The kernel's model settings file, when it could not use it, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    settings_ignored: Option<Ignored>,
}

/// A settings file the kernel could not use.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
struct Ignored {
    file: String,
    why: String,
}

impl Ignored {
    /// What `agentctl models` says of it, first (why, indented under it: a parser's message
    /// may take several lines).
    fn lines(&self) -> String {
        let mut text = format!(
            "settings: agentosd ignored {} and uses its defaults; correct the file, then restart \
             agentosd:\n",
            self.file
        );
        for line in self.why.trim_end().lines() {
            text.push_str(&format!("  {line}\n"));
        }
        text.push('\n');
        text
    }
}

/// `agentctl models [--json]`.
pub async fn list(address: Option<&str>, json: bool) -> Result<u8> {
    let (models, ignored) = match models(address).await {
        Ok((models, ignored)) => (Ok(models), ignored),
        Err(e) => (Err(e), None),
    };
    let keys = match open_store(address).await {
        Ok(store) => store.list().await.map_err(CliError::from),
        Err(e) => Err(e),
    };
    let (mut models, models_error) = split(models);
    let (keys, keys_error) = split(keys);
    sort(&mut models);
    if json {
        output::json(&Listing {
            models: &models,
            models_unavailable: models_error.as_ref().map(ToString::to_string),
            keys: keys.iter().map(key_row).collect(),
            keys_unavailable: keys_error.as_ref().map(ToString::to_string),
            settings_ignored: ignored,
        })?;
    } else {
        let mut text = ignored.map(|i| i.lines()).unwrap_or_default();
        match &models_error {
            Some(e) => text.push_str(&format!(
                "models: none listed, the model broker runs in agentosd: {e}\n"
            )),
            None if models.is_empty() => text.push_str(
                "models: none found (start Ollama or llama-server on this machine, or add a \
                 provider's key with `agentctl models add <provider>`)\n",
            ),
            None => {
                text.push_str("Models the broker knows of:\n");
                text.push_str(&models_table(&models));
                if models.iter().any(|m| !m.local) {
                    text.push_str(REMOTE_NOTE);
                }
            }
        }
        text.push('\n');
        match &keys_error {
            Some(e) => text.push_str(&format!("keys: cannot list the stored keys: {e}\n")),
            None if keys.is_empty() => text.push_str(
                "keys: no provider keys stored (add one with `agentctl models add <provider>`)\n",
            ),
            None => {
                text.push_str("Keys in the Secret Service:\n");
                text.push_str(&keys_table(&keys));
            }
        }
        output::emit(&text)?;
    }
    match (models_error, keys_error) {
        (Some(m), Some(k)) => Err(CliError::new(format!("{k}; {m}"))),
        _ => Ok(0),
    }
}

/// The broker's models, through the verified kernel on the bus at `address`, and its settings
/// file if it could not use it.
async fn models(address: Option<&str>) -> Result<(Vec<ModelInfo>, Option<Ignored>)> {
    let client = match address {
        Some(address) => Client::at_address(address).await,
        None => Client::new().await,
    }
    .map_err(CliError::from)?;
    let models = client.list_models().await.map_err(|e| match e {
        ChatError::Client(e) => CliError::from(e),
        other => CliError::new(other.to_string()),
    })?;
    // A kernel that cannot say (an older one) is taken as having used its file.
    let settings = match client.models().await {
        Ok(proxy) => proxy.settings().await.ok(),
        Err(_) => None,
    };
    let ignored = settings
        .filter(|(_, why)| !why.is_empty())
        .map(|(file, why)| Ignored { file, why });
    Ok((models, ignored))
}

fn split<T>(result: Result<Vec<T>>) -> (Vec<T>, Option<CliError>) {
    match result {
        Ok(list) => (list, None),
        Err(e) => (Vec::new(), Some(e)),
    }
}

/// Local models first (the default policy prefers them), then by provider and model.
fn sort(models: &mut [ModelInfo]) {
    models
        .sort_by(|a, b| (!a.local, &a.provider, &a.model).cmp(&(!b.local, &b.provider, &b.model)));
}

/// The REACHABLE column: a local server is asked each time the catalog is looked at; a remote
/// provider is not (a request costs), and is taken as reachable until a request finds otherwise.
fn reachable(m: &ModelInfo) -> &'static str {
    match (m.reachable, m.local) {
        (false, _) => "no",
        (true, true) => "yes",
        (true, false) => "not known",
    }
}

fn models_table(models: &[ModelInfo]) -> String {
    let mut table = Table::new(&[
        "PROVIDER",
        "MODEL",
        "WHERE",
        "REACHABLE",
        "CONTEXT",
        "SLOTS",
    ]);
    for m in models {
        table.row(vec![
            m.provider.clone(),
            m.model.clone(),
            if m.local { "local" } else { "remote" }.to_string(),
            reachable(m).to_string(),
            if m.context == 0 {
                "?".to_string()
            } else {
                format!("{} tokens", m.context)
            },
            m.slots.to_string(),
        ]);
    }
    table.render()
}

fn key_row(k: &StoredKey) -> KeyRow<'_> {
    KeyRow {
        provider: &k.provider,
        account: &k.account,
        label: &k.label,
        base_url: k.base_url.as_deref(),
    }
}

fn keys_table(keys: &[StoredKey]) -> String {
    let mut table = Table::new(&["PROVIDER", "ACCOUNT", "BASE URL", "LABEL"]);
    for key in keys {
        table.row(vec![
            key.provider.clone(),
            key.account.clone(),
            key.base_url.clone().unwrap_or_else(|| "-".to_string()),
            key.label.clone(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(provider: &str, name: &str, local: bool) -> ModelInfo {
        ModelInfo {
            provider: provider.into(),
            model: name.into(),
            local,
            reachable: local,
            context: if local { 4096 } else { 0 },
            slots: 1,
        }
    }

    #[test]
    fn local_models_come_first_and_unknowns_show_as_such() {
        let mut models = vec![
            model("openai", "gpt-4o-mini", false),
            model("ollama", "qwen2.5:0.5b", true),
            model("anthropic", "claude-x", false),
            model("llama-server", "qwen", true),
        ];
        sort(&mut models);
        let order: Vec<&str> = models.iter().map(|m| m.provider.as_str()).collect();
        assert_eq!(order, ["llama-server", "ollama", "anthropic", "openai"]);
        let table = models_table(&models);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("PROVIDER"), "{table}");
        assert!(
            lines[1].contains("local") && lines[1].contains("4096 tokens"),
            "{table}"
        );
        assert!(
            lines[3].contains("remote") && lines[3].contains(" no ") && lines[3].contains('?'),
            "{table}"
        );
        // A remote provider not found unreachable is not said to be reachable: it is not asked.
        let mut untried = model("openai", "gpt-4o-mini", false);
        untried.reachable = true;
        assert!(models_table(&[untried]).contains("not known"));
    }
}
