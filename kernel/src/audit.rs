//! The audit writer: one thread appends every decision to the hash-chained log, committing the
//! records that arrive together in one transaction (group commit). Whoever records a decision
//! waits until its record is committed.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use agentos_data::{NewAuditEntry, Store};
use agentos_dbus_interfaces::Error;
use tokio::sync::oneshot;

/// Most records committed in one transaction.
const MAX_BATCH: usize = 256;

type Job = (NewAuditEntry, oneshot::Sender<Result<(), String>>);

/// A handle to the writer thread (it ends when the last handle is dropped).
pub struct AuditWriter {
    jobs: mpsc::Sender<Job>,
}

impl AuditWriter {
    pub fn start(store: Arc<Mutex<Store>>) -> std::io::Result<AuditWriter> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("agentos-audit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let entries: Vec<NewAuditEntry> =
                        batch.iter().map(|(e, _)| e.clone()).collect();
                    let result = store
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .append_audit_batch(&entries)
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "cannot write the audit log");
                    }
                    for (_, done) in batch {
                        let _ = done.send(result.clone());
                    }
                }
            })?;
        Ok(AuditWriter { jobs })
    }

    /// Append a record and wait until it is committed.
    pub async fn append(&self, entry: NewAuditEntry) -> Result<(), Error> {
        let (done, committed) = oneshot::channel();
        self.jobs
            .send((entry, done))
            .map_err(|_| Error::Failed("the audit log writer has stopped".into()))?;
        committed
            .await
            .map_err(|_| Error::Failed("the audit log writer has stopped".into()))?
            .map_err(|e| Error::Failed(format!("the audit log cannot be written: {e}")))
    }
}
