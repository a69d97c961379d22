//! Callbacks: a caller who asked to be called back keeps its place as a virtual caller in
//! the ACD; when it reaches the head and an agent is free, Switchboard places the call.
//!
//! - Agent-first (the default): the agent is called first (the A leg is ours: we send the
//!   INVITE), hears who is being called back ("Callback for 5 5 5 …, waited 12 minutes"),
//!   then the customer is called through the trunk as the B leg and bridged.
//! - Customer-first: the customer is called first through the trunk (the A leg), hears
//!   that this is their callback and to hold, then the agent's phone rings as the B leg
//!   (showing the customer's number) and they are bridged. When the agent's phone fails,
//!   the customer hears an apology and the attempt counts as failed.
//!
//! Phases: ringing the first party → prompt → ringing the second → connected. Every end
//! tells the ACD how the attempt went (`CallbackResult`), and a connected callback's end
//! is the agent's `CallEnded`, so the agent is never left reserved. Callbacks are durable:
//! the ACD's `Persist` records come out of [`Switch::poll_persist`] for the runtime to
//! store, and [`Switch::restore_callbacks`] gives them back after a restart.

use super::routing::Identity;
use super::{CallKey, CallState, CallTimer, Destination, RouteDecision, Side, Switch, TxRole};
use crate::acd::{
    AgentId, CallbackId, CallbackMode, CallbackOutcome, CallbackRecord, Contact, Input,
    PersistRecord,
};
use crate::ivr::Prompt;
use crate::sip::message::{Method, NameAddr, Response, Uri};
use crate::sip::transaction::TxId;
use std::time::{Duration, Instant};
use tracing::{info, info_span, warn};

/// Where a callback call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Our INVITE to the first party (the agent, or the customer when customer-first).
    RingingFirst,
    /// The first party hears the whisper (agent) or the greeting (customer).
    Whisper,
    /// The B leg rings the second party.
    RingingSecond,
    Connected(Instant),
}

/// What the customer hears when called first, before the agent is rung.
const CUSTOMER_FIRST_GREETING: &str =
    "Hello. This is the call back you asked for. Please hold while we connect you to an agent.";
/// What the customer hears when no agent took a customer-first callback.
const CUSTOMER_FIRST_SORRY: &str = "We are sorry, we could not connect you to an agent. Goodbye.";

/// A callback call's state.
#[derive(Debug, Clone)]
pub(crate) struct CallbackCall {
    id: CallbackId,
    agent: AgentId,
    number: String,
    waited: Duration,
    pub(crate) phase: Phase,
    customer_first: bool,
}

/// The customer's answer (or not), for the ACD.
pub(crate) fn outcome_of(status: u16) -> CallbackOutcome {
    match status {
        486 | 600 | 603 => CallbackOutcome::Busy,
        408 | 480 | 487 => CallbackOutcome::NoAnswer,
        _ => CallbackOutcome::Failed,
    }
}

/// "12 minutes", "1 minute", "less than a minute".
fn minutes(d: Duration) -> String {
    match (d.as_secs() + 30) / 60 {
        0 => "less than a minute".into(),
        1 => "1 minute".into(),
        m => format!("{m} minutes"),
    }
}

/// A number read digit by digit.
pub(crate) fn spoken_number(number: &str) -> String {
    let digits: Vec<String> = number
        .chars()
        .filter(|c| c.is_ascii_digit())
        .map(|c| c.to_string())
        .collect();
    digits.join(" ")
}

impl Switch {
    /// Durable records for the runtime to store (upsert on save, delete on close).
    pub fn poll_persist(&mut self) -> Option<PersistRecord> {
        self.persist_out.pop_front()
    }

    /// Pending callbacks as last stored, after a restart.
    pub fn restore_callbacks(&mut self, now: Instant, records: Vec<CallbackRecord>) {
        if records.is_empty() {
            return;
        }
        info!(callbacks = records.len(), "pending callbacks restored");
        self.acd.restore_callbacks(now, records);
        self.drain_acd(now);
    }

