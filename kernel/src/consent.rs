//! Asking the user: `org.freedesktop.impl.portal.Access.AccessDialog` on the consent provider
//! (the panel, or a test responder), with the lifetime offered as a choice. Anything but a clear
//! grant (no provider, no answer in time, a closed dialog, a malformed reply) is a denial.

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
    Deny(String),
}

/// Make a string safe to show: no control or bidi characters, newlines become spaces, and long
/// values are cut with a visible ellipsis.
pub fn display_safe(s: &str, max_chars: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    if cleaned.chars().count() > max_chars {
        let cut: String = cleaned.chars().take(max_chars.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        cleaned
    }
}

pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Ask through the consent provider on `conn`; `handle` names the request object.
pub async fn ask(
    conn: &zbus::Connection,
    handle: &str,
    prompt: &Prompt,
    timeout: Duration,
) -> Answer {
    let dbus = match zbus::fdo::DBusProxy::new(conn).await {
        Ok(p) => p,
        Err(e) => return Answer::Deny(format!("cannot reach the bus to ask: {e}")),
    };
    let provider = zbus::names::BusName::try_from(CONSENT_BUS_NAME).ok();
    let present = match provider {
        Some(name) => dbus.name_has_owner(name).await.unwrap_or(false),
        None => false,
    };
    if !present {
        return Answer::Deny("no consent provider is running to ask the user".into());
    }
    let Ok(handle) = OwnedObjectPath::try_from(handle.to_string()) else {
        return Answer::Deny("internal error: bad request handle".into());
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
    options.insert("grant_label", Value::from("Allow"));
    options.insert("deny_label", Value::from("Deny"));
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
        Some(CONSENT_BUS_NAME),
        CONSENT_PATH,
        Some(ACCESS_IFACE),
        "AccessDialog",
        &body,
    );
    let reply = match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            close_request(conn, &handle).await;
            return Answer::Deny(format!(
                "the user did not answer within {} s",
                timeout.as_secs()
            ));
        }
        Ok(Err(e)) => return Answer::Deny(format!("the consent provider failed: {e}")),
        Ok(Ok(reply)) => reply,
    };
    let Ok((response, results)) = reply
        .body()
        .deserialize::<(u32, HashMap<String, OwnedValue>)>()
    else {
        return Answer::Deny("the consent provider sent a malformed reply".into());
    };
    match response {
        0 => Answer::Allow(lifetime_choice(&results).unwrap_or(Lifetime::Once)),
        1 => Answer::Deny("the user denied it".into()),
        _ => Answer::Deny("the dialog was closed without an answer".into()),
    }
}

/// Tell the provider to close a pending dialog (best effort).
async fn close_request(conn: &zbus::Connection, handle: &OwnedObjectPath) {
    let _ = conn
        .call_method(
            Some(CONSENT_BUS_NAME),
            handle.as_str(),
            Some("org.freedesktop.impl.portal.Request"),
            "Close",
            &(),
        )
        .await;
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
    fn display_safe_strips_and_truncates() {
        assert_eq!(display_safe("a\nb\u{202e}c\u{7}", 100), "a bc");
        assert_eq!(display_safe("abcdef", 4), "abc…");
    }

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
