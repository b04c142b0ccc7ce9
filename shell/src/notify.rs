//! Desktop notifications while the window is not in front: a top-level task finished or
//! failed, or consent is needed, with explicit buttons (some servers ignore the default click),
//! sent as `GNotification`s of the panel's application (GLib speaks to
//! `org.freedesktop.Notifications`, or to the desktop's own service). Buttons are the
//! application's actions: `app.show-task(t)`, `app.consent((ss))` with the request's handle and
//! the answer (an option id, or "deny"), and `app.show`.

use agentos_dbus_interfaces::TaskState;
use gtk::gio;
use gtk::glib::{self, prelude::ToVariant};
use gtk::prelude::*;

use crate::consent::request::{Answer, Shown};
use crate::model::format;
use crate::model::tasks::Task;

/// The action that shows a task in the window.
pub const SHOW_TASK: &str = "show-task";
/// The action that answers a consent request.
pub const CONSENT: &str = "consent";
/// The action that brings the window to the front.
pub const SHOW: &str = "show";
/// The answer a `consent` action carries for deny.
pub const DENY: &str = "deny";

/// What a button or a click does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    ShowTask(u64),
    /// Answer the request (handle, option id or [`DENY`]).
    Consent(String, String),
    Show,
}

impl Action {
    /// The detailed action name and its target.
    pub fn target(&self) -> (String, Option<glib::Variant>) {
        match self {
            Action::ShowTask(id) => (format!("app.{SHOW_TASK}"), Some(id.to_variant())),
            Action::Consent(handle, answer) => (
                format!("app.{CONSENT}"),
                Some((handle.as_str(), answer.as_str()).to_variant()),
            ),
            Action::Show => (format!("app.{SHOW}"), None),
        }
    }
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Replaces an earlier notice with the same id; withdrawn by it.
    pub id: String,
    pub title: String,
    pub body: String,
    pub urgent: bool,
    pub default: Action,
    pub buttons: Vec<(String, Action)>,
}

/// The notice for a task that just finished: only top-level tasks (the user's own requests)
/// are worth one.
pub fn task_finished(task: &Task) -> Option<Notice> {
    if task.parent != 0 {
        return None;
    }
    let state = task.state.filter(|s| s.is_terminal())?;
    let what = match state {
        TaskState::Completed => "finished",
        TaskState::Failed => "failed",
        TaskState::Canceled => "was canceled",
        _ => "was rejected",
    };
    let detail = if task.result.is_empty() {
        &task.message
    } else {
        &task.result
    };
    Some(Notice {
        id: format!("task-{}", task.id),
        title: format!("{} {what}", format::line(&task.agent, 60)),
        body: format!(
            "{}\n{}",
            format::line(&task.goal, 120),
            format::line(detail, 200)
        ),
        urgent: state == TaskState::Failed,
        default: Action::ShowTask(task.id),
        buttons: vec![("Open".to_string(), Action::ShowTask(task.id))],
    })
}

/// The notice for a consent request: Allow Once (when offered) and Deny as buttons, the window
/// (with the full dialog) on a click.
pub fn consent_needed(handle: &str, shown: &Shown, answers: &[Answer]) -> Notice {
    let mut buttons = vec![("Open".to_string(), Action::Show)];
    if answers.contains(&Answer::Once) {
        buttons.push((
            "Allow Once".to_string(),
            Action::Consent(handle.to_string(), "once".to_string()),
        ));
    }
    buttons.push((
        "Deny".to_string(),
        Action::Consent(handle.to_string(), DENY.to_string()),
    ));
    Notice {
        id: consent_id(handle),
        title: "AgentOS needs your permission".to_string(),
        body: format!("{}\n{}", shown.title, shown.subtitle),
        urgent: true,
        default: Action::Show,
        buttons,
    }
}

/// The id of a consent request's notice.
pub fn consent_id(handle: &str) -> String {
    format!("consent-{}", handle.rsplit('/').next().unwrap_or(handle))
}

/// The answer a `consent` action names: Allow Once or Deny, what a notification offers. Any
/// program on the session bus can activate the action, so it can never make a lasting grant.
pub fn answer_of(option: &str) -> Answer {
    match Answer::from_option_id(option) {
        Some(Answer::Once) => Answer::Once,
        _ => Answer::Deny,
    }
}

