//! The media engine: every leg's RTP in and out, sans-IO.
//!
//! Contract: the runtime owns the sockets and calls [`MediaEngine::handle_rtp`] for each
//! datagram (with the leg it arrived on and its source), [`MediaEngine::handle_rtcp`] for
//! RTCP, and [`MediaEngine::handle_tick`] when [`MediaEngine::poll_timeout`] says. Everything
//! the engine wants done comes out through a [`MediaSink`]: datagrams to send from a leg's
//! socket, events for the call core (DTMF digits, dead legs, finished prompts) and stereo
//! frames for recordings. It never reads the clock, never touches a socket or a file.
//!
//! Per leg: symmetric RTP with latching (the first packet from the address the SDP names, or
//! from anywhere when that address is private and the peer is behind NAT; strangers are
//! dropped afterwards), sequence and timestamp continuity on the outgoing stream across
//! source changes, RTCP receiver/sender reports, an inactivity timeout. Between two bridged
//! legs with the same codec and packetisation, packets are relayed without decoding (the fast
//! path); otherwise each direction is decoded into a jitter buffer, concealed when lost,
//! re-encoded on the 20 ms tick. DTMF: RFC 4733 events, and in-band detection on G.711 legs
//! that did not negotiate telephone-event.

use super::codec::{CodecSpec, Decoder, Encoder};
use super::dtmf::{EventPacket, EventReceiver, EventSender, InbandDetector};
use super::jitter::{JitterBuffer, JitterConfig, Playout};
use super::rtp::{Rewriter, Rewritten, SeqUpdate};
use super::{g711, rtcp, rtp};
use crate::config::Codec;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A leg's id (the runtime's socket pair).
pub type LegId = u32;

/// Hashes a leg id with one multiplication (leg ids are small sequential integers; the
/// default SipHash cost more than the lookups it guards on the per-packet path).
#[derive(Default, Clone, Copy)]
pub struct LegIdHasher(u64);

impl std::hash::Hasher for LegIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by leg id.
pub type LegMap<V> = HashMap<LegId, V, std::hash::BuildHasherDefault<LegIdHasher>>;
/// A recording's id.
pub type RecordingId = u64;

/// The internal PCM rate of decoded audio (bridging, recording, prompts, DTMF detection).
pub const PCM_RATE: u32 = 8000;

/// What a leg negotiated (from its SDP offer/answer).
#[derive(Debug, Clone, PartialEq)]
pub struct LegParams {
    /// Where RTP goes according to the SDP (None: on hold / disabled).
    pub remote: Option<SocketAddr>,
    /// Where RTCP goes (the RTP port + 1, or the RTP address with rtcp-mux).
    pub remote_rtcp: Option<SocketAddr>,
    pub codec: CodecSpec,
    /// RFC 4733 payload type and clock rate, when negotiated.
    pub telephone_event: Option<(u8, u32)>,
    /// We may send to this leg.
    pub send: bool,
    /// The peer sends to us.
    pub recv: bool,
    pub ptime_ms: u32,
}

/// 8 kHz mono audio to play.
pub type Prompt = Arc<[i16]>;

/// Commands from the call core.
#[derive(Debug, Clone)]
pub enum MediaCommand {
    /// A new leg exists (its socket is bound); nothing flows until it is configured.
    AddLeg { leg: LegId, local: SocketAddr },
    /// The leg's negotiation finished (again, after a re-offer).
    Configure { leg: LegId, params: LegParams },
    /// Connect two legs both ways.
    Bridge { a: LegId, b: LegId },
    /// Send a leg's audio back to it.
    Echo { leg: LegId },
    /// Detach a leg from whatever it was connected to.
    Isolate { leg: LegId },
    /// Record `left` and `right` (stereo) under `rec`.
    Record {
        rec: RecordingId,
        left: LegId,
        right: LegId,
    },
    /// Play audio to a leg in place of what it would hear. `looped` for hold music;
    /// `barge_in`: a DTMF digit from the leg stops it (and everything queued after it);
    /// `enqueue`: after what is playing, instead of replacing it.
    Play {
        leg: LegId,
        prompt: Prompt,
        looped: bool,
        barge_in: bool,
        enqueue: bool,
    },
    /// Stop playing to a leg (and drop its queue).
    StopPlay { leg: LegId },
    /// Connect several legs through a mixer: each `(listener, speaker)` pair says who
    /// hears whom (a supervisor listening hears both parties and is heard by nobody;
    /// whispering, the agent hears them too; barging, everybody hears everybody).
    Mix {
        mix: u64,
        legs: Vec<LegId>,
        hears: Vec<(LegId, LegId)>,
    },
    /// Send a DTMF digit to a leg (RFC 4733 when negotiated).
    SendDigit { leg: LegId, digit: char },
    /// Hand the leg's decoded incoming audio to [`MediaSink::audio`] (speech recognition).
    Listen { leg: LegId, on: bool },
    /// Finish a recording now (its legs go on).
    StopRecord { rec: RecordingId },
    /// The leg is gone.
    Release { leg: LegId },
}

/// What the engine tells the call core.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A DTMF digit arrived on a leg.
    Dtmf {
        leg: LegId,
        digit: char,
        inband: bool,
    },
    /// The leg sent no RTP for the timeout while it should have.
    Inactive { leg: LegId },
    /// A prompt ended, or was interrupted by a digit (barge-in) or a command.
    PlayFinished { leg: LegId, interrupted: bool },
    /// A recording's last frame was written.
    RecordingStopped { rec: RecordingId },
}

