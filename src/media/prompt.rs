//! Prompts: audio the player sends to a leg, as 8 kHz mono samples.
//!
//! WAV files of any common format, rate and channel count are decoded ([`super::wav`]),
//! mixed down to mono and resampled ([`super::resample`]) once, when loaded; tones
//! (ringback, beeps) are rendered by [`super::tone::ToneGenerator`].

use super::engine::{Prompt, PCM_RATE};
use super::resample::Resampler;
use super::tone::ToneGenerator;
use super::wav::Wav;
use std::path::Path;

/// Why a prompt could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: {1}")]
    Wav(String, String),
    #[error("{0}: cannot resample from {1} Hz")]
    Rate(String, u32),
}

/// Decodes WAV bytes into a prompt (mono, 8 kHz).
pub fn from_wav_bytes(name: &str, bytes: &[u8]) -> Result<Prompt, PromptError> {
    let wav = Wav::from_bytes(bytes).map_err(|e| PromptError::Wav(name.into(), e.to_string()))?;
    let ch = wav.channels.max(1) as usize;
    let mono: Vec<i16> = wav
        .samples
        .chunks(ch)
        .map(|f| (f.iter().map(|s| *s as i32).sum::<i32>() / ch as i32) as i16)
        .collect();
    if wav.rate == PCM_RATE {
        return Ok(mono.into());
    }
    let mut rs = Resampler::for_file(wav.rate, PCM_RATE)
        .map_err(|_| PromptError::Rate(name.into(), wav.rate))?;
    let mut out =
        Vec::with_capacity(mono.len() * PCM_RATE as usize / wav.rate.max(1) as usize + 16);
    rs.process(&mono, &mut out);
    Ok(out.into())
}

/// Loads a WAV file as a prompt.
pub fn load_wav(path: &Path) -> Result<Prompt, PromptError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| PromptError::Io(name.clone(), e))?;
    from_wav_bytes(&name, &bytes)
}

/// Renders `ms` milliseconds of a generated tone (loop it for a continuous ringback).
pub fn tone(mut generator: ToneGenerator, ms: u32) -> Prompt {
    let mut out = vec![0i16; (ms * PCM_RATE / 1000) as usize];
    generator.fill(&mut out);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::dominant_frequency;
    use crate::media::wav::WavWriter;

    fn wav_bytes(rate: u32, channels: u16, freq: f32, secs: f32) -> Vec<u8> {
        let mut g = ToneGenerator::single(rate, freq, -10.0).unwrap();
        let mut mono = vec![0i16; (rate as f32 * secs) as usize];
        g.fill(&mut mono);
        let samples: Vec<i16> = mono
            .iter()
            .flat_map(|s| std::iter::repeat_n(*s, channels as usize))
            .collect();
        let mut w = WavWriter::new(std::io::Cursor::new(Vec::new()), rate, channels).unwrap();
        w.write_samples(&samples).unwrap();
        w.finalize().unwrap().into_inner()
    }

    #[test]
    fn wav_prompts_of_any_rate_and_channels_become_8khz_mono() {
        for (rate, ch) in [(8000, 1), (16000, 1), (44100, 2), (48000, 2)] {
            let p = from_wav_bytes("t.wav", &wav_bytes(rate, ch, 600.0, 1.0)).unwrap();
            assert!(
                (p.len() as i64 - 8000).abs() < 40,
                "{rate} Hz x{ch}: {} samples",
                p.len()
            );
            let (f, _) = dominant_frequency(&p[800..], 8000).unwrap();
            assert!((f - 600.0).abs() < 10.0, "{rate} Hz x{ch}: {f} Hz");
        }
        assert!(from_wav_bytes("bad.wav", b"RIFF....nonsense").is_err());
    }

    #[test]
    fn tones_render_at_8khz() {
        let p = tone(ToneGenerator::single(8000, 425.0, -15.0).unwrap(), 500);
        assert_eq!(p.len(), 4000);
        let (f, _) = dominant_frequency(&p, 8000).unwrap();
        assert!((f - 425.0).abs() < 5.0);
    }
}
