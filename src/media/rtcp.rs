//! RTCP (RFC 3550 §6): parsing and building compound packets, and the
//! receiver/sender statistics that feed SR/RR report blocks (RFC 3550 A.3, A.8).
//!
//! Contract:
//! * Parsing is zero-copy and allocation-free: [`packets`] iterates the packets of
//!   a compound datagram, yielding [`RtcpPacket`] views whose report blocks, SDES
//!   chunks/items and BYE sources are iterators over the validated input bytes.
//!   Every packet is fully validated before it is yielded (version 2, length field
//!   inside the buffer, padding count, per-type body sizes, SDES item lengths), so
//!   the iterators never fail. Parsing never panics. Unknown packet types
//!   (APP, RTPFB, PSFB, XR, ...) are returned as [`RtcpPacket::Other`].
//! * [`validate_compound`] applies the RFC 3550 A.2 compound checks (first packet
//!   SR or RR, padding only on the last packet, lengths add up exactly).
//! * [`RtcpBuilder`] writes SR, RR, SDES CNAME and BYE packets back to back into a
//!   caller buffer (no allocation); it returns an error instead of writing past the
//!   end or encoding more than 31 report blocks/sources.
//! * [`ReceiverStats`] is fed one call per received RTP packet with the arrival
//!   time in RTP clock units, the RTP timestamp and the extended sequence number
//!   (from `rtp::SeqTracker`); it computes expected/lost (cumulative, clamped to
//!   signed 24 bits), fraction lost since the previous report and the interarrival
//!   jitter (integer form of A.8). [`SenderStats`] counts packets/octets for SR.
//! * Time is an input: NTP timestamps, arrival units and DLSR are supplied by the
//!   caller; helpers convert between them.

use std::time::Duration;

/// Sender report.
pub const PT_SR: u8 = 200;
/// Receiver report.
pub const PT_RR: u8 = 201;
/// Source description.
pub const PT_SDES: u8 = 202;
/// Goodbye.
pub const PT_BYE: u8 = 203;
/// Application-defined.
pub const PT_APP: u8 = 204;
/// SDES item type CNAME.
pub const SDES_CNAME: u8 = 1;

const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;
const MAX_COUNT: usize = 31;

/// Why RTCP data could not be parsed or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("RTCP data too short")]
    TooShort,
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    #[error("RTCP length field runs past the end of the buffer")]
    BadLength,
    #[error("invalid RTCP padding")]
    BadPadding,
    #[error("compound RTCP must start with SR or RR, got packet type {0}")]
    BadFirstPacket(u8),
    #[error("malformed RTCP {0} packet")]
    Malformed(&'static str),
    #[error("more than 31 report blocks or sources in one packet")]
    TooManyItems,
    #[error("SDES item or BYE reason longer than 255 bytes")]
    ItemTooLong,
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// SR sender information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp (seconds since 1900 in the high 32 bits, fraction low).
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to the same instant.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative lost packets (signed 24-bit range).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (0 = none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl ReportBlock {
    fn read(b: &[u8]) -> Self {
        let lost_raw = be32(b, 4) & 0x00FF_FFFF;
        ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: b[4],
            // Sign-extend 24 → 32 bits.
            cumulative_lost: ((lost_raw << 8) as i32) >> 8,
            highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            lsr: be32(b, 16),
            dlsr: be32(b, 20),
        }
    }

    fn write(&self, out: &mut [u8]) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4..8].copy_from_slice(&((self.fraction_lost as u32) << 24 | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// Iterator over the report blocks of an SR or RR.
#[derive(Debug, Clone, Copy)]
pub struct ReportBlocks<'a> {
    data: &'a [u8],
}

impl ReportBlocks<'_> {
    /// Number of remaining blocks.
    pub fn len(&self) -> usize {
        self.data.len() / REPORT_BLOCK_LEN
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        if self.data.len() < REPORT_BLOCK_LEN {
            return None;
        }
        let (b, rest) = self.data.split_at(REPORT_BLOCK_LEN);
        self.data = rest;
        Some(ReportBlock::read(b))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    pub kind: u8,
    pub value: &'a [u8],
}

/// Iterator over the items of one SDES chunk.
#[derive(Debug, Clone, Copy)]
pub struct SdesItems<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = SdesItem<'a>;
    fn next(&mut self) -> Option<SdesItem<'a>> {
        // Validated at parse time; stop quietly on anything unexpected.
        let (&kind, rest) = self.data.split_first()?;
        if kind == 0 {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        let value = rest.get(..len as usize)?;
        self.data = &rest[len as usize..];
        Some(SdesItem { kind, value })
    }
}

/// One SDES chunk: an SSRC and its items.
#[derive(Debug, Clone, Copy)]
pub struct SdesChunk<'a> {
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    pub fn items(&self) -> SdesItems<'a> {
        SdesItems { data: self.items }
    }
    /// The CNAME item, if present.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items().find(|i| i.kind == SDES_CNAME).map(|i| i.value)
    }
}

