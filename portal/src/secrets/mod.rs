//! Model providers' API keys in the Secret Service (gnome-keyring, KWallet): stored, found,
//! listed and deleted under AgentOS's own schema, `org.agentos.ModelKey`, with the provider, the
//! account and (for OpenAI-compatible servers) the base URL as attributes. A key lives only in
//! the keyring and in a [`Secret`], which never shows it (`Debug` and `Display` hide it) and
//! wipes it from memory when dropped; no error names it.

mod key;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use secret_service::{Collection, EncryptionType, Item, SecretService};
use zeroize::Zeroizing;

pub use key::{validate_base_url, KeyId, Provider, Secret, DEFAULT_ACCOUNT, MAX_KEY_LEN, SCHEMA};
use key::{ATTR_ACCOUNT, ATTR_BASE_URL, ATTR_PROVIDER, ATTR_SCHEMA};

const CONTENT_TYPE: &str = "text/plain";
/// The Secret Service's name on the session bus.
pub const SECRETS_NAME: &str = "org.freedesktop.secrets";
/// Where its objects (collections, items) are.
pub const SECRETS_PATH: &str = "/org/freedesktop/secrets";

/// A stored key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// As stored (a provider this version does not know is still listed).
    pub provider: String,
    pub account: String,
    /// What the keyring shows for it.
    pub label: String,
    /// The server of an OpenAI-compatible provider.
    pub base_url: Option<String>,
}

/// Where a key was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The label of the keyring (collection) that holds it, e.g. `Login`.
    pub collection: String,
    /// The item's label.
    pub label: String,
}

/// Whether a locked keyring may be unlocked through the Secret Service's own prompt (its
/// password dialog), which needs a person at the desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlock {
    /// Report [`KeyStoreError::Locked`] instead.
    Never,
    /// Ask the service to prompt, waiting at most this long for the person to answer.
    Prompt(Duration),
}

/// A failure of the key store, in words for a person. None of them holds a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    #[error("no Secret Service is running: start gnome-keyring or KWallet")]
    NoService,
    #[error(
        "the keyring \"{0}\" is locked: unlock it (log in to the desktop, or open Passwords and \
         Keys) and try again"
    )]
    Locked(String),
    #[error("unlocking the keyring was cancelled")]
    UnlockDismissed,
    #[error("the keyring was not unlocked within {0} s")]
    UnlockTimedOut(u64),
    #[error(
        "the Secret Service has no default keyring: create one in Passwords and Keys and set it \
         as the default, or, without a desktop, start gnome-keyring with a password for its login \
         keyring (`read -rs PW && printf %s \"$PW\" | gnome-keyring-daemon --replace --unlock \
         --components=secrets`)"
    )]
    NoDefaultCollection,
    #[error("unknown provider \"{0}\": use openai, anthropic, gemini or openai-compatible")]
    UnknownProvider(String),
    #[error("bad account name \"{0}\": use 1 to 64 letters, digits and . _ - @ +")]
    BadAccount(String),
    #[error("bad base URL: {0}")]
    BadBaseUrl(&'static str),
    #[error("{0} needs a base URL (--base-url https://…): the server its key is sent to")]
    MissingBaseUrl(Provider),
    #[error("the key is empty")]
    EmptyKey,
    #[error("the key is longer than {MAX_KEY_LEN} characters")]
    KeyTooLong,
    #[error(
        "the key holds a space, a control or a non-ASCII character, which no provider's key \
         has: check what was pasted"
    )]
    KeyNotPrintable,
    #[error("the stored key of {0} is not text")]
    StoredKeyNotText(String),
    #[error("the Secret Service failed: {0}")]
    Service(String),
}

impl From<secret_service::Error> for KeyStoreError {
    fn from(e: secret_service::Error) -> Self {
        use secret_service::Error as E;
        match e {
            E::Unavailable => KeyStoreError::NoService,
            E::Prompt | E::PromptDisconnected => KeyStoreError::UnlockDismissed,
            E::Zbus(zbus::Error::MethodError(name, _, _)) if no_service(name.as_str()) => {
                KeyStoreError::NoService
            }
            E::ZbusFdo(
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_),
            ) => KeyStoreError::NoService,
            // The service's own words (gnome-keyring's never quote a secret).
            other => KeyStoreError::Service(other.to_string()),
        }
    }
}

