//! RTP packet headers (RFC 3550 §5), sequence extension (RFC 3550 A.1) and
//! outgoing-stream continuity for the relay fast path.
//!
//! Contract:
//! * Everything here is sans-IO and allocation-free: functions work on caller
//!   slices, hold no clock and draw no random numbers (initial SSRC/sequence/
//!   timestamp values are supplied by the caller).
//! * [`parse`] validates version 2, the fixed header length, the CSRC list, the
//!   header extension length and the padding count, and returns the header plus the
//!   payload byte range with padding removed. It never panics.
//! * [`write_header`] writes a 12-byte header (V=2, CC=0, X=0) and [`rewrite`]
//!   patches payload type, sequence, timestamp and SSRC in place, keeping the marker
//!   bit. Both panic only if the buffer is shorter than 12 bytes (a precondition:
//!   the relay always parses first).
//! * [`is_rtcp`] is the RFC 5761 demultiplexer (second byte 192..=223 → RTCP).
//! * [`SeqTracker`] implements the RFC 3550 A.1 validity rules (probation,
//!   `MAX_DROPOUT` 3000, `MAX_MISORDER` 100, restart after two sequential packets
//!   following a large jump) and extends 16-bit sequence numbers to `u64`.
//! * [`Rewriter`] makes the stream we *send* on one leg continuous although its
//!   input changes (new SSRC after re-INVITE/transfer, relay ↔ prompt playback):
//!   our SSRC, sequence numbers continuing at +1 and timestamps advanced by the
//!   wall-clock gap (a sample count supplied by the caller, or derived from an
//!   `Instant` and the clock rate), marker bit set on each discontinuity. Within one
//!   source, gaps and reordering are preserved (offset mapping), so downstream loss
//!   statistics and jitter buffers still see the truth.

use std::ops::Range;
use std::time::Instant;

/// Length of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;
/// RFC 3550 A.1: largest forward jump still accepted as in-sequence.
pub const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: largest backward step still treated as reordering/duplicate.
pub const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// Decoded fixed RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    pub has_extension: bool,
    pub padding: bool,
}

/// Why a buffer is not a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("packet of {0} bytes is shorter than the 12-byte RTP header")]
    TooShort(usize),
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    #[error("CSRC list of {0} entries runs past the end of the packet")]
    CsrcOverflow(u8),
    #[error("header extension runs past the end of the packet")]
    ExtensionOverflow,
    #[error("invalid padding count {0}")]
    BadPadding(u8),
}

/// Parse an RTP packet. Returns the header and the payload range (after the CSRC
/// list and extension, with padding removed).
#[inline]
pub fn parse(buf: &[u8]) -> Result<(RtpHeader, Range<usize>), RtpError> {
    if buf.len() < RTP_HEADER_LEN {
        return Err(RtpError::TooShort(buf.len()));
    }
    let b0 = buf[0];
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let csrc_count = b0 & 0x0F;
    let b1 = buf[1];

    let mut start = RTP_HEADER_LEN + 4 * csrc_count as usize;
    if start > buf.len() {
        return Err(RtpError::CsrcOverflow(csrc_count));
    }
    if has_extension {
        if start + 4 > buf.len() {
            return Err(RtpError::ExtensionOverflow);
        }
        let words = u16::from_be_bytes([buf[start + 2], buf[start + 3]]) as usize;
        start += 4 + 4 * words;
        if start > buf.len() {
            return Err(RtpError::ExtensionOverflow);
        }
    }
    let mut end = buf.len();
    if padding {
        let count = buf[end - 1];
        if count == 0 || count as usize > end - start {
            return Err(RtpError::BadPadding(count));
        }
        end -= count as usize;
    }
    let header = RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7F,
        sequence: u16::from_be_bytes([buf[2], buf[3]]),
        timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        csrc_count,
        has_extension,
        padding,
    };
    Ok((header, start..end))
}

