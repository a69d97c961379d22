//! The sans-IO interpreter driven by hand: barge-in, retries, timeouts, stale
//! answers, calls between flows.
mod ivr_support;

use std::path::PathBuf;
use std::time::Duration;

use switchboard::ivr::{
    load_flow_sources, Action, CallInfo, Channel, Event, FlowRun, Flows, LocalDateTime, Outcome,
    Prompt, TimerKind, Variables,
};

fn flows(sources: &[(&str, &str)]) -> Flows {
    let sources: Vec<(PathBuf, String)> = sources
        .iter()
        .map(|(f, t)| (PathBuf::from(f), (*t).to_owned()))
        .collect();
    let (flows, errors) = load_flow_sources(&sources, &ivr_support::known());
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{}", text.join("\n"));
    flows
}

fn t0() -> LocalDateTime {
    "2026-11-23T09:00".parse().unwrap()
}

fn vars() -> Variables {
    Variables::for_call(&CallInfo {
        caller_number: "+15550100001".into(),
        caller_name: "Ann".into(),
        called_number: "+15550000100".into(),
        channel: Channel::Trunk("carrier".into()),
    })
}

/// Drain the actions, dropping logs.
fn drain(run: &mut FlowRun) -> Vec<Action> {
    std::iter::from_fn(|| run.poll_output())
        .filter(|a| !matches!(a, Action::Log { .. }))
        .collect()
}

fn tts(text: &str, barge_in: bool) -> Action {
    Action::Play {
        prompt: Prompt::Tts(text.into()),
        barge_in,
    }
}

const MENU: &str = r#"
name: m
start: ask
steps:
  ask:
    type: menu
    prompt: "Say billing or press 1."
    retries: 1
    no_input: "Nothing heard."
    no_match: "Not understood."
    into: reason
    choices:
      billing: { dtmf: "1", phrases: [billing, pay my bill], next: thanks }
      agent: { dtmf: "0", phrases: [agent, speak to an agent, representative], next: bye }
    default: bye
  thanks:
    type: play
    prompt: "Thanks, ${reason}."
    next: bye
  bye:
    type: hangup
"#;

#[test]
fn barge_in_takes_the_choice_and_stale_prompt_end_is_absorbed() {
    let flows = flows(&[("m.yaml", MENU)]);
    let mut run = FlowRun::start(&flows, "m", vars(), t0()).unwrap();
    let actions = drain(&mut run);
    assert_eq!(actions[0], tts("Say billing or press 1.", true));
    assert!(matches!(actions[1], Action::Listen { .. }));
    // No timer while the prompt plays: the no-input clock starts after it.
    assert_eq!(run.poll_timeout(), None);

    let t = t0() + Duration::from_secs(1);
    run.handle(t, Event::Dtmf('1'));
    assert_eq!(
        drain(&mut run),
        [Action::StopListening, tts("Thanks, billing.", false)]
    );
    // The runtime stopped the interrupted prompt and reports it finished:
    // that must not end the new prompt.
    run.handle(t, Event::PromptFinished);
    assert_eq!(drain(&mut run), []);
    assert_eq!(run.position().1, "thanks");
    run.handle(t, Event::PromptFinished);
    assert_eq!(drain(&mut run), [Action::Hangup]);
    assert_eq!(run.outcome(), Some(&Outcome::HungUp));
    assert_eq!(run.variables().get("reason"), Some("billing"));
    assert_eq!(run.inputs(), ["pressed 1"]);
}

