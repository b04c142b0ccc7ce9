//! Model inference through the kernel, for clients and agents: [`ChatStream`] reads the events
//! of one answer (one JSON object per line, see `agentos_dbus_interfaces::inference`) from the
//! socket `Models1.Chat` or `Host1.Chat` returned, and [`Client`]'s `Models1` calls.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use agentos_client::{ChatMessage, ChatRequest, Client};
//!
//! let client = Client::new().await?;
//! let mut request = ChatRequest::new(vec![ChatMessage::user("Say hello")]);
//! request.interactive = true;
//! let (_id, stream) = client.chat(&request).await?;
//! let reply = stream.collect().await?;
//! println!("{} ({}/{})", reply.text, reply.provider, reply.model);
//! # Ok(())
//! # }
//! ```

use std::os::fd::OwnedFd;
use std::time::Duration;

use agentos_dbus_interfaces::chat_pipe::{Taken, MAX_PIPE_REQUEST};
use agentos_dbus_interfaces::inference::{error_kind, ChatEvent, ChatRequest, ToolCall};
use agentos_dbus_interfaces::proxies::Models1Proxy;
use agentos_dbus_interfaces::text::display_safe;
use agentos_dbus_interfaces::{Error, ModelInfo, UsageInfo};
use futures_util::Stream;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use zbus::proxy::CacheProperties;

use crate::client::Client;
use crate::error::{describe_zbus, ClientError};
use crate::pipe::PipeError;

/// How long [`Client::chat`] waits for the kernel to take a request: the kernel's default time
/// for the user to answer a prompt (120 s), and some.
pub const CHAT_CALL_TIMEOUT: Duration = Duration::from_secs(180);

/// Longest line of the event stream the reader accepts (a text piece or a whole tool call).
pub const MAX_EVENT_LINE: usize = 8 * 1024 * 1024;

/// Why a model's answer could not be had: the kernel refused the request, the stream broke, or
/// the model failed (an `error` event).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// The request is not one the kernel would take (checked before it is sent).
    #[error("{0}")]
    InvalidRequest(String),
    /// The kernel could not be reached or trusted.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The kernel refused the call (no model, no grant, over budget…); the message says why.
    #[error("{}", describe_error(.0))]
    Refused(Error),
    /// Reading the socket failed.
    #[error("reading the model's answer failed: {0}")]
    Io(#[from] std::io::Error),
    /// A line longer than [`MAX_EVENT_LINE`].
    #[error("the model's answer holds a line longer than {limit} bytes; the stream was dropped")]
    LineTooLong { limit: usize },
    /// A line that is not an event of the contract.
    #[error("the kernel sent a malformed event: {0}")]
    Malformed(String),
    /// The socket closed before a final `done` or `error` event.
    #[error("the kernel ended the model's answer early (the stream closed before it was done)")]
    EndedEarly,
    /// The model failed: `kind` is one of `inference::error_kind`, `message` is for people.
    #[error("{message}")]
    Model { kind: String, message: String },
}

impl ChatError {
    /// The `error_kind` of a model's failure, if that is what this is.
    pub fn kind(&self) -> Option<&str> {
        match self {
            ChatError::Model { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

impl From<Error> for ChatError {
    fn from(e: Error) -> Self {
        ChatError::Refused(e)
    }
}

/// An agent's failure to get an answer, as the named errors of the bus: a refusal as it came,
/// a model's failure by its kind, anything else as `Failed`.
impl From<ChatError> for Error {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Refused(e) => e,
            ChatError::InvalidRequest(m) => Error::InvalidArgument(m),
            ChatError::Model { kind, message } => match kind.as_str() {
                error_kind::CANCELED => Error::Canceled(message),
                error_kind::BUDGET | error_kind::RATE_LIMITED => Error::QuotaExceeded(message),
                error_kind::NO_MODEL => Error::NoModel(message),
                error_kind::TIMEOUT => Error::Timeout(message),
                _ => Error::Failed(message),
            },
            other => Error::Failed(other.to_string()),
        }
    }
}

fn describe_error(e: &Error) -> String {
    match e {
        Error::ZBus(z) => describe_zbus(z),
        other => other.message(),
    }
}

/// A whole answer, as [`ChatStream::collect`] gathers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The provider and model that served it (empty if the kernel never said).
    pub provider: String,
    pub model: String,
    /// Served on this machine.
    pub local: bool,
    /// The text, its pieces joined.
    pub text: String,
    /// The tools the model called, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens in, tokens out, and whether the kernel counted them (the server reported none).
    pub usage: Option<(u64, u64, bool)>,
    /// Why the model stopped (`inference::finish`, or the provider's own word).
    pub finish: String,
}

/// The events of one answer, read from the socket the kernel returned. Dropping the stream
/// closes the socket, which cancels the request and frees its slot.
///
/// [`next`](ChatStream::next) is cancel-safe: a partly read line is kept for the next call,
/// so it may be raced in `tokio::select!`.
pub struct ChatStream {
    id: Option<u64>,
    socket: Socket,
    /// The part of a line read so far.
    line: Vec<u8>,
    /// A final event was read, or the stream failed: nothing more comes.
    finished: bool,
}

enum Socket {
    /// Not yet registered with the runtime (done on first read, so that `from_fd` needs none).
    Pending(Option<OwnedFd>),
    Open(BufReader<UnixStream>),
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("id", &self.id)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    /// The stream on the socket `fd` (the `events` of `Models1.Chat` or `Host1.Chat`).
    pub fn from_fd(fd: OwnedFd) -> ChatStream {
        ChatStream {
            id: None,
            socket: Socket::Pending(Some(fd)),
            line: Vec::new(),
            finished: false,
        }
    }

