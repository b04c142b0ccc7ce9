//! The tools the kernel knows, by name: the platform's own, and any registered later.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::Tool;

/// Tools by name.
#[derive(Default)]
pub struct Registry {
    tools: RwLock<BTreeMap<String, Arc<dyn Tool>>>,
}

impl Registry {
    /// The platform's own tools: `files.list`, `files.read`, `web.fetch`.
    pub fn builtin() -> Registry {
        let registry = Registry::default();
        for tool in [
            Arc::new(crate::files::ListTool) as Arc<dyn Tool>,
            Arc::new(crate::files::ReadTool),
            Arc::new(crate::web::FetchTool::default()),
        ] {
            // The built-in names are distinct.
            let _ = registry.add(tool);
        }
        registry
    }

    /// Add a tool; a name already taken is refused.
    pub fn add(&self, tool: Arc<dyn Tool>) -> Result<(), String> {
        let mut tools = self.tools.write().unwrap_or_else(|p| p.into_inner());
        let name = tool.name().to_string();
        if tools.contains_key(&name) {
            return Err(format!("a tool named {name} is already registered"));
        }
        tools.insert(name, tool);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        let tools = self.tools.read().unwrap_or_else(|p| p.into_inner());
        tools.get(name).cloned()
    }

    /// Every tool, by name.
    pub fn all(&self) -> Vec<Arc<dyn Tool>> {
        let tools = self.tools.read().unwrap_or_else(|p| p.into_inner());
        tools.values().cloned().collect()
    }
}
