//! DTMF: RFC 4733 telephone-events (parse, receive, send) and in-band detection.
//!
//! # Contract
//!
//! * [`TelephoneEvent`] is the 4-byte RFC 4733 §2.3 payload
//!   (`event | E R volume(6) | duration(16, network order)`). Parsing needs at
//!   least 4 bytes; longer payloads (several events) yield the first event.
//!   Event codes 0–9, 10 = `*`, 11 = `#`, 12–15 = `A`–`D` map to `char`s.
//! * [`EventReceiver`] turns the packets of the telephone-event payload type
//!   into digits, each reported exactly once:
//!   - an event is identified by its RTP timestamp; a packet with a newer
//!     timestamp starts a new event (a marker packet reusing the timestamp of
//!     an already *ended* event, with a newer sequence number, also starts one);
//!   - the digit is reported at the first end (E) packet; redundant or late
//!     end packets, retransmitted starts and reordered updates are ignored;
//!   - if every end packet is lost, the digit is reported when the next event
//!     starts, or when the caller's timeout fires and it calls
//!     [`EventReceiver::flush`];
//!   - packets older than an already finished event are stale and ignored;
//!   - long events split into 16-bit-duration segments (RFC 4733 §2.5.1.3:
//!     new timestamp = previous + 0xFFFF, no marker) are merged into one digit;
//!   - events other than the 16 DTMF codes are ignored.
//!
//!   `receive` returns at most one digit. In the single case where two become
//!   reportable at once (the previous event lost all its end packets *and*
//!   the first packet seen of the next event is already an end packet) the
//!   second one is returned by the next `receive`, `flush` or `poll` call.
//! * [`EventSender`] produces the packet sequence of RFC 4733 §2.5.1 for one
//!   digit: a first packet with the marker bit, one update per ptime with the
//!   same timestamp and growing duration, then the final duration three times
//!   with the E bit. Each packet carries its send offset from the start.
//! * [`InbandDetector`] finds DTMF digits in linear PCM at 8–48 kHz (rate a
//!   multiple of 50 Hz). Samples are analysed in 20 ms blocks independent of
//!   the caller's frame size, with a Goertzel filter at each of the 8 DTMF
//!   frequencies (rectangular window). A block is a digit when: the strongest
//!   row and column tones are each ≥ −38 dBFS; each is ≥ 8 dB above every
//!   other tone of its group; the twist (column − row) is within −8…+4 dB; and
//!   the two tones carry ≥ 65 % of the block energy (rejects speech, music,
//!   noise and off-frequency tones beyond about ±3 %). A digit is emitted once,
//!   at its start, after two consecutive matching blocks (40 ms); the same
//!   digit is emitted again only after ≥ 40 ms (two blocks) without detection.
//!   Digits of ≥ 50 ms are detected at any alignment; 40 ms digits only when
//!   the 20 ms blocks happen to fit them.
//!   Levels follow the [`crate::media::tone`] convention (dBFS of a sine).
//!
//! Per-packet and per-frame functions never allocate ([`EventSender`] returns
//! a `Vec` per digit). Nothing here reads a clock or does I/O.

use std::f64::consts::PI;

use thiserror::Error;

use crate::media::tone::FULL_SCALE;

/// Row (low-group) DTMF frequencies in Hz.
pub const ROW_FREQUENCIES: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high-group) DTMF frequencies in Hz.
pub const COLUMN_FREQUENCIES: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

const EVENT_CHARS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    /// A telephone-event payload must be at least 4 bytes.
    #[error("telephone-event payload too short: {0} bytes")]
    PayloadTooShort(usize),
    /// The character is not one of `0-9 * # A-D`.
    #[error("not a DTMF digit: {0:?}")]
    InvalidDigit(char),
    /// Clock rate, ptime or duration out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    /// Sample rate not supported by the in-band detector.
    #[error("unsupported sample rate {0} Hz for DTMF detection")]
    UnsupportedRate(u32),
}

/// RFC 4733 event code → DTMF character (`None` for non-DTMF events).
pub fn event_to_char(event: u8) -> Option<char> {
    EVENT_CHARS.get(usize::from(event)).copied()
}

/// DTMF character (`0-9 * # A-D`, lower-case accepted) → RFC 4733 event code.
pub fn char_to_event(digit: char) -> Option<u8> {
    let upper = digit.to_ascii_uppercase();
    EVENT_CHARS
        .iter()
        .position(|&c| c == upper)
        .map(|i| i as u8)
}

/// `(row_hz, column_hz)` of a DTMF digit.
pub fn digit_frequencies(digit: char) -> Option<(f32, f32)> {
    let upper = digit.to_ascii_uppercase();
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, &key) in row.iter().enumerate() {
            if key == upper {
                return Some((ROW_FREQUENCIES[r], COLUMN_FREQUENCIES[c]));
            }
        }
    }
    None
}

/// One RFC 4733 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are DTMF).
    pub event: u8,
    /// End-of-event (E) bit.
    pub end: bool,
    /// Power level as −dBm0, 0–63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Size of one event on the wire.
    pub const LEN: usize = 4;

    /// Parse the first event of a payload (extra bytes are ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        if payload.len() < Self::LEN {
            return Err(DtmfError::PayloadTooShort(payload.len()));
        }
        Ok(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// Serialise; the reserved bit is zero and `volume` is capped at 63.
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | self.volume.min(63),
            d[0],
            d[1],
        ]
    }

    /// The DTMF character of this event, if it is one.
    pub fn digit(&self) -> Option<char> {
        event_to_char(self.event)
    }
}

/// A received digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitEvent {
    /// `0-9 * # A-D`.
    pub digit: char,
    /// Duration in milliseconds (from the event's duration field and clock rate).
    pub duration_ms: u32,
    /// RTP timestamp of the event's start.
    pub started_at_ts: u32,
}

