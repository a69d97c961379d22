//! Adaptive jitter buffer for fixed-duration frames (sans-IO).
//!
//! Contract:
//! * The caller supplies time: every [`JitterBuffer::push`] and
//!   [`JitterBuffer::pop`] takes `now: Instant`; nothing reads a clock. `pop` is
//!   called once per frame period (ptime) and returns [`Playout::Frame`],
//!   [`Playout::Missing`] (the caller runs packet-loss concealment) or
//!   [`Playout::Empty`] (not started yet, or drained: nothing to play).
//! * Frames are slotted by RTP timestamp (one slot per `ptime` timestamp units,
//!   32-bit timestamps are unwrapped internally), so reordering within the window
//!   is undone, a lost frame yields exactly one `Missing` at its slot, and
//!   timestamp gaps without sequence gaps (silence suppression) are just empty
//!   slots. Duplicates (same slot, same extended sequence) and frames whose slot
//!   was already played (late) are dropped and counted.
//! * Delay model: for each frame, *transit* = arrival (in timestamp units) −
//!   timestamp; the reference is the minimum transit over the last 5–10 s. The
//!   *current delay* is how long after that fastest-possible arrival the frame
//!   being played is played. The *target delay* is
//!   `clamp(max(2·jitter + ptime, peak), min_delay, max_delay)` where `jitter` is
//!   the RFC 3550 interarrival jitter estimate and `peak` is the largest recent
//!   excess transit (raised instantly, decaying by one ptime per second) — so the
//!   target grows quickly and shrinks slowly.
//! * Adaptation happens where it is cheapest: the delay grows by *holding* (not
//!   advancing) at an empty slot — the frame is late or the source is silent — and
//!   shrinks by *skipping* empty slots (silence/gaps before a buffered frame).
//!   Only if the delay stays at least one ptime above target for
//!   `shrink_interval` during continuous audio is one frame dropped, at most once
//!   per `shrink_interval`.
//! * Resync: a frame whose timestamp is outside the window or whose sequence
//!   number jumps (> 3000 ahead or more than the window behind) is a new source.
//!   With the marker bit it resyncs at once; otherwise it is held pending until
//!   the next frame confirms it (consecutive sequence number and timestamp), then
//!   the buffer is cleared and playout restarts after the target delay. An empty
//!   buffer with no arrival for `drain_after` returns to the idle state (`Empty`),
//!   and the next frame starts a fresh stream.
//! * No allocation after construction (the slot ring is preallocated) and no
//!   panics for any input sequence.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Jitter buffer parameters.
#[derive(Debug, Clone)]
pub struct JitterConfig {
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Frame duration in timestamp units (e.g. 160 for 20 ms at 8 kHz).
    pub ptime: u32,
    /// Lower bound of the target delay.
    pub min_delay: Duration,
    /// Upper bound of the target delay.
    pub max_delay: Duration,
    /// With nothing buffered and no arrival for this long, go idle (`Empty`).
    pub drain_after: Duration,
    /// Minimum time between frame drops used to shrink the delay mid-speech.
    pub shrink_interval: Duration,
}

impl JitterConfig {
    /// Defaults: 20–200 ms delay bounds, drain after 300 ms, shrink interval 500 ms.
    pub fn new(clock_rate: u32, ptime: u32) -> Self {
        JitterConfig {
            clock_rate,
            ptime,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            drain_after: Duration::from_millis(300),
            shrink_interval: Duration::from_millis(500),
        }
    }
}

/// What to play for this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<T> {
    Frame(T),
    /// A frame is due but absent: conceal.
    Missing,
    /// Nothing to play (not started, or drained).
    Empty,
}

/// What [`JitterBuffer::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Buffered,
    /// Same slot and sequence number already buffered.
    Duplicate,
    /// Its slot was already played.
    Late,
    /// Conflicting frame in the slot, or no room; dropped.
    Dropped,
    /// Looks like a new source; held until the next frame confirms it.
    Pending,
    /// Started a new stream (buffer cleared).
    Resynced,
}

