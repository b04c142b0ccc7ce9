//! Why the client could not reach or trust the kernel, in sentences meant for a person.

use agentos_dbus_interfaces::names::KERNEL_BUS_NAME;
use zbus::DBusError;

/// A failure to find the bus, reach it, or trust the owner of `org.agentos.Kernel` on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No session bus could be found (nor the address file of `./scripts/start`).
    #[error("cannot find the session bus: {0}")]
    NoBus(String),
    /// The address given (`--address`, or the one found) is not a D-Bus address.
    #[error("invalid bus address {address:?}: {detail}")]
    BadAddress { address: String, detail: String },
    /// The address file written by `./scripts/start` exists but is not to be trusted or read.
    #[error("{0}")]
    AddressFile(String),
    /// The bus did not accept the connection.
    #[error("cannot connect to {what}: {detail}")]
    Connect { what: String, detail: String },
    /// Nobody owns `org.agentos.Kernel`.
    #[error("agentosd is not running on this bus (no owner of {KERNEL_BUS_NAME})")]
    NotRunning,
    /// The kernel that was verified has left the bus and nobody took its place.
    #[error("agentosd went away (no owner of {KERNEL_BUS_NAME} any more)")]
    KernelGone,
    /// The bus could not say who owns `org.agentos.Kernel`.
    #[error("cannot look up the owner of {KERNEL_BUS_NAME}: {0}")]
    Lookup(String),
    /// The bus could not say which user runs the owner.
    #[error("cannot tell which user runs {KERNEL_BUS_NAME}: {0}")]
    UnknownUser(String),
    /// The owner runs as another user: not our kernel.
    #[error(
        "refusing to talk to {KERNEL_BUS_NAME}: it is owned by {owner}, which runs as uid \
         {uid}, not as you (uid {ours})"
    )]
    WrongUser { owner: String, uid: u32, ours: u32 },
    /// A signal from the kernel that does not follow the contract.
    #[error("agentosd sent a malformed signal: {0}")]
    Malformed(String),
    /// The connection to the bus is closed.
    #[error("the bus connection closed")]
    Disconnected,
    /// Any other failure of the bus or the connection.
    #[error("{}", describe_zbus(.0))]
    Bus(#[from] zbus::Error),
}

impl From<zbus::fdo::Error> for ClientError {
    fn from(e: zbus::fdo::Error) -> Self {
        ClientError::Bus(zbus::Error::FDO(Box::new(e)))
    }
}

/// The text of a transport-level error, without D-Bus error names where a message exists.
pub fn describe_zbus(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, message, _) => {
            describe_bus_error(name.as_str(), message.as_deref())
        }
        zbus::Error::FDO(e) => describe_fdo(e),
        zbus::Error::Connection(e, _) => e.to_string(),
        zbus::Error::InputOutput(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            "agentosd did not answer in time".to_string()
        }
        other => other.to_string(),
    }
}

/// The text of an error of the bus itself (`org.freedesktop.DBus.Error.*`).
pub fn describe_fdo(e: &zbus::fdo::Error) -> String {
    match e {
        zbus::fdo::Error::ZBus(z) => describe_zbus(z),
        other => describe_bus_error(other.name().as_str(), other.description()),
    }
}

/// The text of a D-Bus error by name and message.
pub fn describe_bus_error(name: &str, message: Option<&str>) -> String {
    match name {
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner"
        | "org.freedesktop.DBus.Error.NoReply"
        | "org.freedesktop.DBus.Error.Disconnected" => {
            let detail = message.unwrap_or(name);
            format!("lost contact with agentosd ({detail})")
        }
        "org.freedesktop.DBus.Error.UnknownMethod"
        | "org.freedesktop.DBus.Error.UnknownInterface"
        | "org.freedesktop.DBus.Error.UnknownObject" => {
            let detail = message.unwrap_or(name);
            format!("agentosd does not support this request ({detail})")
        }
        _ => match message {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => name.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(
            ClientError::NotRunning.to_string(),
            "agentosd is not running on this bus (no owner of org.agentos.Kernel)"
        );
        let e = ClientError::WrongUser {
            owner: ":1.7".into(),
            uid: 0,
            ours: 1000,
        };
        assert_eq!(
            e.to_string(),
            "refusing to talk to org.agentos.Kernel: it is owned by :1.7, which runs as uid 0, \
             not as you (uid 1000)"
        );
        assert_eq!(
            describe_bus_error("org.freedesktop.DBus.Error.ServiceUnknown", Some("gone")),
            "lost contact with agentosd (gone)"
        );
    }
}
