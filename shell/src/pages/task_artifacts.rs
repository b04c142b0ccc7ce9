//! Reading a task's artifacts from the kernel for the Tasks page (`Task1.OpenArtifact`, the
//! bytes read off the main loop): what to show of one, and a copy saved where the user chose.

use agentos_client::Client;
use agentos_dbus_interfaces::ArtifactInfo;

use crate::model::artifacts;

/// What to show of an artifact (`Task1.OpenArtifact`): the text of a small text one, the
/// bytes of an image; read off the main loop.
pub async fn read_preview(
    task: &agentos_dbus_interfaces::proxies::Task1Proxy<'static>,
    a: &ArtifactInfo,
) -> artifacts::Preview {
    use artifacts::{Kind, Preview};
    let kind = artifacts::kind(a);
    if kind == Kind::None {
        return Preview::None;
    }
    let Ok(fd) = task.open_artifact(&a.name).await else {
        return Preview::None;
    };
    let file = std::fs::File::from(std::os::fd::OwnedFd::from(fd));
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let limit = match kind {
            Kind::Image => artifacts::IMAGE_BYTES,
            _ => artifacts::PREVIEW_BYTES,
        };
        let mut bytes = Vec::new();
        if file.take(limit).read_to_end(&mut bytes).is_err() {
            return Preview::None;
        }
        match kind {
            Kind::Image => Preview::Image(bytes),
            _ => artifacts::text_preview(&bytes).map_or(Preview::None, Preview::Text),
        }
    })
    .await
    .unwrap_or(Preview::None)
}

/// Copy artifact `name` of task `id` from the kernel to `path` (the user chose it).
pub async fn save_copy(
    client: &Client,
    id: u64,
    name: String,
    path: std::path::PathBuf,
) -> Result<(String, std::path::PathBuf, u64), String> {
    let task = client.task(id).await.map_err(|e| e.to_string())?;
    let fd = task
        .open_artifact(&name)
        .await
        .map_err(|e| super::describe(&e))?;
    let mut src = std::fs::File::from(std::os::fd::OwnedFd::from(fd));
    tokio::task::spawn_blocking(move || {
        let mut dst =
            std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes = std::io::copy(&mut src, &mut dst).map_err(|e| e.to_string())?;
        dst.sync_all().map_err(|e| e.to_string())?;
        Ok((name, path, bytes))
    })
    .await
    .map_err(|e| e.to_string())?
}
