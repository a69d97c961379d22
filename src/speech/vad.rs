//! Voice-activity endpointing: where an utterance starts and ends, identical for every engine.
//!
//! # Contract
//!
//! * Sans-IO and deterministic: time is the number of samples pushed since
//!   [`Vad::new`] or [`Vad::reset`]; the output depends only on the concatenated input,
//!   never on how it was cut into frames.
//! * The signal is cut into frames of [`VadConfig::frame_ms`]. A frame's energy `E` is its
//!   mean square in dBFS. The *noise floor* is the lowest frame energy over the last
//!   [`VadConfig::floor_window_ms`] of frames heard outside utterances (it is frozen during
//!   an utterance), never below [`VadConfig::min_floor_db`]. A frame is *voiced* when `E`
//!   is at least the noise floor plus [`VadConfig::start_snr_db`] and at least
//!   [`VadConfig::min_speech_db`]; inside an utterance the lower [`VadConfig::hold_snr_db`]
//!   applies (hysteresis).
//! * **Start**: [`VadConfig::start_ms`] of voiced frames, with gaps of at most
//!   [`VadConfig::start_gap_ms`], make an utterance. [`VadOutput::Start`] is emitted at
//!   that moment (this is what barge-in uses); its `at` is the first sample of the first
//!   voiced frame (the onset), so it is emitted `start_ms` (or a little more) after `at`.
//! * **Audio**: right after `Start`, the audio from `at − pre_roll` (or from sample 0)
//!   up to the current position is emitted, then every later frame of the utterance as it
//!   arrives. During trailing silence only the first [`VadConfig::tail_ms`] are emitted at
//!   once; the rest is held back and emitted only if speech resumes (so the engine never
//!   decodes the long silence that ends an utterance).
//! * **End**: after [`VadConfig::end_silence_ms`] of unvoiced frames, [`VadOutput::End`]
//!   with `at` = the sample just after the last voiced frame and [`EndReason::Silence`];
//!   or, when the utterance reaches [`VadConfig::max_utterance_ms`] from its onset,
//!   `End` with `at` = the current position and [`EndReason::MaxLength`]. After `End` the
//!   detector listens for the next utterance.
//! * Every `Start` is followed, in order, by zero or more `Audio` and then exactly one
//!   `End` (unless [`Vad::reset`] or the end of input comes first).
//! * Allocation: buffers are sized once in [`Vad::new`]; `push` does not allocate.

use std::collections::VecDeque;

/// Endpointing parameters. Durations are rounded to whole frames.
#[derive(Clone, Debug, PartialEq)]
pub struct VadConfig {
    /// Frame length: 10 or 20 ms.
    pub frame_ms: u32,
    /// Voiced time needed to declare speech (barge-in latency).
    pub start_ms: u32,
    /// Longest unvoiced gap tolerated while `start_ms` accumulates.
    pub start_gap_ms: u32,
    /// Trailing silence that ends an utterance.
    pub end_silence_ms: u32,
    /// Longest utterance, from its onset.
    pub max_utterance_ms: u32,
    /// Audio kept before the onset so the first phoneme is not cut.
    pub pre_roll_ms: u32,
    /// Trailing silence still passed on after the last voiced frame.
    pub tail_ms: u32,
    /// Window of the noise-floor minimum.
    pub floor_window_ms: u32,
    /// Lowest noise floor assumed (digital silence would otherwise give −∞), dBFS.
    pub min_floor_db: f32,
    /// Energy above the noise floor that makes a frame voiced outside an utterance, dB.
    pub start_snr_db: f32,
    /// Energy above the noise floor that keeps an utterance going, dB.
    pub hold_snr_db: f32,
    /// Absolute energy below which nothing is speech, dBFS.
    pub min_speech_db: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            frame_ms: 10,
            start_ms: 120,
            start_gap_ms: 30,
            end_silence_ms: 700,
            max_utterance_ms: 10_000,
            pre_roll_ms: 200,
            tail_ms: 250,
            floor_window_ms: 1000,
            min_floor_db: -70.0,
            start_snr_db: 12.0,
            hold_snr_db: 7.0,
            min_speech_db: -50.0,
        }
    }
}

