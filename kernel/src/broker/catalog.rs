//! What the broker can serve now: the providers (local servers found, remote ones with a stored
//! key), their models, and which one serves a request (`route`). Pure: the catalog is built
//! elsewhere (`providers.rs`) and routing only reads it.
//!
//! Routing prefers local models: without a model named, or with the class `local`, the first
//! reachable local model serves; `local-small` takes the local model with the fewest parameters
//! (read from its name, like `0.5b`); `remote` the first remote provider's model. Only when no
//! local model is there does a request without a model go to a remote provider (which then needs
//! `model.remote`). `provider/model` names both; a bare model name is looked up everywhere,
//! local providers first.

use agentos_dbus_interfaces::inference::class;
use agentos_dbus_interfaces::ModelInfo;

/// How to add a model, said whenever there is none.
pub const HOW_TO_ADD: &str = "start a local model server (Ollama: `ollama serve`, then `ollama \
     pull qwen2.5:0.5b`; or llama.cpp's `llama-server -m <model.gguf> --port 8080`), or store a \
     provider's API key with `agentctl models add openai` (or anthropic, gemini)";

/// One model of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    /// Tokens of context, 0 when unknown.
    pub context: u32,
}

/// One provider the broker can send requests to.
#[derive(Debug, Clone)]
pub struct Entry {
    /// As the scheduler, `model.remote` and callers name it (`ollama`, `llama-server`,
    /// `openai`, `anthropic:work`, …).
    pub name: String,
    /// Served on this machine.
    pub local: bool,
    /// It answered when last asked.
    pub reachable: bool,
    /// Requests run on it at once.
    pub slots: u32,
    /// Its models; the first is its default.
    pub models: Vec<Model>,
    /// It serves model names it did not list (a remote API, or llama-server's one model).
    pub open: bool,
    /// How to reach it (`None` only in tests of routing).
    pub client: Option<agentos_models::Provider>,
    /// Gemini makes up tool-call ids, which the broker then makes unique.
    pub gemini: bool,
}

/// The catalog's name of a remote provider's key: its kind alone for the default account,
/// `kind:account` for another.
pub fn remote_name(kind: &str, account: &str) -> String {
    if account == agentos_portal::secrets::DEFAULT_ACCOUNT {
        kind.to_string()
    } else {
        format!("{kind}:{account}")
    }
}

/// A provider's name as the catalog gives it, read back: its kind, and its account if it names
/// one (`anthropic:work`).
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((kind, account)) => (kind, Some(account)),
        None => (name, None),
    }
}

/// Which provider and model serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub provider: String,
    pub model: String,
    pub local: bool,
    pub context: u32,
}

/// Why no provider serves a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no AI model is available: {HOW_TO_ADD}")]
    NoModel,
    #[error("no local AI model is available: {HOW_TO_ADD}")]
    NoLocalModel,
    #[error("no remote model provider is set up: store a provider's API key with `agentctl models add openai` (or anthropic, gemini)")]
    NoRemoteModel,
    #[error("no provider offers the model {0:?}; `agentctl models` lists those there are")]
    UnknownModel(String),
    #[error("there is no model provider {0:?}; `agentctl models` lists those there are")]
    UnknownProvider(String),
    /// The local server that offers the model is listed as unreachable (it stopped answering,
    /// or what listens on its port now is not the user's): no prompt goes there.
    #[error("the local model server {0} is not available now; `agentctl models` lists what is")]
    LocalUnreachable(String),
}

/// What is known of the local servers the settings look for (`ollama` and `llama_server`: their
/// addresses, `None` when off), for a request no model serves: a server that answered before
/// and does not now, or looking for them turned off. `None` when there is nothing to add.
pub fn local_servers_said(
    catalog: &Catalog,
    ollama: Option<&str>,
    llama_server: Option<&str>,
) -> Option<String> {
    if ollama.is_none() && llama_server.is_none() {
        return Some(
            "looking for local model servers is turned off in models.toml ([local])".into(),
        );
    }
    let silent: Vec<String> = [("ollama", ollama), ("llama-server", llama_server)]
        .into_iter()
        .filter_map(|(name, url)| {
            let (entry, url) = (catalog.get(name)?, url?);
            (!entry.reachable).then(|| format!("{name} at {url} does not answer"))
        })
        .collect();
    (!silent.is_empty()).then(|| silent.join("; "))
}

