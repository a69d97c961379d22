//! State mutation helpers that keep the indexes in step, and `apply`, which
//! carries out the decisions of `decide.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::config::SkillRequirement;
use super::decide::Action;
use super::state::{
    scan_queues, AgentIdx, AgentSt, DenseSet, Pool, PoolsId, QueueIdx, SkillIdx, Waiter, WaiterId,
    WaiterState,
};
use super::timers::TimerKey;
use super::types::{
    AgentStatus, CallbackRecord, Contact, OfferId, Output, PersistRecord, QueueEvent,
    QueueEventKind,
};
use super::{Acd, AcdError, OfferRec};

impl Acd {
    // ----- interning and static indexes ---------------------------------------

    pub(crate) fn skill(&mut self, name: &str) -> SkillIdx {
        if let Some(&s) = self.skill_ix.get(name) {
            return s;
        }
        let s = self.skill_ix.len();
        self.skill_ix.insert(name.to_owned(), s);
        self.ready_by_skill
            .push(DenseSet::with_universe(self.agents.len()));
        self.agents_by_skill.push(Vec::new());
        s
    }

    /// Requirements as sorted (skill, min) pairs; the highest minimum wins
    /// for a skill named twice.
    pub(crate) fn reqs(&mut self, reqs: &[SkillRequirement]) -> Vec<(SkillIdx, u8)> {
        let mut out: Vec<(SkillIdx, u8)> = Vec::new();
        for r in reqs {
            let s = self.skill(&r.skill);
            let min = r.min.clamp(1, 5);
            match out.iter_mut().find(|(k, _)| *k == s) {
                Some(e) => e.1 = e.1.max(min),
                None => out.push((s, min)),
            }
        }
        out.sort_unstable();
        out
    }

    /// Members, serving lists, overlaps and every agent's scan list.
    pub(crate) fn index_membership(&mut self) {
        let nq = self.queues.len();
        for qi in 0..nq {
            let base = Pool {
                queue: qi,
                reqs: self.queues[qi].base_reqs.clone(),
            };
            let mut members = Vec::new();
            let mut serving = Vec::new();
            for (ai, a) in self.agents.iter().enumerate() {
                if a.serves[qi] {
                    serving.push(ai);
                    if a.meets(&base) {
                        members.push(ai);
                    }
                }
            }
            self.queues[qi].members = members;
            self.queues[qi].serving = serving;
        }
        for qi in 0..nq {
            let mine: BTreeSet<AgentIdx> = self.queues[qi].members.iter().copied().collect();
            let mut overlap = Vec::new();
            if !mine.is_empty() {
                for oq in 0..nq {
                    if oq == qi {
                        continue;
                    }
                    // The share of the other queue's staff that is also
                    // ours: how many of its callers ahead use our agents.
                    let theirs = &self.queues[oq].members;
                    let shared = theirs.iter().filter(|a| mine.contains(a)).count();
                    if shared > 0 {
                        overlap.push((oq, shared as f64 / theirs.len() as f64));
                    }
                }
            }
            self.queues[qi].overlap = overlap;
        }
        for ai in 0..self.agents.len() {
            let list = scan_queues(&self.agents[ai], &self.queues);
            self.agents[ai].scan_queues = list;
            for (s, &p) in self.agents[ai].prof.iter().enumerate() {
                if p > 0 {
                    self.agents_by_skill[s].push(ai);
                }
            }
        }
    }

    pub(crate) fn intern_pools(&mut self, mut pools: Vec<Pool>) -> PoolsId {
        pools.sort();
        pools.dedup();
        if let Some(&id) = self.pools_ix.get(&pools) {
            return id;
        }
        let id = self.pools.len();
        self.pools.push(pools.clone());
        self.pools_ix.insert(pools, id);
        id
    }

