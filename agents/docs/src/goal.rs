//! What a goal asks: `<words> [in <absolute folder>]` is a search (as before); a question (it
//! ends with "?", starts with a question word such as "what" or "summarize", or with "find
//! out") is answered from the documents.

/// A goal, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    /// The words, or the question, without the folder.
    pub text: String,
    /// The folder given with " in /…", if any.
    pub folder: Option<String>,
    /// Whether the goal is a question to answer rather than words to find.
    pub question: bool,
}

/// First words that make a goal a question.
const QUESTION_WORDS: &[&str] = &[
    "what",
    "what's",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "does",
    "do",
    "did",
    "is",
    "are",
    "was",
    "were",
    "can",
    "could",
    "should",
    "will",
    "would",
    "summarize",
    "summarise",
    "explain",
    "describe",
    "tell",
    "list",
];

/// Read a goal: the folder after the last " in /", the rest as words or a question.
pub fn parse(goal: &str) -> Goal {
    let goal = goal.trim();
    let find_out = goal
        .get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case("find out "));
    let goal = if find_out {
        goal[9..].trim_start()
    } else {
        goal.strip_prefix("find ").unwrap_or(goal)
    };
    let (text, folder) = match goal.rsplit_once(" in /") {
        Some((q, f)) => (q.trim(), Some(format!("/{}", f.trim()))),
        None => (goal, None),
    };
    // "What is due? in /home/u/Docs" and "What is due in /home/u/Docs?" are both questions.
    let folder_marked = folder.as_deref().is_some_and(|f| f.ends_with('?'));
    let folder = folder.map(|f| f.trim_end_matches('?').to_string());
    let first = text.split_whitespace().next().unwrap_or("").to_lowercase();
    let question = find_out
        || folder_marked
        || text.ends_with('?')
        || (QUESTION_WORDS.contains(&first.as_str()) && text.split_whitespace().count() > 1);
    let text = if folder_marked && !text.ends_with('?') {
        format!("{text}?")
    } else {
        text.to_string()
    };
    Goal {
        text,
        folder,
        question,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(text: &str, folder: Option<&str>, question: bool) -> Goal {
        Goal {
            text: text.into(),
            folder: folder.map(Into::into),
            question,
        }
    }

    #[test]
    fn words_and_file_names_stay_searches() {
        assert_eq!(
            parse("find invoice 2024 in /home/u/Docs"),
            goal("invoice 2024", Some("/home/u/Docs"), false)
        );
        assert_eq!(parse("budget"), goal("budget", None, false));
        assert_eq!(parse("budget.txt"), goal("budget.txt", None, false));
        // A question word alone is a name to find, not a question.
        assert_eq!(parse("how"), goal("how", None, false));
    }

    #[test]
    fn questions_are_recognised() {
        assert_eq!(
            parse("What is the budget for 2026?"),
            goal("What is the budget for 2026?", None, true)
        );
        assert_eq!(
            parse("what is the budget in /home/u/Docs"),
            goal("what is the budget", Some("/home/u/Docs"), true)
        );
        assert_eq!(
            parse("the budget for 2026, roughly? in /home/u/Docs"),
            goal("the budget for 2026, roughly?", Some("/home/u/Docs"), true)
        );
        assert_eq!(
            parse("the budget in /home/u/Docs?"),
            goal("the budget?", Some("/home/u/Docs"), true)
        );
        assert_eq!(
            parse("Find out when the meeting is in /home/u/Docs"),
            goal("when the meeting is", Some("/home/u/Docs"), true)
        );
        assert_eq!(
            parse("summarize the meeting notes"),
            goal("summarize the meeting notes", None, true)
        );
    }
}
