//! The definition of the command line, with clap's builder API: its derive macros emit
//! `allow(clippy::restriction)`, which the workspace's `forbid` lints reject.

use clap::builder::PossibleValuesParser;
use clap::{value_parser, Arg, ArgAction};

/// `--model`, the model a delegated task's requests use when they name none.
fn model_arg() -> Arg {
    Arg::new("model").long("model").value_name("MODEL").help(
        "The model the task (and the tasks it delegates) uses: a model, provider/model or a \
             provider as `agentctl models` lists them, or local, local-small or remote",
    )
}

fn json_flag() -> Arg {
    Arg::new("json")
        .long("json")
        .action(ArgAction::SetTrue)
        .help("Print JSON instead of a table")
}

fn positional(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).required(true).help(help)
}

fn provider() -> Arg {
    positional(
        "provider",
        "The provider: openai, anthropic, gemini or openai-compatible",
    )
}

fn account() -> Arg {
    Arg::new("account")
        .long("account")
        .value_name("NAME")
        .help("Which of your accounts at the provider (default: \"default\")")
}

/// `agentctl models` and its subcommands.
fn models() -> clap::Command {
    clap::Command::new("models")
        .about("List the models the kernel can use and the stored API keys; add or remove a key")
        .long_about(
            "List the models the kernel's broker can serve now (local ones found without setup: \
             Ollama on 127.0.0.1:11434, llama-server on 127.0.0.1:8080) and the model providers \
             whose API keys are stored in the Secret Service (gnome-keyring, KWallet); add or \
             remove a key.\n\n\
             Keys live only in the keyring: never in a file, a log, or anything an agent receives.",
        )
        .args_conflicts_with_subcommands(true)
        .arg(json_flag())
        .subcommand(
            clap::Command::new("add")
                .about("Store a provider's API key, read from stdin")
                .long_about(
                    "Store a provider's API key in the Secret Service, replacing the one stored \
                     before. The key is read from stdin: typed without echo on a terminal, or \
                     piped (`agentctl models add openai < key-file`). It is never printed.",
                )
                .arg(provider())
                .arg(account())
                .arg(
                    Arg::new("base-url")
                        .long("base-url")
                        .value_name("URL")
                        .help(
                            "The server the key is for (required for openai-compatible): \
                             https://, or http:// on this machine",
                        ),
                ),
        )
        .subcommand(
            clap::Command::new("remove")
                .about("Delete a provider's stored API key")
                .arg(provider())
                .arg(account()),
        )
}