/// Whether a request for `wanted` leaves the remote provider to the kernel: it names none, or
/// asks for the `remote` class.
pub fn any_remote_will_do(wanted: Option<&str>) -> bool {
    matches!(
        wanted.map(str::trim).filter(|w| !w.is_empty()),
        None | Some(class::REMOTE)
    )
}

impl RouteError {
    /// Whether a keyring that could not be read may be why: no remote provider at all, or a
    /// remote provider named (`anthropic/…`, `openai:work/…`) that the catalog lacks.
    pub fn may_be_unread_keys(&self) -> bool {
        match self {
            RouteError::NoModel | RouteError::NoRemoteModel => true,
            RouteError::UnknownProvider(p) => {
                agentos_portal::secrets::Provider::parse(split_name(p).0).is_ok()
            }
            RouteError::NoLocalModel
            | RouteError::UnknownModel(_)
            | RouteError::LocalUnreachable(_) => false,
        }
    }
}

/// The providers known now, local ones first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub providers: Vec<Entry>,
}

/// The parameters a model's name gives (`qwen2.5-coder-0.5b` → 0.5 billion), for
/// `local-small`; names without a figure come after those with one.
fn parameters(name: &str) -> f64 {
    let lower = name.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut best = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'b' || i == 0 || !bytes[i - 1].is_ascii_digit() {
            continue;
        }
        // The figure ends right before the `b`, and no letter follows it.
        if bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) {
            continue;
        }
        let start = lower[..i]
            .char_indices()
            .rfind(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map_or(0, |(p, c)| p + c.len_utf8());
        if let Ok(n) = lower[start..i].parse::<f64>() {
            best = Some(n);
        }
    }
    best.unwrap_or(f64::MAX)
}

impl Catalog {
    pub fn get(&self, provider: &str) -> Option<&Entry> {
        self.providers.iter().find(|p| p.name == provider)
    }

    /// Whether any provider is known at all.
    pub fn is_empty(&self) -> bool {
        self.providers.iter().all(|p| p.models.is_empty())
    }

    fn route_to(p: &Entry, m: &Model) -> Route {
        Route {
            provider: p.name.clone(),
            model: m.name.clone(),
            local: p.local,
            context: m.context,
        }
    }

    /// The first model of the first reachable local server.
    fn first_local(&self) -> Option<Route> {
        self.providers
            .iter()
            .filter(|p| p.local && p.reachable)
            .find_map(|p| p.models.first().map(|m| Catalog::route_to(p, m)))
    }

    /// Each remote provider's first model, reachable ones first, then those their last request
    /// did not reach (remote providers are not probed, so a request is how one is found
    /// answering again): what a request that any remote provider will do for (see
    /// [`any_remote_will_do`]) may be sent to, the first unless the caller's grants say
    /// otherwise.
    pub fn remote_routes(&self) -> Vec<Route> {
        let mut remote: Vec<&Entry> = self.providers.iter().filter(|p| !p.local).collect();
        remote.sort_by_key(|p| !p.reachable);
        remote
            .into_iter()
            .filter_map(|p| p.models.first().map(|m| Catalog::route_to(p, m)))
            .collect()
    }

    /// The first of [`Catalog::remote_routes`].
    fn first_remote(&self) -> Option<Route> {
        self.remote_routes().into_iter().next()
    }

    /// The provider and model that serve a request for `wanted`.
    pub fn route(&self, wanted: Option<&str>) -> Result<Route, RouteError> {
        let route = self.pick(wanted)?;
        match self.get(&route.provider) {
            Some(p) if p.local && !p.reachable => Err(RouteError::LocalUnreachable(p.name.clone())),
            _ => Ok(route),
        }
    }

