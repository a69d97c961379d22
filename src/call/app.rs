//! Calls that Switchboard answers itself and runs through an IVR flow.
//!
//! A route to `{ flow: NAME }` makes the caller's A leg an *application call*: no B leg is
//! placed; a [`FlowRun`] decides what happens. This module is the adapter between the
//! interpreter's actions and the rest of the switch, still sans-IO:
//!
//! - `Answer` answers the A leg (our SDP), `Hangup` sends BYE;
//! - `Play`, `Listen`, `Http` go to the runtime through [`AppServices`] (prompt files and
//!   text-to-speech are resolved there, speech recognised there, HTTP done there); their
//!   results come back as [`AppInput`]s and media events;
//! - DTMF digits of the A leg are fed to the run;
//! - `Transfer` places a B leg like any call, and when it answers the media engine bridges it
//!   to the caller; `Queue` hands the caller to the contact centre.
//!
//! The interpreter's promise that every `Play` gets exactly one `PromptFinished` is kept
//! here: the engine reports one `PlayFinished` per completed prompt, or one for a whole
//! interrupted queue, so the plays in flight are counted.

use super::routing::Identity;
use super::{CallKey, CallState, CallTimer, Side, Switch};
use crate::ivr::{
    Action, CallInfo, Channel, Event, FlowRun, Flows, Grammar, HttpMethod, LocalDateTime, Prompt,
    TransferTarget, Variables,
};
use crate::media::engine::{LegId, MediaCommand, RecordingId};
use crate::sip::message::{NameAddr, Request};
use crate::sip::transaction::TxId;
use crate::sip::transport::Peer;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What an application call asks of the runtime. Every method returns at once; results come
/// back through [`Switch::handle_app_input`] and media events.
pub trait AppServices: Send {
    /// Play a prompt file or spoken text to a leg after what is already queued. Exactly one
    /// `PlayFinished` for it follows (or one for the whole queue when it is interrupted),
    /// also when the prompt cannot be loaded or rendered.
    /// `looped` repeats it until stopped (hold music).
    fn play(&mut self, leg: LegId, prompt: &Prompt, barge_in: bool, looped: bool);
    /// Stop what a leg hears from the player (and everything queued), in order after the
    /// plays already asked for.
    fn stop_play(&mut self, leg: LegId);
    /// Recognise speech on a leg against a grammar; `None` stops.
    fn listen(&mut self, leg: LegId, grammar: Option<&Grammar>);
    /// An HTTP request; its result comes back as [`AppInput::HttpDone`].
    fn http(&mut self, req: HttpRequest);
}

/// An HTTP request of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub call: u64,
    pub id: u64,
    pub method: HttpMethod,
    pub url: String,
    pub body: Option<String>,
    pub timeout: Duration,
}

/// Results the runtime brings back to application calls.
#[derive(Debug, Clone, PartialEq)]
pub enum AppInput {
    /// The recogniser heard the caller start speaking (barge-in).
    SpeechStarted { leg: LegId },
    /// A final recognition result.
    Speech {
        leg: LegId,
        text: String,
        confidence: f32,
    },
    /// Speech was heard but matched nothing in the grammar.
    SpeechNoMatch { leg: LegId },
    /// An HTTP request ended: `(status, body)` or why it failed.
    HttpDone {
        call: u64,
        id: u64,
        result: Result<(u16, String), String>,
    },
}

/// [`AppServices`] that remembers what it was asked: for tests of the call core.
#[derive(Debug, Default, Clone)]
pub struct RecordedApps {
    log: std::sync::Arc<std::sync::Mutex<Vec<AppRequest>>>,
}

/// One request a [`RecordedApps`] saw.
#[derive(Debug, Clone, PartialEq)]
pub enum AppRequest {
    Play {
        leg: LegId,
        prompt: Prompt,
        barge_in: bool,
        looped: bool,
    },
    StopPlay {
        leg: LegId,
    },
    Listen {
        leg: LegId,
        grammar: Option<Grammar>,
    },
    Http(HttpRequest),
}

impl RecordedApps {
    /// Everything asked so far.
    pub fn log(&self) -> Vec<AppRequest> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
    fn push(&self, r: AppRequest) {
        if let Ok(mut l) = self.log.lock() {
            l.push(r);
        }
    }
}

