//! Consent on a terminal: where no graphical provider runs, `agentctl run` (on a terminal) answers
//! the prompts of the task it started, as polkit's text agent does. It serves
//! `org.freedesktop.impl.portal.Access` on its own connection for the kernel alone; the kernel
//! calls it only for that task's tree (`Kernel1.Delegate` option `answer-consent`). Anything but
//! an explicit yes denies; nothing typed before a prompt appeared answers it; a prompt the kernel
//! withdraws (`impl.portal.Request.Close`) stops waiting.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex};

use agentos_dbus_interfaces::names::CONSENT_PATH;
use tokio::sync::{mpsc, Notify};
use zbus::message::Header;
use zbus::names::OwnedUniqueName;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::output;

/// The choice the kernel sends its answers in, and the answer that also silences the task.
const ANSWER_CHOICE: &str = "lifetime";
const DENY_TASK: &str = "deny-task";

/// `impl.portal.Access` responses.
const ALLOWED: u32 = 0;
const DENIED: u32 = 1;
const DISMISSED: u32 = 2;

/// Whether this agentctl can answer prompts here: stdin and stderr are a terminal.
pub fn available() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Lines typed on the terminal, read by one thread for the process's life (a blocking read of
/// stdin cannot be interrupted, so a withdrawn prompt leaves the read for the next one).
struct Lines {
    rx: tokio::sync::Mutex<mpsc::Receiver<String>>,
}

impl Lines {
    fn start() -> Lines {
        let (tx, rx) = mpsc::channel(4);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx: tokio::sync::Mutex::new(rx),
        }
    }
}

/// What a typed answer means, given the lifetimes offered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Typed {
    Allow(&'static str),
    DenyTask,
    Deny,
}

fn parse_answer(line: &str, offered: &[String]) -> Typed {
    let offers = |o: &str| offered.iter().any(|x| x == o);
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "o" | "once" if offers("once") => Typed::Allow("once"),
        "s" | "session" if offers("session") => Typed::Allow("session"),
        "a" | "always" if offers("always") => Typed::Allow("always"),
        "d" if offers(DENY_TASK) => Typed::DenyTask,
        _ => Typed::Deny,
    }
}

/// The option ids the kernel offered in its `choices`.
fn offered(options: &HashMap<String, OwnedValue>) -> Vec<String> {
    type Choices = Vec<(String, String, Vec<(String, String)>, String)>;
    let Some(v) = options.get("choices") else {
        return vec!["once".into()];
    };
    let Ok(choices) = Choices::try_from(v.clone()) else {
        return vec!["once".into()];
    };
    choices
        .into_iter()
        .filter(|(id, ..)| id == ANSWER_CHOICE)
        .flat_map(|(_, _, opts, _)| opts.into_iter().map(|(id, _)| id))
        .collect()
}

/// The Access dialog, on the terminal.
struct TerminalAccess {
    kernel: OwnedUniqueName,
    lines: Arc<Lines>,
    /// One prompt at a time on the terminal.
    turn: tokio::sync::Mutex<()>,
}

