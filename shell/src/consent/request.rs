//! One consent request as the kernel sends it (`AccessDialog`'s handle, texts and options), the
//! answers it offers, and the reply the kernel reads back: pure, tested without a bus.

use std::collections::HashMap;

use agentos_dbus_interfaces::text::{display_safe, display_safe_block};
use agentos_dbus_interfaces::ConsentRequestInfo;
use zbus::zvariant::{OwnedValue, Value};

/// Shown when the requester has no desktop file with an icon.
pub const GENERIC_ICON: &str = "application-x-executable-symbolic";
/// The prefix of the request handles the kernel makes; the request id follows it.
pub const HANDLE_PREFIX: &str = "/org/freedesktop/portal/desktop/request/agentos/r";
/// The choice that carries the answer.
pub const ANSWER_CHOICE: &str = "lifetime";
/// Longest value shown before it is cut (the whole value is behind an expander).
pub const PREVIEW_CHARS: usize = 160;
/// Longest dialog title shown (the kernel's title names the scope, which may be long; all of
/// it is in the details).
pub const TITLE_CHARS: usize = 120;
/// Longest value kept at all (the kernel's own limit on names is 4096).
pub const FULL_CHARS: usize = 16 * 1024;

/// The answers a dialog can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Once,
    Session,
    Always,
    /// Deny, and ask nothing more for this task.
    DenyTask,
    Deny,
    /// The dialog went away without an answer (closed by the kernel, or the panel quit).
    Dismissed,
}

impl Answer {
    /// The option id of the kernel's answer choice.
    pub fn option_id(self) -> Option<&'static str> {
        match self {
            Answer::Once => Some("once"),
            Answer::Session => Some("session"),
            Answer::Always => Some("always"),
            Answer::DenyTask => Some("deny-task"),
            Answer::Deny | Answer::Dismissed => None,
        }
    }

    pub fn from_option_id(id: &str) -> Option<Answer> {
        match id {
            "once" => Some(Answer::Once),
            "session" => Some(Answer::Session),
            "always" => Some(Answer::Always),
            "deny-task" => Some(Answer::DenyTask),
            _ => None,
        }
    }

    /// The button's label, with its mnemonic.
    pub fn label(self) -> &'static str {
        match self {
            Answer::Once => "Allow _Once",
            Answer::Session => "Allow Until _Logout",
            Answer::Always => "Allow _Always",
            Answer::DenyTask => "Deny and _Stop Asking for This Task",
            Answer::Deny => "_Deny",
            Answer::Dismissed => "Close",
        }
    }

    /// The reply to `AccessDialog`: response 0 with the chosen option, 1 for deny, 2 when
    /// dismissed. "Deny and stop asking" goes with response 0, as the kernel reads the choice
    /// only with a grant from some providers.
    pub fn reply(self) -> (u32, HashMap<String, OwnedValue>) {
        let mut results = HashMap::new();
        match self.option_id() {
            Some(id) => {
                let choices = vec![(ANSWER_CHOICE.to_string(), id.to_string())];
                if let Ok(v) = OwnedValue::try_from(Value::from(choices)) {
                    results.insert("choices".to_string(), v);
                }
                (0, results)
            }
            None if self == Answer::Deny => (1, results),
            None => (2, results),
        }
    }
}

/// The request id in a handle the kernel made, if it is one.
pub fn request_id(handle: &str) -> Option<u64> {
    handle.strip_prefix(HANDLE_PREFIX)?.parse().ok()
}

/// The request's id as the kernel sends it in the option `request` (`t`), else as its handle
/// ends (a kernel from before the option).
pub fn request_id_of(handle: &str, options: &HashMap<String, OwnedValue>) -> Option<u64> {
    options
        .get("request")
        .and_then(|v| u64::try_from(v).ok())
        .or_else(|| request_id(handle))
}

/// The answers offered in `options["choices"]` (`a(ssa(ss)s)`), in the order this panel shows
/// them; options it does not know are left out. When the kernel sent no answer choice, allow
/// once is the only grant offered (what a bare grant means to the kernel).
pub fn offered(options: &HashMap<String, OwnedValue>) -> Vec<Answer> {
    type Choices = Vec<(String, String, Vec<(String, String)>, String)>;
    let ids: Option<Vec<String>> = options
        .get("choices")
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| Choices::try_from(v).ok())
        .and_then(|choices| {
            choices
                .into_iter()
                .find(|(id, ..)| id == ANSWER_CHOICE)
                .map(|(_, _, opts, _)| opts.into_iter().map(|(id, _)| id).collect())
        });
    let Some(ids) = ids else {
        return vec![Answer::Once];
    };
    [
        Answer::Once,
        Answer::Session,
        Answer::Always,
        Answer::DenyTask,
    ]
    .into_iter()
    .filter(|a| a.option_id().is_some_and(|o| ids.iter().any(|i| i == o)))
    .collect()
}