impl AppServices for RecordedApps {
    fn play(&mut self, leg: LegId, prompt: &Prompt, barge_in: bool, looped: bool) {
        self.push(AppRequest::Play {
            leg,
            prompt: prompt.clone(),
            barge_in,
            looped,
        });
    }
    fn stop_play(&mut self, leg: LegId) {
        self.push(AppRequest::StopPlay { leg });
    }
    fn listen(&mut self, leg: LegId, grammar: Option<&Grammar>) {
        self.push(AppRequest::Listen {
            leg,
            grammar: grammar.cloned(),
        });
    }
    fn http(&mut self, req: HttpRequest) {
        self.push(AppRequest::Http(req));
    }
}

/// An application call's state.
#[derive(Debug)]
pub(crate) struct App {
    run: FlowRun,
    /// Plays asked for and not finished, oldest first: whether each allows barge-in.
    plays: VecDeque<bool>,
    listening: bool,
    /// A message being recorded (`record` step).
    message: Option<RecordingId>,
    messages: u32,
    /// Where the flow sent the caller, for the API.
    pub(crate) outcome: Option<String>,
}

impl App {
    pub(crate) fn new(run: FlowRun) -> App {
        App {
            run,
            plays: VecDeque::new(),
            listening: false,
            message: None,
            messages: 0,
            outcome: None,
        }
    }

    /// What the caller pressed or said in the flow, in order.
    pub(crate) fn inputs(&self) -> &[String] {
        self.run.inputs()
    }
    /// The run's variables (for the agent's screen pop).
    pub(crate) fn variables(&self) -> &Variables {
        self.run.variables()
    }
    /// `flow/step` now.
    pub(crate) fn position(&self) -> String {
        let (f, s) = self.run.position();
        format!("{f}/{s}")
    }
}

impl Switch {
    /// Replaces the flows new calls start with (a hot reload); running calls keep theirs.
    pub fn set_flows(&mut self, flows: Flows) {
        self.flows = flows;
    }

    /// Whether a flow of this name is loaded.
    pub(crate) fn has_flow(&self, name: &str) -> bool {
        self.flows.get(name).is_some()
    }

    /// The business's local time at `now`.
    pub(crate) fn local_time(&self, now: Instant) -> LocalDateTime {
        self.local_epoch + now.saturating_duration_since(self.epoch)
    }

    fn instant_of(&self, t: LocalDateTime) -> Instant {
        self.epoch + (t - self.local_epoch)
    }

    /// A call routed to a flow: the A leg is set up (its offer answered) and the flow
    /// started; the flow's `answer` step answers it.
    pub(crate) fn start_flow(
        &mut self,
        now: Instant,
        peer: Peer,
        tx: TxId,
        req: Request,
        identity: Identity,
        flow: &str,
    ) -> Option<CallKey> {
        let from = req.from().ok();
        let info = CallInfo {
            caller_number: from
                .as_ref()
                .and_then(|f| f.uri.user.clone())
                .unwrap_or_default(),
            caller_name: from
                .as_ref()
                .and_then(|f| f.display.clone())
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
            called_number: req.uri.user.clone().unwrap_or_default(),
            channel: match &identity {
                Identity::Trunk(t) => Channel::Trunk(t.clone()),
                Identity::LocalUser(_) => Channel::Phone,
            },
        };
        let local = self.local_time(now);
        let run = match FlowRun::start(&self.flows, flow, Variables::for_call(&info), local) {
            Ok(r) => r,
            Err(e) => {
                warn!(flow, error = %e, "flow cannot start");
                self.respond(now, tx, &req, 480, Some("IVR flow not available"), None);
                return None;
            }
        };
        let key = self.new_call(now, peer, tx, req, identity, vec![])?;
        let call = self.calls.get_mut(&key)?;
        {
            let _g = call.span.enter();
            info!(flow, "flow started");
        }
        call.app = Some(App::new(run));
        self.drive_app(now, key);
        Some(key)
    }

