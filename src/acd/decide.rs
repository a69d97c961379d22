//! Routing decisions: pure functions of the state, `now` and a seed.
//!
//! [`Acd::decide`] takes the work list (agents that became ready, waiters
//! that became available) and returns the actions that restore the routing
//! invariant; `apply` (in `ops.rs`) carries them out. Nothing here mutates.

use std::cmp::{Ordering, Reverse};
use std::collections::HashSet;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::config::Strategy;
use super::state::{sorted_unique, AgentIdx, AgentSt, OrderKey, Waiter, WaiterId, WaiterState};
use super::Acd;

/// What changed since the last decision.
#[derive(Debug, Default, Clone)]
pub(crate) struct Work {
    pub agents: Vec<AgentIdx>,
    pub waiters: Vec<WaiterId>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty() && self.waiters.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Offer the waiter to these agents (several only for ring-all); for a
    /// callback, release it to the (single) agent.
    Offer {
        waiter: WaiterId,
        agents: Vec<AgentIdx>,
    },
    /// Keep the waiter for its last agent until `until`.
    Hold {
        waiter: WaiterId,
        agent: AgentIdx,
        until: Instant,
    },
    /// The sticky decision for this waiter has been taken.
    StickyDone { waiter: WaiterId },
}

/// How candidate waiters compare across queues: a waiter held for the agent
/// first, then higher priority, then the longer weighted wait, then place.
#[derive(Debug, Clone, Copy)]
struct Rank {
    held: bool,
    priority: i32,
    weighted_wait: f64,
    place: Instant,
    seq: u64,
}

impl Rank {
    /// `Greater` means served first.
    fn cmp(&self, other: &Rank) -> Ordering {
        self.held
            .cmp(&other.held)
            .then(self.priority.cmp(&other.priority))
            .then(self.weighted_wait.total_cmp(&other.weighted_wait))
            .then(other.place.cmp(&self.place))
            .then(other.seq.cmp(&self.seq))
    }
}

impl Acd {
    /// The decision: which waiters go to which agents now.
    pub(crate) fn decide(&self, now: Instant, work: &Work, seed: u64) -> Vec<Action> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut plan = Vec::new();
        let mut taken_agents: HashSet<AgentIdx> = HashSet::new();
        let mut taken_waiters: HashSet<WaiterId> = HashSet::new();

        let agents: Vec<AgentIdx> = sorted_unique(
            work.agents
                .iter()
                .copied()
                .filter(|&a| self.agents[a].state == AgentSt::Ready)
                .collect(),
        );
        let mut waiters: Vec<WaiterId> = Vec::new();
        for w in &work.waiters {
            if !waiters.contains(w)
                && self
                    .waiters
                    .get(w)
                    .is_some_and(|x| x.state == WaiterState::Available)
            {
                waiters.push(*w);
            }
        }

        // Sticky first: a newly available waiter whose last agent is ready
        // gets them; if that agent is busy and will be free soon, hold.
        for &w in &waiters {
            let wt = &self.waiters[&w];
            if wt.sticky_done {
                continue;
            }
            plan.push(Action::StickyDone { waiter: w });
            let Some(x) = wt.last_agent else { continue };
            if wt.declined.contains(&x) || !self.eligible(x, wt) {
                continue;
            }
            let agent = &self.agents[x];
            let sticky_wait = self.queues[wt.queue].cfg.sticky_wait;
            let until = wt.place + sticky_wait;
            match agent.state {
                AgentSt::Ready if !taken_agents.contains(&x) => {
                    plan.push(Action::Offer {
                        waiter: w,
                        agents: vec![x],
                    });
                    taken_agents.insert(x);
                    taken_waiters.insert(w);
                }
                AgentSt::Offered { .. }
                | AgentSt::OnCall { .. }
                | AgentSt::Calling { .. }
                | AgentSt::WrapUp { .. }
                    if !sticky_wait.is_zero() && now < until && !wt.is_callback() =>
                {
                    plan.push(Action::Hold {
                        waiter: w,
                        agent: x,
                        until,
                    });
                    taken_waiters.insert(w);
                }
                _ => {}
            }
        }

