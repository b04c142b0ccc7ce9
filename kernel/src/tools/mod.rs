//! Platform tools the kernel executes for agents once the policy allows a call.

pub mod files;
pub mod web;

/// Why a tool call failed, mapped to a named D-Bus error by the adapters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The path leads outside the granted folder (`..`, absolute, symlink).
    #[error("{0}")]
    Escapes(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Timeout(String),
}

impl From<ToolError> for agentos_dbus_interfaces::Error {
    fn from(e: ToolError) -> Self {
        use agentos_dbus_interfaces::Error;
        match e {
            ToolError::Escapes(m) => Error::AccessDenied(m),
            ToolError::Invalid(m) => Error::InvalidArgument(m),
            ToolError::Failed(m) => Error::Failed(m),
            ToolError::Timeout(m) => Error::Timeout(m),
        }
    }
}
