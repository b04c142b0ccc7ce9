//! The Artifacts page: every artifact of the user's tasks, newest task first, read from the
//! kernel a page of tasks at a time (`ListTaskPage`, then each completed task's
//! `Task1.Artifacts`), and the selected one in its viewer (text, Markdown, a picture) with
//! "Open with Default App" and "Save a Copy…".

use agentos_client::Client;
use agentos_dbus_interfaces::{ArtifactInfo, TaskInfo, TaskState};
use futures_util::StreamExt;
use gtk::prelude::*;
use relm4::prelude::*;

use super::{artifact_files, artifact_view};
use crate::model::artifacts::{self, Listed, Preview, Viewer};
use crate::model::paging::Older;
use crate::open_with::{self, OpenError, Opened};

/// Tasks whose artifacts are read at once.
const READ_AHEAD: usize = 8;

#[derive(Debug)]
pub enum ArtifactsInput {
    Connected(Client),
    Disconnected,
    /// Read the newest page again (the page was shown).
    Reload,
    /// Read the next page of older tasks' artifacts.
    Older,
    /// The row at this index was selected.
    Selected(usize),
    /// Open the selected artifact with the default app.
    Open,
    /// Ask where to save a copy of the selected artifact.
    Save,
    /// Save a copy of artifact (task, name) at this path.
    SaveTo(u64, String, std::path::PathBuf),
}

#[derive(Debug)]
pub enum ArtifactsCmd {
    /// The artifacts of a page of tasks and the `before` of the next page (0 at the oldest);
    /// `true` for an older page to add.
    Loaded(u64, Result<(Vec<Listed>, u64), String>, bool),
    /// What to show of artifact (task, name).
    Read(u64, String, Viewer, Preview),
    Opened(String, Result<Opened, OpenError>),
    Saved(Result<(String, std::path::PathBuf, u64), String>),
}

pub struct ArtifactsPage {
    client: Option<Client>,
    /// Bumped with each kernel and each reload: answers of an earlier one are dropped.
    generation: u64,
    listed: Vec<Listed>,
    /// The artifact shown, as (task, name).
    selected: Option<(u64, String)>,
    /// The next older page, and whether one is being read.
    paging: Older,
    list: gtk::ListBox,
    older: gtk::Button,
    status: gtk::Label,
    viewer: gtk::Box,
    chooser: Option<gtk::FileChooserNative>,
    input: relm4::Sender<ArtifactsInput>,
}

impl Component for ArtifactsPage {
    type Init = ();
    type Input = ArtifactsInput;
    type Output = ();
    type CommandOutput = ArtifactsCmd;
    type Widgets = ();
    type Root = gtk::Box;

    fn init_root() -> gtk::Box {
        gtk::Box::new(gtk::Orientation::Vertical, 0)
    }

    fn init(_: (), root: gtk::Box, sender: ComponentSender<Self>) -> ComponentParts<Self> {
        let (frame, status) = crate::ui::page("Artifacts");
        frame.set_vexpand(true);
        root.append(&frame);
        status.set_label("Waiting for AgentOS…");
        let list = gtk::ListBox::new();
        list.set_widget_name("artifacts-list");
        list.add_css_class("boxed-list");
        list.set_selection_mode(gtk::SelectionMode::Single);
        let input = sender.input_sender().clone();
        list.connect_row_selected(move |_, row| {
            if let Some(row) = row {
                input.emit(ArtifactsInput::Selected(
                    usize::try_from(row.index()).unwrap_or(0),
                ));
            }
        });
        let scroll = gtk::ScrolledWindow::new();
        scroll.set_vexpand(true);
        scroll.set_child(Some(&list));
        let older = gtk::Button::with_mnemonic("Load _Older Artifacts");
        older.set_halign(gtk::Align::Start);
        older.set_sensitive(false);
        let input = sender.input_sender().clone();
        older.connect_clicked(move |_| input.emit(ArtifactsInput::Older));
        let upper = gtk::Box::new(gtk::Orientation::Vertical, 6);
        upper.append(&scroll);
        upper.append(&older);
        let viewer = gtk::Box::new(gtk::Orientation::Vertical, 6);
        viewer.set_widget_name("artifacts-viewer");
        let viewer_scroll = gtk::ScrolledWindow::new();
        viewer_scroll.set_vexpand(true);
        viewer_scroll.set_child(Some(&viewer));
        let paned = gtk::Paned::new(gtk::Orientation::Vertical);
        paned.set_vexpand(true);
        paned.set_start_child(Some(&upper));
        paned.set_end_child(Some(&viewer_scroll));
        paned.set_position(280);
        frame.append(&paned);
        let model = ArtifactsPage {
            client: None,
            generation: 0,
            listed: Vec::new(),
            selected: None,
            paging: Older::default(),
            list,
            older,
            status,
            viewer,
            chooser: None,
            input: sender.input_sender().clone(),
        };
        ComponentParts { model, widgets: () }
    }

