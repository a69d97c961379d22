//! One broken flow per class of error, asserting the exact `file:line:col: message`.
mod ivr_support;

use std::path::{Path, PathBuf};

use switchboard::ivr::{load_flow_sources, load_flows, FlowErrorKind};

/// Load the named files of `tests/broken` (plus `flows/calendars.yaml`) and
/// return the errors as strings.
fn errors_of(files: &[&str]) -> Vec<String> {
    let mut sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| {
            let path = Path::new("tests/ivr_broken").join(f);
            let text = std::fs::read_to_string(&path).expect("broken flow exists");
            (path, text)
        })
        .collect();
    let calendars = PathBuf::from("ivr-flows/calendars.yaml");
    let text = std::fs::read_to_string(&calendars).expect("calendars exist");
    sources.push((calendars, text));
    let (_, errors) = load_flow_sources(&sources, &ivr_support::known());
    errors.iter().map(ToString::to_string).collect()
}

fn assert_errors(files: &[&str], expected: &[&str]) {
    let actual = errors_of(files);
    assert_eq!(actual, expected, "\nactual:\n{}", actual.join("\n"));
}

#[test]
fn yaml_syntax() {
    assert_errors(
        &["syntax.yaml"],
        &["tests/ivr_broken/syntax.yaml:7:9: YAML syntax error: illegal placement of ':' indicator"],
    );
}

#[test]
fn unknown_step_type() {
    assert_errors(
        &["unknown_type.yaml"],
        &["tests/ivr_broken/unknown_type.yaml:5:11: unknown step type `plya`; did you mean `play`?"],
    );
}

#[test]
fn unknown_field() {
    assert_errors(
        &["unknown_field.yaml"],
        &["tests/ivr_broken/unknown_field.yaml:6:5: unknown field `promt` in `menu` step `ask`; did you mean `prompt`?"],
    );
}

#[test]
fn missing_start() {
    assert_errors(
        &["missing_start.yaml"],
        &["tests/ivr_broken/missing_start.yaml:1:1: missing field `start` in the flow"],
    );
}

#[test]
fn missing_transition() {
    assert_errors(
        &["missing_next.yaml"],
        &[
            "tests/ivr_broken/missing_next.yaml:5:5: missing field `next` in `play` step `hello`",
            "tests/ivr_broken/missing_next.yaml:7:3: step `bye` is unreachable from the start step `hello`",
        ],
    );
}

#[test]
fn unknown_transition_target() {
    assert_errors(
        &["unknown_target.yaml"],
        &[
            "tests/ivr_broken/unknown_target.yaml:7:11: unknown step `by` in `next`; did you mean `bye`?",
            "tests/ivr_broken/unknown_target.yaml:8:3: step `bye` is unreachable from the start step `hello`",
        ],
    );
}

