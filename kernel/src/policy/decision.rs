//! Decisions: default deny, manifest ceilings, attenuation through delegation, consent when needed.

use std::collections::HashMap;

use agentos_dbus_interfaces::{Capability, Lifetime};

use super::grants::{Grant, GrantTable};

/// A request to use a capability on a scope.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The acting agent first, then every agent above it in the task tree, nearest first.
    pub chain: &'a [String],
    pub capability: &'static Capability,
    /// The normalized scope (see `Capability::normalize_scope`).
    pub scope: &'a str,
    /// Whether the acting agent's manifest declares the capability.
    pub declared: bool,
    /// Whether every agent above declares it too: then a delegator without the right makes the
    /// user be asked (the prompt names the chain, and a lasting answer gives the right to the
    /// delegators that lack it too); otherwise such a request is denied without asking.
    pub delegators_declare: bool,
}

/// What the policy says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A live grant covers it (a "once" grant has been spent on it).
    Allow { lifetime: Lifetime },
    /// No grant, but nothing forbids asking the user.
    Ask,
    /// Denied without asking; the reason is meant for a person.
    Deny { reason: String },
}

/// How often the user may deny the same request before it is denied without asking.
pub const MAX_DENIALS: u32 = 2;

/// The policy engine: a grant table and the rules above it, and what the user denied.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub grants: GrantTable,
    /// How often the user denied each (principal, capability, scope) since the last reset.
    denials: HashMap<(String, String, String), u32>,
}

fn denial_key(principal: &str, capability: &Capability, scope: &str) -> (String, String, String) {
    (principal.into(), capability.name.into(), scope.into())
}

impl Policy {
    /// Decide a request. Never allows without a live grant of the acting agent, and never
    /// beyond the lasting rights of any agent above it (a delegated task carries at most the
    /// rights of whoever delegated it).
    pub fn decide(&mut self, req: Request<'_>) -> Decision {
        let Some(acting) = req.chain.first() else {
            return Decision::Deny {
                reason: "no acting principal".into(),
            };
        };
        if !req.declared {
            return Decision::Deny {
                reason: format!(
                    "{acting} does not declare {} in its manifest",
                    req.capability.name
                ),
            };
        }
        if let Some(delegator) = self.lacking(req).first() {
            if req.delegators_declare {
                return Decision::Ask;
            }
            return Decision::Deny {
                reason: format!(
                    "{delegator} delegated this task and itself has no right to {} {} \
                     (nor declares it, so the user cannot be asked to give it)",
                    req.capability.name, req.scope
                ),
            };
        }
        match self.grants.use_grant(acting, req.capability, req.scope) {
            Some(g) => Decision::Allow {
                lifetime: g.lifetime,
            },
            None => Decision::Ask,
        }
    }

    /// Whether `req` would be allowed by lasting grants alone (nothing spent, nobody asked): the
    /// acting principal declares and holds one, and so does every agent above it.
    pub fn allows_lasting(&self, req: Request<'_>) -> bool {
        req.declared
            && req
                .chain
                .first()
                .is_some_and(|a| self.grants.has_lasting(a, req.capability, req.scope))
            && self.lacking(req).is_empty()
    }

