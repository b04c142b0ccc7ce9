//! The error every subcommand returns: one plain sentence meant for a person.

use std::fmt;

use agentos_client::{describe_fdo, describe_zbus, ClientError};

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

impl From<agentos_dbus_interfaces::Error> for CliError {
    fn from(e: agentos_dbus_interfaces::Error) -> Self {
        match e {
            agentos_dbus_interfaces::Error::ZBus(z) => CliError(describe_zbus(&z)),
            other => CliError(other.message()),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError(e.to_string())
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
