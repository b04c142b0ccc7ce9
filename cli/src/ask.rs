//! `agentctl ask "<goal>"`: hand a goal to the sidekick (or `--agent`), mark its task as the one
//! the user watches (`Kernel1.SetFocus`, so its model requests are served first), and stream the
//! answer as it grows: the agent reports the answer so far as its task's progress message, and
//! only what was added is printed. Then the final result and the artifacts; Ctrl-C cancels.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use agentos_client::TaskEvent;
use agentos_dbus_interfaces::TaskState;
use futures_util::StreamExt;

use crate::connect::Kernel;
use crate::delegate::{self, Delegated, Limits, Started};
use crate::error::{CliError, Result};
use crate::output::{self, Table};

/// The agent `ask` talks to unless told otherwise.
pub const DEFAULT_AGENT: &str = "sidekick";
/// How often the task is polled, in case a signal was missed.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The answer as printed so far: each new message that extends it prints only what it adds;
/// one that does not is printed whole on a line of its own.
#[derive(Debug, Default)]
struct Answer {
    /// The message (as the agent wrote it) whose text is on the screen.
    shown: String,
    /// The last thing printed did not end a line.
    mid_line: bool,
}

impl Answer {
    /// The text to print for the agent's message `message`, if any.
    fn update(&mut self, message: &str) -> Option<String> {
        if message == self.shown || message.is_empty() {
            return None;
        }
        let text = match message.strip_prefix(self.shown.as_str()) {
            Some(added) if !self.shown.is_empty() => output::clean_block(added),
            _ => self.own_line(output::clean_block(message)),
        };
        Some(self.now_shown(message, text))
    }

    /// `text`, begun on a line of its own if the last thing printed did not end one.
    fn own_line(&self, text: String) -> String {
        if self.mid_line {
            format!("\n{text}")
        } else {
            text
        }
    }

    /// `text`, printed for `message`: what is shown now.
    fn now_shown(&mut self, message: &str, text: String) -> String {
        self.shown = message.to_string();
        if !text.is_empty() {
            self.mid_line = !text.ends_with('\n');
        }
        text
    }

    /// The text that ends the answer with the task's result: the rest of it if it extends what
    /// is shown; nothing if it is what is shown, cut shorter; the words it puts before what is
    /// shown (a caveat before the model's answer), the answer referred to, not printed twice;
    /// else the whole result on a line of its own. The line is ended either way.
    fn finish(&mut self, result: &str) -> String {
        let (shown, whole) = (self.shown.trim(), result.trim());
        let mut text = if result.is_empty() || (!whole.is_empty() && begins_with(shown, whole)) {
            String::new()
        } else if shown.is_empty() {
            self.update(result).unwrap_or_default()
        } else if let Some(rest) = whole.strip_prefix(shown) {
            self.now_shown(result, output::clean_block(rest))
        } else if let Some(after) = after_shown(shown, whole) {
            let text = self.own_line(format!("\n{}", output::clean_block(after)));
            self.now_shown(result, text)
        } else if let Some(before) = whole
            .strip_suffix(shown)
            .filter(|before| !before.trim().is_empty())
        {
            let before = output::clean_block(before.trim_end());
            let text = self.own_line(format!("{before}\n(the answer above)"));
            self.now_shown(result, text)
        } else {
            self.update(result).unwrap_or_default()
        };
        if self.mid_line {
            text.push('\n');
            self.mid_line = false;
        }
        text
    }
}

/// The paragraphs of `whole` after the most of its first ones that `shown` begins with (a note
/// or the sources after the answer streamed, where the answer was cut shorter than shown); `None`
/// if `shown` does not begin with its first paragraph.
fn after_shown<'a>(shown: &str, whole: &'a str) -> Option<&'a str> {
    let ends = whole.match_indices("\n\n").map(|(at, _)| at);
    let at = ends
        .filter(|&at| {
            let head = whole[..at].trim_end();
            !head.is_empty() && begins_with(shown, head)
        })
        .last()?;
    Some(whole[at..].trim_start())
}

