//! `agentos-agent-docs`: the built-in documents agent's program (see the library for what it does).

#[tokio::main]
async fn main() {
    agentos_sdk::run_or_exit(agentos_agent_docs::Docs).await
}