    fn update(&mut self, msg: ArtifactsInput, sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            ArtifactsInput::Connected(client) => {
                self.client = Some(client);
                self.read_page(&sender, 0);
            }
            ArtifactsInput::Disconnected => {
                self.generation += 1;
                self.paging.reset();
                self.older.set_sensitive(false);
                self.client = None;
            }
            ArtifactsInput::Reload => self.read_page(&sender, 0),
            ArtifactsInput::Older => {
                if let Some(before) = self.paging.start() {
                    self.older.set_sensitive(false);
                    self.read_page(&sender, before);
                }
            }
            ArtifactsInput::Selected(i) => {
                let Some(l) = self.listed.get(i) else {
                    return;
                };
                let key = (l.task, l.info.name.clone());
                if self.selected.as_ref() != Some(&key) {
                    self.selected = Some(key);
                    self.read_selected(&sender);
                }
            }
            ArtifactsInput::Open => {
                let Some((client, task, info)) = self.selection() else {
                    return;
                };
                let name = info.name.clone();
                self.status.set_label(&format!(
                    "Opening {}…",
                    crate::model::format::line(&name, 80)
                ));
                sender.oneshot_command(async move {
                    let opened = match artifact_files::private_copy(&client, task, &info).await {
                        Ok(path) => open_with::open(client.connection(), &path).await,
                        Err(e) => Err(OpenError::Failed(e)),
                    };
                    ArtifactsCmd::Opened(name, opened)
                });
            }
            ArtifactsInput::Save => {
                let Some((task, name)) = self.selected.clone() else {
                    return;
                };
                let input = sender.input_sender().clone();
                let chooser = artifact_view::choose_destination(
                    self.viewer.upcast_ref(),
                    &name.clone(),
                    move |path| input.emit(ArtifactsInput::SaveTo(task, name.clone(), path)),
                );
                self.chooser = Some(chooser);
            }
            ArtifactsInput::SaveTo(task, name, path) => {
                self.chooser = None;
                let Some(client) = self.client.clone() else {
                    return;
                };
                sender.oneshot_command(async move {
                    ArtifactsCmd::Saved(artifact_files::save_copy(&client, task, name, path).await)
                });
            }
        }
    }

    fn update_cmd(&mut self, msg: ArtifactsCmd, _sender: ComponentSender<Self>, _root: &gtk::Box) {
        match msg {
            ArtifactsCmd::Loaded(g, ..) if g != self.generation => {}
            ArtifactsCmd::Loaded(_, Ok((listed, next)), older) => {
                if !older {
                    self.listed.clear();
                }
                self.listed.extend(listed);
                self.paging.loaded(next);
                self.older.set_sensitive(self.paging.enabled());
                self.rebuild();
            }
            ArtifactsCmd::Loaded(_, Err(e), _) => {
                // The button is back where there is more to read, to try again.
                self.paging.failed();
                self.older.set_sensitive(self.paging.enabled());
                self.status
                    .set_label(&format!("Cannot list artifacts: {e}"));
            }
            ArtifactsCmd::Read(task, name, viewer, preview) => {
                if self.selected.as_ref() == Some(&(task, name.clone())) {
                    self.show(task, &name, viewer, &preview);
                }
            }
            ArtifactsCmd::Opened(name, opened) => {
                self.status.set_label(&open_with::said(&name, &opened));
            }
            ArtifactsCmd::Saved(Ok((name, path, bytes))) => self.status.set_label(&format!(
                "Saved a copy of {} ({}) as {}",
                crate::model::format::line(&name, 80),
                crate::model::format::size(bytes),
                path.display()
            )),
            ArtifactsCmd::Saved(Err(e)) => self.status.set_label(&format!("Cannot save: {e}")),
        }
    }
}

