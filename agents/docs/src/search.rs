//! Finding documents whose name or text holds every word of a query (but common ones) (the answer to a goal that
//! is not a question, and the fallback when no model can answer one).

use crate::library::{walk, Library};
use crate::rank::is_common;

/// Largest file whose text is searched.
const MAX_TEXT: u64 = 1024 * 1024;

/// One matching document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub path: String,
    pub snippet: String,
}

/// Search `folder` for documents matching every word of `query` but the common ones ("the",
/// "for"…), in the name or the text.
pub async fn search(
    library: &impl Library,
    folder: &str,
    query: &str,
) -> Result<Vec<Match>, String> {
    let all: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    // "the budget for 2026" looks for "budget" and "2026"; a query of common words alone, as is.
    let words: Vec<String> = all.iter().filter(|w| !is_common(w)).cloned().collect();
    let words = if words.is_empty() { all } else { words };
    let mut matches = Vec::new();
    for (seen, file) in walk(library, folder).await?.into_iter().enumerate() {
        library
            .progress(
                ((seen + 1) as f64 / 100.0).min(0.9),
                &format!("looking at {}", file.path),
            )
            .await;
        let name = file.name.to_lowercase();
        let text = if file.size <= MAX_TEXT {
            match library.read(folder, &file.path, MAX_TEXT).await {
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
                snippet: snippet(&text, &words),
                path: file.path,
            });
        }
    }
    Ok(matches)
}

/// The first line of `text` that contains a query word, shortened.
pub fn snippet(text: &str, words: &[String]) -> String {
    let line = text
        .lines()
        .find(|l| words.iter().any(|w| l.to_lowercase().contains(w.as_str())))
        .or_else(|| text.lines().next())
        .unwrap_or("");
    line.chars().take(160).collect()
}

/// The one-line summary and the `matches.txt` report of a search.
pub fn summarize(folder: &str, query: &str, matches: &[Match]) -> (String, String) {
    let mut report = String::new();
    for m in matches {
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
    (summary, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::memory::Memory;

    #[test]
    fn snippets_show_the_matching_line() {
        assert_eq!(
            snippet("title\nthe budget is 5\n", &["budget".into()]),
            "the budget is 5"
        );
    }

    #[tokio::test]
    async fn every_word_must_match_the_name_or_the_text() {
        let lib = Memory::new(&[
            ("budget.txt", "Budget 2026: 42\n"),
            ("notes/plan.md", "no money words here"),
            ("secret.txt", "nothing"),
        ]);
        let found = search(&lib, "/d", "budget 2026").await.unwrap();
        assert_eq!(
            found,
            [Match {
                path: "budget.txt".into(),
                snippet: "Budget 2026: 42".into()
            }]
        );
        assert_eq!(
            search(&lib, "/d", "the budget for 2026").await.unwrap(),
            found,
            "common words are not required"
        );
        assert_eq!(search(&lib, "/d", "plan").await.unwrap().len(), 1);
        assert!(search(&lib, "/d", "the").await.unwrap().is_empty());
        let (summary, report) = summarize("/d", "budget 2026", &found);
        assert!(summary.starts_with("1 document in /d"), "{summary}");
        assert_eq!(report, "budget.txt: Budget 2026: 42\n");
    }
}
