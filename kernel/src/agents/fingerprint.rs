//! What changed in an agent since the user gave it access. When a grant is given to an agent the
//! kernel launches, the kernel records the agent's fingerprint: a SHA-256 of its parsed manifest
//! and of its program's content, with the program's `stat` stamp (device, inode, size, mtime,
//! ctime). At start and before each launch, an agent that holds grants is compared with it; one
//! whose manifest or program differs has its grants suspended (kept, not honoured, listed as
//! suspended), and the next consent prompt for it says that it changed. A grant to it, from that
//! prompt or the user's tools, confirms the change: the suspended grants come back and the new
//! fingerprint is recorded. Every suspension and confirmation is audited.
//!
//! Cost: hashing a program (megabytes) is paid when a grant is given (off the kernel's thread)
//! and when its stamp changed; otherwise a check is one `fstat`. The stamp is a safe shortcut:
//! writing the file changes its ctime, which its owner cannot set back, and replacing it changes
//! its inode. The manifest is compared at start (its file is read then); a manifest replaced while
//! the kernel runs counts from the next start.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Weak};

use agentos_data::{AgentFingerprint, ExecStamp};
use agentos_dbus_interfaces::AuditDecision;
use sha2::{Digest, Sha256};

use super::Change;
use crate::audit_entry::AuditEntry;
use crate::events::{Event, Kinds};
use crate::kernel::Kernel;

/// The fingerprint of an agent as it is now. The program's content is hashed unless `recorded`
/// has the same path and stamp (then its hash is the recorded one). Stamp and content are read
/// from one open file.
pub fn current(
    agent: &str,
    manifest_sha256: &str,
    exec: &Path,
    recorded: Option<&AgentFingerprint>,
    now: u64,
) -> std::io::Result<AgentFingerprint> {
    let mut file = std::fs::File::open(exec)?;
    let meta = file.metadata()?;
    let stamp = ExecStamp {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    };
    let exec_path = exec.to_string_lossy().into_owned();
    let exec_sha256 = match recorded {
        Some(r) if r.exec_path == exec_path && r.exec_stamp == stamp => r.exec_sha256.clone(),
        _ => {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            hex::encode(hasher.finalize())
        }
    };
    Ok(AgentFingerprint {
        agent: agent.to_string(),
        manifest_sha256: manifest_sha256.to_string(),
        exec_path,
        exec_sha256,
        exec_stamp: stamp,
        recorded_at: now,
    })
}

/// What differs between the recorded fingerprint and the current one (`None`: the same agent;
/// a program moved or touched with the same content is the same program).
pub fn compare(recorded: &AgentFingerprint, now: &AgentFingerprint) -> Option<Change> {
    let change = Change {
        manifest: recorded.manifest_sha256 != now.manifest_sha256,
        program: recorded.exec_sha256 != now.exec_sha256,
    };
    (change.manifest || change.program).then_some(change)
}

impl Kernel {
    /// At start: compare every agent that holds grants with its recorded fingerprint.
    pub(crate) fn check_agents_at_start(&self) {
        for (agent, manifest, exec) in self.agents.launchable() {
            if let Some(exec) = exec {
                self.check_agent(&agent, &manifest, &exec, "at start");
            }
        }
    }

    /// Before a launch: compare the agent with its recorded fingerprint (one `fstat` unless its
    /// program's stamp changed). Runs off the kernel's thread when hashing may be needed.
    pub(crate) async fn check_agent_before_launch(self: &Arc<Self>, agent: &str, exec: &Path) {
        if !self.rights.holds_any(agent) || self.rights.has_suspended(agent) {
            return;
        }
        let Some(manifest) = self.agents.manifest_fingerprint(agent) else {
            return;
        };
        let kernel = Arc::clone(self);
        let (agent, exec) = (agent.to_string(), exec.to_path_buf());
        let checked = tokio::task::spawn_blocking(move || {
            kernel.check_agent(&agent, &manifest, &exec, "before its launch")
        });
        if let Err(e) = checked.await {
            tracing::error!(error = %e, "the check of an agent's fingerprint failed");
        }
    }