/// Send `notice` as the application's notification (nothing if the application is not
/// registered on the bus).
pub fn send(app: &gio::Application, notice: &Notice) {
    if !app.is_registered() {
        return;
    }
    let n = gio::Notification::new(&notice.title);
    n.set_body(Some(&notice.body));
    if notice.urgent {
        n.set_priority(gio::NotificationPriority::Urgent);
    }
    let (action, target) = notice.default.target();
    n.set_default_action_and_target_value(&action, target.as_ref());
    for (label, action) in &notice.buttons {
        let (name, target) = action.target();
        n.add_button_with_target_value(label, &name, target.as_ref());
    }
    app.send_notification(Some(&notice.id), &n);
}

/// Whether a window of the panel (the main window or a dialog) is in front now.
pub fn in_front() -> bool {
    gtk::Window::list_toplevels()
        .iter()
        .filter_map(|w| w.downcast_ref::<gtk::Window>())
        .any(|w| w.is_active())
}

/// Take back a notice that no longer applies.
pub fn withdraw(app: &gio::Application, id: &str) {
    if app.is_registered() {
        app.withdraw_notification(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::request::shown;
    use agentos_dbus_interfaces::TaskInfo;

    fn task(parent: u64, state: &str, result: &str) -> Task {
        Task::from_info(TaskInfo {
            id: 7,
            parent,
            agent: "docs".into(),
            caller: "host".into(),
            goal: "find the budget".into(),
            state: state.into(),
            progress: 1.0,
            message: "no such file".into(),
            result: result.into(),
            created: 0,
            updated: 0,
        })
    }

    #[test]
    fn only_finished_top_level_tasks_notify() {
        assert!(task_finished(&task(3, "completed", "x")).is_none());
        assert!(task_finished(&task(0, "working", "")).is_none());
        let n = task_finished(&task(0, "completed", "budget.ods")).unwrap();
        assert_eq!(n.title, "docs finished");
        assert_eq!(n.body, "find the budget\nbudget.ods");
        assert_eq!(n.buttons, vec![("Open".into(), Action::ShowTask(7))]);
        assert!(!n.urgent);
        let n = task_finished(&task(0, "failed", "")).unwrap();
        assert_eq!((n.title.as_str(), n.urgent), ("docs failed", true));
        assert_eq!(n.body, "find the budget\nno such file");
    }

    #[test]
    fn consent_notices_offer_explicit_buttons() {
        let s = shown(
            "Allow “Docs” to read files?",
            "files.read",
            "",
            None,
            None,
            &[],
        );
        let handle = "/org/freedesktop/portal/desktop/request/agentos/r4";
        let n = consent_needed(handle, &s, &[Answer::Once, Answer::Always]);
        assert_eq!(n.id, "consent-r4");
        let labels: Vec<&str> = n.buttons.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, vec!["Open", "Allow Once", "Deny"]);
        assert_eq!(
            n.buttons[2].1,
            Action::Consent(handle.into(), "deny".into())
        );
        let n = consent_needed(handle, &s, &[Answer::Always]);
        assert!(!n.buttons.iter().any(|(l, _)| l == "Allow Once"));
        assert_eq!(answer_of("once"), Answer::Once);
        assert_eq!(answer_of("deny"), Answer::Deny);
        assert_eq!(answer_of("anything"), Answer::Deny);
        // Not offered by a notification, so not taken from an action either.
        assert_eq!(answer_of("always"), Answer::Deny);
        assert_eq!(answer_of("session"), Answer::Deny);
    }

    #[test]
    fn actions_carry_their_targets() {
        let (name, target) = Action::ShowTask(9).target();
        assert_eq!(
            (name.as_str(), target.unwrap().get::<u64>()),
            ("app.show-task", Some(9))
        );
        let (name, target) = Action::Consent("h".into(), "once".into()).target();
        assert_eq!(name, "app.consent");
        assert_eq!(
            target.unwrap().get::<(String, String)>(),
            Some(("h".into(), "once".into()))
        );
        assert_eq!(Action::Show.target(), ("app.show".into(), None));
    }
}
