//! The Agents page: every agent the kernel knows (`ListAgents`) with its description, whether
//! an instance is connected, whether it runs sandboxed (`Agent1.Sandboxed`), and the
//! capabilities it may request.

use agentos_client::Client;
use agentos_dbus_interfaces::proxies::Models1Proxy;
use agentos_dbus_interfaces::{AgentInfo, UsageInfo};
use gtk::prelude::*;
use relm4::prelude::*;
use relm4::typed_view::list::{RelmListItem, TypedListView};

use crate::model::format;
use crate::model::latest::Latest;

#[derive(Debug)]
pub enum AgentsInput {
    Connected(Client),
    Disconnected,
    Reload,
}

#[derive(Debug)]
pub enum AgentsCmd {
    /// A read's number and its answer.
    Loaded(u64, Result<Vec<AgentRow>, String>),
}

/// An agent, whether it is sandboxed (`None`: the kernel did not say) and its model use.
#[derive(Debug, Clone)]
pub struct AgentRow {
    pub info: AgentInfo,
    pub sandboxed: Option<bool>,
    pub usage: Option<UsageInfo>,
}

impl AgentRow {
    /// The facts line: connected, sandboxed.
    pub fn facts(&self) -> String {
        let connected = if self.info.connected {
            "connected"
        } else {
            "not running"
        };
        let sandbox = match self.sandboxed {
            Some(true) => "sandboxed",
            Some(false) => "not sandboxed",
            None => "sandbox unknown",
        };
        format!(
            "{} · {connected} · {sandbox} · {}",
            format::line(&self.info.id, 80),
            usage_line(self.usage.as_ref())
        )
    }

    /// The capabilities it may request, or a sentence saying it requests none.
    pub fn capabilities(&self) -> String {
        if self.info.capabilities.is_empty() {
            "Requests no capabilities".to_string()
        } else {
            let caps: Vec<String> = self
                .info
                .capabilities
                .iter()
                .map(|c| format::line(c, 60))
                .collect();
            format!("May request: {}", caps.join(", "))
        }
    }
}

/// An agent's model use in words.
pub fn usage_line(usage: Option<&UsageInfo>) -> String {
    match usage {
        Some(u) if u.requests > 0 => {
            let requests = if u.requests == 1 {
                "request"
            } else {
                "requests"
            };
            let mut line = format!(
                "model use: {} {requests}, {} tokens in, {} out",
                u.requests, u.input_tokens, u.output_tokens
            );
            match (u.cost_micros, u.unpriced_requests) {
                (0, 0) => {}
                (0, _) => line.push_str(", cost unknown"),
                (c, 0) => line.push_str(&format!(", about ${:.4}", c as f64 / 1e6)),
                (c, _) => line.push_str(&format!(
                    ", about ${:.4} and more of unknown price",
                    c as f64 / 1e6
                )),
            }
            line
        }
        _ => "no model use recorded".to_string(),
    }
}

/// Model use per agent (`Models1.ListUsage`); empty where the kernel does not say.
async fn usage(client: &Client) -> Vec<UsageInfo> {
    let Ok(owner) = client.owner().await else {
        return Vec::new();
    };
    let proxy = async {
        Models1Proxy::builder(client.connection())
            .destination(owner)?
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
    };
    let Ok(models) = proxy.await else {
        return Vec::new();
    };
    models
        .list_usage()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u.kind == "agent")
        .collect()
}

pub struct AgentItemWidgets {
    name: gtk::Label,
    description: gtk::Label,
    facts: gtk::Label,
    capabilities: gtk::Label,
}

impl RelmListItem for AgentRow {
    type Root = gtk::Box;
    type Widgets = AgentItemWidgets;

    fn setup(_item: &gtk::ListItem) -> (gtk::Box, AgentItemWidgets) {
        let root = gtk::Box::new(gtk::Orientation::Vertical, 2);
        root.set_margin_top(6);
        root.set_margin_bottom(6);
        root.set_margin_start(6);
        let name = crate::ui::cell("");
        name.add_css_class("heading");
        let description = crate::ui::cell("");
        let facts = crate::ui::caption("");
        let capabilities = crate::ui::caption("");
        for w in [&name, &description, &facts, &capabilities] {
            root.append(w);
        }
        (
            root,
            AgentItemWidgets {
                name,
                description,
                facts,
                capabilities,
            },
        )
    }

    fn bind(&mut self, w: &mut AgentItemWidgets, root: &mut gtk::Box) {
        root.set_widget_name(&format!("agent-{}", format::line(&self.info.id, 80)));
        w.name.set_label(&format::line(&self.info.name, 80));
        w.description
            .set_label(&format::line(&self.info.description, 300));
        w.facts.set_label(&self.facts());
        w.capabilities.set_label(&self.capabilities());
    }
}

pub struct AgentsPage {
    client: Option<Client>,
    list: TypedListView<AgentRow, gtk::NoSelection>,
    status: gtk::Label,
    /// Only the last read started is shown.
    reads: Latest,
}

