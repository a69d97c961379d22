//! The typed, immutable flow model produced by the loader.
//!
//! Contract: these types are what the validator checks and the interpreter
//! runs. Every name a validation message may blame carries its [`Pos`]. Once
//! built (by [`super::load_flows`]) a [`Flows`] never changes; it is cheap to
//! clone (shared behind an `Arc`) so each call's [`super::FlowRun`] can hold it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::calendar::Calendar;
use super::template::Template;
use super::time::{TimeOfDay, Weekday};
use super::yaml::Pos;

/// A name with the position it was written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) name: String,
    pub(crate) pos: Pos,
}

/// A validated set of flows and the calendars they use.
#[derive(Clone, Debug, Default)]
pub struct Flows {
    inner: Arc<FlowSet>,
}

#[derive(Debug, Default)]
pub(crate) struct FlowSet {
    pub(crate) flows: BTreeMap<String, Flow>,
    pub(crate) calendars: BTreeMap<String, Calendar>,
}

impl Flows {
    pub(crate) fn from_set(set: FlowSet) -> Flows {
        Flows {
            inner: Arc::new(set),
        }
    }

    /// A flow by name.
    pub fn get(&self, name: &str) -> Option<&Flow> {
        self.inner.flows.get(name)
    }

    /// The flow names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.flows.keys().map(String::as_str)
    }

    /// The flow defined in `file` (compared as given, then by file name).
    pub fn flow_for_file(&self, file: &Path) -> Option<&Flow> {
        let flows = || self.inner.flows.values();
        flows().find(|f| f.file == file).or_else(|| {
            let name = file.file_name()?;
            let mut same = flows().filter(|f| f.file.file_name() == Some(name));
            let first = same.next()?;
            same.next().is_none().then_some(first)
        })
    }

    /// A calendar by name.
    pub fn calendar(&self, name: &str) -> Option<&Calendar> {
        self.inner.calendars.get(name)
    }

    /// The number of flows.
    pub fn len(&self) -> usize {
        self.inner.flows.len()
    }

    /// Whether there are no flows.
    pub fn is_empty(&self) -> bool {
        self.inner.flows.is_empty()
    }
}

/// One flow: a name, a start step and named steps.
#[derive(Clone, Debug)]
pub struct Flow {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) file: PathBuf,
    pub(crate) start: Named,
    /// Variables a caller of this flow (`goto`/`call`) must have set.
    pub(crate) requires: Vec<Named>,
    /// Steps in file order.
    pub(crate) steps: Vec<Step>,
    pub(crate) index: BTreeMap<String, usize>,
    /// Every step name written, including steps that failed to parse.
    pub(crate) declared: BTreeSet<String>,
    /// Whether some part failed to parse (reachability is then not judged).
    pub(crate) incomplete: bool,
}

impl Flow {
    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The start step's name.
    pub fn start(&self) -> &str {
        &self.start.name
    }

    /// Step names in file order.
    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.name.as_str())
    }

    pub(crate) fn step(&self, name: &str) -> Option<&Step> {
        self.index.get(name).map(|&i| &self.steps[i])
    }
}

/// One step.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub(crate) name: String,
    pub(crate) pos: Pos,
    pub(crate) kind: StepKind,
}

/// What to play.
#[derive(Clone, Debug)]
pub(crate) enum PromptSpec {
    Say(Template),
    File(Template),
}

impl PromptSpec {
    pub(crate) fn template(&self) -> &Template {
        match self {
            PromptSpec::Say(t) | PromptSpec::File(t) => t,
        }
    }
}

/// The step types.
#[derive(Clone, Debug)]
pub(crate) enum StepKind {
    Answer {
        next: Named,
    },
    Play {
        prompt: PromptSpec,
        barge_in: bool,
        wait: Option<Duration>,
        next: Named,
    },
    Menu(Box<Menu>),
    Collect(Box<Collect>),
    Http(Box<Http>),
    Set {
        vars: Vec<(Named, Template)>,
        next: Named,
    },
    Branch {
        rules: Vec<Rule>,
        default: Named,
    },
    Queue(Box<QueueStep>),
    Transfer(TransferStep),
    Goto {
        flow: Named,
    },
    Call {
        flow: Named,
        next: Named,
    },
    Record(Box<RecordStep>),
    Return,
    Hangup,
}

impl StepKind {
    /// Whether executing the step waits for the caller (input or time).
    pub(crate) fn waits(&self) -> bool {
        match self {
            StepKind::Menu(_) | StepKind::Collect(_) | StepKind::Record(_) => true,
            StepKind::Play { wait, .. } => wait.is_some_and(|w| !w.is_zero()),
            _ => false,
        }
    }
}