/// Iterator over the chunks of an SDES packet.
#[derive(Debug, Clone, Copy)]
pub struct SdesChunks<'a> {
    data: &'a [u8],
    remaining: u8,
}

/// Length of a validated chunk starting at `data[0]` (SSRC, items, null
/// terminator, padding to 32 bits), or `None` if malformed.
fn sdes_chunk_len(data: &[u8]) -> Option<usize> {
    if data.len() < 4 {
        return None;
    }
    let mut pos = 4;
    loop {
        let kind = *data.get(pos)?;
        if kind == 0 {
            pos += 1;
            // Pad to the next 32-bit boundary; the chunk starts aligned.
            let padded = (pos + 3) & !3;
            return (padded <= data.len()).then_some(padded);
        }
        let len = *data.get(pos + 1)? as usize;
        pos += 2 + len;
        if pos > data.len() {
            return None;
        }
    }
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = SdesChunk<'a>;
    fn next(&mut self) -> Option<SdesChunk<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let len = sdes_chunk_len(self.data)?;
        let chunk = SdesChunk {
            ssrc: be32(self.data, 0),
            items: &self.data[4..len],
        };
        self.data = &self.data[len..];
        self.remaining -= 1;
        Some(chunk)
    }
}

/// Iterator over the SSRC list of a BYE.
#[derive(Debug, Clone, Copy)]
pub struct Ssrcs<'a> {
    data: &'a [u8],
}

impl Iterator for Ssrcs<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.data.len() < 4 {
            return None;
        }
        let v = be32(self.data, 0);
        self.data = &self.data[4..];
        Some(v)
    }
}

/// One RTCP packet of a compound datagram (borrowing the input).
#[derive(Debug, Clone, Copy)]
pub enum RtcpPacket<'a> {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: ReportBlocks<'a>,
    },
    SourceDescription(SdesChunks<'a>),
    Goodbye {
        sources: Ssrcs<'a>,
        reason: Option<&'a [u8]>,
    },
    /// Any other packet type; `body` excludes the 4-byte header and padding.
    Other {
        packet_type: u8,
        count: u8,
        body: &'a [u8],
    },
}

