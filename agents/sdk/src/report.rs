//! How a task's end reaches the kernel: its result and files; else, when the kernel refuses
//! them, the result alone naming the files left out; else a failure. A panic in the agent fails
//! the task too, so no task is left running for nothing.

use std::any::Any;
use std::fs::File;
use std::future::Future;

use agentos_dbus_interfaces::names::{MAX_NAME_LEN, MAX_RESULT_LEN};
use agentos_dbus_interfaces::proxies::Host1Proxy;
use agentos_dbus_interfaces::Error;
use tokio::task::JoinHandle;
use zbus::zvariant::Fd;

use crate::Outcome;

/// The two calls that end a task, as the kernel's `Host1` answers them.
pub(crate) trait Ending {
    fn complete(
        &self,
        task: u64,
        result: &str,
        artifacts: &[(String, File)],
    ) -> impl Future<Output = Result<(), Error>> + Send;
    fn fail(&self, task: u64, message: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

impl Ending for Host1Proxy<'_> {
    async fn complete(
        &self,
        task: u64,
        result: &str,
        artifacts: &[(String, File)],
    ) -> Result<(), Error> {
        let fds: Vec<(&str, Fd<'_>)> = artifacts
            .iter()
            .map(|(n, f)| (n.as_str(), Fd::from(f)))
            .collect();
        Host1Proxy::complete(self, task, result, &fds).await
    }

    async fn fail(&self, task: u64, message: &str) -> Result<(), Error> {
        Host1Proxy::fail(self, task, message).await
    }
}

/// What became of an agent's `run`: its outcome, or the payload of the panic that ended it.
pub(crate) type Ran = Result<Result<Outcome, String>, Box<dyn Any + Send>>;

/// What became of the spawned `run` of a task: `None` when it was canceled (aborted), which
/// the kernel already knows.
pub(crate) async fn ran(run: JoinHandle<Result<Outcome, String>>) -> Option<Ran> {
    match run.await {
        Ok(outcome) => Some(Ok(outcome)),
        Err(e) if e.is_panic() => Some(Err(e.into_panic())),
        Err(_) => None,
    }
}

/// Tell the kernel how `task` ended.
pub(crate) async fn report(host: &impl Ending, task: u64, ran: Ran) -> Result<(), Error> {
    let out = match ran {
        Ok(Ok(out)) => out,
        Ok(Err(message)) => return host.fail(task, &fit(&message, MAX_NAME_LEN)).await,
        Err(panic) => {
            let message = format!(
                "the agent stopped on an internal error: {}",
                panic_text(panic.as_ref())
            );
            return host.fail(task, &fit(&message, MAX_NAME_LEN)).await;
        }
    };
    let result = fit(&out.result, MAX_RESULT_LEN);
    let why = match host.complete(task, &result, &out.artifacts).await {
        Ok(()) => return Ok(()),
        Err(e) => refusal(&e),
    };
    if !out.artifacts.is_empty() {
        // The files are the likelier cause (too large, too many, a quota): keep the answer.
        let names: Vec<&str> = out.artifacts.iter().map(|(n, _)| n.as_str()).collect();
        let note = format!(
            "\n\n(The kernel refused this task's files, so they were left out: {}. Reason: {why}.)",
            names.join(", ")
        );
        let shorter = fit(&out.result, MAX_RESULT_LEN.saturating_sub(note.len()));
        match host.complete(task, &format!("{shorter}{note}"), &[]).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(task, error = %e, "the result without its files was refused too")
            }
        }
    }
    let message = format!("the kernel refused the result: {why}");
    host.fail(task, &fit(&message, MAX_NAME_LEN)).await
}

/// The reason in an error from the kernel, without the D-Bus error's name.
fn refusal(e: &Error) -> String {
    match e {
        Error::InvalidArgument(why) | Error::Failed(why) => why.clone(),
        other => other.to_string(),
    }
}

/// The words a panic was raised with, when it had any.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "it panicked"
    }
}

