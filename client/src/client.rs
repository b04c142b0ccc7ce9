//! The verified connection: who owns `org.agentos.Kernel`, checked to run as our user, and every
//! proxy pinned to that unique name; checked again after the name changes hands.

use std::sync::{Arc, Mutex, Weak};

use agentos_dbus_interfaces::names::{self, KERNEL_BUS_NAME};
use agentos_dbus_interfaces::proxies::{Agent1Proxy, Kernel1Proxy, Task1Proxy};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zbus::fdo::{DBusProxy, NameOwnerChangedStream};
use zbus::names::{BusName, OwnedUniqueName};
use zbus::proxy::CacheProperties;
use zbus::Connection;

use crate::bus::{self, our_uid};
use crate::error::{describe_fdo, ClientError};
use crate::events::TaskEvents;

/// How many times in a row verification is repeated when the name changes hands during it.
const VERIFY_ATTEMPTS: usize = 5;

/// A connection to the bus with a verified kernel on it.
///
/// The owner of `org.agentos.Kernel` is looked up once and must run as our own user; every
/// proxy handed out talks to that unique name, never to the well-known name, so a process that
/// takes the name later cannot receive calls meant for the kernel. When the name changes hands
/// (the client follows `NameOwnerChanged`), the next use looks the owner up and checks it again.
///
/// Cloning is cheap; clones share the verification.
#[derive(Clone)]
pub struct Client {
    conn: Connection,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("conn", &self.conn.unique_name())
            .field("kernel", &self.shared.current())
            .finish()
    }
}

struct Shared {
    dbus: DBusProxy<'static>,
    our_uid: u32,
    state: Mutex<State>,
    /// Counts the changes of the name's owner seen so far.
    changes: watch::Sender<u64>,
    follower: Mutex<Option<JoinHandle<()>>>,
    /// The private channel to the kernel, once opened (see `channel.rs`).
    channel: tokio::sync::Mutex<Option<Channel>>,
}

/// A private channel to the kernel (`channel.rs`) and the kernel it leads to.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) kernel: OwnedUniqueName,
    pub(crate) conn: Connection,
    /// Its chat pipe (`pipe.rs`), when the kernel gave one.
    pub(crate) pipe: Option<std::sync::Arc<crate::pipe::Pipe>>,
}

#[derive(Debug, Default)]
struct State {
    /// The verified owner; `None` until verified, and again once the name changed hands.
    owner: Option<OwnedUniqueName>,
    /// Whether some owner was verified before (a missing kernel has then gone away).
    had_owner: bool,
    /// The bus connection closed.
    closed: bool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.follower.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock is never held across a panic-prone section; recover it regardless.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> Option<OwnedUniqueName> {
        self.state().owner.clone()
    }

    /// The name changed hands: forget the verified owner unless it is the new one.
    fn owner_changed(&self, new_owner: Option<&str>) {
        {
            let mut state = self.state();
            if state.owner.as_ref().map(|o| o.as_str()) != new_owner {
                state.owner = None;
            }
        }
        self.changes.send_modify(|n| *n += 1);
    }

    fn closed(&self) {
        {
            let mut state = self.state();
            state.owner = None;
            state.closed = true;
        }
        self.changes.send_modify(|n| *n += 1);
    }
}

impl Client {
    /// Connect to the session bus (`DBUS_SESSION_BUS_ADDRESS`; else `$XDG_RUNTIME_DIR/bus`;
    /// else the bus `./scripts/start` started, see [`bus::address_file`]) and verify the
    /// kernel on it.
    pub async fn new() -> Result<Client, ClientError> {
        let conn = bus::open_bus(None).await?;
        Client::with_connection(conn).await
    }

    /// Connect to the bus at a D-Bus `address` and verify the kernel on it.
    pub async fn at_address(address: &str) -> Result<Client, ClientError> {
        let conn = bus::open_bus(Some(address)).await?;
        Client::with_connection(conn).await
    }

    /// Verify the kernel on a connection made elsewhere; [`ClientError::NotRunning`] if there
    /// is none.
    pub async fn with_connection(conn: Connection) -> Result<Client, ClientError> {
        let client = Client::following(conn).await?;
        client.verify().await?;
        Ok(client)
    }

    /// Like [`with_connection`](Client::with_connection), but wait for a kernel to appear if
    /// none is running yet.
    pub async fn when_running(conn: Connection) -> Result<Client, ClientError> {
        let client = Client::following(conn).await?;
        client.wait_for_kernel().await?;
        Ok(client)
    }

