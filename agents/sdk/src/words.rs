//! The words of a question and of a text as the built-in agents compare them (lower case, a
//! plural's "s" dropped, common words left out), and a rough count of a text's tokens.

/// Words too common to say what a question is about.
const COMMON: &[&str] = &[
    "a",
    "about",
    "all",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "by",
    "can",
    "could",
    "describe",
    "did",
    "do",
    "does",
    "explain",
    "for",
    "from",
    "has",
    "have",
    "how",
    "i",
    "if",
    "in",
    "is",
    "it",
    "its",
    "list",
    "me",
    "much",
    "my",
    "of",
    "on",
    "or",
    "our",
    "say",
    "says",
    "should",
    "summarise",
    "summarize",
    "tell",
    "that",
    "the",
    "their",
    "there",
    "this",
    "to",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
];

/// Whether `word` (lower case) is too common to search for.
pub fn is_common(word: &str) -> bool {
    COMMON.contains(&word)
}

/// A word as it is compared: lower case, a plural's "s" dropped.
pub fn stem(word: &str) -> String {
    let w = word.to_lowercase();
    match w.strip_suffix('s') {
        Some(s) if s.chars().count() >= 3 && !s.ends_with('s') => s.to_string(),
        _ => w,
    }
}

/// The words of `text`, stemmed (letters and digits; everything else separates).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(stem)
}

/// What `question` is about: its words without the common ones and those of `also_common`
/// (lower case), each once, in order. Single letters are left out, single digits kept.
pub fn keywords(question: &str, also_common: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in question.split(|c: char| !c.is_alphanumeric()) {
        let lower = w.to_lowercase();
        if lower.is_empty() || is_common(&lower) || also_common.contains(&lower.as_str()) {
            continue;
        }
        if lower.chars().count() < 2 && !lower.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let s = stem(&lower);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// A rough count of a text's tokens (about four characters each).
pub fn tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_leave_out_common_words_single_letters_and_plurals() {
        assert_eq!(
            keywords(
                "What does the Budget say about 3 trips, a X and the page?",
                &["page"]
            ),
            ["budget", "3", "trip"]
        );
        assert_eq!(
            keywords("How is the class of glass?", &[]),
            ["class", "glass"]
        );
        assert!(is_common("which") && !is_common("budget"));
        assert_eq!(words("Trips, trips!").collect::<Vec<_>>(), ["trip", "trip"]);
        assert_eq!(tokens("abcde"), 2);
    }
}