    /// Answers the A leg ourselves (IVR, echo test): our answer to its offer, or our offer.
    pub(crate) fn answer_a(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != CallState::Early {
            return;
        }
        call.clear_timer(CallTimer::Ring);
        let a_offered = !call.a_invite.body.is_empty();
        let body = if a_offered {
            self.media_answer_body(key, Side::A)
        } else {
            self.media_offer(key, Side::A, crate::sdp::Direction::SendRecv)
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.state = CallState::Answered;
        call.answered_at = Some(now);
        self.stats.calls_answered += 1;
        let (tx, req) = (call.a_invite_tx, call.a_invite.clone());
        self.respond_2xx(now, key, Side::A, tx, &req, body);
        if a_offered {
            self.media_commit_answer(key, Side::A);
        }
        self.arm_session(now, key, Side::A, &Default::default(), true);
    }

    pub(crate) fn a_leg_id(&self, key: CallKey) -> Option<LegId> {
        self.calls.get(&key)?.media.leg(Side::A).map(|l| l.id)
    }

    /// Recognises a leg's speech with `grammar` (the engine hands the recogniser the leg's
    /// audio), or stops with `None`.
    pub(crate) fn listen(&mut self, leg: LegId, grammar: Option<&crate::ivr::Grammar>) {
        self.apps.listen(leg, grammar);
        self.media.command(MediaCommand::Listen {
            leg,
            on: grammar.is_some(),
        });
    }

    /// Feeds an event to a call's flow and carries out what it asks.
    pub(crate) fn app_event(&mut self, now: Instant, key: CallKey, event: Event) {
        let local = self.local_time(now);
        let Some(app) = self.calls.get_mut(&key).and_then(|c| c.app.as_mut()) else {
            return;
        };
        app.run.handle(local, event);
        self.drive_app(now, key);
    }

    /// Drains the flow's actions and re-arms its timer.
    pub(crate) fn drive_app(&mut self, now: Instant, key: CallKey) {
        let leg = self.a_leg_id(key);
        loop {
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            if call.state == CallState::Ending {
                return;
            }
            let Some(app) = call.app.as_mut() else { return };
            let Some((step, action)) = app.run.poll_output_traced() else {
                break;
            };
            let _g = call.span.clone().entered();
            match action {
                Action::Answer => {
                    self.answer_a(now, key);
                    let local = self.local_time(now);
                    if let Some(app) = self.calls.get_mut(&key).and_then(|c| c.app.as_mut()) {
                        app.run.handle(local, Event::Answered);
                    }
                }
                Action::Play { prompt, barge_in } => {
                    app.plays.push_back(barge_in);
                    match leg {
                        Some(leg) => self.apps.play(leg, &prompt, barge_in, false),
                        None => {
                            app.plays.pop_back();
                            let local = self.local_time(now);
                            if let Some(app) = self.calls.get_mut(&key).and_then(|c| c.app.as_mut())
                            {
                                app.run.handle(local, Event::PromptFinished);
                            }
                        }
                    }
                }
                Action::Listen { speech, .. } => {
                    // DTMF always reaches the run; speech only when a grammar is given.
                    app.listening = speech.is_some();
                    if let Some(leg) = leg {
                        self.listen(leg, speech.as_ref());
                    }
                }
                Action::StopListening => {
                    if std::mem::take(&mut app.listening) {
                        if let Some(leg) = leg {
                            self.listen(leg, None);
                        }
                    }
                }
                Action::Http {
                    id,
                    method,
                    url,
                    body,
                    timeout,
                } => self.apps.http(HttpRequest {
                    call: key,
                    id,
                    method,
                    url,
                    body,
                    timeout,
                }),
                Action::Record { max, to } => self.app_record(key, &to, max),
                Action::StopRecording => {
                    if let Some(rec) = app.message.take() {
                        self.media.command(MediaCommand::StopRecord { rec });
                    }
                }
                Action::Log { text, .. } => info!(%step, "{text}"),
                Action::Hangup => {
                    self.app_ended(key, "hangup".into());
                    self.end_call(now, key, None, "the flow hung up");
                    return;
                }
                Action::Transfer { target } => {
                    self.app_ended(key, format!("transfer to {target}"));
                    self.app_transfer(now, key, &target);
                    return;
                }
                Action::Queue {
                    name,
                    priority,
                    skills,
                    attributes,
                    callback_offer,
                } => {
                    self.app_ended(key, format!("queue {name}"));
                    let entry = super::queue::Entry {
                        queue: name,
                        priority,
                        skills,
                        attributes,
                        callback_after: callback_offer.as_ref().map(|c| c.after),
                        callback_prompt: callback_offer.and_then(|c| c.prompt),
                    };
                    self.enter_queue(now, key, entry);
                    return;
                }
            }
        }
        self.arm_app_timer(key);
    }

    fn arm_app_timer(&mut self, key: CallKey) {
        let at = self
            .calls
            .get(&key)
            .and_then(|c| c.app.as_ref())
            .and_then(|a| a.run.poll_timeout())
            .map(|(t, _)| self.instant_of(t));
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        match at {
            Some(at) => call.set_timer(CallTimer::App, at),
            None => call.clear_timer(CallTimer::App),
        }
        self.schedule(key);
    }

    /// The flow's timer fired.
    pub(crate) fn app_timeout(&mut self, now: Instant, key: CallKey) {
        self.app_event(now, key, Event::Timeout);
    }

    /// The flow ended with `outcome`: no more listening; what the caller hears next is
    /// someone else's business.
    fn app_ended(&mut self, key: CallKey, outcome: String) {
        let leg = self.a_leg_id(key);
        let Some(app) = self.calls.get_mut(&key).and_then(|c| c.app.as_mut()) else {
            return;
        };
        info!(%outcome, inputs = app.run.inputs().len(), "flow ended");
        app.outcome = Some(outcome);
        let listening = std::mem::take(&mut app.listening);
        if let Some(rec) = app.message.take() {
            self.media.command(MediaCommand::StopRecord { rec });
        }
        if let (true, Some(leg)) = (listening, leg) {
            self.listen(leg, None);
        }
    }

    /// `record` step: the caller's audio to `messages/<to>/<call id>-<n>.wav`.
    fn app_record(&mut self, key: CallKey, to: &str, max: Duration) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.media.leg(Side::A).map(|l| l.id) else {
            return;
        };
        let Some(app) = call.app.as_mut() else { return };
        app.messages += 1;
        let rec: RecordingId = (1 << 48) | (key << 8) | u64::from(app.messages & 0xff);
        app.message = Some(rec);
        let name = format!(
            "{}-{}.wav",
            super::media::sanitize_file_name(&call.a.call_id),
            app.messages
        );
        let path = self
            .data_dir
            .join("messages")
            .join(super::media::sanitize_file_name(to))
            .join(name);
        info!(path = %path.display(), max_s = max.as_secs(), "recording a message");
        self.media.open_recording(rec, path);
        self.media.command(MediaCommand::Record {
            rec,
            left: leg,
            right: leg,
        });
    }

