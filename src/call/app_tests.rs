//! IVR and queue calls in the call core, on simulated time: what the flow asks of the
//! runtime, prompts counted through barge-in, offers to agents that ring out, late answers
//! of cancelled agent legs.

use super::tests::*;
use super::*;
use crate::acd::{AcdConfig, AgentStateChange, AgentStatus};
use crate::ivr::{Flows, Known, Prompt};
use crate::sip::auth;
use crate::sip::message::{Message, Method, Request};
use std::path::PathBuf;

const FLOW: &str = r#"
name: test
start: answer
steps:
  answer:
    type: answer
    next: hello
  hello:
    type: play
    prompt: "Hello."
    next: ask
  ask:
    type: menu
    prompt: "Press 1 for the queue, 2 to hear this again."
    barge_in: true
    speech: true
    timeout: 3s
    retries: 1
    choices:
      queue:
        dtmf: "1"
        phrases: [queue]
        next: to_queue
      again:
        dtmf: "2"
        phrases: [again]
        next: ask
    default: bye
  to_queue:
    type: queue
    queue: q
  bye:
    type: hangup
"#;

const CONTACT_CENTRE: &str = r#"
queues:
  - { name: q, strategy: longest-idle, wrap_up: 2s, ring_timeout: 2s, announce_every: 30s, callback: { offer_when_wait_over: 1m, retry_delay: 5s, max_attempts: 2, mode: agent-first } }
agents:
  - { id: "1001", name: A, extension: "1001", api_token: test-token-1001-abcdef }
  - { id: "1002", name: B, extension: "1002", api_token: test-token-1002-abcdef }
"#;

fn flows() -> Flows {
    let known = Known {
        queues: ["q".to_string()].into(),
        ..Default::default()
    };
    let (flows, errors) =
        crate::ivr::load_flow_sources(&[(PathBuf::from("test.yaml"), FLOW.into())], &known);
    assert!(errors.is_empty(), "{errors:?}");
    flows
}

fn contact_centre() -> AcdConfig {
    AcdConfig::from_yaml("cc.yaml", CONTACT_CENTRE).expect("contact centre")
}

fn setup(t0: Instant) -> (Switch, RecordedMedia, RecordedApps) {
    setup_with(t0, contact_centre())
}

fn setup_with(t0: Instant, cc: AcdConfig) -> (Switch, RecordedMedia, RecordedApps) {
    let media = RecordedMedia::default();
    let apps = RecordedApps::default();
    let sw = switch_full(t0, "", media.clone(), apps.clone(), flows(), cc);
    (sw, media, apps)
}

/// Registers `ext` (password secretEXT) with its phone at `port`.
fn register(sw: &mut Switch, now: Instant, ext: &str, port: u16) {
    let reg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:switchboard.local SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKreg{ext}{cseq}\nFrom: <sip:{ext}@switchboard.local>;tag=r{ext}\nTo: <sip:{ext}@switchboard.local>\nCall-ID: reg-{ext}\nCSeq: {cseq} REGISTER\nContact: <sip:{ext}@127.0.0.1:{port}>\n{auth}Expires: 60\nContent-Length: 0\n\n"
        )
    };
    send(sw, now, port, &reg(1, ""));
    let out = drain(sw);
    let challenge = responses(&out, port)[0]
        .headers
        .get(&HeaderName::WwwAuthenticate)
        .unwrap()
        .to_string();
    let ch = auth::parse_digest(&challenge).unwrap();
    let pw = format!("secret{ext}");
    let a = auth::authorization_header(&ch, "REGISTER", "sip:switchboard.local", ext, &pw, "c1", 1)
        .unwrap();
    send(sw, now, port, &reg(2, &format!("Authorization: {a}\n")));
    assert_eq!(responses(&drain(sw), port)[0].status, 200);
}

fn ready(sw: &mut Switch, now: Instant, agent: &str) {
    let token = format!("test-token-{agent}-abcdef");
    let s = sw
        .set_agent_state(now, agent, Some(&token), AgentStateChange::Ready)
        .unwrap();
    assert_eq!(s, AgentStatus::Ready);
}

fn status(sw: &Switch, agent: &str) -> (AgentStatus, Option<String>) {
    let v = sw.agents().into_iter().find(|a| a.id.0 == agent).unwrap();
    (v.status, v.reason)
}

