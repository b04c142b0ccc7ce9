//! Finished requests' usage reaches the store off the kernel's thread, in batches: requests that
//! end while a batch is being written wait for the next one, which is written in one
//! transaction by one blocking task. A burst of 64 streams ending together costs a few commits on
//! one thread, not 64 commits on 64 threads contending for the store. Each request still hears
//! that its rows are stored (or why not) before its caller reads the stream's end. Nothing runs
//! while nothing ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use agentos_data::{ModelSpend, ModelUsage, Store};
use tokio::sync::oneshot;

use crate::sync::lock;

/// What one finished request adds: its usage rows and its principals' budget spending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Used {
    pub rows: Vec<ModelUsage>,
    pub spent: Vec<ModelSpend>,
}

/// What waits for the next batch, each request's with the one who waits for it.
type Waiting = Vec<(Used, oneshot::Sender<Result<(), String>>)>;

#[derive(Default)]
struct Queue {
    waiting: Waiting,
    /// A blocking task is writing (it takes what waits until nothing does).
    writing: bool,
}

/// The broker's writer of usage rows (one per kernel, shared by every run).
pub struct UsageWriter {
    store: Arc<Mutex<Store>>,
    queue: Mutex<Queue>,
    /// Transactions committed so far.
    commits: AtomicU64,
}

impl UsageWriter {
    pub fn new(store: Arc<Mutex<Store>>) -> Arc<UsageWriter> {
        Arc::new(UsageWriter {
            store,
            queue: Mutex::default(),
            commits: AtomicU64::new(0),
        })
    }

    /// The store it writes to.
    pub fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }

    /// Add what one finished request used to the store; returns once it is committed.
    pub async fn add(self: &Arc<Self>, used: Used) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = lock(&self.queue);
            q.waiting.push((used, tx));
            !std::mem::replace(&mut q.writing, true)
        };
        if start {
            let me = Arc::clone(self);
            tokio::task::spawn_blocking(move || me.drain());
        }
        rx.await
            .unwrap_or_else(|_| Err("the usage writer stopped".into()))
    }

    /// Write batches until nothing waits.
    fn drain(&self) {
        let _unwinding = Unwinding(self);
        loop {
            let batch = {
                let mut q = lock(&self.queue);
                if q.waiting.is_empty() {
                    q.writing = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            self.write(batch);
        }
    }

    /// One transaction for the whole batch; if it fails, each request's rows on their own, so
    /// each hears its own outcome.
    fn write(&self, batch: Waiting) {
        let rows: Vec<ModelUsage> = batch
            .iter()
            .flat_map(|(u, _)| u.rows.iter().cloned())
            .collect();
        let spent: Vec<ModelSpend> = batch
            .iter()
            .flat_map(|(u, _)| u.spent.iter().cloned())
            .collect();
        let store = lock(&self.store);
        if store.add_model_use(&rows, &spent).is_ok() {
            self.commits.fetch_add(1, Ordering::Relaxed);
            for (_, tx) in batch {
                let _ = tx.send(Ok(()));
            }
            return;
        }
        for (used, tx) in batch {
            let written = store
                .add_model_use(&used.rows, &used.spent)
                .map_err(|e| e.to_string());
            if written.is_ok() {
                self.commits.fetch_add(1, Ordering::Relaxed);
            }
            let _ = tx.send(written);
        }
    }

    /// Transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// A writer that panics (it should not) does not leave the queue waiting for it: whoever waits
/// is told, and the next request starts a new writer.
struct Unwinding<'a>(&'a UsageWriter);

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut q = lock(&self.0.queue);
        q.writing = false;
        for (_, tx) in q.waiting.drain(..) {
            let _ = tx.send(Err("the usage writer failed".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(who: &str, tokens: u64) -> ModelUsage {
        ModelUsage {
            kind: "agent".into(),
            who: who.into(),
            owner: who.into(),
            requests: 1,
            input_tokens: tokens,
            output_tokens: 1,
            millis: 2,
            cost_micros: 3,
            unpriced: 0,
        }
    }

    /// One request's rows and its spending (in hour 5 of day 0).
    fn used(who: &str, tokens: u64) -> Used {
        Used {
            rows: vec![row(who, tokens)],
            spent: vec![ModelSpend {
                principal: who.into(),
                hour: 5,
                hour_tokens: tokens,
                day: 0,
                day_tokens: tokens,
            }],
        }
    }

    fn opened() -> (tempfile::TempDir, Arc<Mutex<Store>>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, Arc::new(Mutex::new(store)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_ending_together_are_all_counted_in_fewer_commits() {
        let (_dir, store) = opened();
        let writer = UsageWriter::new(Arc::clone(&store));
        // Another thread holds the store, so that every request queues behind the first batch.
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, is_held) = std::sync::mpsc::channel::<()>();
        let holder = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let _g = lock(&store);
                held.send(()).unwrap();
                let _ = released.recv();
            })
        };
        is_held.recv().unwrap();
        let called = Arc::new(AtomicU64::new(0));
        let adds: Vec<_> = (0..64u64)
            .map(|i| {
                let (w, called) = (Arc::clone(&writer), Arc::clone(&called));
                let who = if i % 2 == 0 { "a" } else { "b" };
                tokio::spawn(async move {
                    called.fetch_add(1, Ordering::SeqCst);
                    w.add(used(who, i)).await
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while called.load(Ordering::SeqCst) < 64 {
            assert!(
                std::time::Instant::now() < deadline,
                "the requests did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(writer.commits(), 0);
        release.send(()).unwrap();
        holder.join().unwrap();
        for a in adds {
            a.await.unwrap().unwrap();
        }
        let rows = lock(&store).list_model_usage(None).unwrap();
        let of = |who: &str| {
            rows.iter()
                .find(|r| r.kind == "agent" && r.who == who)
                .cloned()
        };
        let (a, b) = (of("a").unwrap(), of("b").unwrap());
        assert_eq!((a.requests, b.requests), (32, 32));
        assert_eq!(a.input_tokens, (0..64).step_by(2).sum::<u64>());
        assert_eq!(b.input_tokens, (1..64).step_by(2).sum::<u64>());
        let spent: Vec<(String, u64)> = lock(&store)
            .model_spend()
            .unwrap()
            .into_iter()
            .map(|s| (s.principal, s.hour_tokens))
            .collect();
        assert_eq!(
            spent,
            [
                ("a".into(), (0..64).step_by(2).sum::<u64>()),
                ("b".into(), (1..64).step_by(2).sum::<u64>())
            ]
        );
        assert!(
            writer.commits() <= 3,
            "64 requests in {} commits",
            writer.commits()
        );
        // It sends the answers before it looks at the queue again and stops.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lock(&writer.queue).writing {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer did not stop once nothing waited"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn requests_one_after_another_are_each_written() {
        let (_dir, store) = opened();
        let writer = UsageWriter::new(Arc::clone(&store));
        let within = |f| tokio::time::timeout(std::time::Duration::from_secs(10), f);
        within(writer.add(used("a", 1))).await.unwrap().unwrap();
        within(writer.add(used("a", 2))).await.unwrap().unwrap();
        let rows = lock(&store).list_model_usage(None).unwrap();
        assert_eq!(rows.iter().map(|r| r.requests).sum::<u64>(), 2);
        assert_eq!(writer.commits(), 2);
    }
}
