//! YAML → validated [`AcdConfig`]: one pass over a positioned node tree,
//! collecting every problem (unknown fields, bad values, dangling
//! references, duplicates) before building anything.

use crate::text::edit_distance;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::node::{parse_document, sanitize, Key, Node, Pos, Value};
use super::{
    AcdConfig, AcdConfigError, AgentConfig, CallbackMode, CallbackSettings, OverflowTarget,
    PriorityRule, QueueConfig, ServiceLevelTarget, SkillRequirement, Strategy, WideningStep,
};

const TOP_FIELDS: &[&str] = &["queues", "agents"];
const QUEUE_FIELDS: &[&str] = &[
    "name",
    "strategy",
    "skills",
    "widening",
    "priority_rules",
    "max_wait",
    "on_max_wait",
    "max_length",
    "on_full",
    "wrap_up",
    "ring_timeout",
    "sticky_wait",
    "announce_every",
    "service_level",
    "short_abandon",
    "expected_handle_time",
    "weight",
    "callback",
    "survey_flow",
    "record",
    "hold_music",
];
const WIDENING_FIELDS: &[&str] = &["after", "relax", "drop", "add_skills", "overflow_queues"];
const RULE_FIELDS: &[&str] = &["when", "add"];
const CALLBACK_FIELDS: &[&str] = &[
    "offer_when_wait_over",
    "retry_delay",
    "max_attempts",
    "mode",
    "attempt_timeout",
];
const TARGET_FIELDS: &[&str] = &["queue", "flow", "number"];
const AGENT_FIELDS: &[&str] = &[
    "id",
    "name",
    "extension",
    "skills",
    "attributes",
    "wrap_up",
    "api_token",
    "queues",
];
const MODES: &[&str] = &["agent-first", "customer-first"];

pub(super) fn parse(path: &str, text: &str) -> Result<AcdConfig, Vec<AcdConfigError>> {
    let mut v = Validator {
        file: path.to_owned(),
        errors: Vec::new(),
    };
    let doc = match parse_document(text) {
        Ok(doc) => doc,
        Err((pos, msg)) => {
            v.err(pos, msg);
            return Err(v.errors);
        }
    };
    let config = v.document(&doc);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        v.errors.sort_by_key(|e| (e.line, e.col));
        Err(v.errors)
    }
}

struct Validator {
    file: String,
    errors: Vec<AcdConfigError>,
}

/// A mapping's entries, checked against the allowed names.
struct Fields<'a> {
    entries: Vec<(&'a Key, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, n)| *n)
    }

    /// Like `get`, but an explicit `~` counts as absent.
    fn opt(&self, name: &str) -> Option<&'a Node> {
        self.get(name).filter(|n| !matches!(n.value, Value::Null))
    }
}

/// A reference to a queue, checked once all queue names are known.
struct QueueRef {
    pos: Pos,
    name: String,
    /// The queue that refers (to forbid overflowing into oneself).
    from: Option<String>,
}

