//! One behaviour per test, on simulated time.

use std::collections::BTreeMap;

use super::harness::*;
use crate::acd::*;

fn queue(name: &str, strategy: Strategy) -> QueueConfig {
    let mut q = QueueConfig::new(name);
    q.strategy = strategy;
    q
}

fn one_queue(strategy: Strategy, n_agents: usize) -> H {
    H::new(config(vec![queue("q", strategy)], agents(n_agents)))
}

/// Agents a0..a{n-1} become ready in index order, one second apart.
fn all_ready(h: &mut H, n: usize) {
    for i in 0..n {
        h.ready(&format!("a{i}"));
        h.advance(secs(1));
    }
}

/// Answer the one offer in `out`, talk for `talk` s, hang up. Returns the
/// caller, the agent and what the hang-up produced (the next offer).
fn serve(h: &mut H, out: &[Output], talk: u64) -> (u64, String, Vec<Output>) {
    let (caller, agent) = h.answer_only_offer(out);
    h.advance(secs(talk));
    let next = h.end_call(&agent, caller, secs(talk));
    (caller, agent, next)
}

fn offered_agent(out: &[Output]) -> String {
    let o = offers(out);
    assert_eq!(o.len(), 1, "{out:#?}");
    o[0].2 .0.clone()
}

// ----- strategies -------------------------------------------------------------

#[test]
fn longest_idle_takes_the_agent_idle_longest() {
    let mut h = one_queue(Strategy::LongestIdle, 3);
    h.ready("a2");
    h.advance(secs(5));
    h.ready("a0");
    h.advance(secs(5));
    h.ready("a1");
    let out = h.enter(1, "q");
    assert_eq!(offered_agent(&out), "a2");
    let out = h.enter(2, "q");
    assert_eq!(offered_agent(&out), "a0");
}

#[test]
fn round_robin_rotates_through_agents() {
    let mut h = one_queue(Strategy::RoundRobin, 3);
    all_ready(&mut h, 3);
    let mut order = Vec::new();
    for c in 0..6 {
        let out = h.enter(c, "q");
        let (caller, agent, _) = serve(&mut h, &out, 10);
        assert_eq!(caller, c);
        order.push(agent);
    }
    assert_eq!(order, ["a0", "a1", "a2", "a0", "a1", "a2"]);
}

#[test]
fn ring_all_offers_everyone_and_cancels_the_others_on_answer() {
    let mut h = one_queue(Strategy::RingAll, 3);
    all_ready(&mut h, 3);
    let out = h.enter(1, "q");
    let o = offers(&out);
    assert_eq!(o.len(), 3);
    for s in ["a0", "a1", "a2"] {
        assert_eq!(h.status(s), AgentStatus::Offered);
    }
    // a1 answers first.
    let out = h.accept(o[1].0);
    let c = cancels(&out);
    let cancelled: Vec<&str> = c.iter().map(|(_, a)| a.0.as_str()).collect();
    assert_eq!(cancelled, ["a0", "a2"]);
    assert_eq!(h.status("a1"), AgentStatus::OnCall);
    assert_eq!(h.status("a0"), AgentStatus::Ready);
    assert_eq!(h.status("a2"), AgentStatus::Ready);
    // A late answer from a cancelled offer changes nothing.
    let out = h.accept(o[0].0);
    assert!(matches!(
        out[..],
        [Output::Ignored(AcdError::UnknownOffer(_))]
    ));
    assert_eq!(h.status("a0"), AgentStatus::Ready);
}

#[test]
fn fewest_calls_prefers_the_least_used_agent() {
    let mut h = one_queue(Strategy::FewestCalls, 2);
    all_ready(&mut h, 2);
    // a0 (idle longest) takes two calls in a row while a1 is on a break.
    h.not_ready("a1", "break");
    for c in 0..2 {
        let out = h.enter(c, "q");
        serve(&mut h, &out, 10);
    }
    h.ready("a1");
    h.advance(secs(60));
    // a0 has been idle longer, but a1 has fewer calls.
    let out = h.enter(10, "q");
    assert_eq!(offered_agent(&out), "a1");
}

#[test]
fn least_talk_time_prefers_the_agent_who_talked_least() {
    let mut h = one_queue(Strategy::LeastTalkTime, 2);
    all_ready(&mut h, 2);
    let o1 = offers(&h.enter(1, "q"))[0].0;
    let o2 = offers(&h.enter(2, "q"))[0].0;
    h.accept(o1);
    h.accept(o2);
    h.advance(secs(300));
    h.end_call("a0", 1, secs(300));
    h.advance(secs(100));
    h.end_call("a1", 2, secs(30));
    // a0 has been idle longer, but a1 talked less.
    let out = h.enter(3, "q");
    assert_eq!(offered_agent(&out), "a1");
}

