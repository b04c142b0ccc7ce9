//! Mirroring grants into the XDG permission store (table `agentos`; the client is
//! `agentos_portal::permission_store`), so desktop tools
//! (`flatpak permission-show`, `permission-remove`, `permission-reset`) see and revoke them.
//!
//! The permission store has no access control: any host process may write any table. So it may
//! only take rights away. The kernel's own store stays the source of truth; an entry that appears
//! there without the kernel's record is never honoured (and is removed, so the desktop does not
//! show a grant that does not exist).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use agentos_dbus_interfaces::{AuditDecision, Lifetime};
use agentos_portal::permission_store::{
    entry_id, parse_entry_id, PermissionStoreProxy, CALL_TIMEOUT, STORE_NAME, TABLE,
};
use futures_util::StreamExt;

use crate::audit_entry::AuditEntry;
use crate::events::Event;
use crate::kernel::Kernel;
use crate::policy::Grant;

/// A grant as the permission store holds it.
fn key(g: &Grant) -> (String, String) {
    (g.principal.clone(), entry_id(g.capability.name, &g.scope))
}

/// The store's answer for an entry it does not hold.
const NOT_FOUND: &str = "org.freedesktop.portal.Error.NotFound";

impl Kernel {
    async fn permission_store(&self) -> Option<PermissionStoreProxy<'static>> {
        let conn = self.bus()?;
        PermissionStoreProxy::builder(conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .ok()
    }

    /// Mirror grants that went live together (session and always ones; "once" grants are
    /// spent at once). All are marked as on their way before the first is written: the store's
    /// signal for one write must not make the others, live but not written yet, look taken
    /// away from the desktop (two principals' grants share an entry).
    pub(crate) async fn mirror_add(&self, grants: &[Grant]) {
        let lasting: Vec<&Grant> = grants
            .iter()
            .filter(|g| g.lifetime != Lifetime::Once)
            .collect();
        for g in &lasting {
            self.rights.begin_mirror(key(g));
        }
        let store = self.permission_store().await;
        for grant in lasting {
            match &store {
                Some(store) => self.mirror_one(store, grant).await,
                None => self.rights.end_mirror(&key(grant)),
            }
        }
    }