/// Where the engine's output goes.
pub trait MediaSink {
    /// Send `data` from `leg`'s RTP socket (or RTCP socket) to `to`.
    fn send(&mut self, leg: LegId, rtcp: bool, to: SocketAddr, data: &[u8]);
    /// An event for the call core.
    fn event(&mut self, event: MediaEvent);
    /// An interleaved stereo 8 kHz frame for a recording.
    fn record(&mut self, rec: RecordingId, stereo: &[i16]);
    /// Decoded 8 kHz audio from a leg that is listened to ([`MediaCommand::Listen`]).
    fn audio(&mut self, _leg: LegId, _pcm: &[i16]) {}
}

/// Counters for metrics and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct MediaStats {
    pub packets_in: u64,
    pub packets_relayed: u64,
    pub packets_transcoded: u64,
    pub packets_dropped_stranger: u64,
    pub packets_dropped_malformed: u64,
    pub packets_dropped_unexpected_pt: u64,
    pub concealed_frames: u64,
    /// 20 ms ticks lost because the engine was more than 100 ms late.
    pub ticks_skipped: u64,
    /// Leg visits by the 20 ms tick (quiet relayed legs are visited once a second).
    pub legs_ticked: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    None,
    Bridge(LegId),
    Echo,
    Mix(u64),
}

#[derive(Debug)]
struct Player {
    prompt: Prompt,
    pos: usize,
    looped: bool,
    barge_in: bool,
}

struct LegState {
    params: Option<LegParams>,
    configured_at: Option<Instant>,
    latched: Option<SocketAddr>,
    link: Link,
    last_rx: Option<Instant>,
    inactive_reported: bool,
    seq: rtp::SeqTracker,
    stats: rtcp::ReceiverStats,
    last_rx_ssrc: Option<u32>,
    te_rx: Option<EventReceiver>,
    /// Boxed, like `jitter`: most legs have neither, and every leg's slot in the table
    /// would otherwise hold room for both.
    inband: Option<Box<InbandDetector>>,
    decoder: Option<Decoder>,
    /// Payloads from this leg waiting to be decoded (only when the other side transcodes).
    jitter: Option<Box<JitterBuffer<Vec<u8>>>>,
    /// Our outgoing stream: relayed packets and generated frames, kept continuous.
    out: Rewriter,
    /// The virtual source our generated frames come from (seq, ts), fed through `out`.
    gen: (u16, u32),
    sent: rtcp::SenderStats,
    encoder: Option<Encoder>,
    player: VecDeque<Player>,
    /// This tick's decoded input frame (transcoding, mixing).
    frame: Option<Vec<i16>>,
    recording: Option<(RecordingId, usize)>,
    /// The leg's decoded audio goes to [`MediaSink::audio`].
    listen: bool,
    /// Decoded audio from this leg for a recording or in-band detection.
    rec_buf: VecDeque<i16>,
    last_rtcp: Option<Instant>,
    pcm: Vec<i16>,
    pending_digits: VecDeque<char>,
    /// RFC 4733 packets being sent, with when each is due.
    sending_events: VecDeque<(Instant, EventPacket)>,
}

#[derive(Debug)]
struct Recording {
    legs: [LegId; 2],
}

/// Every leg's media state.
pub struct MediaEngine {
    legs: LegMap<LegState>,
    /// Ticks so far; legs with nothing to do per tick are visited every `QUIET_EVERY`.
    ticks: u64,
    /// The legs visited this tick (kept to reuse its allocation).
    tick_ids: Vec<LegId>,
    /// The legs that had more to do than relaying at the last tick: between the
    /// once-a-second visits of every leg, ticks look only at these. A command (or a digit
    /// handed to another leg) may give any leg work, so it sets `walk_all` and the next
    /// tick looks at every leg again.
    busy: Vec<LegId>,
    walk_all: bool,
    /// Mixers: who hears whom, as (listener, speaker) pairs.
    mixes: HashMap<u64, Vec<(LegId, LegId)>>,
    recordings: HashMap<RecordingId, Recording>,
    rtp_timeout: Duration,
    epoch: Instant,
    next_tick: Option<Instant>,
    rng: u64,
    stats: MediaStats,
    buf: Vec<u8>,
}

const TICK: Duration = Duration::from_millis(20);
/// Late ticks caught up at once, at most (100 ms of audio).
const MAX_CATCH_UP: u32 = 5;
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Quiet legs (relayed packet for packet) get their inactivity and RTCP checks once a
/// second rather than every tick.
const QUIET_EVERY: u64 = 50;

impl MediaEngine {
    /// An engine with no legs. `seed` feeds SSRCs and initial sequence numbers.
    pub fn new(now: Instant, rtp_timeout: Duration, seed: u64) -> MediaEngine {
        MediaEngine {
            legs: LegMap::default(),
            ticks: 0,
            busy: Vec::new(),
            walk_all: true,
            tick_ids: Vec::new(),
            mixes: HashMap::new(),
            recordings: HashMap::new(),
            rtp_timeout,
            epoch: now,
            next_tick: None,
            rng: seed | 1,
            stats: MediaStats::default(),
            buf: vec![0; 1500],
        }
    }