#[test]
fn callback_offer_on_a_queue_without_callback_settings() {
    let path = PathBuf::from("tests/ivr_broken/callback_without_settings.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut known = ivr_support::known();
    known.callback_queues.remove("sales");
    let (_, errors) = load_flow_sources(&[(path.clone(), text.clone())], &known);
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["tests/ivr_broken/callback_without_settings.yaml:6:12: invalid `callback`: queue `sales` has no callback settings in the contact centre, so this callback offer would never be made"]
    );
    // With callback settings on the queue, the flow is fine.
    let (_, errors) = load_flow_sources(&[(path, text)], &ivr_support::known());
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn unknown_queue() {
    assert_errors(
        &["unknown_queue.yaml"],
        &["tests/ivr_broken/unknown_queue.yaml:6:12: unknown queue `biling`; did you mean `billing`?"],
    );
}

#[test]
fn unknown_prompt_file() {
    assert_errors(
        &["unknown_prompt.yaml"],
        &["tests/ivr_broken/unknown_prompt.yaml:6:21: unknown prompt file `welcom.wav`; did you mean `welcome.wav`?"],
    );
}

#[test]
fn unknown_calendar() {
    assert_errors(
        &["unknown_calendar.yaml"],
        &["tests/ivr_broken/unknown_calendar.yaml:7:21: unknown calendar `ofice`; did you mean `office`?"],
    );
}

#[test]
fn unknown_flow() {
    assert_errors(
        &["unknown_flow.yaml"],
        &["tests/ivr_broken/unknown_flow.yaml:6:11: unknown flow `after_hour`"],
    );
}

#[test]
fn unknown_user_and_trunk() {
    assert_errors(
        &["unknown_user_trunk.yaml"],
        &[
            "tests/ivr_broken/unknown_user_trunk.yaml:12:11: unknown user `alcie`; did you mean `alice`?",
            "tests/ivr_broken/unknown_user_trunk.yaml:16:12: unknown trunk `carier`; did you mean `carrier`?",
        ],
    );
}

#[test]
fn unreachable_step() {
    assert_errors(
        &["unreachable.yaml"],
        &["tests/ivr_broken/unreachable.yaml:8:3: step `orphan` is unreachable from the start step `hello`"],
    );
}

#[test]
fn loop_without_waiting() {
    assert_errors(
        &["spin_loop.yaml"],
        &["tests/ivr_broken/spin_loop.yaml:4:3: steps `lookup` -> `retry` -> `lookup` form a loop that never waits for the caller (add a menu, collect, record or a play with `wait`)"],
    );
}

#[test]
fn variable_never_set() {
    assert_errors(
        &["never_set.yaml"],
        &["tests/ivr_broken/never_set.yaml:6:20: variable `caller.numbr` is used but never set; did you mean `caller.number`?"],
    );
}

#[test]
fn variable_unset_on_some_path() {
    assert_errors(
        &["maybe_unset.yaml"],
        &["tests/ivr_broken/maybe_unset.yaml:13:20: variable `customer.name` may be unset here: not every path to step `greet` sets it"],
    );
}

#[test]
fn duplicate_step_names() {
    assert_errors(
        &["duplicate_step.yaml"],
        &["tests/ivr_broken/duplicate_step.yaml:10:3: duplicate step `hello` (first defined on line 4)"],
    );
}

#[test]
fn flows_calling_each_other() {
    assert_errors(
        &["call_cycle_a.yaml", "call_cycle_b.yaml"],
        &["tests/ivr_broken/call_cycle_a.yaml:6:11: flows `call_cycle_a` -> `call_cycle_b` -> `call_cycle_a` call each other in a circle"],
    );
}

#[test]
fn required_variables_of_called_flow() {
    assert_errors(
        &["requires.yaml", "needs_account.yaml"],
        &["tests/ivr_broken/requires.yaml:16:11: flow `needs_account` requires variable `account.id`, which may be unset here"],
    );
}

#[test]
fn bad_values() {
    assert_errors(
        &["bad_values.yaml"],
        &[
            "tests/ivr_broken/bad_values.yaml:6:20: invalid `prompt`: `${` without a closing `}`",
            "tests/ivr_broken/bad_values.yaml:7:14: invalid `timeout`: `five seconds` is not a duration like `500ms`, `5s`, `2m` or `1h`",
            "tests/ivr_broken/bad_values.yaml:8:14: `retries` must be a whole number, found a string",
            "tests/ivr_broken/bad_values.yaml:9:11: invalid `into`: `caller.number` is a built-in variable and cannot be set",
            "tests/ivr_broken/bad_values.yaml:12:22: DTMF key `1` is already used by choice `billing`",
            "tests/ivr_broken/bad_values.yaml:12:44: phrase `pay my bill` is already used by choice `billing`",
            "tests/ivr_broken/bad_values.yaml:13:22: invalid `dtmf`: `12` is not one DTMF key (0-9, * or #)",
        ],
    );
}

#[test]
fn every_problem_at_once() {
    assert_errors(
        &["many.yaml"],
        &[
            "tests/ivr_broken/many.yaml:2:8: unknown step `helo` in `start`; did you mean `hello`?",
            "tests/ivr_broken/many.yaml:5:5: missing field `next` in `play` step `hello`",
            "tests/ivr_broken/many.yaml:7:5: unknown field `nxt` in `play` step `hello`; did you mean `next`?",
            "tests/ivr_broken/many.yaml:9:11: unknown step type `hangupp`; did you mean `hangup`?",
        ],
    );
}

#[test]
fn errors_are_typed() {
    let text = std::fs::read_to_string("tests/ivr_broken/unknown_type.yaml").unwrap();
    let (flows, errors) =
        load_flow_sources(&[(PathBuf::from("x.yaml"), text)], &ivr_support::known());
    assert!(flows.is_empty(), "a flow with errors is not loaded");
    assert!(matches!(
        &errors[0].kind,
        FlowErrorKind::UnknownStepType { found, .. } if found == "plya"
    ));
    assert_eq!((errors[0].line, errors[0].col), (5, 11));
}

#[test]
fn missing_directory_is_an_error() {
    let (flows, errors) = load_flows(Path::new("tests/no-such-dir"), &ivr_support::known());
    assert!(flows.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(errors[0]
        .to_string()
        .starts_with("tests/no-such-dir:1:1: cannot read file:"));
}

#[test]
fn calendar_errors() {
    let text = "calendars:\n  office:\n    hours:\n      mon-fry: \"08:00-18:00\"\n      sat: \"13:00-09:00\"\n    holidays: [2026-13-01]\n    opening: x\n";
    let (_, errors) = load_flow_sources(
        &[(PathBuf::from("calendars.yaml"), text.to_owned())],
        &ivr_support::known(),
    );
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "calendars.yaml:4:7: invalid `hours`: `mon-fry` is not a weekday or range of weekdays like `mon` or `mon-fri`",
            "calendars.yaml:5:12: invalid `hours`: `13:00-09:00` is not a range of hours like `08:00-18:00`",
            "calendars.yaml:6:16: invalid `date`: `2026-13-01` is not a date like `2026-12-25`",
            "calendars.yaml:7:5: unknown field `opening` in calendar `office`",
        ]
    );
}

