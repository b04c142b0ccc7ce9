//! Models for agents: ask the kernel's broker for a chat completion on the task's behalf
//! (`Host1.Chat`), and list the agents and models the task may use. The answer streams back on
//! a socket of this agent's alone; dropping the [`ChatStream`] cancels the request.
//!
//! ```no_run
//! # async fn demo(task: agentos_sdk::Task) -> Result<(), agentos_sdk::Error> {
//! use agentos_sdk::{ChatMessage, ChatRequest};
//!
//! let request = ChatRequest::new(vec![
//!     ChatMessage::system("Answer in one sentence."),
//!     ChatMessage::user(task.goal.clone()),
//! ]);
//! let reply = task.chat(&request).await?.collect().await?;
//! task.progress(1.0, &reply.text).await?;
//! # Ok(())
//! # }
//! ```

use std::os::fd::OwnedFd;

use agentos_client::{ChatRequest, ChatStream};
use agentos_dbus_interfaces::{AgentInfo, Error, ModelInfo};

use crate::Task;

impl Task {
    /// Ask a model for this task. The request is interactive while the user watches the task
    /// (its `interactive` field is ignored), and a remote model needs this agent's
    /// `model.remote` grant on its provider. Read the answer with [`ChatStream::next`] or
    /// [`ChatStream::collect`].
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatStream, Error> {
        request.check().map_err(Error::InvalidArgument)?;
        let (id, fd) = self.host.chat(self.id, &request.to_json()).await?;
        Ok(ChatStream::from_fd(OwnedFd::from(fd)).with_id(id))
    }

    /// Cancel one of this agent's requests by id (dropping its stream does the same).
    pub async fn cancel_chat(&self, id: u64) -> Result<(), Error> {
        self.host.cancel_chat(id).await
    }

    /// The agents this agent may hand work to or call (every agent but itself; each
    /// delegation is still checked).
    pub async fn list_agents(&self) -> Result<Vec<AgentInfo>, Error> {
        self.host.list_agents(self.id).await
    }

    /// The models the kernel's broker can serve now.
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>, Error> {
        self.host.list_models(self.id).await
    }
}
