//! `org.freedesktop.impl.portal.Access` served as `org.agentos.Consent`: the kernel's
//! `AccessDialog` calls become dialogs, their answers its replies. Only the verified kernel
//! (the unique name the client pinned) may open a dialog or close one; a request the kernel
//! closes (`impl.portal.Request.Close`, as when the asking agent went away) leaves the screen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentos_client::Client;
use agentos_dbus_interfaces::names::{CONSENT_BUS_NAME, CONSENT_PATH, KERNEL_BUS_NAME};
use agentos_dbus_interfaces::ConsentRequestInfo;
use futures_util::FutureExt;
use tokio::sync::{oneshot, Notify};
use zbus::fdo::RequestNameFlags;
use zbus::message::Header;
use zbus::object_server::ObjectServer;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::queue::Pending;
use super::request::{offered, request_id_of, shown, with_call, Answer, Requester};

/// How long the panel waits for the kernel to describe a request before showing what it sent.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for the panel to have verified the kernel, at most.
const VERIFY_WAIT: Duration = Duration::from_secs(5);
/// Tasks above the asking one named in the dialog, at most.
const CHAIN_LEN: usize = 8;

/// The kernel the panel trusts now (`None` while it is not running); a request waiting for one
/// is woken when it comes.
pub type Verified = Arc<tokio::sync::watch::Sender<Option<Client>>>;

/// What the dialogs are told.
#[derive(Debug)]
pub enum ConsentEvent {
    /// Ask the user; send the answer on `reply`.
    Ask(Pending<oneshot::Sender<Answer>>),
    /// The kernel closed this request: take its dialog away.
    Dismiss(String),
}

/// Why the panel could not become the consent provider.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("another consent provider already owns {CONSENT_BUS_NAME}")]
    NameTaken,
    #[error("cannot serve {CONSENT_BUS_NAME}: {0}")]
    Bus(#[from] zbus::Error),
}

/// Hands an event to the dialogs; false when they are gone.
pub type Ui = Box<dyn Fn(ConsentEvent) -> bool + Send + Sync>;

struct Access {
    kernel: Verified,
    ui: Ui,
}

/// `org.freedesktop.impl.portal.Request` on a dialog's handle.
struct Request {
    kernel: String,
    close: Arc<Notify>,
}

/// Whether `sender` owns the kernel's name on the bus now.
async fn owns_kernel_name(conn: &zbus::Connection, sender: Option<&str>) -> bool {
    let (Some(sender), Ok(name)) = (sender, zbus::names::BusName::try_from(KERNEL_BUS_NAME)) else {
        return false;
    };
    match zbus::fdo::DBusProxy::new(conn).await {
        Ok(dbus) => dbus
            .get_name_owner(name)
            .await
            .is_ok_and(|owner| owner.as_str() == sender),
        Err(_) => false,
    }
}

