//! Answering a question from the documents: find the files that match it best, read them
//! (bounded), pick the passages that matter, and ask the model to answer from those alone.
//! Without a model, the documents that match best, and why there is no answer.

use crate::library::{walk, Found, Library};
use crate::model::{Model, ModelError};
use crate::prompt;
use crate::rank::{self, Passage};
use crate::search::{snippet, Match};

/// Most files read to rank them, bytes read of each, and documents whose passages compete.
const MAX_SCANNED: usize = 100;
const MAX_SCAN_BYTES: u64 = 64 * 1024;
const MAX_DOCUMENTS: usize = 3;

/// What the agent returns for a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The model's answer with its sources, and the passages it was given (`passages.txt`).
    Answered { text: String, passages: String },
    /// No document matches the question: a summary saying so, and no model asked.
    Nothing { text: String },
    /// No answer from a model: a summary saying why (naming the best matches), and the best
    /// matches with a snippet each.
    Fallback { text: String, matches: String },
}

impl Reply {
    /// The task's outcome: an answer, or that nothing matched, completes it; a model that gave
    /// no answer fails it with the summary (a task completed with "I could not answer" would
    /// count as a good source for an agent that delegated to this one).
    pub fn outcome(self) -> Result<agentos_sdk::Outcome, String> {
        let with = |text: String, name: &str, bytes: &str| {
            agentos_sdk::Outcome::text(text)
                .with_artifact(name, bytes.as_bytes())
                .map_err(|e| e.to_string())
        };
        match self {
            Reply::Answered { text, passages } => with(text, "passages.txt", &passages),
            Reply::Nothing { text } => Ok(agentos_sdk::Outcome::text(text)),
            Reply::Fallback { text, .. } => Err(text),
        }
    }
}

/// A file read for ranking.
struct Read {
    path: String,
    text: String,
    score: usize,
}

/// Answer `question` from the documents beneath `folder`.
pub async fn answer(
    library: &impl Library,
    model: &impl Model,
    folder: &str,
    question: &str,
) -> Result<Reply, String> {
    let keywords = rank::keywords(question);
    let found = walk(library, folder).await?;
    let ranked = rank_documents(library, folder, found, &keywords).await;
    if ranked.is_empty() {
        return Ok(Reply::Nothing {
            text: format!("No document in {folder} is about {question:?}."),
        });
    }
    let documents: Vec<Vec<Passage>> = ranked
        .iter()
        .take(MAX_DOCUMENTS)
        .map(|d| rank::passages(&d.path, &d.text))
        .collect();
    let chosen = rank::select(&documents, &keywords);
    library.progress(0.8, "asking the model").await;
    match model.answer(&prompt::request(question, &chosen)).await {
        Ok(answer) if !answer.trim().is_empty() => Ok(Reply::Answered {
            text: prompt::with_sources(&answer, &prompt::sources(folder, &chosen, &answer)),
            passages: prompt::labelled(&chosen),
        }),
        Ok(_) => Ok(fallback(
            folder,
            &ranked,
            &keywords,
            "the model gave an empty answer",
        )),
        Err(ModelError::Canceled(m)) => Err(m),
        Err(ModelError::NoModel(m)) => Ok(fallback(
            folder, &ranked, &keywords,
            // The kernel's message says there is none and how to add one.
            &m,
        )),
        Err(ModelError::Failed(m)) => Ok(fallback(
            folder,
            &ranked,
            &keywords,
            &format!("the model failed: {m}"),
        )),
    }
}