    /// The agents above the acting one (nearest first) that hold no lasting right to `req`.
    pub fn lacking<'r>(&self, req: Request<'r>) -> Vec<&'r str> {
        req.chain
            .iter()
            .skip(1)
            .filter(|p| !self.grants.has_lasting(p, req.capability, req.scope))
            .map(String::as_str)
            .collect()
    }

    /// The user said no to `req`, or closed its dialog, or let it run out of time.
    pub fn note_denial(&mut self, req: Request<'_>) {
        if let Some(acting) = req.chain.first() {
            *self
                .denials
                .entry(denial_key(acting, req.capability, req.scope))
                .or_default() += 1;
        }
    }

    /// Whether the user denied `req` often enough that it is no longer asked ("two denials end
    /// the asking", until a grant or a revocation resets it).
    pub fn stops_asking(&self, req: Request<'_>) -> bool {
        req.chain.first().is_some_and(|acting| {
            self.denials
                .get(&denial_key(acting, req.capability, req.scope))
                .is_some_and(|n| *n >= MAX_DENIALS)
        })
    }

    /// Add a grant the user gave; it replaces one for the same scope, which is returned, and
    /// resets the denials of that scope.
    pub fn add_grant(&mut self, grant: Grant) -> Option<Grant> {
        self.denials.remove(&denial_key(
            &grant.principal,
            grant.capability,
            &grant.scope,
        ));
        self.grants.add(grant)
    }

    /// Revoke grants (every scope when `scope` is `None`); returns them. A revocation also resets
    /// "denied twice, stop asking" for what it covers.
    pub fn revoke(&mut self, principal: &str, capability: &str, scope: Option<&str>) -> Vec<Grant> {
        self.denials.retain(|(p, c, s), _| {
            !(p == principal && c == capability && scope.is_none_or(|sc| sc == s))
        });
        self.grants.revoke(principal, capability, scope)
    }

    /// Record the user's answer to a consent prompt for `req`, which named `disclosed` as the
    /// delegators lacking the right, and decide the request with it
    /// ([`consent_grants`](Self::consent_grants), then [`decide_consented`](Self::decide_consented)).
    pub fn record_consent(
        &mut self,
        req: Request<'_>,
        lifetime: Lifetime,
        now: u64,
        disclosed: &[String],
    ) -> (Vec<Grant>, Decision) {
        let added = self.consent_grants(req, lifetime, now, disclosed);
        (added, self.decide_consented(req, lifetime, disclosed))
    }

    /// The grants the user's answer to a consent prompt for `req` gives: the acting agent gets
    /// one unless one of its own covers the request already; a lasting answer (session, always)
    /// goes to each delegator that lacks the right and that the prompt named as lacking it
    /// (`disclosed`): one whose right was taken away while the user was asked gets none. A
    /// "once" answer gives the delegators nothing. Returns the grants added.
    pub fn consent_grants(
        &mut self,
        req: Request<'_>,
        lifetime: Lifetime,
        now: u64,
        disclosed: &[String],
    ) -> Vec<Grant> {
        let Some(acting) = req.chain.first().filter(|_| req.declared) else {
            return Vec::new();
        };
        let grant = |principal: &str| Grant {
            principal: principal.to_string(),
            capability: req.capability,
            scope: req.scope.to_string(),
            lifetime,
            granted_at: now,
        };
        let mut who: Vec<String> = Vec::new();
        if self
            .grants
            .find(acting, req.capability, req.scope)
            .is_none()
        {
            who.push(acting.clone());
        }
        if lifetime != Lifetime::Once {
            who.extend(
                self.lacking(req)
                    .into_iter()
                    .filter(|p| disclosed.iter().any(|d| d == p))
                    .map(String::from),
            );
        }
        let mut added = Vec::new();
        for p in who {
            // Nothing of theirs covers it, so nothing is replaced.
            drop(self.add_grant(grant(&p)));
            added.push(grant(&p));
        }
        added
    }

    /// Decide `req` right after the user answered `lifetime` to it: that spends a "once" grant
    /// and re-checks the chain (a right revoked while the user was asked still denies). After a
    /// "once" answer the delegators' lack of the right that the prompt named (`disclosed`) is
    /// what the user just saw and allowed, for this one request; the next one is asked again.
    /// A delegator whose right was taken away while the user was asked still denies.
    pub fn decide_consented(
        &mut self,
        req: Request<'_>,
        lifetime: Lifetime,
        disclosed: &[String],
    ) -> Decision {
        if lifetime != Lifetime::Once || !req.declared {
            return self.decide(req);
        }
        let Some(acting) = req.chain.first() else {
            return self.decide(req);
        };
        // Spent whatever comes of it: a "once" grant left over would let the next one through.
        let used = self.grants.use_grant(acting, req.capability, req.scope);
        if let Some(revoked) = self
            .lacking(req)
            .into_iter()
            .find(|p| !disclosed.iter().any(|d| d == p))
        {
            return Decision::Deny {
                reason: format!(
                    "{revoked} delegated this task, and its right to {} {} was taken away while \
                     the user was asked",
                    req.capability.name, req.scope
                ),
            };
        }
        match used {
            Some(g) => Decision::Allow {
                lifetime: g.lifetime,
            },
            None => Decision::Ask,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cap(name: &str) -> &'static Capability {
        Capability::lookup(name).unwrap()
    }

    fn grant(p: &str, c: &str, s: &str, l: Lifetime) -> Grant {
        Grant {
            principal: p.into(),
            capability: cap(c),
            scope: s.into(),
            lifetime: l,
            granted_at: 0,
        }
    }

    fn req<'a>(chain: &'a [String], c: &str, s: &'a str) -> Request<'a> {
        Request {
            chain,
            capability: cap(c),
            scope: s,
            declared: true,
            delegators_declare: false,
        }
    }

    /// Who the grants are for.
    fn principals(grants: &[Grant]) -> Vec<&str> {
        grants.iter().map(|g| g.principal.as_str()).collect()
    }

    /// A request through a chain whose delegators all declare the capability.
    fn through<'a>(chain: &'a [String], c: &str, s: &'a str) -> Request<'a> {
        Request {
            delegators_declare: true,
            ..req(chain, c, s)
        }
    }

    #[test]
    fn two_denials_end_the_asking_until_a_grant_or_a_revocation() {
        let mut p = Policy::default();
        let chain = vec!["docs".to_string()];
        let r = req(&chain, "files.read", "/d");
        p.note_denial(r);
        assert!(!p.stops_asking(r));
        p.note_denial(r);
        assert!(p.stops_asking(r));
        // Another scope, or another principal, is still asked.
        assert!(!p.stops_asking(req(&chain, "files.read", "/e")));
        drop(p.revoke("docs", "files.read", None));
        assert!(!p.stops_asking(r));
        p.note_denial(r);
        p.note_denial(r);
        drop(p.add_grant(grant("docs", "files.read", "/d", Lifetime::Session)));
        assert!(!p.stops_asking(r));
    }

    #[test]
    fn lasting_grants_of_the_whole_chain_allow_without_spending_anything() {
        let mut p = Policy::default();
        let chain = vec!["docs".to_string(), "sidekick".to_string()];
        let r = req(&chain, "model.remote", "anthropic");
        assert!(!p.allows_lasting(r));
        drop(p.add_grant(grant("docs", "model.remote", "anthropic", Lifetime::Once)));
        assert!(!p.allows_lasting(r), "a once grant is not lasting");
        drop(p.add_grant(grant(
            "docs",
            "model.remote",
            "anthropic",
            Lifetime::Session,
        )));
        assert!(!p.allows_lasting(r), "its delegator holds none");
        drop(p.add_grant(grant(
            "sidekick",
            "model.remote",
            "anthropic",
            Lifetime::Always,
        )));
        assert!(p.allows_lasting(r));
        assert!(p.allows_lasting(r), "nothing was spent");
        assert!(!p.allows_lasting(req(&chain, "model.remote", "openai")));
        let undeclared = Request {
            declared: false,
            ..r
        };
        assert!(!p.allows_lasting(undeclared));
    }

    #[test]
    fn default_deny_means_ask_and_undeclared_means_deny() {
        let mut p = Policy::default();
        let chain = vec!["docs".to_string()];
        assert_eq!(
            p.decide(req(&chain, "files.read", "/home/u")),
            Decision::Ask
        );
        let undeclared = Request {
            declared: false,
            ..req(&chain, "files.read", "/home/u")
        };
        assert!(matches!(p.decide(undeclared), Decision::Deny { .. }));
    }

    #[test]
    fn once_is_spent_session_and_always_stay() {
        let mut p = Policy::default();
        let chain = vec!["docs".to_string()];
        p.grants
            .add(grant("docs", "files.read", "/d", Lifetime::Once));
        assert_eq!(
            p.decide(req(&chain, "files.read", "/d/x")),
            Decision::Allow {
                lifetime: Lifetime::Once
            }
        );
        assert_eq!(p.decide(req(&chain, "files.read", "/d/x")), Decision::Ask);
        p.grants
            .add(grant("docs", "files.read", "/d", Lifetime::Session));
        assert!(matches!(
            p.decide(req(&chain, "files.read", "/d")),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            p.decide(req(&chain, "files.read", "/d")),
            Decision::Allow { .. }
        ));
        p.grants.end_session();
        assert_eq!(p.decide(req(&chain, "files.read", "/d")), Decision::Ask);
    }

    #[test]
    fn delegated_tasks_are_attenuated() {
        let mut p = Policy::default();
        let chain = vec!["docs".to_string(), "planner".to_string()];
        p.grants
            .add(grant("docs", "files.read", "/d", Lifetime::Always));
        // The delegating planner has no right to /d: denied without asking.
        assert!(matches!(
            p.decide(req(&chain, "files.read", "/d")),
            Decision::Deny { .. }
        ));
        // A "once" grant of the planner is not a ceiling for others.
        p.grants
            .add(grant("planner", "files.read", "/d", Lifetime::Once));
        assert!(matches!(
            p.decide(req(&chain, "files.read", "/d")),
            Decision::Deny { .. }
        ));
        p.grants
            .add(grant("planner", "files.read", "/", Lifetime::Session));
        assert!(matches!(
            p.decide(req(&chain, "files.read", "/d/a")),
            Decision::Allow { .. }
        ));
        // Narrower than the planner's right is fine; the planner's scope does not widen docs'.
        assert_eq!(p.decide(req(&chain, "files.read", "/e")), Decision::Ask);
    }

    #[test]
    fn a_delegator_that_declares_the_right_lets_the_user_be_asked_for_the_chain() {
        let mut p = Policy::default();
        let chain = vec!["docs".to_string(), "sidekick".to_string()];
        let r = through(&chain, "files.read", "/d");
        // Nobody holds it: ask (and not without the delegators declaring it: deny).
        assert_eq!(p.decide(r), Decision::Ask);
        assert!(matches!(
            p.decide(req(&chain, "files.read", "/d")),
            Decision::Deny { .. }
        ));
        // Once: this request passes, nobody keeps a right, the next is asked again.
        let told = ["sidekick".to_string()];
        let (added, decision) = p.record_consent(r, Lifetime::Once, 1, &told);
        assert_eq!(principals(&added), ["docs"]);
        assert!(matches!(decision, Decision::Allow { .. }));
        assert!(!p.grants.has_lasting("sidekick", cap("files.read"), "/d"));
        assert_eq!(p.decide(r), Decision::Ask);
        // Docs holding it already is not enough while the sidekick lacks it; a lasting answer
        // gives the sidekick the right too, and keeps docs' own grant as it was.
        p.grants
            .add(grant("docs", "files.read", "/", Lifetime::Always));
        assert_eq!(p.decide(r), Decision::Ask);
        let (added, decision) = p.record_consent(r, Lifetime::Session, 2, &told);
        assert_eq!(
            added
                .iter()
                .map(|g| (g.principal.as_str(), g.lifetime))
                .collect::<Vec<_>>(),
            [("sidekick", Lifetime::Session)]
        );
        assert!(matches!(decision, Decision::Allow { .. }));
        assert_eq!(
            p.grants
                .find("docs", cap("files.read"), "/d")
                .map(|g| g.lifetime),
            Some(Lifetime::Always)
        );
        assert!(matches!(p.decide(r), Decision::Allow { .. }));
        // An undeclared capability of the acting agent is still denied after any answer.
        let undeclared = Request {
            declared: false,
            ..r
        };
        assert!(matches!(
            p.record_consent(undeclared, Lifetime::Once, 3, &told).1,
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn a_delegators_right_taken_away_while_the_user_was_asked_is_not_given_back() {
        let mut p = Policy::default();
        let chain = vec!["docs".to_string(), "planner".to_string()];
        let r = through(&chain, "files.read", "/d");
        drop(p.add_grant(grant("planner", "files.read", "/d", Lifetime::Session)));
        // Docs is asked; the prompt names nobody above it as lacking the right.
        assert_eq!(p.decide(r), Decision::Ask);
        let told = p
            .lacking(r)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        assert!(told.is_empty());
        // The user revokes the planner's right while the dialog is open.
        assert_eq!(p.revoke("planner", "files.read", None).len(), 1);
        let (added, decision) = p.record_consent(r, Lifetime::Once, 1, &told);
        assert!(
            matches!(&decision, Decision::Deny { reason } if reason.contains("planner")),
            "{decision:?}"
        );
        assert!(added.iter().all(|g| g.principal == "docs"));
        assert_eq!(
            p.decide(r),
            Decision::Ask,
            "its once grant was spent, not kept"
        );
        // A lasting answer gives docs its grant, not the planner one the prompt never named.
        let (added, decision) = p.record_consent(r, Lifetime::Session, 2, &told);
        assert_eq!(principals(&added), ["docs"]);
        assert_eq!(decision, Decision::Ask, "the planner still lacks it");
        assert!(!p.grants.has_lasting("planner", cap("files.read"), "/d"));
    }

    #[test]
    fn consent_records_grants_except_once() {
        let mut p = Policy::default();
        let chain = vec!["web".to_string()];
        let r = req(&chain, "web.fetch", "example.com");
        let (added, decision) = p.record_consent(r, Lifetime::Once, 1, &[]);
        assert_eq!(added.len(), 1);
        assert_eq!(
            decision,
            Decision::Allow {
                lifetime: Lifetime::Once
            }
        );
        // Spent by that decision.
        assert_eq!(p.decide(r), Decision::Ask);
        let (added, decision) = p.record_consent(r, Lifetime::Always, 1, &[]);
        assert_eq!(added.len(), 1);
        assert!(matches!(decision, Decision::Allow { .. }));
        assert!(matches!(p.decide(r), Decision::Allow { .. }));
        assert_eq!(p.grants.revoke("web", "web.fetch", None).len(), 1);
        assert_eq!(p.decide(r), Decision::Ask);
    }

    /// Operations of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        Grant(usize, usize, usize, Lifetime),
        Revoke(usize, usize, Option<usize>),
        Call(Vec<usize>, usize, usize),
        Disconnect,
        EndSession,
    }

    const PRINCIPALS: [&str; 3] = ["a", "b", "c"];
    const CAPS: [&str; 2] = ["files.read", "web.fetch"];
    const SCOPES: [[&str; 3]; 2] = [["/x", "/x/y", "/z"], ["d1.org", "d2.org", "d3.org"]];

    fn lifetime() -> impl Strategy<Value = Lifetime> {
        prop_oneof![
            Just(Lifetime::Once),
            Just(Lifetime::Session),
            Just(Lifetime::Always)
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..2usize, 0..3usize, lifetime())
                .prop_map(|(p, c, s, l)| Op::Grant(p, c, s, l)),
            (0..3usize, 0..2usize, proptest::option::of(0..3usize))
                .prop_map(|(p, c, s)| Op::Revoke(p, c, s)),
            (
                proptest::collection::vec(0..3usize, 1..4),
                0..2usize,
                0..3usize
            )
                .prop_map(|(ch, c, s)| Op::Call(ch, c, s)),
            Just(Op::Disconnect),
            Just(Op::EndSession),
        ]
    }

    /// The model: a plain list of (principal, cap, scope, lifetime), consulted independently.
    fn model_covers(
        model: &[(usize, usize, usize, Lifetime)],
        p: usize,
        c: usize,
        s: usize,
        once_ok: bool,
    ) -> bool {
        model.iter().any(|&(mp, mc, ms, ml)| {
            mp == p
                && mc == c
                && (once_ok || ml != Lifetime::Once)
                && super::super::scope::covers(cap(CAPS[c]).scope, SCOPES[c][ms], SCOPES[c][s])
        })
    }

    proptest! {
        #[test]
        fn no_call_is_ever_allowed_without_a_live_grant(ops in proptest::collection::vec(op(), 1..60)) {
            let mut policy = Policy::default();
            let mut model: Vec<(usize, usize, usize, Lifetime)> = Vec::new();
            for op in ops {
                match op {
                    Op::Grant(p, c, s, l) => {
                        drop(policy.grants.add(grant(PRINCIPALS[p], CAPS[c], SCOPES[c][s], l)));
                        model.retain(|&(mp, mc, ms, _)| !(mp == p && mc == c && ms == s));
                        model.push((p, c, s, l));
                    }
                    Op::Revoke(p, c, s) => {
                        policy.grants.revoke(PRINCIPALS[p], CAPS[c], s.map(|s| SCOPES[c][s]));
                        model.retain(|&(mp, mc, ms, _)| !(mp == p && mc == c && s.is_none_or(|s| s == ms)));
                    }
                    Op::Disconnect => {
                        // An agent going away changes no grant; what it does to its tasks is checked
                        // against the whole kernel in `crate::property_tests`.
                    }
                    Op::EndSession => {
                        policy.grants.end_session();
                        model.retain(|&(_, _, _, l)| l == Lifetime::Always);
                    }
                    Op::Call(chain, c, s) => {
                        let names: Vec<String> = chain.iter().map(|&i| PRINCIPALS[i].to_string()).collect();
                        let decision = policy.decide(req(&names, CAPS[c], SCOPES[c][s]));
                        if let Decision::Allow { lifetime } = decision {
                            prop_assert!(model_covers(&model, chain[0], c, s, true), "allowed without a live grant");
                            for &above in &chain[1..] {
                                prop_assert!(model_covers(&model, above, c, s, false), "allowed beyond a delegator's rights");
                            }
                            if lifetime == Lifetime::Once {
                                // Spend it in the model too: the once grant that covered it.
                                let idx = model.iter().position(|&(mp, mc, ms, ml)| mp == chain[0] && mc == c && ml == Lifetime::Once
                                    && super::super::scope::covers(cap(CAPS[c]).scope, SCOPES[c][ms], SCOPES[c][s]));
                                prop_assert!(idx.is_some());
                                if let Some(i) = idx { model.remove(i); }
                            }
                        } else {
                            // Denials and asks only happen when the model has no lasting cover or a delegator lacks one.
                            let acting_ok = model_covers(&model, chain[0], c, s, true);
                            let above_ok = chain[1..].iter().all(|&a| model_covers(&model, a, c, s, false));
                            prop_assert!(!(acting_ok && above_ok), "denied although grants cover the call");
                        }
                    }
                }
            }
        }
    }
}