impl Validator {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(AcdConfigError {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    fn document(&mut self, doc: &Node) -> AcdConfig {
        let mut config = AcdConfig::default();
        if matches!(doc.value, Value::Null) {
            return config;
        }
        let Some(top) = self.fields(doc, TOP_FIELDS, "top-level field") else {
            return config;
        };
        let mut refs = Vec::new();
        let mut queue_names: Vec<(String, Pos)> = Vec::new();
        if let Some(list) = top.opt("queues").and_then(|n| self.seq(n)) {
            for item in list {
                if let Some(q) = self.queue(item, &mut refs) {
                    if let Some((_, first)) = queue_names.iter().find(|(n, _)| *n == q.name) {
                        let msg = format!(
                            "duplicate queue name `{}` (first defined at {}:{})",
                            sanitize(&q.name),
                            first.line,
                            first.col
                        );
                        self.err(name_pos(item), msg);
                    } else {
                        queue_names.push((q.name.clone(), name_pos(item)));
                    }
                    config.queues.push(q);
                }
            }
        }
        if let Some(list) = top.opt("agents").and_then(|n| self.seq(n)) {
            let mut ids: HashMap<String, Pos> = HashMap::new();
            let mut extensions: HashMap<String, Pos> = HashMap::new();
            let mut tokens: HashMap<String, Pos> = HashMap::new();
            for item in list {
                let Some(a) = self.agent(item, &mut refs) else {
                    continue;
                };
                let f = self.peek_fields(item);
                let at = |name: &str| f.get(name).map_or(item.pos, |n| n.pos);
                if let Some(first) = ids.get(&a.id) {
                    let msg = format!(
                        "duplicate agent id `{}` (first defined at {}:{})",
                        sanitize(&a.id),
                        first.line,
                        first.col
                    );
                    self.err(at("id"), msg);
                } else {
                    ids.insert(a.id.clone(), at("id"));
                }
                if let Some(first) = extensions.get(&a.extension) {
                    let msg = format!(
                        "extension `{}` is already used by another agent (at {}:{})",
                        sanitize(&a.extension),
                        first.line,
                        first.col
                    );
                    self.err(at("extension"), msg);
                } else {
                    extensions.insert(a.extension.clone(), at("extension"));
                }
                if let Some(token) = &a.api_token {
                    if let Some(first) = tokens.get(token) {
                        let msg = format!(
                            "api_token is the same as another agent's (at {}:{})",
                            first.line, first.col
                        );
                        self.err(at("api_token"), msg);
                    } else {
                        tokens.insert(token.clone(), at("api_token"));
                    }
                }
                config.agents.push(a);
            }
        }
        let names: Vec<&str> = queue_names.iter().map(|(n, _)| n.as_str()).collect();
        for r in refs {
            if !names.contains(&r.name.as_str()) {
                let msg = unknown_word("queue", &r.name, &names);
                self.err(r.pos, msg);
            } else if r.from.as_deref() == Some(r.name.as_str()) {
                let msg = format!("queue `{}` cannot overflow into itself", sanitize(&r.name));
                self.err(r.pos, msg);
            }
        }
        config
    }

    fn queue(&mut self, node: &Node, refs: &mut Vec<QueueRef>) -> Option<QueueConfig> {
        let f = self.fields(node, QUEUE_FIELDS, "queue field")?;
        let name = match f.get("name") {
            Some(n) => self.name(n)?,
            None => {
                self.err(node.pos, "queue needs a `name`");
                return None;
            }
        };
        let mut q = QueueConfig::new(&name);
        if let Some(n) = f.opt("strategy") {
            if let Some(s) = self.string(n) {
                match Strategy::from_name(&s) {
                    Some(st) => q.strategy = st,
                    None => {
                        let msg = unknown_word("strategy", &s, &Strategy::NAMES);
                        self.err(n.pos, msg);
                    }
                }
            }
        }
        if let Some(n) = f.opt("skills") {
            q.skills = self.skill_reqs(n);
        }
        if let Some(list) = f.opt("widening").and_then(|n| self.seq(n)) {
            let mut last: Option<Duration> = None;
            for item in list {
                if let Some(step) = self.widening(item, &name, refs) {
                    if last.is_some_and(|l| step.after <= l) {
                        let pos = self
                            .peek_fields(item)
                            .get("after")
                            .map_or(item.pos, |n| n.pos);
                        self.err(
                            pos,
                            "widening steps must come in increasing order of `after`",
                        );
                    }
                    last = Some(step.after);
                    q.widening.push(step);
                }
            }
        }
        if let Some(list) = f.opt("priority_rules").and_then(|n| self.seq(n)) {
            for item in list {
                if let Some(rule) = self.rule(item) {
                    q.priority_rules.push(rule);
                }
            }
        }
        if let Some(n) = f.opt("max_wait") {
            q.max_wait = self.positive_duration(n);
        }
        if let Some(n) = f.opt("on_max_wait") {
            if let Some(t) = self.target(n, &name, refs) {
                q.on_max_wait = t;
            }
        }
        if let Some(n) = f.opt("max_length") {
            q.max_length = self
                .int_in(n, 1, i64::from(u32::MAX))
                .map(|v| usize::try_from(v).unwrap_or(usize::MAX));
        }
        if let Some(n) = f.opt("on_full") {
            if let Some(t) = self.target(n, &name, refs) {
                q.on_full = t;
            }
        } else {
            q.on_full = q.on_max_wait.clone();
        }
        if let Some(d) = f.opt("wrap_up").and_then(|n| self.duration(n)) {
            q.wrap_up = d;
        }
        if let Some(d) = f
            .opt("ring_timeout")
            .and_then(|n| self.positive_duration(n))
        {
            q.ring_timeout = d;
        }
        if let Some(d) = f.opt("sticky_wait").and_then(|n| self.duration(n)) {
            q.sticky_wait = d;
        }
        if let Some(n) = f.opt("announce_every") {
            q.announce_every = self.positive_duration(n);
        }
        if let Some(n) = f.opt("service_level") {
            if let Some(s) = self.string(n) {
                match parse_service_level(&s) {
                    Ok(t) => q.service_level = t,
                    Err(e) => self.err(n.pos, e),
                }
            }
        }
        if let Some(d) = f.opt("short_abandon").and_then(|n| self.duration(n)) {
            q.short_abandon = d;
        }
        if let Some(d) = f
            .opt("expected_handle_time")
            .and_then(|n| self.positive_duration(n))
        {
            q.expected_handle_time = d;
        }
        if let Some(n) = f.opt("weight") {
            match n.value {
                Value::Int(i) if i > 0 => q.weight = i as f64,
                Value::Float(x) if x > 0.0 && x.is_finite() => q.weight = x,
                _ => self.err(n.pos, "`weight` must be a number greater than 0"),
            }
        }
        if let Some(n) = f.get("callback") {
            q.callback = self.callback(n);
        }
        if let Some(n) = f.opt("survey_flow") {
            q.survey_flow = self.name(n);
        }
        if let Some(n) = f.opt("record") {
            if let Some(b) = self.boolean(n) {
                q.record = b;
            }
        }
        if let Some(n) = f.opt("hold_music") {
            q.hold_music = self.name(n);
        }
        Some(q)
    }

    fn widening(
        &mut self,
        node: &Node,
        queue: &str,
        refs: &mut Vec<QueueRef>,
    ) -> Option<WideningStep> {
        let f = self.fields(node, WIDENING_FIELDS, "widening field")?;
        let mut step = WideningStep::default();
        match f.get("after") {
            Some(n) => step.after = self.positive_duration(n)?,
            None => {
                self.err(node.pos, "widening step needs `after` (e.g. `after: 30s`)");
                return None;
            }
        }
        if let Some(n) = f.opt("relax") {
            step.relax = self.skill_reqs(n);
        }
        if let Some(list) = f.opt("drop").and_then(|n| self.seq(n)) {
            for item in list {
                if let Some(s) = self.name(item) {
                    step.drop.push(s);
                }
            }
        }
        if let Some(n) = f.opt("add_skills") {
            step.add_skills = self.skill_reqs(n);
        }
        if let Some(list) = f.opt("overflow_queues").and_then(|n| self.seq(n)) {
            for item in list {
                if let Some(s) = self.name(item) {
                    refs.push(QueueRef {
                        pos: item.pos,
                        name: s.clone(),
                        from: Some(queue.to_owned()),
                    });
                    step.overflow_queues.push(s);
                }
            }
        }
        if step.relax.is_empty()
            && step.drop.is_empty()
            && step.add_skills.is_empty()
            && step.overflow_queues.is_empty()
        {
            self.err(
                node.pos,
                "widening step changes nothing: give `relax`, `drop`, `add_skills` or `overflow_queues`",
            );
        }
        Some(step)
    }

    fn rule(&mut self, node: &Node) -> Option<PriorityRule> {
        let f = self.fields(node, RULE_FIELDS, "priority rule field")?;
        let mut when = BTreeMap::new();
        match f.opt("when") {
            Some(n) => {
                if let Some(entries) = self.map_entries(n) {
                    for (k, v) in entries {
                        if let Some(s) = self.scalar_string(v) {
                            when.insert(k.name.clone(), s);
                        }
                    }
                }
            }
            None => self.err(node.pos, "priority rule needs `when` (attribute: value)"),
        }
        let add = match f.get("add") {
            Some(n) => i32::try_from(self.int_in(n, -1_000_000, 1_000_000)?).ok()?,
            None => {
                self.err(node.pos, "priority rule needs `add` (a whole number)");
                return None;
            }
        };
        Some(PriorityRule { when, add })
    }

    fn callback(&mut self, node: &Node) -> Option<CallbackSettings> {
        match node.value {
            Value::Null | Value::Bool(false) => return None,
            Value::Bool(true) => return Some(CallbackSettings::default()),
            _ => {}
        }
        let f = self.fields(node, CALLBACK_FIELDS, "callback field")?;
        let mut c = CallbackSettings::default();
        if let Some(d) = f.opt("offer_when_wait_over").and_then(|n| self.duration(n)) {
            c.offer_when_wait_over = d;
        }
        if let Some(d) = f.opt("retry_delay").and_then(|n| self.duration(n)) {
            c.retry_delay = d;
        }
        if let Some(n) = f.opt("max_attempts") {
            if let Some(v) = self.int_in(n, 1, 100) {
                c.max_attempts = u32::try_from(v).unwrap_or(1);
            }
        }
        if let Some(n) = f.opt("mode") {
            if let Some(s) = self.string(n) {
                match s.as_str() {
                    "agent-first" => c.mode = CallbackMode::AgentFirst,
                    "customer-first" => c.mode = CallbackMode::CustomerFirst,
                    _ => {
                        let msg = unknown_word("callback mode", &s, MODES);
                        self.err(n.pos, msg);
                    }
                }
            }
        }
        if let Some(d) = f
            .opt("attempt_timeout")
            .and_then(|n| self.positive_duration(n))
        {
            c.attempt_timeout = d;
        }
        Some(c)
    }

    fn target(
        &mut self,
        node: &Node,
        queue: &str,
        refs: &mut Vec<QueueRef>,
    ) -> Option<OverflowTarget> {
        if let Value::Str(s) = &node.value {
            if s == "voicemail" {
                return Some(OverflowTarget::Voicemail);
            }
            let msg = format!(
                "unknown overflow target `{}`; use `voicemail`, {{queue: name}}, {{flow: name}} or {{number: \"…\"}}",
                sanitize(s)
            );
            self.err(node.pos, msg);
            return None;
        }
        let f = self.fields(node, TARGET_FIELDS, "overflow target")?;
        if f.entries.len() != 1 {
            self.err(
                node.pos,
                "an overflow target names exactly one of `queue`, `flow` or `number`",
            );
            return None;
        }
        let (key, value) = f.entries[0];
        let name = self.name(value)?;
        Some(match key.name.as_str() {
            "queue" => {
                refs.push(QueueRef {
                    pos: value.pos,
                    name: name.clone(),
                    from: Some(queue.to_owned()),
                });
                OverflowTarget::Queue(name)
            }
            "flow" => OverflowTarget::Flow(name),
            _ => OverflowTarget::Number(name),
        })
    }

    fn agent(&mut self, node: &Node, refs: &mut Vec<QueueRef>) -> Option<AgentConfig> {
        let f = self.fields(node, AGENT_FIELDS, "agent field")?;
        let id = match f.get("id") {
            Some(n) => self.name(n)?,
            None => {
                self.err(node.pos, "agent needs an `id`");
                return None;
            }
        };
        let mut a = AgentConfig::new(&id);
        if let Some(s) = f.opt("name").and_then(|n| self.name(n)) {
            a.name = s;
        }
        match f.opt("extension") {
            Some(n) => {
                if let Some(s) = self.name(n) {
                    a.extension = s;
                }
            }
            None => self.err(
                node.pos,
                "agent needs an `extension` (how the call core reaches them)",
            ),
        }
        if let Some(entries) = f.opt("skills").and_then(|n| self.map_entries(n)) {
            for (k, v) in entries {
                if let Some(p) = self.proficiency(v) {
                    a.skills.insert(k.name.clone(), p);
                }
            }
        }
        if let Some(entries) = f.opt("attributes").and_then(|n| self.map_entries(n)) {
            for (k, v) in entries {
                if let Some(s) = self.scalar_string(v) {
                    a.attributes.insert(k.name.clone(), s);
                }
            }
        }
        if let Some(n) = f.opt("wrap_up") {
            a.wrap_up = self.duration(n);
        }
        if let Some(n) = f.opt("api_token") {
            if let Some(t) = self.name(n) {
                if t.len() < 16 {
                    self.err(n.pos, "api_token must be at least 16 characters");
                }
                a.api_token = Some(t);
            }
        }
        if let Some(list) = f.opt("queues").and_then(|n| self.seq(n)) {
            let mut qs = Vec::new();
            for item in list {
                if let Some(s) = self.name(item) {
                    refs.push(QueueRef {
                        pos: item.pos,
                        name: s.clone(),
                        from: None,
                    });
                    qs.push(s);
                }
            }
            a.queues = Some(qs);
        }
        Some(a)
    }

    // ----- leaves ------------------------------------------------------------

    /// The mapping's entries; unknown and duplicate keys reported.
    fn fields<'a>(&mut self, node: &'a Node, allowed: &[&str], what: &str) -> Option<Fields<'a>> {
        let entries = self.map_entries(node)?;
        let mut kept: Vec<(&Key, &Node)> = Vec::new();
        for (k, v) in entries {
            if !allowed.contains(&k.name.as_str()) {
                let msg = unknown_word(what, &k.name, allowed);
                self.err(k.pos, msg);
            } else if let Some((first, _)) = kept.iter().find(|(f, _)| f.name == k.name) {
                let msg = format!(
                    "`{}` given twice (first at {}:{})",
                    k.name, first.pos.line, first.pos.col
                );
                self.err(k.pos, msg);
            } else {
                kept.push((k, v));
            }
        }
        Some(Fields { entries: kept })
    }

