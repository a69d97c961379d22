//! What the benchmark streams: 20 ms frames of a tone, as G.711 µ-law (160 bytes) or Opus
//! (encoded once with libopus at start-up and replayed in a loop), in RTP.

/// Tone frequency: 400 Hz has a 20-sample period at 8 kHz (120 at 48 kHz), so every 20 ms
/// frame holds whole periods and one frame repeats with a continuous phase.
const TONE_HZ: f64 = 400.0;
/// Amplitude (about -10 dBFS).
const AMPLITUDE: f64 = 10_000.0;

/// Linear 16-bit PCM to G.711 µ-law (ITU-T G.711, with the usual bias of 0x84 and clip).
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    // Segment: position of the highest set bit above bit 7.
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// G.711 µ-law back to linear (for the self-check).
#[cfg(test)]
pub fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

fn tone(rate: u32, samples: usize, start: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let t = (start + i) as f64 / rate as f64;
            (AMPLITUDE * (2.0 * std::f64::consts::PI * TONE_HZ * t).sin()).round() as i16
        })
        .collect()
}

/// One 20 ms µ-law frame of the tone (160 bytes).
pub fn pcmu_frame() -> Vec<u8> {
    tone(8000, 160, 0).into_iter().map(ulaw_encode).collect()
}

/// `count` consecutive 20 ms Opus frames of the tone (mono, 48 kHz, VoIP mode, 32 kbit/s).
pub fn opus_frames(count: usize) -> Result<Vec<Vec<u8>>, opus::Error> {
    let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
    enc.set_bitrate(opus::Bitrate::Bits(32_000))?;
    let mut out = Vec::with_capacity(count);
    let mut buf = vec![0u8; 1500];
    for i in 0..count {
        let pcm = tone(48_000, 960, i * 960);
        let n = enc.encode(&pcm, &mut buf)?;
        out.push(buf[..n].to_vec());
    }
    Ok(out)
}

/// Writes a 12-byte RTP header (version 2, no padding, extension or CSRC).
pub fn write_header(buf: &mut [u8], pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (pt & 0x7f) | if marker { 0x80 } else { 0 };
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// `(payload type, payload offset)` of an RTP packet; `None` for RTCP or junk.
pub fn parse(data: &[u8]) -> Option<(u8, usize)> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let pt = data[1] & 0x7f;
    // RTCP multiplexed on the RTP port: packet types 200-204 read as PT 72-76 (RFC 5761).
    if (72..=76).contains(&pt) {
        return None;
    }
    let cc = (data[0] & 0x0f) as usize;
    let mut off = 12 + 4 * cc;
    if data[0] & 0x10 != 0 {
        if data.len() < off + 4 {
            return None;
        }
        let words = u16::from_be_bytes([data[off + 2], data[off + 3]]) as usize;
        off += 4 + 4 * words;
    }
    (off <= data.len()).then_some((pt, off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_round_trip_is_close() {
        for s in [-32_000i16, -1000, -1, 0, 1, 100, 1000, 8000, 32_000] {
            let back = ulaw_decode(ulaw_encode(s)) as i32;
            let err = (back - s as i32).abs();
            assert!(err <= (s as i32).abs() / 16 + 8, "{s} -> {back}");
        }
        assert_eq!(ulaw_encode(0), 0xff);
    }

    #[test]
    fn frames_are_real_audio() {
        let f = pcmu_frame();
        assert_eq!(f.len(), 160);
        let peak = f.iter().map(|u| ulaw_decode(*u).unsigned_abs()).max().unwrap();
        assert!(peak > 9000, "{peak}");
        let o = opus_frames(5).unwrap();
        assert_eq!(o.len(), 5);
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut pcm = vec![0i16; 960];
        for f in &o {
            assert!(f.len() > 10 && f.len() < 200, "{}", f.len());
            assert_eq!(dec.decode(f, &mut pcm, false).unwrap(), 960);
        }
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak > 5000, "{peak}");
    }

    #[test]
    fn header_round_trip() {
        let mut b = [0u8; 20];
        write_header(&mut b, 111, false, 7, 960, 42);
        assert_eq!(parse(&b), Some((111, 12)));
        b[1] = 200;
        assert_eq!(parse(&b), None);
    }
}
