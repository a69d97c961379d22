//! WAV (RIFF/WAVE) reading for prompts and writing for call recording.
//!
//! Contract:
//! * [`Wav::from_bytes`] / [`Wav::from_reader`] accept RIFF/WAVE files whose
//!   `fmt ` chunk is PCM (8-bit unsigned, 16/24/32-bit signed little-endian),
//!   IEEE float 32, A-law (6) or µ-law (7), plain or `WAVE_FORMAT_EXTENSIBLE`
//!   (sub-format GUID checked); mono or stereo; any non-zero sample rate. Unknown
//!   chunks (LIST, fact, cue, ...) are skipped, honouring the RIFF pad byte of
//!   odd-sized chunks. Samples come back as interleaved 16-bit PCM: wider integer
//!   samples keep their 16 most significant bits, 8-bit is re-centred and scaled,
//!   float is scaled by 32768 with saturation (NaN → 0), G.711 is decoded.
//! * A `data` chunk size of `0xFFFFFFFF` (streaming writers) means "to the end of
//!   the file"; a trailing partial sample frame is ignored. A data chunk that
//!   claims more bytes than the file holds is an error ([`WavError::Truncated`]).
//!   Bytes after the RIFF size (e.g. audio written after the last flush of a
//!   crashed [`WavWriter`]) are ignored.
//! * Every malformed input yields a [`WavError`]; the reader never panics and
//!   never allocates more than the input size.
//! * [`WavWriter`] writes 16-bit PCM over any `Write + Seek`. `new` writes a
//!   44-byte header with zero sizes; [`WavWriter::flush`] patches the RIFF and
//!   data sizes to cover everything written so far and flushes the sink, so a
//!   file cut off by a crash is readable up to the last flush. With
//!   [`WavWriter::set_flush_interval`] this happens automatically every N
//!   seconds of audio. [`WavWriter::finalize`] patches the sizes one last time
//!   and returns the sink.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::g711;

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 2..16 of the KSDATAFORMAT_SUBTYPE_* GUIDs (after the 16-bit format code).
const SUBFORMAT_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
const HEADER_LEN: u64 = 44;

/// Decoded audio: interleaved 16-bit samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    /// Interleaved samples (`frames × channels`).
    pub samples: Vec<i16>,
}

