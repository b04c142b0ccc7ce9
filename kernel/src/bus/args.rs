//! What the adapters share: reading a delegation's options, a task's object path, and the
//! check that a message on a private connection came from its peer.

use std::collections::HashMap;

use agentos_dbus_interfaces::{names, Error};
use zbus::message::Header;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

/// The "timeout" option of a delegation.
pub(crate) fn timeout_option(options: &HashMap<String, OwnedValue>) -> Result<Option<u32>, Error> {
    for key in options.keys() {
        if key != "timeout" {
            return Err(Error::InvalidArgument(format!("unknown option {key:?}")));
        }
    }
    options
        .get("timeout")
        .map(|v| {
            u32::try_from(v).map_err(|_| {
                Error::InvalidArgument("the timeout option must be a u32 (seconds)".into())
            })
        })
        .transpose()
}

/// The option of `Kernel1.Delegate` by which the user's own tool (a terminal) says it answers the
/// new task's consent prompts itself when no graphical provider runs.
pub(crate) const ANSWER_CONSENT: &str = "answer-consent";

/// `Kernel1.Delegate`'s options: the timeout, and whether the caller answers consent itself.
pub(crate) fn delegate_options(
    options: &HashMap<String, OwnedValue>,
) -> Result<(Option<u32>, bool), Error> {
    let mut rest = options.clone();
    let answer = match rest.remove(ANSWER_CONSENT) {
        None => false,
        Some(v) => bool::try_from(v).map_err(|_| {
            Error::InvalidArgument(format!("the {ANSWER_CONSENT} option must be a boolean"))
        })?,
    };
    Ok((timeout_option(&rest)?, answer))
}

pub(crate) fn path_of(id: u64) -> Result<OwnedObjectPath, Error> {
    OwnedObjectPath::try_from(names::task_path(id)).map_err(|e| Error::Failed(e.to_string()))
}

/// On a peer-to-peer connection messages carry no sender; anything else did not come from the
/// agent at the other end.
pub(crate) fn from_peer(hdr: &Header<'_>) -> Result<(), Error> {
    match hdr.sender() {
        None => Ok(()),
        Some(s) => Err(Error::AccessDenied(format!(
            "unexpected sender {s} on a private connection"
        ))),
    }
}

/// Admit one more slow call of the sender of `hdr` (see `crate::admission`); held while it runs.
pub(crate) fn admit(
    kernel: &crate::kernel::Kernel,
    hdr: &Header<'_>,
) -> Result<crate::admission::Ticket, Error> {
    let sender = hdr
        .sender()
        .ok_or_else(|| Error::AccessDenied("the call has no sender".into()))?;
    kernel.admit_call(sender.as_str())
}
