//! The Ask page: a prompt box that hands the goal to the `sidekick` agent (or, where there is
//! none, to the agent the user picks), then shows the task's progress message as it changes
//! (the sidekick streams its answer there), the tasks it delegated to, and its result.

use std::collections::BTreeMap;

use agentos_client::{Client, TaskEvent};
use agentos_dbus_interfaces::{names, TaskInfo, TaskState};
use futures_util::StreamExt;
use gtk::prelude::*;
use relm4::prelude::*;

use super::asked::Asked;
use crate::model::format;

/// The agent a goal goes to by default.
pub const SIDEKICK: &str = "sidekick";

#[derive(Debug)]
pub enum AskInput {
    Connected(Client),
    Disconnected,
    Submit,
}

#[derive(Debug)]
pub enum AskCmd {
    Agents(Result<Vec<String>, String>),
    Started(Result<u64, String>),
    Event(TaskEvent),
    /// The asked task as `GetTask` read it once it started, still running (or unread).
    Snapshot(u64, Result<TaskInfo, String>),
    Finished(u64, Result<TaskInfo, String>),
}

pub struct AskPage {
    client: Option<Client>,
    agents: Vec<String>,
    agent: gtk::DropDown,
    prompt: gtk::TextView,
    submit: gtk::Button,
    status: gtk::Label,
    answer: gtk::Label,
    tree: gtk::Label,
    /// The task asked now, and the tasks below it (id → line).
    asked: Asked,
    below: BTreeMap<u64, String>,
}

/// The agents offered, the sidekick first when there is one.
pub fn order_agents(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    if let Some(i) = ids.iter().position(|a| a == SIDEKICK) {
        let s = ids.remove(i);
        ids.insert(0, s);
    }
    ids
}

impl Component for AskPage {
    type Init = ();
    type Input = AskInput;
    type Output = ();
    type CommandOutput = AskCmd;
    type Widgets = ();
    type Root = gtk::Box;

    fn init_root() -> gtk::Box {
        gtk::Box::new(gtk::Orientation::Vertical, 0)
    }

    fn init(_: (), root: gtk::Box, sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let (frame, status) = crate::ui::page("Ask");
        frame.set_vexpand(true);
        root.append(&frame);
        let row = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        let label = gtk::Label::with_mnemonic("_Agent:");
        let agent = gtk::DropDown::from_strings(&[]);
        label.set_mnemonic_widget(Some(&agent));
        row.append(&label);
        row.append(&agent);
        frame.append(&row);
        let prompt = gtk::TextView::new();
        prompt.set_widget_name("ask-prompt");
        prompt.set_wrap_mode(gtk::WrapMode::WordChar);
        prompt.set_accepts_tab(false);
        let prompt_frame = gtk::Frame::new(None);
        prompt_frame.set_child(Some(&prompt));
        prompt_frame.set_size_request(-1, 90);
        frame.append(&prompt_frame);
        let submit = gtk::Button::with_mnemonic("_Ask");
        submit.add_css_class("suggested-action");
        submit.set_halign(gtk::Align::End);
        submit.set_sensitive(false);
        let input = sender.input_sender().clone();
        submit.connect_clicked(move |_| input.emit(AskInput::Submit));
        frame.append(&submit);
        let answer = crate::ui::text("");
        answer.set_widget_name("ask-answer");
        let tree = crate::ui::caption("");
        tree.set_wrap(true);
        let scroll = gtk::ScrolledWindow::new();
        scroll.set_vexpand(true);
        let inner = gtk::Box::new(gtk::Orientation::Vertical, 6);
        inner.append(&answer);
        inner.append(&tree);
        scroll.set_child(Some(&inner));
        frame.append(&scroll);
        status.set_label("Waiting for AgentOS…");
        ComponentParts {
            model: AskPage {
                client: None,
                agents: Vec::new(),
                agent,
                prompt,
                submit,
                status,
                answer,
                tree,
                asked: Asked::default(),
                below: BTreeMap::new(),
            },
            widgets: (),
        }
    }