/// Whether `text` begins with `head` as whole words: what follows it, if anything, begins with
/// a space or a line's end (`$1,000` does not begin with `$1`).
fn begins_with(text: &str, head: &str) -> bool {
    text.strip_prefix(head)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// The sub-tasks of the asked task, and the state last said of each.
#[derive(Debug)]
struct Steps {
    root: u64,
    /// Tasks of the tree, with their depth below the root.
    depth: HashMap<u64, usize>,
    said: HashMap<u64, TaskState>,
}

impl Steps {
    fn new(root: u64) -> Steps {
        Steps {
            root,
            depth: HashMap::from([(root, 0)]),
            said: HashMap::new(),
        }
    }

    /// A line for a sub-task whose state changed, if the event is about one.
    fn update(&mut self, event: &TaskEvent) -> Option<String> {
        if event.id == self.root {
            return None;
        }
        let depth = match self.depth.get(&event.id) {
            Some(&d) => d,
            None => {
                let d = *self.depth.get(&event.parent)? + 1;
                self.depth.insert(event.id, d);
                d
            }
        };
        if self.said.insert(event.id, event.state) == Some(event.state) {
            return None;
        }
        let agent = if event.agent.is_empty() {
            "a sub-task".to_string()
        } else {
            output::clean(&event.agent)
        };
        Some(format!(
            "{}· {agent} (task {}) {}",
            "  ".repeat(depth),
            event.id,
            event.state
        ))
    }
}

/// `agentctl ask [--agent ID] [--timeout SECS] <goal>`.
pub async fn ask(kernel: &Kernel, agent: &str, goal: &str, limits: Limits<'_>) -> Result<u8> {
    let started = delegate::delegate(kernel, agent, goal, limits, |e| refused(agent, e)).await?;
    let mut delegated: Delegated = match started {
        Started::Delegated(d) => d,
        Started::Interrupted(status) => return Ok(status),
    };
    let id = delegated.id;
    // The user watches this task: its model requests (and its sub-tasks') come first.
    if let Err(e) = kernel.proxy.set_focus(id).await {
        output::warn(&format!(
            "agentctl: the answer may come slower: cannot mark task {id} as watched: {}",
            CliError::from(e)
        ));
    }

    let terminal = std::io::stdout().is_terminal();
    let mut answer = Answer::default();
    let mut steps = Steps::new(id);
    let mut state = None;
    let mut show = |event: &TaskEvent, answer: &mut Answer| -> Result<Option<TaskState>> {
        if event.id == id {
            if !event.state.is_terminal() {
                if let Some(text) = answer.update(&event.message) {
                    output::emit(&text)?;
                }
            }
            return Ok(Some(event.state));
        }
        if let Some(line) = steps.update(event) {
            // On a terminal, a step's line goes under the answer's last line, not into it.
            if terminal && answer.mid_line {
                output::emit("\n")?;
                answer.mid_line = false;
            }
            output::warn(&line);
        }
        Ok(None)
    };
    for event in &delegated.early {
        state = delegate::shown(kernel, id, show(event, &mut answer))
            .await?
            .or(state);
    }
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while state.is_none_or(|s: TaskState| !s.is_terminal()) {
        tokio::select! {
            change = delegated.changes.next(), if delegated.signals_open => match change {
                Some(Ok(event)) => {
                    state = delegate::shown(kernel, id, show(&event, &mut answer)).await?.or(state);
                }
                Some(Err(_)) => {}
                None => delegated.signals_open = false,
            },
            _ = poll.tick() => {
                let task = kernel.proxy.get_task(id).await?;
                if let Some(s) = TaskState::parse(&task.state) {
                    let event = TaskEvent {
                        id,
                        parent: task.parent,
                        agent: task.agent,
                        state: s,
                        progress: task.progress,
                        message: task.message,
                    };
                    state = delegate::shown(kernel, id, show(&event, &mut answer)).await?.or(state);
                }
            }
            _ = delegated.interrupt.recv() => {
                // The terminal may be gone already: the task is canceled whatever this does.
                if answer.mid_line {
                    let _ = output::emit("\n");
                }
                return Ok(delegate::cancel(kernel, id).await);
            }
        }
    }
    finish(kernel, id, &delegated.path, state, &mut answer).await
}

/// The delegation was refused: say to whom, and what to do when the agent is missing.
fn refused(agent: &str, e: agentos_dbus_interfaces::Error) -> CliError {
    match e {
        agentos_dbus_interfaces::Error::UnknownAgent(_) if agent == DEFAULT_AGENT => {
            CliError::new(format!(
                "there is no {DEFAULT_AGENT} agent to ask (see `agentctl agents`; pick another \
                 with --agent)"
            ))
        }
        other => CliError::from(other),
    }
}

/// The rest of the answer, the artifacts, and the exit status: 0 only if the task completed.
async fn finish(
    kernel: &Kernel,
    id: u64,
    path: &str,
    seen: Option<TaskState>,
    answer: &mut Answer,
) -> Result<u8> {
    let task = kernel.proxy.get_task(id).await?;
    let state = TaskState::parse(&task.state)
        .filter(|s| s.is_terminal())
        .or(seen)
        .unwrap_or(TaskState::Failed);
    if state != TaskState::Completed {
        if answer.mid_line {
            output::emit("\n")?;
        }
        let why = output::clean(&task.message);
        return Err(CliError::new(if why.is_empty() {
            format!("task {id} {state}")
        } else {
            format!("task {id} {state}: {why}")
        }));
    }
    output::emit(&answer.finish(&task.result))?;
    let artifacts = delegate::artifacts(kernel, id, path).await?;
    if !artifacts.is_empty() {
        let mut table = Table::new(&["ARTIFACT", "SIZE"]);
        for a in &artifacts {
            table.row(vec![a.name.clone(), format!("{} bytes", a.size)]);
        }
        output::emit(&format!("\n{}", table.render()))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_answer_prints_only_what_it_adds() {
        let mut a = Answer::default();
        assert_eq!(a.update("").as_deref(), None);
        assert_eq!(a.update("The budget").as_deref(), Some("The budget"));
        assert_eq!(a.update("The budget").as_deref(), None);
        assert_eq!(
            a.update("The budget is 4 200 €.").as_deref(),
            Some(" is 4 200 €.")
        );
        // Not an extension: a line of its own, whole.
        assert_eq!(
            a.update("Reading budget.txt").as_deref(),
            Some("\nReading budget.txt")
        );
        // The result extends the last message: its rest, and the line ended.
        assert_eq!(a.finish("Reading budget.txt\u{1b}[2J done"), "[2J done\n");
        assert!(!a.mid_line);
    }

    #[test]
    fn the_result_is_printed_whole_when_it_does_not_extend_the_answer() {
        let mut a = Answer::default();
        assert_eq!(a.update("thinking…").as_deref(), Some("thinking…"));
        assert_eq!(a.finish("42\n"), "\n42\n");
        let mut a = Answer::default();
        assert_eq!(a.finish("only a result"), "only a result\n");
        let mut a = Answer::default();
        a.update("all of it\n");
        assert_eq!(a.finish("all of it\n"), "");
        assert_eq!(Answer::default().finish(""), "");
    }

    #[test]
    fn what_is_shown_is_not_printed_again() {
        // A result that puts a caveat before the answer streamed: the caveat, and the answer
        // referred to.
        let mut a = Answer::default();
        a.update("The dentist is on Tuesday.");
        assert_eq!(
            a.finish(
                "I could not get the information. What failed:\n- agent \"docs\": denied.\n\n\
                 The model's answer comes from no source and may be wrong:\n\
                 The dentist is on Tuesday."
            ),
            "\nI could not get the information. What failed:\n- agent \"docs\": denied.\n\n\
             The model's answer comes from no source and may be wrong:\n(the answer above)\n"
        );
        for (shown, result, printed, case) in [
            (
                "The price is $1,000",
                "The price is $1",
                "\nThe price is $1\n",
                "a result cut inside a word of what is shown is not taken for it",
            ),
            (
                "One. ",
                "One.\n\nTwo",
                "\n\nTwo\n",
                "a result going on from what was shown, less its spaces: its rest",
            ),
            (
                "One.\n\nTwo, and",
                "One.\n\nTwo, and three.",
                " three.\n",
                "a result going on from an answer of several paragraphs: its rest",
            ),
            (
                "Rust is safe. Rust is fast. Rust is fast. Rust is",
                "Rust is safe. Rust is fast.",
                "\n",
                "what was shown, cut where the model began repeating itself: nothing more",
            ),
        ] {
            let mut a = Answer::default();
            a.update(shown);
            assert_eq!(a.finish(result), printed, "{case}");
        }
        // Cut where the model repeated itself, then a note and the sources: only those.
        let mut a = Answer::default();
        a.update("Rust is safe.\n\nIt is fast. It is fast. It is");
        assert_eq!(
            a.finish(
                "Rust is safe.\n\nIt is fast.\n\n(The answer stops here: the model began \
                 repeating itself.)\n\nSources:\n- rust.txt"
            ),
            "\n\n(The answer stops here: the model began repeating itself.)\n\nSources:\n\
             - rust.txt\n"
        );
    }

    #[test]
    fn sub_tasks_are_said_once_per_state() {
        let event = |id, parent, state| TaskEvent {
            id,
            parent,
            agent: "docs".into(),
            state,
            progress: 0.0,
            message: String::new(),
        };
        let mut s = Steps::new(5);
        assert_eq!(s.update(&event(5, 0, TaskState::Working)), None);
        assert_eq!(
            s.update(&event(6, 5, TaskState::Working)).as_deref(),
            Some("  · docs (task 6) working")
        );
        assert_eq!(s.update(&event(6, 5, TaskState::Working)), None);
        assert_eq!(
            s.update(&event(7, 6, TaskState::Completed)).as_deref(),
            Some("    · docs (task 7) completed")
        );
        // Another tree's task.
        assert_eq!(s.update(&event(9, 8, TaskState::Working)), None);
    }
}
