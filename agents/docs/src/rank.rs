//! Choosing what a model reads: a question's keywords, documents ranked by keyword overlap,
//! documents split into passages, and the most relevant passages within a token budget.

/// Longest passage, in characters.
pub const MAX_PASSAGE_CHARS: usize = 600;
/// Most passages given to the model, and most tokens they may take together.
pub const MAX_PASSAGES: usize = 6;
pub const MAX_PASSAGE_TOKENS: usize = 600;

pub use agentos_sdk::words::{is_common, tokens, words};

/// What a question is about: its words without the common ones, each once, in order.
pub fn keywords(question: &str) -> Vec<String> {
    agentos_sdk::words::keywords(question, &[])
}

/// How well `text` matches `keywords`: 4 per keyword present, plus 1 per occurrence beyond the
/// first (at most 3 per keyword). 0: none present.
pub fn score(text: &str, keywords: &[String]) -> usize {
    let mut counts = vec![0usize; keywords.len()];
    for w in words(text) {
        if let Some(i) = keywords.iter().position(|k| *k == w) {
            counts[i] += 1;
        }
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| 4 + (c - 1).min(3))
        .sum()
}

/// A passage of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// The document's path, relative to the folder.
    pub path: String,
    /// Its place in the document (0 first).
    pub index: usize,
    pub text: String,
}

/// Split `text` into passages: paragraphs (separated by blank lines), long ones cut at line
/// ends, long lines at spaces, each at most [`MAX_PASSAGE_CHARS`].
pub fn passages(path: &str, text: &str) -> Vec<Passage> {
    let mut pieces: Vec<String> = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, pieces: &mut Vec<String>| {
        let t = current.trim();
        if !t.is_empty() {
            pieces.push(t.to_string());
        }
        current.clear();
    };
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            flush(&mut current, &mut pieces);
            continue;
        }
        for part in cut(line) {
            if current.chars().count() + part.chars().count() + 1 > MAX_PASSAGE_CHARS {
                flush(&mut current, &mut pieces);
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(part);
        }
    }
    flush(&mut current, &mut pieces);
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, text)| Passage {
            path: path.to_string(),
            index,
            text,
        })
        .collect()
}

/// `line` in pieces of at most [`MAX_PASSAGE_CHARS`] characters, cut at spaces where it can.
fn cut(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while rest.chars().count() > MAX_PASSAGE_CHARS {
        let limit = rest
            .char_indices()
            .nth(MAX_PASSAGE_CHARS)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let at = rest[..limit].rfind(' ').filter(|i| *i > 0).unwrap_or(limit);
        out.push(rest[..at].trim_end());
        rest = rest[at..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The passages to give the model: those matching `keywords` best, at most [`MAX_PASSAGES`]
/// and [`MAX_PASSAGE_TOKENS`] together; when none matches a word (a document chosen for its
/// name), the first passage of the first document. In document order (`documents` best
/// first), then passage order.
pub fn select(documents: &[Vec<Passage>], keywords: &[String]) -> Vec<Passage> {
    let mut scored: Vec<(usize, usize, &Passage)> = documents
        .iter()
        .enumerate()
        .flat_map(|(d, ps)| ps.iter().map(move |p| (d, p)))
        .map(|(d, p)| (score(&p.text, keywords), d, p))
        .filter(|(s, _, _)| *s > 0)
        .collect();
    if scored.is_empty() {
        if let Some(first) = documents.iter().find_map(|ps| ps.first()) {
            scored.push((1, 0, first));
        }
    }
    // Best first; among equals, the better document, then the earlier passage.
    scored.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.index.cmp(&b.2.index))
    });
    let mut chosen: Vec<(usize, &Passage)> = Vec::new();
    let mut budget = MAX_PASSAGE_TOKENS;
    for (_, d, p) in scored {
        if chosen.len() == MAX_PASSAGES {
            break;
        }
        let cost = tokens(&p.text);
        if cost > budget {
            continue;
        }
        budget -= cost;
        chosen.push((d, p));
    }
    chosen.sort_by_key(|(d, p)| (*d, p.index));
    chosen.into_iter().map(|(_, p)| p.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_drop_common_words_and_plurals() {
        assert_eq!(
            keywords("What is the budget for 2026? And the invoices?"),
            ["budget", "2026", "invoice"]
        );
        assert_eq!(keywords("what is it?"), Vec::<String>::new());
    }

    #[test]
    fn scores_count_keywords_then_repeats() {
        let k = keywords("budget 2026");
        assert_eq!(score("nothing here", &k), 0);
        assert_eq!(score("the Budget", &k), 4);
        assert_eq!(score("budget 2026", &k), 8);
        assert_eq!(score("budgets budget budget", &k), 6);
        assert_eq!(score("budget budget budget budget budget budget", &k), 7);
    }

    #[test]
    fn passages_follow_paragraphs_and_stay_short() {
        let long = "word ".repeat(300);
        let text = format!("Title\nfirst para\n\n\nsecond\n\n{long}\n");
        let ps = passages("a.txt", &text);
        assert_eq!(ps[0].text, "Title\nfirst para");
        assert_eq!(ps[1].text, "second");
        assert!(ps.len() >= 4, "{ps:?}");
        for (i, p) in ps.iter().enumerate() {
            assert_eq!(p.index, i);
            assert_eq!(p.path, "a.txt");
            assert!(
                p.text.chars().count() <= MAX_PASSAGE_CHARS,
                "{}",
                p.text.len()
            );
        }
        let rejoined: usize = ps[2..].iter().map(|p| words(&p.text).count()).sum();
        assert_eq!(rejoined, 300, "no word lost when cutting");
        // Multibyte text is cut at character boundaries without panicking.
        let wide = "é".repeat(MAX_PASSAGE_CHARS * 2 + 5);
        assert_eq!(passages("b", &wide).len(), 3);
    }

    #[test]
    fn selection_prefers_matching_passages_within_the_budget() {
        let k = keywords("when is the budget meeting?");
        let a = passages(
            "a.txt",
            "intro\n\nthe budget meeting is on Monday\n\nunrelated",
        );
        let b = passages("b.txt", "budget notes\n\nother");
        let chosen = select(&[a.clone(), b.clone()], &k);
        assert_eq!(chosen, [a[1].clone(), b[0].clone()]);

        // Many matching passages: the budget holds.
        let many: Vec<Vec<Passage>> = (0..20)
            .map(|i| passages(&format!("{i}.txt"), &"budget meeting ".repeat(30)))
            .collect();
        let chosen = select(&many, &k);
        assert!(chosen.len() <= MAX_PASSAGES);
        let used: usize = chosen.iter().map(|p| tokens(&p.text)).sum();
        assert!(used <= MAX_PASSAGE_TOKENS, "{used}");
        assert!(!chosen.is_empty());

        // Nothing matches a word: the first passage of the first document.
        let chosen = select(&[passages("budget.txt", "42\n\n43")], &k);
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].text, "42");
        assert!(select(&[], &k).is_empty());
    }
}
