//! `agentos-agent-web`: fetches a web page through the kernel's `web.fetch`, and answers
//! questions about it. Goal: a URL, optionally after "fetch", gives the page's readable text; a
//! URL with a question ("What does https://example.org say about prices?") is answered by a
//! model through the kernel's broker from the page's text, citing the URL.

pub mod answer;
pub mod broker;
pub mod excerpt;
pub mod extract;
pub mod goal;
pub mod model;
pub mod prompt;

use agentos_sdk::{Agent, Outcome, Task};

use crate::answer::Page;
use crate::broker::Broker;

/// The agent.
pub struct Web;

impl Agent for Web {
    async fn run(&self, task: Task) -> Result<Outcome, String> {
        let goal = goal::parse(&task.goal)?;
        let url = goal.url;
        let _ = task.progress(0.1, &format!("fetching {url}")).await;
        let (status, content_type, body) = task.fetch(&url).await.map_err(|e| e.message())?;
        if !(200..300).contains(&status) {
            return Err(format!("{url} answered HTTP {status}"));
        }
        let _ = task.progress(0.5, "extracting the text").await;
        let raw = String::from_utf8_lossy(&body);
        let (title, text) = if content_type.contains("html") || raw.trim_start().starts_with('<') {
            extract::html_to_text(&raw)
        } else {
            (String::new(), raw.into_owned())
        };
        let page = Page {
            url: &url,
            title: &title,
            text: &text,
        };
        let result = match &goal.question {
            Some(question) => {
                let _ = task.progress(0.7, "asking the model").await;
                answer::answer(&Broker(&task), &page, question).await?
            }
            None => page.preview(),
        };
        Outcome::text(result)
            .with_artifact("page.txt", text.as_bytes())
            .map_err(|e| e.to_string())
    }
}
