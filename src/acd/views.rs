//! Read-only views for the API and the wallboard, and the estimate of a
//! waiter's wait (see `ewt.rs` for the method).

use std::time::{Duration, Instant};

use super::ewt::{wait_estimate, Busy};
use super::ops::agent_status;
use super::state::{AgentSt, Counters, Waiter, WaiterState};
use super::types::{AgentCounts, AgentStatus, AgentView, CallerId, Contact, QueueStats};
use super::Acd;

impl Acd {
    /// Live and cumulative figures of a queue (definitions in
    /// `CONTACT-CENTRE.md`; see the module docs for service level).
    pub fn queue_stats(&self, queue: &str, now: Instant) -> Option<QueueStats> {
        let q = &self.queues[*self.queue_ix.get(queue)?];
        let longest_wait = q
            .all
            .values()
            .filter_map(|id| self.waiters.get(id))
            .find(|w| !w.is_callback())
            .map(|w| now.saturating_duration_since(w.wait_start));
        let mut agents = AgentCounts::default();
        for &a in &q.members {
            match agent_status(&self.agents[a].state) {
                AgentStatus::LoggedOut => agents.logged_out += 1,
                AgentStatus::Ready => agents.ready += 1,
                AgentStatus::NotReady => agents.not_ready += 1,
                AgentStatus::Offered => agents.offered += 1,
                AgentStatus::OnCall => agents.on_call += 1,
                AgentStatus::WrapUp => agents.wrap_up += 1,
            }
        }
        let c = &q.counters;
        let ratio = |num: f64, den: u64| (den > 0).then(|| num / den as f64);
        let secs = |s: Option<f64>| s.map(Duration::from_secs_f64);
        Some(QueueStats {
            queue: q.cfg.name.clone(),
            waiting: q.live_callers,
            longest_wait,
            agents,
            callbacks_pending: q.callbacks,
            entered: c.entered,
            answered: c.answered,
            answered_within_target: c.answered_within,
            abandoned: c.abandoned,
            short_abandoned: c.short_abandoned,
            overflowed: c.overflowed,
            callbacks_requested: c.callbacks_requested,
            callbacks_completed: c.callbacks_completed,
            callbacks_failed: c.callbacks_failed,
            service_level: ratio(c.answered_within as f64, c.answered + c.abandoned),
            abandon_rate: ratio(c.abandoned as f64, c.entered),
            asa: secs(ratio(c.wait_sum, c.answered)),
            callback_asa: secs(ratio(c.callback_wait_sum, c.callbacks_completed)),
            ewt_mae: secs(ratio(c.ewt_abs_err, c.ewt_samples)),
            ewt_mae_relative: (c.ewt_actual_sum > 0.0).then(|| c.ewt_abs_err / c.ewt_actual_sum),
            aht: q.handle.aht(),
        })
    }

    /// Start new intervals: zero every queue's cumulative counters (live
    /// figures and the handle-time history are kept).
    pub fn reset_stats(&mut self) {
        for q in &mut self.queues {
            q.counters = Counters::default();
        }
    }

    /// An agent's state and figures.
    pub fn agent(&self, id: &str) -> Option<AgentView> {
        let a = &self.agents[*self.agent_ix.get(id)?];
        let (contact, queue) = match &a.state {
            AgentSt::Offered { offer } => match self.offers.get(offer) {
                Some(rec) => (Some(rec.waiter), Some(rec.queue)),
                None => (None, None),
            },
            AgentSt::Calling {
                callback, queue, ..
            } => (Some(Contact::Callback(*callback)), Some(*queue)),
            AgentSt::OnCall { contact, queue, .. } => (Some(*contact), Some(*queue)),
            AgentSt::WrapUp { queue, .. } => (None, Some(*queue)),
            _ => (None, None),
        };
        Some(AgentView {
            id: a.id.clone(),
            name: a.cfg.name.clone(),
            extension: a.cfg.extension.clone(),
            status: agent_status(&a.state),
            reason: a.reason.clone(),
            since: a.since,
            contact,
            queue: queue.map(|q| self.queues[q].cfg.name.clone()),
            calls_handled: a.calls,
            talk_time: a.talk_total,
            pending: a.pending.clone(),
        })
    }