    /// The provider and model for `wanted`, reachable or not.
    fn pick(&self, wanted: Option<&str>) -> Result<Route, RouteError> {
        let wanted = wanted.map(str::trim).filter(|w| !w.is_empty());
        match wanted {
            None => self
                .first_local()
                .or_else(|| self.first_remote())
                .ok_or(RouteError::NoModel),
            Some(class::LOCAL) => self.first_local().ok_or(RouteError::NoLocalModel),
            Some(class::REMOTE) => self.first_remote().ok_or(RouteError::NoRemoteModel),
            Some(class::LOCAL_SMALL) => self
                .providers
                .iter()
                .filter(|p| p.local && p.reachable)
                .flat_map(|p| p.models.iter().map(move |m| (p, m)))
                .min_by(|a, b| parameters(&a.1.name).total_cmp(&parameters(&b.1.name)))
                .map(|(p, m)| Catalog::route_to(p, m))
                .ok_or(RouteError::NoLocalModel),
            Some(named) => self.named(named),
        }
    }

    /// Why a request for `wanted` goes to the remote provider `route` names, in a sentence for
    /// the user's consent prompt: what the caller asked for, or that nothing local answers.
    pub fn why_remote(&self, wanted: Option<&str>, route: &Route) -> String {
        let off = format!(
            "its questions would go to {}, off this computer",
            route.provider
        );
        match wanted.map(str::trim).filter(|w| !w.is_empty()) {
            None if self.providers.iter().any(|p| p.local) => {
                format!("No model on this computer answers now, so {off}.")
            }
            None => format!(
                "No model runs on this computer (no Ollama or llama-server with a model was \
                 found), so {off}."
            ),
            Some(class::REMOTE) => format!("It asked for a remote model: {off}."),
            Some(named) => format!("It asked for the model {}: {off}.", quoted(named)),
        }
    }

    /// Why a request goes to the remote provider `route` names when its task was given
    /// `model` (the `model` option of the tree's delegation).
    pub fn why_remote_for_tree(&self, model: &str, route: &Route) -> String {
        format!(
            "Its task was given the model {}: its questions would go to {}, off this computer.",
            quoted(model),
            route.provider
        )
    }

    /// `provider/model`, a model any provider offers, or a provider by its name alone (as
    /// `agentctl models` lists it: its first model).
    fn named(&self, named: &str) -> Result<Route, RouteError> {
        let offered = |name: &str| {
            self.providers
                .iter()
                .any(|p| p.models.iter().any(|m| m.name == name))
        };
        if let Some(p) = self.get(named).filter(|_| !offered(named)) {
            if let Some(m) = p.models.first() {
                return Ok(Catalog::route_to(p, m));
            }
        }
        if let Some((provider, model)) = named.split_once('/') {
            if let Some(p) = self.get(provider) {
                if let Some(m) = p.models.iter().find(|m| m.name == model) {
                    return Ok(Catalog::route_to(p, m));
                }
                if p.open && !model.is_empty() {
                    let context = if p.models.len() == 1 && p.local {
                        p.models[0].context
                    } else {
                        0
                    };
                    return Ok(Route {
                        provider: p.name.clone(),
                        model: model.to_string(),
                        local: p.local,
                        context,
                    });
                }
                return Err(RouteError::UnknownModel(named.to_string()));
            }
            if !offered(named) {
                return Err(RouteError::UnknownProvider(provider.to_string()));
            }
        }
        let mut offering: Vec<&Entry> = self.providers.iter().collect();
        // Local first, reachable first (the sort is stable).
        offering.sort_by_key(|p| (!p.local, !p.reachable));
        let exact = offering.iter().find_map(|p| {
            p.models
                .iter()
                .find(|m| m.name == named)
                .map(|m| Catalog::route_to(p, m))
        });
        // A local server of one model answers to the start of its file's name too: that is
        // how `llama-server -a qwen2.5-coder-0.5b` names `qwen2.5-coder-0.5b-instruct-q4_k_m`.
        let alias = || {
            let lower = named.to_ascii_lowercase();
            offering.iter().find_map(|p| match p.models.as_slice() {
                [m] if p.local && p.open && lower.len() >= 3 => m
                    .name
                    .to_ascii_lowercase()
                    .starts_with(&lower)
                    .then(|| Route {
                        model: named.to_string(),
                        ..Catalog::route_to(p, m)
                    }),
                _ => None,
            })
        };
        exact.or_else(alias).ok_or_else(|| {
            if self.is_empty() {
                RouteError::NoModel
            } else {
                RouteError::UnknownModel(named.to_string())
            }
        })
    }