#[test]
fn random_is_seeded_and_reproducible() {
    let run = |seed: u64| {
        let mut c = config(vec![queue("q", Strategy::Random)], agents(5));
        c.seed = seed;
        let mut h = H::new(c);
        all_ready(&mut h, 5);
        let mut picks = Vec::new();
        for i in 0..20 {
            let out = h.enter(i, "q");
            let (_, agent, _) = serve(&mut h, &out, 1);
            picks.push(agent);
        }
        picks
    };
    assert_eq!(run(1), run(1));
    let picks = run(1);
    let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
    assert!(distinct.len() >= 3, "{picks:?}");
    assert_ne!(run(1), run(2));
}

#[test]
fn best_skill_prefers_proficiency_then_idle_time() {
    let mut q = queue("q", Strategy::BestSkill);
    q.skills = vec![SkillRequirement::new("sales", 1)];
    let agents = vec![
        AgentConfig::new("a0").skill("sales", 2),
        AgentConfig::new("a1").skill("sales", 5),
        AgentConfig::new("a2").skill("sales", 5),
    ];
    let mut h = H::new(config(vec![q], agents));
    h.ready("a2");
    h.advance(secs(1));
    h.ready("a0");
    h.advance(secs(1));
    h.ready("a1");
    let out = h.enter(1, "q");
    // a1 and a2 are both 5; a2 has been idle longer.
    assert_eq!(offered_agent(&out), "a2");
    let out = h.enter(2, "q");
    assert_eq!(offered_agent(&out), "a1");
    let out = h.enter(3, "q");
    assert_eq!(offered_agent(&out), "a0");
}

// ----- skills, widening, priority, stickiness, attributes ----------------------------

#[test]
fn skills_and_proficiency_filter_agents() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.skills = vec![SkillRequirement::new("billing", 3)];
    let agents = vec![
        AgentConfig::new("low").skill("billing", 2),
        AgentConfig::new("none"),
        AgentConfig::new("good").skill("billing", 3),
    ];
    let mut h = H::new(config(vec![q], agents));
    h.ready("low");
    h.ready("none");
    let out = h.enter(1, "q");
    assert!(offers(&out).is_empty());
    let out = h.ready("good");
    assert_eq!(offered_agent(&out), "good");
    // A caller may lower the queue's minimum for themselves.
    let mut e = CallerEntry::new(CallerId(2), "q");
    e.skills = vec![SkillRequirement::new("billing", 2)];
    let out = h.enter_with(e);
    assert_eq!(offered_agent(&out), "low");
}

#[test]
fn widening_relaxes_the_pool_and_the_caller_keeps_its_place() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.skills = vec![SkillRequirement::new("spanish", 4)];
    q.widening = vec![
        WideningStep {
            after: secs(30),
            relax: vec![SkillRequirement::new("spanish", 2)],
            ..Default::default()
        },
        WideningStep {
            after: secs(60),
            drop: vec!["spanish".into()],
            ..Default::default()
        },
    ];
    let agents = vec![
        AgentConfig::new("basic").skill("spanish", 2),
        AgentConfig::new("general").skill("english", 5),
    ];
    let mut h = H::new(config(vec![q], agents));
    h.ready("basic");
    h.not_ready("basic", "lunch");
    h.ready("general");
    h.enter(1, "q");
    h.advance(secs(5));
    h.enter(2, "q");
    let out = h.advance(secs(30));
    // Step 1 at 30 s (caller 1): only `basic` would qualify, and is away.
    assert!(offers(&out).is_empty());
    assert!(events(&out).contains(&QueueEventKind::Widened { level: 1 }));
    let out = h.advance(secs(25));
    // 60 s: caller 1 drops the skill and takes `general`, ahead of caller 2.
    let o = offers(&out);
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].1, o[0].2 .0.as_str()), (CallerId(1), "general"));
    // `basic` comes back: caller 2 (relaxed at 35 s) takes them.
    let out = h.ready("basic");
    let o = offers(&out);
    assert_eq!((o[0].1, o[0].2 .0.as_str()), (CallerId(2), "basic"));
}

#[test]
fn widening_to_an_overflow_queue_uses_its_agents() {
    let mut sales = queue("sales", Strategy::LongestIdle);
    sales.skills = vec![SkillRequirement::new("sales", 1)];
    sales.widening = vec![WideningStep {
        after: secs(20),
        overflow_queues: vec!["support".into()],
        ..Default::default()
    }];
    let mut support = queue("support", Strategy::LongestIdle);
    support.skills = vec![SkillRequirement::new("support", 1)];
    let mut helper = AgentConfig::new("helper").skill("support", 3);
    helper.queues = Some(vec!["support".into()]);
    let mut h = H::new(config(vec![sales, support], vec![helper]));
    h.ready("helper");
    let out = h.enter(1, "sales");
    assert!(offers(&out).is_empty());
    let out = h.advance(secs(20));
    assert_eq!(offered_agent(&out), "helper");
}