#[test]
fn speech_matches_by_phrase_and_low_confidence_is_no_match() {
    let flows = flows(&[("m.yaml", MENU)]);
    let mut run = FlowRun::start(&flows, "m", vars(), t0()).unwrap();
    drain(&mut run);
    run.handle(t0(), Event::PromptFinished);
    run.handle(
        t0(),
        Event::Speech {
            text: "agent".into(),
            confidence: 0.2,
        },
    );
    // Retry: the no-match prompt, then the question again.
    let actions = drain(&mut run);
    assert_eq!(actions[0], tts("Not understood.", true));
    run.handle(t0(), Event::PromptFinished);
    assert_eq!(drain(&mut run), [tts("Say billing or press 1.", true)]);
    run.handle(t0(), Event::PromptFinished);
    run.handle(
        t0(),
        Event::Speech {
            text: "I want to speak to an agent".into(),
            confidence: 0.8,
        },
    );
    assert_eq!(drain(&mut run), [Action::StopListening, Action::Hangup]);
    assert_eq!(run.variables().get("reason"), Some("agent"));
}

#[test]
fn no_input_retries_then_default() {
    let flows = flows(&[("m.yaml", MENU)]);
    let mut run = FlowRun::start(&flows, "m", vars(), t0()).unwrap();
    drain(&mut run);
    run.handle(t0(), Event::PromptFinished);
    let (deadline, kind) = run.poll_timeout().unwrap();
    assert_eq!(kind, TimerKind::NoInput);
    assert_eq!(deadline, t0() + Duration::from_secs(5));
    // An early timeout does nothing.
    run.handle(t0() + Duration::from_secs(1), Event::Timeout);
    assert_eq!(drain(&mut run), []);
    run.handle(deadline, Event::Timeout);
    assert_eq!(drain(&mut run)[0], tts("Nothing heard.", true));
    run.handle(deadline, Event::PromptFinished);
    assert_eq!(drain(&mut run), [tts("Say billing or press 1.", true)]);
    run.handle(deadline, Event::PromptFinished);
    let (deadline, _) = run.poll_timeout().unwrap();
    run.handle(deadline, Event::Timeout);
    assert_eq!(drain(&mut run), [Action::StopListening, Action::Hangup]);
    assert_eq!(run.variables().get("reason"), Some(""));
    assert_eq!(run.inputs(), ["no input", "no input"]);
}

const COLLECT: &str = r##"
name: c
start: ask
steps:
  ask:
    type: collect
    prompt: "Account number?"
    barge_in: false
    into: account
    digits: { min: 4, max: 6, terminator: "#" }
    inter_digit_timeout: 2s
    retries: 1
    no_match: "Four to six digits, please."
    next: check
    default: bye
  check:
    type: http
    method: POST
    url: "http://127.0.0.1:8080/api/accounts"
    body: { account: "${account}", from: "${caller.number}" }
    timeout: 1s
    set: { owner: owner.name }
    on_success: hello
    on_failure: again
  again:
    type: http
    url: "http://127.0.0.1:8080/api/accounts/${account}"
    set: { owner: /owner/name }
    on_success: hello
    on_failure: bye
  hello:
    type: play
    prompt: "Hello ${owner}."
    next: bye
  bye:
    type: hangup
"##;

