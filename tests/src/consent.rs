//! A scripted consent provider: serves `org.freedesktop.impl.portal.Access` as
//! `org.agentos.Consent`, answers from a script, and records every prompt with the answers it
//! offered. It answers as xdg-desktop-portal-gtk does: choices only with the grant response.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use agentos_dbus_interfaces::names::{CONSENT_BUS_NAME, CONSENT_PATH};
use zbus::zvariant::{ObjectPath, OwnedValue, Value};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentReply {
    /// Grant with this lifetime choice ("once", "session", "always").
    Allow(&'static str),
    /// Deny.
    Deny,
    /// Never answer (the kernel must time out or close the request).
    Silent,
    /// Grant with this lifetime after waiting this many milliseconds.
    AllowAfter(&'static str, u64),
    /// Close the dialog without an answer (response 2, as when the window is closed).
    Close,
    /// Choose "deny, and ask nothing more for this task" and press the grant button (as the
    /// desktop's dialog must be answered for its choice to reach the kernel).
    DenyTask,
}

/// A prompt the kernel showed.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub title: String,
    pub subtitle: String,
    pub body: String,
    /// The options of the answer choice ("once", "session", "always", "deny-task"…).
    pub answers: Vec<String>,
    /// The exact call, as the kernel sent it in the option `arguments`.
    pub arguments: Option<String>,
    /// The request's id, as the kernel sent it in the option `request`.
    pub request: Option<u64>,
}

/// The option ids of the `lifetime` choice in the dialog's options.
fn offered_answers(options: &HashMap<String, OwnedValue>) -> Vec<String> {
    type Choices = Vec<(String, String, Vec<(String, String)>, String)>;
    options
        .get("choices")
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| Choices::try_from(v).ok())
        .into_iter()
        .flatten()
        .filter(|(id, ..)| id == "lifetime")
        .flat_map(|(_, _, options, _)| options.into_iter().map(|(id, _)| id))
        .collect()
}

#[derive(Default)]
struct State {
    script: VecDeque<ConsentReply>,
    prompts: Vec<Prompt>,
    /// Dialogs open now, and the most ever open at once.
    open: usize,
    max_open: usize,
    /// Handles the kernel closed with `Request.Close`.
    closed: Vec<String>,
}

struct Access(Arc<Mutex<State>>);

/// `org.freedesktop.impl.portal.Request` on a pending dialog's handle.
struct Request {
    state: Arc<Mutex<State>>,
    handle: String,
    close: Arc<tokio::sync::Notify>,
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Request")]
impl Request {
    async fn close(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed
            .push(self.handle.clone());
        self.close.notify_one();
    }
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Access")]
impl Access {
    #[allow(clippy::too_many_arguments)]
    async fn access_dialog(
        &self,
        #[zbus(object_server)] server: &zbus::ObjectServer,
        handle: ObjectPath<'_>,
        _app_id: &str,
        _parent_window: &str,
        title: &str,
        subtitle: &str,
        body: &str,
        options: HashMap<String, OwnedValue>,
    ) -> (u32, HashMap<String, OwnedValue>) {
        let reply = {
            let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
            s.prompts.push(Prompt {
                title: title.into(),
                subtitle: subtitle.into(),
                body: body.into(),
                answers: offered_answers(&options),
                arguments: options
                    .get("arguments")
                    .and_then(|v| String::try_from(v.try_clone().ok()?).ok()),
                request: options.get("request").and_then(|v| u64::try_from(v).ok()),
            });
            s.open += 1;
            s.max_open = s.max_open.max(s.open);
            s.script.pop_front().unwrap_or(ConsentReply::Deny)
        };
        let close = Arc::new(tokio::sync::Notify::new());
        let request = Request {
            state: Arc::clone(&self.0),
            handle: handle.to_string(),
            close: Arc::clone(&close),
        };
        let _ = server.at(handle.clone(), request).await;
        let mut dismissed = false;
        let lifetime = match reply {
            ConsentReply::Allow(lifetime) => Some(lifetime),
            ConsentReply::DenyTask => Some("deny-task"),
            ConsentReply::Deny => None,
            ConsentReply::Close => {
                dismissed = true;
                None
            }
            ConsentReply::Silent => {
                close.notified().await;
                None
            }
            ConsentReply::AllowAfter(lifetime, ms) => {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => Some(lifetime),
                    _ = close.notified() => None,
                }
            }
        };
        let _ = server.remove::<Request, _>(handle.clone()).await;
        let closed = {
            let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
            s.open -= 1;
            s.closed.contains(&handle.to_string())
        };
        let mut results = HashMap::new();
        match lifetime {
            _ if closed || dismissed => (2, results),
            Some(lifetime) => {
                let choices = vec![("lifetime".to_string(), lifetime.to_string())];
                if let Ok(v) = OwnedValue::try_from(Value::from(choices)) {
                    results.insert("choices".to_string(), v);
                }
                (0, results)
            }
            None => (1, results),
        }
    }
}

/// A running responder.
pub struct Responder {
    state: Arc<Mutex<State>>,
    _conn: zbus::Connection,
}

impl Responder {
    /// Start answering on the bus at `address` with `script`.
    pub async fn start(address: &str, script: &[ConsentReply]) -> Responder {
        let state = Arc::new(Mutex::new(State {
            script: script.iter().cloned().collect(),
            ..State::default()
        }));
        let conn = zbus::connection::Builder::address(address)
            .expect("address")
            .serve_at(CONSENT_PATH, Access(Arc::clone(&state)))
            .expect("serve")
            .name(CONSENT_BUS_NAME)
            .expect("name")
            .build()
            .await
            .expect("responder connection");
        Responder { state, _conn: conn }
    }

    /// The prompts shown so far.
    pub fn prompts(&self) -> Vec<Prompt> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .prompts
            .clone()
    }

    /// The most dialogs that were ever open at once.
    pub fn max_open(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .max_open
    }

    /// The request handles the kernel closed.
    pub fn closed(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed
            .clone()
    }

    /// Queue more answers.
    /// Leave the bus at once, dialogs still open (as a panel that quits or crashes).
    pub async fn quit(self) {
        let _ = self._conn.close().await;
    }

    pub fn push(&self, reply: ConsentReply) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .script
            .push_back(reply);
    }
}