/// Write a 12-byte RTP header into `out` and return 12.
///
/// CC and X are written as 0 (no CSRC list or extension is written, whatever
/// `h.csrc_count`/`h.has_extension` say); P is copied from `h.padding`, the caller
/// then appends the padding itself.
///
/// # Panics
/// If `out` is shorter than 12 bytes.
#[inline]
pub fn write_header(h: &RtpHeader, out: &mut [u8]) -> usize {
    let out = &mut out[..RTP_HEADER_LEN];
    out[0] = 0x80 | (u8::from(h.padding) << 5);
    out[1] = (u8::from(h.marker) << 7) | (h.payload_type & 0x7F);
    out[2..4].copy_from_slice(&h.sequence.to_be_bytes());
    out[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    RTP_HEADER_LEN
}

/// Relay fast path: rewrite payload type, sequence, timestamp and SSRC in place.
/// The marker bit and everything after byte 12 are left untouched.
///
/// # Panics
/// If `buf` is shorter than 12 bytes.
#[inline]
pub fn rewrite(buf: &mut [u8], pt: u8, seq: u16, ts: u32, ssrc: u32) {
    let b = &mut buf[..RTP_HEADER_LEN];
    b[1] = (b[1] & 0x80) | (pt & 0x7F);
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b[4..8].copy_from_slice(&ts.to_be_bytes());
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Set or clear the marker bit in place.
///
/// # Panics
/// If `buf` is empty or has fewer than 2 bytes.
#[inline]
pub fn set_marker(buf: &mut [u8], marker: bool) {
    buf[1] = (buf[1] & 0x7F) | (u8::from(marker) << 7);
}

/// RFC 5761 demultiplexing of RTP and RTCP on one port: RTCP if the second byte
/// (RTCP packet type / RTP M+PT) is in 192..=223.
#[inline]
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

/// Result of feeding one sequence number to a [`SeqTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqUpdate {
    /// Valid packet (in order, reordered or duplicate); extended sequence number.
    Accepted(u64),
    /// The source restarted its numbering (two sequential packets after a large
    /// jump). The tracker re-based: the extended number starts again at the 16-bit
    /// value. Receiver statistics for the source should be reset.
    Restarted(u64),
    /// Source still in probation (RFC 3550 A.1 `MIN_SEQUENTIAL`); not yet valid.
    Probation,
    /// Large jump not (yet) confirmed, or a stale packet from before the first one.
    Rejected,
}

/// Extends 16-bit RTP sequence numbers across wrap-around (RFC 3550 A.1).
#[derive(Debug, Clone)]
pub struct SeqTracker {
    started: bool,
    max_seq: u16,
    /// Number of wraps of the 16-bit sequence space.
    cycles: u64,
    bad_seq: u32,
    probation: u8,
    min_sequential: u8,
}

impl Default for SeqTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SeqTracker {
    /// RFC 3550 A.1 default: two sequential packets before a source is valid.
    pub const DEFAULT_MIN_SEQUENTIAL: u8 = 2;

    /// Tracker with the RFC default probation (the first packet is not accepted).
    pub fn new() -> Self {
        Self::with_min_sequential(Self::DEFAULT_MIN_SEQUENTIAL)
    }

    /// Tracker requiring `n` sequential packets before accepting a source;
    /// `n <= 1` accepts the very first packet.
    pub fn with_min_sequential(n: u8) -> Self {
        SeqTracker {
            started: false,
            max_seq: 0,
            cycles: 0,
            bad_seq: SEQ_MOD + 1,
            probation: 0,
            min_sequential: n.max(1),
        }
    }

    /// Forget the source entirely.
    pub fn reset(&mut self) {
        *self = Self::with_min_sequential(self.min_sequential);
    }

    /// Highest extended sequence number accepted so far.
    pub fn max_ext(&self) -> Option<u64> {
        (self.started && self.probation == 0).then(|| self.ext(self.max_seq))
    }

    fn init(&mut self, seq: u16) {
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = SEQ_MOD + 1;
    }

    #[inline]
    fn ext(&self, seq: u16) -> u64 {
        (self.cycles << 16) | seq as u64
    }

    /// Feed the sequence number of a received packet.
    #[inline]
    pub fn update(&mut self, seq: u16) -> SeqUpdate {
        if !self.started {
            self.started = true;
            self.init(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = self.min_sequential;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    return SeqUpdate::Accepted(self.ext(seq));
                }
            } else {
                self.probation = self.min_sequential - 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    // min_sequential == 1 cannot get here (first packet always
                    // matches), but keep the state consistent anyway.
                    self.init(seq);
                    return SeqUpdate::Accepted(self.ext(seq));
                }
            }
            return SeqUpdate::Probation;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1;
            }
            self.max_seq = seq;
            SeqUpdate::Accepted(self.ext(seq))
        } else if udelta as u32 <= SEQ_MOD - MAX_MISORDER as u32 {
            if seq as u32 == self.bad_seq {
                // Two sequential packets after a big jump: the source restarted.
                self.init(seq);
                SeqUpdate::Restarted(self.ext(seq))
            } else {
                self.bad_seq = (seq as u32 + 1) & (SEQ_MOD - 1);
                SeqUpdate::Rejected
            }
        } else if seq <= self.max_seq {
            // Duplicate or reordered within the current cycle.
            SeqUpdate::Accepted(self.ext(seq))
        } else if self.cycles > 0 {
            // Reordered from before the last wrap.
            SeqUpdate::Accepted(((self.cycles - 1) << 16) | seq as u64)
        } else {
            SeqUpdate::Rejected
        }
    }
}

