//! The audit log as the kernel writes it: each decision is appended to the journal, in one write,
//! before it takes effect; a background thread moves the journal's records into the database in
//! batches, and whoever reads the log moves them first.
//!
//! The thread sleeps without a timeout while the journal is empty: the append that finds it empty
//! wakes it, and it commits when that record's turn ends (or at once when a batch is full), then
//! sleeps again. An idle kernel's audit thread never wakes.
//!
//! At start, what is stored is checked against the log: the database against the checkpoint
//! beside it (a log cut short or rewritten is recorded as a finding), and each stored grant
//! against the record that gave it (a grant no intact record gave, or one whose latest record
//! took it away, is not honoured, is removed, and a "revoke" record says so).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::lock;
use agentos_data::{
    AuditJournal, AuditRecord, CheckpointCheck, GrantInfo, JournalBatch, NewAuditEntry, Store,
};
use agentos_dbus_interfaces::Error;

/// The principal of the records the kernel makes about the log itself.
pub const FINDER: &str = "agentosd";
/// The capability of a record saying what comparing the log with its checkpoint found at start;
/// its scope is the finding's word (`CheckpointCheck::word`).
pub const CHECKPOINT_FINDING: &str = "audit.checkpoint";

/// Principal, capability and scope of a stored grant.
type GrantKey = (String, String, String);

fn key(g: &GrantInfo) -> GrantKey {
    (g.principal.clone(), g.capability.clone(), g.scope.clone())
}

/// What the log says of a stored grant, by the latest record that gave it or took it away.
enum Backing {
    /// No record did.
    Unseen,
    /// A record gave it ("always").
    Given,
    /// This record took it away, and how.
    Taken(u64, String),
}

/// Note what the record `r` does to the stored grants in `backing`. The reasons matched are
/// those `operations/grants.rs` ("granted by the user (always)") and `authorize/` ("the user
/// allowed it (always)") write.
fn note(backing: &mut HashMap<GrantKey, Backing>, r: &AuditRecord) {
    let exact = (r.principal.clone(), r.capability.clone(), r.scope.clone());
    match r.decision.as_str() {
        "grant" => {
            if let Some(b) = backing.get_mut(&exact) {
                *b = if r.reason.ends_with("(always)") {
                    Backing::Given
                } else {
                    Backing::Taken(r.seq, format!("replaced: {}", r.reason))
                };
            }
        }
        "allow" if r.reason == "the user allowed it (always)" => {
            if let Some(b) = backing.get_mut(&exact) {
                *b = Backing::Given;
            }
        }
        "revoke" => {
            for ((p, c, s), b) in backing.iter_mut() {
                if *p == r.principal && *c == r.capability && (r.scope == "*" || *s == r.scope) {
                    *b = Backing::Taken(r.seq, format!("revoked: {}", r.reason));
                }
            }
        }
        _ => {}
    }
}

/// Records that make the background thread commit before its next turn.
const BATCH: usize = 256;
/// How long records wait in the journal at most, when there are fewer than [`BATCH`]; also how
/// long a failed commit waits before it is tried again.
const TURN: Duration = Duration::from_millis(200);

/// The journal, and when its oldest record not yet taken was appended.
struct Journal {
    file: AuditJournal,
    oldest: Option<Instant>,
}

struct Shared {
    journal: Mutex<Journal>,
    store: Arc<Mutex<Store>>,
    /// A batch taken from the journal that the database has not committed yet.
    taken: Mutex<Option<JournalBatch>>,
    stop: AtomicBool,
    /// The thread's `/proc/thread-self`, for the tests that count its wakeups.
    #[cfg(test)]
    proc_path: std::sync::OnceLock<std::path::PathBuf>,
}

