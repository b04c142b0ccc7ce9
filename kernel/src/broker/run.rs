//! One request's run, from its socket's point of view: wait for a slot, ask the provider, and
//! stream the answer to the caller alone, one JSON line per event. The stream ends with one
//! `done` or `error`, then the socket closes. The caller closing its end, `Cancel`, or its task
//! ending stop the run at once: the provider's stream is dropped (its connection closed, so the
//! server stops generating), the slot freed, the usage so far counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentos_data::{ModelSpend, ModelUsage};
use agentos_dbus_interfaces::chat_pipe::Taken;
use agentos_dbus_interfaces::inference::{self as wire, error_kind};
use agentos_models::{ChatEvent, ModelError, OnSent, Provider};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use super::budget::{DAY_MS, HOUR_MS};
use super::catalog::Route;
use super::convert::{self, Events, Signatures};
use super::scheduler::{Finished, RequestId};
use super::service::{Broker, Go, LiveRun, Unsettled};
use super::usage::{Price, Usage};
use super::usage_writer::{UsageWriter, Used};
use crate::clock::Clock;
use crate::sync::lock;

/// How long a caller may leave the stream unread (its socket full) before the request is
/// canceled and its slot freed.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// Whose use a request is counted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `agent`, `app` or `host`.
    pub kind: &'static str,
    pub principal: String,
    /// The app an agent works for (its task's tree was started by that app).
    pub app: Option<String>,
    /// The task it is made for (0: a bus caller's own request).
    pub task: u64,
    /// Who started the task's tree (the principal itself for a bus caller).
    pub owner: String,
}

impl Account {
    /// The rows one finished request adds to (`cost_micros` `None`: its price is not known).
    pub fn rows(&self, usage: Usage, millis: u64, cost_micros: Option<u64>) -> Vec<ModelUsage> {
        let row = |kind: &str, who: &str, owner: &str| ModelUsage {
            kind: kind.to_string(),
            who: who.to_string(),
            owner: owner.to_string(),
            requests: 1,
            input_tokens: usage.tokens_in,
            output_tokens: usage.tokens_out,
            millis,
            cost_micros: cost_micros.unwrap_or(0),
            unpriced: u64::from(cost_micros.is_none()),
        };
        let mut rows = vec![row(self.kind, &self.principal, &self.principal)];
        if let Some(app) = &self.app {
            rows.push(row("app", app, app));
        }
        if self.task != 0 {
            rows.push(row("task", &self.task.to_string(), &self.owner));
        }
        rows
    }

    /// What one finished request, admitted at `admitted`, adds to the budget windows of that
    /// time of the principals it was charged to (the principal, and the app it works for).
    pub fn spent(&self, tokens: u64, admitted: u64) -> Vec<ModelSpend> {
        let (hour, day) = (admitted / HOUR_MS, admitted / DAY_MS);
        std::iter::once(&self.principal)
            .chain(self.app.iter().filter(|a| **a != self.principal))
            .map(|p| ModelSpend {
                principal: p.clone(),
                hour,
                hour_tokens: tokens,
                day,
                day_tokens: tokens,
            })
            .collect()
    }
}

/// Everything a run needs.
pub struct Job {
    pub id: RequestId,
    /// Told when the provider's request has left (and the caller was told it started).
    pub on_sent: Option<OnSent>,
    /// The line that says the request was taken ([`Taken`]), written first: for a caller
    /// that sent its request on the chat pipe (a `Chat` caller has its reply instead).
    pub taken: Option<String>,
    pub route: Route,
    pub client: Provider,
    pub request: agentos_models::ChatRequest,
    pub events: Events,
    /// `None`: a remote model whose price is not known (its use is counted as unpriced).
    pub price: Option<Price>,
    /// The prompt's tokens, estimated (counted when the provider reports none).
    pub prompt_tokens: u64,
    pub account: Account,
    /// Counts this run among its principal's until it returns.
    pub live: LiveRun,
}

/// What a run came to.
#[derive(Debug)]
enum Ended {
    Done(String),
    Failed(ModelError),
    Canceled,
    /// The caller closed its socket or stopped reading it.
    CallerGone,
}

/// What a run used, as far as it went.
#[derive(Debug, Default)]
struct Tally {
    /// The request reached the provider (one that never did used nothing; one that did may
    /// have cost its prompt, answered or not).
    answered: bool,
    reported: Option<agentos_models::Usage>,
    output_bytes: u64,
}

