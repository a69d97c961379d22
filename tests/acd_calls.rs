//! Queues and agents through a real `switchboard` process, with SIPp as callers and as the
//! agents' softphones (each agent a SIPp UAS registered as its extension).
//!
//! The contact centre here is the demo's with short timers (wrap-up 3 s, ring timeout 3 s),
//! so the tests see ring-no-answer and wrap-up within seconds.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const CONTACT_CENTRE: &str = r#"
queues:
  - { name: billing, strategy: best-skill, skills: { billing: 2 }, wrap_up: 3s, ring_timeout: 3s, service_level: 80% in 20s, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: support, strategy: longest-idle, skills: { technical: 2 }, wrap_up: 3s, ring_timeout: 3s, service_level: 80% in 20s, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: rated, strategy: longest-idle, skills: { technical: 2 }, wrap_up: 1s, ring_timeout: 3s, survey_flow: csat }
  - { name: callme, strategy: longest-idle, skills: { technical: 2 }, wrap_up: 1s, ring_timeout: 5s, announce_every: 30s, callback: { offer_when_wait_over: 0s, retry_delay: 2s, max_attempts: 2, mode: agent-first } }
  - { name: sales, strategy: round-robin, skills: { sales: 2 }, wrap_up: 3s, ring_timeout: 3s, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: agents, strategy: longest-idle, wrap_up: 3s, ring_timeout: 3s, callback: { offer_when_wait_over: 2m, retry_delay: 2m, max_attempts: 2, mode: agent-first } }
  - { name: custfirst, strategy: longest-idle, skills: { technical: 2 }, wrap_up: 1s, ring_timeout: 5s, callback: { offer_when_wait_over: 0s, retry_delay: 2s, max_attempts: 2, mode: customer-first } }
  - { name: everyone, strategy: ring-all, skills: { technical: 2 }, wrap_up: 3s, ring_timeout: 5s }
agents:
  - { id: "1001", name: Ana, extension: "1001", skills: { billing: 5 }, api_token: test-only-token-1001 }
  - { id: "1003", name: Chloe, extension: "1003", skills: { technical: 4 }, api_token: test-only-token-1003 }
  - { id: "1004", name: Dev, extension: "1004", skills: { technical: 5 }, api_token: test-only-token-1004 }
"#;

fn contact_centre(dir: &TempDir) -> PathBuf {
    let path = dir.join("contact-centre.yaml");
    std::fs::write(&path, CONTACT_CENTRE).unwrap();
    path
}

fn password(user: &str) -> String {
    format!("secret{user}")
}

/// A SIPp softphone for `agent`, registered, running `scenario` for `calls` calls.
fn agent_phone(
    sw: &Switchboard,
    dir: &TempDir,
    agent: &str,
    scenario: &str,
    calls: u64,
) -> SippProc {
    let uas = start_uas(
        dir,
        &format!("agent-{agent}"),
        scenario,
        calls,
        &[],
        Transport::Udp,
    );
    register(sw, dir, agent, &password(agent), uas.port);
    uas
}