    /// Entries without validation (for positions of already-checked fields).
    fn peek_fields<'a>(&self, node: &'a Node) -> Fields<'a> {
        let entries = match &node.value {
            Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
            _ => Vec::new(),
        };
        Fields { entries }
    }

    fn map_entries<'a>(&mut self, node: &'a Node) -> Option<&'a [(Key, Node)]> {
        match &node.value {
            Value::Map(m) => Some(m),
            other => {
                let msg = format!("expected a mapping, found {}", other.kind());
                self.err(node.pos, msg);
                None
            }
        }
    }

    fn seq<'a>(&mut self, node: &'a Node) -> Option<&'a [Node]> {
        match &node.value {
            Value::Seq(s) => Some(s),
            other => {
                let msg = format!("expected a list, found {}", other.kind());
                self.err(node.pos, msg);
                None
            }
        }
    }

    fn string(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            other => {
                let msg = format!("expected a string, found {}", other.kind());
                self.err(node.pos, msg);
                None
            }
        }
    }

    /// A non-empty identifier-like string (numbers are accepted as text).
    fn name(&mut self, node: &Node) -> Option<String> {
        let s = match &node.value {
            Value::Int(i) => i.to_string(),
            _ => self.string(node)?,
        };
        if s.trim().is_empty() {
            self.err(node.pos, "must not be empty");
            return None;
        }
        if s.chars().any(char::is_control) {
            self.err(node.pos, "must not contain control characters");
            return None;
        }
        Some(s)
    }

    /// Strings, whole numbers and booleans, as text (attribute values).
    fn scalar_string(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                let msg = format!(
                    "expected a string, number or boolean, found {}",
                    other.kind()
                );
                self.err(node.pos, msg);
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            ref other => {
                let msg = format!("expected `true` or `false`, found {}", other.kind());
                self.err(node.pos, msg);
                None
            }
        }
    }

    fn int_in(&mut self, node: &Node, min: i64, max: i64) -> Option<i64> {
        match node.value {
            Value::Int(i) if (min..=max).contains(&i) => Some(i),
            Value::Int(i) => {
                let msg = format!("{i} is out of range ({min} to {max})");
                self.err(node.pos, msg);
                None
            }
            ref other => {
                let msg = format!("expected a whole number, found {}", other.kind());
                self.err(node.pos, msg);
                None
            }
        }
    }

    fn proficiency(&mut self, node: &Node) -> Option<u8> {
        match node.value {
            Value::Int(i) if (1..=5).contains(&i) => u8::try_from(i).ok(),
            _ => {
                self.err(node.pos, "proficiency must be a whole number from 1 to 5");
                None
            }
        }
    }

    fn skill_reqs(&mut self, node: &Node) -> Vec<SkillRequirement> {
        let mut out = Vec::new();
        if let Some(entries) = self.map_entries(node) {
            for (k, v) in entries {
                if let Some(min) = self.proficiency(v) {
                    out.push(SkillRequirement {
                        skill: k.name.clone(),
                        min,
                    });
                }
            }
        }
        out
    }

    fn duration(&mut self, node: &Node) -> Option<Duration> {
        match &node.value {
            Value::Int(i) if *i >= 0 => Some(Duration::from_secs(i.unsigned_abs())),
            Value::Str(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.err(node.pos, e);
                    None
                }
            },
            _ => {
                self.err(
                    node.pos,
                    "expected a duration such as `30s`, `2m`, `1h30m` or `500ms`",
                );
                None
            }
        }
    }

    fn positive_duration(&mut self, node: &Node) -> Option<Duration> {
        let d = self.duration(node)?;
        if d.is_zero() {
            self.err(node.pos, "must be longer than 0");
            return None;
        }
        Some(d)
    }
}

