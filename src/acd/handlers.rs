//! One function per input and per timer. Each validates, mutates through
//! the helpers in `ops.rs`, and leaves routing to `Acd::route`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::config::{OverflowTarget, SkillRequirement};
use super::state::{AgentIdx, AgentSt, QueueIdx, SkillIdx, Waiter, WaiterId, WaiterState};
use super::timers::TimerKey;
use super::types::{
    AgentId, AgentStateChange, CallbackClosed, CallbackId, CallbackOutcome, CallbackRecord,
    CallerEntry, CallerId, Contact, LeaveReason, OfferId, Output, OverflowReason, PersistRecord,
    QueueEventKind, RejectReason, ScheduledCallback,
};
use super::{Acd, AcdError};

/// How an offer ends (other than being answered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OfferEnd {
    /// Someone else answered (ring-all), or the caller left: the agent is
    /// ready again, nothing held against them.
    Cancelled,
    /// The agent rejected or missed it: not ready, and never offered this
    /// caller again.
    Rejected(RejectReason),
    /// The lease ran out: as `Rejected(NoAnswer)`, and the runtime is told
    /// to stop ringing.
    Expired,
    /// The agent changed state while ringing; their new state is set by the
    /// caller of `end_offer`.
    Withdrawn,
}

impl Acd {
    // ----- callers ---------------------------------------------------------------

    pub(crate) fn caller_enters(&mut self, now: Instant, e: CallerEntry) {
        let Some(&q) = self.queue_ix.get(&e.queue) else {
            self.ignored(AcdError::UnknownQueue(e.queue));
            return;
        };
        let id = Contact::Caller(e.caller);
        if self.waiters.contains_key(&id) {
            self.ignored(AcdError::DuplicateCaller(e.caller));
            return;
        }
        self.queues[q].counters.entered += 1;
        let priority = e.priority.saturating_add(self.rule_bonus(q, &e.attributes));
        if let Some(max) = self.queues[q].cfg.max_length {
            if self.queues[q].live_callers >= max {
                self.qevent(
                    now,
                    q,
                    id,
                    QueueEventKind::Entered {
                        priority,
                        position: self.queues[q].live_callers + 1,
                        estimate: None,
                    },
                );
                let to = self.queues[q].cfg.on_full.clone();
                self.send_out(
                    now,
                    q,
                    e.caller,
                    Duration::ZERO,
                    to,
                    OverflowReason::QueueFull,
                );
                return;
            }
        }
        let base_reqs = self.merged_reqs(q, &e.skills);
        let pools = self.pools_for(q, &base_reqs, 0);
        let last_agent = e
            .last_agent
            .as_ref()
            .and_then(|a| self.agent_ix.get(&a.0).copied());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert_waiter(Waiter {
            id,
            queue: q,
            priority,
            place: now,
            seq,
            wait_start: now,
            skills: e.skills,
            base_reqs,
            attributes: e.attributes,
            last_agent,
            last_agent_id: e.last_agent,
            level: 0,
            pools,
            state: WaiterState::Parked,
            declined: Vec::new(),
            sticky_done: false,
            estimate_at_entry: None,
            number: e.number,
            caller: Some(e.caller),
            attempts: 0,
            overdue: false,
            callback_after: e.callback_after,
        });
        let (position, estimate) = {
            let w = &self.waiters[&id];
            (self.position(w) + 1, self.estimate_for(now, w))
        };
        if let Some(w) = self.waiters.get_mut(&id) {
            w.estimate_at_entry = estimate;
        }
        self.qevent(
            now,
            q,
            id,
            QueueEventKind::Entered {
                priority,
                position,
                estimate,
            },
        );
        if let Some(max) = self.queues[q].cfg.max_wait {
            self.timers.set(TimerKey::MaxWait(id), now + max);
        }
        if self.queues[q].cfg.announce_every.is_some() {
            self.entry_announcements.push(id);
        }
        self.set_waiter_state(id, WaiterState::Available);
    }

