//! Flow files: YAML tree to typed [`Flow`], collecting every error.
//!
//! Contract: [`parse_flow`] reads one flow file's tree and always returns a
//! [`Flow`] (with placeholders where fields were broken) plus the errors found
//! in it, so later graph checks still run and the designer sees everything at
//! once. It checks shapes, field names, value syntax and per-step rules (DTMF
//! keys, phrase clashes, variable names). References between steps, flows,
//! queues and so on are checked later, in `check`.
//!
//! The format, one flow per file:
//!
//! ```yaml
//! name: main                 # flow name, used by goto/call
//! description: Front door    # optional
//! start: welcome             # first step
//! requires: [customer.id]    # optional: variables a goto/call caller must set
//! steps:
//!   welcome:
//!     type: play
//!     prompt: "Welcome to ${company}"   # or { say: text } or { file: name.wav }
//!     next: menu
//! ```
//!
//! A flow sees at its start the built-in variables, its `requires`, and (when
//! entered by `call`/`goto`) whatever the caller set; the validator only counts
//! built-ins and `requires` as certainly set there.
//!
//! | type | fields (required in bold) |
//! |------|---------------------------|
//! | `answer` | **next** |
//! | `play` | **prompt**, **next**, barge_in (false), wait (a pause after; makes it a waiting step) |
//! | `menu` | **prompt**, **choices** (name: {dtmf, phrases, **next**}), **default**, into, speech (true), barge_in (true), timeout (5s), retries (2), no_input, no_match, min_confidence (0.5) |
//! | `collect` | **prompt**, **into**, **next**, **default**, digits {min 1, max 16, terminator}, inter_digit_timeout (3s), and the menu's speech/barge_in/timeout/retries/no_input/no_match/min_confidence |
//! | `http` | **url**, **on_success**, **on_failure**, method (GET/POST), body (POST), timeout (3s, ≤30s), set (var: `/json/pointer` or `dotted.path`) |
//! | `set` | **vars** (var: value, in order), **next** |
//! | `branch` | **conditions** (list of {**if**, **next**}), **default** |
//! | `queue` | **queue**, priority, skills (names or {name, min_level}), attributes, callback {**offer_after**, prompt} |
//! | `transfer` | **user**, or **number** with optional trunk |
//! | `goto` | **flow** |
//! | `call` | **flow**, **next** (after the called flow's `return`) |
//! | `record` | **to**, **next**, prompt, max (60s, ≤10m); any key ends it |
//! | `return` | |
//! | `hangup` | |
//!
//! Conditions: `{var: x, eq|ne|lt|le|gt|ge: value}` (numbers compare as
//! numbers), `{var: x, in|not_in: [..]}`, `{var: x, present: true|false}` (set
//! and not empty), `{open: calendar}`, `{holiday: calendar}`, `{weekday: [mon,
//! sat]}`, `{time: "09:00-17:00"}`, `{all: [..]}`, `{any: [..]}`, `{not: ..}`.
//! Values may contain `${variables}`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::error::{suggest, DidYouMean, FlowErrorKind};
use super::model::*;
use super::reader::{Fields, Reader};
use super::speech::normalize;
use super::template::{is_builtin, is_variable_name, Template};
use super::time::{TimeOfDay, Weekday};
use super::yaml::{Node, Pos, Value};

/// The step types, in the order suggestions and the docs list them.
pub(crate) const STEP_TYPES: [&str; 14] = [
    "answer", "play", "menu", "collect", "http", "set", "branch", "queue", "transfer", "goto",
    "call", "record", "return", "hangup",
];

const FLOW_FIELDS: [&str; 5] = ["name", "description", "start", "requires", "steps"];

const ASK_FIELDS: [&str; 10] = [
    "type",
    "prompt",
    "speech",
    "barge_in",
    "timeout",
    "retries",
    "no_input",
    "no_match",
    "default",
    "min_confidence",
];

const CONDITION_KEYS: [&str; 17] = [
    "var", "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "present", "open", "holiday",
    "weekday", "time", "all", "any", "not",
];

