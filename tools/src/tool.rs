//! The `Tool` trait, what a run returns, how it fails, and how it asks for further scopes.

use std::os::fd::OwnedFd;

use agentos_dbus_interfaces::{Capability, Error};
use serde_json::Value;

/// Why a tool call failed, mapped to a named D-Bus error by the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The path leads outside the granted folder (`..`, absolute, symlink).
    #[error("{0}")]
    Escapes(String),
    /// The arguments are wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Timeout(String),
    /// The kernel refused a further scope, or failed deciding.
    #[error("{}", .0.message())]
    Kernel(Error),
}

impl From<ToolError> for Error {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::Escapes(m) => Error::AccessDenied(m),
            ToolError::Invalid(m) => Error::InvalidArgument(m),
            ToolError::Failed(m) => Error::Failed(m),
            ToolError::Timeout(m) => Error::Timeout(m),
            ToolError::Kernel(e) => e,
        }
    }
}

/// What a run gives back: a JSON value, and, where the tool hands out more than words, bytes
/// (a fetched body) and file descriptors (an opened file).
#[derive(Debug, Default)]
pub struct ToolOutput {
    pub value: Value,
    pub data: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

impl ToolOutput {
    pub fn value(value: Value) -> ToolOutput {
        ToolOutput {
            value,
            ..ToolOutput::default()
        }
    }
}

/// The kernel's check of a further scope a running call wants to touch.
#[async_trait::async_trait]
pub trait ScopeCheck: Send + Sync {
    /// May the call also touch `scope` (for the tool's capability)? Asks the user when the
    /// policy says so; `Err` when not.
    async fn allow(&self, scope: &str) -> Result<(), Error>;
}

/// A tool.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// Its name, as agents and models call it (`files.read`).
    fn name(&self) -> &str;
    /// The capability a call needs, on the scope `scope` reads from the arguments.
    fn capability(&self) -> &'static Capability;
    /// What it does, in a sentence for agents and models.
    fn description(&self) -> &str;
    /// The JSON Schema of its arguments (an object).
    fn parameters(&self) -> Value;
    /// The scope a call with `args` touches, in the capability's canonical spelling.
    fn scope(&self, args: &Value) -> Result<String, ToolError>;
    /// Run a call whose scope the kernel allowed; `check` asks for any further scope.
    async fn run(
        &self,
        args: Value,
        scope: String,
        check: &dyn ScopeCheck,
    ) -> Result<ToolOutput, ToolError>;
}

/// A string argument of a call.
pub(crate) fn string_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::Invalid(format!("the argument {key:?} (a string) is missing")))
}

/// An optional string argument, `default` when absent.
pub(crate) fn string_arg_or<'a>(
    args: &'a Value,
    key: &str,
    default: &'a str,
) -> Result<&'a str, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ToolError::Invalid(format!(
            "the argument {key:?} must be a string"
        ))),
    }
}
