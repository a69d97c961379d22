//! The flow simulator: a scripted caller and backend on simulated time.
//!
//! Contract: [`simulate`] starts a [`FlowRun`] and plays the runtime's part
//! deterministically: it answers at once, gives each prompt a duration (text:
//! 350 ms a word plus 500 ms; file: 2.5 s), lets the caller act 800 ms after the
//! prompts end whenever the flow listens (one [`SimInput`] per listen: keys
//! 300 ms apart, speech with confidence 0.9, silence, or an unrecognised
//! utterance), answers HTTP requests from [`HttpFixtures`] (unmatched URLs
//! fail like a dead backend), and leaves a 5 s message when recording. Time
//! jumps from one event to the next; a run is capped at 10 000 events and one
//! simulated hour. The [`SimTranscript`] lists what the caller hears, which
//! step acts, which branch is taken, variables set, and ends in a
//! [`Destination`]; `Stuck` means the flow waited for something that never
//! comes, which must not happen for a valid flow.
//!
//! [`parse_simulate_args`] parses the CLI's `flow simulate` arguments and
//! [`simulate_file`] runs them end to end (load, validate, simulate).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::error::{suggest, DidYouMean, FlowError};
use super::model::Flows;
use super::run::{Action, CallbackOffer, Event, FlowRun, Prompt, Skill, TransferTarget};
use super::template::{is_builtin, CallInfo, Channel, Variables};
use super::time::{format_duration, Date, LocalDateTime, TimeParseError};
use super::{load_flows, Known};

const MAX_EVENTS: usize = 10_000;
const MAX_CALL: Duration = Duration::from_secs(3600);
const THINK: Duration = Duration::from_millis(800);
const KEY_GAP: Duration = Duration::from_millis(300);
const MESSAGE_LENGTH: Duration = Duration::from_secs(5);
const DEFAULT_HTTP_DELAY: Duration = Duration::from_millis(120);

/// One thing the simulated caller does when the flow listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimInput {
    /// Press these keys (`dtmf:12#`).
    Dtmf(String),
    /// Say this (`speech:technical support`).
    Speech(String),
    /// Say nothing (`silence`).
    Silence,
    /// Say something the recogniser cannot match (`nomatch`).
    NoMatch,
}

impl FromStr for SimInput {
    type Err = SimArgError;

    fn from_str(s: &str) -> Result<SimInput, SimArgError> {
        let bad = || SimArgError::BadInput(s.to_owned());
        let unquote = |v: &str| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned()
        };
        if let Some(keys) = s.strip_prefix("dtmf:") {
            let keys = unquote(keys);
            let valid = !keys.is_empty()
                && keys
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
            return valid.then_some(SimInput::Dtmf(keys)).ok_or_else(bad);
        }
        if let Some(text) = s.strip_prefix("speech:") {
            let text = unquote(text);
            return (!text.is_empty())
                .then_some(SimInput::Speech(text))
                .ok_or_else(bad);
        }
        match s.trim() {
            "silence" => Ok(SimInput::Silence),
            "nomatch" => Ok(SimInput::NoMatch),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for SimInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimInput::Dtmf(k) => write!(f, "dtmf:{k}"),
            SimInput::Speech(t) => write!(f, "speech:\"{t}\""),
            SimInput::Silence => f.write_str("silence"),
            SimInput::NoMatch => f.write_str("nomatch"),
        }
    }
}

/// A canned HTTP answer.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpFixture {
    /// A response.
    Response {
        /// Status code.
        status: u16,
        /// JSON body.
        body: serde_json::Value,
        /// How long the backend takes.
        delay: Duration,
    },
    /// The request fails (connection refused, reset...).
    Failure {
        /// Why, for the transcript.
        reason: String,
        /// How long until it fails.
        delay: Duration,
    },
}

/// URL patterns (`*` matches anything) to canned answers. An exact URL wins,
/// then the pattern with the most literal characters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpFixtures {
    entries: Vec<(String, HttpFixture)>,
}

impl HttpFixtures {
    /// No fixtures: every request fails.
    pub fn new() -> HttpFixtures {
        HttpFixtures::default()
    }