impl Tally {
    fn usage(&self, prompt_tokens: u64) -> Usage {
        match self.reported {
            Some(u) => Usage {
                tokens_in: u.input_tokens,
                tokens_out: u.output_tokens,
            },
            None if self.answered => Usage {
                tokens_in: prompt_tokens,
                tokens_out: self.output_bytes.div_ceil(4),
            },
            None => Usage::default(),
        }
    }
}

/// The answer's socket, as the run writes it.
struct Out {
    half: tokio::net::unix::OwnedWriteHalf,
    /// A line was left part written (its write was stopped or failed): nothing more may follow.
    torn: bool,
}

impl Out {
    /// The first lines on the socket: they fit at once (the socket is new and empty), or the
    /// caller is not reading it at all (a socket it shares, kept full), and then it is taken as
    /// gone, with nothing waiting on it. False then.
    fn write_now(&mut self, lines: &str) -> bool {
        let bytes = lines.as_bytes();
        if self.torn {
            return false;
        }
        if bytes.is_empty() {
            return true;
        }
        // Straight to the socket: the runtime has not seen a new socket writable yet, and
        // its `try_write` would not even try.
        let socket: &UnixStream = self.half.as_ref();
        let flags = rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL;
        match rustix::net::send(socket, bytes, flags) {
            Ok(n) if n == bytes.len() => true,
            Ok(_) => {
                self.torn = true;
                false
            }
            Err(_) => false,
        }
    }

    /// Write one event; false when the caller is gone or stopped reading.
    async fn send(&mut self, event: &wire::ChatEvent) -> bool {
        self.write(&event.to_line()).await
    }

    /// Write lines; false when the caller is gone or stopped reading (for [`WRITE_STALL`]).
    async fn write(&mut self, lines: &str) -> bool {
        if self.torn {
            return false;
        }
        let bytes = lines.as_bytes();
        // Nearly every write fits in the socket at once, with no timer set for it.
        let written = match self.half.try_write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => return false,
        };
        if written == bytes.len() {
            return true;
        }
        // Torn until the rest is written: if this is stopped (the run canceled) or fails, no
        // line may follow the part written.
        self.torn = true;
        let done = matches!(
            tokio::time::timeout(WRITE_STALL, self.half.write_all(&bytes[written..])).await,
            Ok(Ok(()))
        );
        self.torn = !done;
        done
    }
}

/// Tell the caller at the other end of `socket` (sent on the chat pipe) that its request was
/// refused, and why: the first line on it, written if it fits now (see [`Out::write_now`]).
pub fn refuse(socket: UnixStream, e: &agentos_dbus_interfaces::Error) {
    let (_input, half) = socket.into_split();
    let mut out = Out { half, torn: false };
    out.write_now(&Taken::refused(e).to_line());
}

/// Returns when the caller has closed its end (what it writes is read and dropped).
async fn gone(input: &mut OwnedReadHalf) {
    let mut buf = [0u8; 256];
    loop {
        match input.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn canceled(message: &str) -> wire::ChatEvent {
    wire::ChatEvent::Error {
        kind: error_kind::CANCELED.into(),
        message: message.into(),
    }
}

/// Ask the provider and relay its events until the reply is done (its `done` not yet sent).
/// `head` (the `started` line, after the taken line if there is one) is written once the
/// provider's request has left, or failed to: telling the caller is not in its way. `head_sent`
/// says whether it was.
#[allow(clippy::too_many_arguments)]
async fn relay(
    client: &Provider,
    request: &agentos_models::ChatRequest,
    head: String,
    head_sent: &mut bool,
    on_sent: Option<OnSent>,
    events: &mut Events,
    signatures: &Mutex<Signatures>,
    out: &mut Out,
    tally: &mut Tally,
) -> Ended {
    let (sent, left) = oneshot::channel();
    let mut asked = std::pin::pin!(client.chat_telling(request, Some(sent)));
    let early = tokio::select! {
        biased;
        answer = &mut asked => Some(answer),
        _ = left => None,
    };
    // It reached the provider, unless it failed on the way (then it used nothing).
    tally.answered = !matches!(early, Some(Err(_)));
    if !out.write_now(&head) {
        return Ended::CallerGone;
    }
    *head_sent = true;
    if let Some(tell) = on_sent {
        let _ = tell.send(());
    }
    let answer = match early {
        Some(answer) => answer,
        None => asked.await,
    };
    let mut stream = match answer {
        Ok(s) => s,
        Err(e) => {
            // Refused (a status, a wrong key) costs nothing; waited on in vain, its prompt may.
            tally.answered = matches!(e, ModelError::Timeout { .. });
            return Ended::Failed(e);
        }
    };
    tally.answered = true;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(ChatEvent::Done { finish }) => return Ended::Done(convert::finish_word(&finish)),
            Ok(e) => e,
            Err(e) => return Ended::Failed(e),
        };
        match &event {
            ChatEvent::Usage(u) => tally.reported = Some(*u),
            ChatEvent::TextDelta(t) => tally.output_bytes += t.len() as u64,
            ChatEvent::ToolCallArguments { fragment, .. } => {
                tally.output_bytes += fragment.len() as u64;
            }
            _ => {}
        }
        let converted = events.convert(event, &mut lock(signatures));
        if let Some(e) = converted {
            if !out.send(&e).await {
                return Ended::CallerGone;
            }
        }
    }
    Ended::Failed(ModelError::Protocol {
        detail: "the reply ended before it was complete".into(),
    })
}