fn name_pos(node: &Node) -> Pos {
    match &node.value {
        Value::Map(m) => m
            .iter()
            .find(|(k, _)| k.name == "name")
            .map_or(node.pos, |(_, v)| v.pos),
        _ => node.pos,
    }
}

/// Parse `30s`, `2m`, `1h30m`, `500ms`, `1.5s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "invalid duration `{}`; use e.g. `30s`, `2m`, `1h30m` or `500ms`",
            sanitize(text)
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// `80% in 20s` (or `80/20`, percent / seconds).
fn parse_service_level(text: &str) -> Result<ServiceLevelTarget, String> {
    let bad = || {
        format!(
            "invalid service level `{}`; write it as `80% in 20s`",
            sanitize(text)
        )
    };
    let (pct, within) = if let Some((p, w)) = text.split_once(" in ") {
        (p.trim().trim_end_matches('%').trim(), parse_duration(w)?)
    } else if let Some((p, w)) = text.split_once('/') {
        let secs: u64 = w.trim().parse().map_err(|_| bad())?;
        (p.trim(), Duration::from_secs(secs))
    } else {
        return Err(bad());
    };
    let pct: f64 = pct.parse().map_err(|_| bad())?;
    if !(pct > 0.0 && pct <= 100.0) {
        return Err("service level percentage must be above 0 and at most 100".to_owned());
    }
    if within.is_zero() {
        return Err("service level time must be longer than 0".to_owned());
    }
    Ok(ServiceLevelTarget {
        fraction: pct / 100.0,
        within,
    })
}