    /// Compare one agent that holds grants with its recorded fingerprint: record it when there
    /// is none (grants from before fingerprints were kept), suspend its grants when it changed.
    fn check_agent(&self, agent: &str, manifest: &str, exec: &Path, when: &str) {
        if !self.rights.holds_any(agent) || self.rights.has_suspended(agent) {
            return;
        }
        let recorded = match self.store().agent_fingerprint(agent) {
            Ok(r) => r,
            Err(e) => return tracing::error!(agent, error = %e, "cannot read a fingerprint"),
        };
        let now = match current(agent, manifest, exec, recorded.as_ref(), self.now()) {
            Ok(fp) => fp,
            Err(e) => {
                return tracing::warn!(agent, exec = %exec.display(), error = %e, "cannot fingerprint the agent's program")
            }
        };
        let change = recorded.as_ref().and_then(|r| compare(r, &now));
        match (recorded, change) {
            // A grant given to the agent as it is now confirms it, even while that grant's own
            // recording of the fingerprint is still on its way (a launch right after a grant).
            (Some(r), Some(change)) if self.granted_as_it_is(agent, &r, &now, change) => {
                self.record_fingerprint(&now)
            }
            (Some(_), Some(change)) => self.suspend_changed(agent, change, when),
            (Some(r), None) if r.exec_stamp == now.exec_stamp && r.exec_path == now.exec_path => {}
            // First seen with grants, or the same content under a new stamp.
            _ => self.record_fingerprint(&now),
        }
    }

    /// Whether `agent` holds a grant given after `recorded` was taken (every grant records the
    /// fingerprint when it is given, so such a grant's recording has not landed yet) and, when
    /// its program changed, after the program took its present form: the user gave access to
    /// the agent as it is now.
    fn granted_as_it_is(
        &self,
        agent: &str,
        recorded: &AgentFingerprint,
        now: &AgentFingerprint,
        change: Change,
    ) -> bool {
        let program_since_ms = u64::try_from(now.exec_stamp.ctime_ns / 1_000_000).unwrap_or(0);
        self.rights.latest_grant_at(agent).is_some_and(|at| {
            at > recorded.recorded_at && (!change.program || at >= program_since_ms)
        })
    }

    fn record_fingerprint(&self, fp: &AgentFingerprint) {
        if let Err(e) = self.store().record_agent_fingerprint(fp) {
            tracing::error!(agent = %fp.agent, error = %e, "cannot record a fingerprint");
        }
    }

    /// The agent changed since its grants were given: suspend them until the user confirms.
    fn suspend_changed(&self, agent: &str, change: Change, when: &str) {
        let suspended = self.rights.suspend(agent);
        self.agents.set_change(agent, Some(change));
        tracing::warn!(
            agent,
            grants = suspended.len(),
            "the agent changed since it was given access ({}, seen {when}): its grants are suspended until the user confirms",
            change.describe()
        );
        let reason = format!(
            "suspended: {agent} changed since it was given access ({}); kept until the user confirms",
            change.describe()
        );
        for g in &suspended {
            let _ = self.audit(AuditEntry {
                principal: agent,
                capability: g.capability.name,
                scope: &g.scope,
                decision: AuditDecision::Suspend,
                reason: &reason,
            });
            self.events.publish(Event::GrantRevoked(g.info()));
        }
        self.end_what_was_allowed(&suspended);
    }

    /// A consent prompt for `subject`, starting with what changed in its agent since the user
    /// gave it access, if anything did.
    pub(crate) fn with_change_notice(
        &self,
        subject: &crate::authorize::Subject,
        mut prompt: crate::consent::Prompt,
    ) -> crate::consent::Prompt {
        if let Some(notice) = self.change_notice(subject.principal(), &subject.display_name) {
            prompt.body = format!("{notice}\n{}", prompt.body);
        }
        prompt
    }

    /// The line a consent prompt for `principal` starts with when it changed since the user
    /// gave it access, if it did.
    fn change_notice(&self, principal: &str, display_name: &str) -> Option<String> {
        if !self.rights.has_suspended(principal) {
            return None;
        }
        let change = self.agents.change(principal)?;
        Some(format!(
            "{} changed since you gave it access: {}. Allowing this confirms the change and \
             gives back the access it had.",
            agentos_dbus_interfaces::text::display_safe(display_name, 64),
            change.describe()
        ))
    }