/// Counters and current state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    pub pushed: u64,
    pub played: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Frames discarded: delay shrinking, slot conflicts, buffer cleared on resync.
    pub dropped: u64,
    /// `Missing` results returned.
    pub concealed: u64,
    pub resyncs: u64,
    /// Delay of the last frame slot played (see module docs).
    pub current_delay: Duration,
    pub target_delay: Duration,
    /// Interarrival jitter estimate.
    pub jitter: Duration,
}

struct Slot<T> {
    seq: u64,
    frame: T,
}

struct PendingFrame<T> {
    seq: u64,
    ts: u32,
    arrival: i64,
    frame: T,
}

/// Adaptive jitter buffer; see the module documentation.
pub struct JitterBuffer<T> {
    clock_rate: u32,
    p: i64,
    min_u: i64,
    max_u: i64,
    drain_u: i64,
    shrink_u: i64,
    window: usize,

    epoch: Option<Instant>,
    slots: VecDeque<Option<Slot<T>>>,
    filled: usize,
    /// Extended timestamp of `slots[0]`; while playing, the next slot to play.
    base: i64,
    playing: bool,

    ts_valid: bool,
    ts_last_raw: u32,
    ts_last_ext: i64,
    last_seq: Option<u64>,
    last_arrival: i64,

    ref_valid: bool,
    ref_cur: i64,
    ref_prev: i64,
    ref_start: i64,
    prev_transit: Option<i64>,
    jitter: f64,
    peak: i64,
    peak_at: i64,
    excess_since: Option<i64>,

    pending: Option<PendingFrame<T>>,
    stats: JitterStats,
}

const REF_WINDOW_SECS: i64 = 5;
const SEQ_MAX_AHEAD: i128 = 3000;
const SEQ_SLACK_BEHIND: i128 = 100;

impl<T> JitterBuffer<T> {
    pub fn new(cfg: JitterConfig) -> Self {
        let clock_rate = cfg.clock_rate.max(1);
        let to_units = |d: Duration| -> i64 {
            (d.as_nanos() * clock_rate as u128 / 1_000_000_000).min(i64::MAX as u128 / 4) as i64
        };
        let p = cfg.ptime.max(1) as i64;
        let min_u = to_units(cfg.min_delay);
        let max_u = to_units(cfg.max_delay).max(min_u).max(p);
        let drain_u = to_units(cfg.drain_after).max(p);
        let window = ((2 * max_u + drain_u) / p + 2).clamp(8, 4096) as usize;
        JitterBuffer {
            clock_rate,
            p,
            min_u,
            max_u,
            drain_u,
            shrink_u: to_units(cfg.shrink_interval),
            window,
            epoch: None,
            slots: VecDeque::with_capacity(window + 1),
            filled: 0,
            base: 0,
            playing: false,
            ts_valid: false,
            ts_last_raw: 0,
            ts_last_ext: 0,
            last_seq: None,
            last_arrival: 0,
            ref_valid: false,
            ref_cur: 0,
            ref_prev: 0,
            ref_start: 0,
            prev_transit: None,
            jitter: 0.0,
            peak: 0,
            peak_at: 0,
            excess_since: None,
            pending: None,
            stats: JitterStats::default(),
        }
    }

