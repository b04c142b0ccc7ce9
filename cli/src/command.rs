//! The parsed command line: what `agentctl` was asked to do, read from clap's matches.

use agentos_dbus_interfaces::Lifetime;
use clap::ArgMatches;

use crate::cli::command;

/// A parsed command line.
#[derive(Debug)]
pub struct Cli {
    /// Bus address; `None` for the session bus.
    pub address: Option<String>,
    pub command: Command,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Agents {
        json: bool,
    },
    Run {
        agent: String,
        goal: String,
        timeout: Option<u32>,
        model: Option<String>,
        json: bool,
    },
    Tasks {
        limit: u32,
        json: bool,
    },
    Cancel {
        id: u64,
    },
    Grants {
        json: bool,
    },
    Grant {
        principal: String,
        capability: String,
        scope: String,
        lifetime: Lifetime,
    },
    Revoke {
        principal: String,
        capability: String,
        scope: Option<String>,
    },
    Log {
        after: u64,
        limit: u32,
        json: bool,
    },
    VerifyLog {
        json: bool,
    },
    /// The broker's models and the providers' keys (those are the Secret Service's business).
    Models(ModelsCommand),
    /// Model use per principal and task.
    Usage {
        all: bool,
        json: bool,
    },
    /// A goal for the sidekick (or another agent), its answer streamed.
    Ask {
        agent: String,
        goal: String,
        timeout: Option<u32>,
        model: Option<String>,
    },
}

/// `agentctl models …`.
#[derive(Debug, PartialEq)]
pub enum ModelsCommand {
    List {
        json: bool,
    },
    Add {
        provider: String,
        account: Option<String>,
        base_url: Option<String>,
    },
    Remove {
        provider: String,
        account: Option<String>,
    },
}

/// Parse the process's arguments.
pub fn parse() -> Result<Cli, clap::Error> {
    command().try_get_matches().map(|m| from_matches(&m))
}

fn text(m: &ArgMatches, name: &str) -> String {
    m.get_one::<String>(name).cloned().unwrap_or_default()
}

