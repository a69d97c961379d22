//! ACD — automatic call distribution: queues, agents, routing strategies,
//! estimated wait time and callbacks in one sans-IO core.
//!
//! # Contract
//!
//! [`Acd`] is the single owner of all queue and agent state. It never reads
//! the clock, owns no socket, spawns nothing and draws no entropy: `now`
//! comes in with every call, and the only randomness (the `random`
//! strategy, the wait estimator's scenarios) comes from `SmallRng`s seeded
//! from [`AcdConfig::seed`]. Given the same configuration and the same
//! inputs at the same instants it produces the same outputs.
//!
//! The runtime drives it in a loop:
//!
//! ```text
//! acd.handle(now, input)            one mutation (caller entered, agent ready, offer answered…)
//! acd.handle_timeout(now)           when now >= acd.poll_timeout()
//! while let Some(out) = acd.poll_output() { … }   Offer, CancelOffer, StartCallback,
//!                                   Announce, Overflow, AgentChanged, QueueEvent, Persist
//! ```
//!
//! # Routing
//!
//! Waiters (callers and callbacks, which are virtual callers keeping the
//! place of the caller who asked) are ordered per queue by priority, then
//! by place (entry time). After every mutation the ACD restores one
//! invariant: *no ready agent is eligible for an available waiter*. The
//! decision (`decide` in `decide.rs`, a pure function of the state, `now`
//! and a seed) looks only at what changed: an agent that became ready takes the
//! best waiter it can serve across its queues (higher priority first, then
//! the longest wait multiplied by the queue's weight); a waiter that became
//! available takes the agent its queue's strategy picks among the eligible
//! ready agents, preferring its last agent (sticky) and then agents whose
//! attributes match its own. Eligibility is a set of skill pools that widen
//! with time; the waiter keeps its place. Every offer reserves the agent
//! with a lease (`ring_timeout`); a missed or rejected offer puts the agent
//! in not-ready, returns the caller to its place, and that agent is never
//! offered the same caller again. Callbacks are released only to a free
//! agent, one agent each, so never more than there are free agents.
//!
//! # Figures
//!
//! [`Acd::queue_stats`] computes service level, abandon rate, ASA and the
//! estimate's mean absolute error with the definitions of
//! `CONTACT-CENTRE.md`. Our service level is *answered within T ÷
//! (answered + abandoned after the short-abandon threshold)*: Asterisk's
//! `servicelevel` leaves abandons out of the denominator, its "SL2" counts
//! abandons within T as successes; we do neither.
//!
//! # Estimated wait
//!
//! Every caller gets an estimate at entry (recorded against the actual
//! wait) and in each announcement: the median time until enough of its
//! eligible agents free up to reach it, played forward from what each agent
//! is doing and the queue's recent handle times (see `ewt.rs`).
//! [`simulate`] compares it with Asterisk's moving average
//! ([`EmaEstimator`]) and checks the core against [`erlang_c`].
//!
//! # Persistence
//!
//! Callbacks are durable: every change emits [`Output::Persist`]; after a
//! restart [`Acd::restore_callbacks`] rebuilds them with their places.

pub mod bench;
mod config;
mod decide;
mod ewt;
mod handlers;
mod ops;
mod sim;
mod state;
mod timers;
mod types;
mod views;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub use config::{
    parse_duration, AcdConfig, AcdConfigError, AgentConfig, CallbackMode, CallbackSettings,
    OverflowTarget, PriorityRule, QueueConfig, ServiceLevelTarget, SkillRequirement, Strategy,
    WideningStep,
};
pub use ewt::EmaEstimator;
pub use sim::{erlang_c, simulate, ArrivalStream, Dist, SimParams, SimQueueReport, SimReport};
pub use timers::TimerReason;
pub use types::{
    AgentCounts, AgentId, AgentStateChange, AgentStatus, AgentView, CallbackClosed, CallbackId,
    CallbackOutcome, CallbackRecord, CallerEntry, CallerId, Contact, Input, LeaveReason, OfferId,
    Output, OverflowReason, PersistRecord, QueueEvent, QueueEventKind, QueueStats, RejectReason,
    ScheduledCallback,
};

