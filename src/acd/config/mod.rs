//! ACD configuration: queues and agents.
//!
//! Built in code (the `new` constructors give the documented defaults) or
//! loaded from YAML with [`AcdConfig::from_yaml`], which reports every
//! problem at once with its line and column, and "did you mean" for unknown
//! field names and keywords. The runtime supplies [`AcdConfig::seed`] (the
//! `random` strategy's only source of randomness).
//!
//! ```yaml
//! queues:
//!   - name: sales
//!     strategy: longest-idle        # round-robin ring-all fewest-calls least-talk-time random best-skill
//!     skills: { sales: 2 }          # required skill: minimum proficiency (1-5)
//!     widening:
//!       - after: 30s
//!         relax: { sales: 1 }       # lower a minimum
//!         drop: [spanish]           # stop requiring a skill
//!         add_skills: { general: 3 } # agents with these qualify too
//!         overflow_queues: [support] # agents of these queues qualify too
//!     priority_rules:
//!       - when: { vip: "true" }
//!         add: 10
//!     max_wait: 10m
//!     on_max_wait: voicemail        # or {queue: q} {flow: f} {number: "+1…"}
//!     max_length: 50
//!     on_full: voicemail
//!     wrap_up: 10s
//!     ring_timeout: 20s
//!     sticky_wait: 15s
//!     announce_every: 30s
//!     service_level: 80% in 20s
//!     short_abandon: 5s
//!     expected_handle_time: 3m      # used for estimates until there is history
//!     weight: 2
//!     callback:
//!       offer_when_wait_over: 2m
//!       retry_delay: 5m
//!       max_attempts: 3
//!       mode: agent-first           # or customer-first
//!       attempt_timeout: 2m
//!     survey_flow: csat
//!     record: true
//!     hold_music: default
//! agents:
//!   - id: alice
//!     name: Alice
//!     extension: "1001"
//!     skills: { sales: 4, english: 5 }
//!     attributes: { region: north }
//!     wrap_up: 5s
//!     api_token: "…"
//!     queues: [sales]               # optional: only these queues
//! ```

mod node;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use yaml::parse_duration;

/// A required skill with a minimum proficiency (1–5).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkillRequirement {
    pub skill: String,
    pub min: u8,
}

impl SkillRequirement {
    pub fn new(skill: &str, min: u8) -> Self {
        SkillRequirement {
            skill: skill.to_owned(),
            min,
        }
    }
}

/// How a queue picks among eligible ready agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The agent idle the longest.
    LongestIdle,
    /// The next agent after the one offered last, in configuration order.
    RoundRobin,
    /// Every eligible ready agent at once; the first to answer wins.
    RingAll,
    /// Fewest calls handled, then idle the longest.
    FewestCalls,
    /// Least total talk time, then idle the longest.
    LeastTalkTime,
    /// Uniformly at random (seeded by [`AcdConfig::seed`]).
    Random,
    /// Highest proficiency in the caller's required skills, then idle the longest.
    BestSkill,
}

impl Strategy {
    pub const NAMES: [&'static str; 7] = [
        "longest-idle",
        "round-robin",
        "ring-all",
        "fewest-calls",
        "least-talk-time",
        "random",
        "best-skill",
    ];

    pub fn from_name(name: &str) -> Option<Strategy> {
        Some(match name {
            "longest-idle" => Strategy::LongestIdle,
            "round-robin" => Strategy::RoundRobin,
            "ring-all" => Strategy::RingAll,
            "fewest-calls" => Strategy::FewestCalls,
            "least-talk-time" => Strategy::LeastTalkTime,
            "random" => Strategy::Random,
            "best-skill" => Strategy::BestSkill,
            _ => return None,
        })
    }
}

/// Where a caller goes when the queue gives up on them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OverflowTarget {
    Queue(String),
    Flow(String),
    Number(String),
    Voicemail,
}

impl fmt::Display for OverflowTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverflowTarget::Queue(q) => write!(f, "queue {q}"),
            OverflowTarget::Flow(x) => write!(f, "flow {x}"),
            OverflowTarget::Number(_) => f.write_str("number"),
            OverflowTarget::Voicemail => f.write_str("voicemail"),
        }
    }
}

/// One step of pool widening, applied `after` the caller entered. The
/// caller keeps its place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WideningStep {
    pub after: Duration,
    /// Lower the minimum proficiency of these required skills.
    pub relax: Vec<SkillRequirement>,
    /// Stop requiring these skills.
    pub drop: Vec<String>,
    /// Agents meeting all of these qualify as well (an alternative pool).
    pub add_skills: Vec<SkillRequirement>,
    /// Agents serving these queues (and meeting their skills) qualify too.
    pub overflow_queues: Vec<String>,
}

/// `when` every attribute matches, add `add` to the caller's priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityRule {
    pub when: BTreeMap<String, String>,
    pub add: i32,
}

/// "80% answered within 20 s".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServiceLevelTarget {
    /// 0.0–1.0.
    pub fraction: f64,
    pub within: Duration,
}