impl Component for AgentsPage {
    type Init = ();
    type Input = AgentsInput;
    type Output = ();
    type CommandOutput = AgentsCmd;
    type Widgets = ();
    type Root = gtk::Box;

    fn init_root() -> gtk::Box {
        gtk::Box::new(gtk::Orientation::Vertical, 0)
    }

    fn init(_: (), root: gtk::Box, sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let (frame, status) = crate::ui::page("Agents");
        frame.set_vexpand(true);
        root.append(&frame);
        let reload = gtk::Button::with_mnemonic("_Reload");
        reload.set_halign(gtk::Align::Start);
        let input = sender.input_sender().clone();
        reload.connect_clicked(move |_| input.emit(AgentsInput::Reload));
        frame.append(&reload);
        let list: TypedListView<AgentRow, gtk::NoSelection> = TypedListView::new();
        list.view.set_widget_name("agents-list");
        let scroll = gtk::ScrolledWindow::new();
        scroll.set_vexpand(true);
        scroll.set_child(Some(&list.view));
        frame.append(&scroll);
        status.set_label("Waiting for AgentOS…");
        ComponentParts {
            model: AgentsPage {
                client: None,
                list,
                status,
                reads: Latest::default(),
            },
            widgets: (),
        }
    }

    fn update(&mut self, msg: AgentsInput, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            AgentsInput::Connected(client) => {
                self.client = Some(client);
                self.load(&sender);
            }
            AgentsInput::Reload => self.load(&sender),
            AgentsInput::Disconnected => self.client = None,
        }
    }

    fn update_cmd(&mut self, msg: AgentsCmd, _sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            AgentsCmd::Loaded(read, _) if !self.reads.is_latest(read) => {}
            AgentsCmd::Loaded(_, Ok(rows)) => {
                self.status.set_label(&match rows.len() {
                    0 => "No agents are installed.".to_string(),
                    1 => "1 agent".to_string(),
                    n => format!("{n} agents"),
                });
                self.list.clear();
                self.list.extend_from_iter(rows);
            }
            AgentsCmd::Loaded(_, Err(e)) => {
                self.status.set_label(&format!("Cannot list agents: {e}"));
            }
        }
    }
}

impl AgentsPage {
    fn load(&mut self, sender: &ComponentSender<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let read = self.reads.start();
        sender.oneshot_command(async move {
            let agents =
                match super::on_kernel(&client, |k| async move { k.list_agents().await }).await {
                    Ok(a) => a,
                    Err(e) => return AgentsCmd::Loaded(read, Err(e)),
                };
            let used = usage(&client).await;
            let mut rows = Vec::with_capacity(agents.len());
            for info in agents {
                let sandboxed = match client.agent(&info.id).await {
                    Ok(a) => a.sandboxed().await.ok(),
                    Err(_) => None,
                };
                let usage = used.iter().find(|u| u.who == info.id).cloned();
                rows.push(AgentRow {
                    info,
                    sandboxed,
                    usage,
                });
            }
            AgentsCmd::Loaded(read, Ok(rows))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_with_no_known_price_is_said_to_be_unknown() {
        let mut u = UsageInfo {
            kind: "agent".into(),
            who: "docs".into(),
            requests: 2,
            input_tokens: 10,
            output_tokens: 5,
            millis: 100,
            cost_micros: 0,
            unpriced_requests: 2,
        };
        assert_eq!(
            usage_line(Some(&u)),
            "model use: 2 requests, 10 tokens in, 5 out, cost unknown"
        );
        u.cost_micros = 1500;
        u.unpriced_requests = 1;
        assert!(usage_line(Some(&u)).ends_with(", about $0.0015 and more of unknown price"));
    }

    #[test]
    fn facts_and_capabilities_in_words() {
        let row = AgentRow {
            info: AgentInfo {
                id: "docs".into(),
                name: "Documents".into(),
                description: "Finds documents".into(),
                path: zbus::zvariant::OwnedObjectPath::try_from("/a").unwrap(),
                capabilities: vec!["files.list".into(), "files.read".into()],
                handles: vec![],
                connected: false,
            },
            sandboxed: Some(true),
            usage: None,
        };
        assert_eq!(
            row.facts(),
            "docs · not running · sandboxed · no model use recorded"
        );
        assert_eq!(row.capabilities(), "May request: files.list, files.read");
        let none = AgentRow {
            info: AgentInfo {
                capabilities: vec![],
                connected: true,
                ..row.info.clone()
            },
            sandboxed: None,
            usage: Some(UsageInfo {
                kind: "agent".into(),
                who: "docs".into(),
                requests: 3,
                input_tokens: 1200,
                output_tokens: 80,
                millis: 900,
                cost_micros: 1500,
                unpriced_requests: 0,
            }),
        };
        assert_eq!(
            none.facts(),
            "docs · connected · sandbox unknown · model use: 3 requests, 1200 tokens in, 80 out, \
             about $0.0015"
        );
        assert_eq!(none.capabilities(), "Requests no capabilities");
    }
}