#[test]
fn priority_orders_callers_and_set_priority_moves_one() {
    let mut h = one_queue(Strategy::LongestIdle, 1);
    for c in 1..=3 {
        h.enter(c, "q");
        h.advance(secs(1));
    }
    let mut vip = CallerEntry::new(CallerId(4), "q");
    vip.priority = 5;
    h.enter_with(vip);
    h.input(Input::SetPriority {
        caller: CallerId(3),
        priority: 2,
    });
    let mut served = Vec::new();
    let mut pending = h.ready("a0");
    for _ in 0..4 {
        let (c, _, next) = serve(&mut h, &pending, 5);
        served.push(c);
        pending = next;
    }
    assert_eq!(served, [4, 3, 1, 2]);
}

#[test]
fn priority_rules_add_to_the_callers_priority() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.priority_rules = vec![PriorityRule {
        when: BTreeMap::from([("vip".to_owned(), "true".to_owned())]),
        add: 10,
    }];
    let mut h = H::new(config(vec![q], agents(1)));
    h.enter(1, "q");
    let mut e = CallerEntry::new(CallerId(2), "q");
    e.attributes.insert("vip".into(), "true".into());
    let out = h.enter_with(e);
    let ev = events(&out);
    assert!(
        matches!(
            ev[0],
            QueueEventKind::Entered {
                priority: 10,
                position: 1,
                ..
            }
        ),
        "{ev:?}"
    );
    let out = h.ready("a0");
    assert_eq!(offers(&out)[0].1, CallerId(2));
}

#[test]
fn sticky_agent_is_preferred_when_ready() {
    let mut h = one_queue(Strategy::LongestIdle, 3);
    all_ready(&mut h, 3);
    let mut e = CallerEntry::new(CallerId(1), "q");
    e.last_agent = Some("a2".into());
    let out = h.enter_with(e);
    assert_eq!(offered_agent(&out), "a2");
}

#[test]
fn sticky_caller_waits_for_a_busy_agent_within_sticky_wait_then_anyone() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.sticky_wait = secs(20);
    let mut h = H::new(config(vec![q], agents(2)));
    h.ready("a0");
    let out = h.enter(1, "q");
    let (_, a) = h.answer_only_offer(&out);
    assert_eq!(a, "a0");
    h.ready("a1");
    // Caller 2's last agent is a0 (busy): held for a0, a1 stays ready.
    let mut e = CallerEntry::new(CallerId(2), "q");
    e.last_agent = Some("a0".into());
    let out = h.enter_with(e);
    assert!(offers(&out).is_empty());
    // A newer caller without history is served by a1 meanwhile.
    let out = h.enter(3, "q");
    assert_eq!(offers(&out)[0].1, CallerId(3));
    h.accept(offers(&out)[0].0);
    // a0 finishes within the window and gets caller 2.
    h.advance(secs(10));
    let out = h.end_call("a0", 1, secs(10));
    let o = offers(&out);
    assert_eq!((o[0].1, o[0].2 .0.as_str()), (CallerId(2), "a0"));

    // Same again, but the agent does not come back in time.
    let mut e = CallerEntry::new(CallerId(4), "q");
    e.last_agent = Some("a0".into());
    h.accept(o[0].0);
    let out = h.enter_with(e);
    assert!(offers(&out).is_empty());
    h.advance(secs(5));
    h.end_call("a1", 3, secs(15));
    // a1 is ready, but caller 4 is held for a0 until 20 s after entry.
    assert_eq!(h.status("a1"), AgentStatus::Ready);
    let out = h.advance(secs(15));
    let o = offers(&out);
    assert_eq!((o[0].1, o[0].2 .0.as_str()), (CallerId(4), "a1"));
}

#[test]
fn attributes_are_a_preference_among_eligible_agents() {
    let mut a0 = AgentConfig::new("a0");
    a0.attributes.insert("region".into(), "north".into());
    let mut a1 = AgentConfig::new("a1");
    a1.attributes.insert("region".into(), "south".into());
    let mut h = H::new(config(
        vec![queue("q", Strategy::LongestIdle)],
        vec![a0, a1],
    ));
    h.ready("a0");
    h.advance(secs(10));
    h.ready("a1");
    let mut e = CallerEntry::new(CallerId(1), "q");
    e.attributes.insert("region".into(), "south".into());
    let out = h.enter_with(e);
    // a0 is idle longer, but a1 matches.
    assert_eq!(offered_agent(&out), "a1");
    // With no match anywhere, the strategy decides.
    let mut e = CallerEntry::new(CallerId(2), "q");
    e.attributes.insert("region".into(), "east".into());
    let out = h.enter_with(e);
    assert_eq!(offered_agent(&out), "a0");
}

#[test]
fn agent_in_several_queues_takes_the_longest_weighted_wait() {
    let sales = queue("sales", Strategy::LongestIdle);
    let mut vip = queue("vip", Strategy::LongestIdle);
    vip.weight = 3.0;
    let mut h = H::new(config(vec![sales, vip], agents(1)));
    h.enter(1, "sales");
    h.advance(secs(20));
    h.enter(2, "vip");
    h.advance(secs(10));
    // sales caller: 30 s × 1; vip caller: 10 s × 3 = 30; tie → earlier place.
    let out = h.ready("a0");
    assert_eq!(offers(&out)[0].1, CallerId(1));
    let (offer, _, _) = offers(&out)[0].clone();
    h.accept(offer);
    h.enter(3, "sales");
    h.advance(secs(5));
    // vip 15 s × 3 = 45 beats sales 5 s × 1.
    let out = h.end_call("a0", 1, secs(5));
    assert_eq!(offers(&out)[0].1, CallerId(2));
}

