//! What a goal asks: a URL alone (optionally after "fetch", "get", "open", "read" or "visit")
//! fetches the page and gives its text, as before; a URL with any other words is a question
//! about the page ("What does https://example.org say about prices?", "summarize
//! https://example.org").

/// A goal, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub url: String,
    /// The goal as written, when it asks something about the page.
    pub question: Option<String>,
}

/// Words that only say "get the page".
const FETCH_WORDS: &[&str] = &[
    "fetch", "get", "open", "read", "visit", "the", "page", "url",
];

/// Read a goal; `Err` when it holds no http(s) URL.
pub fn parse(goal: &str) -> Result<Goal, String> {
    let goal = goal.trim();
    let is_url = |w: &&str| w.starts_with("http://") || w.starts_with("https://");
    let raw = goal
        .split_whitespace()
        .find(is_url)
        .ok_or("the goal contains no http(s) URL")?;
    let rest: Vec<String> = goal
        .split_whitespace()
        .filter(|w| !is_url(w))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let question = rest.iter().any(|w| !FETCH_WORDS.contains(&w.as_str()));
    // Punctuation that ends a sentence is not part of the URL ("…about https://a.org/?").
    let url = if question {
        raw.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '"', '\'', '>'])
    } else {
        raw
    };
    Ok(Goal {
        url: url.to_string(),
        question: question.then(|| goal.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_alone_is_fetched_as_before() {
        for goal in [
            "http://127.0.0.1:8080/",
            "fetch http://127.0.0.1:8080/",
            "  Open the page https://example.org/a?b=c ",
        ] {
            let g = parse(goal).unwrap();
            assert_eq!(g.question, None, "{goal}");
            assert!(g.url.starts_with("http"), "{g:?}");
        }
        assert_eq!(
            parse("fetch https://example.org/a?b=c").unwrap().url,
            "https://example.org/a?b=c"
        );
        assert!(parse("fetch example.org").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn other_words_make_a_question() {
        let g = parse("What does https://example.org/prices say about tea?").unwrap();
        assert_eq!(g.url, "https://example.org/prices");
        assert_eq!(
            g.question.as_deref(),
            Some("What does https://example.org/prices say about tea?")
        );
        let g = parse("summarize https://example.org/news.").unwrap();
        assert_eq!(g.url, "https://example.org/news");
        assert_eq!(
            g.question.as_deref(),
            Some("summarize https://example.org/news.")
        );
        let g = parse("Who wrote this? http://127.0.0.1:9/").unwrap();
        assert_eq!(g.url, "http://127.0.0.1:9/");
        assert!(g.question.is_some());
    }
}