/// The kernel's handle on the audit log; dropping it commits what is left and stops the thread.
pub struct AuditLog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Shared {
    /// Commits what the journal held when called: a batch left by a failed commit, then the
    /// records appended since. Returns how many records it committed.
    fn commit(&self) -> Result<usize, Error> {
        let mut taken = lock(&self.taken);
        let mut committed = 0;
        for _ in 0..2 {
            if taken.is_none() {
                let mut journal = lock(&self.journal);
                *taken = journal.file.take();
                if taken.is_some() {
                    journal.oldest = None;
                }
            }
            let Some(batch) = taken.take() else {
                break;
            };
            if let Err(e) = lock(&self.store).commit_journal_batch(&batch) {
                // Kept in its journal file, and tried again on the next turn.
                *taken = Some(batch);
                return Err(Error::Failed(format!(
                    "the audit log cannot be written: {e}"
                )));
            }
            committed += batch.len();
            lock(&self.journal)
                .file
                .retire(batch)
                .map_err(|e| Error::Failed(format!("the audit journal cannot be emptied: {e}")))?;
        }
        Ok(committed)
    }

    /// When the thread must commit next, `None` while nothing waits: at once for a full batch
    /// or one that failed to commit, else when the oldest record's turn ends.
    fn due(&self) -> Option<Instant> {
        let (oldest, pending) = {
            let journal = lock(&self.journal);
            (journal.oldest, journal.file.pending())
        };
        if pending >= BATCH || lock(&self.taken).is_some() {
            return Some(Instant::now());
        }
        oldest.map(|t| t + TURN)
    }

