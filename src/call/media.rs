//! Media anchoring for calls: each leg negotiates its own SDP with Switchboard (RFC 3264),
//! and the media engine connects the legs.
//!
//! Every body a leg receives is ours (our address and port for that leg, our codec choice);
//! every body a leg sends is consumed here. An offer from one side is answered by us and
//! turned into our own offer to the other side; the other side's answer completes its plan.
//! Once both plans exist the legs are bridged (relayed when the codecs agree, transcoded
//! otherwise).

use super::{CallKey, Side, Switch};
use crate::config::Codec;
use crate::media::codec::{encoding, CodecSpec};
use crate::media::engine::{LegId, LegParams, MediaCommand, RecordingId};
use crate::sdp::{self, CodecPref, Direction, LocalEndpoint, MediaPlan, NegotiationError, Sdp};
use bytes::Bytes;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The call core's access to the media engine (bound sockets, commands).
pub trait MediaControl: Send {
    /// A new leg with its sockets bound: its id and the address to advertise in SDP.
    fn allocate(&mut self) -> Result<(LegId, SocketAddr), String>;
    /// A command for the engine.
    fn command(&mut self, cmd: MediaCommand);
    /// Creates the file a recording is written to.
    fn open_recording(&mut self, rec: RecordingId, path: PathBuf);
}

/// A [`MediaControl`] that binds nothing and remembers the commands: for simulations and
/// tests of the call core. Clones share one log.
#[derive(Debug, Default, Clone)]
pub struct RecordedMedia {
    log: std::sync::Arc<std::sync::Mutex<MediaLog>>,
}

/// What a [`RecordedMedia`] saw.
#[derive(Debug, Default, Clone)]
pub struct MediaLog {
    next: u32,
    pub commands: Vec<MediaCommand>,
    pub recordings: Vec<(RecordingId, PathBuf)>,
}

impl RecordedMedia {
    /// A copy of the log so far.
    pub fn log(&self) -> MediaLog {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl MediaControl for RecordedMedia {
    fn allocate(&mut self) -> Result<(LegId, SocketAddr), String> {
        let mut l = self.log.lock().map_err(|_| "poisoned".to_string())?;
        l.next += 1;
        Ok((
            l.next,
            SocketAddr::from(([127, 0, 0, 1], 40000 + 2 * l.next as u16)),
        ))
    }
    fn command(&mut self, cmd: MediaCommand) {
        if let Ok(mut l) = self.log.lock() {
            l.commands.push(cmd);
        }
    }
    fn open_recording(&mut self, rec: RecordingId, path: PathBuf) {
        if let Ok(mut l) = self.log.lock() {
            l.recordings.push((rec, path));
        }
    }
}

/// One leg's media negotiation state.
#[derive(Debug)]
pub(crate) struct MediaLeg {
    pub id: LegId,
    pub local: SocketAddr,
    pub session_id: u64,
    pub version: u64,
    /// The offer we sent on this leg, waiting for its answer.
    pub our_offer: Option<Sdp>,
    /// Our answer to this leg's pending offer, with the plan it gives.
    pub pending_answer: Option<(Sdp, MediaPlan)>,
    pub plan: Option<MediaPlan>,
    /// The last description we sent on this leg (repeated by refreshes).
    pub last_sent: Option<Sdp>,
}

/// A call's media: a leg per side, maybe a recording.
#[derive(Debug, Default)]
pub(crate) struct CallMedia {
    pub legs: [Option<MediaLeg>; 2],
    pub recording: Option<RecordingId>,
    pub bridged: bool,
}

impl CallMedia {
    pub fn leg(&self, side: Side) -> Option<&MediaLeg> {
        self.legs[side.idx()].as_ref()
    }
    pub fn leg_mut(&mut self, side: Side) -> Option<&mut MediaLeg> {
        self.legs[side.idx()].as_mut()
    }
}

/// SDP bodies are `application/sdp`.
pub(crate) const SDP: &str = "application/sdp";

impl Switch {
    /// Our codec preferences, with `first` moved to the front (to favour relaying).
    pub(crate) fn codec_prefs(&self, first: Option<Codec>) -> Vec<CodecPref> {
        let mut codecs = self.profile.media.codecs.clone();
        if let Some(f) = first {
            if let Some(pos) = codecs.iter().position(|c| *c == f) {
                let c = codecs.remove(pos);
                codecs.insert(0, c);
            }
        }
        let mut prefs: Vec<CodecPref> = codecs
            .iter()
            .map(|c| match c {
                Codec::Pcmu => CodecPref::pcmu(),
                Codec::Pcma => CodecPref::pcma(),
                Codec::Opus => CodecPref::opus(111),
            })
            .collect();
        prefs.push(CodecPref::telephone_event(101, 8000));
        if codecs.contains(&Codec::Opus) {
            prefs.push(CodecPref::telephone_event(102, 48000));
        }
        prefs
    }

    /// A new media leg (sockets bound), not yet attached to a side.
    pub(crate) fn new_media_leg(&mut self) -> Result<MediaLeg, String> {
        let (id, local) = self.media.allocate()?;
        let session_id = rand::Rng::gen_range(&mut self.rng, 1..u32::MAX as u64);
        Ok(MediaLeg {
            id,
            local,
            session_id,
            version: 1,
            our_offer: None,
            pending_answer: None,
            plan: None,
            last_sent: None,
        })
    }

    /// Allocates a media leg for a side of a call.
    pub(crate) fn media_allocate(&mut self, key: CallKey, side: Side) -> Result<(), String> {
        let leg = self.new_media_leg()?;
        self.leg_index.insert(leg.id, (key, side));
        if let Some(call) = self.calls.get_mut(&key) {
            call.media.legs[side.idx()] = Some(leg);
        }
        Ok(())
    }

    /// The codec the other side uses (or will, once our answer goes out), to offer it first.
    fn other_codec(&self, key: CallKey, side: Side) -> Option<Codec> {
        let leg = self.calls.get(&key)?.media.leg(side.other())?;
        let plan = leg
            .plan
            .as_ref()
            .or(leg.pending_answer.as_ref().map(|(_, p)| p))?;
        codec_of(&plan.codec.encoding)
    }

    /// Our offer on `side` (direction as given), remembered until its answer comes.
    pub(crate) fn media_offer(
        &mut self,
        key: CallKey,
        side: Side,
        direction: Direction,
    ) -> Option<Bytes> {
        let prefs = self.codec_prefs(self.other_codec(key, side));
        let ptime = self.profile.media.ptime.as_millis() as u32;
        let leg = self.calls.get_mut(&key)?.media.leg_mut(side)?;
        Some(offer_on(leg, &prefs, ptime, direction))
    }

    /// Answers an offer that `side` sent; the plan applies once `media_commit_answer` runs.
    pub(crate) fn media_answer(
        &mut self,
        key: CallKey,
        side: Side,
        body: &[u8],
    ) -> Result<(), NegotiationError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| NegotiationError::Malformed("SDP is not UTF-8".into()))?;
        let offer = sdp::parse(text).map_err(|e| NegotiationError::Malformed(e.to_string()))?;
        let prefs = self.codec_prefs(self.other_codec(key, side));
        let call = self.calls.get_mut(&key).ok_or(NegotiationError::NoAudio)?;
        let leg = call.media.leg_mut(side).ok_or(NegotiationError::NoAudio)?;
        leg.version += 1;
        let (answer, plan) = sdp::answer(&offer, &endpoint(leg), &prefs, Direction::SendRecv)?;
        leg.pending_answer = Some((answer, plan));
        Ok(())
    }

