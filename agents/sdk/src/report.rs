//! How a task's end reaches the kernel: its result and files, else a failure. A panic in the
//! agent fails the task too, so no task is left running for nothing.

use std::any::Any;
use std::fs::File;
use std::future::Future;

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
        Ok(Err(message)) => return host.fail(task, &message).await,
        Err(panic) => {
            let message = format!(
                "the agent stopped on an internal error: {}",
                panic_text(panic.as_ref())
            );
            return host.fail(task, &message).await;
        }
    };
    match host.complete(task, &out.result, &out.artifacts).await {
        // The kernel refused the result (a bad artifact, say): fail the task with the reason
        // rather than leave it running.
        Err(Error::InvalidArgument(why)) => {
            host.fail(task, &format!("the kernel refused the result: {why}"))
                .await
        }
        other => other,
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
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
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
}