fn allowed_fields(step_type: &str) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = match step_type {
        "answer" => vec!["type", "next"],
        "play" => vec!["type", "prompt", "barge_in", "wait", "next"],
        "menu" => [&ASK_FIELDS[..], &["choices", "into"]].concat(),
        "collect" => [
            &ASK_FIELDS[..],
            &["into", "digits", "inter_digit_timeout", "next"],
        ]
        .concat(),
        "http" => vec![
            "type",
            "method",
            "url",
            "body",
            "timeout",
            "set",
            "on_success",
            "on_failure",
        ],
        "set" => vec!["type", "vars", "next"],
        "branch" => vec!["type", "conditions", "default"],
        "queue" => vec![
            "type",
            "queue",
            "priority",
            "skills",
            "attributes",
            "callback",
        ],
        "transfer" => vec!["type", "user", "number", "trunk"],
        "goto" => vec!["type", "flow"],
        "call" => vec!["type", "flow", "next"],
        "record" => vec!["type", "prompt", "max", "to", "next"],
        _ => vec!["type"],
    };
    v.dedup();
    v
}

/// Whether `name` is usable as a step or flow name.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parse one flow file's tree.
pub(crate) fn parse_flow(r: &mut Reader<'_>, root: &Node, file: &Path) -> Flow {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut flow = Flow {
        name: stem,
        description: None,
        file: file.to_path_buf(),
        start: Named {
            name: String::new(),
            pos: Pos::START,
        },
        requires: Vec::new(),
        steps: Vec::new(),
        index: Default::default(),
        declared: BTreeSet::new(),
        incomplete: false,
    };
    let Some(f) = r.fields(root, "flow", "the flow", &FLOW_FIELDS) else {
        flow.incomplete = true;
        return flow;
    };
    match r.req_string(&f, "name") {
        Some(name) if is_identifier(&name) => flow.name = name,
        Some(name) => r.invalid(
            f.get("name").map_or(f.pos, |n| n.pos),
            "name",
            format!("`{name}` is not a flow name (letters, digits, `_` and `-`)"),
        ),
        None => {}
    }
    flow.description = r.opt_string(&f, "description");
    if let Some(node) = f.get("start") {
        if let Some(name) = r.string(node, "start") {
            flow.start = Named {
                name,
                pos: node.pos,
            };
        }
    } else {
        r.missing(&f, "start");
        flow.incomplete = true;
    }
    if let Some(node) = f.get("requires") {
        for item in r.list(node, "requires", true).unwrap_or_default() {
            if let Some(var) = variable(r, item, "requires") {
                flow.requires.push(var);
            }
        }
    }
    let Some(steps) = f.get("steps") else {
        r.missing(&f, "steps");
        flow.incomplete = true;
        return flow;
    };
    let Value::Map(entries) = &steps.value else {
        r.wrong_type(steps, "steps", "a mapping of step names to steps");
        flow.incomplete = true;
        return flow;
    };
    r.check_duplicates(entries, |step, first_line| FlowErrorKind::DuplicateStep {
        step: step.to_owned(),
        first_line,
    });
    for (key, node) in entries {
        if !flow.declared.insert(key.name.clone()) {
            continue;
        }
        if !is_identifier(&key.name) {
            r.invalid(
                key.pos,
                "steps",
                format!(
                    "`{}` is not a step name (letters, digits, `_` and `-`)",
                    key.name
                ),
            );
        }
        match parse_step(r, &key.name, node) {
            Some(kind) => {
                flow.index.insert(key.name.clone(), flow.steps.len());
                flow.steps.push(Step {
                    name: key.name.clone(),
                    pos: key.pos,
                    kind,
                });
            }
            None => flow.incomplete = true,
        }
    }
    flow
}

fn empty_named(pos: Pos) -> Named {
    Named {
        name: String::new(),
        pos,
    }
}

/// A transition field: a step name.
fn target(r: &mut Reader<'_>, f: &Fields<'_>, field: &'static str) -> Named {
    match f.get(field) {
        Some(node) => match r.string(node, field) {
            Some(name) => Named {
                name,
                pos: node.pos,
            },
            None => empty_named(node.pos),
        },
        None => {
            r.missing(f, field);
            empty_named(f.pos)
        }
    }
}

/// A name field (queue, flow, user...).
fn name_field(r: &mut Reader<'_>, f: &Fields<'_>, field: &'static str) -> Named {
    target(r, f, field)
}

