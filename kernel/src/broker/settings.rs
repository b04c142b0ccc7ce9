//! The broker's settings: where local model servers are looked for, the scheduling discipline,
//! slots per provider, and token budgets. Read from `$XDG_CONFIG_HOME/agentos/models.toml` when
//! it exists; without it, the defaults serve (Ollama on 127.0.0.1:11434, llama-server on
//! 127.0.0.1:8080, a budget for every agent and app, none for the user's own tools).
//!
//! ```toml
//! [local]
//! ollama = "http://127.0.0.1:11434"        # "off": do not look for it
//! llama-server = "http://127.0.0.1:8080"
//! trusted-apps = ["com.jeffser.Alpaca"]    # sandboxed apps whose local server may be used
//!
//! [scheduler]
//! discipline = "priority"                  # or "fifo" (the benchmarks' baseline)
//!
//! [providers.ollama]
//! slots = 2                                # OLLAMA_NUM_PARALLEL, which Ollama does not report
//!
//! [budget]                                 # each agent and app without a budget of its own
//! tokens-per-hour = 1000000
//! tokens-per-day = 5000000
//! requests-per-minute = 120
//!
//! [budget.principals."org.example.App"]    # an agent id, an app, or "host"
//! tokens-per-day = 100000
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::budget::Budget;
use super::scheduler::Discipline;

/// The file's name in the kernel's config folder.
pub const FILE: &str = "models.toml";

/// Where Ollama listens unless told otherwise.
pub const OLLAMA: &str = "http://127.0.0.1:11434";
/// Where llama.cpp's `llama-server` listens unless told otherwise.
pub const LLAMA_SERVER: &str = "http://127.0.0.1:8080";

/// The budget of each agent and app that has none of its own.
pub const DEFAULT_BUDGET: Budget = Budget {
    tokens_per_hour: Some(1_000_000),
    tokens_per_day: Some(5_000_000),
    requests_per_minute: Some(120),
};