    /// Add (or replace) a fixture.
    pub fn insert(&mut self, pattern: &str, fixture: HttpFixture) {
        self.entries.retain(|(p, _)| p != pattern);
        self.entries.push((pattern.to_owned(), fixture));
    }

    /// Parse a fixture file:
    ///
    /// ```json
    /// { "http://host/api/customers/*": { "status": 200, "body": {"name": "Ann"}, "delay_ms": 120 },
    ///   "http://host/api/down":         { "fail": "connection refused" } }
    /// ```
    pub fn from_json(text: &str) -> Result<HttpFixtures, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let serde_json::Value::Object(map) = value else {
            return Err("expected an object of URL patterns to responses".to_owned());
        };
        let mut out = HttpFixtures::new();
        for (pattern, spec) in map {
            let serde_json::Value::Object(spec) = spec else {
                return Err(format!("`{pattern}`: expected an object"));
            };
            let delay = match spec.get("delay_ms") {
                None => DEFAULT_HTTP_DELAY,
                Some(v) => Duration::from_millis(
                    v.as_u64()
                        .ok_or_else(|| format!("`{pattern}`: `delay_ms` must be a whole number"))?,
                ),
            };
            for key in spec.keys() {
                if !["status", "body", "delay_ms", "fail"].contains(&key.as_str()) {
                    return Err(format!(
                        "`{pattern}`: unknown key `{key}`{}",
                        DidYouMean(suggest(key, ["status", "body", "delay_ms", "fail"]))
                    ));
                }
            }
            let fixture = match (spec.get("fail"), spec.get("status")) {
                (Some(reason), None) => HttpFixture::Failure {
                    reason: reason
                        .as_str()
                        .map_or_else(|| reason.to_string(), str::to_owned),
                    delay,
                },
                (None, Some(status)) => HttpFixture::Response {
                    status: status
                        .as_u64()
                        .and_then(|s| u16::try_from(s).ok())
                        .filter(|s| (100..600).contains(s))
                        .ok_or_else(|| format!("`{pattern}`: `status` must be 100-599"))?,
                    body: spec.get("body").cloned().unwrap_or(serde_json::Value::Null),
                    delay,
                },
                _ => {
                    return Err(format!(
                        "`{pattern}`: give either `status` (and `body`) or `fail`"
                    ))
                }
            };
            out.insert(&pattern, fixture);
        }
        Ok(out)
    }

    /// Add every fixture of `other`.
    pub fn extend(&mut self, other: HttpFixtures) {
        for (p, f) in other.entries {
            self.insert(&p, f);
        }
    }

    /// The fixture for `url`.
    pub fn lookup(&self, url: &str) -> Option<&HttpFixture> {
        if let Some((_, f)) = self.entries.iter().find(|(p, _)| p == url) {
            return Some(f);
        }
        self.entries
            .iter()
            .filter(|(p, _)| p.contains('*') && glob(p, url))
            .max_by(|(a, _), (b, _)| {
                let literal = |p: &str| p.chars().filter(|&c| c != '*').count();
                literal(a).cmp(&literal(b)).then_with(|| b.cmp(a))
            })
            .map(|(_, f)| f)
    }
}

/// `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// Calling number.
    pub caller: String,
    /// Calling name.
    pub caller_name: String,
    /// Called number.
    pub called: String,
    /// How the call arrives.
    pub channel: Channel,
    /// The caller's inputs, one per listen.
    pub inputs: Vec<SimInput>,
    /// Canned HTTP answers.
    pub http_fixtures: HttpFixtures,
    /// Local time at the start of the call.
    pub time: LocalDateTime,
}

impl Default for SimOptions {
    /// Caller `+15550100000`, called `+15550000100` over trunk `carrier`,
    /// Monday 2026-11-23 09:00, no input, no fixtures.
    fn default() -> SimOptions {
        SimOptions {
            caller: "+15550100000".to_owned(),
            caller_name: String::new(),
            called: "+15550000100".to_owned(),
            channel: Channel::Trunk("carrier".to_owned()),
            inputs: Vec::new(),
            http_fixtures: HttpFixtures::new(),
            time: LocalDateTime::at_minute(Date::known(2026, 11, 23), 9, 0),
        }
    }
}

/// One line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimLine {
    /// Time since the call started.
    pub at: Duration,
    /// `flow/step`, `caller` or `backend`.
    pub who: String,
    /// What happened.
    pub text: String,
}