/// Whom a callback rings first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackMode {
    /// The agent is connected and told whom they call, then the customer is dialled.
    AgentFirst,
    /// The customer is dialled and connected to the reserved agent on answer.
    CustomerFirst,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CallbackSettings {
    /// Offer a callback (in announcements) when the estimate exceeds this.
    pub offer_when_wait_over: Duration,
    pub retry_delay: Duration,
    /// Attempts before the callback is closed as failed (≥ 1).
    pub max_attempts: u32,
    pub mode: CallbackMode,
    /// An attempt with no `CallbackResult` by then counts as `NoAnswer`.
    pub attempt_timeout: Duration,
}

impl Default for CallbackSettings {
    fn default() -> Self {
        CallbackSettings {
            offer_when_wait_over: Duration::from_secs(120),
            retry_delay: Duration::from_secs(300),
            max_attempts: 3,
            mode: CallbackMode::AgentFirst,
            attempt_timeout: Duration::from_secs(120),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueueConfig {
    pub name: String,
    pub strategy: Strategy,
    pub skills: Vec<SkillRequirement>,
    /// Ordered by `after`, strictly increasing.
    pub widening: Vec<WideningStep>,
    pub priority_rules: Vec<PriorityRule>,
    pub max_wait: Option<Duration>,
    pub on_max_wait: OverflowTarget,
    /// Live callers waiting; a caller arriving at a full queue overflows.
    pub max_length: Option<usize>,
    pub on_full: OverflowTarget,
    pub wrap_up: Duration,
    pub ring_timeout: Duration,
    /// How long a caller waits for their last agent to become ready.
    pub sticky_wait: Duration,
    pub announce_every: Option<Duration>,
    pub service_level: ServiceLevelTarget,
    pub short_abandon: Duration,
    /// Mean handle time assumed for estimates until calls have been handled.
    pub expected_handle_time: Duration,
    /// For agents in several queues: a caller's wait counts `weight` times.
    pub weight: f64,
    pub callback: Option<CallbackSettings>,
    pub survey_flow: Option<String>,
    pub record: bool,
    pub hold_music: Option<String>,
}

impl QueueConfig {
    /// A queue with the defaults: longest-idle, no skills, 20 s ring timeout,
    /// no wrap-up, 80% in 20 s, 5 s short abandons, weight 1.
    pub fn new(name: &str) -> Self {
        QueueConfig {
            name: name.to_owned(),
            strategy: Strategy::LongestIdle,
            skills: Vec::new(),
            widening: Vec::new(),
            priority_rules: Vec::new(),
            max_wait: None,
            on_max_wait: OverflowTarget::Voicemail,
            max_length: None,
            on_full: OverflowTarget::Voicemail,
            wrap_up: Duration::ZERO,
            ring_timeout: Duration::from_secs(20),
            sticky_wait: Duration::ZERO,
            announce_every: None,
            service_level: ServiceLevelTarget {
                fraction: 0.8,
                within: Duration::from_secs(20),
            },
            short_abandon: Duration::from_secs(5),
            expected_handle_time: Duration::from_secs(180),
            weight: 1.0,
            callback: None,
            survey_flow: None,
            record: false,
            hold_music: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    pub id: String,
    pub name: String,
    /// How the call core reaches the agent (registered user / WebRTC client).
    pub extension: String,
    /// Skill → proficiency 1–5.
    pub skills: BTreeMap<String, u8>,
    pub attributes: BTreeMap<String, String>,
    /// Overrides the queue's wrap-up time.
    pub wrap_up: Option<Duration>,
    pub api_token: Option<String>,
    /// When set, the agent serves only these queues; otherwise every queue
    /// whose skills they meet.
    pub queues: Option<Vec<String>>,
}

impl AgentConfig {
    pub fn new(id: &str) -> Self {
        AgentConfig {
            id: id.to_owned(),
            name: id.to_owned(),
            extension: id.to_owned(),
            skills: BTreeMap::new(),
            attributes: BTreeMap::new(),
            wrap_up: None,
            api_token: None,
            queues: None,
        }
    }

    /// Builder: add a skill.
    pub fn skill(mut self, skill: &str, proficiency: u8) -> Self {
        self.skills.insert(skill.to_owned(), proficiency);
        self
    }
}

/// The whole ACD configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AcdConfig {
    pub queues: Vec<QueueConfig>,
    pub agents: Vec<AgentConfig>,
    /// Seed of the `random` strategy's generator (set by the runtime).
    pub seed: u64,
}

/// One problem in an ACD configuration file. `Display`: `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct AcdConfigError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub col: usize,
    pub message: String,
}

impl AcdConfig {
    /// Parse and validate YAML. `path` only labels the errors. Returns every
    /// problem found, in document order.
    pub fn from_yaml(path: &str, text: &str) -> Result<AcdConfig, Vec<AcdConfigError>> {
        yaml::parse(path, text)
    }
}