/// What [`Rewriter::rewrite`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewritten {
    /// Header rewritten in place; forward the packet.
    Forward {
        sequence: u16,
        timestamp: u32,
        marker: bool,
        /// This packet starts a new input source (or is the very first).
        discontinuity: bool,
    },
    /// A late packet of the source we just switched away from; drop it.
    Stale,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    in_ssrc: u32,
    seq_off: u16,
    ts_off: u32,
    max_in_seq: u16,
    max_in_ts: u32,
    /// Timestamp increment between consecutive packets (0 = unknown).
    step: u32,
}

impl Mapping {
    fn max_out_seq(&self) -> u16 {
        self.max_in_seq.wrapping_add(self.seq_off)
    }
    fn max_out_ts(&self) -> u32 {
        self.max_in_ts.wrapping_add(self.ts_off)
    }
}

/// Keeps one leg's outgoing RTP stream continuous across input source changes.
///
/// Within one input source the mapping is a fixed offset (sequence and
/// timestamp), so gaps and reordering pass through unchanged. When the input
/// SSRC changes, the sequence number jumps (RFC 3550 A.1 rules) or
/// [`force_discontinuity`](Self::force_discontinuity) was called, a new offset
/// is chosen so that the next packet gets `last_seq + 1` and
/// `last_ts + max(gap, frame step, 1)`, and its marker bit is set.
#[derive(Debug, Clone)]
pub struct Rewriter {
    ssrc: u32,
    first_seq: u16,
    first_ts: u32,
    cur: Option<Mapping>,
    /// Previous input source and its highest sequence number, to drop its
    /// stragglers instead of flip-flopping.
    prev: Option<(u32, u16)>,
    force: bool,
    last_sent: Option<Instant>,
}

impl Rewriter {
    /// `ssrc`, `initial_seq` and `initial_ts` are our outgoing values (the caller
    /// picks them at random, per RFC 3550).
    pub fn new(ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Rewriter {
            ssrc,
            first_seq: initial_seq,
            first_ts: initial_ts,
            cur: None,
            prev: None,
            force: false,
            last_sent: None,
        }
    }

    /// Our outgoing SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number and timestamp of the highest packet sent so far.
    pub fn last_sent(&self) -> Option<(u16, u32)> {
        self.cur.map(|m| (m.max_out_seq(), m.max_out_ts()))
    }

    /// Treat the next packet as a new source even if its SSRC is unchanged
    /// (e.g. switching between relay and locally generated prompt packets that
    /// happen to share an SSRC).
    pub fn force_discontinuity(&mut self) {
        self.force = true;
    }