/// Where the simulated call ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Queued.
    Queue {
        /// Queue name.
        name: String,
        /// Priority.
        priority: i32,
        /// Skills.
        skills: Vec<Skill>,
        /// Routing attributes.
        attributes: BTreeMap<String, String>,
        /// Callback offer.
        callback_offer: Option<CallbackOffer>,
    },
    /// Transferred.
    Transfer(TransferTarget),
    /// Hung up.
    Hangup,
    /// The flow waited for something that never came (a bug in the flow or
    /// the interpreter).
    Stuck(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Queue {
                name,
                priority,
                skills,
                attributes,
                callback_offer,
            } => {
                write!(f, "queue `{name}`, priority {priority}")?;
                if !skills.is_empty() {
                    let list: Vec<String> = skills
                        .iter()
                        .map(|s| match s.min_level {
                            Some(l) => format!("{}>={l}", s.name),
                            None => s.name.clone(),
                        })
                        .collect();
                    write!(f, ", skills [{}]", list.join(", "))?;
                }
                if !attributes.is_empty() {
                    let list: Vec<String> =
                        attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, ", attributes {{{}}}", list.join(", "))?;
                }
                if let Some(offer) = callback_offer {
                    write!(
                        f,
                        ", callback offered when the wait exceeds {}",
                        format_duration(offer.after)
                    )?;
                }
                Ok(())
            }
            Destination::Transfer(t) => write!(f, "transfer to {t}"),
            Destination::Hangup => f.write_str("hangup"),
            Destination::Stuck(why) => write!(f, "STUCK: {why}"),
        }
    }
}

/// A simulated call, step by step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTranscript {
    /// The flow simulated.
    pub flow: String,
    /// Header facts: caller, called, channel, start time.
    pub header: String,
    /// What happened, in order.
    pub lines: Vec<SimLine>,
    /// Where the call ended.
    pub destination: Destination,
    /// Variables set by the flow, at the end.
    pub variables: Vec<(String, String)>,
}

impl fmt::Display for SimTranscript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "flow {}: {}", self.flow, self.header)?;
        let width = self.lines.iter().map(|l| l.who.len()).max().unwrap_or(0);
        for line in &self.lines {
            let ms = line.at.as_millis();
            writeln!(
                f,
                "  {:02}:{:02}.{:03}  {:width$}  {}",
                ms / 60_000,
                ms / 1000 % 60,
                ms % 1000,
                line.who,
                line.text
            )?;
        }
        writeln!(f, "destination: {}", self.destination)?;
        if !self.variables.is_empty() {
            writeln!(f, "variables:")?;
            for (k, v) in &self.variables {
                writeln!(f, "  {k} = \"{v}\"")?;
            }
        }
        Ok(())
    }
}

