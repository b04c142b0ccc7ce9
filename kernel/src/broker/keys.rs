//! The user's keys followed: when the Secret Service says something of its changed (an item
//! created, changed or deleted, a collection locked) or it starts or stops, the catalog, which
//! holds the keys, is loaded anew before its next use. A key the user removed or replaced (with
//! `agentctl models`, or in the desktop's Passwords and Keys) is not used a moment longer.
//! Started with the first catalog loaded on a bus; with nothing changing it sleeps; it ends
//! with the bus connection. While it follows, the catalog's periodic look reuses the keys it
//! read last (`stored_keys.rs`).

use std::sync::Arc;

use agentos_portal::secrets::{SECRETS_NAME, SECRETS_PATH};
use futures_util::StreamExt;
use zbus::message::Type;
use zbus::MatchRule;

use super::service::Broker;

/// Follow the Secret Service on `bus` until the bus connection ends.
pub async fn follow(broker: Arc<Broker>, bus: zbus::Connection) {
    let changes = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(SECRETS_NAME)
        .and_then(|b| b.path_namespace(SECRETS_PATH))
        .map(|b| b.build());
    let owner = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender("org.freedesktop.DBus")
        .and_then(|b| b.member("NameOwnerChanged"))
        .and_then(|b| b.arg(0, SECRETS_NAME))
        .map(|b| b.build());
    let (Ok(changes), Ok(owner)) = (changes, owner) else {
        return;
    };
    let streams = futures_util::future::try_join(
        zbus::MessageStream::for_match_rule(changes, &bus, Some(16)),
        zbus::MessageStream::for_match_rule(owner, &bus, Some(4)),
    )
    .await;
    let (changes, owner) = match streams {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow the Secret Service: a changed key is \
                 used until the model catalog is next loaded");
            return;
        }
    };
    let mut both = futures_util::stream::select(changes, owner);
    broker.set_keys_followed(true);
    // An error item (a message zbus could not read) is a change as far as anyone knows.
    while both.next().await.is_some() {
        broker.keys_changed();
    }
    broker.set_keys_followed(false);
}