    /// Sum of the queue's priority rules that match these attributes.
    fn rule_bonus(&self, q: QueueIdx, attributes: &BTreeMap<String, String>) -> i32 {
        self.queues[q]
            .cfg
            .priority_rules
            .iter()
            .filter(|r| r.when.iter().all(|(k, v)| attributes.get(k) == Some(v)))
            .fold(0i32, |acc, r| acc.saturating_add(r.add))
    }

    /// The queue's requirements with the caller's overrides and additions.
    fn merged_reqs(&mut self, q: QueueIdx, skills: &[SkillRequirement]) -> Vec<(SkillIdx, u8)> {
        let mut reqs = self.queues[q].base_reqs.clone();
        for r in skills {
            let s = self.skill(&r.skill);
            let min = r.min.clamp(1, 5);
            match reqs.iter_mut().find(|(k, _)| *k == s) {
                Some(e) => e.1 = min,
                None => reqs.push((s, min)),
            }
        }
        reqs.sort_unstable();
        reqs
    }

    pub(crate) fn caller_leaves(&mut self, now: Instant, caller: CallerId, reason: LeaveReason) {
        let id = Contact::Caller(caller);
        let Some(w) = self.waiters.get(&id) else {
            self.ignored(AcdError::UnknownCaller(caller));
            return;
        };
        let offers = match &w.state {
            WaiterState::Offering { offers } => offers.clone(),
            _ => Vec::new(),
        };
        let Some(w) = self.remove_waiter(id) else {
            return;
        };
        for o in offers {
            self.end_offer(now, o, OfferEnd::Cancelled);
        }
        let waited = now.saturating_duration_since(w.wait_start);
        let q = w.queue;
        let kind = match reason {
            LeaveReason::Abandoned => {
                let short = waited < self.queues[q].cfg.short_abandon;
                let c = &mut self.queues[q].counters;
                if short {
                    c.short_abandoned += 1;
                } else {
                    c.abandoned += 1;
                }
                QueueEventKind::Abandoned { waited, short }
            }
            LeaveReason::Exited => QueueEventKind::Exited { waited },
        };
        self.qevent(now, q, id, kind);
    }

    pub(crate) fn set_priority(&mut self, now: Instant, caller: CallerId, priority: i32) {
        let id = Contact::Caller(caller);
        let Some(q) = self.waiters.get(&id).map(|w| w.queue) else {
            self.ignored(AcdError::UnknownCaller(caller));
            return;
        };
        self.update_waiter(id, |w| w.priority = priority);
        self.qevent(now, q, id, QueueEventKind::PriorityChanged { priority });
    }

    /// Remove a caller from the queue towards `to`.
    fn send_out(
        &mut self,
        now: Instant,
        q: QueueIdx,
        caller: CallerId,
        waited: Duration,
        to: OverflowTarget,
        reason: OverflowReason,
    ) {
        self.queues[q].counters.overflowed += 1;
        self.emit(Output::Overflow {
            caller,
            queue: self.queues[q].cfg.name.clone(),
            to: to.clone(),
            reason,
        });
        self.qevent(
            now,
            q,
            Contact::Caller(caller),
            QueueEventKind::Overflowed { waited, to, reason },
        );
    }

    fn overflow(&mut self, now: Instant, id: WaiterId, reason: OverflowReason) {
        let Contact::Caller(caller) = id else { return };
        let Some(w) = self.remove_waiter(id) else {
            return;
        };
        let q = w.queue;
        let to = match reason {
            OverflowReason::MaxWait => self.queues[q].cfg.on_max_wait.clone(),
            OverflowReason::QueueFull => self.queues[q].cfg.on_full.clone(),
        };
        let waited = now.saturating_duration_since(w.wait_start);
        self.send_out(now, q, caller, waited, to, reason);
    }

    /// A waiter whose offers all failed goes back to its place (or out, if
    /// its maximum wait passed meanwhile).
    fn back_to_place(&mut self, id: WaiterId) -> bool {
        let Some(w) = self.waiters.get(&id) else {
            return false;
        };
        if w.overdue {
            return true;
        }
        self.set_waiter_state(id, WaiterState::Available);
        false
    }

    // ----- offers ------------------------------------------------------------------

