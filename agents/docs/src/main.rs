//! `agentos-agent-docs`: finds the user's documents whose name or text matches a query, and
//! reads them. Goal: `<words> [in <absolute folder>]`; without a folder, the user's documents
//! folder. Uses `files.list` and `files.read` through the kernel.

mod search;

use agentos_sdk::{Agent, Outcome, Task};

struct Docs;

impl Agent for Docs {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let (query, folder) = search::parse_goal(&task.goal);
        let folder = folder
            .or_else(|| task.context_str("documents_dir"))
            .ok_or("no folder given and no documents folder is known")?;
        let matches = search::search(&task, &folder, &query).await?;
        let mut report = String::new();
        for m in &matches {
            report.push_str(&format!("{}: {}\n", m.path, m.snippet));
        }
        let summary = match matches.len() {
            0 => format!("No document in {folder} matches {query:?}."),
            1 => format!(
                "1 document in {folder} matches {query:?}: {}",
                matches[0].path
            ),
            n => format!(
                "{n} documents in {folder} match {query:?}: {}",
                matches
                    .iter()
                    .map(|m| m.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Outcome::text(summary)
            .with_artifact("matches.txt", report.as_bytes())
            .map_err(|e| e.to_string())
    }
}

#[tokio::main]
async fn main() {
    agentos_sdk::run_or_exit(Docs).await
}
