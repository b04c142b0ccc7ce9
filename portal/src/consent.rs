//! Asking the user: `org.freedesktop.impl.portal.Access.AccessDialog` on the consent provider
//! (the panel when it runs, else the desktop's own portal backend), with the answer offered as a
//! choice: allow once, until logout, always, or (for a task) deny and ask nothing more for that
//! task. Anything but a clear grant (no provider, no answer in time, a closed dialog, a malformed
//! reply) is a denial; a dialog left open is closed (`impl.portal.Request.Close`). A dialog the
//! user saw and closed, or let run out of time, is told apart from one that never reached the
//! user.
//!
//! Why one choice and not a check box beside it: xdg-desktop-portal-gtk returns the choices only
//! with the grant response, so "deny" plus a ticked box would reach the kernel as a plain "deny".
//! A choice the grant button confirms reaches it from every provider.

use std::collections::HashMap;
use std::time::Duration;

use agentos_dbus_interfaces::names::{ACCESS_IFACE, CONSENT_BUS_NAME, CONSENT_PATH};
use agentos_dbus_interfaces::Lifetime;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// One entry of the `choices` option: id, label, (option id, label) list, initial option.
type Choice<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);

/// What the kernel shows in a prompt.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub title: String,
    pub subtitle: String,
    pub body: String,
    /// Offer "deny, and ask nothing more for this task" (option [`DENY_TASK`]).
    pub offer_task_stop: bool,
    /// The exact call that asks (a tool's name and its arguments as JSON), sent whole as the
    /// option `arguments` for a dialog that shows it expandable (the panel); the body carries
    /// its beginning for every other dialog.
    pub arguments: Option<String>,
    /// The request's id (`Kernel1.ListConsentRequests`), sent as the option `request`.
    pub request: Option<u64>,
}

/// The most bytes of a call's arguments sent to the dialog.
pub const MAX_ARGUMENTS: usize = 16 * 1024;

/// The id of the choice that carries the answer (its options: "once", "session", "always" and,
/// for a task, [`DENY_TASK`]).
pub const ANSWER_CHOICE: &str = "lifetime";

/// The option of [`ANSWER_CHOICE`] that denies the request and everything else its task would
/// ask; honoured with either button.
pub const DENY_TASK: &str = "deny-task";

/// The user's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Allow(Lifetime),
    /// The user said no.
    Denied,
    /// The dialog was shown and the user closed it, or did not answer in time.
    Closed(String),
    /// No dialog reached the user, or it ended for another reason than the user: no provider,
    /// the call failed, a malformed reply, the asking agent went away.
    Unanswered(String),
    /// The provider left the bus while its dialog was open (the panel quit or crashed): the
    /// user gave no answer, and one may still come from a provider started again.
    ProviderGone(String),
}

/// The answer, and whether the user chose to ask nothing more for the task (then the answer is
/// `Denied`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub answer: Answer,
    pub task_stop: bool,
}

impl From<Answer> for Reply {
    fn from(answer: Answer) -> Reply {
        Reply {
            answer,
            task_stop: false,
        }
    }
}

/// Where to ask: the panel (`org.agentos.Consent`) when it runs, else the desktop's backend.
pub async fn choose_provider(
    conn: &zbus::Connection,
    desktop_backend: Option<&str>,
) -> Option<String> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await.ok()?;
    let panel = zbus::names::BusName::try_from(CONSENT_BUS_NAME).ok()?;
    if dbus.name_has_owner(panel).await.unwrap_or(false) {
        return Some(CONSENT_BUS_NAME.to_string());
    }
    desktop_backend.map(str::to_string)
}

/// Whether a failed `AccessDialog` call means its provider left the bus without answering (the
/// bus answers `NoReply` for a caller whose callee disconnected, `ServiceUnknown` or
/// `NameHasNoOwner` when the name was gone already).
fn provider_left(e: &zbus::Error) -> bool {
    let name = match e {
        zbus::Error::MethodError(name, _, _) => name.as_str(),
        zbus::Error::FDO(fdo) => match **fdo {
            zbus::fdo::Error::NoReply(_) => return true,
            zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => {
                return true
            }
            _ => return false,
        },
        _ => return false,
    };
    matches!(
        name,
        "org.freedesktop.DBus.Error.NoReply"
            | "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
    )
}

/// Prompt text is made safe to show with the project's one implementation; re-exported for the
/// kernel's prompt builder and manifest checks.
pub use agentos_dbus_interfaces::text::{display_safe, is_bidi_control};

