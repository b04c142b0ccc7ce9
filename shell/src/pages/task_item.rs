//! One row of the Tasks page's list: indented by its depth in the delegation tree, with state,
//! agent, goal, progress and elapsed time.

use gtk::prelude::*;
use relm4::typed_view::list::RelmListItem;

use crate::model::format;
use crate::model::tasks::Row;

#[derive(Debug, Clone)]
pub struct TaskItem {
    pub row: Row,
}

pub struct TaskItemWidgets {
    state: gtk::Label,
    agent: gtk::Label,
    goal: gtk::Label,
    progress: gtk::ProgressBar,
    elapsed: gtk::Label,
}

/// Pixels of indentation per level of the tree.
const INDENT: i32 = 20;

impl RelmListItem for TaskItem {
    type Root = gtk::Box;
    type Widgets = TaskItemWidgets;

    fn setup(_item: &gtk::ListItem) -> (gtk::Box, TaskItemWidgets) {
        let root = gtk::Box::new(gtk::Orientation::Horizontal, 12);
        root.set_margin_top(4);
        root.set_margin_bottom(4);
        let state = crate::ui::cell("");
        state.set_width_chars(14);
        let agent = crate::ui::cell("");
        agent.set_width_chars(12);
        agent.add_css_class("heading");
        let goal = crate::ui::cell("");
        goal.set_hexpand(true);
        let progress = gtk::ProgressBar::new();
        progress.set_valign(gtk::Align::Center);
        progress.set_size_request(80, -1);
        let elapsed = crate::ui::caption("");
        elapsed.set_width_chars(10);
        for w in [&state, &agent, &goal] {
            root.append(w);
        }
        root.append(&progress);
        root.append(&elapsed);
        let widgets = TaskItemWidgets {
            state,
            agent,
            goal,
            progress,
            elapsed,
        };
        (root, widgets)
    }

    fn bind(&mut self, w: &mut TaskItemWidgets, root: &mut gtk::Box) {
        let t = &self.row.task;
        root.set_margin_start(6 + INDENT * self.row.depth as i32);
        root.set_widget_name(&format!("task-{}", t.id));
        w.state.set_label(&format::line(&t.state_name, 20));
        w.agent.set_label(&format::line(&t.agent, 40));
        let goal = if t.message.is_empty() {
            format::line(&t.goal, 200)
        } else {
            format!(
                "{} — {}",
                format::line(&t.goal, 120),
                format::line(&t.message, 120)
            )
        };
        w.goal.set_label(&goal);
        w.goal.set_tooltip_text(Some(&format::line(&t.goal, 1000)));
        w.progress
            .set_fraction(f64::from(format::percent(t.progress)) / 100.0);
        w.elapsed.set_label(&format::elapsed(
            t.created,
            t.updated,
            t.is_finished(),
            format::now_ms(),
        ));
    }
}
