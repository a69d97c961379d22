//! The ACD's public vocabulary: identifiers, inputs, outputs and views.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::config::{CallbackMode, OverflowTarget, SkillRequirement};

/// A caller waiting in (or passing through) a queue. Assigned by the call
/// core; unique among the callers the ACD currently knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerId(pub u64);

/// One offer of one caller to one agent. Assigned by the ACD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfferId(pub u64);

/// A callback ("virtual caller"). Assigned by the ACD; survives restarts
/// through [`CallbackRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallbackId(pub u64);

/// An agent, by the `id` given in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub String);

impl From<&str> for AgentId {
    fn from(s: &str) -> Self {
        AgentId(s.to_owned())
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "caller-{}", self.0)
    }
}

impl fmt::Display for CallbackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "callback-{}", self.0)
    }
}

impl fmt::Display for OfferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offer-{}", self.0)
    }
}

/// Who an agent talks to: a live caller or a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contact {
    Caller(CallerId),
    Callback(CallbackId),
}

/// A caller entering a queue.
#[derive(Clone, Debug, PartialEq)]
pub struct CallerEntry {
    pub caller: CallerId,
    pub queue: String,
    /// Base priority; the queue's priority rules add to it. Higher first.
    pub priority: i32,
    /// Extra required skills, or overrides of the queue's minimum
    /// proficiency for a skill it already requires.
    pub skills: Vec<SkillRequirement>,
    /// Matched against agents' attributes (a preference, not a filter) and
    /// against the queue's priority rules.
    pub attributes: BTreeMap<String, String>,
    /// The agent who handled this customer last (sticky routing).
    pub last_agent: Option<AgentId>,
    /// The caller's number (for callbacks and screen pops).
    pub number: Option<String>,
    /// Offer this caller a callback once the estimate exceeds this (the flow's
    /// `callback.offer_after`), instead of the queue's own threshold.
    pub callback_after: Option<Duration>,
}

impl CallerEntry {
    /// A caller with priority 0 and no skills, attributes or history.
    pub fn new(caller: CallerId, queue: &str) -> Self {
        CallerEntry {
            caller,
            queue: queue.to_owned(),
            priority: 0,
            skills: Vec::new(),
            attributes: BTreeMap::new(),
            last_agent: None,
            number: None,
            callback_after: None,
        }
    }
}

/// Why a caller left the queue without being answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// The caller hung up (counted as an abandon unless within the queue's
    /// short-abandon threshold).
    Abandoned,
    /// The flow took the caller out (e.g. chose voicemail); not an abandon.
    Exited,
}

/// A state an agent (or the registrar on their behalf) asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AgentStateChange {
    LoggedOut,
    Ready,
    NotReady(String),
}

/// Why an offer was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Rang out (also what an expired lease counts as).
    NoAnswer,
    /// The agent's device was busy or declined.
    Busy,
    /// The agent leg could not be set up.
    Failed,
}

impl RejectReason {
    /// The not-ready reason an agent gets after such a rejection.
    pub fn not_ready_reason(self) -> &'static str {
        match self {
            RejectReason::NoAnswer => "missed",
            RejectReason::Busy => "busy",
            RejectReason::Failed => "unreachable",
        }
    }
}

/// How a callback attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackOutcome {
    Connected,
    Busy,
    NoAnswer,
    Failed,
}

/// A callback booked for a time (from the API or a web form).
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledCallback {
    pub queue: String,
    pub number: String,
    /// Not released before this time; its place in the queue is this time.
    pub at: Instant,
    pub priority: i32,
    pub skills: Vec<SkillRequirement>,
    pub attributes: BTreeMap<String, String>,
    pub last_agent: Option<AgentId>,
}