// ----- offers: leases, misses, rejects ---------------------------------------------

#[test]
fn missed_offer_makes_agent_not_ready_caller_keeps_place_no_loop() {
    let mut h = one_queue(Strategy::LongestIdle, 2);
    h.ready("a0");
    h.enter(1, "q");
    h.enter(2, "q");
    let out = h.ready("a1");
    // Caller 1 went to a0 at once; caller 2 to a1.
    let o1 = offers(&out);
    assert_eq!(o1[0].1, CallerId(2));
    // a0's offer for caller 1: find it in the agent view.
    let view = h.acd.agent("a0").unwrap();
    assert_eq!(view.contact, Some(Contact::Caller(CallerId(1))));
    // a1 rejects caller 2 (busy): not ready("busy"), caller 2 back.
    let out = h.reject(o1[0].0, RejectReason::Busy);
    assert_eq!(h.status("a1"), AgentStatus::NotReady);
    assert_eq!(h.acd.agent("a1").unwrap().reason.as_deref(), Some("busy"));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::AgentChanged {
            state: AgentStatus::NotReady,
            ..
        }
    )));
    assert!(h.acd.is_waiting(Contact::Caller(CallerId(2))));
    // Caller 3 arrives after; caller 2 is still ahead.
    h.enter(3, "q");
    assert_eq!(
        h.acd.waiting("q")[1..],
        [Contact::Caller(CallerId(2)), Contact::Caller(CallerId(3))]
    );
    // a1 comes back: it is not offered caller 2 again, but caller 3.
    let out = h.ready("a1");
    assert_eq!(offers(&out)[0].1, CallerId(3));
}

#[test]
fn lease_expiry_counts_as_no_answer() {
    let mut h = one_queue(Strategy::LongestIdle, 2);
    h.ready("a0");
    let out = h.enter(1, "q");
    let (offer, _, _) = offers(&out)[0].clone();
    let lease = out.iter().find_map(|o| match o {
        Output::Offer { lease_until, .. } => Some(*lease_until),
        _ => None,
    });
    assert_eq!(lease, Some(h.now + secs(20)));
    let out = h.advance(secs(20));
    assert!(cancels(&out).iter().any(|(o, _)| *o == offer));
    assert!(events(&out).iter().any(|e| matches!(
        e,
        QueueEventKind::OfferRejected {
            reason: RejectReason::NoAnswer,
            ..
        }
    )));
    assert_eq!(h.status("a0"), AgentStatus::NotReady);
    assert_eq!(h.acd.agent("a0").unwrap().reason.as_deref(), Some("missed"));
    // The caller is back and goes to the next agent.
    let out = h.ready("a1");
    assert_eq!(offered_agent(&out), "a1");
}

#[test]
fn caller_leaving_while_ringing_cancels_the_offer() {
    let mut h = one_queue(Strategy::LongestIdle, 1);
    h.ready("a0");
    let out = h.enter(1, "q");
    let (offer, _, _) = offers(&out)[0].clone();
    h.advance(secs(8));
    let out = h.input(Input::CallerLeaves {
        caller: CallerId(1),
        reason: LeaveReason::Abandoned,
    });
    assert_eq!(cancels(&out), [(offer, "a0".into())]);
    assert_eq!(h.status("a0"), AgentStatus::Ready);
    let s = h.acd.queue_stats("q", h.now).unwrap();
    assert_eq!((s.abandoned, s.short_abandoned), (1, 0));
}

#[test]
fn wrap_up_delays_the_next_offer() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.wrap_up = secs(15);
    let mut h = H::new(config(vec![q], agents(1)));
    h.ready("a0");
    let out = h.enter(1, "q");
    h.answer_only_offer(&out);
    h.enter(2, "q");
    h.advance(secs(60));
    let out = h.end_call("a0", 1, secs(60));
    assert!(offers(&out).is_empty());
    assert_eq!(h.status("a0"), AgentStatus::WrapUp);
    let out = h.advance(secs(14));
    assert!(offers(&out).is_empty());
    let out = h.advance(secs(1));
    assert_eq!(offers(&out)[0].1, CallerId(2));
    // Handle time = talk + wrap-up.
    assert_eq!(h.acd.queue_stats("q", h.now).unwrap().aht, Some(secs(75)));
}