/// Whether a D-Bus error name says nobody owns (or could be started for) the service's name.
fn no_service(name: &str) -> bool {
    name == "org.freedesktop.DBus.Error.ServiceUnknown"
        || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        || name.starts_with("org.freedesktop.DBus.Error.Spawn.")
}

/// The user's model keys in the Secret Service, over one bus connection and one encrypted
/// session (keys travel encrypted between the service and this process).
pub struct KeyStore {
    service: SecretService<'static>,
    unlock: Unlock,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("unlock", &self.unlock)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// The Secret Service on the session bus.
    pub async fn connect(unlock: Unlock) -> Result<KeyStore, KeyStoreError> {
        let conn = zbus::Connection::session()
            .await
            .map_err(|_| KeyStoreError::NoService)?;
        KeyStore::with_connection(conn, unlock).await
    }

    /// The Secret Service on the bus `conn` is connected to.
    pub async fn with_connection(
        conn: zbus::Connection,
        unlock: Unlock,
    ) -> Result<KeyStore, KeyStoreError> {
        if !reachable(&conn).await {
            return Err(KeyStoreError::NoService);
        }
        let service = SecretService::connect_with_existing(EncryptionType::Dh, conn).await?;
        Ok(KeyStore { service, unlock })
    }

    /// Store `key` as the key of `id` in the default keyring, replacing the one stored before
    /// (`base_url` is required for an OpenAI-compatible provider and checked with
    /// [`validate_base_url`]).
    pub async fn store(
        &self,
        id: &KeyId,
        base_url: Option<&str>,
        key: &Secret,
    ) -> Result<Stored, KeyStoreError> {
        let base_url = match base_url {
            Some(url) => Some(validate_base_url(url)?),
            None if id.provider().needs_base_url() => {
                return Err(KeyStoreError::MissingBaseUrl(id.provider()))
            }
            None => None,
        };
        let collection = match self.service.get_default_collection().await {
            Ok(c) => c,
            Err(secret_service::Error::NoResult) => return Err(KeyStoreError::NoDefaultCollection),
            Err(e) => return Err(e.into()),
        };
        self.unlocked(&collection).await?;
        let mut attributes = id.attributes();
        if let Some(url) = &base_url {
            attributes.insert(ATTR_BASE_URL, url);
        }
        let label = id.label();
        let item = collection
            .create_item(
                &label,
                attributes,
                key.expose().as_bytes(),
                true,
                CONTENT_TYPE,
            )
            .await?;
        // An older key of the same provider and account (with another base URL) goes.
        for old in self.matching(id).await? {
            if old.item_path != item.item_path {
                old.delete().await?;
            }
        }
        Ok(Stored {
            collection: collection.get_label().await?,
            label,
        })
    }

    /// The key of `id`, if one is stored.
    pub async fn lookup(&self, id: &KeyId) -> Result<Option<Secret>, KeyStoreError> {
        let Some(item) = self.matching(id).await?.into_iter().next() else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(item.get_secret().await?);
        let text =
            std::str::from_utf8(&bytes).map_err(|_| KeyStoreError::StoredKeyNotText(id.label()))?;
        let mut key = Zeroizing::new(String::with_capacity(text.len()));
        key.push_str(text);
        Ok(Some(Secret::from_stored(key)))
    }

    /// The base URL stored with the key of `id`, if any.
    pub async fn base_url(&self, id: &KeyId) -> Result<Option<String>, KeyStoreError> {
        match self.matching(id).await?.into_iter().next() {
            Some(item) => Ok(item.get_attributes().await?.remove(ATTR_BASE_URL)),
            None => Ok(None),
        }
    }

    /// Delete the key of `id`; how many items went (0 when none was stored).
    pub async fn delete(&self, id: &KeyId) -> Result<usize, KeyStoreError> {
        let items = self.matching(id).await?;
        for item in &items {
            item.delete().await?;
        }
        Ok(items.len())
    }