fn set_state(sw: &Switchboard, agent: &str, state: &str) {
    let (status, body) = http_post(
        sw.http_port,
        &format!("/api/v1/agents/{agent}/state"),
        Some(&format!("test-only-token-{agent}")),
        &format!(r#"{{"state":"{state}"}}"#),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
}

fn agent_json(sw: &Switchboard, agent: &str) -> serde_json::Value {
    api_item(sw, "/api/v1/agents", "id", agent)
}

fn calls(sw: &Switchboard) -> Vec<serde_json::Value> {
    let (_, body) = http_get(sw.http_port, "/api/v1/calls").unwrap();
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Which agent answered each call to `number`, oldest first.
fn agents_of_calls(sw: &Switchboard, number: &str) -> Vec<String> {
    calls(sw)
        .iter()
        .filter(|c| c["called"] == number)
        .map(|c| c["agent"].as_str().unwrap_or("-").to_string())
        .collect()
}

/// One caller dialling the support queue (200), holding `hold_ms` after the answer.
fn queue_caller(sw: &Switchboard, dir: &TempDir, name: &str, hold_ms: u64) -> SippRun {
    uac(name, "uac_call.xml", sw, "200", 1)
        .args(["-d", &hold_ms.to_string()])
        .timeout(Duration::from_secs(30))
        .run(dir)
}

/// A caller to the support queue who stays on the line 8 s (Switchboard answers at once
/// and plays the queue); returns the agent who took the call (the `nth` to the queue), how
/// long after the caller dialled, and the caller (still on the line).
fn caller_answered_by_agent(
    sw: &Switchboard,
    dir: &TempDir,
    name: &str,
    nth: usize,
) -> (String, Duration, SippProc) {
    let t = Instant::now();
    let caller = uac(name, "uac_call.xml", sw, "200", 1)
        .args(["-d", "8000"])
        .timeout(Duration::from_secs(30))
        .spawn(dir);
    let deadline = t + Duration::from_secs(8);
    let (agent, waited) = loop {
        let agents = agents_of_calls(sw, "200");
        if let Some(a) = agents.get(nth - 1).filter(|a| *a != "-") {
            break (a.clone(), t.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "no agent took {name}: {agents:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (agent, waited, caller)
}

#[test]
fn callers_go_to_the_longest_idle_agent_and_wrap_up_delays_the_next_offer() {
    let _g = serial();
    let dir = TempDir::new("acd-order");
    let sw = Switchboard::start_ivr(Some(&contact_centre(&dir)));
    let dev = agent_phone(&sw, &dir, "1004", "uas_answer.xml", 2);
    let chloe = agent_phone(&sw, &dir, "1003", "uas_answer.xml", 1);
    // Dev is ready first, so Dev has been idle longest.
    set_state(&sw, "1004", "ready");
    std::thread::sleep(Duration::from_millis(300));
    set_state(&sw, "1003", "ready");

    queue_caller(&sw, &dir, "caller-1", 1000).assert_ok(Some(1));
    // Dev is in wrap-up (3 s): Chloe takes the next caller at once.
    let (agent, waited, caller2) = caller_answered_by_agent(&sw, &dir, "caller-2", 2);
    assert_eq!(
        (agent.as_str(), waited < Duration::from_secs(1)),
        ("1003", true)
    );
    // Chloe talking, Dev in wrap-up: the third caller hears the queue until Dev is free.
    let (agent, waited, caller3) = caller_answered_by_agent(&sw, &dir, "caller-3", 3);
    assert_eq!(agent, "1004");
    assert!(
        waited > Duration::from_millis(1500),
        "answered by an agent after {waited:?}: wrap-up ignored"
    );
    caller2.wait_for(Duration::from_secs(30)).assert_ok(Some(1));
    caller3.wait_for(Duration::from_secs(30)).assert_ok(Some(1));
    assert_eq!(agents_of_calls(&sw, "200"), ["1004", "1003", "1004"]);
    dev.wait_for(Duration::from_secs(20)).assert_ok(Some(2));
    chloe.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    let support = queue_json(&sw, "support");
    assert_eq!(support["answered"], 3, "{support}");
    assert_eq!(support["waiting"], 0, "{support}");
}

#[test]
fn an_agent_who_does_not_answer_becomes_not_ready_and_another_serves_the_caller() {
    let _g = serial();
    let dir = TempDir::new("acd-missed");
    let sw = Switchboard::start_ivr(Some(&contact_centre(&dir)));
    // Dev's phone rings until cancelled; Chloe's answers.
    let dev = agent_phone(&sw, &dir, "1004", "uas_ring.xml", 1);
    let chloe = agent_phone(&sw, &dir, "1003", "uas_answer.xml", 1);
    set_state(&sw, "1004", "ready");
    std::thread::sleep(Duration::from_millis(300));
    set_state(&sw, "1003", "ready");

    let (agent, waited, caller) = caller_answered_by_agent(&sw, &dir, "caller", 1);
    assert_eq!(agent, "1003");
    assert!(
        waited > Duration::from_secs(3),
        "Dev rang for the ring timeout"
    );
    caller.wait_for(Duration::from_secs(30)).assert_ok(Some(1));
    dev.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    chloe.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    assert_eq!(agents_of_calls(&sw, "200"), ["1003"]);
    let dev = agent_json(&sw, "1004");
    assert_eq!(dev["state"], "not_ready", "{dev}");
    assert_eq!(dev["reason"], "missed", "{dev}");
}

#[test]
fn ring_all_rings_every_agent_at_once_and_cancels_the_others_when_one_answers() {
    let _g = serial();
    let dir = TempDir::new("acd-ring-all");
    let sw = Switchboard::start_ivr_with(
        Some(&contact_centre(&dir)),
        &[],
        &[r#"- { number: "301", to: { queue: everyone } }"#],
    );
    // Dev has been idle longest, but his phone only rings; Chloe's answers after 1 s.
    let dev = agent_phone(&sw, &dir, "1004", "uas_ring.xml", 1);
    let chloe = agent_phone(&sw, &dir, "1003", "uas_answer_late.xml", 1);
    set_state(&sw, "1004", "ready");
    std::thread::sleep(Duration::from_millis(300));
    set_state(&sw, "1003", "ready");

    let t = Instant::now();
    let caller = uac("caller", "uac_call.xml", &sw, "301", 1)
        .args(["-d", "3000"])
        .timeout(Duration::from_secs(30))
        .spawn(&dir);
    let waited = loop {
        if agents_of_calls(&sw, "301")
            .first()
            .is_some_and(|a| a == "1003")
        {
            break t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", calls(&sw));
        std::thread::sleep(Duration::from_millis(20));
    };
    // Both rang together: Chloe answered well before Dev's ring timeout (5 s).
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    // Dev's phone got its CANCEL (its scenario ends with it) and Dev is still ready.
    dev.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    assert_eq!(agent_json(&sw, "1004")["state"], "ready");
    caller.wait_for(Duration::from_secs(30)).assert_ok(Some(1));
    chloe.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    assert_eq!(agents_of_calls(&sw, "301"), ["1003"]);
}

#[test]
fn a_caller_goes_back_to_their_last_agent_even_after_a_restart() {
    let _g = serial();
    let dir = TempDir::new("acd-sticky");
    let mut sw = Switchboard::start_ivr(Some(&contact_centre(&dir)));
    let chloe = agent_phone(&sw, &dir, "1003", "uas_answer.xml", 2);
    let dev = start_uas(&dir, "agent-1004", "uas_answer.xml", 1, &[], Transport::Udp);
    set_state(&sw, "1003", "ready");
    queue_caller(&sw, &dir, "caller-1", 500).assert_ok(Some(1));
    assert_eq!(agents_of_calls(&sw, "200"), ["1003"]);
    // The call record (with its agent) is stored; Switchboard is killed and comes back.
    std::thread::sleep(Duration::from_millis(300));
    sw.kill_and_restart();
    register(&sw, &dir, "1004", &password("1004"), dev.port);
    register(&sw, &dir, "1003", &password("1003"), chloe.port);
    // Dev is ready first (idle longest), but the caller's last agent was Chloe.
    set_state(&sw, "1004", "ready");
    std::thread::sleep(Duration::from_millis(300));
    set_state(&sw, "1003", "ready");
    queue_caller(&sw, &dir, "caller-2", 500).assert_ok(Some(1));
    assert_eq!(agents_of_calls(&sw, "200"), ["1003"]);
    chloe.wait_for(Duration::from_secs(20)).assert_ok(Some(2));
    // Dev's phone was never rung: its scenario still waits for a call.
    drop(dev);
}

#[test]
fn registrations_and_agent_states_survive_a_sigkill() {
    let _g = serial();
    let dir = TempDir::new("acd-restart-agents");
    let mut sw = Switchboard::start_ivr(Some(&contact_centre(&dir)));
    let dev = agent_phone(&sw, &dir, "1004", "uas_answer.xml", 1);
    let _chloe = agent_phone(&sw, &dir, "1003", "uas_answer.xml", 1);
    set_state(&sw, "1004", "ready");
    let (status, body) = http_post(
        sw.http_port,
        "/api/v1/agents/1003/state",
        Some("test-only-token-1003"),
        r#"{"state":"not_ready","reason":"lunch"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // Registrations are stored within a second.
    std::thread::sleep(Duration::from_millis(1500));
    sw.kill_and_restart();
    let dev_state = agent_json(&sw, "1004");
    assert_eq!(dev_state["state"], "ready", "{dev_state}");
    let chloe_state = agent_json(&sw, "1003");
    assert_eq!(
        (&chloe_state["state"], &chloe_state["reason"]),
        (&"not_ready".into(), &"lunch".into()),
        "{chloe_state}"
    );
    // Nobody registers again: Dev's phone is reached through the restored binding.
    queue_caller(&sw, &dir, "caller", 500).assert_ok(Some(1));
    assert_eq!(agents_of_calls(&sw, "200"), ["1004"]);
    dev.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
}

#[test]
fn a_dtmf_choice_in_the_ivr_reaches_an_agent_with_the_skill() {
    let _g = serial();
    let dir = TempDir::new("acd-ivr");
    let sw = Switchboard::start_ivr(Some(&contact_centre(&dir)));
    let ana = agent_phone(&sw, &dir, "1001", "uas_answer.xml", 1);
    let dev = agent_phone(&sw, &dir, "1004", "uas_answer.xml", 1);
    set_state(&sw, "1004", "ready");
    set_state(&sw, "1001", "ready");
    // Chloe (a known customer) hears her greeting and the menu, and presses 1 (billing)
    // with SIPp's RFC 4733 capture.
    uac("ivr-caller", "uac_ivr_dtmf.xml", &sw, "100", 1)
        .args(["-key", "caller", "15551230003", "-d", "5000"])
        .timeout(Duration::from_secs(40))
        .run(&dir)
        .assert_ok(Some(1));
    ana.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    let call = calls(&sw)
        .into_iter()
        .rev()
        .find(|c| c["called"] == "100")
        .unwrap();
    assert_eq!(call["flow"], "queue billing", "{call}");
    assert_eq!(call["agent"], "1001", "{call}");
    assert_eq!(call["inputs"], serde_json::json!(["pressed 1"]), "{call}");
    // Dev (technical only) was never offered the billing caller.
    assert_eq!(agent_json(&sw, "1004")["state"], "ready");
    drop(dev);
}

#[test]
fn agents_change_state_with_feature_codes_and_the_api_checks_tokens() {
    let _g = serial();
    let dir = TempDir::new("acd-codes");
    let sw = Switchboard::start_ivr(Some(&contact_centre(&dir)));
    let csv = register_csv(&dir, "dev", "1004", &password("1004"), 5099);
    for (code, state) in [
        ("*21", "ready"),
        ("*22", "not_ready"),
        ("*23", "logged_out"),
    ] {
        uac(
            &format!("code{}", &code[1..]),
            "uac_feature.xml",
            &sw,
            code,
            1,
        )
        .args(["-inf", &csv.display().to_string()])
        .args(["-auth_uri", "switchboard.local"])
        .timeout(Duration::from_secs(20))
        .run(&dir)
        .assert_ok(Some(1));
        assert_eq!(agent_json(&sw, "1004")["state"], state, "after {code}");
    }
    // The API wants the agent's own token.
    let (status, _) = http_post(
        sw.http_port,
        "/api/v1/agents/1004/state",
        Some("test-only-token-1003"),
        r#"{"state":"ready"}"#,
    )
    .unwrap();
    assert_eq!(status, 403);
    let (status, body) = http_post(
        sw.http_port,
        "/api/v1/agents/1004/state",
        Some("test-only-token-1004"),
        r#"{"state":"dancing"}"#,
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("dancing"), "{body}");
    let (status, _) = http_post(
        sw.http_port,
        "/api/v1/agents/9999/state",
        None,
        r#"{"state":"ready"}"#,
    )
    .unwrap();
    assert_eq!(status, 404);
}

#[test]
fn a_callback_keeps_its_place_through_a_sigkill_and_reaches_the_customer_through_the_trunk() {
    let _g = serial();
    let dir = TempDir::new("acd-callback");
    let cc = contact_centre(&dir);
    let mut sw = Switchboard::start_ivr_with(
        Some(&cc),
        &[],
        &[r#"- { number: "300", to: { queue: callme } }"#],
    );
    // No agent is ready: the caller hears its position, the wait and the offer, presses 1,
    // hears the confirmation and is hung up.
    uac("caller", "uac_callback.xml", &sw, "300", 1)
        .args(["-key", "caller", "+15557654", "-d", "2500"])
        .timeout(Duration::from_secs(40))
        .run(&dir)
        .assert_ok(Some(1));
    let queue = |sw: &Switchboard| queue_json(sw, "callme");
    assert_eq!(queue(&sw)["callbacks_pending"], 1, "{}", queue(&sw));
    // Switchboard dies without a chance to save anything, and comes back.
    sw.kill_and_restart();
    assert_eq!(queue(&sw)["callbacks_pending"], 1, "{}", queue(&sw));
    // The customer's line is the demo trunk's far end (127.0.0.1:5090); it answers and
    // hangs up after 2 s. The agent's phone answers, hears the whisper, then the customer.
    let mut customer = Sipp::new("customer", "uas_bye.xml");
    customer.port = 5090;
    let customer = customer
        .args(["-m", "1", "-d", "2000"])
        .timeout(Duration::from_secs(60))
        .spawn(&dir);
    customer.wait_ready();
    let agent = agent_phone(&sw, &dir, "1004", "uas_answer.xml", 1);
    set_state(&sw, "1004", "ready");
    customer
        .wait_for(Duration::from_secs(40))
        .assert_ok(Some(1));
    agent.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    let q = queue(&sw);
    assert_eq!(q["callbacks_pending"], 0, "{q}");
    assert_eq!(q["callbacks_completed"], 1, "{q}");
    let cb = calls(&sw)
        .into_iter()
        .rev()
        .find(|c| c["called"] == "1004")
        .unwrap();
    assert!(
        cb["codecs"]["callee"].is_string(),
        "the customer was bridged: {cb}"
    );
}

#[test]
fn a_customer_first_callback_calls_the_customer_through_the_trunk_then_bridges_an_agent() {
    let _g = serial();
    let dir = TempDir::new("acd-customer-first");
    let sw = Switchboard::start_ivr(Some(&contact_centre(&dir)));
    // The customer (the trunk's far end) answers, hears the greeting, talks, hangs up.
    let mut customer = Sipp::new("customer", "uas_bye.xml");
    customer.port = 5090;
    let customer = customer
        .args(["-m", "1", "-d", "9000"])
        .timeout(Duration::from_secs(60))
        .spawn(&dir);
    customer.wait_ready();
    let agent = agent_phone(&sw, &dir, "1004", "uas_answer.xml", 1);
    set_state(&sw, "1004", "ready");
    let (status, body) = http_post(
        sw.http_port,
        "/api/v1/callbacks",
        None,
        r#"{"queue":"custfirst","number":"+15557654"}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    customer
        .wait_for(Duration::from_secs(40))
        .assert_ok(Some(1));
    agent.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    let q = queue_json(&sw, "custfirst");
    assert_eq!(q["callbacks_completed"], 1, "{q}");
    assert_eq!(q["callbacks_pending"], 0, "{q}");
    let all = calls(&sw);
    let cb = all
        .iter()
        .find(|c| c["codecs"]["callee"].is_string())
        .unwrap_or_else(|| panic!("no bridged callback: {all:?}"));
    assert!(
        cb["called"].as_str().unwrap().contains("15557654"),
        "the customer is the first leg: {cb}"
    );
}

#[test]
fn after_the_agent_hangs_up_the_caller_rates_the_call_and_the_score_is_stored() {
    let _g = serial();
    let dir = TempDir::new("acd-survey");
    let sw = Switchboard::start_ivr_with(
        Some(&contact_centre(&dir)),
        &[],
        &[r#"- { number: "301", to: { queue: rated } }"#],
    );
    // The agent answers and hangs up after 1.5 s.
    let uas = start_uas(
        &dir,
        "agent-1004",
        "uas_bye.xml",
        1,
        &["-d", "1500"],
        Transport::Udp,
    );
    register(&sw, &dir, "1004", &password("1004"), uas.port);
    set_state(&sw, "1004", "ready");
    // The caller stays on, presses 4 (SIPp's RFC 4733 capture) in the survey, and is
    // thanked and hung up.
    uac("caller", "uac_survey.xml", &sw, "301", 1)
        .args(["-key", "caller", "+15550001111", "-d", "3500"])
        .timeout(Duration::from_secs(40))
        .run(&dir)
        .assert_ok(Some(1));
    uas.wait_for(Duration::from_secs(20)).assert_ok(Some(1));
    let call = calls(&sw)
        .into_iter()
        .rev()
        .find(|c| c["called"] == "301")
        .unwrap();
    assert_eq!(call["survey"], "4", "{call}");
    assert_eq!(call["agent"], "1004", "{call}");
    assert_eq!(call["queue"], "rated", "{call}");
    // The record is in the database too.
    let db = rusqlite::Connection::open(sw.dir.join("data").join("switchboard.db")).unwrap();
    let (survey, agent, queue): (String, String, String) = db
        .query_row(
            "SELECT survey, agent, queue FROM calls WHERE called = '301'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (survey.as_str(), agent.as_str(), queue.as_str()),
        ("4", "1004", "rated")
    );
}