/// A prompt open now, so the kernel can withdraw it.
struct OpenRequest {
    closed: Arc<Notify>,
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Request")]
impl OpenRequest {
    async fn close(&self) {
        self.closed.notify_one();
    }
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Access")]
impl TerminalAccess {
    #[allow(clippy::too_many_arguments)]
    async fn access_dialog(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        handle: ObjectPath<'_>,
        _app_id: &str,
        _parent_window: &str,
        title: &str,
        subtitle: &str,
        body: &str,
        options: HashMap<String, OwnedValue>,
    ) -> (u32, HashMap<String, OwnedValue>) {
        // Only the verified kernel asks; anyone else gets a dismissal and shows nothing.
        if hdr.sender().map(|s| s.as_str()) != Some(self.kernel.as_str()) {
            return (DISMISSED, HashMap::new());
        }
        let _turn = self.turn.lock().await;
        let closed = Arc::new(Notify::new());
        let handle = OwnedObjectPath::from(handle);
        let _ = server
            .at(
                handle.clone(),
                OpenRequest {
                    closed: Arc::clone(&closed),
                },
            )
            .await;
        let offered = offered(&options);
        let mut rx = self.lines.rx.lock().await;
        // Nothing typed before the prompt appeared answers it.
        while rx.try_recv().is_ok() {}
        output::warn(&prompt_text(title, subtitle, body, &offered));
        let typed = tokio::select! {
            line = rx.recv() => line.map(|l| parse_answer(&l, &offered)),
            () = closed.notified() => {
                output::warn("agentctl: the request was withdrawn (it timed out or its agent went away)");
                None
            }
        };
        drop(rx);
        let _ = server.remove::<OpenRequest, _>(&handle).await;
        let mut results = HashMap::new();
        let answer = |id: &str| {
            OwnedValue::try_from(Value::from(vec![(
                ANSWER_CHOICE.to_string(),
                id.to_string(),
            )]))
            .ok()
        };
        match typed {
            None => (DISMISSED, results),
            Some(Typed::Deny) => {
                output::warn("agentctl: denied");
                (DENIED, results)
            }
            Some(Typed::DenyTask) => {
                output::warn("agentctl: denied; nothing more will be asked for this task");
                if let Some(v) = answer(DENY_TASK) {
                    results.insert("choices".into(), v);
                }
                (DENIED, results)
            }
            Some(Typed::Allow(lifetime)) => {
                output::warn(&format!("agentctl: allowed ({lifetime})"));
                if let Some(v) = answer(lifetime) {
                    results.insert("choices".into(), v);
                }
                (ALLOWED, results)
            }
        }
    }
}

/// The prompt as printed: the kernel's words made safe, then the answers offered.
fn prompt_text(title: &str, subtitle: &str, body: &str, offered: &[String]) -> String {
    let mut text = format!(
        "\nagentctl: permission needed\n  {}\n  {}\n",
        output::clean(title),
        output::clean(subtitle)
    );
    for line in output::clean_block(body).lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    let mut keys = Vec::new();
    for (id, key) in [
        ("once", "y = allow this time"),
        ("session", "s = until logout"),
        ("always", "a = always"),
        (DENY_TASK, "d = deny and ask nothing more for this task"),
    ] {
        if offered.iter().any(|o| o == id) {
            keys.push(key);
        }
    }
    text.push_str(&format!(
        "  [{}; anything else denies] Allow? ",
        keys.join(", ")
    ));
    text
}

/// Serve the Access dialog on `conn` for the kernel `kernel` (its verified unique name).
pub async fn serve(conn: &zbus::Connection, kernel: OwnedUniqueName) -> zbus::Result<()> {
    static LINES: Mutex<Option<Arc<Lines>>> = Mutex::new(None);
    let lines = {
        let mut slot = LINES.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slot.get_or_insert_with(|| Arc::new(Lines::start())))
    };
    conn.object_server()
        .at(
            CONSENT_PATH,
            TerminalAccess {
                kernel,
                lines,
                turn: tokio::sync::Mutex::new(()),
            },
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_yes_allows() {
        let all: Vec<String> = ["once", "session", "always", DENY_TASK]
            .map(String::from)
            .to_vec();
        assert_eq!(parse_answer("y", &all), Typed::Allow("once"));
        assert_eq!(parse_answer(" YES \n", &all), Typed::Allow("once"));
        assert_eq!(parse_answer("a", &all), Typed::Allow("always"));
        assert_eq!(parse_answer("s", &all), Typed::Allow("session"));
        assert_eq!(parse_answer("d", &all), Typed::DenyTask);
        for no in ["", "n", "no", "yess", "ok", "sure", "\u{1b}[A", "1"] {
            assert_eq!(parse_answer(no, &all), Typed::Deny, "{no:?}");
        }
        // What was not offered is not taken.
        let once = vec!["once".to_string()];
        assert_eq!(parse_answer("a", &once), Typed::Deny);
        assert_eq!(parse_answer("d", &once), Typed::Deny);
    }

    #[test]
    fn the_prompt_is_made_safe_and_lists_only_what_is_offered() {
        let text = prompt_text(
            "Allow \u{202e}docs to read files in",
            "files.read (docs)",
            "line 1\n\u{1b}[31mred",
            &["once".to_string()],
        );
        assert!(
            !text.contains('\u{202e}') && !text.contains('\u{1b}'),
            "{text:?}"
        );
        assert!(text.contains("y = allow this time"));
        assert!(!text.contains("a = always"));
    }
}