/// Why an utterance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Trailing silence of [`VadConfig::end_silence_ms`].
    Silence,
    /// The utterance reached [`VadConfig::max_utterance_ms`].
    MaxLength,
}

/// What [`Vad::push`] reports, in order.
#[derive(Debug, PartialEq)]
pub enum VadOutput<'a> {
    /// Speech confirmed; it began at sample `at`.
    Start {
        /// First sample of the first voiced frame.
        at: u64,
    },
    /// Utterance audio to pass to the engine (pre-roll first).
    Audio(&'a [i16]),
    /// The utterance is over.
    End {
        /// Sample after the last voiced frame (silence), or the current position (max length).
        at: u64,
        /// Why.
        reason: EndReason,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Idle,
    /// Voiced frames are accumulating: `onset` sample, `voiced` frames, current `gap`.
    Candidate {
        onset: u64,
        voiced: u32,
        gap: u32,
    },
    /// In an utterance: `onset` sample, trailing unvoiced frames, end of the last voiced frame.
    Speech {
        onset: u64,
        silent: u32,
        last_voiced_end: u64,
    },
}

/// Energy-based endpointer with an adaptive noise floor (see the module docs).
#[derive(Clone, Debug)]
pub struct Vad {
    cfg: VadConfig,
    frame: usize,
    start_frames: u32,
    gap_frames: u32,
    end_frames: u32,
    tail_frames: u32,
    max_samples: u64,
    pre_roll: usize,
    floor_frames: usize,
    /// Samples of the incomplete frame.
    partial: Vec<i16>,
    /// Recent audio outside an utterance (pre-roll + candidate), oldest first.
    history: VecDeque<i16>,
    history_cap: usize,
    /// Held-back trailing silence.
    held: Vec<i16>,
    /// Frame energies for the noise floor, oldest first.
    energies: VecDeque<f32>,
    /// Samples consumed into whole frames.
    pos: u64,
    state: State,
}

impl Vad {
    /// A detector for mono audio at `sample_rate` Hz (any rate that is a multiple of 100).
    pub fn new(cfg: VadConfig, sample_rate: u32) -> Vad {
        let frame_ms = cfg.frame_ms.max(1);
        let frame = (sample_rate as usize * frame_ms as usize / 1000).max(1);
        let frames = |ms: u32| ms.div_ceil(frame_ms);
        let start_frames = frames(cfg.start_ms).max(1);
        let gap_frames = frames(cfg.start_gap_ms);
        let end_frames = frames(cfg.end_silence_ms).max(1);
        let tail_frames = frames(cfg.tail_ms).min(end_frames);
        let pre_roll = frames(cfg.pre_roll_ms) as usize * frame;
        // Longest candidate: every voiced frame followed by a maximal gap.
        let candidate = (start_frames as usize * (gap_frames as usize + 1)) * frame;
        let history_cap = pre_roll + candidate + frame;
        let floor_frames = (frames(cfg.floor_window_ms) as usize).max(1);
        Vad {
            max_samples: u64::from(frames(cfg.max_utterance_ms).max(1)) * frame as u64,
            frame,
            start_frames,
            gap_frames,
            end_frames,
            tail_frames,
            pre_roll,
            floor_frames,
            partial: Vec::with_capacity(frame),
            history: VecDeque::with_capacity(history_cap),
            history_cap,
            held: Vec::with_capacity((end_frames - tail_frames) as usize * frame + frame),
            energies: VecDeque::with_capacity(floor_frames),
            pos: 0,
            state: State::Idle,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VadConfig {
        &self.cfg
    }

    /// Frame length in samples.
    pub fn frame_len(&self) -> usize {
        self.frame
    }

    /// Samples consumed so far (whole frames only).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether an utterance is in progress (after `Start`, before `End`).
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// The current noise floor estimate, dBFS.
    pub fn noise_floor_db(&self) -> f32 {
        self.energies
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min)
            .max(self.cfg.min_floor_db)
    }

    /// Forget everything, as if newly built (position back to 0).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.history.clear();
        self.held.clear();
        self.energies.clear();
        self.pos = 0;
        self.state = State::Idle;
    }

    /// Feed samples; `out` receives what happened, in order (see the module docs).
    pub fn push(&mut self, mut pcm: &[i16], out: &mut impl FnMut(VadOutput<'_>)) {
        while !pcm.is_empty() {
            if self.partial.is_empty() && pcm.len() >= self.frame {
                let (frame, rest) = pcm.split_at(self.frame);
                self.process_frame(frame, out);
                pcm = rest;
                continue;
            }
            let take = (self.frame - self.partial.len()).min(pcm.len());
            self.partial.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if self.partial.len() == self.frame {
                let frame = std::mem::take(&mut self.partial);
                self.process_frame(&frame, out);
                self.partial = frame;
                self.partial.clear();
            }
        }
    }

    fn energy_db(frame: &[i16]) -> f32 {
        let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let mean = sum / frame.len() as f64 / (32768.0 * 32768.0);
        (10.0 * mean.max(1e-12).log10()) as f32
    }

    fn remember_energy(&mut self, e: f32) {
        if self.energies.len() == self.floor_frames {
            self.energies.pop_front();
        }
        self.energies.push_back(e);
    }

    fn remember_audio(&mut self, frame: &[i16]) {
        let excess = (self.history.len() + frame.len()).saturating_sub(self.history_cap);
        self.history.drain(..excess.min(self.history.len()));
        self.history.extend(frame.iter().copied());
    }

    fn process_frame(&mut self, frame: &[i16], out: &mut impl FnMut(VadOutput<'_>)) {
        let e = Self::energy_db(frame);
        let start = self.pos;
        let end = start + frame.len() as u64;
        self.pos = end;
        match self.state {
            State::Idle | State::Candidate { .. } => {
                // The floor includes the current frame, so a steady signal is never voiced.
                self.remember_energy(e);
                self.remember_audio(frame);
                let floor = self.noise_floor_db();
                let voiced = e >= floor + self.cfg.start_snr_db && e >= self.cfg.min_speech_db;
                self.state = match (self.state, voiced) {
                    (State::Idle, false) => State::Idle,
                    (State::Idle, true) => State::Candidate {
                        onset: start,
                        voiced: 1,
                        gap: 0,
                    },
                    (State::Candidate { onset, voiced, .. }, true) => State::Candidate {
                        onset,
                        voiced: voiced + 1,
                        gap: 0,
                    },
                    (State::Candidate { onset, voiced, gap }, false) => {
                        if gap < self.gap_frames {
                            State::Candidate {
                                onset,
                                voiced,
                                gap: gap + 1,
                            }
                        } else {
                            State::Idle
                        }
                    }
                    (s, _) => s,
                };
                if let State::Candidate { onset, voiced, gap } = self.state {
                    if voiced >= self.start_frames {
                        out(VadOutput::Start { at: onset });
                        let from = onset.saturating_sub(self.pre_roll as u64);
                        let held = (end - from) as usize;
                        let skip = self.history.len().saturating_sub(held);
                        let (a, b) = self.history.as_slices();
                        let (a, b) = if skip <= a.len() {
                            (&a[skip..], b)
                        } else {
                            (&[][..], &b[skip - a.len()..])
                        };
                        if !a.is_empty() {
                            out(VadOutput::Audio(a));
                        }
                        if !b.is_empty() {
                            out(VadOutput::Audio(b));
                        }
                        self.history.clear();
                        self.held.clear();
                        // The last frame was voiced (a gap cannot complete a start).
                        debug_assert_eq!(gap, 0);
                        self.state = State::Speech {
                            onset,
                            silent: 0,
                            last_voiced_end: end,
                        };
                    }
                }
            }
            State::Speech {
                onset,
                silent,
                last_voiced_end,
            } => {
                let floor = self.noise_floor_db();
                let voiced = e >= floor + self.cfg.hold_snr_db
                    && e >= self.cfg.min_speech_db - (self.cfg.start_snr_db - self.cfg.hold_snr_db);
                let (silent, last_voiced_end) = if voiced {
                    if !self.held.is_empty() {
                        out(VadOutput::Audio(&self.held));
                        self.held.clear();
                    }
                    out(VadOutput::Audio(frame));
                    (0, end)
                } else {
                    let silent = silent + 1;
                    if silent <= self.tail_frames {
                        out(VadOutput::Audio(frame));
                    } else {
                        self.held.extend_from_slice(frame);
                    }
                    (silent, last_voiced_end)
                };
                if silent >= self.end_frames {
                    self.finish(last_voiced_end, EndReason::Silence, out);
                } else if end - onset >= self.max_samples {
                    self.finish(end, EndReason::MaxLength, out);
                } else {
                    self.state = State::Speech {
                        onset,
                        silent,
                        last_voiced_end,
                    };
                }
            }
        }
    }

    fn finish(&mut self, at: u64, reason: EndReason, out: &mut impl FnMut(VadOutput<'_>)) {
        self.held.clear();
        self.history.clear();
        self.state = State::Idle;
        out(VadOutput::End { at, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 8000;

    /// Deterministic white-ish noise at about `db` dBFS RMS.
    fn noise(seed: u64, n: usize, db: f32) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(f64::from(db) / 20.0) * 3f64.sqrt();
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                (u * amp).round() as i16
            })
            .collect()
    }

    /// A sine burst at `db` dBFS RMS.
    fn tone(n: usize, freq: f64, db: f32) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(f64::from(db) / 20.0) * 2f64.sqrt();
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(RATE)).sin())
                    .round() as i16
            })
            .collect()
    }

    fn ms(v: u64) -> u64 {
        v * u64::from(RATE) / 1000
    }

    /// Adds `b` onto `a` from sample `at`.
    fn mix(a: &mut [i16], b: &[i16], at: usize) {
        for (x, y) in a[at..].iter_mut().zip(b) {
            *x = x.saturating_add(*y);
        }
    }

    #[derive(Debug, Default)]
    struct Log {
        /// (onset, sample position when Start was emitted)
        starts: Vec<(u64, u64)>,
        ends: Vec<(u64, EndReason, u64)>,
        /// Audio samples per utterance.
        audio: Vec<Vec<i16>>,
    }

    fn run(vad: &mut Vad, input: &[i16], chunk: usize) -> Log {
        let mut log = Log::default();
        let mut fed = 0u64;
        for piece in input.chunks(chunk) {
            fed += piece.len() as u64;
            let now = fed - fed % vad.frame_len() as u64;
            vad.push(piece, &mut |o| match o {
                VadOutput::Start { at } => {
                    log.starts.push((at, now));
                    log.audio.push(Vec::new());
                }
                VadOutput::Audio(a) => log.audio.last_mut().unwrap().extend_from_slice(a),
                VadOutput::End { at, reason } => log.ends.push((at, reason, now)),
            });
        }
        log
    }

    fn near(actual: u64, expected: u64, tolerance: u64) -> bool {
        actual.abs_diff(expected) <= tolerance
    }

    #[test]
    fn silence_and_steady_noise_never_start() {
        for input in [
            vec![0i16; ms(5000) as usize],
            noise(1, ms(5000) as usize, -40.0),
            noise(2, ms(5000) as usize, -20.0),
        ] {
            let mut vad = Vad::new(VadConfig::default(), RATE);
            let log = run(&mut vad, &input, 160);
            assert!(log.starts.is_empty(), "{:?}", log.starts);
        }
    }

    #[test]
    fn tone_burst_in_silence_has_exact_endpoints() {
        // 1 s silence, 800 ms burst, 2 s silence.
        let mut input = vec![0i16; ms(3800) as usize];
        mix(
            &mut input,
            &tone(ms(800) as usize, 440.0, -20.0),
            ms(1000) as usize,
        );
        let mut vad = Vad::new(VadConfig::default(), RATE);
        let log = run(&mut vad, &input, 160);
        assert_eq!(log.starts.len(), 1, "{log:?}");
        let (onset, emitted) = log.starts[0];
        assert!(near(onset, ms(1000), ms(10)), "onset {onset}");
        // Start is confirmed 120 ms after the onset.
        assert!(
            near(emitted, ms(1120), ms(10)),
            "Start emitted at {emitted}"
        );
        let (end, reason, emitted) = log.ends[0];
        assert_eq!(reason, EndReason::Silence);
        assert!(near(end, ms(1800), ms(10)), "end {end}");
        // End is decided 700 ms after the last voiced frame.
        assert!(near(emitted, ms(2500), ms(10)), "End emitted at {emitted}");
        // Audio: 200 ms pre-roll + 800 ms burst + 250 ms tail.
        let audio = &log.audio[0];
        assert!(
            near(audio.len() as u64, ms(1250), ms(10)),
            "{}",
            audio.len()
        );
        // The pre-roll is the silence before the onset, the burst follows it.
        assert!(audio[..ms(190) as usize].iter().all(|&s| s == 0));
        assert!(audio[ms(210) as usize..ms(990) as usize]
            .iter()
            .any(|&s| s.abs() > 1000));
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        let mut input = noise(3, ms(4000) as usize, -55.0);
        mix(
            &mut input,
            &tone(ms(600) as usize, 700.0, -25.0),
            ms(700) as usize,
        );
        mix(
            &mut input,
            &tone(ms(500) as usize, 300.0, -25.0),
            ms(2500) as usize,
        );
        let reference = run(
            &mut Vad::new(VadConfig::default(), RATE),
            &input,
            input.len(),
        );
        for chunk in [1usize, 7, 80, 160, 333, 1000] {
            let log = run(&mut Vad::new(VadConfig::default(), RATE), &input, chunk);
            let onsets: Vec<u64> = log.starts.iter().map(|s| s.0).collect();
            let ref_onsets: Vec<u64> = reference.starts.iter().map(|s| s.0).collect();
            assert_eq!(onsets, ref_onsets, "chunk {chunk}");
            let ends: Vec<_> = log.ends.iter().map(|e| (e.0, e.1)).collect();
            let ref_ends: Vec<_> = reference.ends.iter().map(|e| (e.0, e.1)).collect();
            assert_eq!(ends, ref_ends, "chunk {chunk}");
            assert_eq!(log.audio, reference.audio, "chunk {chunk}");
        }
    }

    #[test]
    fn bursts_in_noise_are_found_and_short_clicks_ignored() {
        // Background noise at -55 dBFS; two bursts 15 dB and more above it; a 50 ms click.
        let mut input = noise(4, ms(6000) as usize, -55.0);
        mix(
            &mut input,
            &tone(ms(50) as usize, 1000.0, -20.0),
            ms(500) as usize,
        );
        mix(
            &mut input,
            &tone(ms(700) as usize, 500.0, -30.0),
            ms(1500) as usize,
        );
        mix(
            &mut input,
            &tone(ms(1200) as usize, 900.0, -38.0),
            ms(3500) as usize,
        );
        let mut vad = Vad::new(VadConfig::default(), RATE);
        let log = run(&mut vad, &input, 160);
        assert_eq!(log.starts.len(), 2, "{log:?}");
        assert!(near(log.starts[0].0, ms(1500), ms(10)), "{log:?}");
        assert!(near(log.ends[0].0, ms(2200), ms(10)), "{log:?}");
        assert!(near(log.starts[1].0, ms(3500), ms(10)), "{log:?}");
        assert!(near(log.ends[1].0, ms(4700), ms(10)), "{log:?}");
        assert!(log.ends.iter().all(|e| e.1 == EndReason::Silence));
    }

    #[test]
    fn short_pauses_do_not_end_an_utterance() {
        // Two words 400 ms apart are one utterance; 1 s apart, two.
        let mut input = vec![0i16; ms(6000) as usize];
        mix(
            &mut input,
            &tone(ms(300) as usize, 440.0, -20.0),
            ms(500) as usize,
        );
        mix(
            &mut input,
            &tone(ms(300) as usize, 440.0, -20.0),
            ms(1200) as usize,
        );
        mix(
            &mut input,
            &tone(ms(300) as usize, 440.0, -20.0),
            ms(2500) as usize,
        );
        let mut vad = Vad::new(VadConfig::default(), RATE);
        let log = run(&mut vad, &input, 160);
        assert_eq!(log.starts.len(), 2, "{log:?}");
        assert!(near(log.ends[0].0, ms(1500), ms(10)), "{log:?}");
        // First utterance audio: pre-roll 200 + 1000 ms of speech and pause + tail 250.
        assert!(near(log.audio[0].len() as u64, ms(1450), ms(10)));
        assert!(near(log.starts[1].0, ms(2500), ms(10)), "{log:?}");
    }

    #[test]
    fn long_speech_is_cut_at_max_length() {
        let mut input = vec![0i16; ms(13_000) as usize];
        mix(
            &mut input,
            &tone(ms(12_000) as usize, 440.0, -20.0),
            ms(500) as usize,
        );
        let mut vad = Vad::new(VadConfig::default(), RATE);
        let log = run(&mut vad, &input, 160);
        assert_eq!(log.ends[0].1, EndReason::MaxLength, "{log:?}");
        assert!(near(log.ends[0].0, ms(10_500), ms(10)), "{log:?}");
        // The rest of the tone is steady: the floor is frozen at silence, so it restarts.
        assert!(log.starts.len() >= 2);
    }

    #[test]
    fn pre_roll_is_truncated_at_the_first_sample() {
        let mut input = vec![0i16; ms(100) as usize];
        input.extend(tone(ms(500) as usize, 440.0, -20.0));
        input.extend(vec![0i16; ms(1000) as usize]);
        let mut vad = Vad::new(VadConfig::default(), RATE);
        let log = run(&mut vad, &input, 160);
        assert_eq!(log.starts.len(), 1, "{log:?}");
        assert_eq!(log.starts[0].0, ms(100), "{log:?}");
        // Only 100 ms exist before the onset: the audio starts at sample 0.
        assert_eq!(log.audio[0][..ms(600) as usize], input[..ms(600) as usize]);
    }

    #[test]
    fn a_steady_signal_from_the_first_sample_is_taken_for_noise() {
        // The floor includes the current frame: a listen that opens in the middle of a
        // steady sound treats it as background (speech is never steady for long).
        let input = tone(ms(3000) as usize, 440.0, -20.0);
        let mut vad = Vad::new(VadConfig::default(), RATE);
        let log = run(&mut vad, &input, 160);
        assert!(log.starts.is_empty(), "{log:?}");
        assert!((vad.noise_floor_db() + 20.0).abs() < 0.5);
    }

    #[test]
    fn twenty_ms_frames_and_16khz_work() {
        let rate = 16_000;
        let cfg = VadConfig {
            frame_ms: 20,
            ..VadConfig::default()
        };
        let mut input = vec![0i16; 16 * 3000];
        let amp = 3000.0;
        for (i, x) in input.iter_mut().enumerate().take(16 * 1600).skip(16 * 1000) {
            *x = (amp * (i as f64 * 0.2).sin()) as i16;
        }
        let mut vad = Vad::new(cfg, rate);
        let log = run(&mut vad, &input, 320);
        assert_eq!(log.starts.len(), 1);
        assert!(near(log.starts[0].0, 16_000, 320), "{log:?}");
        assert!(near(log.ends[0].0, 16 * 1600, 320), "{log:?}");
    }

    #[test]
    fn reset_starts_over() {
        let mut input = vec![0i16; ms(2000) as usize];
        mix(
            &mut input,
            &tone(ms(500) as usize, 440.0, -20.0),
            ms(500) as usize,
        );
        let mut vad = Vad::new(VadConfig::default(), RATE);
        let first = run(&mut vad, &input[..ms(800) as usize], 160);
        assert_eq!(first.starts.len(), 1);
        vad.reset();
        assert_eq!(vad.position(), 0);
        assert!(!vad.in_speech());
        let again = run(&mut vad, &input, 160);
        assert_eq!(again.starts.len(), 1);
        assert_eq!(again.ends.len(), 1);
    }
}
