//! What a stored key is and which one: the providers' vocabulary, the account, a server's base
//! URL, and [`Secret`], the key itself, which never shows and is wiped when dropped.

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

use super::KeyStoreError;

/// The `xdg:schema` attribute of every key AgentOS stores (libsecret's convention).
pub const SCHEMA: &str = "org.agentos.ModelKey";
/// The account a key is stored under when none is named.
pub const DEFAULT_ACCOUNT: &str = "default";
/// The longest key accepted (providers' keys are well under 300 characters).
pub const MAX_KEY_LEN: usize = 8192;

pub(super) const ATTR_SCHEMA: &str = "xdg:schema";
pub(super) const ATTR_PROVIDER: &str = "provider";
pub(super) const ATTR_ACCOUNT: &str = "account";
pub(super) const ATTR_BASE_URL: &str = "base-url";
const MAX_ACCOUNT_LEN: usize = 64;
const MAX_URL_LEN: usize = 2048;

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

    /// A key as the Secret Service gave it back.
    pub(super) fn from_stored(key: Zeroizing<String>) -> Secret {
        Secret(key)
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

    pub(super) fn attributes(&self) -> HashMap<&str, &str> {
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
}
