//! Who listens on a loopback port where a local model server is looked for. Any process may take
//! a free port on 127.0.0.1 (a Flatpak app with network access shares the host's), and a server
//! found there would be given every request that names no model, files an agent read included,
//! as "local". So a server is used only if each socket listening on its port belongs to the
//! user, to root or to a system account (Ollama's installer runs it as the system user
//! `ollama`; only root makes such accounts), and the user's own process holding it is not a
//! sandboxed app (`/.flatpak-info` in its root). Read from `/proc` (blocking: call it off the
//! kernel's thread).

use std::path::Path;

/// What listens on a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// Nothing does (the server went away, or closed its port a moment).
    Nobody,
    /// The user's own process (or root's), not sandboxed.
    Trusted,
    /// A socket of another (not system) user.
    OtherUser { uid: u32 },
    /// A sandboxed app's process.
    Sandboxed { app: String },
    /// A socket of the user's whose process cannot be found at all.
    Unknown,
}

impl Listener {
    /// Why a server on the port is not used, said plainly (`None` when it is).
    pub fn refusal(&self) -> Option<String> {
        match self {
            Listener::Trusted => None,
            // It answered a moment ago: one that closes its port while it is looked at is not
            // taken on trust.
            Listener::Nobody => Some("nothing listens on it any more".into()),
            Listener::OtherUser { uid } => Some(format!("it is another user's (uid {uid})")),
            Listener::Sandboxed { app } => Some(format!(
                "it is the sandboxed app {app}'s (to use it, name the app in models.toml: \
                 [local] trusted-apps = [\"{app}\"])"
            )),
            Listener::Unknown => Some("the process that listens on it cannot be seen".into()),
        }
    }
}

/// The sockets listening on `port` in a `/proc/net/tcp` or `tcp6` table: their owners' uids
/// and inodes.
fn listening(table: &str, port: u16) -> Vec<(u32, u64)> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, uid, inode) = (f.get(1)?, f.get(3)?, f.get(7)?, f.get(9)?);
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *state == LISTEN)
                .then(|| Some((uid.parse().ok()?, inode.parse().ok()?)))?
        })
        .collect()
}

/// The app a process root's `.flatpak-info` names, if the process runs in a Flatpak sandbox.
fn flatpak_app(root: &Path) -> Option<String> {
    let info = std::fs::read_to_string(root.join(".flatpak-info")).ok()?;
    let name = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("name="))
        .unwrap_or("(unnamed)");
    Some(name.trim().to_string())
}

/// The processes holding the socket `inode`, among those whose fds can be read; and the user's
/// processes whose fds cannot be read (one that made itself not dumpable), any of which may
/// hold it too.
fn holders(proc: &Path, inode: u64, user: u32) -> (Vec<u32>, Vec<u32>) {
    use std::os::unix::fs::MetadataExt;
    let target = format!("socket:[{inode}]");
    let (mut holding, mut unseen) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(proc) else {
        return (holding, unseen);
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let dir = proc.join(pid.to_string());
        match std::fs::read_dir(dir.join("fd")) {
            Ok(fds) => {
                let holds = fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|link| link.as_os_str() == target.as_str())
                });
                if holds {
                    holding.push(pid);
                }
            }
            Err(_) if std::fs::metadata(&dir).is_ok_and(|m| m.uid() == user) => unseen.push(pid),
            Err(_) => {}
        }
    }
    (holding, unseen)
}

/// The app whose sandbox's cgroup scope a process runs in (`app-flatpak-<id>-<n>.scope`, or a
/// snap's `snap.<name>.<app>-…scope`), as `/proc/<pid>/cgroup` says; readable for any process.
fn scoped_app(proc: &Path, pid: u32) -> Option<String> {
    let cgroup = std::fs::read_to_string(proc.join(pid.to_string()).join("cgroup")).ok()?;
    let scope = cgroup.lines().find_map(|l| l.rsplit('/').next())?;
    if let Some(rest) = scope.strip_prefix("app-flatpak-") {
        let id = rest.strip_suffix(".scope").unwrap_or(rest);
        return Some(id.rsplit_once('-').map_or(id, |(id, _)| id).to_string());
    }
    scope
        .strip_prefix("snap.")
        .map(|rest| rest.split('.').next().unwrap_or(rest).to_string())
}

/// The first uid of a person's account: `UID_MIN` in `login.defs`, 1000 where it says nothing.
pub fn first_user_uid(login_defs: &str) -> u32 {
    login_defs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("UID_MIN"))
        .filter_map(|rest| rest.trim().parse().ok())
        .next()
        .unwrap_or(1000)
}

/// Who listens on `port` of the loopback interface, as `/proc` (at `proc`) says; `user` is
/// the kernel's own uid, and uids below `first_user` (root's included) are system accounts.
pub fn on_port(proc: &Path, port: u16, user: u32, first_user: u32) -> Listener {
    let mut sockets = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc.join(table)) {
            sockets.extend(listening(&text, port));
        }
    }
    if sockets.is_empty() {
        return Listener::Nobody;
    }
    // Every socket on the port must pass: which one a connection reaches is not ours to say.
    for (uid, inode) in sockets {
        // Root's (a container's port forwarder, say) or a system account's (a packaged
        // service) is no less the user's to trust, unless the kernel runs as that account
        // itself: then it is looked at like the user's.
        if uid < first_user && uid != user {
            continue;
        }
        if uid != user {
            return Listener::OtherUser { uid };
        }
        let (holding, unseen) = holders(proc, inode, user);
        for pid in &holding {
            let sandbox = flatpak_app(&proc.join(pid.to_string()).join("root"));
            if let Some(app) = sandbox.or_else(|| scoped_app(proc, *pid)) {
                return Listener::Sandboxed { app };
            }
        }
        if holding.is_empty() {
            // Held by one of the user's processes that hides its fds (a port forwarder, or a
            // sandbox's process that made itself so): a sandbox's scope still tells it.
            if let Some(app) = unseen.iter().find_map(|pid| scoped_app(proc, *pid)) {
                return Listener::Sandboxed { app };
            }
            if unseen.is_empty() {
                return Listener::Unknown;
            }
        }
    }
    Listener::Trusted
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:2CAB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0
   3: garbage
