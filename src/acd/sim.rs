//! The staffing simulator: the same [`Acd`] core driven on simulated time
//! by synthetic, seeded load, and Erlang C for comparison.
//!
//! Arrivals are Poisson per stream; talk times and patience follow a
//! [`Dist`]; agents answer offers after `answer_delay` (or let a share ring
//! out), come back from "missed" after `missed_recovery`, and callers
//! offered a callback take it with probability `callback_accept`. Every
//! random draw comes from one `SmallRng` seeded with `SimParams::seed`; the
//! simulated clock starts at `SimParams::epoch`. The first `warmup_calls`
//! arrivals are left out of the figures.
//!
//! Figures follow `CONTACT-CENTRE.md`; the EWT error of our estimate (as
//! given at entry) is reported next to Asterisk's moving average
//! ([`EmaEstimator`]), over all answered calls and over those that waited.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::config::{AcdConfig, AgentConfig, QueueConfig, SkillRequirement};
use super::ewt::EmaEstimator;
use super::types::{
    AgentId, AgentStateChange, AgentStatus, CallbackId, CallbackOutcome, CallerEntry, CallerId,
    Contact, Input, LeaveReason, Output, QueueEventKind,
};
use super::Acd;

/// A distribution of durations.
#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    Exponential {
        mean: Duration,
    },
    /// Sum of `k` exponentials: coefficient of variation 1/√k.
    Erlang {
        mean: Duration,
        k: u32,
    },
    /// Lognormal with the given mean and coefficient of variation.
    LogNormal {
        mean: Duration,
        cv: f64,
    },
    Fixed(Duration),
}

impl Dist {
    pub fn mean(&self) -> Duration {
        match self {
            Dist::Exponential { mean }
            | Dist::Erlang { mean, .. }
            | Dist::LogNormal { mean, .. } => *mean,
            Dist::Fixed(d) => *d,
        }
    }

    pub fn sample(&self, rng: &mut SmallRng) -> Duration {
        let secs = match self {
            Dist::Exponential { mean } => exp(rng, mean.as_secs_f64()),
            Dist::Erlang { mean, k } => {
                let k = (*k).max(1);
                let m = mean.as_secs_f64() / f64::from(k);
                (0..k).map(|_| exp(rng, m)).sum()
            }
            Dist::LogNormal { mean, cv } => {
                let s2 = (1.0 + cv * cv).ln();
                let mu = mean.as_secs_f64().ln() - s2 / 2.0;
                (mu + s2.sqrt() * normal(rng)).exp()
            }
            Dist::Fixed(d) => d.as_secs_f64(),
        };
        Duration::from_secs_f64(secs.clamp(0.0, 1e9))
    }
}

fn exp(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.gen();
    -(1.0 - u).ln() * mean
}

fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Poisson stream of callers into one queue.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrivalStream {
    pub queue: String,
    /// Calls per second.
    pub rate: f64,
    pub priority: i32,
    pub skills: Vec<SkillRequirement>,
    pub attributes: BTreeMap<String, String>,
}