/// A variable name that flows may set.
fn variable(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<Named> {
    let name = r.string(node, field)?;
    settable_name(r, &name, node.pos, field)
}

fn settable_name(r: &mut Reader<'_>, name: &str, pos: Pos, field: &str) -> Option<Named> {
    if !is_variable_name(name) {
        r.invalid(
            pos,
            field,
            format!("`{name}` is not a variable name (letters, digits, `_` and `.`)"),
        );
        return None;
    }
    if is_builtin(name) {
        r.invalid(
            pos,
            field,
            format!("`{name}` is a built-in variable and cannot be set"),
        );
        return None;
    }
    Some(Named {
        name: name.to_owned(),
        pos,
    })
}

fn prompt(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<PromptSpec> {
    match &node.value {
        Value::Map(_) => {
            let f = r.fields(node, field, &format!("`{field}`"), &["say", "file"])?;
            match (f.get("say"), f.get("file")) {
                (Some(say), None) => r.template(say, "say").map(PromptSpec::Say),
                (None, Some(file)) => r.template(file, "file").map(PromptSpec::File),
                _ => {
                    r.invalid(
                        f.pos,
                        field,
                        "give exactly one of `say` (text to speak) or `file` (a prompt file)",
                    );
                    None
                }
            }
        }
        _ => r.template(node, field).map(PromptSpec::Say),
    }
}

fn req_prompt(r: &mut Reader<'_>, f: &Fields<'_>, field: &'static str) -> PromptSpec {
    let parsed = match f.get(field) {
        Some(node) => prompt(r, node, field),
        None => {
            r.missing(f, field);
            None
        }
    };
    parsed.unwrap_or_else(|| PromptSpec::Say(Template::literal("", f.pos)))
}

fn opt_prompt(r: &mut Reader<'_>, f: &Fields<'_>, field: &str) -> Option<PromptSpec> {
    f.get(field).and_then(|n| prompt(r, n, field))
}

fn parse_step(r: &mut Reader<'_>, name: &str, node: &Node) -> Option<StepKind> {
    let Value::Map(entries) = &node.value else {
        r.wrong_type(node, name, "a mapping");
        return None;
    };
    let type_node = entries
        .iter()
        .find(|(k, _)| k.name == "type")
        .map(|(_, v)| v);
    let Some(type_node) = type_node else {
        let pos = entries.first().map_or(node.pos, |(k, _)| k.pos);
        r.error(
            pos,
            FlowErrorKind::MissingField {
                field: "type",
                context: format!("step `{name}`"),
            },
        );
        return None;
    };
    let step_type = r.string(type_node, "type")?;
    if !STEP_TYPES.contains(&step_type.as_str()) {
        r.error(
            type_node.pos,
            FlowErrorKind::UnknownStepType {
                suggestion: DidYouMean(suggest(&step_type, STEP_TYPES)),
                found: step_type,
            },
        );
        return None;
    }
    let context = format!("`{step_type}` step `{name}`");
    let f = r.fields(node, name, &context, &allowed_fields(&step_type))?;
    let kind = match step_type.as_str() {
        "answer" => StepKind::Answer {
            next: target(r, &f, "next"),
        },
        "play" => StepKind::Play {
            prompt: req_prompt(r, &f, "prompt"),
            barge_in: r.opt_bool(&f, "barge_in").unwrap_or(false),
            wait: r.opt_duration(&f, "wait"),
            next: target(r, &f, "next"),
        },
        "menu" => StepKind::Menu(Box::new(parse_menu(r, &f))),
        "collect" => StepKind::Collect(Box::new(parse_collect(r, &f))),
        "http" => StepKind::Http(Box::new(parse_http(r, &f))),
        "set" => parse_set(r, &f),
        "branch" => parse_branch(r, &f),
        "queue" => StepKind::Queue(Box::new(parse_queue(r, &f))),
        "transfer" => StepKind::Transfer(parse_transfer(r, &f)),
        "goto" => StepKind::Goto {
            flow: name_field(r, &f, "flow"),
        },
        "call" => StepKind::Call {
            flow: name_field(r, &f, "flow"),
            next: target(r, &f, "next"),
        },
        "record" => StepKind::Record(Box::new(RecordStep {
            prompt: opt_prompt(r, &f, "prompt"),
            max: r.opt_duration(&f, "max").unwrap_or(Duration::from_secs(60)),
            to: match f.get("to") {
                Some(n) => r
                    .template(n, "to")
                    .unwrap_or_else(|| Template::literal("", n.pos)),
                None => {
                    r.missing(&f, "to");
                    Template::literal("", f.pos)
                }
            },
            next: target(r, &f, "next"),
        })),
        "return" => StepKind::Return,
        _ => StepKind::Hangup,
    };
    if let StepKind::Record(rec) = &kind {
        if rec.max.is_zero() || rec.max > Duration::from_secs(600) {
            let pos = f.get("max").map_or(f.pos, |n| n.pos);
            r.invalid(pos, "max", "must be between 1s and 10m");
        }
    }
    Some(kind)
}

fn parse_ask(r: &mut Reader<'_>, f: &Fields<'_>) -> Ask {
    let min_confidence = match f.get("min_confidence") {
        Some(node) => match &node.value {
            Value::Float(x, _) if (0.0..=1.0).contains(x) => *x as f32,
            Value::Int(i, _) if (0..=1).contains(i) => *i as f32,
            _ => {
                r.invalid(node.pos, "min_confidence", "must be a number from 0 to 1");
                0.5
            }
        },
        None => 0.5,
    };
    let timeout = r
        .opt_duration(f, "timeout")
        .unwrap_or(Duration::from_secs(5));
    if timeout.is_zero() {
        let pos = f.get("timeout").map_or(f.pos, |n| n.pos);
        r.invalid(pos, "timeout", "must be longer than zero");
    }
    Ask {
        prompt: req_prompt(r, f, "prompt"),
        barge_in: r.opt_bool(f, "barge_in").unwrap_or(true),
        speech: r.opt_bool(f, "speech").unwrap_or(true),
        timeout,
        retries: r
            .opt_int(f, "retries", 0..=9)
            .map_or(2, |n| u32::try_from(n).unwrap_or(2)),
        no_input: opt_prompt(r, f, "no_input"),
        no_match: opt_prompt(r, f, "no_match"),
        default: target(r, f, "default"),
        min_confidence,
    }
}

fn dtmf_key(r: &mut Reader<'_>, node: &Node, field: &str) -> Option<char> {
    let text = r.string(node, field)?;
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => Some(c),
        _ => {
            r.invalid(
                node.pos,
                field,
                format!("`{text}` is not one DTMF key (0-9, * or #)"),
            );
            None
        }
    }
}

fn parse_menu(r: &mut Reader<'_>, f: &Fields<'_>) -> Menu {
    let ask = parse_ask(r, f);
    let into = f.get("into").and_then(|n| variable(r, n, "into"));
    let mut choices: Vec<Choice> = Vec::new();
    let Some(node) = f.get("choices") else {
        r.missing(f, "choices");
        return Menu { ask, choices, into };
    };
    let Value::Map(entries) = &node.value else {
        r.wrong_type(node, "choices", "a mapping of choice names to choices");
        return Menu { ask, choices, into };
    };
    r.check_duplicates(entries, |key, first_line| FlowErrorKind::DuplicateKey {
        key: key.to_owned(),
        first_line,
    });
    let mut phrase_owner: Vec<(String, String)> = Vec::new();
    for (key, value) in entries {
        let context = format!("choice `{}`", key.name);
        let Some(cf) = r.fields(value, &key.name, &context, &["dtmf", "phrases", "next"]) else {
            continue;
        };
        let dtmf = cf.get("dtmf").and_then(|n| dtmf_key(r, n, "dtmf"));
        if let (Some(k), Some(n)) = (dtmf, cf.get("dtmf")) {
            if let Some(first) = choices.iter().find(|c| c.dtmf == Some(k)) {
                r.error(
                    n.pos,
                    FlowErrorKind::DuplicateDtmf {
                        key: k,
                        first: first.name.name.clone(),
                    },
                );
            }
        }
        let mut phrases = Vec::new();
        if let Some(pn) = cf.get("phrases") {
            for item in r.list(pn, "phrases", true).unwrap_or_default() {
                let Some(text) = r.string(item, "phrases") else {
                    continue;
                };
                let norm = normalize(&text);
                if norm.is_empty() {
                    r.invalid(item.pos, "phrases", "a phrase needs at least one word");
                    continue;
                }
                if let Some((_, first)) = phrase_owner.iter().find(|(p, _)| *p == norm) {
                    if *first != key.name {
                        r.error(
                            item.pos,
                            FlowErrorKind::DuplicatePhrase {
                                phrase: norm.clone(),
                                first: first.clone(),
                            },
                        );
                    }
                    continue;
                }
                phrase_owner.push((norm, key.name.clone()));
                phrases.push(text);
            }
        }
        if dtmf.is_none() && phrases.is_empty() && !cf.has("dtmf") && !cf.has("phrases") {
            r.invalid(
                key.pos,
                "choices",
                format!("choice `{}` needs a `dtmf` key or `phrases`", key.name),
            );
        }
        choices.push(Choice {
            name: Named {
                name: key.name.clone(),
                pos: key.pos,
            },
            dtmf,
            phrases,
            next: target(r, &cf, "next"),
        });
    }
    if choices.is_empty() && entries.is_empty() {
        r.invalid(node.pos, "choices", "a menu needs at least one choice");
    }
    if !ask.speech && choices.iter().all(|c| c.dtmf.is_none()) && !choices.is_empty() {
        r.invalid(
            node.pos,
            "choices",
            "with `speech: false` every choice needs a `dtmf` key",
        );
    }
    Menu { ask, choices, into }
}

fn parse_collect(r: &mut Reader<'_>, f: &Fields<'_>) -> Collect {
    let ask = parse_ask(r, f);
    let into = match f.get("into") {
        Some(n) => variable(r, n, "into").unwrap_or_else(|| empty_named(n.pos)),
        None => {
            r.missing(f, "into");
            empty_named(f.pos)
        }
    };
    let (mut min, mut max, mut terminator) = (1, 16, None);
    if let Some(node) = f.get("digits") {
        if let Some(df) = r.fields(node, "digits", "`digits`", &["min", "max", "terminator"]) {
            min = r.opt_int(&df, "min", 1..=32).unwrap_or(1);
            max = r.opt_int(&df, "max", 1..=32).unwrap_or(16.max(min));
            terminator = df.get("terminator").and_then(|n| {
                let key = dtmf_key(r, n, "terminator")?;
                if key.is_ascii_digit() {
                    r.invalid(n.pos, "terminator", "must be `#` or `*`");
                    return None;
                }
                Some(key)
            });
            if min > max {
                r.invalid(
                    df.pos,
                    "digits",
                    format!("`min` ({min}) is above `max` ({max})"),
                );
            }
        }
    }
    let inter_digit_timeout = r
        .opt_duration(f, "inter_digit_timeout")
        .unwrap_or(Duration::from_secs(3));
    Collect {
        ask,
        into,
        min_digits: u32::try_from(min).unwrap_or(1),
        max_digits: u32::try_from(max).unwrap_or(16),
        terminator,
        inter_digit_timeout,
        next: target(r, f, "next"),
    }
}

fn parse_http(r: &mut Reader<'_>, f: &Fields<'_>) -> Http {
    let method = match f.get("method") {
        Some(node) => match r.string(node, "method").map(|m| m.to_ascii_uppercase()) {
            Some(m) if m == "GET" => HttpMethod::Get,
            Some(m) if m == "POST" => HttpMethod::Post,
            Some(m) => {
                r.invalid(node.pos, "method", format!("`{m}` is not `GET` or `POST`"));
                HttpMethod::Get
            }
            None => HttpMethod::Get,
        },
        None => HttpMethod::Get,
    };
    let url = match f.get("url") {
        Some(node) => r
            .template(node, "url")
            .unwrap_or_else(|| Template::literal("", node.pos)),
        None => {
            r.missing(f, "url");
            Template::literal("", f.pos)
        }
    };
    let literal_start = match url.parts.first() {
        Some(super::template::Part::Text(t)) => t.as_str(),
        _ => "",
    };
    let host_start = literal_start
        .strip_prefix("http://")
        .or_else(|| literal_start.strip_prefix("https://"));
    match host_start {
        None => r.invalid(url.pos, "url", "must start with `http://` or `https://`"),
        Some("") => r.invalid(
            url.pos,
            "url",
            "the host must be written out, not taken from a variable",
        ),
        Some(_) => {}
    }
    let body = f.get("body").map(|n| body_template(r, n));
    if body.is_some() && method == HttpMethod::Get {
        let pos = f.key("body").map_or(f.pos, |k| k.pos);
        r.invalid(pos, "body", "a GET request has no body; use `method: POST`");
    }
    let timeout = r
        .opt_duration(f, "timeout")
        .unwrap_or(Duration::from_secs(3));
    if timeout.is_zero() || timeout > Duration::from_secs(30) {
        let pos = f.get("timeout").map_or(f.pos, |n| n.pos);
        r.invalid(pos, "timeout", "must be between 1ms and 30s");
    }
    let mut set = Vec::new();
    if let Some(node) = f.get("set") {
        if let Value::Map(entries) = &node.value {
            r.check_duplicates(entries, |key, first_line| FlowErrorKind::DuplicateKey {
                key: key.to_owned(),
                first_line,
            });
            for (key, value) in entries {
                let Some(var) = settable_name(r, &key.name, key.pos, "set") else {
                    continue;
                };
                let Some(path) = r.string(value, &key.name) else {
                    continue;
                };
                match extract(&path) {
                    Some(segments) => set.push((
                        var,
                        Extract {
                            written: path,
                            segments,
                        },
                    )),
                    None => r.invalid(
                        value.pos,
                        &key.name,
                        format!("`{path}` is not a JSON pointer (`/a/b`) or dotted path (`a.b`)"),
                    ),
                }
            }
        } else {
            r.wrong_type(node, "set", "a mapping of variables to response fields");
        }
    }
    Http {
        method,
        url,
        body,
        timeout,
        set,
        on_success: target(r, f, "on_success"),
        on_failure: target(r, f, "on_failure"),
    }
}

/// Split a JSON pointer or dotted path into segments.
fn extract(path: &str) -> Option<Vec<String>> {
    if path.is_empty() {
        return None;
    }
    if let Some(rest) = path.strip_prefix('/') {
        return Some(
            rest.split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
        );
    }
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    segments.iter().all(|s| !s.is_empty()).then_some(segments)
}

fn body_template(r: &mut Reader<'_>, node: &Node) -> BodyTemplate {
    match &node.value {
        Value::Null => BodyTemplate::Null,
        Value::Bool(b, _) => BodyTemplate::Bool(*b),
        Value::Int(i, _) => BodyTemplate::Number((*i).into()),
        Value::Float(x, raw) => serde_json::Number::from_f64(*x)
            .map(BodyTemplate::Number)
            .unwrap_or_else(|| BodyTemplate::Text(Template::literal(raw, node.pos))),
        Value::Str(_) => BodyTemplate::Text(
            r.template(node, "body")
                .unwrap_or_else(|| Template::literal("", node.pos)),
        ),
        Value::Seq(items) => {
            BodyTemplate::List(items.iter().map(|i| body_template(r, i)).collect())
        }
        Value::Map(entries) => BodyTemplate::Object(
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), body_template(r, v)))
                .collect(),
        ),
    }
}