/// Simulate `flow_name` with `opts`.
pub fn simulate(flow_name: &str, flows: &Flows, opts: &SimOptions) -> SimTranscript {
    let channel = match &opts.channel {
        Channel::Trunk(t) => format!("trunk {t}"),
        Channel::Browser => "browser".to_owned(),
        Channel::Phone => "phone".to_owned(),
    };
    let header = format!(
        "caller {}{}, called {} ({channel}), {} {}",
        opts.caller,
        if opts.caller_name.is_empty() {
            String::new()
        } else {
            format!(" \"{}\"", opts.caller_name)
        },
        opts.called,
        opts.time,
        opts.time.weekday().full_name()
    );
    let mut sim = Sim {
        start: opts.time,
        now: opts.time,
        pending: BTreeMap::new(),
        seq: 0,
        inputs: opts.inputs.iter().cloned().collect(),
        fixtures: &opts.http_fixtures,
        playing: 0,
        player_free_at: opts.time,
        awaiting_input: false,
        lines: Vec::new(),
        destination: None,
    };
    let vars = Variables::for_call(&CallInfo {
        caller_number: opts.caller.clone(),
        caller_name: opts.caller_name.clone(),
        called_number: opts.called.clone(),
        channel: opts.channel.clone(),
    });
    let mut transcript = SimTranscript {
        flow: flow_name.to_owned(),
        header,
        lines: Vec::new(),
        destination: Destination::Hangup,
        variables: Vec::new(),
    };
    let mut run = match FlowRun::start(flows, flow_name, vars, opts.time) {
        Ok(run) => run,
        Err(e) => {
            transcript.destination = Destination::Stuck(e.to_string());
            return transcript;
        }
    };
    let destination = sim.drive(&mut run);
    transcript.lines = sim.lines;
    transcript.destination = destination;
    transcript.variables = run
        .variables()
        .iter()
        .filter(|(k, _)| !is_builtin(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    transcript
}

struct Sim<'a> {
    start: LocalDateTime,
    now: LocalDateTime,
    pending: BTreeMap<(LocalDateTime, u64), Event>,
    seq: u64,
    inputs: VecDeque<SimInput>,
    fixtures: &'a HttpFixtures,
    playing: u32,
    player_free_at: LocalDateTime,
    awaiting_input: bool,
    lines: Vec<SimLine>,
    destination: Option<Destination>,
}

impl Sim<'_> {
    fn line(&mut self, who: &str, text: String) {
        self.lines.push(SimLine {
            at: self.now.since(self.start),
            who: who.to_owned(),
            text,
        });
    }

    fn schedule(&mut self, at: LocalDateTime, event: Event) {
        self.seq += 1;
        self.pending.insert((at, self.seq), event);
    }

    fn drive(&mut self, run: &mut FlowRun) -> Destination {
        for _ in 0..MAX_EVENTS {
            while let Some((step, action)) = run.poll_output_traced() {
                self.act(&step, action);
            }
            if let Some(d) = self.destination.take() {
                return d;
            }
            if run.is_done() {
                return Destination::Hangup;
            }
            if self.awaiting_input && self.playing == 0 {
                self.awaiting_input = false;
                self.caller_acts();
            }
            let next_event = self.pending.keys().next().copied();
            let next_timer = run.poll_timeout();
            let event = match (next_event, next_timer) {
                (Some((at, seq)), Some((deadline, _))) if at <= deadline => {
                    self.pending.remove(&(at, seq)).map(|e| (at, e))
                }
                (_, Some((deadline, _))) => Some((deadline, Event::Timeout)),
                (Some((at, seq)), None) => self.pending.remove(&(at, seq)).map(|e| (at, e)),
                (None, None) => None,
            };
            let Some((at, event)) = event else {
                let (flow, step) = run.position();
                return Destination::Stuck(format!(
                    "{flow}/{step} waits for an event that never comes"
                ));
            };
            self.now = self.now.max(at);
            if self.now.since(self.start) > MAX_CALL {
                return Destination::Stuck("the call ran for over an hour".to_owned());
            }
            self.before_delivery(&event);
            run.handle(self.now, event);
        }
        Destination::Stuck(format!("more than {MAX_EVENTS} events"))
    }

    fn before_delivery(&mut self, event: &Event) {
        match event {
            Event::PromptFinished => self.playing = self.playing.saturating_sub(1),
            Event::Dtmf(k) => self.line("caller", format!("presses {k}")),
            Event::Speech { text, .. } => self.line("caller", format!("says \"{text}\"")),
            Event::SpeechNoMatch => {
                self.line(
                    "caller",
                    "says something the recogniser cannot match".to_owned(),
                );
            }
            Event::HttpResult { status, body, .. } => {
                let mut shown: String = body.chars().take(120).collect();
                if body.chars().count() > 120 {
                    shown.push('…');
                }
                self.line("backend", format!("HTTP {status} {shown}"));
            }
            Event::HttpFailed { reason, .. } => {
                self.line("backend", format!("fails: {reason}"));
            }
            Event::Answered | Event::Timeout => {}
        }
    }

    fn caller_acts(&mut self) {
        let Some(input) = self.inputs.pop_front() else {
            return;
        };
        let t0 = self.now + THINK;
        match input {
            SimInput::Dtmf(keys) => {
                for (i, k) in keys.chars().enumerate() {
                    let gap = KEY_GAP * u32::try_from(i).unwrap_or(0);
                    self.schedule(t0 + gap, Event::Dtmf(k));
                }
            }
            SimInput::Speech(text) => {
                let words = u32::try_from(text.split_whitespace().count()).unwrap_or(1);
                self.schedule(
                    t0 + KEY_GAP * words,
                    Event::Speech {
                        text,
                        confidence: 0.9,
                    },
                );
            }
            SimInput::Silence => self.line("caller", "stays silent".to_owned()),
            SimInput::NoMatch => self.schedule(t0 + Duration::from_secs(1), Event::SpeechNoMatch),
        }
    }

    fn act(&mut self, step: &str, action: Action) {
        match action {
            Action::Answer => {
                self.line(step, "answers the call".to_owned());
                self.schedule(self.now, Event::Answered);
            }
            Action::Play { prompt, barge_in } => {
                let length = match &prompt {
                    Prompt::Tts(text) => {
                        let words = u32::try_from(text.split_whitespace().count()).unwrap_or(0);
                        Duration::from_millis(500) + Duration::from_millis(350) * words
                    }
                    Prompt::File(_) => Duration::from_millis(2500),
                };
                self.player_free_at = self.player_free_at.max(self.now) + length;
                self.playing += 1;
                let at = self.player_free_at;
                self.schedule(at, Event::PromptFinished);
                let suffix = if barge_in { " (barge-in)" } else { "" };
                self.line(step, format!("plays {prompt}{suffix}"));
            }
            Action::Listen {
                dtmf,
                speech,
                no_input_timeout,
            } => {
                self.awaiting_input = true;
                let keys = if dtmf.keys.is_empty() {
                    let end = dtmf
                        .terminator
                        .map(|t| format!(" ending with {t}"))
                        .unwrap_or_default();
                    format!("{}-{} digits{end}", dtmf.min_digits, dtmf.max_digits)
                } else {
                    let keys: Vec<String> = dtmf.keys.iter().map(char::to_string).collect();
                    format!("keys {}", keys.join(" "))
                };
                let speech = match speech {
                    Some(g) if g.digits => " or spoken digits".to_owned(),
                    Some(g) => format!(" or speech ({} choices)", g.choices.len()),
                    None => String::new(),
                };
                self.line(
                    step,
                    format!(
                        "listens for {keys}{speech}, no input after {}",
                        format_duration(no_input_timeout)
                    ),
                );
            }
            Action::StopListening => self.awaiting_input = false,
            Action::Http {
                id,
                method,
                url,
                body,
                timeout,
            } => {
                let body_text = body.as_deref().map(|b| format!(" {b}")).unwrap_or_default();
                self.line(
                    step,
                    format!(
                        "{method} {url}{body_text} (timeout {})",
                        format_duration(timeout)
                    ),
                );
                match self.fixtures.lookup(&url).cloned() {
                    Some(HttpFixture::Response {
                        status,
                        body,
                        delay,
                    }) => self.schedule(
                        self.now + delay,
                        Event::HttpResult {
                            id,
                            status,
                            body: body.to_string(),
                        },
                    ),
                    Some(HttpFixture::Failure { reason, delay }) => {
                        self.schedule(self.now + delay, Event::HttpFailed { id, reason });
                    }
                    None => self.schedule(
                        self.now,
                        Event::HttpFailed {
                            id,
                            reason: "connection refused (no fixture for this URL)".to_owned(),
                        },
                    ),
                }
            }
            Action::Queue {
                name,
                priority,
                skills,
                attributes,
                callback_offer,
            } => {
                let d = Destination::Queue {
                    name,
                    priority,
                    skills,
                    attributes,
                    callback_offer,
                };
                self.line(step, d.to_string());
                self.destination = Some(d);
            }
            Action::Transfer { target } => {
                self.line(step, format!("transfers to {target}"));
                self.destination = Some(Destination::Transfer(target));
            }
            Action::Record { max, to } => {
                self.line(
                    step,
                    format!("records to {to} (at most {})", format_duration(max)),
                );
                let at = self.now + MESSAGE_LENGTH.min(max);
                self.line("caller", "leaves a message".to_owned());
                if MESSAGE_LENGTH < max {
                    self.schedule(at, Event::Dtmf('#'));
                }
            }
            Action::StopRecording => {}
            Action::Hangup => {
                self.line(step, "hangs up".to_owned());
                self.destination = Some(Destination::Hangup);
            }
            Action::Log { step, text } => self.line(&step, text),
        }
    }
}

