//! `agentos-agent-sidekick`: the agent the user talks to. It takes the user's goal, plans with a
//! model through the kernel's broker, delegates sub-goals to the other agents and uses the
//! platform tools it may, keeps each result's origin next to it (labelled untrusted for the
//! model), and answers with its sources and the children's artifacts, streaming the answer as
//! the task's progress.

mod conversation;
mod error;
mod evidence;
mod host;
mod model;
mod offer;
mod prompt;
mod reply;
mod run;
mod sdk;
mod window;

#[cfg(test)]
mod run_tests;

use agentos_dbus_interfaces::names::AGENT_ID_ENV;
use agentos_sdk::{Agent, Outcome, Task};

struct Sidekick;

impl Agent for Sidekick {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let settings = run::Settings {
            self_id: std::env::var(AGENT_ID_ENV).unwrap_or_else(|_| "sidekick".into()),
            ..run::Settings::default()
        };
        let kernel = sdk::Kernel::new(&task);
        let broker = sdk::Broker::new(&task);
        let answer = run::run(&task.goal, &broker, &kernel, &settings)
            .await
            .map_err(|e| e.to_string())?;
        Ok(kernel
            .adopt(&answer.children, Outcome::text(answer.text))
            .await)
    }
}

#[tokio::main]
async fn main() {
    agentos_sdk::run_or_exit(Sidekick).await
}
