//! The life of a task as the kernel drives it: created for an agent, handed over, changed by
//! the agent's reports, finished, canceled with its subtree, timed out. Every change is applied
//! to the board, noted for the store writer and published as an event.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use agentos_data::{NewTask, TaskUpdate};
use agentos_dbus_interfaces::{Error, TaskInfo, TaskState};

use super::tree::{Task, TaskError, TaskTable};
use crate::caller::Caller;
use crate::config::AGENT_START_TIMEOUT;
use crate::events::Event;
use crate::kernel::{store_err, Kernel};
use crate::trim::IdleWait;

pub(crate) fn task_err(e: TaskError) -> Error {
    match e {
        TaskError::Unknown(id) => Error::UnknownTask(format!("no task {id}")),
        e @ TaskError::Finished { .. } => Error::InvalidArgument(e.to_string()),
    }
}

impl Kernel {
    /// Create a task for `agent` on behalf of `caller` (permission already checked), with the
    /// `model` its tree asks when a request names none, and start handing it over.
    pub(crate) fn create_task(
        self: &Arc<Self>,
        caller: &Caller,
        agent: &str,
        goal: &str,
        timeout: Option<Duration>,
        model: Option<String>,
    ) -> Result<u64, Error> {
        let now = self.now();
        let timeout = timeout.unwrap_or(self.config.task_timeout);
        let deadline = now.saturating_add(timeout.as_millis() as u64);
        let (parent, delegators) = match caller {
            Caller::Agent { task, .. } => {
                let chain = self
                    .tasks
                    .chain(*task)
                    .ok_or_else(|| Error::UnknownTask(format!("no task {task}")))?;
                (*task, chain)
            }
            _ => (0, Vec::new()),
        };
        let new = NewTask {
            parent,
            agent: agent.to_string(),
            caller: caller.principal().to_string(),
            goal: goal.to_string(),
            state: TaskState::Submitted,
            created: now,
            deadline,
        };
        let id = self.task_writer.next_id().map_err(store_err)?;
        self.task_writer.put_new(id, new.clone());
        let task = Task::from_new(id, new, delegators);
        self.tasks.insert(task.clone());
        // The tree's model is there before its agent hears of the task.
        if let Some(model) = model {
            self.tasks.set_model(id, model);
        }
        self.events.publish(Event::TaskCreated(task));
        let kernel = Arc::clone(self);
        tokio::spawn(async move { kernel.start_task(id).await });
        Ok(id)
    }

