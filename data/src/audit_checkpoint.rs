//! The audit checkpoint: the newest committed record's seq and hash, kept in a small file beside
//! the database, so that a log whose tail was cut off (and whose head was set back to match) is
//! still told from an intact one.
//!
//! The file is replaced whole (written aside, then renamed over the old one) each time the
//! journal's records are committed, so it is always one complete checkpoint, old or new. It is
//! not synced: after a power failure it may be older than the database (harmless, the older
//! record is still compared), and rarely newer, if the database lost its last commits and the
//! journal lost them too; a check then reports those records as missing.
//!
//! What it cannot catch: a process running as the user can rewrite the database and this file
//! together. It catches a database edited, restored from a copy or cut short on its own.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::OptionalExtension;

use crate::{Store, StoreError};

/// The checkpoint file inside the store directory.
pub const CHECKPOINT_FILE: &str = "audit-checkpoint";

/// The first line of a checkpoint file.
const MAGIC: &str = "agentos-audit-checkpoint 1";

/// The newest record a commit left in the database, as the checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
}

/// What comparing the database with the checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointCheck {
    /// The record at the checkpoint's seq has the checkpoint's hash (seq 0: an empty log and no
    /// checkpoint yet, nothing to compare).
    Matched { seq: u64 },
    /// No checkpoint file beside a log that has records: its tail could not be checked.
    Missing { records: u64 },
    /// The file is there but cannot be read as a checkpoint.
    Unreadable(String),
    /// The log ends before the checkpoint's record: records were cut off.
    Truncated { checkpoint: u64, last: u64 },
    /// The record at the checkpoint's seq has another hash: the log was rewritten.
    Rewritten { seq: u64 },
}

impl Default for CheckpointCheck {
    fn default() -> Self {
        CheckpointCheck::Matched { seq: 0 }
    }
}

impl CheckpointCheck {
    /// One word for the outcome: matched, missing, unreadable, truncated or rewritten.
    pub fn word(&self) -> &'static str {
        match self {
            CheckpointCheck::Matched { .. } => "matched",
            CheckpointCheck::Missing { .. } => "missing",
            CheckpointCheck::Unreadable(_) => "unreadable",
            CheckpointCheck::Truncated { .. } => "truncated",
            CheckpointCheck::Rewritten { .. } => "rewritten",
        }
    }

    /// Whether the log was found cut short or rewritten, or the checkpoint damaged.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            CheckpointCheck::Unreadable(_)
                | CheckpointCheck::Truncated { .. }
                | CheckpointCheck::Rewritten { .. }
        )
    }

    /// The outcome in plain words.
    pub fn describe(&self) -> String {
        match self {
            CheckpointCheck::Matched { seq: 0 } => {
                "the log is empty and no checkpoint was written yet".into()
            }
            CheckpointCheck::Matched { seq } => format!(
                "audit record {seq} has the hash the checkpoint kept: the log was not cut short \
                 or rewritten up to it"
            ),
            CheckpointCheck::Missing { records } => format!(
                "there is no checkpoint beside a log of {records} records, so a tail cut off \
                 could not be told"
            ),
            CheckpointCheck::Unreadable(why) => format!("the checkpoint cannot be read: {why}"),
            CheckpointCheck::Truncated { checkpoint, last } => format!(
                "audit records {} to {checkpoint} are missing: the checkpoint says the log \
                 reached record {checkpoint}, the database ends at record {last} (cut short \
                 behind the kernel's back, or lost in a power failure)",
                last + 1
            ),
            CheckpointCheck::Rewritten { seq } => format!(
                "audit record {seq} is not the record the checkpoint kept: the log was \
                 rewritten from there on"
            ),
        }
    }
}

/// Replaces the checkpoint in `dir` with `seq` and `hash`: written aside, then renamed over.
pub(crate) fn write_checkpoint(dir: &Path, seq: u64, hash: &str) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.new"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(format!("{MAGIC}\n{seq} {hash}\n").as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    Ok(())
}

/// The checkpoint in `dir`: `Ok(None)` when there is none, `Err` saying why it cannot be read.
pub(crate) fn read_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, String> {
    let text = match std::fs::read_to_string(dir.join(CHECKPOINT_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err("it does not start as a checkpoint does".into());
    }
    let parsed = lines.next().and_then(|l| {
        let (seq, hash) = l.split_once(' ')?;
        let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Checkpoint {
            seq: seq.parse().ok()?,
            hash: ok.then(|| hash.to_string())?,
        })
    });
    parsed
        .map(Some)
        .ok_or_else(|| "its record line is not a sequence number and a hash".into())
}

