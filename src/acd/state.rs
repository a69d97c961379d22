//! Internal state: agents, queues, waiters (callers and callbacks) and the
//! indexes that keep routing decisions cheap.
//!
//! Indexes (all kept in step by the mutation helpers in `mod.rs`):
//! * per queue, every waiter ordered by [`OrderKey`] (`all`), and the
//!   *available* waiters grouped by their eligibility pools (`available`),
//!   each group ordered by `OrderKey`: an agent looks at one head per group
//!   instead of scanning callers;
//! * per skill and per queue, the set of ready agents: a caller looks only
//!   at ready agents that have its rarest required skill.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::config::{AgentConfig, QueueConfig};
use super::ewt::{Calibration, HandleWindow};
use super::types::{AgentId, AgentStateChange, CallbackId, CallerId, Contact, OfferId};

pub(crate) type AgentIdx = usize;
pub(crate) type QueueIdx = usize;
pub(crate) type SkillIdx = usize;
pub(crate) type PoolsId = usize;
/// Waiters are keyed by the contact they stand for.
pub(crate) type WaiterId = Contact;

/// Queue order: priority (higher first), then place (earlier first), then
/// arrival sequence.
pub(crate) type OrderKey = (Reverse<i32>, Instant, u64);

/// A set of agent indexes with O(1) insert/remove and cheap iteration.
#[derive(Debug, Clone, Default)]
pub(crate) struct DenseSet {
    items: Vec<AgentIdx>,
    pos: Vec<u32>,
}

impl DenseSet {
    pub fn with_universe(n: usize) -> Self {
        DenseSet {
            items: Vec::new(),
            pos: vec![u32::MAX; n],
        }
    }

    pub fn insert(&mut self, a: AgentIdx) {
        if a >= self.pos.len() {
            self.pos.resize(a + 1, u32::MAX);
        }
        if self.pos[a] == u32::MAX {
            self.pos[a] = u32::try_from(self.items.len()).unwrap_or(u32::MAX - 1);
            self.items.push(a);
        }
    }

    pub fn remove(&mut self, a: AgentIdx) {
        let Some(&p) = self.pos.get(a) else { return };
        if p == u32::MAX {
            return;
        }
        let p = p as usize;
        self.items.swap_remove(p);
        if let Some(&moved) = self.items.get(p) {
            self.pos[moved] = u32::try_from(p).unwrap_or(u32::MAX - 1);
        }
        self.pos[a] = u32::MAX;
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = AgentIdx> + '_ {
        self.items.iter().copied()
    }
}

/// Agents that qualify for a waiter: they serve `queue` and meet every
/// requirement. A waiter's eligibility is a set of pools (any one suffices).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Pool {
    pub queue: QueueIdx,
    /// Sorted by skill.
    pub reqs: Vec<(SkillIdx, u8)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WaiterState {
    /// In its queue's available index: any eligible agent may take it.
    Available,
    /// Waiting for its last agent until `until` (sticky).
    Held { agent: AgentIdx, until: Instant },
    /// Being offered (one agent, or several with ring-all).
    Offering { offers: Vec<OfferId> },
    /// A callback not yet due (scheduled, or retry delay).
    Delayed { until: Instant },
    /// A callback attempt in progress with a reserved agent.
    Calling { agent: AgentIdx },
    /// Out of every index for a moment (being added, re-keyed or removed).
    Parked,
}

#[derive(Debug, Clone)]
pub(crate) struct Waiter {
    pub id: WaiterId,
    pub queue: QueueIdx,
    pub priority: i32,
    /// The place in the queue (entry time; kept through callbacks).
    pub place: Instant,
    pub seq: u64,
    /// When the wait being measured started (entry, or callback request).
    pub wait_start: Instant,
    /// The caller's own skill requirements, as given (for persistence).
    pub skills: Vec<super::config::SkillRequirement>,
    /// Queue requirements merged with the caller's, before widening.
    pub base_reqs: Vec<(SkillIdx, u8)>,
    pub attributes: BTreeMap<String, String>,
    pub last_agent: Option<AgentIdx>,
    pub last_agent_id: Option<AgentId>,
    /// Widening steps applied.
    pub level: usize,
    pub pools: PoolsId,
    pub state: WaiterState,
    /// Agents that rejected or missed this waiter: never offered it again.
    pub declined: Vec<AgentIdx>,
    /// The sticky decision (hold or not) has been taken.
    pub sticky_done: bool,
    pub estimate_at_entry: Option<Duration>,
    pub number: Option<String>,
    /// For callbacks: the caller who asked.
    pub caller: Option<CallerId>,
    pub attempts: u32,
    /// Max wait passed while being offered: overflow when the offer fails.
    pub overdue: bool,
    /// The caller's own callback threshold (else the queue's).
    pub callback_after: Option<Duration>,
}

impl Waiter {
    pub fn key(&self) -> OrderKey {
        (Reverse(self.priority), self.place, self.seq)
    }

