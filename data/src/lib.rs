//! The durable state of the AgentOS kernel: tasks, artifacts, "always" grants and the hash-chained
//! audit log, in one SQLite database plus a content-addressed artifact directory.
//!
//! The API is synchronous; the daemon wraps a [`Store`] in a mutex. The store never reads a clock:
//! every time (milliseconds since the Unix epoch) is passed in by the caller.

mod agent_fingerprints;
mod artifacts;
mod audit;
mod audit_checkpoint;
mod audit_journal;
mod audit_verify;
mod error;
mod grants;
mod migrations;
mod spend;
mod tasks;
mod usage;

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

pub use agent_fingerprints::{AgentFingerprint, ExecStamp};
pub use agentos_dbus_interfaces::{ArtifactInfo, AuditRecord, GrantInfo, TaskInfo, TaskState};
pub use audit::{NewAuditEntry, GENESIS_HASH};
pub use audit_checkpoint::{Checkpoint, CheckpointCheck, CHECKPOINT_FILE};
pub use audit_journal::{AuditJournal, JournalBatch, JournalRecovery, JOURNAL_FILES};
pub use audit_verify::AuditVerification;
pub use error::StoreError;
pub use migrations::SCHEMA_VERSION;
pub use spend::ModelSpend;
pub use tasks::{NewTask, TaskUpdate};
pub use usage::ModelUsage;

/// The database file inside the store directory.
pub const DB_FILE: &str = "agentos.db";
/// The artifact directory inside the store directory.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// The kernel's persistent state. One `Store` per directory at a time.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
    artifacts: PathBuf,
}

impl Store {
    /// Opens or creates `<dir>/agentos.db` and `<dir>/artifacts/` (directories are created with
    /// mode 0700) and brings the schema up to date.
    ///
    /// The database runs in WAL mode with `synchronous=NORMAL`: a committed change survives a crash
    /// of the process; after a power loss or kernel panic the last few commits may be lost, but the
    /// database stays consistent. Foreign keys are enforced and a locked database is retried for
    /// up to 5 seconds. Unfinished artifact uploads left by a crash are removed.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        make_private_dir(dir)?;
        let artifacts = dir.join(ARTIFACTS_DIR);
        make_private_dir(&artifacts)?;
        artifacts::clear_temp(&artifacts)?;
        let mut conn = Connection::open(dir.join(DB_FILE))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        migrations::migrate(&mut conn)?;
        Ok(Store {
            conn,
            dir: dir.to_path_buf(),
            artifacts,
        })
    }

    /// A write transaction, taking the write lock at once.
    pub(crate) fn begin(&self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
    }

    /// The number of schema migrations applied to the database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        migrations::user_version(&self.conn)
    }
}

/// Creates `dir` and its missing parents with mode 0700 (an existing directory is left as it is).
fn make_private_dir(dir: &Path) -> Result<(), StoreError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use tempfile::TempDir;

    #[test]
    fn open_creates_private_dirs_and_sets_pragmas() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("state");
        let store = Store::open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(dir.join(ARTIFACTS_DIR).is_dir());
        let journal: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn committed_data_survives_an_unclean_exit() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let task = store
            .insert_task(&NewTask {
                parent: 0,
                agent: "docs".into(),
                caller: "cli".into(),
                goal: "summarise".into(),
                state: TaskState::Working,
                created: 10,
                deadline: 0,
            })
            .unwrap();
        store
            .put_artifact(task, "out.txt", &mut &b"hello"[..], 1024)
            .unwrap();
        store
            .insert_grant(&GrantInfo {
                principal: "docs".into(),
                capability: "fs.read".into(),
                scope: "~/Documents".into(),
                lifetime: "always".into(),
                granted_at: 11,
            })
            .unwrap();
        for i in 0..3 {
            store
                .append_audit(&NewAuditEntry {
                    time: 20 + i,
                    principal: "docs".into(),
                    capability: "fs.read".into(),
                    scope: "~/Documents".into(),
                    decision: "allow".into(),
                    reason: "grant".into(),
                })
                .unwrap();
        }
        // Simulate a crash: no destructor runs, the WAL is never checkpointed.
        std::mem::forget(store);

        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.get_task(task).unwrap().unwrap().goal, "summarise");
        assert_eq!(store.list_grants().unwrap().len(), 1);
        assert_eq!(store.read_audit(0, 100).unwrap().len(), 3);
        assert!(store.verify_audit().unwrap().ok);
        let mut text = String::new();
        store
            .open_artifact(task, "out.txt")
            .unwrap()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");
    }
}