impl ArrivalStream {
    pub fn new(queue: &str, rate: f64) -> Self {
        ArrivalStream {
            queue: queue.to_owned(),
            rate,
            priority: 0,
            skills: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimParams {
    /// Simulated time starts here (any `Instant`; nothing reads the clock).
    pub epoch: Instant,
    pub seed: u64,
    /// Queues and agents; every agent logs in ready at the start.
    pub config: AcdConfig,
    pub arrivals: Vec<ArrivalStream>,
    /// Arrivals to generate in total.
    pub calls: u64,
    /// The first arrivals, left out of the figures.
    pub warmup_calls: u64,
    pub talk: Dist,
    /// Time a caller is willing to wait; `None`: never abandons.
    pub patience: Option<Dist>,
    pub answer_delay: Duration,
    /// Share of offers that ring out (the agent goes "missed").
    pub no_answer_prob: f64,
    pub missed_recovery: Duration,
    /// Share of callers offered a callback (in an announcement) who take it.
    pub callback_accept: f64,
    /// Share of callback attempts the customer answers.
    pub callback_answer_prob: f64,
    pub callback_dial_time: Duration,
}

impl SimParams {
    /// Erlang C's world: one FIFO queue (`q`, longest-idle), `agents`
    /// identical agents, Poisson arrivals at `lambda` per second,
    /// exponential talk times with mean `aht`, no wrap-up, no abandonment,
    /// instant answers, service level target 20 s.
    pub fn erlang_c(
        epoch: Instant,
        seed: u64,
        agents: usize,
        lambda: f64,
        aht: Duration,
        calls: u64,
    ) -> SimParams {
        let mut q = QueueConfig::new("q");
        q.expected_handle_time = aht;
        let config = AcdConfig {
            queues: vec![q],
            agents: (0..agents)
                .map(|i| AgentConfig::new(&format!("a{i}")))
                .collect(),
            seed,
        };
        SimParams {
            epoch,
            seed,
            config,
            arrivals: vec![ArrivalStream::new("q", lambda)],
            calls,
            warmup_calls: calls / 20,
            talk: Dist::Exponential { mean: aht },
            patience: None,
            answer_delay: Duration::ZERO,
            no_answer_prob: 0.0,
            missed_recovery: Duration::from_secs(30),
            callback_accept: 0.0,
            callback_answer_prob: 1.0,
            callback_dial_time: Duration::from_secs(10),
        }
    }
}

/// Figures of one queue (or of all, in `SimReport::total`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimQueueReport {
    pub queue: String,
    /// Measured arrivals (after warm-up).
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub overflowed: u64,
    /// Callbacks taken by measured callers, and how they ended.
    pub callbacks_requested: u64,
    pub callbacks_completed: u64,
    pub callbacks_failed: u64,
    /// Still waiting when the run ended (should be 0).
    pub unresolved: u64,
    /// Answered within T ÷ (answered + abandoned after threshold).
    pub service_level: f64,
    /// Mean wait of answered calls (s).
    pub asa: f64,
    /// Share of answered calls that waited at all.
    pub p_wait: f64,
    pub abandon_rate: f64,
    /// Our EWT at entry vs the actual wait, over answered calls (s).
    pub ewt_mae: f64,
    /// Asterisk's EMA estimate at entry, same calls (s).
    pub ema_mae: f64,
    /// The two MAEs divided by the mean wait of the same calls.
    pub ewt_mae_relative: f64,
    pub ema_mae_relative: f64,
    /// The same two over answered calls that waited (> 0 s).
    pub ewt_mae_waited: f64,
    pub ema_mae_waited: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimReport {
    pub calls: u64,
    /// Simulated time from the start to the last event.
    pub simulated: Duration,
    /// Handling (on call + wrap-up) ÷ time logged in and not on a break,
    /// over the measured interval.
    pub occupancy: f64,
    pub queues: Vec<SimQueueReport>,
    pub total: SimQueueReport,
}

#[derive(Debug, Clone)]
enum Ev {
    Arrival(usize),
    Deliver(Input),
}

#[derive(Debug, Clone, Default)]
struct CallRec {
    queue: usize,
    measured: bool,
    ours: Option<Duration>,
    ema: Duration,
    outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Answered(Duration),
    Abandoned { short: bool },
    Overflowed,
    Callback,
}

struct Sim {
    p: SimParams,
    rng: SmallRng,
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    events: HashMap<u64, Ev>,
    next_ev: u64,
    calls: Vec<CallRec>,
    waiting: HashSet<CallerId>,
    callback_offered: HashSet<CallerId>,
    ema: Vec<EmaEstimator>,
    queue_ix: HashMap<String, usize>,
    sl_target: Vec<Duration>,
    cb_stats: Vec<(u64, u64, u64)>,
    /// Per agent: its last state and since when (for occupancy).
    agent_state: HashMap<AgentId, (AgentStatus, Instant)>,
    handling: f64,
    available: f64,
    window: (Option<Instant>, Option<Instant>),
    generated: u64,
    /// Callbacks requested and not yet completed or failed.
    callbacks_open: u64,
    /// Whether each callback's caller is measured (after warm-up).
    callback_measured: HashMap<CallbackId, bool>,
}

/// Run the simulation to the end (every generated caller resolved).
pub fn simulate(params: SimParams) -> SimReport {
    let queue_ix: HashMap<String, usize> = params
        .config
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.clone(), i))
        .collect();
    let nq = params.config.queues.len();
    let sim = Sim {
        rng: SmallRng::seed_from_u64(params.seed),
        heap: BinaryHeap::new(),
        events: HashMap::new(),
        next_ev: 0,
        calls: Vec::new(),
        waiting: HashSet::new(),
        callback_offered: HashSet::new(),
        ema: vec![EmaEstimator::new(); nq],
        sl_target: params
            .config
            .queues
            .iter()
            .map(|q| q.service_level.within)
            .collect(),
        cb_stats: vec![(0, 0, 0); nq],
        queue_ix,
        agent_state: HashMap::new(),
        handling: 0.0,
        available: 0.0,
        window: (None, None),
        generated: 0,
        callbacks_open: 0,
        callback_measured: HashMap::new(),
        p: params,
    };
    sim.run()
}

impl Sim {
    fn push(&mut self, at: Instant, ev: Ev) {
        let id = self.next_ev;
        self.next_ev += 1;
        self.events.insert(id, ev);
        self.heap.push(Reverse((at, id)));
    }

