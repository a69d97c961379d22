//! Audio codecs behind one enum: G.711 µ-law/A-law (tables) and Opus (libopus).
//!
//! Contract: an [`Encoder`] turns one frame of mono PCM at the bridge rate into one RTP
//! payload; a [`Decoder`] turns one payload into PCM at the bridge rate, and conceals a lost
//! frame when asked (`conceal`). Opus runs at the bridge rate itself (libopus encodes and
//! decodes at 8, 12, 16, 24 or 48 kHz), so G.711 ↔ Opus needs no resampler; its RTP clock is
//! always 48 kHz (RFC 7587).

use super::g711;
use crate::config::Codec;

/// A negotiated codec on a leg: which one, its RTP payload type and RTP clock rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecSpec {
    pub codec: Codec,
    pub pt: u8,
    pub clock_rate: u32,
}

impl CodecSpec {
    /// RTP timestamp units per millisecond.
    pub fn units_per_ms(&self) -> u32 {
        self.clock_rate / 1000
    }
    /// The name used in SDP rtpmap.
    pub fn encoding(&self) -> &'static str {
        encoding(self.codec)
    }
}

/// SDP encoding name of a codec.
pub fn encoding(c: Codec) -> &'static str {
    match c {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
        Codec::Opus => "opus",
    }
}

/// Why a codec could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// libopus refused the parameters.
    #[error("opus: {0}")]
    Opus(String),
}

/// Encodes frames for one leg.
pub enum Encoder {
    Pcmu,
    Pcma,
    Opus(Box<opus::Encoder>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Pcmu => "Encoder::Pcmu",
            Encoder::Pcma => "Encoder::Pcma",
            Encoder::Opus(_) => "Encoder::Opus",
        })
    }
}

impl Encoder {
    /// An encoder taking PCM at `pcm_rate`.
    pub fn new(codec: Codec, pcm_rate: u32) -> Result<Encoder, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Encoder::Pcmu,
            Codec::Pcma => Encoder::Pcma,
            Codec::Opus => {
                let mut e =
                    opus::Encoder::new(pcm_rate, opus::Channels::Mono, opus::Application::Voip)
                        .map_err(|e| CodecError::Opus(e.to_string()))?;
                // Loss-resilient defaults for phone calls (RFC 7587 §3.1.2 in-band FEC).
                let _ = e.set_inband_fec(true);
                let _ = e.set_packet_loss_perc(5);
                Encoder::Opus(Box::new(e))
            }
        })
    }

    /// Encodes `pcm` into `out`; returns the payload length (0 if the codec failed).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        match self {
            Encoder::Pcmu => {
                let n = pcm.len().min(out.len());
                g711::pcm_to_ulaw(&pcm[..n], &mut out[..n]);
                n
            }
            Encoder::Pcma => {
                let n = pcm.len().min(out.len());
                g711::pcm_to_alaw(&pcm[..n], &mut out[..n]);
                n
            }
            Encoder::Opus(e) => e.encode(pcm, out).unwrap_or(0),
        }
    }
}

/// Decodes payloads from one leg.
pub enum Decoder {
    Pcmu,
    Pcma,
    Opus(Box<opus::Decoder>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Pcmu => "Decoder::Pcmu",
            Decoder::Pcma => "Decoder::Pcma",
            Decoder::Opus(_) => "Decoder::Opus",
        })
    }
}

impl Decoder {
    /// A decoder producing PCM at `pcm_rate`.
    pub fn new(codec: Codec, pcm_rate: u32) -> Result<Decoder, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Decoder::Pcmu,
            Codec::Pcma => Decoder::Pcma,
            Codec::Opus => Decoder::Opus(Box::new(
                opus::Decoder::new(pcm_rate, opus::Channels::Mono)
                    .map_err(|e| CodecError::Opus(e.to_string()))?,
            )),
        })
    }

    /// Decodes one payload into `out` (resized to the frame); returns the sample count.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>, frame_samples: usize) -> usize {
        match self {
            Decoder::Pcmu => {
                out.resize(payload.len(), 0);
                g711::ulaw_to_pcm(payload, out);
                payload.len()
            }
            Decoder::Pcma => {
                out.resize(payload.len(), 0);
                g711::alaw_to_pcm(payload, out);
                payload.len()
            }
            Decoder::Opus(d) => {
                out.resize(frame_samples.max(120) * 6, 0);
                let n = d.decode(payload, out, false).unwrap_or(0);
                out.truncate(n);
                n
            }
        }
    }

    /// Conceals one lost frame of `frame_samples` (Opus PLC; G.711 fades the last frame).
    pub fn conceal(&mut self, out: &mut Vec<i16>, frame_samples: usize) {
        match self {
            Decoder::Opus(d) => {
                out.resize(frame_samples, 0);
                let n = d.decode(&[], out, false).unwrap_or(0);
                out.truncate(n);
                out.resize(frame_samples, 0);
            }
            _ => {
                // Repeat the previous frame at half level: short gaps stay smooth, long ones
                // fade to silence.
                out.resize(frame_samples, 0);
                for s in out.iter_mut() {
                    *s /= 2;
                }
            }
        }
    }
}
