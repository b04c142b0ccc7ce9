//! The Tasks page: the live delegation tree (state, agent, goal and message, progress, elapsed
//! time) from `ListTasks` kept current by the kernel's task events, and the selected task's
//! details: its result and artifacts, and a button to cancel it with its subtree.

use agentos_client::{Client, TaskEvent};
use agentos_dbus_interfaces::{ArtifactInfo, TaskInfo};
use futures_util::StreamExt;
use gtk::prelude::*;
use relm4::prelude::*;
use relm4::typed_view::list::TypedListView;

use super::task_item::TaskItem;
use super::{artifact_files, artifact_view};
use crate::model::paging::Older;
use crate::model::tasks::{self, Applied, TaskStore};
use crate::model::{artifacts, format};

#[derive(Debug)]
pub enum TasksInput {
    Connected(Client),
    Disconnected,
    /// A row was selected (its position in the list).
    Selected(u32),
    /// Cancel the selected task.
    Cancel,
    /// A second passed: redraw the elapsed time of running tasks.
    Tick,
    /// Select this task (from a notification).
    Select(u64),
    /// Read the next page of older tasks.
    Older,
    /// Ask where to save a copy of the selected task's artifact.
    SaveArtifact(String),
    /// Save a copy of the selected task's artifact at this path.
    SaveTo(String, std::path::PathBuf),
}

/// What the page tells the window.
#[derive(Debug)]
pub enum TasksOutput {
    /// A task finished while the page followed it (not one that was finished when listed).
    Finished(crate::model::tasks::Task),
}

/// An artifact, with the text of a small text one.
pub type Artifact = (ArtifactInfo, artifacts::Viewer, artifacts::Preview);

#[derive(Debug)]
pub enum TasksCmd {
    /// A page of tasks (the tasks, the `before` of the next page, 0 at the oldest); `true` for
    /// an older page to add, `false` for the newest page, which replaces what was shown.
    Loaded(u64, Result<(Vec<TaskInfo>, u64), String>, bool),
    Event(u64, Result<TaskEvent, String>),
    /// The page follows the kernel's task events now (or cannot): the list is read after this,
    /// so that no change between the list and the subscription goes unseen.
    Following(u64),
    /// A task first seen in an event, as `GetTask` describes it.
    Fetched(u64, TaskInfo),
    /// The task, and its artifacts with a text preview of the small text ones.
    Details(u64, Result<(TaskInfo, Vec<Artifact>), String>),
    Canceled(Result<(), String>),
    /// A copy was saved: (artifact, path, bytes) or why not.
    Saved(Result<(String, std::path::PathBuf, u64), String>),
}

pub struct TasksPage {
    client: Option<Client>,
    /// Bumped with each kernel: results of an earlier one are dropped.
    generation: u64,
    store: TaskStore,
    list: TypedListView<TaskItem, gtk::SingleSelection>,
    selected: Option<u64>,
    /// A task to select once it is listed (a notification named it before the list was read).
    wanted: Option<u64>,
    /// The `before` of the next older page (0 when the oldest was read), and whether one is
    /// being read.
    paging: Older,
    older: gtk::Button,
    /// The file chooser open now, if any (kept alive until it answers).
    chooser: Option<gtk::FileChooserNative>,
    status: gtk::Label,
    details: gtk::Box,
    cancel: gtk::Button,
}

impl Component for TasksPage {
    type Init = ();
    type Input = TasksInput;
    type Output = TasksOutput;
    type CommandOutput = TasksCmd;
    type Widgets = ();
    type Root = gtk::Box;

    fn init_root() -> gtk::Box {
        gtk::Box::new(gtk::Orientation::Vertical, 0)
    }