    /// Counters.
    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }

    /// Live legs.
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: deterministic from the seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// When to call `handle_tick` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Applies a command from the call core.
    pub fn command(&mut self, now: Instant, cmd: MediaCommand, sink: &mut impl MediaSink) {
        self.walk_all = true;
        match cmd {
            MediaCommand::AddLeg { leg, local } => {
                let r = self.random();
                let _ = local;
                let state = LegState {
                    params: None,
                    configured_at: None,
                    latched: None,
                    link: Link::None,
                    last_rx: None,
                    inactive_reported: false,
                    seq: rtp::SeqTracker::with_min_sequential(1),
                    stats: rtcp::ReceiverStats::new(),
                    last_rx_ssrc: None,
                    te_rx: None,
                    inband: None,
                    decoder: None,
                    jitter: None,
                    out: Rewriter::new(r as u32, (r >> 32) as u16, (r >> 16) as u32),
                    gen: ((r >> 48) as u16, (r >> 8) as u32),
                    sent: rtcp::SenderStats::new(),
                    encoder: None,
                    player: VecDeque::new(),
                    frame: None,
                    recording: None,
                    listen: false,
                    rec_buf: VecDeque::new(),
                    last_rtcp: None,
                    pcm: Vec::new(),
                    pending_digits: VecDeque::new(),
                    sending_events: VecDeque::new(),
                };
                self.legs.insert(leg, state);
            }
            MediaCommand::Configure { leg, params } => {
                let Some(l) = self.legs.get_mut(&leg) else {
                    return;
                };
                let changed_remote = l.params.as_ref().map(|p| p.remote) != Some(params.remote);
                let codec_changed = l.params.as_ref().map(|p| p.codec) != Some(params.codec);
                if changed_remote {
                    l.latched = None;
                }
                if codec_changed {
                    l.decoder = Decoder::new(params.codec.codec, PCM_RATE).ok();
                    l.encoder = Encoder::new(params.codec.codec, PCM_RATE).ok();
                    l.jitter = None;
                }
                let g711 = matches!(params.codec.codec, Codec::Pcmu | Codec::Pcma);
                l.inband = (params.telephone_event.is_none() && g711)
                    .then(|| InbandDetector::new(PCM_RATE).ok().map(Box::new))
                    .flatten();
                l.te_rx = params
                    .telephone_event
                    .map(|(_, rate)| EventReceiver::new(rate));
                l.configured_at = Some(now);
                l.inactive_reported = false;
                l.params = Some(params);
                self.refresh_modes();
            }
            MediaCommand::Bridge { a, b } => {
                for (x, y) in [(a, b), (b, a)] {
                    if let Some(l) = self.legs.get_mut(&x) {
                        l.link = Link::Bridge(y);
                    }
                }
                self.refresh_modes();
            }
            MediaCommand::Echo { leg } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.link = Link::Echo;
                }
                self.refresh_modes();
            }
            MediaCommand::Isolate { leg } => {
                self.unlink(leg);
                self.refresh_modes();
            }
            MediaCommand::Record { rec, left, right } => {
                for (i, leg) in [left, right].into_iter().enumerate() {
                    if let Some(l) = self.legs.get_mut(&leg) {
                        l.recording = Some((rec, i));
                    }
                }
                self.recordings.insert(
                    rec,
                    Recording {
                        legs: [left, right],
                    },
                );
                self.refresh_modes();
            }
            MediaCommand::Play {
                leg,
                prompt,
                looped,
                barge_in,
                enqueue,
            } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    if !enqueue && !l.player.is_empty() {
                        l.player.clear();
                        sink.event(MediaEvent::PlayFinished {
                            leg,
                            interrupted: true,
                        });
                    }
                    l.player.push_back(Player {
                        prompt,
                        pos: 0,
                        looped,
                        barge_in,
                    });
                }
                self.refresh_modes();
            }
            MediaCommand::Listen { leg, on } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.listen = on;
                }
            }
            MediaCommand::StopRecord { rec } => {
                if self.recordings.contains_key(&rec) {
                    self.flush_recording(rec, sink);
                    self.recordings.remove(&rec);
                    for l in self.legs.values_mut() {
                        if l.recording.is_some_and(|(r, _)| r == rec) {
                            l.recording = None;
                            l.rec_buf.clear();
                        }
                    }
                    sink.event(MediaEvent::RecordingStopped { rec });
                }
            }
            MediaCommand::StopPlay { leg } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    if !l.player.is_empty() {
                        l.player.clear();
                        sink.event(MediaEvent::PlayFinished {
                            leg,
                            interrupted: true,
                        });
                    }
                }
                self.refresh_modes();
            }
            MediaCommand::Mix { mix, legs, hears } => {
                for leg in &legs {
                    self.unlink(*leg);
                    if let Some(l) = self.legs.get_mut(leg) {
                        l.link = Link::Mix(mix);
                    }
                }
                self.mixes.insert(mix, hears);
                self.refresh_modes();
            }
            MediaCommand::SendDigit { leg, digit } => {
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.pending_digits.push_back(digit);
                }
                self.refresh_modes();
            }
            MediaCommand::Release { leg } => {
                self.unlink(leg);
                if let Some(l) = self.legs.remove(&leg) {
                    if let Some((rec, _)) = l.recording {
                        let other_alive = self.recordings.get(&rec).is_some_and(|r| {
                            r.legs
                                .iter()
                                .any(|x| *x != leg && self.legs.contains_key(x))
                        });
                        if !other_alive {
                            self.flush_recording(rec, sink);
                            self.recordings.remove(&rec);
                            sink.event(MediaEvent::RecordingStopped { rec });
                        }
                    }
                }
                self.refresh_modes();
            }
        }
        if self.next_tick.is_none() && !self.legs.is_empty() {
            self.next_tick = Some(now + TICK);
        }
        if self.legs.is_empty() {
            self.next_tick = None;
        }
    }

    fn unlink(&mut self, leg: LegId) {
        if let Some(Link::Mix(m)) = self.legs.get(&leg).map(|l| l.link) {
            if let Some(pairs) = self.mixes.get_mut(&m) {
                pairs.retain(|(a, b)| *a != leg && *b != leg);
            }
            let others = self
                .legs
                .iter()
                .any(|(id, l)| *id != leg && l.link == Link::Mix(m));
            if !others {
                self.mixes.remove(&m);
            }
        }
        if let Some(Link::Bridge(other)) = self.legs.get(&leg).map(|l| l.link) {
            if let Some(o) = self.legs.get_mut(&other) {
                if o.link == Link::Bridge(leg) {
                    o.link = Link::None;
                }
            }
        }
        if let Some(l) = self.legs.get_mut(&leg) {
            l.link = Link::None;
        }
    }

    /// Whether packets from `from` to `to` can be relayed as they are.
    fn relayable(&self, from: &LegState, to: &LegState) -> bool {
        let (Some(a), Some(b)) = (&from.params, &to.params) else {
            return false;
        };
        a.codec.codec == b.codec.codec
            && a.codec.clock_rate == b.codec.clock_rate
            && a.ptime_ms == b.ptime_ms
            && to.player.is_empty()
    }

    /// Sets up jitter buffers where a direction transcodes.
    fn refresh_modes(&mut self) {
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            let needs_jb = match self.legs[&id].link {
                Link::Bridge(other) => self
                    .legs
                    .get(&other)
                    .is_some_and(|o| !self.relayable(&self.legs[&id], o)),
                Link::Mix(_) => true,
                _ => false,
            };
            let l = self.legs.get_mut(&id).expect("present");
            match (needs_jb, &l.jitter, &l.params) {
                (true, None, Some(p)) => {
                    let units = p.ptime_ms * p.codec.units_per_ms();
                    l.jitter = Some(Box::new(JitterBuffer::new(JitterConfig::new(
                        p.codec.clock_rate,
                        units,
                    ))));
                }
                (false, Some(_), _) => l.jitter = None,
                _ => {}
            }
        }
    }

    /// Accepts or refuses a packet's source (latching, RFC 3550 symmetric RTP).
    fn admit(l: &mut LegState, from: SocketAddr) -> bool {
        if let Some(latched) = l.latched {
            return latched == from;
        }
        let Some(p) = &l.params else { return false };
        let ok = match p.remote {
            Some(r) if r.ip() == from.ip() => true,
            // A private or unspecified address in the SDP: the peer is behind NAT; take the
            // first source that speaks.
            Some(r) => is_private(r.ip()),
            None => true,
        };
        if ok {
            l.latched = Some(from);
        }
        ok
    }

    /// One RTP datagram that arrived on `leg`'s socket from `from`.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        leg: LegId,
        from: SocketAddr,
        data: &[u8],
        sink: &mut impl MediaSink,
    ) {
        self.stats.packets_in += 1;
        let Ok((h, payload)) = rtp::parse(data) else {
            self.stats.packets_dropped_malformed += 1;
            return;
        };
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if !Self::admit(l, from) {
            self.stats.packets_dropped_stranger += 1;
            return;
        }
        let Some(p) = l.params.clone() else { return };
        l.last_rx = Some(now);
        l.inactive_reported = false;
        if l.last_rx_ssrc != Some(h.ssrc) {
            l.last_rx_ssrc = Some(h.ssrc);
            l.seq = rtp::SeqTracker::with_min_sequential(1);
            l.stats = rtcp::ReceiverStats::new();
        }
        let seq_ext = match l.seq.update(h.sequence) {
            SeqUpdate::Accepted(x) => x,
            SeqUpdate::Restarted(x) => {
                l.stats = rtcp::ReceiverStats::new();
                x
            }
            SeqUpdate::Probation | SeqUpdate::Rejected => return,
        };
        let arrival = (now.saturating_duration_since(self.epoch).as_micros() as u64
            * p.codec.clock_rate as u64
            / 1_000_000) as u32;
        l.stats.on_packet(arrival, h.timestamp, seq_ext);
        let payload = &data[payload];

        // DTMF events.
        if let Some((te_pt, te_rate)) = p.telephone_event {
            if h.payload_type == te_pt {
                let mut digits = Vec::new();
                if let Some(rx) = l.te_rx.as_mut() {
                    let mut got = rx.receive(h.timestamp, h.sequence, h.marker, payload);
                    while let Some(d) = got {
                        digits.push(d.digit);
                        got = rx.poll();
                    }
                }
                for d in &digits {
                    sink.event(MediaEvent::Dtmf {
                        leg,
                        digit: *d,
                        inband: false,
                    });
                }
                if !digits.is_empty() {
                    self.barge_in(leg, sink);
                }
                self.relay_event(now, leg, &h, data, te_rate, &digits, sink);
                return;
            }
        }
        if h.payload_type != p.codec.pt {
            if h.payload_type != 13 {
                self.stats.packets_dropped_unexpected_pt += 1;
            }
            return;
        }

        // Taps that need decoded audio: in-band DTMF, recording.
        let needs_pcm = l.inband.is_some() || l.recording.is_some() || l.listen;
        let mut inband_digit = None;
        if needs_pcm && l.jitter.is_none() {
            if let Some(dec) = l.decoder.as_mut() {
                let frame = (p.ptime_ms * PCM_RATE / 1000) as usize;
                let mut pcm = std::mem::take(&mut l.pcm);
                dec.decode(payload, &mut pcm, frame);
                inband_digit = l.inband.as_mut().and_then(|det| det.feed(&pcm));
                if l.recording.is_some() {
                    l.rec_buf.extend(pcm.iter().copied());
                }
                if l.listen {
                    sink.audio(leg, &pcm);
                }
                l.pcm = pcm;
            }
        }
        if let Some(d) = inband_digit {
            sink.event(MediaEvent::Dtmf {
                leg,
                digit: d,
                inband: true,
            });
            self.barge_in(leg, sink);
        }
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };

        match l.link {
            Link::None => {}
            Link::Echo => {
                if let (Some(to), true) = (l.latched, p.send) {
                    let buf = &mut self.buf[..data.len()];
                    buf.copy_from_slice(data);
                    if let Rewritten::Forward { .. } =
                        l.out
                            .rewrite_at(buf, &h, p.codec.pt, now, p.codec.clock_rate)
                    {
                        l.sent.on_packet(payload.len());
                        self.stats.packets_relayed += 1;
                        sink.send(leg, false, to, buf);
                    }
                }
            }
            Link::Mix(_) => {
                if let Some(jb) = l.jitter.as_mut() {
                    jb.push(now, seq_ext, h.timestamp, payload.to_vec());
                }
            }
            Link::Bridge(other) => {
                if let Some(jb) = l.jitter.as_mut() {
                    jb.push(now, seq_ext, h.timestamp, payload.to_vec());
                    return;
                }
                let Some(o) = self.legs.get_mut(&other) else {
                    return;
                };
                let Some(op) = &o.params else { return };
                if !o.player.is_empty() || !op.send {
                    return;
                }
                let Some(to) = o.latched.or(op.remote) else {
                    return;
                };
                let buf = &mut self.buf[..data.len()];
                buf.copy_from_slice(data);
                if let Rewritten::Forward { .. } =
                    o.out
                        .rewrite_at(buf, &h, op.codec.pt, now, op.codec.clock_rate)
                {
                    o.sent.on_packet(payload.len());
                    self.stats.packets_relayed += 1;
                    sink.send(other, false, to, buf);
                }
            }
        }
    }

    /// Passes a telephone-event packet on: as it is to a bridged leg that relays (same codec
    /// and event clock), or as new events in our own stream when the call transcodes.
    #[allow(clippy::too_many_arguments)]
    fn relay_event(
        &mut self,
        now: Instant,
        leg: LegId,
        h: &rtp::RtpHeader,
        data: &[u8],
        rate: u32,
        digits: &[char],
        _sink: &mut impl MediaSink,
    ) {
        let Some(Link::Bridge(other)) = self.legs.get(&leg).map(|l| l.link) else {
            return;
        };
        let relay = match (self.legs.get(&leg), self.legs.get(&other)) {
            (Some(a), Some(b)) => self.relayable(a, b),
            _ => false,
        };
        let Some(o) = self.legs.get_mut(&other) else {
            return;
        };
        let Some(op) = o.params.clone() else { return };
        let (Some((pt, orate)), true) = (op.telephone_event, op.send) else {
            return;
        };
        if relay && orate == rate {
            let Some(to) = o.latched.or(op.remote) else {
                return;
            };
            let buf = &mut self.buf[..data.len()];
            buf.copy_from_slice(data);
            if let Rewritten::Forward { .. } =
                o.out.rewrite_at(buf, h, pt, now, op.codec.clock_rate)
            {
                _sink.send(other, false, to, buf);
            }
        } else {
            o.pending_digits.extend(digits.iter().copied());
            self.walk_all = true;
        }
    }

    /// One RTCP datagram on `leg` (reports are parsed for their statistics only).
    pub fn handle_rtcp(&mut self, _now: Instant, leg: LegId, from: SocketAddr, data: &[u8]) {
        let Some(l) = self.legs.get(&leg) else { return };
        if l.latched.is_some_and(|a| a.ip() != from.ip()) {
            return;
        }
        let _ = rtcp::validate_compound(data);
    }

    /// The 20 ms tick: transcoded, mixed and played frames, recordings, RTCP, inactivity.
    /// A tick that comes late is caught up (every missed 20 ms still produces its frame, up
    /// to [`MAX_CATCH_UP`] ticks); beyond that the missed ticks are counted and skipped.
    pub fn handle_tick(&mut self, now: Instant, sink: &mut impl MediaSink) {
        let Some(mut due) = self.next_tick else {
            return;
        };
        let mut done = 0;
        while due <= now && done < MAX_CATCH_UP {
            self.tick_once(due, sink);
            due += TICK;
            done += 1;
        }
        if due <= now {
            let behind =
                (now.saturating_duration_since(due).as_millis() / TICK.as_millis()) as u64 + 1;
            self.stats.ticks_skipped += behind;
            due = now + TICK;
        }
        self.next_tick = if self.legs.is_empty() {
            None
        } else {
            Some(due)
        };
    }

    fn tick_once(&mut self, now: Instant, sink: &mut impl MediaSink) {
        self.ticks += 1;
        let all = self.ticks.is_multiple_of(QUIET_EVERY);
        let mut busy = std::mem::take(&mut self.busy);
        if all || std::mem::take(&mut self.walk_all) {
            busy.clear();
            busy.extend(
                self.legs
                    .iter()
                    .filter(|(_, l)| !self.quiet_pair(l))
                    .map(|(id, _)| *id),
            );
        } else {
            busy.retain(|id| self.legs.get(id).is_some_and(|l| !self.quiet_pair(l)));
        }
        let mut ids = std::mem::take(&mut self.tick_ids);
        ids.clear();
        if all {
            ids.extend(self.legs.keys().copied());
        } else {
            ids.extend_from_slice(&busy);
        }
        self.busy = busy;
        self.stats.legs_ticked += ids.len() as u64;
        // Every input that is transcoded or mixed is decoded once per tick...
        for &id in &ids {
            self.pull_input(now, id, sink);
        }
        // ...then every leg's output is built from it.
        for &id in &ids {
            self.tick_leg(now, id, sink);
        }
        self.tick_ids = ids;
        let recs: Vec<RecordingId> = self.recordings.keys().copied().collect();
        for rec in recs {
            self.record_frame(rec, sink);
        }
    }

    /// A leg whose tick has nothing to do but the slow checks (inactivity, RTCP): its
    /// packets are relayed as they come (no jitter buffer: nothing decoded per tick), and
    /// nothing is generated, played, recorded or sent from here, on it or on the leg it is
    /// bridged to. (Every configured leg holds a codec; only the jitter buffer says it is
    /// decoded on the tick.)
    fn quiet_pair(&self, l: &LegState) -> bool {
        fn quiet(l: &LegState) -> bool {
            matches!(l.link, Link::None | Link::Bridge(_))
                && l.jitter.is_none()
                && l.inband.is_none()
                && l.frame.is_none()
                && l.player.is_empty()
                && l.recording.is_none()
                && !l.listen
                && l.pending_digits.is_empty()
                && l.sending_events.is_empty()
        }
        quiet(l)
            && match l.link {
                Link::Bridge(other) => self.legs.get(&other).is_none_or(quiet),
                _ => true,
            }
    }

    /// Whether this tick starts a frame of `ptime_ms`.
    fn frame_due(&self, now: Instant, ptime_ms: u32) -> bool {
        let ticks_per_frame = (ptime_ms / 20).max(1);
        let tick_no = now.saturating_duration_since(self.epoch).as_millis() as u32 / 20;
        tick_no.is_multiple_of(ticks_per_frame)
    }

    /// Decodes this tick's frame of a leg whose audio is transcoded or mixed (concealing a
    /// lost one), feeding the recording and in-band DTMF detection on the way.
    fn pull_input(&mut self, now: Instant, id: LegId, sink: &mut impl MediaSink) {
        let Some(ptime) = self
            .legs
            .get(&id)
            .and_then(|l| l.params.as_ref().map(|p| p.ptime_ms))
        else {
            return;
        };
        let due = self.frame_due(now, ptime);
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        if !due {
            return;
        }
        l.frame = None;
        let frame_len = (ptime * PCM_RATE / 1000) as usize;
        let (Some(jb), Some(dec)) = (l.jitter.as_mut(), l.decoder.as_mut()) else {
            return;
        };
        let mut pcm = Vec::with_capacity(frame_len);
        match jb.pop(now) {
            Playout::Frame(payload) => {
                dec.decode(&payload, &mut pcm, frame_len);
            }
            Playout::Missing => {
                dec.conceal(&mut pcm, frame_len);
                self.stats.concealed_frames += 1;
            }
            Playout::Empty => return,
        }
        if l.recording.is_some() {
            l.rec_buf.extend(pcm.iter().copied());
        }
        if l.listen {
            sink.audio(id, &pcm);
        }
        let digit = l.inband.as_mut().and_then(|det| det.feed(&pcm));
        l.frame = Some(pcm);
        if let Some(d) = digit {
            sink.event(MediaEvent::Dtmf {
                leg: id,
                digit: d,
                inband: true,
            });
            self.barge_in(id, sink);
        }
    }

    /// A digit from `leg` interrupts a prompt it is hearing that allows barge-in.
    fn barge_in(&mut self, leg: LegId, sink: &mut impl MediaSink) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.player.front().is_some_and(|p| p.barge_in) {
            l.player.clear();
            sink.event(MediaEvent::PlayFinished {
                leg,
                interrupted: true,
            });
            self.refresh_modes();
        }
    }

    /// Produces the frame `id` sends this tick when it does not come by relay: a prompt,
    /// the other leg's transcoded audio, or the mix of the legs it hears.
    fn tick_leg(&mut self, now: Instant, id: LegId, sink: &mut impl MediaSink) {
        let Some(l) = self.legs.get(&id) else { return };
        let Some(p) = l.params.clone() else { return };
        let frame = (p.ptime_ms * PCM_RATE / 1000) as usize;
        // Inactivity.
        if p.recv && p.remote.is_some() && !l.inactive_reported {
            let since = l.last_rx.or(l.configured_at).unwrap_or(now);
            if now.saturating_duration_since(since) >= self.rtp_timeout {
                self.legs.get_mut(&id).expect("present").inactive_reported = true;
                sink.event(MediaEvent::Inactive { leg: id });
            }
        }
        // RTCP every few seconds.
        self.maybe_rtcp(now, id, sink);
        // Frames only go out every ptime.
        if !self.frame_due(now, p.ptime_ms) {
            return;
        }
        let l = self.legs.get_mut(&id).expect("present");
        // Digits go out as RFC 4733 events, one at a time, in place of audio.
        if !l.sending_events.is_empty() {
            if let (Some((pt, _)), Some(to)) = (p.telephone_event, l.latched.or(p.remote)) {
                self.flush_events(now, id, pt, to, sink);
            }
        } else if let Some(digit) = l.pending_digits.pop_front() {
            self.send_digit(now, id, digit, sink);
        }
        let l = self.legs.get_mut(&id).expect("present");
        let mut pcm = std::mem::take(&mut l.pcm);
        pcm.clear();
        let mut have = false;
        let mut finished = false;
        if let Some(pl) = l.player.front_mut() {
            pcm.resize(frame, 0);
            for s in pcm.iter_mut() {
                if pl.pos >= pl.prompt.len() {
                    if pl.looped && !pl.prompt.is_empty() {
                        pl.pos = 0;
                    } else {
                        break;
                    }
                }
                *s = pl.prompt[pl.pos];
                pl.pos += 1;
            }
            have = true;
            if !pl.looped && pl.pos >= pl.prompt.len() {
                l.player.pop_front();
                finished = true;
            }
        } else {
            match l.link {
                Link::Bridge(other) => {
                    if let Some(f) = self.legs.get(&other).and_then(|o| o.frame.as_ref()) {
                        pcm.extend_from_slice(f);
                        have = true;
                    }
                }
                Link::Mix(m) => {
                    // The sum of what this listener hears; silence keeps the stream going.
                    pcm.resize(frame, 0);
                    let mut mix = vec![0i32; frame];
                    for (_, speaker) in self
                        .mixes
                        .get(&m)
                        .into_iter()
                        .flatten()
                        .filter(|(listener, _)| *listener == id)
                    {
                        if let Some(f) = self.legs.get(speaker).and_then(|o| o.frame.as_ref()) {
                            for (acc, s) in mix.iter_mut().zip(f.iter()) {
                                *acc += *s as i32;
                            }
                        }
                    }
                    for (out, v) in pcm.iter_mut().zip(mix) {
                        *out = v.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
                    }
                    have = true;
                }
                _ => {}
            }
        }
        if finished {
            sink.event(MediaEvent::PlayFinished {
                leg: id,
                interrupted: false,
            });
        }
        let l = self.legs.get_mut(&id).expect("present");
        if have && p.send {
            if let (Some(to), Some(enc)) = (l.latched.or(p.remote), l.encoder.as_mut()) {
                pcm.resize(frame, 0);
                let n = enc.encode(&pcm, &mut self.buf[12..]);
                if n > 0 {
                    let units = p.ptime_ms * p.codec.units_per_ms();
                    // Our frames come from a virtual source that the rewriter splices in.
                    l.gen = (l.gen.0.wrapping_add(1), l.gen.1.wrapping_add(units));
                    let h = rtp::RtpHeader {
                        marker: false,
                        payload_type: p.codec.pt,
                        sequence: l.gen.0,
                        timestamp: l.gen.1,
                        ssrc: !l.out.ssrc(),
                        csrc_count: 0,
                        has_extension: false,
                        padding: false,
                    };
                    rtp::write_header(&h, &mut self.buf[..12]);
                    if let Rewritten::Forward { .. } = l.out.rewrite_at(
                        &mut self.buf[..12 + n],
                        &h,
                        p.codec.pt,
                        now,
                        p.codec.clock_rate,
                    ) {
                        l.sent.on_packet(n);
                        self.stats.packets_transcoded += 1;
                        sink.send(id, false, to, &self.buf[..12 + n]);
                    }
                }
            }
        }
        l.pcm = pcm;
        if finished {
            self.refresh_modes();
        }
    }

    fn send_digit(&mut self, now: Instant, id: LegId, digit: char, sink: &mut impl MediaSink) {
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(p) = l.params.clone() else { return };
        let (Some((pt, rate)), Some(to)) = (p.telephone_event, l.latched.or(p.remote)) else {
            return;
        };
        let units = p.ptime_ms * p.codec.units_per_ms();
        l.gen.1 = l.gen.1.wrapping_add(units);
        let ts = l
            .out
            .last_sent()
            .map(|(_, ts)| ts)
            .unwrap_or(l.gen.1)
            .wrapping_add(units);
        // Event timestamps run in the event clock; scale from the codec clock when they differ.
        let ts = (ts as u64 * rate as u64 / p.codec.clock_rate.max(1) as u64) as u32;
        let Ok(sender) = EventSender::new(rate, p.ptime_ms) else {
            return;
        };
        let Ok(packets) = sender.packets(digit, ts, 100) else {
            return;
        };
        for pk in packets {
            l.sending_events
                .push_back((now + Duration::from_millis(pk.send_offset_ms as u64), pk));
        }
        self.flush_events(now, id, pt, to, sink);
    }

    /// Sends the RFC 4733 packets that are due.
    fn flush_events(
        &mut self,
        now: Instant,
        id: LegId,
        pt: u8,
        to: SocketAddr,
        sink: &mut impl MediaSink,
    ) {
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        while l.sending_events.front().is_some_and(|(at, _)| *at <= now) {
            let (_, pk) = l.sending_events.pop_front().expect("checked");
            // Sent as our own stream: our SSRC, the next sequence number, the event's timestamp.
            let seq = l
                .out
                .last_sent()
                .map(|(s, _)| s.wrapping_add(1))
                .unwrap_or(0);
            let n = write_packet(
                &mut self.buf,
                pt,
                pk.marker,
                seq,
                pk.timestamp,
                l.out.ssrc(),
                &pk.payload,
            );
            let h = rtp::RtpHeader {
                marker: pk.marker,
                payload_type: pt,
                sequence: seq,
                timestamp: pk.timestamp,
                ssrc: l.out.ssrc(),
                csrc_count: 0,
                has_extension: false,
                padding: false,
            };
            let _ = h;
            sink.send(id, false, to, &self.buf[..n]);
        }
    }

    fn maybe_rtcp(&mut self, now: Instant, id: LegId, sink: &mut impl MediaSink) {
        let Some(l) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(to) = l.params.as_ref().and_then(|p| p.remote_rtcp) else {
            return;
        };
        if l.last_rtcp
            .is_some_and(|t| now.saturating_duration_since(t) < RTCP_INTERVAL)
        {
            return;
        }
        if l.last_rtcp.is_none() {
            l.last_rtcp = Some(now);
            return;
        }
        l.last_rtcp = Some(now);
        let reports: Vec<rtcp::ReportBlock> = l
            .last_rx_ssrc
            .map(|ssrc| l.stats.report_block(ssrc, 0, 0))
            .into_iter()
            .collect();
        let elapsed = now.saturating_duration_since(self.epoch);
        // NTP-format time since the engine started (only differences matter to the peer).
        let ntp =
            (elapsed.as_secs() << 32) | (((elapsed.subsec_nanos() as u64) << 32) / 1_000_000_000);
        let ssrc = l.out.ssrc();
        let rtp_ts = l.out.last_sent().map(|(_, ts)| ts).unwrap_or(0);
        let mut b = rtcp::RtcpBuilder::new(&mut self.buf);
        let ok = if l.sent.sent_since_report() {
            let info = l.sent.sender_info(ntp, rtp_ts);
            b.sender_report(ssrc, &info, &reports)
        } else {
            b.receiver_report(ssrc, &reports)
        };
        if ok.and_then(|_| b.sdes_cname(ssrc, b"switchboard")).is_ok() {
            let n = b.finish();
            sink.send(id, true, to, &self.buf[..n]);
        }
    }

    /// Writes one 20 ms stereo frame of a recording (left = first leg, right = second).
    fn record_frame(&mut self, rec: RecordingId, sink: &mut impl MediaSink) {
        let Some(r) = self.recordings.get(&rec) else {
            return;
        };
        let frame = (20 * PCM_RATE / 1000) as usize;
        let mut stereo = vec![0i16; frame * 2];
        for (ch, leg) in r.legs.iter().enumerate() {
            if let Some(l) = self.legs.get_mut(leg) {
                for i in 0..frame {
                    stereo[i * 2 + ch] = l.rec_buf.pop_front().unwrap_or(0);
                }
                // Bound the backlog (a burst after a stall) to 200 ms.
                while l.rec_buf.len() > frame * 10 {
                    l.rec_buf.pop_front();
                }
            }
        }
        sink.record(rec, &stereo);
    }

    fn flush_recording(&mut self, rec: RecordingId, sink: &mut impl MediaSink) {
        let pending = self
            .recordings
            .get(&rec)
            .map(|r| r.legs)
            .map(|legs| {
                legs.iter()
                    .filter_map(|l| self.legs.get(l))
                    .map(|l| l.rec_buf.len())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        for _ in 0..pending.div_ceil(160) {
            self.record_frame(rec, sink);
        }
    }
}

fn write_packet(
    buf: &mut [u8],
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> usize {
    let h = rtp::RtpHeader {
        marker,
        payload_type: pt,
        sequence: seq,
        timestamp: ts,
        ssrc,
        csrc_count: 0,
        has_extension: false,
        padding: false,
    };
    let n = rtp::write_header(&h, buf);
    let end = (n + payload.len()).min(buf.len());
    buf[n..end].copy_from_slice(&payload[..end - n]);
    end
}

/// Private, loopback or unspecified: an address a NATed peer puts in its SDP.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

/// Decodes G.711 without a decoder object (used by tests and tools).
pub fn decode_g711(codec: Codec, payload: &[u8], out: &mut Vec<i16>) {
    out.resize(payload.len(), 0);
    match codec {
        Codec::Pcma => g711::alaw_to_pcm(payload, out),
        _ => g711::ulaw_to_pcm(payload, out),
    };
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
