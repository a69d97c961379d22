//! Property tests over random event sequences (bounded sizes).
//!
//! A shadow model built only from the outputs checks the promises:
//! * an agent is offered only from Ready and never two callers at once;
//! * callbacks start only on a Ready agent (so never more than free agents);
//! * every caller who entered ends exactly once (answered, abandoned,
//!   exited, overflowed, callback) or is still held by the ACD;
//! * within a priority, offers follow entry order (FIFO test: no skills,
//!   no widening, no stickiness), skipping only callers the agent declined;
//! * every offer ends: after the lease time nobody is left offered.
//!
//! After every step the core's own indexes are checked against its state,
//! including the routing invariant: no ready agent is eligible for an
//! available caller it has not declined.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::{any, prop_oneof, proptest, Just, ProptestConfig, Strategy as Gen};

use super::harness::*;
use crate::acd::state::{AgentSt, WaiterState};
use crate::acd::*;

#[derive(Debug, Clone)]
enum Op {
    Enter {
        queue: u8,
        priority: u8,
        last: Option<u8>,
    },
    Leave {
        pick: u8,
        abandon: bool,
    },
    SetPriority {
        pick: u8,
        priority: u8,
    },
    Agent {
        agent: u8,
        state: u8,
    },
    Accept {
        pick: u8,
    },
    Reject {
        pick: u8,
        reason: u8,
    },
    EndCall {
        agent: u8,
    },
    Callback {
        pick: u8,
    },
    CallbackResult {
        pick: u8,
        outcome: u8,
    },
    Advance {
        secs: u8,
    },
}

fn op() -> impl Gen<Value = Op> {
    prop_oneof![
        4 => (0u8..2, 0u8..3, proptest::option::weighted(0.3, 0u8..4))
            .prop_map(|(queue, priority, last)| Op::Enter { queue, priority, last }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, abandon)| Op::Leave { pick, abandon }),
        1 => (any::<u8>(), 0u8..3).prop_map(|(pick, priority)| Op::SetPriority { pick, priority }),
        3 => (0u8..4, 0u8..4).prop_map(|(agent, state)| Op::Agent { agent, state }),
        4 => any::<u8>().prop_map(|pick| Op::Accept { pick }),
        2 => (any::<u8>(), 0u8..3).prop_map(|(pick, reason)| Op::Reject { pick, reason }),
        3 => (0u8..4).prop_map(|agent| Op::EndCall { agent }),
        1 => any::<u8>().prop_map(|pick| Op::Callback { pick }),
        2 => (any::<u8>(), 0u8..4).prop_map(|(pick, outcome)| Op::CallbackResult { pick, outcome }),
        3 => (0u8..45).prop_map(|secs| Op::Advance { secs }),
    ]
}

fn strategy() -> impl Gen<Value = Strategy> {
    prop_oneof![
        Just(Strategy::LongestIdle),
        Just(Strategy::RoundRobin),
        Just(Strategy::RingAll),
        Just(Strategy::FewestCalls),
        Just(Strategy::LeastTalkTime),
        Just(Strategy::Random),
        Just(Strategy::BestSkill),
    ]
}

/// Two queues; q0 needs skill `s` (dropped after 30 s), holds sticky
/// callers 10 s, offers callbacks; q1 needs nothing. a3 serves q0 only.
fn rich_config(strategy: crate::acd::Strategy, wrap: u64) -> AcdConfig {
    let mut q0 = QueueConfig::new("q0");
    q0.strategy = strategy;
    q0.skills = vec![SkillRequirement::new("s", 2)];
    q0.widening = vec![WideningStep {
        after: secs(30),
        drop: vec!["s".into()],
        ..Default::default()
    }];
    q0.sticky_wait = secs(10);
    q0.wrap_up = secs(wrap);
    q0.max_wait = Some(secs(120));
    q0.announce_every = Some(secs(20));
    q0.callback = Some(CallbackSettings {
        retry_delay: secs(15),
        max_attempts: 2,
        attempt_timeout: secs(40),
        ..Default::default()
    });
    let mut q1 = QueueConfig::new("q1");
    q1.strategy = strategy;
    q1.weight = 2.0;
    q1.callback = Some(CallbackSettings::default());
    q1.max_length = Some(6);
    let mut a3 = AgentConfig::new("a3").skill("s", 5);
    a3.queues = Some(vec!["q0".into()]);
    let agents = vec![
        AgentConfig::new("a0").skill("s", 3),
        AgentConfig::new("a1").skill("s", 1),
        AgentConfig::new("a2"),
        a3,
    ];
    config(vec![q0, q1], agents)
}