    /// Every stored key's provider, account, label and base URL (never the key), sorted. None
    /// found while the default keyring is locked is that keyring named as locked (what it holds
    /// cannot be seen), not an empty list.
    pub async fn list(&self) -> Result<Vec<StoredKey>, KeyStoreError> {
        let found = self
            .service
            .search_items(HashMap::from([(ATTR_SCHEMA, SCHEMA)]))
            .await?;
        if found.unlocked.is_empty() && found.locked.is_empty() {
            if let Ok(default) = self.service.get_default_collection().await {
                if default.is_locked().await.unwrap_or(false) {
                    let label = default.get_label().await.unwrap_or_default();
                    return Err(KeyStoreError::Locked(if label.is_empty() {
                        "default".into()
                    } else {
                        label
                    }));
                }
            }
        }
        let mut keys = Vec::new();
        for item in found.unlocked.iter().chain(&found.locked) {
            let mut attributes = item.get_attributes().await?;
            keys.push(StoredKey {
                provider: attributes.remove(ATTR_PROVIDER).unwrap_or_default(),
                account: attributes.remove(ATTR_ACCOUNT).unwrap_or_default(),
                label: item.get_label().await?,
                base_url: attributes.remove(ATTR_BASE_URL),
            });
        }
        keys.sort_by(|a, b| (&a.provider, &a.account).cmp(&(&b.provider, &b.account)));
        Ok(keys)
    }

    /// The items holding the key of `id`, unlocked (through the prompt, if allowed).
    async fn matching(&self, id: &KeyId) -> Result<Vec<Item<'_>>, KeyStoreError> {
        let found = self.service.search_items(id.attributes()).await?;
        if found.locked.is_empty() {
            return Ok(found.unlocked);
        }
        match self.unlock {
            Unlock::Never => Err(KeyStoreError::Locked(
                self.locked_label(&found.locked).await,
            )),
            Unlock::Prompt(limit) => {
                let locked: Vec<&Item<'_>> = found.locked.iter().collect();
                bounded(limit, self.service.unlock_all(&locked)).await?;
                let mut items = found.unlocked;
                items.extend(found.locked);
                Ok(items)
            }
        }
    }

    /// Fail with [`KeyStoreError::Locked`] on a locked collection, or unlock it if allowed.
    async fn unlocked(&self, collection: &Collection<'_>) -> Result<(), KeyStoreError> {
        if !collection.is_locked().await? {
            return Ok(());
        }
        match self.unlock {
            Unlock::Never => Err(KeyStoreError::Locked(
                collection.get_label().await.unwrap_or_default(),
            )),
            Unlock::Prompt(limit) => bounded(limit, collection.unlock()).await,
        }
    }

    /// The label of the keyring that holds the first of `items`.
    async fn locked_label(&self, items: &[Item<'_>]) -> String {
        for collection in self.service.get_all_collections().await.unwrap_or_default() {
            let holds = match collection.get_all_items().await {
                Ok(all) => all.iter().any(|i| items.iter().any(|l| l == i)),
                Err(_) => false,
            };
            if holds {
                return collection.get_label().await.unwrap_or_default();
            }
        }
        String::new()
    }
}

/// Run an unlock prompt for at most `limit`.
async fn bounded(
    limit: Duration,
    prompt: impl std::future::Future<Output = Result<(), secret_service::Error>>,
) -> Result<(), KeyStoreError> {
    match tokio::time::timeout(limit, prompt).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(KeyStoreError::UnlockTimedOut(limit.as_secs())),
    }
}

/// Whether the Secret Service's name has an owner on the bus or can be started by it.
async fn reachable(conn: &zbus::Connection) -> bool {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return false;
    };
    let Ok(name) = zbus::names::BusName::try_from(SECRETS_NAME) else {
        return false;
    };
    if dbus.name_has_owner(name).await.unwrap_or(false) {
        return true;
    }
    dbus.list_activatable_names()
        .await
        .map(|names| names.iter().any(|n| n.as_str() == SECRETS_NAME))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_service_errors_are_recognised() {
        assert!(no_service("org.freedesktop.DBus.Error.ServiceUnknown"));
        assert!(no_service("org.freedesktop.DBus.Error.Spawn.ChildExited"));
        assert!(!no_service("org.freedesktop.Secret.Error.IsLocked"));
        assert!(matches!(
            KeyStoreError::from(secret_service::Error::Unavailable),
            KeyStoreError::NoService
        ));
    }
}
