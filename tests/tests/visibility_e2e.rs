//! End-to-end: each caller sees its own. Against the real kernel on a private bus, with Flatpak
//! apps emulated by bubblewrap and xdg-dbus-proxy: an app sees the task trees it started, its
//! own grants and its own audit records, and nothing of anyone else's (lists leave them out,
//! members that name them answer AccessDenied); the user sees everything; the signals an app
//! can receive carry no private content, while subscribed clients get the full changes of the
//! tasks they may see.

use std::time::Duration;

use agentos_dbus_interfaces::names::{self, KERNEL_BUS_NAME};
use agentos_dbus_interfaces::proxies::{Kernel1Proxy, Task1Proxy, TaskChanged};
use agentos_dbus_interfaces::Error;
use agentos_tests::{bounded, bounded_for, Env, TIMEOUT};
use futures_util::StreamExt;
use zbus::proxy::CacheProperties;

const MINE: &str = "org.example.Mine";
const OTHER: &str = "org.example.Other";

fn skip_without_bwrap() -> bool {
    let works = agentos_tests::bwrap_works();
    if !works {
        eprintln!(
            "skipping: bwrap cannot create namespaces here, so no Flatpak sandbox can be emulated"
        );
    }
    !works
}

async fn task_proxy(conn: &zbus::Connection, id: u64) -> Task1Proxy<'static> {
    Task1Proxy::builder(conn)
        .path(names::task_path(id))
        .unwrap()
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .unwrap()
}

/// A property read refused as the standard `org.freedesktop.DBus.Error.AccessDenied`.
fn property_denied<T: std::fmt::Debug>(r: zbus::Result<T>) -> bool {
    matches!(&r, Err(zbus::Error::FDO(e)) if matches!(**e, zbus::fdo::Error::AccessDenied(_)))
}

fn denied<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::AccessDenied(_)))
}

