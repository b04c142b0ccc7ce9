//! Model providers' API keys in the Secret Service (gnome-keyring, KWallet): stored, found,
//! listed and deleted under AgentOS's own schema, `org.agentos.ModelKey`, with the provider, the
//! account and (for OpenAI-compatible servers) the base URL as attributes. A key lives only in
//! the keyring and in a [`Secret`], which never shows it (`Debug` and `Display` hide it) and
//! wipes it from memory when dropped; no error names it.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use secret_service::{Collection, EncryptionType, Item, SecretService};
use zeroize::Zeroizing;

/// The `xdg:schema` attribute of every key AgentOS stores (libsecret's convention).
pub const SCHEMA: &str = "org.agentos.ModelKey";
/// The account a key is stored under when none is named.
pub const DEFAULT_ACCOUNT: &str = "default";
/// The longest key accepted (providers' keys are well under 300 characters).
pub const MAX_KEY_LEN: usize = 8192;

const ATTR_SCHEMA: &str = "xdg:schema";
const ATTR_PROVIDER: &str = "provider";
const ATTR_ACCOUNT: &str = "account";
const ATTR_BASE_URL: &str = "base-url";
const MAX_ACCOUNT_LEN: usize = 64;
const MAX_URL_LEN: usize = 2048;
const CONTENT_TYPE: &str = "text/plain";
const SECRETS_NAME: &str = "org.freedesktop.secrets";

/// A model provider whose key can be stored: the vocabulary the broker understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// api.openai.com.
    OpenAi,
    /// api.anthropic.com.
    Anthropic,
    /// Google's Gemini API.
    Gemini,
    /// Any server speaking OpenAI's API (vLLM, LM Studio, llama.cpp server, a hosted one): its
    /// base URL is stored with the key.
    OpenAiCompatible,
}

impl Provider {
    /// Every provider, in the order they are listed to the user.
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::OpenAiCompatible,
    ];

    /// The provider's name as typed and stored (`openai`, `openai-compatible`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::OpenAiCompatible => "openai-compatible",
        }
    }

    /// The provider named `name`.
    pub fn parse(name: &str) -> Result<Provider, KeyStoreError> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| KeyStoreError::UnknownProvider(name.to_string()))
    }

    /// Whether a key of this provider needs a base URL (the server it is sent to).
    pub fn needs_base_url(self) -> bool {
        self == Provider::OpenAiCompatible
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API key. It shows as `Secret(hidden)` and is wiped from memory when dropped; only
/// [`expose`](Secret::expose) gives the text, for the one request that sends it.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// A key read from input (stdin, a paste): surrounding whitespace and the final newline are
    /// dropped; an empty key, one longer than [`MAX_KEY_LEN`], or one with a character that
    /// cannot go into an HTTP header (a space inside, a control character, non-ASCII) is
    /// refused. The input is wiped whatever the outcome.
    pub fn from_input(input: Vec<u8>) -> Result<Secret, KeyStoreError> {
        let input = Zeroizing::new(input);
        let text = input.trim_ascii();
        if text.is_empty() {
            return Err(KeyStoreError::EmptyKey);
        }
        if text.len() > MAX_KEY_LEN {
            return Err(KeyStoreError::KeyTooLong);
        }
        if !text.iter().all(|b| b.is_ascii_graphic()) {
            return Err(KeyStoreError::KeyNotPrintable);
        }
        let mut key = Zeroizing::new(String::with_capacity(text.len()));
        key.extend(text.iter().map(|&b| char::from(b)));
        Ok(Secret(key))
    }

    /// The key itself. Never log, print or send it anywhere but to its provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(hidden key)")
    }
}

/// Which key: a provider and an account of the user's at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId {
    provider: Provider,
    account: String,
}