    /// Rewrite `buf` (the packet `hdr` was parsed from) in place for sending with
    /// payload type `out_pt`. `gap_samples` is the wall-clock time since the
    /// previous packet sent on this leg, in timestamp units of the stream; it is
    /// only used at a discontinuity.
    ///
    /// # Panics
    /// If `buf` is shorter than 12 bytes.
    pub fn rewrite(
        &mut self,
        buf: &mut [u8],
        hdr: &RtpHeader,
        out_pt: u8,
        gap_samples: u32,
    ) -> Rewritten {
        let discontinuity = match &self.cur {
            None => true,
            Some(m) if m.in_ssrc != hdr.ssrc => {
                if let Some((prev_ssrc, prev_max)) = self.prev {
                    if prev_ssrc == hdr.ssrc && hdr.sequence.wrapping_sub(prev_max) as i16 <= 0 {
                        return Rewritten::Stale;
                    }
                }
                true
            }
            Some(m) => self.force || is_seq_jump(hdr.sequence, m.max_in_seq),
        };

        if discontinuity {
            let (seq, ts, step) = match &self.cur {
                None => (self.first_seq, self.first_ts, 0),
                Some(m) => {
                    let advance = gap_samples.max(m.step).max(1);
                    (
                        m.max_out_seq().wrapping_add(1),
                        m.max_out_ts().wrapping_add(advance),
                        m.step,
                    )
                }
            };
            if let Some(m) = &self.cur {
                if m.in_ssrc != hdr.ssrc {
                    self.prev = Some((m.in_ssrc, m.max_in_seq));
                }
            }
            self.cur = Some(Mapping {
                in_ssrc: hdr.ssrc,
                seq_off: seq.wrapping_sub(hdr.sequence),
                ts_off: ts.wrapping_sub(hdr.timestamp),
                max_in_seq: hdr.sequence,
                max_in_ts: hdr.timestamp,
                step,
            });
            self.force = false;
            rewrite(buf, out_pt, seq, ts, self.ssrc);
            set_marker(buf, true);
            return Rewritten::Forward {
                sequence: seq,
                timestamp: ts,
                marker: true,
                discontinuity: true,
            };
        }

        let Some(m) = self.cur.as_mut() else {
            // Unreachable: `discontinuity` is true whenever `cur` is None.
            return Rewritten::Stale;
        };
        let d = hdr.sequence.wrapping_sub(m.max_in_seq) as i16;
        if d > 0 {
            if d == 1 {
                let step = hdr.timestamp.wrapping_sub(m.max_in_ts);
                if step > 0 && step < 1 << 20 {
                    m.step = step;
                }
            }
            m.max_in_seq = hdr.sequence;
            m.max_in_ts = hdr.timestamp;
        }
        let seq = hdr.sequence.wrapping_add(m.seq_off);
        let ts = hdr.timestamp.wrapping_add(m.ts_off);
        rewrite(buf, out_pt, seq, ts, self.ssrc);
        Rewritten::Forward {
            sequence: seq,
            timestamp: ts,
            marker: hdr.marker,
            discontinuity: false,
        }
    }

    /// Like [`rewrite`](Self::rewrite), deriving the gap from the time of the
    /// previous forwarded packet and the stream's `clock_rate` (Hz).
    pub fn rewrite_at(
        &mut self,
        buf: &mut [u8],
        hdr: &RtpHeader,
        out_pt: u8,
        now: Instant,
        clock_rate: u32,
    ) -> Rewritten {
        let gap = match self.last_sent {
            Some(prev) => {
                let nanos = now.saturating_duration_since(prev).as_nanos();
                let samples = nanos * clock_rate as u128 / 1_000_000_000;
                samples.min(u32::MAX as u128 / 2) as u32
            }
            None => 0,
        };
        let r = self.rewrite(buf, hdr, out_pt, gap);
        if matches!(r, Rewritten::Forward { .. }) {
            self.last_sent = Some(now);
        }
        r
    }
}

