//! The audit log as the kernel writes it: each decision is appended to the journal, in one write,
//! before it takes effect; a background thread moves the journal's records into the database in
//! batches, and whoever reads the log moves them first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use agentos_data::{AuditJournal, AuditRecord, JournalBatch, NewAuditEntry, Store};
use agentos_dbus_interfaces::Error;

/// Records that make the background thread commit before its next turn.
const BATCH: usize = 256;
/// How long records wait in the journal at most, when there are fewer than [`BATCH`].
const TURN: Duration = Duration::from_millis(200);

struct Shared {
    journal: Mutex<AuditJournal>,
    store: Arc<Mutex<Store>>,
    /// A batch taken from the journal that the database has not committed yet.
    taken: Mutex<Option<JournalBatch>>,
    stop: AtomicBool,
}

/// The kernel's handle on the audit log; dropping it commits what is left and stops the thread.
pub struct AuditLog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Commits what the journal held when called: a batch left by a failed commit, then the
    /// records appended since.
    fn commit(&self) -> Result<(), Error> {
        let mut taken = lock(&self.taken);
        for _ in 0..2 {
            if taken.is_none() {
                *taken = lock(&self.journal).take();
            }
            let Some(batch) = taken.take() else {
                return Ok(());
            };
            if let Err(e) = lock(&self.store).commit_journal_batch(&batch) {
                // Kept in its journal file, and tried again on the next turn.
                *taken = Some(batch);
                return Err(Error::Failed(format!(
                    "the audit log cannot be written: {e}"
                )));
            }
            lock(&self.journal)
                .retire(batch)
                .map_err(|e| Error::Failed(format!("the audit journal cannot be emptied: {e}")))?;
        }
        Ok(())
    }
}

impl AuditLog {
    /// Opens the journal (committing what an earlier run left in it) and starts the thread that
    /// moves records into the database. Damaged journal files are kept aside, logged and recorded.
    pub fn start(store: Arc<Mutex<Store>>, now: u64) -> anyhow::Result<AuditLog> {
        let (journal, recovery) = lock(&store).open_audit_journal()?;
        if recovery.recovered > 0 {
            tracing::info!(
                records = recovery.recovered,
                "committed audit records an earlier run left in the journal"
            );
        }
        let shared = Arc::new(Shared {
            journal: Mutex::new(journal),
            store,
            taken: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let log = AuditLog {
            thread: Some({
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("agentos-audit".into())
                    .spawn(move || loop {
                        std::thread::park_timeout(TURN);
                        if let Err(e) = shared.commit() {
                            tracing::error!(error = %e, "cannot commit the audit journal");
                        }
                        if shared.stop.load(Ordering::Acquire) {
                            break;
                        }
                    })?
            }),
            shared,
        };
        for kept in &recovery.damaged {
            tracing::error!(file = %kept.display(), "the audit journal was damaged; kept aside");
            log.append(NewAuditEntry {
                time: now,
                principal: "agentosd".into(),
                capability: "audit".into(),
                scope: kept.display().to_string(),
                decision: "damaged".into(),
                reason: "journal records that could not be verified were kept aside".into(),
            })?;
        }
        Ok(log)
    }

    /// Appends a record to the journal; when this returns `Ok` the record survives a crash of
    /// the kernel.
    pub fn append(&self, entry: NewAuditEntry) -> Result<AuditRecord, Error> {
        let (record, pending) = {
            let mut journal = lock(&self.shared.journal);
            let record = journal
                .append(entry)
                .map_err(|e| Error::Failed(format!("the audit log cannot be written: {e}")))?;
            (record, journal.pending())
        };
        if pending >= BATCH {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
        Ok(record)
    }

    /// Commits every record appended so far to the database (before the log is read).
    pub fn commit(&self) -> Result<(), Error> {
        self.shared.commit()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