    fn init(_: (), root: gtk::Box, sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let (frame, status) = crate::ui::page("Tasks");
        frame.set_vexpand(true);
        root.append(&frame);
        let list: TypedListView<TaskItem, gtk::SingleSelection> = TypedListView::new();
        list.selection_model.set_autoselect(false);
        list.selection_model.set_can_unselect(true);
        list.view.set_widget_name("tasks-list");
        let input = sender.input_sender().clone();
        list.selection_model.connect_selected_notify(move |s| {
            input.emit(TasksInput::Selected(s.selected()));
        });
        let scroll = gtk::ScrolledWindow::new();
        scroll.set_vexpand(true);
        scroll.set_child(Some(&list.view));
        let paned = gtk::Paned::new(gtk::Orientation::Vertical);
        paned.set_vexpand(true);
        paned.set_start_child(Some(&scroll));
        let lower = gtk::Box::new(gtk::Orientation::Vertical, 6);
        let details = gtk::Box::new(gtk::Orientation::Vertical, 6);
        details.set_widget_name("task-details");
        let cancel = gtk::Button::with_mnemonic("_Cancel Task");
        cancel.add_css_class("destructive-action");
        cancel.set_halign(gtk::Align::Start);
        cancel.set_sensitive(false);
        let input = sender.input_sender().clone();
        cancel.connect_clicked(move |_| input.emit(TasksInput::Cancel));
        let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        buttons.append(&cancel);
        let older = gtk::Button::with_mnemonic("Load _Older Tasks");
        older.set_sensitive(false);
        let input = sender.input_sender().clone();
        older.connect_clicked(move |_| input.emit(TasksInput::Older));
        buttons.append(&older);
        lower.append(&buttons);
        let details_scroll = gtk::ScrolledWindow::new();
        details_scroll.set_vexpand(true);
        details_scroll.set_child(Some(&details));
        lower.append(&details_scroll);
        paned.set_end_child(Some(&lower));
        paned.set_position(360);
        frame.append(&paned);
        status.set_label("Waiting for AgentOS…");
        let input = sender.input_sender().clone();
        gtk::glib::timeout_add_seconds_local(1, move || {
            if input.send(TasksInput::Tick).is_ok() {
                gtk::glib::ControlFlow::Continue
            } else {
                gtk::glib::ControlFlow::Break
            }
        });
        let model = TasksPage {
            client: None,
            generation: 0,
            store: TaskStore::default(),
            list,
            selected: None,
            wanted: None,
            paging: Older::default(),
            older,
            chooser: None,
            status,
            details,
            cancel,
        };
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, msg: TasksInput, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            TasksInput::Connected(client) => {
                self.generation += 1;
                self.paging.reset();
                self.older.set_sensitive(false);
                self.client = Some(client.clone());
                self.follow(&sender, client);
            }
            TasksInput::SaveArtifact(name) => self.choose_destination(name, &sender),
            TasksInput::SaveTo(name, path) => {
                self.chooser = None;
                let (Some(client), Some(id)) = (self.client.clone(), self.selected) else {
                    return;
                };
                sender.oneshot_command(async move {
                    TasksCmd::Saved(artifact_files::save_copy(&client, id, name, path).await)
                });
            }
            TasksInput::Older => {
                if let Some(before) = self.paging.start() {
                    self.older.set_sensitive(false);
                    self.read_page(&sender, before);
                }
            }
            TasksInput::Disconnected => {
                self.generation += 1;
                self.paging.reset();
                self.older.set_sensitive(false);
                self.client = None;
                self.cancel.set_sensitive(false);
            }
            TasksInput::Selected(pos) => {
                let id = self.list.get(pos).map(|item| item.borrow().row.task.id);
                if id.is_some() && id != self.selected {
                    self.selected = id;
                    self.show_selected();
                    self.fetch_details(&sender);
                }
            }
            TasksInput::Select(id) => match self.list.find(|t| t.row.task.id == id) {
                Some(pos) => self.list.selection_model.set_selected(pos),
                None => self.wanted = Some(id),
            },
            TasksInput::Tick => {
                let running: Vec<u64> = self
                    .list
                    .iter()
                    .filter_map(|item| {
                        let item = item.borrow();
                        (!item.row.task.is_finished()).then_some(item.row.task.id)
                    })
                    .collect();
                for id in running {
                    self.replace(id);
                }
            }
            TasksInput::Cancel => {
                let (Some(client), Some(id)) = (self.client.clone(), self.selected) else {
                    return;
                };
                self.cancel.set_sensitive(false);
                sender.oneshot_command(async move {
                    let r =
                        super::on_kernel(&client, |k| async move { k.cancel_task(id).await }).await;
                    TasksCmd::Canceled(r)
                });
            }
        }
    }

    fn update_cmd(&mut self, msg: TasksCmd, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            TasksCmd::Loaded(g, ..)
            | TasksCmd::Event(g, _)
            | TasksCmd::Fetched(g, _)
            | TasksCmd::Following(g)
                if g != self.generation => {}
            TasksCmd::Following(_) => self.read_page(&sender, 0),
            TasksCmd::Loaded(_, Ok((tasks, next)), older) => {
                if older {
                    self.store.extend(tasks);
                } else {
                    // A task running until now that the list shows finished (the list was read
                    // before the event that ends it) is announced here, once.
                    let running: Vec<u64> =
                        self.store.ids().filter(|id| !self.finished(*id)).collect();
                    self.store.load(tasks);
                    for id in running {
                        self.announce_if_finished(id, false, &sender);
                    }
                }
                self.paging.loaded(next);
                self.older.set_sensitive(self.paging.enabled());
                self.rebuild();
            }
            TasksCmd::Loaded(_, Err(e), _) => {
                // The button is back where there is more to read, to try again.
                self.paging.failed();
                self.older.set_sensitive(self.paging.enabled());
                self.status.set_label(&format!("Cannot list tasks: {e}"))
            }
            TasksCmd::Event(_, Ok(ev)) => match self.apply(&ev, &sender) {
                Applied::Changed(id) => {
                    self.replace(id);
                    if Some(id) == self.selected {
                        self.show_selected();
                        if ev.state.is_terminal() {
                            self.fetch_details(&sender);
                        }
                    }
                }
                Applied::New(id) => {
                    self.insert(id);
                    self.fetch(&sender, id);
                }
            },
            TasksCmd::Event(_, Err(e)) => tracing::warn!("a task event was dropped: {e}"),
            TasksCmd::Fetched(_, info) => {
                let id = info.id;
                self.put(info, &sender);
                self.replace(id);
            }
            // Read before the end that a fresher reply (asked for at the end) shows: not drawn.
            TasksCmd::Details(id, Ok((info, _))) if tasks::is_stale(&info, self.store.get(id)) => {}
            TasksCmd::Details(id, r) if Some(id) == self.selected => match r {
                Ok((info, artifacts)) => {
                    self.put(info, &sender);
                    self.replace(id);
                    self.show_selected();
                    self.show_artifacts(&artifacts, &sender);
                }
                Err(e) => self
                    .details
                    .append(&crate::ui::text(&format!("Cannot read the task: {e}"))),
            },
            TasksCmd::Details(..) => {}
            TasksCmd::Canceled(Err(e)) => {
                self.status.set_label(&format!("Cannot cancel: {e}"));
                self.show_selected();
            }
            TasksCmd::Canceled(Ok(())) => {}
            TasksCmd::Saved(Ok((name, path, bytes))) => self.status.set_label(&format!(
                "Saved a copy of {} ({}) as {}",
                format::line(&name, 80),
                format::size(bytes),
                path.display()
            )),
            TasksCmd::Saved(Err(e)) => self.status.set_label(&format!("Cannot save: {e}")),
        }
    }
}

