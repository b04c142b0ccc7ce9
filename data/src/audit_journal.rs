//! The audit journal: every record is written to an append-only file, in one `write`, before the
//! decision it records takes effect; the records then move into the database in batches.
//!
//! A write to the journal survives a crash of the process, as a commit with `synchronous=NORMAL`
//! does, for a fraction of a commit's cost. Two files take turns: records go to the active one
//! while the other's records are committed to the database and the file is emptied. When the
//! store is opened again, records left in either file are committed first, so nothing the
//! kernel recorded before a crash is lost.
//!
//! Each commit of the journal's records also replaces the checkpoint beside the database
//! (`audit_checkpoint`); opening the journal compares the database with it first.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::{chain_hash, current_head, extend_chain, record, StoredRow};
use crate::audit_checkpoint::CheckpointCheck;
use crate::{AuditRecord, NewAuditEntry, Store, StoreError};

/// The two journal files inside the store directory.
pub const JOURNAL_FILES: [&str; 2] = ["audit-journal-0", "audit-journal-1"];

/// One line of a journal file.
#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    time: u64,
    principal: String,
    capability: String,
    scope: String,
    decision: String,
    reason: String,
    prev_hash: String,
    hash: String,
}

impl Line {
    fn into_row(self) -> StoredRow {
        StoredRow {
            seq: self.seq,
            entry: NewAuditEntry {
                time: self.time,
                principal: self.principal,
                capability: self.capability,
                scope: self.scope,
                decision: self.decision,
                reason: self.reason,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// The records of one journal file, taken to be committed to the database.
pub struct JournalBatch {
    file: usize,
    rows: Vec<StoredRow>,
}

impl JournalBatch {
    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// What opening the journal found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JournalRecovery {
    /// Records found only in the journal, now committed to the database.
    pub recovered: usize,
    /// Journal files that held records which could not be committed (unreadable, or not
    /// continuing the hash chain); each was kept under a new name, given here.
    pub damaged: Vec<PathBuf>,
    /// The database compared with the checkpoint an earlier run left (after the journal's
    /// records were committed); the checkpoint was then replaced with the database's head.
    pub checkpoint: CheckpointCheck,
}

/// The writing end of the audit log. One per store directory, owned by the kernel.
pub struct AuditJournal {
    dir: PathBuf,
    files: [File; 2],
    /// The file new records go to.
    active: usize,
    /// Bytes in the active file.
    len: u64,
    /// The last record's seq and hash.
    head: (u64, String),
    /// Records in the active file, not yet taken.
    pending: Vec<StoredRow>,
    /// A batch taken and not yet retired: its file is not written until it is.
    taken: bool,
}

impl AuditJournal {
    /// Appends a record, chained to the previous one, in one write to the active file. On an
    /// error nothing was appended: a partly written line is cut off again.
    pub fn append(&mut self, entry: NewAuditEntry) -> Result<AuditRecord, StoreError> {
        let seq = self.head.0 + 1;
        let hash = chain_hash(&self.head.1, seq, &entry);
        let line = Line {
            seq,
            time: entry.time,
            principal: entry.principal,
            capability: entry.capability,
            scope: entry.scope,
            decision: entry.decision,
            reason: entry.reason,
            prev_hash: std::mem::take(&mut self.head.1),
            hash,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| StoreError::Corrupt(e.to_string()));
        if let Ok(b) = &mut bytes {
            b.push(b'\n');
        }
        let written = bytes.and_then(|b| {
            let file = &mut self.files[self.active];
            match file.write_all(&b) {
                Ok(()) => Ok(b.len() as u64),
                Err(e) => {
                    let _ = file.set_len(self.len);
                    Err(StoreError::Io(e))
                }
            }
        });
        let row = line.into_row();
        match written {
            Ok(n) => {
                self.len += n;
                self.head = (seq, row.hash.clone());
                let rec = record(seq, row.entry.clone(), row.hash.clone());
                self.pending.push(row);
                Ok(rec)
            }
            Err(e) => {
                self.head.1 = row.prev_hash;
                Err(e)
            }
        }
    }

    /// How many records wait to be taken.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes the active file's records for the database and switches to the other file. None
    /// when nothing is pending or the previous batch was not retired yet.
    pub fn take(&mut self) -> Option<JournalBatch> {
        if self.pending.is_empty() || self.taken {
            return None;
        }
        let batch = JournalBatch {
            file: self.active,
            rows: std::mem::take(&mut self.pending),
        };
        self.active = 1 - self.active;
        self.len = 0;
        self.taken = true;
        Some(batch)
    }

    /// Empties the file of a batch the database has committed, so it can take turns again.
    pub fn retire(&mut self, batch: JournalBatch) -> Result<(), StoreError> {
        self.files[batch.file].set_len(0)?;
        self.taken = false;
        Ok(())
    }

    /// The directory holding the journal files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Store {
    /// Opens the audit journal: records that an earlier run wrote to the journal but did not
    /// commit are committed first (a line cut short by a crash is dropped), then both files are
    /// emptied. Call once, before any record is appended, with no other writer.
    pub fn open_audit_journal(&self) -> Result<(AuditJournal, JournalRecovery), StoreError> {
        let mut found: Vec<(usize, StoredRow)> = Vec::new();
        let mut damaged = [false; 2];
        for (i, name) in JOURNAL_FILES.iter().enumerate() {
            let text = match std::fs::read(self.dir.join(name)) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
            // The piece after the last newline is empty, or a line a crash cut short.
            lines.pop();
            for line in lines {
                match serde_json::from_slice::<Line>(line) {
                    Ok(l) => found.push((i, l.into_row())),
                    Err(_) => damaged[i] = true,
                }
            }
        }
        found.sort_by_key(|(_, r)| r.seq);
        let (files_of, rows): (Vec<usize>, Vec<StoredRow>) = found.into_iter().unzip();
        let tx = self.begin()?;
        let head = current_head(&tx)?;
        let committed_before = head.0;
        let done = extend_chain(&tx, head, &rows, true)?;
        tx.commit()?;
        for i in done.rejected {
            damaged[files_of[i]] = true;
        }
        let checkpoint = match self.check_audit_checkpoint()? {
            // No commit ever wrote one: the only records came from the journal just now.
            CheckpointCheck::Missing { .. } if committed_before == 0 => {
                CheckpointCheck::Matched { seq: 0 }
            }
            check => check,
        };
        if done.head.0 > 0 {
            self.write_audit_checkpoint(done.head.0, &done.head.1)?;
        }
        let mut recovery = JournalRecovery {
            recovered: done.inserted,
            damaged: Vec::new(),
            checkpoint,
        };
        let mut open = |i: usize| -> Result<File, StoreError> {
            let path = self.dir.join(JOURNAL_FILES[i]);
            if damaged[i] {
                let kept = (self.dir).join(format!("{}.damaged-{}", JOURNAL_FILES[i], done.head.0));
                std::fs::rename(&path, &kept)?;
                recovery.damaged.push(kept);
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            file.set_len(0)?;
            Ok(file)
        };
        let files = [open(0)?, open(1)?];
        Ok((
            AuditJournal {
                dir: self.dir.clone(),
                files,
                active: 0,
                len: 0,
                head: done.head,
                pending: Vec::new(),
                taken: false,
            },
            recovery,
        ))
    }

    /// Commits a batch taken from the journal, in one transaction; records the database already
    /// holds are skipped, and a record that does not continue the chain fails the whole batch.
    /// The checkpoint then names the new head (a failure to write it fails the call, and the
    /// batch, tried again, writes it then).
    pub fn commit_journal_batch(&self, batch: &JournalBatch) -> Result<(), StoreError> {
        let tx = self.begin()?;
        let head = current_head(&tx)?;
        let done = extend_chain(&tx, head, &batch.rows, false)?;
        if let Some(&i) = done.rejected.first() {
            return Err(StoreError::Corrupt(format!(
                "audit record {} does not follow record {} in the database",
                batch.rows[i].seq, done.head.0
            )));
        }
        tx.commit()?;
        self.write_audit_checkpoint(done.head.0, &done.head.1)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::entry;
    use tempfile::TempDir;

    fn open(dir: &Path) -> (Store, AuditJournal, JournalRecovery) {
        let store = Store::open(dir).unwrap();
        let (journal, recovery) = store.open_audit_journal().unwrap();
        (store, journal, recovery)
    }

    fn commit(store: &Store, journal: &mut AuditJournal) {
        if let Some(batch) = journal.take() {
            store.commit_journal_batch(&batch).unwrap();
            journal.retire(batch).unwrap();
        }
    }

    fn journal_bytes(dir: &Path) -> u64 {
        JOURNAL_FILES
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
            .sum()
    }

    #[test]
    fn records_move_from_the_journal_into_the_database_in_order() {
        let tmp = TempDir::new().unwrap();
        let (store, mut journal, recovery) = open(tmp.path());
        assert_eq!(recovery, JournalRecovery::default());
        for i in 1..=3 {
            assert_eq!(journal.append(entry(i)).unwrap().seq, i);
        }
        assert!(store.read_audit(0, 10).unwrap().is_empty());
        commit(&store, &mut journal);
        for i in 4..=5 {
            journal.append(entry(i)).unwrap();
        }
        commit(&store, &mut journal);
        let records = store.read_audit(0, 10).unwrap();
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(records[3].principal, "agent4");
        assert!(store.verify_audit().unwrap().ok);
        assert_eq!(journal_bytes(tmp.path()), 0);
        // The database's own appends continue the same chain.
        assert_eq!(store.append_audit(&entry(6)).unwrap().seq, 6);
        assert!(store.verify_audit().unwrap().ok);
    }

    #[test]
    fn a_crash_loses_no_journaled_record() {
        let tmp = TempDir::new().unwrap();
        {
            let (store, mut journal, _) = open(tmp.path());
            journal.append(entry(1)).unwrap();
            commit(&store, &mut journal);
            journal.append(entry(2)).unwrap();
            journal.append(entry(3)).unwrap();
            // Taken but never committed: its file still holds the records.
            let _batch = journal.take().unwrap();
            journal.append(entry(4)).unwrap();
            std::mem::forget(journal);
            std::mem::forget(store);
        }
        let (store, mut journal, recovery) = open(tmp.path());
        assert_eq!(recovery.recovered, 3);
        assert!(recovery.damaged.is_empty());
        let seqs: Vec<u64> = store
            .read_audit(0, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert!(store.verify_audit().unwrap().ok);
        assert_eq!(journal_bytes(tmp.path()), 0);
        assert_eq!(journal.append(entry(5)).unwrap().seq, 5);
        commit(&store, &mut journal);
        assert!(store.verify_audit().unwrap().ok);
    }

    #[test]
    fn strings_from_peers_cannot_forge_journal_lines() {
        let tmp = TempDir::new().unwrap();
        let forged = "x\n{\"seq\":2,\"time\":0,\"principal\":\"evil\"}\n";
        {
            let (_store, mut journal, _) = open(tmp.path());
            let mut e = entry(1);
            e.reason = forged.into();
            journal.append(e).unwrap();
        }
        let (store, _journal, recovery) = open(tmp.path());
        assert_eq!(
            recovery,
            JournalRecovery {
                recovered: 1,
                damaged: vec![],
                checkpoint: CheckpointCheck::Matched { seq: 0 },
            }
        );
        let records = store.read_audit(0, 10).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].reason, forged);
        assert!(store.verify_audit().unwrap().ok);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_dropped() {
        let tmp = TempDir::new().unwrap();
        {
            let (_store, mut journal, _) = open(tmp.path());
            journal.append(entry(1)).unwrap();
            journal.append(entry(2)).unwrap();
        }
        let path = tmp.path().join(JOURNAL_FILES[0]);
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 10]).unwrap();
        let (store, _journal, recovery) = open(tmp.path());
        assert_eq!(recovery.recovered, 1);
        assert!(recovery.damaged.is_empty());
        assert_eq!(store.read_audit(0, 10).unwrap().len(), 1);
        assert!(store.verify_audit().unwrap().ok);
    }

    #[test]
    fn a_changed_journal_record_is_kept_aside_and_not_committed() {
        let tmp = TempDir::new().unwrap();
        {
            let (_store, mut journal, _) = open(tmp.path());
            for i in 1..=3 {
                journal.append(entry(i)).unwrap();
            }
        }
        let path = tmp.path().join(JOURNAL_FILES[0]);
        let text = std::fs::read_to_string(&path).unwrap();
        let changed = text.replacen("agent2", "agent9", 1);
        std::fs::write(&path, changed).unwrap();
        let (store, mut journal, recovery) = open(tmp.path());
        assert_eq!(recovery.recovered, 1);
        assert_eq!(recovery.damaged.len(), 1);
        let kept = std::fs::read_to_string(&recovery.damaged[0]).unwrap();
        assert!(kept.contains("agent9"));
        assert_eq!(store.read_audit(0, 10).unwrap().len(), 1);
        // The log goes on from the last record that was intact.
        assert_eq!(journal.append(entry(4)).unwrap().seq, 2);
        commit(&store, &mut journal);
        assert!(store.verify_audit().unwrap().ok);
    }

    #[test]
    fn opening_compares_the_database_with_the_checkpoint_then_moves_it() {
        let tmp = TempDir::new().unwrap();
        {
            let (store, mut journal, recovery) = open(tmp.path());
            assert_eq!(recovery.checkpoint, CheckpointCheck::Matched { seq: 0 });
            for i in 1..=4 {
                journal.append(entry(i)).unwrap();
            }
            commit(&store, &mut journal);
            // Records only in the journal at a crash are no finding.
            journal.append(entry(5)).unwrap();
            std::mem::forget(journal);
        }
        let (store, _journal, recovery) = open(tmp.path());
        assert_eq!(recovery.recovered, 1);
        assert_eq!(recovery.checkpoint, CheckpointCheck::Matched { seq: 4 });
        assert_eq!(store.audit_checkpoint().unwrap().seq, 5);
        let second = store.read_audit(1, 1).unwrap().remove(0).hash;
        drop(store);
        let conn = rusqlite::Connection::open(tmp.path().join(crate::DB_FILE)).unwrap();
        conn.execute_batch(&format!(
            "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > 2;
             UPDATE audit_head SET seq = 2, hash = '{second}'"
        ))
        .unwrap();
        let (store, _journal, recovery) = open(tmp.path());
        assert_eq!(
            recovery.checkpoint,
            CheckpointCheck::Truncated {
                checkpoint: 5,
                last: 2
            }
        );
        // Told once: the checkpoint now names the database's head.
        assert_eq!(store.audit_checkpoint().unwrap().seq, 2);
    }

    #[test]
    fn a_batch_that_does_not_follow_the_database_is_refused() {
        let tmp = TempDir::new().unwrap();
        let (store, mut journal, _) = open(tmp.path());
        journal.append(entry(1)).unwrap();
        let batch = journal.take().unwrap();
        // Another writer got in first.
        store.append_audit(&entry(9)).unwrap();
        let err = store.commit_journal_batch(&batch).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert_eq!(store.read_audit(0, 10).unwrap().len(), 1);
    }
}
