//! temporary
use std::path::PathBuf;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TtsError(pub String);
pub struct Tts {
    dir: PathBuf,
}
impl Tts {
    pub fn new(dir: PathBuf) -> Tts {
        Tts { dir }
    }
    pub fn render(&self, text: &str) -> Result<PathBuf, TtsError> {
        let _ = std::fs::create_dir_all(&self.dir);
        let p = self.dir.join(format!("{:x}.wav", text.len()));
        let st = std::process::Command::new("espeak-ng")
            .arg("-w")
            .arg(&p)
            .arg(text)
            .status()
            .map_err(|e| TtsError(e.to_string()))?;
        if !st.success() {
            return Err(TtsError("espeak failed".into()));
        }
        Ok(p)
    }
}