impl TasksPage {
    /// Read the page of tasks before `before` (0: the newest page).
    fn read_page(&self, sender: &ComponentSender<Self>, before: u64) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let generation = self.generation;
        sender.oneshot_command(async move {
            let r = super::on_kernel(&client, |k| async move {
                k.list_task_page(before, super::TASKS_LOADED).await
            })
            .await;
            TasksCmd::Loaded(generation, r, before != 0)
        });
    }

    /// Follow the kernel's task events until that kernel changes.
    fn follow(&self, sender: &ComponentSender<Self>, client: Client) {
        let generation = self.generation;
        sender.command(move |out, shutdown| {
            shutdown
                .register(async move {
                    let changed = client.owner_changed();
                    tokio::pin!(changed);
                    let subscribed = client.task_events().await;
                    let _ = out.send(TasksCmd::Following(generation));
                    let mut events = match subscribed {
                        Ok(events) => events,
                        Err(e) => {
                            let _ = out.send(TasksCmd::Event(generation, Err(e.to_string())));
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            ev = events.next() => match ev {
                                Some(ev) => {
                                    let ev = ev.map_err(|e| e.to_string());
                                    if out.send(TasksCmd::Event(generation, ev)).is_err() {
                                        return;
                                    }
                                }
                                None => return,
                            },
                            () = &mut changed => return,
                        }
                    }
                })
                .drop_on_shutdown()
        });
    }

    /// Ask the kernel about a task first seen in an event.
    fn fetch(&self, sender: &ComponentSender<Self>, id: u64) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let generation = self.generation;
        sender.oneshot_command(async move {
            match super::on_kernel(&client, |k| async move { k.get_task(id).await }).await {
                Ok(info) => TasksCmd::Fetched(generation, info),
                Err(e) => TasksCmd::Event(generation, Err(e)),
            }
        });
    }

    fn fetch_details(&self, sender: &ComponentSender<Self>) {
        let (Some(client), Some(id)) = (self.client.clone(), self.selected) else {
            return;
        };
        sender.oneshot_command(async move {
            let r = async {
                let info =
                    super::on_kernel(&client, |k| async move { k.get_task(id).await }).await?;
                let Ok(task) = client.task(id).await else {
                    return Ok((info, Vec::new()));
                };
                let mut artifacts = Vec::new();
                for (name, sha256, size) in task.artifacts().await.unwrap_or_default() {
                    let a = ArtifactInfo { name, sha256, size };
                    let viewer = artifacts::viewer_of(&a);
                    let preview = artifact_files::read_preview(&task, &a, viewer).await;
                    artifacts.push((a, viewer, preview));
                }
                Ok((info, artifacts))
            }
            .await;
            TasksCmd::Details(id, r)
        });
    }

    fn rebuild(&mut self) {
        let rows = self.store.rows();
        self.list.clear();
        self.list
            .extend_from_iter(rows.into_iter().map(|row| TaskItem { row }));
        if let Some(id) = self.wanted.take().or(self.selected) {
            if let Some(pos) = self.list.find(|t| t.row.task.id == id) {
                self.list.selection_model.set_selected(pos);
            }
        }
        self.count();
    }

    /// Apply an event; a task it finishes is announced to the window.
    fn apply(&mut self, ev: &TaskEvent, sender: &ComponentSender<Self>) -> Applied {
        let was_finished = self.finished(ev.id);
        let applied = self.store.apply(ev);
        self.announce_if_finished(ev.id, was_finished, sender);
        applied
    }

    /// Put what `GetTask` said; a task it shows finished first (its reply can be read before
    /// the event that ends it) is announced to the window, once.
    fn put(&mut self, info: TaskInfo, sender: &ComponentSender<Self>) {
        let (id, was_finished) = (info.id, self.finished(info.id));
        self.store.put(info);
        self.announce_if_finished(id, was_finished, sender);
    }

    fn finished(&self, id: u64) -> bool {
        self.store.get(id).is_some_and(|t| t.is_finished())
    }

    fn announce_if_finished(&self, id: u64, was_finished: bool, sender: &ComponentSender<Self>) {
        match self.store.get(id) {
            Some(task) if task.is_finished() && !was_finished => {
                let _ = sender.output(TasksOutput::Finished(task.clone()));
            }
            _ => {}
        }
    }

    /// Show a task that was not in the list, at its place in the tree.
    fn insert(&mut self, id: u64) {
        let rows = self.store.rows();
        match rows.iter().position(|r| r.task.id == id) {
            Some(pos) if rows.len() == self.list.len() as usize + 1 => {
                self.list.insert(
                    pos as u32,
                    TaskItem {
                        row: rows[pos].clone(),
                    },
                );
                self.count();
            }
            _ => self.rebuild(),
        }
    }

    fn count(&self) {
        let n = self.store.len();
        self.status.set_label(&match n {
            0 => "No tasks yet.".to_string(),
            1 => "1 task".to_string(),
            n => format!("{n} tasks"),
        });
    }

    /// Redraw one task's row in place.
    fn replace(&mut self, id: u64) {
        let Some(pos) = self.list.find(|t| t.row.task.id == id) else {
            return;
        };
        let Some(task) = self.store.get(id).cloned() else {
            return;
        };
        if let Some(item) = self.list.get(pos) {
            let depth = item.borrow().row.depth;
            drop(item);
            self.list.remove(pos);
            self.list.insert(
                pos,
                TaskItem {
                    row: crate::model::tasks::Row { task, depth },
                },
            );
            if Some(id) == self.selected {
                self.list.selection_model.set_selected(pos);
            }
        }
    }

    fn show_selected(&self) {
        crate::ui::clear(&self.details);
        let Some(t) = self.selected.and_then(|id| self.store.get(id)) else {
            self.cancel.set_sensitive(false);
            return;
        };
        self.cancel
            .set_sensitive(self.client.is_some() && !t.is_finished());
        let head = gtk::Label::new(Some(&format!(
            "Task {} · {} · {} · {}%",
            t.id,
            format::line(&t.agent, 60),
            format::line(&t.state_name, 20),
            format::percent(t.progress)
        )));
        head.add_css_class("heading");
        head.set_xalign(0.0);
        self.details.append(&head);
        let d = &self.details;
        d.append(&crate::ui::caption(&format!(
            "Started {} by {} · {}",
            crate::ui::time(t.created),
            format::line(&t.caller, 60),
            format::elapsed(t.created, t.updated, t.is_finished(), format::now_ms())
        )));
        d.append(&crate::ui::text(&format!(
            "Goal: {}",
            format::line(&t.goal, 2000)
        )));
        if !t.message.is_empty() {
            d.append(&crate::ui::text(&format!(
                "Status: {}",
                format::line(&t.message, 2000)
            )));
        }
        if !t.result.is_empty() {
            let result = crate::ui::text(&agentos_client::display_safe_block(&t.result, 64 * 1024));
            result.set_widget_name("task-result");
            d.append(&result);
        }
    }

    fn show_artifacts(&self, artifacts: &[Artifact], sender: &ComponentSender<Self>) {
        if artifacts.is_empty() {
            return;
        }
        let title = gtk::Label::new(Some("Artifacts"));
        title.add_css_class("heading");
        title.set_xalign(0.0);
        self.details.append(&title);
        for (a, viewer, preview) in artifacts {
            self.details
                .append(&crate::ui::text(&artifact_view::describe(a)));
            if let Some(shown) = artifact_view::viewer(*viewer, preview) {
                self.details.append(&shown);
            }
            let save = gtk::Button::with_label("Save a Copy…");
            save.set_halign(gtk::Align::Start);
            let (input, name) = (sender.input_sender().clone(), a.name.clone());
            save.connect_clicked(move |_| input.emit(TasksInput::SaveArtifact(name.clone())));
            self.details.append(&save);
        }
    }

    /// Ask where to save a copy of an artifact.
    fn choose_destination(&mut self, name: String, sender: &ComponentSender<Self>) {
        let input = sender.input_sender().clone();
        let chooser = artifact_view::choose_destination(
            self.details.upcast_ref(),
            &name.clone(),
            move |path| input.emit(TasksInput::SaveTo(name.clone(), path)),
        );
        self.chooser = Some(chooser);
    }
}