    pub(crate) fn offer_accepted(&mut self, now: Instant, offer: OfferId) {
        let Some(rec) = self.offers.remove(&offer) else {
            self.ignored(AcdError::UnknownOffer(offer));
            return;
        };
        self.timers.cancel(TimerKey::Lease(offer));
        let others = match self.waiters.get(&rec.waiter).map(|w| &w.state) {
            Some(WaiterState::Offering { offers }) => offers.clone(),
            _ => Vec::new(),
        };
        let waiter = self.remove_waiter(rec.waiter);
        for o in others.into_iter().filter(|&o| o != offer) {
            self.end_offer(now, o, OfferEnd::Cancelled);
        }
        let q = rec.queue;
        self.set_agent(
            now,
            rec.agent,
            AgentSt::OnCall {
                contact: rec.waiter,
                queue: q,
                since: now,
            },
            None,
        );
        let Some(w) = waiter else { return };
        let waited = now.saturating_duration_since(w.wait_start);
        let target = self.queues[q].cfg.service_level.within;
        let queue = &mut self.queues[q];
        let c = &mut queue.counters;
        c.answered += 1;
        if waited <= target {
            c.answered_within += 1;
        }
        c.wait_sum += waited.as_secs_f64();
        if let Some(est) = w.estimate_at_entry {
            c.ewt_samples += 1;
            c.ewt_abs_err += (est.as_secs_f64() - waited.as_secs_f64()).abs();
            c.ewt_actual_sum += waited.as_secs_f64();
            queue.calibration.record(est, waited);
        }
        let agent = self.agents[rec.agent].id.clone();
        self.qevent(
            now,
            q,
            rec.waiter,
            QueueEventKind::Answered { agent, waited },
        );
    }

    pub(crate) fn offer_rejected(&mut self, now: Instant, offer: OfferId, reason: RejectReason) {
        if !self.offers.contains_key(&offer) {
            self.ignored(AcdError::UnknownOffer(offer));
            return;
        }
        self.end_offer(now, offer, OfferEnd::Rejected(reason));
    }

    /// End an outstanding offer without an answer.
    pub(crate) fn end_offer(&mut self, now: Instant, offer: OfferId, end: OfferEnd) {
        let Some(rec) = self.offers.remove(&offer) else {
            return;
        };
        self.timers.cancel(TimerKey::Lease(offer));
        let a = rec.agent;
        let agent_id = self.agents[a].id.clone();
        let caller = match rec.waiter {
            Contact::Caller(c) => c,
            Contact::Callback(_) => return,
        };
        if matches!(
            end,
            OfferEnd::Cancelled | OfferEnd::Expired | OfferEnd::Withdrawn
        ) {
            self.emit(Output::CancelOffer {
                offer,
                caller,
                agent: agent_id.clone(),
            });
        }
        let still_offered = self.agents[a].state == AgentSt::Offered { offer };
        let rejected = match end {
            OfferEnd::Rejected(r) => Some(r),
            OfferEnd::Expired => Some(RejectReason::NoAnswer),
            OfferEnd::Cancelled | OfferEnd::Withdrawn => None,
        };
        match rejected {
            Some(reason) => {
                self.qevent(
                    now,
                    rec.queue,
                    rec.waiter,
                    QueueEventKind::OfferRejected {
                        offer,
                        agent: agent_id,
                        reason,
                    },
                );
                if still_offered {
                    let r = reason.not_ready_reason().to_owned();
                    self.set_agent(now, a, AgentSt::NotReady(r.clone()), Some(r));
                }
                if let Some(w) = self.waiters.get_mut(&rec.waiter) {
                    if !w.declined.contains(&a) {
                        w.declined.push(a);
                    }
                }
            }
            None => {
                if still_offered && end == OfferEnd::Cancelled {
                    self.set_agent(now, a, AgentSt::Ready, None);
                }
            }
        }
        let empty = match self.waiters.get_mut(&rec.waiter).map(|w| &mut w.state) {
            Some(WaiterState::Offering { offers }) => {
                offers.retain(|&o| o != offer);
                offers.is_empty()
            }
            _ => false,
        };
        if empty && self.back_to_place(rec.waiter) {
            self.overflow(now, rec.waiter, OverflowReason::MaxWait);
        }
    }

    // ----- agents ------------------------------------------------------------------

