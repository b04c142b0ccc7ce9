//! The Permissions page, in the manner of GNOME Settings' privacy pages: for each agent and
//! app, every grant with its scope and lifetime and a button that revokes it at once; grants
//! suspended because their agent changed are shown as such. Above them, the consent requests
//! waiting for the user now (`ListConsentRequests`, followed by `ConsentRequestsChanged`), so
//! that a panel started or restarted late shows what is being asked.

use adw::prelude::*;
use agentos_client::Client;
use agentos_dbus_interfaces::{ConsentRequestInfo, GrantInfo};
use futures_util::StreamExt;
use relm4::prelude::*;

use crate::model::format;
use crate::model::grants::{self, Holder, HolderKind};
use crate::model::latest::Latest;

#[derive(Debug)]
pub enum PermissionsInput {
    Connected(Client),
    Disconnected,
    Reload,
    /// Revoke (principal, capability, scope).
    Revoke(String, String, String),
}

#[derive(Debug)]
pub enum PermissionsCmd {
    /// A read's number and its answer.
    Loaded(u64, Result<Loaded, String>),
    Revoked(Result<u32, String>),
    /// The number of pending consent requests changed.
    PendingChanged,
}

#[derive(Debug)]
pub struct Loaded {
    pub holders: Vec<Holder>,
    pub pending: Vec<ConsentRequestInfo>,
}

pub struct PermissionsPage {
    client: Option<Client>,
    /// What the last revoke did, kept beside the count.
    notice: String,
    status: gtk::Label,
    content: gtk::Box,
    /// Only the last read started is shown.
    reads: Latest,
}

impl Component for PermissionsPage {
    type Init = ();
    type Input = PermissionsInput;
    type Output = ();
    type CommandOutput = PermissionsCmd;
    type Widgets = ();
    type Root = gtk::Box;

    fn init_root() -> gtk::Box {
        gtk::Box::new(gtk::Orientation::Vertical, 0)
    }

    fn init(_: (), root: gtk::Box, _sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let (frame, status) = crate::ui::page("Permissions");
        frame.set_vexpand(true);
        root.append(&frame);
        let content = gtk::Box::new(gtk::Orientation::Vertical, 18);
        content.set_widget_name("permissions-content");
        let clamp = adw::Clamp::new();
        clamp.set_maximum_size(800);
        clamp.set_child(Some(&content));
        let scroll = gtk::ScrolledWindow::new();
        scroll.set_vexpand(true);
        scroll.set_child(Some(&clamp));
        frame.append(&scroll);
        status.set_label("Waiting for AgentOS…");
        ComponentParts {
            model: PermissionsPage {
                client: None,
                notice: String::new(),
                reads: Latest::default(),
                status,
                content,
            },
            widgets: (),
        }
    }

    fn update(&mut self, msg: PermissionsInput, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            PermissionsInput::Connected(client) => {
                self.client = Some(client.clone());
                follow_pending(&sender, client);
                self.load(&sender);
            }
            PermissionsInput::Disconnected => self.client = None,
            PermissionsInput::Reload => self.load(&sender),
            PermissionsInput::Revoke(principal, capability, scope) => {
                let Some(client) = self.client.clone() else {
                    return;
                };
                sender.oneshot_command(async move {
                    let r = super::on_kernel(&client, |k| async move {
                        k.revoke(&principal, &capability, &scope).await
                    })
                    .await;
                    PermissionsCmd::Revoked(r)
                });
            }
        }
    }

    fn update_cmd(&mut self, msg: PermissionsCmd, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            PermissionsCmd::Loaded(read, _) if !self.reads.is_latest(read) => {}
            PermissionsCmd::Loaded(_, Ok(loaded)) => self.show(&loaded, &sender),
            PermissionsCmd::Loaded(_, Err(e)) => {
                self.status
                    .set_label(&format!("Cannot list permissions: {e}"));
            }
            PermissionsCmd::Revoked(Ok(n)) => {
                self.notice = match n {
                    1 => "1 grant revoked.".to_string(),
                    n => format!("{n} grants revoked."),
                };
                self.status.set_label(&self.notice);
                self.load(&sender);
            }
            PermissionsCmd::Revoked(Err(e)) => {
                self.status.set_label(&format!("Cannot revoke: {e}"));
            }
            PermissionsCmd::PendingChanged => self.load(&sender),
        }
    }
}

