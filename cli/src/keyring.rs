//! The Secret Service's key store as agentctl opens it: on the bus agentctl was given, asking
//! for the keyring's own unlock dialog only when a person runs it on a terminal. Shared by
//! `agentctl models add/remove` (`models.rs`) and the listing (`models_list.rs`).

use std::io::IsTerminal;
use std::time::Duration;

use agentos_portal::secrets::{KeyStore, KeyStoreError, Unlock};

use crate::error::{CliError, Result};

/// How long a person at the desktop has to answer the keyring's unlock dialog.
const UNLOCK_TIMEOUT: Duration = Duration::from_secs(120);

impl From<KeyStoreError> for CliError {
    fn from(e: KeyStoreError) -> Self {
        CliError::new(e.to_string())
    }
}

/// The key store on the bus at `address` (the session bus when `None`).
pub async fn open_store(address: Option<&str>) -> Result<KeyStore> {
    let conn = agentos_client::open_bus(address).await?;
    let unlock = if std::io::stderr().is_terminal() {
        Unlock::Prompt(UNLOCK_TIMEOUT)
    } else {
        Unlock::Never
    };
    Ok(KeyStore::with_connection(conn, unlock).await?)
}
