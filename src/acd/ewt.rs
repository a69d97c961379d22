//! Estimated wait time.
//!
//! A caller at 0-based position `p` (callers and callbacks ahead that the
//! same agents can serve) is answered at the `(p+1)`-th release of one of
//! its `n` eligible agents (ready, offered, on a call or in wrap-up). Each
//! agent's first release comes from what it is doing now: a ready agent at
//! once, an agent in wrap-up when the wrap-up ends (known), an agent on a
//! call after the *residual* talk time given how long the call has lasted
//! (drawn from the queue's recent talk times longer than that) plus its
//! wrap-up; after a release the agent takes the next caller and releases
//! again one handle time later (drawn from recent handle times).
//!
//! [`wait_estimate`] plays these releases forward in `K` scenarios drawn
//! with a generator seeded by the caller (no entropy) and returns the
//! *median* time of the `(p mod n + 1)`-th release, to which each later
//! round adds one mean handle time: `⌊p/n⌋·h`. The median minimises the
//! mean absolute error, which is the figure we publish. With regular
//! handle times this gives `r_(p mod n) + ⌊p/n⌋·h`; with exponential ones
//! `(p+1)·h/n` in expectation, whatever the elapsed times.
//!
//! Recent history refines the estimate twice: the distributions are the
//! queue's last 256 calls, and the median error (actual − estimate) of the
//! last 100 answered callers is added, separately for callers who found a
//! free agent (this learns the ring time) and callers who queued (bounded
//! by `h/n`).
//!
//! [`EmaEstimator`] is Asterisk's method for comparison: one exponential
//! moving average of answered waits per queue, `h = (3h + new) / 4`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Samples kept per queue.
const WINDOW: usize = 256;
/// Fewer samples than this: use the configured prior (memoryless).
const MIN_SAMPLES: usize = 10;
/// Calibration window and the minimum before it applies.
const CALIBRATION_WINDOW: usize = 100;
const CALIBRATION_MIN: usize = 30;

/// A queue's recent talk and handle times.
#[derive(Debug, Clone)]
pub(crate) struct HandleWindow {
    talk: VecDeque<f64>,
    /// `talk`, sorted (for residual life).
    sorted_talk: Vec<f64>,
    talk_sum: f64,
    handle: VecDeque<f64>,
    handle_sum: f64,
    /// Configured mean handle time used until there is history.
    prior: f64,
}

impl HandleWindow {
    pub fn new(prior: Duration) -> Self {
        HandleWindow {
            talk: VecDeque::with_capacity(WINDOW),
            sorted_talk: Vec::with_capacity(WINDOW),
            talk_sum: 0.0,
            handle: VecDeque::with_capacity(WINDOW),
            handle_sum: 0.0,
            prior: prior.as_secs_f64().max(1.0),
        }
    }

    /// Record one handled call: its talk time and its actual wrap-up.
    pub fn record(&mut self, talk: Duration, wrap: Duration) {
        let t = talk.as_secs_f64();
        let h = t + wrap.as_secs_f64();
        if self.talk.len() == WINDOW {
            if let Some(old) = self.talk.pop_front() {
                self.talk_sum -= old;
                let i = self.sorted_talk.partition_point(|&x| x < old);
                if i < self.sorted_talk.len() {
                    self.sorted_talk.remove(i);
                }
            }
        }
        self.talk.push_back(t);
        self.talk_sum += t;
        let i = self.sorted_talk.partition_point(|&x| x < t);
        self.sorted_talk.insert(i, t);
        if self.handle.len() == WINDOW {
            if let Some(old) = self.handle.pop_front() {
                self.handle_sum -= old;
            }
        }
        self.handle.push_back(h);
        self.handle_sum += h;
    }

    fn has_history(&self) -> bool {
        self.handle.len() >= MIN_SAMPLES
    }

    /// Mean handle time (s).
    pub fn mean_handle(&self) -> f64 {
        if self.has_history() {
            (self.handle_sum / self.handle.len() as f64).max(1e-3)
        } else {
            self.prior
        }
    }

    /// Mean handle time, if there is any history.
    pub fn aht(&self) -> Option<Duration> {
        (!self.handle.is_empty())
            .then(|| Duration::from_secs_f64(self.handle_sum / self.handle.len() as f64))
    }

    /// A talk time drawn from the window (exponential with the prior's
    /// mean before there is history).
    pub fn draw_talk(&self, rng: &mut SmallRng) -> f64 {
        if !self.has_history() {
            return exp_draw(rng, self.prior);
        }
        self.talk[rng.gen_range(0..self.talk.len())]
    }

    /// A handle time (talk + wrap-up) drawn from the window.
    pub fn draw_handle(&self, rng: &mut SmallRng) -> f64 {
        if !self.has_history() {
            return exp_draw(rng, self.prior);
        }
        self.handle[rng.gen_range(0..self.handle.len())]
    }