/// Parse the packet at the start of `buf`; returns it, its total length and
/// whether its padding bit was set.
fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, usize, bool), RtcpError> {
    if buf.len() < 4 {
        return Err(RtcpError::TooShort);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let padded = buf[0] & 0x20 != 0;
    let count = buf[0] & 0x1F;
    let pt = buf[1];
    let total = (u16::from_be_bytes([buf[2], buf[3]]) as usize + 1) * 4;
    if total > buf.len() {
        return Err(RtcpError::BadLength);
    }
    let mut end = total;
    if padded {
        let pad = buf[total - 1] as usize;
        if pad == 0 || pad > total - 4 {
            return Err(RtcpError::BadPadding);
        }
        end -= pad;
    }
    let body = &buf[4..end];
    let n = count as usize;
    let packet = match pt {
        PT_SR => {
            let need = 4 + SENDER_INFO_LEN + n * REPORT_BLOCK_LEN;
            if body.len() < need {
                return Err(RtcpError::Malformed("SR"));
            }
            RtcpPacket::SenderReport {
                ssrc: be32(body, 0),
                info: SenderInfo {
                    ntp_timestamp: (be32(body, 4) as u64) << 32 | be32(body, 8) as u64,
                    rtp_timestamp: be32(body, 12),
                    packet_count: be32(body, 16),
                    octet_count: be32(body, 20),
                },
                reports: ReportBlocks {
                    data: &body[24..need],
                },
            }
        }
        PT_RR => {
            let need = 4 + n * REPORT_BLOCK_LEN;
            if body.len() < need {
                return Err(RtcpError::Malformed("RR"));
            }
            RtcpPacket::ReceiverReport {
                ssrc: be32(body, 0),
                reports: ReportBlocks {
                    data: &body[4..need],
                },
            }
        }
        PT_SDES => {
            let mut pos = 0;
            for _ in 0..n {
                pos += sdes_chunk_len(&body[pos..]).ok_or(RtcpError::Malformed("SDES"))?;
            }
            RtcpPacket::SourceDescription(SdesChunks {
                data: body,
                remaining: count,
            })
        }
        PT_BYE => {
            let list = 4 * n;
            if body.len() < list {
                return Err(RtcpError::Malformed("BYE"));
            }
            let reason = if body.len() > list {
                let len = body[list] as usize;
                Some(
                    body.get(list + 1..list + 1 + len)
                        .ok_or(RtcpError::Malformed("BYE"))?,
                )
            } else {
                None
            };
            RtcpPacket::Goodbye {
                sources: Ssrcs {
                    data: &body[..list],
                },
                reason,
            }
        }
        _ => RtcpPacket::Other {
            packet_type: pt,
            count,
            body,
        },
    };
    Ok((packet, total, padded))
}

/// Iterator over the packets of a compound RTCP datagram. Yields an error (and
/// then stops) at the first malformed packet.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match parse_one(self.rest) {
            Ok((p, len, _)) => {
                self.rest = &self.rest[len..];
                Some(Ok(p))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterate the packets of a compound RTCP datagram.
pub fn packets(buf: &[u8]) -> Packets<'_> {
    Packets {
        rest: buf,
        failed: false,
    }
}

/// RFC 3550 A.2 validity checks for a compound packet: every packet parses, the
/// first is SR or RR, only the last one may be padded, lengths add up exactly.
pub fn validate_compound(buf: &[u8]) -> Result<(), RtcpError> {
    if buf.len() < 4 {
        return Err(RtcpError::TooShort);
    }
    if buf[1] != PT_SR && buf[1] != PT_RR {
        return Err(RtcpError::BadFirstPacket(buf[1]));
    }
    let mut rest = buf;
    while !rest.is_empty() {
        let (_, len, padded) = parse_one(rest)?;
        rest = &rest[len..];
        if padded && !rest.is_empty() {
            return Err(RtcpError::BadPadding);
        }
    }
    Ok(())
}

/// Writes RTCP packets back to back into a caller buffer.
#[derive(Debug)]
pub struct RtcpBuilder<'a> {
    out: &'a mut [u8],
    len: usize,
}

