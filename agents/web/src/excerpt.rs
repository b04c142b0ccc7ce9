//! The part of a page a model reads: all of it when it is short, else its beginning and the
//! pieces that share most words with the question, within a token budget, in page order.

/// Most tokens of page text given to the model, and the longest piece it is cut into.
pub const MAX_PAGE_TOKENS: usize = 900;
const MAX_PIECE_CHARS: usize = 500;

pub use agentos_sdk::words::tokens;
use agentos_sdk::words::words;

/// What a question is about: its words, without URLs and common words, each once.
pub fn keywords(question: &str) -> Vec<String> {
    let without_urls: Vec<&str> = question
        .split_whitespace()
        .filter(|w| !w.starts_with("http://") && !w.starts_with("https://"))
        .collect();
    agentos_sdk::words::keywords(&without_urls.join(" "), &["page", "site"])
}

/// Keywords present in `text`, each counted once.
fn score(text: &str, keywords: &[String]) -> usize {
    let present: Vec<String> = words(text).collect();
    keywords.iter().filter(|k| present.contains(k)).count()
}

/// `text` in pieces of whole lines (long lines cut), each at most [`MAX_PIECE_CHARS`].
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        for part in chars.chunks(MAX_PIECE_CHARS) {
            let part: String = part.iter().collect();
            if !current.is_empty()
                && current.chars().count() + part.chars().count() + 1 > MAX_PIECE_CHARS
            {
                out.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(&part);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The text to give the model for `question`, and whether some of the page was left out.
pub fn excerpt(text: &str, question: &str) -> (String, bool) {
    if tokens(text) <= MAX_PAGE_TOKENS {
        return (text.to_string(), false);
    }
    let pieces = pieces(text);
    if pieces.is_empty() {
        // Only line breaks: nothing worth reading.
        return (String::new(), true);
    }
    let keywords = keywords(question);
    // The beginning always (what the page is); then the best matches; then what follows the
    // beginning, while the budget lasts.
    let mut order: Vec<usize> = (1..pieces.len()).collect();
    order.sort_by_key(|i| (std::cmp::Reverse(score(&pieces[*i], &keywords)), *i));
    let mut chosen = vec![0];
    let mut budget = MAX_PAGE_TOKENS.saturating_sub(tokens(&pieces[0]));
    for i in order {
        let cost = tokens(&pieces[i]) + 1;
        if cost <= budget {
            budget -= cost;
            chosen.push(i);
        } else if score(&pieces[i], &keywords) == 0 {
            // What follows the beginning stays in one run: no stray piece from further on.
            break;
        }
    }
    chosen.sort_unstable();
    let mut out = String::new();
    let mut last = None;
    for i in chosen {
        if let Some(l) = last {
            out.push_str(if i == l + 1 { "\n" } else { "\n…\n" });
        }
        out.push_str(&pieces[i]);
        last = Some(i);
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_leave_out_the_url_and_common_words() {
        assert_eq!(
            keywords("What does https://example.org/tea say about the prices of tea?"),
            ["price", "tea"]
        );
    }

    #[test]
    fn short_pages_are_given_whole() {
        assert_eq!(
            excerpt("Title\nHello", "anything?"),
            ("Title\nHello".to_string(), false)
        );
    }

    #[test]
    fn long_pages_keep_the_beginning_and_the_matching_parts() {
        let filler = "lorem ipsum dolor sit amet ".repeat(18);
        let mut page = String::from("Tea shop\nWelcome to our shop.");
        for i in 0..100 {
            page.push('\n');
            page.push_str(&filler);
            if i == 70 {
                page.push_str("\nThe price of green tea is 4 euros.");
            }
        }
        let (text, cut) = excerpt(&page, "What is the price of green tea?");
        assert!(cut);
        assert!(text.starts_with("Tea shop\nWelcome to our shop."), "{text}");
        assert!(text.contains("The price of green tea is 4 euros."));
        assert!(tokens(&text) <= MAX_PAGE_TOKENS + 10, "{}", tokens(&text));
        assert!(text.contains("\n…\n"));
        // No word matches: the beginning of the page, as much as fits.
        let (text, _) = excerpt(&page, "zebra?");
        assert!(text.starts_with("Tea shop"));
        assert!(!text.contains("green tea"));
        assert!(tokens(&text) <= MAX_PAGE_TOKENS + 10);
        // One enormous line is cut, not passed whole; multibyte text cuts cleanly.
        let (text, cut) = excerpt(&"é".repeat(100_000), "q");
        assert!(cut && tokens(&text) <= MAX_PAGE_TOKENS + 10);
    }

    #[test]
    fn a_long_page_of_empty_lines_gives_nothing_and_does_not_panic() {
        assert_eq!(excerpt(&"\n".repeat(4000), "q"), (String::new(), true));
        assert_eq!(excerpt(&"\r\n".repeat(4000), "q"), (String::new(), true));
    }
}
