//! What each agent was when the user gave it access: a fingerprint of its manifest and of its
//! program, one row per agent. The kernel compares an agent with its row at start and at each
//! launch; an agent that changed has its grants suspended until the user confirms the change.

use rusqlite::{params, OptionalExtension};

use crate::{Store, StoreError};

/// How a program file was when it was fingerprinted: `stat` fields that change whenever its
/// content is written or the file is replaced (`ctime` cannot be set back by its owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

/// An agent's fingerprint as recorded when its grants were given (or last confirmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFingerprint {
    pub agent: String,
    /// SHA-256 (hex) of the parsed manifest.
    pub manifest_sha256: String,
    /// The program's real path.
    pub exec_path: String,
    /// SHA-256 (hex) of the program's content.
    pub exec_sha256: String,
    pub exec_stamp: ExecStamp,
    /// When it was recorded (ms since the Unix epoch).
    pub recorded_at: u64,
}

impl Store {
    /// The fingerprint recorded for `agent`, if any.
    pub fn agent_fingerprint(&self, agent: &str) -> Result<Option<AgentFingerprint>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT manifest_sha256, exec_path, exec_sha256, exec_dev, exec_ino, exec_size,
                        exec_mtime_ns, exec_ctime_ns, recorded_at
                 FROM agent_fingerprints WHERE agent = ?1",
                [agent],
                |r| {
                    Ok(AgentFingerprint {
                        agent: agent.to_string(),
                        manifest_sha256: r.get(0)?,
                        exec_path: r.get(1)?,
                        exec_sha256: r.get(2)?,
                        exec_stamp: ExecStamp {
                            // Stored as the same 64 bits, read back as they were.
                            dev: r.get::<_, i64>(3)? as u64,
                            ino: r.get::<_, i64>(4)? as u64,
                            size: r.get::<_, i64>(5)? as u64,
                            mtime_ns: r.get(6)?,
                            ctime_ns: r.get(7)?,
                        },
                        recorded_at: r.get::<_, i64>(8)? as u64,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Records `fp` as the agent's fingerprint, replacing the one it had.
    pub fn record_agent_fingerprint(&self, fp: &AgentFingerprint) -> Result<(), StoreError> {
        let s = &fp.exec_stamp;
        self.conn.execute(
            "INSERT INTO agent_fingerprints (agent, manifest_sha256, exec_path, exec_sha256,
                 exec_dev, exec_ino, exec_size, exec_mtime_ns, exec_ctime_ns, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (agent) DO UPDATE SET
                 manifest_sha256 = excluded.manifest_sha256, exec_path = excluded.exec_path,
                 exec_sha256 = excluded.exec_sha256, exec_dev = excluded.exec_dev,
                 exec_ino = excluded.exec_ino, exec_size = excluded.exec_size,
                 exec_mtime_ns = excluded.exec_mtime_ns, exec_ctime_ns = excluded.exec_ctime_ns,
                 recorded_at = excluded.recorded_at",
            params![
                fp.agent,
                fp.manifest_sha256,
                fp.exec_path,
                fp.exec_sha256,
                s.dev as i64,
                s.ino as i64,
                s.size as i64,
                s.mtime_ns,
                s.ctime_ns,
                fp.recorded_at as i64,
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn fingerprint(agent: &str, exec_sha256: &str) -> AgentFingerprint {
        AgentFingerprint {
            agent: agent.into(),
            manifest_sha256: "m".repeat(64),
            exec_path: "/usr/libexec/agentos/agent".into(),
            exec_sha256: exec_sha256.into(),
            exec_stamp: ExecStamp {
                dev: u64::MAX,
                ino: 42,
                size: 1 << 40,
                mtime_ns: -1,
                ctime_ns: 1_700_000_000_000_000_000,
            },
            recorded_at: 7,
        }
    }

    #[test]
    fn a_fingerprint_is_recorded_replaced_and_kept() {
        let tmp = TempDir::new().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.agent_fingerprint("docs").unwrap(), None);
        store
            .record_agent_fingerprint(&fingerprint("docs", "a"))
            .unwrap();
        store
            .record_agent_fingerprint(&fingerprint("web", "b"))
            .unwrap();
        store
            .record_agent_fingerprint(&fingerprint("docs", "c"))
            .unwrap();
        drop(store);
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(
            store.agent_fingerprint("docs").unwrap(),
            Some(fingerprint("docs", "c"))
        );
        assert_eq!(
            store.agent_fingerprint("web").unwrap(),
            Some(fingerprint("web", "b"))
        );
    }
}
