//! Benchmarks of the ACD core (run by `switchboard acd bench`, script `tools/bench_acd.sh`):
//!
//! - **routing decisions**: a contact centre of `queues` queues with skills, `agents` agents
//!   with three skills each (proficiency 1–5) and `callers` callers waiting; agents then
//!   cycle (ready → offer → answer → call ends → ready) and every cycle's decision (the
//!   call ending until the next offer is out) is timed, with a new caller entering to keep
//!   the queues full. Reports decisions per second and latency percentiles;
//! - **wait-estimate error**: the simulator at 70, 85 and 95 % occupancy with exponential
//!   and low-variance (Erlang-4) handle times, our estimate's mean absolute error beside
//!   Asterisk's moving average `h = (3h + new) / 4`.

use super::{
    simulate, AcdConfig, AgentConfig, AgentId, AgentStateChange, CallerEntry, CallerId, Contact,
    Dist, Input, Output, QueueConfig, SimParams, SkillRequirement, Strategy,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// What the routing benchmark measured.
#[derive(Debug, Clone)]
pub struct RoutingBench {
    pub agents: usize,
    pub callers: usize,
    pub queues: usize,
    /// Callers entering to fill the queues: mean cost each (includes their estimate).
    pub enter_mean: Duration,
    pub decisions: u64,
    pub decisions_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Callers still waiting at the end (the load held).
    pub waiting_at_end: usize,
}

impl fmt::Display for RoutingBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "routing: {} agents, {} queues, {} callers waiting",
            self.agents, self.queues, self.callers
        )?;
        writeln!(
            f,
            "  caller enters (queues filling, agents logged out): {:.1} µs each",
            self.enter_mean.as_secs_f64() * 1e6
        )?;
        writeln!(
            f,
            "  decisions: {} timed, {:.0} per second; latency p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            self.decisions,
            self.decisions_per_sec,
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6,
            self.max.as_secs_f64() * 1e6
        )?;
        writeln!(f, "  callers waiting at the end: {}", self.waiting_at_end)
    }
}

fn skill(i: usize) -> String {
    format!("s{i}")
}

/// Builds the contact centre: queue `qN` requires skill `s(N mod skills)`.
fn centre(agents: usize, queues: usize, skills: usize, rng: &mut SmallRng) -> AcdConfig {
    let strategies = [
        Strategy::LongestIdle,
        Strategy::BestSkill,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::LeastTalkTime,
    ];
    let queues = (0..queues)
        .map(|i| {
            let mut q = QueueConfig::new(&format!("q{i}"));
            q.strategy = strategies[i % strategies.len()];
            q.skills = vec![SkillRequirement::new(&skill(i % skills), 1 + (i % 3) as u8)];
            q.wrap_up = Duration::ZERO;
            q.ring_timeout = Duration::from_secs(20);
            q
        })
        .collect();
    let agents = (0..agents)
        .map(|i| {
            let mut a = AgentConfig::new(&format!("a{i}"));
            for _ in 0..3 {
                a.skills
                    .insert(skill(rng.gen_range(0..skills)), rng.gen_range(1..=5));
            }
            a
        })
        .collect();
    AcdConfig {
        queues,
        agents,
        seed: rng.gen(),
    }
}

