//! What the adapters share: reading a delegation's options, a task's object path, and the
//! check that a message on a private connection came from its peer.

use std::collections::HashMap;

use agentos_dbus_interfaces::{names, Error};

use crate::operations::delegate::TaskOptions;
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
/// The option of a client's delegation naming the model the new task's requests (and those of
/// the tasks under it) use when they name none.
pub(crate) const MODEL: &str = "model";

/// What a client's delegation (`Kernel1`, `Agent1`, `Channel1`) may say of its task: `timeout`
/// and `model`. An agent's (`Host1`) says only `timeout`.
pub(crate) fn task_options(options: &HashMap<String, OwnedValue>) -> Result<TaskOptions, Error> {
    let mut rest = options.clone();
    let model =
        match rest.remove(MODEL) {
            None => None,
            Some(v) => Some(String::try_from(v).map_err(|_| {
                Error::InvalidArgument(format!("the {MODEL} option must be a string"))
            })?),
        };
    Ok(TaskOptions {
        timeout: timeout_option(&rest)?,
        model,
    })
}

/// `Kernel1.Delegate`'s options: the task's, and whether the caller answers consent itself.
pub(crate) fn delegate_options(
    options: &HashMap<String, OwnedValue>,
) -> Result<(TaskOptions, bool), Error> {
    let mut rest = options.clone();
    let answer_consent = match rest.remove(ANSWER_CONSENT) {
        None => false,
        Some(v) => bool::try_from(v).map_err(|_| {
            Error::InvalidArgument(format!("the {ANSWER_CONSENT} option must be a boolean"))
        })?,
    };
    Ok((task_options(&rest)?, answer_consent))
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

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    fn options(pairs: &[(&str, Value<'_>)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v.clone()).unwrap()))
            .collect()
    }

    #[test]
    fn a_clients_delegation_may_name_its_model_a_timeout_and_who_answers_consent() {
        assert_eq!(
            delegate_options(&options(&[])).unwrap(),
            (TaskOptions::default(), false)
        );
        let all = options(&[
            ("timeout", Value::U32(30)),
            ("answer-consent", Value::Bool(true)),
            ("model", Value::from("ollama/qwen2.5:0.5b")),
        ]);
        assert_eq!(
            delegate_options(&all).unwrap(),
            (
                TaskOptions {
                    timeout: Some(30),
                    model: Some("ollama/qwen2.5:0.5b".into()),
                },
                true
            )
        );
        // An agent's delegation names no model.
        assert!(timeout_option(&options(&[("model", Value::from("x"))])).is_err());
        let bad = |pairs: &[(&str, Value<'_>)]| match delegate_options(&options(pairs)) {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(bad(&[("model", Value::U32(3))]).contains("must be a string"));
        assert!(bad(&[("modle", Value::from("x"))]).contains("unknown option"));
    }
}
