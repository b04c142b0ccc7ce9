//! Tool calls for an agent's task. Every tool, whatever it is, takes one path: the tool is found
//! by name, the call's scope is read from its arguments, the capability is checked on that scope
//! for the task's whole delegation chain (asking the user when the policy says so), and only then
//! does the tool run; a further scope it touches while running is checked the same way. The
//! typed `Host1` methods (`ListFiles`, `OpenFile`, `FetchUrl`) are shortcuts onto this path.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use agentos_dbus_interfaces::{names, Capability, Error, FileEntry, ToolInfo};
use agentos_tools::{files, ScopeCheck, ToolOutput};
use serde_json::{json, Value};

use super::{blocking, capability};
use crate::authorize::Subject;
use crate::kernel::{check_text, Kernel};

/// What `web.fetch` returns to the typed `FetchUrl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The kernel's check of a further scope a running tool call touches: the same subject and
/// capability as the call itself.
struct CallCheck<'a> {
    kernel: &'a Arc<Kernel>,
    subject: &'a Subject,
    capability: &'static Capability,
}

#[async_trait::async_trait]
impl ScopeCheck for CallCheck<'_> {
    async fn allow(&self, scope: &str) -> Result<(), Error> {
        let scope = self
            .capability
            .normalize_scope(scope)
            .map_err(Error::InvalidArgument)?;
        self.kernel
            .authorize(self.subject, self.capability, &scope)
            .await
    }
}

impl Kernel {
    /// Every tool, as `agent` sees it for one of its running tasks.
    pub fn list_tools(&self, agent: &str, task: u64) -> Result<Vec<ToolInfo>, Error> {
        self.tasks.acting(agent, task)?;
        self.tools
            .all()
            .into_iter()
            .map(|tool| {
                let (declared, _) = self.agents.declares(agent, tool.capability())?;
                Ok(ToolInfo {
                    name: tool.name().to_string(),
                    capability: tool.capability().name.to_string(),
                    description: tool.description().to_string(),
                    parameters: tool.parameters().to_string(),
                    declared,
                })
            })
            .collect()
    }

    /// Call a tool by name for an agent's task, with its arguments as JSON text.
    pub async fn call_tool_json(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        name: &str,
        arguments: &str,
    ) -> Result<ToolOutput, Error> {
        check_text("tool name", name, 255, false)?;
        if arguments.len() > names::MAX_CALL_PAYLOAD {
            return Err(Error::InvalidArgument(format!(
                "the arguments are larger than {} bytes",
                names::MAX_CALL_PAYLOAD
            )));
        }
        let args: Value = serde_json::from_str(arguments)
            .map_err(|e| Error::InvalidArgument(format!("the arguments are not JSON: {e}")))?;
        self.call_tool(agent, task, name, args).await
    }

