//! Validation errors of flow files.
//!
//! Contract: every problem the loader finds becomes one [`FlowError`]: the file,
//! a 1-based line and column, and a [`FlowErrorKind`] saying what is wrong.
//! `Display` renders `file:line:col: message` on one line (control characters
//! in quoted designer text are escaped), the form editors and compilers
//! understand. Suggestions ("did you mean `x`?") come from [`suggest`].

use std::fmt;
use std::path::PathBuf;

/// One problem in a flow file (or `calendars.yaml`) and where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", super::yaml::sanitize(&format!("{}:{line}:{col}: {kind}", file.display())))]
pub struct FlowError {
    /// The file, as given to the loader (directory joined with the file name).
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
    /// What is wrong.
    pub kind: FlowErrorKind,
}

/// "; did you mean `x`?" when there is a suggestion, else nothing.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DidYouMean(pub Option<String>);

impl fmt::Display for DidYouMean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => Ok(()),
        }
    }
}

/// A list of names rendered as `` `a` -> `b` -> `a` ``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain(pub Vec<String>);

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

/// What is wrong, one variant per class of problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowErrorKind {
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Io(String),
    /// The file is not valid YAML.
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    /// A node has the wrong shape (string, list, mapping...).
    #[error("`{field}` must be {expected}, found {found}")]
    WrongType {
        /// The field (or element) concerned.
        field: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// A value has the right shape but is not acceptable.
    #[error("invalid `{field}`: {problem}")]
    InvalidValue {
        /// The field concerned.
        field: String,
        /// Why it is wrong.
        problem: String,
    },
    /// A step `type` that does not exist.
    #[error("unknown step type `{found}`{suggestion}")]
    UnknownStepType {
        /// What was written.
        found: String,
        /// The closest step type.
        suggestion: DidYouMean,
    },
    /// A field that this place does not take.
    #[error("unknown field `{found}` in {context}{suggestion}")]
    UnknownField {
        /// What was written.
        found: String,
        /// Where, e.g. "`menu` step `main_menu`".
        context: String,
        /// The closest allowed field.
        suggestion: DidYouMean,
    },
    /// A required field is absent.
    #[error("missing field `{field}` in {context}")]
    MissingField {
        /// The field.
        field: &'static str,
        /// Where.
        context: String,
    },
    /// A transition names a step that does not exist.
    #[error("unknown step `{found}` in `{field}`{suggestion}")]
    UnknownStep {
        /// The target written.
        found: String,
        /// The transition field (`next`, `default`, `start`...).
        field: String,
        /// The closest step name.
        suggestion: DidYouMean,
    },
    /// A queue, user, trunk, prompt file, calendar or flow that is not known.
    #[error("unknown {what} `{found}`{suggestion}")]
    UnknownName {
        /// "queue", "user", "trunk", "prompt file", "calendar" or "flow".
        what: &'static str,
        /// What was written.
        found: String,
        /// The closest known name.
        suggestion: DidYouMean,
    },
    /// Two steps with one name.
    #[error("duplicate step `{step}` (first defined on line {first_line})")]
    DuplicateStep {
        /// The name.
        step: String,
        /// Where the first one is.
        first_line: u32,
    },
    /// A mapping key written twice.
    #[error("duplicate key `{key}` (first written on line {first_line})")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where the first one is.
        first_line: u32,
    },
    /// Two flow files declare the same flow name.
    #[error("duplicate flow name `{name}` (also declared in {other})")]
    DuplicateFlow {
        /// The name.
        name: String,
        /// The other file.
        other: String,
    },
    /// Two calendars with one name.
    #[error("duplicate calendar `{0}`")]
    DuplicateCalendar(String),
    /// A DTMF key used by two menu choices.
    #[error("DTMF key `{key}` is already used by choice `{first}`")]
    DuplicateDtmf {
        /// The key.
        key: char,
        /// The choice that has it first.
        first: String,
    },
    /// A phrase used by two menu choices.
    #[error("phrase `{phrase}` is already used by choice `{first}`")]
    DuplicatePhrase {
        /// The (normalised) phrase.
        phrase: String,
        /// The choice that has it first.
        first: String,
    },
    /// A step that no path from the start reaches.
    #[error("step `{step}` is unreachable from the start step `{start}`")]
    Unreachable {
        /// The step.
        step: String,
        /// The flow's start step.
        start: String,
    },
    /// A cycle of steps none of which waits for the caller.
    #[error("steps {cycle} form a loop that never waits for the caller (add a menu, collect, record or a play with `wait`)")]
    SpinLoop {
        /// The cycle, first step repeated at the end.
        cycle: Chain,
    },
    /// Flows that call each other in a circle.
    #[error("flows {cycle} call each other in a circle")]
    CallCycle {
        /// The cycle, first flow repeated at the end.
        cycle: Chain,
    },
    /// A variable that no step of any flow sets and that is not built in.
    #[error("variable `{var}` is used but never set{suggestion}")]
    NeverSet {
        /// The variable.
        var: String,
        /// The closest variable that exists.
        suggestion: DidYouMean,
    },
    /// A variable set on some paths to this step but not on all.
    #[error("variable `{var}` may be unset here: not every path to step `{step}` sets it")]
    MaybeUnset {
        /// The variable.
        var: String,
        /// The step using it.
        step: String,
    },
    /// A `goto`/`call` into a flow whose `requires` may be unset here.
    #[error("flow `{flow}` requires variable `{var}`, which may be unset here")]
    RequiredUnset {
        /// The flow entered.
        flow: String,
        /// The variable.
        var: String,
    },
}

impl FlowErrorKind {
    /// Attach a file and position.
    pub(crate) fn at(self, file: &std::path::Path, pos: super::yaml::Pos) -> FlowError {
        FlowError {
            file: file.to_path_buf(),
            line: pos.line.max(1),
            col: pos.col.max(1),
            kind: self,
        }
    }
}

/// The candidate closest to `word` by edit distance (with transpositions), if
/// close enough to be a plausible typo: at most 2 edits, and fewer than the
/// length of the word.
pub fn suggest<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lower = word.to_lowercase();
    let limit = 2.min(word.chars().count().saturating_sub(1)).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let d = edit_distance(&word_lower, &candidate.to_lowercase());
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c.to_owned())
}

pub(crate) use crate::text::edit_distance;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_suggestions() {
        assert_eq!(edit_distance("plya", "play"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            suggest("plya", ["play", "menu", "hangup"]),
            Some("play".into())
        );
        assert_eq!(suggest("zzzz", ["play", "menu"]), None);
        assert_eq!(suggest("a", ["b"]), Some("b".into()));
    }
}