/// A value from the bus made safe to show: a short form (one line, cut at [`PREVIEW_CHARS`]
/// with an ellipsis) and, when that was cut, the whole of it (its lines kept, bounded by
/// [`FULL_CHARS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub short: String,
    /// `Some` when the short form is not all of it.
    pub full: Option<String>,
}

pub fn preview(value: &str) -> Preview {
    let short = display_safe(value, PREVIEW_CHARS);
    let whole_line = display_safe(value, FULL_CHARS);
    let full = display_safe_block(value, FULL_CHARS);
    // A value of several lines shows them behind the expander, as they are.
    let cut = short != whole_line || full.contains('\n');
    Preview {
        short,
        full: cut.then_some(full),
    }
}

/// Who asks, as the panel found out from the kernel: what kind of caller the principal is,
/// and so whether its id is vouched for (an app id the kernel read from the Flatpak sandbox or
/// the app's systemd scope) or only claimed (an agent's id is whatever its manifest says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// The user's own host process, without an app id (`host`).
    Host,
    /// A host app, by the app id of its systemd scope (`host:<app id>`).
    HostApp(String),
    /// A sandboxed (Flatpak) app by its app id: a principal that is not an agent and not `host`.
    FlatpakApp(String),
    /// An agent, by its id (from its manifest, or from its registration), its name and
    /// whether it runs sandboxed.
    Agent {
        id: String,
        name: String,
        sandboxed: bool,
    },
    /// The kernel did not say (it did not answer, or not as expected).
    Unknown(String),
}

/// The D-Bus errors of a lookup of `Agent1` on a principal that mean it is not an agent (no
/// such object, or no agent there), rather than that the kernel did not answer.
pub fn not_an_agent(error_name: &str) -> bool {
    matches!(
        error_name,
        "org.freedesktop.DBus.Error.UnknownObject"
            | "org.freedesktop.DBus.Error.UnknownInterface"
            | "org.agentos.Error.UnknownAgent"
    )
}

impl Requester {
    /// The requester of `principal` that is not an agent (or may not be: `lookup_error`
    /// names the error of looking it up as one, `None` when that was not tried).
    pub fn not_agent(principal: &str, lookup_error: Option<&str>) -> Requester {
        if principal == "host" {
            return Requester::Host;
        }
        if let Some(app) = principal.strip_prefix("host:") {
            return Requester::HostApp(app.to_string());
        }
        match lookup_error {
            Some(name) if not_an_agent(name) => Requester::FlatpakApp(principal.to_string()),
            _ => Requester::Unknown(principal.to_string()),
        }
    }

    /// Who asks, in words: an agent's name and whether it runs sandboxed, or what kind of app.
    pub fn words(&self) -> String {
        match self {
            Requester::Host => "host, a program on this computer (not sandboxed)".to_string(),
            Requester::HostApp(app) => format!("{app}, an app on this computer (not sandboxed)"),
            Requester::FlatpakApp(app) => format!("{app}, a sandboxed (Flatpak) app"),
            Requester::Agent {
                id,
                name,
                sandboxed,
            } => format!(
                "{name} ({id}), an agent that runs {}",
                if *sandboxed {
                    "sandboxed"
                } else {
                    "NOT sandboxed"
                }
            ),
            Requester::Unknown(principal) => principal.clone(),
        }
    }
}

/// What the dialog shows about a request, everything made safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub title: String,
    pub subtitle: String,
    pub body: String,
    /// (label, value) lines: who asks, what, on which scope, for which task.
    pub facts: Vec<(String, Preview)>,
    /// The delegation chain, the asking task first.
    pub chain: Vec<String>,
    /// The requester's icon ([`super::icon`]).
    pub icon: String,
}