use decide::Work;
use ewt::{Calibration, HandleWindow};
use state::{
    AgentIdx, AgentRt, AgentSt, Counters, DenseSet, OfferRec, Pool, PoolsId, QueueIdx, QueueRt,
    SkillIdx, StepRt, Waiter, WaiterId,
};
use timers::TimerTable;

/// Why an input changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// No queue with this name.
    #[error("unknown queue `{0}`")]
    UnknownQueue(String),
    /// No agent with this id.
    #[error("unknown agent `{0}`")]
    UnknownAgent(String),
    /// The caller is not waiting in any queue.
    #[error("{0} is not waiting")]
    UnknownCaller(CallerId),
    /// A caller with this id is already waiting.
    #[error("{0} is already waiting")]
    DuplicateCaller(CallerId),
    /// The offer is no longer outstanding (already answered, cancelled or expired).
    #[error("{0} is not outstanding")]
    UnknownOffer(OfferId),
    /// No pending callback with this id.
    #[error("{0} is not pending")]
    UnknownCallback(CallbackId),
    /// A result for a callback with no attempt in progress.
    #[error("{0} has no attempt in progress")]
    NoCallbackAttempt(CallbackId),
    /// The queue does not offer callbacks.
    #[error("queue `{0}` does not offer callbacks")]
    CallbacksDisabled(String),
    /// `CallEnded` for an agent not on a call with that contact.
    #[error("agent `{0}` is not on a call with that contact")]
    NotOnCall(String),
}

/// The ACD core. See the module documentation for the contract.
pub struct Acd {
    queues: Vec<QueueRt>,
    queue_ix: HashMap<String, QueueIdx>,
    agents: Vec<AgentRt>,
    agent_ix: HashMap<String, AgentIdx>,
    skill_ix: HashMap<String, SkillIdx>,
    /// Ready agents having each skill (any proficiency).
    ready_by_skill: Vec<DenseSet>,
    /// Every agent having each skill (static: skills do not change).
    agents_by_skill: Vec<Vec<AgentIdx>>,
    waiters: HashMap<WaiterId, Waiter>,
    pools: Vec<Vec<Pool>>,
    pools_ix: HashMap<Vec<Pool>, PoolsId>,
    offers: HashMap<OfferId, OfferRec>,
    timers: TimerTable,
    out: VecDeque<Output>,
    rng: SmallRng,
    next_offer: u64,
    next_callback: u64,
    next_seq: u64,
    next_event: u64,
    work: Work,
    /// Seeds the estimator's scenarios (with the waiter's sequence number).
    estimate_seed: u64,
    /// Callers to announce once the input that brought them is routed.
    entry_announcements: Vec<WaiterId>,
}

impl Acd {
    /// Build the ACD. All agents start logged out. Unknown queue names in
    /// the configuration (overflow queues, agents' queue lists) are ignored
    /// here; `AcdConfig::from_yaml` reports them.
    pub fn new(config: AcdConfig) -> Acd {
        let mut acd = Acd {
            queues: Vec::new(),
            queue_ix: HashMap::new(),
            agents: Vec::new(),
            agent_ix: HashMap::new(),
            skill_ix: HashMap::new(),
            ready_by_skill: Vec::new(),
            agents_by_skill: Vec::new(),
            waiters: HashMap::new(),
            pools: Vec::new(),
            pools_ix: HashMap::new(),
            offers: HashMap::new(),
            timers: TimerTable::default(),
            out: VecDeque::new(),
            rng: SmallRng::seed_from_u64(config.seed),
            next_offer: 1,
            next_callback: 1,
            next_seq: 1,
            next_event: 1,
            work: Work::default(),
            entry_announcements: Vec::new(),
            estimate_seed: config.seed,
        };
        for (i, q) in config.queues.iter().enumerate() {
            acd.queue_ix.entry(q.name.clone()).or_insert(i);
        }
        let n_queues = config.queues.len();
        // Queues (skills interned on the way).
        for q in &config.queues {
            let base_reqs = acd.reqs(&q.skills);
            let mut steps = Vec::new();
            for s in &q.widening {
                let relax = acd.reqs(&s.relax);
                let drop = s.drop.iter().map(|d| acd.skill(d)).collect();
                let add = acd.reqs(&s.add_skills);
                let overflow = s
                    .overflow_queues
                    .iter()
                    .filter_map(|o| acd.queue_ix.get(o).copied())
                    .collect();
                steps.push(StepRt {
                    after: s.after,
                    relax,
                    drop,
                    add,
                    overflow,
                });
            }
            acd.queues.push(QueueRt {
                cfg: q.clone(),
                base_reqs,
                steps,
                all: Default::default(),
                available: Default::default(),
                live_callers: 0,
                callbacks: 0,
                by_priority: Default::default(),
                members: Vec::new(),
                serving: Vec::new(),
                overlap: Vec::new(),
                ready_serving: DenseSet::with_universe(config.agents.len()),
                rr_last: None,
                handle: HandleWindow::new(q.expected_handle_time),
                calibration: Calibration::default(),
                counters: Counters::default(),
            });
        }
        // Agents.
        for a in &config.agents {
            if acd.agent_ix.contains_key(&a.id) {
                continue;
            }
            let mut prof = Vec::new();
            for (skill, &p) in &a.skills {
                let s = acd.skill(skill);
                if prof.len() <= s {
                    prof.resize(s + 1, 0);
                }
                prof[s] = p;
            }
            let serves = (0..n_queues)
                .map(|qi| {
                    a.queues
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|n| *n == config.queues[qi].name))
                })
                .collect();
            let idx = acd.agents.len();
            acd.agent_ix.insert(a.id.clone(), idx);
            acd.agents.push(AgentRt {
                id: AgentId(a.id.clone()),
                cfg: a.clone(),
                prof,
                serves,
                scan_queues: Vec::new(),
                state: AgentSt::LoggedOut,
                since: None,
                reason: None,
                idle_since: None,
                calls: 0,
                talk_total: Default::default(),
                held: Default::default(),
                pending: None,
            });
        }
        acd.index_membership();
        acd
    }
}

