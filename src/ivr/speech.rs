//! Matching what a caller said to menu choices, and spoken digits.
//!
//! Contract: pure functions. [`normalize`] lowercases, drops apostrophes and
//! turns every other non-alphanumeric character into a space, collapsing runs.
//! [`match_choice`] picks a choice for an utterance in four passes, stopping at
//! the first that decides:
//!
//! 1. the whole utterance equals a phrase (or the choice's own name);
//! 2. the utterance names a DTMF key ("one", "press two", "3");
//! 3. the utterance contains a phrase as consecutive words: the longest
//!    contained phrase wins ("I want to speak to an agent" contains "speak to
//!    an agent");
//! 4. word overlap ignoring filler words, tolerant of one-letter typos in long
//!    words: the phrase whose content words are best covered, at least half.
//!
//! A tie between two different choices in a pass means no match (asking again
//! beats guessing).

/// Lowercase, strip punctuation, collapse whitespace.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c == '\'' || c == '\u{2019}' {
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out
}

/// One choice as the matcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChoiceWords<'a> {
    /// The choice name (underscores read as spaces).
    pub name: &'a str,
    /// Phrases and synonyms.
    pub phrases: &'a [String],
    /// The DTMF key of the choice, if any.
    pub dtmf: Option<char>,
}

const FILLER: [&str; 40] = [
    "i", "a", "an", "the", "to", "my", "me", "want", "wanna", "would", "like", "please", "with",
    "about", "for", "of", "is", "it", "its", "im", "id", "can", "you", "need", "some", "on", "in",
    "and", "just", "do", "have", "get", "am", "be", "this", "that", "there", "um", "uh", "so",
];

const DIGIT_WORDS: [(&str, char); 13] = [
    ("zero", '0'),
    ("oh", '0'),
    ("o", '0'),
    ("one", '1'),
    ("two", '2'),
    ("three", '3'),
    ("four", '4'),
    ("five", '5'),
    ("six", '6'),
    ("seven", '7'),
    ("eight", '8'),
    ("nine", '9'),
    ("hash", '#'),
];

fn digit_of(token: &str) -> Option<char> {
    if token.len() == 1 && token.chars().all(|c| c.is_ascii_digit()) {
        return token.chars().next();
    }
    DIGIT_WORDS
        .iter()
        .find(|(w, _)| *w == token)
        .map(|(_, d)| *d)
}

/// The index of the choice the utterance means, if one clearly fits.
pub fn match_choice(utterance: &str, choices: &[ChoiceWords<'_>]) -> Option<usize> {
    let said = normalize(utterance);
    if said.is_empty() {
        return None;
    }
    let said_tokens: Vec<&str> = said.split(' ').collect();
    let phrases = |c: &ChoiceWords<'_>| -> Vec<String> {
        let mut v: Vec<String> = c.phrases.iter().map(|p| normalize(p)).collect();
        v.push(normalize(&c.name.replace('_', " ")));
        v.retain(|p| !p.is_empty());
        v
    };

    // 1. exact
    if let Some(i) = unique_best(
        choices
            .iter()
            .map(|c| phrases(c).contains(&said).then_some(1.0)),
    ) {
        return Some(i);
    }

    // 2. a DTMF key spoken
    let content: Vec<&str> = said_tokens
        .iter()
        .copied()
        .filter(|t| !matches!(*t, "press" | "option" | "number" | "key" | "dial"))
        .collect();
    if let [token] = content.as_slice() {
        if let Some(d) = digit_of(token) {
            if let Some(i) = choices.iter().position(|c| c.dtmf == Some(d)) {
                return Some(i);
            }
        }
    }

    // 3. contains a phrase: longest wins
    if let Some(i) = unique_best(choices.iter().map(|c| {
        phrases(c)
            .iter()
            .filter(|p| contains_words(&said_tokens, p))
            .map(|p| p.split(' ').count() as f64)
            .reduce(f64::max)
    })) {
        return Some(i);
    }

    // 4. overlap of content words
    let said_content: Vec<&str> = said_tokens
        .iter()
        .copied()
        .filter(|t| !FILLER.contains(t))
        .collect();
    unique_best(choices.iter().map(|c| {
        phrases(c)
            .iter()
            .filter_map(|p| {
                let words: Vec<&str> = p.split(' ').filter(|t| !FILLER.contains(t)).collect();
                if words.is_empty() {
                    return None;
                }
                let hits = words
                    .iter()
                    .filter(|w| said_content.iter().any(|s| similar(s, w)))
                    .count();
                let score = hits as f64 / words.len() as f64;
                (hits > 0 && score >= 0.5).then_some(score + hits as f64 / 100.0)
            })
            .reduce(f64::max)
    }))
}

