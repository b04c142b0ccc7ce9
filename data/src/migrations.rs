//! Schema migrations, applied in order under `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Every migration ever shipped, oldest first. Never edit one; append a new one.
/// `user_version` holds how many have been applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: tasks, artifacts, grants, audit log.
    r#"
    CREATE TABLE tasks (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        parent   INTEGER NOT NULL,
        agent    TEXT NOT NULL,
        caller   TEXT NOT NULL,
        goal     TEXT NOT NULL,
        state    TEXT NOT NULL,
        progress REAL NOT NULL,
        message  TEXT NOT NULL,
        result   TEXT NOT NULL,
        created  INTEGER NOT NULL,
        updated  INTEGER NOT NULL,
        deadline INTEGER NOT NULL
    );
    CREATE INDEX tasks_by_state ON tasks (state);

    CREATE TABLE artifacts (
        task_id INTEGER NOT NULL REFERENCES tasks (id),
        name    TEXT NOT NULL,
        sha256  TEXT NOT NULL,
        size    INTEGER NOT NULL,
        UNIQUE (task_id, name)
    );

    CREATE TABLE grants (
        principal  TEXT NOT NULL,
        capability TEXT NOT NULL,
        scope      TEXT NOT NULL,
        lifetime   TEXT NOT NULL,
        granted_at INTEGER NOT NULL,
        PRIMARY KEY (principal, capability, scope)
    );

    CREATE TABLE audit (
        seq        INTEGER PRIMARY KEY,
        time       INTEGER NOT NULL,
        principal  TEXT NOT NULL,
        capability TEXT NOT NULL,
        scope      TEXT NOT NULL,
        decision   TEXT NOT NULL,
        reason     TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL
    );
    CREATE TABLE audit_head (
        one  INTEGER PRIMARY KEY CHECK (one = 1),
        seq  INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    INSERT INTO audit_head (one, seq, hash)
        VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: whether a grant has been mirrored into the XDG permission store (a mirrored grant that
    // disappeared from there while the kernel was down was revoked from the desktop).
    r#"
    ALTER TABLE grants ADD COLUMN mirrored INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: each agent's fingerprint (its manifest and its program) as it was when the user gave
    // it access; an agent that differs has its grants suspended until the user confirms.
    r#"
    CREATE TABLE agent_fingerprints (
        agent           TEXT PRIMARY KEY,
        manifest_sha256 TEXT NOT NULL,
        exec_path       TEXT NOT NULL,
        exec_sha256     TEXT NOT NULL,
        exec_dev        INTEGER NOT NULL,
        exec_ino        INTEGER NOT NULL,
        exec_size       INTEGER NOT NULL,
        exec_mtime_ns   INTEGER NOT NULL,
        exec_ctime_ns   INTEGER NOT NULL,
        recorded_at     INTEGER NOT NULL
    );
    "#,
    // 4: model use summed per agent, app, the user's own tools and task (`owner`: who started a
    // task's tree, so an app sees its tasks' rows).
    r#"
    CREATE TABLE model_usage (
        kind          TEXT NOT NULL,
        who           TEXT NOT NULL,
        owner         TEXT NOT NULL,
        requests      INTEGER NOT NULL,
        input_tokens  INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        millis        INTEGER NOT NULL,
        cost_micros   INTEGER NOT NULL,
        PRIMARY KEY (kind, who)
    );
    "#,
    // 5: what each principal spent of its model budgets in the current hour and day (UTC
    // windows, numbered from the epoch), so that a restart does not renew them.
    r#"
    CREATE TABLE model_spend (
        principal   TEXT PRIMARY KEY,
        hour        INTEGER NOT NULL,
        hour_tokens INTEGER NOT NULL,
        day         INTEGER NOT NULL,
        day_tokens  INTEGER NOT NULL
    );
    "#,
    // 6: how many of a row's requests went to a model with no known price: their cost is
    // unknown, not 0.
    r#"
    ALTER TABLE model_usage ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The schema version this build writes: the number of migrations it knows.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Applies every pending migration in one transaction; refuses a database from a newer build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Brings the schema up to `target` (no further than [`SCHEMA_VERSION`]).
fn migrate_to(conn: &mut Connection, target: u32) -> Result<u32, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found >= target {
        return Ok(found);
    }
    for sql in &MIGRATIONS[found as usize..target as usize] {
        tx.execute_batch(sql)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {target}"))?;
    tx.commit()?;
    Ok(target)
}

/// The database's `user_version`: how many migrations it has.
pub(crate) fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewTask, Store, TaskState, DB_FILE, GENESIS_HASH};
    use tempfile::TempDir;

    fn new_task() -> NewTask {
        NewTask {
            parent: 0,
            agent: "web".into(),
            caller: "cli".into(),
            goal: "look it up".into(),
            state: TaskState::Submitted,
            created: 1,
            deadline: 0,
        }
    }

    #[test]
    fn upgrades_from_every_earlier_version() {
        for start in 0..=SCHEMA_VERSION {
            let tmp = TempDir::new().unwrap();
            let mut conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
            assert_eq!(migrate_to(&mut conn, start).unwrap(), start);
            assert_eq!(user_version(&conn).unwrap(), start);
            drop(conn);

            let store = Store::open(tmp.path()).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            let id = store.insert_task(&new_task()).unwrap();
            assert!(store.get_task(id).unwrap().is_some());
            assert!(store.verify_audit().unwrap().ok);
            let g = agentos_dbus_interfaces::GrantInfo {
                principal: "web".into(),
                capability: "web.fetch".into(),
                scope: "example.org".into(),
                lifetime: "always".into(),
                granted_at: 1,
            };
            store.insert_grant(&g).unwrap();
            store
                .mark_grant_mirrored(&g.principal, &g.capability, &g.scope)
                .unwrap();
            assert_eq!(store.list_mirrored_grants().unwrap(), vec![g]);
            let fp = crate::AgentFingerprint {
                agent: "web".into(),
                manifest_sha256: "m".into(),
                exec_path: "/usr/libexec/agentos/agentos-agent-web".into(),
                exec_sha256: "e".into(),
                exec_stamp: crate::ExecStamp {
                    dev: 1,
                    ino: 2,
                    size: 3,
                    mtime_ns: 4,
                    ctime_ns: 5,
                },
                recorded_at: 6,
            };
            store.record_agent_fingerprint(&fp).unwrap();
            assert_eq!(store.agent_fingerprint("web").unwrap(), Some(fp));
        }
    }

    #[test]
    fn genesis_hash_in_the_schema_matches_the_code() {
        assert!(MIGRATIONS[0].contains(GENESIS_HASH));
    }

    #[test]
    fn refuses_a_newer_database() {
        let tmp = TempDir::new().unwrap();
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .unwrap();
        drop(conn);
        let err = Store::open(tmp.path()).err().unwrap();
        assert!(matches!(
            err,
            StoreError::TooNew { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ));
        assert!(err.to_string().contains("written by a newer AgentOS"));
    }

    #[test]
    fn reopening_keeps_data_and_version() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let id = store.insert_task(&new_task()).unwrap();
        drop(store);
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.get_task(id).unwrap().unwrap().goal, "look it up");
    }
}
