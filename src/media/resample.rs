//! Streaming polyphase sample-rate converter for mono 16-bit PCM.
//!
//! # Contract
//!
//! * Rates: any pair of 8000, 16000, 24000, 32000 and 48000 Hz, in either
//!   direction (the ratio `to/from` is reduced to `L/M`). Equal rates are a
//!   bit-exact pass-through with zero latency.
//! * Filter: a linear-phase windowed-sinc low-pass (Kaiser window, 80 dB
//!   stop-band) designed once in [`Resampler::new`], split into `L`
//!   polyphase branches. The pass band extends to 85 % of the *lower* of the
//!   two Nyquist frequencies (3.4 kHz for anything involving 8 kHz) and the
//!   stop band starts exactly at that lower Nyquist, so downsampling does not
//!   alias and upsampling does not image. Pass-band ripple is about ±0.001 dB.
//! * Streaming: [`Resampler::process`] appends output to the caller's `Vec`.
//!   The output depends only on the concatenated input, never on how it was
//!   cut into frames. After `S` input samples in total exactly
//!   `ceil(S · to / from)` output samples have been produced, so there is no
//!   drift however long the stream is (20 ms frames map to exactly 20 ms
//!   frames).
//! * Latency: output sample `n` corresponds to input time
//!   `n − latency_samples()` (in output samples); the group delay is an
//!   integer number of samples at both rates. About 4.25 ms whenever 8 kHz is
//!   involved, less otherwise.
//! * Allocation: none per call once warmed up. The internal history buffer is
//!   pre-sized for input frames of up to 4096 samples (larger frames grow it
//!   once); `process` reserves space in the output `Vec` only if the caller's
//!   capacity is insufficient.
//! * Arithmetic: `f32` multiply-accumulate, output rounded to nearest and
//!   saturated to the `i16` range. Deterministic, no I/O, no clock.

use std::f64::consts::PI;

use thiserror::Error;

/// Sample rates the resampler accepts.
pub const SUPPORTED_RATES: [u32; 5] = [8000, 16000, 24000, 32000, 48000];

/// Errors from [`Resampler::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ResampleError {
    /// The rate is not one of [`SUPPORTED_RATES`].
    #[error("unsupported sample rate {0} Hz (supported: 8000, 16000, 24000, 32000, 48000)")]
    UnsupportedRate(u32),
}

const STOPBAND_DB: f64 = 80.0;
/// Pass-band edge as a fraction of the lower Nyquist frequency.
const PASSBAND_FRACTION: f64 = 0.85;
/// Taps per phase are rounded up to a multiple of this (vectorisation).
const LANES: usize = 8;
/// Input frame size handled without growing the history buffer.
const PREALLOCATED_FRAME: usize = 4096;

/// Streaming mono `i16` resampler (see the module docs for the contract).
#[derive(Debug, Clone)]
pub struct Resampler {
    from_hz: u32,
    to_hz: u32,
    /// Interpolation factor L.
    up: usize,
    /// Decimation factor M.
    down: usize,
    /// Taps per polyphase branch (K), a multiple of [`LANES`]; 0 for pass-through.
    taps: usize,
    /// `up × taps` coefficients; branch `p` occupies `[p·K, (p+1)·K)`, stored
    /// time-reversed so that each output is a forward dot product.
    coeffs: Vec<f32>,
    /// Input history: `K − 1` older samples followed by not yet consumed input.
    history: Vec<f32>,
    /// Index in `history` of the newest input sample used by the next output.
    pos: usize,
    /// Polyphase branch of the next output.
    phase: usize,
    /// Group delay in output samples.
    latency: usize,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    // Lengths are multiples of LANES by construction.
    let (lo, hi) = acc.split_at(LANES / 2);
    lo.iter().zip(hi).map(|(a, b)| a + b).sum()
}