    /// The estimated wait of a waiting caller now (`None`: not waiting, or
    /// no agent logged in who could take them).
    pub fn estimate_wait(&self, caller: CallerId, now: Instant) -> Option<Duration> {
        let w = self.waiters.get(&Contact::Caller(caller))?;
        self.estimate_for(now, w)
    }

    /// A waiting caller's 1-based position (callers and callbacks ahead in
    /// its queue, plus those ahead in queues sharing its agents, weighted by
    /// how much of those queues' staff it shares).
    pub fn caller_position(&self, caller: CallerId) -> Option<usize> {
        let w = self.waiters.get(&Contact::Caller(caller))?;
        Some(self.position(w) + 1)
    }

    /// Whether the ACD still holds this caller or callback (waiting, held,
    /// being offered, or a callback pending).
    pub fn is_waiting(&self, contact: Contact) -> bool {
        self.waiters.contains_key(&contact)
    }

    /// A queue's waiters (callers and callbacks) in queue order.
    pub fn waiting(&self, queue: &str) -> Vec<Contact> {
        self.queue_ix
            .get(queue)
            .map(|&q| self.queues[q].all.values().copied().collect())
            .unwrap_or_default()
    }

    /// Queue names in configuration order.
    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.queues.iter().map(|q| q.cfg.name.as_str())
    }

    /// 0-based: waiters ahead that the same agents can serve. In its own
    /// queue, exactly; in queues sharing its agents, the waiters of equal
    /// or higher priority (they entered earlier or are served first),
    /// weighted by the share of that queue's staff that is also ours.
    pub(crate) fn position(&self, w: &Waiter) -> usize {
        let q = &self.queues[w.queue];
        let mut p = q.all.range(..w.key()).count() as f64;
        for &(oq, share) in &q.overlap {
            let ahead: usize = self.queues[oq]
                .by_priority
                .range(w.priority..)
                .map(|(_, n)| n)
                .sum();
            p += share * ahead as f64;
        }
        p.round() as usize
    }

    pub(crate) fn estimate_for(&self, now: Instant, w: &Waiter) -> Option<Duration> {
        if matches!(
            w.state,
            WaiterState::Offering { .. } | WaiterState::Calling { .. }
        ) {
            return Some(Duration::ZERO);
        }
        let q = &self.queues[w.queue];
        let mut agents = Vec::new();
        let mut seen = vec![false; self.agents.len()];
        for pool in &self.pools[w.pools] {
            // Candidates: the agents having the pool's rarest skill, or
            // every agent serving its queue.
            let candidates = pool
                .reqs
                .iter()
                .map(|&(s, _)| self.agents_by_skill.get(s).map_or(&[][..], |v| &v[..]))
                .min_by_key(|v| v.len())
                .unwrap_or(&self.queues[pool.queue].serving);
            for &a in candidates {
                if std::mem::replace(&mut seen[a], true)
                    || w.declined.contains(&a)
                    || !self.eligible(a, w)
                {
                    continue;
                }
                let wrap = |cq| self.wrap_up_for(a, cq).as_secs_f64();
                agents.push(match self.agents[a].state {
                    AgentSt::LoggedOut | AgentSt::NotReady(_) => continue,
                    AgentSt::Ready => Busy::Known(0.0),
                    AgentSt::Offered { offer } => Busy::Starting {
                        wrap: wrap(self.offers.get(&offer).map_or(w.queue, |o| o.queue)),
                    },
                    AgentSt::Calling { queue, .. } => Busy::Starting { wrap: wrap(queue) },
                    AgentSt::OnCall { queue, since, .. } => Busy::OnCall {
                        elapsed: now.saturating_duration_since(since).as_secs_f64(),
                        wrap: wrap(queue),
                    },
                    AgentSt::WrapUp { until, .. } => {
                        Busy::Known(until.saturating_duration_since(now).as_secs_f64())
                    }
                });
            }
        }
        let p = self.position(w);
        let seed = self.estimate_seed ^ w.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ p as u64;
        let raw = wait_estimate(p, &agents, &q.handle, seed);
        if !raw.is_finite() {
            return None;
        }
        let bound = if raw > 0.0 {
            q.handle.mean_handle() / agents.len().max(1) as f64
        } else {
            q.cfg.ring_timeout.as_secs_f64()
        };
        let est = (raw + q.calibration.correction(raw, bound)).max(0.0);
        Some(Duration::from_secs_f64(est.min(1e9)))
    }
}
