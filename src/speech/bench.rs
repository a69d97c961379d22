//! Recognition benchmark: accuracy and speed on a rendered corpus (`tools/bench_asr.sh`).
//!
//! # Corpus layout
//!
//! * `menu.tsv`: one choice per line, `name<TAB>dtmf key<TAB>phrase|phrase|...` (the menu's
//!   grammar, as a flow would declare it).
//! * `manifest.tsv`: one recording per line, `file<TAB>expected<TAB>voice<TAB>speed<TAB>text`,
//!   `file` relative to `tel/` and `wide/`, `expected` a choice name or `-` for speech that
//!   is not a command (it must be rejected).
//! * `tel/*.wav`: 8 kHz 16-bit mono (after G.711 µ-law and a 300–3400 Hz band-pass);
//!   `wide/*.wav`: 16 kHz 16-bit mono.
//!
//! # Method
//!
//! Each recording gets 0.5 s of silence before and 1.2 s after, plus white noise at
//! [`BenchOptions::noise_db`] over the whole, and is pushed in 20 ms frames through a real
//! session ([`SphinxEngine::sphinx_session`]): our endpointing, resampling, decoding. The
//! first result decides: `Final` text mapped with [`match_choice`] (as the IVR does) and
//! compared with `expected`. A command is *correct* when the right choice comes out, *wrong*
//! when another does, *rejected* on `NoMatch` or no choice; *missed* when no speech was
//! detected. Confidence is applied afterwards at [`BenchOptions::min_confidence`] (the
//! flow's `min_confidence`) and reported separately. Speed: thread CPU time spent in `push`
//! divided by the audio duration pushed (real-time factor); `1 / RTF` recognitions can run
//! at once per core.

use std::fmt;
use std::path::{Path, PathBuf};

use super::sphinx::{SphinxConfig, SphinxEngine};
use super::{Recognizer, SpeechEvent};
use crate::ivr::{match_choice, ChoiceWords, Grammar};
use crate::media::resample::Resampler;
use crate::media::wav::Wav;

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Corpus directory (see the module docs).
    pub corpus: PathBuf,
    /// Use `wide/` (16 kHz) instead of `tel/` (8 kHz).
    pub wideband: bool,
    /// Background noise level, dBFS RMS (`None`: digital silence).
    pub noise_db: Option<f32>,
    /// Confidence threshold applied in the "accepted" figures.
    pub min_confidence: f32,
    /// Engine configuration.
    pub config: SphinxConfig,
}

impl BenchOptions {
    /// Defaults for a corpus: telephone audio, noise at −60 dBFS, threshold 0.5.
    pub fn new(corpus: PathBuf) -> BenchOptions {
        BenchOptions {
            corpus,
            wideband: false,
            noise_db: Some(-60.0),
            min_confidence: 0.5,
            config: SphinxConfig::default(),
        }
    }
}

/// The result for one recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// File name.
    pub file: String,
    /// Expected choice (`None`: not a command).
    pub expected: Option<String>,
    /// What the caller said.
    pub text: String,
    /// Voice and speed.
    pub voice: String,
    /// The recogniser's words (`None`: `NoMatch` or nothing detected).
    pub heard: Option<String>,
    /// Its confidence.
    pub confidence: f32,
    /// The choice `match_choice` picked.
    pub matched: Option<String>,
    /// Speech was detected.
    pub detected: bool,
    /// The endpointer cut the recording into more than one utterance.
    pub split: bool,
}

impl Trial {
    /// The right outcome, before the confidence threshold.
    pub fn correct(&self) -> bool {
        self.matched == self.expected
    }
}

/// Figures for one corpus (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct BenchReport {
    /// Telephone or wideband.
    pub label: String,
    /// Every recording.
    pub trials: Vec<Trial>,
    /// Seconds of audio pushed.
    pub audio_seconds: f64,
    /// Thread CPU seconds spent in sessions (creation and `push`).
    pub cpu_seconds: f64,
    /// Wall-clock seconds spent in sessions.
    pub wall_seconds: f64,
    /// Threshold used for the "accepted" figures.
    pub min_confidence: f32,
}

impl BenchReport {
    /// CPU real-time factor.
    pub fn rtf(&self) -> f64 {
        self.cpu_seconds / self.audio_seconds.max(1e-9)
    }

    fn commands(&self) -> impl Iterator<Item = &Trial> {
        self.trials.iter().filter(|t| t.expected.is_some())
    }

    /// Share of commands whose choice was recognised (no confidence threshold).
    pub fn accuracy(&self) -> f64 {
        let n = self.commands().count();
        self.commands().filter(|t| t.correct()).count() as f64 / n.max(1) as f64
    }

    /// Share of commands recognised and above the confidence threshold.
    pub fn accepted_accuracy(&self) -> f64 {
        let n = self.commands().count();
        self.commands()
            .filter(|t| t.correct() && t.confidence >= self.min_confidence)
            .count() as f64
            / n.max(1) as f64
    }
}

