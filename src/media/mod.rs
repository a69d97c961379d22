//! The media engine: anchored RTP for every call.
//!
//! Sans-IO pieces: RTP/RTCP ([`rtp`], [`rtcp`]), codecs ([`g711`], Opus in [`codec`]),
//! resampling ([`resample`]), jitter buffering with loss concealment ([`jitter`]), DTMF
//! ([`dtmf`]: RFC 4733 and in-band), tones ([`tone`]), WAV files ([`wav`]), and the
//! [`engine`] that ties them together per leg. The runtime's media thread owns the sockets.

pub mod codec;
pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod jitter;
pub mod prompt;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod tone;
pub mod wav;