    /// Call a tool by name for an agent's task: the one path of every tool call.
    pub async fn call_tool(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        name: &str,
        args: Value,
    ) -> Result<ToolOutput, Error> {
        if !args.is_object() {
            return Err(Error::InvalidArgument(
                "the arguments must be a JSON object".into(),
            ));
        }
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| Error::InvalidArgument(format!("there is no tool named {name:?}")))?;
        let cap = tool.capability();
        let mut subject = self.agent_subject(agent, task, cap)?;
        subject.arguments = Some(format!("{name} {args}"));
        let scope = tool.scope(&args)?;
        // The tool's scope in the capability's own spelling: what the grant and the audit name.
        let scope = cap
            .normalize_scope(&scope)
            .map_err(Error::InvalidArgument)?;
        self.authorize(&subject, cap, &scope).await?;
        let check = CallCheck {
            kernel: self,
            subject: &subject,
            capability: cap,
        };
        Ok(tool.run(args, scope, &check).await?)
    }

    /// `files.list` for an agent's task.
    pub async fn list_files(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<Vec<FileEntry>, Error> {
        let args = json!({"folder": folder, "path": path});
        let out = self.call_tool(agent, task, "files.list", args).await?;
        let entries = out.value.as_array().cloned().unwrap_or_default();
        Ok(entries
            .iter()
            .map(|e| FileEntry {
                name: e["name"].as_str().unwrap_or_default().to_string(),
                is_dir: e["is_dir"].as_bool().unwrap_or_default(),
                size: e["size"].as_u64().unwrap_or_default(),
            })
            .collect())
    }

    /// `files.read` for an agent's task: a read-only fd.
    pub async fn open_file(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<OwnedFd, Error> {
        let args = json!({"folder": folder, "path": path});
        let mut out = self.call_tool(agent, task, "files.read", args).await?;
        out.fds
            .pop()
            .ok_or_else(|| Error::Failed("files.read returned no file".into()))
    }

    /// `web.fetch` for an agent's task; every redirect's host is checked too.
    pub async fn fetch_url(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        url: &str,
    ) -> Result<Fetched, Error> {
        let out = self
            .call_tool(agent, task, "web.fetch", json!({"url": url}))
            .await?;
        Ok(Fetched {
            status: out.value["status"].as_u64().unwrap_or_default() as u16,
            content_type: out.value["content_type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            body: out.data,
        })
    }

    /// `files.read` through the Documents portal, for an agent that is a Flatpak app: the file is
    /// exported to that app alone and its path inside the sandbox returned.
    pub async fn share_file(
        self: &Arc<Self>,
        agent: &str,
        task: u64,
        folder: &str,
        path: &str,
    ) -> Result<String, Error> {
        if !self.agents.is_flatpak(agent) {
            return Err(Error::NotSupported(format!(
                "agent {agent} is not a Flatpak app; use OpenFile"
            )));
        }
        let cap = capability("files.read")?;
        let subject = self.agent_subject(agent, task, cap)?;
        let root = files::resolve_folder(cap, folder)?;
        self.authorize(&subject, cap, &root).await?;
        let folder = root.clone();
        let rel = path.to_string();
        let fd =
            blocking(move || files::open_path(Path::new(&root), &rel).map_err(Error::from)).await?;
        let name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidArgument(format!("{path:?} names no file")))?
            .to_string();
        let conn = self
            .bus()
            .ok_or_else(|| Error::Failed("the kernel is not on a bus".into()))?;
        let id = crate::documents::export(conn, fd, agent).await?;
        self.note_share(
            task,
            crate::shares::Share {
                doc: id.clone(),
                agent: agent.to_string(),
                folder,
            },
        );
        Ok(format!("/run/flatpak/doc/{id}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::tasks::Task;
    use agentos_dbus_interfaces::ScopeKind;
    use agentos_tools::{Tool, ToolError};

    /// A tool that is not compiled into the kernel, with a capability registered at run time.
    struct Calendar;

    #[async_trait::async_trait]
    impl Tool for Calendar {
        fn name(&self) -> &str {
            "calendar.events"
        }
        fn capability(&self) -> &'static Capability {
            Capability::register("calendar.read", ScopeKind::Name, "read the calendar")
                .expect("a valid capability")
        }
        fn description(&self) -> &str {
            "The events of a calendar."
        }
        fn parameters(&self) -> Value {
            json!({"type": "object", "properties": {"calendar": {"type": "string"}}})
        }
        fn scope(&self, args: &Value) -> Result<String, ToolError> {
            args["calendar"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ToolError::Invalid("which calendar?".into()))
        }
        async fn run(
            &self,
            _args: Value,
            scope: String,
            _check: &dyn ScopeCheck,
        ) -> Result<ToolOutput, ToolError> {
            Ok(ToolOutput::value(json!({"calendar": scope, "events": []})))
        }
    }

    #[tokio::test]
    async fn a_tool_that_is_not_compiled_in_takes_the_same_checked_path() {
        let _ = Calendar.capability();
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path().join("agents");
        std::fs::create_dir_all(&agents).unwrap();
        std::fs::write(
            agents.join("a.toml"),
            "id = \"a\"\nname = \"A\"\nexec = \"/bin/true\"\ncapabilities = [\"calendar.read\"]\n",
        )
        .unwrap();
        let k = Kernel::for_test(
            &dir.path().join("data"),
            vec![agents],
            ManualClock::new(1).into(),
        );
        k.tools.add(Arc::new(Calendar)).unwrap();
        k.insert_working(Task::working(1, 0, "a", vec![], 1, 100_000));
        let listed = k.list_tools("a", 1).unwrap();
        let calendar = listed.iter().find(|t| t.name == "calendar.events").unwrap();
        assert!(calendar.declared);
        assert_eq!(calendar.capability, "calendar.read");
        let args = json!({"calendar": "work"});
        // No grant and nobody to ask: denied, like any other tool.
        let denied = k.call_tool("a", 1, "calendar.events", args.clone()).await;
        assert!(matches!(denied, Err(Error::AccessDenied(_))), "{denied:?}");
        k.grant("a", "calendar.read", "work", "session")
            .await
            .unwrap();
        let out = k.call_tool("a", 1, "calendar.events", args).await.unwrap();
        assert_eq!(out.value["calendar"], "work");
        // Another calendar is another scope.
        let other = k
            .call_tool("a", 1, "calendar.events", json!({"calendar": "home"}))
            .await;
        assert!(matches!(other, Err(Error::AccessDenied(_))));
        // Another agent's task is not this agent's to act for.
        let foreign = k
            .call_tool("b", 1, "calendar.events", json!({"calendar": "work"}))
            .await;
        assert!(matches!(foreign, Err(Error::AccessDenied(_))));
        k.commit_audit().unwrap();
        let log = k.store().read_audit(0, 100).unwrap();
        let decisions: Vec<(&str, &str)> = log
            .iter()
            .filter(|r| r.capability == "calendar.read")
            .map(|r| (r.scope.as_str(), r.decision.as_str()))
            .collect();
        assert_eq!(
            decisions,
            [
                ("work", "deny"),
                ("work", "grant"),
                ("work", "allow"),
                ("home", "deny")
            ]
        );
    }
}
