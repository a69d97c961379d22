//! Whole-program checks over parsed flows.
//!
//! Contract: [`check`] takes every parsed flow (each with the [`Reader`] of its
//! file) and records, without stopping at the first:
//!
//! - unknown transition targets, queues, users, trunks, prompt files,
//!   calendars and flows (with "did you mean");
//! - steps unreachable from the start step;
//! - flows that `call` each other in a circle;
//! - loops that can spin without waiting for the caller: a cycle in the global
//!   step graph (`goto`/`call` edges included) none of whose steps waits
//!   (menu, collect, record and play with `wait` wait; http does not);
//! - variables used (in `${...}` or a condition) that are not built in and are
//!   either set nowhere, or not set on every path to the use (definite
//!   assignment; an `http` step's variables count as set only on its success
//!   branch, a `present: true` condition sets its variable on its branch);
//! - `requires` of a flow entered by `goto`/`call` that may be unset there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::error::{suggest, Chain, DidYouMean, FlowErrorKind};
use super::model::*;
use super::reader::Reader;
use super::template::{is_builtin, Template, CALL_VARIABLES, TIME_VARIABLES};
use super::yaml::Pos;
use super::Known;

/// One outgoing transition and the variables it sets.
struct Edge<'a> {
    target: &'a Named,
    sets: Vec<&'a str>,
}

fn edges(kind: &StepKind) -> Vec<Edge<'_>> {
    let plain = |t| Edge {
        target: t,
        sets: Vec::new(),
    };
    match kind {
        StepKind::Answer { next } | StepKind::Play { next, .. } | StepKind::Call { next, .. } => {
            vec![plain(next)]
        }
        StepKind::Record(rec) => vec![plain(&rec.next)],
        StepKind::Menu(menu) => {
            let into: Vec<&str> = menu.into.iter().map(|n| n.name.as_str()).collect();
            menu.choices
                .iter()
                .map(|c| &c.next)
                .chain(std::iter::once(&menu.ask.default))
                .map(|t| Edge {
                    target: t,
                    sets: into.clone(),
                })
                .collect()
        }
        StepKind::Collect(c) => vec![
            Edge {
                target: &c.next,
                sets: vec![c.into.name.as_str()],
            },
            plain(&c.ask.default),
        ],
        StepKind::Http(h) => vec![
            Edge {
                target: &h.on_success,
                sets: h.set.iter().map(|(v, _)| v.name.as_str()).collect(),
            },
            plain(&h.on_failure),
        ],
        StepKind::Set { vars, next } => vec![Edge {
            target: next,
            sets: vars.iter().map(|(v, _)| v.name.as_str()).collect(),
        }],
        StepKind::Branch { rules, default } => rules
            .iter()
            .map(|r| {
                let mut sets = Vec::new();
                asserted_present(&r.condition, &mut sets);
                Edge {
                    target: &r.next,
                    sets,
                }
            })
            .chain(std::iter::once(plain(default)))
            .collect(),
        StepKind::Queue(_)
        | StepKind::Transfer(_)
        | StepKind::Goto { .. }
        | StepKind::Return
        | StepKind::Hangup => Vec::new(),
    }
}

/// Variables a condition guarantees to be set when it is true.
fn asserted_present<'a>(c: &'a Condition, out: &mut Vec<&'a str>) {
    match c {
        Condition::Present { var, present: true } => out.push(&var.name),
        Condition::All(parts) => parts.iter().for_each(|p| asserted_present(p, out)),
        _ => {}
    }
}

fn condition_uses<'a>(c: &'a Condition, vars: &mut Vec<&'a Named>, temps: &mut Vec<&'a Template>) {
    match c {
        Condition::Compare { var, value, .. } => {
            vars.push(var);
            temps.push(value);
        }
        Condition::In { var, values, .. } => {
            vars.push(var);
            temps.extend(values);
        }
        Condition::All(parts) | Condition::Any(parts) => {
            parts.iter().for_each(|p| condition_uses(p, vars, temps));
        }
        Condition::Not(inner) => condition_uses(inner, vars, temps),
        Condition::Present { .. }
        | Condition::Open { .. }
        | Condition::Holiday { .. }
        | Condition::Weekday(_)
        | Condition::TimeBetween(..) => {}
    }
}

