//! The consent dialog: one `AdwMessageDialog` at a time over the panel's window, naming who
//! asks, for what, on which scope, for which task and delegation chain, with every value from
//! the bus escaped and long values cut (the whole value behind an expander). Deny is the
//! default response and the close response (Enter and Escape deny); every answer has a
//! mnemonic. The component's own widget is the count of requests waiting, for the header bar.
//!
//! A notification's button may answer a request this panel does not hold yet: a panel started
//! by that very click (D-Bus activation, `ActivateAction`) after the one that sent the
//! notification went away. The answer is kept ([`super::early`]) and given when the kernel asks
//! this panel again (it asks a panel that comes back, with the same handle).

use std::time::Instant;

use adw::prelude::*;
use relm4::prelude::*;
use tokio::sync::oneshot;

use super::early::EarlyAnswers;
use super::queue::{Dismissed, Pending, Queue};
use super::request::{request_id, Answer, Preview, Shown};
use super::service::ConsentEvent;

/// The dialog window's title (what window lists and screen readers name it).
pub const DIALOG_TITLE: &str = "AgentOS: permission needed";

/// Tallest the dialog's details grow before they scroll (pixels).
const MAX_DETAILS_HEIGHT: i32 = 300;

/// The response id of deny.
pub const DENY: &str = "deny";

#[derive(Debug)]
pub enum ConsentInput {
    Event(ConsentEvent),
    /// The dialog for `handle` was answered.
    Responded(String, Answer),
    /// A notification's button answered the request `handle` (perhaps before it is asked).
    FromNotification(String, Answer),
    /// Forget answers kept longer than [`super::early::KEPT`].
    Expire,
}

/// What the window hears about requests (for notifications).
#[derive(Debug)]
pub enum ConsentOutput {
    /// A request waits for the user: (handle, what the dialog shows, the answers offered,
    /// whether a window of the panel was in front when it came).
    Asked(String, Shown, Vec<Answer>, bool),
    /// It was answered or closed.
    Settled(String),
    /// Requests this panel holds or answers it keeps (the application stays while any are).
    Outstanding(usize),
}

pub struct ConsentDialogs {
    parent: gtk::Window,
    queue: Queue<oneshot::Sender<Answer>>,
    shown: Option<adw::MessageDialog>,
    /// Answers from notifications to requests not asked of this panel yet.
    early: EarlyAnswers,
    /// A timer to forget kept answers is set (one at a time).
    expiry_set: bool,
}

impl Component for ConsentDialogs {
    type Init = gtk::Window;
    type Input = ConsentInput;
    type Output = ConsentOutput;
    type CommandOutput = ();
    type Widgets = ();
    type Root = gtk::Label;

    fn init_root() -> gtk::Label {
        let l = gtk::Label::new(None);
        l.add_css_class("warning");
        l.set_visible(false);
        l
    }