fn parse_set(r: &mut Reader<'_>, f: &Fields<'_>) -> StepKind {
    let mut vars = Vec::new();
    match f.get("vars") {
        Some(node) => match &node.value {
            Value::Map(entries) => {
                r.check_duplicates(entries, |key, first_line| FlowErrorKind::DuplicateKey {
                    key: key.to_owned(),
                    first_line,
                });
                for (key, value) in entries {
                    let var = settable_name(r, &key.name, key.pos, "vars");
                    let template = if matches!(value.value, Value::Null) {
                        Some(Template::literal("", value.pos))
                    } else {
                        r.template(value, &key.name)
                    };
                    if let (Some(var), Some(template)) = (var, template) {
                        vars.push((var, template));
                    }
                }
            }
            _ => r.wrong_type(node, "vars", "a mapping of variables to values"),
        },
        None => r.missing(f, "vars"),
    }
    StepKind::Set {
        vars,
        next: target(r, f, "next"),
    }
}

fn parse_branch(r: &mut Reader<'_>, f: &Fields<'_>) -> StepKind {
    let mut rules = Vec::new();
    match f.get("conditions") {
        Some(node) => {
            for item in r.list(node, "conditions", false).unwrap_or_default() {
                let Some(rf) = r.fields(item, "conditions", "a condition", &["if", "next"]) else {
                    continue;
                };
                let condition = match rf.get("if") {
                    Some(c) => condition(r, c),
                    None => {
                        r.missing(&rf, "if");
                        None
                    }
                };
                let next = target(r, &rf, "next");
                if let Some(condition) = condition {
                    rules.push(Rule { condition, next });
                }
            }
        }
        None => r.missing(f, "conditions"),
    }
    StepKind::Branch {
        rules,
        default: target(r, f, "default"),
    }
}

