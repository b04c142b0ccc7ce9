//! Caller identities per unique bus name, cached until the name goes away (NameOwnerChanged).

use std::collections::HashMap;
use std::sync::Mutex;

use agentos_portal::{identify_sender, CallerIdentity, IdentityError};
use zbus::names::UniqueName;

/// Identities of the bus peers seen so far.
#[derive(Debug, Default)]
pub struct IdentityCache {
    map: Mutex<HashMap<String, CallerIdentity>>,
}

impl IdentityCache {
    /// The identity of `sender`, from the cache or established afresh.
    pub async fn identify(
        &self,
        conn: &zbus::Connection,
        sender: &UniqueName<'_>,
    ) -> Result<CallerIdentity, IdentityError> {
        if let Some(id) = self.lock().get(sender.as_str()) {
            return Ok(id.clone());
        }
        let identity = identify_sender(conn, sender).await?;
        self.lock().insert(sender.to_string(), identity.clone());
        Ok(identity)
    }

    /// Forget a name that left the bus.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallerIdentity>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}