/// A problem with `flow simulate` arguments or fixture files.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimArgError {
    /// No FILE given.
    #[error("missing the flow FILE to simulate")]
    MissingFile,
    /// More than one FILE.
    #[error("unexpected argument `{0}` (only one FILE)")]
    ExtraArgument(String),
    /// An option we do not have.
    #[error("unknown option `{found}`{suggestion}")]
    UnknownOption {
        /// What was given.
        found: String,
        /// The closest option.
        suggestion: DidYouMean,
    },
    /// An option without its value.
    #[error("option `{0}` needs a value")]
    MissingValue(String),
    /// A bad `--input`.
    #[error("`{0}` is not an input: use dtmf:KEYS, speech:TEXT, silence or nomatch")]
    BadInput(String),
    /// A bad `--time`.
    #[error("bad --time: {0}")]
    BadTime(TimeParseError),
    /// A bad `--channel`.
    #[error("`{0}` is not a channel: use trunk:NAME or browser")]
    BadChannel(String),
    /// A fixture file that cannot be read.
    #[error("cannot read fixture file {file}: {error}")]
    FixtureIo {
        /// The file.
        file: String,
        /// The I/O error.
        error: String,
    },
    /// A fixture file with bad content.
    #[error("fixture file {file}: {problem}")]
    Fixture {
        /// The file.
        file: String,
        /// What is wrong.
        problem: String,
    },
}