fn pct(a: usize, b: usize) -> String {
    format!("{a}/{b} ({:.1}%)", 100.0 * a as f64 / b.max(1) as f64)
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmds: Vec<&Trial> = self.commands().collect();
        let n = cmds.len();
        let correct = cmds.iter().filter(|t| t.correct()).count();
        let wrong = cmds
            .iter()
            .filter(|t| t.matched.is_some() && !t.correct())
            .count();
        let missed = cmds.iter().filter(|t| !t.detected).count();
        let rejected = n - correct - wrong;
        let th = self.min_confidence;
        let acc_ok = cmds
            .iter()
            .filter(|t| t.correct() && t.confidence >= th)
            .count();
        let acc_wrong = cmds
            .iter()
            .filter(|t| t.matched.is_some() && !t.correct() && t.confidence >= th)
            .count();
        let oog: Vec<&Trial> = self
            .trials
            .iter()
            .filter(|t| t.expected.is_none())
            .collect();
        let oog_fa = oog.iter().filter(|t| t.matched.is_some()).count();
        let oog_fa_th = oog
            .iter()
            .filter(|t| t.matched.is_some() && t.confidence >= th)
            .count();
        let split = self.trials.iter().filter(|t| t.split).count();
        let rtf = self.rtf();
        writeln!(f, "== {} ==", self.label)?;
        writeln!(
            f,
            "commands: {} recordings, correct {}, wrong {}, rejected {} (of which missed by the endpointer {missed})",
            n,
            pct(correct, n),
            pct(wrong, n),
            pct(rejected, n)
        )?;
        writeln!(
            f,
            "with min_confidence {th:.2}: correct and accepted {}, wrong but accepted {}",
            pct(acc_ok, n),
            pct(acc_wrong, n)
        )?;
        writeln!(
            f,
            "not commands: {} recordings, matched a choice {}, above min_confidence {}",
            oog.len(),
            pct(oog_fa, oog.len()),
            pct(oog_fa_th, oog.len())
        )?;
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
        let conf = |pred: &dyn Fn(&Trial) -> bool| -> Vec<f32> {
            self.trials
                .iter()
                .filter(|t| t.heard.is_some() && pred(t))
                .map(|t| t.confidence)
                .collect()
        };
        writeln!(
            f,
            "mean confidence: correct {:.2}, wrong {:.2}, not commands {:.2}",
            mean(&conf(&|t| t.expected.is_some() && t.correct())),
            mean(&conf(&|t| t.expected.is_some() && !t.correct())),
            mean(&conf(&|t| t.expected.is_none())),
        )?;
        writeln!(
            f,
            "split into several utterances: {split}; audio {:.1} s, CPU {:.2} s, wall {:.2} s",
            self.audio_seconds, self.cpu_seconds, self.wall_seconds
        )?;
        writeln!(
            f,
            "real-time factor {rtf:.4} (CPU) -> about {:.0} concurrent recognitions per core",
            1.0 / rtf.max(1e-9)
        )?;
        let failures: Vec<&Trial> = self.trials.iter().filter(|t| !t.correct()).collect();
        if !failures.is_empty() {
            writeln!(f, "failures (said -> heard [confidence] => choice):")?;
            for t in failures {
                writeln!(
                    f,
                    "  {:<34} {:<14} {:?} -> {:?} [{:.2}] => {}",
                    t.file,
                    t.voice,
                    t.text,
                    t.heard.as_deref().unwrap_or("(no match)"),
                    t.confidence,
                    t.matched.as_deref().unwrap_or("-")
                )?;
            }
        }
        Ok(())
    }
}

/// A menu read from `menu.tsv`: choices, DTMF keys, phrases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchMenu {
    /// `(name, key, phrases)`.
    pub choices: Vec<(String, Option<char>, Vec<String>)>,
}

impl BenchMenu {
    /// Parses `menu.tsv`.
    pub fn parse(text: &str) -> Result<BenchMenu, String> {
        let mut choices = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let [name, key, phrases] = cols[..] else {
                return Err(format!(
                    "menu.tsv:{}: expected 3 tab-separated columns",
                    i + 1
                ));
            };
            choices.push((
                name.to_string(),
                key.chars().next(),
                phrases
                    .split('|')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect(),
            ));
        }
        if choices.is_empty() {
            return Err("menu.tsv holds no choices".to_string());
        }
        Ok(BenchMenu { choices })
    }

    /// The grammar a flow would give the recogniser.
    pub fn grammar(&self) -> Grammar {
        Grammar {
            choices: self
                .choices
                .iter()
                .map(|(n, _, p)| (n.clone(), p.clone()))
                .collect(),
            digits: false,
        }
    }

    /// The choice `utterance` maps to, as the IVR maps it.
    pub fn choice_of(&self, utterance: &str) -> Option<String> {
        let words: Vec<ChoiceWords<'_>> = self
            .choices
            .iter()
            .map(|(name, key, phrases)| ChoiceWords {
                name,
                phrases,
                dtmf: *key,
            })
            .collect();
        match_choice(utterance, &words).map(|i| self.choices[i].0.clone())
    }
}