    /// Eligibility pools of a waiter in `queue` with merged requirements
    /// `base` after `level` widening steps.
    pub(crate) fn pools_for(
        &mut self,
        queue: QueueIdx,
        base: &[(SkillIdx, u8)],
        level: usize,
    ) -> PoolsId {
        let mut reqs = base.to_vec();
        let mut extra = Vec::new();
        for step in self.queues[queue].steps.iter().take(level) {
            for &(s, m) in &step.relax {
                if let Some(e) = reqs.iter_mut().find(|(k, _)| *k == s) {
                    e.1 = e.1.min(m);
                }
            }
            reqs.retain(|(s, _)| !step.drop.contains(s));
            if !step.add.is_empty() {
                extra.push(Pool {
                    queue,
                    reqs: step.add.clone(),
                });
            }
            for &o in &step.overflow {
                extra.push(Pool {
                    queue: o,
                    reqs: self.queues[o].base_reqs.clone(),
                });
            }
        }
        let mut pools = vec![Pool { queue, reqs }];
        pools.extend(extra);
        self.intern_pools(pools)
    }

    /// Widening steps due after waiting since `place`.
    pub(crate) fn level_at(&self, queue: QueueIdx, place: Instant, now: Instant) -> usize {
        let waited = now.saturating_duration_since(place);
        self.queues[queue]
            .steps
            .iter()
            .take_while(|s| s.after <= waited)
            .count()
    }

    /// Arm the waiter's next widening timer (if any step is left).
    pub(crate) fn arm_widening(&mut self, id: WaiterId) {
        let Some(w) = self.waiters.get(&id) else {
            return;
        };
        match self.queues[w.queue].steps.get(w.level) {
            Some(step) => self.timers.set(TimerKey::Widen(id), w.place + step.after),
            None => self.timers.cancel(TimerKey::Widen(id)),
        }
    }

    // ----- outputs --------------------------------------------------------------

    pub(crate) fn emit(&mut self, out: Output) {
        self.out.push_back(out);
    }

    pub(crate) fn ignored(&mut self, e: AcdError) {
        self.emit(Output::Ignored(e));
    }

    pub(crate) fn qevent(
        &mut self,
        now: Instant,
        queue: QueueIdx,
        contact: Contact,
        kind: QueueEventKind,
    ) {
        let seq = self.next_event;
        self.next_event += 1;
        let queue = self.queues[queue].cfg.name.clone();
        self.emit(Output::QueueEvent(QueueEvent {
            seq,
            at: now,
            queue,
            contact,
            kind,
        }));
    }

    pub(crate) fn persist_callback(&mut self, id: WaiterId) {
        let Some(w) = self.waiters.get(&id) else {
            return;
        };
        let Contact::Callback(callback) = id else {
            return;
        };
        let not_before = match w.state {
            WaiterState::Delayed { until } => until,
            _ => w.place.min(w.wait_start),
        };
        let record = CallbackRecord {
            callback,
            queue: self.queues[w.queue].cfg.name.clone(),
            number: w.number.clone().unwrap_or_default(),
            caller: w.caller,
            priority: w.priority,
            skills: w.skills.clone(),
            attributes: w.attributes.clone(),
            last_agent: w.last_agent_id.clone(),
            place: w.place,
            requested_at: w.wait_start,
            not_before,
            attempts: w.attempts,
        };
        self.emit(Output::Persist(PersistRecord::SaveCallback(record)));
    }

    // ----- agents ---------------------------------------------------------------

    /// Change an agent's state, keeping the ready indexes in step, and
    /// announce it. Becoming ready queues the agent for routing; leaving
    /// service (not ready, logged out) releases waiters held for it.
    pub(crate) fn set_agent(
        &mut self,
        now: Instant,
        a: AgentIdx,
        state: AgentSt,
        reason: Option<String>,
    ) {
        let was_ready = self.agents[a].state == AgentSt::Ready;
        let is_ready = state == AgentSt::Ready;
        if was_ready && !is_ready {
            self.index_ready(a, false);
        }
        if !was_ready && is_ready {
            self.index_ready(a, true);
            // An offer that was withdrawn does not reset the idle clock.
            if !matches!(self.agents[a].state, AgentSt::Offered { .. }) {
                self.agents[a].idle_since = Some(now);
            }
            self.work.agents.push(a);
        }
        let leaves_service = matches!(state, AgentSt::LoggedOut | AgentSt::NotReady(_));
        let agent = &mut self.agents[a];
        agent.state = state;
        agent.since = Some(now);
        agent.reason = reason.clone();
        let status = agent_status(&agent.state);
        let id = agent.id.clone();
        self.emit(Output::AgentChanged {
            agent: id,
            state: status,
            reason,
            since: now,
        });
        if leaves_service {
            let held: Vec<WaiterId> = self.agents[a].held.values().copied().collect();
            for w in held {
                self.timers.cancel(TimerKey::StickyHold(w));
                self.set_waiter_state(w, WaiterState::Available);
            }
        }
    }