    pub(crate) fn agent_state(&mut self, now: Instant, agent: &AgentId, change: AgentStateChange) {
        let Some(&a) = self.agent_ix.get(&agent.0) else {
            self.ignored(AcdError::UnknownAgent(agent.0.clone()));
            return;
        };
        let target = |c: &AgentStateChange| match c {
            AgentStateChange::LoggedOut => (AgentSt::LoggedOut, None),
            AgentStateChange::Ready => (AgentSt::Ready, None),
            AgentStateChange::NotReady(r) => (AgentSt::NotReady(r.clone()), Some(r.clone())),
        };
        match self.agents[a].state.clone() {
            AgentSt::Ready | AgentSt::LoggedOut | AgentSt::NotReady(_) => {
                let (st, reason) = target(&change);
                if self.agents[a].state != st {
                    self.set_agent(now, a, st, reason);
                }
            }
            AgentSt::Offered { offer } => {
                if change == AgentStateChange::Ready {
                    self.agents[a].pending = None;
                    return;
                }
                let (st, reason) = target(&change);
                self.set_agent(now, a, st, reason);
                self.end_offer(now, offer, OfferEnd::Withdrawn);
            }
            AgentSt::OnCall { .. } | AgentSt::Calling { .. } => {
                self.agents[a].pending = match change {
                    AgentStateChange::Ready => None,
                    other => Some(other),
                };
            }
            AgentSt::WrapUp {
                queue,
                started,
                talk,
                ..
            } => {
                self.agents[a].pending = match change {
                    AgentStateChange::Ready => None,
                    other => Some(other),
                };
                self.timers.cancel(TimerKey::WrapUp(a));
                let wrap = now.saturating_duration_since(started);
                self.finish_work(now, a, queue, talk, wrap);
            }
        }
    }

    pub(crate) fn call_ended(
        &mut self,
        now: Instant,
        agent: &AgentId,
        contact: Contact,
        talk: Duration,
    ) {
        let Some(&a) = self.agent_ix.get(&agent.0) else {
            self.ignored(AcdError::UnknownAgent(agent.0.clone()));
            return;
        };
        let queue = match self.agents[a].state {
            AgentSt::OnCall {
                contact: c, queue, ..
            } if c == contact => queue,
            _ => {
                self.ignored(AcdError::NotOnCall(agent.0.clone()));
                return;
            }
        };
        let ag = &mut self.agents[a];
        ag.calls += 1;
        ag.talk_total += talk;
        let wrap = self.wrap_up_for(a, queue);
        if wrap.is_zero() {
            self.finish_work(now, a, queue, talk, Duration::ZERO);
        } else {
            let until = now + wrap;
            self.set_agent(
                now,
                a,
                AgentSt::WrapUp {
                    queue,
                    started: now,
                    until,
                    talk,
                },
                None,
            );
            self.timers.set(TimerKey::WrapUp(a), until);
        }
    }

    /// A call and its wrap-up are over: record the handle time, then the
    /// state asked for meanwhile (ready by default).
    fn finish_work(
        &mut self,
        now: Instant,
        a: AgentIdx,
        queue: QueueIdx,
        talk: Duration,
        wrap: Duration,
    ) {
        self.queues[queue].handle.record(talk, wrap);
        self.release_agent(now, a);
    }

    /// The agent's work is over: pending state, else ready.
    fn release_agent(&mut self, now: Instant, a: AgentIdx) {
        match self.agents[a].pending.take() {
            Some(AgentStateChange::NotReady(r)) => {
                self.set_agent(now, a, AgentSt::NotReady(r.clone()), Some(r))
            }
            Some(AgentStateChange::LoggedOut) => self.set_agent(now, a, AgentSt::LoggedOut, None),
            Some(AgentStateChange::Ready) | None => self.set_agent(now, a, AgentSt::Ready, None),
        }
    }

    // ----- callbacks ---------------------------------------------------------------