fn errors_of_sources(sources: &[(&str, &str)]) -> Vec<String> {
    let sources: Vec<(PathBuf, String)> = sources
        .iter()
        .map(|(f, t)| (PathBuf::from(f), (*t).to_owned()))
        .collect();
    let (_, errors) = load_flow_sources(&sources, &ivr_support::known());
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn loop_across_flows_without_waiting() {
    let a = "name: a\nstart: s\nsteps:\n  s:\n    type: play\n    prompt: Hi\n    next: t\n  t:\n    type: goto\n    flow: b\n";
    let b = "name: b\nstart: u\nsteps:\n  u:\n    type: call\n    flow: c\n    next: v\n  v:\n    type: goto\n    flow: a\n";
    let c = "name: c\nstart: r\nsteps:\n  r:\n    type: return\n";
    assert_eq!(
        errors_of_sources(&[("a.yaml", a), ("b.yaml", b), ("c.yaml", c)]),
        ["a.yaml:4:3: steps `a/s` -> `a/t` -> `b/u` -> `b/v` -> `a/s` form a loop that never waits for the caller (add a menu, collect, record or a play with `wait`)"]
    );
}

#[test]
fn a_hold_loop_that_waits_is_fine() {
    let hold = "name: hold\nstart: music\nsteps:\n  music:\n    type: play\n    prompt: { file: welcome.wav }\n    wait: 10s\n    next: check\n  check:\n    type: http\n    url: \"http://127.0.0.1:8080/api/v1/ready\"\n    on_success: done\n    on_failure: music\n  done:\n    type: hangup\n";
    assert_eq!(
        errors_of_sources(&[("hold.yaml", hold)]),
        Vec::<String>::new()
    );
}

#[test]
fn duplicate_flow_names() {
    let f = "name: same\nstart: h\nsteps:\n  h:\n    type: hangup\n";
    assert_eq!(
        errors_of_sources(&[("one.yaml", f), ("two.yaml", f)]),
        ["two.yaml:1:1: duplicate flow name `same` (also declared in one.yaml)"]
    );
}

#[test]
fn a_present_check_guards_a_variable() {
    // `present: true` proves the variable is set on that branch; elsewhere it may not be.
    let f = r#"
name: guard
start: lookup
steps:
  lookup:
    type: http
    url: "http://127.0.0.1:8080/x"
    set: { who: /name }
    on_success: check
    on_failure: check
  check:
    type: branch
    conditions:
      - if: { var: who, present: true }
        next: hello
    default: anon
  hello:
    type: play
    prompt: "Hello ${who}"
    next: bye
  anon:
    type: play
    prompt: "Hello ${who}"
    next: bye
  bye:
    type: hangup
"#;
    assert_eq!(
        errors_of_sources(&[("guard.yaml", f)]),
        ["guard.yaml:23:20: variable `who` may be unset here: not every path to step `anon` sets it"]
    );
}