    /// A callback booked for a local time ("call me at 15:00"), through the API. Its place
    /// in the queue is that time. Errors name what is wrong.
    pub fn schedule_callback(
        &mut self,
        now: Instant,
        queue: &str,
        number: &str,
        at: crate::ivr::LocalDateTime,
    ) -> Result<(), String> {
        if !self.acd.queue_names().any(|q| q == queue) {
            return Err(format!("no queue `{queue}`"));
        }
        if !self.queue_callbacks.contains(queue) {
            return Err(format!("queue `{queue}` has no callback settings"));
        }
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '+') {
            return Err(format!("`{number}` is not a phone number"));
        }
        let local_now = self.local_time(now);
        let at = if at > local_now {
            now + (at - local_now)
        } else {
            now
        };
        info!(queue, "callback scheduled");
        self.acd_input(
            now,
            Input::ScheduleCallback(crate::acd::ScheduledCallback {
                queue: queue.to_string(),
                number: number.to_string(),
                at,
                priority: 0,
                skills: vec![],
                attributes: Default::default(),
                last_agent: self.last_agent.get(number).cloned(),
            }),
        );
        Ok(())
    }

    /// Changes a waiting caller's priority (API). Errors when the call is not waiting.
    pub fn set_priority(&mut self, now: Instant, call: u64, priority: i32) -> Result<(), String> {
        let waiting = self
            .calls
            .get(&call)
            .and_then(|c| c.queued.as_ref())
            .is_some_and(|q| q.agent_name().is_none());
        if !waiting {
            return Err(format!("call {call} is not waiting in a queue"));
        }
        self.acd_input(
            now,
            Input::SetPriority {
                caller: crate::acd::CallerId(call),
                priority,
            },
        );
        Ok(())
    }

    /// The ACD released a callback to `agent`: ring the agent's phone (or the customer's,
    /// customer-first).
    pub(crate) fn start_callback(
        &mut self,
        now: Instant,
        callback: CallbackId,
        agent: AgentId,
        number: String,
        waited: Duration,
        mode: CallbackMode,
    ) -> Result<(), CallbackOutcome> {
        let customer_first = mode == CallbackMode::CustomerFirst;
        let ext = self
            .agent_extension
            .get(&agent)
            .cloned()
            .ok_or(CallbackOutcome::Failed)?;
        let identity = Identity::LocalUser(ext.clone());
        let dest = if customer_first {
            self.customer_destination(now, &identity, &number)?
        } else {
            self.resolve(now, &RouteDecision::User(ext.clone()), &ext)
                .map_err(|(status, reason)| {
                    info!(%agent, status, %reason, "callback: agent unreachable");
                    CallbackOutcome::Failed
                })?
        };
        let key = self.originate(now, dest, identity)?;
        if let Some(call) = self.calls.get_mut(&key) {
            let _g = call.span.enter();
            let first = if customer_first { "customer" } else { "agent" };
            info!(%callback, %agent, waited_s = waited.as_secs(), first, "callback: ringing");
            if customer_first {
                // The agent's phone shows whom it is connected to.
                call.present = Some(number.clone());
            }
            call.callback = Some(CallbackCall {
                id: callback,
                agent,
                number,
                waited,
                phase: Phase::RingingFirst,
                customer_first,
            });
        }
        Ok(())
    }

    /// Where the customer's number goes: the route the agent's own calls would take (the
    /// outbound trunk).
    fn customer_destination(
        &mut self,
        now: Instant,
        agent: &Identity,
        number: &str,
    ) -> Result<Destination, CallbackOutcome> {
        let (decision, _) = self.route(agent, number, None);
        self.resolve(now, &decision, number)
            .map_err(|(status, reason)| {
                info!(status, %reason, "callback: the customer's number cannot be dialled");
                CallbackOutcome::Failed
            })
    }

    /// A call we place: its A leg is our INVITE to `dest`.
    fn originate(
        &mut self,
        now: Instant,
        dest: Destination,
        identity: Identity,
    ) -> Result<CallKey, CallbackOutcome> {
        let key = self.next_call;
        self.next_call += 1;
        self.stats.calls_started += 1;
        let span = info_span!("call", id = key);
        let from = NameAddr::new(Uri::sip(Some("callback"), &self.profile.realm, None));
        let a = self.uac_leg(Side::A, &dest, &from, &span, "a");
        let (call_id, tag) = (a.call_id.clone(), a.local_tag.clone());
        let placeholder = crate::sip::message::Request::new(Method::Invite, dest.uri.clone());
        let mut call =
            super::Call::new(span, a, placeholder, TxId::default(), identity, dest.trunks);
        call.outbound_a = true;
        call.present = Some("callback".into());
        self.calls.insert(key, Box::new(call));
        if let Err(e) = self.media_allocate(key, Side::A) {
            warn!(error = %e, "no media ports for a callback");
            self.calls.remove(&key);
            return Err(CallbackOutcome::Failed);
        }
        let offer = self.media_offer(key, Side::A, crate::sdp::Direction::SendRecv);
        let via = self.via(dest.peer.transport);
        let call = self.calls.get_mut(&key).expect("present");
        let invite = super::invite_on(&mut call.a, via, offer);
        let tx = self.layer.send_request(now, invite.clone(), dest.peer);
        let call = self.calls.get_mut(&key).expect("present");
        call.a_invite = invite;
        call.a_invite_tx = tx;
        call.tx_ids.push(tx);
        call.set_timer(CallTimer::Ring, now + self.profile.timers.ring_timeout);
        self.track(tx, key, TxRole::OriginateA);
        self.dialogs.insert((call_id, tag), (key, Side::A));
        self.schedule(key);
        Ok(key)
    }

    /// A response to our INVITE to the agent.
    pub(crate) fn on_originate_response(
        &mut self,
        now: Instant,
        key: CallKey,
        tx: TxId,
        resp: Response,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if resp.status < 200 {
            if super::forms_dialog(&resp) {
                call.a.learn_from_response(&resp);
                call.b_provisional = true;
            }
            return;
        }
        call.clear_timer(CallTimer::Ring);
        if !resp.is_success() {
            info!(
                status = resp.status,
                "callback: the agent's phone did not answer"
            );
            return self.originate_gave_up(now, key, resp.status);
        }
        call.a.learn_from_response(&resp);
        let ack = call.a.ack(resp.cseq().map(|c| c.seq).unwrap_or(1));
        let peer = call.a.peer;
        self.send_ack(tx, peer, ack);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != CallState::Early {
            self.send_bye(now, key, Side::A);
            return;
        }
        if let Err(e) = self.media_accept(key, Side::A, &resp.body) {
            info!(error = %e, "callback: the agent's answer refused");
            self.send_bye(now, key, Side::A);
            return self.originate_gave_up(now, key, 488);
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.state = CallState::Answered;
        call.answered_at = Some(now);
        self.stats.calls_answered += 1;
        let Some(cb) = call.callback.as_mut() else {
            return;
        };
        cb.phase = Phase::Whisper;
        let text = if cb.customer_first {
            CUSTOMER_FIRST_GREETING.to_string()
        } else {
            format!(
                "Callback for {}, waited {}.",
                spoken_number(&cb.number),
                minutes(cb.waited)
            )
        };
        self.arm_session(now, key, Side::A, &resp.headers, false);
        match self.a_leg_id(key) {
            Some(leg) => self.apps.play(leg, &Prompt::Tts(text), false, false),
            None => self.callback_dial_second(now, key),
        }
    }

    /// The whisper (or greeting) ended: call the customer through the route the agent
    /// would use, or, customer-first, the agent's phone.
    pub(crate) fn callback_dial_second(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(cb) = call.callback.as_mut() else {
            return;
        };
        cb.phase = Phase::RingingSecond;
        let (number, customer_first) = (cb.number.clone(), cb.customer_first);
        let identity = call.identities[0].clone();
        let dest = if customer_first {
            let Identity::LocalUser(ext) = &identity else {
                return self.callback_failed(now, key, CallbackOutcome::Failed);
            };
            let ext = ext.clone();
            self.resolve(now, &RouteDecision::User(ext.clone()), &ext)
                .map_err(|(status, reason)| {
                    info!(status, %reason, "callback: the agent's phone is unreachable");
                    CallbackOutcome::Failed
                })
        } else {
            self.customer_destination(now, &identity, &number)
        };
        match dest {
            Ok(dest) => {
                let second = if customer_first { "agent" } else { "customer" };
                info!(second, "callback: ringing");
                self.dial_b(now, key, dest);
            }
            Err(outcome) => self.callback_failed(now, key, outcome),
        }
    }

    /// The customer answered.
    pub(crate) fn callback_connected(&mut self, now: Instant, key: CallKey) {
        let Some(cb) = self.calls.get_mut(&key).and_then(|c| c.callback.as_mut()) else {
            return;
        };
        cb.phase = Phase::Connected(now);
        let id = cb.id;
        info!(callback = %id, "callback: connected");
        self.acd_input(
            now,
            Input::CallbackResult {
                callback: id,
                outcome: CallbackOutcome::Connected,
            },
        );
    }

    /// Tells the ACD how a failed attempt went (it retries later or gives up); the
    /// callback is no longer this call's.
    pub(crate) fn callback_give_up(
        &mut self,
        now: Instant,
        key: CallKey,
        outcome: CallbackOutcome,
    ) {
        let Some(cb) = self.calls.get_mut(&key).and_then(|c| c.callback.take()) else {
            return;
        };
        info!(callback = %cb.id, ?outcome, "callback attempt failed");
        self.acd_input(
            now,
            Input::CallbackResult {
                callback: cb.id,
                outcome,
            },
        );
    }

    /// A failed attempt on an answered first leg: the agent is hung up; a customer called
    /// first hears an apology, then is hung up.
    pub(crate) fn callback_failed(&mut self, now: Instant, key: CallKey, outcome: CallbackOutcome) {
        let customer_waits = self
            .calls
            .get(&key)
            .and_then(|c| c.callback.as_ref())
            .is_some_and(|cb| cb.customer_first);
        self.callback_give_up(now, key, outcome);
        if let (true, Some(leg)) = (customer_waits, self.a_leg_id(key)) {
            if let Some(call) = self.calls.get_mut(&key) {
                call.hangup_after_prompt = true;
            }
            self.apps.stop_play(leg);
            self.apps
                .play(leg, &Prompt::Tts(CUSTOMER_FIRST_SORRY.into()), false, false);
            return;
        }
        self.end_call(now, key, None, "callback attempt over");
    }

    /// Our INVITE to the agent ended without a call (final failure, timeout, refused
    /// answer): the attempt is over and the call forgotten.
    pub(crate) fn originate_gave_up(&mut self, now: Instant, key: CallKey, status: u16) {
        self.callback_give_up(now, key, outcome_of(status));
        if let Some(call) = self.calls.get_mut(&key) {
            call.state = CallState::Ending;
        }
        self.linger(now, key);
    }

    /// Cancels our INVITE to the agent (it rang out or the call is being given up).
    pub(crate) fn cancel_originated(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.state = CallState::Ending;
        let (a, invite, tx, rang) = (
            call.a.clone(),
            call.a_invite.clone(),
            call.a_invite_tx,
            call.b_provisional,
        );
        self.orphans.insert(tx, (a, invite, rang));
        if rang {
            self.cancel_orphan(now, tx);
        }
        self.linger(now, key);
    }

    /// A callback call is over: the agent's talk time when it was connected.
    pub(crate) fn callback_call_over(&mut self, now: Instant, key: CallKey) {
        let Some(cb) = self.calls.get_mut(&key).and_then(|c| c.callback.take()) else {
            return;
        };
        let input = match cb.phase {
            Phase::Connected(since) => Input::CallEnded {
                agent: cb.agent,
                contact: Contact::Callback(cb.id),
                talk: now.saturating_duration_since(since),
            },
            _ => Input::CallbackResult {
                callback: cb.id,
                outcome: CallbackOutcome::Failed,
            },
        };
        self.acd_input(now, input);
    }
}