    fn schedule_arrival(&mut self, now: Instant, stream: usize) {
        let rate = self.p.arrivals[stream].rate;
        if rate <= 0.0 {
            return;
        }
        let gap = exp(&mut self.rng, 1.0 / rate);
        self.push(now + Duration::from_secs_f64(gap), Ev::Arrival(stream));
    }

    fn run(mut self) -> SimReport {
        let mut config = self.p.config.clone();
        config.seed = self.p.seed ^ 0x5eed;
        let mut acd = Acd::new(config);
        let t0 = self.p.epoch;
        let agents: Vec<String> = self.p.config.agents.iter().map(|a| a.id.clone()).collect();
        for a in agents {
            acd.handle(
                t0,
                Input::AgentState {
                    agent: AgentId(a),
                    state: AgentStateChange::Ready,
                },
            );
        }
        self.drain(&mut acd, t0);
        for s in 0..self.p.arrivals.len() {
            self.schedule_arrival(t0, s);
        }
        let mut now = t0;
        // Bounded: every generated call produces a bounded number of events.
        let limit = 200 * (self.p.calls + 100);
        for _ in 0..limit {
            let next_ev = self.heap.peek().map(|Reverse((t, _))| *t);
            let next_timer = acd.poll_timeout();
            let timer_first = match (next_ev, next_timer) {
                (None, None) => break,
                (Some(e), Some(t)) => t <= e,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if timer_first {
                let Some(t) = next_timer else { break };
                // Once everything is generated and resolved, stop (idle
                // timers such as announcements of nobody do not exist).
                now = now.max(t);
                acd.handle_timeout(now);
            } else {
                let Some(Reverse((t, id))) = self.heap.pop() else {
                    break;
                };
                now = now.max(t);
                let Some(ev) = self.events.remove(&id) else {
                    continue;
                };
                match ev {
                    Ev::Arrival(s) => self.arrive(&mut acd, now, s),
                    Ev::Deliver(input) => {
                        if let Input::CallerLeaves { caller, .. } = &input {
                            if !self.waiting.contains(caller) {
                                continue;
                            }
                        }
                        acd.handle(now, input);
                    }
                }
            }
            self.drain(&mut acd, now);
            if self.generated >= self.p.calls
                && self.waiting.is_empty()
                && self.callbacks_open == 0
                && self.heap.is_empty()
            {
                break;
            }
        }
        self.account_until(now);
        self.report(now)
    }

    fn arrive(&mut self, acd: &mut Acd, now: Instant, s: usize) {
        if self.generated >= self.p.calls {
            return;
        }
        let n = self.generated;
        self.generated += 1;
        if n == self.p.warmup_calls {
            self.account_until(now);
            self.window.0 = Some(now);
        }
        if self.generated == self.p.calls {
            self.account_until(now);
            self.window.1 = Some(now);
        } else {
            self.schedule_arrival(now, s);
        }
        let stream = self.p.arrivals[s].clone();
        let q = self.queue_ix.get(&stream.queue).copied().unwrap_or(0);
        let caller = CallerId(n);
        self.calls.push(CallRec {
            queue: q,
            measured: n >= self.p.warmup_calls,
            ours: None,
            ema: self.ema[q].estimate(),
            outcome: None,
        });
        self.waiting.insert(caller);
        if let Some(pat) = &self.p.patience {
            let wait = pat.sample(&mut self.rng);
            self.push(
                now + wait,
                Ev::Deliver(Input::CallerLeaves {
                    caller,
                    reason: LeaveReason::Abandoned,
                }),
            );
        }
        acd.handle(
            now,
            Input::CallerEnters(CallerEntry {
                caller,
                queue: stream.queue,
                priority: stream.priority,
                skills: stream.skills,
                attributes: stream.attributes,
                last_agent: None,
                number: Some(format!("+1555{n:07}")),
                callback_after: None,
            }),
        );
    }

    fn finish(&mut self, caller: CallerId, outcome: Outcome) {
        self.waiting.remove(&caller);
        if let Some(c) = usize::try_from(caller.0)
            .ok()
            .and_then(|i| self.calls.get_mut(i))
        {
            if c.outcome.is_none() {
                c.outcome = Some(outcome);
            }
        }
    }

    fn drain(&mut self, acd: &mut Acd, now: Instant) {
        while let Some(out) = acd.poll_output() {
            match out {
                Output::Offer { offer, .. } => self.ring(now, offer),
                Output::Announce {
                    caller,
                    offer_callback: true,
                    ..
                } => self.offered_callback(now, caller),
                Output::StartCallback { callback, .. } => {
                    let outcome = if self.rng.gen::<f64>() < self.p.callback_answer_prob {
                        CallbackOutcome::Connected
                    } else {
                        CallbackOutcome::NoAnswer
                    };
                    self.push(
                        now + self.p.callback_dial_time,
                        Ev::Deliver(Input::CallbackResult { callback, outcome }),
                    );
                }
                Output::Overflow { caller, .. } => self.finish(caller, Outcome::Overflowed),
                Output::AgentChanged {
                    agent,
                    state,
                    reason,
                    since,
                } => {
                    self.agent_moved(&agent, state, since);
                    if state == AgentStatus::NotReady && reason.as_deref() != Some("break") {
                        self.push(
                            now + self.p.missed_recovery,
                            Ev::Deliver(Input::AgentState {
                                agent,
                                state: AgentStateChange::Ready,
                            }),
                        );
                    }
                }
                Output::QueueEvent(ev) => self.queue_event(now, ev),
                _ => {}
            }
        }
    }

    /// The agent answers after `answer_delay`, or lets it ring out.
    fn ring(&mut self, now: Instant, offer: super::types::OfferId) {
        if self.rng.gen::<f64>() >= self.p.no_answer_prob {
            self.push(
                now + self.p.answer_delay,
                Ev::Deliver(Input::OfferAccepted { offer }),
            );
        }
    }

    /// A caller hears the callback offer (once): takes it or not.
    fn offered_callback(&mut self, now: Instant, caller: CallerId) {
        if self.p.callback_accept > 0.0
            && self.callback_offered.insert(caller)
            && self.rng.gen::<f64>() < self.p.callback_accept
        {
            self.push(
                now,
                Ev::Deliver(Input::RequestCallback {
                    caller,
                    number: format!("+1555{:07}", caller.0),
                }),
            );
        }
    }

    fn queue_event(&mut self, now: Instant, ev: super::types::QueueEvent) {
        let q = self.queue_ix.get(&ev.queue).copied().unwrap_or(0);
        match (ev.contact, ev.kind) {
            (Contact::Caller(c), QueueEventKind::Entered { estimate, .. }) => {
                if let Some(rec) = usize::try_from(c.0)
                    .ok()
                    .and_then(|i| self.calls.get_mut(i))
                {
                    rec.ours = estimate;
                }
            }
            (Contact::Caller(c), QueueEventKind::Answered { agent, waited }) => {
                self.ema[q].record(waited);
                self.finish(c, Outcome::Answered(waited));
                let talk = self.p.talk.sample(&mut self.rng);
                self.push(
                    now + talk,
                    Ev::Deliver(Input::CallEnded {
                        agent,
                        contact: Contact::Caller(c),
                        talk,
                    }),
                );
            }
            (Contact::Caller(c), QueueEventKind::Abandoned { short, .. }) => {
                self.finish(c, Outcome::Abandoned { short })
            }
            (Contact::Caller(c), QueueEventKind::Exited { .. }) => {
                self.finish(c, Outcome::Overflowed)
            }
            (_, QueueEventKind::CallbackRequested { callback, caller }) => {
                let measured = caller.is_some_and(|c| {
                    usize::try_from(c.0)
                        .ok()
                        .and_then(|i| self.calls.get(i))
                        .is_some_and(|r| r.measured)
                });
                if let Some(c) = caller {
                    self.finish(c, Outcome::Callback);
                }
                self.callback_measured.insert(callback, measured);
                if measured {
                    self.cb_stats[q].0 += 1;
                }
                self.callbacks_open += 1;
            }
            (Contact::Callback(cb), QueueEventKind::CallbackCompleted { agent, .. }) => {
                if self.callback_measured.get(&cb) == Some(&true) {
                    self.cb_stats[q].1 += 1;
                }
                self.callbacks_open = self.callbacks_open.saturating_sub(1);
                self.callback_talk(now, cb, agent);
            }
            (Contact::Callback(cb), QueueEventKind::CallbackFailed { .. }) => {
                if self.callback_measured.get(&cb) == Some(&true) {
                    self.cb_stats[q].2 += 1;
                }
                self.callbacks_open = self.callbacks_open.saturating_sub(1);
            }
            _ => {}
        }
    }

    fn callback_talk(&mut self, now: Instant, cb: CallbackId, agent: AgentId) {
        let talk = self.p.talk.sample(&mut self.rng);
        self.push(
            now + talk,
            Ev::Deliver(Input::CallEnded {
                agent,
                contact: Contact::Callback(cb),
                talk,
            }),
        );
    }

    /// Occupancy bookkeeping: close the agent's current interval.
    fn agent_moved(&mut self, agent: &AgentId, state: AgentStatus, since: Instant) {
        if let Some((old, from)) = self.agent_state.insert(agent.clone(), (state, since)) {
            self.add_interval(old, from, since);
        }
    }

    fn add_interval(&mut self, state: AgentStatus, from: Instant, to: Instant) {
        let (Some(start), end) = self.window else {
            return;
        };
        let from = from.max(start);
        let to = match end {
            Some(e) => to.min(e),
            None => to,
        };
        if to <= from {
            return;
        }
        let d = (to - from).as_secs_f64();
        match state {
            AgentStatus::LoggedOut | AgentStatus::NotReady => {}
            AgentStatus::OnCall | AgentStatus::WrapUp => {
                self.handling += d;
                self.available += d;
            }
            AgentStatus::Ready | AgentStatus::Offered => self.available += d,
        }
    }

    /// Account every agent's open interval up to `now` and restart it there.
    fn account_until(&mut self, now: Instant) {
        let open: Vec<(AgentId, AgentStatus, Instant)> = self
            .agent_state
            .iter()
            .map(|(a, (s, t))| (a.clone(), *s, *t))
            .collect();
        for (a, s, t) in open {
            if t < now {
                self.add_interval(s, t, now);
                self.agent_state.insert(a, (s, now));
            }
        }
    }

    fn report(&self, end: Instant) -> SimReport {
        let queues: Vec<SimQueueReport> = self
            .p
            .config
            .queues
            .iter()
            .enumerate()
            .map(|(q, cfg)| self.queue_report(&cfg.name, Some(q)))
            .collect();
        SimReport {
            calls: self.generated,
            simulated: end.saturating_duration_since(self.p.epoch),
            occupancy: if self.available > 0.0 {
                self.handling / self.available
            } else {
                0.0
            },
            queues,
            total: self.queue_report("*", None),
        }
    }

    /// Figures over the measured calls of queue `q` (all queues: `None`).
    fn queue_report(&self, name: &str, q: Option<usize>) -> SimQueueReport {
        let mut r = SimQueueReport {
            queue: name.to_owned(),
            ..Default::default()
        };
        let (mut within, mut wait_sum, mut waited_n) = (0u64, 0f64, 0u64);
        let (mut e_ours, mut e_ema, mut e_act, mut n_est) = (0f64, 0f64, 0f64, 0u64);
        let (mut w_ours, mut w_ema, mut n_w) = (0f64, 0f64, 0u64);
        let calls = self
            .calls
            .iter()
            .filter(|c| c.measured && q.is_none_or(|q| c.queue == q));
        for c in calls {
            r.offered += 1;
            match c.outcome {
                Some(Outcome::Answered(w)) => {
                    r.answered += 1;
                    if w <= self.sl_target[c.queue] {
                        within += 1;
                    }
                    wait_sum += w.as_secs_f64();
                    if !w.is_zero() {
                        waited_n += 1;
                    }
                    if let Some(est) = c.ours {
                        let (a, o, m) = (w.as_secs_f64(), est.as_secs_f64(), c.ema.as_secs_f64());
                        e_ours += (o - a).abs();
                        e_ema += (m - a).abs();
                        e_act += a;
                        n_est += 1;
                        if a > 0.0 {
                            w_ours += (o - a).abs();
                            w_ema += (m - a).abs();
                            n_w += 1;
                        }
                    }
                }
                Some(Outcome::Abandoned { short: true }) => r.short_abandoned += 1,
                Some(Outcome::Abandoned { short: false }) => r.abandoned += 1,
                Some(Outcome::Overflowed) => r.overflowed += 1,
                Some(Outcome::Callback) => {}
                None => r.unresolved += 1,
            }
        }
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        r.service_level = div(within as f64, (r.answered + r.abandoned) as f64);
        r.asa = div(wait_sum, r.answered as f64);
        r.p_wait = div(waited_n as f64, r.answered as f64);
        r.abandon_rate = div(r.abandoned as f64, r.offered as f64);
        r.ewt_mae = div(e_ours, n_est as f64);
        r.ema_mae = div(e_ema, n_est as f64);
        r.ewt_mae_relative = div(e_ours, e_act);
        r.ema_mae_relative = div(e_ema, e_act);
        r.ewt_mae_waited = div(w_ours, n_w as f64);
        r.ema_mae_waited = div(w_ema, n_w as f64);
        let cb = match q {
            Some(q) => self.cb_stats[q],
            None => self
                .cb_stats
                .iter()
                .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2)),
        };
        r.callbacks_requested = cb.0;
        r.callbacks_completed = cb.1;
        r.callbacks_failed = cb.2;
        r
    }
}

/// Erlang C for arrival rate `lambda` (calls/s), mean handle time `aht`
/// (s), `agents` agents and service-level target `target` (s): returns
/// (probability of waiting, service level, ASA in seconds). With
/// `agents ≤ λ·aht` the queue is unstable: (1, 0, ∞).
pub fn erlang_c(lambda: f64, aht: f64, agents: u32, target: f64) -> (f64, f64, f64) {
    let a = lambda * aht;
    let n = f64::from(agents);
    if agents == 0 || n <= a {
        return (1.0, 0.0, f64::INFINITY);
    }
    // Erlang B by the stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=agents {
        b = a * b / (f64::from(k) + a * b);
    }
    let p_wait = n * b / (n - a * (1.0 - b));
    let sl = 1.0 - p_wait * (-(n - a) * target / aht).exp();
    let asa = p_wait * aht / (n - a);
    (p_wait, sl, asa)
}