impl Resampler {
    /// Build a resampler from `from_hz` to `to_hz` (both in [`SUPPORTED_RATES`]).
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        for rate in [from_hz, to_hz] {
            if !SUPPORTED_RATES.contains(&rate) {
                return Err(ResampleError::UnsupportedRate(rate));
            }
        }
        Self::build(from_hz, to_hz)
    }

    /// A resampler for converting a file once (prompts): any rates from 8 kHz to 192 kHz,
    /// such as 11025, 22050 or 44100 Hz. Its filter can be long for awkward ratios, which
    /// is fine for a one-off conversion but not for per-call streaming.
    pub fn for_file(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        for rate in [from_hz, to_hz] {
            if !(8000..=192_000).contains(&rate) {
                return Err(ResampleError::UnsupportedRate(rate));
            }
        }
        Self::build(from_hz, to_hz)
    }

    fn build(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        if from_hz == to_hz {
            return Ok(Resampler {
                from_hz,
                to_hz,
                up: 1,
                down: 1,
                taps: 0,
                coeffs: Vec::new(),
                history: Vec::new(),
                pos: 0,
                phase: 0,
                latency: 0,
            });
        }
        let g = gcd(from_hz, to_hz);
        let up = (to_hz / g) as usize;
        let down = (from_hz / g) as usize;
        let f_up = f64::from(from_hz) * up as f64;
        let nyquist_low = f64::from(from_hz.min(to_hz)) / 2.0;
        let f_pass = PASSBAND_FRACTION * nyquist_low;
        let f_stop = nyquist_low;
        let cutoff = 0.5 * (f_pass + f_stop) / f_up; // cycles per upsampled sample

        // Kaiser's length estimate; the half length is rounded up to a
        // multiple of L·M so the group delay is integral at both rates.
        let transition = 2.0 * PI * (f_stop - f_pass) / f_up;
        let estimate = ((STOPBAND_DB - 7.95) / (2.285 * transition)).ceil() as usize + 1;
        let lm = up * down;
        let delay = (estimate / 2).div_ceil(lm) * lm;
        let len = 2 * delay + 1;
        let beta = 0.1102 * (STOPBAND_DB - 8.7);
        let i0_beta = bessel_i0(beta);
        let prototype: Vec<f64> = (0..len)
            .map(|n| {
                let t = n as f64 - delay as f64;
                let sinc = if t == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * PI * cutoff * t).sin() / (PI * t)
                };
                let r = t / delay as f64;
                sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta
            })
            .collect();
        // Unity DC gain after zero-stuffing by L.
        let scale = up as f64 / prototype.iter().sum::<f64>();

        let taps = len.div_ceil(up).max(down + 1).div_ceil(LANES) * LANES;
        let mut coeffs = vec![0f32; up * taps];
        for p in 0..up {
            for j in 0..taps {
                let idx = p + (taps - 1 - j) * up;
                if idx < len {
                    coeffs[p * taps + j] = (prototype[idx] * scale) as f32;
                }
            }
        }
        let mut history = Vec::with_capacity(taps - 1 + PREALLOCATED_FRAME);
        history.resize(taps - 1, 0.0);
        Ok(Resampler {
            from_hz,
            to_hz,
            up,
            down,
            taps,
            coeffs,
            history,
            pos: taps - 1,
            phase: 0,
            latency: delay / down,
        })
    }

    /// Input sample rate in Hz.
    pub fn from_hz(&self) -> u32 {
        self.from_hz
    }

    /// Output sample rate in Hz.
    pub fn to_hz(&self) -> u32 {
        self.to_hz
    }

    /// Group delay of the filter, in output samples.
    pub fn latency_samples(&self) -> usize {
        self.latency
    }

    /// Number of output samples the next `process` call with `input_len`
    /// input samples will append.
    pub fn output_len(&self, input_len: usize) -> usize {
        if self.taps == 0 {
            return input_len;
        }
        let available = self.history.len() + input_len;
        if self.pos >= available {
            return 0;
        }
        ((available - self.pos) * self.up - self.phase).div_ceil(self.down)
    }

    /// Forget all history, as if newly constructed.
    pub fn reset(&mut self) {
        if self.taps == 0 {
            return;
        }
        self.history.clear();
        self.history.resize(self.taps - 1, 0.0);
        self.pos = self.taps - 1;
        self.phase = 0;
    }

    /// Resample `input` and append the result to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.taps == 0 {
            out.extend_from_slice(input);
            return;
        }
        out.reserve(self.output_len(input.len()));
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        let k = self.taps;
        while self.pos < self.history.len() {
            let window = &self.history[self.pos + 1 - k..=self.pos];
            let branch = &self.coeffs[self.phase * k..(self.phase + 1) * k];
            let y = dot(branch, window);
            out.push(y.round().clamp(-32768.0, 32767.0) as i16);
            self.phase += self.down;
            self.pos += self.phase / self.up;
            self.phase %= self.up;
        }
        // Keep only the K − 1 samples preceding the next output's newest one.
        // `pos` exceeds the history by at most ceil(M/L) − 1 < K, so this
        // never drains more than the buffer holds.
        let first_needed = self.pos + 1 - k;
        self.history.drain(..first_needed);
        self.pos -= first_needed;
    }
}