#[test]
fn agent_override_of_wrap_up_and_ready_ends_wrap_up_early() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.wrap_up = secs(60);
    let mut a = AgentConfig::new("a0");
    a.wrap_up = Some(secs(5));
    let mut h = H::new(config(vec![q], vec![a, AgentConfig::new("a1")]));
    h.ready("a0");
    let out = h.enter(1, "q");
    h.answer_only_offer(&out);
    h.end_call("a0", 1, secs(30));
    h.advance(secs(5));
    assert_eq!(h.status("a0"), AgentStatus::Ready);
    h.not_ready("a0", "break");
    h.ready("a1");
    let out = h.enter(2, "q");
    let (_, agent) = h.answer_only_offer(&out);
    assert_eq!(agent, "a1");
    h.end_call("a1", 2, secs(30));
    assert_eq!(h.status("a1"), AgentStatus::WrapUp);
    h.ready("a1");
    assert_eq!(h.status("a1"), AgentStatus::Ready);
}

#[test]
fn not_ready_during_a_call_applies_after_it() {
    let mut h = one_queue(Strategy::LongestIdle, 1);
    h.ready("a0");
    let out = h.enter(1, "q");
    h.answer_only_offer(&out);
    h.not_ready("a0", "lunch");
    assert_eq!(h.status("a0"), AgentStatus::OnCall);
    assert_eq!(
        h.acd.agent("a0").unwrap().pending,
        Some(AgentStateChange::NotReady("lunch".into()))
    );
    h.enter(2, "q");
    let out = h.end_call("a0", 1, secs(30));
    assert!(offers(&out).is_empty());
    assert_eq!(h.status("a0"), AgentStatus::NotReady);
    assert_eq!(h.acd.agent("a0").unwrap().reason.as_deref(), Some("lunch"));
}

#[test]
fn logout_while_ringing_returns_the_caller() {
    let mut h = one_queue(Strategy::LongestIdle, 2);
    h.ready("a0");
    let out = h.enter(1, "q");
    let (offer, _, _) = offers(&out)[0].clone();
    let out = h.input(Input::AgentState {
        agent: "a0".into(),
        state: AgentStateChange::LoggedOut,
    });
    assert_eq!(cancels(&out), [(offer, "a0".into())]);
    assert_eq!(h.status("a0"), AgentStatus::LoggedOut);
    let out = h.ready("a1");
    assert_eq!(offered_agent(&out), "a1");
}

// ----- overflow, announcements, stats ------------------------------------------------

#[test]
fn max_wait_overflows_and_max_length_refuses() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.max_wait = Some(secs(60));
    q.on_max_wait = OverflowTarget::Queue("other".into());
    q.max_length = Some(2);
    q.on_full = OverflowTarget::Voicemail;
    let mut h = H::new(config(
        vec![q, queue("other", Strategy::LongestIdle)],
        agents(1),
    ));
    h.enter(1, "q");
    h.advance(secs(10));
    h.enter(2, "q");
    let out = h.enter(3, "q");
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Overflow {
            caller: CallerId(3),
            to: OverflowTarget::Voicemail,
            reason: OverflowReason::QueueFull,
            ..
        }
    )));
    let out = h.advance(secs(50));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Overflow { caller: CallerId(1), reason: OverflowReason::MaxWait, to: OverflowTarget::Queue(n), .. } if n == "other"
    )));
    assert!(!h.acd.is_waiting(Contact::Caller(CallerId(1))));
    assert!(h.acd.is_waiting(Contact::Caller(CallerId(2))));
    assert_eq!(h.acd.queue_stats("q", h.now).unwrap().overflowed, 2);
}

#[test]
fn announcements_give_position_and_estimate_every_interval() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.announce_every = Some(secs(30));
    q.expected_handle_time = secs(120);
    q.callback = Some(CallbackSettings {
        offer_when_wait_over: secs(100),
        ..Default::default()
    });
    let mut h = H::new(config(vec![q], agents(1)));
    h.ready("a0");
    let out = h.enter(1, "q");
    h.answer_only_offer(&out);
    let out = h.enter(2, "q");
    let first = out.iter().find_map(|o| match o {
        Output::Announce {
            caller,
            position,
            estimate,
            ..
        } => Some((*caller, *position, *estimate)),
        _ => None,
    });
    let (caller, position, estimate) = first.expect("announcement at entry");
    assert_eq!((caller, position), (CallerId(2), 1));
    assert!(estimate.is_some());
    h.enter(3, "q");
    let out = h.advance(secs(30));
    let ann: Vec<(CallerId, usize, bool)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Announce {
                caller,
                position,
                offer_callback,
                ..
            } => Some((*caller, *position, *offer_callback)),
            _ => None,
        })
        .collect();
    assert_eq!(ann.len(), 2);
    assert_eq!((ann[0].0, ann[0].1), (CallerId(2), 1));
    assert_eq!((ann[1].0, ann[1].1), (CallerId(3), 2));
    // Caller 3 waits two handle times (≈ 2·120 s) → above 100 s: callback offered.
    assert!(ann[1].2);
}

