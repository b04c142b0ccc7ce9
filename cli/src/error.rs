//! The error every subcommand returns: one plain sentence meant for a person.

use std::fmt;

use zbus::DBusError;

/// A failure to report as `agentctl: <message>` (exit status 1).
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

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

fn describe_bus_error(name: &str, message: Option<&str>) -> String {
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

impl From<agentos_dbus_interfaces::Error> for CliError {
    fn from(e: agentos_dbus_interfaces::Error) -> Self {
        match e {
            agentos_dbus_interfaces::Error::ZBus(z) => CliError(describe_zbus(&z)),
            other => CliError(other.message()),
        }
    }
}

impl From<zbus::Error> for CliError {
    fn from(e: zbus::Error) -> Self {
        CliError(describe_zbus(&e))
    }
}

impl From<zbus::fdo::Error> for CliError {
    fn from(e: zbus::fdo::Error) -> Self {
        CliError(describe_fdo(&e))
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError(format!("cannot encode JSON: {e}"))
    }
}

/// Result of a subcommand; `Ok` carries the process exit status.
pub type Result<T> = std::result::Result<T, CliError>;