/// The goal's words, joined.
fn words(m: &ArgMatches) -> String {
    m.get_many::<String>("goal")
        .map(|words| words.map(String::as_str).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn number<T: Copy + Send + Sync + 'static>(m: &ArgMatches, name: &str, default: T) -> T {
    m.get_one::<T>(name).copied().unwrap_or(default)
}

fn from_matches(m: &ArgMatches) -> Cli {
    let address = m
        .get_one::<String>("address")
        .filter(|a| !a.is_empty())
        .cloned();
    let (name, sub) = m.subcommand().unwrap_or(("", m));
    let json = sub
        .try_get_one::<bool>("json")
        .ok()
        .flatten()
        .copied()
        .unwrap_or(false);
    let command = match name {
        "run" => Command::Run {
            agent: text(sub, "agent"),
            goal: words(sub),
            timeout: sub.get_one::<u32>("timeout").copied(),
            model: sub.get_one::<String>("model").cloned(),
            json,
        },
        "tasks" => Command::Tasks {
            limit: number(sub, "limit", 50),
            json,
        },
        "cancel" => Command::Cancel {
            id: number(sub, "id", 0),
        },
        "grants" => Command::Grants { json },
        "grant" => Command::Grant {
            principal: text(sub, "principal"),
            capability: text(sub, "capability"),
            scope: text(sub, "scope"),
            lifetime: Lifetime::parse(&text(sub, "lifetime")).unwrap_or(Lifetime::Always),
        },
        "revoke" => Command::Revoke {
            principal: text(sub, "principal"),
            capability: text(sub, "capability"),
            scope: sub.get_one::<String>("scope").cloned(),
        },
        "models" => Command::Models(match sub.subcommand() {
            Some(("add", add)) => ModelsCommand::Add {
                provider: text(add, "provider"),
                account: add.get_one::<String>("account").cloned(),
                base_url: add.get_one::<String>("base-url").cloned(),
            },
            Some(("remove", remove)) => ModelsCommand::Remove {
                provider: text(remove, "provider"),
                account: remove.get_one::<String>("account").cloned(),
            },
            _ => ModelsCommand::List { json },
        }),
        "usage" => Command::Usage {
            all: sub.get_flag("all"),
            json,
        },
        "ask" => Command::Ask {
            agent: text(sub, "agent"),
            goal: words(sub),
            timeout: sub.get_one::<u32>("timeout").copied(),
            model: sub.get_one::<String>("model").cloned(),
        },
        "log" if sub.get_flag("verify") => Command::VerifyLog { json },
        "log" => Command::Log {
            after: number(sub, "after", 0),
            limit: number(sub, "limit", 100),
            json,
        },
        _ => Command::Agents { json },
    };
    Cli { address, command }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        command()
            .try_get_matches_from(args)
            .map(|m| from_matches(&m).command)
    }

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn parses_subcommands() {
        assert_eq!(
            parse(&["agentctl", "run", "docs", "sum", "up", "--timeout", "5"]).unwrap(),
            Command::Run {
                agent: "docs".into(),
                goal: "sum up".into(),
                timeout: Some(5),
                model: None,
                json: false
            }
        );
        assert!(parse(&["agentctl", "run", "docs"]).is_err());
        assert!(parse(&["agentctl", "log", "--verify", "--after", "3"]).is_err());
        assert_eq!(
            parse(&["agentctl", "log", "--verify"]).unwrap(),
            Command::VerifyLog { json: false }
        );
        assert_eq!(
            parse(&["agentctl", "grant", "web", "net.fetch", "example.org"]).unwrap(),
            Command::Grant {
                principal: "web".into(),
                capability: "net.fetch".into(),
                scope: "example.org".into(),
                lifetime: Lifetime::Always
            }
        );
        assert!(parse(&["agentctl", "grant", "a", "b", "c", "--lifetime", "forever"]).is_err());
        assert_eq!(
            parse(&["agentctl", "tasks"]).unwrap(),
            Command::Tasks {
                limit: 50,
                json: false
            }
        );
        assert!(parse(&["agentctl", "cancel", "x"]).is_err());
    }

    #[test]
    fn parses_models() {
        assert_eq!(
            parse(&["agentctl", "models", "--json"]).unwrap(),
            Command::Models(ModelsCommand::List { json: true })
        );
        assert_eq!(
            parse(&[
                "agentctl",
                "models",
                "add",
                "openai-compatible",
                "--account",
                "work",
                "--base-url",
                "https://llm.example.org/v1"
            ])
            .unwrap(),
            Command::Models(ModelsCommand::Add {
                provider: "openai-compatible".into(),
                account: Some("work".into()),
                base_url: Some("https://llm.example.org/v1".into())
            })
        );
        assert_eq!(
            parse(&["agentctl", "models", "remove", "openai"]).unwrap(),
            Command::Models(ModelsCommand::Remove {
                provider: "openai".into(),
                account: None
            })
        );
        // The key is never an argument (it would stay in the shell's history and in ps).
        assert!(parse(&["agentctl", "models", "add", "openai", "sk-123"]).is_err());
        assert!(parse(&["agentctl", "models", "add"]).is_err());
    }

    #[test]
    fn parses_usage_and_ask() {
        assert_eq!(
            parse(&["agentctl", "usage", "--json"]).unwrap(),
            Command::Usage {
                all: false,
                json: true
            }
        );
        assert_eq!(
            parse(&["agentctl", "ask", "what", "is", "due?"]).unwrap(),
            Command::Ask {
                agent: "sidekick".into(),
                goal: "what is due?".into(),
                timeout: None,
                model: None
            }
        );
        assert_eq!(
            parse(&[
                "agentctl",
                "ask",
                "--agent",
                "docs",
                "--timeout",
                "60",
                "--model",
                "ollama/qwen2.5:0.5b",
                "find it"
            ])
            .unwrap(),
            Command::Ask {
                agent: "docs".into(),
                goal: "find it".into(),
                timeout: Some(60),
                model: Some("ollama/qwen2.5:0.5b".into())
            }
        );
        assert!(parse(&["agentctl", "ask"]).is_err());
    }
}