    /// The caller hangs up; a callback takes their place. Returns its id.
    pub fn request_callback(
        &mut self,
        now: Instant,
        caller: CallerId,
        number: String,
    ) -> Result<CallbackId, AcdError> {
        let id = Contact::Caller(caller);
        let w = self
            .waiters
            .get(&id)
            .ok_or(AcdError::UnknownCaller(caller))?;
        let q = w.queue;
        if self.queues[q].cfg.callback.is_none() {
            return Err(AcdError::CallbacksDisabled(self.queues[q].cfg.name.clone()));
        }
        let offers = match &w.state {
            WaiterState::Offering { offers } => offers.clone(),
            _ => Vec::new(),
        };
        let Some(old) = self.remove_waiter(id) else {
            return Err(AcdError::UnknownCaller(caller));
        };
        for o in offers {
            self.end_offer(now, o, OfferEnd::Cancelled);
        }
        let callback = CallbackId(self.next_callback);
        self.next_callback += 1;
        let cid = Contact::Callback(callback);
        self.insert_waiter(Waiter {
            id: cid,
            wait_start: now,
            state: WaiterState::Available,
            sticky_done: true,
            estimate_at_entry: None,
            number: Some(number),
            caller: Some(caller),
            attempts: 0,
            overdue: false,
            ..old
        });
        self.queues[q].counters.callbacks_requested += 1;
        self.qevent(
            now,
            q,
            id,
            QueueEventKind::CallbackRequested {
                callback,
                caller: Some(caller),
            },
        );
        self.persist_callback(cid);
        Ok(callback)
    }

    /// Book a callback for a time. Returns its id.
    pub fn schedule_callback(
        &mut self,
        now: Instant,
        req: ScheduledCallback,
    ) -> Result<CallbackId, AcdError> {
        let q = *self
            .queue_ix
            .get(&req.queue)
            .ok_or_else(|| AcdError::UnknownQueue(req.queue.clone()))?;
        if self.queues[q].cfg.callback.is_none() {
            return Err(AcdError::CallbacksDisabled(req.queue));
        }
        let callback = CallbackId(self.next_callback);
        self.next_callback += 1;
        let priority = req
            .priority
            .saturating_add(self.rule_bonus(q, &req.attributes));
        let record = CallbackRecord {
            callback,
            queue: req.queue,
            number: req.number,
            caller: None,
            priority,
            skills: req.skills,
            attributes: req.attributes,
            last_agent: req.last_agent,
            place: req.at,
            requested_at: req.at,
            not_before: req.at,
            attempts: 0,
        };
        self.add_callback(now, q, record);
        self.queues[q].counters.callbacks_requested += 1;
        let cid = Contact::Callback(callback);
        self.qevent(
            now,
            q,
            cid,
            QueueEventKind::CallbackRequested {
                callback,
                caller: None,
            },
        );
        self.persist_callback(cid);
        Ok(callback)
    }

    /// Rebuild pending callbacks after a restart (records as last
    /// persisted). Their places, attempts and delays are kept; an attempt
    /// that was in progress at the crash is made again.
    pub fn restore_callbacks(&mut self, now: Instant, mut records: Vec<CallbackRecord>) {
        records.sort_by_key(|r| (r.place, r.callback));
        for r in records {
            let Some(&q) = self.queue_ix.get(&r.queue) else {
                self.ignored(AcdError::UnknownQueue(r.queue));
                continue;
            };
            if self.waiters.contains_key(&Contact::Callback(r.callback)) {
                continue;
            }
            self.next_callback = self.next_callback.max(r.callback.0 + 1);
            self.add_callback(now, q, r);
        }
        self.route(now);
    }

    fn add_callback(&mut self, now: Instant, q: QueueIdx, r: CallbackRecord) {
        let id = Contact::Callback(r.callback);
        let base_reqs = self.merged_reqs(q, &r.skills);
        let level = self.level_at(q, r.place, now);
        let pools = self.pools_for(q, &base_reqs, level);
        let last_agent = r
            .last_agent
            .as_ref()
            .and_then(|a| self.agent_ix.get(&a.0).copied());
        let seq = self.next_seq;
        self.next_seq += 1;
        let state = if r.not_before > now {
            self.timers.set(TimerKey::CallbackDue(id), r.not_before);
            WaiterState::Delayed {
                until: r.not_before,
            }
        } else {
            WaiterState::Available
        };
        self.insert_waiter(Waiter {
            id,
            queue: q,
            priority: r.priority,
            place: r.place,
            seq,
            wait_start: r.requested_at,
            skills: r.skills,
            base_reqs,
            attributes: r.attributes,
            last_agent,
            last_agent_id: r.last_agent,
            level,
            pools,
            state,
            declined: Vec::new(),
            sticky_done: true,
            estimate_at_entry: None,
            number: Some(r.number),
            caller: r.caller,
            attempts: r.attempts,
            overdue: false,
            callback_after: None,
        });
    }

