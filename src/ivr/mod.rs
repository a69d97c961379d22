//! The IVR flow language: load and validate flows, run them on a call, and
//! simulate them for designers.
//!
//! Contract:
//!
//! - [`load_flows`] reads every `*.yaml` file of a directory (one flow per file;
//!   `calendars.yaml` holds business-hours calendars) and returns the valid
//!   [`Flows`] together with *every* problem found, each a [`FlowError`] that
//!   prints as `file:line:col: message`. Only files without errors are in the
//!   returned [`Flows`]; run nothing while the error list is not empty.
//! - [`FlowRun`] is the sans-IO interpreter of one call: it takes `now` and an
//!   [`Event`] and hands back [`Action`]s and its next deadline. It never reads
//!   the clock, opens a socket or draws a random number.
//! - [`simulate`] drives a [`FlowRun`] on simulated time with scripted caller
//!   input and HTTP fixtures and returns a [`SimTranscript`].
//!
//! The file format is described in `parse` (flows), `calendar` (calendars) and
//! by the JSON Schema in `schema/flow.schema.json`.

mod calendar;
mod check;
mod error;
mod model;
mod parse;
mod reader;
mod run;
mod sim;
mod speech;
mod template;
mod time;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use calendar::Calendar;
pub use error::{suggest, Chain, DidYouMean, FlowError, FlowErrorKind};
pub use model::{Flow, Flows, HttpMethod};
pub use run::{
    Action, CallbackOffer, DtmfSpec, Event, FlowRun, Grammar, Outcome, Prompt, RunError, Skill,
    TimerKind, TransferTarget,
};
pub use sim::{
    parse_simulate_args, simulate, simulate_file, Destination, HttpFixture, HttpFixtures,
    SimArgError, SimInput, SimLine, SimOptions, SimTranscript, SimulateArgs, SimulateError,
};
pub use speech::{match_choice, normalize, spoken_digits, ChoiceWords};
pub use template::{is_builtin, CallInfo, Channel, Variables, CALL_VARIABLES, TIME_VARIABLES};
pub use time::{
    format_duration, parse_duration, Date, LocalDateTime, TimeOfDay, TimeParseError, Weekday,
};

/// Names the flows may refer to that are defined elsewhere (the profile).
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// ACD queue names.
    pub queues: BTreeSet<String>,
    /// Queues with callback settings (a flow's callback offer needs them).
    pub callback_queues: BTreeSet<String>,
    /// SIP users (agents, extensions) a flow may transfer to.
    pub users: BTreeSet<String>,
    /// Trunk names for outbound transfers.
    pub trunks: BTreeSet<String>,
    /// Prompt files available to `file:` prompts (paths relative to the prompts directory).
    pub prompts: BTreeSet<String>,
    /// Calendars defined by the profile (added to those in `calendars.yaml`).
    pub calendars: BTreeMap<String, Calendar>,
}

/// The file name that holds calendars instead of a flow.
pub const CALENDARS_FILE: &str = "calendars.yaml";

/// Load and validate every `*.yaml`/`*.yml` file directly in `dir`.
///
/// Returns the flows without errors and every problem found, sorted by file
/// and position. Errors of files that cannot be read are reported at 1:1.
pub fn load_flows(dir: &Path, known: &Known) -> (Flows, Vec<FlowError>) {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            paths.sort();
            for path in paths {
                match std::fs::read_to_string(&path) {
                    Ok(text) => sources.push((path, text)),
                    Err(e) => {
                        errors.push(FlowErrorKind::Io(e.to_string()).at(&path, yaml::Pos::START))
                    }
                }
            }
        }
        Err(e) => errors.push(FlowErrorKind::Io(e.to_string()).at(dir, yaml::Pos::START)),
    }
    let (flows, mut more) = load_flow_sources(&sources, known);
    errors.append(&mut more);
    (flows, errors)
}

/// Validate flows given as `(file, text)` pairs, as [`load_flows`] does for a
/// directory. A file whose name is `calendars.yaml` holds calendars.
pub fn load_flow_sources(sources: &[(PathBuf, String)], known: &Known) -> (Flows, Vec<FlowError>) {
    let mut calendars: BTreeMap<String, Calendar> = known.calendars.clone();
    let mut calendar_errors = Vec::new();
    let mut flows = Vec::new();
    let mut readers = Vec::new();
    for (file, text) in sources {
        let mut reader = reader::Reader::new(file, text);
        let root = match yaml::parse(text) {
            Ok(root) => Some(root),
            Err(e) => {
                reader.error(e.pos, FlowErrorKind::Syntax(e.message));
                None
            }
        };
        let is_calendars = file.file_name().is_some_and(|n| n == CALENDARS_FILE);
        if is_calendars {
            if let Some(root) = root {
                for (cal, pos) in calendar::parse_calendars(&mut reader, &root) {
                    if calendars.contains_key(cal.name()) {
                        reader.error(pos, FlowErrorKind::DuplicateCalendar(cal.name().to_owned()));
                    } else {
                        calendars.insert(cal.name().to_owned(), cal);
                    }
                }
            }
            calendar_errors.append(&mut reader.errors);
            continue;
        }
        let flow = match root {
            Some(root) => parse::parse_flow(&mut reader, &root, file),
            None => continue_with_broken(file, &mut reader),
        };
        flows.push(flow);
        readers.push(reader);
    }
    // Duplicate flow names: the later file is blamed.
    for i in 0..flows.len() {
        if let Some(first) = flows[..i].iter().find(|f| f.name == flows[i].name) {
            let kind = FlowErrorKind::DuplicateFlow {
                name: flows[i].name.clone(),
                other: first.file.display().to_string(),
            };
            readers[i].error(yaml::Pos::START, kind);
        }
    }
    let calendar_names: BTreeSet<String> = calendars.keys().cloned().collect();
    check::check(&flows, &mut readers, known, &calendar_names);

    let mut errors = calendar_errors;
    let mut set = model::FlowSet {
        flows: BTreeMap::new(),
        calendars,
    };
    for (flow, reader) in flows.into_iter().zip(readers) {
        if reader.errors.is_empty() && !flow.incomplete {
            set.flows.entry(flow.name.clone()).or_insert(flow);
        }
        errors.extend(reader.errors);
    }
    errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    (Flows::from_set(set), errors)
}

/// A flow that could not be parsed at all: named after its file, marked
/// incomplete so it is never run.
fn continue_with_broken(file: &Path, reader: &mut reader::Reader<'_>) -> Flow {
    let empty = yaml::Node {
        value: yaml::Value::Map(Vec::new()),
        pos: yaml::Pos::START,
    };
    let mut scratch = reader::Reader::new(file, reader.source);
    let mut flow = parse::parse_flow(&mut scratch, &empty, file);
    flow.incomplete = true;
    flow
}
