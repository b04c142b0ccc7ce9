//! Named D-Bus errors of AgentOS (`org.agentos.Error.*`), shared by the kernel and its clients.

/// An AgentOS error as it crosses the bus. Every variant carries a message meant for a person.
#[derive(zbus::DBusError, Debug, Clone, PartialEq)]
#[zbus(prefix = "org.agentos.Error")]
#[non_exhaustive]
pub enum Error {
    /// A transport or protocol error below AgentOS.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller has no right to do this (and the user did not grant it).
    AccessDenied(String),
    /// No agent with that id is known.
    UnknownAgent(String),
    /// No task with that id exists.
    UnknownTask(String),
    /// An argument is malformed, out of range or too large.
    InvalidArgument(String),
    /// The resource is in use (e.g. that identity already has a connected agent).
    Busy(String),
    /// The operation failed; the message says why.
    Failed(String),
    /// The operation did not finish in time.
    Timeout(String),
    /// The task was canceled.
    Canceled(String),
    /// The agent or kernel does not support this.
    NotSupported(String),
    /// The caller or agent is over one of its quotas (tasks in flight, delegations per second,
    /// calls in flight, artifact bytes, channels); the message names it and when it frees up.
    QuotaExceeded(String),
    /// No model is configured or found to serve the request; the message says how to add one.
    NoModel(String),
}

impl Error {
    /// The human-readable message of the error.
    pub fn message(&self) -> String {
        match self {
            Error::ZBus(e) => e.to_string(),
            Error::AccessDenied(m)
            | Error::UnknownAgent(m)
            | Error::UnknownTask(m)
            | Error::InvalidArgument(m)
            | Error::Busy(m)
            | Error::Failed(m)
            | Error::Timeout(m)
            | Error::Canceled(m)
            | Error::NotSupported(m)
            | Error::QuotaExceeded(m)
            | Error::NoModel(m) => m.clone(),
        }
    }

    /// The error named `name` (`org.agentos.Error.…`, as [`zbus::DBusError::name`] gives it)
    /// with `message`; a name this version does not know is `Failed`.
    pub fn from_name(name: &str, message: String) -> Error {
        let short = name.strip_prefix("org.agentos.Error.").unwrap_or_default();
        match short {
            "AccessDenied" => Error::AccessDenied(message),
            "UnknownAgent" => Error::UnknownAgent(message),
            "UnknownTask" => Error::UnknownTask(message),
            "InvalidArgument" => Error::InvalidArgument(message),
            "Busy" => Error::Busy(message),
            "Timeout" => Error::Timeout(message),
            "Canceled" => Error::Canceled(message),
            "NotSupported" => Error::NotSupported(message),
            "QuotaExceeded" => Error::QuotaExceeded(message),
            "NoModel" => Error::NoModel(message),
            _ => Error::Failed(message),
        }
    }
}

/// Result with an AgentOS [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_error_is_found_by_its_name() {
        let all = [
            Error::AccessDenied("m".into()),
            Error::UnknownAgent("m".into()),
            Error::UnknownTask("m".into()),
            Error::InvalidArgument("m".into()),
            Error::Busy("m".into()),
            Error::Failed("m".into()),
            Error::Timeout("m".into()),
            Error::Canceled("m".into()),
            Error::NotSupported("m".into()),
            Error::QuotaExceeded("m".into()),
            Error::NoModel("m".into()),
        ];
        for e in all {
            let name = zbus::DBusError::name(&e).to_string();
            assert_eq!(Error::from_name(&name, "m".into()), e, "{name}");
        }
        assert_eq!(
            Error::from_name("org.example.Other", "m".into()),
            Error::Failed("m".into())
        );
    }
}
