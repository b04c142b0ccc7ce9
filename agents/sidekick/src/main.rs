//! `agentos-agent-sidekick`: the built-in agent the user talks to (`agentctl ask`); see the
//! library for what it does.

use agentos_agent_sidekick::{run, sdk};
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
