//! The connection to the kernel: the bus opened once, the panel's consent provider served on
//! it, the owner of `org.agentos.Kernel` verified through `agentos-client` (our user, pinned by
//! unique name), and followed: when the kernel leaves the panel says so, and when a kernel
//! comes back (`NameOwnerChanged`) it is verified again and the pages reload.

use std::sync::Arc;
use std::time::Duration;

use agentos_client::{open_bus, Client, ClientError};

use crate::consent::service::{self, ConsentEvent, Verified};

/// How long to wait before trying a lost bus again.
const RETRY: Duration = Duration::from_secs(2);
/// How long a missing kernel may take to appear before the panel says it is not running.
const GRACE: Duration = Duration::from_millis(500);

/// What the window hears about the kernel.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// A verified kernel: (re)load everything from it.
    Up(Client),
    /// No kernel to talk to, and why (in a sentence).
    Down(String),
    /// Whether the panel is the consent provider (`Err`: why not).
    Consent(Result<(), String>),
}

/// Where dialogs are asked for; false when the window is gone.
pub type ConsentUi = Arc<dyn Fn(ConsentEvent) -> bool + Send + Sync>;

/// Follow the kernel on the bus at `address` (the session bus when `None`) until the panel
/// quits, telling `out` every change.
pub async fn run(
    address: Option<String>,
    verified: Verified,
    ui: ConsentUi,
    out: impl Fn(LinkEvent) + Send + Sync,
) {
    loop {
        let conn = match open_bus(address.as_deref()).await {
            Ok(conn) => conn,
            Err(e) => {
                out(LinkEvent::Down(e.to_string()));
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let ui = Arc::clone(&ui);
        let served = service::serve(&conn, Arc::clone(&verified), Box::new(move |e| ui(e))).await;
        out(LinkEvent::Consent(served.map_err(|e| e.to_string())));
        follow(conn, &verified, &out).await;
        set(&verified, None);
        tokio::time::sleep(RETRY).await;
    }
}

fn set(verified: &Verified, client: Option<Client>) {
    verified.send_replace(client);
}

/// Follow the kernel on one bus connection until that connection is lost.
async fn follow(conn: zbus::Connection, verified: &Verified, out: &(impl Fn(LinkEvent) + Sync)) {
    let waiting = Client::when_running(conn.clone());
    tokio::pin!(waiting);
    let first = tokio::select! {
        c = &mut waiting => c,
        () = tokio::time::sleep(GRACE) => {
            out(LinkEvent::Down(ClientError::NotRunning.to_string()));
            waiting.await
        }
    };
    let client = match first {
        Ok(client) => client,
        Err(e) => {
            out(LinkEvent::Down(e.to_string()));
            return;
        }
    };
    loop {
        // Watched before the owner is looked at (verified again if it changed since), so no
        // change slips between that look and the wait.
        let changed = client.owner_changed();
        match client.owner().await {
            Ok(_) => {
                set(verified, Some(client.clone()));
                out(LinkEvent::Up(client.clone()));
                changed.await;
                continue;
            }
            Err(ClientError::Disconnected) => {
                out(LinkEvent::Down(ClientError::Disconnected.to_string()));
                return;
            }
            Err(e) => {
                set(verified, None);
                out(LinkEvent::Down(e.to_string()));
            }
        }
        match client.wait_for_kernel().await {
            Ok(_) => continue,
            Err(e) => {
                out(LinkEvent::Down(e.to_string()));
                return;
            }
        }
    }
}