    fn index_ready(&mut self, a: AgentIdx, ready: bool) {
        let skills: Vec<SkillIdx> = self.agents[a]
            .prof
            .iter()
            .enumerate()
            .filter(|(_, &p)| p > 0)
            .map(|(s, _)| s)
            .collect();
        for s in skills {
            if ready {
                self.ready_by_skill[s].insert(a);
            } else {
                self.ready_by_skill[s].remove(a);
            }
        }
        for qi in 0..self.queues.len() {
            if self.agents[a].serves[qi] {
                if ready {
                    self.queues[qi].ready_serving.insert(a);
                } else {
                    self.queues[qi].ready_serving.remove(a);
                }
            }
        }
    }

    /// The wrap-up an agent gets after a call from `queue`.
    pub(crate) fn wrap_up_for(&self, a: AgentIdx, queue: QueueIdx) -> Duration {
        self.agents[a]
            .cfg
            .wrap_up
            .unwrap_or(self.queues[queue].cfg.wrap_up)
    }

    // ----- waiters --------------------------------------------------------------

    /// Add a new waiter (its state decides whether it is available).
    pub(crate) fn insert_waiter(&mut self, w: Waiter) {
        let id = w.id;
        let key = w.key();
        let q = w.queue;
        let state = w.state.clone();
        let is_callback = w.is_callback();
        self.waiters.insert(
            id,
            Waiter {
                state: WaiterState::Parked,
                ..w
            },
        );
        let queue = &mut self.queues[q];
        queue.all.insert(key, id);
        *queue.by_priority.entry(key.0 .0).or_default() += 1;
        if is_callback {
            queue.callbacks += 1;
        } else {
            queue.live_callers += 1;
        }
        self.set_waiter_state(id, state);
        self.arm_widening(id);
    }

    /// Remove a waiter from every index and cancel its timers and offers'
    /// bookkeeping (offers themselves are the caller's business).
    pub(crate) fn remove_waiter(&mut self, id: WaiterId) -> Option<Waiter> {
        if !self.waiters.contains_key(&id) {
            return None;
        }
        self.set_waiter_state(id, WaiterState::Parked);
        let w = self.waiters.remove(&id)?;
        let queue = &mut self.queues[w.queue];
        queue.all.remove(&w.key());
        uncount(&mut queue.by_priority, w.priority);
        if w.is_callback() {
            queue.callbacks -= 1;
        } else {
            queue.live_callers -= 1;
        }
        for key in [
            TimerKey::Widen(id),
            TimerKey::MaxWait(id),
            TimerKey::Announce(id),
            TimerKey::StickyHold(id),
            TimerKey::CallbackDue(id),
        ] {
            self.timers.cancel(key);
        }
        if let Contact::Callback(cb) = id {
            self.timers.cancel(TimerKey::CallbackAttempt(cb));
        }
        Some(w)
    }