/// `text` as the kernel takes it: without NUL characters (which it refuses) and at most
/// `max_bytes` long, cut at a character boundary and marked `…` when cut.
fn fit(text: &str, max_bytes: usize) -> String {
    let clean = text.replace('\0', "");
    if clean.len() <= max_bytes {
        return clean;
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &clean[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A kernel that records the calls and refuses a completion while `refusals` lasts, or any
    /// result with a NUL (as the real one does).
    #[derive(Default)]
    struct Kernel {
        refusals: Mutex<usize>,
        calls: Mutex<Vec<String>>,
    }

    impl Ending for Kernel {
        async fn complete(
            &self,
            _task: u64,
            result: &str,
            artifacts: &[(String, File)],
        ) -> Result<(), Error> {
            let names: Vec<&str> = artifacts.iter().map(|(n, _)| n.as_str()).collect();
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("complete {result:?} {names:?}"));
            if result.contains('\0') {
                return Err(Error::InvalidArgument(
                    "the result contains a NUL character".into(),
                ));
            }
            let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            if *refusals > 0 {
                *refusals -= 1;
                return Err(Error::QuotaExceeded("the artifact quota is used up".into()));
            }
            Ok(())
        }

        async fn fail(&self, _task: u64, message: &str) -> Result<(), Error> {
            self.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("fail {message:?}"));
            Ok(())
        }
    }

    impl Kernel {
        fn refusing(n: usize) -> Kernel {
            Kernel {
                refusals: Mutex::new(n),
                ..Kernel::default()
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }

    #[tokio::test]
    async fn a_result_with_nul_characters_is_completed_without_them() {
        let k = Kernel::default();
        report(&k, 1, Ok(Ok(Outcome::text("a\0b")))).await.unwrap();
        assert_eq!(k.calls(), [r#"complete "ab" []"#]);
    }

    #[tokio::test]
    async fn refused_files_are_dropped_and_named_and_the_answer_kept() {
        let k = Kernel::refusing(1);
        let out = Outcome::text("the answer")
            .with_artifact("big.pdf", b"x")
            .unwrap();
        report(&k, 1, Ok(Ok(out))).await.unwrap();
        let calls = k.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0], r#"complete "the answer" ["big.pdf"]"#);
        assert!(
            calls[1].starts_with(r#"complete "the answer\n\n(The kernel refused this task's files, so they were left out: big.pdf. Reason: "#),
            "{}",
            calls[1]
        );
        assert!(calls[1].ends_with("[]"), "{}", calls[1]);
    }

    #[tokio::test]
    async fn a_result_refused_twice_fails_the_task_with_the_reason() {
        let k = Kernel::refusing(2);
        let out = Outcome::text("x").with_artifact("a.txt", b"x").unwrap();
        report(&k, 1, Ok(Ok(out))).await.unwrap();
        let calls = k.calls();
        assert_eq!(calls.len(), 3, "{calls:?}");
        assert!(calls[2].starts_with(r#"fail "the kernel refused the result: "#));
    }

    #[tokio::test]
    async fn a_panic_in_run_fails_the_task_with_a_plain_message() {
        let k = Kernel::default();
        let run = tokio::spawn(async {
            if std::hint::black_box(true) {
                panic!("index out of bounds");
            }
            Ok(Outcome::default())
        });
        let ran = ran(run).await.expect("a panic is not a cancellation");
        report(&k, 1, ran).await.unwrap();
        assert_eq!(
            k.calls(),
            [r#"fail "the agent stopped on an internal error: index out of bounds""#]
        );
    }

    #[tokio::test]
    async fn a_canceled_run_reports_nothing() {
        let run = tokio::spawn(std::future::pending());
        run.abort();
        assert!(ran(run).await.is_none());
    }

    #[tokio::test]
    async fn a_failure_message_is_cut_to_what_the_kernel_takes() {
        let k = Kernel::default();
        report(&k, 1, Ok(Err("é\0".repeat(10_000)))).await.unwrap();
        let calls = k.calls();
        assert!(calls[0].len() <= MAX_NAME_LEN + 10 && !calls[0].contains('\0'));
        assert!(
            calls[0].ends_with("…\""),
            "{}",
            &calls[0][calls[0].len() - 10..]
        );
    }
}
