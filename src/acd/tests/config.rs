//! YAML configuration: a full valid file, and errors with exact positions.

use std::time::Duration;

use crate::acd::*;

const FULL: &str = r#"
queues:
  - name: sales
    strategy: best-skill
    skills: { sales: 2 }
    widening:
      - after: 30s
        relax: { sales: 1 }
        add_skills: { general: 3 }
      - after: 1m
        drop: [sales]
        overflow_queues: [support]
    priority_rules:
      - when: { vip: true }
        add: 10
    max_wait: 10m
    on_max_wait: { queue: support }
    max_length: 50
    on_full: voicemail
    wrap_up: 10s
    ring_timeout: 15s
    sticky_wait: 20s
    announce_every: 45s
    service_level: 90% in 30s
    short_abandon: 3s
    expected_handle_time: 4m
    weight: 2.5
    callback:
      offer_when_wait_over: 2m
      retry_delay: 5m
      max_attempts: 4
      mode: customer-first
      attempt_timeout: 90s
    survey_flow: csat
    record: true
    hold_music: jazz
  - name: support
agents:
  - id: alice
    name: Alice
    extension: "1001"
    skills: { sales: 4, general: 5 }
    attributes: { region: north, age: 40 }
    wrap_up: 5s
    api_token: "0123456789abcdef0123"
    queues: [sales]
  - id: bob
    extension: 1002
"#;

#[test]
fn a_full_configuration_loads() {
    let c = AcdConfig::from_yaml("acd.yaml", FULL).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(c.queues.len(), 2);
    let q = &c.queues[0];
    assert_eq!(q.strategy, Strategy::BestSkill);
    assert_eq!(q.skills, [SkillRequirement::new("sales", 2)]);
    assert_eq!(q.widening.len(), 2);
    assert_eq!(q.widening[0].after, Duration::from_secs(30));
    assert_eq!(
        q.widening[0].add_skills,
        [SkillRequirement::new("general", 3)]
    );
    assert_eq!(q.widening[1].drop, ["sales"]);
    assert_eq!(q.widening[1].overflow_queues, ["support"]);
    assert_eq!(
        q.priority_rules[0].when.get("vip").map(String::as_str),
        Some("true")
    );
    assert_eq!(q.priority_rules[0].add, 10);
    assert_eq!(q.max_wait, Some(Duration::from_secs(600)));
    assert_eq!(q.on_max_wait, OverflowTarget::Queue("support".into()));
    assert_eq!(
        (q.max_length, q.on_full.clone()),
        (Some(50), OverflowTarget::Voicemail)
    );
    assert_eq!(q.wrap_up, Duration::from_secs(10));
    assert_eq!(q.ring_timeout, Duration::from_secs(15));
    assert_eq!(q.sticky_wait, Duration::from_secs(20));
    assert_eq!(q.announce_every, Some(Duration::from_secs(45)));
    assert!((q.service_level.fraction - 0.9).abs() < 1e-9);
    assert_eq!(q.service_level.within, Duration::from_secs(30));
    assert_eq!(q.short_abandon, Duration::from_secs(3));
    assert_eq!(q.expected_handle_time, Duration::from_secs(240));
    assert!((q.weight - 2.5).abs() < 1e-9);
    let cb = q.callback.clone().unwrap();
    assert_eq!(cb.mode, CallbackMode::CustomerFirst);
    assert_eq!(
        (cb.max_attempts, cb.retry_delay),
        (4, Duration::from_secs(300))
    );
    assert_eq!(q.survey_flow.as_deref(), Some("csat"));
    assert!(q.record);
    assert_eq!(q.hold_music.as_deref(), Some("jazz"));
    // Defaults.
    let s = &c.queues[1];
    assert_eq!(s.strategy, Strategy::LongestIdle);
    assert_eq!(s.ring_timeout, Duration::from_secs(20));
    assert!(s.callback.is_none());
    let a = &c.agents[0];
    assert_eq!(a.skills.get("general"), Some(&5));
    assert_eq!(a.attributes.get("age").map(String::as_str), Some("40"));
    assert_eq!(a.wrap_up, Some(Duration::from_secs(5)));
    assert_eq!(a.queues.as_deref(), Some(&["sales".to_owned()][..]));
    assert_eq!(c.agents[1].extension, "1002");
    // And it drives a core.
    let _ = Acd::new(c);
}

fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match AcdConfig::from_yaml("acd.yaml", text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.into_iter().map(|e| (e.line, e.col, e.message)).collect(),
    }
}

#[test]
fn every_error_is_reported_at_once_with_its_position() {
    let text = "\
queues:
  - name: sales
    strategi: longest-idle
    strategy: longest-idel
    skills: { sales: 7 }
    wrap_up: soon
    widening:
      - after: 60s
        drop: [x]
      - after: 30s
        relax: { sales: 1 }
    on_max_wait: { queue: sals }
    service_level: fast
  - name: sales
agents:
  - id: a
    extension: \"1\"
    queues: [sale]
  - id: a
    extension: \"1\"
";
    let e = errors(text);
    let expect: Vec<(usize, usize, &str)> = vec![
        (
            3,
            5,
            "unknown queue field `strategi`; did you mean `strategy`?",
        ),
        (
            4,
            15,
            "unknown strategy `longest-idel`; did you mean `longest-idle`?",
        ),
        (5, 22, "proficiency must be a whole number from 1 to 5"),
        (
            6,
            14,
            "invalid duration `soon`; use e.g. `30s`, `2m`, `1h30m` or `500ms`",
        ),
        (
            10,
            16,
            "widening steps must come in increasing order of `after`",
        ),
        (12, 27, "unknown queue `sals`; did you mean `sales`?"),
        (
            13,
            20,
            "invalid service level `fast`; write it as `80% in 20s`",
        ),
        (
            14,
            11,
            "duplicate queue name `sales` (first defined at 2:11)",
        ),
        (18, 14, "unknown queue `sale`; did you mean `sales`?"),
        (19, 9, "duplicate agent id `a` (first defined at 16:9)"),
        (
            20,
            16,
            "extension `1` is already used by another agent (at 17:16)",
        ),
    ];
    let got: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(got, expect);
}

#[test]
fn unknown_fields_are_caught_at_every_level() {
    let text = "\
queues:
  - name: q
    callback:
      retry_dealy: 5m
    widening:
      - after: 10s
        relx: { a: 1 }
agents:
  - id: x
    extension: \"9\"
    skils: { a: 1 }
timeouts: 3
";
    let e = errors(text);
    let got: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        got,
        [
            (4, 7, "unknown callback field `retry_dealy`; did you mean `retry_delay`?"),
            (6, 9, "widening step changes nothing: give `relax`, `drop`, `add_skills` or `overflow_queues`"),
            (7, 9, "unknown widening field `relx`; did you mean `relax`?"),
            (11, 5, "unknown agent field `skils`; did you mean `skills`?"),
            (12, 1, "unknown top-level field `timeouts`; expected one of `queues`, `agents`"),
        ]
    );
}

#[test]
fn values_of_the_wrong_kind_are_reported() {
    let text = "\
queues:
  - name: q
    weight: -1
    max_length: 0
    record: maybe
    on_max_wait: { queue: q }
    ring_timeout: 0s
    callback: { mode: agent-last, max_attempts: 0 }
agents: {}
";
    let e = errors(text);
    let got: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        got,
        [
            (3, 13, "`weight` must be a number greater than 0"),
            (4, 17, "0 is out of range (1 to 4294967295)"),
            (5, 13, "expected `true` or `false`, found a string"),
            (6, 27, "queue `q` cannot overflow into itself"),
            (7, 19, "must be longer than 0"),
            (
                8,
                23,
                "unknown callback mode `agent-last`; did you mean `agent-first`?"
            ),
            (8, 49, "0 is out of range (1 to 100)"),
            (9, 9, "expected a list, found a mapping"),
        ]
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let e = errors("queues:\n  - name: [q\n");
    assert_eq!(e.len(), 1);
    let (line, col, msg) = &e[0];
    assert!(*line >= 2, "{e:?}");
    assert!(*col >= 1);
    assert!(!msg.is_empty());
    let shown = AcdConfig::from_yaml("x.yaml", "a: [").unwrap_err()[0].to_string();
    assert!(shown.starts_with("x.yaml:1:"), "{shown}");
}

#[test]
fn an_empty_file_is_an_empty_configuration() {
    let c = AcdConfig::from_yaml("e.yaml", "").unwrap();
    assert!(c.queues.is_empty() && c.agents.is_empty());
}