/// The broker's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Ollama's address; `None`: not looked for.
    pub ollama: Option<String>,
    /// `llama-server`'s address; `None`: not looked for.
    pub llama_server: Option<String>,
    /// Sandboxed apps (Flatpak or snap ids) the user vouches for: a local server one of them
    /// runs is used (see `listener.rs`); any other sandboxed app's is not.
    pub trusted_apps: Vec<String>,
    pub discipline: Discipline,
    /// Slots of providers, where the user set them.
    pub slots: BTreeMap<String, u32>,
    /// The budget of each agent and app without its own.
    pub default_budget: Budget,
    /// Budgets of principals (the user's own tools are `host`, unlimited unless named here).
    pub budgets: BTreeMap<String, Budget>,
    /// How long a probe of a local server may take.
    pub probe_limit: Duration,
    /// The file they were read from (or would be, where there is none).
    file: Option<PathBuf>,
    /// Why that file was ignored (these are then the defaults).
    ignored: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            ollama: Some(OLLAMA.into()),
            llama_server: Some(LLAMA_SERVER.into()),
            trusted_apps: Vec::new(),
            discipline: Discipline::Priority,
            slots: BTreeMap::new(),
            default_budget: DEFAULT_BUDGET,
            budgets: BTreeMap::new(),
            probe_limit: Duration::from_millis(800),
            file: None,
            ignored: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    local: Local,
    #[serde(default)]
    scheduler: SchedulerFile,
    #[serde(default)]
    providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    budget: BudgetFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Local {
    ollama: Option<String>,
    llama_server: Option<String>,
    #[serde(default)]
    trusted_apps: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SchedulerFile {
    discipline: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProviderFile {
    slots: u32,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Limits {
    tokens_per_hour: Option<u64>,
    tokens_per_day: Option<u64>,
    requests_per_minute: Option<u32>,
}

impl Limits {
    fn budget(self) -> Budget {
        Budget {
            tokens_per_hour: self.tokens_per_hour,
            tokens_per_day: self.tokens_per_day,
            requests_per_minute: self.requests_per_minute,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BudgetFile {
    #[serde(flatten)]
    default: Option<Limits>,
    #[serde(default)]
    principals: BTreeMap<String, Limits>,
}

/// An address from the file: "off" (or empty) turns the probe off.
fn address(given: Option<String>, default: &str) -> Result<Option<String>, String> {
    match given.as_deref().map(str::trim) {
        None => Ok(Some(default.to_string())),
        Some("" | "off") => Ok(None),
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(Some(url.trim_end_matches('/').to_string()))
        }
        Some(url) => Err(format!("{url:?} is not an http:// or https:// address")),
    }
}

impl Settings {
    /// Settings from the text of a `models.toml`.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let discipline = match file.scheduler.discipline.as_deref() {
            None | Some("priority") => Discipline::Priority,
            Some("fifo") => Discipline::Fifo,
            Some(other) => {
                return Err(format!(
                    "scheduler discipline {other:?} is neither \"priority\" nor \"fifo\""
                ))
            }
        };
        let mut slots = BTreeMap::new();
        for (name, p) in file.providers {
            // A name mistyped would set nothing, and say nothing.
            let (kind, account) = super::catalog::split_name(&name);
            let local = kind == "ollama" || kind == "llama-server";
            let remote = agentos_portal::secrets::Provider::parse(kind).is_ok();
            if !(local && account.is_none() || remote && account != Some("")) {
                let remotes: Vec<&str> = agentos_portal::secrets::Provider::ALL
                    .iter()
                    .map(|p| p.as_str())
                    .collect();
                return Err(format!(
                    "there is no model provider {name:?} to set slots for: the providers are \
                     ollama, llama-server, and {} (as `agentctl models` lists them, with \
                     :<account> for a key stored under an account)",
                    remotes.join(", ")
                ));
            }
            if p.slots == 0 || p.slots > 256 {
                return Err(format!("provider {name}: slots must be 1 to 256"));
            }
            // As the catalog names it: a key stored under the default account is `openai`.
            let listed = match account {
                Some(account) if remote => super::catalog::remote_name(kind, account),
                _ => name.clone(),
            };
            if slots.insert(listed.clone(), p.slots).is_some() {
                return Err(format!(
                    "the model provider {listed:?} is given twice in [providers] (as {name:?} too)"
                ));
            }
        }
        let default_budget = match file.budget.default {
            Some(l)
                if l.tokens_per_hour.is_some()
                    || l.tokens_per_day.is_some()
                    || l.requests_per_minute.is_some() =>
            {
                l.budget()
            }
            _ => DEFAULT_BUDGET,
        };
        Ok(Settings {
            ollama: address(file.local.ollama, OLLAMA)?,
            llama_server: address(file.local.llama_server, LLAMA_SERVER)?,
            trusted_apps: file.local.trusted_apps,
            discipline,
            slots,
            default_budget,
            budgets: file
                .budget
                .principals
                .into_iter()
                .map(|(p, l)| (p, l.budget()))
                .collect(),
            ..Settings::default()
        })
    }

    /// The settings in `config_dir/models.toml`, or the defaults when there is none; a file
    /// that cannot be read is reported in the log, and the defaults serve.
    pub fn load(config_dir: Option<&Path>) -> Settings {
        let Some(path) = config_dir.map(|d| d.join(FILE)) else {
            return Settings::default();
        };
        let ignored = |why: String| {
            tracing::warn!(file = %path.display(), error = %why, "ignoring the model settings");
            Settings {
                file: Some(path.clone()),
                ignored: Some(why),
                ..Settings::default()
            }
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => match Settings::parse(&text) {
                Ok(settings) => Settings {
                    file: Some(path.clone()),
                    ..settings
                },
                Err(e) => ignored(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings {
                file: Some(path.clone()),
                ..Settings::default()
            },
            Err(e) => ignored(format!("cannot read it: {e}")),
        }
    }

    /// The file the settings were read from (or would be), and why it was ignored, if it was.
    pub fn source(&self) -> (Option<&Path>, Option<&str>) {
        (self.file.as_deref(), self.ignored.as_deref())
    }

    /// The settings of this process's user (`$XDG_CONFIG_HOME/agentos/models.toml`).
    pub fn of_user() -> Settings {
        let dirs = agentos_portal::xdg::BaseDirs::from_process_env();
        Settings::load(dirs.config_home().map(|d| d.join("agentos")).as_deref())
    }

    /// The budget of `principal`.
    pub fn budget_of(&self, principal: &str) -> Budget {
        match self.budgets.get(principal) {
            Some(b) => *b,
            None if principal == "host" => Budget::UNLIMITED,
            None => self.default_budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_the_defaults() {
        let s = Settings::parse("").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.budget_of("host"), Budget::UNLIMITED);
        assert_eq!(s.budget_of("docs"), DEFAULT_BUDGET);
    }

    #[test]
    fn every_setting_is_read() {
        let s = Settings::parse(
            r#"
            [local]
            ollama = "off"
            llama-server = "http://127.0.0.1:9999/"
            trusted-apps = ["com.jeffser.Alpaca"]
            [scheduler]
            discipline = "fifo"
            [providers.llama-server]
            slots = 4
            [providers."anthropic:work"]
            slots = 8
            [budget]
            tokens-per-hour = 10
            [budget.principals.docs]
            requests-per-minute = 2
            [budget.principals.host]
            tokens-per-day = 5
            "#,
        )
        .unwrap();
        assert_eq!(s.ollama, None);
        assert_eq!(s.llama_server.as_deref(), Some("http://127.0.0.1:9999"));
        assert_eq!(s.trusted_apps, ["com.jeffser.Alpaca"]);
        assert_eq!(s.discipline, Discipline::Fifo);
        assert_eq!(s.slots["llama-server"], 4);
        assert_eq!(s.slots["anthropic:work"], 8);
        assert_eq!(s.budget_of("web").tokens_per_hour, Some(10));
        assert_eq!(s.budget_of("web").requests_per_minute, None);
        assert_eq!(s.budget_of("docs").requests_per_minute, Some(2));
        assert_eq!(s.budget_of("host").tokens_per_day, Some(5));
        // The default account is named as the catalog lists it.
        let s = Settings::parse("[providers.\"openai:default\"]\nslots = 3").unwrap();
        assert_eq!(s.slots.get("openai"), Some(&3));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, word) in [
            ("[scheduler]\ndiscipline = \"lifo\"", "lifo"),
            ("[providers.ollama]\nslots = 0", "slots"),
            (
                "[providers.ollamaa]\nslots = 2",
                "no model provider \"ollamaa\"",
            ),
            ("[providers.\"ollama:work\"]\nslots = 2", "ollama:work"),
            ("[providers.\"openai:\"]\nslots = 2", "openai:"),
            (
                "[providers.openai]\nslots = 2\n[providers.\"openai:default\"]\nslots = 3",
                "given twice",
            ),
            ("[local]\nollama = \"ftp://x\"", "ftp"),
            ("[budget]\ntokens = 1", "tokens"),
        ] {
            let e = Settings::parse(text).unwrap_err();
            assert!(e.contains(word), "{text}: {e}");
        }
    }
}
