//! Walking a granted folder through the kernel and matching names and text.

use agentos_sdk::Task;

/// Deepest folder level searched, and most files looked at.
const MAX_DEPTH: usize = 4;
const MAX_FILES: usize = 2000;
/// Largest file whose text is searched.
const MAX_TEXT: u64 = 1024 * 1024;

/// One matching document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub path: String,
    pub snippet: String,
}

/// Split `<words> [in <folder>]` into the query and the folder.
pub fn parse_goal(goal: &str) -> (String, Option<String>) {
    let goal = goal.trim();
    let goal = goal.strip_prefix("find ").unwrap_or(goal);
    match goal.rsplit_once(" in /") {
        Some((q, f)) => (q.trim().to_string(), Some(format!("/{}", f.trim()))),
        None => (goal.to_string(), None),
    }
}

/// Search `folder` for documents matching every word of `query` (in the name or the text).
pub async fn search(task: &Task, folder: &str, query: &str) -> Result<Vec<Match>, String> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let mut matches = Vec::new();
    let mut pending = vec![(String::new(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = pending.pop() {
        let entries = task
            .list_files(folder, &dir)
            .await
            .map_err(|e| e.message())?;
        for e in entries {
            let path = if dir.is_empty() {
                e.name.clone()
            } else {
                format!("{dir}/{}", e.name)
            };
            if e.is_dir {
                if depth < MAX_DEPTH {
                    pending.push((path, depth + 1));
                }
                continue;
            }
            seen += 1;
            if seen > MAX_FILES {
                return Ok(matches);
            }
            let _ = task
                .progress(
                    (seen as f64 / 100.0).min(0.9),
                    &format!("looking at {path}"),
                )
                .await;
            let name = e.name.to_lowercase();
            let text = if e.size <= MAX_TEXT {
                match task.read_file(folder, &path, MAX_TEXT).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(_) => String::new(),
                }
            } else {
                String::new()
            };
            let lower = text.to_lowercase();
            if words
                .iter()
                .all(|w| name.contains(w.as_str()) || lower.contains(w.as_str()))
            {
                matches.push(Match {
                    path,
                    snippet: snippet(&text, &words),
                });
            }
        }
    }
    Ok(matches)
}

/// The first line of `text` that contains a query word, shortened.
fn snippet(text: &str, words: &[String]) -> String {
    let line = text
        .lines()
        .find(|l| words.iter().any(|w| l.to_lowercase().contains(w.as_str())))
        .or_else(|| text.lines().next())
        .unwrap_or("");
    line.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_split_into_query_and_folder() {
        assert_eq!(
            parse_goal("find invoice 2024 in /home/u/Docs"),
            ("invoice 2024".into(), Some("/home/u/Docs".into()))
        );
        assert_eq!(parse_goal("budget"), ("budget".into(), None));
    }

    #[test]
    fn snippets_show_the_matching_line() {
        assert_eq!(
            snippet("title\nthe budget is 5\n", &["budget".into()]),
            "the budget is 5"
        );
    }
}