    /// A client that follows the owner of the kernel's name, nothing verified yet. The match
    /// rule is in place before anything is looked up, so no change can be missed.
    async fn following(conn: Connection) -> Result<Client, ClientError> {
        let dbus = DBusProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let stream = dbus
            .receive_name_owner_changed_with_args(&[(0, KERNEL_BUS_NAME)])
            .await?;
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            dbus,
            our_uid: our_uid(),
            state: Mutex::new(State::default()),
            changes,
            follower: Mutex::new(None),
            channel: Default::default(),
        });
        let task = tokio::spawn(follow(stream, Arc::downgrade(&shared)));
        *shared.follower.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(Client { conn, shared })
    }

    pub(crate) fn channel_slot(&self) -> &tokio::sync::Mutex<Option<Channel>> {
        &self.shared.channel
    }

    /// The bus connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The unique name of the verified kernel, verifying (again) if the name changed hands.
    pub async fn owner(&self) -> Result<OwnedUniqueName, ClientError> {
        if let Some(owner) = self.shared.current() {
            return Ok(owner);
        }
        self.verify().await
    }

    /// Look up the owner of the kernel's name now and check that it runs as our user.
    pub async fn verify(&self) -> Result<OwnedUniqueName, ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let seen = *self.shared.changes.borrow();
            let result = self.verify_once().await;
            let mut state = self.shared.state();
            if state.closed {
                return Err(ClientError::Disconnected);
            }
            // The name changed hands while we looked: look again, unless it keeps changing.
            if *self.shared.changes.borrow() != seen && attempt < VERIFY_ATTEMPTS {
                continue;
            }
            return match result {
                Ok(owner) => {
                    state.owner = Some(owner.clone());
                    state.had_owner = true;
                    Ok(owner)
                }
                Err(ClientError::NotRunning) if state.had_owner => {
                    state.owner = None;
                    Err(ClientError::KernelGone)
                }
                Err(e) => {
                    state.owner = None;
                    Err(e)
                }
            };
        }
    }

    async fn verify_once(&self) -> Result<OwnedUniqueName, ClientError> {
        let dbus = &self.shared.dbus;
        let name = BusName::from_static_str(KERNEL_BUS_NAME).map_err(zbus::Error::from)?;
        let owner = match dbus.get_name_owner(name).await {
            Ok(owner) => owner,
            Err(zbus::fdo::Error::NameHasNoOwner(_)) => return Err(ClientError::NotRunning),
            Err(e) => return Err(ClientError::Lookup(describe_fdo(&e))),
        };
        let uid = match dbus
            .get_connection_unix_user(BusName::from(owner.clone().into_inner()))
            .await
        {
            Ok(uid) => uid,
            // It left between the two questions.
            Err(zbus::fdo::Error::NameHasNoOwner(_)) => return Err(ClientError::NotRunning),
            Err(e) => return Err(ClientError::UnknownUser(describe_fdo(&e))),
        };
        if uid != self.shared.our_uid {
            return Err(ClientError::WrongUser {
                owner: owner.to_string(),
                uid,
                ours: self.shared.our_uid,
            });
        }
        Ok(owner)
    }

    /// Look the owner of the kernel's name up now, waiting while there is none, and verify
    /// it. Failures other than a missing kernel (another user's process holding the name, a
    /// lost bus) are returned.
    pub async fn wait_for_kernel(&self) -> Result<OwnedUniqueName, ClientError> {
        loop {
            let mut changes = self.shared.changes.subscribe();
            changes.borrow_and_update();
            match self.verify().await {
                Ok(owner) => return Ok(owner),
                Err(ClientError::NotRunning | ClientError::KernelGone) => {
                    if changes.changed().await.is_err() {
                        return Err(ClientError::Disconnected);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Wait until the kernel's name changes hands (or the connection closes). The watch
    /// begins when this is called, not when the future is first polled: call it before looking
    /// at the owner (with [`owner`](Client::owner)), and a change in between is not missed.
    pub fn owner_changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut changes = self.shared.changes.subscribe();
        changes.borrow_and_update();
        async move {
            let _ = changes.changed().await;
        }
    }

    /// `org.agentos.Kernel1` on the verified kernel.
    pub async fn kernel(&self) -> Result<Kernel1Proxy<'static>, ClientError> {
        let owner = self.owner().await?;
        Ok(Kernel1Proxy::builder(&self.conn)
            .destination(owner)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?)
    }

    /// `org.agentos.Task1` of task `id` on the verified kernel.
    pub async fn task(&self, id: u64) -> Result<Task1Proxy<'static>, ClientError> {
        self.task_at(&names::task_path(id)).await
    }

    /// `org.agentos.Task1` at the object `path` (as `Delegate` returns it) on the verified
    /// kernel.
    pub async fn task_at(&self, path: &str) -> Result<Task1Proxy<'static>, ClientError> {
        let owner = self.owner().await?;
        Ok(Task1Proxy::builder(&self.conn)
            .destination(owner)?
            .path(path.to_string())?
            .cache_properties(CacheProperties::No)
            .build()
            .await?)
    }

    /// `org.agentos.Agent1` of the agent `id` on the verified kernel.
    pub async fn agent(&self, id: &str) -> Result<Agent1Proxy<'static>, ClientError> {
        let owner = self.owner().await?;
        Ok(Agent1Proxy::builder(&self.conn)
            .destination(owner)?
            .path(names::agent_path(id))?
            .cache_properties(CacheProperties::No)
            .build()
            .await?)
    }

    /// The kernel's `TaskChanged` signals as typed events, from the verified kernel only. The
    /// broadcast signals carry no content, so the client subscribes (`Kernel1.Subscribe`) and
    /// keeps only the full signals addressed to it: those of the tasks this caller may see.
    /// Should the kernel refuse the subscription (an older kernel), the broadcast ones are kept.
    pub async fn task_events(&self) -> Result<TaskEvents, ClientError> {
        let kernel = self.kernel().await?;
        let stream = kernel.receive_task_changed().await?;
        let addressed = kernel.subscribe().await.is_ok();
        Ok(TaskEvents::new(stream, addressed))
    }
}

/// Follow the owner of the kernel's name until the client is gone or the bus closes.
async fn follow(mut stream: NameOwnerChangedStream, shared: Weak<Shared>) {
    while let Some(signal) = stream.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let new_owner = signal
            .args()
            .ok()
            .and_then(|a| a.new_owner().as_ref().map(|o| o.to_string()));
        shared.owner_changed(new_owner.as_deref());
    }
    if let Some(shared) = shared.upgrade() {
        shared.closed();
    }
}
