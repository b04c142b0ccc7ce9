//! Asking the user: `org.freedesktop.impl.portal.Access.AccessDialog` on the consent provider
//! (the panel when it runs, else the desktop's own portal backend), with the lifetime offered as
//! a choice. Anything but a clear grant (no provider, no answer in time, a closed dialog, a
//! malformed reply) is a denial; a dialog left open is closed (`impl.portal.Request.Close`).

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
}

/// The user's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Allow(Lifetime),
    /// The user said no.
    Denied,
    /// No answer: no provider, no reply in time, a closed dialog, a malformed reply.
    Unanswered(String),
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
) -> Answer {
    let Ok(handle) = OwnedObjectPath::try_from(handle.to_string()) else {
        return Answer::Unanswered("internal error: bad request handle".into());
    };
    let choices: Vec<Choice<'_>> = vec![(
        "lifetime",
        "Remember",
        vec![
            ("once", "Only this time"),
            ("session", "Until logout"),
            ("always", "Always"),
        ],
        "once",
    )];
    let mut options: HashMap<&str, Value<'_>> = HashMap::new();
    // Mnemonics: Alt+A allows, Alt+D denies, for people who use the keyboard.
    options.insert("grant_label", Value::from("_Allow"));
    options.insert("deny_label", Value::from("_Deny"));
    options.insert("modal", Value::from(true));
    options.insert("choices", Value::from(choices));
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
            return Answer::Unanswered("the agent went away while the user was asked".into());
        }
    };
    let reply = match reply {
        Err(_) => {
            close_request(conn, provider, &handle).await;
            return Answer::Unanswered(format!(
                "the user did not answer within {} s",
                timeout.as_secs()
            ));
        }
        Ok(Err(e)) => return Answer::Unanswered(format!("the consent dialog failed: {e}")),
        Ok(Ok(reply)) => reply,
    };
    let Ok((response, results)) = reply
        .body()
        .deserialize::<(u32, HashMap<String, OwnedValue>)>()
    else {
        return Answer::Unanswered("the consent dialog sent a malformed reply".into());
    };
    match response {
        0 => Answer::Allow(lifetime_choice(&results).unwrap_or(Lifetime::Once)),
        1 => Answer::Denied,
        _ => Answer::Unanswered("the dialog was closed without an answer".into()),
    }
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

/// The "lifetime" choice from the results, whether it came as `a(ss)` (the spec) or `a{sv}`
/// (xdg-desktop-portal-gtk before 1.15.3).
fn lifetime_choice(results: &HashMap<String, OwnedValue>) -> Option<Lifetime> {
    let value = results.get("choices")?;
    let chosen = if let Ok(pairs) = Vec::<(String, String)>::try_from(value.try_clone().ok()?) {
        pairs
            .into_iter()
            .find(|(k, _)| k == "lifetime")
            .map(|(_, v)| v)
    } else if let Ok(map) = HashMap::<String, OwnedValue>::try_from(value.try_clone().ok()?) {
        map.get("lifetime")
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
    } else {
        None
    }?;
    Lifetime::parse(&chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_choice_shapes_are_read() {
        let mut r = HashMap::new();
        let pairs = vec![("lifetime".to_string(), "always".to_string())];
        r.insert(
            "choices".to_string(),
            OwnedValue::try_from(Value::from(pairs)).unwrap(),
        );
        assert_eq!(lifetime_choice(&r), Some(Lifetime::Always));
        let mut map: HashMap<String, Value<'_>> = HashMap::new();
        map.insert("lifetime".into(), Value::from("session"));
        r.insert(
            "choices".to_string(),
            OwnedValue::try_from(Value::from(map)).unwrap(),
        );
        assert_eq!(lifetime_choice(&r), Some(Lifetime::Session));
        r.clear();
        assert_eq!(lifetime_choice(&r), None);
    }
}