/// Put together what the dialog shows from the kernel's texts, the pending request it matches
/// (when found) and the chain of tasks above it.
pub fn shown(
    title: &str,
    subtitle: &str,
    body: &str,
    info: Option<&ConsentRequestInfo>,
    requester: Option<&str>,
    chain: &[String],
) -> Shown {
    let mut facts = Vec::new();
    if let Some(info) = info {
        let who = requester.unwrap_or(&info.principal);
        facts.push(("Asked by".to_string(), preview(who)));
        facts.push(("Capability".to_string(), preview(&info.capability)));
        let scope = if info.scope.is_empty() {
            "any".to_string()
        } else {
            info.scope.clone()
        };
        facts.push(("Scope".to_string(), preview(&scope)));
        if info.task != 0 {
            facts.push(("Task".to_string(), preview(&info.task.to_string())));
        }
    }
    Shown {
        title: display_safe(title, TITLE_CHARS),
        subtitle: display_safe(subtitle, 400),
        body: display_safe_block(body, 4000),
        facts,
        chain: chain.iter().map(|c| display_safe(c, 200)).collect(),
        icon: GENERIC_ICON.to_string(),
    }
}

/// `shown` with the exact call the kernel sent in the option `arguments` (a tool's name and its
/// arguments as JSON), as a fact of its own: its beginning, and all of it behind the expander.
pub fn with_call(mut shown: Shown, options: &HashMap<String, OwnedValue>) -> Shown {
    let call = options
        .get("arguments")
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| String::try_from(v).ok());
    if let Some(call) = call.filter(|c| !c.is_empty()) {
        shown.facts.push(("The call".to_string(), preview(&call)));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices(ids: &[&str]) -> HashMap<String, OwnedValue> {
        let opts: Vec<(&str, &str)> = ids.iter().map(|i| (*i, "label")).collect();
        let c = vec![(ANSWER_CHOICE, "Answer", opts, "once")];
        let mut m = HashMap::new();
        m.insert(
            "choices".to_string(),
            OwnedValue::try_from(Value::from(c)).unwrap(),
        );
        m
    }

    #[test]
    fn handles_name_the_request() {
        assert_eq!(request_id(&format!("{HANDLE_PREFIX}17")), Some(17));
        assert_eq!(
            request_id("/org/freedesktop/portal/desktop/request/x/r1"),
            None
        );
        assert_eq!(request_id(&format!("{HANDLE_PREFIX}x")), None);
    }

    #[test]
    fn only_offered_answers_are_shown() {
        assert_eq!(
            offered(&choices(&["always", "once", "session", "deny-task"])),
            vec![
                Answer::Once,
                Answer::Session,
                Answer::Always,
                Answer::DenyTask
            ]
        );
        assert_eq!(offered(&choices(&["once", "sudo"])), vec![Answer::Once]);
        assert_eq!(offered(&HashMap::new()), vec![Answer::Once]);
        // A malformed choices option is as none.
        let mut m = HashMap::new();
        m.insert("choices".to_string(), OwnedValue::from(7u32));
        assert_eq!(offered(&m), vec![Answer::Once]);
    }

    #[test]
    fn replies_are_what_the_kernel_reads() {
        let (code, results) = Answer::Always.reply();
        assert_eq!(code, 0);
        let pairs =
            Vec::<(String, String)>::try_from(results["choices"].try_clone().unwrap()).unwrap();
        assert_eq!(pairs, vec![("lifetime".to_string(), "always".to_string())]);
        assert_eq!(Answer::Deny.reply().0, 1);
        assert!(Answer::Deny.reply().1.is_empty());
        assert_eq!(Answer::Dismissed.reply().0, 2);
        let (code, results) = Answer::DenyTask.reply();
        assert_eq!(code, 0);
        assert!(results.contains_key("choices"));
        for a in [
            Answer::Once,
            Answer::Session,
            Answer::Always,
            Answer::DenyTask,
        ] {
            assert_eq!(Answer::from_option_id(a.option_id().unwrap()), Some(a));
        }
    }

    #[test]
    fn the_request_id_comes_from_its_option_else_from_the_handle() {
        let handle = format!("{HANDLE_PREFIX}7");
        assert_eq!(request_id_of(&handle, &HashMap::new()), Some(7));
        let mut options = HashMap::new();
        options.insert("request".to_string(), OwnedValue::from(9u64));
        assert_eq!(request_id_of(&handle, &options), Some(9));
        options.insert("request".to_string(), OwnedValue::from(9u32));
        assert_eq!(
            request_id_of(&handle, &options),
            Some(7),
            "a wrong type is as none"
        );
    }

    #[test]
    fn the_exact_call_is_shown_cut_and_whole_behind_the_expander() {
        let long = format!(
            "files.read {{\"folder\": \"/home/u{}\", \"path\": \"{}\"}}",
            '\u{202e}',
            "a".repeat(500)
        );
        let mut options = HashMap::new();
        options.insert(
            "arguments".to_string(),
            OwnedValue::try_from(Value::from(long.as_str())).unwrap(),
        );
        let s = with_call(shown("t", "s", "b", None, None, &[]), &options);
        let (label, value) = s.facts.last().expect("a fact for the call");
        assert_eq!(label, "The call");
        assert!(value.short.starts_with("files.read {"), "{value:?}");
        assert!(value.short.chars().count() < long.chars().count());
        let full = value.full.as_deref().expect("expandable");
        assert!(full.contains(&"a".repeat(500)));
        assert!(!full.contains('\u{202e}') && !value.short.contains('\u{202e}'));
        // Without the option, nothing is added.
        let s = with_call(shown("t", "s", "b", None, None, &[]), &HashMap::new());
        assert!(s.facts.is_empty());
    }

    #[test]
    fn long_and_hostile_values_are_cut_and_escaped() {
        let p = preview("/home/u/Documents");
        assert_eq!((p.short.as_str(), p.full), ("/home/u/Documents", None));
        let long = "x".repeat(500);
        let p = preview(&long);
        assert_eq!(p.short.chars().count(), PREVIEW_CHARS);
        assert!(p.short.ends_with('…'));
        assert_eq!(p.full.as_deref(), Some(long.as_str()));
        let p = preview("evil\u{202e}gpj.exe\nrm -rf ~\u{1b}[2J");
        assert_eq!(p.short, "evilgpj.exe rm -rf ~[2J");
        assert_eq!(p.full.as_deref(), Some("evilgpj.exe\nrm -rf ~[2J"));
    }

    #[test]
    fn requesters_by_principal_and_lookup() {
        assert_eq!(Requester::not_agent("host", None), Requester::Host);
        assert_eq!(
            Requester::not_agent("host:org.gnome.Nautilus", None),
            Requester::HostApp("org.gnome.Nautilus".into())
        );
        assert_eq!(
            Requester::not_agent(
                "org.example.Notes",
                Some("org.freedesktop.DBus.Error.UnknownObject")
            ),
            Requester::FlatpakApp("org.example.Notes".into())
        );
        // The kernel did not answer: not taken for an app.
        for e in [
            Some("org.freedesktop.DBus.Error.ServiceUnknown"),
            Some("org.freedesktop.DBus.Error.NoReply"),
            None,
        ] {
            assert_eq!(
                Requester::not_agent("org.example.Notes", e),
                Requester::Unknown("org.example.Notes".into())
            );
        }
        let agent = Requester::Agent {
            id: "docs".into(),
            name: "Documents".into(),
            sandboxed: true,
        };
        assert_eq!(
            agent.words(),
            "Documents (docs), an agent that runs sandboxed"
        );
        assert_eq!(
            Requester::FlatpakApp("org.example.Notes".into()).words(),
            "org.example.Notes, a sandboxed (Flatpak) app"
        );
        assert_eq!(
            Requester::HostApp("org.gnome.Nautilus".into()).words(),
            "org.gnome.Nautilus, an app on this computer (not sandboxed)"
        );
    }

    #[test]
    fn the_dialog_names_requester_capability_scope_and_task() {
        let info = ConsentRequestInfo {
            id: 3,
            principal: "docs".into(),
            capability: "files.read".into(),
            scope: "/home/u/Documents".into(),
            task: 12,
            title: String::new(),
            subtitle: String::new(),
            body: String::new(),
            since: 0,
        };
        let s = shown(
            "T\u{202e}",
            "S",
            "line 1\nline 2",
            Some(&info),
            Some("Documents (docs), an agent that runs sandboxed"),
            &["task 12".into()],
        );
        assert_eq!(s.title, "T");
        assert_eq!(s.body, "line 1\nline 2");
        let labels: Vec<(&str, &str)> = s
            .facts
            .iter()
            .map(|(l, v)| (l.as_str(), v.short.as_str()))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("Asked by", "Documents (docs), an agent that runs sandboxed"),
                ("Capability", "files.read"),
                ("Scope", "/home/u/Documents"),
                ("Task", "12")
            ]
        );
    }
}