/// Retry behaviour shared by `menu` and `collect`.
#[derive(Clone, Debug)]
pub(crate) struct Ask {
    pub(crate) prompt: PromptSpec,
    pub(crate) barge_in: bool,
    pub(crate) speech: bool,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) no_input: Option<PromptSpec>,
    pub(crate) no_match: Option<PromptSpec>,
    pub(crate) default: Named,
    pub(crate) min_confidence: f32,
}

#[derive(Clone, Debug)]
pub(crate) struct Choice {
    pub(crate) name: Named,
    pub(crate) dtmf: Option<char>,
    pub(crate) phrases: Vec<String>,
    pub(crate) next: Named,
}

#[derive(Clone, Debug)]
pub(crate) struct Menu {
    pub(crate) ask: Ask,
    pub(crate) choices: Vec<Choice>,
    pub(crate) into: Option<Named>,
}

#[derive(Clone, Debug)]
pub(crate) struct Collect {
    pub(crate) ask: Ask,
    pub(crate) into: Named,
    pub(crate) min_digits: u32,
    pub(crate) max_digits: u32,
    pub(crate) terminator: Option<char>,
    pub(crate) inter_digit_timeout: Duration,
    pub(crate) next: Named,
}

/// HTTP method of an `http` step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST with a JSON body.
    Post,
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        })
    }
}

/// A JSON body whose strings are templates.
#[derive(Clone, Debug)]
pub(crate) enum BodyTemplate {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Text(Template),
    List(Vec<BodyTemplate>),
    Object(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    pub(crate) fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            BodyTemplate::Text(t) => out.push(t),
            BodyTemplate::List(items) => items.iter().for_each(|i| i.templates(out)),
            BodyTemplate::Object(entries) => entries.iter().for_each(|(_, v)| v.templates(out)),
            _ => {}
        }
    }
}

/// Where in a JSON response a variable's value is: a JSON pointer (`/a/0/b`)
/// or a dotted path (`a.0.b`), both stored as segments.
#[derive(Clone, Debug)]
pub(crate) struct Extract {
    pub(crate) written: String,
    pub(crate) segments: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub(crate) method: HttpMethod,
    pub(crate) url: Template,
    pub(crate) body: Option<BodyTemplate>,
    pub(crate) timeout: Duration,
    pub(crate) set: Vec<(Named, Extract)>,
    pub(crate) on_success: Named,
    pub(crate) on_failure: Named,
}

/// Comparison operators of `branch` conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(crate) const ALL: [(&'static str, CmpOp); 6] = [
        ("eq", CmpOp::Eq),
        ("ne", CmpOp::Ne),
        ("lt", CmpOp::Lt),
        ("le", CmpOp::Le),
        ("gt", CmpOp::Gt),
        ("ge", CmpOp::Ge),
    ];

    pub(crate) fn name(self) -> &'static str {
        CmpOp::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("eq", |(n, _)| n)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Condition {
    Compare {
        var: Named,
        op: CmpOp,
        value: Template,
    },
    In {
        var: Named,
        values: Vec<Template>,
        negate: bool,
    },
    Present {
        var: Named,
        present: bool,
    },
    Open {
        calendar: Named,
    },
    Holiday {
        calendar: Named,
    },
    Weekday(Vec<Weekday>),
    TimeBetween(TimeOfDay, TimeOfDay),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) condition: Condition,
    pub(crate) next: Named,
}

#[derive(Clone, Debug)]
pub(crate) struct SkillSpec {
    pub(crate) name: Template,
    pub(crate) min_level: Option<u8>,
}

#[derive(Clone, Debug)]
pub(crate) struct CallbackSpec {
    pub(crate) offer_after: Duration,
    pub(crate) prompt: Option<PromptSpec>,
}

#[derive(Clone, Debug)]
pub(crate) struct QueueStep {
    pub(crate) queue: Named,
    pub(crate) priority: Option<Template>,
    pub(crate) skills: Vec<SkillSpec>,
    pub(crate) attributes: Vec<(String, Template)>,
    pub(crate) callback: Option<CallbackSpec>,
}

#[derive(Clone, Debug)]
pub(crate) enum TransferStep {
    User(Named),
    Number {
        number: Template,
        trunk: Option<Named>,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct RecordStep {
    pub(crate) prompt: Option<PromptSpec>,
    pub(crate) max: Duration,
    pub(crate) to: Template,
    pub(crate) next: Named,
}
