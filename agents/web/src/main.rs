//! `agentos-agent-web`: the built-in web agent's program (see the library for what it does).

#[tokio::main]
async fn main() {
    agentos_sdk::run_or_exit(agentos_agent_web::Web).await
}
