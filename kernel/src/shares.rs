//! Files shared with Flatpak agents through the Documents portal (`Host1.ShareFile`), taken
//! back when what allowed them ends: the task they were shared for ends, or a grant covering
//! them is revoked (by the user, from the desktop, or suspended when the agent changed). Each
//! share is a document of its own (never one the user made with a file chooser, which taking
//! it back would break) and transient: the portal forgets it when it exits, should the kernel
//! not be there to take it back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::events::{Event, Kinds};
use crate::kernel::Kernel;
use crate::sync::lock;

/// One file shared with one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The portal's document id.
    pub doc: String,
    pub agent: String,
    /// The folder whose `files.read` right allowed it.
    pub folder: String,
}

/// The shares made, by the task they were made for.
#[derive(Debug, Default)]
pub struct Shares {
    by_task: HashMap<u64, Vec<Share>>,
}

impl Shares {
    pub fn add(&mut self, task: u64, share: Share) {
        self.by_task.entry(task).or_default().push(share);
    }

    /// The task ended: its shares, to take back.
    pub fn ended(&mut self, task: u64) -> Vec<Share> {
        self.by_task.remove(&task).unwrap_or_default()
    }

    /// `agent`'s right to read `scope` (a folder; `*` or empty: every folder) was taken away:
    /// its shares of files in that folder, to take back.
    pub fn revoked(&mut self, agent: &str, scope: &str) -> Vec<Share> {
        let all = scope.is_empty() || scope == "*";
        let mut out = Vec::new();
        for shares in self.by_task.values_mut() {
            let (gone, kept): (Vec<Share>, Vec<Share>) =
                std::mem::take(shares).into_iter().partition(|s| {
                    s.agent == agent && (all || Path::new(&s.folder).starts_with(scope))
                });
            *shares = kept;
            out.extend(gone);
        }
        self.by_task.retain(|_, s| !s.is_empty());
        out
    }
}

/// The kernel's shares, and whether their watch runs.
#[derive(Debug, Default)]
pub struct Shared {
    table: Mutex<Shares>,
    watching: AtomicBool,
}

impl Kernel {
    /// Note a file shared for `task`; the watch that takes shares back starts with the first.
    pub(crate) fn note_share(self: &Arc<Self>, task: u64, share: Share) {
        lock(&self.shares.table).add(task, share);
        if !self.shares.watching.swap(true, Ordering::SeqCst) {
            let events = self.subscribe(Kinds::TASKS | Kinds::GRANTS);
            tokio::spawn(watch(Arc::downgrade(self), events));
        }
        // It may have ended, or lost the right, while the file was being shared.
        let ended = self.tasks.get(task).is_none_or(|t| t.state.is_terminal());
        if ended {
            let back = lock(&self.shares.table).ended(task);
            self.take_back(back);
        }
    }

    /// Take `shares` back from their agents (in the background; a portal that is gone took
    /// them all).
    fn take_back(&self, shares: Vec<Share>) {
        if shares.is_empty() {
            return;
        }
        let Some(conn) = self.bus().cloned() else {
            return;
        };
        tokio::spawn(async move {
            for s in shares {
                if let Err(e) = crate::documents::delete(&conn, &s.doc).await {
                    tracing::warn!(doc = %s.doc, agent = %s.agent, error = %e, "cannot take a shared file back");
                }
            }
        });
    }
}

/// Take shares back as their tasks end and their grants go, until the kernel goes away.
async fn watch(kernel: Weak<Kernel>, mut events: UnboundedReceiver<Arc<Event>>) {
    while let Some(event) = events.recv().await {
        let Some(k) = kernel.upgrade() else { return };
        let back = match &*event {
            Event::TaskChanged(t) if t.state.is_terminal() => lock(&k.shares.table).ended(t.id),
            Event::GrantRevoked(g) if g.capability == "files.read" => {
                lock(&k.shares.table).revoked(&g.principal, &g.scope)
            }
            _ => continue,
        };
        k.take_back(back);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(doc: &str, agent: &str, folder: &str) -> Share {
        Share {
            doc: doc.into(),
            agent: agent.into(),
            folder: folder.into(),
        }
    }

    #[test]
    fn a_tasks_shares_go_when_it_ends() {
        let mut s = Shares::default();
        s.add(1, share("a", "org.example.A", "/home/u/Documents"));
        s.add(1, share("b", "org.example.A", "/home/u/Pictures"));
        s.add(2, share("c", "org.example.A", "/home/u/Documents"));
        let gone: Vec<String> = s.ended(1).into_iter().map(|s| s.doc).collect();
        assert_eq!(gone, ["a", "b"]);
        assert!(s.ended(1).is_empty());
        assert_eq!(s.ended(2).len(), 1);
    }

    #[test]
    fn a_revoked_folder_takes_back_the_files_in_it_and_only_the_agents() {
        let mut s = Shares::default();
        s.add(1, share("a", "org.example.A", "/home/u/Documents/tax"));
        s.add(1, share("b", "org.example.A", "/home/u/Documents2"));
        s.add(2, share("c", "org.example.B", "/home/u/Documents"));
        s.add(3, share("d", "org.example.A", "/home/u/Pictures"));
        let gone: Vec<String> = s
            .revoked("org.example.A", "/home/u/Documents")
            .into_iter()
            .map(|s| s.doc)
            .collect();
        // By whole components: Documents2 is not in Documents.
        assert_eq!(gone, ["a"]);
        let mut rest: Vec<String> = s
            .revoked("org.example.A", "*")
            .into_iter()
            .map(|s| s.doc)
            .collect();
        rest.sort();
        assert_eq!(rest, ["b", "d"]);
        assert_eq!(s.ended(2).len(), 1, "the other agent's share stays");
    }
}