/// The files that match `keywords`, best first: those whose names match are read first, at
/// most [`MAX_SCANNED`] files and [`MAX_SCAN_BYTES`] of each; binary files count by name only.
async fn rank_documents(
    library: &impl Library,
    folder: &str,
    mut found: Vec<Found>,
    keywords: &[String],
) -> Vec<Read> {
    let mut by_name: Vec<(usize, Found)> = found
        .drain(..)
        .map(|f| (rank::score(&f.name, keywords), f))
        .collect();
    by_name.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.path.cmp(&b.1.path)));
    let total = by_name.len().min(MAX_SCANNED);
    let mut read = Vec::new();
    for (i, (name_score, file)) in by_name.into_iter().take(MAX_SCANNED).enumerate() {
        library
            .progress(
                0.1 + 0.6 * i as f64 / total.max(1) as f64,
                &format!("reading {}", file.path),
            )
            .await;
        let text = match library.read(folder, &file.path, MAX_SCAN_BYTES).await {
            Ok(bytes) if !bytes.iter().take(1024).any(|b| *b == 0) => {
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => String::new(),
        };
        // A name that matches counts twice: it says what the whole file is about.
        let score = 2 * name_score + rank::score(&text, keywords);
        if score > 0 {
            read.push(Read {
                path: file.path,
                text,
                score,
            });
        }
    }
    read.sort_by(|a, b| b.score.cmp(&a.score).then(a.path.cmp(&b.path)));
    read
}

