//! The contact centre in the call path: callers queue, agents are rung, calls are bridged.
//!
//! The switch owns the [`Acd`] core and feeds it what happens on calls: a caller entering a
//! queue (from a flow's `queue` step or a route to `{ queue: NAME }`), an agent's phone
//! answering or failing an offer, a call with an agent ending, a caller hanging up while
//! waiting, agents changing state (API, feature codes, registrations expiring). It carries
//! out what the ACD decides:
//!
//! - `Offer` rings the agent's registered phone as the call's B leg, showing the caller's
//!   number; the answer bridges them and stops the hold music; a failure or ring-out goes
//!   back to the ACD (which puts the agent in not-ready and offers the caller elsewhere,
//!   the caller keeping its place and its music);
//! - `CancelOffer` cancels a ringing agent (a late answer is acknowledged and hung up);
//! - `Announce` tells the caller its position and estimated wait (text-to-speech), then the
//!   music goes on;
//! - `Overflow` moves the caller to another queue or flow, or a number.
//!
//! Feature codes (from a registered phone whose user is an agent): `*21` ready, `*22` not
//! ready, `*23` log out. The phone hears a short confirmation.

use super::app::App;
use super::routing::Identity;
use super::{CallKey, CallState, CallTimer, RouteDecision, Side, Switch};
use crate::acd::{
    AgentId, AgentStateChange, AgentStatus, CallerEntry, CallerId, Contact, Input, LeaveReason,
    OfferId, Output, OverflowTarget, RejectReason, SkillRequirement,
};
use crate::ivr::{Prompt, Skill};
use crate::sip::message::Request;
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How many callers' last agents are remembered for sticky routing.
pub const CONTACT_HISTORY: usize = 100_000;

/// The prompt looped to waiting callers when the queue names none.
pub const DEFAULT_HOLD_MUSIC: &str = "hold.wav";

/// A call's place in the contact centre.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) queue: String,
    /// The offer ringing an agent now as the call's B leg, with the agent.
    offer: Option<(OfferId, AgentId)>,
    /// Other agents rung at the same time (ring-all); the first to answer becomes B.
    rings: Vec<Ring>,
    /// The agent who answered, and when.
    agent: Option<(AgentId, Instant)>,
    /// What to say when offering a callback (the flow's words), and whether it was offered.
    callback_prompt: Option<Prompt>,
    callback_offered: bool,
    /// The caller's speech is recognised (the callback offer can be answered by voice).
    listening: bool,
    /// Digits of another callback number being keyed (after 2).
    keying: Option<String>,
}

/// Another agent's phone rung together with the B leg (ring-all): a dialog and INVITE of
/// its own carrying the same SDP offer as the B leg, so whichever answers first can take
/// the B leg's place (and its media leg) while the others are cancelled.
#[derive(Debug)]
pub(crate) struct Ring {
    offer: OfferId,
    agent: AgentId,
    leg: super::leg::Leg,
    invite: Request,
    tx: TxId,
    provisional: bool,
    identity: Identity,
}

/// A caller entering a queue, as a flow's `queue` step (or a route) puts it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) skills: Vec<Skill>,
    pub(crate) attributes: BTreeMap<String, String>,
    pub(crate) callback_prompt: Option<Prompt>,
    /// The flow's `callback.offer_after`, overriding the queue's threshold.
    pub(crate) callback_after: Option<Duration>,
}

/// What the caller hears when a callback is offered, unless the flow says otherwise.
const CALLBACK_OFFER: &str = "To be called back at this number without losing your place in the queue, press 1 or say call me back. To give another number, press 2.";

/// What a waiting caller may say to the callback offer, and the key it stands for.
const CALLBACK_SPEECH: [(&str, &[&str], char); 2] = [
    (
        "call_me_back",
        &[
            "call me back",
            "callback",
            "call back",
            "please call me back",
        ],
        '1',
    ),
    (
        "another_number",
        &["another number", "a different number", "other number"],
        '2',
    ),
];

/// Speech below this confidence does not book a callback.
const CALLBACK_SPEECH_CONFIDENCE: f32 = 0.4;

fn callback_grammar() -> crate::ivr::Grammar {
    crate::ivr::Grammar {
        choices: CALLBACK_SPEECH
            .iter()
            .map(|(name, phrases, _)| {
                (
                    name.to_string(),
                    phrases.iter().map(|p| p.to_string()).collect(),
                )
            })
            .collect(),
        digits: false,
    }
}

impl Queued {
    /// The agent who answered.
    pub(crate) fn agent_name(&self) -> Option<String> {
        self.agent.as_ref().map(|(a, _)| a.0.clone())
    }
}

/// A feature code dialled from an agent's phone.
fn feature_code(number: &str) -> Option<AgentStateChange> {
    match number {
        "*21" => Some(AgentStateChange::Ready),
        "*22" => Some(AgentStateChange::NotReady("phone".into())),
        "*23" => Some(AgentStateChange::LoggedOut),
        _ => None,
    }
}