fn condition(r: &mut Reader<'_>, node: &Node) -> Option<Condition> {
    let f = r.fields(node, "if", "a condition", &CONDITION_KEYS)?;
    let heads: Vec<&str> = [
        "var", "open", "holiday", "weekday", "time", "all", "any", "not",
    ]
    .into_iter()
    .filter(|k| f.has(k))
    .collect();
    if heads.len() != 1 {
        r.invalid(
            f.pos,
            "if",
            "a condition is one of `var` (with eq, ne, lt, le, gt, ge, in, not_in or present), `open`, `holiday`, `weekday`, `time`, `all`, `any` or `not`",
        );
        return None;
    }
    let head = heads[0];
    let node_of = |k: &str| f.get(k).map_or(f.pos, |n| n.pos);
    match head {
        "var" => {
            let vnode = f.get("var")?;
            let name = r.string(vnode, "var")?;
            if !is_variable_name(&name) {
                r.invalid(vnode.pos, "var", format!("`{name}` is not a variable name"));
                return None;
            }
            let var = Named {
                name,
                pos: vnode.pos,
            };
            let ops: Vec<&str> = [
                "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "present",
            ]
            .into_iter()
            .filter(|k| f.has(k))
            .collect();
            if ops.len() != 1 {
                r.invalid(
                    vnode.pos,
                    "if",
                    "`var` needs exactly one of eq, ne, lt, le, gt, ge, in, not_in or present",
                );
                return None;
            }
            let op = ops[0];
            let onode = f.get(op)?;
            match op {
                "present" => match &onode.value {
                    Value::Bool(b, _) => Some(Condition::Present { var, present: *b }),
                    _ => {
                        r.wrong_type(onode, "present", "`true` or `false`");
                        None
                    }
                },
                "in" | "not_in" => {
                    let items = r.list(onode, op, false)?;
                    let values = items
                        .into_iter()
                        .map(|i| r.template(i, op))
                        .collect::<Option<Vec<_>>>()?;
                    Some(Condition::In {
                        var,
                        values,
                        negate: op == "not_in",
                    })
                }
                _ => {
                    let cmp = CmpOp::ALL.iter().find(|(n, _)| *n == op).map(|(_, c)| *c)?;
                    Some(Condition::Compare {
                        var,
                        op: cmp,
                        value: r.template(onode, op)?,
                    })
                }
            }
        }
        "open" | "holiday" => {
            let n = f.get(head)?;
            let calendar = Named {
                name: r.string(n, head)?,
                pos: n.pos,
            };
            Some(if head == "open" {
                Condition::Open { calendar }
            } else {
                Condition::Holiday { calendar }
            })
        }
        "weekday" => {
            let n = f.get("weekday")?;
            let mut days = Vec::new();
            for item in r.list(n, "weekday", true)? {
                let text = r.string(item, "weekday")?;
                match Weekday::parse(&text) {
                    Some(d) => days.push(d),
                    None => {
                        let names = Weekday::ALL.map(Weekday::short_name);
                        let s = suggest(&text, names);
                        r.invalid(
                            item.pos,
                            "weekday",
                            format!("`{text}` is not a weekday{}", DidYouMean(s)),
                        );
                        return None;
                    }
                }
            }
            Some(Condition::Weekday(days))
        }
        "time" => {
            let n = f.get("time")?;
            let text = r.string(n, "time")?;
            let parsed = text.split_once('-').and_then(|(a, b)| {
                let a: TimeOfDay = a.trim().parse().ok()?;
                let b: TimeOfDay = b.trim().parse().ok()?;
                (a < b).then_some((a, b))
            });
            match parsed {
                Some((a, b)) => Some(Condition::TimeBetween(a, b)),
                None => {
                    r.invalid(
                        node_of("time"),
                        "time",
                        format!("`{text}` is not a range like `09:00-17:00`"),
                    );
                    None
                }
            }
        }
        "all" | "any" => {
            let n = f.get(head)?;
            let items = r.list(n, head, false)?;
            let parts: Vec<Condition> = items.into_iter().filter_map(|i| condition(r, i)).collect();
            Some(if head == "all" {
                Condition::All(parts)
            } else {
                Condition::Any(parts)
            })
        }
        _ => {
            let n = f.get("not")?;
            condition(r, n).map(|c| Condition::Not(Box::new(c)))
        }
    }
}

