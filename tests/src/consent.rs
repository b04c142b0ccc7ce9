//! A scripted consent provider: serves `org.freedesktop.impl.portal.Access` as
//! `org.agentos.Consent`, answers from a script, and records every prompt.

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
    /// Never answer (the kernel must time out).
    Silent,
}

/// A prompt the kernel showed.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub title: String,
    pub subtitle: String,
    pub body: String,
}

#[derive(Default)]
struct State {
    script: VecDeque<ConsentReply>,
    prompts: Vec<Prompt>,
}

struct Access(Arc<Mutex<State>>);

#[zbus::interface(name = "org.freedesktop.impl.portal.Access")]
impl Access {
    #[allow(clippy::too_many_arguments)]
    async fn access_dialog(
        &self,
        _handle: ObjectPath<'_>,
        _app_id: &str,
        _parent_window: &str,
        title: &str,
        subtitle: &str,
        body: &str,
        _options: HashMap<String, OwnedValue>,
    ) -> (u32, HashMap<String, OwnedValue>) {
        let reply = {
            let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
            s.prompts.push(Prompt {
                title: title.into(),
                subtitle: subtitle.into(),
                body: body.into(),
            });
            s.script.pop_front().unwrap_or(ConsentReply::Deny)
        };
        let mut results = HashMap::new();
        match reply {
            ConsentReply::Allow(lifetime) => {
                let choices = vec![("lifetime".to_string(), lifetime.to_string())];
                if let Ok(v) = OwnedValue::try_from(Value::from(choices)) {
                    results.insert("choices".to_string(), v);
                }
                (0, results)
            }
            ConsentReply::Deny => (1, results),
            ConsentReply::Silent => {
                std::future::pending::<()>().await;
                (2, results)
            }
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
            prompts: Vec::new(),
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

    /// Queue more answers.
    pub fn push(&self, reply: ConsentReply) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .script
            .push_back(reply);
    }
}
