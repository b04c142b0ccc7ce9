//! The audit log: append-only and hash-chained, with a one-row head so truncation shows.

use rusqlite::{params, CachedStatement, OptionalExtension, Row, Transaction};
use sha2::{Digest, Sha256};

use crate::{AuditRecord, Store, StoreError};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A decision to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    pub principal: String,
    pub capability: String,
    pub scope: String,
    pub decision: String,
    pub reason: String,
}

/// The hash of a record: hex SHA-256 over `prev_hash`, seq, time, principal, capability, scope,
/// decision and reason, each written as `<byte length>:<bytes>\n` so no field boundary can move.
pub(crate) fn chain_hash(prev_hash: &str, seq: u64, e: &NewAuditEntry) -> String {
    let (seq, time) = (seq.to_string(), e.time.to_string());
    let fields = [
        prev_hash,
        &seq,
        &time,
        &e.principal,
        &e.capability,
        &e.scope,
        &e.decision,
        &e.reason,
    ];
    let mut hasher = Sha256::new();
    let mut len = itoa_buf();
    for field in fields {
        hasher.update(decimal(field.len(), &mut len));
        hasher.update(b":");
        hasher.update(field);
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `n` in decimal, written into the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// A stored row: the record, its entry (for rehashing) and the hash it claims to follow.
pub(crate) struct StoredRow {
    pub(crate) seq: u64,
    pub(crate) entry: NewAuditEntry,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

pub(crate) const COLUMNS: &str =
    "seq, time, principal, capability, scope, decision, reason, prev_hash, hash";

pub(crate) fn stored_from_row(r: &Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        seq: r.get(0)?,
        entry: NewAuditEntry {
            time: r.get(1)?,
            principal: r.get(2)?,
            capability: r.get(3)?,
            scope: r.get(4)?,
            decision: r.get(5)?,
            reason: r.get(6)?,
        },
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}

pub(crate) fn record(seq: u64, e: NewAuditEntry, hash: String) -> AuditRecord {
    AuditRecord {
        seq,
        time: e.time,
        principal: e.principal,
        capability: e.capability,
        scope: e.scope,
        decision: e.decision,
        reason: e.reason,
        hash,
    }
}

pub(crate) fn head(tx: &Transaction<'_>) -> Result<Option<(u64, String)>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE one = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

pub(crate) const INSERT: &str = "INSERT INTO audit (seq, time, principal, capability, scope, \
     decision, reason, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

pub(crate) fn insert_row(
    insert: &mut CachedStatement<'_>,
    row: &StoredRow,
) -> rusqlite::Result<()> {
    let e = &row.entry;
    insert.execute(params![
        row.seq,
        e.time,
        e.principal,
        e.capability,
        e.scope,
        e.decision,
        e.reason,
        row.prev_hash,
        row.hash
    ])?;
    Ok(())
}

pub(crate) fn set_head(tx: &Transaction<'_>, seq: u64, hash: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE one = 1")?
        .execute(params![seq, hash])?;
    Ok(())
}

/// The head, which every database has from its first migration on.
pub(crate) fn current_head(tx: &Transaction<'_>) -> Result<(u64, String), StoreError> {
    head(tx)?.ok_or_else(|| StoreError::Corrupt("the audit head is missing".into()))
}

/// The hash of the committed record `seq`, if there is one.
fn hash_at(tx: &Transaction<'_>, seq: u64) -> Result<Option<String>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT hash FROM audit WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?)
}

/// What [`extend_chain`] did.
pub(crate) struct Extended {
    /// Rows inserted.
    pub(crate) inserted: usize,
    /// Rows neither inserted nor committed already as they are (by index): the first that did
    /// not continue the chain, or contradicted a committed record, and every later one not
    /// committed already.
    pub(crate) rejected: Vec<usize>,
    /// The head after the inserted rows.
    pub(crate) head: (u64, String),
}

/// Inserts `rows`, in order, after `head` (the database's) and moves the head. A row committed
/// already must be the very same record and is skipped; from the first row that does not fit,
/// nothing more is inserted. With `rehash`, each row's hash is recomputed too (for rows read
/// back from a file).
pub(crate) fn extend_chain(
    tx: &Transaction<'_>,
    head: (u64, String),
    rows: &[StoredRow],
    rehash: bool,
) -> Result<Extended, StoreError> {
    let (mut seq, mut prev) = head;
    let mut done = Extended {
        inserted: 0,
        rejected: Vec::new(),
        head: (0, String::new()),
    };
    let mut insert = tx.prepare_cached(INSERT)?;
    for (i, row) in rows.iter().enumerate() {
        let fits = if row.seq <= seq {
            if hash_at(tx, row.seq)?.as_deref() == Some(&row.hash) {
                continue;
            }
            false
        } else {
            row.seq == seq + 1
                && row.prev_hash == prev
                && (!rehash || chain_hash(&prev, row.seq, &row.entry) == row.hash)
        };
        if !fits || !done.rejected.is_empty() {
            done.rejected.push(i);
            continue;
        }
        insert_row(&mut insert, row)?;
        seq = row.seq;
        prev.clone_from(&row.hash);
        done.inserted += 1;
    }
    set_head(tx, seq, &prev)?;
    done.head = (seq, prev);
    Ok(done)
}

impl Store {
    /// Appends a record in its own transaction and returns it with its `seq` (1, 2, 3, ...) and
    /// chained `hash`; the audit head moves in the same transaction.
    pub fn append_audit(&self, e: &NewAuditEntry) -> Result<AuditRecord, StoreError> {
        let mut records = self.append_audit_batch(std::slice::from_ref(e))?;
        records
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no record appended".into()))
    }

    /// Appends records in one transaction (all or none), in order; the head moves once.
    pub fn append_audit_batch(
        &self,
        entries: &[NewAuditEntry],
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let tx = self.begin()?;
        let head = current_head(&tx)?;
        let (mut seq, mut prev_hash) = head.clone();
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            seq += 1;
            let hash = chain_hash(&prev_hash, seq, e);
            let prev = std::mem::replace(&mut prev_hash, hash.clone());
            rows.push(StoredRow {
                seq,
                entry: e.clone(),
                prev_hash: prev,
                hash,
            });
        }
        extend_chain(&tx, head, &rows, false)?;
        tx.commit()?;
        Ok(rows
            .into_iter()
            .map(|r| record(r.seq, r.entry, r.hash))
            .collect())
    }

    /// At most `limit` records with `seq > after_seq`, oldest first.
    pub fn read_audit(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let records = stmt
            .query_map(params![after_seq, limit], |r| {
                let s = stored_from_row(r)?;
                Ok(record(s.seq, s.entry, s.hash))
            })?
            .collect::<Result<_, _>>()?;
        Ok(records)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tempfile::TempDir;

    pub(crate) fn entry(i: u64) -> NewAuditEntry {
        NewAuditEntry {
            time: 1000 + i,
            principal: format!("agent{i}"),
            capability: "fs.read".into(),
            scope: "~/Documents".into(),
            decision: "allow".into(),
            reason: "grant".into(),
        }
    }

    pub(crate) fn with_records(n: u64) -> (TempDir, Store) {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        for i in 1..=n {
            let r = store.append_audit(&entry(i)).unwrap();
            assert_eq!(r.seq, i);
        }
        (tmp, store)
    }
    #[test]
    fn append_read_and_verify() {
        let (_tmp, store) = with_records(5);
        let v = store.verify_audit().unwrap();
        assert_eq!((v.ok, v.records, v.problem), (true, 5, None));
        let all = store.read_audit(0, 100).unwrap();
        assert_eq!(
            all.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(all[0].hash, chain_hash(GENESIS_HASH, 1, &entry(1)));
        assert_eq!(all[1].hash, chain_hash(&all[0].hash, 2, &entry(2)));
        assert_eq!(all[2].principal, "agent3");
        let page = store.read_audit(2, 2).unwrap();
        assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn a_batch_chains_like_single_appends() {
        let (_tmp, store) = with_records(2);
        let batch = store
            .append_audit_batch(&[entry(3), entry(4), entry(5)])
            .unwrap();
        assert_eq!(batch.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
        let (_tmp2, single) = with_records(5);
        assert_eq!(
            store.read_audit(0, 10).unwrap(),
            single.read_audit(0, 10).unwrap()
        );
        assert!(store.verify_audit().unwrap().ok);
        assert!(store.append_audit_batch(&[]).unwrap().is_empty());
        assert!(store.verify_audit().unwrap().ok);
    }

    #[test]
    fn empty_log_verifies() {
        let (_tmp, store) = with_records(0);
        assert!(store.verify_audit().unwrap().ok);
    }

    #[test]
    fn the_hash_covers_each_field_with_its_length() {
        let e = entry(12);
        let mut text = String::new();
        for f in [
            GENESIS_HASH,
            "3",
            "1012",
            "agent12",
            "fs.read",
            "~/Documents",
            "allow",
            "grant",
        ] {
            text.push_str(&format!("{}:{f}\n", f.len()));
        }
        assert_eq!(
            chain_hash(GENESIS_HASH, 3, &e),
            hex::encode(Sha256::digest(text.as_bytes()))
        );
    }

    #[test]
    fn field_boundaries_cannot_shift() {
        let mut a = entry(1);
        let mut b = entry(1);
        (a.principal, a.capability) = ("ab".into(), "c".into());
        (b.principal, b.capability) = ("a".into(), "bc".into());
        assert_ne!(
            chain_hash(GENESIS_HASH, 1, &a),
            chain_hash(GENESIS_HASH, 1, &b)
        );
    }

    #[test]
    fn the_store_refuses_to_rewrite_the_log() {
        let (_tmp, store) = with_records(2);
        assert!(store
            .conn
            .execute("DELETE FROM audit WHERE seq = 2", [])
            .is_err());
        assert!(store
            .conn
            .execute("UPDATE audit SET reason = 'x'", [])
            .is_err());
        assert!(store.verify_audit().unwrap().ok);
    }
}
