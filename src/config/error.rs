//! The error type reported by the profile loader, and conversion of
//! serde-saphyr's structural errors into it.

use std::path::{Path, PathBuf};

use serde_saphyr::{Location, MessageFormatter, UserMessageFormatter};

/// One problem found in a profile, with its 1-based position.
///
/// `Display` renders `file:line:col: message`, the format compilers and editors
/// understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    /// An error at an explicit position (both 1-based).
    pub fn new(file: &Path, line: usize, col: usize, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: line.max(1),
            col: col.max(1),
            message: message.into(),
        }
    }

    pub(super) fn at(file: &Path, location: Location, message: impl Into<String>) -> Self {
        let (line, col) = position(location);
        ConfigError::new(file, line, col, message)
    }
}

/// 1-based (line, column) of a serde-saphyr location; unknown locations
/// (line 0) are reported at the start of the file.
pub(super) fn position(location: Location) -> (usize, usize) {
    if location.line() == 0 {
        (1, 1)
    } else {
        (
            usize::try_from(location.line()).unwrap_or(usize::MAX),
            usize::try_from(location.column().max(1)).unwrap_or(usize::MAX),
        )
    }
}

/// Convert a structural (syntax / type / unknown-field) YAML error.
pub(super) fn from_yaml_error(file: &Path, err: &serde_saphyr::Error) -> ConfigError {
    // Alias and snippet wrappers carry the original error inside.
    let mut inner = err;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = inner
    {
        inner = error;
    }
    let location = err
        .location()
        .filter(|l| l.line() != 0)
        .or_else(|| inner.location())
        .unwrap_or(Location::UNKNOWN);
    let message = match inner {
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_word("field", field, expected),
        serde_saphyr::Error::InvalidScalar { ty, .. } => match *ty {
            "u16" => format!("expected a whole number from 0 to {}", u16::MAX),
            "u32" => format!("expected a whole number from 0 to {}", u32::MAX),
            "u64" => format!("expected a whole number from 0 to {}", u64::MAX),
            "bool" => "expected `true` or `false`".to_owned(),
            other => format!("invalid {other}"),
        },
        serde_saphyr::Error::MultipleDocuments { .. } => {
            "a profile must be a single YAML document (remove the extra `---`)".to_owned()
        }
        other => sanitize(&UserMessageFormatter.format_message(other)),
    };
    ConfigError::at(file, location, message)
}

/// Replace control characters so a hostile file cannot inject terminal escapes
/// or fake extra lines into our diagnostics.
pub(super) fn sanitize(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// "unknown {what} `x`; did you mean `y`?" or a list of the expected names.
pub(super) fn unknown_word(what: &str, word: &str, expected: &[&str]) -> String {
    let word = sanitize(word);
    match suggest(&word, expected) {
        Some(s) => format!("unknown {what} `{word}`; did you mean `{s}`?"),
        None if expected.is_empty() => format!("unknown {what} `{word}`"),
        None => format!(
            "unknown {what} `{word}`; expected one of {}",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The candidate closest to `word` (case-insensitive), if within edit distance 2.
pub(super) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("port", "prot"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("prot", &["name", "port"]), Some("port"));
        assert_eq!(suggest("zzzzzz", &["name", "port"]), None);
        assert_eq!(suggest("UDP", &["udp"]), Some("udp"));
    }

    #[test]
    fn sanitizes_control_characters() {
        assert_eq!(sanitize("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }
}
