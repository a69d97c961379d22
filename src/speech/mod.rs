//! Speech: recognition sessions and text-to-speech (temporary interface until the engine lands).
pub mod tts;
use crate::ivr::Grammar;

/// What a recognizer reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeechEvent {
    Started,
    Partial { text: String },
    Final { text: String, confidence: f32 },
    NoMatch,
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpeechError(pub String);

/// One utterance stream.
pub trait Recognizer: Send {
    fn push(&mut self, pcm: &[i16]) -> Vec<SpeechEvent>;
    fn reset(&mut self);
}

/// A recognizer factory.
pub trait SpeechEngine: Send + Sync {
    fn session(
        &self,
        grammar: &Grammar,
        sample_rate: u32,
    ) -> Result<Box<dyn Recognizer>, SpeechError>;
}

/// The embedded engine.
pub fn default_engine() -> Result<std::sync::Arc<dyn SpeechEngine>, SpeechError> {
    Err(SpeechError("not yet".into()))
}