#[test]
fn estimates_follow_position_and_staffing() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.expected_handle_time = secs(100);
    let mut h = H::new(config(vec![q], agents(2)));
    all_ready(&mut h, 2);
    for c in 0..2 {
        let out = h.enter(c, "q");
        h.answer_only_offer(&out);
    }
    for c in 2..8 {
        h.enter(c, "q");
    }
    let e: Vec<f64> = (2..8)
        .map(|c| {
            h.acd
                .estimate_wait(CallerId(c), h.now)
                .unwrap()
                .as_secs_f64()
        })
        .collect();
    assert!(e.windows(2).all(|w| w[0] < w[1]), "{e:?}");
    // Position 5 (0-based) with 2 agents, no history (memoryless, 100 s):
    // Gamma(6, 50 s) has median ≈ 283 s.
    assert!((230.0..340.0).contains(&e[5]), "{e:?}");
    assert_eq!(h.acd.caller_position(CallerId(7)), Some(6));
    assert_eq!(h.acd.estimate_wait(CallerId(99), h.now), None);
}

#[test]
fn service_level_abandons_and_ewt_error_follow_the_definitions() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.service_level = ServiceLevelTarget {
        fraction: 0.8,
        within: secs(20),
    };
    q.short_abandon = secs(5);
    let mut h = H::new(config(vec![q], agents(1)));
    h.ready("a0");
    // 1: answered at once.
    let out = h.enter(1, "q");
    h.answer_only_offer(&out);
    // 2: waits 30 s (answered late); 3: abandons after 3 s (short);
    // 4: abandons after 40 s.
    h.enter(2, "q");
    h.enter(3, "q");
    h.enter(4, "q");
    h.advance(secs(3));
    h.input(Input::CallerLeaves {
        caller: CallerId(3),
        reason: LeaveReason::Abandoned,
    });
    h.advance(secs(27));
    let out = h.end_call("a0", 1, secs(30));
    h.answer_only_offer(&out);
    h.advance(secs(10));
    h.input(Input::CallerLeaves {
        caller: CallerId(4),
        reason: LeaveReason::Abandoned,
    });
    let s = h.acd.queue_stats("q", h.now).unwrap();
    assert_eq!((s.entered, s.answered, s.answered_within_target), (4, 2, 1));
    assert_eq!((s.abandoned, s.short_abandoned), (1, 1));
    // 1 within ÷ (2 answered + 1 abandoned after threshold).
    assert!((s.service_level.unwrap() - 1.0 / 3.0).abs() < 1e-9);
    assert!((s.abandon_rate.unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(s.asa, Some(secs(15)));
    assert!(s.ewt_mae.is_some() && s.ewt_mae_relative.is_some());
    assert_eq!(s.agents.on_call, 1);
    h.acd.reset_stats();
    assert_eq!(h.acd.queue_stats("q", h.now).unwrap().entered, 0);
}

// ----- callbacks ----------------------------------------------------------------------

#[test]
fn a_flows_callback_threshold_overrides_the_queues_for_its_caller() {
    let mut q = queue("q", Strategy::LongestIdle);
    q.announce_every = Some(secs(30));
    q.expected_handle_time = secs(120);
    q.callback = Some(CallbackSettings {
        offer_when_wait_over: secs(600),
        ..Default::default()
    });
    let mut h = H::new(config(vec![q], agents(1)));
    h.ready("a0");
    let out = h.enter(1, "q");
    h.answer_only_offer(&out);
    let offered = |out: &[Output]| -> Vec<(CallerId, bool)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Announce {
                    caller,
                    offer_callback,
                    ..
                } => Some((*caller, *offer_callback)),
                _ => None,
            })
            .collect()
    };
    // The same wait (about one handle time): the queue's 10 minutes say no, the flow's
    // 1 minute says yes.
    let plain = h.enter(2, "q");
    assert_eq!(offered(&plain), [(CallerId(2), false)]);
    h.input(Input::CallerLeaves {
        caller: CallerId(2),
        reason: LeaveReason::Abandoned,
    });
    let mut e = CallerEntry::new(CallerId(3), "q");
    e.callback_after = Some(secs(60));
    let eager = h.enter_with(e);
    assert_eq!(offered(&eager), [(CallerId(3), true)]);
}

fn callback_queue() -> QueueConfig {
    let mut q = queue("q", Strategy::LongestIdle);
    q.callback = Some(CallbackSettings {
        offer_when_wait_over: secs(60),
        retry_delay: secs(120),
        max_attempts: 2,
        mode: CallbackMode::AgentFirst,
        attempt_timeout: secs(90),
    });
    q
}

fn start_callbacks(out: &[Output]) -> Vec<(CallbackId, String, u32)> {
    out.iter()
        .filter_map(|o| match o {
            Output::StartCallback {
                callback,
                agent,
                attempt,
                ..
            } => Some((*callback, agent.0.clone(), *attempt)),
            _ => None,
        })
        .collect()
}