";

    #[test]
    fn listening_sockets_are_read_by_port_and_state() {
        assert_eq!(listening(TABLE, 8080), [(1000, 4242)], "not the connection");
        assert_eq!(listening(TABLE, 11435), [(0, 77)]);
        assert!(listening(TABLE, 11434).is_empty());
        assert!(listening("", 8080).is_empty());
    }

    #[test]
    fn a_flatpak_sandbox_is_told_by_its_info_file() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(flatpak_app(root.path()), None);
        std::fs::write(
            root.path().join(".flatpak-info"),
            "[Application]\nname=org.example.Squatter\nruntime=x\n",
        )
        .unwrap();
        assert_eq!(
            flatpak_app(root.path()).as_deref(),
            Some("org.example.Squatter")
        );
    }

    #[test]
    fn this_process_listening_is_the_users_own() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let uid = rustix::process::getuid().as_raw();
        let proc = Path::new("/proc");
        assert_eq!(on_port(proc, port, uid, 1000), Listener::Trusted);
        assert_eq!(
            on_port(proc, port, uid + 1, 1000),
            if uid < 1000 {
                Listener::Trusted
            } else {
                Listener::OtherUser { uid }
            },
            "a system account's sockets pass; another user's do not"
        );
        drop(server);
        let gone = on_port(proc, port, uid, 1000);
        assert_eq!(gone, Listener::Nobody);
        assert_eq!(
            gone.refusal().as_deref(),
            Some("nothing listens on it any more")
        );
    }

    #[test]
    fn a_sandboxed_holder_is_refused() {
        // A fake /proc: a socket of the user's held by a process whose root has .flatpak-info.
        let proc = tempfile::tempdir().unwrap();
        let p = proc.path();
        std::fs::create_dir_all(p.join("net")).unwrap();
        std::fs::write(p.join("net/tcp"), TABLE).unwrap();
        std::fs::create_dir_all(p.join("321/fd")).unwrap();
        std::fs::create_dir_all(p.join("321/root")).unwrap();
        std::os::unix::fs::symlink("socket:[4242]", p.join("321/fd/3")).unwrap();
        assert_eq!(on_port(p, 8080, 1000, 1000), Listener::Trusted);
        std::fs::write(
            p.join("321/root/.flatpak-info"),
            "[Application]\nname=org.example.Squatter\n",
        )
        .unwrap();
        let found = on_port(p, 8080, 1000, 1000);
        assert_eq!(
            found,
            Listener::Sandboxed {
                app: "org.example.Squatter".into()
            }
        );
        assert_eq!(
            found.refusal().as_deref(),
            Some(
                "it is the sandboxed app org.example.Squatter's (to use it, name the app in \
                 models.toml: [local] trusted-apps = [\"org.example.Squatter\"])"
            )
        );
        std::fs::remove_file(p.join("321/fd/3")).unwrap();
        assert_eq!(on_port(p, 8080, 1000, 1000), Listener::Unknown);
        assert_eq!(
            on_port(p, 8080, 1001, 1000),
            Listener::OtherUser { uid: 1000 }
        );
        // The user's process whose fds cannot be read: its sandbox's scope tells it; without
        // one, it is taken as the user's (a port forwarder that hides its fds).
        std::fs::remove_dir(p.join("321/fd")).unwrap();
        std::fs::write(p.join("321/cgroup"), "0::/user.slice/app.slice/x.service\n").unwrap();
        let as_user = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p.join("321")).unwrap().uid()
        };
        let me = as_user(p);
        let mine = |table: &str| table.replace(" 1000 ", &format!(" {me:>4} "));
        std::fs::write(p.join("net/tcp"), mine(TABLE)).unwrap();
        assert_eq!(on_port(p, 8080, me, 0), Listener::Trusted);
        std::fs::write(
            p.join("321/cgroup"),
            "0::/user.slice/user-1000.slice/user@1000.service/app.slice/\
             app-flatpak-org.example.Squatter-1234.scope\n",
        )
        .unwrap();
        assert_eq!(
            on_port(p, 8080, me, 0),
            Listener::Sandboxed {
                app: "org.example.Squatter".into()
            }
        );
        std::fs::write(p.join("net/tcp"), TABLE).unwrap();
        // Ollama as its installer runs it: the system user `ollama`'s socket.
        assert_eq!(on_port(p, 8080, 1001, 1001), Listener::Trusted);
    }

    #[test]
    fn the_first_persons_uid_is_read_from_login_defs() {
        assert_eq!(
            first_user_uid(
                "# UID_MIN 5
UID_MIN		 500
UID_MAX 60000
"
            ),
            500
        );
        assert_eq!(
            first_user_uid(
                "SYS_UID_MIN 100
"
            ),
            1000
        );
        assert_eq!(first_user_uid(""), 1000);
    }
}