/// Parsed `switchboard flow simulate` arguments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimulateArgs {
    /// The flow file.
    pub file: PathBuf,
    /// `--caller NUM`.
    pub caller: Option<String>,
    /// `--caller-name NAME`.
    pub caller_name: Option<String>,
    /// `--called NUM`.
    pub called: Option<String>,
    /// `--channel trunk:NAME|browser`.
    pub channel: Option<Channel>,
    /// `--input X`, repeatable, in order.
    pub inputs: Vec<SimInput>,
    /// `--http-fixture FILE.json`, repeatable.
    pub http_fixtures: Vec<PathBuf>,
    /// `--time 2026-11-23T09:00`.
    pub time: Option<LocalDateTime>,
}

const OPTIONS: [&str; 7] = [
    "--caller",
    "--caller-name",
    "--called",
    "--channel",
    "--input",
    "--http-fixture",
    "--time",
];

/// Parse the arguments after `flow simulate`:
/// `FILE [--caller NUM] [--caller-name NAME] [--called NUM]
/// [--channel trunk:NAME|browser] [--input dtmf:12#]... [--input speech:"technical support"]...
/// [--input silence|nomatch]... [--http-fixture FILE.json]... [--time 2026-11-23T09:00]`.
/// `--opt=value` works too.
pub fn parse_simulate_args<I, S>(args: I) -> Result<SimulateArgs, SimArgError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = SimulateArgs::default();
    let mut file = None;
    let mut args = args.into_iter().map(|a| a.as_ref().to_owned());
    while let Some(arg) = args.next() {
        if !arg.starts_with("--") {
            if file.is_some() {
                return Err(SimArgError::ExtraArgument(arg));
            }
            file = Some(PathBuf::from(arg));
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        if !OPTIONS.contains(&name.as_str()) {
            return Err(SimArgError::UnknownOption {
                suggestion: DidYouMean(suggest(&name, OPTIONS)),
                found: name,
            });
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(SimArgError::MissingValue(name)),
        };
        match name.as_str() {
            "--caller" => out.caller = Some(value),
            "--caller-name" => out.caller_name = Some(value),
            "--called" => out.called = Some(value),
            "--channel" => {
                out.channel = Some(match value.strip_prefix("trunk:") {
                    Some(t) if !t.is_empty() => Channel::Trunk(t.to_owned()),
                    _ if value == "browser" => Channel::Browser,
                    _ if value == "phone" => Channel::Phone,
                    _ => return Err(SimArgError::BadChannel(value)),
                });
            }
            "--input" => out.inputs.push(value.parse()?),
            "--http-fixture" => out.http_fixtures.push(PathBuf::from(value)),
            _ => out.time = Some(value.parse().map_err(SimArgError::BadTime)?),
        }
    }
    out.file = file.ok_or(SimArgError::MissingFile)?;
    Ok(out)
}