/// Today's answer without a model: the documents that match best, and the reason.
fn fallback(folder: &str, ranked: &[Read], keywords: &[String], why: &str) -> Reply {
    let matches: Vec<Match> = ranked
        .iter()
        .map(|d| Match {
            path: d.path.clone(),
            snippet: snippet(&d.text, keywords),
        })
        .collect();
    let (_, report) = crate::search::summarize(folder, "", &matches);
    let names: Vec<&str> = matches.iter().map(|m| m.path.as_str()).collect();
    Reply::Fallback {
        text: format!(
            "I could not answer: {}. The documents in {folder} that match best: {}",
            why.trim_end_matches('.'),
            names.join(", ")
        ),
        matches: report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::memory::Memory;
    use agentos_sdk::{ChatMessage, ChatRequest};
    use std::sync::Mutex;

    /// A model that replies from a script and keeps what it was asked.
    struct Scripted {
        reply: Result<String, ModelError>,
        asked: Mutex<Vec<ChatRequest>>,
    }

    impl Scripted {
        fn new(reply: Result<&str, ModelError>) -> Scripted {
            Scripted {
                reply: reply.map(str::to_string),
                asked: Mutex::new(Vec::new()),
            }
        }

        fn prompt(&self) -> String {
            let asked = self.asked.lock().unwrap();
            match asked.first().map(|r| &r.messages[1]) {
                Some(ChatMessage::User { content }) => content.clone(),
                other => panic!("{other:?}"),
            }
        }
    }

    impl Model for Scripted {
        async fn answer(&self, request: &ChatRequest) -> Result<String, ModelError> {
            self.asked.lock().unwrap().push(request.clone());
            self.reply.clone()
        }
    }

    fn library() -> Memory {
        Memory::new(&[
            ("budget.txt", "the budget for 2026 is 42\n"),
            (
                "notes/meeting.md",
                "# Notes\n\nThe budget meeting is on Monday.\n\nLunch was fine.",
            ),
            ("recipes/soup.txt", "carrots and leeks"),
            ("photo.png", "\0\0binary budget"),
        ])
    }

    #[tokio::test]
    async fn answers_from_the_matching_passages_and_cites_them() {
        let lib = library();
        let model = Scripted::new(Ok("The budget for 2026 is 42 [budget.txt]."));
        let reply = answer(&lib, &model, "/home/u/Docs", "What is the budget for 2026?")
            .await
            .unwrap();
        let Reply::Answered { text, passages } = reply else {
            panic!("{reply:?}")
        };
        assert!(text.starts_with("The budget for 2026 is 42 [budget.txt]."));
        // It cited one of the two files it was given: that one is the source.
        assert!(
            text.ends_with("\n\nSources:\n- /home/u/Docs/budget.txt"),
            "{text}"
        );
        // The model saw the relevant passages, labelled, and nothing unrelated.
        let prompt = model.prompt();
        assert!(prompt.contains("<passage file=\"budget.txt\" trust=\"untrusted\">\nthe budget for 2026 is 42\n</passage>"), "{prompt}");
        assert!(prompt.contains("The budget meeting is on Monday."));
        assert!(
            !prompt.contains("Lunch") && !prompt.contains("carrots") && !prompt.contains("binary"),
            "{prompt}"
        );
        assert!(prompt.ends_with(&format!(
            "Question: What is the budget for 2026?\n{}",
            prompt::REMINDER
        )));
        assert!(passages.contains("budget.txt") && passages.contains("Monday"));
        let asked = model.asked.lock().unwrap();
        assert_eq!(asked.len(), 1);
        assert!(asked[0].tools.is_empty());
    }

    #[tokio::test]
    async fn without_a_model_it_lists_the_best_documents_and_says_why() {
        let lib = library();
        let model = Scripted::new(Err(ModelError::NoModel(
            "no AI model is available: start llama-server or add one with agentctl models add."
                .into(),
        )));
        let reply = answer(&lib, &model, "/d", "When is the budget meeting?")
            .await
            .unwrap();
        let Reply::Fallback { text, matches } = reply else {
            panic!("{reply:?}")
        };
        assert!(
            text.starts_with("I could not answer: no AI model is available: start llama-server or add one with agentctl models add. The documents in /d"),
            "{text}"
        );
        // The meeting notes match two words, the budget one: best first.
        assert!(
            text.ends_with("match best: notes/meeting.md, budget.txt"),
            "{text}"
        );
        assert!(matches.starts_with("notes/meeting.md: The budget meeting is on Monday.\n"));
    }

    #[tokio::test]
    async fn other_model_failures_fall_back_and_cancellation_fails() {
        let lib = library();
        let failed = Scripted::new(Err(ModelError::Failed("over budget".into())));
        let reply = answer(&lib, &failed, "/d", "budget?").await.unwrap();
        assert!(
            matches!(&reply, Reply::Fallback { text, .. } if text.contains("the model failed: over budget")),
            "{reply:?}"
        );
        let canceled = Scripted::new(Err(ModelError::Canceled("canceled".into())));
        assert_eq!(
            answer(&lib, &canceled, "/d", "budget?").await,
            Err("canceled".to_string())
        );
    }

    #[tokio::test]
    async fn a_model_that_gave_no_answer_fails_the_task_and_an_answer_completes_it() {
        let lib = library();
        let failed = Scripted::new(Err(ModelError::Failed("over budget".into())));
        let reply = answer(&lib, &failed, "/d", "budget?").await.unwrap();
        let why = reply.outcome().unwrap_err();
        assert!(
            why.starts_with("I could not answer: the model failed: over budget."),
            "{why}"
        );
        let fine = Scripted::new(Ok("It is 42 [budget.txt]."));
        let reply = answer(&lib, &fine, "/d", "budget?").await.unwrap();
        let outcome = reply.outcome().unwrap();
        assert!(outcome.result.starts_with("It is 42"));
        assert_eq!(outcome.artifacts[0].0, "passages.txt");
        let none = Scripted::new(Ok("made up"));
        let reply = answer(&lib, &none, "/d", "Who won the 1998 world cup?")
            .await
            .unwrap();
        assert!(reply.outcome().unwrap().result.starts_with("No document"));
    }

    #[tokio::test]
    async fn nothing_relevant_asks_no_model() {
        let lib = library();
        let model = Scripted::new(Ok("made up"));
        let reply = answer(&lib, &model, "/d", "Who won the 1998 world cup?")
            .await
            .unwrap();
        assert!(
            matches!(&reply, Reply::Nothing { text } if text.starts_with("No document in /d is about")),
            "{reply:?}"
        );
        assert!(model.asked.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn reads_are_bounded() {
        let files: Vec<(String, String)> = (0..MAX_SCANNED + 20)
            .map(|i| (format!("f{i:03}.txt"), "budget ".repeat(20_000)))
            .collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let lib = Memory::new(&refs);
        let model = Scripted::new(Ok("yes"));
        answer(&lib, &model, "/d", "budget?").await.unwrap();
        assert_eq!(lib.reads.lock().unwrap().len(), MAX_SCANNED);
        let prompt = model.prompt();
        assert!(
            prompt.len() < 4 * (rank::MAX_PASSAGE_TOKENS + 100),
            "{}",
            prompt.len()
        );
    }
}
