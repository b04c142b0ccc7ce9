//! `agentctl`: the command-line client of AgentOS, talking to agentosd on the session bus.

mod agents;
mod ask;
mod cli;
mod command;
mod connect;
mod consent_tty;
mod delegate;
mod error;
mod follow;
mod grants;
mod keyring;
mod log;
mod models;
mod models_list;
mod output;
mod run;
mod tasks;
mod usage;

use std::process::ExitCode;

use anyhow::Context;

use command::{Cli, Command};

fn main() -> ExitCode {
    let cli = match command::parse() {
        Ok(cli) => cli,
        // Prints the help, the version or the usage error; exits 0 or 2.
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors may quote what the kernel or an agent said: printed safe, like all else.
            output::warn(&format!("agentctl: {}", output::clean(&format!("{e:#}"))));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let code = runtime.block_on(dispatch(cli))?;
    Ok(code)
}

async fn dispatch(cli: Cli) -> error::Result<u8> {
    let address = cli.address.as_deref();
    // `models` lists keys from the Secret Service even when the kernel is not running.
    let command = match cli.command {
        Command::Models(command) => return models::run(address, command).await,
        command => command,
    };
    let kernel = connect::connect(address).await?;
    match command {
        Command::Agents { json } => agents::list(&kernel, json).await,
        Command::Run {
            agent,
            goal,
            timeout,
            model,
            json,
        } => run::run(&kernel, &agent, &goal, (timeout, model.as_deref()), json).await,
        Command::Tasks { limit, json } => tasks::list(&kernel, limit, json).await,
        Command::Cancel { id } => tasks::cancel(&kernel, id).await,
        Command::Grants { json } => grants::list(&kernel, json).await,
        Command::Grant {
            principal,
            capability,
            scope,
            lifetime,
        } => grants::grant(&kernel, &principal, &capability, &scope, lifetime).await,
        Command::Revoke {
            principal,
            capability,
            scope,
        } => grants::revoke(&kernel, &principal, &capability, scope.as_deref()).await,
        Command::Log { after, limit, json } => log::read(&kernel, after, limit, json).await,
        Command::VerifyLog { json } => log::verify(&kernel, json).await,
        Command::Models(command) => models::run(address, command).await,
        Command::Usage { all, json } => usage::list(&kernel, all, json).await,
        Command::Ask {
            agent,
            goal,
            timeout,
            model,
        } => ask::ask(&kernel, &agent, &goal, (timeout, model.as_deref())).await,
    }
}
