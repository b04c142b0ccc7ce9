//! The user's model keys as read from the Secret Service, and when a read may be used again.
//!
//! Opening a Secret Service session computes a Diffie-Hellman exchange: milliseconds of big
//! number arithmetic. On the kernel's one thread that would stall every stream it relays, each
//! time the catalog is looked at again (every [`super::service::CATALOG_TTL_MS`] while models
//! are used). So the keys are read on a thread of their own, and the catalog's periodic look
//! reuses the last read while the keyring is followed (`keys.rs`) and nothing of it changed.
//! A look the caller needs now (a model not found, `agentctl models`) reads them again.

use agentos_models::ApiKey;
use agentos_portal::secrets::{self, KeyId, KeyStore, Unlock};

use super::service::Freshness;

/// A read is used again for at most this long, even with nothing said of a change: a signal
/// the kernel missed is not followed for longer.
pub const KEYS_TTL_MS: u64 = 10 * 60 * 1000;

/// One key the user stored for a remote provider.
#[derive(Debug, Clone)]
pub struct StoredModelKey {
    pub provider: secrets::Provider,
    pub account: String,
    /// The server of an OpenAI-compatible provider.
    pub base_url: Option<String>,
    pub key: ApiKey,
}

/// A successful read: the keys, the count of key changes when it began, and when it ended.
#[derive(Debug, Clone)]
pub struct KeysRead {
    pub keys: Vec<StoredModelKey>,
    pub changes: u64,
    pub at: u64,
}

/// Whether `last` may stand for a new read at `now`: only for a load that may serve what it has
/// (`Freshness::Cached`), while the keyring's changes are `followed`, none came since it began
/// (`changes` counts them), and it is younger than [`KEYS_TTL_MS`].
pub fn reusable(
    last: Option<&KeysRead>,
    fresh: Freshness,
    followed: bool,
    changes: u64,
    now: u64,
) -> bool {
    fresh == Freshness::Cached
        && followed
        && last.is_some_and(|l| l.changes == changes && now.saturating_sub(l.at) < KEYS_TTL_MS)
}

/// Read the keys from the Secret Service on `bus`, on a blocking-pool thread (see the module's
/// note); `Err` says why the keyring could not be read. No Secret Service at all is no keys.
pub async fn read(bus: zbus::Connection) -> Result<Vec<StoredModelKey>, String> {
    let handle = tokio::runtime::Handle::current();
    // The kernel's thread, awaiting this, goes on driving the bus connection's I/O.
    tokio::task::spawn_blocking(move || handle.block_on(read_here(bus)))
        .await
        .map_err(|e| format!("the keyring could not be read: {e}"))?
}

async fn read_here(bus: zbus::Connection) -> Result<Vec<StoredModelKey>, String> {
    let store = match KeyStore::with_connection(bus, Unlock::Never).await {
        Ok(store) => store,
        // No keyring at all: no keys were stored to be missed (not worth a word to a caller).
        Err(secrets::KeyStoreError::NoService) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut keys = Vec::new();
    for stored in store.list().await.map_err(|e| e.to_string())? {
        let Ok(provider) = secrets::Provider::parse(&stored.provider) else {
            continue;
        };
        let Ok(id) = KeyId::new(provider, Some(&stored.account)) else {
            continue;
        };
        let secret = match store.lookup(&id).await {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(provider = %stored.provider, account = %stored.account, error = %e, "cannot read a model key");
                continue;
            }
        };
        let key = ApiKey::new(secret.expose());
        drop(secret);
        keys.push(StoredModelKey {
            provider,
            account: stored.account,
            base_url: stored.base_url,
            key,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_at(changes: u64, at: u64) -> KeysRead {
        KeysRead {
            keys: Vec::new(),
            changes,
            at,
        }
    }

    #[test]
    fn the_periodic_look_reuses_a_read_while_nothing_changed() {
        let last = read_at(3, 1_000);
        assert!(reusable(Some(&last), Freshness::Cached, true, 3, 31_000));
        assert!(reusable(
            Some(&last),
            Freshness::Cached,
            true,
            3,
            1_000 + KEYS_TTL_MS - 1
        ));
    }

    #[test]
    fn a_change_a_lapse_of_following_age_or_a_caller_who_needs_it_now_reads_again() {
        let last = read_at(3, 1_000);
        assert!(!reusable(None, Freshness::Cached, true, 3, 2_000));
        assert!(!reusable(Some(&last), Freshness::Cached, true, 4, 2_000));
        assert!(!reusable(Some(&last), Freshness::Cached, false, 3, 2_000));
        assert!(!reusable(
            Some(&last),
            Freshness::Cached,
            true,
            3,
            1_000 + KEYS_TTL_MS
        ));
        assert!(!reusable(
            Some(&last),
            Freshness::Within(5_000),
            true,
            3,
            2_000
        ));
    }
}
