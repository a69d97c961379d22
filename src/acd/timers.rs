//! The ACD's timer table: one deadline per key, keys an enum, expired in
//! deadline order by [`super::Acd::handle_timeout`].

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::state::{AgentIdx, WaiterId};
use super::types::{CallbackId, OfferId};

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// An offer's lease: unanswered by then counts as `NoAnswer`.
    Lease(OfferId),
    /// An agent's wrap-up ends.
    WrapUp(AgentIdx),
    /// The waiter's next widening step.
    Widen(WaiterId),
    /// The caller's maximum wait.
    MaxWait(WaiterId),
    /// The caller's next position/estimate announcement.
    Announce(WaiterId),
    /// The caller stops waiting for their last agent.
    StickyHold(WaiterId),
    /// A callback becomes due (scheduled time or retry delay).
    CallbackDue(WaiterId),
    /// A callback attempt without a result by then counts as `NoAnswer`.
    CallbackAttempt(CallbackId),
}

/// Why the ACD wants to be woken (see [`super::Acd::next_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerReason {
    OfferLease,
    WrapUp,
    Widening,
    MaxWait,
    Announcement,
    StickyWait,
    CallbackDue,
    CallbackAttempt,
}

impl TimerKey {
    pub(crate) fn reason(self) -> TimerReason {
        match self {
            TimerKey::Lease(_) => TimerReason::OfferLease,
            TimerKey::WrapUp(_) => TimerReason::WrapUp,
            TimerKey::Widen(_) => TimerReason::Widening,
            TimerKey::MaxWait(_) => TimerReason::MaxWait,
            TimerKey::Announce(_) => TimerReason::Announcement,
            TimerKey::StickyHold(_) => TimerReason::StickyWait,
            TimerKey::CallbackDue(_) => TimerReason::CallbackDue,
            TimerKey::CallbackAttempt(_) => TimerReason::CallbackAttempt,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    by_time: BTreeSet<(Instant, TimerKey)>,
    by_key: HashMap<TimerKey, Instant>,
}

impl TimerTable {
    /// Set (or move) the deadline of `key`.
    pub fn set(&mut self, key: TimerKey, at: Instant) {
        if let Some(old) = self.by_key.insert(key, at) {
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((at, key));
    }

    pub fn cancel(&mut self, key: TimerKey) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
    }

    pub fn next(&self) -> Option<(Instant, TimerKey)> {
        self.by_time.first().copied()
    }

    /// Remove and return the earliest deadline at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        let &(at, key) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, key));
        self.by_key.remove(&key);
        Some((at, key))
    }
}