    /// Start the agent if needed and hand it the task.
    async fn start_task(self: Arc<Self>, id: u64) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        if let Err(why) = self.hand_over(id, &task).await {
            self.finish(id, TaskState::Failed, &why, None);
        }
    }

    /// Start the task's agent if needed and ask it to take the task; `Err` says why not.
    async fn hand_over(self: &Arc<Self>, id: u64, task: &Task) -> Result<(), String> {
        let instance = self
            .ensure_instance(&task.agent)
            .await
            .map_err(|e| format!("could not start agent {}: {}", task.agent, e.message()))?;
        if self.transition(id, TaskState::Working, None).is_err() {
            return Ok(()); // canceled meanwhile
        }
        let mut context: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        context.insert("caller", task.caller.as_str().into());
        context.insert("parent", task.parent.into());
        let docs = self
            .config
            .documents_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned());
        if let Some(d) = &docs {
            context.insert("documents_dir", d.as_str().into());
        }
        let start = instance.service.start(id, &task.goal, context);
        match tokio::time::timeout(AGENT_START_TIMEOUT, start).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "agent {} refused the task: {}",
                task.agent,
                e.message()
            )),
            Err(_) => Err(format!(
                "agent {} did not accept the task in time",
                task.agent
            )),
        }
    }

    /// Apply a change to one task of the tree; then note it for the store and publish it.
    fn change(
        &self,
        id: u64,
        f: impl FnOnce(&mut TaskTable, u64) -> Result<&Task, TaskError>,
    ) -> Result<(), Error> {
        let task = self.tasks.apply(id, self.now(), f).map_err(task_err)?;
        let update = TaskUpdate {
            state: task.state,
            progress: task.progress,
            message: task.message.clone(),
            result: Some(task.result.clone()),
            updated: task.updated,
        };
        // A task's end is written at once; its progress may wait for the writer's turn.
        self.task_writer
            .put(task.id, update, task.state.is_terminal());
        self.events.publish(Event::TaskChanged(task));
        Ok(())
    }

    /// Move an unfinished task to a non-terminal state.
    pub(crate) fn transition(
        &self,
        id: u64,
        state: TaskState,
        message: Option<&str>,
    ) -> Result<(), Error> {
        self.change(id, |tasks, now| tasks.set_state(id, state, message, now))
    }

    /// Record progress reported by an agent.
    pub(crate) fn progress(&self, id: u64, fraction: f64, message: &str) -> Result<(), Error> {
        self.change(id, |tasks, now| {
            tasks.set_progress(id, fraction, message, now)
        })
    }

    /// Finish a task (completed with `result`, or failed/canceled with `message`). Returns
    /// whether this call finished it (false if it had already finished).
    pub(crate) fn finish(
        &self,
        id: u64,
        state: TaskState,
        message: &str,
        result: Option<&str>,
    ) -> bool {
        self.change(id, |tasks, now| match result {
            Some(r) if state == TaskState::Completed => tasks.complete(id, r, now),
            _ => tasks.set_state(id, state, Some(message), now),
        })
        .is_ok()
    }

    /// Cancel a task and its subtree; tells the agents working on them.
    pub(crate) fn cancel_subtree(&self, id: u64, why: &str, include_root: bool) {
        let ids = self.tasks.subtree(id);
        for tid in ids.into_iter().filter(|t| include_root || *t != id) {
            let agent = self.tasks.agent_of(tid);
            if self.finish(tid, TaskState::Canceled, why, None) {
                if let Some(agent) = agent {
                    self.tell_agent_cancel(&agent, tid);
                }
            }
        }
    }

    /// A user-facing cancel, checked: the user may cancel anything; an app only what it started.
    pub fn cancel(&self, caller: &Caller, id: u64) -> Result<(), Error> {
        let Some(owner) = self.tasks.root_caller(id) else {
            return match self.store().get_task(id).map_err(store_err)? {
                Some(_) => Ok(()), // from an earlier run: already finished
                None => Err(Error::UnknownTask(format!("no task {id}"))),
            };
        };
        match caller {
            Caller::Host => {}
            other if other.principal() == owner => {}
            _ => {
                return Err(Error::AccessDenied(format!(
                    "task {id} was not started by you"
                )))
            }
        }
        self.cancel_subtree(id, &format!("canceled by {}", caller.principal()), true);
        Ok(())
    }

    /// Fail tasks whose deadline passed (and cancel what hangs below them).
    pub fn expire_overdue(&self) {
        for id in self.tasks.overdue(self.now()) {
            if self.finish(
                id,
                TaskState::Failed,
                "timed out: the task took longer than its time limit",
                None,
            ) {
                self.cancel_subtree(id, "canceled: a task above it timed out", false);
                if let Some(agent) = self.tasks.agent_of(id) {
                    self.tell_agent_cancel(&agent, id);
                }
            }
        }
    }

    /// Expire tasks as their deadlines pass, until the kernel goes away. It sleeps until the
    /// nearest deadline, or without a timer while no task is unfinished.
    ///
    /// When neither a task nor a model request is pending, once `TRIM_AFTER_START` has passed
    /// since start, or `TRIM_AFTER_WORK` since the last of them ended with none made meanwhile,
    /// the kernel hands its code pages back to the page cache (`trim.rs`); then nothing wakes it
    /// until work comes.
    pub async fn watch_deadlines(kernel: Weak<Kernel>) {
        let mut trimmed = false;
        let mut rest = crate::config::TRIM_AFTER_START;
        loop {
            let Some(k) = kernel.upgrade() else { return };
            k.expire_overdue();
            let deadline = k
                .tasks
                .next_deadline()
                .map(|d| Duration::from_millis(d.saturating_sub(k.now())));
            let wait = crate::trim::idle_wait(deadline, k.broker.busy(), trimmed);
            let (signal, models_idle) = (k.tasks.earlier_deadline(), k.broker.idle_signal());
            let made = k.broker.requests_made();
            drop(k);
            let earlier = signal.notified();
            match wait {
                IdleWait::Deadline(wait) => {
                    (trimmed, rest) = (false, crate::config::TRIM_AFTER_WORK);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = earlier => {}
                    }
                }
                IdleWait::Trim => {
                    tokio::select! {
                        () = tokio::time::sleep(rest) => {
                            // Model requests may have come meanwhile (a task would have woken
                            // this): then the wait goes on until `TRIM_AFTER_WORK` after the
                            // last of them ended.
                            let Some(k) = kernel.upgrade() else { return };
                            if crate::trim::may_trim(k.broker.busy(), made, k.broker.requests_made()) {
                                crate::trim::release_code_pages();
                                trimmed = true;
                            } else {
                                // `TRIM_AFTER_WORK` after the last one ended, not after this wait.
                                rest = crate::trim::rest_left(
                                    crate::config::TRIM_AFTER_WORK,
                                    k.broker.idle_for(),
                                );
                            }
                        }
                        () = earlier => {}
                    }
                }
                IdleWait::ModelsEnd | IdleWait::Work => {
                    tokio::select! {
                        () = models_idle.notified() => {}
                        () = earlier => {}
                    }
                    (trimmed, rest) = (false, crate::config::TRIM_AFTER_WORK);
                }
            }
        }
    }

    /// Mark every unfinished task interrupted (clean shutdown).
    pub fn interrupt_all(&self, why: &str) {
        for id in self.tasks.unfinished() {
            self.finish(id, TaskState::Failed, why, None);
        }
    }

    /// Wait until a task has finished; returns its final state.
    pub(crate) async fn wait_finished(&self, id: u64) -> Result<TaskState, Error> {
        let mut rx = self
            .tasks
            .watch(id)
            .ok_or_else(|| Error::UnknownTask(format!("no task {id} in this kernel run")))?;
        let state = rx
            .wait_for(|s| s.is_terminal())
            .await
            .map_err(|_| Error::Failed("the kernel is shutting down".into()))?;
        Ok(*state)
    }

    /// A snapshot of a task of this run, or from the store.
    pub fn task_info(&self, id: u64) -> Result<TaskInfo, Error> {
        if let Some(t) = self.tasks.info(id) {
            return Ok(t);
        }
        self.store()
            .get_task(id)
            .map_err(store_err)?
            .ok_or_else(|| Error::UnknownTask(format!("no task {id}")))
    }
}
