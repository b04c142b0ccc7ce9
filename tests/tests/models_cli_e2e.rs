//! End-to-end: `agentctl models` with no model server and no key (each half says so), and with
//! the kernel stopped (the stored keys still listed, and why the models are not); `agentctl
//! usage` on a kernel with no model use yet. (No Secret Service at all: `secrets_e2e`.)

use std::io::Write;
use std::process::{Command, Stdio};

use agentos_tests::keyring::Keyring;
use agentos_tests::{bin, bounded, Env};

/// `agentctl --address <bus> args`, with `input` on stdin.
fn agentctl(env: &Env, args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin("agentctl"))
        .arg("--address")
        .arg(&env.address)
        .args(args)
        .env("XDG_RUNTIME_DIR", env.root().join("run"))
        .env("HOME", env.home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agentctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("agentctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A kernel that looks for no local model server (so none on this machine is found).
async fn without_local_servers(env: &mut Env) {
    env.restart_with_model_settings("[local]\nollama = \"off\"\nllama-server = \"off\"\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_each_half_it_can_and_usage_starts_empty() {
    bounded(async {
        let mut env = Env::start().await;
        without_local_servers(&mut env).await;

        // No model server, no key: each half says so.
        let keyring = Keyring::start(&env).await;
        let (code, stdout, stderr) = agentctl(&env, &["models"], "");
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(stdout.contains("models: none found"), "{stdout}");
        assert!(stdout.contains("keys: no provider keys stored"), "{stdout}");
        let (code, json, _) = agentctl(&env, &["models", "--json"], "");
        assert_eq!(code, Some(0));
        assert!(
            json.contains("\"models\": []") && json.contains("\"keys\": []"),
            "{json}"
        );
        assert!(!json.contains("unavailable"), "{json}");

        // Nothing asked of a model yet.
        let (code, stdout, stderr) = agentctl(&env, &["usage"], "");
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, "no model use recorded yet\n");
        let (code, stdout, _) = agentctl(&env, &["usage", "--json"], "");
        assert_eq!((code, stdout.trim()), (Some(0), "[]"));

        // A key stored, then the kernel stopped: the key is still listed, and why models are not.
        let (code, _, stderr) = agentctl(&env, &["models", "add", "anthropic"], "sk-ant-test-0000");
        assert_eq!(code, Some(0), "{stderr}");
        assert!(env.stop_kernel("TERM").await.success());
        let (code, stdout, stderr) = agentctl(&env, &["models"], "");
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(
            stdout.contains(
                "models: none listed, the model broker runs in agentosd: agentosd is not running"
            ),
            "{stdout}"
        );
        assert!(stdout.contains("Keys in the Secret Service:"), "{stdout}");
        assert!(stdout.contains("anthropic  default"), "{stdout}");
        assert!(!stdout.contains("sk-ant-test") && !stderr.contains("sk-ant-test"));
        let (code, json, _) = agentctl(&env, &["models", "--json"], "");
        assert_eq!(code, Some(0));
        assert!(
            json.contains("\"models_unavailable\": \"agentosd is not running"),
            "{json}"
        );
        assert!(json.contains("\"provider\": \"anthropic\""), "{json}");

        drop(keyring);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_file_the_kernel_could_not_use_is_named_with_why() {
    bounded(async {
        let mut env = Env::start().await;
        // A typo (an underscore for a hyphen): the whole file is set aside.
        env.restart_with_model_settings(
            "[local]\nollama = \"off\"\nllama-server = \"off\"\n\n[budget.principals.host]\ntokens_per_hour = 500\n",
        )
        .await;
        let (code, stdout, stderr) = agentctl(&env, &["models"], "");
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert!(
            stdout.starts_with("settings: agentosd ignored ")
                && stdout.contains("models.toml and uses its defaults")
                && stdout.contains("  unknown field `tokens_per_hour`"),
            "{stdout}"
        );
        let (_, json, _) = agentctl(&env, &["models", "--json"], "");
        assert!(json.contains("\"settings_ignored\""), "{json}");
        // Corrected, and the kernel restarted: nothing more is said.
        without_local_servers(&mut env).await;
        let (_, stdout, _) = agentctl(&env, &["models"], "");
        assert!(!stdout.contains("settings:"), "{stdout}");
        assert!(stdout.starts_with("models: none found"), "{stdout}");
    })
    .await;
}
