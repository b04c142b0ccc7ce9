//! Connecting to the bus and making sure the kernel on it is agentosd of this very user.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use agentos_dbus_interfaces::names::KERNEL_BUS_NAME;
use agentos_dbus_interfaces::proxies::{Kernel1Proxy, Task1Proxy};
use zbus::fdo::DBusProxy;
use zbus::names::{BusName, OwnedUniqueName};
use zbus::proxy::CacheProperties;
use zbus::Connection;

use crate::error::{describe_fdo, describe_zbus, CliError, Result};

/// How long to wait for the bus to accept us.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the reply to a method call (libdbus waits 25 s by default).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A verified connection to the kernel. Every proxy talks to the unique name that was checked,
/// so a process grabbing `org.agentos.Kernel` later cannot receive our calls.
pub struct Kernel {
    pub conn: Connection,
    pub owner: OwnedUniqueName,
    pub proxy: Kernel1Proxy<'static>,
}

impl Kernel {
    /// A proxy for the task object at `path`, on the verified kernel.
    pub async fn task(&self, path: &str) -> Result<Task1Proxy<'static>> {
        let proxy = Task1Proxy::builder(&self.conn)
            .destination(BusName::from(self.owner.clone().into_inner()))?
            .path(path.to_string())?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        Ok(proxy)
    }
}

/// Connect to the bus at `address` (the session bus when `None`) and verify the kernel.
pub async fn connect(address: Option<&str>) -> Result<Kernel> {
    let conn = open_bus(address).await?;
    let owner = verify_owner(&conn).await?;
    let proxy = Kernel1Proxy::builder(&conn)
        .destination(BusName::from(owner.clone().into_inner()))?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    Ok(Kernel { conn, owner, proxy })
}

async fn open_bus(address: Option<&str>) -> Result<Connection> {
    let (what, attempt) = match address {
        Some(addr) => {
            let builder = zbus::connection::Builder::address(addr).map_err(|e| {
                CliError::new(format!(
                    "invalid bus address {addr:?}: {}",
                    describe_zbus(&e)
                ))
            })?;
            (format!("the bus at {addr}"), builder)
        }
        None => {
            let builder = zbus::connection::Builder::session().map_err(|e| {
                CliError::new(format!(
                    "cannot find the session bus: {}",
                    describe_zbus(&e)
                ))
            })?;
            ("the session bus".to_string(), builder)
        }
    };
    let attempt = attempt.method_timeout(CALL_TIMEOUT);
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt.build()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(CliError::new(format!(
            "cannot connect to {what}: {}",
            describe_zbus(&e)
        ))),
        Err(_) => Err(CliError::new(format!(
            "cannot connect to {what}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// The unique name of the owner of `org.agentos.Kernel`, after checking it runs as our user.
async fn verify_owner(conn: &Connection) -> Result<OwnedUniqueName> {
    let dbus = DBusProxy::new(conn).await?;
    let name = BusName::from_static_str(KERNEL_BUS_NAME).map_err(zbus::Error::from)?;
    let owner = match dbus.get_name_owner(name).await {
        Ok(owner) => owner,
        Err(zbus::fdo::Error::NameHasNoOwner(_)) => {
            return Err(CliError::new(format!(
                "agentosd is not running on this bus (no owner of {KERNEL_BUS_NAME})"
            )))
        }
        Err(e) => {
            return Err(CliError::new(format!(
                "cannot look up the owner of {KERNEL_BUS_NAME}: {}",
                describe_fdo(&e)
            )))
        }
    };
    let their_uid = dbus
        .get_connection_unix_user(BusName::from(owner.clone().into_inner()))
        .await
        .map_err(|e| {
            CliError::new(format!(
                "cannot tell which user runs {KERNEL_BUS_NAME}: {}",
                describe_fdo(&e)
            ))
        })?;
    let our_uid = std::fs::metadata("/proc/self")
        .map_err(|e| CliError::new(format!("cannot determine our own user id: {e}")))?
        .uid();
    if their_uid != our_uid {
        return Err(CliError::new(format!(
            "refusing to talk to {KERNEL_BUS_NAME}: it is owned by {owner}, which runs as uid \
             {their_uid}, not as you (uid {our_uid})"
        )));
    }
    Ok(owner)
}