/// The index of the single highest score; `None` on no score or a tie.
fn unique_best(scores: impl Iterator<Item = Option<f64>>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    let mut tied = false;
    for (i, score) in scores.enumerate() {
        let Some(s) = score else { continue };
        match best {
            Some((_, b)) if (s - b).abs() < 1e-9 => tied = true,
            Some((_, b)) if s < b => {}
            _ => {
                best = Some((i, s));
                tied = false;
            }
        }
    }
    if tied {
        None
    } else {
        best.map(|(i, _)| i)
    }
}

fn contains_words(said: &[&str], phrase: &str) -> bool {
    let words: Vec<&str> = phrase.split(' ').collect();
    !words.is_empty() && said.windows(words.len()).any(|w| w == words.as_slice())
}

fn similar(a: &str, b: &str) -> bool {
    a == b
        || (a.chars().count() >= 5
            && b.chars().count() >= 5
            && super::error::edit_distance(a, b) <= 1)
}

/// Digits spoken or typed in an utterance ("one two 3", "my number is 4 5"),
/// ignoring a few filler words; `None` if anything else was said.
pub fn spoken_digits(utterance: &str) -> Option<String> {
    let said = normalize(utterance);
    let mut digits = String::new();
    for token in said.split(' ').filter(|t| !t.is_empty()) {
        if token.chars().all(|c| c.is_ascii_digit()) {
            digits.push_str(token);
        } else if let Some(d) = digit_of(token).filter(|d| d.is_ascii_digit()) {
            digits.push(d);
        } else if !matches!(
            token,
            "my" | "account" | "number" | "is" | "it" | "its" | "um" | "uh"
        ) {
            return None;
        }
    }
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("  Pay my BILL, please!! "), "pay my bill please");
        assert_eq!(normalize("It's broken"), "its broken");
    }

    #[test]
    fn agent_phrase_matches() {
        let billing = words(&["billing", "bill", "pay my bill"]);
        let support = words(&["technical support", "support", "it's not working"]);
        let agent = words(&["agent", "speak to an agent", "representative"]);
        let choices = [
            ChoiceWords {
                name: "billing",
                phrases: &billing,
                dtmf: Some('1'),
            },
            ChoiceWords {
                name: "support",
                phrases: &support,
                dtmf: Some('2'),
            },
            ChoiceWords {
                name: "agent",
                phrases: &agent,
                dtmf: Some('0'),
            },
        ];
        assert_eq!(
            match_choice("I want to speak to an agent", &choices),
            Some(2)
        );
        assert_eq!(match_choice("Billing.", &choices), Some(0));
        assert_eq!(match_choice("I'd like to pay my bill", &choices), Some(0));
        assert_eq!(match_choice("technical support please", &choices), Some(1));
        assert_eq!(
            match_choice("my internet is not working", &choices),
            Some(1)
        );
        assert_eq!(match_choice("press two", &choices), Some(1));
        assert_eq!(match_choice("representatve", &choices), Some(2));
        assert_eq!(match_choice("the weather in Paris", &choices), None);
        assert_eq!(match_choice("", &choices), None);
    }

    #[test]
    fn digits_from_speech() {
        assert_eq!(spoken_digits("one two three 4").as_deref(), Some("1234"));
        assert_eq!(spoken_digits("my account number is 5 5"), Some("55".into()));
        assert_eq!(spoken_digits("billing"), None);
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(s in "\\PC{0,40}") {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once.clone());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' ') && !once.contains("  "));
        }

        #[test]
        fn a_phrase_always_matches_its_choice(i in 0usize..3, noise in "[a-z]{0,8}") {
            let sets = [words(&["billing", "pay my bill"]), words(&["sales", "buy something"]), words(&["agent", "speak to an agent"])];
            let names = ["billing", "sales", "agent"];
            let choices: Vec<ChoiceWords<'_>> = (0..3).map(|k| ChoiceWords { name: names[k], phrases: &sets[k], dtmf: None }).collect();
            let said = format!("{} {}", sets[i][1], noise);
            let _ = noise;
            prop_assert_eq!(match_choice(&sets[i][1], &choices), Some(i));
            // A phrase inside a longer sentence still matches unless the noise is another choice's word.
            if !["billing", "sales", "agent", "bill", "buy"].contains(&noise.as_str()) {
                prop_assert_eq!(match_choice(&said, &choices), Some(i));
            }
        }
    }
}