    /// Note the request's id (as the kernel returned it with the socket).
    pub fn with_id(mut self, id: u64) -> ChatStream {
        self.id = Some(id);
        self
    }

    /// The request's id, when known (see [`with_id`](ChatStream::with_id)).
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// The next event; `None` after the final `done` or `error` event (or after an error of
    /// the stream itself, which is returned once). A stream that closes before its final event
    /// yields [`ChatError::EndedEarly`].
    pub async fn next(&mut self) -> Option<Result<ChatEvent, ChatError>> {
        if self.finished {
            return None;
        }
        let result = self.read_event().await;
        match &result {
            Ok(event) if !event.is_last() => {}
            _ => self.finish(),
        }
        Some(result)
    }

    /// The events as a [`Stream`] (for `StreamExt` combinators or a UI's stream handling);
    /// the same events [`next`](ChatStream::next) gives, and dropping it cancels the same way.
    pub fn into_stream(self) -> impl Stream<Item = Result<ChatEvent, ChatError>> + Send {
        futures_util::stream::unfold(self, |mut stream| async move {
            let event = stream.next().await?;
            Some((event, stream))
        })
    }

    /// Read the whole answer. An `error` event becomes [`ChatError::Model`].
    pub async fn collect(mut self) -> Result<ChatReply, ChatError> {
        let mut reply = ChatReply {
            provider: String::new(),
            model: String::new(),
            local: false,
            text: String::new(),
            tool_calls: Vec::new(),
            usage: None,
            finish: String::new(),
        };
        while let Some(event) = self.next().await {
            match event? {
                ChatEvent::Started {
                    provider,
                    model,
                    local,
                } => {
                    reply.provider = provider;
                    reply.model = model;
                    reply.local = local;
                }
                ChatEvent::Text { text } => reply.text.push_str(&text),
                ChatEvent::ToolCall { call } => reply.tool_calls.push(call),
                ChatEvent::Usage {
                    input_tokens,
                    output_tokens,
                    estimated,
                } => reply.usage = Some((input_tokens, output_tokens, estimated)),
                ChatEvent::Done { finish } => {
                    reply.finish = finish;
                    return Ok(reply);
                }
                ChatEvent::Error { kind, message } => {
                    return Err(ChatError::Model { kind, message })
                }
            }
        }
        // `next` returns a final event or an error before it returns `None`.
        Err(ChatError::EndedEarly)
    }

    /// Nothing more will be read: close the socket now.
    fn finish(&mut self) {
        self.finished = true;
        self.socket = Socket::Pending(None);
        self.line = Vec::new();
    }

    /// The first line of an answer to a request sent on the chat pipe: its id, or the named
    /// error it was refused with.
    pub(crate) async fn taken(&mut self) -> Result<u64, ChatError> {
        let taken = match self.read_line().await {
            Ok(line) => match serde_json::from_slice::<Taken>(&line) {
                Ok(taken) => taken.into_result().map_err(ChatError::Refused),
                Err(e) => Err(ChatError::Malformed(format!("{e}: {}", excerpt(&line)))),
            },
            Err(e) => Err(e),
        };
        // Nothing follows a refusal or a broken first line.
        if taken.is_err() {
            self.finish();
        }
        taken
    }

    /// Read lines until one holds an event this client knows.
    async fn read_event(&mut self) -> Result<ChatEvent, ChatError> {
        loop {
            let line = self.read_line().await?;
            if let Some(event) = parse_event(&line)? {
                return Ok(event);
            }
        }
    }