        let mut exhausted: HashSet<WaiterId> = HashSet::new();
        loop {
            let mut best: Option<(Rank, WaiterId)> = None;
            let mut consider = |rank: Rank, w: WaiterId| {
                if best
                    .as_ref()
                    .is_none_or(|(b, _)| rank.cmp(b) == Ordering::Greater)
                {
                    best = Some((rank, w));
                }
            };
            for &a in &agents {
                if taken_agents.contains(&a) {
                    continue;
                }
                if let Some((rank, w)) = self.best_waiter_for(now, a, &taken_waiters) {
                    consider(rank, w);
                }
            }
            for &w in &waiters {
                if taken_waiters.contains(&w) || exhausted.contains(&w) {
                    continue;
                }
                consider(self.rank(now, &self.waiters[&w], false), w);
            }
            let Some((_, w)) = best else { break };
            let chosen = self.select_agents(&self.waiters[&w], &taken_agents, &mut rng);
            if chosen.is_empty() {
                exhausted.insert(w);
                taken_waiters.insert(w);
                continue;
            }
            taken_agents.extend(chosen.iter().copied());
            taken_waiters.insert(w);
            plan.push(Action::Offer {
                waiter: w,
                agents: chosen,
            });
        }
        plan
    }

    fn rank(&self, now: Instant, w: &Waiter, held: bool) -> Rank {
        let waited = now.saturating_duration_since(w.place).as_secs_f64();
        Rank {
            held,
            priority: w.priority,
            weighted_wait: waited * self.queues[w.queue].cfg.weight,
            place: w.place,
            seq: w.seq,
        }
    }

    /// Whether agent `a` may take waiter `w` (skills and queues; not state).
    pub(crate) fn eligible(&self, a: AgentIdx, w: &Waiter) -> bool {
        let agent = &self.agents[a];
        self.pools[w.pools].iter().any(|p| agent.meets(p))
    }

    /// The waiter a ready agent should take: one held for it, else the best
    /// head among the eligible groups of each queue it may serve.
    fn best_waiter_for(
        &self,
        now: Instant,
        a: AgentIdx,
        taken: &HashSet<WaiterId>,
    ) -> Option<(Rank, WaiterId)> {
        let agent = &self.agents[a];
        if let Some(&w) = agent.held.values().find(|w| !taken.contains(w)) {
            return Some((self.rank(now, &self.waiters[&w], true), w));
        }
        let mut best: Option<(Rank, WaiterId)> = None;
        for &q in &agent.scan_queues {
            let queue = &self.queues[q];
            let mut head: Option<(OrderKey, WaiterId)> = None;
            for (&pid, group) in &queue.available {
                if !self.pools[pid].iter().any(|p| agent.meets(p)) {
                    continue;
                }
                for (key, w) in group {
                    if head.as_ref().is_some_and(|(hk, _)| key >= hk) {
                        break;
                    }
                    if taken.contains(w) || self.waiters[w].declined.contains(&a) {
                        continue;
                    }
                    head = Some((*key, *w));
                    break;
                }
            }
            if let Some((_, w)) = head {
                let rank = self.rank(now, &self.waiters[&w], false);
                if best
                    .as_ref()
                    .is_none_or(|(b, _)| rank.cmp(b) == Ordering::Greater)
                {
                    best = Some((rank, w));
                }
            }
        }
        best
    }

    /// Ready agents eligible for `w`, not declined, not already taken, in
    /// index order. Walks the smallest ready set among each pool's skills.
    pub(crate) fn ready_candidates(&self, w: &Waiter, taken: &HashSet<AgentIdx>) -> Vec<AgentIdx> {
        let mut out = Vec::new();
        for pool in &self.pools[w.pools] {
            let driver = if pool.reqs.is_empty() {
                Some(&self.queues[pool.queue].ready_serving)
            } else {
                pool.reqs
                    .iter()
                    .map(|&(s, _)| self.ready_by_skill.get(s))
                    .min_by_key(|set| set.map_or(0, |s| s.len()))
                    .flatten()
            };
            let Some(driver) = driver else { continue };
            for a in driver.iter() {
                if self.agents[a].meets(pool) && !w.declined.contains(&a) && !taken.contains(&a) {
                    out.push(a);
                }
            }
        }
        sorted_unique(out)
    }

    /// The agent(s) for waiter `w`: its held agent; else its last agent if
    /// eligible and ready; else, among the best attribute matches, the
    /// queue strategy's pick (all of them for ring-all callers).
    fn select_agents(
        &self,
        w: &Waiter,
        taken: &HashSet<AgentIdx>,
        rng: &mut SmallRng,
    ) -> Vec<AgentIdx> {
        if let WaiterState::Held { agent, .. } = w.state {
            let free = self.agents[agent].state == AgentSt::Ready && !taken.contains(&agent);
            return if free { vec![agent] } else { Vec::new() };
        }
        let mut cands = self.ready_candidates(w, taken);
        if cands.is_empty() {
            return cands;
        }
        if let Some(x) = w.last_agent {
            if cands.contains(&x) {
                return vec![x];
            }
        }
        if !w.attributes.is_empty() {
            let scores: Vec<usize> = cands.iter().map(|&a| self.attribute_score(a, w)).collect();
            let top = scores.iter().copied().max().unwrap_or(0);
            cands = cands
                .iter()
                .zip(&scores)
                .filter(|(_, &s)| s == top)
                .map(|(&a, _)| a)
                .collect();
        }
        let queue = &self.queues[w.queue];
        let idle = |a: AgentIdx| self.agents[a].idle_since;
        let pick = match queue.cfg.strategy {
            Strategy::RingAll if !w.is_callback() => return cands,
            Strategy::RingAll | Strategy::LongestIdle => {
                cands.iter().copied().min_by_key(|&a| (idle(a), a))
            }
            Strategy::RoundRobin => {
                let n = self.agents.len();
                let last = queue.rr_last.unwrap_or(n - 1);
                cands
                    .iter()
                    .copied()
                    .min_by_key(|&a| (a + n - last - 1) % n)
            }
            Strategy::FewestCalls => cands
                .iter()
                .copied()
                .min_by_key(|&a| (self.agents[a].calls, idle(a), a)),
            Strategy::LeastTalkTime => cands
                .iter()
                .copied()
                .min_by_key(|&a| (self.agents[a].talk_total, idle(a), a)),
            Strategy::Random => Some(cands[rng.gen_range(0..cands.len())]),
            Strategy::BestSkill => cands.iter().copied().min_by_key(|&a| {
                let score: u32 = w
                    .base_reqs
                    .iter()
                    .map(|&(s, _)| u32::from(self.agents[a].prof(s)))
                    .sum();
                (Reverse(score), idle(a), a)
            }),
        };
        pick.into_iter().collect()
    }

    /// How many of the waiter's attributes the agent shares (same key, same value).
    fn attribute_score(&self, a: AgentIdx, w: &Waiter) -> usize {
        let attrs = &self.agents[a].cfg.attributes;
        w.attributes
            .iter()
            .filter(|(k, v)| attrs.get(*k) == Some(*v))
            .count()
    }
}