    /// Follow the grants given: each one records its agent's fingerprint, and one given to an
    /// agent whose grants were suspended confirms its change (audited).
    pub fn follow_agent_changes(self: &Arc<Self>) {
        let mut grants = self.subscribe(Kinds::GRANTS);
        let kernel: Weak<Kernel> = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(event) = grants.recv().await {
                let Event::GrantAdded(g) = &*event else {
                    continue;
                };
                let Some(k) = kernel.upgrade() else {
                    return;
                };
                k.granted(&g.principal).await;
            }
        });
    }

    /// A grant was given to `agent`: record what it is now, and audit a confirmation.
    async fn granted(self: &Arc<Self>, agent: &str) {
        let restored = self.rights.take_restored(agent);
        let change = self.agents.change(agent);
        if !self.rights.has_suspended(agent) {
            self.agents.set_change(agent, None);
        }
        if change.is_some() || !restored.is_empty() {
            let what = change.map_or("it changed", Change::describe);
            let reason = format!(
                "confirmed by the user: {agent} changed since it was given access ({what}); {} suspended grants honoured again",
                restored.len()
            );
            tracing::info!(agent, restored = restored.len(), "{reason}");
            let _ = self.audit(AuditEntry {
                principal: agent,
                capability: "*",
                scope: "*",
                decision: AuditDecision::Confirm,
                reason: &reason,
            });
            for g in &restored {
                self.events.publish(Event::GrantAdded(g.info()));
            }
        }
        let Some(manifest) = self.agents.manifest_fingerprint(agent) else {
            return;
        };
        let Some(exec) = self
            .agents
            .launchable()
            .into_iter()
            .find(|(id, _, _)| id == agent)
            .and_then(|(_, _, exec)| exec)
        else {
            return;
        };
        let kernel = Arc::clone(self);
        let agent = agent.to_string();
        let recorded = tokio::task::spawn_blocking(move || {
            let recorded = kernel.store().agent_fingerprint(&agent).ok().flatten();
            match current(&agent, &manifest, &exec, recorded.as_ref(), kernel.now()) {
                Ok(fp) => {
                    let same = recorded.as_ref().is_some_and(|r| {
                        compare(r, &fp).is_none()
                            && r.exec_stamp == fp.exec_stamp
                            && r.exec_path == fp.exec_path
                    });
                    if !same {
                        kernel.record_fingerprint(&fp);
                    }
                }
                Err(e) => {
                    tracing::warn!(agent, error = %e, "cannot fingerprint the agent's program")
                }
            }
        });
        if let Err(e) = recorded.await {
            tracing::error!(error = %e, "recording an agent's fingerprint failed");
        }
    }

    /// Whether the kernel runs `agent` under bubblewrap (`Agent1.Sandboxed`).
    pub fn agent_sandboxed(&self, agent: &str) -> bool {
        self.agents.sandboxed(agent).unwrap_or(false)
    }

    /// What changed in `agent` since the user gave it access, with how many of its grants wait
    /// for the user's word; empty when nothing did (`Agent1.Changed`).
    pub fn agent_changed(&self, agent: &str) -> String {
        let suspended = self
            .rights
            .list_suspended()
            .iter()
            .filter(|g| g.principal == agent)
            .count();
        match self.agents.change(agent) {
            Some(change) if suspended > 0 => format!(
                "{}; {suspended} grants suspended until you confirm",
                change.describe()
            ),
            _ => String::new(),
        }
    }

    /// The grants suspended because their agent changed.
    pub fn list_suspended_grants(&self) -> Vec<agentos_dbus_interfaces::GrantInfo> {
        self.rights.list_suspended()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_hashed_only_when_its_stamp_changed() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("agent");
        std::fs::write(&prog, b"one").unwrap();
        let first = current("a", "m", &prog, None, 1).unwrap();
        assert_eq!(first.exec_sha256, hex::encode(Sha256::digest(b"one")));
        // Same stamp: the recorded hash is taken as it is (here a made-up one, to see it).
        let mut recorded = first.clone();
        recorded.exec_sha256 = "recorded".into();
        let again = current("a", "m", &prog, Some(&recorded), 2).unwrap();
        assert_eq!(again.exec_sha256, "recorded");
        assert_eq!(compare(&recorded, &again), None);
        // Rewritten: the stamp moves (ctime at least), the content is hashed and differs.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&prog, b"two").unwrap();
        let changed = current("a", "m", &prog, Some(&first), 3).unwrap();
        assert_ne!(changed.exec_stamp, first.exec_stamp);
        assert_eq!(
            compare(&first, &changed),
            Some(Change {
                manifest: false,
                program: true
            })
        );
        // Rewritten with the same content: a new stamp, the same program.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&prog, b"one").unwrap();
        let same = current("a", "m", &prog, Some(&first), 4).unwrap();
        assert_eq!(compare(&first, &same), None);
        let other_manifest = current("a", "n", &prog, Some(&first), 5).unwrap();
        assert_eq!(
            compare(&first, &other_manifest).map(Change::describe),
            Some("its manifest is different")
        );
    }
}