    pub fn is_callback(&self) -> bool {
        matches!(self.id, Contact::Callback(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentSt {
    LoggedOut,
    Ready,
    NotReady(String),
    Offered {
        offer: OfferId,
    },
    /// Reserved for a callback attempt.
    Calling {
        callback: CallbackId,
        queue: QueueIdx,
        since: Instant,
    },
    OnCall {
        contact: Contact,
        queue: QueueIdx,
        since: Instant,
    },
    WrapUp {
        queue: QueueIdx,
        started: Instant,
        until: Instant,
        talk: Duration,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct AgentRt {
    pub id: AgentId,
    pub cfg: AgentConfig,
    /// Proficiency by skill index (0 = none).
    pub prof: Vec<u8>,
    /// Whether the agent serves each queue (explicit list, or all).
    pub serves: Vec<bool>,
    /// Queues whose waiters this agent could ever be eligible for.
    pub scan_queues: Vec<QueueIdx>,
    pub state: AgentSt,
    /// When the current state began (`None` before the first change).
    pub since: Option<Instant>,
    pub reason: Option<String>,
    /// When the agent last became ready (`None`: never).
    pub idle_since: Option<Instant>,
    pub calls: u64,
    pub talk_total: Duration,
    /// Waiters holding for this agent (sticky), in queue order.
    pub held: BTreeMap<OrderKey, WaiterId>,
    /// State asked for while busy; applied when the work ends.
    pub pending: Option<AgentStateChange>,
}

impl AgentRt {
    pub fn prof(&self, skill: SkillIdx) -> u8 {
        self.prof.get(skill).copied().unwrap_or(0)
    }

    pub fn meets(&self, pool: &Pool) -> bool {
        self.serves.get(pool.queue).copied().unwrap_or(false)
            && pool.reqs.iter().all(|&(s, m)| self.prof(s) >= m)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StepRt {
    pub after: Duration,
    pub relax: Vec<(SkillIdx, u8)>,
    pub drop: Vec<SkillIdx>,
    pub add: Vec<(SkillIdx, u8)>,
    pub overflow: Vec<QueueIdx>,
}

/// Cumulative per-queue counters (see `QueueStats`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub entered: u64,
    pub answered: u64,
    pub answered_within: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub overflowed: u64,
    pub callbacks_requested: u64,
    pub callbacks_completed: u64,
    pub callbacks_failed: u64,
    pub wait_sum: f64,
    pub callback_wait_sum: f64,
    pub ewt_samples: u64,
    pub ewt_abs_err: f64,
    pub ewt_actual_sum: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct QueueRt {
    pub cfg: QueueConfig,
    pub base_reqs: Vec<(SkillIdx, u8)>,
    pub steps: Vec<StepRt>,
    /// Every waiter, in queue order.
    pub all: BTreeMap<OrderKey, WaiterId>,
    /// Available waiters by eligibility pools, each in queue order.
    pub available: BTreeMap<PoolsId, BTreeMap<OrderKey, WaiterId>>,
    pub live_callers: usize,
    pub callbacks: usize,
    /// Waiters by priority (for positions across queues without a scan).
    pub by_priority: BTreeMap<i32, usize>,
    /// Agents that serve the queue and meet its base skills.
    pub members: Vec<AgentIdx>,
    /// Agents that serve the queue at all (candidates for any pool of it).
    pub serving: Vec<AgentIdx>,
    /// Other queues sharing members: (queue, share of our members in it).
    pub overlap: Vec<(QueueIdx, f64)>,
    pub ready_serving: DenseSet,
    pub rr_last: Option<AgentIdx>,
    pub handle: HandleWindow,
    pub calibration: Calibration,
    pub counters: Counters,
}

/// One offer (a lease on one agent for one caller).
#[derive(Debug, Clone)]
pub(crate) struct OfferRec {
    pub waiter: WaiterId,
    pub agent: AgentIdx,
    pub queue: QueueIdx,
}

/// Sorted, de-duplicated set helper for small vectors.
pub(crate) fn sorted_unique(mut v: Vec<AgentIdx>) -> Vec<AgentIdx> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Queues an agent could ever take waiters from: queues it serves whose
/// loosest requirements (skills present, proficiency ignored: callers may
/// lower minimums) it meets, and queues that widen into such queues.
pub(crate) fn scan_queues(agent: &AgentRt, queues: &[QueueRt]) -> Vec<QueueIdx> {
    let has = |reqs: &[(SkillIdx, u8)], dropped: &BTreeSet<SkillIdx>| {
        reqs.iter()
            .filter(|(s, _)| !dropped.contains(s))
            .all(|&(s, _)| agent.prof(s) > 0)
    };
    let mut out = Vec::new();
    for (qi, q) in queues.iter().enumerate() {
        let mut dropped = BTreeSet::new();
        for st in &q.steps {
            dropped.extend(st.drop.iter().copied());
        }
        let mut ok = agent.serves[qi] && has(&q.base_reqs, &dropped);
        for st in &q.steps {
            ok |= agent.serves[qi] && !st.add.is_empty() && has(&st.add, &BTreeSet::new());
            for &o in &st.overflow {
                ok |= agent.serves[o] && has(&queues[o].base_reqs, &BTreeSet::new());
            }
        }
        if ok {
            out.push(qi);
        }
    }
    out
}
