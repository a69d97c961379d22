//! Shared fixtures for the integration tests.
#![allow(dead_code)]

pub mod schema;

use switchboard::ivr::Known;

/// The names the sample flows rely on, as the demo profile would provide them.
pub fn known() -> Known {
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    Known {
        queues: set(&["billing", "support", "sales", "agents"]),
        callback_queues: set(&["billing", "support", "sales", "agents"]),
        users: set(&["alice", "bob"]),
        trunks: set(&["carrier"]),
        prompts: set(&["welcome.wav", "goodbye.wav"]),
        calendars: Default::default(),
    }
}

/// Split a command line the way a shell would for simple cases: whitespace
/// separates words, double quotes group (and are removed).
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                any = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}