impl ArtifactsPage {
    /// Read the artifacts of the page of tasks before `before` (0: the newest page).
    fn read_page(&mut self, sender: &ComponentSender<Self>, before: u64) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if before == 0 {
            self.generation += 1;
            // An older page being read is dropped with its generation.
            self.paging.reset();
            self.older.set_sensitive(false);
        }
        let generation = self.generation;
        sender.oneshot_command(async move {
            let r = read_page(&client, before).await;
            ArtifactsCmd::Loaded(generation, r, before != 0)
        });
    }

    fn rebuild(&self) {
        crate::ui::clear_list(&self.list);
        let mut selected_row = None;
        for (i, l) in self.listed.iter().enumerate() {
            let row = gtk::ListBoxRow::new();
            row.set_widget_name(&format!("artifact-{}:{}", l.task, l.info.name));
            let b = gtk::Box::new(gtk::Orientation::Vertical, 2);
            b.set_margin_top(6);
            b.set_margin_bottom(6);
            b.set_margin_start(8);
            b.set_margin_end(8);
            b.append(&crate::ui::cell(&l.title()));
            b.append(&crate::ui::caption(&l.caption()));
            row.set_child(Some(&b));
            self.list.append(&row);
            if let Some((task, name)) = &self.selected {
                if l.is(*task, name) {
                    selected_row = Some((i, row));
                }
            }
        }
        if let Some((_, row)) = selected_row {
            self.list.select_row(Some(&row));
        }
        let n = self.listed.len();
        self.status.set_label(&match n {
            0 => "No artifacts yet: they appear here when a task hands some back.".to_string(),
            1 => "1 artifact".to_string(),
            n => format!("{n} artifacts"),
        });
    }

    /// The kernel connection, and the selected artifact with its task, while both are there.
    fn selection(&self) -> Option<(Client, u64, ArtifactInfo)> {
        let client = self.client.clone()?;
        let (task, name) = self.selected.as_ref()?;
        let listed = self.listed.iter().find(|l| l.is(*task, name))?;
        Some((client, *task, listed.info.clone()))
    }

    fn read_selected(&self, sender: &ComponentSender<Self>) {
        crate::ui::clear(&self.viewer);
        let Some((client, task, info)) = self.selection() else {
            return;
        };
        let name = info.name.clone();
        sender.oneshot_command(async move {
            let viewer = artifacts::viewer_of(&info);
            let preview = match client.task(task).await {
                Ok(proxy) => artifact_files::read_preview(&proxy, &info, viewer).await,
                Err(_) => Preview::None,
            };
            ArtifactsCmd::Read(task, name, viewer, preview)
        });
    }

    /// Show artifact `name` of `task`: what it is, its viewer, and what can be done with it.
    fn show(&self, task: u64, name: &str, viewer: Viewer, preview: &Preview) {
        crate::ui::clear(&self.viewer);
        let Some(l) = self.listed.iter().find(|l| l.is(task, name)) else {
            return;
        };
        let head = gtk::Label::new(Some(&l.title()));
        head.add_css_class("heading");
        head.set_xalign(0.0);
        self.viewer.append(&head);
        self.viewer
            .append(&crate::ui::caption(&artifact_view::describe(&l.info)));
        self.viewer.append(&crate::ui::caption(&format!(
            "From task {} ({}), finished {}",
            l.task,
            crate::model::format::line(&l.agent, 40),
            crate::ui::time(l.finished)
        )));
        let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 6);
        let open = gtk::Button::with_mnemonic("_Open with Default App");
        let save = gtk::Button::with_label("Save a Copy…");
        buttons.append(&open);
        buttons.append(&save);
        self.viewer.append(&buttons);
        match artifact_view::viewer(viewer, preview) {
            Some(shown) => self.viewer.append(&shown),
            None => self.viewer.append(&crate::ui::text(
                "Not shown here: open it with the default app, or save a copy.",
            )),
        }
        let input = self.input.clone();
        open.connect_clicked(move |_| input.emit(ArtifactsInput::Open));
        let input = self.input.clone();
        save.connect_clicked(move |_| input.emit(ArtifactsInput::Save));
    }
}

/// The artifacts of the completed tasks in the page of tasks before `before`, newest task first,
/// and the `before` of the next page.
async fn read_page(client: &Client, before: u64) -> Result<(Vec<Listed>, u64), String> {
    let (tasks, next) = super::on_kernel(client, |k| async move {
        k.list_task_page(before, super::TASKS_LOADED).await
    })
    .await?;
    let done: Vec<TaskInfo> = tasks
        .into_iter()
        .filter(|t| TaskState::parse(&t.state) == Some(TaskState::Completed))
        .collect();
    let pages: Vec<Vec<Listed>> = futures_util::stream::iter(done)
        .map(|t| async move {
            let Ok(proxy) = client.task(t.id).await else {
                return Vec::new();
            };
            proxy
                .artifacts()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(name, sha256, size)| Listed {
                    task: t.id,
                    agent: t.agent.clone(),
                    goal: t.goal.clone(),
                    finished: t.updated,
                    info: ArtifactInfo { name, sha256, size },
                })
                .collect()
        })
        .buffered(READ_AHEAD)
        .collect()
        .await;
    Ok((pages.into_iter().flatten().collect(), next))
}
