//! The flow interpreter: one [`FlowRun`] per call, sans-IO.
//!
//! Contract: a `FlowRun` is started with the flows, the flow name, the call's
//! initial [`Variables`] and `now`. The runtime then loops:
//!
//! ```text
//! handle(now, event)                 one input: Answered, PromptFinished, Dtmf…
//! poll_output() -> Option<Action>    drain until None: Play, Listen, Http, Queue…
//! poll_timeout() -> Option<(deadline, TimerKind)>   call handle(now, Event::Timeout) then
//! ```
//!
//! It never reads the clock, owns a socket or spawns anything; `now` is the
//! business's local time (see [`LocalDateTime`]). Promises to the runtime:
//!
//! - every `Play` is answered by exactly one `PromptFinished`, in order, whether
//!   the prompt completed, was cut by barge-in (the runtime stops a `barge_in`
//!   prompt on the first DTMF key or speech) or failed;
//! - a `Listen` replaces any earlier one and lasts until `StopListening`;
//! - `Http` carries an `id`; results with another id are stale and ignored. The
//!   interpreter enforces the step's timeout itself, so a dead backend never
//!   strands the caller;
//! - `Queue`, `Transfer` and `Hangup` end the run ([`FlowRun::outcome`]).
//!   Unexpected events are ignored (and logged), never a panic.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use super::model::*;
use super::speech::{match_choice, spoken_digits, ChoiceWords};
use super::template::{url_encode, Variables};
use super::time::{format_duration, LocalDateTime};

/// How long an `answer` step waits for `Answered`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Step transitions allowed without waiting for anything (valid flows need far fewer).
const MAX_HOPS: u32 = 1000;
/// Nested `call`s allowed.
const MAX_CALL_DEPTH: usize = 16;

/// Something that happened on the call.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The call was answered (after [`Action::Answer`]).
    Answered,
    /// The oldest playing prompt ended (completed, interrupted or failed).
    PromptFinished,
    /// A DTMF key.
    Dtmf(char),
    /// A final speech recognition result.
    Speech {
        /// What was recognised.
        text: String,
        /// Recogniser confidence, 0 to 1.
        confidence: f32,
    },
    /// The recogniser heard speech but matched nothing.
    SpeechNoMatch,
    /// The HTTP request `id` got a response.
    HttpResult {
        /// The id of [`Action::Http`].
        id: u64,
        /// HTTP status code.
        status: u16,
        /// The response body.
        body: String,
    },
    /// The HTTP request `id` failed (connection, TLS, runtime timeout...).
    HttpFailed {
        /// The id of [`Action::Http`].
        id: u64,
        /// Why, for the log.
        reason: String,
    },
    /// A deadline from [`FlowRun::poll_timeout`] has passed.
    Timeout,
}

/// What to play.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// A prompt file, relative to the prompts directory.
    File(String),
    /// Text to speak.
    Tts(String),
}

impl fmt::Display for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prompt::File(p) => write!(f, "file {p}"),
            Prompt::Tts(t) => write!(f, "say \"{t}\""),
        }
    }
}

/// What DTMF input is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtmfSpec {
    /// Keys that mean something (menus); empty means any key.
    pub keys: Vec<char>,
    /// Fewest digits accepted.
    pub min_digits: u32,
    /// Most digits accepted.
    pub max_digits: u32,
    /// Key that ends the input.
    pub terminator: Option<char>,
    /// Silence between keys that ends the input.
    pub inter_digit_timeout: Duration,
}

/// What speech is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grammar {
    /// Menu choices and their phrases (hints for the recogniser).
    pub choices: Vec<(String, Vec<String>)>,
    /// Whether spoken digits are expected (collect).
    pub digits: bool,
}

/// A routing skill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skill {
    /// Skill name.
    pub name: String,
    /// Lowest proficiency accepted (1-10), if any.
    pub min_level: Option<u8>,
}

/// Offer a callback when the estimated wait exceeds `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackOffer {
    /// Wait above which the offer is made.
    pub after: Duration,
    /// What to say when offering, if not the queue's default.
    pub prompt: Option<Prompt>,
}

/// Where a transfer goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferTarget {
    /// A registered user.
    User(String),
    /// A number, through a trunk or by the profile's routing.
    Number {
        /// The number.
        number: String,
        /// The trunk, if chosen by the flow.
        trunk: Option<String>,
    },
}

impl fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferTarget::User(u) => write!(f, "user `{u}`"),
            TransferTarget::Number {
                number,
                trunk: Some(t),
            } => write!(f, "number {number} via trunk `{t}`"),
            TransferTarget::Number {
                number,
                trunk: None,
            } => write!(f, "number {number}"),
        }
    }
}