/// The caller's leg id (the first media leg of the call).
fn caller_leg(media: &RecordedMedia) -> LegId {
    media
        .log()
        .commands
        .iter()
        .find_map(|c| match c {
            MediaCommand::Configure { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("caller leg configured")
}

fn plays(apps: &RecordedApps) -> Vec<Prompt> {
    apps.log()
        .into_iter()
        .filter_map(|r| match r {
            AppRequest::Play { prompt, .. } => Some(prompt),
            _ => None,
        })
        .collect()
}

/// Runs the switch's timers from `from` to `to` in 100 ms steps.
fn advance(sw: &mut Switch, from: Instant, to: Instant) -> Vec<(u16, Message)> {
    let mut out = vec![];
    let mut t = from;
    while t < to {
        t += Duration::from_millis(100);
        if sw.poll_timeout().is_some_and(|d| d <= t) {
            sw.handle_timeout(t);
        }
        out.extend(drain(sw));
    }
    out
}

#[test]
fn a_flow_answers_plays_and_queues_on_a_dtmf_choice() {
    let t0 = Instant::now();
    let (mut sw, media, apps) = setup(t0);
    send_msg(
        &mut sw,
        t0,
        5080,
        &invite_from_trunk("101", &sdp(6000, &[0, 101], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert!(responses(&out, 5080).iter().any(|r| r.status == 200));
    let leg = caller_leg(&media);
    assert_eq!(plays(&apps), [Prompt::Tts("Hello.".into())]);
    // The greeting ends; the menu prompt plays and the call listens for speech too.
    sw.handle_media_event(
        t0,
        MediaEvent::PlayFinished {
            leg,
            interrupted: false,
        },
    );
    assert_eq!(plays(&apps).len(), 2);
    assert!(apps.log().iter().any(|r| matches!(
        r,
        AppRequest::Listen {
            grammar: Some(_),
            ..
        }
    )));
    // Key 1 (the engine stops the barge-in prompt and reports it interrupted).
    sw.handle_media_event(
        t0,
        MediaEvent::Dtmf {
            leg,
            digit: '1',
            inband: false,
        },
    );
    sw.handle_media_event(
        t0,
        MediaEvent::PlayFinished {
            leg,
            interrupted: true,
        },
    );
    let summary = sw.call_summaries(t0).pop().unwrap();
    assert_eq!(summary.flow.as_deref(), Some("queue q"));
    assert_eq!(summary.queue.as_deref(), Some("q"));
    assert_eq!(summary.inputs, ["pressed 1"]);
    // Speech listening stopped; hold music loops.
    let log = apps.log();
    assert!(matches!(
        log.iter()
            .rev()
            .find(|r| matches!(r, AppRequest::Listen { .. })),
        Some(AppRequest::Listen { grammar: None, .. })
    ));
    assert!(log.iter().any(|r| matches!(
        r,
        AppRequest::Play { looped: true, prompt: Prompt::File(f), .. } if f == DEFAULT_HOLD_MUSIC
    )));
    let q = &sw.queues(t0)[0];
    assert_eq!((q.queue.as_str(), q.waiting), ("q", 1));
}

#[test]
fn speech_barges_in_and_every_queued_prompt_is_finished_once() {
    let t0 = Instant::now();
    let (mut sw, media, apps) = setup(t0);
    send_msg(
        &mut sw,
        t0,
        5080,
        &invite_from_trunk("101", &sdp(6000, &[0, 101], "sendrecv")),
    );
    drain(&mut sw);
    let leg = caller_leg(&media);
    // Both prompts queued at once would be finished by one interrupted report: here the
    // greeting completes, then the caller starts speaking over the menu prompt.
    sw.handle_media_event(
        t0,
        MediaEvent::PlayFinished {
            leg,
            interrupted: false,
        },
    );
    sw.handle_app_input(t0, AppInput::SpeechStarted { leg });
    assert!(apps
        .log()
        .iter()
        .any(|r| matches!(r, AppRequest::StopPlay { leg: l } if *l == leg)));
    sw.handle_media_event(
        t0,
        MediaEvent::PlayFinished {
            leg,
            interrupted: true,
        },
    );
    sw.handle_app_input(
        t0,
        AppInput::Speech {
            leg,
            text: "again".into(),
            confidence: 0.9,
        },
    );
    // "again" replays the menu: a third prompt, and the run still listens.
    assert_eq!(plays(&apps).len(), 3);
    let summary = sw.call_summaries(t0).pop().unwrap();
    assert_eq!(summary.flow.as_deref(), Some("test/ask"));
    // No input after it: retry, then the default hangs up.
    sw.handle_media_event(
        t0,
        MediaEvent::PlayFinished {
            leg,
            interrupted: false,
        },
    );
    let out = advance(&mut sw, t0, t0 + Duration::from_secs(4));
    assert!(requests(&out, 5080, Method::Bye).is_empty());
    sw.handle_media_event(
        t0 + Duration::from_secs(4),
        MediaEvent::PlayFinished {
            leg,
            interrupted: false,
        },
    );
    let out = advance(
        &mut sw,
        t0 + Duration::from_secs(4),
        t0 + Duration::from_secs(9),
    );
    assert!(
        !requests(&out, 5080, Method::Bye).is_empty(),
        "the default hangs up"
    );
}

#[test]
fn an_agent_who_rings_out_is_not_ready_the_next_answers_and_a_late_answer_is_hung_up() {
    let t0 = Instant::now();
    let (mut sw, _media, _apps) = setup(t0);
    register(&mut sw, t0, "1001", 5071);
    register(&mut sw, t0, "1002", 5072);
    ready(&mut sw, t0, "1001");
    let t1 = t0 + Duration::from_millis(100);
    ready(&mut sw, t1, "1002");
    send_msg(
        &mut sw,
        t1,
        5080,
        &invite_from_trunk("201", &sdp(6000, &[0, 101], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert!(responses(&out, 5080).iter().any(|r| r.status == 200));
    // 1001 has been idle longest: its phone rings.
    let inv1: Request = requests(&out, 5071, Method::Invite)
        .pop()
        .expect("1001 rung");
    send_msg(&mut sw, t1, 5071, &reply(&inv1, 180, "a1", 5071, ""));
    assert_eq!(status(&sw, "1001").0, AgentStatus::Offered);
    // Its lease (2 s) runs out: CANCEL, and 1002 rings.
    let out = advance(&mut sw, t1, t1 + Duration::from_millis(2500));
    assert!(!requests(&out, 5071, Method::Cancel).is_empty());
    assert_eq!(
        status(&sw, "1001"),
        (AgentStatus::NotReady, Some("missed".into()))
    );
    let inv2 = requests(&out, 5072, Method::Invite)
        .pop()
        .expect("1002 rung");
    let t2 = t1 + Duration::from_millis(2500);
    send_msg(
        &mut sw,
        t2,
        5072,
        &reply(&inv2, 200, "a2", 5072, &sdp(7000, &[0], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert_eq!(requests(&out, 5072, Method::Ack).len(), 1);
    assert_eq!(status(&sw, "1002").0, AgentStatus::OnCall);
    // 1001's phone answers anyway, after the CANCEL: ACKed and hung up, not bridged.
    send_msg(
        &mut sw,
        t2,
        5071,
        &reply(&inv1, 200, "a1", 5071, &sdp(7100, &[0], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert_eq!(requests(&out, 5071, Method::Ack).len(), 1);
    assert_eq!(requests(&out, 5071, Method::Bye).len(), 1);
    let summary = sw.call_summaries(t2).pop().unwrap();
    assert_eq!(summary.agent.as_deref(), Some("1002"));
    // The caller hangs up: 1002 wraps up, then is ready again.
    let bye = with_body(
        "BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye201\nFrom: \"Carol\" <sip:+15551234@carrier>;tag=c1\nTo: <sip:201@127.0.0.1>;tag=TAG\nCall-ID: call-201\nCSeq: 2 BYE",
        "",
    );
    let tag = {
        let out = &out;
        let _ = out;
        sw.calls
            .values()
            .next()
            .map(|c| c.a.local_tag.clone())
            .unwrap()
    };
    let bye = String::from_utf8(bye).unwrap().replace("TAG", &tag);
    send_msg(&mut sw, t2, 5080, bye.as_bytes());
    let out = drain(&mut sw);
    assert_eq!(requests(&out, 5072, Method::Bye).len(), 1);
    assert_eq!(status(&sw, "1002").0, AgentStatus::WrapUp);
    advance(&mut sw, t2, t2 + Duration::from_millis(2500));
    assert_eq!(status(&sw, "1002").0, AgentStatus::Ready);
}

#[test]
fn ring_all_rings_every_ready_agent_the_first_answer_wins_and_the_others_are_cancelled() {
    let cc = CONTACT_CENTRE.replace("strategy: longest-idle", "strategy: ring-all")
        + r#"  - { id: "1003", name: C, extension: "1003", api_token: test-token-1003-abcdef }
"#;
    let cc = AcdConfig::from_yaml("cc.yaml", &cc).expect("contact centre");
    let t0 = Instant::now();
    let (mut sw, media, _apps) = setup_with(t0, cc);
    let phones = [5071u16, 5072, 5073];
    for (ext, port) in ["1001", "1002", "1003"].iter().zip(phones) {
        register(&mut sw, t0, ext, port);
        ready(&mut sw, t0, ext);
    }
    let t1 = t0 + Duration::from_millis(100);
    send_msg(
        &mut sw,
        t1,
        5080,
        &invite_from_trunk("201", &sdp(6000, &[0, 101], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert!(responses(&out, 5080).iter().any(|r| r.status == 200));
    // Every phone rings, with the same offer and the caller's number.
    let invites: Vec<(u16, Request)> = out
        .iter()
        .filter_map(|(p, m)| match m {
            Message::Request(r) if r.method == Method::Invite => Some((*p, r.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(invites.len(), 3, "{invites:?}");
    assert_eq!(invites[0].1.body, invites[1].1.body);
    assert_eq!(invites[1].1.body, invites[2].1.body);
    let agent_of = |port: u16| ["1001", "1002", "1003"][(port - 5071) as usize];
    for (_, inv) in &invites {
        assert!(inv
            .headers
            .get(&HeaderName::From)
            .unwrap()
            .contains("+15551234"));
    }
    let [(busy_port, busy), (slow_port, slow), (win_port, win)] = invites.try_into().unwrap();
    for p in phones {
        assert_eq!(status(&sw, agent_of(p)).0, AgentStatus::Offered);
    }
    // The first phone (the B leg) is busy: the others go on ringing.
    send_msg(
        &mut sw,
        t1,
        busy_port,
        &reply(&busy, 486, "x1", busy_port, ""),
    );
    send_msg(
        &mut sw,
        t1,
        slow_port,
        &reply(&slow, 180, "x2", slow_port, ""),
    );
    let out = drain(&mut sw);
    assert!(requests(&out, slow_port, Method::Cancel).is_empty());
    assert_ne!(status(&sw, agent_of(busy_port)).0, AgentStatus::Offered);
    assert_eq!(status(&sw, agent_of(slow_port)).0, AgentStatus::Offered);
    // The third answers first: it is ACKed and bridged, the ringing one is cancelled.
    let t2 = t1 + Duration::from_millis(300);
    send_msg(
        &mut sw,
        t2,
        win_port,
        &reply(&win, 200, "x3", win_port, &sdp(7300, &[0], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert_eq!(requests(&out, win_port, Method::Ack).len(), 1);
    assert_eq!(requests(&out, slow_port, Method::Cancel).len(), 1);
    assert_eq!(status(&sw, agent_of(win_port)).0, AgentStatus::OnCall);
    assert_eq!(status(&sw, agent_of(slow_port)).0, AgentStatus::Ready);
    let summary = sw.call_summaries(t2).pop().unwrap();
    assert_eq!(summary.agent.as_deref(), Some(agent_of(win_port)));
    // The winner's answer went to the media leg the offer came from.
    assert!(media.log().commands.iter().any(|c| matches!(
        c,
        MediaCommand::Configure { params, .. } if params.remote.is_some_and(|r| r.port() == 7300)
    )));
    // The cancelled phone answers anyway: ACKed and hung up.
    send_msg(
        &mut sw,
        t2,
        slow_port,
        &reply(&slow, 200, "x2", slow_port, &sdp(7200, &[0], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert_eq!(requests(&out, slow_port, Method::Ack).len(), 1);
    assert_eq!(requests(&out, slow_port, Method::Bye).len(), 1);
    // The agent hangs up: the caller is released, the agent wraps up.
    let tag = sw
        .calls
        .values()
        .next()
        .unwrap()
        .b
        .as_ref()
        .unwrap()
        .local_tag
        .clone();
    let call_id = sw
        .calls
        .values()
        .next()
        .unwrap()
        .b
        .as_ref()
        .unwrap()
        .call_id
        .clone();
    let bye = format!(
        "BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:{win_port};branch=z9hG4bKbyeagent\nFrom: <sip:{a}@127.0.0.1>;tag=x3\nTo: <sip:+15551234@switchboard.local>;tag={tag}\nCall-ID: {call_id}\nCSeq: 1 BYE\nContent-Length: 0\n\n",
        a = agent_of(win_port)
    );
    send_msg(&mut sw, t2, win_port, bye.as_bytes());
    let out = drain(&mut sw);
    assert!(responses(&out, win_port).iter().any(|r| r.status == 200));
    assert_eq!(requests(&out, 5080, Method::Bye).len(), 1);
    assert_eq!(status(&sw, agent_of(win_port)).0, AgentStatus::WrapUp);
}

#[test]
fn an_agent_whose_registration_ends_is_logged_out() {
    let t0 = Instant::now();
    let (mut sw, _media, _apps) = setup(t0);
    register(&mut sw, t0, "1001", 5071);
    ready(&mut sw, t0, "1001");
    advance(&mut sw, t0, t0 + Duration::from_secs(62));
    assert_eq!(status(&sw, "1001").0, AgentStatus::LoggedOut);
}

#[test]
fn a_scheduled_callback_rings_the_agent_first_at_its_time_and_priority_changes_need_a_waiting_caller(
) {
    let t0 = Instant::now();
    let (mut sw, _media, apps) = setup(t0);
    register(&mut sw, t0, "1001", 5071);
    ready(&mut sw, t0, "1001");
    let at = sw.local_time(t0) + Duration::from_secs(2);
    assert!(sw.schedule_callback(t0, "nope", "+15551234", at).is_err());
    assert!(sw.schedule_callback(t0, "q", "not a number", at).is_err());
    sw.schedule_callback(t0, "q", "+15551234", at).unwrap();
    let out = advance(&mut sw, t0, t0 + Duration::from_millis(1500));
    assert!(
        requests(&out, 5071, Method::Invite).is_empty(),
        "not before its time"
    );
    let out = advance(
        &mut sw,
        t0 + Duration::from_millis(1500),
        t0 + Duration::from_millis(2600),
    );
    let inv = requests(&out, 5071, Method::Invite)
        .pop()
        .expect("the agent is rung");
    let t = t0 + Duration::from_millis(2600);
    send_msg(
        &mut sw,
        t,
        5071,
        &reply(&inv, 200, "ag", 5071, &sdp(7000, &[0], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert_eq!(requests(&out, 5071, Method::Ack).len(), 1);
    // The agent hears who is called back.
    assert!(plays(&apps)
        .iter()
        .any(|p| matches!(p, Prompt::Tts(t) if t.starts_with("Callback for 1 5 5 5 1 2 3 4"))));
    // Priority: only for a caller waiting in a queue.
    assert!(sw.set_priority(t, 999, 5).is_err());
    send_msg(
        &mut sw,
        t,
        5080,
        &invite_from_trunk("201", &sdp(6000, &[0, 101], "sendrecv")),
    );
    drain(&mut sw);
    let caller = sw
        .call_summaries(t)
        .into_iter()
        .find(|c| c.called == "201")
        .unwrap();
    sw.set_priority(t, caller.id, 7).unwrap();
}

#[test]
fn a_customer_first_callback_calls_the_customer_then_rings_the_agent_showing_the_number() {
    let cc = CONTACT_CENTRE.replace("mode: agent-first", "mode: customer-first");
    let cc = AcdConfig::from_yaml("cc.yaml", &cc).expect("contact centre");
    let t0 = Instant::now();
    let (mut sw, _media, apps) = setup_with(t0, cc);
    register(&mut sw, t0, "1001", 5071);
    ready(&mut sw, t0, "1001");
    let at = sw.local_time(t0) + Duration::from_secs(1);
    sw.schedule_callback(t0, "q", "+15551234", at).unwrap();
    let out = advance(&mut sw, t0, t0 + Duration::from_millis(1200));
    assert!(
        requests(&out, 5071, Method::Invite).is_empty(),
        "agent not first"
    );
    // The customer is called through the trunk (127.0.0.1:5090).
    let inv = requests(&out, 5090, Method::Invite)
        .pop()
        .expect("the customer is called first");
    assert!(inv.uri.to_string().contains("15551234"), "{}", inv.uri);
    let t = t0 + Duration::from_millis(1200);
    send_msg(
        &mut sw,
        t,
        5090,
        &reply(&inv, 200, "cu", 5090, &sdp(7000, &[0], "sendrecv")),
    );
    let out = drain(&mut sw);
    assert_eq!(requests(&out, 5090, Method::Ack).len(), 1);
    assert!(
        requests(&out, 5071, Method::Invite).is_empty(),
        "greeting first"
    );
    assert!(plays(&apps)
        .iter()
        .any(|p| matches!(p, Prompt::Tts(t) if t.contains("call back you asked for"))));
    // The greeting ends: the agent's phone rings, showing the customer's number.
    let customer_leg = sw.calls.values().next().unwrap().media.legs[0]
        .as_ref()
        .unwrap()
        .id;
    sw.handle_media_event(
        t,
        MediaEvent::PlayFinished {
            leg: customer_leg,
            interrupted: false,
        },
    );
    let out = drain(&mut sw);
    let agent_inv = requests(&out, 5071, Method::Invite)
        .pop()
        .expect("the agent is rung second");
    assert!(agent_inv
        .headers
        .get(&HeaderName::From)
        .unwrap()
        .contains("+15551234"));
    // The agent does not answer (busy): the customer hears an apology; the attempt fails
    // and is retried later (max 2 attempts, 5 s apart).
    send_msg(&mut sw, t, 5071, &reply(&agent_inv, 486, "ag", 5071, ""));
    drain(&mut sw);
    assert!(plays(&apps)
        .iter()
        .any(|p| matches!(p, Prompt::Tts(t) if t.contains("could not connect you"))));
    let q = sw.queues(t).into_iter().find(|q| q.queue == "q").unwrap();
    assert_eq!(q.callbacks_pending, 1, "{q:?}");
    sw.handle_media_event(
        t,
        MediaEvent::PlayFinished {
            leg: customer_leg,
            interrupted: false,
        },
    );
    let out = drain(&mut sw);
    assert_eq!(
        requests(&out, 5090, Method::Bye).len(),
        1,
        "customer hung up"
    );
    // Second attempt: customer, greeting, agent answers: connected.
    let t2 = t + Duration::from_millis(5500);
    ready(&mut sw, t2, "1001");
    let out = advance(&mut sw, t, t2 + Duration::from_millis(200));
    let inv = requests(&out, 5090, Method::Invite)
        .pop()
        .expect("the customer is called again");
    let t3 = t2 + Duration::from_millis(200);
    send_msg(
        &mut sw,
        t3,
        5090,
        &reply(&inv, 200, "cu2", 5090, &sdp(7002, &[0], "sendrecv")),
    );
    drain(&mut sw);
    let call = sw
        .calls
        .values()
        .find(|c| c.state == CallState::Answered)
        .unwrap();
    let leg = call.media.legs[0].as_ref().unwrap().id;
    sw.handle_media_event(
        t3,
        MediaEvent::PlayFinished {
            leg,
            interrupted: false,
        },
    );
    let out = drain(&mut sw);
    let agent_inv = requests(&out, 5071, Method::Invite).pop().expect("agent");
    send_msg(
        &mut sw,
        t3,
        5071,
        &reply(&agent_inv, 200, "ag2", 5071, &sdp(7100, &[0], "sendrecv")),
    );
    drain(&mut sw);
    assert_eq!(status(&sw, "1001").0, AgentStatus::OnCall);
    let q = sw.queues(t3).into_iter().find(|q| q.queue == "q").unwrap();
    assert_eq!(
        (q.callbacks_pending, q.callbacks_completed),
        (0, 1),
        "{q:?}"
    );
}

#[test]
fn a_waiting_caller_keys_another_callback_number_and_keeps_its_place() {
    let t0 = Instant::now();
    let (mut sw, media, apps) = setup(t0);
    send_msg(
        &mut sw,
        t0,
        5080,
        &invite_from_trunk("201", &sdp(6000, &[0, 101], "sendrecv")),
    );
    drain(&mut sw);
    let leg = caller_leg(&media);
    // Nobody can serve the caller: the entry announcement offers a callback.
    assert!(plays(&apps)
        .iter()
        .any(|p| matches!(p, Prompt::Tts(t) if t.contains("press 2"))));
    let key = |sw: &mut Switch, d: char| {
        sw.handle_media_event(
            t0,
            MediaEvent::Dtmf {
                leg,
                digit: d,
                inband: false,
            },
        )
    };
    key(&mut sw, '2');
    assert!(plays(&apps)
        .iter()
        .any(|p| matches!(p, Prompt::Tts(t) if t.contains("country code"))));
    // Too short: asked again; then a full number.
    for d in "123#".chars() {
        key(&mut sw, d);
    }
    assert!(plays(&apps)
        .iter()
        .any(|p| matches!(p, Prompt::Tts(t) if t.starts_with("That is not a full number"))));
    for d in "442071234567#".chars() {
        key(&mut sw, d);
    }
    assert!(plays(&apps).iter().any(
        |p| matches!(p, Prompt::Tts(t) if t.contains("call you back at 4 4 2 0 7 1 2 3 4 5 6 7"))
    ));
    let q = &sw.queues(t0)[0];
    assert_eq!((q.waiting, q.callbacks_pending), (0, 1));
    // The music the confirmation cut short does not hang up; the confirmation's end does.
    sw.handle_media_event(
        t0,
        MediaEvent::PlayFinished {
            leg,
            interrupted: true,
        },
    );
    assert!(requests(&drain(&mut sw), 5080, Method::Bye).is_empty());
    sw.handle_media_event(
        t0,
        MediaEvent::PlayFinished {
            leg,
            interrupted: false,
        },
    );
    assert_eq!(requests(&drain(&mut sw), 5080, Method::Bye).len(), 1);
}

#[test]
fn a_waiting_caller_says_call_me_back_and_the_callback_is_booked() {
    let t0 = Instant::now();
    let (mut sw, media, apps) = setup(t0);
    send_msg(
        &mut sw,
        t0,
        5080,
        &invite_from_trunk("201", &sdp(6000, &[0, 101], "sendrecv")),
    );
    drain(&mut sw);
    let leg = caller_leg(&media);
    // The offer is made, and the caller's speech is listened to for it.
    let listens = |apps: &RecordedApps| -> Vec<bool> {
        apps.log()
            .into_iter()
            .filter_map(|r| match r {
                AppRequest::Listen { leg: l, grammar } if l == leg => Some(grammar.is_some()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(listens(&apps), [true]);
    let taps = |media: &RecordedMedia| -> Vec<bool> {
        media
            .log()
            .commands
            .iter()
            .filter_map(|c| match c {
                MediaCommand::Listen { leg: l, on } if *l == leg => Some(*on),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        taps(&media),
        [true],
        "the engine hands the recogniser audio"
    );
    let say = |sw: &mut Switch, text: &str, confidence: f32| {
        sw.handle_app_input(
            t0,
            AppInput::Speech {
                leg,
                text: text.into(),
                confidence,
            },
        )
    };
    // Unsure or unrelated speech books nothing.
    say(&mut sw, "call me back", 0.1);
    say(&mut sw, "what is the weather", 0.9);
    assert_eq!(sw.queues(t0)[0].callbacks_pending, 0);
    say(&mut sw, "please call me back", 0.8);
    let q = &sw.queues(t0)[0];
    assert_eq!((q.waiting, q.callbacks_pending), (0, 1));
    assert!(plays(&apps)
        .iter()
        .any(|p| matches!(p, Prompt::Tts(t) if t.contains("call you back at 1 5 5 5 1 2 3 4"))));
    // Listening stopped with the booking.
    assert_eq!(listens(&apps), [true, false]);
    assert_eq!(taps(&media), [true, false]);
}