/// Thread CPU time in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rv = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rv != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Deterministic white noise at `db` dBFS RMS, added in place.
fn add_noise(pcm: &mut [i16], db: f32, seed: u64) {
    let amp = 32768.0 * 10f64.powf(f64::from(db) / 20.0) * 3f64.sqrt();
    let mut s = seed | 1;
    for x in pcm {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let u = (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        *x = x.saturating_add((u * amp).round() as i16);
    }
}

/// Reads a WAV file as mono at `rate`.
fn load(path: &Path, rate: u32) -> Result<Vec<i16>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let wav = Wav::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let ch = usize::from(wav.channels.max(1));
    let mono: Vec<i16> = wav
        .samples
        .chunks(ch)
        .map(|f| (f.iter().map(|&s| i32::from(s)).sum::<i32>() / ch as i32) as i16)
        .collect();
    if wav.rate == rate {
        return Ok(mono);
    }
    let mut r =
        Resampler::for_file(wav.rate, rate).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    r.process(&mono, &mut out);
    Ok(out)
}

/// Runs one recording through `session`; returns the trial (without expectations).
fn run_one(
    session: &mut dyn Recognizer,
    pcm: &[i16],
    frame: usize,
) -> (Option<(String, f32)>, bool, bool) {
    let mut results: Vec<Option<(String, f32)>> = Vec::new();
    let mut detected = false;
    for chunk in pcm.chunks(frame) {
        for ev in session.push(chunk) {
            match ev {
                SpeechEvent::Started => detected = true,
                SpeechEvent::Final { text, confidence } => results.push(Some((text, confidence))),
                SpeechEvent::NoMatch => results.push(None),
                SpeechEvent::Partial { .. } => {}
            }
        }
    }
    let split = results.len() > 1;
    (results.into_iter().next().flatten(), detected, split)
}

/// Runs the benchmark (see the module docs).
pub fn run(opts: &BenchOptions) -> Result<BenchReport, String> {
    let menu_path = opts.corpus.join("menu.tsv");
    let menu = BenchMenu::parse(
        &std::fs::read_to_string(&menu_path)
            .map_err(|e| format!("{}: {e}", menu_path.display()))?,
    )?;
    let manifest_path = opts.corpus.join("manifest.tsv");
    let manifest = std::fs::read_to_string(&manifest_path).map_err(|e| {
        format!(
            "{}: {e} (render the corpus with tools/bench_asr.sh)",
            manifest_path.display()
        )
    })?;
    let engine = SphinxEngine::new(opts.config.clone()).map_err(|e| e.to_string())?;
    let grammar = menu.grammar();
    let compiled = engine.compile(&grammar).map_err(|e| e.to_string())?;
    if !compiled.unknown_words.is_empty() {
        eprintln!(
            "bench: words not in the dictionary, dropped from the grammar: {}",
            compiled.unknown_words.join(", ")
        );
    }
    let (dir, rate, label) = if opts.wideband {
        ("wide", 16_000u32, "wideband 16 kHz")
    } else {
        ("tel", 8000u32, "telephone 8 kHz (G.711 u-law, 300-3400 Hz)")
    };
    let mut report = BenchReport {
        label: label.to_string(),
        min_confidence: opts.min_confidence,
        ..BenchReport::default()
    };
    let frame = rate as usize / 50;
    for (i, line) in manifest.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.splitn(5, '\t').collect();
        let [file, expected, voice, speed, text] = cols[..] else {
            return Err(format!(
                "manifest.tsv:{}: expected 5 tab-separated columns",
                i + 1
            ));
        };
        let expected = (expected != "-").then(|| expected.to_string());
        if let Some(e) = &expected {
            if !menu.choices.iter().any(|c| &c.0 == e) {
                return Err(format!("manifest.tsv:{}: unknown choice {e}", i + 1));
            }
        }
        let speech = load(&opts.corpus.join(dir).join(file), rate)?;
        let mut pcm = vec![0i16; rate as usize / 2];
        pcm.extend_from_slice(&speech);
        pcm.extend(std::iter::repeat_n(0i16, rate as usize * 6 / 5));
        if let Some(db) = opts.noise_db {
            add_noise(&mut pcm, db, i as u64 + 1);
        }
        let (cpu0, wall0) = (thread_cpu_seconds(), std::time::Instant::now());
        let mut session = engine
            .sphinx_session(&grammar, rate)
            .map_err(|e| e.to_string())?;
        let (result, detected, split) = run_one(&mut session, &pcm, frame);
        report.cpu_seconds += thread_cpu_seconds() - cpu0;
        report.wall_seconds += wall0.elapsed().as_secs_f64();
        report.audio_seconds += pcm.len() as f64 / f64::from(rate);
        let (heard, confidence) = match result {
            Some((t, c)) => (Some(t), c),
            None => (None, 0.0),
        };
        let matched = heard.as_deref().and_then(|h| menu.choice_of(h));
        report.trials.push(Trial {
            file: file.to_string(),
            expected,
            text: text.to_string(),
            voice: format!("{voice}@{speed}"),
            heard,
            confidence,
            matched,
            detected,
            split,
        });
    }
    if report.trials.is_empty() {
        return Err(format!("{} lists no recordings", manifest_path.display()));
    }
    Ok(report)
}