#[test]
fn collect_digits_then_http_with_timeout_and_stale_answer() {
    let flows = flows(&[("c.yaml", COLLECT)]);
    let mut run = FlowRun::start(&flows, "c", vars(), t0()).unwrap();
    assert_eq!(drain(&mut run), [tts("Account number?", false)]);
    // Not interruptible: keys during the prompt are ignored.
    run.handle(t0(), Event::Dtmf('9'));
    run.handle(t0(), Event::PromptFinished);
    assert!(matches!(drain(&mut run)[..], [Action::Listen { .. }]));
    for k in ['1', '2'] {
        run.handle(t0(), Event::Dtmf(k));
    }
    assert_eq!(run.poll_timeout().unwrap().1, TimerKind::InterDigit);
    // Too short when the caller stops typing: no-match prompt, then the question.
    run.handle(t0() + Duration::from_secs(2), Event::Timeout);
    assert_eq!(drain(&mut run), [tts("Four to six digits, please.", false)]);
    run.handle(t0(), Event::PromptFinished);
    assert_eq!(drain(&mut run), [tts("Account number?", false)]);
    run.handle(t0(), Event::PromptFinished);
    drain(&mut run);
    for k in "4242#".chars() {
        run.handle(t0(), Event::Dtmf(k));
    }
    let actions = drain(&mut run);
    assert_eq!(actions[0], Action::StopListening);
    let Action::Http { id, url, body, .. } = &actions[1] else {
        panic!("expected http, got {actions:?}")
    };
    assert_eq!(url, "http://127.0.0.1:8080/api/accounts");
    assert_eq!(
        body.as_deref(),
        Some(r#"{"account":"4242","from":"+15550100001"}"#)
    );
    let first = *id;
    // The backend is slow: the step times out and the failure branch runs.
    let (deadline, kind) = run.poll_timeout().unwrap();
    assert_eq!(kind, TimerKind::Http);
    run.handle(deadline, Event::Timeout);
    let actions = drain(&mut run);
    let Action::Http {
        id: second, url, ..
    } = &actions[0]
    else {
        panic!("expected http")
    };
    assert_eq!(url, "http://127.0.0.1:8080/api/accounts/4242");
    // The late answer to the first request is ignored.
    run.handle(
        deadline,
        Event::HttpResult {
            id: first,
            status: 200,
            body: r#"{"owner":{"name":"Wrong"}}"#.into(),
        },
    );
    assert_eq!(run.position().1, "again");
    run.handle(
        deadline,
        Event::HttpResult {
            id: *second,
            status: 200,
            body: r#"{"owner":{"name":"Zoe"}}"#.into(),
        },
    );
    assert_eq!(drain(&mut run), [tts("Hello Zoe.", false)]);
    assert_eq!(run.variables().get("account"), Some("4242"));
}

#[test]
fn http_error_status_and_bad_json_take_the_failure_branch() {
    let flows = flows(&[("c.yaml", COLLECT)]);
    let mut run = FlowRun::start(&flows, "c", vars(), t0()).unwrap();
    drain(&mut run);
    run.handle(t0(), Event::PromptFinished);
    drain(&mut run);
    run.handle(
        t0(),
        Event::Speech {
            text: "four four four four".into(),
            confidence: 0.9,
        },
    );
    let Some(Action::Http { id, .. }) = drain(&mut run).pop() else {
        panic!("expected http")
    };
    run.handle(
        t0(),
        Event::HttpResult {
            id,
            status: 200,
            body: "<html>".into(),
        },
    );
    let Some(Action::Http { id, .. }) = drain(&mut run).pop() else {
        panic!("expected the failure branch's http")
    };
    run.handle(
        t0(),
        Event::HttpFailed {
            id,
            reason: "connection refused".into(),
        },
    );
    assert_eq!(drain(&mut run), [Action::Hangup]);
    assert_eq!(run.variables().get("owner"), None);
}

#[test]
fn call_returns_and_goto_does_not() {
    let main = r#"
name: main
start: who
steps:
  who:
    type: call
    flow: greet
    next: route
  route:
    type: branch
    conditions:
      - if: { var: greeted, eq: "yes" }
        next: away
    default: bye
  away:
    type: goto
    flow: out
  bye:
    type: hangup
"#;
    let greet = r#"
name: greet
start: hello
steps:
  hello:
    type: set
    vars: { greeted: "yes" }
    next: back
  back:
    type: return
"#;
    let out = r#"
name: out
start: send
steps:
  send:
    type: transfer
    number: "+1555${caller.number}"
    trunk: carrier
"#;
    let flows = flows(&[
        ("main.yaml", main),
        ("greet.yaml", greet),
        ("out.yaml", out),
    ]);
    let mut run = FlowRun::start(&flows, "main", vars(), t0()).unwrap();
    let actions = drain(&mut run);
    assert!(matches!(
        &actions[..],
        [Action::Transfer { target: switchboard::ivr::TransferTarget::Number { number, trunk: Some(t) } }]
            if number == "+1555+15550100001" && t == "carrier"
    ));
    assert!(run.is_done());
    assert_eq!(run.position(), ("out", "send"));
}

#[test]
fn answer_and_record() {
    let flow = r#"
name: vm
start: pick_up
steps:
  pick_up:
    type: answer
    next: hold
  hold:
    type: play
    prompt: { file: welcome.wav }
    wait: 2s
    next: message
  message:
    type: record
    max: 30s
    to: "voicemail/${caller.number}"
    next: bye
  bye:
    type: hangup
"#;
    let flows = flows(&[("vm.yaml", flow)]);
    let mut run = FlowRun::start(&flows, "vm", vars(), t0()).unwrap();
    assert_eq!(drain(&mut run), [Action::Answer]);
    run.handle(t0(), Event::Answered);
    assert_eq!(
        drain(&mut run),
        [Action::Play {
            prompt: Prompt::File("welcome.wav".into()),
            barge_in: false
        }]
    );
    run.handle(t0(), Event::PromptFinished);
    assert_eq!(run.poll_timeout().unwrap().1, TimerKind::Pause);
    run.handle(t0() + Duration::from_secs(2), Event::Timeout);
    assert_eq!(
        drain(&mut run),
        [Action::Record {
            max: Duration::from_secs(30),
            to: "voicemail/+15550100001".into()
        }]
    );
    let (deadline, kind) = run.poll_timeout().unwrap();
    assert_eq!(kind, TimerKind::RecordMax);
    run.handle(deadline, Event::Timeout);
    assert_eq!(drain(&mut run), [Action::StopRecording, Action::Hangup]);
}

#[test]
fn unanswered_call_is_hung_up() {
    let flow =
        "name: a\nstart: x\nsteps:\n  x:\n    type: answer\n    next: y\n  y:\n    type: hangup\n";
    let flows = flows(&[("a.yaml", flow)]);
    let mut run = FlowRun::start(&flows, "a", vars(), t0()).unwrap();
    drain(&mut run);
    let (deadline, kind) = run.poll_timeout().unwrap();
    assert_eq!(kind, TimerKind::Answer);
    run.handle(deadline, Event::Timeout);
    assert_eq!(drain(&mut run), [Action::Hangup]);
    assert!(FlowRun::start(&flows, "nope", vars(), t0()).is_err());
}

#[test]
fn branches_on_time_and_calendar() {
    let flow = r#"
name: t
start: when
steps:
  when:
    type: branch
    conditions:
      - if: { holiday: office }
        next: holiday
      - if: { all: [ { open: office }, { weekday: [mon, tue] }, { time: "08:30-09:30" } ] }
        next: early
      - if: { any: [ { weekday: sat }, { not: { open: office } } ] }
        next: closed
      - if: { var: caller.number, not_in: ["+1", "+2"] }
        next: other
    default: other
  holiday: { type: transfer, user: alice }
  early: { type: transfer, user: bob }
  closed: { type: hangup }
  other: { type: queue, queue: agents, priority: "${time.weekday}" }
"#;
    let cal = std::fs::read_to_string("ivr-flows/calendars.yaml").unwrap();
    let flows = flows(&[("t.yaml", flow), ("calendars.yaml", &cal)]);
    let at = |s: &str| -> Vec<Action> {
        let mut run = FlowRun::start(&flows, "t", vars(), s.parse().unwrap()).unwrap();
        drain(&mut run)
    };
    let user = |u: &str| Action::Transfer {
        target: switchboard::ivr::TransferTarget::User(u.into()),
    };
    assert_eq!(at("2026-12-25T10:00"), [user("alice")]);
    assert_eq!(at("2026-11-24T09:00"), [user("bob")]);
    assert_eq!(at("2026-11-28T10:00"), [Action::Hangup]);
    assert_eq!(at("2026-11-23T20:00"), [Action::Hangup]);
    let other = at("2026-11-26T10:00");
    // A priority that is not a number falls back to 0 (and says so in the log).
    assert!(matches!(&other[..], [Action::Queue { name, priority: 0, .. }] if name == "agents"));
}