    /// The remaining talk time of a call that has lasted `elapsed` s: a
    /// recent call longer than that, minus `elapsed`. Longer than every
    /// recent call: a quarter of the mean talk time on average.
    #[cfg(test)]
    pub fn draw_residual(&self, elapsed: f64, rng: &mut SmallRng) -> f64 {
        self.draw_residual_from(self.longer_than(elapsed), elapsed, rng)
    }

    /// Index of the first recent talk time longer than `elapsed`.
    fn longer_than(&self, elapsed: f64) -> usize {
        self.sorted_talk.partition_point(|&x| x <= elapsed)
    }

    /// `draw_residual` with `longer_than(elapsed)` already known.
    fn draw_residual_from(&self, first_longer: usize, elapsed: f64, rng: &mut SmallRng) -> f64 {
        if !self.has_history() {
            return exp_draw(rng, self.prior);
        }
        let n = self.sorted_talk.len();
        if first_longer >= n {
            let mean_talk = self.talk_sum / n as f64;
            return exp_draw(rng, 0.25 * mean_talk);
        }
        self.sorted_talk[rng.gen_range(first_longer..n)] - elapsed
    }
}

fn exp_draw(rng: &mut SmallRng, mean: f64) -> f64 {
    let u: f64 = rng.gen();
    -(1.0 - u).ln() * mean
}

/// What an eligible agent is doing, for the release simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Busy {
    /// Releases after this many seconds (0: ready; wrap-up remainder).
    Known(f64),
    /// On a call that has lasted `elapsed` s, then `wrap` s of wrap-up.
    OnCall { elapsed: f64, wrap: f64 },
    /// About to start a call (offered, dialling a callback), then `wrap`.
    Starting { wrap: f64 },
}

/// Scenarios per estimate, fewer for large pools (bounded work: about
/// 4,000 simulated agent draws and releases per estimate).
const SCENARIOS: usize = 64;
const MIN_SCENARIOS: usize = 16;
const RELEASE_BUDGET: usize = 4_000;

/// The median time (s) until the `(position+1)`-th release among `agents`,
/// from `window`'s distributions; `∞` with no agent.
pub(crate) fn wait_estimate(
    position: usize,
    agents: &[Busy],
    window: &HandleWindow,
    seed: u64,
) -> f64 {
    let n = agents.len();
    if n == 0 {
        return f64::INFINITY;
    }
    let ready = agents.iter().filter(|b| **b == Busy::Known(0.0)).count();
    if position < ready {
        return 0.0;
    }
    // Play the current round (with renewals); each later round takes one
    // mean handle time: ⌊p/n⌋·h. For regular handle times that is exact;
    // for memoryless ones the expectation is (p+1)·h/n either way.
    let simulate = position % n + 1;
    let tail = (position / n) as f64 * window.mean_handle();
    let scenarios = (RELEASE_BUDGET / (n + simulate)).clamp(MIN_SCENARIOS, SCENARIOS);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut results = Vec::with_capacity(scenarios);
    // Where each call in progress sits in the talk-time distribution.
    let from: Vec<usize> = agents
        .iter()
        .map(|b| match *b {
            Busy::OnCall { elapsed, .. } => window.longer_than(elapsed),
            _ => 0,
        })
        .collect();
    let mut firsts: Vec<Reverse<Time>> = Vec::with_capacity(n);
    for _ in 0..scenarios {
        firsts.clear();
        for (b, &i) in agents.iter().zip(&from) {
            let first = match *b {
                Busy::Known(t) => t,
                Busy::OnCall { elapsed, wrap } => {
                    window.draw_residual_from(i, elapsed, &mut rng) + wrap
                }
                Busy::Starting { wrap } => window.draw_talk(&mut rng) + wrap,
            };
            firsts.push(Reverse(Time(first)));
        }
        let mut heap = BinaryHeap::from(std::mem::take(&mut firsts));
        let mut t = 0.0;
        for _ in 0..simulate {
            // The earliest release; that agent releases again one handle
            // time later (the top is replaced in place).
            let Some(mut top) = heap.peek_mut() else {
                break;
            };
            t = top.0 .0;
            *top = Reverse(Time(t + window.draw_handle(&mut rng)));
        }
        results.push(t + tail);
        firsts = heap.into_vec();
    }
    let mid = results.len() / 2;
    let (_, median, _) = results.select_nth_unstable_by(mid, f64::total_cmp);
    *median
}

/// An `f64` ordered for the heap (never NaN here).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Recent errors (actual − estimate) of answered callers, to correct
/// systematic offsets the model does not see (ring time, agents slow to
/// answer). Kept apart for callers told "no wait" and callers who queued.
#[derive(Debug, Clone, Default)]
pub(crate) struct Calibration {
    immediate: VecDeque<f64>,
    queued: VecDeque<f64>,
}