fn ts_newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn seq_newer(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

#[derive(Debug, Clone, Copy)]
struct ActiveEvent {
    start_ts: u32,
    segment_ts: u32,
    event: u8,
    /// Duration of earlier segments of a long event.
    base: u64,
    max_duration: u16,
    /// An end packet was seen (and the digit reported).
    ended: bool,
    first_seq: u16,
    last_seq: u16,
}

const QUEUE: usize = 4;

/// RFC 4733 receive state machine (see the module docs).
#[derive(Debug, Clone)]
pub struct EventReceiver {
    clock_rate: u32,
    current: Option<ActiveEvent>,
    /// Timestamps at or before this belong to finished events.
    finished_ts: Option<u32>,
    queue: [Option<DigitEvent>; QUEUE],
    queue_head: usize,
    queue_len: usize,
}

impl EventReceiver {
    /// `clock_rate` of the telephone-event payload type (usually 8000).
    /// A zero rate is treated as 8000.
    pub fn new(clock_rate: u32) -> Self {
        EventReceiver {
            clock_rate: if clock_rate == 0 { 8000 } else { clock_rate },
            current: None,
            finished_ts: None,
            queue: [None; QUEUE],
            queue_head: 0,
            queue_len: 0,
        }
    }

    fn push(&mut self, ev: DigitEvent) {
        if self.queue_len == QUEUE {
            // Cannot happen (at most two pending), but never lose the newest.
            self.queue_head = (self.queue_head + 1) % QUEUE;
            self.queue_len -= 1;
        }
        self.queue[(self.queue_head + self.queue_len) % QUEUE] = Some(ev);
        self.queue_len += 1;
    }

    /// Next pending digit, if any (see the module docs on double reports).
    pub fn poll(&mut self) -> Option<DigitEvent> {
        if self.queue_len == 0 {
            return None;
        }
        let ev = self.queue[self.queue_head].take();
        self.queue_head = (self.queue_head + 1) % QUEUE;
        self.queue_len -= 1;
        ev
    }

    fn digit_event(&self, ev: &ActiveEvent, duration: u16) -> DigitEvent {
        let samples = ev.base + u64::from(duration);
        let rate = u64::from(self.clock_rate);
        DigitEvent {
            digit: event_to_char(ev.event).unwrap_or('?'),
            duration_ms: ((samples * 1000 + rate / 2) / rate) as u32,
            started_at_ts: ev.start_ts,
        }
    }

    /// Report the current event if not yet reported, and forget it.
    fn finish_current(&mut self, finished_ts: u32) {
        if let Some(cur) = self.current.take() {
            if !cur.ended {
                let ev = self.digit_event(&cur, cur.max_duration);
                self.push(ev);
            }
            self.finished_ts = Some(finished_ts);
        }
    }

    fn start(&mut self, ts: u32, seq: u16, te: TelephoneEvent) {
        let cur = ActiveEvent {
            start_ts: ts,
            segment_ts: ts,
            event: te.event,
            base: 0,
            max_duration: te.duration,
            ended: te.end,
            first_seq: seq,
            last_seq: seq,
        };
        if te.end {
            let ev = self.digit_event(&cur, te.duration);
            self.push(ev);
        }
        self.current = Some(cur);
    }

    fn handle(&mut self, ts: u32, seq: u16, marker: bool, payload: &[u8]) {
        let Ok(te) = TelephoneEvent::parse(payload) else {
            return;
        };
        if event_to_char(te.event).is_none() {
            return;
        }
        if let Some(fin) = self.finished_ts {
            if !ts_newer(ts, fin) {
                return; // belongs to an event that is already finished
            }
        }
        let Some(mut cur) = self.current else {
            self.start(ts, seq, te);
            return;
        };
        if ts == cur.segment_ts {
            if seq_newer(cur.first_seq, seq) {
                return; // older than anything seen of this event: nothing new
            }
            if marker && cur.ended && !te.end && seq_newer(seq, cur.last_seq) {
                // Sender reused the timestamp for a new event.
                self.finish_current(ts.wrapping_sub(1));
                self.start(ts, seq, te);
                return;
            }
            if seq_newer(seq, cur.last_seq) {
                cur.last_seq = seq;
            }
            if !cur.ended {
                cur.max_duration = cur.max_duration.max(te.duration);
                if te.end {
                    cur.ended = true;
                    let ev = self.digit_event(&cur, cur.max_duration);
                    self.push(ev);
                }
            }
            self.current = Some(cur);
        } else if ts_newer(ts, cur.segment_ts) {
            let diff = ts.wrapping_sub(cur.segment_ts);
            let slack = self.clock_rate / 5;
            let continuation = !marker
                && !cur.ended
                && te.event == cur.event
                && diff.abs_diff(0xFFFF) <= slack
                && u32::from(cur.max_duration) + slack >= 0xFFFF;
            if continuation {
                self.finished_ts = Some(cur.segment_ts);
                cur.base += u64::from(diff);
                cur.segment_ts = ts;
                cur.max_duration = te.duration;
                cur.first_seq = seq;
                cur.last_seq = seq;
                if te.end {
                    cur.ended = true;
                    let ev = self.digit_event(&cur, te.duration);
                    self.push(ev);
                }
                self.current = Some(cur);
            } else {
                self.finish_current(cur.segment_ts);
                self.start(ts, seq, te);
            }
        }
        // else: older than the current event but newer than the last finished
        // one — an event we never saw the start of, now superseded: ignore.
    }

    /// Feed one packet of the telephone-event payload type.
    pub fn receive(
        &mut self,
        rtp_timestamp: u32,
        seq: u16,
        marker: bool,
        payload: &[u8],
    ) -> Option<DigitEvent> {
        self.handle(rtp_timestamp, seq, marker, payload);
        self.poll()
    }

    /// The caller's timeout expired at RTP time `current_ts` without further
    /// packets: an event still lacking its end packet is reported now (if
    /// `current_ts` is not earlier than the event's last known end) and any
    /// late packets of it will be ignored.
    pub fn flush(&mut self, current_ts: u32) -> Option<DigitEvent> {
        if let Some(cur) = self.current {
            let known_end = cur.segment_ts.wrapping_add(u32::from(cur.max_duration));
            if !ts_newer(known_end, current_ts) {
                self.finish_current(cur.segment_ts);
            }
        }
        self.poll()
    }
}

/// One packet produced by [`EventSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// RFC 4733 payload.
    pub payload: [u8; 4],
    /// RTP marker bit.
    pub marker: bool,
    /// RTP timestamp.
    pub timestamp: u32,
    /// When to send it, in ms after the first packet.
    pub send_offset_ms: u32,
}