impl SimulateArgs {
    /// Build [`SimOptions`], reading the fixture files.
    pub fn options(&self) -> Result<SimOptions, SimArgError> {
        let mut opts = SimOptions::default();
        if let Some(c) = &self.caller {
            opts.caller.clone_from(c);
        }
        if let Some(n) = &self.caller_name {
            opts.caller_name.clone_from(n);
        }
        if let Some(c) = &self.called {
            opts.called.clone_from(c);
        }
        if let Some(ch) = &self.channel {
            opts.channel = ch.clone();
        }
        if let Some(t) = self.time {
            opts.time = t;
        }
        opts.inputs.clone_from(&self.inputs);
        for file in &self.http_fixtures {
            let text = std::fs::read_to_string(file).map_err(|e| SimArgError::FixtureIo {
                file: file.display().to_string(),
                error: e.to_string(),
            })?;
            let fixtures =
                HttpFixtures::from_json(&text).map_err(|problem| SimArgError::Fixture {
                    file: file.display().to_string(),
                    problem,
                })?;
            opts.http_fixtures.extend(fixtures);
        }
        Ok(opts)
    }
}

/// `flow simulate` failed before simulating.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimulateError {
    /// Bad arguments or fixture files.
    #[error(transparent)]
    Args(#[from] SimArgError),
    /// The flows directory has errors (one per line).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FlowError>),
    /// The file holds no valid flow.
    #[error("{0} is not a flow file in its directory")]
    NotAFlow(PathBuf),
}

/// Load the directory of `args.file`, validate it, and simulate the flow of
/// that file: what `switchboard flow simulate` does.
pub fn simulate_file(args: &SimulateArgs, known: &Known) -> Result<SimTranscript, SimulateError> {
    let opts = args.options()?;
    let dir = match args.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (flows, errors) = load_flows(dir, known);
    if !errors.is_empty() {
        return Err(SimulateError::Invalid(errors));
    }
    let name = flows
        .flow_for_file(&args.file)
        .map(|f| f.name().to_owned())
        .ok_or_else(|| SimulateError::NotAFlow(args.file.clone()))?;
    Ok(simulate(&name, &flows, &opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cli_arguments() {
        let args = parse_simulate_args([
            "flows/main.yaml",
            "--caller",
            "+15550100001",
            "--input",
            "dtmf:12#",
            "--input=speech:\"technical support\"",
            "--input",
            "silence",
            "--time",
            "2026-11-23T09:00",
            "--channel",
            "browser",
        ])
        .unwrap();
        assert_eq!(args.file, PathBuf::from("flows/main.yaml"));
        assert_eq!(args.caller.as_deref(), Some("+15550100001"));
        assert_eq!(
            args.inputs,
            vec![
                SimInput::Dtmf("12#".into()),
                SimInput::Speech("technical support".into()),
                SimInput::Silence
            ]
        );
        assert_eq!(args.channel, Some(Channel::Browser));
        assert_eq!(
            parse_simulate_args(["f.yaml", "--imput", "x"])
                .unwrap_err()
                .to_string(),
            "unknown option `--imput`; did you mean `--input`?"
        );
        assert_eq!(
            parse_simulate_args(["--caller", "1"]).unwrap_err(),
            SimArgError::MissingFile
        );
        assert!(parse_simulate_args(["f.yaml", "--input", "dtmf:x"]).is_err());
    }

    #[test]
    fn fixtures_match_most_specific() {
        let f = HttpFixtures::from_json(
            r#"{"http://h/a/*": {"status": 404}, "http://h/a/b*": {"status": 200, "body": {}}, "http://h/x": {"fail": "down"}}"#,
        )
        .unwrap();
        assert!(matches!(
            f.lookup("http://h/a/bc"),
            Some(HttpFixture::Response { status: 200, .. })
        ));
        assert!(matches!(
            f.lookup("http://h/a/c"),
            Some(HttpFixture::Response { status: 404, .. })
        ));
        assert!(matches!(
            f.lookup("http://h/x"),
            Some(HttpFixture::Failure { .. })
        ));
        assert!(f.lookup("http://other").is_none());
        assert!(HttpFixtures::from_json(r#"{"u": {"stauts": 200}}"#)
            .unwrap_err()
            .contains("did you mean `status`"));
    }
}