/// One mutation of the ACD.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    CallerEnters(CallerEntry),
    CallerLeaves {
        caller: CallerId,
        reason: LeaveReason,
    },
    SetPriority {
        caller: CallerId,
        priority: i32,
    },
    /// From the API, a feature code, or the registrar (expiry → `LoggedOut`).
    AgentState {
        agent: AgentId,
        state: AgentStateChange,
    },
    /// The agent answered.
    OfferAccepted {
        offer: OfferId,
    },
    OfferRejected {
        offer: OfferId,
        reason: RejectReason,
    },
    /// The agent's call with a caller (or callback customer) ended.
    CallEnded {
        agent: AgentId,
        contact: Contact,
        /// Talk plus hold time, as measured by the call core.
        talk: Duration,
    },
    /// The caller asked to be called back and hangs up; a virtual caller
    /// keeps the place.
    RequestCallback {
        caller: CallerId,
        number: String,
    },
    ScheduleCallback(ScheduledCallback),
    CancelCallback {
        callback: CallbackId,
    },
    CallbackResult {
        callback: CallbackId,
        outcome: CallbackOutcome,
    },
}

/// An agent's state as the wallboard shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentStatus {
    LoggedOut,
    Ready,
    NotReady,
    /// Reserved for one caller, with a lease deadline.
    Offered,
    /// Talking, holding, or on a callback attempt.
    OnCall,
    WrapUp,
}

/// Why a caller was sent out of the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OverflowReason {
    MaxWait,
    QueueFull,
}

/// A durable record the runtime stores (SQLite) so callbacks survive a
/// restart. Upsert on [`PersistRecord::SaveCallback`], delete on
/// [`PersistRecord::CloseCallback`]; give the pending ones back to
/// [`super::Acd::restore_callbacks`] after a restart.
///
/// Times are `Instant`s: the runtime converts them to wall-clock time when
/// storing and back when restoring (the core never reads either clock).
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackRecord {
    pub callback: CallbackId,
    pub queue: String,
    pub number: String,
    /// The caller who asked for it, if it came from a waiting caller.
    pub caller: Option<CallerId>,
    pub priority: i32,
    pub skills: Vec<SkillRequirement>,
    pub attributes: BTreeMap<String, String>,
    pub last_agent: Option<AgentId>,
    /// Its place in the queue: when the original caller entered (or the
    /// scheduled time).
    pub place: Instant,
    /// When the callback was requested (its wait runs from here).
    pub requested_at: Instant,
    /// Not released before this (scheduled time or retry delay).
    pub not_before: Instant,
    /// Attempts made so far.
    pub attempts: u32,
}

/// How a callback was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackClosed {
    Completed,
    Failed,
    Cancelled,
}

/// What the runtime must store.
#[derive(Clone, Debug, PartialEq)]
pub enum PersistRecord {
    SaveCallback(CallbackRecord),
    CloseCallback {
        callback: CallbackId,
        outcome: CallbackClosed,
    },
}

/// What happened in a queue, for the queue log and the event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum QueueEventKind {
    Entered {
        priority: i32,
        /// 1-based.
        position: usize,
        estimate: Option<Duration>,
    },
    Offered {
        offer: OfferId,
        agent: AgentId,
    },
    OfferRejected {
        offer: OfferId,
        agent: AgentId,
        reason: RejectReason,
    },
    Answered {
        agent: AgentId,
        waited: Duration,
    },
    Abandoned {
        waited: Duration,
        /// Within the short-abandon threshold (left out of service level).
        short: bool,
    },
    Exited {
        waited: Duration,
    },
    Overflowed {
        waited: Duration,
        to: OverflowTarget,
        reason: OverflowReason,
    },
    PriorityChanged {
        priority: i32,
    },
    /// A widening step applied (1-based count of steps applied).
    Widened {
        level: usize,
    },
    CallbackRequested {
        callback: CallbackId,
        caller: Option<CallerId>,
    },
    CallbackAttempt {
        agent: AgentId,
        attempt: u32,
    },
    CallbackAttemptFailed {
        attempt: u32,
        outcome: CallbackOutcome,
        retry_at: Option<Instant>,
    },
    CallbackCompleted {
        agent: AgentId,
        waited: Duration,
    },
    CallbackFailed {
        attempts: u32,
    },
    CallbackCancelled,
}

/// One queue-log record. `seq` increases by one per event, across queues.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueEvent {
    pub seq: u64,
    pub at: Instant,
    pub queue: String,
    pub contact: Contact,
    pub kind: QueueEventKind,
}

