//! Small widget helpers the pages share.

use gtk::prelude::*;

/// A label that wraps, starts at the left, and can be selected and copied.
pub fn text(s: &str) -> gtk::Label {
    let l = gtk::Label::new(Some(s));
    l.set_xalign(0.0);
    l.set_wrap(true);
    l.set_wrap_mode(gtk::pango::WrapMode::WordChar);
    l.set_selectable(true);
    l
}

/// A one-line label that ellipsizes at its end.
pub fn cell(s: &str) -> gtk::Label {
    let l = gtk::Label::new(Some(s));
    l.set_xalign(0.0);
    l.set_ellipsize(gtk::pango::EllipsizeMode::End);
    l
}

/// A dim caption.
pub fn caption(s: &str) -> gtk::Label {
    let l = cell(s);
    l.add_css_class("dim-label");
    l.add_css_class("caption");
    l
}

/// A page's frame: a title, a line of status, and the content below them.
pub fn page(title: &str) -> (gtk::Box, gtk::Label) {
    let root = gtk::Box::new(gtk::Orientation::Vertical, 8);
    root.set_margin_top(12);
    root.set_margin_bottom(12);
    root.set_margin_start(12);
    root.set_margin_end(12);
    let heading = gtk::Label::new(Some(title));
    heading.add_css_class("title-2");
    heading.set_xalign(0.0);
    root.append(&heading);
    let status = caption("");
    root.append(&status);
    (root, status)
}

/// Remove every child of a box.
pub fn clear(b: &gtk::Box) {
    while let Some(child) = b.first_child() {
        b.remove(&child);
    }
}

/// Remove every row of a list box.
pub fn clear_list(l: &gtk::ListBox) {
    while let Some(child) = l.first_child() {
        l.remove(&child);
    }
}

/// Local time of a moment given in milliseconds since the epoch ("2026-11-29 15:04:05").
pub fn time(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    gtk::glib::DateTime::from_unix_local(secs)
        .and_then(|t| t.format("%Y-%m-%d %H:%M:%S"))
        .map(|s| s.to_string())
        .unwrap_or_else(|_| ms.to_string())
}