fn conditions_in(c: &Condition, out: &mut Vec<Named>) {
    match c {
        Condition::Open { calendar } | Condition::Holiday { calendar } => {
            out.push(calendar.clone())
        }
        Condition::All(parts) | Condition::Any(parts) => {
            parts.iter().for_each(|p| conditions_in(p, out));
        }
        Condition::Not(inner) => conditions_in(inner, out),
        _ => {}
    }
}

fn prompts_of(kind: &StepKind) -> Vec<&PromptSpec> {
    let mut out = Vec::new();
    match kind {
        StepKind::Play { prompt, .. } => out.push(prompt),
        StepKind::Menu(m) => {
            out.push(&m.ask.prompt);
            out.extend(m.ask.no_input.iter());
            out.extend(m.ask.no_match.iter());
        }
        StepKind::Collect(c) => {
            out.push(&c.ask.prompt);
            out.extend(c.ask.no_input.iter());
            out.extend(c.ask.no_match.iter());
        }
        StepKind::Queue(q) => out.extend(q.callback.iter().filter_map(|c| c.prompt.as_ref())),
        StepKind::Record(r) => out.extend(r.prompt.iter()),
        _ => {}
    }
    out
}

/// Variable uses of a step: (variable, position). In a `set` step a value may
/// use a variable set by an earlier entry of the same step.
fn uses(kind: &StepKind, r: &Reader<'_>) -> Vec<(String, Pos)> {
    let mut temps: Vec<&Template> = prompts_of(kind)
        .into_iter()
        .map(PromptSpec::template)
        .collect();
    let mut vars: Vec<&Named> = Vec::new();
    match kind {
        StepKind::Http(h) => {
            temps.push(&h.url);
            if let Some(body) = &h.body {
                body.templates(&mut temps);
            }
        }
        StepKind::Set { vars: entries, .. } => {
            let mut out = Vec::new();
            let mut local: BTreeSet<&str> = BTreeSet::new();
            for (name, value) in entries {
                for v in value.vars() {
                    if !local.contains(v) {
                        out.push((v.to_owned(), r.var_pos(value, v)));
                    }
                }
                local.insert(&name.name);
            }
            return out;
        }
        StepKind::Branch { rules, .. } => {
            for rule in rules {
                condition_uses(&rule.condition, &mut vars, &mut temps);
            }
        }
        StepKind::Queue(q) => {
            temps.extend(q.priority.iter());
            temps.extend(q.skills.iter().map(|s| &s.name));
            temps.extend(q.attributes.iter().map(|(_, t)| t));
        }
        StepKind::Transfer(TransferStep::Number { number, .. }) => temps.push(number),
        StepKind::Record(rec) => temps.push(&rec.to),
        _ => {}
    }
    let mut out: Vec<(String, Pos)> = vars.iter().map(|n| (n.name.clone(), n.pos)).collect();
    for t in temps {
        for v in t.vars() {
            out.push((v.to_owned(), r.var_pos(t, v)));
        }
    }
    out
}

