//! Caller identities per unique bus name, and when each name appeared on the bus (from
//! `NameOwnerChanged`), so an identity is only read from a process that was there before its
//! connection; an identity is served from the cache only while that process still runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentos_portal::identity::{identify_sender, Identified};
use agentos_portal::proc_stat::SinceBoot;
use agentos_portal::{CallerIdentity, IdentityError};
use zbus::names::UniqueName;

/// How long a call waits for the kernel to learn of its connection: until the kernel follows the
/// bus's name changes at start-up, or until it has handled the `NameOwnerChanged` the bus sent
/// before the call (the bus announces a connection before it answers its `Hello`).
const APPEARANCE_WAIT: Duration = Duration::from_secs(5);

/// Why a bus caller could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("the kernel does not yet follow which connections come and go on the bus")]
    NotFollowing,
    #[error("the bus never announced the connection {0} (it may have left)")]
    NotAnnounced(String),
}

/// Identities of the bus peers seen so far, and when the peers on the bus appeared.
#[derive(Debug, Default)]
pub struct IdentityCache {
    inner: Mutex<Inner>,
    /// Woken when an appearance is recorded or the kernel starts following the bus.
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Whether `NameOwnerChanged` is followed and the names already on the bus are recorded.
    following: bool,
    /// Per unique name, a moment at which it was on the bus already (no earlier than its
    /// appearance; the earliest such moment known).
    appeared: HashMap<String, SinceBoot>,
    identities: HashMap<String, Arc<Identified>>,
}

impl IdentityCache {
    /// The kernel follows `NameOwnerChanged` from now on; `existing` are the unique names on the
    /// bus once it did, all there by `at`. Their real appearance may be earlier: a pid reused
    /// before `at` is not caught for them (only one reused after it is).
    pub fn following(&self, existing: impl IntoIterator<Item = String>, at: SinceBoot) {
        let mut inner = self.lock();
        for name in existing {
            inner.appeared.entry(name).or_insert(at);
        }
        inner.following = true;
        drop(inner);
        self.changed.notify_waiters();
    }

    /// A unique name appeared on the bus (its `NameOwnerChanged` was seen at `at`).
    pub fn appeared(&self, name: &str, at: SinceBoot) {
        let mut inner = self.lock();
        let t = inner.appeared.entry(name.to_string()).or_insert(at);
        *t = (*t).min(at);
        drop(inner);
        self.changed.notify_waiters();
    }

    /// The identity of `sender`: from the cache while the process it was read from still runs,
    /// or established afresh from a process that started before the connection appeared.
    pub async fn identify(
        &self,
        conn: &zbus::Connection,
        sender: &UniqueName<'_>,
    ) -> Result<CallerIdentity, IdentifyError> {
        let name = sender.as_str();
        let cached = self.lock().identities.get(name).cloned();
        if let Some(known) = cached {
            if let Err(e) = known.check_opener() {
                self.lock().identities.remove(name);
                tracing::warn!(sender = name, pid = known.pid(), error = %e, "caller refused");
                return Err(e.into());
            }
            return Ok(known.identity().clone());
        }
        let appeared_by = self.appearance(name, APPEARANCE_WAIT).await?;
        let identified = identify_sender(conn, sender, appeared_by)
            .await
            .inspect_err(|e| {
                if matches!(e, IdentityError::PidReused { .. }) {
                    tracing::warn!(sender = name, error = %e, "caller refused");
                }
            })?;
        let identity = identified.identity().clone();
        let mut inner = self.lock();
        // Not kept for a name that left meanwhile (it never comes back).
        if inner.appeared.contains_key(name) {
            inner
                .identities
                .insert(name.to_string(), Arc::new(identified));
        }
        Ok(identity)
    }

    /// When `name` was on the bus at the latest, waiting briefly for the kernel to learn it.
    async fn appearance(&self, name: &str, wait: Duration) -> Result<SinceBoot, IdentifyError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let following = {
                let inner = self.lock();
                if let Some(at) = inner.appeared.get(name) {
                    return Ok(*at);
                }
                inner.following
            };
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(if following {
                    IdentifyError::NotAnnounced(name.to_string())
                } else {
                    IdentifyError::NotFollowing
                });
            }
        }
    }

    /// Forget a name that left the bus.
    pub fn forget(&self, name: &str) {
        let mut inner = self.lock();
        inner.identities.remove(name);
        inner.appeared.remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_waits_for_its_connection_to_be_announced() {
        let cache = Arc::new(IdentityCache::default());
        let waiting = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.appearance(":1.7", APPEARANCE_WAIT).await })
        };
        tokio::task::yield_now().await;
        cache.following([":1.3".to_string()], SinceBoot(10));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        cache.appeared(":1.7", SinceBoot(20));
        let at = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(at, SinceBoot(20));
        assert_eq!(
            cache.appearance(":1.3", APPEARANCE_WAIT).await.unwrap(),
            SinceBoot(10)
        );
    }

    #[tokio::test]
    async fn a_connection_never_announced_is_refused() {
        let cache = IdentityCache::default();
        let wait = Duration::from_millis(50);
        assert!(matches!(
            cache.appearance(":1.1", wait).await,
            Err(IdentifyError::NotFollowing)
        ));
        cache.following([], SinceBoot(10));
        assert!(matches!(
            cache.appearance(":1.2", wait).await,
            Err(IdentifyError::NotAnnounced(_))
        ));
    }

    #[test]
    fn the_earliest_moment_is_kept_and_forgotten_with_the_name() {
        let cache = IdentityCache::default();
        cache.following([":1.4".to_string()], SinceBoot(50));
        cache.appeared(":1.4", SinceBoot(60));
        assert_eq!(cache.lock().appeared[":1.4"], SinceBoot(50));
        cache.appeared(":1.5", SinceBoot(70));
        cache.appeared(":1.5", SinceBoot(65));
        assert_eq!(cache.lock().appeared[":1.5"], SinceBoot(65));
        cache.forget(":1.5");
        assert!(!cache.lock().appeared.contains_key(":1.5"));
    }
}
