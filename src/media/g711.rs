//! G.711 µ-law (PCMU) and A-law (PCMA) companding, ITU-T G.711.
//!
//! Contract:
//! * Linear samples are 16-bit signed PCM. µ-law works on the 14 most significant
//!   bits and A-law on the 13 most significant bits, exactly as G.711 specifies
//!   (segment/mantissa quantisation, µ-law bias of 33 in the 14-bit domain, A-law
//!   even-bit inversion with `0x55`). Decoded values are the G.711 reconstruction
//!   levels (interval mid-points) scaled to 16 bits, so µ-law decodes to
//!   `±(0..=32124)` and A-law to `±(8..=32256)`.
//! * Decoding uses 256-entry tables computed at compile time; encoding is pure
//!   arithmetic (a leading-zero count finds the segment), no tables, no branches on
//!   data beyond the sign.
//! * `encode(decode(c)) == c` for every A-law code and for every µ-law code except
//!   `0x7F` ("negative zero", which decodes to 0 and re-encodes as `0xFF`).
//! * PCMU↔PCMA byte transcoding uses two 256-entry tables computed at compile time
//!   by going through the linear domain (decode, then encode with the other law).
//!   They are *not* the G.711 Table 3/4 code-to-code mappings (which are tuned so
//!   that A → µ → A is transparent); here each conversion lands on the code whose
//!   interval contains the source level, so a conversion errs by at most one
//!   quantisation step of the target law and A → µ → A returns the same or an
//!   adjacent code (both checked by tests).
//! * Slice functions convert `min(input.len(), output.len())` elements, return how
//!   many were converted, never allocate and never panic.

/// µ-law bias in the 14-bit magnitude domain (G.711: 33).
const ULAW_BIAS: i32 = 33;
/// Largest 14-bit magnitude before adding the bias that still fits segment 7.
const ULAW_CLIP: i32 = 8158;

/// Decode one µ-law byte (G.711 reconstruction level, 16-bit scale).
const fn ulaw_decode_const(code: u8) -> i16 {
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    // Mid-point of the interval in the biased 14-bit domain, minus the bias,
    // scaled to 16 bits (<<2).
    let biased = ((mantissa << 1) + ULAW_BIAS) << exponent;
    let magnitude = (biased - ULAW_BIAS) << 2;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Decode one A-law byte (G.711 reconstruction level, 16-bit scale).
const fn alaw_decode_const(code: u8) -> i16 {
    let a = code ^ 0x55;
    let segment = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    // 13-bit domain: segment 0 step 2 starting at 0, segment s>=1 step 2^s starting
    // at 2^(s+4); reconstruct at the interval mid-point, then scale by 8 (<<3).
    let magnitude13 = if segment == 0 {
        (mantissa << 1) + 1
    } else {
        ((mantissa << 1) + 33) << (segment - 1)
    };
    let magnitude = magnitude13 << 3;
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Encode one 16-bit linear sample to µ-law (G.711, 14-bit input precision).
#[inline]
pub const fn linear_to_ulaw(pcm: i16) -> u8 {
    let x = (pcm as i32) >> 2;
    let (magnitude, mask) = if x < 0 { (-x, 0x7F) } else { (x, 0xFF) };
    let magnitude = if magnitude > ULAW_CLIP {
        ULAW_CLIP
    } else {
        magnitude
    };
    let biased = (magnitude + ULAW_BIAS) as u32; // 33..=8191
                                                 // Highest set bit is 5..=12 → segment 0..=7.
    let segment = 31 - biased.leading_zeros() - 5;
    let mantissa = (biased >> (segment + 1)) & 0x0F;
    (((segment << 4) | mantissa) as u8) ^ mask
}

/// Encode one 16-bit linear sample to A-law (G.711, 13-bit input precision).
#[inline]
pub const fn linear_to_alaw(pcm: i16) -> u8 {
    let x = (pcm as i32) >> 3;
    // Negative values use the one's complement magnitude, as in G.711.
    let (magnitude, mask) = if x >= 0 { (x, 0xD5) } else { (-x - 1, 0x55) };
    let magnitude = magnitude as u32; // 0..=4095
    let code = if magnitude < 32 {
        magnitude >> 1
    } else {
        // Highest set bit is 5..=11 → segment 1..=7.
        let segment = 31 - magnitude.leading_zeros() - 4;
        (segment << 4) | ((magnitude >> segment) & 0x0F)
    };
    (code as u8) ^ mask
}

/// µ-law byte → 16-bit linear, built at compile time.
pub static ULAW_TO_LINEAR: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_const(i as u8);
        i += 1;
    }
    t
};