/// RFC 3550 A.1: a forward jump of `MAX_DROPOUT` or more that is not a small
/// backward step (reordering).
#[inline]
fn is_seq_jump(seq: u16, max_seq: u16) -> bool {
    let udelta = seq.wrapping_sub(max_seq);
    udelta >= MAX_DROPOUT && (udelta as u32) <= SEQ_MOD - MAX_MISORDER as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(h: &RtpHeader, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        write_header(h, &mut v);
        v.extend_from_slice(payload);
        v
    }

    fn hdr(seq: u16, ts: u32, ssrc: u32) -> RtpHeader {
        RtpHeader {
            payload_type: 0,
            sequence: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        }
    }

    #[test]
    fn parse_write_round_trip() {
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xBEEF,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            ..Default::default()
        };
        let pkt = packet(&h, &[1, 2, 3, 4]);
        assert_eq!(pkt[0], 0x80);
        assert_eq!(pkt[1], 0x88);
        let (p, range) = parse(&pkt).unwrap();
        assert_eq!(p, h);
        assert_eq!(&pkt[range], &[1, 2, 3, 4]);
    }

    #[test]
    fn parse_csrc_extension_padding() {
        let mut pkt = vec![0xB2u8, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]; // V2 P X CC=2
        pkt.extend_from_slice(&[0, 0, 0, 10, 0, 0, 0, 11]); // CSRCs
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // ext, 1 word
        pkt.extend_from_slice(&[7, 7, 7]); // payload
        pkt.extend_from_slice(&[0, 0, 3]); // padding, 3 bytes
        let (h, range) = parse(&pkt).unwrap();
        assert!(h.padding && h.has_extension);
        assert_eq!(h.csrc_count, 2);
        assert_eq!(range, 28..31);
        assert_eq!(&pkt[range], &[7, 7, 7]);
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::TooShort(11)));
        let mut p = vec![0u8; 12];
        p[0] = 0x40;
        assert_eq!(parse(&p), Err(RtpError::BadVersion(1)));
        p[0] = 0x81; // one CSRC, none present
        assert_eq!(parse(&p), Err(RtpError::CsrcOverflow(1)));
        p[0] = 0x90; // extension header missing
        assert_eq!(parse(&p), Err(RtpError::ExtensionOverflow));
        let mut e = p.clone();
        e.extend_from_slice(&[0, 0, 0, 2, 1, 2, 3, 4]); // claims 2 words, has 1
        assert_eq!(parse(&e), Err(RtpError::ExtensionOverflow));
        p[0] = 0xA0;
        p[11] = 0; // padding count 0
        assert_eq!(parse(&p), Err(RtpError::BadPadding(0)));
        let mut q = p.clone();
        q.extend_from_slice(&[1, 5]); // 5 > 2 bytes after header
        assert_eq!(parse(&q), Err(RtpError::BadPadding(5)));
        let mut ok = p.clone();
        ok.extend_from_slice(&[1, 2]); // padding 2 = whole payload
        assert_eq!(parse(&ok).unwrap().1, 12..12);
    }

    #[test]
    fn rewrite_in_place_keeps_marker_and_payload() {
        let h = RtpHeader {
            marker: true,
            payload_type: 0,
            sequence: 1,
            timestamp: 2,
            ssrc: 3,
            ..Default::default()
        };
        let mut pkt = packet(&h, &[9, 8, 7]);
        rewrite(&mut pkt, 101, 500, 600, 700);
        let (p, r) = parse(&pkt).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (101, 500, 600, 700)
        );
        assert_eq!(&pkt[r], &[9, 8, 7]);
        set_marker(&mut pkt, false);
        assert!(!parse(&pkt).unwrap().0.marker);
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8])); // marker + PCMA = 136
        assert!(!is_rtcp(&[0x80]));
    }

    #[test]
    fn seq_probation_then_wrap() {
        let mut t = SeqTracker::new();
        assert_eq!(t.update(65533), SeqUpdate::Probation);
        assert_eq!(t.update(65534), SeqUpdate::Accepted(65534));
        assert_eq!(t.update(65535), SeqUpdate::Accepted(65535));
        assert_eq!(t.update(0), SeqUpdate::Accepted(65536));
        assert_eq!(t.update(1), SeqUpdate::Accepted(65537));
        // Reordered from before the wrap.
        assert_eq!(t.update(65535), SeqUpdate::Accepted(65535));
        // Duplicate.
        assert_eq!(t.update(1), SeqUpdate::Accepted(65537));
        // Gap within MAX_DROPOUT.
        assert_eq!(t.update(1000), SeqUpdate::Accepted(65536 + 1000));
        assert_eq!(t.max_ext(), Some(65536 + 1000));
    }

    #[test]
    fn seq_probation_resets_on_non_sequential() {
        let mut t = SeqTracker::new();
        assert_eq!(t.update(10), SeqUpdate::Probation);
        assert_eq!(t.update(20), SeqUpdate::Probation);
        assert_eq!(t.update(21), SeqUpdate::Accepted(21));
        let mut t1 = SeqTracker::with_min_sequential(1);
        assert_eq!(t1.update(7), SeqUpdate::Accepted(7));
    }

    #[test]
    fn seq_restart_detection() {
        let mut t = SeqTracker::with_min_sequential(1);
        for s in 100..200u16 {
            assert_eq!(t.update(s), SeqUpdate::Accepted(s as u64));
        }
        // Big jump: rejected once, then accepted as restart if sequential.
        assert_eq!(t.update(40000), SeqUpdate::Rejected);
        assert_eq!(t.update(40001), SeqUpdate::Restarted(40001));
        assert_eq!(t.update(40002), SeqUpdate::Accepted(40002));
        // A lone stray jump does not restart.
        assert_eq!(t.update(9000), SeqUpdate::Rejected);
        assert_eq!(t.update(40003), SeqUpdate::Accepted(40003));
        // Misorder limit: less than 100 back is reordering, 100 or more a jump.
        assert_eq!(t.update(40003 - 99), SeqUpdate::Accepted(40003 - 99));
        assert_eq!(t.update(40003 - 100), SeqUpdate::Rejected);
    }

    #[test]
    fn seq_stale_before_start_rejected() {
        let mut t = SeqTracker::with_min_sequential(1);
        assert_eq!(t.update(5), SeqUpdate::Accepted(5));
        assert_eq!(t.update(65530), SeqUpdate::Rejected);
    }

    fn feed(rw: &mut Rewriter, h: &RtpHeader, gap: u32) -> (Rewritten, RtpHeader) {
        let mut pkt = packet(h, &[0; 160]);
        let r = rw.rewrite(&mut pkt, h, 0, gap);
        (r, parse(&pkt).unwrap().0)
    }

    #[test]
    fn rewriter_continuity_across_source_change() {
        let mut rw = Rewriter::new(0xAAAA, 1000, 50_000);
        // Source A: seq 10.., ts 8000..
        for i in 0..5u16 {
            let (r, out) = feed(&mut rw, &hdr(10 + i, 8000 + 160 * i as u32, 1), 160);
            assert_eq!(out.ssrc, 0xAAAA);
            assert_eq!(out.sequence, 1000 + i);
            assert_eq!(out.timestamp, 50_000 + 160 * i as u32);
            assert_eq!(out.marker, i == 0);
            assert!(
                matches!(r, Rewritten::Forward { discontinuity, .. } if discontinuity == (i == 0))
            );
        }
        // Source B after 100 ms of silence (800 samples at 8 kHz).
        let (r, out) = feed(&mut rw, &hdr(40000, 123_456, 2), 800);
        assert!(matches!(
            r,
            Rewritten::Forward {
                discontinuity: true,
                ..
            }
        ));
        assert!(out.marker);
        assert_eq!(out.sequence, 1005);
        assert_eq!(out.timestamp, 50_000 + 4 * 160 + 800);
        let (_, out) = feed(&mut rw, &hdr(40001, 123_616, 2), 160);
        assert!(!out.marker);
        assert_eq!(out.sequence, 1006);
        assert_eq!(out.timestamp, 50_000 + 4 * 160 + 800 + 160);
        // Straggler from A is dropped, not treated as a switch back.
        let mut pkt = packet(&hdr(13, 8000 + 480, 1), &[0; 4]);
        assert_eq!(
            rw.rewrite(&mut pkt, &hdr(13, 8000 + 480, 1), 0, 0),
            Rewritten::Stale
        );
        // Immediate switch (gap 0) still advances by one frame step.
        let (_, out) = feed(&mut rw, &hdr(7, 0, 3), 0);
        assert_eq!(out.sequence, 1007);
        assert_eq!(out.timestamp, 50_000 + 4 * 160 + 800 + 160 + 160);
    }

    #[test]
    fn rewriter_preserves_gaps_and_reordering() {
        let mut rw = Rewriter::new(9, 65534, u32::MAX - 200);
        let (_, a) = feed(&mut rw, &hdr(100, 0, 1), 0);
        let (_, c) = feed(&mut rw, &hdr(102, 320, 1), 0);
        let (_, b) = feed(&mut rw, &hdr(101, 160, 1), 0);
        assert_eq!(a.sequence, 65534);
        assert_eq!(b.sequence, 65535);
        assert_eq!(c.sequence, 0);
        assert_eq!(c.timestamp, (u32::MAX - 200).wrapping_add(320));
        // Gap of two packets passes through.
        let (_, e) = feed(&mut rw, &hdr(105, 800, 1), 0);
        assert_eq!(e.sequence, 3);
        let (_, f) = feed(&mut rw, &hdr(106, 960, 1), 0);
        assert_eq!(f.sequence, 4);
        // Sequence jump within one SSRC → discontinuity, advancing one frame step.
        let (r, d) = feed(&mut rw, &hdr(30000, 99, 1), 0);
        assert!(matches!(
            r,
            Rewritten::Forward {
                discontinuity: true,
                ..
            }
        ));
        assert_eq!(d.sequence, 5);
        assert_eq!(d.timestamp, (u32::MAX - 200).wrapping_add(960 + 160));
    }

    #[test]
    fn rewriter_forced_discontinuity_and_instant_gap() {
        let t0 = Instant::now();
        let mut rw = Rewriter::new(5, 0, 0);
        let h = hdr(1, 1000, 77);
        let mut pkt = packet(&h, &[0; 4]);
        rw.rewrite_at(&mut pkt, &h, 0, t0, 8000);
        let h2 = hdr(2, 1160, 77);
        let mut pkt = packet(&h2, &[0; 4]);
        rw.rewrite_at(
            &mut pkt,
            &h2,
            0,
            t0 + std::time::Duration::from_millis(20),
            8000,
        );
        rw.force_discontinuity();
        let h3 = hdr(500, 0, 77); // prompt player, same SSRC by accident
        let mut pkt = packet(&h3, &[0; 4]);
        let r = rw.rewrite_at(
            &mut pkt,
            &h3,
            0,
            t0 + std::time::Duration::from_millis(520),
            8000,
        );
        assert_eq!(
            r,
            Rewritten::Forward {
                sequence: 2,
                timestamp: 160 + 4000,
                marker: true,
                discontinuity: true
            }
        );
        assert_eq!(rw.last_sent(), Some((2, 4160)));
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((_, r)) = parse(&data) {
                prop_assert!(r.start <= r.end && r.end <= data.len());
            }
        }

        #[test]
        fn seq_ext_monotonic_for_in_order(start in any::<u16>(), n in 1usize..3000) {
            let mut t = SeqTracker::with_min_sequential(1);
            let mut prev = None;
            for i in 0..n {
                let s = start.wrapping_add(i as u16);
                match t.update(s) {
                    SeqUpdate::Accepted(e) => {
                        if let Some(p) = prev { prop_assert_eq!(e, p + 1); }
                        prop_assert_eq!(e as u16, s);
                        prev = Some(e);
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
        }
    }
}
