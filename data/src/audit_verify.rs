//! Verification of the audit log: walks the hash chain and checks the head.

use crate::audit::{chain_hash, head, record, stored_from_row, COLUMNS, GENESIS_HASH};
use crate::{AuditRecord, Store, StoreError};

/// The outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// The whole chain and its head are intact.
    pub ok: bool,
    /// How many records were found intact before the first problem (all of them if `ok`).
    pub records: u64,
    /// The first problem, in plain words naming the record's sequence number.
    pub problem: Option<String>,
}

impl Store {
    /// Walks the chain from record 1 and reports the first problem: a changed record (its hash
    /// does not match its contents), a removed one (a gap in the sequence, or a head beyond the
    /// last record), a reordered or replaced one (it does not link to its predecessor's hash), or
    /// a head that does not match the last record. Reads one consistent snapshot.
    pub fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.walk_audit(|_| {})
    }

    /// Like [`Store::verify_audit`], handing each record found intact to `seen`, oldest first;
    /// the walk stops at the first record that is not (those after it are not handed over).
    pub fn walk_audit(
        &self,
        mut seen: impl FnMut(&AuditRecord),
    ) -> Result<AuditVerification, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut good: u64 = 0;
        let mut prev = GENESIS_HASH.to_owned();
        let fail = |records, problem: String| {
            Ok(AuditVerification {
                ok: false,
                records,
                problem: Some(problem),
            })
        };
        {
            let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let expected = good + 1;
                let Ok(s) = stored_from_row(row) else {
                    return fail(good, format!("audit record {expected} cannot be read"));
                };
                if s.seq != expected {
                    let problem = format!(
                        "audit record {expected} is missing (the next record is {})",
                        s.seq
                    );
                    return fail(good, problem);
                }
                if s.prev_hash != prev {
                    let problem = format!(
                        "audit record {expected} does not follow record {good}: \
                         records were reordered, removed or replaced"
                    );
                    return fail(good, problem);
                }
                if chain_hash(&s.prev_hash, s.seq, &s.entry) != s.hash {
                    let problem = format!(
                        "audit record {expected} was altered: its hash does not match its contents"
                    );
                    return fail(good, problem);
                }
                let r = record(s.seq, s.entry, s.hash);
                seen(&r);
                prev = r.hash;
                good = expected;
            }
        }
        let problem = match head(&tx)? {
            None => Some("the audit head is missing".to_owned()),
            Some((seq, _)) if seq > good => Some(format!(
                "audit records {} to {seq} are missing: the log ends at record {good}",
                good + 1
            )),
            Some((seq, _)) if seq < good => Some(format!(
                "audit records {} to {good} were added behind the store's back",
                seq + 1
            )),
            Some((_, hash)) if hash != prev => Some(format!(
                "the audit head does not match record {good}: the record was replaced"
            )),
            Some(_) => None,
        };
        Ok(AuditVerification {
            ok: problem.is_none(),
            records: good,
            problem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{entry, with_records};
    use crate::audit::NewAuditEntry;
    use crate::DB_FILE;
    use proptest::prelude::*;
    use rusqlite::Connection;
    use std::path::Path;
    use tempfile::TempDir;

    /// Changes the database the way an attacker with the file would: through another connection.
    fn tamper(dir: &Path, sql: &str) {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
    }

    fn swap_sql(a: u64, b: u64) -> String {
        format!(
            "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN ({a}, {b});
             UPDATE audit SET (time, principal, capability, scope, decision, reason, prev_hash, hash) =
               (SELECT time, principal, capability, scope, decision, reason, prev_hash, hash
                FROM t WHERE t.seq = {a} + {b} - audit.seq)
             WHERE seq IN ({a}, {b});"
        )
    }

    fn problem(store: &Store) -> String {
        let v = store.verify_audit().unwrap();
        assert!(!v.ok);
        v.problem.unwrap()
    }

    #[test]
    fn a_changed_record_is_named() {
        let (tmp, store) = with_records(5);
        tamper(
            tmp.path(),
            "UPDATE audit SET decision = 'deny' WHERE seq = 3",
        );
        let v = store.verify_audit().unwrap();
        assert_eq!(v.records, 2);
        assert!(v.problem.unwrap().contains("record 3 was altered"));
    }

    #[test]
    fn a_removed_record_is_found() {
        let (tmp, store) = with_records(5);
        tamper(tmp.path(), "DELETE FROM audit WHERE seq = 3");
        assert!(problem(&store).contains("record 3 is missing"));
    }

    #[test]
    fn a_removed_last_record_is_found() {
        let (tmp, store) = with_records(5);
        tamper(tmp.path(), "DELETE FROM audit WHERE seq = 5");
        assert!(problem(&store).contains("records 5 to 5 are missing"));
        // Appending afterwards does not hide the gap.
        store.append_audit(&entry(6)).unwrap();
        assert!(problem(&store).contains("record 5 is missing"));
    }

    #[test]
    fn reordered_records_are_found() {
        let (tmp, store) = with_records(5);
        tamper(tmp.path(), &swap_sql(2, 4));
        assert!(problem(&store).contains("record 2 does not follow record 1"));
    }

    #[test]
    fn a_replaced_head_is_found() {
        let (tmp, store) = with_records(3);
        tamper(
            tmp.path(),
            &format!("UPDATE audit_head SET hash = '{GENESIS_HASH}'"),
        );
        assert!(problem(&store).contains("head does not match record 3"));
        tamper(tmp.path(), "DELETE FROM audit_head");
        assert!(problem(&store).contains("head is missing"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_single_tampering_is_detected(
            entries in prop::collection::vec(
                (any::<u32>(), "[a-c]{0,3}", "[a-c]{0,3}", "[a-c]{0,3}"), 2..10),
            kind in 0u8..7,
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let tmp = TempDir::new().unwrap();
            let store = Store::open(tmp.path()).unwrap();
            for (time, principal, capability, reason) in &entries {
                store.append_audit(&NewAuditEntry {
                    time: u64::from(*time),
                    principal: principal.clone(),
                    capability: capability.clone(),
                    scope: String::new(),
                    decision: "allow".into(),
                    reason: reason.clone(),
                }).unwrap();
            }
            prop_assert!(store.verify_audit().unwrap().ok);
            let n = entries.len() as u64;
            let k = a.index(entries.len()) as u64 + 1;
            let other = b.index(entries.len() - 1) as u64 + 1;
            let j = if other >= k { other + 1 } else { other };
            let sql = match kind {
                0 => format!("UPDATE audit SET reason = reason || 'x' WHERE seq = {k}"),
                1 => format!("UPDATE audit SET time = time + 1 WHERE seq = {k}"),
                2 => format!("UPDATE audit SET principal = capability, capability = principal || '.' WHERE seq = {k}"),
                3 => format!("UPDATE audit SET hash = '{GENESIS_HASH}' WHERE seq = {k}"),
                4 => format!("DELETE FROM audit WHERE seq = {k}"),
                5 => format!("DELETE FROM audit WHERE seq = {n}"),
                _ => swap_sql(k, j),
            };
            tamper(tmp.path(), &sql);
            let v = store.verify_audit().unwrap();
            prop_assert!(!v.ok, "undetected: {sql}");
            prop_assert!(v.problem.is_some());
        }
    }
}