impl<'a> RtcpBuilder<'a> {
    pub fn new(out: &'a mut [u8]) -> Self {
        RtcpBuilder { out, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finish and return the compound length.
    pub fn finish(self) -> usize {
        self.len
    }

    /// Reserve a packet with a zeroed body of `body_len` bytes (multiple of 4);
    /// returns the body slice.
    fn packet(&mut self, count: usize, pt: u8, body_len: usize) -> Result<&mut [u8], RtcpError> {
        debug_assert_eq!(body_len % 4, 0);
        if count > MAX_COUNT {
            return Err(RtcpError::TooManyItems);
        }
        let total = 4 + body_len;
        if self.out.len() - self.len < total || total / 4 - 1 > u16::MAX as usize {
            return Err(RtcpError::BufferTooSmall);
        }
        let p = &mut self.out[self.len..self.len + total];
        p[0] = 0x80 | count as u8;
        p[1] = pt;
        p[2..4].copy_from_slice(&((total / 4 - 1) as u16).to_be_bytes());
        p[4..].fill(0);
        self.len += total;
        Ok(&mut p[4..])
    }

    /// Append a sender report.
    pub fn sender_report(
        &mut self,
        ssrc: u32,
        info: &SenderInfo,
        reports: &[ReportBlock],
    ) -> Result<(), RtcpError> {
        let body = self.packet(
            reports.len(),
            PT_SR,
            4 + SENDER_INFO_LEN + reports.len() * REPORT_BLOCK_LEN,
        )?;
        body[0..4].copy_from_slice(&ssrc.to_be_bytes());
        body[4..8].copy_from_slice(&((info.ntp_timestamp >> 32) as u32).to_be_bytes());
        body[8..12].copy_from_slice(&(info.ntp_timestamp as u32).to_be_bytes());
        body[12..16].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
        body[16..20].copy_from_slice(&info.packet_count.to_be_bytes());
        body[20..24].copy_from_slice(&info.octet_count.to_be_bytes());
        for (r, out) in reports
            .iter()
            .zip(body[24..].chunks_exact_mut(REPORT_BLOCK_LEN))
        {
            r.write(out);
        }
        Ok(())
    }

    /// Append a receiver report.
    pub fn receiver_report(&mut self, ssrc: u32, reports: &[ReportBlock]) -> Result<(), RtcpError> {
        let body = self.packet(reports.len(), PT_RR, 4 + reports.len() * REPORT_BLOCK_LEN)?;
        body[0..4].copy_from_slice(&ssrc.to_be_bytes());
        for (r, out) in reports
            .iter()
            .zip(body[4..].chunks_exact_mut(REPORT_BLOCK_LEN))
        {
            r.write(out);
        }
        Ok(())
    }

    /// Append an SDES packet with one chunk carrying a CNAME item.
    pub fn sdes_cname(&mut self, ssrc: u32, cname: &[u8]) -> Result<(), RtcpError> {
        if cname.len() > 255 {
            return Err(RtcpError::ItemTooLong);
        }
        // SSRC + type + length + text + at least one null octet, padded.
        let body_len = (4 + 2 + cname.len() + 1 + 3) & !3;
        let body = self.packet(1, PT_SDES, body_len)?;
        body[0..4].copy_from_slice(&ssrc.to_be_bytes());
        body[4] = SDES_CNAME;
        body[5] = cname.len() as u8;
        body[6..6 + cname.len()].copy_from_slice(cname);
        Ok(())
    }

    /// Append a BYE for `sources` with an optional reason.
    pub fn bye(&mut self, sources: &[u32], reason: Option<&[u8]>) -> Result<(), RtcpError> {
        let reason_len = match reason {
            Some(r) if r.len() > 255 => return Err(RtcpError::ItemTooLong),
            Some(r) => (1 + r.len() + 3) & !3,
            None => 0,
        };
        let body = self.packet(sources.len(), PT_BYE, 4 * sources.len() + reason_len)?;
        for (s, out) in sources.iter().zip(body.chunks_exact_mut(4)) {
            out.copy_from_slice(&s.to_be_bytes());
        }
        if let Some(r) = reason {
            let at = 4 * sources.len();
            body[at] = r.len() as u8;
            body[at + 1..at + 1 + r.len()].copy_from_slice(r);
        }
        Ok(())
    }
}

/// Middle 32 bits of a 64-bit NTP timestamp (the LSR field of a report block).
#[inline]
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in 1/65536 s units (the DLSR field), saturating.
#[inline]
pub fn dlsr_from_duration(d: Duration) -> u32 {
    let units = d.as_secs() as u128 * 65536 + d.subsec_nanos() as u128 * 65536 / 1_000_000_000;
    units.min(u32::MAX as u128) as u32
}

/// Round-trip time from a report block received at NTP-middle time `arrival`
/// (RFC 3550 §6.4.1: A − LSR − DLSR). `None` if the block carries no LSR or the
/// result would be negative.
pub fn round_trip_time(arrival: u32, block: &ReportBlock) -> Option<Duration> {
    if block.lsr == 0 {
        return None;
    }
    let rtt = arrival.wrapping_sub(block.lsr).wrapping_sub(block.dlsr);
    if rtt > 0x8000_0000 {
        return None;
    }
    Some(Duration::from_nanos(rtt as u64 * 1_000_000_000 / 65536))
}

/// Reception statistics for one source (RFC 3550 A.3 and A.8).
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    started: bool,
    base_seq: u64,
    max_seq: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    have_transit: bool,
    transit: i32,
    /// Jitter scaled by 16 (A.8 integer form).
    jitter_q4: u64,
}

impl ReceiverStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget everything (e.g. after `SeqUpdate::Restarted`).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Account one received packet. `arrival` is the arrival time in RTP clock
    /// units (any origin), `rtp_ts` the packet's timestamp, `seq_ext` its extended
    /// sequence number.
    pub fn on_packet(&mut self, arrival: u32, rtp_ts: u32, seq_ext: u64) {
        if !self.started {
            self.started = true;
            self.base_seq = seq_ext;
            self.max_seq = seq_ext;
        } else if seq_ext > self.max_seq {
            self.max_seq = seq_ext;
        }
        self.received += 1;

        let transit = arrival.wrapping_sub(rtp_ts) as i32;
        if self.have_transit {
            let d = transit.wrapping_sub(self.transit).unsigned_abs() as u64;
            // J += (|D| - J) / 16, with J kept scaled by 16.
            self.jitter_q4 = (self.jitter_q4 + d).saturating_sub((self.jitter_q4 + 8) >> 4);
        }
        self.transit = transit;
        self.have_transit = true;
    }

