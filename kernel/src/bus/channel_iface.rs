//! `org.agentos.Channel1` on a private channel from `Kernel1.OpenChannel`: the caller was
//! identified when the channel was opened, and every call is checked and audited as on the bus.

use std::collections::HashMap;
use std::sync::Weak;

use agentos_dbus_interfaces::{ByteBuf, Error};
use zbus::message::Header;
use zbus::zvariant::OwnedValue;

use super::kernel_iface::timeout_option;
use super::live;
use crate::kernel::{Caller, Kernel};

pub struct ChannelIface {
    pub(crate) kernel: Weak<Kernel>,
    pub(crate) caller: Caller,
}

#[zbus::interface(name = "org.agentos.Channel1")]
impl ChannelIface {
    async fn call(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        agent: &str,
        method: &str,
        payload: &[u8],
    ) -> Result<ByteBuf, Error> {
        super::host_iface::from_peer(&hdr)?;
        live(&self.kernel)?
            .call_agent(self.caller.clone(), agent, method, payload)
            .await
    }

    async fn delegate(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        agent: &str,
        goal: &str,
        options: HashMap<String, OwnedValue>,
    ) -> Result<u64, Error> {
        super::host_iface::from_peer(&hdr)?;
        live(&self.kernel)?
            .delegate(self.caller.clone(), agent, goal, timeout_option(&options)?)
            .await
    }
}
