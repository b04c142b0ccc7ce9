//! What an agent reports on its own tasks (progress, completion with artifacts, failure), and
//! what it may read of the tasks it delegated (their outcome and artifacts); a task's artifacts
//! for the bus callers that may see the task.

use std::os::fd::OwnedFd;

use agentos_dbus_interfaces::{names, ArtifactInfo, Error, TaskState};

use super::blocking;
use crate::caller::Caller;
use crate::kernel::{check_text, store_err, Kernel, MAX_ARTIFACTS, MAX_ARTIFACT_BYTES};

impl Kernel {
    /// Progress of an agent's own running task.
    pub fn report_progress(
        &self,
        agent: &str,
        task: u64,
        fraction: f64,
        message: &str,
    ) -> Result<(), Error> {
        check_text("message", message, names::MAX_NAME_LEN, true)?;
        self.tasks.check_running(agent, task)?;
        self.progress(task, fraction, message)
    }

    /// An agent finishes its task with a result and artifacts.
    pub async fn complete(
        &self,
        agent: &str,
        task: u64,
        result: &str,
        artifacts: Vec<(String, OwnedFd)>,
    ) -> Result<(), Error> {
        check_text("result", result, names::MAX_RESULT_LEN, true)?;
        if artifacts.len() > MAX_ARTIFACTS {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_ARTIFACTS} artifacts per task"
            )));
        }
        self.tasks.check_running(agent, task)?;
        // Only regular files (memfds included): a pipe or socket could block the copy forever.
        // Their sizes count against the task's and the agent's artifact quotas before anything
        // is copied, and none may grow past the size counted.
        let mut sized = Vec::with_capacity(artifacts.len());
        for (name, fd) in artifacts {
            let stat = rustix::fs::fstat(&fd)
                .map_err(|e| Error::InvalidArgument(format!("artifact {name:?}: {e}")))?;
            if rustix::fs::FileType::from_raw_mode(stat.st_mode)
                != rustix::fs::FileType::RegularFile
            {
                return Err(Error::InvalidArgument(format!(
                    "artifact {name:?} is not a regular file"
                )));
            }
            let size = u64::try_from(stat.st_size).unwrap_or(0);
            if size > MAX_ARTIFACT_BYTES {
                return Err(Error::InvalidArgument(format!(
                    "artifact {name:?} is larger than {} MiB",
                    MAX_ARTIFACT_BYTES >> 20
                )));
            }
            sized.push((name, fd, size));
        }
        let total = sized.iter().map(|(_, _, size)| size).sum();
        self.quotas()
            .admit_artifacts(agent, total)
            .map_err(Error::QuotaExceeded)?;
        for (name, fd, size) in sized {
            let store = self.store_handle();
            blocking(move || {
                let mut file = std::fs::File::from(fd);
                let store = store.lock().unwrap_or_else(|p| p.into_inner());
                let stored = store.put_artifact(task, &name, &mut file, size);
                stored
                    .map(|_| ())
                    .map_err(|e| Error::InvalidArgument(format!("artifact {name:?}: {e}")))
            })
            .await?;
        }
        if !self.finish(task, TaskState::Completed, "", Some(result)) {
            return Err(Error::InvalidArgument(format!(
                "task {task} has already finished"
            )));
        }
        Ok(())
    }

    /// An agent gives up on its task.
    pub fn fail(&self, agent: &str, task: u64, message: &str) -> Result<(), Error> {
        check_text("message", message, names::MAX_NAME_LEN, true)?;
        self.tasks.check_running(agent, task)?;
        self.finish(task, TaskState::Failed, message, None);
        self.cancel_subtree(task, "canceled: the task above it failed", false);
        Ok(())
    }

    /// Wait for a child of one of the agent's tasks; returns state, result or message, artifacts.
    pub async fn await_child(
        &self,
        agent: &str,
        child: u64,
    ) -> Result<(String, String, Vec<ArtifactInfo>), Error> {
        self.tasks.check_delegated_by(agent, child)?;
        let state = self.wait_finished(child).await?;
        let info = self.task_info(child)?;
        let artifacts = self.store().list_artifacts(child).map_err(store_err)?;
        let text = if state == TaskState::Completed {
            info.result
        } else {
            info.message
        };
        Ok((state.as_str().to_string(), text, artifacts))
    }

    /// An artifact of a child task, for the agent that delegated it.
    pub fn open_child_artifact(
        &self,
        agent: &str,
        child: u64,
        name: &str,
    ) -> Result<OwnedFd, Error> {
        self.tasks.check_delegated_by(agent, child)?;
        self.artifact_fd(child, name)
    }

    /// A task's artifact as a read-only fd, for a caller that may see the task.
    pub fn open_artifact(&self, caller: &Caller, task: u64, name: &str) -> Result<OwnedFd, Error> {
        self.check_sees_task(caller, task)?;
        self.artifact_fd(task, name)
    }

    /// The artifacts a task returned, for a caller that may see the task.
    pub fn list_artifacts(&self, caller: &Caller, task: u64) -> Result<Vec<ArtifactInfo>, Error> {
        self.check_sees_task(caller, task)?;
        self.store().list_artifacts(task).map_err(store_err)
    }

    /// A task's artifact as a read-only fd (whoever asks was checked).
    fn artifact_fd(&self, task: u64, name: &str) -> Result<OwnedFd, Error> {
        check_text("artifact name", name, 255, false)?;
        self.store()
            .open_artifact(task, name)
            .map_err(store_err)?
            .map(OwnedFd::from)
            .ok_or_else(|| Error::InvalidArgument(format!("task {task} has no artifact {name:?}")))
    }
}
