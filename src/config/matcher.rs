//! Matching the user part of a dialled Request-URI.

use regex::Regex;

/// How a route selects dialled numbers (the Request-URI user part).
#[derive(Debug, Clone)]
pub enum NumberMatch {
    /// The whole user part equals this string.
    Exact(String),
    /// The user part starts with this string; the empty prefix matches everything.
    Prefix(String),
    /// An all-digit user part of exactly `len` digits whose value is in `from..=to`
    /// (written `"1001-1010"`).
    Range { from: u64, to: u64, len: usize },
    /// A regular expression that must match the *whole* user part.
    Regex(Regex),
}

/// Longest digit string a range may use (fits in a `u64`).
const MAX_RANGE_DIGITS: usize = 19;

impl NumberMatch {
    pub fn matches(&self, user_part: &str) -> bool {
        match self {
            NumberMatch::Exact(n) => user_part == n,
            NumberMatch::Prefix(p) => user_part.starts_with(p.as_str()),
            NumberMatch::Range { from, to, len } => {
                user_part.len() == *len
                    && user_part.bytes().all(|b| b.is_ascii_digit())
                    && user_part
                        .parse::<u64>()
                        .is_ok_and(|n| (*from..=*to).contains(&n))
            }
            NumberMatch::Regex(re) => re.is_match(user_part),
        }
    }

    /// Parse `"FROM-TO"`: two digit strings of the same length, FROM <= TO.
    pub fn parse_range(text: &str) -> Result<Self, String> {
        let s = text.trim();
        let Some((a, b)) = s.split_once('-') else {
            return Err(format!(
                "invalid range `{s}`; expected `FROM-TO` such as `1001-1010`"
            ));
        };
        let (a, b) = (a.trim(), b.trim());
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(format!(
                "invalid range `{s}`; both ends must be digit strings, e.g. `1001-1010`"
            ));
        }
        if a.len() != b.len() {
            return Err(format!(
                "invalid range `{s}`: `{a}` and `{b}` have different lengths"
            ));
        }
        if a.len() > MAX_RANGE_DIGITS {
            return Err(format!(
                "invalid range `{s}`: at most {MAX_RANGE_DIGITS} digits are supported"
            ));
        }
        let (from, to): (u64, u64) = (
            a.parse().map_err(|_| format!("invalid range `{s}`"))?,
            b.parse().map_err(|_| format!("invalid range `{s}`"))?,
        );
        if from > to {
            return Err(format!("invalid range `{s}`: `{a}` is greater than `{b}`"));
        }
        Ok(NumberMatch::Range {
            from,
            to,
            len: a.len(),
        })
    }

    /// Compile a regex anchored at both ends.
    pub fn parse_regex(pattern: &str) -> Result<Self, String> {
        regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map(NumberMatch::Regex)
            .map_err(|e| {
                // The regex crate's messages span several lines; keep the last,
                // which states the problem.
                let detail = e.to_string();
                let last = detail.lines().rev().find(|l| !l.trim().is_empty());
                format!(
                    "invalid regex `{pattern}`: {}",
                    last.unwrap_or("invalid")
                        .trim()
                        .trim_start_matches("error: ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix() {
        let e = NumberMatch::Exact("100".into());
        assert!(e.matches("100"));
        assert!(!e.matches("1000"));
        assert!(!e.matches("10"));
        let p = NumberMatch::Prefix("00".into());
        assert!(p.matches("0049301234"));
        assert!(!p.matches("049"));
        let plus = NumberMatch::Prefix("+".into());
        assert!(plus.matches("+4930"));
        let all = NumberMatch::Prefix(String::new());
        assert!(all.matches(""));
        assert!(all.matches("anything"));
    }

    #[test]
    fn ranges() {
        let r = NumberMatch::parse_range("1001-1010").unwrap();
        assert!(r.matches("1001"));
        assert!(r.matches("1005"));
        assert!(r.matches("1010"));
        assert!(!r.matches("1000"));
        assert!(!r.matches("1011"));
        assert!(!r.matches("01005"));
        assert!(!r.matches("+1005"));
        assert!(!r.matches("10a5"));
        let z = NumberMatch::parse_range("000-099").unwrap();
        assert!(z.matches("042"));
        assert!(!z.matches("42"));
        assert!(NumberMatch::parse_range("100-99")
            .unwrap_err()
            .contains("different lengths"));
        assert!(NumberMatch::parse_range("200-100")
            .unwrap_err()
            .contains("greater"));
        assert!(NumberMatch::parse_range("1001").is_err());
        assert!(NumberMatch::parse_range("a-b").is_err());
        assert!(NumberMatch::parse_range("1-2-3").is_err());
        assert!(NumberMatch::parse_range("99999999999999999999-99999999999999999999").is_err());
    }

    #[test]
    fn regexes_are_anchored() {
        let r = NumberMatch::parse_regex("9[0-9]{3}").unwrap();
        assert!(r.matches("9123"));
        assert!(!r.matches("91234"));
        assert!(!r.matches("x9123"));
        let alt = NumberMatch::parse_regex("1|2").unwrap();
        assert!(alt.matches("2"));
        assert!(!alt.matches("12"));
        let err = NumberMatch::parse_regex("([0-9]").unwrap_err();
        assert!(err.starts_with("invalid regex `([0-9]`: "), "{err}");
        assert!(!err.contains('\n'));
    }
}