/// Ask through `provider` on `conn`; `handle` names the request object. If `gone` finishes
/// first (the asking agent went away) or the time runs out, the dialog is closed.
pub async fn ask(
    conn: &zbus::Connection,
    provider: &str,
    handle: &str,
    prompt: &Prompt,
    timeout: Duration,
    gone: impl std::future::Future<Output = ()>,
) -> Reply {
    let Ok(handle) = OwnedObjectPath::try_from(handle.to_string()) else {
        return Answer::Unanswered("internal error: bad request handle".into()).into();
    };
    let mut answers = vec![
        ("once", "Allow only this time"),
        ("session", "Allow until logout"),
        ("always", "Allow always"),
    ];
    if prompt.offer_task_stop {
        answers.push((DENY_TASK, "Deny, and ask nothing more for this task"));
    }
    let choices: Vec<Choice<'_>> = vec![(ANSWER_CHOICE, "Answer", answers, "once")];
    let mut options: HashMap<&str, Value<'_>> = HashMap::new();
    // Mnemonics: Alt+A applies the chosen answer (allow once unless another is chosen), Alt+D
    // denies, for people who use the keyboard.
    options.insert("grant_label", Value::from("_Apply"));
    options.insert("deny_label", Value::from("_Deny"));
    options.insert("modal", Value::from(true));
    options.insert("choices", Value::from(choices));
    if let Some(id) = prompt.request {
        options.insert("request", Value::from(id));
    }
    if let Some(arguments) = &prompt.arguments {
        let mut end = arguments.len().min(MAX_ARGUMENTS);
        while !arguments.is_char_boundary(end) {
            end -= 1;
        }
        options.insert("arguments", Value::from(&arguments[..end]));
    }
    let body = (
        &handle,
        "",
        "",
        &prompt.title,
        &prompt.subtitle,
        &prompt.body,
        options,
    );
    let call = conn.call_method(
        Some(provider),
        CONSENT_PATH,
        Some(ACCESS_IFACE),
        "AccessDialog",
        &body,
    );
    let reply = tokio::select! {
        r = tokio::time::timeout(timeout, call) => r,
        () = gone => {
            close_request(conn, provider, &handle).await;
            return Answer::Unanswered("the agent went away while the user was asked".into())
                .into();
        }
    };
    let reply = match reply {
        Err(_) => {
            close_request(conn, provider, &handle).await;
            return Answer::Closed(format!(
                "the user did not answer within {} s",
                timeout.as_secs_f64().ceil()
            ))
            .into();
        }
        Ok(Err(e)) if provider_left(&e) => {
            return Answer::ProviderGone(format!("the consent dialog went away: {e}")).into()
        }
        Ok(Err(e)) => return Answer::Unanswered(format!("the consent dialog failed: {e}")).into(),
        Ok(Ok(reply)) => reply,
    };
    let Ok((response, results)) = reply
        .body()
        .deserialize::<(u32, HashMap<String, OwnedValue>)>()
    else {
        return Answer::Unanswered("the consent dialog sent a malformed reply".into()).into();
    };
    let chosen = choice(&results, ANSWER_CHOICE);
    // Either button with "deny, ask nothing more" denies (a provider may send choices with the
    // deny response too).
    if prompt.offer_task_stop && response < 2 && chosen.as_deref() == Some(DENY_TASK) {
        return Reply {
            answer: Answer::Denied,
            task_stop: true,
        };
    }
    match response {
        // No choice sent: allow once, the least; an option the kernel never offered: no answer.
        0 => match chosen.as_deref().map(Lifetime::parse) {
            None => Answer::Allow(Lifetime::Once),
            Some(Some(lifetime)) => Answer::Allow(lifetime),
            Some(None) => Answer::Unanswered(format!(
                "the consent dialog answered with an option it was not offered: {:?}",
                display_safe(chosen.as_deref().unwrap_or_default(), 40)
            )),
        },
        1 => Answer::Denied,
        _ => Answer::Closed("the dialog was closed without an answer".into()),
    }
    .into()
}

/// Tell the provider to close a pending dialog (best effort).
async fn close_request(conn: &zbus::Connection, provider: &str, handle: &OwnedObjectPath) {
    let close = conn.call_method(
        Some(provider),
        handle.as_str(),
        Some("org.freedesktop.impl.portal.Request"),
        "Close",
        &(),
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
}

/// The value of choice `id` from the results, whether they came as `a(ss)` (the spec) or
/// `a{sv}` (xdg-desktop-portal-gtk before 1.15.3).
fn choice(results: &HashMap<String, OwnedValue>, id: &str) -> Option<String> {
    let value = results.get("choices")?;
    if let Ok(pairs) = Vec::<(String, String)>::try_from(value.try_clone().ok()?) {
        pairs.into_iter().find(|(k, _)| k == id).map(|(_, v)| v)
    } else if let Ok(map) = HashMap::<String, OwnedValue>::try_from(value.try_clone().ok()?) {
        map.get(id)
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_choice_shapes_are_read() {
        let mut r = HashMap::new();
        let pairs = vec![
            ("lifetime".to_string(), "always".to_string()),
            ("other".to_string(), "x".to_string()),
        ];
        r.insert(
            "choices".to_string(),
            OwnedValue::try_from(Value::from(pairs)).unwrap(),
        );
        assert_eq!(choice(&r, "lifetime").as_deref(), Some("always"));
        assert_eq!(choice(&r, "other").as_deref(), Some("x"));
        let mut map: HashMap<String, Value<'_>> = HashMap::new();
        map.insert("lifetime".into(), Value::from("session"));
        r.insert(
            "choices".to_string(),
            OwnedValue::try_from(Value::from(map)).unwrap(),
        );
        assert_eq!(choice(&r, "lifetime").as_deref(), Some("session"));
        r.clear();
        assert_eq!(choice(&r, "lifetime"), None);
    }
}