/// Runs the routing benchmark for `cycles` agent cycles.
pub fn routing(
    agents: usize,
    callers: usize,
    queues: usize,
    cycles: u64,
    seed: u64,
) -> RoutingBench {
    let mut rng = SmallRng::seed_from_u64(seed);
    let skills = 20.min(queues.max(1));
    let config = centre(agents, queues, skills, &mut rng);
    let mut acd = super::Acd::new(config);
    let t0 = Instant::now();
    let mut now = t0;
    let tick = |now: &mut Instant| *now += Duration::from_millis(1);
    let mut next_caller = 0u64;
    let enter = |acd: &mut super::Acd, now: Instant, rng: &mut SmallRng, n: &mut u64| {
        let q = rng.gen_range(0..queues);
        let mut e = CallerEntry::new(CallerId(*n), &format!("q{q}"));
        e.priority = if rng.gen_bool(0.1) { 5 } else { 0 };
        *n += 1;
        acd.handle(now, Input::CallerEnters(e));
    };
    // The queues fill while every agent is logged out.
    let start = Instant::now();
    for _ in 0..callers {
        tick(&mut now);
        enter(&mut acd, now, &mut rng, &mut next_caller);
        while acd.poll_output().is_some() {}
    }
    let enter_mean = start.elapsed() / callers.max(1) as u32;
    // Agents log in ready one by one; each takes a caller.
    let mut talking: HashMap<AgentId, Contact> = HashMap::new();
    let collect = |acd: &mut super::Acd, talking: &mut HashMap<AgentId, Contact>| {
        let mut out = vec![];
        while let Some(o) = acd.poll_output() {
            if let Output::Offer {
                offer,
                caller,
                agent,
                ..
            } = o
            {
                talking.insert(agent, Contact::Caller(caller));
                out.push(offer);
            }
        }
        out
    };
    let mut offers = Vec::new();
    for i in 0..agents {
        tick(&mut now);
        acd.handle(
            now,
            Input::AgentState {
                agent: AgentId(format!("a{i}")),
                state: AgentStateChange::Ready,
            },
        );
        offers.extend(collect(&mut acd, &mut talking));
    }
    for offer in offers.drain(..) {
        acd.handle(now, Input::OfferAccepted { offer });
    }
    collect(&mut acd, &mut talking);
    // Timed: a call ends and the agent's next offer goes out.
    let mut lat: Vec<Duration> = Vec::with_capacity(cycles as usize);
    let busy: Vec<AgentId> = (0..agents).map(|i| AgentId(format!("a{i}"))).collect();
    let mut decisions = 0u64;
    for c in 0..cycles {
        let agent = busy[(c as usize * 7919) % agents].clone();
        let Some(contact) = talking.remove(&agent) else {
            continue;
        };
        tick(&mut now);
        enter(&mut acd, now, &mut rng, &mut next_caller);
        while acd.poll_output().is_some() {}
        let t = Instant::now();
        acd.handle(
            now,
            Input::CallEnded {
                agent: agent.clone(),
                contact,
                talk: Duration::from_secs(120),
            },
        );
        let new = collect(&mut acd, &mut talking);
        lat.push(t.elapsed());
        decisions += new.len() as u64;
        for offer in new {
            acd.handle(now, Input::OfferAccepted { offer });
        }
        while acd.poll_output().is_some() {}
    }
    let total: Duration = lat.iter().sum();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let waiting_at_end = (0..queues)
        .map(|q| acd.waiting(&format!("q{q}")).len())
        .sum();
    RoutingBench {
        agents,
        callers,
        queues,
        enter_mean,
        decisions,
        decisions_per_sec: lat.len() as f64 / total.as_secs_f64().max(1e-9),
        p50: pct(0.5),
        p99: pct(0.99),
        max: lat.last().copied().unwrap_or_default(),
        waiting_at_end,
    }
}

/// One row of the wait-estimate comparison.
#[derive(Debug, Clone)]
pub struct EwtRow {
    pub occupancy: f64,
    pub handle: &'static str,
    pub mean_wait: f64,
    pub ours: f64,
    pub asterisk: f64,
}

/// The simulator at three loads and two handle-time distributions: 10 agents, AHT 180 s.
pub fn ewt_table(calls: u64, seed: u64) -> Vec<EwtRow> {
    let agents = 10;
    let aht = Duration::from_secs(180);
    let mut rows = vec![];
    for occupancy in [0.70, 0.85, 0.95] {
        for (handle, talk) in [
            ("exponential", Dist::Exponential { mean: aht }),
            ("Erlang-4 (CV 0.5)", Dist::Erlang { mean: aht, k: 4 }),
        ] {
            let lambda = occupancy * agents as f64 / aht.as_secs_f64();
            let mut p = SimParams::erlang_c(Instant::now(), seed, agents, lambda, aht, calls);
            p.talk = talk;
            let r = simulate(p);
            let t = &r.total;
            rows.push(EwtRow {
                occupancy,
                handle,
                mean_wait: if t.ewt_mae_relative > 0.0 {
                    t.ewt_mae / t.ewt_mae_relative
                } else {
                    0.0
                },
                ours: t.ewt_mae,
                asterisk: t.ema_mae,
            });
        }
    }
    rows
}

/// The table as text.
pub fn format_ewt(rows: &[EwtRow]) -> String {
    let mut s = String::from(
        "wait estimate, mean absolute error over answered calls (10 agents, AHT 180 s):\n  occupancy  handle times        mean wait   ours (rel.)        Asterisk EMA (rel.)   ours vs EMA\n",
    );
    for r in rows {
        let rel = |x: f64| {
            if r.mean_wait > 0.0 {
                100.0 * x / r.mean_wait
            } else {
                0.0
            }
        };
        s.push_str(&format!(
            "  {:>5.0}%     {:<18} {:>7.1} s   {:>6.1} s ({:>3.0}%)   {:>6.1} s ({:>3.0}%)      {:>+5.0}%\n",
            100.0 * r.occupancy,
            r.handle,
            r.mean_wait,
            r.ours,
            rel(r.ours),
            r.asterisk,
            rel(r.asterisk),
            if r.asterisk > 0.0 { 100.0 * (r.ours - r.asterisk) / r.asterisk } else { 0.0 },
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_routing_run_makes_a_decision_per_cycle_and_keeps_the_queues_full() {
        let r = routing(40, 400, 5, 200, 1);
        assert!(r.decisions >= 190, "{r}");
        assert!(r.waiting_at_end >= 350, "{r}");
    }
}