/// Test-only allocation counter (per thread), used by the hot-path
/// no-allocation tests of all media modules.
#[cfg(test)]
pub(crate) mod alloc_probe {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    struct Counting;

    fn bump() {
        // `try_with`: thread-local storage may be gone during thread teardown.
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    // SAFETY: forwards every call unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            bump();
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            bump();
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            bump();
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Number of allocations `f` performs on the current thread.
    pub(crate) fn allocations_during(f: impl FnOnce()) -> usize {
        let before = COUNT.with(|c| c.get());
        f();
        COUNT.with(|c| c.get()) - before
    }
}

#[cfg(test)]
mod tests {
    use super::alloc_probe::allocations_during;
    use super::*;
    use crate::media::tone::{
        dominant_frequency, goertzel_power, level_dbfs, ToneGenerator, FULL_SCALE,
    };
    use proptest::prelude::*;

    fn tone(rate: u32, freq: f32, level: f32, n: usize) -> Vec<i16> {
        let mut g = ToneGenerator::single(rate, freq, level).unwrap();
        let mut out = vec![0; n];
        g.fill(&mut out);
        out
    }

    fn run(r: &mut Resampler, input: &[i16], frame: usize) -> Vec<i16> {
        let mut out = Vec::new();
        for chunk in input.chunks(frame) {
            r.process(chunk, &mut out);
        }
        out
    }