fn parse_queue(r: &mut Reader<'_>, f: &Fields<'_>) -> QueueStep {
    let queue = name_field(r, f, "queue");
    let priority = f.get("priority").and_then(|n| {
        let t = r.template(n, "priority")?;
        if let Some(lit) = t.as_literal() {
            if lit.trim().parse::<i32>().is_err() {
                r.invalid(n.pos, "priority", format!("`{lit}` is not a whole number"));
            }
        }
        Some(t)
    });
    let mut skills = Vec::new();
    if let Some(node) = f.get("skills") {
        for item in r.list(node, "skills", true).unwrap_or_default() {
            match &item.value {
                Value::Map(_) => {
                    let Some(sf) = r.fields(item, "skills", "a skill", &["name", "min_level"])
                    else {
                        continue;
                    };
                    let Some(nn) = sf.get("name") else {
                        r.missing(&sf, "name");
                        continue;
                    };
                    let level = r.opt_int(&sf, "min_level", 1..=10);
                    if let Some(name) = r.template(nn, "name") {
                        skills.push(SkillSpec {
                            name,
                            min_level: level.and_then(|l| u8::try_from(l).ok()),
                        });
                    }
                }
                _ => {
                    if let Some(name) = r.template(item, "skills") {
                        skills.push(SkillSpec {
                            name,
                            min_level: None,
                        });
                    }
                }
            }
        }
    }
    let mut attributes = Vec::new();
    if let Some(node) = f.get("attributes") {
        match &node.value {
            Value::Map(entries) => {
                r.check_duplicates(entries, |key, first_line| FlowErrorKind::DuplicateKey {
                    key: key.to_owned(),
                    first_line,
                });
                for (key, value) in entries {
                    if let Some(t) = r.template(value, &key.name) {
                        attributes.push((key.name.clone(), t));
                    }
                }
            }
            _ => r.wrong_type(node, "attributes", "a mapping of names to values"),
        }
    }
    let callback = f.get("callback").and_then(|node| {
        let cf = r.fields(node, "callback", "`callback`", &["offer_after", "prompt"])?;
        let offer_after = match r.opt_duration(&cf, "offer_after") {
            Some(d) => d,
            None => {
                if !cf.has("offer_after") {
                    r.missing(&cf, "offer_after");
                }
                return None;
            }
        };
        Some(CallbackSpec {
            offer_after,
            prompt: opt_prompt(r, &cf, "prompt"),
        })
    });
    QueueStep {
        queue,
        priority,
        skills,
        attributes,
        callback,
    }
}

fn parse_transfer(r: &mut Reader<'_>, f: &Fields<'_>) -> TransferStep {
    match (f.get("user"), f.get("number")) {
        (Some(user), None) => {
            if let Some(k) = f.key("trunk") {
                r.invalid(k.pos, "trunk", "a transfer to a `user` takes no `trunk`");
            }
            let name = r.string(user, "user").unwrap_or_default();
            TransferStep::User(Named {
                name,
                pos: user.pos,
            })
        }
        (None, Some(number)) => {
            let number_t = r
                .template(number, "number")
                .unwrap_or_else(|| Template::literal("", number.pos));
            let trunk = f.get("trunk").and_then(|n| {
                Some(Named {
                    name: r.string(n, "trunk")?,
                    pos: n.pos,
                })
            });
            TransferStep::Number {
                number: number_t,
                trunk,
            }
        }
        _ => {
            r.invalid(
                f.pos,
                "transfer",
                "give exactly one of `user` or `number` (with an optional `trunk`)",
            );
            TransferStep::User(empty_named(f.pos))
        }
    }
}
