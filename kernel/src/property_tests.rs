//! Property test of the whole kernel (no bus, injected clock): over random sequences of grants,
//! revocations, agents connecting and disconnecting, delegated tasks, time passing, restarts and
//! tool calls, no call is ever allowed without a live grant, a live task and its own agent.
//!
//! Tasks are put in the kernel's table with their delegation chain as `create_task` would make
//! it (the chain `create_task` builds is checked end to end in `permissions_e2e`).
//!
//! Agents connect over real peer-to-peer D-Bus socketpairs and disconnect by closing them; tool
//! calls go through the same `Kernel::list_files` / `Kernel::open_file` the bus adapter calls.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentos_dbus_interfaces::{Error, Lifetime};
use proptest::prelude::*;

use crate::clock::ManualClock;
use crate::tasks::Task;
use crate::Kernel;

/// `a` and `b` come from manifests (`b` declares `files.list` only); `c` registers itself.
const AGENTS: [&str; 3] = ["a", "b", "c"];
const CAPS: [&str; 2] = ["files.list", "files.read"];
/// Folders below the test's root; `x` covers `x/y`.
const FOLDERS: [&str; 3] = ["x", "x/y", "z"];

fn folder_covers(granted: usize, asked: usize) -> bool {
    granted == asked || (granted == 0 && asked == 1)
}

fn declares(agent: usize, cap: usize) -> bool {
    !(agent == 1 && cap == 1)
}

#[derive(Debug, Clone)]
enum Op {
    Grant(usize, usize, usize, Lifetime),
    Revoke(usize, usize, Option<usize>),
    Connect(usize),
    Disconnect(usize),
    /// A task for an agent, delegated by the agent of an earlier task (counted from the newest,
    /// wrapping) or by the user; with a time limit in seconds.
    Start(usize, Option<usize>, u64),
    /// An agent (by default the task's own) calls a tool for a task (index 0: an unknown task;
    /// else counted from the newest, wrapping).
    Call(Option<usize>, usize, usize, usize),
    /// Seconds pass.
    Advance(u64),
    /// The kernel stops and starts again (the user's session ends).
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let lifetime = prop_oneof![
        Just(Lifetime::Once),
        Just(Lifetime::Session),
        Just(Lifetime::Always)
    ];
    prop_oneof![
        6 => (0..3usize, 0..2usize, 0..3usize, lifetime).prop_map(|(p, c, s, l)| Op::Grant(p, c, s, l)),
        2 => (0..3usize, 0..2usize, proptest::option::of(0..3usize)).prop_map(|(p, c, s)| Op::Revoke(p, c, s)),
        2 => (0..3usize).prop_map(Op::Connect),
        2 => (0..3usize).prop_map(Op::Disconnect),
        6 => (0..3usize, proptest::option::of(0..8usize), 10..300u64).prop_map(|(a, p, t)| Op::Start(a, p, t)),
        16 => (prop_oneof![3 => Just(None), 1 => (0..3usize).prop_map(Some)], 0..12usize, 0..2usize, 0..3usize)
            .prop_map(|(a, t, c, s)| Op::Call(a, t, c, s)),
        2 => (1..40u64).prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

/// What the model knows of a task.
struct ModelTask {
    id: u64,
    agent: usize,
    /// The agent, then its delegators, nearest first.
    chain: Vec<usize>,
    parent: Option<usize>,
    deadline: u64,
    alive: bool,
}

/// The model: grants as a plain list, tasks, connected agents; consulted independently.
#[derive(Default)]
struct Model {
    grants: Vec<(usize, usize, usize, Lifetime)>,
    tasks: Vec<ModelTask>,
    connected: [bool; 3],
    allowed_calls: usize,
}

impl Model {
    /// The first grant of `p` covering `c` on `s` (a "once" one only if `once_ok`). The kernel
    /// spends a "once" grant only where no lasting one covers the call.
    fn covers(&self, p: usize, c: usize, s: usize, once_ok: bool) -> Option<usize> {
        self.grants.iter().position(|&(gp, gc, gs, gl)| {
            gp == p && gc == c && (once_ok || gl != Lifetime::Once) && folder_covers(gs, s)
        })
    }

    /// A task and everything delegated below it end.
    fn end(&mut self, i: usize) {
        self.tasks[i].alive = false;
        for j in 0..self.tasks.len() {
            if self.tasks[j].parent == Some(i) && self.tasks[j].alive {
                self.end(j);
            }
        }
    }

    fn end_where(&mut self, pred: impl Fn(&ModelTask) -> bool) {
        for i in 0..self.tasks.len() {
            if self.tasks[i].alive && pred(&self.tasks[i]) {
                self.end(i);
            }
        }
    }
}

/// The `i`-th newest of `len` tasks (wrapping), so that tasks started late are used as often as
/// early ones; `None` when there are none.
fn newest(i: usize, len: usize) -> Option<usize> {
    Some(len.checked_sub(1)? - i.checked_rem(len)?)
}

/// A kernel over `root`, with the manifests of `a` and `b`.
fn start_kernel(root: &Path, clock: &Arc<ManualClock>) -> Arc<Kernel> {
    Kernel::for_test(
        &root.join("data"),
        vec![root.join("agents")],
        Arc::clone(clock),
    )
}

fn prepare(root: &Path) -> PathBuf {
    std::fs::create_dir_all(root.join("agents")).expect("agents dir");
    for (id, caps) in [
        ("a", "\"files.list\", \"files.read\""),
        ("b", "\"files.list\""),
    ] {
        let manifest = format!(
            "id = \"{id}\"\nname = \"Agent {id}\"\nexec = \"/bin/true\"\ncapabilities = [{caps}]\n"
        );
        std::fs::write(root.join("agents").join(format!("{id}.toml")), manifest).expect("manifest");
    }
    let files = root.join("files");
    for f in FOLDERS {
        std::fs::create_dir_all(files.join(f)).expect("folder");
        std::fs::write(files.join(f).join("note.txt"), "hello").expect("file");
    }
    files
}

/// Connect agent `id` over a fresh socketpair: the launcher's path for manifest agents, the
/// self-registration path for `c`. Returns the agent's end of the connection.
async fn connect(k: &Arc<Kernel>, id: &str) -> zbus::Connection {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    let agent_side = async {
        let stream = tokio::net::UnixStream::from_std(theirs).expect("tokio stream");
        zbus::connection::Builder::unix_stream(stream)
            .p2p()
            .build()
            .await
            .expect("agent side")
    };
    let kernel_side = async {
        if id == "c" {
            k.register(id, false, ours).await.map(drop)
        } else {
            let generation = k.next_generation();
            k.connect_instance(id, generation, ours).await.map(drop)
        }
    };
    let (conn, connected) = tokio::join!(agent_side, kernel_side);
    connected.expect("the kernel accepts the agent");
    conn
}

/// Close the agent's end and wait until the kernel has dealt with it: no instance, none of its
/// tasks unfinished, and a self-registered agent forgotten.
async fn disconnect(k: &Kernel, id: &str, conn: zbus::Connection) {
    conn.close().await.expect("close");
    let done = || {
        let slot_done = match k.agents.instance(id) {
            Ok(instance) => instance.is_none() && id != "c",
            Err(_) => true,
        };
        slot_done && k.tasks.unfinished_of(id).is_empty()
    };
    let noticed = async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), noticed)
        .await
        .expect("the kernel notices a closed agent connection");
}