    /// A transfer from a flow: a B leg to the target, bridged to the caller when it answers.
    pub(crate) fn app_transfer(&mut self, now: Instant, key: CallKey, target: &TransferTarget) {
        let number = match target {
            TransferTarget::User(u) => u.clone(),
            TransferTarget::Number { number, .. } => number.clone(),
        };
        let decision = match target {
            TransferTarget::User(u) => super::RouteDecision::User(u.clone()),
            TransferTarget::Number { trunk: Some(t), .. } => super::RouteDecision::Trunk(t.clone()),
            TransferTarget::Number {
                number,
                trunk: None,
            } => {
                let identity = self
                    .calls
                    .get(&key)
                    .map(|c| c.identities[0].clone())
                    .unwrap_or(Identity::Trunk(String::new()));
                self.route(&identity, number, None).0
            }
        };
        match self.resolve(now, &decision, &number) {
            Ok(dest) => self.dial_b(now, key, dest),
            Err((status, reason)) => {
                info!(status, %reason, "flow transfer failed");
                self.end_call(now, key, None, "the flow's transfer target is unreachable");
            }
        }
    }

    /// Forgets a B leg that never answered (failed, cancelled): its dialog and media leg.
    pub(crate) fn drop_b(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if let Some(b) = call.b.take() {
            self.dialogs.remove(&(b.call_id, b.local_tag));
        }
        call.b_invite = None;
        call.b_invite_tx = None;
        call.b_provisional = false;
        call.b_auth_tried = false;
        call.cancel_pending = false;
        call.clear_timer(CallTimer::Ring);
        if let Some(m) = call.media.legs[Side::B.idx()].take() {
            self.leg_index.remove(&m.id);
            self.media.command(MediaCommand::Release { leg: m.id });
        }
    }

    /// A B leg of an application call failed or was not answered: the caller is released.
    pub(crate) fn app_b_failed(&mut self, now: Instant, key: CallKey, status: u16) {
        if self.queue_b_failed(now, key, status) {
            return;
        }
        if self.calls.get(&key).is_some_and(|c| c.callback.is_some()) {
            self.drop_b(key);
            return self.callback_failed(now, key, super::callback::outcome_of(status));
        }
        info!(status, "the application call's new party did not answer");
        self.drop_b(key);
        self.end_call(
            now,
            key,
            Some(Side::B),
            "the transfer target did not answer",
        );
    }