/// Reload when the kernel says the pending requests changed, until that kernel changes.
fn follow_pending(sender: &ComponentSender<PermissionsPage>, client: Client) {
    sender.command(move |out, shutdown| {
        shutdown
            .register(async move {
                let changed = client.owner_changed();
                tokio::pin!(changed);
                let Ok(k) = client.kernel().await else {
                    return;
                };
                let Ok(mut signals) = k.receive_consent_requests_changed().await else {
                    return;
                };
                loop {
                    tokio::select! {
                        s = signals.next() => {
                            if s.is_none() || out.send(PermissionsCmd::PendingChanged).is_err() {
                                return;
                            }
                        }
                        () = &mut changed => return,
                    }
                }
            })
            .drop_on_shutdown()
    });
}

async fn load(client: &Client) -> Result<Loaded, String> {
    let live: Vec<GrantInfo> =
        super::on_kernel(client, |k| async move { k.list_grants().await }).await?;
    let suspended = super::on_kernel(client, |k| async move { k.list_suspended_grants().await })
        .await
        .unwrap_or_default();
    let agents: Vec<String> = super::on_kernel(client, |k| async move { k.list_agents().await })
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.id)
        .collect();
    let pending = super::on_kernel(client, |k| async move { k.list_consent_requests().await })
        .await
        .unwrap_or_default();
    Ok(Loaded {
        holders: grants::group(live, suspended, &agents),
        pending,
    })
}

impl PermissionsPage {
    fn load(&mut self, sender: &ComponentSender<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let read = self.reads.start();
        sender.oneshot_command(async move { PermissionsCmd::Loaded(read, load(&client).await) });
    }

    fn show(&self, loaded: &Loaded, sender: &ComponentSender<Self>) {
        crate::ui::clear(&self.content);
        if !loaded.pending.is_empty() {
            let group = adw::PreferencesGroup::new();
            group.set_title("Waiting for your answer");
            group.set_description(Some(
                "These requests are being asked now; answer them in their dialog.",
            ));
            for r in &loaded.pending {
                let row = adw::ActionRow::new();
                row.set_title(&glib_escape(&format!(
                    "{} asks for {} on {}",
                    format::line(&r.principal, 80),
                    format::line(&r.capability, 60),
                    format::line(&r.scope, 120)
                )));
                row.set_subtitle(&glib_escape(&format!(
                    "{} · since {}",
                    format::line(&r.title, 120),
                    crate::ui::time(r.since)
                )));
                group.add(&row);
            }
            self.content.append(&group);
        }
        let grants: usize = loaded.holders.iter().map(|h| h.grants.len()).sum();
        let count = match grants {
            0 => "No agent or app holds a grant.".to_string(),
            1 => "1 grant".to_string(),
            n => format!("{n} grants"),
        };
        if self.notice.is_empty() {
            self.status.set_label(&count);
        } else {
            self.status.set_label(&format!("{count} · {}", self.notice));
        }
        for holder in &loaded.holders {
            let group = adw::PreferencesGroup::new();
            group.set_title(&glib_escape(&format::line(&holder.principal, 80)));
            group.set_description(Some(match holder.kind {
                HolderKind::Agent => "Agent",
                HolderKind::HostApp => "App on this computer",
                HolderKind::App => "Sandboxed app",
            }));
            for g in &holder.grants {
                let row = adw::ActionRow::new();
                row.set_title(&glib_escape(&format!(
                    "{} on {}",
                    format::line(&g.capability, 60),
                    g.scope_label()
                )));
                let mut subtitle = format!(
                    "{} · granted {}",
                    g.lifetime_label(),
                    crate::ui::time(g.granted_at)
                );
                if g.suspended {
                    subtitle.push_str(
                        " · suspended: the agent changed since; its next prompt asks you to confirm",
                    );
                }
                row.set_subtitle(&glib_escape(&subtitle));
                let revoke = gtk::Button::with_label("Revoke");
                revoke.set_valign(gtk::Align::Center);
                revoke.add_css_class("destructive-action");
                let (p, c, s) = (g.principal.clone(), g.capability.clone(), g.scope.clone());
                let input = sender.input_sender().clone();
                revoke.connect_clicked(move |b| {
                    b.set_sensitive(false);
                    input.emit(PermissionsInput::Revoke(p.clone(), c.clone(), s.clone()));
                });
                row.add_suffix(&revoke);
                group.add(&row);
            }
            self.content.append(&group);
        }
    }
}

/// Rows and groups of libadwaita read their titles as Pango markup: escape them.
fn glib_escape(s: &str) -> String {
    gtk::glib::markup_escape_text(s).to_string()
}