impl KeyId {
    /// The key of `account` (the [`DEFAULT_ACCOUNT`] when `None`) at `provider`. An account
    /// name is 1 to 64 letters, digits and `. _ - @ +`.
    pub fn new(provider: Provider, account: Option<&str>) -> Result<KeyId, KeyStoreError> {
        let account = account.unwrap_or(DEFAULT_ACCOUNT);
        let valid = !account.is_empty()
            && account.len() <= MAX_ACCOUNT_LEN
            && account
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@+".contains(c));
        if !valid {
            return Err(KeyStoreError::BadAccount(account.to_string()));
        }
        Ok(KeyId {
            provider,
            account: account.to_string(),
        })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// The label the keyring shows (in Passwords and Keys, KWalletManager).
    pub fn label(&self) -> String {
        format!("AgentOS: {} API key ({})", self.provider, self.account)
    }

    fn attributes(&self) -> HashMap<&str, &str> {
        HashMap::from([
            (ATTR_SCHEMA, SCHEMA),
            (ATTR_PROVIDER, self.provider.as_str()),
            (ATTR_ACCOUNT, self.account.as_str()),
        ])
    }
}

/// Check a server's base URL: `https://`, or `http://` to this machine only (a key sent over
/// plain HTTP elsewhere can be read on the way); no user name or password in it, no spaces or
/// control characters. Returns it without a trailing `/`.
pub fn validate_base_url(url: &str) -> Result<String, KeyStoreError> {
    let bad = |reason: &'static str| KeyStoreError::BadBaseUrl(reason);
    if url.len() > MAX_URL_LEN {
        return Err(bad("it is too long"));
    }
    if !url.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad("it holds a space, a control or a non-ASCII character"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or(bad("it does not start with https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("it holds a user name or password"));
    }
    // The host, and after it nothing or `:` and a port number; an IPv6 literal is bracketed.
    let (host, port) = match authority.strip_prefix('[') {
        Some(inner) => {
            let close = inner
                .find(']')
                .ok_or(bad("its IPv6 address lacks its `]`"))?;
            (&authority[..close + 2], &inner[close + 1..])
        }
        None => match authority.find(':') {
            Some(colon) => (&authority[..colon], &authority[colon..]),
            None => (authority, ""),
        },
    };
    if let Some(number) = port.strip_prefix(':') {
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad("its port is not a number"));
        }
    } else if !port.is_empty() {
        return Err(bad("its port is not a number"));
    }
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" => {
            let local = matches!(
                host.to_ascii_lowercase().as_str(),
                "localhost" | "127.0.0.1" | "[::1]"
            ) || host.starts_with("127.");
            if !local {
                return Err(bad(
                    "plain http:// is accepted only for a server on this machine (localhost): \
                     use https://",
                ));
            }
        }
        _ => return Err(bad("it does not start with https://")),
    }
    Ok(url.trim_end_matches('/').to_string())
}

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
        "the Secret Service has no default keyring: create one (for example in Passwords and \
         Keys) and set it as the default"
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
            None if id.provider.needs_base_url() => {
                return Err(KeyStoreError::MissingBaseUrl(id.provider))
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
        Ok(Some(Secret(key)))
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

    /// Every stored key's provider, account, label and base URL (never the key), sorted.
    pub async fn list(&self) -> Result<Vec<StoredKey>, KeyStoreError> {
        let found = self
            .service
            .search_items(HashMap::from([(ATTR_SCHEMA, SCHEMA)]))
            .await?;
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
    fn providers_round_trip_and_unknown_ones_are_refused() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()).unwrap(), p);
        }
        assert!(Provider::OpenAiCompatible.needs_base_url());
        assert!(!Provider::Anthropic.needs_base_url());
        let e = Provider::parse("OpenAI").unwrap_err();
        assert!(matches!(e, KeyStoreError::UnknownProvider(_)));
        assert!(e.to_string().contains("openai-compatible"));
    }

    #[test]
    fn accounts_are_checked() {
        let id = KeyId::new(Provider::OpenAi, None).unwrap();
        assert_eq!(id.account(), DEFAULT_ACCOUNT);
        assert_eq!(id.label(), "AgentOS: openai API key (default)");
        assert!(KeyId::new(Provider::Gemini, Some("work.me+1@x_y-z")).is_ok());
        for bad in ["", "a b", "a\nb", "ä", &"a".repeat(65)] {
            assert!(
                matches!(
                    KeyId::new(Provider::Gemini, Some(bad)),
                    Err(KeyStoreError::BadAccount(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_are_trimmed_checked_and_never_shown() {
        let key = Secret::from_input(b"  sk-abc123\r\n".to_vec()).unwrap();
        assert_eq!(key.expose(), "sk-abc123");
        assert!(!format!("{key:?} {key}").contains("sk-abc"));
        assert!(matches!(
            Secret::from_input(b" \n".to_vec()),
            Err(KeyStoreError::EmptyKey)
        ));
        assert!(matches!(
            Secret::from_input(b"sk a".to_vec()),
            Err(KeyStoreError::KeyNotPrintable)
        ));
        assert!(matches!(
            Secret::from_input(b"sk\x1b[2J".to_vec()),
            Err(KeyStoreError::KeyNotPrintable)
        ));
        assert!(matches!(
            Secret::from_input(vec![b'k'; MAX_KEY_LEN + 1]),
            Err(KeyStoreError::KeyTooLong)
        ));
        for e in [
            Secret::from_input(b"sk a".to_vec()).unwrap_err(),
            Secret::from_input(b"sk\x01".to_vec()).unwrap_err(),
        ] {
            assert!(!e.to_string().contains("sk"), "{e}");
        }
    }

    #[test]
    fn base_urls_are_https_or_local() {
        for good in [
            "https://api.example.com/v1",
            "https://api.example.com:8443/v1/",
            "http://localhost:8080/v1",
            "http://127.0.0.1:11434",
            "http://[::1]:8000/v1",
            "https://[2001:db8::1]/v1",
        ] {
            let url = validate_base_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(!url.ends_with('/'));
        }
        for bad in [
            "api.example.com",
            "ftp://example.com",
            "http://example.com/v1",
            "http://192.168.1.2:8080",
            "http://localhost.example.com",
            "https://user:pw@example.com",
            "https://",
            "https://exa mple.com",
            "https://example.com:x/",
        ] {
            assert!(
                matches!(validate_base_url(bad), Err(KeyStoreError::BadBaseUrl(_))),
                "{bad}"
            );
        }
    }

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