    /// The B leg of an application call answered: ACK it, take its SDP answer, stop the
    /// caller's prompts and bridge the two.
    pub(crate) fn on_app_b_answered(
        &mut self,
        now: Instant,
        key: CallKey,
        tx: TxId,
        ack: Request,
        b_peer: Peer,
        resp: crate::sip::message::Response,
    ) {
        self.send_ack(tx, b_peer, ack);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.b_answered {
            return;
        }
        call.clear_timer(CallTimer::Ring);
        let accepted = if resp.body.is_empty() {
            if self.media_awaiting_answer(key, Side::B) {
                Err("no SDP answer in the 200".to_string())
            } else {
                Ok(())
            }
        } else {
            self.media_accept(key, Side::B, &resp.body)
                .map_err(|e| e.to_string())
        };
        if let Err(why) = accepted {
            info!(%why, "new party's answer refused");
            self.send_bye(now, key, Side::B);
            return self.app_b_failed(now, key, 488);
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.b_answered = true;
        {
            let _g = call.span.enter();
            info!("new party answered; bridged");
        }
        if let Some(leg) = self.a_leg_id(key) {
            self.apps.stop_play(leg);
        }
        self.queue_b_answered(now, key);
        self.callback_connected(now, key);
        self.arm_session(now, key, Side::B, &resp.headers, false);
        self.schedule(key);
    }

    /// The engine finished (or interrupted) a leg's prompt.
    pub(crate) fn app_play_finished(&mut self, now: Instant, key: CallKey, interrupted: bool) {
        if self.calls.get(&key).is_some_and(|c| c.hangup_after_prompt) {
            // The confirmation ended (what it cut off reports itself interrupted).
            if !interrupted {
                self.end_call(now, key, None, "confirmation played");
            }
            return;
        }
        if self
            .calls
            .get(&key)
            .and_then(|c| c.callback.as_ref())
            .is_some_and(|cb| cb.phase == super::callback::Phase::Whisper)
        {
            return self.callback_dial_second(now, key);
        }
        let Some(app) = self.calls.get_mut(&key).and_then(|c| c.app.as_mut()) else {
            return;
        };
        let n = if interrupted { app.plays.len() } else { 1 };
        let n = n.min(app.plays.len());
        app.plays.drain(..n);
        let local = self.local_time(now);
        for _ in 0..n {
            if let Some(app) = self.calls.get_mut(&key).and_then(|c| c.app.as_mut()) {
                app.run.handle(local, Event::PromptFinished);
            }
        }
        self.drive_app(now, key);
    }

    /// A result from the runtime's speech or HTTP services.
    pub fn handle_app_input(&mut self, now: Instant, input: AppInput) {
        let on_leg = |sw: &Switch, leg: LegId| -> Option<CallKey> {
            sw.leg_index
                .get(&leg)
                .filter(|(_, side)| *side == Side::A)
                .map(|(k, _)| *k)
        };
        match input {
            AppInput::SpeechStarted { leg } => {
                let Some(key) = on_leg(self, leg) else { return };
                let Some(app) = self.calls.get_mut(&key).and_then(|c| c.app.as_mut()) else {
                    return;
                };
                if app.listening && app.plays.front().copied() == Some(true) {
                    // Barge-in: the engine stops the queue and reports it interrupted.
                    self.apps.stop_play(leg);
                }
            }
            AppInput::Speech {
                leg,
                text,
                confidence,
            } => {
                let Some(key) = on_leg(self, leg) else { return };
                if let Some(call) = self.calls.get(&key) {
                    let _g = call.span.enter();
                    info!(
                        confidence,
                        words = text.split_whitespace().count(),
                        "speech"
                    );
                }
                if self.calls.get(&key).is_some_and(|c| c.app.is_none()) {
                    return self.queue_speech(now, key, &text, confidence);
                }
                self.app_event(now, key, Event::Speech { text, confidence });
            }
            AppInput::SpeechNoMatch { leg } => {
                let Some(key) = on_leg(self, leg) else { return };
                self.app_event(now, key, Event::SpeechNoMatch);
            }
            AppInput::HttpDone { call, id, result } => {
                let event = match result {
                    Ok((status, body)) => Event::HttpResult { id, status, body },
                    Err(reason) => Event::HttpFailed { id, reason },
                };
                self.app_event(now, call, event);
            }
        }
    }
}

/// The caller's number as the flow saw it (for logs and callbacks).
pub(crate) fn caller_of(remote_uri: &str) -> String {
    NameAddr::parse(remote_uri)
        .and_then(|n| n.uri.user)
        .unwrap_or_else(|| "anonymous".into())
}