fn insert_task(k: &Kernel, t: &ModelTask, parent_id: u64) {
    let delegators = t.chain[1..]
        .iter()
        .map(|&i| AGENTS[i].to_string())
        .collect();
    let task = Task::working(
        t.id,
        parent_id,
        AGENTS[t.agent],
        delegators,
        k.now(),
        t.deadline,
    );
    k.insert_working(task);
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = prepare(dir.path());
    let folder = |s: usize| files.join(FOLDERS[s]).to_string_lossy().into_owned();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut k = start_kernel(dir.path(), &clock);
    let mut model = Model::default();
    let mut conns: [Option<zbus::Connection>; 3] = [None, None, None];
    let mut next_id = 1;
    for op in ops {
        match op {
            Op::Grant(p, c, s, l) => {
                k.grant(AGENTS[p], CAPS[c], &folder(s), l.as_str())
                    .await
                    .expect("grant");
                model
                    .grants
                    .retain(|&(gp, gc, gs, _)| !(gp == p && gc == c && gs == s));
                model.grants.push((p, c, s, l));
            }
            Op::Revoke(p, c, s) => {
                let scope = s.map(folder).unwrap_or_default();
                k.revoke(AGENTS[p], CAPS[c], &scope).await.expect("revoke");
                model
                    .grants
                    .retain(|&(gp, gc, gs, _)| !(gp == p && gc == c && s.is_none_or(|s| s == gs)));
            }
            Op::Connect(a) => {
                if conns[a].is_none() {
                    conns[a] = Some(connect(&k, AGENTS[a]).await);
                    model.connected[a] = true;
                }
            }
            Op::Disconnect(a) => {
                if let Some(conn) = conns[a].take() {
                    disconnect(&k, AGENTS[a], conn).await;
                    model.connected[a] = false;
                    model.end_where(|t| t.agent == a);
                }
            }
            Op::Start(a, parent, secs) => {
                // Below a live task, else from the user; the agent is launched if need be.
                let parent = parent
                    .and_then(|i| newest(i, model.tasks.len()))
                    .filter(|&i| model.tasks[i].alive);
                if conns[a].is_none() {
                    conns[a] = Some(connect(&k, AGENTS[a]).await);
                    model.connected[a] = true;
                }
                let chain = std::iter::once(a)
                    .chain(parent.iter().flat_map(|&i| model.tasks[i].chain.clone()))
                    .collect();
                let t = ModelTask {
                    id: next_id,
                    agent: a,
                    chain,
                    parent,
                    deadline: k.now() + secs * 1000,
                    alive: true,
                };
                next_id += 1;
                insert_task(&k, &t, parent.map_or(0, |i| model.tasks[i].id));
                model.tasks.push(t);
            }
            Op::Call(a, t, c, s) => {
                // A task the caller may or may not own, or (index 0) one that never existed.
                let (id, task) = match t
                    .checked_sub(1)
                    .and_then(|i| i.checked_rem(model.tasks.len()))
                {
                    Some(i) => (model.tasks[i].id, Some(&model.tasks[i])),
                    None => (next_id + 100, None),
                };
                let a = a.or(task.map(|t| t.agent)).unwrap_or(0);
                let result = match c {
                    0 => k.list_files(AGENTS[a], id, &folder(s), "").await.map(drop),
                    _ => k
                        .open_file(AGENTS[a], id, &folder(s), "note.txt")
                        .await
                        .map(drop),
                };
                let live_task = task.filter(|t| t.alive && t.agent == a && model.connected[a]);
                let grant = live_task.and_then(|t| {
                    let delegators_ok = t.chain[1..]
                        .iter()
                        .all(|&d| model.covers(d, c, s, false).is_some());
                    (declares(a, c) && delegators_ok)
                        .then(|| model.covers(a, c, s, false).or(model.covers(a, c, s, true)))
                        .flatten()
                });
                match (result, grant) {
                    (Ok(()), Some(g)) => {
                        model.allowed_calls += 1;
                        if model.grants[g].3 == Lifetime::Once {
                            model.grants.remove(g);
                        }
                    }
                    (Ok(()), None) => {
                        prop_assert!(false, "{op:?} allowed without a live grant, task and agent")
                    }
                    (Err(Error::AccessDenied(_)), None) => {}
                    (Err(e), _) => prop_assert!(false, "{op:?} refused although allowed: {e}"),
                }
            }
            Op::Advance(secs) => {
                clock.advance(secs * 1000);
                k.expire_overdue();
                let now = k.now();
                model.end_where(|t| t.deadline <= now);
            }
            Op::Restart => {
                for (a, conn) in conns.iter_mut().enumerate() {
                    if let Some(conn) = conn.take() {
                        disconnect(&k, AGENTS[a], conn).await;
                    }
                }
                k.commit_audit().expect("commit");
                drop(k);
                k = start_kernel(dir.path(), &clock);
                model.connected = [false; 3];
                model.end_where(|_| true);
                model.grants.retain(|&(_, _, _, l)| l == Lifetime::Always);
            }
        }
    }
    // Every allowed call left an "allow" record, and the chain holds.
    k.commit_audit().expect("commit");
    let store = k.store();
    let log = store.read_audit(0, u32::MAX).expect("audit");
    let allows = log
        .iter()
        .filter(|r| r.decision == "allow" && CAPS.contains(&r.capability.as_str()))
        .count();
    prop_assert_eq!(allows, model.allowed_calls);
    prop_assert!(store.verify_audit().expect("verify").ok);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_call_is_ever_allowed_without_a_live_grant_task_and_agent(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run(ops))?;
    }
}

/// Cases the property test found, kept as plain tests (proptest's saved seeds stop replaying
/// them once the strategy changes).
#[test]
fn cases_found_before() {
    use Lifetime::{Always, Once, Session};
    let cases = [
        // A "once" grant replacing an "always" one: the stored grant came back after a restart.
        vec![
            Op::Grant(0, 0, 0, Always),
            Op::Grant(0, 0, 0, Once),
            Op::Restart,
            Op::Start(0, None, 10),
            Op::Call(None, 1, 0, 0),
        ],
        // A lasting grant is used before a "once" grant that also covers the call.
        vec![
            Op::Grant(0, 1, 0, Once),
            Op::Start(0, None, 10),
            Op::Grant(0, 1, 1, Session),
            Op::Call(None, 1, 1, 1),
            Op::Call(None, 1, 1, 0),
        ],
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for ops in cases {
        rt.block_on(run(ops.clone()))
            .unwrap_or_else(|e| panic!("{ops:?}: {e}"));
    }
}
