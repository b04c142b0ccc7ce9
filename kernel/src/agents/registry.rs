//! The agents the kernel knows, owned in one place: their manifests, how they came to be known,
//! whether they run sandboxed, what changed in them since the user gave them access, their
//! connected instance, and one launch lock each (a slow agent's launch holds up no other).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use agentos_dbus_interfaces::proxies::AgentService1Proxy;
use agentos_dbus_interfaces::{names, AgentInfo, Capability, Error};

use crate::config::Config;
use crate::manifest::Manifest;

/// How a known agent came to be known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// From a manifest; the kernel launches it on demand. `exec`: the checked program, or why
    /// it cannot run.
    Manifest {
        file: PathBuf,
        exec: Result<PathBuf, String>,
    },
    /// It registered itself over the bus; it cannot be relaunched by the kernel. `flatpak`: it
    /// registered from a Flatpak sandbox (its id is its app id).
    Registered { flatpak: bool },
}

/// A connected agent instance.
#[derive(Clone)]
pub struct Instance {
    pub generation: u64,
    pub conn: zbus::Connection,
    pub service: AgentService1Proxy<'static>,
    pub departure: Departure,
}

/// Whether an instance has departed: marked when it is detached, and checked by every call that
/// comes on its connection, so that a process it left holding the connection (a child it
/// started) cannot act as the agent afterwards.
#[derive(Debug, Clone, Default)]
pub struct Departure(Arc<AtomicBool>);

impl Departure {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the kernel needs to launch an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    pub exec: PathBuf,
    pub sandboxed: bool,
}

/// What is known of an agent that went away.
#[derive(Debug)]
pub struct Departed {
    /// It had registered itself, and is now forgotten.
    pub forgotten: bool,
    /// Its connection, for the kernel to close: whoever still holds the other end (a process
    /// the agent left behind) is told it is over.
    pub conn: zbus::Connection,
}

/// What is different in an agent since the user gave it access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub manifest: bool,
    pub program: bool,
}

impl Change {
    /// "its manifest is different", "its program is different", or both.
    pub fn describe(self) -> &'static str {
        match (self.manifest, self.program) {
            (true, true) => "its manifest and its program are different",
            (true, false) => "its manifest is different",
            _ => "its program is different",
        }
    }
}

/// One known agent.
struct Slot {
    manifest: Manifest,
    origin: Origin,
    /// Whether it runs under bubblewrap (a manifest's `sandbox = false` counts only where the
    /// user cannot write).
    sandboxed: bool,
    /// What changed since its grants were given, until the user confirms.
    change: Option<Change>,
    instance: Option<Instance>,
}

impl Slot {
    fn info(&self) -> AgentInfo {
        AgentInfo {
            id: self.manifest.id.clone(),
            name: self.manifest.name.clone(),
            description: self.manifest.description.clone(),
            path: zbus::zvariant::OwnedObjectPath::try_from(names::agent_path(&self.manifest.id))
                .unwrap_or_else(|_| zbus::zvariant::OwnedObjectPath::default()),
            capabilities: self.manifest.capability_names(),
            handles: self.manifest.handles.clone(),
            connected: self.instance.is_some(),
        }
    }
}