/// A-law byte → 16-bit linear, built at compile time.
pub static ALAW_TO_LINEAR: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_const(i as u8);
        i += 1;
    }
    t
};

/// µ-law byte → A-law byte (through the linear domain), built at compile time.
pub static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = linear_to_alaw(ulaw_decode_const(i as u8));
        i += 1;
    }
    t
};

/// A-law byte → µ-law byte (through the linear domain), built at compile time.
pub static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = linear_to_ulaw(alaw_decode_const(i as u8));
        i += 1;
    }
    t
};

/// Decode one µ-law byte.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[code as usize]
}

/// Decode one A-law byte.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[code as usize]
}

/// Decode µ-law bytes into `out`; returns the number of samples written.
pub fn ulaw_to_pcm(input: &[u8], out: &mut [i16]) -> usize {
    let n = input.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&input[..n]) {
        *o = ULAW_TO_LINEAR[c as usize];
    }
    n
}

/// Encode linear samples into µ-law bytes; returns the number of bytes written.
pub fn pcm_to_ulaw(input: &[i16], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    for (o, &s) in out[..n].iter_mut().zip(&input[..n]) {
        *o = linear_to_ulaw(s);
    }
    n
}

/// Decode A-law bytes into `out`; returns the number of samples written.
pub fn alaw_to_pcm(input: &[u8], out: &mut [i16]) -> usize {
    let n = input.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&input[..n]) {
        *o = ALAW_TO_LINEAR[c as usize];
    }
    n
}

/// Encode linear samples into A-law bytes; returns the number of bytes written.
pub fn pcm_to_alaw(input: &[i16], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    for (o, &s) in out[..n].iter_mut().zip(&input[..n]) {
        *o = linear_to_alaw(s);
    }
    n
}

/// Transcode µ-law bytes to A-law bytes; returns the number of bytes written.
pub fn ulaw_to_alaw(input: &[u8], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&input[..n]) {
        *o = ULAW_TO_ALAW[c as usize];
    }
    n
}

/// Transcode A-law bytes to µ-law bytes; returns the number of bytes written.
pub fn alaw_to_ulaw(input: &[u8], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(&input[..n]) {
        *o = ALAW_TO_ULAW[c as usize];
    }
    n
}

/// Transcode a µ-law payload to A-law in place (relay PCMU → PCMA).
pub fn ulaw_to_alaw_in_place(buf: &mut [u8]) {
    for b in buf {
        *b = ULAW_TO_ALAW[*b as usize];
    }
}