/// Why an agent's phone did not take an offer, from its final response.
fn reject_reason(status: u16) -> RejectReason {
    match status {
        486 | 600 | 603 => RejectReason::Busy,
        408 | 480 | 487 => RejectReason::NoAnswer,
        _ => RejectReason::Failed,
    }
}

/// What an agent-state request changes, for the API.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentRequestError {
    UnknownAgent,
    Forbidden,
}

impl Switch {
    /// Whether a dialled number is a feature code; if so it is handled here (challenge,
    /// refusal, or the state change with a spoken confirmation) and `true` returned.
    pub(crate) fn try_feature_code(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: &Request,
        identity: &Identity,
    ) -> bool {
        let number = req.uri.user.as_deref().unwrap_or("");
        let Some(change) = feature_code(number) else {
            return false;
        };
        let ext = match identity {
            Identity::LocalUser(u) => u.clone(),
            Identity::Trunk(_) => {
                let from_local = req
                    .from()
                    .ok()
                    .and_then(|f| f.uri.user)
                    .is_some_and(|u| self.profile.user(&u).is_some());
                if from_local {
                    self.reject(
                        now,
                        tx,
                        req,
                        super::routing::Reject::Challenge { stale: false },
                    );
                } else {
                    self.respond(
                        now,
                        tx,
                        req,
                        403,
                        Some("Feature codes are for agents"),
                        None,
                    );
                }
                return true;
            }
        };
        let Some(agent) = self.agent_by_extension(&ext) else {
            self.respond(now, tx, req, 404, Some("Not an agent"), None);
            return true;
        };
        info!(%agent, code = number, "agent feature code");
        self.acd_input(
            now,
            Input::AgentState {
                agent: agent.clone(),
                state: change.clone(),
            },
        );
        let text = match change {
            AgentStateChange::Ready => "You are ready.",
            AgentStateChange::NotReady(_) => "You are not ready.",
            AgentStateChange::LoggedOut => "You are logged out.",
        };
        let Some(key) = self.new_call(now, peer, tx, req.clone(), identity.clone(), vec![]) else {
            return true;
        };
        self.answer_a(now, key);
        if let Some(call) = self.calls.get_mut(&key) {
            call.hangup_after_prompt = true;
        }
        match self
            .calls
            .get(&key)
            .and_then(|c| c.media.leg(Side::A))
            .map(|l| l.id)
        {
            Some(leg) => self.apps.play(leg, &Prompt::Tts(text.into()), false, false),
            None => self.end_call(now, key, None, "feature code done"),
        }
        true
    }

    /// The agent whose phone is this extension.
    pub(crate) fn agent_by_extension(&self, ext: &str) -> Option<AgentId> {
        self.agent_ext.get(ext).cloned()
    }

    /// A route to `{ queue: NAME }`: answer and queue with no flow.
    pub(crate) fn start_queue_call(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: Request,
        identity: Identity,
        queue: &str,
    ) {
        let Some(key) = self.new_call(now, peer, tx, req, identity, vec![]) else {
            return;
        };
        self.answer_a(now, key);
        let entry = Entry {
            queue: queue.to_string(),
            ..Default::default()
        };
        self.enter_queue(now, key, entry);
    }

    /// Puts a call in a queue (its flow, if any, has ended): the caller hears hold music.
    pub(crate) fn enter_queue(&mut self, now: Instant, key: CallKey, entry: Entry) {
        let Entry {
            queue,
            priority,
            skills,
            attributes,
            callback_prompt,
            callback_after,
        } = entry;
        let queue = queue.as_str();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let number = super::app::caller_of(&call.a.remote_uri);
        call.queued = Some(Queued {
            queue: queue.to_string(),
            offer: None,
            rings: Vec::new(),
            agent: None,
            callback_prompt,
            callback_offered: false,
            listening: false,
            keying: None,
        });
        {
            let _g = call.span.enter();
            info!(queue, priority, "caller queued");
        }
        self.hold_music(key, queue);
        let mut entry = CallerEntry::new(CallerId(key), queue);
        entry.priority = priority;
        entry.callback_after = callback_after;
        entry.skills = skills
            .iter()
            .map(|s| SkillRequirement::new(&s.name, s.min_level.unwrap_or(1).clamp(1, 5)))
            .collect();
        entry.attributes = attributes
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        entry.last_agent = self.last_agent.get(&number).cloned();
        entry.number = Some(number);
        self.acd_input(now, Input::CallerEnters(entry));
    }

    fn hold_music(&mut self, key: CallKey, queue: &str) {
        let music = self
            .queue_music
            .get(queue)
            .cloned()
            .unwrap_or_else(|| DEFAULT_HOLD_MUSIC.to_string());
        if let Some(leg) = self.a_leg_id(key) {
            self.apps.play(leg, &Prompt::File(music), false, true);
        }
    }

