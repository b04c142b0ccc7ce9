//! The pages of the panel's window, one component each. Every page takes the verified kernel
//! when it comes (`Connected`) and loads from it in commands; `Disconnected` leaves what it
//! shows but stops following.

pub mod activity;
pub mod agents;
pub mod artifact_files;
pub mod artifact_view;
pub mod artifacts;
pub mod ask;
pub mod asked;
pub mod permissions;
pub mod task_item;
pub mod tasks;

/// Tasks read per page of history (`ListTaskPage`), newest first.
pub const TASKS_LOADED: u32 = 1000;

/// An error of a kernel call, in a sentence.
pub fn describe(e: &agentos_dbus_interfaces::Error) -> String {
    match e {
        agentos_dbus_interfaces::Error::ZBus(z) => agentos_client::describe_zbus(z),
        other => other.message(),
    }
}

/// Run `f` on the verified kernel's `Kernel1`, errors in sentences.
pub async fn on_kernel<T, F, Fut>(client: &agentos_client::Client, f: F) -> Result<T, String>
where
    F: FnOnce(agentos_dbus_interfaces::proxies::Kernel1Proxy<'static>) -> Fut,
    Fut: std::future::Future<Output = Result<T, agentos_dbus_interfaces::Error>>,
{
    let k = client.kernel().await.map_err(|e| e.to_string())?;
    f(k).await.map_err(|e| describe(&e))
}
