//! The Activity page: the audit log, read from the kernel a page at a time (newest page first,
//! older pages on request: the panel never holds the whole log), filterable by agent or app,
//! capability and decision, under the log's verification status
//! (`VerifyAuditLogDetails`: intact or not, the checkpoint, what could not be checked).

use agentos_client::Client;
use agentos_dbus_interfaces::{AuditDecision, AuditRecord};
use gtk::prelude::*;
use relm4::prelude::*;
use relm4::typed_view::list::{RelmListItem, TypedListView};

use crate::model::audit::{Filter, Pager};
use crate::model::format;

#[derive(Debug)]
pub enum ActivityInput {
    Connected(Client),
    Disconnected,
    Reload,
    Older,
    Filter,
}

/// What the verification found.
#[derive(Debug, Clone)]
pub struct Verification {
    pub ok: bool,
    pub records: u64,
    pub problem: String,
    pub checkpoint: String,
    pub unchecked: Vec<String>,
}

impl Verification {
    /// One sentence for the top of the page.
    pub fn summary(&self) -> String {
        if self.ok {
            format!(
                "Verified: {} records intact, checkpoint {}.",
                self.records,
                format::line(&self.checkpoint, 20)
            )
        } else {
            format!(
                "NOT intact: {} (checkpoint {}).",
                format::line(&self.problem, 400),
                format::line(&self.checkpoint, 20)
            )
        }
    }
}

#[derive(Debug)]
pub enum ActivityCmd {
    Verified(u64, Result<Verification, String>),
    Page(u64, u64, Result<Vec<AuditRecord>, String>),
}

#[derive(Debug, Clone)]
pub struct AuditItem(pub AuditRecord);

pub struct AuditItemWidgets {
    head: gtk::Label,
    reason: gtk::Label,
}

impl RelmListItem for AuditItem {
    type Root = gtk::Box;
    type Widgets = AuditItemWidgets;

    fn setup(_item: &gtk::ListItem) -> (gtk::Box, AuditItemWidgets) {
        let root = gtk::Box::new(gtk::Orientation::Vertical, 2);
        root.set_margin_top(4);
        root.set_margin_bottom(4);
        root.set_margin_start(6);
        let head = crate::ui::cell("");
        let reason = crate::ui::caption("");
        root.append(&head);
        root.append(&reason);
        (root, AuditItemWidgets { head, reason })
    }

    fn bind(&mut self, w: &mut AuditItemWidgets, root: &mut gtk::Box) {
        let r = &self.0;
        root.set_widget_name(&format!("audit-{}", r.seq));
        w.head.set_label(&format!(
            "#{} {} · {} · {} {} {}",
            r.seq,
            crate::ui::time(r.time),
            format::line(&r.decision, 20),
            format::line(&r.principal, 60),
            format::line(&r.capability, 60),
            format::line(&r.scope, 120)
        ));
        w.reason.set_label(&format::line(&r.reason, 400));
    }
}

pub struct ActivityPage {
    client: Option<Client>,
    generation: u64,
    pager: Pager,
    list: TypedListView<AuditItem, gtk::NoSelection>,
    status: gtk::Label,
    verification: gtk::Label,
    principal: gtk::Entry,
    capability: gtk::Entry,
    decision: gtk::DropDown,
    older: gtk::Button,
}

/// The decision filter's entries: "any", then each decision's wire name.
fn decisions() -> Vec<&'static str> {
    std::iter::once("any decision")
        .chain(AuditDecision::ALL.iter().map(|d| d.as_str()))
        .collect()
}

impl Component for ActivityPage {
    type Init = ();
    type Input = ActivityInput;
    type Output = ();
    type CommandOutput = ActivityCmd;
    type Widgets = ();
    type Root = gtk::Box;

    fn init_root() -> gtk::Box {
        gtk::Box::new(gtk::Orientation::Vertical, 0)
    }

    fn init(_: (), root: gtk::Box, sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let (frame, status) = crate::ui::page("Activity");
        frame.set_vexpand(true);
        root.append(&frame);
        let verification = crate::ui::text("");
        verification.set_widget_name("audit-verification");
        frame.append(&verification);
        let filters = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        let principal = gtk::Entry::new();
        principal.set_placeholder_text(Some("Agent or app"));
        let capability = gtk::Entry::new();
        capability.set_placeholder_text(Some("Capability"));
        let decision = gtk::DropDown::from_strings(&decisions());
        let older = gtk::Button::with_mnemonic("Load _Older");
        let reload = gtk::Button::with_mnemonic("_Reload");
        for e in [&principal, &capability] {
            let input = sender.input_sender().clone();
            e.connect_changed(move |_| input.emit(ActivityInput::Filter));
            filters.append(e);
        }
        let input = sender.input_sender().clone();
        decision.connect_selected_notify(move |_| input.emit(ActivityInput::Filter));
        filters.append(&decision);
        let input = sender.input_sender().clone();
        older.connect_clicked(move |_| input.emit(ActivityInput::Older));
        filters.append(&older);
        let input = sender.input_sender().clone();
        reload.connect_clicked(move |_| input.emit(ActivityInput::Reload));
        filters.append(&reload);
        frame.append(&filters);
        let list: TypedListView<AuditItem, gtk::NoSelection> = TypedListView::new();
        list.view.set_widget_name("audit-list");
        let scroll = gtk::ScrolledWindow::new();
        scroll.set_vexpand(true);
        scroll.set_child(Some(&list.view));
        frame.append(&scroll);
        status.set_label("Waiting for AgentOS…");
        ComponentParts {
            model: ActivityPage {
                client: None,
                generation: 0,
                pager: Pager::default(),
                list,
                status,
                verification,
                principal,
                capability,
                decision,
                older,
            },
            widgets: (),
        }
    }

