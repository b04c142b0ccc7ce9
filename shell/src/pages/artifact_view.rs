//! The widgets that show an artifact, shared by the Tasks and Artifacts pages: its viewer
//! (text made safe to show, Markdown formatted, a picture decoded off the main loop), and the file chooser that asks
//! where a copy goes.

use agentos_dbus_interfaces::ArtifactInfo;
use gtk::prelude::*;

use crate::model::artifacts::{self, Preview, Viewer};
use crate::model::{format, markdown};

/// One line naming an artifact: its name, size and the beginning of its hash.
pub fn describe(a: &ArtifactInfo) -> String {
    format!(
        "{} ({}, sha256 {})",
        format::line(&a.name, 200),
        format::size(a.size),
        format::line(&a.sha256, 16)
    )
}

/// The viewer of an artifact with what was read of it; `None` when nothing is shown.
pub fn viewer(viewer: Viewer, preview: &Preview) -> Option<gtk::Widget> {
    match preview {
        Preview::None => None,
        Preview::Image(Ok(decoded)) => {
            // Pixels decoded off the main loop ([`crate::model::image`]): nothing is decoded here.
            let format = if decoded.alpha {
                gtk::gdk::MemoryFormat::R8g8b8a8
            } else {
                gtk::gdk::MemoryFormat::R8g8b8
            };
            let texture = gtk::gdk::MemoryTexture::new(
                decoded.width,
                decoded.height,
                format,
                &decoded.pixels,
                decoded.stride,
            );
            let picture = gtk::Picture::for_paintable(&texture);
            picture.set_widget_name("artifact-image");
            picture.set_halign(gtk::Align::Start);
            picture.set_size_request(-1, 160);
            picture.set_can_shrink(true);
            Some(picture.upcast())
        }
        Preview::Image(Err(why)) => Some(crate::ui::caption(&format!("Not shown: {why}")).upcast()),
        Preview::Text(text) => {
            let shown = crate::ui::text(text);
            if viewer == Viewer::Markdown {
                shown.set_markup(&markdown::to_pango(text));
            }
            shown.add_css_class("monospace");
            shown.set_widget_name("artifact-preview");
            let frame = gtk::Frame::new(None);
            frame.set_child(Some(&shown));
            Some(frame.upcast())
        }
    }
}

/// Ask where to save a copy of the artifact `name` (in the Downloads folder, else the home
/// folder, under its name made plain); `chosen` gets the path. Keep the chooser until it
/// answers.
pub fn choose_destination(
    over: &gtk::Widget,
    name: &str,
    chosen: impl Fn(std::path::PathBuf) + 'static,
) -> gtk::FileChooserNative {
    let parent = over.root().and_downcast::<gtk::Window>();
    let chooser = gtk::FileChooserNative::new(
        Some("Save a Copy"),
        parent.as_ref(),
        gtk::FileChooserAction::Save,
        Some("_Save"),
        Some("_Cancel"),
    );
    chooser.set_modal(true);
    chooser.set_current_name(&artifacts::file_name(name));
    let downloads = gtk::glib::user_special_dir(gtk::glib::UserDirectory::Downloads)
        .filter(|d| d.is_dir())
        .unwrap_or_else(gtk::glib::home_dir);
    let _ = chooser.set_current_folder(Some(&gtk::gio::File::for_path(downloads)));
    chooser.connect_response(move |c, response| {
        if response == gtk::ResponseType::Accept {
            if let Some(path) = c.file().and_then(|f| f.path()) {
                chosen(path);
            }
        }
    });
    chooser.show();
    chooser
}