    /// Packets received (duplicates included, as in RFC 3550).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected: highest − base + 1.
    pub fn expected(&self) -> u64 {
        if self.started {
            self.max_seq - self.base_seq + 1
        } else {
            0
        }
    }

    /// Highest extended sequence number seen.
    pub fn highest_seq(&self) -> Option<u64> {
        self.started.then_some(self.max_seq)
    }

    /// Cumulative packets lost, clamped to the signed 24-bit report field.
    pub fn cumulative_lost(&self) -> i32 {
        let lost = self.expected() as i64 - self.received as i64;
        lost.clamp(-0x80_0000, 0x7F_FFFF) as i32
    }

    /// Interarrival jitter in RTP timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4).min(u32::MAX as u64) as u32
    }

    /// Build a report block and start a new fraction-lost interval.
    pub fn report_block(&mut self, ssrc: u32, lsr: u32, dlsr: u32) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            highest_seq: self.max_seq as u32,
            jitter: self.jitter(),
            lsr,
            dlsr,
        }
    }
}

/// Packet and octet counters of a sender, for SR sender info.
#[derive(Debug, Clone, Copy, Default)]
pub struct SenderStats {
    packets: u32,
    octets: u32,
    sent_since_report: bool,
}

impl SenderStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one sent RTP packet with `payload_len` payload octets (header and
    /// padding excluded, per RFC 3550 §6.4.1). Counters wrap as on the wire.
    pub fn on_packet(&mut self, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.sent_since_report = true;
    }

    pub fn packet_count(&self) -> u32 {
        self.packets
    }

    pub fn octet_count(&self) -> u32 {
        self.octets
    }

    /// Whether RTP was sent since the last [`sender_info`](Self::sender_info)
    /// (decides between SR and RR).
    pub fn sent_since_report(&self) -> bool {
        self.sent_since_report
    }

    /// Sender info for an SR at NTP time `ntp`, whose RTP-clock equivalent is
    /// `rtp_ts`.
    pub fn sender_info(&mut self, ntp: u64, rtp_ts: u32) -> SenderInfo {
        self.sent_since_report = false;
        SenderInfo {
            ntp_timestamp: ntp,
            rtp_timestamp: rtp_ts,
            packet_count: self.packets,
            octet_count: self.octets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(ssrc: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 51,
            cumulative_lost: lost,
            highest_seq: 0x0001_0005,
            jitter: 42,
            lsr: 0x1234_5678,
            dlsr: 65536,
        }
    }

    #[test]
    fn build_and_parse_compound() {
        let mut buf = [0u8; 512];
        let mut b = RtcpBuilder::new(&mut buf);
        let info = SenderInfo {
            ntp_timestamp: 0xE000_0000_8000_0000,
            rtp_timestamp: 160_000,
            packet_count: 1000,
            octet_count: 160_000,
        };
        b.sender_report(0xAAAA, &info, &[block(1, 2), block(2, -3)])
            .unwrap();
        b.sdes_cname(0xAAAA, b"sb@host").unwrap();
        b.bye(&[0xAAAA, 0xBBBB], Some(b"hangup")).unwrap();
        let len = b.finish();
        assert_eq!(len % 4, 0);
        let buf = &buf[..len];
        validate_compound(buf).unwrap();

        let pkts: Vec<_> = packets(buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(pkts.len(), 3);
        match pkts[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info: i,
                reports,
            } => {
                assert_eq!(ssrc, 0xAAAA);
                assert_eq!(i, info);
                let r: Vec<_> = reports.collect();
                assert_eq!(r, vec![block(1, 2), block(2, -3)]);
            }
            ref other => panic!("{other:?}"),
        }
        match pkts[1] {
            RtcpPacket::SourceDescription(chunks) => {
                let c: Vec<_> = chunks.collect();
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].ssrc, 0xAAAA);
                assert_eq!(c[0].cname(), Some(&b"sb@host"[..]));
            }
            ref other => panic!("{other:?}"),
        }
        match pkts[2] {
            RtcpPacket::Goodbye { sources, reason } => {
                assert_eq!(sources.collect::<Vec<_>>(), vec![0xAAAA, 0xBBBB]);
                assert_eq!(reason, Some(&b"hangup"[..]));
            }
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rr_and_cname_lengths() {
        for n in 0..8usize {
            let cname = vec![b'x'; n];
            let mut buf = [0u8; 128];
            let mut b = RtcpBuilder::new(&mut buf);
            b.receiver_report(7, &[]).unwrap();
            b.sdes_cname(7, &cname).unwrap();
            let len = b.finish();
            validate_compound(&buf[..len]).unwrap();
            let mut it = packets(&buf[..len]);
            match it.next() {
                Some(Ok(RtcpPacket::ReceiverReport { ssrc: 7, reports })) => {
                    assert!(reports.is_empty())
                }
                other => panic!("{other:?}"),
            }
            match it.next() {
                Some(Ok(RtcpPacket::SourceDescription(mut c))) => {
                    assert_eq!(c.next().unwrap().cname(), Some(&cname[..]));
                }
                other => panic!("{other:?}"),
            }
            assert!(it.next().is_none());
        }
    }

    #[test]
    fn builder_errors() {
        let mut small = [0u8; 20];
        let mut b = RtcpBuilder::new(&mut small);
        assert_eq!(
            b.sender_report(1, &SenderInfo::default(), &[]),
            Err(RtcpError::BufferTooSmall)
        );
        assert_eq!(b.len(), 0);
        let mut big = [0u8; 2048];
        let mut b = RtcpBuilder::new(&mut big);
        assert_eq!(
            b.receiver_report(1, &[block(1, 0); 32]),
            Err(RtcpError::TooManyItems)
        );
        assert_eq!(b.sdes_cname(1, &[b'a'; 256]), Err(RtcpError::ItemTooLong));
        b.receiver_report(1, &[block(1, 0); 31]).unwrap();
    }

    #[test]
    fn parse_errors_and_compound_rules() {
        assert_eq!(validate_compound(&[0x80, 200]), Err(RtcpError::TooShort));
        // BYE first is not a valid compound.
        let mut buf = [0u8; 64];
        let mut b = RtcpBuilder::new(&mut buf);
        b.bye(&[1], None).unwrap();
        let n = b.finish();
        assert_eq!(
            validate_compound(&buf[..n]),
            Err(RtcpError::BadFirstPacket(PT_BYE))
        );
        // Length beyond buffer.
        assert!(matches!(
            packets(&[0x80, 201, 0, 9, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::BadLength))
        ));
        // RR claiming one block without room for it.
        assert!(matches!(
            packets(&[0x81, 201, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::Malformed("RR")))
        ));
        // Bad version.
        assert!(matches!(
            packets(&[0x40, 201, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::BadVersion(1)))
        ));
        // Padding on a non-last packet.
        let mut p = vec![0xA0, 201, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4];
        p.extend_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 2]);
        assert_eq!(validate_compound(&p), Err(RtcpError::BadPadding));
        assert!(validate_compound(&p[..12]).is_ok());
        // SDES item running past the packet.
        assert!(matches!(
            packets(&[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', 0]).next(),
            Some(Err(RtcpError::Malformed("SDES")))
        ));
        // Unknown types pass through.
        match packets(&[0x81, 205, 0, 1, 1, 2, 3, 4]).next() {
            Some(Ok(RtcpPacket::Other {
                packet_type: 205,
                count: 1,
                body,
            })) => assert_eq!(body, &[1, 2, 3, 4]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cumulative_lost_sign_and_clamp() {
        let mut buf = [0u8; 64];
        let mut b = RtcpBuilder::new(&mut buf);
        b.receiver_report(1, &[block(2, -1), block(3, 10_000_000)])
            .unwrap();
        let n = b.finish();
        let Some(Ok(RtcpPacket::ReceiverReport { reports, .. })) = packets(&buf[..n]).next() else {
            panic!()
        };
        let v: Vec<_> = reports.map(|r| r.cumulative_lost).collect();
        assert_eq!(v, vec![-1, 0x7F_FFFF]);
    }

    #[test]
    fn receiver_stats_two_losses() {
        let mut s = ReceiverStats::new();
        for seq in 0..10u64 {
            if seq == 3 || seq == 7 {
                continue;
            }
            s.on_packet(1000 + seq as u32 * 160, seq as u32 * 160, seq);
        }
        assert_eq!(s.expected(), 10);
        assert_eq!(s.received(), 8);
        assert_eq!(s.cumulative_lost(), 2);
        let rb = s.report_block(9, 0, 0);
        assert_eq!(rb.fraction_lost, (2 * 256 / 10) as u8);
        assert_eq!(rb.cumulative_lost, 2);
        assert_eq!(rb.highest_seq, 9);
        assert_eq!(rb.jitter, 0);
        // Next interval: no loss → fraction 0, cumulative stays.
        for seq in 10..20u64 {
            s.on_packet(1000 + seq as u32 * 160, seq as u32 * 160, seq);
        }
        let rb = s.report_block(9, 0, 0);
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, 2);
        // Duplicates make the interval loss negative → fraction 0, cumulative −.
        for _ in 0..5 {
            s.on_packet(0, 0, 19);
        }
        let rb = s.report_block(9, 0, 0);
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, -3);
    }

    #[test]
    fn receiver_stats_extended_highest_across_wrap() {
        let mut s = ReceiverStats::new();
        s.on_packet(0, 0, 65534);
        s.on_packet(160, 160, 65535);
        s.on_packet(320, 320, 65537); // 65536 lost
        let rb = s.report_block(1, 0, 0);
        assert_eq!(rb.highest_seq, 0x0001_0001);
        assert_eq!(rb.cumulative_lost, 1);
        assert_eq!(rb.fraction_lost, (256 / 4) as u8);
    }

    #[test]
    fn jitter_constant_transit_is_zero() {
        let mut s = ReceiverStats::new();
        for i in 0..1000u32 {
            s.on_packet(
                i.wrapping_mul(160).wrapping_add(u32::MAX - 5000),
                i * 160,
                i as u64,
            );
        }
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn jitter_alternating_10ms_converges_to_mean_deviation() {
        // 8 kHz: packets alternately 10 ms early and 10 ms late → |D| = 160.
        let mut s = ReceiverStats::new();
        for i in 0..500u32 {
            let dev: i32 = if i % 2 == 0 { 80 } else { -80 };
            let arrival = (10_000 + i * 160) as i32 + dev;
            s.on_packet(arrival as u32, i * 160, i as u64);
        }
        let j = s.jitter();
        assert!((150..=160).contains(&j), "jitter {j}");
    }

    #[test]
    fn sender_stats_and_time_helpers() {
        let mut s = SenderStats::new();
        assert!(!s.sent_since_report());
        for _ in 0..50 {
            s.on_packet(160);
        }
        let info = s.sender_info(0x0000_0001_8000_0000, 999);
        assert_eq!((info.packet_count, info.octet_count), (50, 8000));
        assert!(!s.sent_since_report());
        assert_eq!(ntp_middle(0x1234_5678_9ABC_DEF0), 0x5678_9ABC);
        assert_eq!(dlsr_from_duration(Duration::from_millis(1500)), 98304);
        let rb = ReportBlock {
            lsr: 0x0001_0000,
            dlsr: 0x0000_8000,
            ..Default::default()
        };
        // Arrival 1.75 s after LSR's second, DLSR 0.5 s → RTT 0.25 s.
        assert_eq!(
            round_trip_time(0x0001_0000 + 0x0000_C000, &rb),
            Some(Duration::from_millis(250))
        );
        assert_eq!(round_trip_time(0x0001_0000, &rb), None);
    }

    proptest! {
        #[test]
        fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = validate_compound(&data);
            for p in packets(&data) {
                match p {
                    Ok(RtcpPacket::SourceDescription(chunks)) => {
                        for c in chunks { for i in c.items() { let _ = i.value.len(); } }
                    }
                    Ok(RtcpPacket::SenderReport { reports, .. })
                    | Ok(RtcpPacket::ReceiverReport { reports, .. }) => { let _ = reports.count(); }
                    Ok(RtcpPacket::Goodbye { sources, .. }) => { let _ = sources.count(); }
                    _ => {}
                }
            }
        }

        #[test]
        fn report_block_round_trip(ssrc in any::<u32>(), fl in any::<u8>(),
                                   lost in -0x80_0000i32..=0x7F_FFFF, hs in any::<u32>(),
                                   j in any::<u32>(), lsr in any::<u32>(), dlsr in any::<u32>()) {
            let rb = ReportBlock { ssrc, fraction_lost: fl, cumulative_lost: lost, highest_seq: hs, jitter: j, lsr, dlsr };
            let mut out = [0u8; 24];
            rb.write(&mut out);
            prop_assert_eq!(ReportBlock::read(&out), rb);
        }
    }
}