/// One queue, no skills, no stickiness: FIFO within priority must hold.
fn fifo_config(strategy: crate::acd::Strategy) -> AcdConfig {
    let mut q = QueueConfig::new("q0");
    q.strategy = strategy;
    config(vec![q], agents(4))
}

/// What the outputs say.
#[derive(Default)]
struct Shadow {
    status: HashMap<String, AgentStatus>,
    /// Outstanding offers: offer → (caller, agent, lease end).
    offers: BTreeMap<OfferId, (CallerId, String, Instant)>,
    /// Answered calls in progress: agent → contact.
    calls: BTreeMap<String, Contact>,
    callbacks_running: BTreeMap<CallbackId, String>,
    callbacks: Vec<CallbackId>,
    entered: Vec<CallerId>,
    ended: HashMap<CallerId, u32>,
    /// FIFO bookkeeping: caller → (priority, entry order, declined agents).
    available: BTreeMap<CallerId, (i32, u64, HashSet<String>)>,
    offering: HashMap<CallerId, (i32, u64, HashSet<String>)>,
    order: u64,
    check_fifo: bool,
}

impl Shadow {
    fn absorb(&mut self, out: &[Output]) {
        // A lease expiry says CancelOffer, then OfferRejected: both mean
        // the agent declined.
        let rejected: HashSet<OfferId> = out
            .iter()
            .filter_map(|o| match o {
                Output::QueueEvent(QueueEvent {
                    kind: QueueEventKind::OfferRejected { offer, .. },
                    ..
                }) => Some(*offer),
                _ => None,
            })
            .collect();
        for o in out {
            match o {
                Output::AgentChanged { agent, state, .. } => {
                    let prev = self
                        .status
                        .insert(agent.0.clone(), *state)
                        .unwrap_or(AgentStatus::LoggedOut);
                    if *state == AgentStatus::Offered {
                        assert_eq!(prev, AgentStatus::Ready, "{agent} offered while {prev:?}");
                    }
                    if *state == AgentStatus::OnCall {
                        assert!(
                            matches!(
                                prev,
                                AgentStatus::Ready | AgentStatus::Offered | AgentStatus::OnCall
                            ),
                            "{agent} on a call from {prev:?}"
                        );
                    }
                }
                Output::Offer {
                    offer,
                    caller,
                    agent,
                    lease_until,
                    ..
                } => {
                    assert_eq!(self.status.get(&agent.0), Some(&AgentStatus::Offered));
                    assert!(
                        !self.offers.values().any(|(_, a, _)| *a == agent.0),
                        "{agent} offered two callers at once"
                    );
                    assert!(
                        !self.calls.contains_key(&agent.0),
                        "{agent} offered while on a call"
                    );
                    if self.check_fifo {
                        self.check_fifo_offer(*caller, &agent.0);
                    }
                    self.offers
                        .insert(*offer, (*caller, agent.0.clone(), *lease_until));
                }
                Output::CancelOffer { offer, .. } => {
                    self.end_offer(*offer, rejected.contains(offer));
                }
                Output::StartCallback {
                    callback, agent, ..
                } => {
                    assert_eq!(self.status.get(&agent.0), Some(&AgentStatus::OnCall));
                    assert!(!self.callbacks_running.values().any(|a| *a == agent.0));
                    assert!(!self.calls.contains_key(&agent.0));
                    self.callbacks_running.insert(*callback, agent.0.clone());
                }
                Output::Overflow { caller, .. } => self.end(*caller),
                Output::QueueEvent(ev) => match (&ev.kind, ev.contact) {
                    (QueueEventKind::Entered { priority, .. }, Contact::Caller(c)) => {
                        self.entered.push(c);
                        self.order += 1;
                        self.available
                            .insert(c, (*priority, self.order, HashSet::new()));
                    }
                    (QueueEventKind::Answered { agent, .. }, Contact::Caller(c)) => {
                        self.calls.insert(agent.0.clone(), Contact::Caller(c));
                        self.end(c);
                    }
                    (QueueEventKind::OfferRejected { offer, .. }, _) => {
                        self.end_offer(*offer, true)
                    }
                    (
                        QueueEventKind::Abandoned { .. } | QueueEventKind::Exited { .. },
                        Contact::Caller(c),
                    ) => self.end(c),
                    (QueueEventKind::CallbackRequested { callback, caller }, _) => {
                        self.callbacks.push(*callback);
                        if let Some(c) = caller {
                            self.end(*c);
                        }
                    }
                    (QueueEventKind::PriorityChanged { priority }, Contact::Caller(c)) => {
                        if let Some(e) = self.available.get_mut(&c) {
                            e.0 = *priority;
                        }
                        if let Some(e) = self.offering.get_mut(&c) {
                            e.0 = *priority;
                        }
                    }
                    (QueueEventKind::CallbackCompleted { agent, .. }, Contact::Callback(cb)) => {
                        self.callbacks_running.remove(&cb);
                        self.calls.insert(agent.0.clone(), Contact::Callback(cb));
                    }
                    (
                        QueueEventKind::CallbackAttemptFailed { .. }
                        | QueueEventKind::CallbackCancelled,
                        Contact::Callback(cb),
                    ) => {
                        self.callbacks_running.remove(&cb);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    fn end_offer(&mut self, offer: OfferId, declined: bool) {
        let Some((caller, agent, _)) = self.offers.remove(&offer) else {
            return;
        };
        if let Some(e) = self.offering.get_mut(&caller) {
            if declined {
                e.2.insert(agent);
            }
        }
        if !self.offers.values().any(|(c, _, _)| *c == caller) {
            if let Some(e) = self.offering.remove(&caller) {
                self.available.insert(caller, e);
            }
        }
    }

    fn end(&mut self, caller: CallerId) {
        *self.ended.entry(caller).or_default() += 1;
        self.available.remove(&caller);
        self.offering.remove(&caller);
        let gone: Vec<OfferId> = self
            .offers
            .iter()
            .filter(|(_, (c, _, _))| *c == caller)
            .map(|(o, _)| *o)
            .collect();
        for o in gone {
            self.offers.remove(&o);
        }
    }

    /// The offered caller is the first available one (priority, then
    /// entry order) that this agent has not declined.
    fn check_fifo_offer(&mut self, caller: CallerId, agent: &str) {
        if let Some(e) = self.available.remove(&caller) {
            let first = self
                .available
                .iter()
                .filter(|(_, (_, _, d))| !d.contains(agent))
                .map(|(c, (p, o, _))| (-p, *o, *c))
                .min();
            if let Some((p, o, c)) = first {
                assert!(
                    (-e.0, e.1) < (p, o),
                    "{agent} offered {caller:?} (prio {}, #{}) while {c:?} (prio {}, #{o}) waits",
                    e.0,
                    e.1,
                    -p
                );
            }
            self.offering.insert(caller, e);
        }
    }
}

/// The core's indexes agree with its state, and no ready agent is
/// eligible for an available waiter it has not declined.
fn check_consistency(acd: &Acd) {
    let mut offered_agents = HashSet::new();
    for (offer, rec) in &acd.offers {
        assert_eq!(
            acd.agents[rec.agent].state,
            AgentSt::Offered { offer: *offer }
        );
        assert!(offered_agents.insert(rec.agent));
        let w = &acd.waiters[&rec.waiter];
        assert!(matches!(&w.state, WaiterState::Offering { offers } if offers.contains(offer)));
    }
    for (ai, a) in acd.agents.iter().enumerate() {
        if let AgentSt::Offered { offer } = a.state {
            assert!(
                acd.offers.contains_key(&offer),
                "{} holds a dead offer",
                a.id
            );
        }
        let ready = a.state == AgentSt::Ready;
        for (s, set) in acd.ready_by_skill.iter().enumerate() {
            assert_eq!(set.iter().any(|x| x == ai), ready && a.prof(s) > 0);
        }
        for (qi, q) in acd.queues.iter().enumerate() {
            assert_eq!(
                q.ready_serving.iter().any(|x| x == ai),
                ready && a.serves[qi]
            );
        }
        for (key, id) in &a.held {
            let w = &acd.waiters[id];
            assert_eq!(w.key(), *key);
            assert!(matches!(w.state, WaiterState::Held { agent, .. } if agent == ai));
        }
    }
    let mut total = 0;
    for (qi, q) in acd.queues.iter().enumerate() {
        for (key, id) in &q.all {
            let w = &acd.waiters[id];
            assert_eq!((w.key(), w.queue), (*key, qi));
            total += 1;
        }
        let mut avail = 0;
        for (pools, group) in &q.available {
            assert!(!group.is_empty());
            for (key, id) in group {
                let w = &acd.waiters[id];
                assert_eq!(
                    (w.key(), w.pools, &w.state),
                    (*key, *pools, &WaiterState::Available)
                );
                avail += 1;
                for (ai, a) in acd.agents.iter().enumerate() {
                    if a.state == AgentSt::Ready && !w.declined.contains(&ai) {
                        assert!(
                            !acd.eligible(ai, w),
                            "ready {} is eligible for waiting {:?}",
                            a.id,
                            w.id
                        );
                    }
                }
            }
        }
        let expected = acd
            .waiters
            .values()
            .filter(|w| w.queue == qi && w.state == WaiterState::Available)
            .count();
        assert_eq!(avail, expected);
        let live = acd
            .waiters
            .values()
            .filter(|w| w.queue == qi && !w.is_callback())
            .count();
        assert_eq!(q.live_callers, live);
    }
    assert_eq!(total, acd.waiters.len());
    assert!(acd.work.is_empty());
}

fn run(config: AcdConfig, ops: Vec<Op>, fifo: bool) {
    let mut h = H::new(config);
    let nq = h.acd.queue_names().count();
    let mut s = Shadow {
        check_fifo: fifo,
        ..Default::default()
    };
    let mut next_caller = 0u64;
    for o in ops {
        let out = match o {
            Op::Enter {
                queue,
                priority,
                last,
            } => {
                let mut e = CallerEntry::new(
                    CallerId(next_caller),
                    if usize::from(queue) % nq == 0 {
                        "q0"
                    } else {
                        "q1"
                    },
                );
                next_caller += 1;
                e.priority = i32::from(priority);
                if !fifo {
                    e.last_agent = last.map(|a| format!("a{a}").as_str().into());
                }
                h.enter_with(e)
            }
            Op::Leave { pick, abandon } => {
                let Some(&c) = pick_from(&s.entered, pick) else {
                    continue;
                };
                let reason = if abandon {
                    LeaveReason::Abandoned
                } else {
                    LeaveReason::Exited
                };
                h.input(Input::CallerLeaves { caller: c, reason })
            }
            Op::SetPriority { pick, priority } => {
                let Some(&c) = pick_from(&s.entered, pick) else {
                    continue;
                };
                h.input(Input::SetPriority {
                    caller: c,
                    priority: i32::from(priority),
                })
            }
            Op::Agent { agent, state } => {
                let state = match state {
                    0 => AgentStateChange::LoggedOut,
                    1 => AgentStateChange::NotReady("break".into()),
                    _ => AgentStateChange::Ready,
                };
                h.input(Input::AgentState {
                    agent: format!("a{agent}").as_str().into(),
                    state,
                })
            }
            Op::Accept { pick } => {
                let offers: Vec<OfferId> = s.offers.keys().copied().collect();
                let Some(&offer) = pick_from(&offers, pick) else {
                    continue;
                };
                h.accept(offer)
            }
            Op::Reject { pick, reason } => {
                let offers: Vec<OfferId> = s.offers.keys().copied().collect();
                let Some(&offer) = pick_from(&offers, pick) else {
                    continue;
                };
                let reason = [
                    RejectReason::NoAnswer,
                    RejectReason::Busy,
                    RejectReason::Failed,
                ][usize::from(reason)];
                h.reject(offer, reason)
            }
            Op::EndCall { agent } => {
                let name = format!("a{agent}");
                let Some(contact) = s.calls.remove(&name) else {
                    continue;
                };
                h.input(Input::CallEnded {
                    agent: name.as_str().into(),
                    contact,
                    talk: secs(30),
                })
            }
            Op::Callback { pick } => {
                if fifo {
                    continue;
                }
                let Some(&c) = pick_from(&s.entered, pick) else {
                    continue;
                };
                h.input(Input::RequestCallback {
                    caller: c,
                    number: "+1".into(),
                })
            }
            Op::CallbackResult { pick, outcome } => {
                let running: Vec<CallbackId> = s.callbacks_running.keys().copied().collect();
                let Some(&callback) = pick_from(&running, pick) else {
                    continue;
                };
                let outcome = [
                    CallbackOutcome::Connected,
                    CallbackOutcome::Busy,
                    CallbackOutcome::NoAnswer,
                    CallbackOutcome::Failed,
                ][usize::from(outcome)];
                h.input(Input::CallbackResult { callback, outcome })
            }
            Op::Advance { secs: d } => h.advance(Duration::from_secs(u64::from(d))),
        };
        s.absorb(&out);
        check_consistency(&h.acd);
        // Leases end: no offer outlives its deadline.
        assert!(
            s.offers.values().all(|(_, _, until)| *until > h.now),
            "offers outlived their lease: {:?}",
            s.offers
        );
    }
    // With every agent away, every offer ends within one lease and no
    // agent is left offered.
    let mut out = Vec::new();
    for i in 0..4 {
        out.extend(h.not_ready(&format!("a{i}"), "end"));
    }
    out.extend(h.advance(secs(25)));
    s.absorb(&out);
    check_consistency(&h.acd);
    assert!(
        s.offers.is_empty(),
        "offers outlived their lease: {:?}",
        s.offers
    );
    for i in 0..4 {
        assert_ne!(h.status(&format!("a{i}")), AgentStatus::Offered);
    }
    // No caller lost or duplicated.
    for c in &s.entered {
        let ended = s.ended.get(c).copied().unwrap_or(0);
        let waiting = h.acd.is_waiting(Contact::Caller(*c));
        assert!(ended <= 1, "{c:?} ended {ended} times");
        assert!(
            (ended == 1) ^ waiting,
            "{c:?}: ended {ended} times, waiting {waiting}"
        );
    }
    // Callbacks: never more running than agents; each either pending,
    // running, or closed.
    assert!(s.callbacks_running.len() <= 4);
}

fn pick_from<T>(v: &[T], pick: u8) -> Option<&T> {
    if v.is_empty() {
        None
    } else {
        v.get(usize::from(pick) % v.len())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn promises_hold_over_random_sequences(
        strategy in strategy(),
        wrap in 0u64..20,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(rich_config(strategy, wrap), ops, false);
    }

    #[test]
    fn offers_are_fifo_within_priority(
        strategy in strategy().prop_filter("one offer per caller", |s| *s != Strategy::RingAll),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(fifo_config(strategy), ops, true);
    }
}
