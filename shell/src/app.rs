//! The panel's window: an `AdwLeaflet` with the page list on one side and the page shown on
//! the other (folding to one column when narrow), the consent badge in the header, and, while
//! no verified kernel is there, a page saying that AgentOS is not running. It starts the
//! kernel connection ([`crate::link`]) and tells every page when the kernel comes and goes.
//!
//! relm4 builds this component in the application's `startup`, so the actions notifications
//! name are there before any D-Bus call is dispatched: a panel started by D-Bus activation
//! (`--gapplication-service`, as a notification's button starts it when no panel runs) handles
//! `org.freedesktop.Application.ActivateAction` without a window. While requests are
//! outstanding (their notifications unanswered) the application is held and closing the window
//! only hides it; when none are left, a hidden window closes and the panel ends.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use adw::prelude::*;
use relm4::prelude::*;

use gtk::{gio, glib};

use crate::consent::dialog::{ConsentDialogs, ConsentInput, ConsentOutput};
use crate::link::{self, LinkEvent};
use crate::model::tasks::Task;
use crate::notify;
use crate::pages::activity::{ActivityInput, ActivityPage};
use crate::pages::agents::{AgentsInput, AgentsPage};
use crate::pages::artifacts::{ArtifactsInput, ArtifactsPage};
use crate::pages::ask::{AskInput, AskPage};
use crate::pages::permissions::{PermissionsInput, PermissionsPage};
use crate::pages::tasks::{TasksInput, TasksOutput, TasksPage};

/// How the panel starts.
#[derive(Debug, Clone, Default)]
pub struct Init {
    /// The bus to use instead of the session bus.
    pub address: Option<String>,
}

/// The pages, in the order of the sidebar.
pub const PAGES: [(&str, &str); 6] = [
    ("ask", "Ask"),
    ("tasks", "Tasks"),
    ("artifacts", "Artifacts"),
    ("agents", "Agents"),
    ("permissions", "Permissions"),
    ("activity", "Activity"),
];

#[derive(Debug)]
pub enum AppInput {
    /// Show the page at this index of [`PAGES`].
    Show(usize),
    Back,
    /// A task finished (notify when the window is not in front).
    TaskFinished(Task),
    Consent(ConsentOutput),
    /// From a notification: show this task.
    ShowTask(u64),
    /// From a notification: answer a request (handle, option id or "deny").
    Answer(String, String),
    /// From a notification: bring the window to the front.
    Present,
    /// Close the window if it is hidden and nothing is outstanding any more.
    CloseIfIdle,
}

/// How long a hidden window stays after the last outstanding request is settled (so the answer
/// reaches the kernel before the panel ends).
const LINGER: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum AppCmd {
    Link(LinkEvent),
}

pub struct App {
    ask: Controller<AskPage>,
    tasks: Controller<TasksPage>,
    artifacts: Controller<ArtifactsPage>,
    agents: Controller<AgentsPage>,
    permissions: Controller<PermissionsPage>,
    activity: Controller<ActivityPage>,
    consent: Controller<ConsentDialogs>,
    /// Requests outstanding (shared with the window's close handler).
    outstanding: Rc<Cell<usize>>,
    /// Held while any are.
    hold: Option<gio::ApplicationHoldGuard>,
    widgets: AppWidgets,
}

pub struct AppWidgets {
    top: gtk::Stack,
    down: adw::StatusPage,
    leaflet: adw::Leaflet,
    pages: gtk::Stack,
    title: adw::WindowTitle,
    consent_state: gtk::Label,
}

impl Component for App {
    type Init = Init;
    type Input = AppInput;
    type Output = ();
    type CommandOutput = AppCmd;
    type Widgets = ();
    type Root = adw::ApplicationWindow;

    fn init_root() -> adw::ApplicationWindow {
        adw::ApplicationWindow::builder()
            .title("AgentOS")
            .default_width(1000)
            .default_height(700)
            .build()
    }