    /// One input to the ACD, then everything it decides.
    pub(crate) fn acd_input(&mut self, now: Instant, input: Input) {
        self.acd.handle(now, input);
        self.drain_acd(now);
    }

    /// The ACD's timers.
    pub(crate) fn acd_timeout(&mut self, now: Instant) {
        if self.acd.poll_timeout().is_some_and(|t| t <= now) {
            self.acd.handle_timeout(now);
            self.drain_acd(now);
        }
    }

    pub(crate) fn drain_acd(&mut self, now: Instant) {
        // Inputs produced while carrying out outputs wait until the outputs are drained.
        let mut pending: Vec<Input> = Vec::new();
        loop {
            while let Some(out) = self.acd.poll_output() {
                self.acd_output(now, out, &mut pending);
            }
            if pending.is_empty() {
                break;
            }
            for input in pending.drain(..) {
                self.acd.handle(now, input);
            }
        }
    }

    fn acd_output(&mut self, now: Instant, out: Output, pending: &mut Vec<Input>) {
        match out {
            Output::Offer {
                offer,
                caller,
                agent,
                queue,
                ..
            } => {
                let key = caller.0;
                let ext = self.agent_extension.get(&agent).cloned();
                let waiting = self
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.state == CallState::Answered && c.queued.is_some());
                let (Some(ext), true) = (ext, waiting) else {
                    pending.push(Input::OfferRejected {
                        offer,
                        reason: RejectReason::Failed,
                    });
                    return;
                };
                match self.resolve(now, &RouteDecision::User(ext.clone()), &ext) {
                    Ok(dest) if self.b_ringing_for_queue(key) => {
                        // Ring-all: the B leg rings another agent already.
                        self.offers.insert(offer, key);
                        self.ring_also(now, key, offer, agent, dest);
                    }
                    Ok(dest) => {
                        if let Some(call) = self.calls.get_mut(&key) {
                            let _g = call.span.enter();
                            info!(%agent, %queue, "offered to agent");
                            if let Some(q) = call.queued.as_mut() {
                                q.offer = Some((offer, agent));
                            }
                        }
                        self.offers.insert(offer, key);
                        self.dial_b(now, key, dest);
                    }
                    Err((status, reason)) => {
                        info!(%agent, status, %reason, "agent unreachable");
                        pending.push(Input::OfferRejected {
                            offer,
                            reason: RejectReason::Failed,
                        });
                    }
                }
            }
            Output::CancelOffer { offer, caller, .. } => {
                self.offers.remove(&offer);
                self.cancel_offer(now, caller.0, offer);
            }
            Output::Announce {
                caller,
                queue,
                position,
                estimate,
                offer_callback,
            } => {
                let key = caller.0;
                let mut text = format!("You are number {position} in the queue.");
                if let Some(e) = estimate {
                    text.push_str(&format!(" Your expected wait is {}.", spoken_wait(e)));
                }
                let no_flow = self.calls.get(&key).is_some_and(|c| c.app.is_none());
                let mut listen = false;
                let offer = match self.calls.get_mut(&key).and_then(|c| c.queued.as_mut()) {
                    Some(q) if offer_callback => {
                        q.callback_offered = true;
                        listen = no_flow && !q.listening;
                        q.listening |= listen;
                        Some(
                            q.callback_prompt
                                .clone()
                                .unwrap_or_else(|| Prompt::Tts(CALLBACK_OFFER.into())),
                        )
                    }
                    _ => None,
                };
                if let Some(leg) = self.a_leg_id(key) {
                    self.apps.stop_play(leg);
                    self.apps.play(leg, &Prompt::Tts(text), true, false);
                    if let Some(p) = offer {
                        self.apps.play(leg, &p, true, false);
                    }
                    if listen {
                        self.listen(leg, Some(&callback_grammar()));
                    }
                }
                self.hold_music(key, &queue);
            }
            Output::Overflow {
                caller,
                queue,
                to,
                reason,
            } => {
                let key = caller.0;
                info!(%queue, %to, ?reason, "caller overflows");
                if let Some(call) = self.calls.get_mut(&key) {
                    call.queued = None;
                }
                match to {
                    OverflowTarget::Queue(q) => {
                        let entry = Entry {
                            queue: q,
                            ..Default::default()
                        };
                        self.enter_queue(now, key, entry)
                    }
                    OverflowTarget::Flow(f) => self.restart_flow(now, key, &f),
                    OverflowTarget::Number(n) => {
                        let target = crate::ivr::TransferTarget::Number {
                            number: n,
                            trunk: None,
                        };
                        self.app_transfer(now, key, &target);
                    }
                    OverflowTarget::Voicemail => {
                        self.restart_flow(now, key, "voicemail");
                    }
                }
            }
            Output::AgentChanged {
                agent,
                state,
                reason,
                ..
            } => {
                info!(%agent, ?state, reason = reason.as_deref().unwrap_or(""), "agent state");
                // What the agent chose is kept across restarts; offers, calls and wrap-up
                // are the ACD's own and leave it as it was.
                let chosen = match state {
                    AgentStatus::Ready => Some(Some(AgentStateChange::Ready)),
                    AgentStatus::NotReady => {
                        Some(Some(AgentStateChange::NotReady(reason.unwrap_or_default())))
                    }
                    AgentStatus::LoggedOut => Some(None),
                    _ => None,
                };
                if let Some(c) = chosen {
                    self.agent_out.push_back((agent.0, c));
                }
            }
            Output::QueueEvent(e) => debug!(queue = %e.queue, kind = ?e.kind, "queue event"),
            Output::Persist(r) => self.persist_out.push_back(r),
            Output::StartCallback {
                callback,
                agent,
                number,
                waited,
                mode,
                ..
            } => {
                if let Err(outcome) =
                    self.start_callback(now, callback, agent, number, waited, mode)
                {
                    pending.push(Input::CallbackResult { callback, outcome });
                }
            }
            Output::Ignored(e) => debug!(error = %e, "ACD ignored an input"),
        }
    }

    /// The agent hung up on a queue call whose queue has a survey: the caller stays and
    /// hears the survey flow (its `survey.score` goes into the call's record). Returns
    /// whether it started.
    pub(crate) fn start_survey(&mut self, now: Instant, key: CallKey) -> bool {
        let Some(call) = self.calls.get(&key) else {
            return false;
        };
        let Some(q) = call.queued.as_ref() else {
            return false;
        };
        let (Some(agent), Some(flow)) = (q.agent_name(), self.queue_survey.get(&q.queue).cloned())
        else {
            return false;
        };
        if !self.has_flow(&flow) {
            warn!(%flow, "survey flow not loaded");
            return false;
        }
        let queue = q.queue.clone();
        // The agent's side is over: the ACD hears of it now (wrap-up starts).
        self.queue_call_over(now, key);
        if let Some(call) = self.calls.get_mut(&key) {
            call.served = Some((queue, agent));
            call.b_answered = false;
            if let Some(b) = call.b.take() {
                self.dialogs.remove(&(b.call_id, b.local_tag));
            }
            call.b_invite = None;
            call.b_invite_tx = None;
            call.media.bridged = false;
            if let Some(m) = call.media.legs[Side::B.idx()].take() {
                self.leg_index.remove(&m.id);
                self.media
                    .command(crate::media::engine::MediaCommand::Release { leg: m.id });
            }
            let _g = call.span.enter();
            info!(%flow, "agent hung up; survey");
        }
        self.restart_flow(now, key, &flow);
        true
    }

    /// Starts another flow on a call (overflow to a flow).
    fn restart_flow(&mut self, now: Instant, key: CallKey, flow: &str) {
        let local = self.local_time(now);
        let vars = self
            .calls
            .get(&key)
            .and_then(|c| c.app.as_ref())
            .map(|a| a.variables().clone())
            .unwrap_or_default();
        match crate::ivr::FlowRun::start(&self.flows, flow, vars, local) {
            Ok(run) => {
                if let Some(leg) = self.a_leg_id(key) {
                    self.apps.stop_play(leg);
                }
                if let Some(call) = self.calls.get_mut(&key) {
                    call.app = Some(App::new(run));
                }
                self.drive_app(now, key);
            }
            Err(e) => {
                warn!(flow, error = %e, "overflow flow cannot start");
                self.end_call(now, key, None, "overflow flow missing");
            }
        }
    }

    /// A key from a waiting caller after a callback offer: 1 books the callback for the
    /// caller's own number, 2 asks for another (keyed with its country code, ended by `#`;
    /// `*` starts again). A booked callback keeps the caller's place; the caller hears the
    /// number and is hung up. Returns whether the key was used.
    pub(crate) fn queue_digit(&mut self, now: Instant, key: CallKey, digit: char) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let own = super::app::caller_of(&call.a.remote_uri);
        let Some(q) = call
            .queued
            .as_mut()
            .filter(|q| q.callback_offered && q.agent.is_none())
        else {
            return false;
        };
        let queue = q.queue.clone();
        let mut reply: Option<&str> = None;
        let mut book: Option<String> = None;
        match (q.keying.as_mut(), digit) {
            (None, '1') => book = Some(own),
            (None, '2') => {
                q.keying = Some(String::new());
                reply = Some("Please key in the number to call, with its country code, then press the hash key.");
            }
            (None, _) => return false,
            (Some(buf), '*') => buf.clear(),
            (Some(buf), '#') if (6..=15).contains(&buf.len()) => book = Some(format!("+{buf}")),
            (Some(buf), '#') => {
                buf.clear();
                reply = Some("That is not a full number. Please key it again with its country code, then press the hash key.");
            }
            (Some(buf), d) if d.is_ascii_digit() && buf.len() < 15 => buf.push(d),
            (Some(_), _) => {}
        }
        if let Some(number) = book {
            self.book_callback(now, key, number);
        } else if let Some(text) = reply {
            if let Some(leg) = self.a_leg_id(key) {
                self.apps.stop_play(leg);
                self.apps.play(leg, &Prompt::Tts(text.into()), true, false);
            }
            self.hold_music(key, &queue);
        }
        true
    }

    /// Books a callback for a waiting caller at `number`: the ACD keeps its place, the
    /// caller hears the number and is hung up.
    fn book_callback(&mut self, now: Instant, key: CallKey, number: String) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let (rings, listening) = match call.queued.take() {
            Some(q) => {
                if let Some((offer, _)) = q.offer {
                    self.offers.remove(&offer);
                }
                (q.rings, q.listening)
            }
            None => (Vec::new(), false),
        };
        {
            let _g = call.span.enter();
            info!("callback requested");
        }
        call.hangup_after_prompt = true;
        let b_ringing = call.b_invite_tx.is_some() && !call.b_answered;
        self.cancel_rings(now, rings);
        if b_ringing {
            self.abandon_b(now, key);
        }
        self.acd_input(
            now,
            Input::RequestCallback {
                caller: CallerId(key),
                number: number.clone(),
            },
        );
        let text = format!(
            "Thank you. We will call you back at {}, and you keep your place in the queue. Goodbye.",
            super::callback::spoken_number(&number)
        );
        if let Some(leg) = self.a_leg_id(key) {
            if listening {
                self.listen(leg, None);
            }
            self.apps.stop_play(leg);
            self.apps.play(leg, &Prompt::Tts(text), false, false);
        }
    }

    /// A B leg to an agent failed: back to the ACD, the caller keeps waiting.
    /// Returns false when the call was not ringing an agent.
    pub(crate) fn queue_b_failed(&mut self, now: Instant, key: CallKey, status: u16) -> bool {
        let Some(offer) = self
            .calls
            .get_mut(&key)
            .and_then(|c| c.queued.as_mut())
            .and_then(|q| q.offer.take())
        else {
            return false;
        };
        self.offers.remove(&offer.0);
        self.release_b_signalling(now, key, false);
        self.promote_ring_or_drop_b(now, key);
        self.acd_input(
            now,
            Input::OfferRejected {
                offer: offer.0,
                reason: reject_reason(status),
            },
        );
        true
    }

    /// The agent answered: the offer is accepted.
    pub(crate) fn queue_b_answered(&mut self, now: Instant, key: CallKey) {
        let Some(q) = self.calls.get_mut(&key).and_then(|c| c.queued.as_mut()) else {
            return;
        };
        let Some((offer, agent)) = q.offer.take() else {
            return;
        };
        q.agent = Some((agent.clone(), now));
        self.stop_queue_listening(key);
        self.offers.remove(&offer);
        let number = self
            .calls
            .get(&key)
            .map(|c| super::app::caller_of(&c.a.remote_uri));
        if let Some(n) = number {
            self.remember_agent(n, agent.clone());
        }
        info!(%agent, "agent answered");
        self.acd_input(now, Input::OfferAccepted { offer });
    }

    /// A call is over: the ACD learns how its queue part ended.
    pub(crate) fn queue_call_over(&mut self, now: Instant, key: CallKey) {
        let Some(mut q) = self.calls.get_mut(&key).and_then(|c| c.queued.take()) else {
            return;
        };
        self.cancel_rings(now, std::mem::take(&mut q.rings));
        if q.listening {
            if let Some(leg) = self.a_leg_id(key) {
                self.listen(leg, None);
            }
        }
        let input = match q.agent {
            Some((agent, since)) => Input::CallEnded {
                agent,
                contact: Contact::Caller(CallerId(key)),
                talk: now.saturating_duration_since(since),
            },
            None => {
                if let Some((offer, _)) = q.offer {
                    self.offers.remove(&offer);
                }
                Input::CallerLeaves {
                    caller: CallerId(key),
                    reason: LeaveReason::Abandoned,
                }
            }
        };
        self.acd_input(now, input);
    }

    /// The caller answered the callback offer by voice: "call me back" books it like 1,
    /// "another number" asks for it like 2.
    pub(crate) fn queue_speech(&mut self, now: Instant, key: CallKey, text: &str, confidence: f32) {
        let listening = self
            .calls
            .get(&key)
            .and_then(|c| c.queued.as_ref())
            .is_some_and(|q| q.listening && q.keying.is_none());
        if !listening || confidence < CALLBACK_SPEECH_CONFIDENCE {
            return;
        }
        let grammar = callback_grammar();
        let choices: Vec<crate::ivr::ChoiceWords<'_>> = grammar
            .choices
            .iter()
            .zip(CALLBACK_SPEECH)
            .map(|((name, phrases), (_, _, key))| crate::ivr::ChoiceWords {
                name,
                phrases,
                dtmf: Some(key),
            })
            .collect();
        if let Some(i) = crate::ivr::match_choice(text, &choices) {
            info!(
                choice = CALLBACK_SPEECH[i].0,
                "caller answered the callback offer by voice"
            );
            self.queue_digit(now, key, CALLBACK_SPEECH[i].2);
        }
    }

    /// Stops recognising a queued caller's speech.
    fn stop_queue_listening(&mut self, key: CallKey) {
        let Some(q) = self.calls.get_mut(&key).and_then(|c| c.queued.as_mut()) else {
            return;
        };
        if std::mem::take(&mut q.listening) {
            if let Some(leg) = self.a_leg_id(key) {
                self.listen(leg, None);
            }
        }
    }

    /// Agents' chosen states to store (`None`: logged out), oldest first.
    pub fn poll_agent_state(&mut self) -> Option<(String, Option<AgentStateChange>)> {
        self.agent_out.pop_front()
    }

    /// Agents' chosen states as stored before a restart: an agent whose phone is
    /// registered (its binding restored) takes its state back; the others stay logged out.
    pub fn restore_agent_states(&mut self, now: Instant, states: Vec<(String, AgentStateChange)>) {
        let mut restored = 0;
        for (agent, state) in states {
            let id = AgentId(agent);
            let Some(ext) = self.agent_extension.get(&id).cloned() else {
                continue;
            };
            if self.registrar.lookup(now, &ext).is_empty() {
                continue;
            }
            restored += 1;
            self.acd_input(now, Input::AgentState { agent: id, state });
        }
        if restored > 0 {
            info!(agents = restored, "agent states restored");
        }
        // Restoring is not a change to store again.
        self.agent_out.clear();
    }

    /// Contact history (each caller's last agent, for sticky routing), as stored in the
    /// call records, after a restart.
    pub fn restore_contact_history(&mut self, history: Vec<(String, String)>) {
        if !history.is_empty() {
            info!(callers = history.len(), "contact history restored");
        }
        for (caller, agent) in history.into_iter().rev() {
            self.remember_agent(caller, AgentId(agent));
        }
    }

    /// The agent who last served `caller` (bounded: when full, the memory starts over).
    fn remember_agent(&mut self, caller: String, agent: AgentId) {
        if self.last_agent.len() >= CONTACT_HISTORY && !self.last_agent.contains_key(&caller) {
            self.last_agent.clear();
        }
        self.last_agent.insert(caller, agent);
    }

    /// Cancels a ringing B leg and forgets it with its media leg; a late answer is
    /// acknowledged and hung up.
    pub(crate) fn abandon_b(&mut self, now: Instant, key: CallKey) {
        self.release_b_signalling(now, key, true);
        self.drop_b(key);
    }

    /// Forgets the B leg's dialog and INVITE while it has not answered, keeping its media
    /// leg; with `cancel` the INVITE is cancelled (and a late answer hung up).
    pub(crate) fn release_b_signalling(&mut self, now: Instant, key: CallKey, cancel: bool) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.b_answered {
            return;
        }
        let provisional = call.b_provisional;
        call.b_provisional = false;
        call.b_auth_tried = false;
        call.cancel_pending = false;
        call.clear_timer(CallTimer::Ring);
        let (b, invite, tx) = (call.b.take(), call.b_invite.take(), call.b_invite_tx.take());
        if let Some(b) = &b {
            self.dialogs
                .remove(&(b.call_id.clone(), b.local_tag.clone()));
        }
        if let (true, Some(b), Some(invite), Some(tx)) = (cancel, b, invite, tx) {
            self.orphans.insert(tx, (b, invite, provisional));
            if provisional {
                self.cancel_orphan(now, tx);
            }
        }
    }

    /// Whether a queued call's B leg is ringing an agent (so a further offer rings alongside).
    fn b_ringing_for_queue(&self, key: CallKey) -> bool {
        self.calls.get(&key).is_some_and(|c| {
            c.queued.as_ref().is_some_and(|q| q.offer.is_some())
                && c.b_invite_tx.is_some()
                && !c.b_answered
        })
    }

    /// Rings another agent with the B leg's offer (ring-all).
    fn ring_also(
        &mut self,
        now: Instant,
        key: CallKey,
        offer: OfferId,
        agent: AgentId,
        dest: super::Destination,
    ) {
        let body = self
            .calls
            .get(&key)
            .and_then(|c| c.b_invite.as_ref())
            .map(|i| i.body.clone())
            .filter(|b| !b.is_empty());
        let Some((leg, invite)) = self.b_request(key, &dest, body) else {
            return;
        };
        let tx = self.layer.send_request(now, invite.clone(), dest.peer);
        self.track(tx, key, super::TxRole::Ring);
        if let Some(call) = self.calls.get_mut(&key) {
            let _g = call.span.enter();
            info!(%agent, "offered to agent (ringing with others)");
            if let Some(q) = call.queued.as_mut() {
                q.rings.push(Ring {
                    offer,
                    agent,
                    leg,
                    invite,
                    tx,
                    provisional: false,
                    identity: dest.identity,
                });
            }
        }
    }

    /// A response to a ring-all INVITE: the first answer takes the B leg's place.
    pub(crate) fn on_ring_response(
        &mut self,
        now: Instant,
        key: CallKey,
        tx: TxId,
        resp: crate::sip::message::Response,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let b_answered = call.b_answered;
        let Some(q) = call.queued.as_mut() else {
            return;
        };
        let Some(i) = q.rings.iter().position(|r| r.tx == tx) else {
            return;
        };
        if resp.status < 200 {
            let r = &mut q.rings[i];
            if resp.status > 100 {
                r.provisional = true;
                if super::forms_dialog(&resp) {
                    r.leg.learn_from_response(&resp);
                }
            }
            return;
        }
        if !resp.is_success() {
            return self.ring_failed(now, key, tx, resp.status);
        }
        let ring = q.rings.remove(i);
        if b_answered {
            // Another agent won already (its cancel crossed this answer): hang this one up.
            self.offers.remove(&ring.offer);
            self.orphans
                .insert(tx, (ring.leg, ring.invite, ring.provisional));
            self.orphan_response(now, tx, &resp);
            return;
        }
        {
            let _g = call.span.enter();
            info!(agent = %ring.agent, "answered first; the other phones are cancelled");
        }
        // The phone rung as the B leg lost the race: cancel it, keep the media leg (this
        // answer is to the same offer), and let the winner take its place.
        if let Some((offer, _)) = call.queued.as_mut().and_then(|q| q.offer.take()) {
            self.offers.remove(&offer);
            // (The ACD withdraws that offer itself when it hears of the winner's.)
            self.release_b_signalling(now, key, true);
        }
        self.install_ring(now, key, ring);
        self.on_b_invite_response(now, key, tx, resp);
    }

    /// A ring-all INVITE failed (busy, declined, no answer): the ACD hears of it.
    pub(crate) fn ring_failed(&mut self, now: Instant, key: CallKey, tx: TxId, status: u16) {
        let Some(q) = self.calls.get_mut(&key).and_then(|c| c.queued.as_mut()) else {
            return;
        };
        let Some(i) = q.rings.iter().position(|r| r.tx == tx) else {
            return;
        };
        let ring = q.rings.remove(i);
        self.offers.remove(&ring.offer);
        info!(agent = %ring.agent, status, "agent's phone failed the offer");
        self.acd_input(
            now,
            Input::OfferRejected {
                offer: ring.offer,
                reason: reject_reason(status),
            },
        );
    }

    /// A ring becomes the call's B leg (still ringing, or about to take its answer).
    fn install_ring(&mut self, now: Instant, key: CallKey, ring: Ring) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        self.dialogs.insert(
            (ring.leg.call_id.clone(), ring.leg.local_tag.clone()),
            (key, Side::B),
        );
        call.identities[Side::B.idx()] = ring.identity;
        call.b = Some(ring.leg);
        call.b_invite = Some(ring.invite);
        call.b_invite_tx = Some(ring.tx);
        call.b_provisional = ring.provisional;
        if let Some(q) = call.queued.as_mut() {
            q.offer = Some((ring.offer, ring.agent));
        }
        call.set_timer(CallTimer::Ring, now + self.profile.timers.ring_timeout);
        self.track(ring.tx, key, super::TxRole::BInvite);
        self.schedule(key);
    }

    /// The B leg's offer is over (failed or cancelled): another ringing agent takes the B
    /// leg's place, or the B media leg goes too.
    fn promote_ring_or_drop_b(&mut self, now: Instant, key: CallKey) {
        let ring = self
            .calls
            .get_mut(&key)
            .filter(|c| !c.b_answered)
            .and_then(|c| c.queued.as_mut())
            .filter(|q| !q.rings.is_empty())
            .map(|q| q.rings.remove(0));
        match ring {
            Some(r) => self.install_ring(now, key, r),
            None => self.drop_b(key),
        }
    }

    /// The ACD withdrew an offer: cancel the phone it rings.
    fn cancel_offer(&mut self, now: Instant, key: CallKey, offer: OfferId) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let b_answered = call.b_answered;
        let Some(q) = call.queued.as_mut() else {
            return;
        };
        if let Some(i) = q.rings.iter().position(|r| r.offer == offer) {
            let ring = q.rings.remove(i);
            return self.cancel_rings(now, vec![ring]);
        }
        if q.offer.as_ref().is_some_and(|(o, _)| *o == offer) {
            q.offer = None;
            if !b_answered {
                self.release_b_signalling(now, key, true);
                self.promote_ring_or_drop_b(now, key);
            }
        }
    }

    /// Cancels ring-all INVITEs (a late answer is acknowledged and hung up).
    fn cancel_rings(&mut self, now: Instant, rings: Vec<Ring>) {
        for r in rings {
            self.offers.remove(&r.offer);
            self.orphans.insert(r.tx, (r.leg, r.invite, r.provisional));
            if r.provisional {
                self.cancel_orphan(now, r.tx);
            }
        }
    }

    /// An agent's state from the API: checks the agent's token.
    pub fn set_agent_state(
        &mut self,
        now: Instant,
        agent: &str,
        token: Option<&str>,
        state: AgentStateChange,
    ) -> Result<AgentStatus, AgentRequestError> {
        let id = AgentId(agent.to_string());
        let expected = self
            .agent_tokens
            .get(&id)
            .ok_or(AgentRequestError::UnknownAgent)?;
        if let Some(expected) = expected {
            if token != Some(expected.as_str()) {
                return Err(AgentRequestError::Forbidden);
            }
        }
        self.acd_input(now, Input::AgentState { agent: id, state });
        Ok(self
            .acd
            .agent(agent)
            .map(|v| v.status)
            .unwrap_or(AgentStatus::LoggedOut))
    }

    /// Agents for the API.
    pub fn agents(&self) -> Vec<crate::acd::AgentView> {
        let mut ids: Vec<&AgentId> = self.agent_tokens.keys().collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|id| self.acd.agent(&id.0))
            .collect()
    }

    /// Queue figures for the API.
    pub fn queues(&self, now: Instant) -> Vec<crate::acd::QueueStats> {
        let names: Vec<String> = self.acd.queue_names().map(str::to_string).collect();
        names
            .iter()
            .filter_map(|q| self.acd.queue_stats(q, now))
            .collect()
    }

    /// A registered user's last binding went away: an agent on that phone is logged out.
    pub(crate) fn phone_gone(&mut self, now: Instant, ext: &str) {
        if !self.registrar.lookup(now, ext).is_empty() {
            return;
        }
        if let Some(agent) = self.agent_by_extension(ext) {
            info!(%agent, "agent's registration ended; logged out");
            self.acd_input(
                now,
                Input::AgentState {
                    agent,
                    state: AgentStateChange::LoggedOut,
                },
            );
        }
    }
}