/// Transcode an A-law payload to µ-law in place (relay PCMA → PCMU).
pub fn alaw_to_ulaw_in_place(buf: &mut [u8]) {
    for b in buf {
        *b = ALAW_TO_ULAW[*b as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-32124), 0x00);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn decode_tables_are_odd_symmetric() {
        for c in 0..=255u8 {
            assert_eq!(ulaw_to_linear(c), -ulaw_to_linear(c ^ 0x80), "ulaw {c:#x}");
            assert_eq!(alaw_to_linear(c), -alaw_to_linear(c ^ 0x80), "alaw {c:#x}");
        }
    }

    #[test]
    fn encode_inverts_decode() {
        for c in 0..=255u8 {
            let expect = if c == 0x7F { 0xFF } else { c };
            assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), expect, "ulaw {c:#x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw {c:#x}");
        }
    }

    #[test]
    fn decoded_levels_are_monotonic() {
        // µ-law: positive codes 0xFF (smallest) down to 0x80 (largest).
        let mut prev = -1i32;
        for c in (0x80..=0xFFu8).rev() {
            let v = ulaw_to_linear(c) as i32;
            assert!(v > prev, "ulaw {c:#x}");
            prev = v;
        }
        // A-law: positive codes are (k ^ 0xD5) ordered by k = 0..=127.
        let mut prev = 0i32;
        for k in 0..=0x7Fu8 {
            let v = alaw_to_linear((k) ^ 0xD5) as i32;
            assert!(v > prev, "alaw k={k:#x}");
            prev = v;
        }
    }

    #[test]
    fn ulaw_round_trip_error_bounded_per_segment() {
        for x in -32124i32..=32124 {
            let code = linear_to_ulaw(x as i16);
            let exponent = ((!code) >> 4) & 0x07;
            let step = 8i32 << exponent;
            let err = (x - ulaw_to_linear(code) as i32).abs();
            assert!(
                err <= step / 2 + 4,
                "x={x} code={code:#x} err={err} step={step}"
            );
        }
    }

    #[test]
    fn alaw_round_trip_error_bounded_per_segment() {
        for x in -32256i32..=32256 {
            let code = linear_to_alaw(x as i16);
            let segment = ((code ^ 0x55) >> 4) & 0x07;
            let step = if segment == 0 {
                16
            } else {
                16i32 << (segment - 1)
            };
            let err = (x - alaw_to_linear(code) as i32).abs();
            assert!(
                err <= step / 2 + 8,
                "x={x} code={code:#x} err={err} step={step}"
            );
        }
    }

    fn snr_db(orig: &[i16], decoded: &[i16]) -> f64 {
        let mut sig = 0.0f64;
        let mut noise = 0.0f64;
        for (&a, &b) in orig.iter().zip(decoded) {
            sig += (a as f64).powi(2);
            noise += (a as f64 - b as f64).powi(2);
        }
        10.0 * (sig / noise).log10()
    }

    fn sine_1khz(amplitude: f64) -> Vec<i16> {
        (0..8000)
            .map(|n| {
                let t = n as f64 / 8000.0;
                (amplitude * (2.0 * std::f64::consts::PI * 1000.0 * t + 0.3).sin()).round() as i16
            })
            .collect()
    }

    #[test]
    fn sine_snr_above_35_db() {
        for amplitude in [4000.0, 16000.0, 30000.0] {
            let pcm = sine_1khz(amplitude);
            let mut enc = vec![0u8; pcm.len()];
            let mut dec = vec![0i16; pcm.len()];

            assert_eq!(pcm_to_ulaw(&pcm, &mut enc), pcm.len());
            assert_eq!(ulaw_to_pcm(&enc, &mut dec), pcm.len());
            let s = snr_db(&pcm, &dec);
            assert!(s > 35.0, "µ-law SNR {s:.1} dB at amplitude {amplitude}");

            pcm_to_alaw(&pcm, &mut enc);
            alaw_to_pcm(&enc, &mut dec);
            let s = snr_db(&pcm, &dec);
            assert!(s > 35.0, "A-law SNR {s:.1} dB at amplitude {amplitude}");
        }
    }

    #[test]
    fn transcode_tables() {
        let a_step = |a: u8| {
            let segment = ((a ^ 0x55) >> 4) & 0x07;
            if segment == 0 {
                16
            } else {
                16i32 << (segment - 1)
            }
        };
        let u_step = |u: u8| 8i32 << (((!u) >> 4) & 0x07);
        // A-law → µ-law within one µ-law step; back to A-law: same or adjacent.
        let mut transparent = 0;
        for a in 0..=255u8 {
            let u = ALAW_TO_ULAW[a as usize];
            let la = alaw_to_linear(a) as i32;
            assert!(
                (ulaw_to_linear(u) as i32 - la).abs() <= u_step(u),
                "a={a:#x}"
            );
            let back = ULAW_TO_ALAW[u as usize];
            let lb = alaw_to_linear(back) as i32;
            assert!(
                (lb - la).abs() <= a_step(a).max(a_step(back)),
                "a={a:#x} back={back:#x}"
            );
            transparent += usize::from(back == a);
        }
        assert!(
            transparent >= 200,
            "only {transparent} A-law codes survive A→µ→A"
        );
        // µ-law → A-law stays within one A-law step of the µ-law level.
        for u in 0..=255u8 {
            let a = ULAW_TO_ALAW[u as usize];
            let lu = ulaw_to_linear(u) as i32;
            let la = alaw_to_linear(a) as i32;
            assert!((lu - la).abs() <= a_step(a), "u={u:#x} lu={lu} la={la}");
        }
        let src = [0xFFu8, 0x00, 0x80, 0x7F];
        let mut out = [0u8; 4];
        assert_eq!(ulaw_to_alaw(&src, &mut out), 4);
        let mut inplace = src;
        ulaw_to_alaw_in_place(&mut inplace);
        assert_eq!(inplace, out);
        let mut back = [0u8; 4];
        alaw_to_ulaw(&out, &mut back);
        let mut inplace2 = out;
        alaw_to_ulaw_in_place(&mut inplace2);
        assert_eq!(inplace2, back);
    }

    #[test]
    fn slice_functions_convert_min_length() {
        let mut out = [0i16; 2];
        assert_eq!(ulaw_to_pcm(&[0x00, 0xFF, 0x80], &mut out), 2);
        assert_eq!(out, [-32124, 0]);
        let mut out8 = [0u8; 3];
        assert_eq!(pcm_to_alaw(&[0, -1], &mut out8), 2);
        assert_eq!(&out8[..2], &[0xD5, 0x55]);
    }
}
