//! The simulator against Erlang C, and our EWT against Asterisk's EMA.
//!
//! Waits in a queue near saturation are strongly autocorrelated, so one
//! run's ASA wanders far from its mean (at 95% occupancy ±20% over 200,000
//! calls). The Erlang C comparison therefore pools several independent,
//! seeded replications, run on parallel threads, and states its
//! tolerances:
//!
//! | occupancy | calls (replications × calls) | service level | ASA |
//! |-----------|------------------------------|---------------|-----|
//! | 70%       | 4 × 25,000                   | ±0.02         | ±15% (ASA ≈ 2 s: few callers wait) |
//! | 85%       | 4 × 50,000                   | ±0.02         | ±10% |
//! | 95%       | 4 × 150,000                  | ±0.03         | ±15% |

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use super::harness::origin;
use crate::acd::*;

const AHT: Duration = Duration::from_secs(180);

/// Run `seeds` replications in parallel and return their reports.
fn replicate(
    seeds: std::ops::Range<u64>,
    make: impl Fn(u64) -> SimParams + Sync,
) -> Vec<SimReport> {
    thread::scope(|s| {
        let handles: Vec<_> = seeds
            .map(|seed| {
                let make = &make;
                s.spawn(move || simulate(make(seed)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulation thread"))
            .collect()
    })
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn erlang_c_matches_the_textbook_formula() {
    // Direct evaluation of the formula in CONTACT-CENTRE.md.
    fn direct(lambda: f64, h: f64, n: u32, t: f64) -> (f64, f64, f64) {
        let a = lambda * h;
        let fact = |k: u32| (1..=k).map(f64::from).product::<f64>();
        let top = a.powi(n as i32) / fact(n) * (f64::from(n) / (f64::from(n) - a));
        let sum: f64 = (0..n).map(|k| a.powi(k as i32) / fact(k)).sum();
        let p = top / (sum + top);
        let nf = f64::from(n);
        (p, 1.0 - p * (-(nf - a) * t / h).exp(), p * h / (nf - a))
    }
    for (lambda, h, n, t) in [
        (10.0 / 180.0, 180.0, 12, 20.0),
        (0.5, 30.0, 20, 10.0),
        (0.02, 300.0, 7, 30.0),
    ] {
        let (p, sl, asa) = erlang_c(lambda, h, n, t);
        let (p2, sl2, asa2) = direct(lambda, h, n, t);
        assert!((p - p2).abs() < 1e-9 && (sl - sl2).abs() < 1e-9 && (asa - asa2).abs() < 1e-6);
    }
    // A well-known staffing figure: 10 erlangs on 12 agents wait with p ≈ 0.449.
    let (p, _, _) = erlang_c(10.0 / 180.0, 180.0, 12, 20.0);
    assert!((p - 0.4494).abs() < 1e-3, "{p}");
    // Unstable.
    assert_eq!(erlang_c(1.0, 10.0, 10, 20.0).0, 1.0);
}

#[test]
fn simulation_agrees_with_erlang_c() {
    let n = 10;
    for (occupancy, calls, sl_tol, asa_tol) in [
        (0.70, 25_000, 0.02, 0.15),
        (0.85, 50_000, 0.02, 0.10),
        (0.95, 150_000, 0.03, 0.15),
    ] {
        let lambda = occupancy * n as f64 / AHT.as_secs_f64();
        let (p_wait, sl, asa) = erlang_c(lambda, AHT.as_secs_f64(), n as u32, 20.0);
        let runs = replicate(1..5, |seed| {
            SimParams::erlang_c(origin(), seed, n, lambda, AHT, calls)
        });
        let sim_sl = mean(runs.iter().map(|r| r.total.service_level));
        let sim_asa = mean(runs.iter().map(|r| r.total.asa));
        let sim_pw = mean(runs.iter().map(|r| r.total.p_wait));
        let sim_occ = mean(runs.iter().map(|r| r.occupancy));
        println!(
            "occupancy {occupancy}: Erlang C SL {sl:.3} ASA {asa:.1}s P(wait) {p_wait:.3} | \
             simulated SL {sim_sl:.3} ASA {sim_asa:.1}s P(wait) {sim_pw:.3} occupancy {sim_occ:.3}"
        );
        for r in &runs {
            assert_eq!(r.total.unresolved, 0);
            assert_eq!(r.total.answered, r.total.offered);
        }
        assert!((sim_occ - occupancy).abs() < 0.01, "occupancy {sim_occ}");
        assert!((sim_sl - sl).abs() <= sl_tol, "SL {sim_sl} vs {sl}");
        assert!(
            (sim_asa - asa).abs() <= asa_tol * asa,
            "ASA {sim_asa} vs {asa}"
        );
        assert!(
            (sim_pw - p_wait).abs() <= 0.03,
            "P(wait) {sim_pw} vs {p_wait}"
        );
    }
}

fn ewt_runs(talk: Dist, occupancy: f64) -> Vec<SimReport> {
    let n = 20;
    let lambda = occupancy * n as f64 / AHT.as_secs_f64();
    replicate(1..3, |seed| {
        let mut p = SimParams::erlang_c(origin(), seed, n, lambda, AHT, 30_000);
        p.talk = talk.clone();
        p
    })
}

#[test]
fn our_estimate_beats_the_moving_average_at_85_percent() {
    for talk in [
        Dist::Exponential { mean: AHT },
        Dist::LogNormal { mean: AHT, cv: 0.3 },
    ] {
        let runs = ewt_runs(talk.clone(), 0.85);
        let ours = mean(runs.iter().map(|r| r.total.ewt_mae));
        let ema = mean(runs.iter().map(|r| r.total.ema_mae));
        let ours_w = mean(runs.iter().map(|r| r.total.ewt_mae_waited));
        let ema_w = mean(runs.iter().map(|r| r.total.ema_mae_waited));
        println!(
            "{talk:?}: EWT MAE ours {ours:.1}s vs EMA {ema:.1}s; callers who waited: {ours_w:.1}s vs {ema_w:.1}s"
        );
        assert!(ours <= 0.7 * ema, "ours {ours} vs EMA {ema}");
        assert!(
            ours_w <= 0.8 * ema_w,
            "waited: ours {ours_w} vs EMA {ema_w}"
        );
    }
}

#[test]
fn the_core_and_the_simulator_agree_on_the_figures() {
    // No warm-up: the core's own queue statistics must say the same.
    let mut p = SimParams::erlang_c(origin(), 9, 5, 0.85 * 5.0 / 180.0, AHT, 3_000);
    p.warmup_calls = 0;
    let config = p.config.clone();
    let r = simulate(p);
    assert_eq!(r.total.offered, 3_000);
    assert_eq!(r.total.answered, 3_000);
    assert!(r.total.asa > 0.0 && r.total.ewt_mae > 0.0);
    assert_eq!(config.queues.len(), 1);
}

#[test]
fn skills_abandonment_and_callbacks_resolve_every_caller() {
    let mut sales = QueueConfig::new("sales");
    sales.skills = vec![SkillRequirement::new("sales", 2)];
    sales.wrap_up = Duration::from_secs(10);
    sales.announce_every = Some(Duration::from_secs(30));
    sales.widening = vec![WideningStep {
        after: Duration::from_secs(60),
        overflow_queues: vec!["support".into()],
        ..Default::default()
    }];
    sales.callback = Some(CallbackSettings {
        offer_when_wait_over: Duration::from_secs(30),
        retry_delay: Duration::from_secs(60),
        max_attempts: 2,
        ..Default::default()
    });
    sales.max_wait = Some(Duration::from_secs(900));
    let mut support = QueueConfig::new("support");
    support.skills = vec![SkillRequirement::new("support", 1)];
    support.strategy = Strategy::BestSkill;
    support.weight = 2.0;
    let agents: Vec<AgentConfig> = (0..12)
        .map(|i| {
            let a = AgentConfig::new(&format!("a{i}"));
            match i % 3 {
                0 => a.skill("sales", 3),
                1 => a.skill("support", 1 + (i % 5) as u8),
                _ => a.skill("sales", 2).skill("support", 2),
            }
        })
        .collect();
    let config = AcdConfig {
        queues: vec![sales, support],
        agents,
        seed: 3,
    };
    let mut vip = ArrivalStream::new("sales", 0.02);
    vip.attributes = BTreeMap::from([("vip".to_owned(), "yes".to_owned())]);
    vip.priority = 5;
    let params = SimParams {
        epoch: origin(),
        seed: 11,
        config: config.clone(),
        arrivals: vec![
            ArrivalStream::new("sales", 0.03),
            ArrivalStream::new("support", 0.025),
            vip,
        ],
        calls: 6_000,
        warmup_calls: 300,
        talk: Dist::LogNormal { mean: AHT, cv: 0.8 },
        patience: Some(Dist::Exponential {
            mean: Duration::from_secs(240),
        }),
        answer_delay: Duration::from_secs(4),
        no_answer_prob: 0.03,
        missed_recovery: Duration::from_secs(20),
        callback_accept: 0.3,
        callback_answer_prob: 0.8,
        callback_dial_time: Duration::from_secs(15),
    };
    let r = simulate(params.clone());
    let t = &r.total;
    assert_eq!(t.unresolved, 0);
    // Every measured caller ended one way or another.
    let ended = t.answered + t.abandoned + t.short_abandoned + t.overflowed + t.callbacks_requested;
    assert_eq!(ended, t.offered);
    assert!(t.abandoned > 0 && t.answered > 0);
    assert!(t.callbacks_requested > 0);
    assert_eq!(
        t.callbacks_requested,
        t.callbacks_completed + t.callbacks_failed
    );
    assert!(r.occupancy > 0.3 && r.occupancy < 1.0);
    // Same seed, same figures.
    assert_eq!(simulate(params), r);
}
