//! Speech: recognising what callers say, and text-to-speech for prompts.
//!
//! # Recognition
//!
//! A [`SpeechEngine`] opens a [`Recognizer`] session per listen, for a [`Grammar`] (the
//! menu's choices and synonyms, or spoken digits) and a sample rate: 8 kHz for telephone
//! legs, 16 or 48 kHz for browser legs. The session is sans-IO: it never reads the clock,
//! time is the number of samples pushed. Push mono PCM frames of any length with
//! [`Recognizer::push`]; each call returns what happened, in order:
//!
//! - [`SpeechEvent::Started`] when speech is confirmed (about 120 ms after its onset; this
//!   is what barge-in stops the prompt on);
//! - [`SpeechEvent::Partial`] (engines that decode while the caller speaks; the embedded one
//!   does not);
//! - at the end of the utterance (0.7 s of silence, or 10 s of speech), exactly one of
//!   [`SpeechEvent::Final`] — the words heard, to be mapped to a choice with
//!   [`crate::ivr::match_choice`], and a 0–1 confidence — or [`SpeechEvent::NoMatch`].
//!
//! The session then listens for the next utterance; [`Recognizer::reset`] drops everything.
//! Endpointing is ours ([`vad`]) and identical for every engine, so barge-in and timeouts
//! behave the same whichever engine decodes.
//!
//! The embedded engine is PocketSphinx ([`sphinx`], Debian packages `libpocketsphinx-dev`
//! and `pocketsphinx-en-us`), built by [`default_engine`]. `push` decodes at the end of an
//! utterance on the caller's thread (a few per cent of the utterance's duration); run it on
//! a thread that may block that long, not on an async task.
//!
//! # Text-to-speech
//!
//! [`tts::Tts`] renders text with `espeak-ng` into a WAV file cached on disk.
//!
//! # Benchmark
//!
//! [`bench`] measures accuracy and speed on a rendered corpus (`tools/bench_asr.sh`).

pub mod bench;
pub mod sphinx;
pub mod tts;
pub mod vad;

use std::sync::Arc;

use crate::ivr::Grammar;

pub use sphinx::{CompiledGrammar, Lexicon, SphinxConfig, SphinxEngine, SphinxRecognizer};
pub use tts::{Tts, TtsError};
pub use vad::{EndReason, Vad, VadConfig, VadOutput};

/// What a recognizer reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeechEvent {
    /// Speech began (barge-in).
    Started,
    /// The words so far (engines that decode while the caller speaks).
    Partial {
        /// Words so far.
        text: String,
    },
    /// The utterance is over: what was said.
    Final {
        /// The words heard, lowercase, carrier words ("i want", "please") included.
        text: String,
        /// 0 to 1.
        confidence: f32,
    },
    /// The utterance is over and nothing in the grammar fits.
    NoMatch,
}

/// Why an engine or a session could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeechError {
    /// The model or dictionary is missing or unreadable.
    #[error("speech model: {0}")]
    Model(String),
    /// The grammar cannot be used.
    #[error("speech grammar: {0}")]
    Grammar(String),
    /// The sample rate is not 8000, 16000 or 48000 Hz.
    #[error("speech: unsupported sample rate {0} Hz (8000, 16000 or 48000)")]
    Rate(u32),
    /// The engine failed.
    #[error("speech engine: {0}")]
    Engine(String),
}

/// One recognition session: push audio, get events (see the module docs).
pub trait Recognizer: Send {
    /// Feeds mono PCM at the session's rate (frames of any length); returns what happened.
    fn push(&mut self, pcm: &[i16]) -> Vec<SpeechEvent>;
    /// Drops any utterance in progress and starts over (time back to 0).
    fn reset(&mut self);
}

/// Opens recognition sessions.
pub trait SpeechEngine: Send + Sync {
    /// A session for `grammar` on audio at `sample_rate` Hz.
    fn session(
        &self,
        grammar: &Grammar,
        sample_rate: u32,
    ) -> Result<Box<dyn Recognizer>, SpeechError>;
}

/// The embedded engine: PocketSphinx with Debian's US English model.
pub fn default_engine() -> Result<Arc<dyn SpeechEngine>, SpeechError> {
    Ok(Arc::new(SphinxEngine::new(SphinxConfig::default())?))
}