impl Calibration {
    pub fn record(&mut self, estimate: Duration, actual: Duration) {
        let bucket = if estimate.is_zero() {
            &mut self.immediate
        } else {
            &mut self.queued
        };
        if bucket.len() == CALIBRATION_WINDOW {
            bucket.pop_front();
        }
        bucket.push_back(actual.as_secs_f64() - estimate.as_secs_f64());
    }

    /// Seconds to add to an estimate of `raw` s, within ±`bound`.
    pub fn correction(&self, raw: f64, bound: f64) -> f64 {
        let bucket = if raw <= 0.0 {
            &self.immediate
        } else {
            &self.queued
        };
        if bucket.len() < CALIBRATION_MIN {
            return 0.0;
        }
        let mut v: Vec<f64> = bucket.iter().copied().collect();
        let mid = v.len() / 2;
        let (_, median, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
        median.clamp(-bound, bound)
    }
}

/// Asterisk's queue hold-time estimate: one exponential moving average of
/// answered waits per queue, `h = (3h + new) / 4`, blind to position and
/// staffing. Kept for comparison in the simulator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EmaEstimator {
    h: f64,
}

impl EmaEstimator {
    pub fn new() -> Self {
        EmaEstimator::default()
    }

    /// The estimate for any caller entering now.
    pub fn estimate(&self) -> Duration {
        Duration::from_secs_f64(self.h.max(0.0))
    }

    /// An answered caller's wait.
    pub fn record(&mut self, waited: Duration) {
        self.h = (3.0 * self.h + waited.as_secs_f64()) / 4.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(samples: &[f64]) -> HandleWindow {
        let mut w = HandleWindow::new(Duration::from_secs(100));
        for &t in samples {
            w.record(Duration::from_secs_f64(t), Duration::ZERO);
        }
        w
    }

    #[test]
    fn regular_handle_times_release_in_order() {
        // Every call lasts 60 s: agents 10, 20 and 30 s from the end.
        let w = window(&[60.0; 50]);
        let agents = [
            Busy::OnCall {
                elapsed: 50.0,
                wrap: 0.0,
            },
            Busy::OnCall {
                elapsed: 40.0,
                wrap: 0.0,
            },
            Busy::Known(30.0),
        ];
        assert!((wait_estimate(0, &agents, &w, 1) - 10.0).abs() < 1e-9);
        assert!((wait_estimate(2, &agents, &w, 1) - 30.0).abs() < 1e-9);
        assert!((wait_estimate(4, &agents, &w, 1) - 80.0).abs() < 1e-9);
        // Later rounds: one handle time each.
        let e = wait_estimate(31, &agents, &w, 1);
        assert!((e - (20.0 + 10.0 * 60.0)).abs() < 1e-9, "{e}");
    }

    #[test]
    fn memoryless_handle_times_give_the_gamma_median() {
        // No history: exponential with the prior's mean (100 s). Four busy
        // agents, position 3: Gamma(4, 25 s), median ≈ 3.67·25 ≈ 92 s.
        let w = HandleWindow::new(Duration::from_secs(100));
        let agents = [Busy::OnCall {
            elapsed: 5.0,
            wrap: 0.0,
        }; 4];
        let e = wait_estimate(3, &agents, &w, 42);
        assert!((70.0..115.0).contains(&e), "{e}");
    }

    #[test]
    fn a_ready_agent_means_no_wait() {
        let w = window(&[60.0; 20]);
        let agents = [Busy::Known(0.0), Busy::Known(50.0)];
        assert_eq!(wait_estimate(0, &agents, &w, 1), 0.0);
        assert_eq!(wait_estimate(0, &[], &w, 1), f64::INFINITY);
    }

    #[test]
    fn residual_life_from_history() {
        let w = window(&[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..100 {
            let r = w.draw_residual(55.0, &mut rng);
            assert!([5.0, 15.0, 25.0, 35.0, 45.0].contains(&r), "{r}");
        }
        assert!((w.mean_handle() - 55.0).abs() < 1e-9);
    }

    #[test]
    fn calibration_is_a_bounded_median_per_bucket() {
        let mut c = Calibration::default();
        for i in 0..40u64 {
            c.record(Duration::from_secs(10), Duration::from_secs(15 + i % 3));
            c.record(Duration::ZERO, Duration::from_secs(6));
        }
        assert!((c.correction(10.0, 100.0) - 6.0).abs() < 1e-9);
        assert!((c.correction(10.0, 2.0) - 2.0).abs() < 1e-9);
        assert!((c.correction(0.0, 100.0) - 6.0).abs() < 1e-9);
    }

    #[test]
    fn asterisk_ema() {
        let mut e = EmaEstimator::new();
        e.record(Duration::from_secs(40));
        assert_eq!(e.estimate(), Duration::from_secs(10));
        e.record(Duration::from_secs(10));
        assert_eq!(e.estimate(), Duration::from_secs(10));
    }
}