/// Delegate as the Flatpak app behind `k`, returning the task id.
async fn delegate_as(k: &Kernel1Proxy<'_>, agent: &str, goal: &str) -> u64 {
    let path = k
        .delegate(agent, goal, Default::default())
        .await
        .expect("the app delegates");
    names::task_id_from_path(path.as_str()).expect("task path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_sees_the_trees_it_started_its_grants_and_records_and_nothing_else() {
    if skip_without_bwrap() {
        return;
    }
    bounded_for(TIMEOUT * 2, async {
        let mut env = Env::start().await;
        let host = env.kernel().await;
        host.grant("tester", "agent.delegate", "helper", "always")
            .await
            .unwrap();
        host.grant(MINE, "agent.delegate", "tester", "session")
            .await
            .unwrap();
        // The user's task tree: a child with an artifact, a result.
        let theirs = env
            .delegate(
                "tester",
                "delegate helper artifact secret.txt host secret notes ; echo host secret result",
            )
            .await;
        assert_eq!(env.wait_task(theirs).await.state, "completed");

        let (_mine_app, mine_conn) = env.app_connection(MINE).await;
        let (_other_app, other_conn) = env.app_connection(OTHER).await;
        let mine = Kernel1Proxy::new(&mine_conn).await.unwrap();
        let other = Kernel1Proxy::new(&other_conn).await.unwrap();

        // The app's own tree, with a child task and its artifact.
        let ours = delegate_as(
            &mine,
            "tester",
            "delegate helper artifact mine.txt mine notes ; echo mine child",
        )
        .await;
        let done = env.wait_task(ours).await;
        assert_eq!(
            (done.state.as_str(), done.caller.as_str()),
            ("completed", MINE)
        );
        let all = host.list_tasks(100).await.unwrap();
        let child_of = |root: u64| all.iter().find(|t| t.parent == root).expect("a child").id;
        let (their_child, our_child) = (child_of(theirs), child_of(ours));

        // The app lists its tree only, on every page.
        let listed: Vec<u64> = mine
            .list_tasks(100)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(listed, [our_child, ours]);
        let (page, next) = mine.list_task_page(0, 1).await.unwrap();
        assert_eq!((page[0].id, next), (our_child, our_child));
        let (page, next) = mine.list_task_page(next, 1).await.unwrap();
        assert_eq!((page[0].id, next), (ours, ours));
        assert!(mine.list_task_page(next, 1).await.unwrap().0.is_empty());
        // Its task objects answer it, child and artifact included.
        let task = task_proxy(&mine_conn, our_child).await;
        assert_eq!(
            task.goal().await.unwrap(),
            "artifact mine.txt mine notes ; echo mine child"
        );
        assert_eq!(task.artifacts().await.unwrap()[0].0, "mine.txt");
        task.open_artifact("mine.txt").await.unwrap();
        assert_eq!(
            task_proxy(&mine_conn, ours).await.result().await.unwrap(),
            "completed: mine child"
        );

        // Nothing of the user's tree reaches either app.
        for (conn, k) in [(&mine_conn, &mine), (&other_conn, &other)] {
            for id in [theirs, their_child] {
                let task = task_proxy(conn, id).await;
                assert!(property_denied(task.goal().await), "Goal of {id}");
                assert!(property_denied(task.result().await));
                assert!(property_denied(task.message().await));
                assert!(property_denied(task.progress().await));
                assert!(property_denied(task.caller().await));
                assert!(property_denied(task.artifacts().await));
                // The id is its path: no secret.
                assert_eq!(task.id().await.unwrap(), id);
                let all = zbus::fdo::PropertiesProxy::builder(conn)
                    .destination(KERNEL_BUS_NAME)
                    .unwrap()
                    .path(names::task_path(id))
                    .unwrap()
                    .build()
                    .await
                    .unwrap()
                    .get_all(zbus::names::InterfaceName::from_static_str_unchecked(
                        "org.agentos.Task1",
                    ))
                    .await;
                // GetAll leaves out what the caller may not read.
                let all = all.unwrap();
                assert_eq!(all.keys().collect::<Vec<_>>(), ["Id"], "{all:?}");
                assert!(denied(task.open_artifact("secret.txt").await));
                assert!(denied(task.cancel().await));
                assert!(denied(k.get_task(id).await));
            }
            let listed = k.list_tasks(100).await.unwrap();
            assert!(listed
                .iter()
                .all(|t| t.caller != "host" && !t.goal.contains("secret")));
            let grants = k.list_grants().await.unwrap();
            assert!(grants.iter().all(|g| g.principal == MINE), "{grants:?}");
            assert!(denied(k.verify_audit_log().await));
        }
        // The other app sees no task, no grant and no record at all: it did nothing.
        assert!(other.list_tasks(100).await.unwrap().is_empty());
        assert_eq!(other.list_task_page(0, 10).await.unwrap(), (vec![], 0));
        assert!(other.list_grants().await.unwrap().is_empty());
        assert!(other.read_audit_log(0, 1000).await.unwrap().is_empty());
        for id in [ours, our_child] {
            let task = task_proxy(&other_conn, id).await;
            assert!(property_denied(task.goal().await));
            assert!(denied(task.open_artifact("mine.txt").await));
            assert!(denied(other.get_task(id).await));
            assert_eq!(mine.get_task(id).await.unwrap().id, id);
        }
        assert!(matches!(
            other.get_task(999_999).await,
            Err(Error::UnknownTask(_))
        ));
        // The app reads its own grant and its own records (the grant, its delegation).
        let grants = mine.list_grants().await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(
            (grants[0].principal.as_str(), grants[0].scope.as_str()),
            (MINE, "tester")
        );
        let records = mine.read_audit_log(0, 1000).await.unwrap();
        assert!(records.len() >= 2, "{records:?}");
        assert!(records.iter().all(|r| r.principal == MINE), "{records:?}");
        // A limit counts the app's records, not the ones skipped.
        assert_eq!(mine.read_audit_log(0, 1).await.unwrap(), records[..1]);

        // The user sees everything.
        let listed: Vec<u64> = host
            .list_tasks(100)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        for id in [theirs, their_child, ours, our_child] {
            assert!(listed.contains(&id));
        }
        assert_eq!(
            task_proxy(&env.conn, ours).await.goal().await.unwrap(),
            "delegate helper artifact mine.txt mine notes ; echo mine child"
        );
        task_proxy(&env.conn, their_child)
            .await
            .open_artifact("secret.txt")
            .await
            .unwrap();
        let records = host.read_audit_log(0, 1000).await.unwrap();
        assert!(records.iter().any(|r| r.principal == "host"));
        assert!(records.iter().any(|r| r.principal == MINE));
        assert!(host.list_grants().await.unwrap().len() >= 2);
        assert!(host.verify_audit_log().await.unwrap().0);

        // After a restart the tasks are only in the store; each still sees its own.
        env.restart_kernel().await;
        let listed: Vec<u64> = mine
            .list_tasks(100)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(listed, [our_child, ours]);
        assert!(other.list_tasks(100).await.unwrap().is_empty());
        assert_eq!(env.kernel().await.list_tasks(100).await.unwrap().len(), 4);
        // From the store too, GetTask answers the tree's starter and the user only.
        assert_eq!(mine.get_task(our_child).await.unwrap().caller, "tester");
        assert!(denied(mine.get_task(their_child).await));
        assert!(denied(other.get_task(ours).await));
        assert_eq!(
            env.kernel().await.get_task(ours).await.unwrap().caller,
            MINE
        );
    })
    .await;
}

/// Every signal from the kernel that reaches `conn` until none has come for a while.
async fn drain(stream: &mut zbus::MessageStream) -> Vec<zbus::Message> {
    let mut got = Vec::new();
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout(Duration::from_millis(700), stream.next()).await
    {
        got.push(msg);
    }
    got
}

async fn kernel_signals(conn: &zbus::Connection) -> zbus::MessageStream {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(KERNEL_BUS_NAME)
        .unwrap()
        .build();
    zbus::MessageStream::for_match_rule(rule, conn, Some(1024))
        .await
        .expect("match rule")
}

/// A signal's member and body, as text to search.
fn shown(msg: &zbus::Message) -> String {
    let member = msg
        .header()
        .member()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let body = msg
        .body()
        .deserialize::<zbus::zvariant::Structure<'_>>()
        .map(|s| format!("{s:?}"))
        .unwrap_or_default();
    format!("{member} {body}")
}

/// The `TaskChanged` signals among `msgs`: (addressed to the receiver, id, agent, progress,
/// message).
fn task_changes(msgs: &[zbus::Message]) -> Vec<(bool, u64, String, f64, String)> {
    msgs.iter()
        .filter_map(|m| {
            let addressed = m.header().destination().is_some();
            let signal = TaskChanged::from_message(m.clone())?;
            let a = signal.args().ok()?;
            Some((
                addressed,
                a.id,
                a.agent.to_string(),
                a.progress,
                a.message.to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_an_app_receives_carry_no_private_content() {
    if skip_without_bwrap() {
        return;
    }
    bounded(async {
        let env = Env::start().await;
        let host = env.kernel().await;
        host.grant(MINE, "agent.delegate", "tester", "session")
            .await
            .unwrap();
        let (_mine_app, mine_conn) = env.app_connection(MINE).await;
        let (_other_app, other_conn) = env.app_connection(OTHER).await;
        let mine = Kernel1Proxy::new(&mine_conn).await.unwrap();
        let other = Kernel1Proxy::new(&other_conn).await.unwrap();
        let mut mine_signals = kernel_signals(&mine_conn).await;
        let mut other_signals = kernel_signals(&other_conn).await;
        // Both apps subscribe, as the client crate does; the user's tool through the client.
        mine.subscribe().await.unwrap();
        other.subscribe().await.unwrap();
        let client = agentos_client::Client::at_address(&env.address)
            .await
            .unwrap();
        let mut host_events = client.task_events().await.unwrap();

        // The agent says "sleeping" at 50 %: private, like the goal and the result.
        let theirs = env
            .delegate("tester", "sleep 200 ; echo host secret result")
            .await;
        let ours = delegate_as(&mine, "tester", "sleep 200 ; echo mine result").await;
        env.wait_task(theirs).await;
        env.wait_task(ours).await;

        let seen_by_other = drain(&mut other_signals).await;
        let seen_by_mine = drain(&mut mine_signals).await;
        for msg in &seen_by_other {
            let text = shown(msg);
            for private in ["sleeping", "secret", "tester", "mine result", "0.5"] {
                assert!(
                    !text.contains(private),
                    "{private:?} reached {OTHER}: {text}"
                );
            }
        }
        // It does see that tasks changed (broadcast, without content), none addressed to it.
        let other_changes = task_changes(&seen_by_other);
        assert!(
            other_changes.iter().any(|c| c.1 == theirs),
            "{seen_by_other:?}"
        );
        assert!(other_changes
            .iter()
            .all(|c| !c.0 && c.2.is_empty() && c.3 == 0.0 && c.4.is_empty()));
        assert!(seen_by_other.iter().any(|m| m
            .header()
            .member()
            .is_some_and(|m| m == "PropertiesChanged")));

        // The subscribed app gets its own tree's changes in full, addressed to it, and nothing of
        // the user's.
        for msg in &seen_by_mine {
            assert!(!shown(msg).contains("secret"), "{}", shown(msg));
        }
        let mine_changes = task_changes(&seen_by_mine);
        assert!(mine_changes.iter().any(|c| c.0
            && c.1 == ours
            && c.2 == "tester"
            && c.3 == 0.5
            && c.4 == "sleeping"));
        assert!(mine_changes.iter().all(|c| !c.0 || c.1 == ours));

        // The user's client sees every task in full (agentctl prints these lines).
        let mut host_seen = Vec::new();
        while let Ok(Some(Ok(e))) =
            tokio::time::timeout(Duration::from_millis(700), host_events.next()).await
        {
            host_seen.push((e.id, e.agent, e.message));
        }
        for id in [theirs, ours] {
            assert!(
                host_seen
                    .iter()
                    .any(|(i, a, m)| *i == id && a == "tester" && m == "sleeping"),
                "{host_seen:?}"
            );
        }
        // After Unsubscribe nothing is addressed to the app any more.
        mine.unsubscribe().await.unwrap();
        let again = delegate_as(&mine, "tester", "echo once more").await;
        env.wait_task(again).await;
        let after = task_changes(&drain(&mut mine_signals).await);
        assert!(after.iter().any(|c| c.1 == again));
        assert!(after.iter().all(|c| !c.0));
    })
    .await;
}
