//! A driver for the ACD on simulated time.

use std::time::{Duration, Instant};

use crate::acd::*;

/// The tests' time origin. The core never reads the clock; tests need one
/// arbitrary `Instant` to count from, and `Instant` has no other constructor.
pub fn origin() -> Instant {
    std::time::Instant::now()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub struct H {
    pub acd: Acd,
    pub now: Instant,
}

impl H {
    pub fn new(config: AcdConfig) -> H {
        let t0 = origin();
        H {
            acd: Acd::new(config),
            now: t0,
        }
    }

    pub fn drain(&mut self) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = self.acd.poll_output() {
            v.push(o);
        }
        v
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.acd.handle(self.now, input);
        self.drain()
    }

    /// Move time forward by `d`, firing every deadline on the way.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        let end = self.now + d;
        let mut out = Vec::new();
        for _ in 0..100_000 {
            match self.acd.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.acd.handle_timeout(self.now);
                    out.extend(self.drain());
                }
                _ => break,
            }
        }
        self.now = end;
        out
    }

    pub fn ready(&mut self, agent: &str) -> Vec<Output> {
        self.input(Input::AgentState {
            agent: agent.into(),
            state: AgentStateChange::Ready,
        })
    }

    pub fn not_ready(&mut self, agent: &str, reason: &str) -> Vec<Output> {
        self.input(Input::AgentState {
            agent: agent.into(),
            state: AgentStateChange::NotReady(reason.to_owned()),
        })
    }

    pub fn enter(&mut self, caller: u64, queue: &str) -> Vec<Output> {
        self.input(Input::CallerEnters(CallerEntry::new(
            CallerId(caller),
            queue,
        )))
    }

    pub fn enter_with(&mut self, entry: CallerEntry) -> Vec<Output> {
        self.input(Input::CallerEnters(entry))
    }

    pub fn accept(&mut self, offer: OfferId) -> Vec<Output> {
        self.input(Input::OfferAccepted { offer })
    }

    pub fn reject(&mut self, offer: OfferId, reason: RejectReason) -> Vec<Output> {
        self.input(Input::OfferRejected { offer, reason })
    }

    pub fn end_call(&mut self, agent: &str, caller: u64, talk: Duration) -> Vec<Output> {
        self.input(Input::CallEnded {
            agent: agent.into(),
            contact: Contact::Caller(CallerId(caller)),
            talk,
        })
    }

    pub fn status(&self, agent: &str) -> AgentStatus {
        self.acd
            .agent(agent)
            .map(|a| a.status)
            .unwrap_or(AgentStatus::LoggedOut)
    }

    /// Answer the single offer in `out` and return (caller, agent).
    pub fn answer_only_offer(&mut self, out: &[Output]) -> (u64, String) {
        let offers = offers(out);
        assert_eq!(offers.len(), 1, "expected one offer in {out:#?}");
        let (offer, caller, agent) = offers[0].clone();
        let o = self.accept(offer);
        assert!(!o.iter().any(|x| matches!(x, Output::Ignored(_))), "{o:?}");
        (caller.0, agent.0)
    }
}

/// (offer, caller, agent) of every `Offer` output.
pub fn offers(out: &[Output]) -> Vec<(OfferId, CallerId, AgentId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Offer {
                offer,
                caller,
                agent,
                ..
            } => Some((*offer, *caller, agent.clone())),
            _ => None,
        })
        .collect()
}

pub fn cancels(out: &[Output]) -> Vec<(OfferId, AgentId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::CancelOffer { offer, agent, .. } => Some((*offer, agent.clone())),
            _ => None,
        })
        .collect()
}

pub fn events(out: &[Output]) -> Vec<QueueEventKind> {
    out.iter()
        .filter_map(|o| match o {
            Output::QueueEvent(e) => Some(e.kind.clone()),
            _ => None,
        })
        .collect()
}

pub fn agents(n: usize) -> Vec<AgentConfig> {
    (0..n).map(|i| AgentConfig::new(&format!("a{i}"))).collect()
}

pub fn config(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> AcdConfig {
    AcdConfig {
        queues,
        agents,
        seed: 7,
    }
}