    fn init(
        init: Init,
        window: adw::ApplicationWindow,
        sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let ask = AskPage::builder().launch(()).detach();
        let tasks = TasksPage::builder()
            .launch(())
            .forward(sender.input_sender(), |o| match o {
                TasksOutput::Finished(t) => AppInput::TaskFinished(t),
            });
        let artifacts = ArtifactsPage::builder().launch(()).detach();
        let agents = AgentsPage::builder().launch(()).detach();
        let permissions = PermissionsPage::builder().launch(()).detach();
        let activity = ActivityPage::builder().launch(()).detach();
        let consent = ConsentDialogs::builder()
            .launch(window.clone().upcast())
            .forward(sender.input_sender(), AppInput::Consent);
        add_actions(&sender);
        // Closing the window while requests wait for an answer only hides it: their
        // notifications' buttons still reach this process.
        let outstanding = Rc::new(Cell::new(0usize));
        let waiting = Rc::clone(&outstanding);
        window.connect_close_request(move |w| {
            if waiting.get() > 0 {
                w.set_visible(false);
                glib::Propagation::Stop
            } else {
                glib::Propagation::Proceed
            }
        });

        // The sidebar.
        let sidebar = gtk::Box::new(gtk::Orientation::Vertical, 0);
        let side_header = adw::HeaderBar::new();
        side_header.set_title_widget(Some(&adw::WindowTitle::new("AgentOS", "")));
        sidebar.append(&side_header);
        let nav = gtk::ListBox::new();
        nav.add_css_class("navigation-sidebar");
        nav.set_widget_name("sidebar");
        nav.set_vexpand(true);
        for (_, label) in PAGES {
            let l = gtk::Label::new(Some(label));
            l.set_xalign(0.0);
            nav.append(&l);
        }
        let input = sender.input_sender().clone();
        nav.connect_row_activated(move |_, row| {
            input.emit(AppInput::Show(usize::try_from(row.index()).unwrap_or(0)));
        });
        sidebar.append(&nav);
        sidebar.set_size_request(200, -1);

        // The content.
        let content = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.set_hexpand(true);
        let header = adw::HeaderBar::new();
        let back = gtk::Button::from_icon_name("go-previous-symbolic");
        back.set_tooltip_text(Some("Back"));
        let input = sender.input_sender().clone();
        back.connect_clicked(move |_| input.emit(AppInput::Back));
        header.pack_start(&back);
        let title = adw::WindowTitle::new("AgentOS", "");
        header.set_title_widget(Some(&title));
        header.pack_end(consent.widget());
        content.append(&header);
        let consent_state = crate::ui::caption("");
        consent_state.set_visible(false);
        consent_state.add_css_class("error");
        content.append(&consent_state);
        let pages = gtk::Stack::new();
        pages.set_vexpand(true);
        for ((name, label), widget) in PAGES.iter().zip([
            ask.widget(),
            tasks.widget(),
            artifacts.widget(),
            agents.widget(),
            permissions.widget(),
            activity.widget(),
        ]) {
            pages.add_titled(widget, Some(name), label);
        }
        content.append(&pages);

        let leaflet = adw::Leaflet::new();
        leaflet.set_can_navigate_back(true);
        leaflet.append(&sidebar);
        let sep = leaflet.append(&gtk::Separator::new(gtk::Orientation::Vertical));
        sep.set_navigatable(false);
        leaflet.append(&content);
        leaflet
            .bind_property("folded", &back, "visible")
            .sync_create()
            .build();
        leaflet
            .bind_property("folded", &side_header, "show-end-title-buttons")
            .sync_create()
            .build();
        leaflet
            .bind_property("folded", &header, "show-start-title-buttons")
            .sync_create()
            .build();

        let down = adw::StatusPage::new();
        down.set_icon_name(Some("network-offline-symbolic"));
        down.set_title("Connecting to AgentOS…");
        down.set_widget_name("kernel-state");
        let top = gtk::Stack::new();
        top.add_named(&down, Some("down"));
        top.add_named(&leaflet, Some("main"));
        top.set_visible_child_name("down");
        window.set_content(Some(&top));

        // The kernel connection, on relm4's runtime. Started once the main loop has run: a
        // panel started for a notification's button has its action (already on the bus when
        // `startup` runs) dispatched first, so its answer is kept before the kernel can ask
        // this panel again.
        let verified = Arc::new(tokio::sync::watch::Sender::new(None));
        let consent_in = consent.sender().clone();
        let ui: link::ConsentUi =
            Arc::new(move |e| consent_in.send(ConsentInput::Event(e)).is_ok());
        let address = init.address;
        let link_sender = sender.clone();
        glib::idle_add_local_once(move || {
            link_sender.command(move |out, shutdown| {
                shutdown
                    .register(link::run(address, verified, ui, move |e| {
                        let _ = out.send(AppCmd::Link(e));
                    }))
                    .drop_on_shutdown()
            });
        });

        let model = App {
            ask,
            tasks,
            artifacts,
            agents,
            permissions,
            activity,
            consent,
            outstanding,
            hold: None,
            widgets: AppWidgets {
                top,
                down,
                leaflet,
                pages,
                title,
                consent_state,
            },
        };
        if let Some(row) = nav.row_at_index(0) {
            nav.select_row(Some(&row));
        }
        model.show(0);
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, msg: AppInput, sender: ComponentSender<Self>, root: &Self::Root) {
        let app: gio::Application = relm4::main_application().upcast();
        match msg {
            AppInput::TaskFinished(task) => {
                if !notify::in_front() {
                    if let Some(n) = notify::task_finished(&task) {
                        notify::send(&app, &n);
                    }
                }
            }
            AppInput::Consent(ConsentOutput::Asked(handle, shown, answers, in_front)) => {
                if !in_front {
                    notify::send(&app, &notify::consent_needed(&handle, &shown, &answers));
                }
            }
            AppInput::Consent(ConsentOutput::Settled(handle)) => {
                notify::withdraw(&app, &notify::consent_id(&handle));
            }
            AppInput::Consent(ConsentOutput::Outstanding(n)) => {
                tracing::debug!(outstanding = n, visible = root.is_visible(), "consent");
                self.outstanding.set(n);
                if n > 0 {
                    if self.hold.is_none() {
                        self.hold = Some(app.hold());
                    }
                } else if self.hold.take().is_some() {
                    let input = sender.input_sender().clone();
                    glib::timeout_add_local_once(LINGER, move || input.emit(AppInput::CloseIfIdle));
                }
            }
            AppInput::CloseIfIdle => {
                if self.outstanding.get() == 0 && !root.is_visible() {
                    // Not `close`: a window never shown (a panel started by D-Bus activation)
                    // is not realized, and GTK closes only realized ones.
                    root.destroy();
                }
            }
            AppInput::ShowTask(id) => {
                self.show(1);
                root.present();
                self.tasks.emit(TasksInput::Select(id));
            }
            AppInput::Answer(handle, option) => {
                self.consent.emit(ConsentInput::FromNotification(
                    handle,
                    notify::answer_of(&option),
                ));
            }
            AppInput::Present => root.present(),
            AppInput::Show(i) => {
                self.show(i);
                self.widgets
                    .leaflet
                    .navigate(adw::NavigationDirection::Forward);
            }
            AppInput::Back => {
                self.widgets
                    .leaflet
                    .navigate(adw::NavigationDirection::Back);
            }
        }
    }