    fn noise(seed: u64, n: usize) -> Vec<i16> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 48) as i16) / 4
            })
            .collect()
    }

    fn pairs() -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        for &a in &SUPPORTED_RATES {
            for &b in &SUPPORTED_RATES {
                v.push((a, b));
            }
        }
        v
    }

    #[test]
    fn rejects_unsupported_rates() {
        assert_eq!(
            Resampler::new(44100, 8000).unwrap_err(),
            ResampleError::UnsupportedRate(44100)
        );
        assert_eq!(
            Resampler::new(8000, 0).unwrap_err(),
            ResampleError::UnsupportedRate(0)
        );
    }

    #[test]
    fn equal_rates_pass_through() {
        let x = noise(1, 1000);
        let mut r = Resampler::new(16000, 16000).unwrap();
        assert_eq!(r.latency_samples(), 0);
        assert_eq!(run(&mut r, &x, 37), x);
    }

    #[test]
    fn latency_is_small_and_integral() {
        for (a, b) in pairs() {
            let r = Resampler::new(a, b).unwrap();
            let ms = r.latency_samples() as f64 * 1000.0 / f64::from(b);
            assert!(ms <= 4.5, "{a}->{b}: {ms} ms");
            // Integral at the input rate as well.
            assert_eq!(
                (r.latency_samples() as u64 * u64::from(a)) % u64::from(b),
                0
            );
        }
    }

    #[test]
    fn tone_level_and_frequency_preserved_all_pairs() {
        for (a, b) in pairs() {
            let x = tone(a, 1000.0, -6.0, a as usize / 2);
            let mut r = Resampler::new(a, b).unwrap();
            let y = run(&mut r, &x, a as usize / 50);
            let steady = &y[y.len() / 5..];
            let (f, l) = dominant_frequency(steady, b).unwrap();
            assert!((f - 1000.0).abs() < 1.0, "{a}->{b}: {f} Hz");
            assert!((l + 6.0).abs() < 0.05, "{a}->{b}: {l} dBFS");
        }
    }

    #[test]
    fn up_down_8k_48k_8k_keeps_1khz_level_and_frequency() {
        let x = tone(8000, 1000.0, -10.0, 8000);
        let mut up = Resampler::new(8000, 48000).unwrap();
        let mut down = Resampler::new(48000, 8000).unwrap();
        let mut y = Vec::new();
        let mut mid = Vec::new();
        for frame in x.chunks(160) {
            mid.clear();
            up.process(frame, &mut mid);
            assert_eq!(mid.len(), 960);
            down.process(&mid, &mut y);
        }
        assert_eq!(y.len(), x.len());
        let steady = &y[800..];
        let (f, l) = dominant_frequency(steady, 8000).unwrap();
        assert!((f - 1000.0).abs() < 1.0, "{f}");
        assert!((l + 10.0).abs() < 0.5, "{l}");
        assert!((level_dbfs(steady) + 10.0).abs() < 0.5);
    }

    /// Signal-to-error ratio of `y` against `x` delayed by `delay` samples.
    fn snr_db(x: &[i16], y: &[i16], delay: usize, skip: usize) -> f64 {
        let (mut sig, mut err) = (0f64, 0f64);
        for n in (delay + skip)..y.len().min(x.len() + delay) {
            let want = f64::from(x[n - delay]);
            sig += want * want;
            err += (f64::from(y[n]) - want).powi(2);
        }
        10.0 * (sig / err.max(1e-9)).log10()
    }

    #[test]
    fn round_trip_8k_16k_8k_snr() {
        for freq in [300.0f32, 500.0, 1000.0, 2000.0, 3000.0, 3400.0] {
            let x = tone(8000, freq, -6.0, 8000);
            let mut up = Resampler::new(8000, 16000).unwrap();
            let mut down = Resampler::new(16000, 8000).unwrap();
            let mid = run(&mut up, &x, 160);
            let y = run(&mut down, &mid, 320);
            assert_eq!(y.len(), x.len());
            let delay = up.latency_samples() / 2 + down.latency_samples();
            let snr = snr_db(&x, &y, delay, 200);
            assert!(snr > 40.0, "{freq} Hz: SNR {snr:.1} dB");
            assert!(snr > 60.0, "{freq} Hz: SNR {snr:.1} dB (design target)");
        }
    }

    #[test]
    fn round_trips_through_every_rate_are_transparent() {
        // 8 kHz speech band through every other rate and back.
        let mut x = tone(8000, 440.0, -12.0, 4000);
        let y2 = tone(8000, 2700.0, -12.0, 4000);
        for (a, b) in x.iter_mut().zip(y2) {
            *a += b;
        }
        for mid_rate in [16000u32, 24000, 32000, 48000] {
            let mut up = Resampler::new(8000, mid_rate).unwrap();
            let mut down = Resampler::new(mid_rate, 8000).unwrap();
            let mid = run(&mut up, &x, 160);
            let y = run(&mut down, &mid, 333);
            let up_delay_in = up.latency_samples() * 8000 / mid_rate as usize;
            let snr = snr_db(&x, &y, up_delay_in + down.latency_samples(), 200);
            assert!(snr > 60.0, "via {mid_rate}: {snr:.1} dB");
        }
    }

    #[test]
    fn downsampling_48k_to_8k_rejects_6khz() {
        let x = tone(48000, 6000.0, -6.0, 48000);
        let mut r = Resampler::new(48000, 8000).unwrap();
        let y = run(&mut r, &x, 960);
        let steady = &y[400..];
        let level = level_dbfs(steady);
        assert!(level < -46.0, "6 kHz leaked at {level} dBFS");
        // Nothing folded back to 2 kHz either.
        let alias = 10.0 * goertzel_power(steady, 8000, 2000.0).log10();
        assert!(alias < -80.0, "alias at 2 kHz: {alias} dBFS");
        // Everything above the 4 kHz stop band is rejected by the design margin.
        for f in [4100.0f32, 4500.0, 5000.0, 7000.0, 9000.0, 15000.0] {
            let x = tone(48000, f, -1.0, 24000);
            let mut r = Resampler::new(48000, 8000).unwrap();
            let y = run(&mut r, &x, 960);
            let level = level_dbfs(&y[400..]);
            assert!(level < -70.0, "{f} Hz leaked at {level} dBFS");
        }
    }

    #[test]
    fn upsampling_8k_to_48k_has_no_images() {
        let x = tone(8000, 3000.0, -3.0, 8000);
        let mut r = Resampler::new(8000, 48000).unwrap();
        let y = run(&mut r, &x, 160);
        let steady = &y[2000..];
        for image in [5000.0f32, 11000.0, 13000.0, 19000.0] {
            let p = 10.0 * goertzel_power(steady, 48000, image).log10();
            assert!(p < -75.0, "image at {image} Hz: {p} dBFS");
        }
    }

    #[test]
    fn chunked_equals_one_shot() {
        let x = noise(7, 48000);
        for (a, b) in pairs() {
            let n = a as usize / 4;
            let input = &x[..n];
            let mut r = Resampler::new(a, b).unwrap();
            let reference = run(&mut r, input, n);
            for frames in [
                &[160usize][..],
                &[320],
                &[960],
                &[1],
                &[7, 13, 331],
                &[997, 3],
            ] {
                let mut r = Resampler::new(a, b).unwrap();
                let mut out = Vec::new();
                let (mut i, mut k) = (0, 0);
                while i < n {
                    let len = frames[k % frames.len()].min(n - i);
                    assert_eq!(r.output_len(len), {
                        let mut probe = r.clone();
                        let mut tmp = Vec::new();
                        probe.process(&input[i..i + len], &mut tmp);
                        tmp.len()
                    });
                    r.process(&input[i..i + len], &mut out);
                    i += len;
                    k += 1;
                }
                assert_eq!(out, reference, "{a}->{b} frames {frames:?}");
            }
        }
    }

    #[test]
    fn exact_frame_lengths_for_every_pair() {
        for (a, b) in pairs() {
            let mut r = Resampler::new(a, b).unwrap();
            let frame = vec![0i16; a as usize / 50];
            let mut out = Vec::new();
            for _ in 0..100 {
                out.clear();
                r.process(&frame, &mut out);
                assert_eq!(out.len(), b as usize / 50, "{a}->{b}");
            }
            // Odd sizes: total is always ceil(S·b/a).
            let mut r = Resampler::new(a, b).unwrap();
            let mut total_in = 0u64;
            let mut total_out = 0u64;
            for len in [1usize, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31] {
                out.clear();
                r.process(&frame[..len], &mut out);
                total_in += len as u64;
                total_out += out.len() as u64;
                assert_eq!(total_out, (total_in * u64::from(b)).div_ceil(u64::from(a)));
            }
        }
    }

    /// Over 60 s the output stays phase-locked to the ideal delayed sine.
    #[test]
    fn no_drift_over_60_seconds() {
        for (a, b) in [
            (8000u32, 48000u32),
            (48000, 8000),
            (24000, 32000),
            (16000, 48000),
        ] {
            let seconds = 60;
            let freq = 1000.0f32;
            let mut g = ToneGenerator::single(a, freq, -6.0).unwrap();
            let mut r = Resampler::new(a, b).unwrap();
            let mut frame = vec![0i16; a as usize / 50];
            let mut out = Vec::new();
            let mut tail = Vec::new();
            let mut produced = 0usize;
            for k in 0..seconds * 50 {
                g.fill(&mut frame);
                out.clear();
                r.process(&frame, &mut out);
                assert_eq!(out.len(), b as usize / 50);
                if k >= seconds * 50 - 5 {
                    tail.extend_from_slice(&out);
                }
                produced += out.len();
            }
            assert_eq!(produced, b as usize * seconds);
            // Compare the last 100 ms with the analytically delayed sine.
            let amp = FULL_SCALE * 10f64.powf(-6.0 / 20.0);
            let start = produced - tail.len();
            let lat = r.latency_samples() as f64;
            let (mut sig, mut err) = (0f64, 0f64);
            for (i, &y) in tail.iter().enumerate() {
                let t = ((start + i) as f64 - lat) / f64::from(b);
                let want = amp * (2.0 * std::f64::consts::PI * f64::from(freq) * t).sin();
                sig += want * want;
                err += (f64::from(y) - want).powi(2);
            }
            let snr = 10.0 * (sig / err).log10();
            assert!(
                snr > 60.0,
                "{a}->{b}: phase-locked SNR after 60 s = {snr:.1} dB"
            );
        }
    }

    /// Benchmark-like (untimed): 10 s in 20 ms frames, check output length.
    #[test]
    fn ten_seconds_bulk() {
        for (a, b) in [(8000u32, 48000u32), (48000, 8000), (48000, 16000)] {
            let x = noise(3, a as usize * 10);
            let mut r = Resampler::new(a, b).unwrap();
            let mut out = Vec::with_capacity(b as usize * 10);
            for frame in x.chunks(a as usize / 50) {
                r.process(frame, &mut out);
            }
            assert_eq!(out.len(), b as usize * 10);
        }
    }

    #[test]
    fn process_does_not_allocate_after_warm_up() {
        // The probe itself works.
        assert!(
            allocations_during(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(16)))) >= 1
        );
        for (a, b) in pairs() {
            let mut r = Resampler::new(a, b).unwrap();
            let input = noise(5, a as usize / 50);
            let mut out = Vec::with_capacity(b as usize / 50);
            r.process(&input, &mut out);
            let n = allocations_during(|| {
                for _ in 0..50 {
                    out.clear();
                    r.process(&input, &mut out);
                    out.clear();
                    r.process(&input[..7], &mut out);
                }
            });
            assert_eq!(n, 0, "{a}->{b}");
        }
    }

    #[test]
    fn reset_restarts_stream() {
        let x = noise(9, 4000);
        let mut r = Resampler::new(8000, 24000).unwrap();
        let first = run(&mut r, &x, 160);
        r.reset();
        assert_eq!(run(&mut r, &x, 77), first);
    }

    #[test]
    fn full_scale_input_saturates_cleanly() {
        let x: Vec<i16> = (0..8000)
            .map(|i| if (i / 20) % 2 == 0 { 32767 } else { -32768 })
            .collect();
        let mut r = Resampler::new(8000, 48000).unwrap();
        let y = run(&mut r, &x, 160);
        assert_eq!(y.len(), 48000);
        assert!(y.iter().any(|&s| s == 32767 || s == -32768));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn arbitrary_chunking_is_invariant(
            pair in 0usize..25,
            chunks in proptest::collection::vec(1usize..700, 1..25),
            seed in any::<u64>(),
        ) {
            let (a, b) = pairs()[pair];
            let total: usize = chunks.iter().sum();
            let x = noise(seed, total);
            let mut one = Resampler::new(a, b).unwrap();
            let mut reference = Vec::new();
            one.process(&x, &mut reference);
            let mut r = Resampler::new(a, b).unwrap();
            let mut out = Vec::new();
            let mut i = 0;
            for len in chunks {
                r.process(&x[i..i + len], &mut out);
                i += len;
            }
            prop_assert_eq!(out, reference);
        }
    }
}