/// Something for the runtime to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Answer the call; reply with [`Event::Answered`].
    Answer,
    /// Play a prompt after any already queued; reply with [`Event::PromptFinished`].
    Play {
        /// What.
        prompt: Prompt,
        /// Stop it on the caller's first DTMF key or speech.
        barge_in: bool,
    },
    /// Detect DTMF and, if `speech` is given, recognise speech.
    Listen {
        /// DTMF expected.
        dtmf: DtmfSpec,
        /// Speech expected.
        speech: Option<Grammar>,
        /// Silence after the prompt that counts as no input (the interpreter times it).
        no_input_timeout: Duration,
    },
    /// Stop recognising speech.
    StopListening,
    /// Make an HTTP request; reply with [`Event::HttpResult`] or [`Event::HttpFailed`].
    Http {
        /// Request id, echoed in the reply.
        id: u64,
        /// Method.
        method: HttpMethod,
        /// Full URL (variables already expanded and URL-encoded).
        url: String,
        /// JSON body for POST.
        body: Option<String>,
        /// Give up after this long.
        timeout: Duration,
    },
    /// Hand the call to the ACD. Ends the run.
    Queue {
        /// Queue name.
        name: String,
        /// Priority (higher first).
        priority: i32,
        /// Required skills.
        skills: Vec<Skill>,
        /// Routing attributes.
        attributes: BTreeMap<String, String>,
        /// Callback offer when the wait is long.
        callback_offer: Option<CallbackOffer>,
    },
    /// Transfer the call. Ends the run.
    Transfer {
        /// Where.
        target: TransferTarget,
    },
    /// Record the caller to `to`, at most `max`.
    Record {
        /// Longest recording.
        max: Duration,
        /// Destination (mailbox or file name).
        to: String,
    },
    /// Stop the recording.
    StopRecording,
    /// Hang up. Ends the run.
    Hangup,
    /// A line for the call's log (and the simulator's transcript). The text
    /// may hold caller data (numbers, names, what they said): log it through
    /// the redacting wrapper.
    Log {
        /// `flow/step`.
        step: String,
        /// What happened.
        text: String,
    },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to this queue.
    Queued(String),
    /// Transferred.
    Transferred(TransferTarget),
    /// Hung up.
    HungUp,
}

/// The interpreter's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// Waiting for `Answered`.
    Answer,
    /// No input after a prompt.
    NoInput,
    /// Silence between DTMF keys.
    InterDigit,
    /// HTTP step timeout.
    Http,
    /// A play step's `wait`.
    Pause,
    /// A recording's maximum length.
    RecordMax,
}

impl TimerKind {
    const ALL: [TimerKind; 6] = [
        TimerKind::Answer,
        TimerKind::NoInput,
        TimerKind::InterDigit,
        TimerKind::Http,
        TimerKind::Pause,
        TimerKind::RecordMax,
    ];
}