    /// Counters and current delays.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats;
        s.jitter = self.units_to_duration(self.jitter as i64);
        s
    }

    /// Number of frames buffered.
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Whether playout has started (not idle).
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Drop all frames and return to idle (statistics are kept).
    pub fn reset(&mut self) {
        self.stats.dropped += self.filled as u64;
        self.slots.clear();
        self.filled = 0;
        self.playing = false;
        self.ts_valid = false;
        self.pending = None;
        self.excess_since = None;
    }

    /// Add a frame (no marker bit).
    pub fn push(&mut self, now: Instant, seq_ext: u64, timestamp: u32, frame: T) -> PushOutcome {
        self.push_marked(now, seq_ext, timestamp, false, frame)
    }

    /// Add a frame; `marker` is the RTP marker bit (start of a talkspurt), which
    /// lets a timestamp jump resync immediately.
    pub fn push_marked(
        &mut self,
        now: Instant,
        seq_ext: u64,
        timestamp: u32,
        marker: bool,
        frame: T,
    ) -> PushOutcome {
        let arrival = self.units(now);
        self.stats.pushed += 1;
        self.last_arrival = arrival;

        if !self.ts_valid || (!self.playing && self.filled == 0) {
            // Fresh stream.
            self.pending = None;
            self.start_stream(timestamp);
            return self.accept(arrival, seq_ext, timestamp, frame);
        }

        let ext = self.peek_ext(timestamp);
        if self.is_jump(seq_ext, ext) {
            if marker {
                self.resync(None, arrival, seq_ext, timestamp, frame);
                return PushOutcome::Resynced;
            }
            if let Some(p) = self.pending.take() {
                let dts = timestamp.wrapping_sub(p.ts) as i32 as i64;
                if seq_ext == p.seq.wrapping_add(1) && dts > 0 && dts <= self.window as i64 * self.p
                {
                    self.resync(Some(p), arrival, seq_ext, timestamp, frame);
                    return PushOutcome::Resynced;
                }
            }
            self.pending = Some(PendingFrame {
                seq: seq_ext,
                ts: timestamp,
                arrival,
                frame,
            });
            return PushOutcome::Pending;
        }
        self.accept(arrival, seq_ext, timestamp, frame)
    }

    /// Called once per ptime: what to play now.
    pub fn pop(&mut self, now: Instant) -> Playout<T> {
        let now_u = self.units(now);
        let target = self.target(now_u);
        self.stats.target_delay = self.units_to_duration(target);

        if !self.playing {
            if self.filled == 0 {
                return Playout::Empty;
            }
            let mut cur = now_u - self.base - self.reference();
            if cur < target {
                return Playout::Empty;
            }
            // Start. If frames waited much longer than needed (pop started late),
            // skip ahead to land near the target.
            self.playing = true;
            while cur - self.p >= target && matches!(self.slots.get(1), Some(Some(_))) {
                self.drop_front();
                cur -= self.p;
            }
        }

        let cur = now_u - self.base - self.reference();
        self.stats.current_delay = self.units_to_duration(cur.max(0));
        let excess = cur - target;

        if matches!(self.slots.front(), Some(Some(_))) {
            if excess >= self.p {
                let since = *self.excess_since.get_or_insert(now_u);
                if now_u - since >= self.shrink_u && matches!(self.slots.get(1), Some(Some(_))) {
                    // Continuous audio, delay too high for too long: drop one frame.
                    self.drop_front();
                    self.excess_since = Some(now_u);
                }
            } else {
                self.excess_since = None;
            }
            return self.play_front();
        }

        // The slot due now is empty.
        if self.filled == 0 && now_u - self.last_arrival >= self.drain_u {
            self.slots.clear();
            self.playing = false;
            self.excess_since = None;
            return Playout::Empty;
        }
        if cur < target {
            // Grow the delay: wait here (late frame or silence).
            self.stats.concealed += 1;
            return Playout::Missing;
        }
        if excess >= self.p && self.filled > 0 {
            // Shrink for free: skip empty slots (silence or a lost frame) before
            // the next buffered frame.
            let max_skip = (excess / self.p) as usize;
            let lead = self.slots.iter().take_while(|s| s.is_none()).count();
            for _ in 0..max_skip.min(lead) {
                self.advance();
            }
            if matches!(self.slots.front(), Some(Some(_))) {
                self.excess_since = None;
                return self.play_front();
            }
        }
        self.advance();
        self.stats.concealed += 1;
        Playout::Missing
    }

    // ---- internals ----

    fn units(&mut self, now: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(now);
        let nanos = now.saturating_duration_since(epoch).as_nanos();
        (nanos * self.clock_rate as u128 / 1_000_000_000).min(i64::MAX as u128 / 4) as i64
    }

    fn units_to_duration(&self, u: i64) -> Duration {
        let u = u.max(0) as u128;
        let nanos = u * 1_000_000_000 / self.clock_rate as u128;
        Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }

    fn reference(&self) -> i64 {
        self.ref_cur.min(self.ref_prev)
    }

    fn peak_now(&self, now_u: i64) -> i64 {
        let decay =
            (now_u - self.peak_at).max(0) as i128 * self.p as i128 / self.clock_rate as i128;
        (self.peak as i128 - decay).max(0) as i64
    }

    fn target(&self, now_u: i64) -> i64 {
        let from_jitter = 2 * self.jitter as i64 + self.p;
        from_jitter
            .max(self.peak_now(now_u))
            .clamp(self.min_u, self.max_u)
    }

    fn peek_ext(&self, ts: u32) -> i64 {
        self.ts_last_ext + ts.wrapping_sub(self.ts_last_raw) as i32 as i64
    }

    fn slot_index(&self, ext: i64) -> i64 {
        (ext - self.base + self.p / 2).div_euclid(self.p)
    }

    fn is_jump(&self, seq: u64, ext: i64) -> bool {
        if let Some(last) = self.last_seq {
            let d = seq as i128 - last as i128;
            if d > SEQ_MAX_AHEAD || d < -(self.window as i128 + SEQ_SLACK_BEHIND) {
                return true;
            }
        }
        let idx = self.slot_index(ext);
        idx >= self.window as i64 || idx < -(self.window as i64)
    }

    fn start_stream(&mut self, ts: u32) {
        self.slots.clear();
        self.filled = 0;
        self.playing = false;
        self.ts_valid = true;
        self.ts_last_raw = ts;
        self.ts_last_ext = ts as i64;
        self.base = ts as i64;
        self.last_seq = None;
        self.ref_valid = false;
        self.prev_transit = None;
        self.excess_since = None;
    }

    fn resync(
        &mut self,
        pending: Option<PendingFrame<T>>,
        arrival: i64,
        seq: u64,
        ts: u32,
        frame: T,
    ) {
        self.stats.resyncs += 1;
        self.stats.dropped += self.filled as u64;
        self.pending = None;
        match pending {
            Some(p) => {
                self.start_stream(p.ts);
                self.accept(p.arrival, p.seq, p.ts, p.frame);
            }
            None => self.start_stream(ts),
        }
        self.accept(arrival, seq, ts, frame);
    }

    /// Account and slot a frame that belongs to the current stream.
    fn accept(&mut self, arrival: i64, seq: u64, ts: u32, frame: T) -> PushOutcome {
        let ext = self.peek_ext(ts);
        if ext > self.ts_last_ext {
            self.ts_last_ext = ext;
            self.ts_last_raw = ts;
        }
        if self.last_seq.is_none_or(|l| seq > l) {
            self.last_seq = Some(seq);
        }
        self.observe_transit(arrival, ext);

        if !self.playing && self.filled == 0 {
            self.slots.clear();
            self.base = ext;
        }
        let mut idx = self.slot_index(ext);
        if idx < 0 {
            if self.playing {
                self.stats.late += 1;
                return PushOutcome::Late;
            }
            // Not started yet: extend the ring backwards.
            let need = (-idx) as usize;
            if self.slots.len() + need > self.window {
                self.stats.dropped += 1;
                return PushOutcome::Dropped;
            }
            for _ in 0..need {
                self.slots.push_front(None);
            }
            self.base -= need as i64 * self.p;
            idx = 0;
        }
        let idx = idx as usize;
        if idx >= self.window {
            self.stats.dropped += 1;
            return PushOutcome::Dropped;
        }
        while self.slots.len() <= idx {
            self.slots.push_back(None);
        }
        match &self.slots[idx] {
            Some(s) if s.seq == seq => {
                self.stats.duplicates += 1;
                PushOutcome::Duplicate
            }
            Some(_) => {
                self.stats.dropped += 1;
                PushOutcome::Dropped
            }
            None => {
                self.slots[idx] = Some(Slot { seq, frame });
                self.filled += 1;
                PushOutcome::Buffered
            }
        }
    }

    fn observe_transit(&mut self, arrival: i64, ext: i64) {
        let transit = arrival - ext;
        if let Some(prev) = self.prev_transit {
            let d = (transit - prev).abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.prev_transit = Some(transit);

        let window = REF_WINDOW_SECS * self.clock_rate as i64;
        if !self.ref_valid {
            self.ref_valid = true;
            self.ref_cur = transit;
            self.ref_prev = transit;
            self.ref_start = arrival;
        } else if arrival - self.ref_start >= window {
            self.ref_prev = self.ref_cur;
            self.ref_cur = transit;
            self.ref_start = arrival;
        } else {
            self.ref_cur = self.ref_cur.min(transit);
        }

        let excess = (transit - self.reference()).min(self.max_u);
        let decayed = self.peak_now(arrival);
        self.peak = decayed.max(excess);
        self.peak_at = arrival;
    }

    fn advance(&mut self) {
        if let Some(Some(_)) = self.slots.pop_front() {
            self.filled -= 1;
        }
        self.base += self.p;
    }

    fn drop_front(&mut self) {
        if let Some(Some(_)) = self.slots.pop_front() {
            self.filled -= 1;
            self.stats.dropped += 1;
        }
        self.base += self.p;
    }

    fn play_front(&mut self) -> Playout<T> {
        self.base += self.p;
        match self.slots.pop_front() {
            Some(Some(slot)) => {
                self.filled -= 1;
                self.stats.played += 1;
                Playout::Frame(slot.frame)
            }
            _ => {
                self.stats.concealed += 1;
                Playout::Missing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u32 = 160; // 20 ms at 8 kHz

    fn ms(t0: Instant, m: u64) -> Instant {
        t0 + Duration::from_millis(m)
    }

    fn frame_of(p: Playout<u64>) -> Option<u64> {
        match p {
            Playout::Frame(f) => Some(f),
            _ => None,
        }
    }

    /// Simulate: frame k (seq k, ts k·P) sent at 20·k ms and arriving `delay(k)`
    /// ms later (None = lost); pop every 20 ms after pushing all arrivals due.
    /// Returns the pop results per tick.
    fn simulate(
        jb: &mut JitterBuffer<u64>,
        t0: Instant,
        frames: u64,
        ticks: u64,
        delay: impl Fn(u64) -> Option<u64>,
    ) -> Vec<Playout<u64>> {
        let mut arrivals: Vec<(u64, u64)> = (0..frames)
            .filter_map(|k| delay(k).map(|d| (20 * k + d, k)))
            .collect();
        arrivals.sort();
        let mut next = 0;
        let mut out = Vec::new();
        for tick in 0..ticks {
            let now_ms = 20 * tick;
            while next < arrivals.len() && arrivals[next].0 <= now_ms {
                let (at, k) = arrivals[next];
                jb.push(ms(t0, at), k, (k as u32).wrapping_mul(P), k);
                next += 1;
            }
            out.push(jb.pop(ms(t0, now_ms)));
        }
        out
    }

    #[test]
    fn steady_stream_constant_delay_no_loss() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        let mut delays = Vec::new();
        let mut played = Vec::new();
        for k in 0..500u64 {
            jb.push(ms(t0, 20 * k), k, k as u32 * P, k);
            let p = jb.pop(ms(t0, 20 * k));
            if k == 0 {
                assert_eq!(p, Playout::Empty);
                continue;
            }
            played.push(frame_of(p).expect("frame"));
            delays.push(jb.stats().current_delay);
        }
        assert_eq!(played, (0..499).collect::<Vec<_>>());
        assert!(delays.iter().all(|&d| d == Duration::from_millis(20)));
        let s = jb.stats();
        assert_eq!((s.late, s.dropped, s.concealed, s.duplicates), (0, 0, 0, 0));
        assert_eq!(s.target_delay, Duration::from_millis(20));
    }

    /// Deterministic reordering: frames held back 0..=60 ms, so e.g. frame 2
    /// arrives before frame 1 and frame 5 with 3 and 4 (frame 0 is on time, so
    /// the first frame shows the true path delay).
    fn reorder_delay(k: u64) -> Option<u64> {
        Some([0, 60, 0, 40, 20, 0, 60, 20, 40, 0][(k % 10) as usize])
    }

    /// No `Missing` before the last frame was played (afterwards the buffer
    /// conceals until it drains).
    fn no_missing_before_last_frame(out: &[Playout<u64>]) -> bool {
        let last = out
            .iter()
            .rposition(|p| matches!(p, Playout::Frame(_)))
            .unwrap();
        let first = out
            .iter()
            .position(|p| matches!(p, Playout::Frame(_)))
            .unwrap();
        out[first..=last]
            .iter()
            .all(|p| matches!(p, Playout::Frame(_)))
    }

    #[test]
    fn reordering_within_window_comes_out_in_order() {
        let t0 = Instant::now();
        let mut cfg = JitterConfig::new(8000, P);
        cfg.min_delay = Duration::from_millis(80);
        let mut jb = JitterBuffer::new(cfg);
        let out = simulate(&mut jb, t0, 300, 320, reorder_delay);
        assert!(no_missing_before_last_frame(&out));
        let frames: Vec<u64> = out.into_iter().filter_map(frame_of).collect();
        assert_eq!(frames, (0..300).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!((s.late, s.dropped, s.duplicates), (0, 0, 0));
    }

    #[test]
    fn reordering_adaptive_default_settles() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        let out = simulate(&mut jb, t0, 1000, 1020, reorder_delay);
        // Always in order; after a short warm-up nothing is lost or concealed.
        let frames: Vec<u64> = out.iter().cloned().filter_map(frame_of).collect();
        assert!(frames.windows(2).all(|w| w[0] < w[1]));
        let warm = 50;
        let after: Vec<u64> = out[warm..]
            .iter()
            .cloned()
            .take_while(|p| *p != Playout::Empty)
            .filter_map(frame_of)
            .collect();
        let first = after[0];
        assert_eq!(after, (first..1000).collect::<Vec<_>>());
        let s = jb.stats();
        assert!(s.late <= 3, "late {}", s.late);
        assert!(s.current_delay >= Duration::from_millis(60));
    }

    #[test]
    fn ten_percent_loss_missing_exactly_for_lost() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        let lost = |k: u64| (k * 37 + 11).is_multiple_of(10);
        let out = simulate(&mut jb, t0, 400, 401, |k| (!lost(k)).then_some(0));
        assert_eq!(out[0], Playout::Empty);
        for (k, p) in out[1..].iter().enumerate() {
            let k = k as u64;
            if lost(k) {
                assert_eq!(*p, Playout::Missing, "frame {k}");
            } else {
                assert_eq!(*p, Playout::Frame(k), "frame {k}");
            }
        }
        let s = jb.stats();
        assert_eq!(s.concealed, (0..400).filter(|&k| lost(k)).count() as u64);
        assert_eq!(s.concealed, 40);
        assert_eq!((s.late, s.dropped), (0, 0));
    }

    #[test]
    fn jitter_burst_grows_then_shrinks() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        // Frames 250..400 (5 s..8 s) get 0..100 ms of pseudo-random extra delay.
        let delay = |k: u64| {
            if (250..400).contains(&k) {
                let r = k
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                Some((r >> 33) % 101)
            } else {
                Some(0)
            }
        };
        let total = 1500u64; // 30 s
        let mut arrivals: Vec<(u64, u64)> = (0..total)
            .filter_map(|k| delay(k).map(|d| (20 * k + d, k)))
            .collect();
        arrivals.sort();
        let mut next = 0;
        let mut delay_at = Vec::new();
        let mut last = None;
        for tick in 0..total {
            let now_ms = 20 * tick;
            while next < arrivals.len() && arrivals[next].0 <= now_ms {
                let (at, k) = arrivals[next];
                jb.push(ms(t0, at), k, k as u32 * P, k);
                next += 1;
            }
            if let Playout::Frame(f) = jb.pop(ms(t0, now_ms)) {
                if let Some(l) = last {
                    assert!(f > l, "out of order {l} then {f}");
                }
                last = Some(f);
            }
            delay_at.push(jb.stats().current_delay);
        }
        let before = delay_at[240];
        let peak = *delay_at[250..450].iter().max().unwrap();
        let end = delay_at[delay_at.len() - 1];
        assert_eq!(before, Duration::from_millis(20));
        assert!(peak >= Duration::from_millis(80), "peak {peak:?}");
        assert!(end <= Duration::from_millis(40), "end {end:?}");
        // Once the burst is over the delay only ever shrinks.
        for w in delay_at[450..].windows(2) {
            assert!(w[1] <= w[0], "{:?} -> {:?}", w[0], w[1]);
        }
        assert!(jb.stats().dropped > 0);
    }

    #[test]
    fn seq_ts_jump_resyncs_within_a_few_frames() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        let mut out = Vec::new();
        for k in 0..200u64 {
            let now = ms(t0, 20 * k);
            let (seq, ts, id) = if k < 100 {
                (k, k as u32 * P, k)
            } else {
                let j = k - 100;
                (
                    70_000 + j,
                    0x8000_0000u32.wrapping_add(j as u32 * P),
                    1000 + j,
                )
            };
            jb.push(now, seq, ts, id);
            out.push(jb.pop(now));
        }
        // Old stream played until the switch.
        let first_new = out
            .iter()
            .position(|p| matches!(p, Playout::Frame(f) if *f >= 1000))
            .unwrap();
        assert!(first_new <= 100 + 4, "first new frame at tick {first_new}");
        let new: Vec<u64> = out[first_new..]
            .iter()
            .cloned()
            .filter_map(frame_of)
            .collect();
        assert_eq!(new, (1000..1000 + new.len() as u64).collect::<Vec<_>>());
        assert!(new.len() >= 95);
        assert_eq!(jb.stats().resyncs, 1);
    }

    #[test]
    fn marker_resyncs_immediately_and_stray_jump_is_ignored() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        for k in 0..50u64 {
            jb.push(ms(t0, 20 * k), k, k as u32 * P, k);
            jb.pop(ms(t0, 20 * k));
        }
        // A single stray packet with a wild timestamp is held, then discarded.
        assert_eq!(
            jb.push(ms(t0, 1000), 50, 999_999_999, 9999),
            PushOutcome::Pending
        );
        assert_eq!(jb.push(ms(t0, 1000), 51, 51 * P, 51), PushOutcome::Buffered);
        assert_eq!(jb.stats().resyncs, 0);
        // A marked talkspurt start with a timestamp jump resyncs at once.
        assert_eq!(
            jb.push_marked(ms(t0, 1010), 52, 5_000_000, true, 52),
            PushOutcome::Resynced
        );
        assert_eq!(jb.stats().resyncs, 1);
        assert_eq!(jb.pop(ms(t0, 1020)), Playout::Empty);
        jb.push(ms(t0, 1030), 53, 5_000_000 + P, 53);
        assert_eq!(jb.pop(ms(t0, 1040)), Playout::Frame(52));
        assert_eq!(jb.pop(ms(t0, 1060)), Playout::Frame(53));
    }

    #[test]
    fn duplicates_and_late_frames_counted() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        assert_eq!(jb.pop(t0), Playout::Empty);
        assert_eq!(jb.push(t0, 0, 0, 0), PushOutcome::Buffered);
        assert_eq!(jb.push(t0, 0, 0, 0), PushOutcome::Duplicate);
        assert_eq!(jb.pop(ms(t0, 20)), Playout::Frame(0));
        assert_eq!(jb.push(ms(t0, 25), 0, 0, 0), PushOutcome::Late);
        let s = jb.stats();
        assert_eq!((s.duplicates, s.late), (1, 1));
    }

    #[test]
    fn drains_to_empty_then_restarts() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        for k in 0..10u64 {
            jb.push(ms(t0, 20 * k), k, k as u32 * P, k);
            jb.pop(ms(t0, 20 * k));
        }
        // Stream stops: last frame, then concealment, then Empty.
        let mut tail = Vec::new();
        for t in 10..40u64 {
            tail.push(jb.pop(ms(t0, 20 * t)));
        }
        assert_eq!(tail[0], Playout::Frame(9));
        assert!(tail[1..10].iter().all(|p| *p == Playout::Missing));
        assert!(tail[20..].iter().all(|p| *p == Playout::Empty));
        assert!(!jb.is_playing());
        // New talkspurt (DTX: ts continued by the silence) restarts cleanly.
        jb.push(ms(t0, 2000), 10, 100 * P, 10);
        assert_eq!(jb.pop(ms(t0, 2000)), Playout::Empty);
        jb.push(ms(t0, 2020), 11, 101 * P, 11);
        assert_eq!(jb.pop(ms(t0, 2020)), Playout::Frame(10));
        assert_eq!(jb.pop(ms(t0, 2040)), Playout::Frame(11));
    }

    #[test]
    fn short_silence_gap_without_loss() {
        // DTX for 100 ms (ts and seq continue: seq +1, ts +6 frames).
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        let mut out = Vec::new();
        for tick in 0..40u64 {
            let now = ms(t0, 20 * tick);
            if tick < 10 {
                jb.push(now, tick, tick as u32 * P, tick);
            } else if tick >= 15 {
                let k = tick - 5;
                jb.push_marked(now, k, tick as u32 * P, tick == 15, tick);
            }
            out.push(jb.pop(now));
        }
        let frames: Vec<u64> = out.iter().cloned().filter_map(frame_of).collect();
        assert_eq!(frames.len(), 34);
        assert!(frames.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn timestamp_wrap_is_transparent() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
        let base = u32::MAX - 10 * P + 1;
        let mut got = Vec::new();
        for k in 0..40u64 {
            jb.push(
                ms(t0, 20 * k),
                65_530 + k,
                base.wrapping_add(k as u32 * P),
                k,
            );
            if let Playout::Frame(f) = jb.pop(ms(t0, 20 * k)) {
                got.push(f);
            }
        }
        assert_eq!(got, (0..39).collect::<Vec<_>>());
    }

    #[test]
    fn arbitrary_input_never_panics() {
        use proptest::prelude::*;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::default();
        runner
            .run(
                &proptest::collection::vec(
                    (
                        0u64..100,
                        any::<u16>(),
                        any::<u32>(),
                        any::<bool>(),
                        any::<bool>(),
                    ),
                    0..300,
                ),
                |ops| {
                    let t0 = Instant::now();
                    let mut jb = JitterBuffer::new(JitterConfig::new(8000, P));
                    let mut t = 0u64;
                    for (dt, seq, ts, marker, is_pop) in ops {
                        t += dt;
                        if is_pop {
                            let _ = jb.pop(ms(t0, t));
                        } else {
                            jb.push_marked(ms(t0, t), seq as u64, ts, marker, 0u8);
                        }
                        prop_assert!(jb.len() <= jb.window);
                    }
                    Ok(())
                },
            )
            .unwrap();
    }
}