/// Why a WAV file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("I/O error reading WAV: {0}")]
    Io(#[from] io::Error),
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("truncated WAV file: {0}")]
    Truncated(&'static str),
    #[error("no fmt chunk")]
    MissingFmt,
    #[error("no data chunk")]
    MissingData,
    #[error("malformed fmt chunk: {0}")]
    BadFormat(&'static str),
    #[error("unsupported WAV format tag {0:#06x}")]
    UnsupportedFormat(u16),
    #[error("unsupported {bits}-bit sample size for format tag {format:#06x}")]
    UnsupportedBits { format: u16, bits: u16 },
    #[error("unsupported channel count {0} (mono or stereo only)")]
    UnsupportedChannels(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Unsigned8,
    Signed16,
    Signed24,
    Signed32,
    Float32,
    Alaw,
    Ulaw,
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::Unsigned8 | Encoding::Alaw | Encoding::Ulaw => 1,
            Encoding::Signed16 => 2,
            Encoding::Signed24 => 3,
            Encoding::Signed32 | Encoding::Float32 => 4,
        }
    }

    #[inline]
    fn decode(self, b: &[u8]) -> i16 {
        match self {
            Encoding::Unsigned8 => ((b[0] as i16) - 128) << 8,
            Encoding::Signed16 => i16::from_le_bytes([b[0], b[1]]),
            Encoding::Signed24 => i16::from_le_bytes([b[1], b[2]]),
            Encoding::Signed32 => i16::from_le_bytes([b[2], b[3]]),
            Encoding::Float32 => {
                let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                // `as` saturates and maps NaN to 0.
                (f * 32768.0).round() as i16
            }
            Encoding::Alaw => g711::alaw_to_linear(b[0]),
            Encoding::Ulaw => g711::ulaw_to_linear(b[0]),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Format {
    encoding: Encoding,
    channels: u16,
    rate: u32,
}

#[inline]
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_fmt(body: &[u8]) -> Result<Format, WavError> {
    if body.len() < 16 {
        return Err(WavError::BadFormat("shorter than 16 bytes"));
    }
    let mut tag = le16(body, 0);
    let channels = le16(body, 2);
    let rate = le32(body, 4);
    let block_align = le16(body, 12);
    let bits = le16(body, 14);
    if tag == FORMAT_EXTENSIBLE {
        if body.len() < 40 || le16(body, 16) < 22 {
            return Err(WavError::BadFormat("WAVE_FORMAT_EXTENSIBLE fmt too short"));
        }
        let guid = &body[24..40];
        if guid[2..16] != SUBFORMAT_GUID_TAIL {
            return Err(WavError::UnsupportedFormat(FORMAT_EXTENSIBLE));
        }
        tag = le16(guid, 0);
    }
    let encoding = match (tag, bits) {
        (FORMAT_PCM, 8) => Encoding::Unsigned8,
        (FORMAT_PCM, 16) => Encoding::Signed16,
        (FORMAT_PCM, 24) => Encoding::Signed24,
        (FORMAT_PCM, 32) => Encoding::Signed32,
        (FORMAT_FLOAT, 32) => Encoding::Float32,
        (FORMAT_ALAW, 8) => Encoding::Alaw,
        (FORMAT_ULAW, 8) => Encoding::Ulaw,
        (FORMAT_PCM | FORMAT_FLOAT | FORMAT_ALAW | FORMAT_ULAW, _) => {
            return Err(WavError::UnsupportedBits { format: tag, bits })
        }
        (other, _) => return Err(WavError::UnsupportedFormat(other)),
    };
    if channels == 0 || channels > 2 {
        return Err(WavError::UnsupportedChannels(channels));
    }
    if rate == 0 {
        return Err(WavError::BadFormat("sample rate is 0"));
    }
    if block_align as usize != channels as usize * encoding.bytes() {
        return Err(WavError::BadFormat(
            "block_align does not match channels × sample size",
        ));
    }
    Ok(Format {
        encoding,
        channels,
        rate,
    })
}

impl Wav {
    /// Parse a complete WAV file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Wav, WavError> {
        if bytes.len() < 12 {
            return Err(if bytes.starts_with(b"RIFF") {
                WavError::Truncated("RIFF header")
            } else {
                WavError::NotWave
            });
        }
        if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(WavError::NotWave);
        }
        let riff_size = le32(bytes, 4);
        let end = if riff_size == 0 || riff_size == u32::MAX {
            bytes.len()
        } else {
            bytes.len().min(8usize.saturating_add(riff_size as usize))
        };

        let mut pos = 12usize;
        let mut fmt = None;
        let mut data: Option<(usize, usize)> = None;
        let mut cut_short = false;
        while fmt.is_none() || data.is_none() {
            if pos >= end {
                break;
            }
            if end - pos < 8 {
                cut_short = true;
                break;
            }
            let id = &bytes[pos..pos + 4];
            let size = le32(bytes, pos + 4) as usize;
            let body_start = pos + 8;
            let avail = end - body_start;
            match id {
                b"fmt " => {
                    if size > avail {
                        return Err(WavError::Truncated("fmt chunk"));
                    }
                    fmt = Some(parse_fmt(&bytes[body_start..body_start + size])?);
                }
                b"data" => {
                    let len = if size == u32::MAX as usize {
                        avail
                    } else if size > avail {
                        return Err(WavError::Truncated("data chunk"));
                    } else {
                        size
                    };
                    data = Some((body_start, len));
                }
                _ => {}
            }
            if size > avail {
                cut_short = true;
                break;
            }
            // Chunks are padded to an even size.
            pos = body_start + size + (size & 1);
        }

        let fmt = match fmt {
            Some(f) => f,
            None if cut_short => return Err(WavError::Truncated("before fmt chunk")),
            None => return Err(WavError::MissingFmt),
        };
        let (start, len) = match data {
            Some(d) => d,
            None if cut_short => return Err(WavError::Truncated("before data chunk")),
            None => return Err(WavError::MissingData),
        };
        let sample_bytes = fmt.encoding.bytes();
        let frame_bytes = sample_bytes * fmt.channels as usize;
        let len = len - len % frame_bytes;
        let samples = bytes[start..start + len]
            .chunks_exact(sample_bytes)
            .map(|b| fmt.encoding.decode(b))
            .collect();
        Ok(Wav {
            rate: fmt.rate,
            channels: fmt.channels,
            samples,
        })
    }

    /// Read a whole WAV file from `r`.
    pub fn from_reader<R: Read>(mut r: R) -> Result<Wav, WavError> {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)?;
        Wav::from_bytes(&bytes)
    }

    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels.max(1) as usize
    }

    /// Playing time.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(
            (self.frames() as u128 * 1_000_000_000 / self.rate.max(1) as u128).min(u64::MAX as u128)
                as u64,
        )
    }
}