    /// Release a callback to a free agent (from `apply`).
    pub(crate) fn start_callback(&mut self, now: Instant, callback: CallbackId, agent: AgentIdx) {
        let id = Contact::Callback(callback);
        let Some(w) = self.waiters.get_mut(&id) else {
            return;
        };
        w.attempts += 1;
        let attempt = w.attempts;
        let (q, waited, number) = (
            w.queue,
            now.saturating_duration_since(w.wait_start),
            w.number.clone().unwrap_or_default(),
        );
        self.set_waiter_state(id, WaiterState::Calling { agent });
        self.set_agent(
            now,
            agent,
            AgentSt::Calling {
                callback,
                queue: q,
                since: now,
            },
            None,
        );
        let settings = self.queues[q].cfg.callback.clone().unwrap_or_default();
        self.timers.set(
            TimerKey::CallbackAttempt(callback),
            now + settings.attempt_timeout,
        );
        let agent_id = self.agents[agent].id.clone();
        self.emit(Output::StartCallback {
            callback,
            agent: agent_id.clone(),
            number,
            queue: self.queues[q].cfg.name.clone(),
            waited,
            mode: settings.mode,
            attempt,
        });
        self.qevent(
            now,
            q,
            id,
            QueueEventKind::CallbackAttempt {
                agent: agent_id,
                attempt,
            },
        );
        self.persist_callback(id);
    }

    pub(crate) fn callback_result(
        &mut self,
        now: Instant,
        callback: CallbackId,
        outcome: CallbackOutcome,
    ) {
        let id = Contact::Callback(callback);
        let Some(w) = self.waiters.get(&id) else {
            self.ignored(AcdError::UnknownCallback(callback));
            return;
        };
        let WaiterState::Calling { agent } = w.state else {
            self.ignored(AcdError::NoCallbackAttempt(callback));
            return;
        };
        let q = w.queue;
        let attempt = w.attempts;
        self.timers.cancel(TimerKey::CallbackAttempt(callback));
        if outcome == CallbackOutcome::Connected {
            let Some(w) = self.remove_waiter(id) else {
                return;
            };
            let waited = now.saturating_duration_since(w.wait_start);
            self.set_agent(
                now,
                agent,
                AgentSt::OnCall {
                    contact: id,
                    queue: q,
                    since: now,
                },
                None,
            );
            let c = &mut self.queues[q].counters;
            c.callbacks_completed += 1;
            c.callback_wait_sum += waited.as_secs_f64();
            let agent_id = self.agents[agent].id.clone();
            self.qevent(
                now,
                q,
                id,
                QueueEventKind::CallbackCompleted {
                    agent: agent_id,
                    waited,
                },
            );
            self.emit(Output::Persist(PersistRecord::CloseCallback {
                callback,
                outcome: CallbackClosed::Completed,
            }));
            return;
        }
        self.release_agent(now, agent);
        let settings = self.queues[q].cfg.callback.clone().unwrap_or_default();
        if attempt >= settings.max_attempts {
            self.remove_waiter(id);
            self.queues[q].counters.callbacks_failed += 1;
            self.qevent(
                now,
                q,
                id,
                QueueEventKind::CallbackAttemptFailed {
                    attempt,
                    outcome,
                    retry_at: None,
                },
            );
            self.qevent(
                now,
                q,
                id,
                QueueEventKind::CallbackFailed { attempts: attempt },
            );
            self.emit(Output::Persist(PersistRecord::CloseCallback {
                callback,
                outcome: CallbackClosed::Failed,
            }));
        } else {
            let until = now + settings.retry_delay;
            self.set_waiter_state(id, WaiterState::Delayed { until });
            self.timers.set(TimerKey::CallbackDue(id), until);
            self.qevent(
                now,
                q,
                id,
                QueueEventKind::CallbackAttemptFailed {
                    attempt,
                    outcome,
                    retry_at: Some(until),
                },
            );
            self.persist_callback(id);
        }
    }