/// Generates RFC 4733 packet sequences for single digits.
#[derive(Debug, Clone, Copy)]
pub struct EventSender {
    clock_rate: u32,
    ptime_ms: u32,
    volume: u8,
}

/// Longest digit [`EventSender::packets`] accepts (10 minutes).
pub const MAX_SEND_DURATION_MS: u32 = 600_000;

/// Maximum duration of one event segment (RFC 4733 §2.5.1.3).
const SEGMENT: u64 = 0xFFFF;

impl EventSender {
    /// `clock_rate` of the payload type and packet interval in ms. The
    /// volume defaults to 10 (−10 dBm0).
    pub fn new(clock_rate: u32, ptime_ms: u32) -> Result<Self, DtmfError> {
        if clock_rate == 0 {
            return Err(DtmfError::InvalidParameter("clock rate must be non-zero"));
        }
        let ptime_samples = u64::from(clock_rate) * u64::from(ptime_ms) / 1000;
        if ptime_samples == 0 || ptime_samples > SEGMENT {
            return Err(DtmfError::InvalidParameter("ptime out of range"));
        }
        Ok(EventSender {
            clock_rate,
            ptime_ms,
            volume: 10,
        })
    }

    /// Set the volume field (−dBm0, capped at 63).
    pub fn with_volume(mut self, volume: u8) -> Self {
        self.volume = volume.min(63);
        self
    }

    /// All packets for `digit` starting at RTP timestamp `start_ts` and
    /// lasting `duration_ms`. Events longer than 0xFFFF timestamp units are
    /// split into segments (new timestamp = previous + 0xFFFF, no marker).
    pub fn packets(
        &self,
        digit: char,
        start_ts: u32,
        duration_ms: u32,
    ) -> Result<Vec<EventPacket>, DtmfError> {
        let event = char_to_event(digit).ok_or(DtmfError::InvalidDigit(digit))?;
        let total = u64::from(duration_ms) * u64::from(self.clock_rate) / 1000;
        if total == 0 {
            return Err(DtmfError::InvalidParameter("duration too short"));
        }
        if duration_ms > MAX_SEND_DURATION_MS {
            return Err(DtmfError::InvalidParameter("duration too long"));
        }
        let ptime = u64::from(self.clock_rate) * u64::from(self.ptime_ms) / 1000;
        let updates = total.div_ceil(ptime).saturating_sub(1).max(1);
        let packet = |elapsed: u64, end: bool, index: u64| {
            let segment = (elapsed - 1) / SEGMENT;
            let te = TelephoneEvent {
                event,
                end,
                volume: self.volume,
                duration: (elapsed - segment * SEGMENT) as u16,
            };
            EventPacket {
                payload: te.to_bytes(),
                marker: index == 0,
                timestamp: start_ts.wrapping_add((segment * SEGMENT) as u32),
                send_offset_ms: (index * u64::from(self.ptime_ms)) as u32,
            }
        };
        let mut out = Vec::with_capacity(updates as usize + 3);
        for k in 0..updates {
            out.push(packet(((k + 1) * ptime).min(total), false, k));
        }
        for r in 0..3 {
            out.push(packet(total, true, updates + r));
        }
        Ok(out)
    }
}

/// Minimum per-tone power (−38 dBFS).
const MIN_TONE_POWER: f64 = 1.584_893e-4;
/// Required margin of the strongest tone over the others of its group (8 dB).
const GROUP_MARGIN: f64 = 6.309_573;
/// Twist limits (column − row) in dB.
const MAX_REVERSE_TWIST_DB: f64 = 4.0;
const MAX_NORMAL_TWIST_DB: f64 = 8.0;
/// Fraction of the block energy the two tones must carry.
const MIN_TONE_FRACTION: f64 = 0.65;
/// Blocks (20 ms each) of stable detection before reporting.
const STABLE_BLOCKS: u32 = 2;
/// Blocks without detection before the same digit may count again.
const GAP_BLOCKS: u32 = 2;
const DIGIT_QUEUE: usize = 8;

/// In-band DTMF detector (see the module docs).
#[derive(Debug, Clone)]
pub struct InbandDetector {
    rate: u32,
    coeffs: [f64; 8],
    block: Vec<i16>,
    block_len: usize,
    candidate: Option<char>,
    run: u32,
    held: Option<char>,
    gap: u32,
    queue: [char; DIGIT_QUEUE],
    queue_head: usize,
    queue_len: usize,
}

impl InbandDetector {
    /// Detector for PCM at `sample_rate` (8000–48000 Hz, multiple of 50).
    pub fn new(sample_rate: u32) -> Result<Self, DtmfError> {
        if !(8000..=48000).contains(&sample_rate) || !sample_rate.is_multiple_of(50) {
            return Err(DtmfError::UnsupportedRate(sample_rate));
        }
        let mut coeffs = [0.0; 8];
        for (c, &f) in coeffs
            .iter_mut()
            .zip(ROW_FREQUENCIES.iter().chain(&COLUMN_FREQUENCIES))
        {
            *c = 2.0 * (2.0 * PI * f64::from(f) / f64::from(sample_rate)).cos();
        }
        let block_len = (sample_rate / 50) as usize;
        Ok(InbandDetector {
            rate: sample_rate,
            coeffs,
            block: Vec::with_capacity(block_len),
            block_len,
            candidate: None,
            run: 0,
            held: None,
            gap: GAP_BLOCKS,
            queue: ['\0'; DIGIT_QUEUE],
            queue_head: 0,
            queue_len: 0,
        })
    }

    /// Sample rate this detector was built for.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Return to the initial state (drops buffered samples and pending digits).
    pub fn reset(&mut self) {
        self.block.clear();
        self.candidate = None;
        self.run = 0;
        self.held = None;
        self.gap = GAP_BLOCKS;
        self.queue_len = 0;
    }

    /// Feed the next frame (any length; 20 ms is typical). Returns a digit at
    /// its start. Frames longer than 40 ms may complete several digits; the
    /// extra ones are kept (up to 8, further ones dropped) for [`Self::poll`]
    /// and the following `feed` calls.
    pub fn feed(&mut self, frame: &[i16]) -> Option<char> {
        let mut rest = frame;
        while !rest.is_empty() {
            let take = (self.block_len - self.block.len()).min(rest.len());
            self.block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.block.len() == self.block_len {
                let detected = self.classify();
                self.block.clear();
                if let Some(d) = self.step(detected) {
                    if self.queue_len < DIGIT_QUEUE {
                        self.queue[(self.queue_head + self.queue_len) % DIGIT_QUEUE] = d;
                        self.queue_len += 1;
                    }
                }
            }
        }
        self.poll()
    }