impl Acd {
    /// Apply one input, then route whatever it made possible.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::CallerEnters(entry) => self.caller_enters(now, entry),
            Input::CallerLeaves { caller, reason } => self.caller_leaves(now, caller, reason),
            Input::SetPriority { caller, priority } => self.set_priority(now, caller, priority),
            Input::AgentState { agent, state } => self.agent_state(now, &agent, state),
            Input::OfferAccepted { offer } => self.offer_accepted(now, offer),
            Input::OfferRejected { offer, reason } => self.offer_rejected(now, offer, reason),
            Input::CallEnded {
                agent,
                contact,
                talk,
            } => self.call_ended(now, &agent, contact, talk),
            Input::RequestCallback { caller, number } => {
                if let Err(e) = self.request_callback(now, caller, number) {
                    self.ignored(e);
                }
            }
            Input::ScheduleCallback(req) => {
                if let Err(e) = self.schedule_callback(now, req) {
                    self.ignored(e);
                }
            }
            Input::CancelCallback { callback } => self.cancel_callback(now, callback),
            Input::CallbackResult { callback, outcome } => {
                self.callback_result(now, callback, outcome)
            }
        }
        self.route(now);
        for id in std::mem::take(&mut self.entry_announcements) {
            self.announce(now, id);
        }
    }

    /// Fire every deadline at or before `now` (leases, wrap-ups, widening,
    /// max waits, announcements, sticky holds, callback delays and attempt
    /// guards), in deadline order, then route.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, key)) = self.timers.pop_due(now) {
            self.fire(now, key);
            // Route after each timer so that what one frees is visible to
            // the next (e.g. a widened caller before an announcement).
            self.route(now);
        }
    }

    /// The next output, if any. Drain until `None` after every call.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next deadline; call [`Acd::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(at, _)| at)
    }

    /// The next deadline and what it is for.
    pub fn next_timeout(&self) -> Option<(Instant, TimerReason)> {
        self.timers.next().map(|(at, key)| (at, key.reason()))
    }

    /// Restore the invariant "no ready agent eligible for an available
    /// waiter" for what changed since the last call.
    fn route(&mut self, now: Instant) {
        // Bounded: each round either offers (reserving agents) or empties
        // the work list.
        for _ in 0..64 {
            if self.work.is_empty() {
                return;
            }
            let work = std::mem::take(&mut self.work);
            let seed = self.rng.gen::<u64>();
            let actions = self.decide(now, &work, seed);
            for action in actions {
                self.apply(now, action);
            }
        }
        debug_assert!(self.work.is_empty(), "routing did not settle");
        self.work = Work::default();
    }
}