    /// The background thread: sleeps until something is due (without a timeout while nothing
    /// is), commits, and stops after a last commit when told to.
    fn run(&self) {
        #[cfg(test)]
        if let Ok(p) = std::fs::read_link("/proc/thread-self") {
            let _ = self.proc_path.set(std::path::Path::new("/proc").join(p));
        }
        // After a commit that failed or could take nothing, the next waits for a turn.
        let mut not_before: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::Acquire) {
                if let Err(e) = self.commit() {
                    tracing::error!(error = %e, "cannot commit the audit journal");
                }
                return;
            }
            let Some(due) = self.due() else {
                // Woken by the append that finds the journal empty, or by `Drop`.
                std::thread::park();
                continue;
            };
            let due = not_before.map_or(due, |n| n.max(due));
            let now = Instant::now();
            if due > now {
                std::thread::park_timeout(due - now);
                continue;
            }
            not_before = match self.commit() {
                Ok(n) if n > 0 => None,
                Ok(_) => Some(now + TURN),
                Err(e) => {
                    tracing::error!(error = %e, "cannot commit the audit journal");
                    Some(now + TURN)
                }
            };
        }
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
            journal: Mutex::new(Journal {
                file: journal,
                oldest: None,
            }),
            store,
            taken: Mutex::new(None),
            stop: AtomicBool::new(false),
            #[cfg(test)]
            proc_path: std::sync::OnceLock::new(),
        });
        let log = AuditLog {
            thread: Some({
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("agentos-audit".into())
                    .spawn(move || shared.run())?
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
        let check = &recovery.checkpoint;
        if check.is_problem() || matches!(check, CheckpointCheck::Missing { .. }) {
            if check.is_problem() {
                tracing::error!(finding = %check.describe(), "the audit log does not match its checkpoint");
            } else {
                tracing::warn!(finding = %check.describe(), "the audit checkpoint is missing");
            }
            log.append(NewAuditEntry {
                time: now,
                principal: FINDER.into(),
                capability: CHECKPOINT_FINDING.into(),
                scope: check.word().into(),
                decision: "damaged".into(),
                reason: format!("at start: {}", check.describe()),
            })?;
        }
        Ok(log)
    }

    /// The stored grants the audit log backs, with the journal an earlier run left committed
    /// first. A stored grant is honoured only when the log, intact up to where it is read,
    /// holds the record that gave it ("grant" from the user's tools, or "allow" for a dialog's
    /// "always" answer) and no later record took it away (a revocation, or a grant of another
    /// lifetime that replaced it). Any other is deleted from the store, and a "revoke" record
    /// names it and why.
    pub fn checked_grants(&self, now: u64) -> anyhow::Result<Vec<GrantInfo>> {
        self.commit()
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let (stored, backing, intact) = {
            let store = lock(&self.shared.store);
            let stored = store.list_grants()?;
            if stored.is_empty() {
                return Ok(stored);
            }
            let mut backing: HashMap<GrantKey, Backing> =
                stored.iter().map(|g| (key(g), Backing::Unseen)).collect();
            let v = store.walk_audit(|r| note(&mut backing, r))?;
            (stored, backing, (!v.ok).then_some(v.records))
        };
        let mut kept = Vec::new();
        for g in stored {
            let why = match &backing[&key(&g)] {
                Backing::Given => {
                    kept.push(g);
                    continue;
                }
                Backing::Unseen => "no audit record gave this grant: it was put in the store \
                                    behind the kernel's back (or the kernel stopped between \
                                    storing and recording it)"
                    .to_string(),
                Backing::Taken(seq, what) => format!(
                    "audit record {seq} took this grant away ({what}), yet it was in the store: \
                     it was put back behind the kernel's back"
                ),
            };
            let mut reason = format!("a forged grant, not honoured and removed: {why}");
            if let Some(good) = intact {
                reason.push_str(&format!(
                    "; the audit log is intact only up to record {good}, later records were not \
                     trusted"
                ));
            }
            tracing::error!(principal = %g.principal, capability = %g.capability, scope = %g.scope, "{reason}");
            lock(&self.shared.store).delete_grants(&g.principal, &g.capability, Some(&g.scope))?;
            self.append(NewAuditEntry {
                time: now,
                principal: g.principal,
                capability: g.capability,
                scope: g.scope,
                decision: "revoke".into(),
                reason,
            })
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        }
        Ok(kept)
    }

    /// Appends a record to the journal; when this returns `Ok` the record survives a crash of
    /// the kernel.
    pub fn append(&self, entry: NewAuditEntry) -> Result<AuditRecord, Error> {
        let (record, pending) = {
            let mut journal = lock(&self.shared.journal);
            let record = journal
                .file
                .append(entry)
                .map_err(|e| Error::Failed(format!("the audit log cannot be written: {e}")))?;
            if journal.oldest.is_none() {
                journal.oldest = Some(Instant::now());
            }
            (record, journal.file.pending())
        };
        // The first record starts the sleeping thread's turn; a full batch ends it early.
        if pending == 1 || pending >= BATCH {
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
        Ok(record)
    }

    /// Commits every record appended so far to the database (before the log is read).
    pub fn commit(&self) -> Result<(), Error> {
        self.shared.commit().map(drop)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> NewAuditEntry {
        NewAuditEntry {
            time: i,
            principal: "docs".into(),
            capability: "files.read".into(),
            scope: "~/Documents".into(),
            decision: "allow".into(),
            reason: "grant".into(),
        }
    }

    fn started() -> (tempfile::TempDir, Arc<Mutex<Store>>, AuditLog) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Mutex::new(Store::open(tmp.path()).unwrap()));
        let log = AuditLog::start(Arc::clone(&store), 0).unwrap();
        (tmp, store, log)
    }

    /// Records the database holds.
    fn committed(store: &Mutex<Store>) -> usize {
        lock(store).read_audit(0, 10_000).unwrap().len()
    }

    /// Waits until the database holds `n` records; returns how long that took.
    fn wait_committed(store: &Mutex<Store>, n: usize) -> Duration {
        let start = Instant::now();
        while committed(store) < n {
            assert!(start.elapsed() < Duration::from_secs(10), "not committed");
            std::thread::sleep(Duration::from_millis(2));
        }
        start.elapsed()
    }

    /// The background thread's context switches so far: each time it slept and woke.
    fn switches(log: &AuditLog) -> u64 {
        let start = Instant::now();
        let path = loop {
            if let Some(p) = log.shared.proc_path.get() {
                break p;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no thread");
            std::thread::sleep(Duration::from_millis(1));
        };
        let status = std::fs::read_to_string(path.join("status")).unwrap();
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .map(|l| l.split(':').nth(1).unwrap().trim().parse::<u64>().unwrap())
            .sum()
    }

    #[test]
    fn the_thread_does_not_wake_while_the_journal_is_empty() {
        let (_tmp, _store, log) = started();
        switches(&log);
        std::thread::sleep(Duration::from_millis(50));
        let before = switches(&log);
        std::thread::sleep(3 * TURN);
        assert_eq!(switches(&log), before, "the idle audit thread woke up");
    }

    #[test]
    fn a_record_is_committed_when_its_turn_ends_then_the_thread_sleeps() {
        let (_tmp, store, log) = started();
        let start = Instant::now();
        log.append(entry(1)).unwrap();
        wait_committed(&store, 1);
        let took = start.elapsed();
        assert!(took >= TURN, "committed before its turn ended: {took:?}");
        assert!(took < TURN * 3, "waited {took:?}, more than its turn");
        std::thread::sleep(Duration::from_millis(20));
        let before = switches(&log);
        std::thread::sleep(3 * TURN);
        assert_eq!(switches(&log), before, "the thread woke after committing");
        // And it wakes for the next record.
        log.append(entry(2)).unwrap();
        wait_committed(&store, 2);
    }

    #[test]
    fn a_full_batch_is_committed_before_its_turn_ends() {
        let (_tmp, store, log) = started();
        let start = Instant::now();
        for i in 0..BATCH as u64 {
            log.append(entry(i)).unwrap();
        }
        wait_committed(&store, BATCH);
        let took = start.elapsed();
        assert!(took < TURN, "a full batch waited {took:?}");
    }

    #[tokio::test]
    async fn a_stored_grant_no_record_gave_is_not_honoured_removed_and_recorded() {
        use crate::clock::ManualClock;
        use crate::kernel::Kernel;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1));
        let k = Kernel::for_test(dir.path(), vec![], Arc::clone(&clock));
        k.grant("docs", "files.read", "/home/u", "always")
            .await
            .unwrap();
        k.grant("web", "web.fetch", "example.org", "always")
            .await
            .unwrap();
        k.revoke("web", "web.fetch", "").await.unwrap();
        drop(k);
        // Rows put into the grants table while the kernel is stopped: one nobody gave, one
        // the user revoked.
        {
            let store = Store::open(dir.path()).unwrap();
            for (principal, capability, scope) in [
                ("evil", "files.read", "/home/u"),
                ("web", "web.fetch", "example.org"),
            ] {
                store
                    .insert_grant(&GrantInfo {
                        principal: principal.into(),
                        capability: capability.into(),
                        scope: scope.into(),
                        lifetime: "always".into(),
                        granted_at: 1,
                    })
                    .unwrap();
            }
        }
        let k = Kernel::for_test(dir.path(), vec![], Arc::clone(&clock));
        let live: Vec<String> = k.list_grants().into_iter().map(|g| g.principal).collect();
        assert_eq!(live, ["docs"]);
        let stored: Vec<String> = k
            .store()
            .list_grants()
            .unwrap()
            .into_iter()
            .map(|g| g.principal)
            .collect();
        assert_eq!(stored, ["docs"]);
        k.commit_audit().unwrap();
        let log = k.store().read_audit(0, 100).unwrap();
        let revoked: Vec<(&str, &str)> = log
            .iter()
            .filter(|r| r.decision == "revoke" && r.reason.starts_with("a forged grant"))
            .map(|r| (r.principal.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(revoked.len(), 2, "{revoked:?}");
        assert!(revoked[0].0 == "evil" && revoked[0].1.contains("no audit record gave"));
        assert!(revoked[1].0 == "web" && revoked[1].1.contains("took this grant away"));
        assert!(k.verify_audit_log(&crate::caller::Caller::Host).unwrap().ok);
        drop(k);
        // Not there again at the next start, and nothing more to record.
        let k = Kernel::for_test(dir.path(), vec![], clock);
        assert_eq!(k.list_grants().len(), 1);
        k.commit_audit().unwrap();
        assert_eq!(k.store().read_audit(0, 100).unwrap().len(), log.len());
    }

    #[test]
    fn reading_commits_first_and_dropping_commits_what_is_left() {
        let (_tmp, store, log) = started();
        log.append(entry(1)).unwrap();
        log.commit().unwrap();
        assert_eq!(committed(&store), 1);
        log.append(entry(2)).unwrap();
        log.append(entry(3)).unwrap();
        drop(log);
        assert_eq!(committed(&store), 3);
    }
}