    /// One line, without its newline; at most [`MAX_EVENT_LINE`] bytes.
    async fn read_line(&mut self) -> Result<Vec<u8>, ChatError> {
        loop {
            let reader = open(&mut self.socket)?;
            let available = reader.fill_buf().await?;
            if available.is_empty() {
                return Err(ChatError::EndedEarly);
            }
            let (piece, used, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            if self.line.len() + piece.len() > MAX_EVENT_LINE {
                return Err(ChatError::LineTooLong {
                    limit: MAX_EVENT_LINE,
                });
            }
            self.line.extend_from_slice(piece);
            reader.consume(used);
            if complete {
                return Ok(std::mem::take(&mut self.line));
            }
        }
    }
}

/// The socket's reader, registered with the runtime on first use.
fn open(socket: &mut Socket) -> Result<&mut BufReader<UnixStream>, ChatError> {
    if let Socket::Pending(fd) = socket {
        let Some(fd) = fd.take() else {
            return Err(ChatError::EndedEarly);
        };
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true)?;
        *socket = Socket::Open(BufReader::new(UnixStream::from_std(std)?));
    }
    match socket {
        Socket::Open(reader) => Ok(reader),
        Socket::Pending(_) => Err(ChatError::EndedEarly),
    }
}

/// The event on one line; `None` for a blank line or an event of a kind this client does not
/// know (a newer kernel's), which is skipped.
fn parse_event(line: &[u8]) -> Result<Option<ChatEvent>, ChatError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let e = match serde_json::from_slice::<ChatEvent>(line) {
        Ok(event) => return Ok(Some(event)),
        Err(e) => e,
    };
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|_| ChatError::Malformed(format!("not JSON: {}", excerpt(line))))?;
    const KNOWN: &[&str] = &["started", "text", "tool_call", "usage", "done", "error"];
    match value.get("type").and_then(|t| t.as_str()) {
        Some(kind) if !KNOWN.contains(&kind) => Ok(None),
        Some(_) => Err(ChatError::Malformed(format!("{e}: {}", excerpt(line)))),
        None => Err(ChatError::Malformed(format!(
            "an event without a type: {}",
            excerpt(line)
        ))),
    }
}

/// The start of a bad line, safe to show.
fn excerpt(line: &[u8]) -> String {
    let head = &line[..line.len().min(200)];
    display_safe(&String::from_utf8_lossy(head), 80)
}

impl Client {
    /// `org.agentos.Models1` on the verified kernel.
    pub async fn models(&self) -> Result<Models1Proxy<'static>, ClientError> {
        let owner = self.owner().await?;
        Ok(Models1Proxy::builder(self.connection())
            .destination(owner)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?)
    }

    /// The models the kernel's broker can serve now.
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>, ChatError> {
        Ok(self.models().await?.list_models().await?)
    }

    /// Ask for a chat completion: the request's id and the stream of its answer.
    ///
    /// The kernel answers once the request may go ahead, which for an app can mean after the
    /// user answered a prompt (`model.use`, `model.remote`): this call waits up to
    /// [`CHAT_CALL_TIMEOUT`], not the connection's usual limit for calls.
    pub async fn chat(&self, request: &ChatRequest) -> Result<(u64, ChatStream), ChatError> {
        request.check().map_err(ChatError::InvalidRequest)?;
        let json = request.to_json();
        // On the client's private channel (no bus relay on the way): on its chat pipe (no
        // D-Bus message either) when the request fits a record; on the bus where there is no
        // channel. A channel that broke (the kernel restarted) is opened again once.
        for _ in 0..2 {
            // (No channel, say over the caller's quota of them: the bus still serves.)
            let Ok((conn, pipe)) = self.channel_and_pipe().await else {
                break;
            };
            if let Some(pipe) = pipe.filter(|_| json.len() <= MAX_PIPE_REQUEST) {
                match crate::pipe::ask(&pipe, &json).await {
                    Ok(answer) => return Ok(answer),
                    Err(PipeError::Answer(e)) => return Err(e),
                    Err(PipeError::NotSent) => {
                        self.drop_channel(&conn).await;
                        continue;
                    }
                }
            }
            let channel = crate::channel::proxy(&conn).await?;
            match ask(channel.inner(), &json).await {
                Err(ChatError::Refused(Error::ZBus(e))) if broken(&e) => {
                    self.drop_channel(channel.inner().connection()).await;
                }
                answer => return answer,
            }
        }
        let models = self.models().await?;
        ask(models.inner(), &json).await
    }

    /// Cancel one of this caller's requests (dropping its stream does the same).
    pub async fn cancel_chat(&self, id: u64) -> Result<(), ChatError> {
        Ok(self.models().await?.cancel(id).await?)
    }

    /// Model use per agent, app, the user's own tools and task.
    pub async fn list_usage(&self) -> Result<Vec<UsageInfo>, ChatError> {
        Ok(self.models().await?.list_usage().await?)
    }
}

/// `Chat` on `proxy` (`Models1` or `Channel1`), waiting up to [`CHAT_CALL_TIMEOUT`] (not the
/// generated method's connection-wide limit: the user may be answering a prompt meanwhile).
async fn ask(proxy: &zbus::Proxy<'_>, json: &str) -> Result<(u64, ChatStream), ChatError> {
    let body = (json,);
    let call = proxy.call_with_flags::<_, _, (u64, zbus::zvariant::OwnedFd)>(
        "Chat",
        Default::default(),
        &body,
    );
    let reply = tokio::time::timeout(CHAT_CALL_TIMEOUT, call)
        .await
        .map_err(|_| {
            ChatError::Refused(Error::Timeout(format!(
                "agentosd did not take the chat request within {} s",
                CHAT_CALL_TIMEOUT.as_secs()
            )))
        })?
        .map_err(Error::from)?;
    let (id, fd) = reply.ok_or_else(|| {
        ChatError::Refused(Error::Failed(
            "agentosd answered the chat request with nothing".into(),
        ))
    })?;
    Ok((id, ChatStream::from_fd(OwnedFd::from(fd)).with_id(id)))
}

/// Whether a call failed because its connection is gone (not because the kernel refused it).
fn broken(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::InputOutput(_))
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