/// 16-bit PCM WAV writer with crash-tolerant header updates.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    w: W,
    start: u64,
    channels: u16,
    rate: u32,
    data_bytes: u64,
    flush_every: Option<u64>,
    since_flush: u64,
}

/// Largest data chunk that keeps the RIFF size within 32 bits.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - (HEADER_LEN - 8);

impl<W: Write + Seek> WavWriter<W> {
    /// Start a WAV file at the current position of `w` with a provisional header.
    pub fn new(mut w: W, rate: u32, channels: u16) -> io::Result<Self> {
        if rate == 0 || channels == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "WAV rate and channel count must be non-zero",
            ));
        }
        let start = w.stream_position()?;
        let block_align = channels as u32 * 2;
        let mut h = [0u8; HEADER_LEN as usize];
        h[0..4].copy_from_slice(b"RIFF");
        h[4..8].copy_from_slice(&((HEADER_LEN - 8) as u32).to_le_bytes());
        h[8..12].copy_from_slice(b"WAVE");
        h[12..16].copy_from_slice(b"fmt ");
        h[16..20].copy_from_slice(&16u32.to_le_bytes());
        h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
        h[22..24].copy_from_slice(&channels.to_le_bytes());
        h[24..28].copy_from_slice(&rate.to_le_bytes());
        h[28..32].copy_from_slice(&rate.wrapping_mul(block_align).to_le_bytes());
        h[32..34].copy_from_slice(&(block_align as u16).to_le_bytes());
        h[34..36].copy_from_slice(&16u16.to_le_bytes());
        h[36..40].copy_from_slice(b"data");
        h[40..44].copy_from_slice(&0u32.to_le_bytes());
        w.write_all(&h)?;
        Ok(WavWriter {
            w,
            start,
            channels,
            rate,
            data_bytes: 0,
            flush_every: None,
            since_flush: 0,
        })
    }

    /// Patch the header automatically after every `interval` of audio written
    /// (`None` disables). Bounds what a crash can lose.
    pub fn set_flush_interval(&mut self, interval: Option<Duration>) {
        self.flush_every = interval.map(|d| {
            let frames = d.as_nanos() * self.rate as u128 / 1_000_000_000;
            (frames * self.channels as u128 * 2).clamp(2, u64::MAX as u128) as u64
        });
    }

    /// Bytes of sample data written so far.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Append interleaved samples (callers keep frames whole: a multiple of the
    /// channel count over the life of the file).
    pub fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
        let bytes = samples.len() as u64 * 2;
        if self.data_bytes + bytes > MAX_DATA_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "WAV data would exceed the 4 GiB RIFF limit",
            ));
        }
        let mut buf = [0u8; 4096];
        for chunk in samples.chunks(buf.len() / 2) {
            for (o, s) in buf.chunks_exact_mut(2).zip(chunk) {
                o.copy_from_slice(&s.to_le_bytes());
            }
            self.w.write_all(&buf[..chunk.len() * 2])?;
        }
        self.data_bytes += bytes;
        self.since_flush += bytes;
        if let Some(every) = self.flush_every {
            if self.since_flush >= every {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Patch the RIFF and data sizes to cover everything written so far, restore
    /// the write position and flush the sink.
    pub fn flush(&mut self) -> io::Result<()> {
        let riff = (HEADER_LEN - 8 + self.data_bytes) as u32;
        self.w.seek(SeekFrom::Start(self.start + 4))?;
        self.w.write_all(&riff.to_le_bytes())?;
        self.w.seek(SeekFrom::Start(self.start + 40))?;
        self.w.write_all(&(self.data_bytes as u32).to_le_bytes())?;
        self.w
            .seek(SeekFrom::Start(self.start + HEADER_LEN + self.data_bytes))?;
        self.w.flush()?;
        self.since_flush = 0;
        Ok(())
    }

    /// Write the final sizes and return the sink.
    pub fn finalize(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    /// Build a WAV file by hand: fmt body + extra chunks + data.
    fn craft(fmt_body: &[u8], extra: &[(&[u8; 4], &[u8])], data: &[u8]) -> Vec<u8> {
        let mut chunks = Vec::new();
        let mut push = |id: &[u8], body: &[u8]| {
            chunks.extend_from_slice(id);
            chunks.extend_from_slice(&(body.len() as u32).to_le_bytes());
            chunks.extend_from_slice(body);
            if body.len() % 2 == 1 {
                chunks.push(0);
            }
        };
        for (id, body) in extra {
            push(&id[..], body);
        }
        push(b"fmt ", fmt_body);
        push(b"data", data);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&((4 + chunks.len()) as u32).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(&chunks);
        out
    }

    fn fmt(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut v = Vec::new();
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * align as u32).to_le_bytes());
        v.extend_from_slice(&align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v
    }

    fn fmt_extensible(sub: u16, channels: u16, rate: u32, bits: u16, valid: u16) -> Vec<u8> {
        let mut v = fmt(FORMAT_EXTENSIBLE, channels, rate, bits);
        v.extend_from_slice(&22u16.to_le_bytes());
        v.extend_from_slice(&valid.to_le_bytes());
        v.extend_from_slice(&(if channels == 2 { 3u32 } else { 4u32 }).to_le_bytes());
        v.extend_from_slice(&sub.to_le_bytes());
        v.extend_from_slice(&SUBFORMAT_GUID_TAIL);
        v
    }

    fn written(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), rate, channels).unwrap();
        w.write_samples(samples).unwrap();
        w.finalize().unwrap().into_inner()
    }

    #[test]
    fn pcm16_round_trip_with_writer() {
        let samples: Vec<i16> = (0..10_000)
            .map(|i| ((i * 37) % 65536 - 32768) as i16)
            .collect();
        let bytes = written(8000, 1, &samples);
        assert_eq!(bytes.len(), 44 + 20_000);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(le32(&bytes, 4), 36 + 20_000);
        assert_eq!(le32(&bytes, 40), 20_000);
        let wav = Wav::from_bytes(&bytes).unwrap();
        assert_eq!(wav.rate, 8000);
        assert_eq!(wav.channels, 1);
        assert_eq!(wav.samples, samples);
        assert_eq!(wav.duration(), Duration::from_millis(1250));
        let wav2 = Wav::from_reader(Cursor::new(&bytes)).unwrap();
        assert_eq!(wav2, wav);
    }

    #[test]
    fn stereo_interleaving() {
        let samples = [1i16, -1, 2, -2, 3, -3];
        let wav = Wav::from_bytes(&written(48_000, 2, &samples)).unwrap();
        assert_eq!(wav.channels, 2);
        assert_eq!(wav.frames(), 3);
        assert_eq!(wav.samples, samples);
        // Hand-crafted 8-bit stereo: L=255, R=0 → +32512, −32768.
        let wav = Wav::from_bytes(&craft(&fmt(1, 2, 8000, 8), &[], &[255, 0, 128, 128])).unwrap();
        assert_eq!(wav.samples, vec![32512, -32768, 0, 0]);
    }

    #[test]
    fn pcm8_24_32_formats() {
        let w = Wav::from_bytes(&craft(&fmt(1, 1, 8000, 8), &[], &[0, 128, 255, 129])).unwrap();
        assert_eq!(w.samples, vec![-32768, 0, 32512, 256]);

        // 24-bit: 0x123456 → 0x1234; −1 (0xFFFFFF) → −1; min → −32768.
        let data = [0x56, 0x34, 0x12, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x80];
        let w = Wav::from_bytes(&craft(&fmt(1, 1, 16_000, 24), &[], &data)).unwrap();
        assert_eq!(w.samples, vec![0x1234, -1, -32768]);

        let mut data = Vec::new();
        for v in [0x7FFF_FFFFi32, -0x8000_0000, 0x0001_0000, 0x0000_FFFF] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let w = Wav::from_bytes(&craft(&fmt(1, 1, 44_100, 32), &[], &data)).unwrap();
        assert_eq!(w.samples, vec![32767, -32768, 1, 0]);
        assert_eq!(w.rate, 44_100);
    }

    #[test]
    fn float32_format() {
        let mut data = Vec::new();
        for f in [0.0f32, 0.5, -0.5, 1.0, -1.0, 2.0, f32::NAN, -3.0] {
            data.extend_from_slice(&f.to_le_bytes());
        }
        let w = Wav::from_bytes(&craft(&fmt(3, 1, 8000, 32), &[], &data)).unwrap();
        assert_eq!(
            w.samples,
            vec![0, 16384, -16384, 32767, -32768, 32767, 0, -32768]
        );
    }

    #[test]
    fn g711_formats() {
        let w = Wav::from_bytes(&craft(&fmt(7, 1, 8000, 8), &[], &[0xFF, 0x00, 0x80])).unwrap();
        assert_eq!(w.samples, vec![0, -32124, 32124]);
        let w = Wav::from_bytes(&craft(&fmt(6, 1, 8000, 8), &[], &[0xD5, 0x55])).unwrap();
        assert_eq!(w.samples, vec![8, -8]);
    }

    #[test]
    fn extensible_formats() {
        let samples = [100i16, -200, 300, -400];
        let mut data = Vec::new();
        for s in samples {
            data.extend_from_slice(&s.to_le_bytes());
        }
        let w = Wav::from_bytes(&craft(&fmt_extensible(1, 2, 8000, 16, 16), &[], &data)).unwrap();
        assert_eq!((w.channels, w.samples.clone()), (2, samples.to_vec()));

        // 20 valid bits in a 24-bit container (left-aligned).
        let data = [0x00, 0x34, 0x12];
        let w = Wav::from_bytes(&craft(&fmt_extensible(1, 1, 8000, 24, 20), &[], &data)).unwrap();
        assert_eq!(w.samples, vec![0x1234]);

        let data = 0.25f32.to_le_bytes();
        let w = Wav::from_bytes(&craft(&fmt_extensible(3, 1, 8000, 32, 32), &[], &data)).unwrap();
        assert_eq!(w.samples, vec![8192]);

        let w = Wav::from_bytes(&craft(&fmt_extensible(7, 1, 8000, 8, 8), &[], &[0x00])).unwrap();
        assert_eq!(w.samples, vec![-32124]);

        // Unknown sub-format GUID.
        let mut f = fmt_extensible(1, 1, 8000, 16, 16);
        f[30] ^= 0xFF;
        assert!(matches!(
            Wav::from_bytes(&craft(&f, &[], &[0, 0])),
            Err(WavError::UnsupportedFormat(0xFFFE))
        ));
    }

    #[test]
    fn skips_unknown_chunks_including_odd_sized() {
        let f = fmt(1, 1, 8000, 16);
        let bytes = craft(
            &f,
            &[
                (b"LIST", b"INFOISFT\x05\x00\x00\x00abcd\x00"),
                (b"junk", b"odd"),
            ],
            &[1, 0, 2, 0],
        );
        let w = Wav::from_bytes(&bytes).unwrap();
        assert_eq!(w.samples, vec![1, 2]);

        // data before fmt, chunk after data.
        let mut chunks = Vec::new();
        chunks.extend_from_slice(b"data\x02\x00\x00\x00\x07\x00");
        chunks.extend_from_slice(b"fmt \x10\x00\x00\x00");
        chunks.extend_from_slice(&f);
        chunks.extend_from_slice(b"cue \x00\x00\x00\x00");
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&((4 + chunks.len()) as u32).to_le_bytes());
        bytes.extend_from_slice(b"WAVE");
        bytes.extend_from_slice(&chunks);
        assert_eq!(Wav::from_bytes(&bytes).unwrap().samples, vec![7]);
    }

    #[test]
    fn corrupt_and_unsupported_inputs_error() {
        assert!(matches!(Wav::from_bytes(b""), Err(WavError::NotWave)));
        assert!(matches!(
            Wav::from_bytes(b"RIFF\x00"),
            Err(WavError::Truncated(_))
        ));
        assert!(matches!(
            Wav::from_bytes(b"RIFX\x04\x00\x00\x00WAVE"),
            Err(WavError::NotWave)
        ));
        assert!(matches!(
            Wav::from_bytes(b"\x00garbage garbage garbage"),
            Err(WavError::NotWave)
        ));

        let good = written(8000, 1, &[1, 2, 3, 4]);
        // Cut inside the data chunk.
        assert!(matches!(
            Wav::from_bytes(&good[..good.len() - 3]),
            Err(WavError::Truncated("data chunk"))
        ));
        // Cut inside the fmt chunk / before data.
        assert!(matches!(
            Wav::from_bytes(&good[..30]),
            Err(WavError::Truncated(_))
        ));
        assert!(matches!(
            Wav::from_bytes(&good[..38]),
            Err(WavError::Truncated(_))
        ));
        // No data chunk at all.
        let mut no_data = b"RIFF\x1c\x00\x00\x00WAVEfmt \x10\x00\x00\x00".to_vec();
        no_data.extend_from_slice(&fmt(1, 1, 8000, 16));
        assert!(matches!(
            Wav::from_bytes(&no_data),
            Err(WavError::MissingData)
        ));
        // No fmt chunk.
        let no_fmt = b"RIFF\x0e\x00\x00\x00WAVEdata\x02\x00\x00\x00\x01\x00";
        assert!(matches!(Wav::from_bytes(no_fmt), Err(WavError::MissingFmt)));

        let cases: [(Vec<u8>, &str); 6] = [
            (fmt(2, 1, 8000, 4), "ADPCM"),
            (fmt(1, 3, 8000, 16), "3 channels"),
            (fmt(1, 1, 8000, 12), "12-bit"),
            (fmt(1, 1, 0, 16), "rate 0"),
            (fmt(3, 1, 8000, 64), "float64"),
            (fmt(1, 1, 8000, 16)[..14].to_vec(), "short fmt"),
        ];
        for (f, what) in cases {
            let r = Wav::from_bytes(&craft(&f, &[], &[0; 8]));
            assert!(r.is_err(), "{what} accepted");
        }
        // block_align inconsistent.
        let mut f = fmt(1, 2, 8000, 16);
        f[12] = 2;
        assert!(matches!(
            Wav::from_bytes(&craft(&f, &[], &[0; 8])),
            Err(WavError::BadFormat(_))
        ));
        // Error messages are readable.
        let e = Wav::from_bytes(&craft(&fmt(1, 3, 8000, 16), &[], &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported channel count 3 (mono or stereo only)"
        );
    }

    #[test]
    fn streaming_data_size_and_partial_frame() {
        let f = fmt(1, 2, 8000, 16);
        let mut bytes = craft(&f, &[], &[1, 0, 2, 0, 3, 0, 4, 0, 5]);
        // Patch data size to 0xFFFFFFFF and RIFF size to 0xFFFFFFFF.
        let n = bytes.len();
        let data_size_at = n - 9 - 1 - 4; // body 9 bytes + pad byte
        bytes[data_size_at..data_size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let w = Wav::from_bytes(&bytes).unwrap();
        assert_eq!(w.samples, vec![1, 2, 3, 4]);
    }

    #[test]
    fn crash_tolerant_flush() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 8000, 1).unwrap();
        w.write_samples(&[1; 800]).unwrap();
        w.flush().unwrap();
        w.write_samples(&[2; 400]).unwrap();
        // "Crash": take the bytes as they are, without finalize.
        let snapshot = w.w.get_ref().clone();
        let wav = Wav::from_bytes(&snapshot).unwrap();
        assert_eq!(wav.samples, vec![1; 800]);

        // Automatic flush every 100 ms of audio.
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 8000, 2).unwrap();
        w.set_flush_interval(Some(Duration::from_millis(100)));
        for i in 0..25 {
            w.write_samples(&[i as i16; 160]).unwrap(); // 10 ms stereo
        }
        let snapshot = w.w.get_ref().clone();
        let wav = Wav::from_bytes(&snapshot).unwrap();
        assert_eq!(wav.frames(), 1600); // flushed at 100 ms and 200 ms
        let all = Wav::from_bytes(&w.finalize().unwrap().into_inner()).unwrap();
        assert_eq!(all.frames(), 2000);

        // Nothing flushed yet: readable and empty.
        let w = WavWriter::new(Cursor::new(Vec::new()), 8000, 1).unwrap();
        let wav = Wav::from_bytes(w.w.get_ref()).unwrap();
        assert!(wav.samples.is_empty());
    }

    #[test]
    fn writer_at_offset_and_invalid_params() {
        let mut c = Cursor::new(vec![0xEE; 10]);
        c.seek(SeekFrom::End(0)).unwrap();
        let mut w = WavWriter::new(c, 16_000, 1).unwrap();
        w.write_samples(&[5, 6]).unwrap();
        let bytes = w.finalize().unwrap().into_inner();
        assert_eq!(&bytes[..10], &[0xEE; 10]);
        assert_eq!(Wav::from_bytes(&bytes[10..]).unwrap().samples, vec![5, 6]);
        assert!(WavWriter::new(Cursor::new(Vec::new()), 0, 1).is_err());
        assert!(WavWriter::new(Cursor::new(Vec::new()), 8000, 0).is_err());
    }

    proptest! {
        #[test]
        fn reader_never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Wav::from_bytes(&data);
        }

        #[test]
        fn reader_never_panics_on_mutated_file(
            tag in prop::sample::select(vec![1u16, 3, 6, 7, 0xFFFE, 2]),
            channels in 0u16..4, bits in prop::sample::select(vec![0u16, 8, 16, 24, 32, 64]),
            mutations in proptest::collection::vec((0usize..120, any::<u8>()), 0..6),
            cut in 0usize..140,
        ) {
            let f = if tag == 0xFFFE { fmt_extensible(1, channels, 8000, bits, bits) }
                    else { fmt(tag, channels, 8000, bits) };
            let mut bytes = craft(&f, &[(b"LIST", b"abc")], &[7u8; 48]);
            for (at, v) in mutations {
                if at < bytes.len() { bytes[at] = v; }
            }
            bytes.truncate(bytes.len().saturating_sub(cut));
            let _ = Wav::from_bytes(&bytes);
        }

        #[test]
        fn writer_reader_round_trip(samples in proptest::collection::vec(any::<i16>(), 0..2000),
                                    stereo in any::<bool>()) {
            let channels = if stereo { 2 } else { 1 };
            let mut s = samples;
            s.truncate(s.len() - s.len() % channels as usize);
            let wav = Wav::from_bytes(&written(22_050, channels, &s)).unwrap();
            prop_assert_eq!(wav.samples, s);
            prop_assert_eq!(wav.channels, channels);
        }
    }
}