    fn update(&mut self, msg: ActivityInput, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            ActivityInput::Connected(client) => {
                self.client = Some(client);
                self.reload(&sender);
            }
            ActivityInput::Disconnected => {
                self.generation += 1;
                self.client = None;
            }
            ActivityInput::Reload => self.reload(&sender),
            ActivityInput::Older => {
                if let Some((after, limit)) = self.pager.older_page() {
                    self.read(&sender, after, limit);
                }
            }
            ActivityInput::Filter => self.redraw(),
        }
    }

    fn update_cmd(&mut self, msg: ActivityCmd, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            ActivityCmd::Verified(g, _) | ActivityCmd::Page(g, ..) if g != self.generation => {}
            ActivityCmd::Verified(_, Ok(v)) => {
                self.verification.set_label(&v.summary());
                if !v.ok {
                    self.verification.add_css_class("error");
                } else {
                    self.verification.remove_css_class("error");
                }
                if !v.unchecked.is_empty() {
                    let unchecked: Vec<String> =
                        v.unchecked.iter().map(|u| format::line(u, 300)).collect();
                    self.verification
                        .set_tooltip_text(Some(&format!("Not checked: {}", unchecked.join(" "))));
                }
                let (after, limit) = Pager::first_page(v.records);
                self.read(&sender, after, limit);
            }
            ActivityCmd::Verified(_, Err(e)) => {
                self.verification
                    .set_label(&format!("The log could not be verified: {e}"));
                let (after, limit) = Pager::first_page(0);
                self.read(&sender, after, limit);
            }
            ActivityCmd::Page(_, after, Ok(records)) => {
                let full = records.len() >= crate::model::audit::PAGE as usize;
                let newest_page = after >= self.pager.newer_page().0;
                self.pager.take(after, records);
                // The first page may not reach the newest record (a count that was short):
                // read on while pages come back full.
                if full && newest_page {
                    let (after, limit) = self.pager.newer_page();
                    self.read(&sender, after, limit);
                }
                self.redraw();
            }
            ActivityCmd::Page(_, _, Err(e)) => {
                self.status
                    .set_label(&format!("Cannot read the audit log: {e}"));
            }
        }
    }
}

impl ActivityPage {
    fn reload(&mut self, sender: &ComponentSender<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        self.generation += 1;
        self.pager.reset();
        let generation = self.generation;
        sender.oneshot_command(async move {
            let r = super::on_kernel(
                &client,
                |k| async move { k.verify_audit_log_details().await },
            )
            .await
            .map(
                |(ok, records, problem, checkpoint, _checked, unchecked)| Verification {
                    ok,
                    records,
                    problem,
                    checkpoint,
                    unchecked,
                },
            );
            ActivityCmd::Verified(generation, r)
        });
    }

    fn read(&self, sender: &ComponentSender<Self>, after: u64, limit: u32) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let generation = self.generation;
        sender.oneshot_command(async move {
            let r = super::on_kernel(&client, |k| async move {
                k.read_audit_log(after, limit.max(1)).await
            })
            .await;
            ActivityCmd::Page(generation, after, r)
        });
    }

    fn filter(&self) -> Filter {
        let decision = match self.decision.selected() {
            0 | gtk::INVALID_LIST_POSITION => String::new(),
            i => decisions()
                .get(i as usize)
                .map(|d| d.to_string())
                .unwrap_or_default(),
        };
        Filter {
            principal: self.principal.text().to_string(),
            capability: self.capability.text().to_string(),
            decision,
        }
    }

    fn redraw(&mut self) {
        let filter = self.filter();
        let items: Vec<AuditItem> = self
            .pager
            .filtered(&filter)
            .cloned()
            .map(AuditItem)
            .collect();
        self.status.set_label(&format!(
            "{} of {} records read{}",
            items.len(),
            self.pager.len(),
            if self.pager.at_start() {
                " (all of them)"
            } else {
                ""
            }
        ));
        self.older.set_sensitive(self.pager.older_page().is_some());
        self.list.clear();
        self.list.extend_from_iter(items);
    }
}