    fn update_cmd(&mut self, msg: AppCmd, _sender: ComponentSender<Self>, _root: &Self::Root) {
        let AppCmd::Link(event) = msg;
        match event {
            LinkEvent::Up(client) => {
                self.widgets.top.set_visible_child_name("main");
                self.ask.emit(AskInput::Connected(client.clone()));
                self.tasks.emit(TasksInput::Connected(client.clone()));
                self.artifacts
                    .emit(ArtifactsInput::Connected(client.clone()));
                self.agents.emit(AgentsInput::Connected(client.clone()));
                self.permissions
                    .emit(PermissionsInput::Connected(client.clone()));
                self.activity.emit(ActivityInput::Connected(client));
            }
            LinkEvent::Down(reason) => {
                self.widgets.down.set_title("AgentOS is not running");
                self.widgets.down.set_description(Some(&format!(
                    "{}\n\nStart it with ./scripts/start (or agentosd); this window \
                     reconnects by itself when it runs.",
                    gtk::glib::markup_escape_text(&reason)
                )));
                self.widgets.top.set_visible_child_name("down");
                self.ask.emit(AskInput::Disconnected);
                self.tasks.emit(TasksInput::Disconnected);
                self.artifacts.emit(ArtifactsInput::Disconnected);
                self.agents.emit(AgentsInput::Disconnected);
                self.permissions.emit(PermissionsInput::Disconnected);
                self.activity.emit(ActivityInput::Disconnected);
            }
            LinkEvent::Consent(Ok(())) => self.widgets.consent_state.set_visible(false),
            LinkEvent::Consent(Err(e)) => {
                self.widgets
                    .consent_state
                    .set_label(&format!("This panel does not answer consent requests: {e}"));
                self.widgets.consent_state.set_visible(true);
            }
        }
    }
}

/// The application's actions that notifications' buttons name.
fn add_actions(sender: &ComponentSender<App>) {
    let app = relm4::main_application();
    let show_task = gio::SimpleAction::new(notify::SHOW_TASK, Some(glib::VariantTy::UINT64));
    let input = sender.input_sender().clone();
    show_task.connect_activate(move |_, v| {
        if let Some(id) = v.and_then(|v| v.get::<u64>()) {
            input.emit(AppInput::ShowTask(id));
        }
    });
    app.add_action(&show_task);
    let consent_ty = glib::VariantTy::new("(ss)").ok();
    let consent = gio::SimpleAction::new(notify::CONSENT, consent_ty);
    let input = sender.input_sender().clone();
    consent.connect_activate(move |_, v| {
        tracing::debug!(target = ?v, "app.consent activated");
        if let Some((handle, option)) = v.and_then(|v| v.get::<(String, String)>()) {
            input.emit(AppInput::Answer(handle, option));
        }
    });
    app.add_action(&consent);
    let show = gio::SimpleAction::new(notify::SHOW, None);
    let input = sender.input_sender().clone();
    show.connect_activate(move |_, _| input.emit(AppInput::Present));
    app.add_action(&show);
}

impl App {
    fn show(&self, i: usize) {
        let Some((name, label)) = PAGES.get(i) else {
            return;
        };
        self.widgets.pages.set_visible_child_name(name);
        self.widgets.title.set_title(label);
        // Pages without a live feed are read again when shown.
        match *name {
            "artifacts" => self.artifacts.emit(ArtifactsInput::Reload),
            "agents" => self.agents.emit(AgentsInput::Reload),
            "permissions" => self.permissions.emit(PermissionsInput::Reload),
            "activity" => self.activity.emit(ActivityInput::Reload),
            _ => {}
        }
    }
}