impl Store {
    /// Compares the database's log with the checkpoint beside it.
    pub fn check_audit_checkpoint(&self) -> Result<CheckpointCheck, StoreError> {
        let last: u64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0))?;
        let cp = match read_checkpoint(&self.dir) {
            Ok(Some(cp)) => cp,
            Ok(None) if last == 0 => return Ok(CheckpointCheck::Matched { seq: 0 }),
            Ok(None) => return Ok(CheckpointCheck::Missing { records: last }),
            Err(why) => return Ok(CheckpointCheck::Unreadable(why)),
        };
        if cp.seq == 0 {
            return Ok(CheckpointCheck::Matched { seq: 0 });
        }
        let hash: Option<String> = self
            .conn
            .query_row("SELECT hash FROM audit WHERE seq = ?1", [cp.seq], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match hash {
            Some(h) if h == cp.hash => CheckpointCheck::Matched { seq: cp.seq },
            Some(_) => CheckpointCheck::Rewritten { seq: cp.seq },
            None if last < cp.seq => CheckpointCheck::Truncated {
                checkpoint: cp.seq,
                last,
            },
            // A gap where the checkpoint's record was: removed.
            None => CheckpointCheck::Rewritten { seq: cp.seq },
        })
    }

    /// The checkpoint now beside the database, if one can be read.
    pub fn audit_checkpoint(&self) -> Option<Checkpoint> {
        read_checkpoint(&self.dir).ok().flatten()
    }

    /// Writes the database's head as the checkpoint.
    pub(crate) fn write_audit_checkpoint(&self, seq: u64, hash: &str) -> Result<(), StoreError> {
        write_checkpoint(&self.dir, seq, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::entry;
    use crate::DB_FILE;
    use rusqlite::Connection;
    use tempfile::TempDir;

    /// A store whose journal committed `n` records (so the checkpoint names record `n`).
    fn committed(n: u64) -> (TempDir, Store) {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (mut journal, _) = store.open_audit_journal().unwrap();
        for i in 1..=n {
            journal.append(entry(i)).unwrap();
        }
        let batch = journal.take().unwrap();
        store.commit_journal_batch(&batch).unwrap();
        journal.retire(batch).unwrap();
        (tmp, store)
    }

    fn tamper(dir: &Path, sql: &str) {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
    }

    #[test]
    fn a_commit_writes_the_checkpoint_and_an_intact_log_matches_it() {
        let (tmp, store) = committed(4);
        let last = store.read_audit(3, 1).unwrap().remove(0);
        assert_eq!(
            store.audit_checkpoint(),
            Some(Checkpoint {
                seq: 4,
                hash: last.hash
            })
        );
        assert_eq!(
            store.check_audit_checkpoint().unwrap(),
            CheckpointCheck::Matched { seq: 4 }
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(tmp.path().join(CHECKPOINT_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_tail_cut_off_with_its_head_set_back_is_found() {
        let (tmp, store) = committed(5);
        let third = store.read_audit(2, 1).unwrap().remove(0);
        tamper(
            tmp.path(),
            &format!(
                "DELETE FROM audit WHERE seq > 3; UPDATE audit_head SET seq = 3, hash = '{}'",
                third.hash
            ),
        );
        // The chain alone looks intact; the checkpoint tells.
        assert!(store.verify_audit().unwrap().ok);
        let check = store.check_audit_checkpoint().unwrap();
        assert_eq!(
            check,
            CheckpointCheck::Truncated {
                checkpoint: 5,
                last: 3
            }
        );
        assert!(check.is_problem());
        assert!(check.describe().contains("records 4 to 5 are missing"));
    }

    #[test]
    fn a_rewritten_log_a_missing_and_a_damaged_checkpoint_are_told() {
        let (tmp, store) = committed(3);
        tamper(
            tmp.path(),
            "UPDATE audit SET hash = 'x' || substr(hash, 2) WHERE seq = 3",
        );
        assert_eq!(
            store.check_audit_checkpoint().unwrap(),
            CheckpointCheck::Rewritten { seq: 3 }
        );
        std::fs::write(tmp.path().join(CHECKPOINT_FILE), "hello\n").unwrap();
        assert!(matches!(
            store.check_audit_checkpoint().unwrap(),
            CheckpointCheck::Unreadable(_)
        ));
        std::fs::remove_file(tmp.path().join(CHECKPOINT_FILE)).unwrap();
        let missing = store.check_audit_checkpoint().unwrap();
        assert_eq!(missing, CheckpointCheck::Missing { records: 3 });
        assert!(!missing.is_problem(), "missing is said, not a finding");
        // An empty log without a checkpoint has nothing to lose.
        let fresh = TempDir::new().unwrap();
        assert_eq!(
            Store::open(fresh.path())
                .unwrap()
                .check_audit_checkpoint()
                .unwrap(),
            CheckpointCheck::Matched { seq: 0 }
        );
    }
}