/// "about 2 minutes", "less than a minute".
fn spoken_wait(d: Duration) -> String {
    let mins = (d.as_secs() + 30) / 60;
    match mins {
        0 => "less than a minute".into(),
        1 => "about 1 minute".into(),
        m => format!("about {m} minutes"),
    }
}

impl Switch {
    /// Sends the CANCEL of an abandoned B INVITE.
    pub(crate) fn cancel_orphan(&mut self, now: Instant, tx: TxId) {
        let Some((b, invite, _)) = self.orphans.get(&tx) else {
            return;
        };
        let cancel = super::cancel_for(invite, &b.remote_uri);
        let peer = b.peer;
        self.layer.send_request(now, cancel, peer);
    }

    /// A response to an abandoned B INVITE: CANCEL once it rings, ACK and BYE a late answer.
    /// Returns false when `tx` is not one.
    pub(crate) fn orphan_response(
        &mut self,
        now: Instant,
        tx: TxId,
        resp: &crate::sip::message::Response,
    ) -> bool {
        let Some((_, _, provisional)) = self.orphans.get_mut(&tx) else {
            return false;
        };
        if resp.status < 200 {
            if resp.status > 100 && !*provisional {
                *provisional = true;
                self.cancel_orphan(now, tx);
            }
            return true;
        }
        let (mut b, _, _) = self.orphans.remove(&tx).expect("present");
        if resp.is_success() {
            b.learn_from_response(resp);
            let seq = resp.cseq().map(|c| c.seq).unwrap_or(1);
            let ack = b.ack(seq);
            let peer = b.peer;
            self.send_ack(tx, peer, ack);
            let mut bye = b.request(crate::sip::message::Method::Bye);
            bye.headers.push_front(
                crate::sip::message::HeaderName::Via,
                self.via(peer.transport),
            );
            self.layer.send_request(now, bye, peer);
            info!("a cancelled leg answered late; hung up");
        }
        true
    }
}

impl Switch {
    /// The agent leg's ring timer for queued calls (the ACD's lease governs; this is the
    /// backstop for a phone that never answers the INVITE at all).
    pub(crate) fn queue_ring_timeout(&mut self, now: Instant, key: CallKey) -> bool {
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.queued.as_ref().is_some_and(|q| q.offer.is_some()))
        {
            self.abandon_b(now, key);
            if let Some(call) = self.calls.get_mut(&key) {
                call.clear_timer(CallTimer::Ring);
            }
            return self.queue_b_failed(now, key, 408);
        }
        false
    }
}
