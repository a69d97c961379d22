//! Text-to-speech with `espeak-ng`, cached on disk.
//!
//! # Contract
//!
//! * [`Tts::render`] returns the path of a WAV file (espeak-ng's 22 050 Hz mono 16-bit) that
//!   says `text` with the configured voice and speed. The file is
//!   `<cache dir>/<hash>.wav`, the hash being SHA-256 over voice, speed and text, so a
//!   text is rendered once and then served from the cache.
//! * espeak-ng runs as `espeak-ng -v VOICE -s SPEED -w TMP -- TEXT`, the text a single
//!   argument (never through a shell; `--` so a text starting with `-` is not an option).
//!   It writes to a temporary file in the cache directory that is renamed into place only
//!   once complete, so a crash or a failed render never leaves a partial file under the
//!   final name, and concurrent renders of one text are harmless.
//! * Blocking: call it from a thread that may wait (rendering takes tens of milliseconds).
//! * Errors say what to do: espeak-ng missing (install the `espeak-ng` package), unknown
//!   voice or other failure (espeak-ng's message), cache directory not writable, empty text.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Default espeak-ng voice.
pub const DEFAULT_VOICE: &str = "en-us";
/// Default speed, words per minute.
pub const DEFAULT_SPEED: u32 = 160;

/// Why a text could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// The program is not installed.
    #[error("text-to-speech: {program} not found (install the espeak-ng package)")]
    Missing {
        /// The program looked for.
        program: String,
    },
    /// espeak-ng ran and failed.
    #[error("text-to-speech: {program} failed ({status}): {message}")]
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        message: String,
    },
    /// The cache directory or a file in it could not be written.
    #[error("text-to-speech cache {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing to say.
    #[error("text-to-speech: empty text")]
    EmptyText,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An espeak-ng renderer with a cache directory (see the module docs).
#[derive(Clone, Debug)]
pub struct Tts {
    dir: PathBuf,
    voice: String,
    speed: u32,
    program: String,
}

impl Tts {
    /// A renderer caching into `dir` (created when first needed), voice `en-us`, 160 wpm.
    pub fn new(dir: PathBuf) -> Tts {
        Tts {
            dir,
            voice: DEFAULT_VOICE.to_string(),
            speed: DEFAULT_SPEED,
            program: "espeak-ng".to_string(),
        }
    }

    /// The same renderer with another voice (espeak-ng name, e.g. `en-gb+f3`) and speed
    /// (words per minute).
    pub fn with_voice(mut self, voice: &str, speed: u32) -> Tts {
        self.voice = voice.to_string();
        self.speed = speed;
        self
    }

    /// The same renderer running another program (same options as espeak-ng).
    pub fn with_program(mut self, program: &str) -> Tts {
        self.program = program.to_string();
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `text` is (or will be) cached.
    pub fn cache_path(&self, text: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.voice.as_bytes());
        h.update([0]);
        h.update(self.speed.to_string().as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.wav"))
    }

    /// The path of a WAV file saying `text`, rendered now unless cached.
    pub fn render(&self, text: &str) -> Result<PathBuf, TtsError> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText);
        }
        let path = self.cache_path(text);
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| TtsError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("render"),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.run(text, &tmp).and_then(|()| {
            std::fs::rename(&tmp, &path).map_err(|source| TtsError::Io {
                path: path.clone(),
                source,
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| path)
    }

    fn run(&self, text: &str, out: &Path) -> Result<(), TtsError> {
        let output = Command::new(&self.program)
            .arg("-v")
            .arg(&self.voice)
            .arg("-s")
            .arg(self.speed.to_string())
            .arg("-w")
            .arg(out)
            .arg("--")
            .arg(text)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => TtsError::Missing {
                    program: self.program.clone(),
                },
                _ => TtsError::Failed {
                    program: self.program.clone(),
                    status: "not started".to_string(),
                    message: e.to_string(),
                },
            })?;
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        // espeak-ng prints some errors (unknown voice) yet may exit 0: trust the file too.
        if !output.status.success() || size <= 44 {
            return Err(TtsError::Failed {
                program: self.program.clone(),
                status: output.status.to_string(),
                message: if message.is_empty() {
                    "no audio written".to_string()
                } else {
                    message
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::Wav;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-tts-{name}-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn renders_once_then_serves_the_cache() {
        let dir = temp_dir("cache");
        let tts = Tts::new(dir.join("sub"));
        let path = tts
            .render("Your call is important to us.")
            .expect("espeak-ng must be installed (tools/setup.sh installs it)");
        assert_eq!(path, tts.cache_path("Your call is important to us."));
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("wav"));
        let wav = Wav::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(wav.channels, 1);
        assert!(wav.duration().as_secs_f64() > 0.8, "{:?}", wav.duration());
        // Second render: same file, not rewritten.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(tts.render("Your call is important to us.").unwrap(), path);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            modified
        );
        // No temporary file left behind.
        let names: Vec<String> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn voice_speed_and_text_each_change_the_file() {
        let tts = Tts::new(PathBuf::from("/cache"));
        let a = tts.cache_path("hello");
        assert_ne!(a, tts.cache_path("hello."));
        assert_ne!(a, tts.clone().with_voice("en-gb", 160).cache_path("hello"));
        assert_ne!(a, tts.clone().with_voice("en-us", 150).cache_path("hello"));
        assert_eq!(a, Tts::new(PathBuf::from("/cache")).cache_path("hello"));
        assert!(a.starts_with("/cache"));
    }

    #[test]
    fn text_that_looks_like_options_or_shell_is_spoken_verbatim() {
        let dir = temp_dir("verbatim");
        let tts = Tts::new(dir.clone());
        let marker = dir.join("pwned");
        let text = format!(
            "-w {} ; touch {} $(touch {})",
            marker.display(),
            marker.display(),
            marker.display()
        );
        let path = tts.render(&text).expect("espeak-ng must be installed");
        assert!(path.is_file());
        assert!(!marker.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_are_clear() {
        let dir = temp_dir("errors");
        let missing = Tts::new(dir.clone()).with_program("espeak-ng-not-installed-here");
        let e = missing.render("hello").unwrap_err();
        assert!(matches!(e, TtsError::Missing { .. }), "{e:?}");
        assert!(
            e.to_string().contains("install the espeak-ng package"),
            "{e}"
        );

        let bad_voice = Tts::new(dir.clone()).with_voice("nosuchvoice", 160);
        let e = bad_voice.render("hello").unwrap_err();
        assert!(matches!(e, TtsError::Failed { .. }), "{e:?}");
        assert!(e.to_string().contains("voice"), "{e}");
        assert!(!bad_voice.cache_path("hello").exists());

        assert!(matches!(
            Tts::new(dir.clone()).render("  "),
            Err(TtsError::EmptyText)
        ));

        // A cache directory that cannot be created.
        let file = dir.join("a-file");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&file, b"x").unwrap();
        let e = Tts::new(file.join("cache")).render("hello").unwrap_err();
        assert!(matches!(e, TtsError::Io { .. }), "{e:?}");
        // Nothing but the plain file was left in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