/// Count a finished request in the store, off the kernel's thread (done before the caller reads
/// the stream's end, so usage listed after an answer includes it).
async fn record(
    writer: Option<&Arc<UsageWriter>>,
    job: &Job,
    finished: Option<Finished>,
    usage: Usage,
    now: u64,
) {
    let (Some(writer), Some(finished)) = (writer, finished) else {
        return;
    };
    let used = Used {
        rows: job.account.rows(
            usage,
            finished.record.busy_ms,
            job.price.map(|p| p.cost_micros(usage)),
        ),
        // In the windows it was charged in: those of when it was admitted.
        spent: job.account.spent(
            usage.tokens(),
            now.saturating_sub(finished.record.busy_ms + finished.record.waited_ms),
        ),
    };
    if let Err(e) = writer.add(used).await {
        tracing::error!(error = %e, "cannot record model usage");
    }
}

/// Run `job` for the caller at the other end of `socket`, once `go` says it may start.
pub async fn run(
    broker: Arc<Broker>,
    clock: Arc<dyn Clock>,
    mut job: Job,
    mut go: oneshot::Receiver<Go>,
    socket: UnixStream,
) {
    let mut unsettled = Unsettled::new(Arc::clone(&broker), job.id, Arc::clone(&clock));
    let (mut input, half) = socket.into_split();
    let mut out = Out { half, torn: false };
    // The taken line comes first, whatever comes after it (`Taken`).
    let mut taken = job.taken.take().unwrap_or_default();
    let mut caller_gone = false;
    let started = match go.try_recv() {
        Ok(go) => Some(go),
        Err(oneshot::error::TryRecvError::Closed) => None,
        Err(oneshot::error::TryRecvError::Empty) => {
            // It waits for a slot: the caller hears at once that it was taken.
            if out.write_now(&std::mem::take(&mut taken)) {
                tokio::select! {
                    r = &mut go => r.ok(),
                    () = gone(&mut input) => {
                        caller_gone = true;
                        None
                    }
                }
            } else {
                caller_gone = true;
                None
            }
        }
    };
    let Some((_start, cancel)) = started else {
        // Canceled while it waited (its sender dropped), or the caller left: it never starts.
        broker.cancel(job.id, clock.now_ms());
        if let Ok((start, _)) = go.try_recv() {
            broker.finish(start.id, Usage::default(), clock.now_ms());
        }
        unsettled.settled();
        if !caller_gone {
            taken.push_str(&canceled("the request was canceled before it started").to_line());
            let _ = out.write(&taken).await;
        }
        return;
    };
    let started = wire::ChatEvent::Started {
        provider: job.route.provider.clone(),
        model: job.route.model.clone(),
        local: job.route.local,
    };
    // The taken line not written yet goes with the started line; if the run is stopped before
    // its request left, it goes before the last event instead.
    let head = format!("{taken}{}", started.to_line());
    let mut tally = Tally::default();
    let mut head_sent = false;
    let ended = tokio::select! {
        e = relay(&job.client, &job.request, head, &mut head_sent, job.on_sent.take(), &mut job.events, &broker.signatures, &mut out, &mut tally) => e,
        () = cancel.notified() => Ended::Canceled,
        () = gone(&mut input) => Ended::CallerGone,
    };
    // The provider's stream is dropped by now: its connection is closed. Free the slot first.
    let usage = tally.usage(job.prompt_tokens);
    let now = clock.now_ms();
    let finished = broker.finish(job.id, usage, now);
    unsettled.settled();
    record(broker.usage_writer(), &job, finished, usage, now).await;
    // Whether the provider answered, for the catalog to say.
    if let Ended::Done(_) | Ended::Failed(_) = &ended {
        let reached = !matches!(&ended, Ended::Failed(ModelError::Unreachable { .. }));
        broker.answered(&job.route.provider, reached);
    }
    let last = match ended {
        Ended::Done(finish) => wire::ChatEvent::Done { finish },
        Ended::Failed(e) => convert::error_event(&job.route.provider, &e),
        Ended::Canceled => canceled("the request was canceled"),
        Ended::CallerGone => return,
    };
    let mut tail = if head_sent { String::new() } else { taken };
    tail.push_str(&last.to_line());
    let _ = out.write(&tail).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_for_its_agent_its_app_and_its_task() {
        let a = Account {
            kind: "agent",
            principal: "docs".into(),
            app: Some("org.example.App".into()),
            task: 12,
            owner: "org.example.App".into(),
        };
        let usage = Usage {
            tokens_in: 3,
            tokens_out: 4,
        };
        let rows = a.rows(usage, 50, Some(7));
        let keys: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.kind.as_str(), r.who.as_str(), r.owner.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("agent", "docs", "docs"),
                ("app", "org.example.App", "org.example.App"),
                ("task", "12", "org.example.App")
            ]
        );
        assert!(rows.iter().all(|r| r.input_tokens == 3
            && r.millis == 50
            && r.cost_micros == 7
            && r.unpriced == 0));
        // A model of no known price: no cost, one unpriced request on every row.
        assert!(a
            .rows(usage, 50, None)
            .iter()
            .all(|r| r.cost_micros == 0 && r.unpriced == 1 && r.requests == 1));
        // Its budget spending: the agent's and the app's, in the windows it was admitted in.
        let admitted = 30 * DAY_MS + 5 * HOUR_MS + 3_599_000;
        let spent: Vec<(String, u64, u64, u64)> = a
            .spent(7, admitted)
            .into_iter()
            .map(|s| (s.principal, s.hour, s.day, s.hour_tokens))
            .collect();
        assert_eq!(
            spent,
            [
                ("docs".into(), 30 * 24 + 5, 30, 7),
                ("org.example.App".into(), 30 * 24 + 5, 30, 7)
            ]
        );
        let host = Account {
            kind: "host",
            principal: "host".into(),
            app: None,
            task: 0,
            owner: "host".into(),
        };
        assert_eq!(host.rows(usage, 1, Some(0)).len(), 1);
    }

    #[tokio::test]
    async fn lines_larger_than_the_socket_holds_arrive_whole_and_a_gone_caller_is_seen() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut out = out_on(ours);
        // Far more than the socket's buffer: the first try writes part, the rest waits.
        let lines: String = (0..40_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
        let reader = tokio::spawn(async move {
            let mut theirs = theirs;
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        assert!(out.write(&lines).await);
        assert!(out.write("").await, "nothing to write is written");
        drop(out);
        assert_eq!(reader.await.unwrap(), lines.as_bytes());

        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut out = out_on(ours);
        drop(theirs);
        assert!(!out.write("{}\n").await, "the caller closed its end");
    }

    fn out_on(socket: UnixStream) -> Out {
        Out {
            half: socket.into_split().1,
            torn: false,
        }
    }

    #[tokio::test]
    async fn a_socket_kept_full_is_a_caller_gone_and_a_torn_line_is_never_followed() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut out = out_on(ours);
        // Fill the socket, as a caller that shares it among requests and never reads would.
        let chunk = "x".repeat(64 * 1024);
        while out.half.try_write(chunk.as_bytes()).is_ok_and(|n| n > 0) {}
        assert!(
            !out.write_now("{\"accepted\":{\"id\":1}}\n"),
            "nothing waits on it"
        );
        // A write stopped part way (a run canceled) leaves the line torn: nothing follows.
        let mut torn = Box::pin(out.write("{\"type\":\"text\"}\n"));
        assert!(futures_util::poll!(torn.as_mut()).is_pending());
        drop(torn);
        assert!(out.torn);
        let mut theirs = theirs;
        let mut sink = vec![0u8; 1 << 20];
        let _ = tokio::time::timeout(Duration::from_millis(100), theirs.read(&mut sink)).await;
        assert!(!out.write("{\"type\":\"done\"}\n").await);
        assert!(!out.write_now("{}\n"));
    }

    #[test]
    fn what_was_used_is_reported_or_counted() {
        let mut t = Tally::default();
        assert_eq!(t.usage(100), Usage::default());
        t.answered = true;
        t.output_bytes = 9;
        assert_eq!(
            t.usage(100),
            Usage {
                tokens_in: 100,
                tokens_out: 3
            }
        );
        t.reported = Some(agentos_models::Usage {
            input_tokens: 7,
            output_tokens: 8,
            estimated: false,
        });
        assert_eq!(t.usage(100).tokens(), 15);
    }
}