/// The verified kernel, waiting up to [`VERIFY_WAIT`] for it: the panel serves consent from the
/// moment it has a bus connection, and a kernel that asks at once (it was waiting for a provider)
/// can ask before the panel has finished checking who the kernel is.
async fn verified(kernel: &Verified) -> Option<Client> {
    let mut changes = kernel.subscribe();
    let client = tokio::time::timeout(VERIFY_WAIT, changes.wait_for(Option::is_some))
        .await
        .ok()?
        .ok()?
        .clone();
    client
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Request")]
impl Request {
    async fn close(&self, #[zbus(header)] hdr: Header<'_>) -> zbus::fdo::Result<()> {
        if hdr.sender().map(|s| s.as_str()) != Some(self.kernel.as_str()) {
            return Err(zbus::fdo::Error::AccessDenied(
                "only the AgentOS kernel may close its requests".into(),
            ));
        }
        self.close.notify_one();
        Ok(())
    }
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Access")]
impl Access {
    #[allow(clippy::too_many_arguments)]
    async fn access_dialog(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(connection)] conn: &zbus::Connection,
        handle: OwnedObjectPath,
        _app_id: String,
        _parent_window: String,
        title: String,
        subtitle: String,
        body: String,
        options: HashMap<String, OwnedValue>,
    ) -> zbus::fdo::Result<(u32, HashMap<String, OwnedValue>)> {
        // Only the owner of the kernel's name is worth waiting for; anyone else is refused now.
        if !owns_kernel_name(conn, hdr.sender().map(|s| s.as_str())).await {
            return Err(zbus::fdo::Error::AccessDenied(
                "only the AgentOS kernel may ask the user through the panel".into(),
            ));
        }
        let Some(client) = verified(&self.kernel).await else {
            return Err(zbus::fdo::Error::AccessDenied(
                "the panel is not connected to a verified AgentOS kernel".into(),
            ));
        };
        let owner = client
            .owner()
            .await
            .map_err(|e| zbus::fdo::Error::AccessDenied(e.to_string()))?;
        if hdr.sender().map(|s| s.as_str()) != Some(owner.as_str()) {
            return Err(zbus::fdo::Error::AccessDenied(
                "only the AgentOS kernel may ask the user through the panel".into(),
            ));
        }
        // The request's object is there before it is described, so a `Close` that comes while
        // it is being described is not lost (one that came earlier: `describe` finds the
        // request no longer listed).
        let close = Arc::new(Notify::new());
        let request = Request {
            kernel: owner.to_string(),
            close: Arc::clone(&close),
        };
        // A handle already served (the kernel never reuses one) is not served twice.
        let served = server.at(handle.as_ref(), request).await.unwrap_or(false);
        let answer = self
            .ask(
                &client,
                &owner,
                &handle,
                &close,
                [&title, &subtitle, &body],
                &options,
            )
            .await;
        if served {
            let _ = server.remove::<Request, _>(handle.as_ref()).await;
        }
        Ok(answer.reply())
    }
}

impl Access {
    /// Describe the request, show it, and wait for the user's answer, the kernel's `Close`, or
    /// the kernel leaving.
    async fn ask(
        &self,
        client: &Client,
        owner: &zbus::names::OwnedUniqueName,
        handle: &OwnedObjectPath,
        close: &Notify,
        [title, subtitle, body]: [&str; 3],
        options: &HashMap<String, OwnedValue>,
    ) -> Answer {
        let described = describe(client, request_id_of(handle.as_str(), options)).await;
        if described.settled || close.notified().now_or_never().is_some() {
            return Answer::Dismissed;
        }
        let pending_reply = oneshot::channel();
        let mut shown = with_call(
            shown(
                title,
                subtitle,
                body,
                described.info.as_ref(),
                described.requester.as_deref(),
                &described.chain,
            ),
            options,
        );
        if let Some(icon) = described.icon {
            shown.icon = icon;
        }
        let pending = Pending {
            handle: handle.to_string(),
            shown,
            answers: offered(options),
            since: described.info.as_ref().map(|i| i.since),
            reply: pending_reply.0,
        };
        if !(self.ui)(ConsentEvent::Ask(pending)) {
            return Answer::Dismissed;
        }
        // The kernel closes a request it no longer waits for; a kernel that went away cannot,
        // so its leaving closes the dialog too.
        let kernel_left = async {
            loop {
                // Watched before it is looked at: it may have left while the request was
                // described, and no change may slip between.
                let changed = client.owner_changed();
                if client.owner().await.ok().as_ref() != Some(owner) {
                    return;
                }
                changed.await;
            }
        };
        tokio::select! {
            a = pending_reply.1 => a.unwrap_or(Answer::Dismissed),
            () = close.notified() => {
                (self.ui)(ConsentEvent::Dismiss(handle.to_string()));
                Answer::Dismissed
            }
            () = kernel_left => {
                (self.ui)(ConsentEvent::Dismiss(handle.to_string()));
                Answer::Dismissed
            }
        }
    }
}

/// What the panel found out about a request: the pending request its handle names (from
/// `ListConsentRequests`), who asks in words, and the chain of tasks above the asking task.
#[derive(Debug, Default)]
struct Described {
    info: Option<ConsentRequestInfo>,
    requester: Option<String>,
    chain: Vec<String>,
    /// The requester's icon, when it was looked up.
    icon: Option<String>,
    /// The kernel's list was read and the request is not in it: the kernel no longer waits.
    settled: bool,
}

/// Who asks: an agent (its name and whether it runs sandboxed, from the kernel), else what
/// kind of app ([`Requester::not_agent`]).
async fn requester(client: &Client, principal: &str) -> Requester {
    if principal == "host" || principal.starts_with("host:") {
        return Requester::not_agent(principal, None);
    }
    let agent = match client.agent(principal).await {
        Ok(agent) => agent,
        Err(_) => return Requester::not_agent(principal, None),
    };
    match (agent.name().await, agent.sandboxed().await) {
        (Ok(name), Ok(sandboxed)) => Requester::Agent {
            id: principal.to_string(),
            name,
            sandboxed,
        },
        (Err(e), _) | (_, Err(e)) => {
            Requester::not_agent(principal, crate::bus_error::error_name(&e).as_deref())
        }
    }
}

async fn describe(client: &Client, id: Option<u64>) -> Described {
    let Some(id) = id else {
        return Described::default();
    };
    let lookup = async {
        let kernel = client.kernel().await.ok()?;
        let listed = kernel.list_consent_requests().await.ok()?;
        let Some(info) = listed.into_iter().find(|r| r.id == id) else {
            return Some(Described {
                settled: true,
                ..Described::default()
            });
        };
        let requester = requester(client, &info.principal).await;
        let icon = {
            let requester = requester.clone();
            tokio::task::spawn_blocking(move || super::icon::for_requester(&requester))
                .await
                .ok()
        };
        let mut chain = Vec::new();
        let mut next = info.task;
        while next != 0 && chain.len() < CHAIN_LEN {
            let Ok(task) = kernel.get_task(next).await else {
                break;
            };
            let caller = if task.parent == 0 {
                format!(", started by {}", task.caller)
            } else {
                String::new()
            };
            chain.push(format!(
                "Task {} ({}): {}{caller}",
                task.id,
                task.agent,
                crate::model::format::line(&task.goal, 80)
            ));
            next = task.parent;
        }
        Some(Described {
            info: Some(info),
            requester: Some(requester.words()),
            chain,
            icon,
            settled: false,
        })
    };
    tokio::time::timeout(DESCRIBE_TIMEOUT, lookup)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Serve the Access interface on `conn` and take `org.agentos.Consent` (without queueing: a
/// provider already running keeps the name).
pub async fn serve(conn: &zbus::Connection, kernel: Verified, ui: Ui) -> Result<(), ServeError> {
    conn.object_server()
        .at(CONSENT_PATH, Access { kernel, ui })
        .await?;
    let reply = conn
        .request_name_with_flags(CONSENT_BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await;
    match reply {
        Ok(zbus::fdo::RequestNameReply::PrimaryOwner)
        | Ok(zbus::fdo::RequestNameReply::AlreadyOwner) => Ok(()),
        Ok(_) | Err(zbus::Error::NameTaken) => Err(ServeError::NameTaken),
        Err(e) => Err(e.into()),
    }
}
