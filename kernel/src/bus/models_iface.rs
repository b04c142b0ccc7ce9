//! `org.agentos.Models1` at `/org/agentos/Kernel`: model inference for bus callers (the user's
//! own tools and other apps, identified from the connection). The answer streams on a socket
//! returned to the caller alone, never on the bus.

use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::{Error, ModelInfo, UsageInfo};
use zbus::message::Header;
use zbus::zvariant::OwnedFd;

use super::args::admit;
use super::{caller, live};
use crate::kernel::Kernel;

pub struct ModelsIface {
    kernel: Weak<Kernel>,
}

impl ModelsIface {
    pub fn new(kernel: &Arc<Kernel>) -> ModelsIface {
        ModelsIface {
            kernel: Arc::downgrade(kernel),
        }
    }
}

#[zbus::interface(name = "org.agentos.Models1")]
impl ModelsIface {
    async fn list_models(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Vec<ModelInfo>, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.list_models(&c).await
    }

    #[zbus(out_args("id", "events"))]
    async fn chat(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        request: &str,
    ) -> Result<(u64, OwnedFd), Error> {
        let k = live(&self.kernel)?;
        // Held while the request is checked (a consent prompt may wait for the user).
        let _in_flight = admit(&k, &hdr)?;
        let c = caller(&k, &hdr).await?;
        let (id, fd) = k.chat(&c, request).await?;
        Ok((id, fd.into()))
    }

    async fn cancel(&self, #[zbus(header)] hdr: Header<'_>, id: u64) -> Result<(), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.cancel_chat(&c, id)
    }

    async fn list_usage(&self, #[zbus(header)] hdr: Header<'_>) -> Result<Vec<UsageInfo>, Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.list_usage(&c).await
    }

    #[zbus(out_args("file", "ignored"))]
    async fn settings(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(String, String), Error> {
        let k = live(&self.kernel)?;
        let c = caller(&k, &hdr).await?;
        k.model_settings(&c)
    }
}