/// The agents the kernel knows.
#[derive(Default)]
pub struct AgentRegistry {
    slots: Mutex<BTreeMap<String, Slot>>,
    launches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn unknown(id: &str) -> Error {
    Error::UnknownAgent(format!("no agent named {id:?} is installed"))
}

impl AgentRegistry {
    /// The agents of every manifest found in the configured folders (bad ones are logged).
    pub fn discover(config: &Config) -> AgentRegistry {
        let (found, problems) = crate::discovery::discover(&config.agent_dirs);
        for p in problems {
            tracing::warn!("skipping agent manifest: {p}");
        }
        let slots = found
            .into_iter()
            .map(|(manifest, file)| {
                let sandboxed = manifest.sandbox
                    || match crate::discovery::user_can_change(&file, &config.trusted_agent_dirs) {
                        None => false,
                        Some(why) => {
                            tracing::warn!(agent = %manifest.id, file = %file.display(), "the manifest asks to run unsandboxed, but the user can change it ({why}): the agent runs sandboxed");
                            true
                        }
                    };
                let exec = crate::discovery::resolve_exec(&manifest.exec, &config.exec_dirs, sandboxed)
                    .map_err(|why| format!("agent {} cannot run: {why}", manifest.id));
                if let Err(why) = &exec {
                    tracing::warn!(file = %file.display(), "{why}");
                }
                let slot = Slot {
                    manifest,
                    origin: Origin::Manifest { file, exec },
                    sandboxed,
                    change: None,
                    instance: None,
                };
                (slot.manifest.id.clone(), slot)
            })
            .collect();
        AgentRegistry {
            slots: Mutex::new(slots),
            launches: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every known agent, by id.
    pub fn list(&self) -> Vec<AgentInfo> {
        self.lock().values().map(Slot::info).collect()
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// One agent as `ListAgents` shows it.
    pub fn info(&self, id: &str) -> Option<AgentInfo> {
        self.lock().get(id).map(Slot::info)
    }

    /// Whether the agent's manifest declares `capability` (its ceiling), and its display name.
    pub fn declares(&self, id: &str, capability: &Capability) -> Result<(bool, String), Error> {
        let slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        Ok((
            slot.manifest.declares(capability),
            slot.manifest.name.clone(),
        ))
    }

    /// Whether the agent registered itself from a Flatpak sandbox.
    pub fn is_flatpak(&self, id: &str) -> bool {
        self.lock()
            .get(id)
            .is_some_and(|s| matches!(s.origin, Origin::Registered { flatpak: true }))
    }

    /// The connected instance, if any.
    pub fn instance(&self, id: &str) -> Result<Option<Instance>, Error> {
        let slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        Ok(slot.instance.clone())
    }

    /// How to launch the agent, or why the kernel cannot.
    pub fn launch_plan(&self, id: &str) -> Result<LaunchPlan, Error> {
        let slots = self.lock();
        let slot = slots.get(id).ok_or_else(|| unknown(id))?;
        match &slot.origin {
            Origin::Manifest { exec: Ok(exec), .. } => Ok(LaunchPlan {
                exec: exec.clone(),
                sandboxed: slot.sandboxed,
            }),
            Origin::Manifest { exec: Err(why), .. } => Err(Error::Failed(why.clone())),
            Origin::Registered { .. } => Err(Error::Failed(format!("agent {id} is not connected"))),
        }
    }

    /// Whether the agent runs sandboxed (`None`: not an agent the kernel launches).
    pub fn sandboxed(&self, id: &str) -> Option<bool> {
        let slots = self.lock();
        let slot = slots.get(id)?;
        matches!(slot.origin, Origin::Manifest { .. }).then_some(slot.sandboxed)
    }

    /// The agents the kernel launches from manifests, with what their fingerprints are made of:
    /// the manifest's fingerprint and the checked program (none when it cannot run).
    pub fn launchable(&self) -> Vec<(String, String, Option<PathBuf>)> {
        self.lock()
            .values()
            .filter_map(|s| match &s.origin {
                Origin::Manifest { exec, .. } => Some((
                    s.manifest.id.clone(),
                    s.manifest.fingerprint(),
                    exec.as_ref().ok().cloned(),
                )),
                Origin::Registered { .. } => None,
            })
            .collect()
    }

    /// What changed in the agent since its grants were given, until the user confirms it.
    pub fn change(&self, id: &str) -> Option<Change> {
        self.lock().get(id).and_then(|s| s.change)
    }

    /// Note (or, with `None`, clear) what changed in the agent since its grants were given.
    pub fn set_change(&self, id: &str, change: Option<Change>) {
        if let Some(slot) = self.lock().get_mut(id) {
            slot.change = change;
        }
    }

    /// The manifest's fingerprint of a manifest agent.
    pub fn manifest_fingerprint(&self, id: &str) -> Option<String> {
        let slots = self.lock();
        let slot = slots.get(id)?;
        matches!(slot.origin, Origin::Manifest { .. }).then(|| slot.manifest.fingerprint())
    }

    /// The lock held while the agent is launched; one per agent.
    pub fn launch_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut launches = self.launches.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(launches.entry(id.to_string()).or_default())
    }

    /// Record the agent's connected instance; refused while another is connected (two
    /// registrations at once: the second is not let take the first one's place unseen).
    pub fn attach(&self, id: &str, instance: Instance) -> Result<(), Error> {
        let mut slots = self.lock();
        let slot = slots.get_mut(id).ok_or_else(|| unknown(id))?;
        if slot.instance.is_some() {
            return Err(Error::Busy(format!(
                "an agent with identity {id} is already connected"
            )));
        }
        slot.instance = Some(instance);
        Ok(())
    }

    /// The instance of `generation` went away; `None` if that instance is not the current one
    /// (a newer one took its place, or it was never recorded). Its departure is marked; a
    /// self-registered agent is forgotten.
    pub fn detach(&self, id: &str, generation: u64) -> Option<Departed> {
        let mut slots = self.lock();
        let slot = slots.get_mut(id)?;
        if slot.instance.as_ref().map(|i| i.generation) != Some(generation) {
            return None;
        }
        let instance = slot.instance.take()?;
        instance.departure.mark();
        let forgotten = matches!(slot.origin, Origin::Registered { .. });
        if forgotten {
            slots.remove(id);
            drop(slots);
            let mut launches = self.launches.lock().unwrap_or_else(|p| p.into_inner());
            launches.remove(id);
        }
        Some(Departed {
            forgotten,
            conn: instance.conn,
        })
    }

    /// Make room for an agent that registers itself as `principal`; returns whether it is new
    /// (no manifest: it may ask for anything, and each use still needs a grant).
    pub fn add_registered(&self, principal: &str, flatpak: bool) -> Result<bool, Error> {
        let mut slots = self.lock();
        match slots.get(principal) {
            Some(slot) if slot.instance.is_some() => Err(Error::Busy(format!(
                "an agent with identity {principal} is already connected"
            ))),
            Some(_) => Ok(false),
            None => {
                let manifest = Manifest {
                    id: principal.to_string(),
                    name: principal.to_string(),
                    description: "A self-registered agent".into(),
                    exec: String::new(),
                    capabilities: Capability::all(),
                    handles: Vec::new(),
                    sandbox: false,
                };
                let slot = Slot {
                    manifest,
                    origin: Origin::Registered { flatpak },
                    // Not launched by the kernel: whatever started it decided.
                    sandboxed: false,
                    change: None,
                    instance: None,
                };
                slots.insert(principal.to_string(), slot);
                Ok(true)
            }
        }
    }

    /// Forget a self-registered agent that has no instance (its registration failed); returns
    /// whether it was forgotten.
    pub fn forget_unconnected(&self, id: &str) -> bool {
        let mut slots = self.lock();
        let forget = slots
            .get(id)
            .is_some_and(|s| s.instance.is_none() && matches!(s.origin, Origin::Registered { .. }));
        if forget {
            slots.remove(id);
        }
        forget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance on a private connection whose other end is `peer`'s.
    async fn instance(generation: u64) -> (Instance, zbus::Connection) {
        let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
        let guid = zbus::Guid::generate();
        let server = zbus::connection::Builder::unix_stream(ours)
            .server(guid)
            .unwrap()
            .p2p()
            .build();
        let client = zbus::connection::Builder::unix_stream(theirs).p2p().build();
        let (conn, peer) = futures_util::future::try_join(server, client)
            .await
            .unwrap();
        let service = AgentService1Proxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap();
        let instance = Instance {
            generation,
            conn,
            service,
            departure: Departure::default(),
        };
        (instance, peer)
    }

    #[tokio::test]
    async fn a_second_instance_is_refused_and_a_detached_one_is_marked_departed() {
        let registry = AgentRegistry::default();
        assert!(registry.add_registered("org.example.Agent", true).unwrap());
        let (first, _peer1) = instance(1).await;
        let (second, _peer2) = instance(2).await;
        let departure = first.departure.clone();
        registry.attach("org.example.Agent", first).unwrap();
        // Two registrations at once: the second does not take the first one's place.
        assert!(matches!(
            registry.attach("org.example.Agent", second),
            Err(Error::Busy(_))
        ));
        assert_eq!(
            registry
                .instance("org.example.Agent")
                .unwrap()
                .map(|i| i.generation),
            Some(1)
        );
        // A departure of another generation is not this one's.
        assert!(registry.detach("org.example.Agent", 2).is_none());
        assert!(!departure.happened());
        let departed = registry.detach("org.example.Agent", 1).unwrap();
        assert!(departed.forgotten);
        assert!(departure.happened(), "calls on its connection are refused");
    }
}