    /// Write one grant marked as on its way (see [`mirror_add`](Self::mirror_add)).
    async fn mirror_one(&self, store: &PermissionStoreProxy<'_>, grant: &Grant) {
        let (principal, id) = key(grant);
        let permissions = [grant.lifetime.as_str()];
        let set = store.set_permission(TABLE, true, &id, &principal, &permissions);
        let result = tokio::time::timeout(CALL_TIMEOUT, set).await;
        self.rights.end_mirror(&(principal.clone(), id));
        match result {
            Ok(Ok(())) if grant.lifetime == Lifetime::Always => {
                let marked = self.store().mark_grant_mirrored(
                    &principal,
                    grant.capability.name,
                    &grant.scope,
                );
                if let Err(e) = marked {
                    tracing::warn!(error = %e, "cannot record a mirrored grant");
                }
            }
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot mirror a grant into the permission store")
            }
            Err(_) => tracing::warn!("the permission store did not answer in time"),
        }
    }

    /// Remove the mirror of revoked grants.
    pub(crate) async fn mirror_remove(&self, removed: &[Grant]) {
        let Some(store) = self.permission_store().await else {
            return;
        };
        for g in removed {
            self.rights.forget_mirror(&key(g));
            let (principal, id) = key(g);
            let _ = tokio::time::timeout(
                CALL_TIMEOUT,
                store.delete_permission(TABLE, &id, &principal),
            )
            .await;
        }
    }

    /// Revoke grants the desktop took away.
    async fn revoke_from_desktop(&self, grants: Vec<Grant>, why: &str) {
        for g in grants {
            let removed = self
                .rights
                .revoke(&g.principal, g.capability.name, Some(&g.scope));
            if removed.is_empty() {
                continue;
            }
            self.rights.forget_mirror(&key(&g));
            for r in &removed {
                self.events.publish(Event::GrantRevoked(r.info()));
            }
            self.end_what_was_allowed(&removed);
            if let Err(e) =
                self.store()
                    .delete_grants(&g.principal, g.capability.name, Some(&g.scope))
            {
                tracing::error!(error = %e, "cannot delete a revoked grant");
            }
            tracing::info!(principal = %g.principal, capability = g.capability.name, scope = %g.scope, "{why}");
            let _ = self.audit(AuditEntry {
                principal: &g.principal,
                capability: g.capability.name,
                scope: &g.scope,
                decision: AuditDecision::Revoke,
                reason: why,
            });
        }
    }

    /// Apply one entry of the store: kernel grants missing from it are revoked; apps listed in
    /// it without a kernel grant are removed from it.
    async fn reconcile_entry(
        &self,
        store: &PermissionStoreProxy<'_>,
        id: &str,
        apps: &HashMap<String, Vec<String>>,
    ) {
        let Some((cap, scope)) = parse_entry_id(id) else {
            return;
        };
        let (missing, forged) = {
            let live = self.rights.mirrored_on(cap, &scope);
            let missing: Vec<Grant> = live
                .iter()
                .filter(|g| !apps.contains_key(&g.principal))
                .cloned()
                .collect();
            let known: HashSet<&str> = live.iter().map(|g| g.principal.as_str()).collect();
            let forged: Vec<String> = apps
                .keys()
                .filter(|a| !known.contains(a.as_str()))
                .cloned()
                .collect();
            (missing, forged)
        };
        let lost = self.confirm_lost(store, id, missing).await;
        self.revoke_from_desktop(lost, "revoked from the desktop (permission store)")
            .await;
        // The view may be older than a grant given since (while the store was asked again):
        // what the kernel holds now is never removed from the desktop.
        let held = self.rights.mirrored_on(cap, &scope);
        let forged = forged
            .into_iter()
            .filter(|app| !held.iter().any(|g| &g.principal == app));
        for app in forged {
            // A session grant mirrored by an earlier run ends with that run; anything else in
            // the table was not written by the kernel. Either way it is removed, never honoured.
            let session = apps
                .get(&app)
                .is_some_and(|p| p.len() == 1 && p[0] == "session");
            if session {
                tracing::info!(%app, %id, "removing a session grant of an earlier run from the permission store");
            } else {
                tracing::warn!(%app, %id, "ignoring and removing a permission-store entry the kernel never granted");
            }
            let _ =
                tokio::time::timeout(CALL_TIMEOUT, store.delete_permission(TABLE, id, &app)).await;
        }
    }

    /// Of the grants an entry seen earlier lacks (a `Changed` signal, a look during the start-up
    /// sync), those the desktop really took away: the entry looked up again now still lacks
    /// them, and no write of theirs was on its way or ended since. (A grant given meanwhile is in
    /// the kernel before it is written to the store, so an older view of the entry lacks it.)
    async fn confirm_lost(
        &self,
        store: &PermissionStoreProxy<'_>,
        id: &str,
        missing: Vec<Grant>,
    ) -> Vec<Grant> {
        if missing.is_empty() {
            return missing;
        }
        let mark = self.rights.mirror_mark();
        let apps = match tokio::time::timeout(CALL_TIMEOUT, store.lookup(TABLE, id)).await {
            Ok(Ok((apps, _))) => apps,
            // The entry is gone altogether: every app's permission on it was removed.
            Ok(Err(zbus::Error::MethodError(name, ..))) if name.as_str() == NOT_FOUND => {
                HashMap::new()
            }
            _ => {
                tracing::warn!(%id, "the permission store cannot be read; no grant revoked from it");
                return Vec::new();
            }
        };
        missing
            .into_iter()
            .filter(|g| !apps.contains_key(&g.principal))
            .filter(|g| !self.rights.mirror_seen_since(&key(g), mark))
            .collect()
    }

    /// Bring the permission store and the kernel's grants in line: a mirrored grant that vanished
    /// while the kernel was down was revoked from the desktop; every live grant is mirrored; what
    /// else the table holds is removed.
    pub async fn sync_permission_store(&self) {
        let Some(store) = self.permission_store().await else {
            return;
        };
        let mirrored = match self.store().list_mirrored_grants() {
            Ok(g) => g,
            Err(e) => return tracing::error!(error = %e, "cannot read grants"),
        };
        let mut gone = Vec::new();
        for info in mirrored {
            let Some(grant) = Grant::from_info(&info) else {
                continue;
            };
            let id = entry_id(&info.capability, &info.scope);
            match tokio::time::timeout(CALL_TIMEOUT, store.lookup(TABLE, &id)).await {
                Ok(Ok((apps, _))) if apps.contains_key(&info.principal) => {}
                Ok(Ok(_)) | Ok(Err(zbus::Error::MethodError(..))) => gone.push(grant),
                _ => return tracing::warn!("the permission store cannot be read; not syncing"),
            }
        }
        self.revoke_from_desktop(
            gone,
            "revoked from the desktop while the kernel was stopped",
        )
        .await;
        let live: Vec<Grant> = self.rights.all();
        self.mirror_add(&live).await;
        let Ok(Ok(ids)) = tokio::time::timeout(CALL_TIMEOUT, store.list(TABLE)).await else {
            return;
        };
        for id in ids {
            if let Ok(Ok((apps, _))) =
                tokio::time::timeout(CALL_TIMEOUT, store.lookup(TABLE, &id)).await
            {
                self.reconcile_entry(&store, &id, &apps).await;
            }
        }
    }
}

/// Follow the permission store: apply its `Changed` signals, and sync whenever it (re)appears.
pub async fn follow(kernel: Weak<Kernel>, conn: zbus::Connection) {
    let Ok(store) = PermissionStoreProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
    else {
        return;
    };
    let Ok(mut changes) = store.receive_changed_with_args(&[(0, TABLE)]).await else {
        return;
    };
    let Ok(dbus) = zbus::fdo::DBusProxy::new(&conn).await else {
        return;
    };
    let Ok(mut owners) = dbus
        .receive_name_owner_changed_with_args(&[(0, STORE_NAME)])
        .await
    else {
        return;
    };
    if let Some(k) = kernel.upgrade() {
        k.sync_permission_store().await;
    }
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else { return };
                let Ok(args) = change.args() else { continue };
                let Some(k) = kernel.upgrade() else { return };
                let apps = if args.deleted { HashMap::new() } else { args.permissions.clone() };
                k.reconcile_entry(&store, &args.id, &apps).await;
            }
            owner = owners.next() => {
                let Some(owner) = owner else { return };
                if owner.args().is_ok_and(|a| a.new_owner().is_some()) {
                    let Some(k) = kernel.upgrade() else { return };
                    k.sync_permission_store().await;
                }
            }
        }
    }
}

/// Start following the permission store (after the kernel is on the bus).
pub fn start(kernel: &Arc<Kernel>) {
    if let Some(conn) = kernel.bus() {
        tokio::spawn(follow(Arc::downgrade(kernel), conn.clone()));
    }
}