    /// The body of our answer on `side`: the pending one, or the one already sent (a 200
    /// repeats the answer a 183 carried).
    pub(crate) fn media_answer_body(&self, key: CallKey, side: Side) -> Option<Bytes> {
        let leg = self.calls.get(&key)?.media.leg(side)?;
        match &leg.pending_answer {
            Some((answer, _)) => Some(Bytes::from(answer.to_string())),
            None => leg
                .plan
                .as_ref()
                .and(leg.last_sent.as_ref())
                .map(|s| Bytes::from(s.to_string())),
        }
    }

    /// Our answer on `side` was sent: its plan takes effect.
    pub(crate) fn media_commit_answer(&mut self, key: CallKey, side: Side) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.media.leg_mut(side) else {
            return;
        };
        let Some((answer, plan)) = leg.pending_answer.take() else {
            return;
        };
        leg.last_sent = Some(answer);
        leg.plan = Some(plan);
        self.media_configure(key, side);
    }

    /// `side` answered our offer.
    pub(crate) fn media_accept(
        &mut self,
        key: CallKey,
        side: Side,
        body: &[u8],
    ) -> Result<(), NegotiationError> {
        let call = self.calls.get_mut(&key).ok_or(NegotiationError::NoAudio)?;
        let leg = call.media.leg_mut(side).ok_or(NegotiationError::NoAudio)?;
        if leg.our_offer.is_none() && leg.plan.is_some() {
            // An answer repeated (183 then 200): the same plan.
            return Ok(());
        }
        accept_on(leg, body)?;
        self.media_configure(key, side);
        Ok(())
    }

    /// Whether `side` still owes us an answer to our offer.
    pub(crate) fn media_awaiting_answer(&self, key: CallKey, side: Side) -> bool {
        self.calls
            .get(&key)
            .and_then(|c| c.media.leg(side))
            .is_some_and(|l| l.our_offer.is_some())
    }

    /// The last description we sent on `side`, for a refresh.
    pub(crate) fn media_last_sent(&self, key: CallKey, side: Side) -> Option<Bytes> {
        let leg = self.calls.get(&key)?.media.leg(side)?;
        leg.last_sent.as_ref().map(|s| Bytes::from(s.to_string()))
    }

    /// Tells the engine a leg's plan, and bridges the call once both sides have one.
    pub(crate) fn media_configure(&mut self, key: CallKey, side: Side) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(leg) = call.media.leg(side) else {
            return;
        };
        let Some(plan) = leg.plan.clone() else { return };
        let id = leg.id;
        if let Some(params) = leg_params(&plan) {
            self.media
                .command(MediaCommand::Configure { leg: id, params });
        }
        let call = self.calls.get_mut(&key).expect("present");
        if call.echo {
            if !call.media.bridged {
                call.media.bridged = true;
                self.media.command(MediaCommand::Echo { leg: id });
                if let Some(rec) = call.media.recording {
                    self.media.command(MediaCommand::Record {
                        rec,
                        left: id,
                        right: id,
                    });
                }
            }
            return;
        }
        let both = call
            .media
            .leg(Side::A)
            .and_then(|l| l.plan.as_ref().map(|_| l.id))
            .zip(
                call.media
                    .leg(Side::B)
                    .and_then(|l| l.plan.as_ref().map(|_| l.id)),
            );
        if let (Some((a, b)), false) = (both, call.media.bridged) {
            call.media.bridged = true;
            let rec = call.media.recording;
            self.media.command(MediaCommand::Bridge { a, b });
            if let Some(rec) = rec {
                self.media.command(MediaCommand::Record {
                    rec,
                    left: a,
                    right: b,
                });
            }
        }
    }

    /// Replaces a side's media leg (a transfer): the new leg is bridged to the other side.
    pub(crate) fn media_replace(&mut self, key: CallKey, side: Side, new: MediaLeg) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let old = call.media.legs[side.idx()].replace(new);
        call.media.bridged = false;
        if let Some(old) = old {
            self.leg_index.remove(&old.id);
            self.media.command(MediaCommand::Release { leg: old.id });
        }
        if let Some(id) = self
            .calls
            .get(&key)
            .and_then(|c| c.media.leg(side))
            .map(|l| l.id)
        {
            self.leg_index.insert(id, (key, side));
        }
        self.media_configure(key, side);
    }

    /// Frees a call's media legs.
    pub(crate) fn media_release(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let legs: Vec<LegId> = call
            .media
            .legs
            .iter_mut()
            .filter_map(|l| l.take().map(|l| l.id))
            .collect();
        for id in legs {
            self.leg_index.remove(&id);
            self.media.command(MediaCommand::Release { leg: id });
        }
    }

    /// Starts recording a call (stereo: caller left, the other party right).
    pub(crate) fn media_record(&mut self, key: CallKey, name: &str) {
        let rec = key;
        let path = self
            .data_dir
            .join("recordings")
            .join(format!("{}.wav", sanitize_file_name(name)));
        self.media.open_recording(rec, path.clone());
        if let Some(call) = self.calls.get_mut(&key) {
            call.media.recording = Some(rec);
            call.recording_path = Some(path);
        }
    }
}