/// What the ACD asks the runtime to do or record.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Ring `agent` for `caller`. The agent is reserved until `lease_until`;
    /// with no answer by then the offer counts as `NoAnswer` and a
    /// `CancelOffer` follows.
    Offer {
        offer: OfferId,
        caller: CallerId,
        agent: AgentId,
        queue: String,
        lease_until: Instant,
    },
    /// Stop ringing (ring-all: someone else answered; the caller left; the
    /// lease expired; the agent logged out).
    CancelOffer {
        offer: OfferId,
        caller: CallerId,
        agent: AgentId,
    },
    /// Call back: agent-first (call the agent with a whisper, then the
    /// customer) or customer-first, as `mode` says. The agent is reserved
    /// until a `CallbackResult`.
    StartCallback {
        callback: CallbackId,
        agent: AgentId,
        number: String,
        queue: String,
        waited: Duration,
        mode: CallbackMode,
        /// 1-based.
        attempt: u32,
    },
    /// Tell a waiting caller where they are. `offer_callback` when the queue
    /// offers callbacks and the estimate is over its threshold.
    Announce {
        caller: CallerId,
        queue: String,
        /// 1-based.
        position: usize,
        estimate: Option<Duration>,
        offer_callback: bool,
    },
    /// The caller leaves the queue for `to`; the ACD forgets them. For
    /// `OverflowTarget::Queue` the runtime enters them there.
    Overflow {
        caller: CallerId,
        queue: String,
        to: OverflowTarget,
        reason: OverflowReason,
    },
    AgentChanged {
        agent: AgentId,
        state: AgentStatus,
        /// The not-ready reason, or why the state changed.
        reason: Option<String>,
        since: Instant,
    },
    QueueEvent(QueueEvent),
    Persist(PersistRecord),
    /// An input that named something unknown or came in the wrong state; it
    /// changed nothing.
    Ignored(super::AcdError),
}

/// An agent for the API and wallboard.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentView {
    pub id: AgentId,
    pub name: String,
    pub extension: String,
    pub status: AgentStatus,
    pub reason: Option<String>,
    /// When the current state began (`None`: no change seen since start).
    pub since: Option<Instant>,
    /// The contact being offered or handled.
    pub contact: Option<Contact>,
    pub queue: Option<String>,
    pub calls_handled: u64,
    pub talk_time: Duration,
    /// The state asked for while busy, applied when the call/wrap-up ends.
    pub pending: Option<AgentStateChange>,
}

/// Agents of a queue by state. Members are the agents that serve the queue
/// and meet its required skills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub logged_out: usize,
    pub ready: usize,
    pub not_ready: usize,
    pub offered: usize,
    pub on_call: usize,
    pub wrap_up: usize,
}

/// A queue's live and cumulative figures (since start or the last
/// [`super::Acd::reset_stats`]). Definitions: `CONTACT-CENTRE.md`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueStats {
    pub queue: String,
    /// Live callers waiting (callbacks not included).
    pub waiting: usize,
    /// Wait so far of the caller at the head of the queue.
    pub longest_wait: Option<Duration>,
    pub agents: AgentCounts,
    pub callbacks_pending: usize,
    /// Callers that entered (offered to the queue).
    pub entered: u64,
    pub answered: u64,
    pub answered_within_target: u64,
    /// Abandons after the short-abandon threshold.
    pub abandoned: u64,
    pub short_abandoned: u64,
    pub overflowed: u64,
    pub callbacks_requested: u64,
    pub callbacks_completed: u64,
    pub callbacks_failed: u64,
    /// answered within T ÷ (answered + abandoned after the short-abandon
    /// threshold). `None` before any such call.
    pub service_level: Option<f64>,
    /// abandoned (after threshold) ÷ entered.
    pub abandon_rate: Option<f64>,
    /// Mean wait of answered calls.
    pub asa: Option<Duration>,
    /// Mean wait of completed callbacks (request to connection).
    pub callback_asa: Option<Duration>,
    /// Mean |estimate at entry − actual wait| over answered calls.
    pub ewt_mae: Option<Duration>,
    /// `ewt_mae` ÷ the mean wait of the same calls.
    pub ewt_mae_relative: Option<f64>,
    /// Mean handle time (talk + wrap-up) in the recent window.
    pub aht: Option<Duration>,
}