    /// Next digit already detected but not yet returned (only frames longer
    /// than 40 ms can leave some; drain with `while let Some(d) = det.poll()`).
    pub fn poll(&mut self) -> Option<char> {
        if self.queue_len == 0 {
            return None;
        }
        let d = self.queue[self.queue_head];
        self.queue_head = (self.queue_head + 1) % DIGIT_QUEUE;
        self.queue_len -= 1;
        Some(d)
    }

    fn step(&mut self, detected: Option<char>) -> Option<char> {
        match detected {
            Some(d) => {
                if self.candidate == Some(d) {
                    self.run += 1;
                } else {
                    self.candidate = Some(d);
                    self.run = 1;
                }
                self.gap = 0;
                if self.run >= STABLE_BLOCKS && self.held != Some(d) {
                    self.held = Some(d);
                    return Some(d);
                }
                None
            }
            None => {
                self.candidate = None;
                self.run = 0;
                self.gap = self.gap.saturating_add(1);
                if self.gap >= GAP_BLOCKS {
                    self.held = None;
                }
                None
            }
        }
    }

    /// Classify the current block as a digit or nothing.
    fn classify(&self) -> Option<char> {
        let mut s1 = [0f64; 8];
        let mut s2 = [0f64; 8];
        let mut energy = 0f64;
        for &x in &self.block {
            let x = f64::from(x);
            energy += x * x;
            for k in 0..8 {
                let s0 = x + self.coeffs[k] * s1[k] - s2[k];
                s2[k] = s1[k];
                s1[k] = s0;
            }
        }
        let n = self.block.len() as f64;
        let norm = 4.0 / (n * n * FULL_SCALE * FULL_SCALE);
        let mut power = [0f64; 8];
        for k in 0..8 {
            power[k] =
                (s1[k] * s1[k] + s2[k] * s2[k] - self.coeffs[k] * s1[k] * s2[k]).max(0.0) * norm;
        }
        let total = 2.0 * energy / (n * FULL_SCALE * FULL_SCALE);
        if total <= 0.0 {
            return None;
        }
        let strongest = |group: &[f64]| {
            let mut best = 0;
            for i in 1..group.len() {
                if group[i] > group[best] {
                    best = i;
                }
            }
            best
        };
        let (rows, cols) = power.split_at(4);
        let row = strongest(rows);
        let col = strongest(cols);
        let (pr, pc) = (rows[row], cols[col]);
        if pr < MIN_TONE_POWER || pc < MIN_TONE_POWER {
            return None;
        }
        let separated = |group: &[f64], best: usize| {
            group
                .iter()
                .enumerate()
                .all(|(i, &p)| i == best || group[best] >= p * GROUP_MARGIN)
        };
        if !separated(rows, row) || !separated(cols, col) {
            return None;
        }
        let twist_db = 10.0 * (pc / pr).log10();
        if !(-MAX_NORMAL_TWIST_DB..=MAX_REVERSE_TWIST_DB).contains(&twist_db) {
            return None;
        }
        if pr + pc < MIN_TONE_FRACTION * total {
            return None;
        }
        Some(KEYPAD[row][col])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::{Cadence, ToneGenerator};
    use proptest::prelude::*;

    const ALL: &str = "123A456B789C*0#D";

    // ---------- payload ----------

    #[test]
    fn payload_round_trip_and_mapping() {
        for code in 0u8..16 {
            let c = event_to_char(code).unwrap();
            assert_eq!(char_to_event(c), Some(code));
            assert_eq!(char_to_event(c.to_ascii_lowercase()), Some(code));
            for (end, volume, duration) in [(false, 10u8, 160u16), (true, 63, 0xFFFF), (true, 0, 0)]
            {
                let te = TelephoneEvent {
                    event: code,
                    end,
                    volume,
                    duration,
                };
                let bytes = te.to_bytes();
                assert_eq!(TelephoneEvent::parse(&bytes).unwrap(), te);
                assert_eq!(te.digit(), Some(c));
            }
        }
        assert_eq!(event_to_char(16), None);
        assert_eq!(char_to_event('x'), None);
        assert_eq!(event_to_char(10), Some('*'));
        assert_eq!(event_to_char(11), Some('#'));
        assert_eq!(event_to_char(12), Some('A'));
        assert_eq!(event_to_char(15), Some('D'));
        // Wire layout: event, E|R|volume, duration big-endian; R ignored on parse.
        let te = TelephoneEvent::parse(&[5, 0x80 | 0x40 | 0x0A, 0x03, 0x20]).unwrap();
        assert_eq!(
            te,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(te.to_bytes(), [5, 0x8A, 0x03, 0x20]);
        // Volume is capped on write.
        assert_eq!(
            TelephoneEvent {
                event: 1,
                end: false,
                volume: 200,
                duration: 1
            }
            .to_bytes()[1],
            63
        );
    }

    #[test]
    fn payload_errors_and_multiple_events() {
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(DtmfError::PayloadTooShort(3))
        );
        assert_eq!(
            TelephoneEvent::parse(&[]),
            Err(DtmfError::PayloadTooShort(0))
        );
        let two = [1u8, 0x0A, 0x01, 0x40, 2, 0x8A, 0x02, 0x80];
        assert_eq!(
            TelephoneEvent::parse(&two).unwrap(),
            TelephoneEvent {
                event: 1,
                end: false,
                volume: 10,
                duration: 320
            }
        );
        assert_eq!(digit_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(digit_frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(digit_frequencies('E'), None);
    }

    // ---------- receiver ----------

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    struct Feed {
        rx: EventReceiver,
        seq: u16,
        got: Vec<DigitEvent>,
    }

    impl Feed {
        fn new() -> Self {
            Feed {
                rx: EventReceiver::new(8000),
                seq: 1000,
                got: Vec::new(),
            }
        }
        fn send(&mut self, ts: u32, marker: bool, payload: [u8; 4]) {
            self.seq = self.seq.wrapping_add(1);
            if let Some(ev) = self.rx.receive(ts, self.seq, marker, &payload) {
                self.got.push(ev);
            }
        }
        fn digits(&self) -> String {
            self.got.iter().map(|e| e.digit).collect()
        }
    }

    #[test]
    fn triple_end_reports_once_at_first_end() {
        let mut f = Feed::new();
        f.send(1000, true, pkt(5, false, 160));
        f.send(1000, false, pkt(5, false, 320));
        f.send(1000, false, pkt(5, false, 480));
        assert!(f.got.is_empty());
        f.send(1000, false, pkt(5, true, 640));
        assert_eq!(
            f.got,
            vec![DigitEvent {
                digit: '5',
                duration_ms: 80,
                started_at_ts: 1000
            }]
        );
        f.send(1000, false, pkt(5, true, 640));
        f.send(1000, false, pkt(5, true, 640));
        assert_eq!(f.got.len(), 1);
        // Retransmitted start after the end (same seq as before: a duplicate) is ignored.
        assert_eq!(f.rx.receive(1000, 1001, true, &pkt(5, false, 160)), None);
        assert_eq!(f.rx.flush(100_000), None);
    }

    #[test]
    fn lost_end_packets_reported_at_next_event_or_flush() {
        let mut f = Feed::new();
        f.send(1000, true, pkt(1, false, 160));
        f.send(1000, false, pkt(1, false, 320));
        // All end packets lost; next event starts.
        f.send(3000, true, pkt(2, false, 160));
        assert_eq!(f.digits(), "1");
        assert_eq!(f.got[0].duration_ms, 40);
        assert_eq!(f.got[0].started_at_ts, 1000);
        // Late end packets of event 1 are ignored.
        f.send(1000, false, pkt(1, true, 800));
        assert_eq!(f.got.len(), 1);
        // Event 2 also loses its ends: flush too early does nothing…
        f.send(3000, false, pkt(2, false, 320));
        assert_eq!(f.rx.flush(3100), None);
        // …flush after the timeout reports it once.
        assert_eq!(f.rx.flush(3000 + 320 + 800).map(|e| e.digit), Some('2'));
        assert_eq!(f.rx.flush(3000 + 5000), None);
        f.send(3000, false, pkt(2, true, 400));
        f.send(3000, false, pkt(2, false, 480));
        assert_eq!(f.got.len(), 1);
    }

    #[test]
    fn reordered_packets_within_and_across_events() {
        let mut f = Feed::new();
        // Update before start, end before last update.
        f.rx.receive(500, 11, false, &pkt(7, false, 320));
        f.rx.receive(500, 10, true, &pkt(7, false, 160));
        assert_eq!(
            f.rx.receive(500, 13, false, &pkt(7, true, 640))
                .map(|e| (e.digit, e.duration_ms)),
            Some(('7', 80))
        );
        assert_eq!(f.rx.receive(500, 12, false, &pkt(7, false, 480)), None);
        assert_eq!(f.rx.receive(500, 14, false, &pkt(7, true, 640)), None);
        // Next event's start overtakes event 8's end packets.
        f.rx.receive(2000, 20, true, &pkt(8, false, 160));
        let r = f.rx.receive(4000, 24, true, &pkt(9, false, 160));
        assert_eq!(r.map(|e| e.digit), Some('8'));
        assert_eq!(f.rx.receive(2000, 21, false, &pkt(8, true, 320)), None);
        assert_eq!(f.rx.receive(2000, 22, false, &pkt(8, true, 320)), None);
        assert_eq!(
            f.rx.receive(4000, 25, false, &pkt(9, true, 320))
                .map(|e| e.digit),
            Some('9')
        );
        assert_eq!(f.rx.flush(100_000), None);
    }

    #[test]
    fn consecutive_same_digits_are_two_events() {
        let mut f = Feed::new();
        for ts in [8000u32, 9600] {
            f.send(ts, true, pkt(3, false, 160));
            f.send(ts, false, pkt(3, false, 320));
            for _ in 0..3 {
                f.send(ts, false, pkt(3, true, 400));
            }
        }
        assert_eq!(f.digits(), "33");
        assert_eq!(f.got[1].started_at_ts, 9600);
        // Same again with all end packets lost.
        let mut f = Feed::new();
        f.send(8000, true, pkt(3, false, 160));
        f.send(9600, true, pkt(3, false, 160));
        assert_eq!(f.rx.flush(20_000).map(|e| e.digit), Some('3'));
        assert_eq!(f.digits(), "3");
    }

    #[test]
    fn marker_with_reused_timestamp_starts_new_event() {
        let mut f = Feed::new();
        f.send(100, true, pkt(4, false, 160));
        f.send(100, false, pkt(4, true, 320));
        f.send(100, false, pkt(4, true, 320));
        // Broken sender: new event, same timestamp, marker set.
        f.send(100, true, pkt(6, false, 160));
        f.send(100, false, pkt(6, true, 480));
        f.send(100, false, pkt(6, true, 480));
        assert_eq!(f.digits(), "46");
    }

    #[test]
    fn end_only_events_and_double_report() {
        let mut f = Feed::new();
        // Only an end packet arrives: reported immediately.
        f.send(100, false, pkt(0, true, 800));
        assert_eq!(f.digits(), "0");
        // Event without ends, then an event seen only by its end packet:
        // two reports become due at once; the second comes with the next call.
        f.send(2000, true, pkt(1, false, 160));
        f.send(4000, false, pkt(2, true, 800));
        assert_eq!(f.digits(), "01");
        assert_eq!(f.rx.poll().map(|e| e.digit), Some('2'));
        assert_eq!(f.rx.poll(), None);
        // Non-DTMF events and garbage are ignored.
        assert_eq!(f.rx.receive(9000, 1, true, &pkt(16, true, 800)), None);
        assert_eq!(f.rx.receive(9000, 2, true, &[1, 2]), None);
    }

    #[test]
    fn timestamp_and_sequence_wraparound() {
        let sender = EventSender::new(8000, 20).unwrap();
        let mut rx = EventReceiver::new(8000);
        let mut seq = u16::MAX - 3;
        let mut got = Vec::new();
        let mut ts = u32::MAX - 1000;
        for d in "159#".chars() {
            for p in sender.packets(d, ts, 100).unwrap() {
                seq = seq.wrapping_add(1);
                got.extend(rx.receive(p.timestamp, seq, p.marker, &p.payload));
            }
            ts = ts.wrapping_add(1600);
        }
        assert_eq!(got.iter().map(|e| e.digit).collect::<String>(), "159#");
        assert!(got.iter().all(|e| e.duration_ms == 100));
    }

    // ---------- sender ----------

    #[test]
    fn sender_packet_sequence() {
        let s = EventSender::new(8000, 20).unwrap();
        let p = s.packets('#', 1234, 100).unwrap();
        assert_eq!(p.len(), 4 + 3);
        assert!(p[0].marker && p[1..].iter().all(|x| !x.marker));
        assert!(p.iter().all(|x| x.timestamp == 1234));
        let parsed: Vec<TelephoneEvent> = p
            .iter()
            .map(|x| TelephoneEvent::parse(&x.payload).unwrap())
            .collect();
        let durations: Vec<u16> = parsed.iter().map(|t| t.duration).collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = parsed.iter().map(|t| t.end).collect();
        assert_eq!(ends, vec![false, false, false, false, true, true, true]);
        assert!(parsed.iter().all(|t| t.event == 11 && t.volume == 10));
        let offsets: Vec<u32> = p.iter().map(|x| x.send_offset_ms).collect();
        assert_eq!(offsets, vec![0, 20, 40, 60, 80, 100, 120]);
        // Short digit: one marker packet then the ends.
        let p = s.with_volume(20).packets('1', 0, 10).unwrap();
        assert_eq!(p.len(), 4);
        assert!(p[0].marker);
        assert_eq!(TelephoneEvent::parse(&p[0].payload).unwrap().volume, 20);
        // Errors.
        assert!(s.packets('x', 0, 100).is_err());
        assert!(s.packets('1', 0, 0).is_err());
        assert!(EventSender::new(8000, 0).is_err());
        assert!(EventSender::new(0, 20).is_err());
    }

    #[test]
    fn sender_receiver_round_trip_with_single_losses() {
        for clock in [8000u32, 48000] {
            let s = EventSender::new(clock, 20).unwrap();
            for (i, d) in ALL.chars().enumerate() {
                let ms = 40 + 30 * i as u32;
                let packets = s.packets(d, 77_000, ms).unwrap();
                // Lose each packet in turn (and none).
                for lost in 0..=packets.len() {
                    let mut rx = EventReceiver::new(clock);
                    let mut got = Vec::new();
                    for (k, p) in packets.iter().enumerate() {
                        if k != lost {
                            got.extend(rx.receive(
                                p.timestamp,
                                500 + k as u16,
                                p.marker,
                                &p.payload,
                            ));
                        }
                    }
                    got.extend(rx.flush(77_000 + clock * 10));
                    assert_eq!(got.len(), 1, "{d} lost {lost}");
                    assert_eq!(got[0].digit, d);
                    assert_eq!(got[0].duration_ms, ms);
                    assert_eq!(got[0].started_at_ts, 77_000);
                }
            }
        }
    }

    #[test]
    fn long_event_segments_merge() {
        let s = EventSender::new(8000, 20).unwrap();
        let packets = s.packets('0', 1000, 20_000).unwrap();
        let segments: std::collections::BTreeSet<u32> =
            packets.iter().map(|p| p.timestamp).collect();
        assert_eq!(
            segments.into_iter().collect::<Vec<_>>(),
            vec![1000, 1000 + 0xFFFF, 1000 + 2 * 0xFFFF]
        );
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
        let mut rx = EventReceiver::new(8000);
        let mut got = Vec::new();
        for (k, p) in packets.iter().enumerate() {
            got.extend(rx.receive(p.timestamp, k as u16, p.marker, &p.payload));
        }
        assert_eq!(
            got,
            vec![DigitEvent {
                digit: '0',
                duration_ms: 20_000,
                started_at_ts: 1000
            }]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random digit sequences with random loss and local reordering:
        /// every digit is reported at most once, in order, with its start
        /// timestamp; with at least one packet of each event surviving and a
        /// final flush, all are reported.
        #[test]
        fn random_loss_and_reordering(
            digits in proptest::collection::vec(0u8..16, 1..12),
            loss in proptest::collection::vec(0u8..100, 200),
            swaps in proptest::collection::vec(any::<bool>(), 200),
            loss_pct in 0u8..40,
        ) {
            let s = EventSender::new(8000, 20).unwrap();
            let mut stream = Vec::new();
            let mut ts = 10_000u32;
            for (i, &d) in digits.iter().enumerate() {
                let ms = 50 + (i as u32 * 37) % 150;
                for p in s.packets(event_to_char(d).unwrap(), ts, ms).unwrap() {
                    stream.push((i, p));
                }
                ts += (ms + 60) * 8;
            }
            // Local reordering: swap adjacent packets.
            let mut k = 0;
            while k + 1 < stream.len() {
                if swaps[k % swaps.len()] {
                    stream.swap(k, k + 1);
                    k += 1;
                }
                k += 1;
            }
            let mut rx = EventReceiver::new(8000);
            let mut got = Vec::new();
            let mut survived = vec![false; digits.len()];
            for (n, (i, p)) in stream.iter().enumerate() {
                // seq reflects send order: derive it from the packet's original position.
                let seq = (p.timestamp / 8) as u16 + p.send_offset_ms as u16 / 20;
                if loss[n % loss.len()] < loss_pct {
                    continue;
                }
                survived[*i] = true;
                got.extend(rx.receive(p.timestamp, seq, p.marker, &p.payload));
            }
            got.extend(rx.flush(ts + 100_000));
            while let Some(e) = rx.poll() { got.push(e); }
            // Strictly increasing start timestamps: no duplicates, in order.
            for w in got.windows(2) {
                prop_assert!(w[0].started_at_ts < w[1].started_at_ts);
            }
            let mut ts = 10_000u32;
            let mut expected = Vec::new();
            for (i, &d) in digits.iter().enumerate() {
                let ms = 50 + (i as u32 * 37) % 150;
                expected.push((ts, event_to_char(d).unwrap(), survived[i]));
                ts += (ms + 60) * 8;
            }
            for e in &got {
                let exp = expected.iter().find(|x| x.0 == e.started_at_ts);
                prop_assert!(exp.is_some());
                prop_assert_eq!(exp.unwrap().1, e.digit);
            }
            if loss_pct == 0 {
                prop_assert_eq!(got.len(), digits.len());
            }
            prop_assert!(got.len() <= survived.iter().filter(|&&x| x).count());
        }
    }

    // ---------- in-band ----------

    /// Render a plan of `(Some(digit) | None, ms)` segments.
    fn render(rate: u32, plan: &[(Option<char>, u32)], row_db: f32, col_db: f32) -> Vec<i16> {
        let mut out = Vec::new();
        for &(digit, ms) in plan {
            let n = (rate * ms / 1000) as usize;
            let mut buf = vec![0i16; n];
            if let Some(d) = digit {
                let (fr, fc) = digit_frequencies(d).unwrap();
                let mut g =
                    ToneGenerator::new(rate, &[(fr, row_db), (fc, col_db)], Cadence::Continuous)
                        .unwrap();
                g.fill(&mut buf);
            }
            out.extend(buf);
        }
        out
    }

    fn detect(rate: u32, x: &[i16], frame: usize) -> String {
        let mut det = InbandDetector::new(rate).unwrap();
        let mut s = String::new();
        for chunk in x.chunks(frame) {
            s.extend(det.feed(chunk));
        }
        s
    }

    fn plan(digits: &str, on: u32, off: u32, lead: u32) -> Vec<(Option<char>, u32)> {
        let mut p = vec![(None, lead)];
        for d in digits.chars() {
            p.push((Some(d), on));
            p.push((None, off));
        }
        p
    }

    #[test]
    fn all_digits_detected_once_in_order() {
        for rate in [8000u32, 16000] {
            for level in [-10.0f32, -25.0] {
                for on in [50u32, 100] {
                    for (off, lead) in [(50u32, 0u32), (60, 7), (45, 13), (100, 19)] {
                        let x = render(rate, &plan(ALL, on, off, lead), level, level);
                        let got = detect(rate, &x, rate as usize / 50);
                        assert_eq!(got, ALL, "{rate} Hz {level} dBFS {on}/{off} ms lead {lead}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_alignment_of_50ms_digits() {
        for lead in 0..20 {
            let x = render(8000, &plan("0123456789", 50, 50, lead), -20.0, -20.0);
            assert_eq!(detect(8000, &x, 160), "0123456789", "lead {lead} ms");
        }
    }

    #[test]
    fn repeated_digit_needs_gap() {
        for lead in 0..20 {
            // 40 ms gaps are enough to count the same digit again…
            let x = render(8000, &plan("5555", 60, 40, lead), -15.0, -15.0);
            assert_eq!(detect(8000, &x, 160), "5555", "lead {lead}");
        }
        // …a long tone is one digit, even with a brief 10 ms dropout…
        let x = render(
            8000,
            &[(Some('7'), 500), (None, 10), (Some('7'), 500)],
            -15.0,
            -15.0,
        );
        assert_eq!(detect(8000, &x, 160), "7");
        // …and a burst shorter than 40 ms is not a digit.
        for lead in 0..20 {
            let x = render(
                8000,
                &[(None, lead), (Some('1'), 20), (None, 100)],
                -10.0,
                -10.0,
            );
            assert_eq!(detect(8000, &x, 160), "", "lead {lead}");
        }
    }

    #[test]
    fn frame_size_does_not_matter() {
        let x = render(16000, &plan(ALL, 70, 55, 3), -12.0, -14.0);
        for frame in [1usize, 80, 160, 320, 333, 640, 4000] {
            let mut det = InbandDetector::new(16000).unwrap();
            let mut s = String::new();
            for chunk in x.chunks(frame) {
                s.extend(det.feed(chunk));
                while let Some(d) = det.poll() {
                    s.push(d);
                }
            }
            assert_eq!(s, ALL, "frame {frame}");
        }
        // Even without draining, a whole call's worth of digits is kept.
        let mut det = InbandDetector::new(16000).unwrap();
        let mut s = String::new();
        s.extend(det.feed(&x[..16000]));
        while let Some(d) = det.poll() {
            s.push(d);
        }
        assert_eq!(s, &ALL[..8]);
    }

    fn ulaw_encode(pcm: i16) -> u8 {
        let mut x = i32::from(pcm);
        let sign = if x < 0 {
            x = -x;
            0x80
        } else {
            0
        };
        x = x.min(32635) + 0x84;
        let exponent = (31 - (x as u32).leading_zeros()) as i32 - 7;
        let mantissa = (x >> (exponent + 3)) & 0x0F;
        !((sign | (exponent << 4) | mantissa) as u8)
    }

    fn ulaw_decode(code: u8) -> i16 {
        let u = !code;
        let magnitude = (((i32::from(u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84;
        (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
    }

    #[test]
    fn survives_mu_law() {
        // Sanity of the test codec itself.
        assert_eq!(ulaw_decode(ulaw_encode(0)), 0);
        assert!((i32::from(ulaw_decode(ulaw_encode(10000))) - 10000).abs() < 300);
        assert!((i32::from(ulaw_decode(ulaw_encode(-100))) + 100).abs() < 8);
        for level in [-10.0f32, -25.0] {
            let x = render(8000, &plan(ALL, 50, 50, 5), level, level);
            let y: Vec<i16> = x.iter().map(|&s| ulaw_decode(ulaw_encode(s))).collect();
            assert_eq!(detect(8000, &y, 160), ALL, "{level} dBFS");
        }
    }

    fn lcg_noise(n: usize, rms_dbfs: f64, seed: u32) -> Vec<i16> {
        // Uniform noise has RMS = peak / sqrt(3).
        let rms = FULL_SCALE / 2f64.sqrt() * 10f64.powf(rms_dbfs / 20.0);
        let peak = rms * 3f64.sqrt();
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let u = f64::from(s >> 8) / f64::from(1u32 << 24) * 2.0 - 1.0;
                (u * peak).round() as i16
            })
            .collect()
    }

    #[test]
    fn rejects_noise_tones_and_chords() {
        let noise = lcg_noise(8000 * 5, -20.0, 42);
        assert!((crate::media::tone::level_dbfs(&noise) + 20.0).abs() < 0.3);
        assert_eq!(detect(8000, &noise, 160), "");
        let noise16 = lcg_noise(16000 * 3, -20.0, 7);
        assert_eq!(detect(16000, &noise16, 320), "");
        let tones: &[&[(f32, f32)]] = &[
            &[(1000.0, -10.0)],
            &[(440.0, -10.0)],
            &[(697.0, -10.0)],
            &[(1336.0, -10.0)],
            &[(350.0, -13.0), (440.0, -13.0)],
            &[(440.0, -13.0), (480.0, -13.0)],
            &[(800.0, -10.0), (1400.0, -10.0)],
            &[(1000.0, -10.0), (1500.0, -10.0)],
            &[(720.0, -10.0), (1250.0, -10.0)], // ~3.5 % off '1'
        ];
        for rate in [8000u32, 16000] {
            for comps in tones {
                let mut g = ToneGenerator::new(rate, comps, Cadence::Continuous).unwrap();
                let mut x = vec![0i16; rate as usize * 2];
                g.fill(&mut x);
                assert_eq!(
                    detect(rate, &x, rate as usize / 50),
                    "",
                    "{comps:?} at {rate}"
                );
            }
        }
        // C major triad and a DTMF pair buried in a third strong tone.
        let mut g1 =
            ToneGenerator::new(8000, &[(262.0, -12.0), (330.0, -12.0)], Cadence::Continuous)
                .unwrap();
        let mut g2 = ToneGenerator::new(8000, &[(392.0, -12.0)], Cadence::Continuous).unwrap();
        let mut a = vec![0i16; 16000];
        let mut b = vec![0i16; 16000];
        g1.fill(&mut a);
        g2.fill(&mut b);
        let chord: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(detect(8000, &chord, 160), "");
        let dtmf = render(8000, &[(Some('5'), 2000)], -20.0, -20.0);
        let mut g3 = ToneGenerator::single(8000, 2200.0, -12.0).unwrap();
        g3.fill(&mut b);
        let masked: Vec<i16> = dtmf.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(detect(8000, &masked, 160), "");
    }

    #[test]
    fn rejects_synthetic_vowel() {
        // Harmonic series with a pitch that changes every 100 ms.
        let mut x = Vec::new();
        for (k, pitch) in [110.0f64, 130.0, 175.0, 210.0, 150.0, 98.0, 233.0, 121.0]
            .iter()
            .cycle()
            .take(30)
            .enumerate()
        {
            for n in 0..800 {
                let t = (k * 800 + n) as f64 / 8000.0;
                let mut v = 0.0;
                for h in 1..30 {
                    let f = pitch * f64::from(h);
                    if f < 3800.0 {
                        v += 4000.0 / f64::from(h) * (2.0 * PI * f * t).sin();
                    }
                }
                x.push(v as i16);
            }
        }
        assert_eq!(detect(8000, &x, 160), "");
    }

    #[test]
    fn twist_limits() {
        // (row dBFS, column dBFS, accepted)
        for (row, col, ok) in [
            (-10.0f32, -10.0f32, true),
            (-10.0, -17.0, true),  // normal twist 7 dB
            (-13.0, -10.0, true),  // reverse twist 3 dB
            (-10.0, -20.0, false), // normal twist 10 dB
            (-16.0, -10.0, false), // reverse twist 6 dB
            (-10.0, -60.0, false), // column missing
        ] {
            let x = render(8000, &plan("1", 200, 100, 0), row, col);
            let expected = if ok { "1" } else { "" };
            assert_eq!(detect(8000, &x, 160), expected, "row {row} col {col}");
        }
    }

    #[test]
    fn level_threshold_and_frequency_tolerance() {
        let weak = render(8000, &plan("1", 200, 100, 0), -45.0, -45.0);
        assert_eq!(detect(8000, &weak, 160), "");
        let loud = render(8000, &plan("159", 100, 100, 0), -3.0, -3.0);
        assert_eq!(detect(8000, &loud, 160), "159");
        // ±1.5 % frequency deviation is accepted.
        for dev in [0.985f32, 1.015] {
            let mut g = ToneGenerator::new(
                8000,
                &[(852.0 * dev, -15.0), (1477.0 * dev, -15.0)],
                Cadence::Continuous,
            )
            .unwrap();
            let mut x = vec![0i16; 1600];
            g.fill(&mut x);
            assert_eq!(detect(8000, &x, 160), "9", "deviation {dev}");
        }
    }

    #[test]
    fn per_frame_and_per_packet_paths_do_not_allocate() {
        use crate::media::resample::alloc_probe::allocations_during;
        let x = render(8000, &plan(ALL, 60, 60, 0), -12.0, -12.0);
        let packets = EventSender::new(8000, 20)
            .unwrap()
            .packets('5', 100, 200)
            .unwrap();
        let mut det = InbandDetector::new(8000).unwrap();
        let mut rx = EventReceiver::new(8000);
        let mut digits = 0;
        let n = allocations_during(|| {
            for chunk in x.chunks(160) {
                digits += usize::from(det.feed(chunk).is_some());
            }
            for (k, p) in packets.iter().enumerate() {
                digits += usize::from(
                    rx.receive(p.timestamp, k as u16, p.marker, &p.payload)
                        .is_some(),
                );
            }
            digits += usize::from(rx.flush(1_000_000).is_some());
        });
        assert_eq!(n, 0);
        assert_eq!(digits, 17);
    }

    #[test]
    fn detector_rates_and_reset() {
        assert!(InbandDetector::new(7999).is_err());
        assert!(InbandDetector::new(11025).is_err());
        let x = render(48000, &plan("3#", 60, 60, 0), -12.0, -12.0);
        assert_eq!(detect(48000, &x, 960), "3#");
        let mut det = InbandDetector::new(8000).unwrap();
        let tone = render(8000, &[(Some('4'), 200)], -12.0, -12.0);
        let mut s = String::new();
        for c in tone.chunks(160) {
            s.extend(det.feed(c));
        }
        det.reset();
        for c in tone.chunks(160) {
            s.extend(det.feed(c));
        }
        assert_eq!(s, "44");
        assert_eq!(det.sample_rate(), 8000);
    }
}
