//! Locking the kernel's shared state: a lock a panicking holder poisoned is taken anyway (the
//! state it guards is kept consistent under the lock, and a kernel that stopped taking it would
//! stop answering). And starting a task on the kernel's one thread without waiting its turn.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, poisoned or not.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Poll `task` here, once, and spawn what remains of it: its first steps (a model request handed
/// to its connection) happen now, not after every task already queued on the kernel's thread.
pub(crate) async fn begin_here<F>(task: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut task = Box::pin(task);
    if futures_util::poll!(task.as_mut()).is_pending() {
        tokio::spawn(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_task_begun_here_takes_its_first_step_now_and_the_rest_in_its_own_task() {
        let steps = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let counted = Arc::clone(&steps);
        begin_here(async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = rx.await;
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(
            steps.load(Ordering::SeqCst),
            1,
            "the first step, before any other task"
        );
        tx.send(()).unwrap();
        for _ in 0..100 {
            if steps.load(Ordering::SeqCst) == 2 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the rest did not run in its own task");
    }
}
