//! `agentos-example-agent`: the smallest useful agent an app author would ship as a Flatpak.
//! It registers itself with the kernel under its app id (Flatpak sets `FLATPAK_ID`; the kernel
//! checks it against the sandbox's `/.flatpak-info`), stays registered across kernel restarts,
//! and answers goals by counting the words, lines and characters of the text it is given.

use agentos_sdk::{Agent, Outcome, Task};

struct Counter;

/// Words, lines and characters of a text.
fn count(text: &str) -> (usize, usize, usize) {
    (
        text.split_whitespace().count(),
        text.lines().count(),
        text.chars().count(),
    )
}

impl Agent for Counter {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let _ = task.progress(0.5, "counting").await;
        let (words, lines, chars) = count(&task.goal);
        Ok(Outcome::text(format!(
            "{words} words, {lines} lines, {chars} characters"
        )))
    }
}

#[tokio::main]
async fn main() {
    let id = std::env::var("FLATPAK_ID").unwrap_or_else(|_| "host".into());
    if let Err(e) = agentos_sdk::stay_registered(Counter, &id, None).await {
        eprintln!("agentos-example-agent: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        assert_eq!(super::count("two words\nand more"), (4, 2, 18));
        assert_eq!(super::count(""), (0, 0, 0));
    }
}