/// Strongly connected components (Tarjan), each in discovery order.
fn sccs(n: usize, succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        succ: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.succ[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            comp.reverse();
            s.out.push(comp);
        }
    }
    let mut s = State {
        succ,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

/// A shortest cycle from `start` back to itself inside `members`.
fn cycle_through(start: usize, members: &BTreeSet<usize>, succ: &[Vec<usize>]) -> Vec<usize> {
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut seen = BTreeSet::new();
    while let Some(v) = queue.pop_front() {
        for &w in &succ[v] {
            if !members.contains(&w) {
                continue;
            }
            if w == start {
                return rebuild(start, v, &prev);
            }
            if seen.insert(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start, start]
}

fn rebuild(start: usize, last: usize, prev: &BTreeMap<usize, usize>) -> Vec<usize> {
    let mut path = vec![last];
    let mut cur = last;
    while cur != start {
        cur = prev[&cur];
        path.push(cur);
    }
    path.reverse();
    path.push(start);
    path
}

/// Run every whole-program check. `flows[i]`'s errors go to `readers[i]`.
pub(crate) fn check(
    flows: &[Flow],
    readers: &mut [Reader<'_>],
    known: &Known,
    calendars: &BTreeSet<String>,
) {
    let by_name: BTreeMap<&str, usize> = flows
        .iter()
        .enumerate()
        .rev()
        .map(|(i, f)| (f.name.as_str(), i))
        .collect();
    for (flow, r) in flows.iter().zip(readers.iter_mut()) {
        check_references(flow, r, known, calendars, &by_name);
        if !flow.incomplete {
            check_reachable(flow, r);
        }
    }
    let order = check_call_cycles(flows, readers, &by_name);
    check_spin_loops(flows, readers, &by_name);
    check_variables(flows, readers, &by_name, &order);
}

fn unknown_name<'a>(
    r: &mut Reader<'_>,
    what: &'static str,
    name: &Named,
    candidates: impl IntoIterator<Item = &'a str>,
) {
    let suggestion = DidYouMean(suggest(&name.name, candidates));
    r.error(
        name.pos,
        FlowErrorKind::UnknownName {
            what,
            found: name.name.clone(),
            suggestion,
        },
    );
}

fn check_references(
    flow: &Flow,
    r: &mut Reader<'_>,
    known: &Known,
    calendars: &BTreeSet<String>,
    by_name: &BTreeMap<&str, usize>,
) {
    let declared = &flow.declared;
    let target = |r: &mut Reader<'_>, t: &Named, field: &str| {
        if !t.name.is_empty() && !declared.contains(&t.name) {
            let suggestion = DidYouMean(suggest(&t.name, declared.iter().map(String::as_str)));
            r.error(
                t.pos,
                FlowErrorKind::UnknownStep {
                    found: t.name.clone(),
                    field: field.to_owned(),
                    suggestion,
                },
            );
        }
    };
    target(r, &flow.start, "start");
    for step in &flow.steps {
        let kind = &step.kind;
        match kind {
            StepKind::Menu(m) => {
                for c in &m.choices {
                    target(r, &c.next, "next");
                }
                target(r, &m.ask.default, "default");
            }
            StepKind::Collect(c) => {
                target(r, &c.next, "next");
                target(r, &c.ask.default, "default");
            }
            StepKind::Http(h) => {
                target(r, &h.on_success, "on_success");
                target(r, &h.on_failure, "on_failure");
            }
            StepKind::Branch { rules, default } => {
                for rule in rules {
                    target(r, &rule.next, "next");
                }
                target(r, default, "default");
            }
            _ => {
                for e in edges(kind) {
                    target(r, e.target, "next");
                }
            }
        }
        match kind {
            StepKind::Queue(q)
                if !q.queue.name.is_empty() && !known.queues.contains(&q.queue.name) =>
            {
                let names = known.queues.iter().map(String::as_str);
                unknown_name(r, "queue", &q.queue, names);
            }
            StepKind::Queue(q)
                if q.callback.is_some() && !known.callback_queues.contains(&q.queue.name) =>
            {
                r.error(
                    q.queue.pos,
                    FlowErrorKind::InvalidValue {
                        field: "callback".into(),
                        problem: format!(
                            "queue `{}` has no callback settings in the contact centre, so this callback offer would never be made",
                            q.queue.name
                        ),
                    },
                );
            }
            StepKind::Transfer(TransferStep::User(u))
                if !u.name.is_empty() && !known.users.contains(&u.name) =>
            {
                unknown_name(r, "user", u, known.users.iter().map(String::as_str));
            }
            StepKind::Transfer(TransferStep::Number {
                trunk: Some(trunk), ..
            }) if !known.trunks.contains(&trunk.name) => {
                unknown_name(r, "trunk", trunk, known.trunks.iter().map(String::as_str));
            }
            StepKind::Goto { flow: f } | StepKind::Call { flow: f, .. }
                if !f.name.is_empty() && !by_name.contains_key(f.name.as_str()) =>
            {
                unknown_name(r, "flow", f, by_name.keys().copied());
            }
            StepKind::Branch { rules, .. } => {
                let mut cals = Vec::new();
                for rule in rules {
                    conditions_in(&rule.condition, &mut cals);
                }
                for cal in cals {
                    if !calendars.contains(&cal.name) {
                        unknown_name(r, "calendar", &cal, calendars.iter().map(String::as_str));
                    }
                }
            }
            _ => {}
        }
        for p in prompts_of(kind) {
            if let PromptSpec::File(t) = p {
                if let Some(file) = t.as_literal() {
                    if !known.prompts.contains(&file) {
                        let name = Named {
                            name: file,
                            pos: t.pos,
                        };
                        unknown_name(
                            r,
                            "prompt file",
                            &name,
                            known.prompts.iter().map(String::as_str),
                        );
                    }
                }
            }
        }
    }
}

fn check_reachable(flow: &Flow, r: &mut Reader<'_>) {
    let Some(&start) = flow.index.get(&flow.start.name) else {
        return;
    };
    let mut seen = vec![false; flow.steps.len()];
    seen[start] = true;
    let mut queue = VecDeque::from([start]);
    while let Some(i) = queue.pop_front() {
        for e in edges(&flow.steps[i].kind) {
            if let Some(&j) = flow.index.get(&e.target.name) {
                if !seen[j] {
                    seen[j] = true;
                    queue.push_back(j);
                }
            }
        }
    }
    for (step, reached) in flow.steps.iter().zip(seen) {
        if !reached {
            r.error(
                step.pos,
                FlowErrorKind::Unreachable {
                    step: step.name.clone(),
                    start: flow.start.name.clone(),
                },
            );
        }
    }
}

fn callees(flow: &Flow) -> impl Iterator<Item = (&Step, &Named)> {
    flow.steps.iter().filter_map(|s| match &s.kind {
        StepKind::Call { flow, .. } => Some((s, flow)),
        _ => None,
    })
}

/// Report call cycles; return flow indices with callees before callers.
fn check_call_cycles(
    flows: &[Flow],
    readers: &mut [Reader<'_>],
    by_name: &BTreeMap<&str, usize>,
) -> Vec<usize> {
    let succ: Vec<Vec<usize>> = flows
        .iter()
        .map(|f| {
            callees(f)
                .filter_map(|(_, n)| by_name.get(n.name.as_str()).copied())
                .collect()
        })
        .collect();
    let comps = sccs(flows.len(), &succ);
    for comp in &comps {
        let members: BTreeSet<usize> = comp.iter().copied().collect();
        let rep = comp[0];
        let cyclic = comp.len() > 1 || succ[rep].contains(&rep);
        if !cyclic {
            continue;
        }
        let cycle = cycle_through(rep, &members, &succ);
        let next_flow = &flows[cycle[1]].name;
        let pos = callees(&flows[rep])
            .find(|(_, n)| &n.name == next_flow)
            .map_or(Pos::START, |(_, n)| n.pos);
        let chain = Chain(cycle.iter().map(|&i| flows[i].name.clone()).collect());
        readers[rep].error(pos, FlowErrorKind::CallCycle { cycle: chain });
    }
    // Tarjan emits components in reverse topological order: callees first.
    comps.into_iter().flatten().collect()
}

fn check_spin_loops(flows: &[Flow], readers: &mut [Reader<'_>], by_name: &BTreeMap<&str, usize>) {
    // Which flows can return to their caller without waiting.
    let mut returns_fast = vec![false; flows.len()];
    loop {
        let mut changed = false;
        for (fi, flow) in flows.iter().enumerate() {
            if !returns_fast[fi] && can_return_without_waiting(flow, by_name, &returns_fast) {
                returns_fast[fi] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Global graph of non-waiting steps.
    let mut ids: Vec<(usize, usize)> = Vec::new();
    let mut id_of: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (fi, flow) in flows.iter().enumerate() {
        for (si, step) in flow.steps.iter().enumerate() {
            if !step.kind.waits() {
                id_of.insert((fi, si), ids.len());
                ids.push((fi, si));
            }
        }
    }
    let start_of = |name: &str| -> Option<(usize, usize)> {
        let fi = *by_name.get(name)?;
        let si = *flows[fi].index.get(&flows[fi].start.name)?;
        Some((fi, si))
    };
    let succ: Vec<Vec<usize>> = ids
        .iter()
        .map(|&(fi, si)| {
            let flow = &flows[fi];
            let kind = &flow.steps[si].kind;
            let mut out: Vec<(usize, usize)> = Vec::new();
            match kind {
                StepKind::Call { flow: callee, next } => {
                    out.extend(start_of(&callee.name));
                    let fast = by_name
                        .get(callee.name.as_str())
                        .is_some_and(|&c| returns_fast[c]);
                    if fast {
                        out.extend(flow.index.get(&next.name).map(|&j| (fi, j)));
                    }
                }
                StepKind::Goto { flow: target } => out.extend(start_of(&target.name)),
                _ => {
                    for e in edges(kind) {
                        out.extend(flow.index.get(&e.target.name).map(|&j| (fi, j)));
                    }
                }
            }
            out.iter().filter_map(|k| id_of.get(k).copied()).collect()
        })
        .collect();
    for comp in sccs(ids.len(), &succ) {
        let cyclic = comp.len() > 1 || succ[comp[0]].contains(&comp[0]);
        if !cyclic {
            continue;
        }
        let members: BTreeSet<usize> = comp.iter().copied().collect();
        // Blame the first step in file order.
        let rep = *comp
            .iter()
            .min_by_key(|&&id| {
                let (fi, si) = ids[id];
                (flows[fi].file.clone(), flows[fi].steps[si].pos)
            })
            .unwrap_or(&comp[0]);
        let cycle = cycle_through(rep, &members, &succ);
        let one_flow = cycle.iter().all(|&id| ids[id].0 == ids[rep].0);
        let names = cycle
            .iter()
            .map(|&id| {
                let (fi, si) = ids[id];
                if one_flow {
                    flows[fi].steps[si].name.clone()
                } else {
                    format!("{}/{}", flows[fi].name, flows[fi].steps[si].name)
                }
            })
            .collect();
        let (fi, si) = ids[rep];
        readers[fi].error(
            flows[fi].steps[si].pos,
            FlowErrorKind::SpinLoop {
                cycle: Chain(names),
            },
        );
    }
}

fn can_return_without_waiting(
    flow: &Flow,
    by_name: &BTreeMap<&str, usize>,
    returns_fast: &[bool],
) -> bool {
    let Some(&start) = flow.index.get(&flow.start.name) else {
        return false;
    };
    let mut seen = vec![false; flow.steps.len()];
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        if seen[i] {
            continue;
        }
        seen[i] = true;
        let kind = &flow.steps[i].kind;
        if kind.waits() {
            continue;
        }
        match kind {
            StepKind::Return => return true,
            StepKind::Call { flow: callee, next } => {
                if by_name
                    .get(callee.name.as_str())
                    .is_some_and(|&c| returns_fast[c])
                {
                    stack.extend(flow.index.get(&next.name));
                }
            }
            _ => {
                for e in edges(kind) {
                    stack.extend(flow.index.get(&e.target.name));
                }
            }
        }
    }
    false
}

fn check_variables(
    flows: &[Flow],
    readers: &mut [Reader<'_>],
    by_name: &BTreeMap<&str, usize>,
    order: &[usize],
) {
    // Everything any flow can set.
    let mut anywhere: BTreeSet<String> = BTreeSet::new();
    for flow in flows {
        anywhere.extend(flow.requires.iter().map(|n| n.name.clone()));
        for step in &flow.steps {
            for e in edges(&step.kind) {
                anywhere.extend(e.sets.iter().map(|s| (*s).to_owned()));
            }
        }
    }
    let candidates: Vec<String> = anywhere
        .iter()
        .cloned()
        .chain(
            CALL_VARIABLES
                .iter()
                .chain(TIME_VARIABLES.iter())
                .map(|s| (*s).to_owned()),
        )
        .collect();

    // Variables definitely set when each flow returns.
    let mut returned: Vec<BTreeSet<String>> = vec![BTreeSet::new(); flows.len()];
    for &fi in order {
        let flow = &flows[fi];
        let Some(&start) = flow.index.get(&flow.start.name) else {
            continue;
        };
        let callee_sets = |name: &str| -> BTreeSet<String> {
            by_name
                .get(name)
                .map(|&c| returned[c].clone())
                .unwrap_or_default()
        };
        let mut ins: Vec<Option<BTreeSet<String>>> = vec![None; flow.steps.len()];
        ins[start] = Some(flow.requires.iter().map(|n| n.name.clone()).collect());
        let mut work = VecDeque::from([start]);
        while let Some(i) = work.pop_front() {
            let Some(here) = ins[i].clone() else { continue };
            let kind = &flow.steps[i].kind;
            for e in edges(kind) {
                let Some(&j) = flow.index.get(&e.target.name) else {
                    continue;
                };
                let mut out = here.clone();
                out.extend(e.sets.iter().map(|s| (*s).to_owned()));
                if let StepKind::Call { flow: callee, .. } = kind {
                    out.extend(callee_sets(&callee.name));
                }
                let merged = match &ins[j] {
                    None => out,
                    Some(prev) => prev.intersection(&out).cloned().collect(),
                };
                if ins[j].as_ref() != Some(&merged) {
                    ins[j] = Some(merged);
                    work.push_back(j);
                }
            }
        }
        let mut ret: Option<BTreeSet<String>> = None;
        for (i, step) in flow.steps.iter().enumerate() {
            if let (StepKind::Return, Some(here)) = (&step.kind, &ins[i]) {
                ret = Some(match ret {
                    None => here.clone(),
                    Some(prev) => prev.intersection(here).cloned().collect(),
                });
            }
        }
        returned[fi] = ret.unwrap_or_default();

        let r = &mut readers[fi];
        for (i, step) in flow.steps.iter().enumerate() {
            let Some(here) = &ins[i] else { continue };
            let mut reported = BTreeSet::new();
            for (var, pos) in uses(&step.kind, r) {
                if is_builtin(&var) || here.contains(&var) || !reported.insert(var.clone()) {
                    continue;
                }
                let kind = if anywhere.contains(&var) {
                    FlowErrorKind::MaybeUnset {
                        var,
                        step: step.name.clone(),
                    }
                } else {
                    let suggestion =
                        DidYouMean(suggest(&var, candidates.iter().map(String::as_str)));
                    FlowErrorKind::NeverSet { var, suggestion }
                };
                r.error(pos, kind);
            }
            if let StepKind::Goto { flow: target } | StepKind::Call { flow: target, .. } =
                &step.kind
            {
                if let Some(&ti) = by_name.get(target.name.as_str()) {
                    for req in &flows[ti].requires {
                        if !here.contains(&req.name) && !is_builtin(&req.name) {
                            r.error(
                                target.pos,
                                FlowErrorKind::RequiredUnset {
                                    flow: target.name.clone(),
                                    var: req.name.clone(),
                                },
                            );
                        }
                    }
                }
            }
        }
    }
}