    /// Move a waiter between states, keeping the available groups and the
    /// held lists in step. Becoming available queues it for routing.
    pub(crate) fn set_waiter_state(&mut self, id: WaiterId, state: WaiterState) {
        let Some(w) = self.waiters.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut w.state, state.clone());
        let (key, q, pools) = (w.key(), w.queue, w.pools);
        match old {
            WaiterState::Available => {
                let queue = &mut self.queues[q];
                if let Some(group) = queue.available.get_mut(&pools) {
                    group.remove(&key);
                    if group.is_empty() {
                        queue.available.remove(&pools);
                    }
                }
            }
            WaiterState::Held { agent, .. } => {
                self.agents[agent].held.remove(&key);
            }
            _ => {}
        }
        match state {
            WaiterState::Available => {
                self.queues[q]
                    .available
                    .entry(pools)
                    .or_default()
                    .insert(key, id);
                self.work.waiters.push(id);
            }
            WaiterState::Held { agent, .. } => {
                self.agents[agent].held.insert(key, id);
            }
            _ => {}
        }
    }

    /// Change a waiter's order key or pools: take it out of the indexes,
    /// update it, put it back.
    pub(crate) fn update_waiter(&mut self, id: WaiterId, f: impl FnOnce(&mut Waiter)) {
        let Some(w) = self.waiters.get(&id) else {
            return;
        };
        let state = w.state.clone();
        self.set_waiter_state(id, WaiterState::Parked);
        let Some(w) = self.waiters.get_mut(&id) else {
            return;
        };
        let old_key = w.key();
        f(w);
        let new_key = w.key();
        let q = w.queue;
        if old_key != new_key {
            let queue = &mut self.queues[q];
            queue.all.remove(&old_key);
            queue.all.insert(new_key, id);
            uncount(&mut queue.by_priority, old_key.0 .0);
            *queue.by_priority.entry(new_key.0 .0).or_default() += 1;
        }
        self.set_waiter_state(id, state);
    }

    // ----- applying decisions ----------------------------------------------------

    pub(crate) fn apply(&mut self, now: Instant, action: Action) {
        match action {
            Action::StickyDone { waiter } => {
                if let Some(w) = self.waiters.get_mut(&waiter) {
                    w.sticky_done = true;
                }
            }
            Action::Hold {
                waiter,
                agent,
                until,
            } => {
                self.set_waiter_state(waiter, WaiterState::Held { agent, until });
                self.timers.set(TimerKey::StickyHold(waiter), until);
            }
            Action::Offer { waiter, agents } => match waiter {
                Contact::Callback(cb) => {
                    if let Some(&agent) = agents.first() {
                        self.start_callback(now, cb, agent);
                    }
                }
                Contact::Caller(caller) => {
                    let Some(w) = self.waiters.get(&waiter) else {
                        return;
                    };
                    let q = w.queue;
                    let lease_until = now + self.queues[q].cfg.ring_timeout;
                    let mut offers = Vec::new();
                    for &a in &agents {
                        let offer = OfferId(self.next_offer);
                        self.next_offer += 1;
                        offers.push(offer);
                        self.offers.insert(
                            offer,
                            OfferRec {
                                waiter,
                                agent: a,
                                queue: q,
                            },
                        );
                        self.set_agent(now, a, AgentSt::Offered { offer }, None);
                        self.timers.set(TimerKey::Lease(offer), lease_until);
                        let agent_id = self.agents[a].id.clone();
                        self.emit(Output::Offer {
                            offer,
                            caller,
                            agent: agent_id.clone(),
                            queue: self.queues[q].cfg.name.clone(),
                            lease_until,
                        });
                        self.qevent(
                            now,
                            q,
                            waiter,
                            QueueEventKind::Offered {
                                offer,
                                agent: agent_id,
                            },
                        );
                    }
                    if let Some(&first) = agents.first() {
                        self.queues[q].rr_last = Some(first);
                    }
                    self.set_waiter_state(waiter, WaiterState::Offering { offers });
                }
            },
        }
    }
}

fn uncount(counts: &mut BTreeMap<i32, usize>, priority: i32) {
    if let Some(n) = counts.get_mut(&priority) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&priority);
        }
    }
}

/// The wallboard view of an internal state.
pub(crate) fn agent_status(st: &AgentSt) -> AgentStatus {
    match st {
        AgentSt::LoggedOut => AgentStatus::LoggedOut,
        AgentSt::Ready => AgentStatus::Ready,
        AgentSt::NotReady(_) => AgentStatus::NotReady,
        AgentSt::Offered { .. } => AgentStatus::Offered,
        AgentSt::Calling { .. } | AgentSt::OnCall { .. } => AgentStatus::OnCall,
        AgentSt::WrapUp { .. } => AgentStatus::WrapUp,
    }
}
