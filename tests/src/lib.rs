//! The end-to-end harness: a private `dbus-daemon` per test, the real `agentosd` on it with the
//! built-in and test agents, a scripted consent responder, and helpers that always time out.

pub mod bench;
pub mod consent;
pub mod contract;
pub mod display;
pub mod env;
pub mod flatpak;
pub mod keyring;
pub mod local_llm;
pub mod model_fixture;
pub mod model_server;

pub use consent::{ConsentReply, Responder};
pub use env::{bin, channel_on, Env, Services};

/// Every wait in a test is bounded by this.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Run a test body under [`TIMEOUT`]; a hang fails the test instead of blocking the suite.
pub async fn bounded<F: std::future::Future>(body: F) -> F::Output {
    bounded_for(TIMEOUT, body).await
}

/// Like [`bounded`] with a longer limit, for tests that run several processes in turn.
pub async fn bounded_for<F: std::future::Future>(limit: std::time::Duration, body: F) -> F::Output {
    match tokio::time::timeout(limit, body).await {
        Ok(out) => out,
        Err(_) => panic!("the test did not finish within {} s", limit.as_secs()),
    }
}

/// Whether bubblewrap can create namespaces here (sandbox tests skip, saying why, where not).
pub fn bwrap_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        std::process::Command::new("bwrap")
            .args(["--ro-bind", "/", "/", "--unshare-all", "true"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}