/// Starting a run failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// No flow of that name.
    #[error("no flow named `{0}`")]
    UnknownFlow(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AskPhase {
    RetryPrompt,
    MainPrompt,
    Waiting,
    Digits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    NoInput,
    NoMatch,
}

#[derive(Clone, Debug)]
enum State {
    Running,
    AwaitAnswer,
    Playing,
    Pausing,
    Asking {
        attempt: u32,
        phase: AskPhase,
        digits: String,
    },
    AwaitHttp {
        id: u64,
    },
    RecordPrompt,
    Recording,
    Done,
}

/// What a step does next.
enum Flowing {
    Next(String),
    Wait,
}

/// One call's run through its flows.
#[derive(Debug)]
pub struct FlowRun {
    flows: Flows,
    flow: String,
    step: String,
    stack: Vec<(String, String)>,
    vars: Variables,
    state: State,
    timers: [Option<LocalDateTime>; 6],
    prompts_playing: u32,
    next_http_id: u64,
    actions: VecDeque<(String, Action)>,
    outcome: Option<Outcome>,
    inputs: Vec<String>,
}

impl FlowRun {
    /// Start `flow` with the call's variables at `now`; the first actions are
    /// ready to poll.
    pub fn start(
        flows: &Flows,
        flow: &str,
        vars: Variables,
        now: LocalDateTime,
    ) -> Result<FlowRun, RunError> {
        let start = flows
            .get(flow)
            .ok_or_else(|| RunError::UnknownFlow(flow.to_owned()))?
            .start()
            .to_owned();
        let mut run = FlowRun {
            flows: flows.clone(),
            flow: flow.to_owned(),
            step: start,
            stack: Vec::new(),
            vars,
            state: State::Running,
            timers: [None; 6],
            prompts_playing: 0,
            next_http_id: 1,
            actions: VecDeque::new(),
            outcome: None,
            inputs: Vec::new(),
        };
        run.run(now);
        Ok(run)
    }

    /// The next action, if any.
    pub fn poll_output(&mut self) -> Option<Action> {
        self.actions.pop_front().map(|(_, a)| a)
    }

    /// The next action with the `flow/step` that produced it.
    pub fn poll_output_traced(&mut self) -> Option<(String, Action)> {
        self.actions.pop_front()
    }

    /// The next deadline and what it is for.
    pub fn poll_timeout(&self) -> Option<(LocalDateTime, TimerKind)> {
        TimerKind::ALL
            .iter()
            .filter_map(|&k| self.timers[k as usize].map(|t| (t, k)))
            .min()
    }

    /// The variables now.
    pub fn variables(&self) -> &Variables {
        &self.vars
    }

    /// What the caller pressed or said, in order (for the agent's screen pop).
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// The current `(flow, step)`.
    pub fn position(&self) -> (&str, &str) {
        (&self.flow, &self.step)
    }

    /// How the run ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Whether the run has ended.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: LocalDateTime) {
        for kind in TimerKind::ALL {
            if self.timers[kind as usize].is_some_and(|t| t <= now) {
                self.timers[kind as usize] = None;
                self.on_timer(now, kind);
            }
        }
    }

    /// Feed one event.
    pub fn handle(&mut self, now: LocalDateTime, event: Event) {
        if matches!(self.state, State::Done) {
            return;
        }
        match event {
            Event::Timeout => self.handle_timeout(now),
            Event::PromptFinished => {
                if self.prompts_playing == 0 {
                    self.log("ignored a PromptFinished with no prompt playing".to_owned());
                    return;
                }
                self.prompts_playing -= 1;
                if self.prompts_playing == 0 {
                    self.prompts_done(now);
                }
            }
            Event::Answered => {
                if matches!(self.state, State::AwaitAnswer) {
                    self.timers[TimerKind::Answer as usize] = None;
                    self.advance_from_simple(now);
                }
            }
            Event::Dtmf(key) => self.on_dtmf(now, key),
            Event::Speech { text, confidence } => self.on_speech(now, &text, confidence),
            Event::SpeechNoMatch => {
                if self.listening() {
                    self.inputs.push("said something unrecognised".to_owned());
                    self.log("speech not recognised".to_owned());
                    self.retry(now, Retry::NoMatch);
                }
            }
            Event::HttpResult { id, status, body } => {
                if matches!(self.state, State::AwaitHttp { id: want } if want == id) {
                    self.on_http(now, Ok((status, body)));
                } else {
                    self.log(format!("ignored a late answer to HTTP request {id}"));
                }
            }
            Event::HttpFailed { id, reason } => {
                if matches!(self.state, State::AwaitHttp { id: want } if want == id) {
                    self.on_http(now, Err(reason));
                } else {
                    self.log(format!("ignored a late failure of HTTP request {id}"));
                }
            }
        }
    }

    // ----- plumbing -----

    fn here(&self) -> String {
        format!("{}/{}", self.flow, self.step)
    }

    fn emit(&mut self, action: Action) {
        let here = self.here();
        self.actions.push_back((here, action));
    }

    fn log(&mut self, text: String) {
        let step = self.here();
        self.emit(Action::Log { step, text });
    }

    fn play(&mut self, prompt: &PromptSpec, barge_in: bool, now: LocalDateTime) {
        let prompt = match prompt {
            PromptSpec::Say(t) => Prompt::Tts(t.expand(&self.vars, now)),
            PromptSpec::File(t) => Prompt::File(t.expand(&self.vars, now)),
        };
        self.prompts_playing += 1;
        self.emit(Action::Play { prompt, barge_in });
    }

    fn set_timer(&mut self, kind: TimerKind, at: LocalDateTime) {
        self.timers[kind as usize] = Some(at);
    }

    fn clear_timers(&mut self) {
        self.timers = [None; 6];
    }

    fn set_var(&mut self, name: &str, value: &str) {
        self.vars.set(name, value);
        self.log(format!("set {name} = \"{value}\""));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.clear_timers();
        self.state = State::Done;
        self.outcome = Some(outcome);
    }

    fn fail(&mut self, why: String) {
        self.log(why);
        self.emit(Action::Hangup);
        self.finish(Outcome::HungUp);
    }

    fn current(&self) -> Option<Step> {
        self.flows.get(&self.flow)?.step(&self.step).cloned()
    }

    /// Go to `target` in the current flow and run until something waits.
    fn go(&mut self, now: LocalDateTime, target: String) {
        self.clear_timers();
        self.step = target;
        self.run(now);
    }

    /// Continue after a step with a single `next` (answer, play, record).
    fn advance_from_simple(&mut self, now: LocalDateTime) {
        let next = match self.current().map(|s| s.kind) {
            Some(StepKind::Answer { next })
            | Some(StepKind::Play { next, .. })
            | Some(StepKind::Call { next, .. }) => next.name,
            Some(StepKind::Record(r)) => r.next.name,
            _ => return self.fail("internal: no next step".to_owned()),
        };
        self.go(now, next);
    }

    /// Execute steps until one waits or the run ends.
    fn run(&mut self, now: LocalDateTime) {
        let mut hops = 0;
        loop {
            hops += 1;
            if hops > MAX_HOPS {
                return self.fail(format!(
                    "gave up: {MAX_HOPS} steps without waiting for the caller"
                ));
            }
            let Some(step) = self.current() else {
                return self.fail(format!(
                    "step `{}` does not exist in flow `{}`",
                    self.step, self.flow
                ));
            };
            self.state = State::Running;
            match self.execute(now, &step) {
                Flowing::Next(target) => {
                    self.clear_timers();
                    self.step = target;
                }
                Flowing::Wait => return,
            }
        }
    }

    fn execute(&mut self, now: LocalDateTime, step: &Step) -> Flowing {
        match &step.kind {
            StepKind::Answer { .. } => {
                self.emit(Action::Answer);
                self.set_timer(TimerKind::Answer, now + ANSWER_TIMEOUT);
                self.state = State::AwaitAnswer;
                Flowing::Wait
            }
            StepKind::Play {
                prompt, barge_in, ..
            } => {
                self.play(prompt, *barge_in, now);
                self.state = State::Playing;
                Flowing::Wait
            }
            StepKind::Menu(m) => {
                self.start_attempt(now, &m.ask, None, 1, self.menu_listen(m));
                Flowing::Wait
            }
            StepKind::Collect(c) => {
                self.start_attempt(now, &c.ask, None, 1, collect_listen(c));
                Flowing::Wait
            }
            StepKind::Http(h) => {
                let id = self.next_http_id;
                self.next_http_id += 1;
                let url = h.url.expand_with(&self.vars, now, url_encode);
                let body = h.body.as_ref().map(|b| self.body_json(b, now).to_string());
                self.emit(Action::Http {
                    id,
                    method: h.method,
                    url,
                    body,
                    timeout: h.timeout,
                });
                self.set_timer(TimerKind::Http, now + h.timeout);
                self.state = State::AwaitHttp { id };
                Flowing::Wait
            }
            StepKind::Set { vars, next } => {
                for (name, value) in vars {
                    let v = value.expand(&self.vars, now);
                    self.set_var(&name.name, &v);
                }
                Flowing::Next(next.name.clone())
            }
            StepKind::Branch { rules, default } => {
                for (i, rule) in rules.iter().enumerate() {
                    if self.eval(&rule.condition, now) {
                        self.log(format!(
                            "condition {} ({}) is true -> {}",
                            i + 1,
                            describe(&rule.condition),
                            rule.next.name
                        ));
                        return Flowing::Next(rule.next.name.clone());
                    }
                }
                self.log(format!("no condition is true -> default {}", default.name));
                Flowing::Next(default.name.clone())
            }
            StepKind::Queue(q) => {
                self.enqueue(now, q);
                Flowing::Wait
            }
            StepKind::Transfer(t) => {
                let target = match t {
                    TransferStep::User(u) => TransferTarget::User(u.name.clone()),
                    TransferStep::Number { number, trunk } => TransferTarget::Number {
                        number: number.expand(&self.vars, now),
                        trunk: trunk.as_ref().map(|t| t.name.clone()),
                    },
                };
                self.emit(Action::Transfer {
                    target: target.clone(),
                });
                self.finish(Outcome::Transferred(target));
                Flowing::Wait
            }
            StepKind::Goto { flow } => self.enter_flow(&flow.name, None),
            StepKind::Call { flow, next } => self.enter_flow(&flow.name, Some(next.name.clone())),
            StepKind::Return => match self.stack.pop() {
                Some((flow, next)) => {
                    self.log(format!("return to {flow}/{next}"));
                    self.flow = flow;
                    Flowing::Next(next)
                }
                None => {
                    self.fail("return with no calling flow: hanging up".to_owned());
                    Flowing::Wait
                }
            },
            StepKind::Record(rec) => {
                match &rec.prompt {
                    Some(p) => {
                        self.play(p, false, now);
                        self.state = State::RecordPrompt;
                    }
                    None => self.start_recording(now, rec),
                }
                Flowing::Wait
            }
            StepKind::Hangup => {
                self.emit(Action::Hangup);
                self.finish(Outcome::HungUp);
                Flowing::Wait
            }
        }
    }

    fn enter_flow(&mut self, name: &str, return_to: Option<String>) -> Flowing {
        let Some(start) = self.flows.get(name).map(|f| f.start().to_owned()) else {
            self.fail(format!("flow `{name}` does not exist: hanging up"));
            return Flowing::Wait;
        };
        match return_to {
            Some(next) => {
                if self.stack.len() >= MAX_CALL_DEPTH {
                    self.fail(format!(
                        "calls nested deeper than {MAX_CALL_DEPTH}: hanging up"
                    ));
                    return Flowing::Wait;
                }
                self.log(format!("call flow {name} (returns to {next})"));
                self.stack.push((self.flow.clone(), next));
            }
            None => self.log(format!("goto flow {name}")),
        }
        self.flow = name.to_owned();
        Flowing::Next(start)
    }

    fn enqueue(&mut self, now: LocalDateTime, q: &QueueStep) {
        let priority = match &q.priority {
            None => 0,
            Some(t) => {
                let text = t.expand(&self.vars, now);
                match text.trim().parse::<i32>() {
                    Ok(p) => p,
                    Err(_) => {
                        self.log(format!("priority \"{text}\" is not a number; using 0"));
                        0
                    }
                }
            }
        };
        let skills = q
            .skills
            .iter()
            .map(|s| Skill {
                name: s.name.expand(&self.vars, now),
                min_level: s.min_level,
            })
            .collect();
        let attributes = q
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.expand(&self.vars, now)))
            .collect();
        let callback_offer = q.callback.as_ref().map(|c| CallbackOffer {
            after: c.offer_after,
            prompt: c.prompt.as_ref().map(|p| match p {
                PromptSpec::Say(t) => Prompt::Tts(t.expand(&self.vars, now)),
                PromptSpec::File(t) => Prompt::File(t.expand(&self.vars, now)),
            }),
        });
        self.emit(Action::Queue {
            name: q.queue.name.clone(),
            priority,
            skills,
            attributes,
            callback_offer,
        });
        self.finish(Outcome::Queued(q.queue.name.clone()));
    }

    fn start_recording(&mut self, now: LocalDateTime, rec: &RecordStep) {
        let to = rec.to.expand(&self.vars, now);
        self.emit(Action::Record { max: rec.max, to });
        self.set_timer(TimerKind::RecordMax, now + rec.max);
        self.state = State::Recording;
    }

    fn stop_recording(&mut self, now: LocalDateTime, why: &str) {
        self.timers[TimerKind::RecordMax as usize] = None;
        self.emit(Action::StopRecording);
        self.log(format!("recording ended: {why}"));
        self.advance_from_simple(now);
    }

    fn body_json(&self, body: &BodyTemplate, now: LocalDateTime) -> serde_json::Value {
        match body {
            BodyTemplate::Null => serde_json::Value::Null,
            BodyTemplate::Bool(b) => serde_json::Value::Bool(*b),
            BodyTemplate::Number(n) => serde_json::Value::Number(n.clone()),
            BodyTemplate::Text(t) => serde_json::Value::String(t.expand(&self.vars, now)),
            BodyTemplate::List(items) => {
                serde_json::Value::Array(items.iter().map(|i| self.body_json(i, now)).collect())
            }
            BodyTemplate::Object(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), self.body_json(v, now)))
                    .collect(),
            ),
        }
    }

    fn on_http(&mut self, now: LocalDateTime, result: Result<(u16, String), String>) {
        self.timers[TimerKind::Http as usize] = None;
        let Some(StepKind::Http(h)) = self.current().map(|s| s.kind) else {
            return self.fail("internal: not in an http step".to_owned());
        };
        let parsed = match result {
            Ok((status, body)) if (200..300).contains(&status) => {
                if h.set.is_empty() {
                    Ok((status, serde_json::Value::Null))
                } else {
                    serde_json::from_str::<serde_json::Value>(&body)
                        .map(|v| (status, v))
                        .map_err(|_| format!("HTTP {status} but the body is not JSON"))
                }
            }
            Ok((status, _)) => Err(format!("HTTP {status}")),
            Err(reason) => Err(reason),
        };
        match parsed {
            Ok((status, json)) => {
                self.log(format!("HTTP {status} -> on_success {}", h.on_success.name));
                for (var, extract) in &h.set {
                    let value = lookup_json(&json, &extract.segments);
                    if value.is_none() {
                        self.log(format!("response has no `{}`", extract.written));
                    }
                    self.set_var(&var.name, &value.unwrap_or_default());
                }
                self.go(now, h.on_success.name.clone());
            }
            Err(why) => {
                self.log(format!(
                    "request failed ({why}) -> on_failure {}",
                    h.on_failure.name
                ));
                self.go(now, h.on_failure.name.clone());
            }
        }
    }

    // ----- menu and collect -----

    fn menu_listen(&self, m: &Menu) -> Action {
        Action::Listen {
            dtmf: DtmfSpec {
                keys: m.choices.iter().filter_map(|c| c.dtmf).collect(),
                min_digits: 1,
                max_digits: 1,
                terminator: None,
                inter_digit_timeout: Duration::ZERO,
            },
            speech: m.ask.speech.then(|| Grammar {
                choices: m
                    .choices
                    .iter()
                    .map(|c| (c.name.name.clone(), c.phrases.clone()))
                    .collect(),
                digits: false,
            }),
            no_input_timeout: m.ask.timeout,
        }
    }

    fn ask_of(&self) -> Option<(Ask, Action)> {
        match self.current()?.kind {
            StepKind::Menu(m) => {
                let listen = self.menu_listen(&m);
                Some((m.ask, listen))
            }
            StepKind::Collect(c) => {
                let listen = collect_listen(&c);
                Some((c.ask, listen))
            }
            _ => None,
        }
    }

    fn listening(&self) -> bool {
        match &self.state {
            State::Asking { phase, .. } => {
                matches!(phase, AskPhase::Waiting | AskPhase::Digits)
                    || self.ask_of().is_some_and(|(a, _)| a.barge_in)
            }
            _ => false,
        }
    }

    fn start_attempt(
        &mut self,
        now: LocalDateTime,
        ask: &Ask,
        reason: Option<Retry>,
        attempt: u32,
        listen: Action,
    ) {
        self.timers[TimerKind::NoInput as usize] = None;
        self.timers[TimerKind::InterDigit as usize] = None;
        let retry_prompt = match reason {
            Some(Retry::NoInput) => ask.no_input.as_ref(),
            Some(Retry::NoMatch) => ask.no_match.as_ref(),
            None => None,
        };
        let phase = match retry_prompt {
            Some(p) => {
                self.play(p, ask.barge_in, now);
                AskPhase::RetryPrompt
            }
            None => {
                self.play(&ask.prompt, ask.barge_in, now);
                AskPhase::MainPrompt
            }
        };
        if ask.barge_in {
            self.emit(listen);
        }
        self.state = State::Asking {
            attempt,
            phase,
            digits: String::new(),
        };
    }

    fn prompts_done(&mut self, now: LocalDateTime) {
        match self.state.clone() {
            State::Playing => {
                let wait = match self.current().map(|s| s.kind) {
                    Some(StepKind::Play { wait, .. }) => wait.filter(|w| !w.is_zero()),
                    _ => None,
                };
                match wait {
                    Some(w) => {
                        self.set_timer(TimerKind::Pause, now + w);
                        self.state = State::Pausing;
                    }
                    None => self.advance_from_simple(now),
                }
            }
            State::RecordPrompt => {
                if let Some(StepKind::Record(rec)) = self.current().map(|s| s.kind) {
                    self.start_recording(now, &rec);
                }
            }
            State::Asking {
                attempt,
                phase,
                digits,
            } => {
                let Some((ask, listen)) = self.ask_of() else {
                    return;
                };
                match phase {
                    AskPhase::RetryPrompt => {
                        self.play(&ask.prompt, ask.barge_in, now);
                        self.state = State::Asking {
                            attempt,
                            phase: AskPhase::MainPrompt,
                            digits,
                        };
                    }
                    AskPhase::MainPrompt => {
                        if !ask.barge_in {
                            self.emit(listen);
                        }
                        self.set_timer(TimerKind::NoInput, now + ask.timeout);
                        self.state = State::Asking {
                            attempt,
                            phase: AskPhase::Waiting,
                            digits,
                        };
                    }
                    AskPhase::Waiting | AskPhase::Digits => {}
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, now: LocalDateTime, kind: TimerKind) {
        match (kind, self.state.clone()) {
            (TimerKind::Answer, State::AwaitAnswer) => {
                self.fail(format!(
                    "the call was not answered within {}",
                    format_duration(ANSWER_TIMEOUT)
                ));
            }
            (TimerKind::Pause, State::Pausing) => self.advance_from_simple(now),
            (TimerKind::Http, State::AwaitHttp { .. }) => {
                let timeout = match self.current().map(|s| s.kind) {
                    Some(StepKind::Http(h)) => h.timeout,
                    _ => Duration::ZERO,
                };
                self.on_http(
                    now,
                    Err(format!("no answer within {}", format_duration(timeout))),
                );
            }
            (TimerKind::RecordMax, State::Recording) => {
                self.stop_recording(now, "maximum length reached");
            }
            (TimerKind::NoInput, State::Asking { .. }) => {
                self.inputs.push("no input".to_owned());
                self.log("no input".to_owned());
                self.retry(now, Retry::NoInput);
            }
            (TimerKind::InterDigit, State::Asking { digits, .. }) => {
                self.collect_done(now, digits);
            }
            _ => {}
        }
    }

    fn retry(&mut self, now: LocalDateTime, reason: Retry) {
        let State::Asking { attempt, .. } = self.state else {
            return;
        };
        let Some((ask, listen)) = self.ask_of() else {
            return;
        };
        if attempt > ask.retries {
            self.emit(Action::StopListening);
            self.log(format!(
                "no valid input after {attempt} attempt{} -> default {}",
                if attempt == 1 { "" } else { "s" },
                ask.default.name
            ));
            if let Some(StepKind::Menu(m)) = self.current().map(|s| s.kind) {
                if let Some(into) = &m.into {
                    self.set_var(&into.name, "");
                }
            }
            self.go(now, ask.default.name.clone());
        } else {
            self.log(format!(
                "asking again (attempt {} of {})",
                attempt + 1,
                ask.retries + 1
            ));
            self.start_attempt(now, &ask, Some(reason), attempt + 1, listen);
        }
    }

    fn on_dtmf(&mut self, now: LocalDateTime, key: char) {
        match self.state.clone() {
            State::Recording => {
                self.inputs.push(format!("pressed {key}"));
                self.stop_recording(now, &format!("caller pressed {key}"));
            }
            State::Asking {
                attempt,
                phase,
                mut digits,
            } => {
                if !self.listening() {
                    self.log(format!(
                        "ignored key {key}: the prompt cannot be interrupted"
                    ));
                    return;
                }
                match self.current().map(|s| s.kind) {
                    Some(StepKind::Menu(m)) => {
                        self.inputs.push(format!("pressed {key}"));
                        match m.choices.iter().find(|c| c.dtmf == Some(key)) {
                            Some(choice) => self.choose(now, &m, choice, format!("key {key}")),
                            None => {
                                self.log(format!("key {key} is not a choice"));
                                self.retry(now, Retry::NoMatch);
                            }
                        }
                    }
                    Some(StepKind::Collect(c)) => {
                        if Some(key) == c.terminator {
                            self.inputs.push(format!("entered {digits}{key}"));
                            return self.collect_done(now, digits);
                        }
                        digits.push(key);
                        if digits.len() >= usize::try_from(c.max_digits).unwrap_or(usize::MAX) {
                            self.inputs.push(format!("entered {digits}"));
                            return self.collect_done(now, digits);
                        }
                        self.timers[TimerKind::NoInput as usize] = None;
                        self.set_timer(TimerKind::InterDigit, now + c.inter_digit_timeout);
                        let _ = phase;
                        self.state = State::Asking {
                            attempt,
                            phase: AskPhase::Digits,
                            digits,
                        };
                    }
                    _ => {}
                }
            }
            _ => self.log(format!("ignored key {key}")),
        }
    }

    fn on_speech(&mut self, now: LocalDateTime, text: &str, confidence: f32) {
        if !self.listening() {
            self.log(format!("ignored speech \"{text}\""));
            return;
        }
        self.inputs.push(format!("said \"{text}\""));
        let Some((ask, _)) = self.ask_of() else {
            return;
        };
        if confidence < ask.min_confidence {
            self.log(format!(
                "heard \"{text}\" with confidence {confidence:.2}, below {:.2}",
                ask.min_confidence
            ));
            return self.retry(now, Retry::NoMatch);
        }
        match self.current().map(|s| s.kind) {
            Some(StepKind::Menu(m)) => {
                let words: Vec<ChoiceWords<'_>> = m
                    .choices
                    .iter()
                    .map(|c| ChoiceWords {
                        name: &c.name.name,
                        phrases: &c.phrases,
                        dtmf: c.dtmf,
                    })
                    .collect();
                match match_choice(text, &words) {
                    Some(i) => {
                        let choice = m.choices[i].clone();
                        self.choose(now, &m, &choice, format!("\"{text}\""));
                    }
                    None => {
                        self.log(format!("\"{text}\" matches no choice"));
                        self.retry(now, Retry::NoMatch);
                    }
                }
            }
            Some(StepKind::Collect(_)) => match spoken_digits(text) {
                Some(digits) => self.collect_done(now, digits),
                None => {
                    self.log(format!("\"{text}\" is not digits"));
                    self.retry(now, Retry::NoMatch);
                }
            },
            _ => {}
        }
    }

    fn choose(&mut self, now: LocalDateTime, m: &Menu, choice: &Choice, heard: String) {
        self.emit(Action::StopListening);
        self.log(format!(
            "{heard} -> choice {} -> {}",
            choice.name.name, choice.next.name
        ));
        if let Some(into) = &m.into {
            self.set_var(&into.name, &choice.name.name);
        }
        self.go(now, choice.next.name.clone());
    }

    fn collect_done(&mut self, now: LocalDateTime, digits: String) {
        let Some(StepKind::Collect(c)) = self.current().map(|s| s.kind) else {
            return;
        };
        let n = u32::try_from(digits.chars().count()).unwrap_or(u32::MAX);
        if digits.is_empty() {
            self.log("no digits entered".to_owned());
            return self.retry(now, Retry::NoInput);
        }
        if n < c.min_digits || n > c.max_digits {
            self.log(format!(
                "{digits} has {n} digits; expected {} to {}",
                c.min_digits, c.max_digits
            ));
            return self.retry(now, Retry::NoMatch);
        }
        self.emit(Action::StopListening);
        self.log(format!("collected {digits} -> {}", c.next.name));
        self.set_var(&c.into.name, &digits);
        self.go(now, c.next.name.clone());
    }

    // ----- conditions -----

    fn eval(&self, c: &Condition, now: LocalDateTime) -> bool {
        let value = |v: &Named| self.vars.lookup(&v.name, now).unwrap_or_default();
        match c {
            Condition::Compare { var, op, value: t } => {
                compare(&value(var), *op, &t.expand(&self.vars, now))
            }
            Condition::In {
                var,
                values,
                negate,
            } => {
                let v = value(var);
                values.iter().any(|t| t.expand(&self.vars, now) == v) != *negate
            }
            Condition::Present { var, present } => {
                self.vars
                    .lookup(&var.name, now)
                    .is_some_and(|v| !v.is_empty())
                    == *present
            }
            Condition::Open { calendar } => self
                .flows
                .calendar(&calendar.name)
                .is_some_and(|c| c.is_open(now)),
            Condition::Holiday { calendar } => self
                .flows
                .calendar(&calendar.name)
                .is_some_and(|c| c.is_holiday(now.date())),
            Condition::Weekday(days) => days.contains(&now.weekday()),
            Condition::TimeBetween(from, to) => {
                let t = now.time_of_day();
                *from <= t && t < *to
            }
            Condition::All(parts) => parts.iter().all(|p| self.eval(p, now)),
            Condition::Any(parts) => parts.iter().any(|p| self.eval(p, now)),
            Condition::Not(inner) => !self.eval(inner, now),
        }
    }
}

fn collect_listen(c: &Collect) -> Action {
    Action::Listen {
        dtmf: DtmfSpec {
            keys: Vec::new(),
            min_digits: c.min_digits,
            max_digits: c.max_digits,
            terminator: c.terminator,
            inter_digit_timeout: c.inter_digit_timeout,
        },
        speech: c.ask.speech.then(|| Grammar {
            choices: Vec::new(),
            digits: true,
        }),
        no_input_timeout: c.ask.timeout,
    }
}

/// Numbers compare as numbers when both sides parse, otherwise as text.
fn compare(left: &str, op: CmpOp, right: &str) -> bool {
    let ord = match (left.trim().parse::<f64>(), right.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b),
        _ => Some(left.cmp(right)),
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord.is_eq(),
        CmpOp::Ne => ord.is_ne(),
        CmpOp::Lt => ord.is_lt(),
        CmpOp::Le => ord.is_le(),
        CmpOp::Gt => ord.is_gt(),
        CmpOp::Ge => ord.is_ge(),
    }
}

/// A JSON value at `segments` as a variable's string.
fn lookup_json(json: &serde_json::Value, segments: &[String]) -> Option<String> {
    let mut cur = json;
    for seg in segments {
        cur = match cur {
            serde_json::Value::Object(map) => map.get(seg)?,
            serde_json::Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(match cur {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// A condition as a designer would read it.
fn describe(c: &Condition) -> String {
    match c {
        Condition::Compare { var, op, value } => {
            format!("{} {} \"{}\"", var.name, op.name(), value)
        }
        Condition::In {
            var,
            values,
            negate,
        } => format!(
            "{} {} [{}]",
            var.name,
            if *negate { "not in" } else { "in" },
            values
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Condition::Present { var, present } => {
            format!(
                "{} is {}",
                var.name,
                if *present { "present" } else { "absent" }
            )
        }
        Condition::Open { calendar } => format!("calendar {} is open", calendar.name),
        Condition::Holiday { calendar } => {
            format!("today is a holiday in calendar {}", calendar.name)
        }
        Condition::Weekday(days) => format!(
            "weekday in [{}]",
            days.iter()
                .map(|d| d.short_name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Condition::TimeBetween(a, b) => format!("time {a}-{b}"),
        Condition::All(parts) => parts.iter().map(describe).collect::<Vec<_>>().join(" and "),
        Condition::Any(parts) => format!(
            "({})",
            parts.iter().map(describe).collect::<Vec<_>>().join(" or ")
        ),
        Condition::Not(inner) => format!("not ({})", describe(inner)),
    }
}