fn persisted(out: &[Output]) -> Vec<PersistRecord> {
    out.iter()
        .filter_map(|o| match o {
            Output::Persist(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn callback_keeps_the_place_and_is_released_to_a_free_agent_only() {
    let mut h = H::new(config(vec![callback_queue()], agents(2)));
    h.enter(1, "q");
    h.advance(secs(5));
    h.enter(2, "q");
    h.advance(secs(5));
    let out = h.input(Input::RequestCallback {
        caller: CallerId(1),
        number: "+15550001".into(),
    });
    let cb = match &persisted(&out)[..] {
        [PersistRecord::SaveCallback(r)] => {
            assert_eq!(
                (r.attempts, r.number.as_str(), r.caller),
                (0, "+15550001", Some(CallerId(1)))
            );
            r.callback
        }
        other => panic!("{other:?}"),
    };
    assert!(!h.acd.is_waiting(Contact::Caller(CallerId(1))));
    assert_eq!(
        h.acd.waiting("q"),
        [Contact::Callback(cb), Contact::Caller(CallerId(2))]
    );
    assert_eq!(h.acd.queue_stats("q", h.now).unwrap().callbacks_pending, 1);
    // First free agent: the callback (it is ahead), one agent only.
    let out = h.ready("a0");
    assert_eq!(start_callbacks(&out), [(cb, "a0".to_owned(), 1)]);
    assert!(offers(&out).is_empty());
    assert_eq!(h.status("a0"), AgentStatus::OnCall);
    let out = h.ready("a1");
    assert_eq!(offers(&out)[0].1, CallerId(2));
    h.accept(offers(&out)[0].0);
    h.advance(secs(20));
    let out = h.input(Input::CallbackResult {
        callback: cb,
        outcome: CallbackOutcome::Connected,
    });
    assert!(events(&out).iter().any(
        |e| matches!(e, QueueEventKind::CallbackCompleted { waited, .. } if *waited == secs(20))
    ));
    assert!(persisted(&out).contains(&PersistRecord::CloseCallback {
        callback: cb,
        outcome: CallbackClosed::Completed
    }));
    h.input(Input::CallEnded {
        agent: "a0".into(),
        contact: Contact::Callback(cb),
        talk: secs(60),
    });
    assert_eq!(h.status("a0"), AgentStatus::Ready);
    let s = h.acd.queue_stats("q", h.now).unwrap();
    assert_eq!(
        (
            s.callbacks_requested,
            s.callbacks_completed,
            s.callbacks_pending
        ),
        (1, 1, 0)
    );
}

#[test]
fn callback_retries_after_a_delay_then_fails() {
    let mut h = H::new(config(vec![callback_queue()], agents(1)));
    h.enter(1, "q");
    h.input(Input::RequestCallback {
        caller: CallerId(1),
        number: "+1555".into(),
    });
    let out = h.ready("a0");
    let (cb, _, attempt) = start_callbacks(&out)[0].clone();
    assert_eq!(attempt, 1);
    let out = h.input(Input::CallbackResult {
        callback: cb,
        outcome: CallbackOutcome::Busy,
    });
    assert_eq!(h.status("a0"), AgentStatus::Ready);
    assert!(events(&out).iter().any(|e| matches!(
        e,
        QueueEventKind::CallbackAttemptFailed {
            attempt: 1,
            retry_at: Some(_),
            ..
        }
    )));
    assert!(
        matches!(&persisted(&out)[..], [PersistRecord::SaveCallback(r)] if r.attempts == 1 && r.not_before == h.now + secs(120))
    );
    // Not before the retry delay, even with a free agent.
    let out = h.advance(secs(119));
    assert!(start_callbacks(&out).is_empty());
    let out = h.advance(secs(1));
    assert_eq!(start_callbacks(&out)[0].2, 2);
    // The attempt times out (no result in 90 s) → counts as no answer → failed.
    let out = h.advance(secs(90));
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, QueueEventKind::CallbackFailed { attempts: 2 })));
    assert!(persisted(&out).contains(&PersistRecord::CloseCallback {
        callback: cb,
        outcome: CallbackClosed::Failed
    }));
    assert!(!h.acd.is_waiting(Contact::Callback(cb)));
    assert_eq!(h.status("a0"), AgentStatus::Ready);
    assert_eq!(h.acd.queue_stats("q", h.now).unwrap().callbacks_failed, 1);
}

#[test]
fn callbacks_are_never_released_beyond_free_agents() {
    let mut h = H::new(config(vec![callback_queue()], agents(2)));
    for c in 0..5 {
        h.enter(c, "q");
        h.input(Input::RequestCallback {
            caller: CallerId(c),
            number: format!("+1{c}"),
        });
    }
    let out = h.ready("a0");
    assert_eq!(start_callbacks(&out).len(), 1);
    let out = h.advance(secs(10));
    assert!(start_callbacks(&out).is_empty());
    let out = h.ready("a1");
    assert_eq!(start_callbacks(&out).len(), 1);
    assert_eq!(h.acd.queue_stats("q", h.now).unwrap().callbacks_pending, 5);
}

#[test]
fn scheduled_callback_waits_for_its_time() {
    let mut h = H::new(config(vec![callback_queue()], agents(1)));
    h.ready("a0");
    let at = h.now + secs(600);
    let out = h.input(Input::ScheduleCallback(ScheduledCallback {
        queue: "q".into(),
        number: "+1555".into(),
        at,
        priority: 0,
        skills: vec![],
        attributes: BTreeMap::new(),
        last_agent: None,
    }));
    assert_eq!(persisted(&out).len(), 1);
    let out = h.advance(secs(599));
    assert!(start_callbacks(&out).is_empty());
    let out = h.advance(secs(1));
    assert_eq!(start_callbacks(&out).len(), 1);
}

#[test]
fn restore_after_restart_keeps_places_attempts_and_delays() {
    let cfg = config(vec![callback_queue()], agents(1));
    let mut h = H::new(cfg.clone());
    h.enter(1, "q");
    h.advance(secs(10));
    h.enter(2, "q");
    h.advance(secs(10));
    let mut store: BTreeMap<CallbackId, CallbackRecord> = BTreeMap::new();
    let keep = |out: &[Output], store: &mut BTreeMap<CallbackId, CallbackRecord>| {
        for p in persisted(out) {
            match p {
                PersistRecord::SaveCallback(r) => {
                    store.insert(r.callback, r);
                }
                PersistRecord::CloseCallback { callback, .. } => {
                    store.remove(&callback);
                }
            }
        }
    };
    let out = h.input(Input::RequestCallback {
        caller: CallerId(2),
        number: "+2".into(),
    });
    keep(&out, &mut store);
    let out = h.input(Input::RequestCallback {
        caller: CallerId(1),
        number: "+1".into(),
    });
    keep(&out, &mut store);
    // One attempt on the first (caller 1's, ahead), busy → retry in 120 s.
    let out = h.ready("a0");
    keep(&out, &mut store);
    let (first, _, _) = start_callbacks(&out)[0].clone();
    let out = h.input(Input::CallbackResult {
        callback: first,
        outcome: CallbackOutcome::Busy,
    });
    keep(&out, &mut store);
    // The second goes out now; the server crashes during it.
    let out = h.drain();
    keep(&out, &mut store);
    assert_eq!(store.len(), 2);

    // Restart: a new core, same configuration, records from the store.
    let mut h2 = H::new(cfg);
    h2.now = h.now + secs(30);
    let records: Vec<CallbackRecord> = store.values().cloned().collect();
    h2.acd.restore_callbacks(h2.now, records);
    let ids: Vec<Contact> = h2.acd.waiting("q");
    assert_eq!(ids.len(), 2);
    // Caller 1's callback keeps its place ahead of caller 2's.
    assert_eq!(ids[0], Contact::Callback(first));
    let out = h2.ready("a0");
    // The first is in its retry delay: the second goes out (again).
    let started = start_callbacks(&out);
    assert_eq!(started.len(), 1);
    assert_ne!(started[0].0, first);
    h2.input(Input::CallbackResult {
        callback: started[0].0,
        outcome: CallbackOutcome::Connected,
    });
    h2.input(Input::CallEnded {
        agent: "a0".into(),
        contact: Contact::Callback(started[0].0),
        talk: secs(10),
    });
    let out = h2.advance(secs(90));
    let again = start_callbacks(&out);
    assert_eq!((again[0].0, again[0].2), (first, 2));
    // New ids continue after the restored ones.
    h2.enter(9, "q");
    let id = h2
        .acd
        .request_callback(h2.now, CallerId(9), "+9".into())
        .unwrap();
    assert!(id.0 > first.0.max(started[0].0 .0));
}

#[test]
fn unknown_things_are_ignored_with_a_reason() {
    let mut h = one_queue(Strategy::LongestIdle, 1);
    let out = h.enter(1, "nope");
    assert_eq!(
        out,
        [Output::Ignored(AcdError::UnknownQueue("nope".into()))]
    );
    let out = h.ready("ghost");
    assert_eq!(
        out,
        [Output::Ignored(AcdError::UnknownAgent("ghost".into()))]
    );
    h.enter(1, "q");
    let out = h.enter(1, "q");
    assert_eq!(
        out,
        [Output::Ignored(AcdError::DuplicateCaller(CallerId(1)))]
    );
    let out = h.input(Input::RequestCallback {
        caller: CallerId(1),
        number: "+1".into(),
    });
    assert_eq!(
        out,
        [Output::Ignored(AcdError::CallbacksDisabled("q".into()))]
    );
    let out = h.end_call("a0", 1, secs(1));
    assert_eq!(out, [Output::Ignored(AcdError::NotOnCall("a0".into()))]);
}

#[test]
fn queue_events_are_numbered_in_sequence() {
    let mut h = one_queue(Strategy::LongestIdle, 1);
    let mut all = h.enter(1, "q");
    all.extend(h.ready("a0"));
    let (offer, _, _) = offers(&all)[0].clone();
    all.extend(h.accept(offer));
    let seqs: Vec<u64> = all
        .iter()
        .filter_map(|o| match o {
            Output::QueueEvent(e) => Some(e.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    let kinds = events(&all);
    assert!(matches!(kinds[0], QueueEventKind::Entered { .. }));
    assert!(matches!(kinds[1], QueueEventKind::Offered { .. }));
    assert!(matches!(kinds[2], QueueEventKind::Answered { .. }));
    assert_eq!(h.acd.next_timeout().map(|(_, r)| r), None);
}
