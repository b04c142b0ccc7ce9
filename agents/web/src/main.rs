//! `agentos-agent-web`: fetches a web page through the kernel's `web.fetch` and extracts its
//! readable text. Goal: a URL, optionally preceded by "fetch".

mod extract;

use agentos_sdk::{Agent, Outcome, Task};

struct Web;

impl Agent for Web {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let url = task
            .goal
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .ok_or("the goal contains no http(s) URL")?
            .to_string();
        let _ = task.progress(0.1, &format!("fetching {url}")).await;
        let (status, content_type, body) = task.fetch(&url).await.map_err(|e| e.message())?;
        if !(200..300).contains(&status) {
            return Err(format!("{url} answered HTTP {status}"));
        }
        let _ = task.progress(0.7, "extracting the text").await;
        let raw = String::from_utf8_lossy(&body);
        let (title, text) = if content_type.contains("html") || raw.trim_start().starts_with('<') {
            extract::html_to_text(&raw)
        } else {
            (String::new(), raw.into_owned())
        };
        let preview: String = text.chars().take(500).collect();
        let head = if title.is_empty() {
            url.clone()
        } else {
            format!("{title} ({url})")
        };
        Outcome::text(format!("{head}\n{preview}"))
            .with_artifact("page.txt", text.as_bytes())
            .map_err(|e| e.to_string())
    }
}

#[tokio::main]
async fn main() {
    agentos_sdk::run_or_exit(Web).await
}