/// The clap definition of `agentctl`.
pub fn command() -> clap::Command {
    clap::Command::new("agentctl")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Control AgentOS: list agents, delegate goals, follow tasks, manage grants, audit, \
             keep model providers' keys",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(
            Arg::new("address")
                .long("address")
                .global(true)
                .env("AGENTOS_BUS_ADDRESS")
                .value_name("ADDRESS")
                .help(
                    "D-Bus address of the bus agentosd is on (default: the session bus; without \
                     one, the bus ./scripts/start started)",
                ),
        )
        .subcommand(
            clap::Command::new("agents")
                .about("List the agents the kernel knows")
                .arg(json_flag()),
        )
        .subcommand(
            clap::Command::new("run")
                .about("Delegate a goal to an agent and follow the task until it ends")
                .long_about(
                    "Delegate a goal to an agent and follow the task until it ends.\n\n\
                     Changes of the task and of the tasks it delegates are printed as they \
                     happen, then its result and artifacts. Exits 0 if the task completed, 1 \
                     otherwise; Ctrl-C (or the terminal closing, or SIGTERM) cancels the task \
                     and exits 130.",
                )
                .arg(positional("agent", "Id of the agent to delegate to"))
                .arg(
                    positional(
                        "goal",
                        "What the agent should do (the words are joined; put -- before words starting with -)",
                    )
                        .num_args(1..),
                )
                .arg(
                    Arg::new("timeout")
                        .long("timeout")
                        .value_name("SECS")
                        .value_parser(value_parser!(u32).range(1..=86400))
                        .help("Give up after this many seconds (the kernel's default is 600)"),
                )
                .arg(model_arg())
                .arg(json_flag().help("Print the final task as JSON (progress goes to stderr)")),
        )
        .subcommand(
            clap::Command::new("tasks")
                .about("List recent tasks, children under their parents")
                .arg(
                    Arg::new("limit")
                        .long("limit")
                        .value_name("N")
                        .default_value("50")
                        .value_parser(value_parser!(u32).range(1..=10000))
                        .help("How many of the most recent tasks to show"),
                )
                .arg(json_flag()),
        )
        .subcommand(
            clap::Command::new("cancel")
                .about("Cancel a task and everything it delegated")
                .arg(positional("id", "Task id").value_parser(value_parser!(u64))),
        )
        .subcommand(
            clap::Command::new("grants")
                .about("List the live grants")
                .arg(json_flag()),
        )
        .subcommand(
            clap::Command::new("grant")
                .about("Grant a principal a capability on a scope")
                .arg(positional("principal", "Who receives it (an agent id)"))
                .arg(positional("capability", "The capability"))
                .arg(positional("scope", "What it applies to, e.g. a folder or a host"))
                .arg(
                    Arg::new("lifetime")
                        .long("lifetime")
                        .default_value("always")
                        .value_parser(PossibleValuesParser::new(["once", "session", "always"]))
                        .help("How long the grant lives"),
                ),
        )
        .subcommand(
            clap::Command::new("revoke")
                .about("Revoke a principal's grants of a capability (on every scope if none given)")
                .arg(positional("principal", "Whose grants"))
                .arg(positional("capability", "Which capability"))
                .arg(Arg::new("scope").help("Only on this scope")),
        )
        .subcommand(models())
        .subcommand(
            clap::Command::new("usage")
                .about("Show model use: requests, tokens, time and estimated cost per agent, app and task")
                .arg(
                    Arg::new("all")
                        .long("all")
                        .action(ArgAction::SetTrue)
                        .help("Every task, not only the 20 most recent"),
                )
                .arg(json_flag()),
        )
        .subcommand(
            clap::Command::new("ask")
                .about("Ask the sidekick: it plans, delegates to other agents, and the answer streams here")
                .long_about(
                    "Hand a goal to the sidekick agent (or another, with --agent) and print its \
                     answer as it grows, then its artifacts. The task is marked as the one you \
                     watch, so its model requests are served before background work. Exits 0 if \
                     the task completed, 1 otherwise (with the reason); Ctrl-C (or the terminal \
                     closing, or SIGTERM) cancels the task and exits 130.",
                )
                .arg(
                    Arg::new("agent")
                        .long("agent")
                        .value_name("ID")
                        .default_value("sidekick")
                        .help("The agent to ask"),
                )
                .arg(
                    Arg::new("timeout")
                        .long("timeout")
                        .value_name("SECS")
                        .value_parser(value_parser!(u32).range(1..=86400))
                        .help("Give up after this many seconds (the kernel's default is 600)"),
                )
                .arg(model_arg())
                .arg(
                    positional(
                        "goal",
                        "What to ask (the words are joined; put -- before words starting with -)",
                    )
                    .num_args(1..),
                ),
        )
        .subcommand(
            clap::Command::new("log")
                .about("Read the audit log, or verify its hash chain with --verify")
                .arg(
                    Arg::new("after")
                        .long("after")
                        .value_name("SEQ")
                        .default_value("0")
                        .value_parser(value_parser!(u64))
                        .conflicts_with("verify")
                        .help("Only records with a sequence number greater than this"),
                )
                .arg(
                    Arg::new("limit")
                        .long("limit")
                        .value_name("N")
                        .default_value("100")
                        .value_parser(value_parser!(u32).range(1..=10000))
                        .conflicts_with("verify")
                        .help("At most this many records"),
                )
                .arg(
                    Arg::new("verify")
                        .long("verify")
                        .action(ArgAction::SetTrue)
                        .help("Check the hash chain of the whole log (exit 1 if tampered with)"),
                )
                .arg(json_flag()),
        )
}