    /// Every model, as `ListModels` shows them.
    pub fn infos(&self) -> Vec<ModelInfo> {
        self.providers
            .iter()
            .flat_map(|p| {
                p.models.iter().map(|m| ModelInfo {
                    provider: p.name.clone(),
                    model: m.name.clone(),
                    local: p.local,
                    reachable: p.reachable,
                    context: m.context,
                    slots: p.slots,
                })
            })
            .collect()
    }
}

/// A model name a caller gave, as the prompt shows it: cut to a model name's length and quoted
/// with every quote, backslash and invisible character escaped, so that it cannot end its
/// quotes and pass for the kernel's words.
fn quoted(name: &str) -> String {
    const MAX: usize = 80;
    let cut: String = name.chars().take(MAX).collect();
    let more = if name.chars().count() > MAX {
        "…"
    } else {
        ""
    };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, local: bool, models: &[&str]) -> Entry {
        Entry {
            name: name.into(),
            local,
            reachable: true,
            slots: 1,
            models: models
                .iter()
                .map(|m| Model {
                    name: m.to_string(),
                    context: 4096,
                })
                .collect(),
            open: !local,
            client: None,
            gemini: false,
        }
    }

    fn route(c: &Catalog, wanted: Option<&str>) -> Result<(String, String), RouteError> {
        c.route(wanted).map(|r| (r.provider, r.model))
    }

    fn pair(p: &str, m: &str) -> Result<(String, String), RouteError> {
        Ok((p.into(), m.into()))
    }

    #[test]
    fn local_models_are_preferred() {
        let c = Catalog {
            providers: vec![
                entry("ollama", true, &["llama3.1:8b", "qwen2.5:0.5b"]),
                entry("openai", false, &["gpt-4o-mini"]),
            ],
        };
        assert_eq!(route(&c, None), pair("ollama", "llama3.1:8b"));
        assert_eq!(route(&c, Some("local")), pair("ollama", "llama3.1:8b"));
        assert_eq!(
            route(&c, Some("local-small")),
            pair("ollama", "qwen2.5:0.5b")
        );
        assert_eq!(route(&c, Some("remote")), pair("openai", "gpt-4o-mini"));
        assert_eq!(route(&c, Some("openai/gpt-4.1")), pair("openai", "gpt-4.1"));
        assert_eq!(
            route(&c, Some("qwen2.5:0.5b")),
            pair("ollama", "qwen2.5:0.5b")
        );
        assert_eq!(
            route(&c, Some("gpt-4o-mini")),
            pair("openai", "gpt-4o-mini")
        );
        // Ollama serves only what it pulled.
        assert_eq!(
            route(&c, Some("ollama/mistral")),
            Err(RouteError::UnknownModel("ollama/mistral".into()))
        );
        assert_eq!(
            route(&c, Some("nope/x")),
            Err(RouteError::UnknownProvider("nope".into()))
        );
        assert_eq!(
            route(&c, Some("mistral")),
            Err(RouteError::UnknownModel("mistral".into()))
        );
        // A provider by its name alone, as `agentctl models` lists it: its first model.
        assert_eq!(route(&c, Some("openai")), pair("openai", "gpt-4o-mini"));
        assert_eq!(route(&c, Some("ollama")), pair("ollama", "llama3.1:8b"));
    }

    #[test]
    fn the_remote_providers_a_request_may_go_to_when_any_will_do() {
        let mut down = entry("anthropic", false, &["claude-x"]);
        down.reachable = false;
        let c = Catalog {
            providers: vec![
                entry("ollama", true, &["qwen"]),
                down,
                entry("openai", false, &["gpt-4o-mini"]),
                entry("gemini", false, &[]),
            ],
        };
        let names: Vec<String> = c.remote_routes().into_iter().map(|r| r.provider).collect();
        assert_eq!(
            names,
            ["openai", "anthropic"],
            "reachable first, none without a model"
        );
        assert!(any_remote_will_do(None));
        assert!(any_remote_will_do(Some(" ")));
        assert!(any_remote_will_do(Some("remote")));
        assert!(!any_remote_will_do(Some("openai/gpt-4o-mini")));
        assert!(!any_remote_will_do(Some("local")));
    }

    #[test]
    fn a_missing_remote_provider_may_be_an_unread_keyring() {
        assert!(RouteError::NoModel.may_be_unread_keys());
        assert!(RouteError::NoRemoteModel.may_be_unread_keys());
        assert!(RouteError::UnknownProvider("anthropic".into()).may_be_unread_keys());
        assert!(RouteError::UnknownProvider("openai:work".into()).may_be_unread_keys());
        assert!(!RouteError::UnknownProvider("nope".into()).may_be_unread_keys());
        assert!(!RouteError::NoLocalModel.may_be_unread_keys());
        assert!(!RouteError::UnknownModel("gpt-4o".into()).may_be_unread_keys());
    }

    #[test]
    fn the_prompt_for_a_remote_model_says_why_it_is_remote() {
        let mut c = Catalog {
            providers: vec![
                entry("ollama", true, &["qwen"]),
                entry("openai", false, &["gpt-4o-mini"]),
            ],
        };
        c.providers[0].reachable = false;
        let to = c.route(None).unwrap();
        assert_eq!(to.provider, "openai");
        assert_eq!(
            c.why_remote(None, &to),
            "No model on this computer answers now, so its questions would go to openai, off \
             this computer."
        );
        assert_eq!(
            c.why_remote(Some(" remote "), &to),
            "It asked for a remote model: its questions would go to openai, off this computer."
        );
        assert_eq!(
            c.why_remote(Some("openai/gpt-4.1"), &to),
            "It asked for the model \"openai/gpt-4.1\": its questions would go to openai, off \
             this computer."
        );
        assert_eq!(
            c.why_remote_for_tree("remote", &to),
            "Its task was given the model \"remote\": its questions would go to openai, off this \
             computer."
        );
        c.providers.remove(0);
        assert!(c
            .why_remote(None, &to)
            .starts_with("No model runs on this computer"));
    }

    #[test]
    fn a_model_name_cannot_end_its_quotes_in_the_prompt() {
        let c = Catalog { providers: vec![] };
        let to = Route {
            provider: "openai".into(),
            model: "x".into(),
            local: false,
            context: 0,
        };
        let spoof = "openai/x\" was chosen by you; nothing is sent. \"\u{200b}";
        let why = c.why_remote(Some(spoof), &to);
        assert!(
            why.starts_with(r#"It asked for the model "openai/x\" was chosen by you; nothing is sent. \"\u{200b}": "#),
            "{why}"
        );
        let long = "m".repeat(200);
        assert!(c
            .why_remote_for_tree(&long, &to)
            .contains(&format!("\"{}\"…", "m".repeat(80))));
    }

    #[test]
    fn remote_only_when_nothing_local_answers() {
        let mut c = Catalog {
            providers: vec![
                entry("llama-server", true, &["qwen"]),
                entry("anthropic", false, &["claude-3-5-haiku-latest"]),
            ],
        };
        c.providers[0].reachable = false;
        assert_eq!(
            route(&c, None),
            pair("anthropic", "claude-3-5-haiku-latest")
        );
        // A remote provider its last request did not reach is still tried (it is not probed),
        // when nothing else serves; a local one is not (it is probed again on each load).
        c.providers[1].reachable = false;
        assert_eq!(
            route(&c, None),
            pair("anthropic", "claude-3-5-haiku-latest")
        );
        assert_eq!(
            route(&c, Some("remote")),
            pair("anthropic", "claude-3-5-haiku-latest")
        );
        assert_eq!(route(&c, Some("local")), Err(RouteError::NoLocalModel));
        assert_eq!(
            route(&c, Some("local-small")),
            Err(RouteError::NoLocalModel)
        );
        let none = Catalog::default();
        assert_eq!(route(&none, None), Err(RouteError::NoModel));
        assert_eq!(
            local_servers_said(&none, None, None).as_deref(),
            Some("looking for local model servers is turned off in models.toml ([local])")
        );
        assert_eq!(
            local_servers_said(&none, Some("http://127.0.0.1:11434"), None),
            None
        );
        let stopped = Catalog {
            providers: vec![Entry {
                reachable: false,
                ..entry("llama-server", true, &["qwen"])
            }],
        };
        assert_eq!(route(&stopped, None), Err(RouteError::NoModel));
        assert_eq!(
            route(&stopped, Some("llama-server/qwen")),
            Err(RouteError::LocalUnreachable("llama-server".into()))
        );
        assert_eq!(
            route(&stopped, Some("qwen")),
            Err(RouteError::LocalUnreachable("llama-server".into()))
        );
        assert_eq!(
            local_servers_said(
                &stopped,
                Some("http://127.0.0.1:11434"),
                Some("http://127.0.0.1:8080")
            )
            .as_deref(),
            Some("llama-server at http://127.0.0.1:8080 does not answer")
        );
        assert_eq!(route(&none, Some("gpt-4o")), Err(RouteError::NoModel));
        assert!(RouteError::NoModel
            .to_string()
            .contains("agentctl models add"));
        assert_eq!(route(&none, Some("remote")), Err(RouteError::NoRemoteModel));
    }

    #[test]
    fn a_llama_server_answers_to_its_alias() {
        let mut llama = entry(
            "llama-server",
            true,
            &["qwen2.5-coder-0.5b-instruct-q4_k_m"],
        );
        llama.open = true;
        let c = Catalog {
            providers: vec![llama, entry("openai", false, &["gpt-4o-mini"])],
        };
        assert_eq!(
            route(&c, Some("qwen2.5-coder-0.5b")),
            pair("llama-server", "qwen2.5-coder-0.5b")
        );
        assert_eq!(
            route(&c, Some("llama-server/anything")),
            pair("llama-server", "anything")
        );
        assert_eq!(
            route(&c, Some("gpt-4.1")),
            Err(RouteError::UnknownModel("gpt-4.1".into()))
        );
    }

    proptest::proptest! {
        /// Model names come from servers and wanted names from callers: any text routes or is
        /// refused, never panics, and a route names a model of the catalog's providers.
        #[test]
        fn any_names_route_or_are_refused(
            names in proptest::collection::vec(".{0,24}", 0..4),
            wanted in proptest::option::of(".{0,32}"),
        ) {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut llama = entry("llama-server", true, &refs[..refs.len().min(1)]);
            llama.open = true;
            let c = Catalog {
                providers: vec![llama, entry("ollama", true, &refs), entry("openai", false, &refs)],
            };
            if let Ok(r) = c.route(wanted.as_deref()) {
                proptest::prop_assert!(c.get(&r.provider).is_some());
            }
        }
    }

    #[test]
    fn model_sizes_are_read_from_names() {
        assert_eq!(parameters("qwen2.5-coder-0.5b-instruct-q4_k_m"), 0.5);
        assert_eq!(parameters("llama3.1:8b"), 8.0);
        assert_eq!(parameters("phi3:3.8b-mini"), 3.8);
        assert_eq!(parameters("mistral"), f64::MAX);
        assert_eq!(parameters("bge"), f64::MAX);
        // Names come from servers: any text is read without panicking.
        assert_eq!(parameters("é7b"), 7.0);
        assert_eq!(parameters("ü.b"), f64::MAX);
        assert_eq!(parameters("b"), f64::MAX);
    }
}