    fn update(&mut self, msg: AskInput, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            AskInput::Connected(client) => {
                self.client = Some(client.clone());
                follow(&sender, client.clone());
                sender.oneshot_command(async move {
                    let r = super::on_kernel(&client, |k| async move { k.list_agents().await })
                        .await
                        .map(|a| order_agents(a.into_iter().map(|a| a.id).collect()));
                    AskCmd::Agents(r)
                });
            }
            AskInput::Disconnected => {
                self.client = None;
                self.submit.set_sensitive(false);
            }
            AskInput::Submit => {
                let buffer = self.prompt.buffer();
                let goal = buffer
                    .text(&buffer.start_iter(), &buffer.end_iter(), false)
                    .trim()
                    .to_string();
                let agent = self.agents.get(self.agent.selected() as usize).cloned();
                let (Some(client), Some(agent)) = (self.client.clone(), agent) else {
                    return;
                };
                if goal.is_empty() {
                    self.status.set_label("Write what you want done first.");
                    return;
                }
                self.submit.set_sensitive(false);
                self.asked.begin();
                self.below.clear();
                self.answer.set_label("");
                self.tree.set_label("");
                self.status
                    .set_label(&format!("Asking {}…", format::line(&agent, 60)));
                sender.oneshot_command(async move {
                    let r = super::on_kernel(&client, |k| async move {
                        k.delegate(&agent, &goal, Default::default()).await
                    })
                    .await
                    .and_then(|path| {
                        names::task_id_from_path(path.as_str())
                            .ok_or_else(|| "the kernel returned no task".to_string())
                    });
                    AskCmd::Started(r)
                });
            }
        }
    }

    fn update_cmd(&mut self, msg: AskCmd, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            AskCmd::Agents(Ok(agents)) => {
                let labels: Vec<&str> = agents.iter().map(String::as_str).collect();
                self.agent.set_model(Some(&gtk::StringList::new(&labels)));
                self.agent.set_selected(0);
                self.submit.set_sensitive(!agents.is_empty());
                self.status
                    .set_label(match agents.first().map(String::as_str) {
                        Some(SIDEKICK) => {
                            "Ask the sidekick anything; it delegates to other agents."
                        }
                        Some(_) => "No sidekick is installed: pick the agent to ask.",
                        None => "No agents are installed.",
                    });
                self.agents = agents;
            }
            AskCmd::Agents(Err(e)) => self.status.set_label(&format!("Cannot list agents: {e}")),
            AskCmd::Started(Ok(id)) => {
                self.status.set_label(&format!("Task {id} started."));
                for ev in self.asked.started(id) {
                    self.on_event(ev, &sender);
                }
                // What the task is at now, in case its events came before the page was
                // following them (or were lost): an end is shown from it.
                if let Some(client) = self.client.clone() {
                    sender.oneshot_command(async move {
                        let r = super::on_kernel(&client, |k| async move { k.get_task(id).await })
                            .await;
                        match r {
                            Ok(t)
                                if TaskState::parse(&t.state).is_some_and(|s| s.is_terminal()) =>
                            {
                                AskCmd::Finished(id, Ok(t))
                            }
                            _ => AskCmd::Snapshot(id, r),
                        }
                    });
                }
            }
            AskCmd::Snapshot(id, Ok(t)) if Some(id) == self.asked.task() => {
                if self.answer.label().is_empty() && !t.message.is_empty() {
                    self.answer
                        .set_label(&agentos_client::display_safe_block(&t.message, 64 * 1024));
                }
            }
            AskCmd::Snapshot(..) => {}
            AskCmd::Started(Err(e)) => {
                self.asked.refused();
                self.submit.set_sensitive(true);
                self.status.set_label(&format!("Cannot ask: {e}"));
            }
            AskCmd::Event(ev) => {
                if let Some(ev) = self.asked.event(ev) {
                    self.on_event(ev, &sender);
                }
            }
            AskCmd::Finished(id, r) if Some(id) == self.asked.task() => {
                self.submit.set_sensitive(self.client.is_some());
                match r {
                    Ok(t) => {
                        let result = if t.result.is_empty() {
                            format::line(&t.message, 4000)
                        } else {
                            agentos_client::display_safe_block(&t.result, 64 * 1024)
                        };
                        self.answer.set_label(&result);
                        self.status
                            .set_label(&format!("Task {id} {}.", format::line(&t.state, 20)));
                    }
                    Err(e) => self
                        .status
                        .set_label(&format!("Cannot read the result: {e}")),
                }
            }
            AskCmd::Finished(..) => {}
        }
    }
}

impl AskPage {
    fn on_event(&mut self, ev: TaskEvent, sender: &ComponentSender<Self>) {
        let Some(task) = self.asked.task() else {
            return;
        };
        if ev.id == task {
            if !ev.message.is_empty() {
                self.answer
                    .set_label(&agentos_client::display_safe_block(&ev.message, 64 * 1024));
            }
            if ev.state.is_terminal() {
                if let Some(client) = self.client.clone() {
                    sender.oneshot_command(async move {
                        let r =
                            super::on_kernel(&client, |k| async move { k.get_task(task).await })
                                .await;
                        AskCmd::Finished(task, r)
                    });
                }
            }
        } else if ev.parent == task || self.below.contains_key(&ev.parent) {
            self.below.insert(
                ev.id,
                format!(
                    "Task {} · {} · {}",
                    ev.id,
                    format::line(&ev.agent, 60),
                    ev.state
                ),
            );
            let lines: Vec<&str> = self.below.values().map(String::as_str).collect();
            self.tree
                .set_label(&format!("Delegated:\n{}", lines.join("\n")));
        }
    }
}

/// Follow task events (for the task asked now and those below it) until the kernel changes.
fn follow(sender: &ComponentSender<AskPage>, client: Client) {
    sender.command(move |out, shutdown| {
        shutdown
            .register(async move {
                let changed = client.owner_changed();
                tokio::pin!(changed);
                let Ok(mut events) = client.task_events().await else {
                    return;
                };
                loop {
                    tokio::select! {
                        ev = events.next() => match ev {
                            // The page decides which tasks are its own.
                            Some(Ok(ev)) => {
                                if out.send(AskCmd::Event(ev)).is_err() {
                                    return;
                                }
                            }
                            Some(Err(_)) => {}
                            None => return,
                        },
                        () = &mut changed => return,
                    }
                }
            })
            .drop_on_shutdown()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sidekick_comes_first() {
        let ids = vec![
            "web".to_string(),
            "sidekick".to_string(),
            "docs".to_string(),
        ];
        assert_eq!(order_agents(ids), vec!["sidekick", "docs", "web"]);
        let ids = vec!["web".to_string(), "docs".to_string()];
        assert_eq!(order_agents(ids), vec!["docs", "web"]);
    }
}