    fn init(
        parent: gtk::Window,
        _root: gtk::Label,
        _sender: ComponentSender<Self>,
    ) -> ComponentParts<Self> {
        let model = ConsentDialogs {
            parent,
            queue: Queue::default(),
            shown: None,
            early: EarlyAnswers::default(),
            expiry_set: false,
        };
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, msg: ConsentInput, sender: ComponentSender<Self>, root: &gtk::Label) {
        match msg {
            ConsentInput::Event(ConsentEvent::Ask(pending)) if self.early.has(&pending.handle) => {
                // Answered already by a notification's button, if it was asked before that
                // and offers that answer.
                let handle = pending.handle.clone();
                match self
                    .early
                    .take(&handle, pending.since)
                    .filter(|a| pending.offers(*a))
                {
                    Some(answer) => {
                        tracing::debug!(%handle, "a request asked again was answered by a notification");
                        let _ = pending.reply.send(answer);
                        let _ = sender.output(ConsentOutput::Settled(handle));
                    }
                    None => self.ask(pending, &sender),
                }
            }
            ConsentInput::Event(ConsentEvent::Ask(pending)) => self.ask(pending, &sender),
            ConsentInput::Event(ConsentEvent::Dismiss(handle)) => {
                let (what, pending) = self.queue.dismiss(&handle);
                if let Some(p) = pending {
                    let _ = p.reply.send(Answer::Dismissed);
                    let _ = sender.output(ConsentOutput::Settled(handle.clone()));
                }
                if what == Dismissed::Shown {
                    if let Some(d) = self.shown.take() {
                        d.close();
                    }
                    self.show_current(&sender);
                }
            }
            ConsentInput::FromNotification(handle, answer)
                if self.queue.offers(&handle, answer) == Some(false) =>
            {
                // Not a button its notification had: not the user's click.
                tracing::warn!(%handle, ?answer, "an action named an answer its request does not offer; ignored");
            }
            ConsentInput::FromNotification(handle, answer) => {
                let (what, pending) = self.queue.dismiss(&handle);
                match pending {
                    Some(p) => {
                        let _ = p.reply.send(answer);
                        let _ = sender.output(ConsentOutput::Settled(handle));
                    }
                    None if request_id(&handle).is_some() => {
                        tracing::debug!(%handle, "a notification answered a request not asked yet");
                        let now_ms = crate::model::format::now_ms();
                        self.early.keep(&handle, answer, now_ms, Instant::now());
                        self.expire_later(&sender);
                    }
                    None => {}
                }
                if what == Dismissed::Shown {
                    if let Some(d) = self.shown.take() {
                        d.close();
                    }
                    self.show_current(&sender);
                }
            }
            ConsentInput::Expire => {
                self.expiry_set = false;
                self.early.expire(Instant::now());
                self.expire_later(&sender);
            }
            ConsentInput::Responded(handle, answer) => {
                // From its dialog, or from a notification's button (shown or still waiting).
                let (what, pending) = self.queue.dismiss(&handle);
                if let Some(p) = pending {
                    let _ = p.reply.send(answer);
                    let _ = sender.output(ConsentOutput::Settled(handle));
                }
                if what == Dismissed::Shown {
                    if let Some(d) = self.shown.take() {
                        d.close();
                    }
                    self.show_current(&sender);
                }
            }
        }
        let waiting = self.queue.len();
        let _ = sender.output(ConsentOutput::Outstanding(waiting + self.early.len()));
        root.set_visible(waiting > 0);
        root.set_label(&match waiting {
            0 => String::new(),
            1 => "1 request waits for you".into(),
            n => format!("{n} requests wait for you"),
        });
    }

    fn shutdown(&mut self, _widgets: &mut (), _output: relm4::Sender<ConsentOutput>) {
        for p in self.queue.drain() {
            let _ = p.reply.send(Answer::Dismissed);
        }
    }
}

impl ConsentDialogs {
    /// Set the timer that forgets the oldest kept answer, unless one is set or none is kept:
    /// one timer, however many activations come.
    fn expire_later(&mut self, sender: &ComponentSender<Self>) {
        if self.expiry_set {
            return;
        }
        let Some(after) = self.early.next_expiry(Instant::now()) else {
            return;
        };
        self.expiry_set = true;
        let input = sender.input_sender().clone();
        gtk::glib::timeout_add_local_once(after, move || input.emit(ConsentInput::Expire));
    }

    /// Ask the user: the window hears of it (for a notification), and its dialog is shown
    /// when no other is.
    fn ask(&mut self, pending: Pending<oneshot::Sender<Answer>>, sender: &ComponentSender<Self>) {
        let in_front = crate::notify::in_front();
        let _ = sender.output(ConsentOutput::Asked(
            pending.handle.clone(),
            pending.shown.clone(),
            pending.answers.clone(),
            in_front,
        ));
        if self.queue.push(pending) {
            self.show_current(sender);
        }
    }

    fn show_current(&mut self, sender: &ComponentSender<Self>) {
        let Some(p) = self.queue.current() else {
            return;
        };
        let dialog = build(&self.parent, p);
        let handle = p.handle.clone();
        let answers = p.answers.clone();
        let input = sender.input_sender().clone();
        dialog.connect_response(None, move |_, response| {
            let answer = answers
                .iter()
                .copied()
                .find(|a| a.option_id() == Some(response))
                .unwrap_or(Answer::Deny);
            input.emit(ConsentInput::Responded(handle.clone(), answer));
        });
        self.parent.present();
        dialog.present();
        focus_deny(&dialog);
        self.shown = Some(dialog);
    }
}

