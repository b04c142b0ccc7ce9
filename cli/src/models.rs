//! `agentctl models add` and `models remove`: the model providers' API keys, kept in the Secret
//! Service (gnome-keyring, KWallet) and nowhere else (`agentctl models` lists them with the
//! broker's models, see `models_list.rs`). A key is read from stdin (without
//! echo on a terminal) and never printed, logged or put in an error.

use std::io::{IsTerminal, Read};

use agentos_portal::secrets::{KeyId, KeyStoreError, Provider, Secret};

use crate::command::ModelsCommand;
use crate::error::{CliError, Result};
use crate::keyring::open_store;
use crate::models_list;
use crate::output;

/// Run `agentctl models …` against the Secret Service on the bus at `address`.
pub async fn run(address: Option<&str>, command: ModelsCommand) -> Result<u8> {
    match command {
        ModelsCommand::List { json } => models_list::list(address, json).await,
        ModelsCommand::Add {
            provider,
            account,
            base_url,
        } => add(address, &provider, account.as_deref(), base_url.as_deref()).await,
        ModelsCommand::Remove { provider, account } => {
            remove(address, &provider, account.as_deref()).await
        }
    }
}

/// `agentctl models add <provider>`: read the key from stdin and store it.
async fn add(
    address: Option<&str>,
    provider: &str,
    account: Option<&str>,
    base_url: Option<&str>,
) -> Result<u8> {
    let provider = Provider::parse(provider)?;
    let id = KeyId::new(provider, account)?;
    if base_url.is_none() && provider.needs_base_url() {
        return Err(KeyStoreError::MissingBaseUrl(provider).into());
    }
    if let Some(url) = base_url {
        agentos_portal::secrets::validate_base_url(url)?;
    }
    let store = open_store(address).await?;
    let key = read_key(&id).await?;
    let stored = store.store(&id, base_url, &key).await?;
    drop(key);
    output::emit(&format!(
        "stored the {} key of account {} in the keyring \"{}\" as \"{}\"\n",
        id.provider(),
        id.account(),
        output::clean(&stored.collection),
        output::clean(&stored.label),
    ))?;
    Ok(0)
}

/// `agentctl models remove <provider>`: delete the stored key.
async fn remove(address: Option<&str>, provider: &str, account: Option<&str>) -> Result<u8> {
    let id = KeyId::new(Provider::parse(provider)?, account)?;
    let store = open_store(address).await?;
    match store.delete(&id).await? {
        0 => Err(CliError::new(format!(
            "no {} key of account {} is stored",
            id.provider(),
            id.account()
        ))),
        _ => {
            output::emit(&format!(
                "removed the {} key of account {}\n",
                id.provider(),
                id.account()
            ))?;
            Ok(0)
        }
    }
}

/// The key, from stdin: one line typed without echo on a terminal, else all of a pipe.
async fn read_key(id: &KeyId) -> Result<Secret> {
    let terminal = std::io::stdin().is_terminal();
    if terminal {
        output::warn(&format!(
            "Paste the {} API key and press Enter (it is not shown):",
            id.provider()
        ));
    }
    let reader = tokio::task::spawn_blocking(move || read_stdin(terminal));
    let bytes = tokio::select! {
        read = reader => read.map_err(|e| CliError::new(format!("cannot read the key: {e}")))??,
        _ = tokio::signal::ctrl_c() => {
            // The reader restores the terminal when it returns; Ctrl-C arrives only with ISIG,
            // which stays on: restore it here too, since the process ends now.
            echo::restore_now();
            return Err(CliError::new("cancelled: nothing was stored"));
        }
    };
    let key = Secret::from_input(bytes)?;
    Ok(key)
}

/// The most read from a pipe: far more than any key, little enough to refuse a file by mistake.
const MAX_INPUT: u64 = 64 * 1024;

fn read_stdin(terminal: bool) -> Result<Vec<u8>> {
    let stdin = std::io::stdin();
    let mut bytes = Vec::with_capacity(MAX_INPUT as usize + 1);
    if terminal {
        let _quiet = echo::off(&stdin);
        let mut line = String::with_capacity(MAX_INPUT as usize + 1);
        let read = stdin.read_line(&mut line);
        bytes.extend_from_slice(line.as_bytes());
        zero(line.into_bytes());
        read.map_err(|e| CliError::new(format!("cannot read the key: {e}")))?;
    } else {
        stdin
            .lock()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::new(format!("cannot read the key: {e}")))?;
        if bytes.len() as u64 > MAX_INPUT {
            zero(bytes);
            return Err(KeyStoreError::KeyTooLong.into());
        }
    }
    Ok(bytes)
}

/// Overwrite and drop a buffer that held (part of) a key.
fn zero(mut bytes: Vec<u8>) {
    bytes.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&bytes);
}

/// Echo off on the terminal while a key is typed.
mod echo {
    use std::os::fd::AsFd;
    use std::sync::Mutex;

    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};

    /// The terminal's settings before echo went off, to put back on Ctrl-C.
    static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

    /// Puts the terminal back as it was when dropped.
    pub struct Quiet;

    /// Turn echo off on `fd` (nothing happens if it is not a terminal).
    pub fn off(fd: &impl AsFd) -> Option<Quiet> {
        let before = tcgetattr(fd).ok()?;
        let mut quiet = before.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // Enter still shows as a new line.
        quiet.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(fd, OptionalActions::Now, &quiet).ok()?;
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(before);
        Some(Quiet)
    }

    /// Put the terminal's settings back, if echo was turned off.
    pub fn restore_now() {
        if let Some(before) = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &before);
        }
    }

    impl Drop for Quiet {
        fn drop(&mut self) {
            restore_now();
        }
    }
}