/// "unknown {what} `x`; did you mean `y`?" or the list of expected names.
fn unknown_word(what: &str, word: &str, expected: &[&str]) -> String {
    let word = sanitize(word);
    match suggest(&word, expected) {
        Some(s) => format!("unknown {what} `{word}`; did you mean `{s}`?"),
        None if expected.is_empty() => format!("unknown {what} `{word}`"),
        None => format!(
            "unknown {what} `{word}`; expected one of {}",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The closest candidate within an edit distance of a third of the word
/// (at least 1, at most 3), case-insensitive.
fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let limit = (w.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("30x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn service_levels() {
        let t = parse_service_level("80% in 20s").unwrap();
        assert!((t.fraction - 0.8).abs() < 1e-9);
        assert_eq!(t.within, Duration::from_secs(20));
        let t = parse_service_level("90/30").unwrap();
        assert!((t.fraction - 0.9).abs() < 1e-9);
        assert_eq!(t.within, Duration::from_secs(30));
        assert!(parse_service_level("180% in 20s").is_err());
        assert!(parse_service_level("fast").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("strategi", QUEUE_FIELDS), Some("strategy"));
        assert_eq!(suggest("wrapup", QUEUE_FIELDS), Some("wrap_up"));
        assert_eq!(
            suggest("longest-idel", &Strategy::NAMES),
            Some("longest-idle")
        );
        assert_eq!(suggest("zzzz", QUEUE_FIELDS), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