/// The dialog for one request.
pub fn build<R>(parent: &gtk::Window, p: &Pending<R>) -> adw::MessageDialog {
    let s = &p.shown;
    let dialog = adw::MessageDialog::new(Some(parent), Some(&s.title), Some(&s.subtitle));
    dialog.set_modal(true);
    dialog.set_title(Some(DIALOG_TITLE));
    dialog.set_widget_name("consent-dialog");
    dialog.set_extra_child(Some(&details(s)));
    dialog.add_response(DENY, Answer::Deny.label());
    dialog.set_response_appearance(DENY, adw::ResponseAppearance::Suggested);
    for a in &p.answers {
        if let Some(id) = a.option_id() {
            dialog.add_response(id, a.label());
            if *a == Answer::Always {
                dialog.set_response_appearance(id, adw::ResponseAppearance::Destructive);
            }
        }
    }
    dialog.set_default_response(Some(DENY));
    dialog.set_close_response(DENY);
    dialog
}

/// Put the keyboard focus on Deny: Return then denies (and only denies), whichever way the
/// dialog laid its buttons out.
fn focus_deny(dialog: &adw::MessageDialog) {
    fn find(w: &gtk::Widget) -> Option<gtk::Button> {
        if let Some(b) = w.downcast_ref::<gtk::Button>() {
            if b.label().as_deref() == Some(Answer::Deny.label()) {
                return Some(b.clone());
            }
        }
        let mut child = w.first_child();
        while let Some(c) = child {
            if let Some(b) = find(&c) {
                return Some(b);
            }
            child = c.next_sibling();
        }
        None
    }
    if let Some(deny) = find(dialog.upcast_ref()) {
        gtk::prelude::GtkWindowExt::set_focus(dialog, Some(&deny));
        // The dialog picks its own focus when it is mapped: take it back after that.
        let dialog = dialog.clone();
        gtk::glib::idle_add_local_once(move || {
            gtk::prelude::GtkWindowExt::set_focus(&dialog, Some(&deny));
        });
    }
}

/// A label of the dialog: wrapped, not selectable (a selectable label would take the focus
/// from Deny and show itself selected).
fn plain(s: &str) -> gtk::Label {
    let l = crate::ui::text(s);
    l.set_selectable(false);
    l
}

/// The body, the facts (who, what, where, which task) and the chain, scrolled when taller than
/// a screen can hold beside the buttons (which must stay in view).
fn details(s: &Shown) -> gtk::ScrolledWindow {
    let b = gtk::Box::new(gtk::Orientation::Vertical, 8);
    let icon = super::icon::image(&s.icon);
    icon.set_pixel_size(48);
    icon.set_widget_name("consent-requester-icon");
    b.append(&icon);
    if !s.body.is_empty() {
        let body = plain(&s.body);
        body.set_widget_name("consent-body");
        b.append(&body);
    }
    let grid = gtk::Grid::new();
    grid.set_column_spacing(12);
    grid.set_row_spacing(4);
    for (row, (label, value)) in s.facts.iter().enumerate() {
        let l = gtk::Label::new(Some(label));
        l.add_css_class("dim-label");
        l.set_xalign(1.0);
        l.set_yalign(0.0);
        grid.attach(&l, 0, row as i32, 1, 1);
        grid.attach(&value_widget(value), 1, row as i32, 1, 1);
    }
    b.append(&grid);
    if !s.chain.is_empty() {
        let title = gtk::Label::new(Some("Delegation chain (the asking task first)"));
        title.add_css_class("heading");
        title.set_xalign(0.0);
        b.append(&title);
        for line in &s.chain {
            b.append(&plain(line));
        }
    }
    let scroll = gtk::ScrolledWindow::new();
    scroll.set_hscrollbar_policy(gtk::PolicyType::Never);
    scroll.set_max_content_height(MAX_DETAILS_HEIGHT);
    scroll.set_propagate_natural_height(true);
    scroll.set_child(Some(&b));
    scroll
}

/// A value: its short form, and the whole of it behind an expander when it was cut.
fn value_widget(v: &Preview) -> gtk::Widget {
    let short = plain(&v.short);
    short.set_hexpand(true);
    match &v.full {
        None => short.upcast(),
        Some(full) => {
            let b = gtk::Box::new(gtk::Orientation::Vertical, 2);
            b.append(&short);
            let expander = gtk::Expander::new(Some("Show all of it"));
            let whole = crate::ui::text(full);
            let scroll = gtk::ScrolledWindow::new();
            scroll.set_max_content_height(240);
            scroll.set_propagate_natural_height(true);
            scroll.set_child(Some(&whole));
            expander.set_child(Some(&scroll));
            b.append(&expander);
            b.upcast()
        }
    }
}