    pub(crate) fn cancel_callback(&mut self, now: Instant, callback: CallbackId) {
        let id = Contact::Callback(callback);
        let Some(w) = self.remove_waiter(id) else {
            self.ignored(AcdError::UnknownCallback(callback));
            return;
        };
        if let WaiterState::Calling { agent } = w.state {
            self.release_agent(now, agent);
        }
        self.qevent(now, w.queue, id, QueueEventKind::CallbackCancelled);
        self.emit(Output::Persist(PersistRecord::CloseCallback {
            callback,
            outcome: CallbackClosed::Cancelled,
        }));
    }

    // ----- timers ------------------------------------------------------------------

    pub(crate) fn fire(&mut self, now: Instant, key: TimerKey) {
        match key {
            TimerKey::Lease(offer) => self.end_offer(now, offer, OfferEnd::Expired),
            TimerKey::WrapUp(a) => {
                if let AgentSt::WrapUp {
                    queue,
                    started,
                    talk,
                    ..
                } = self.agents[a].state
                {
                    let wrap = now.saturating_duration_since(started);
                    self.finish_work(now, a, queue, talk, wrap);
                }
            }
            TimerKey::Widen(id) => self.widen(now, id),
            TimerKey::MaxWait(id) => {
                let Some(w) = self.waiters.get_mut(&id) else {
                    return;
                };
                if matches!(w.state, WaiterState::Offering { .. }) {
                    w.overdue = true;
                } else {
                    self.overflow(now, id, OverflowReason::MaxWait);
                }
            }
            TimerKey::Announce(id) => self.announce(now, id),
            TimerKey::StickyHold(id) => {
                if matches!(
                    self.waiters.get(&id).map(|w| &w.state),
                    Some(WaiterState::Held { .. })
                ) {
                    self.set_waiter_state(id, WaiterState::Available);
                }
            }
            TimerKey::CallbackDue(id) => {
                if matches!(
                    self.waiters.get(&id).map(|w| &w.state),
                    Some(WaiterState::Delayed { .. })
                ) {
                    // The stored record's `not_before` has passed: no write.
                    self.set_waiter_state(id, WaiterState::Available);
                }
            }
            TimerKey::CallbackAttempt(cb) => {
                self.callback_result(now, cb, CallbackOutcome::NoAnswer)
            }
        }
    }

    fn widen(&mut self, now: Instant, id: WaiterId) {
        let Some(w) = self.waiters.get(&id) else {
            return;
        };
        let q = w.queue;
        let level = self.level_at(q, w.place, now).max(w.level + 1);
        let level = level.min(self.queues[q].steps.len());
        let base = w.base_reqs.clone();
        let pools = self.pools_for(q, &base, level);
        self.update_waiter(id, |w| {
            w.level = level;
            w.pools = pools;
        });
        self.qevent(now, q, id, QueueEventKind::Widened { level });
        self.arm_widening(id);
    }

    /// Tell a waiting caller their position and estimate; re-arm.
    pub(crate) fn announce(&mut self, now: Instant, id: WaiterId) {
        let Contact::Caller(caller) = id else { return };
        let Some(w) = self.waiters.get(&id) else {
            return;
        };
        let q = w.queue;
        let Some(every) = self.queues[q].cfg.announce_every else {
            return;
        };
        self.timers.set(TimerKey::Announce(id), now + every);
        if matches!(w.state, WaiterState::Offering { .. }) {
            return;
        }
        let position = self.position(w) + 1;
        let estimate = self.estimate_for(now, w);
        let offer_callback = self.queues[q].cfg.callback.as_ref().is_some_and(|c| {
            let after = w.callback_after.unwrap_or(c.offer_when_wait_over);
            estimate.is_none_or(|e| e > after)
        });
        self.emit(Output::Announce {
            caller,
            queue: self.queues[q].cfg.name.clone(),
            position,
            estimate,
            offer_callback,
        });
    }
}
