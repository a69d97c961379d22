//! Property tests: a valid flow never strands a caller, whatever they do and
//! however the backend behaves; the interpreter survives any event order.
mod ivr_support;

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use switchboard::ivr::{
    load_flows, simulate, Action, CallInfo, Channel, Destination, Event, FlowRun, Flows,
    HttpFixture, HttpFixtures, LocalDateTime, SimInput, SimOptions, Variables,
};

fn sample_flows() -> Flows {
    let (flows, errors) = load_flows(Path::new("ivr-flows"), &ivr_support::known());
    assert!(errors.is_empty());
    flows
}

fn input() -> impl Strategy<Value = SimInput> {
    prop_oneof![
        "[0-9*#]{1,10}".prop_map(SimInput::Dtmf),
        prop::sample::select(vec![
            "billing",
            "technical support",
            "I want to speak to an agent",
            "yes",
            "no",
            "goodbye",
            "message",
            "one two three four five six",
            "the weather in Paris",
            "sales please",
        ])
        .prop_map(|s| SimInput::Speech(s.to_owned())),
        Just(SimInput::Silence),
        Just(SimInput::NoMatch),
    ]
}

fn fixture() -> impl Strategy<Value = Option<HttpFixture>> {
    prop_oneof![
        Just(None),
        (0u64..4000).prop_map(|ms| Some(HttpFixture::Failure {
            reason: "reset".into(),
            delay: Duration::from_millis(ms),
        })),
        (
            prop::sample::select(vec![200u16, 404, 500]),
            0u64..4000,
            0usize..3
        )
            .prop_map(|(status, ms, body)| {
                let body = [
                    serde_json::json!({"name": "Eve", "tier": "gold", "language": "es",
                        "recent_order": {"item": "socks", "placed": "2026-11-23"},
                        "refund": {"status": "pending"}}),
                    serde_json::json!([1, 2, 3]),
                    serde_json::json!({"name": null, "tier": 7}),
                ][body]
                    .clone();
                Some(HttpFixture::Response {
                    status,
                    body,
                    delay: Duration::from_millis(ms),
                })
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn valid_flows_never_get_stuck(
        inputs in prop::collection::vec(input(), 0..8),
        customers in fixture(),
        accounts in fixture(),
        day in 0u64..14,
        minute in 0u64..(24 * 60),
        flow in prop::sample::select(vec!["main", "after_hours", "identify"]),
    ) {
        let flows = sample_flows();
        let mut http_fixtures = HttpFixtures::new();
        if let Some(f) = customers {
            http_fixtures.insert("http://127.0.0.1:8080/api/v1/demo/customers/*", f);
        }
        if let Some(f) = accounts {
            http_fixtures.insert("http://127.0.0.1:8080/api/v1/demo/accounts/*", f);
        }
        let start: LocalDateTime = "2026-12-20T00:00".parse().unwrap();
        let opts = SimOptions {
            inputs,
            http_fixtures,
            time: start + Duration::from_secs(day * 86_400 + minute * 60),
            ..SimOptions::default()
        };
        let transcript = simulate(flow, &flows, &opts);
        let stuck = matches!(transcript.destination, Destination::Stuck(_));
        prop_assert!(!stuck, "{}", transcript);
        // The identify subflow returns: at top level that hangs up.
        if flow == "main" {
            prop_assert!(transcript.lines.iter().all(|l| !l.text.contains("internal")));
        }
    }

    #[test]
    fn any_caller_behaviour_is_survived_and_the_run_finishes(
        steps in prop::collection::vec(
            prop_oneof![
                // The runtime delivers the oldest event it owes (prompt end,
                // answer, HTTP failure): it keeps its promises, late or not.
                3 => Just(None),
                1 => Just(Some(Event::Timeout)),
                1 => Just(Some(Event::SpeechNoMatch)),
                1 => Just(Some(Event::Answered)),
                2 => "[0-9*#]".prop_map(|k| Some(Event::Dtmf(k.chars().next().unwrap()))),
                2 => (prop::sample::select(vec!["billing", "agent", "yes", "12345678"]), 0.0f32..1.0)
                    .prop_map(|(t, c)| Some(Event::Speech { text: t.into(), confidence: c })),
                1 => (1u64..4, prop::sample::select(vec![200u16, 404]))
                    .prop_map(|(id, status)| Some(Event::HttpResult { id, status, body: "{\"name\":\"X\"}".into() })),
            ],
            0..60,
        ),
    ) {
        let flows = sample_flows();
        let vars = Variables::for_call(&CallInfo {
            caller_number: "+15550100001".into(),
            caller_name: String::new(),
            called_number: "100".into(),
            channel: Channel::Browser,
        });
        let mut now: LocalDateTime = "2026-11-23T09:00".parse().unwrap();
        let mut run = FlowRun::start(&flows, "main", vars, now).unwrap();
        let mut owed: std::collections::VecDeque<Event> = Default::default();
        let collect = |run: &mut FlowRun, owed: &mut std::collections::VecDeque<Event>| {
            while let Some(action) = run.poll_output() {
                match action {
                    Action::Answer => owed.push_back(Event::Answered),
                    Action::Play { .. } => owed.push_back(Event::PromptFinished),
                    Action::Http { id, .. } => owed.push_back(Event::HttpFailed { id, reason: "down".into() }),
                    _ => {}
                }
            }
        };
        collect(&mut run, &mut owed);
        for step in steps {
            now = now + Duration::from_millis(700);
            match step {
                Some(event) => run.handle(now, event),
                None => {
                    if let Some(event) = owed.pop_front() {
                        run.handle(now, event);
                    }
                }
            }
            collect(&mut run, &mut owed);
        }
        // From here on the caller is silent.
        for _ in 0..2000 {
            collect(&mut run, &mut owed);
            if run.is_done() {
                break;
            }
            match owed.pop_front() {
                Some(event) => run.handle(now, event),
                None => {
                    let Some((deadline, _)) = run.poll_timeout() else {
                        prop_assert!(false, "waiting with nothing owed and no timer at {:?}", run.position());
                        unreachable!();
                    };
                    now = now.max(deadline);
                    run.handle(now, Event::Timeout);
                }
            }
        }
        prop_assert!(run.is_done(), "not finished at {:?}", run.position());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The loader never panics, whatever the text: mutations of a real flow
    /// (characters replaced, lines dropped) or arbitrary input.
    #[test]
    fn loader_survives_mangled_flows(
        cuts in prop::collection::vec((0usize..8000, "[ -~\n]{0,3}"), 0..6),
        drop_line in prop::option::of(0usize..300),
        noise in "\\PC{0,200}",
    ) {
        let mut text = std::fs::read_to_string("ivr-flows/main.yaml").unwrap();
        for (at, insert) in cuts {
            let at = text.char_indices().map(|(i, _)| i).nth(at % text.chars().count()).unwrap_or(0);
            let end = text[at..].char_indices().nth(insert.len()).map_or(text.len(), |(i, _)| at + i);
            text.replace_range(at..end, &insert);
        }
        if let Some(n) = drop_line {
            let lines: Vec<&str> = text.lines().collect();
            if n < lines.len() {
                let kept: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != n).map(|(_, l)| *l).collect();
                text = kept.join("\n");
            }
        }
        let sources = vec![
            (std::path::PathBuf::from("main.yaml"), text),
            (std::path::PathBuf::from("noise.yaml"), noise),
        ];
        let (flows, errors) = switchboard::ivr::load_flow_sources(&sources, &ivr_support::known());
        for e in &errors {
            prop_assert!(e.line >= 1 && e.col >= 1);
            prop_assert!(!e.to_string().contains('\n'), "one line per error: {e}");
        }
        // Whatever survived validation runs without getting stuck.
        for name in flows.names() {
            let t = simulate(name, &flows, &SimOptions::default());
            prop_assert!(!matches!(t.destination, Destination::Stuck(_)), "{t}");
        }
    }
}
