//! `agentos-agent-docs`: finds the user's documents, and answers questions about them. Goal:
//! `<words> [in <absolute folder>]` finds the documents whose name or text holds every word
//! (but common ones such as "the"); a question (see `goal`) is answered by a model through the kernel's broker from the passages
//! that match it best, citing their files. Without a folder, the user's documents folder. Uses
//! `files.list` and `files.read` through the kernel.

pub mod answer;
pub mod broker;
pub mod goal;
pub mod library;
pub mod model;
pub mod prompt;
pub mod rank;
pub mod search;

use agentos_sdk::{Agent, Outcome, Task};

use crate::broker::Broker;

/// The agent.
pub struct Docs;

impl Agent for Docs {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let goal = goal::parse(&task.goal);
        let folder = goal
            .folder
            .clone()
            .or_else(|| task.context_str("documents_dir"))
            .ok_or("no folder given and no documents folder is known")?;
        if goal.question {
            let reply = answer::answer(&task, &Broker(&task), &folder, &goal.text).await?;
            return reply.outcome();
        }
        let matches = search::search(&task, &folder, &goal.text).await?;
        let (summary, report) = search::summarize(&folder, &goal.text, &matches);
        Outcome::text(summary)
            .with_artifact("matches.txt", report.as_bytes())
            .map_err(|e| e.to_string())
    }
}