fn endpoint(leg: &MediaLeg) -> LocalEndpoint {
    LocalEndpoint {
        address: leg.local.ip(),
        port: leg.local.port(),
        session_id: leg.session_id,
        session_version: leg.version,
    }
}

/// Builds our offer on a media leg and remembers it until the answer comes.
pub(crate) fn offer_on(
    leg: &mut MediaLeg,
    prefs: &[CodecPref],
    ptime: u32,
    direction: Direction,
) -> Bytes {
    leg.version += 1;
    let offer = sdp::build_offer(&endpoint(leg), prefs, direction, ptime);
    let body = Bytes::from(offer.to_string());
    leg.our_offer = Some(offer.clone());
    leg.last_sent = Some(offer);
    body
}

/// Takes the answer to our pending offer on a media leg; its plan becomes the leg's.
pub(crate) fn accept_on(leg: &mut MediaLeg, body: &[u8]) -> Result<(), NegotiationError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| NegotiationError::Malformed("SDP is not UTF-8".into()))?;
    let answer = sdp::parse(text).map_err(|e| NegotiationError::Malformed(e.to_string()))?;
    let offer = leg
        .our_offer
        .as_ref()
        .ok_or_else(|| NegotiationError::AnswerMismatch("an answer without our offer".into()))?;
    let plan = sdp::accept_answer(offer, &answer)?;
    leg.plan = Some(plan);
    leg.our_offer = None;
    Ok(())
}

/// The engine's view of a plan.
pub(crate) fn leg_params(plan: &MediaPlan) -> Option<LegParams> {
    let codec = codec_of(&plan.codec.encoding)?;
    let remote_rtcp = plan.remote.map(|r| {
        if plan.rtcp_mux {
            r
        } else {
            SocketAddr::new(r.ip(), r.port().wrapping_add(1))
        }
    });
    Some(LegParams {
        remote: plan.remote,
        remote_rtcp,
        codec: CodecSpec {
            codec,
            pt: plan.codec.pt,
            clock_rate: plan.codec.clock_rate,
        },
        telephone_event: plan.telephone_event,
        send: plan.direction.can_send() && plan.remote.is_some(),
        recv: plan.direction.can_recv(),
        ptime_ms: plan.ptime.max(10),
    })
}

/// Our codec for an SDP encoding name.
pub(crate) fn codec_of(name: &str) -> Option<Codec> {
    [Codec::Pcmu, Codec::Pcma, Codec::Opus]
        .into_iter()
        .find(|c| encoding(*c).eq_ignore_ascii_case(name))
}

pub(crate) fn sanitize_file_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
