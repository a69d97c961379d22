//! The embedded recognizer: CMU PocketSphinx (Debian's 0.8+5prealpha) with a grammar per menu.
//!
//! # Contract
//!
//! * [`SphinxEngine::new`] loads the pronunciation dictionary (`cmudict-en-us.dict`) into
//!   memory and builds one decoder to prove the acoustic model loads; every problem is a
//!   [`SpeechError`] naming the file. PocketSphinx's own logging is switched off for the
//!   whole process (it is global in this version of the library).
//! * [`SphinxEngine::compile`] turns a [`Grammar`] into a JSGF grammar ([`CompiledGrammar`]):
//!   each choice's phrases and its name (underscores as spaces), lowercased, words missing
//!   from the dictionary dropped and reported in [`CompiledGrammar::unknown_words`]; spoken
//!   digits when [`Grammar::digits`] (with "my number is" before); on menus also
//!   "(press | option | number) DIGIT" so a caller who says the key is understood, and
//!   optional whole carrier phrases around the choice ("i want to speak to" [an], "can you",
//!   "i have a question about" [my], "please"...), each carrier phrase weighted 0.1 (a
//!   prior against carrier words, see [`WEIGHTED_RULES`]). A grammar with nothing left to say is an
//!   error. The decoder runs with wider beams and a stronger word insertion penalty than
//!   PocketSphinx's defaults (tuned with `tools/bench_asr.sh`).
//! * Sessions ([`SpeechEngine::session`]) take 8, 16 or 48 kHz mono PCM. The audio goes
//!   through our [`Vad`] at the session's rate; the utterance (with its pre-roll) is
//!   resampled to 16 kHz (the model's rate: telephone audio is *upsampled*, which scores far
//!   better than configuring the decoder for 8 kHz) and kept. At the end of the utterance it
//!   is decoded in one pass (`full_utt`, so cepstral mean normalisation is computed on the
//!   utterance itself and nothing carries over from another caller). The session then emits
//!   `Final` (the words heard, carrier words included: map them with
//!   [`crate::ivr::match_choice`]) or `NoMatch` (nothing in the grammar fits, or the
//!   confidence is below [`SphinxConfig::reject_below`]), and listens for the next utterance.
//! * Decoders: a decoder is needed only while an utterance is decoded, so sessions borrow one
//!   from a shared pool at the end of each utterance (memory is proportional to concurrent
//!   *decodes*, not to calls). A decoder starts with an empty dictionary and learns the words
//!   of each grammar it meets (`ps_add_word`); grammars are kept per decoder as searches
//!   named by the hash of their JSGF text. Building a decoder takes ~10 ms.
//! * Telephone audio: after upsampling, white noise at −48 dBFS fills the empty
//!   4–8 kHz band (the model never saw digital silence there; measured +14 points).
//! * Confidence: PocketSphinx 5prealpha reports no usable posterior for grammar searches
//!   (`ps_get_prob` is always 0, word posteriors 1, and its N-best search costs 0.2× real
//!   time), so the utterance is decoded a second time with a *rival* grammar, the session's
//!   grammar without the choice heard (compiled once per choice and session). The per-frame
//!   score margin of the first result over the rival is mapped to 0..1 by a logistic
//!   (0.5 at a margin of 2, measured on the benchmark corpus). Results with nothing to
//!   compare with (spoken digits, "press two", one-choice menus) get 0.75.
//! * `push` does the decoding on the caller's thread at the end of an utterance (both
//!   passes about 3 % of the utterance's duration); everything else is cheap.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{CStr, CString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Once};

use sha2::{Digest, Sha256};

use super::vad::{Vad, VadConfig, VadOutput};
use super::{Recognizer, SpeechEngine, SpeechError, SpeechEvent};
use crate::ivr::{match_choice, ChoiceWords, Grammar};
use crate::media::resample::Resampler;

/// The rate of the acoustic model.
pub const MODEL_RATE: u32 = 16_000;
/// Input rates a session accepts.
pub const SESSION_RATES: [u32; 3] = [8000, 16_000, 48_000];

/// Where the model is and how to decode.
#[derive(Clone, Debug)]
pub struct SphinxConfig {
    /// Acoustic model directory (`-hmm`).
    pub hmm: PathBuf,
    /// Pronunciation dictionary (`cmudict-en-us.dict` format).
    pub dict: PathBuf,
    /// Endpointing.
    pub vad: VadConfig,
    /// Decoders kept for reuse when idle.
    pub max_idle_decoders: usize,
    /// Grammars (searches) kept per decoder.
    pub max_searches: usize,
    /// Results with a confidence below this become `NoMatch`.
    pub reject_below: f32,
    /// Extra decoder options, e.g. `("-beam", "1e-60")`; names must exist.
    pub extra_args: Vec<(String, String)>,
}

/// Debian's `pocketsphinx-en-us` model directory.
pub const DEBIAN_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";

impl Default for SphinxConfig {
    fn default() -> Self {
        let base = Path::new(DEBIAN_MODEL_DIR);
        SphinxConfig {
            hmm: base.join("en-us"),
            dict: base.join("cmudict-en-us.dict"),
            vad: VadConfig::default(),
            max_idle_decoders: 4,
            max_searches: 64,
            reject_below: 0.0,
            extra_args: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dictionary and grammar
// ---------------------------------------------------------------------------------------------

/// Words and their pronunciations (phones), from a CMU-style dictionary.
#[derive(Clone, Debug, Default)]
pub struct Lexicon {
    prons: HashMap<String, Vec<String>>,
}

impl Lexicon {
    /// Loads a dictionary file: `word PH1 PH2...` lines, alternates as `word(2) ...`.
    pub fn load(path: &Path) -> Result<Lexicon, SpeechError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpeechError::Model(format!(
                "cannot read the pronunciation dictionary {}: {e}",
                path.display()
            ))
        })?;
        let lexicon = Lexicon::parse(&text);
        if lexicon.prons.is_empty() {
            return Err(SpeechError::Model(format!(
                "the pronunciation dictionary {} holds no words",
                path.display()
            )));
        }
        Ok(lexicon)
    }

    /// Parses dictionary text (see [`Lexicon::load`]).
    pub fn parse(text: &str) -> Lexicon {
        let mut prons: HashMap<String, Vec<String>> = HashMap::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let Some(word) = parts.next() else { continue };
            let phones: Vec<&str> = parts.take_while(|p| !p.starts_with('#')).collect();
            if phones.is_empty() {
                continue;
            }
            let base = match word.find('(') {
                Some(i) if word.ends_with(')') => &word[..i],
                _ => word,
            };
            if base.is_empty() {
                continue;
            }
            prons
                .entry(base.to_lowercase())
                .or_default()
                .push(phones.join(" "));
        }
        Lexicon { prons }
    }

    /// Whether `word` (lowercase) has a pronunciation.
    pub fn contains(&self, word: &str) -> bool {
        self.prons.contains_key(word)
    }

    /// The pronunciations of `word`, main one first.
    pub fn pronunciations(&self, word: &str) -> &[String] {
        self.prons.get(word).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Number of distinct words.
    pub fn len(&self) -> usize {
        self.prons.len()
    }

    /// Whether the dictionary is empty.
    pub fn is_empty(&self) -> bool {
        self.prons.is_empty()
    }
}

/// A grammar ready for the decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledGrammar {
    /// Search name: `g` and the first 16 hex digits of the SHA-256 of `jsgf`.
    pub name: String,
    /// The JSGF text.
    pub jsgf: String,
    /// Every distinct word the grammar uses (all in the dictionary).
    pub words: Vec<String>,
    /// Words of choices and phrases that are not in the dictionary (dropped).
    pub unknown_words: Vec<String>,
    /// Choices left with nothing to say (every word unknown): reachable by DTMF only.
    pub unspeakable_choices: Vec<String>,
}

/// Carrier phrases said before a choice that may be followed by an article ("i want to
/// speak to" an agent, "i have a question about" my bill). Whole phrases, not free
/// combinations of words: every extra path lets the decoder explain a badly matching choice
/// with short carrier words instead.
const LEADS_ART: &[&str] = &[
    "i want",
    "i need",
    "i'd like",
    "i would like",
    "can i have",
    "i want to speak to",
    "i want to talk to",
    "i'd like to speak to",
    "i would like to speak to",
    "i need to speak to",
    "can i speak to",
    "can i talk to",
    "could i speak to",
    "let me speak to",
    "speak to",
    "talk to",
    "connect me to",
    "transfer me to",
    "i have a question about",
    "i'm calling about",
    "it's about",
    "check",
];
/// Carrier phrases followed directly by the choice ("i want to" cancel, "can you" call me
/// back).
const LEADS: &[&str] = &[
    "i want to",
    "i need to",
    "i'd like to",
    "i would like to",
    "can you",
    "could you",
    "please",
];
/// Articles, only after a lead that takes one.
const ARTICLES: &[&str] = &["a", "an", "the", "my", "some"];
/// Said after a choice.
const AFTER: &[&str] = &["please", "thanks", "thank you"];
const DIGITS: &[&str] = &[
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
/// Words that introduce a DTMF key in a menu ("press two"); a bare digit is not accepted
/// in menus (short digit words are inserted too easily).
const KEY_WORDS: &[&str] = &["press", "option", "number"];
/// Rules whose alternatives (carrier phrases) carry a JSGF weight of 0.1, a prior against
/// explaining audio with carrier words. Without weights sphinxbase gives every path the same
/// probability, so each of the 30 carrier phrases was as likely as none, and the decoder
/// readily explained a poorly matching choice with carrier words ("can you billing" for
/// "new service"). Measured on telephone audio with `-lw 4`: +1 point (0.1 and 0.001 score
/// the same); wideband unchanged.
const WEIGHTED_RULES: &[&str] = &["leadart", "lead"];
/// The JSGF weight of each alternative of [`WEIGHTED_RULES`].
const CARRIER_WEIGHT: &str = "0.1";
/// Said before spoken digits.
const NUMBER_INTRO: &[&str] = &["my number is", "my account number is", "it's", "it is"];

/// Lowercase words of a phrase: letters, digits and inner apostrophes.
fn phrase_words(phrase: &str) -> Vec<String> {
    phrase
        .to_lowercase()
        .replace('_', " ")
        .replace('\u{2019}', "'")
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// The phrases as grammar alternatives, deduplicated. With `unknown` (the menu's own
/// phrases), words missing from the dictionary are dropped from their phrase and listed
/// there; without (built-in carrier phrases), a phrase with a missing word is left out.
fn known_alternatives(
    phrases: &[&str],
    lexicon: &Lexicon,
    used: &mut Vec<String>,
    unknown: Option<&mut Vec<String>>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for phrase in phrases {
        let before = missing.len();
        let mut words = Vec::new();
        for w in phrase_words(phrase) {
            let w = if lexicon.contains(&w) {
                Some(w)
            } else {
                // "its" and "it's" are both common; try the other spelling.
                let alt = w.replace('\'', "");
                lexicon.contains(&alt).then_some(alt).or_else(|| {
                    missing.push(w.clone());
                    None
                })
            };
            if let Some(w) = w {
                words.push(w);
            }
        }
        if words.is_empty() || (unknown.is_none() && missing.len() > before) {
            continue;
        }
        for w in &words {
            if !used.contains(w) {
                used.push(w.clone());
            }
        }
        let joined = words.join(" ");
        if !out.contains(&joined) {
            out.push(joined);
        }
    }
    if let Some(unknown) = unknown {
        for m in missing {
            if !unknown.contains(&m) {
                unknown.push(m);
            }
        }
    }
    out
}

fn rule(jsgf: &mut String, name: &str, alternatives: &[String]) {
    let _ = writeln!(jsgf, "<{name}> = {};", alternatives.join(" | "));
}

/// Builds the JSGF grammar for `grammar` (see the module docs).
pub fn compile_grammar(
    grammar: &Grammar,
    lexicon: &Lexicon,
) -> Result<CompiledGrammar, SpeechError> {
    let mut used = Vec::new();
    let mut unknown = Vec::new();
    let mut unspeakable = Vec::new();
    let mut jsgf = String::from("#JSGF V1.0;\ngrammar menu;\n");
    let mut core = Vec::new();
    for (i, (name, phrases)) in grammar.choices.iter().enumerate() {
        let mut all: Vec<&str> = phrases.iter().map(String::as_str).collect();
        all.push(name);
        let alternatives = known_alternatives(&all, lexicon, &mut used, Some(&mut unknown));
        if alternatives.is_empty() {
            unspeakable.push(name.clone());
            continue;
        }
        let rule_name = format!("c{i}");
        rule(&mut jsgf, &rule_name, &alternatives);
        core.push(format!("<{rule_name}>"));
    }
    let define = |jsgf: &mut String, name: &str, list: &[&str], used: &mut Vec<String>| {
        let mut alternatives = known_alternatives(list, lexicon, used, None);
        if alternatives.is_empty() {
            return false;
        }
        if WEIGHTED_RULES.contains(&name) && alternatives.len() > 1 {
            alternatives = alternatives
                .into_iter()
                .map(|a| format!("/{CARRIER_WEIGHT}/ {a}"))
                .collect();
        }
        rule(jsgf, name, &alternatives);
        true
    };
    let menu = !core.is_empty();
    let has_digits = (grammar.digits || menu) && define(&mut jsgf, "digit", DIGITS, &mut used);
    if grammar.digits && has_digits {
        core.push("<digit>+".to_string());
    } else if has_digits && define(&mut jsgf, "key", KEY_WORDS, &mut used) {
        core.push("<key> <digit>".to_string());
    }
    if core.is_empty() {
        return Err(SpeechError::Grammar(if grammar.choices.is_empty() {
            "the grammar has no choices and no digits".to_string()
        } else {
            format!(
                "no word of the grammar is in the pronunciation dictionary (unknown: {})",
                unknown.join(", ")
            )
        }));
    }
    let core = format!("({})", core.join(" | "));
    let main = if !menu {
        // Collect: "my number is 1 2 3".
        if define(&mut jsgf, "intro", NUMBER_INTRO, &mut used) {
            format!("[<intro>] {core}")
        } else {
            core
        }
    } else {
        let lead_art = define(&mut jsgf, "leadart", LEADS_ART, &mut used);
        let lead = define(&mut jsgf, "lead", LEADS, &mut used);
        let art = define(&mut jsgf, "art", ARTICLES, &mut used);
        let mut leads = Vec::new();
        if lead_art {
            leads.push(
                if art {
                    "<leadart> [<art>]"
                } else {
                    "<leadart>"
                }
                .to_string(),
            );
        }
        if lead {
            leads.push("<lead>".to_string());
        }
        let mut main = if leads.is_empty() {
            core
        } else {
            format!("[{}] {core}", leads.join(" | "))
        };
        if define(&mut jsgf, "after", AFTER, &mut used) {
            main.push_str(" [<after>]");
        }
        main
    };
    let _ = writeln!(jsgf, "public <utterance> = {main};");
    let digest = Sha256::digest(jsgf.as_bytes());
    let name = digest[..8].iter().fold(String::from("g"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    Ok(CompiledGrammar {
        name,
        jsgf,
        words: used,
        unknown_words: unknown,
        unspeakable_choices: unspeakable,
    })
}

// ---------------------------------------------------------------------------------------------
// FFI
// ---------------------------------------------------------------------------------------------

mod ffi {
    use std::ffi::{c_char, c_int};
    use std::marker::{PhantomData, PhantomPinned};

    macro_rules! opaque {
        ($name:ident) => {
            #[repr(C)]
            pub struct $name {
                _data: [u8; 0],
                _marker: PhantomData<(*mut u8, PhantomPinned)>,
            }
        };
    }
    opaque!(PsDecoder);
    opaque!(CmdLn);
    opaque!(ArgDef);

    #[link(name = "pocketsphinx")]
    extern "C" {
        pub fn ps_args() -> *const ArgDef;
        pub fn ps_init(config: *mut CmdLn) -> *mut PsDecoder;
        pub fn ps_free(ps: *mut PsDecoder) -> c_int;
        pub fn ps_add_word(
            ps: *mut PsDecoder,
            word: *const c_char,
            phones: *const c_char,
            update: c_int,
        ) -> c_int;
        pub fn ps_set_jsgf_string(
            ps: *mut PsDecoder,
            name: *const c_char,
            jsgf: *const c_char,
        ) -> c_int;
        pub fn ps_set_search(ps: *mut PsDecoder, name: *const c_char) -> c_int;
        pub fn ps_unset_search(ps: *mut PsDecoder, name: *const c_char) -> c_int;
        pub fn ps_start_utt(ps: *mut PsDecoder) -> c_int;
        pub fn ps_process_raw(
            ps: *mut PsDecoder,
            data: *const i16,
            n_samples: usize,
            no_search: c_int,
            full_utt: c_int,
        ) -> c_int;
        pub fn ps_end_utt(ps: *mut PsDecoder) -> c_int;
        pub fn ps_get_hyp(ps: *mut PsDecoder, out_best_score: *mut i32) -> *const c_char;
    }

    #[link(name = "sphinxbase")]
    extern "C" {
        pub fn cmd_ln_init(inout: *mut CmdLn, defn: *const ArgDef, strict: i32, ...) -> *mut CmdLn;
        pub fn cmd_ln_exists_r(cmdln: *mut CmdLn, name: *const c_char) -> c_int;
        pub fn cmd_ln_free_r(cmdln: *mut CmdLn) -> c_int;
        pub fn err_set_logfp(stream: *mut libc::FILE);
    }
}

static QUIET: Once = Once::new();

/// Switches PocketSphinx's (process-global) logging off, once.
fn silence_library_logging() {
    QUIET.call_once(|| {
        // SAFETY: a NULL stream is the documented way to disable logging; it runs once,
        // before any decoder exists, so no other thread is logging through the old stream.
        unsafe { ffi::err_set_logfp(std::ptr::null_mut()) }
    });
}

fn cstring(what: &str, s: &str) -> Result<CString, SpeechError> {
    CString::new(s).map_err(|_| SpeechError::Engine(format!("{what} contains a NUL byte: {s:?}")))
}

/// One PocketSphinx decoder (owned; used by one thread at a time).
struct Decoder {
    ps: NonNull<ffi::PsDecoder>,
    /// Words added with `ps_add_word`.
    words: HashSet<String>,
    /// Grammar searches defined on this decoder, least recently used first.
    searches: VecDeque<String>,
    current: Option<String>,
}

// SAFETY: a decoder is a plain heap structure with no thread affinity; `Decoder` owns it
// exclusively and all access goes through `&mut self`, so it is used by one thread at a
// time. The library's only process-global state, logging, is set once before any decoder
// exists (`silence_library_logging`).
unsafe impl Send for Decoder {}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: `ps` came from `ps_init`, is freed exactly once, here.
        unsafe { ffi::ps_free(self.ps.as_ptr()) };
    }
}

/// What a decode found.
#[derive(Clone, Debug, PartialEq)]
struct Decoded {
    /// Words (carrier words included), empty if nothing in the grammar fits.
    text: String,
    /// Path score of the hypothesis (log base 1.0001).
    score: i32,
    /// Frames searched (100 per second).
    frames: i32,
}

impl Decoder {
    fn new(config: &SphinxConfig) -> Result<Decoder, SpeechError> {
        silence_library_logging();
        let mut args: Vec<(String, String)> = vec![
            ("-hmm".into(), config.hmm.display().to_string()),
            // Words are added per grammar (loading the whole dictionary costs 0.1 s and
            // 20 MB per decoder).
            ("-dict".into(), "/dev/null".into()),
            ("-samprate".into(), MODEL_RATE.to_string()),
            // Tuned on the benchmark corpus (tools/bench_asr.sh): wider beams than the
            // defaults (1e-48, 1e-48, 7e-29) and a stronger word insertion penalty (0.65)
            // gain 3 and 2 points on telephone audio; grammars are small, so it stays fast.
            // A lower language weight (default 6.5): +1 point on telephone audio (3 scores
            // the same, 10 loses 2); wideband unchanged.
            ("-beam".into(), "1e-80".into()),
            ("-pbeam".into(), "1e-80".into()),
            ("-wbeam".into(), "1e-60".into()),
            ("-wip".into(), "0.1".into()),
            ("-lw".into(), "4".into()),
        ];
        args.extend(config.extra_args.iter().cloned());
        let pairs: Vec<(CString, CString)> = args
            .iter()
            .map(|(k, v)| Ok((cstring("option", k)?, cstring("option value", v)?)))
            .collect::<Result<_, SpeechError>>()?;
        let mut cfg: *mut ffi::CmdLn = std::ptr::null_mut();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if !cfg.is_null() {
                // SAFETY: `cfg` is a live config from `cmd_ln_init`; `k` is NUL-terminated.
                let known = unsafe { ffi::cmd_ln_exists_r(cfg, k.as_ptr()) } != 0;
                if !known {
                    // SAFETY: `cfg` is live and owned here; freed once.
                    unsafe { ffi::cmd_ln_free_r(cfg) };
                    return Err(SpeechError::Engine(format!(
                        "unknown PocketSphinx option {}",
                        args[i].0
                    )));
                }
            }
            // SAFETY: `ps_args()` is the library's static option table; `k` and `v` are
            // NUL-terminated and copied by `cmd_ln_init`; the list ends with NULL. The first
            // call (strict) creates the config with defaults; later calls update it in place
            // (non-strict, so a name given twice replaces the value; names were checked).
            let next = unsafe {
                ffi::cmd_ln_init(
                    cfg,
                    ffi::ps_args(),
                    i32::from(cfg.is_null()),
                    k.as_ptr(),
                    v.as_ptr(),
                    std::ptr::null::<std::ffi::c_char>(),
                )
            };
            if next.is_null() {
                if !cfg.is_null() {
                    // SAFETY: on failure the old config is untouched and still ours.
                    unsafe { ffi::cmd_ln_free_r(cfg) };
                }
                return Err(SpeechError::Engine(format!(
                    "PocketSphinx rejected option {} {}",
                    args[i].0, args[i].1
                )));
            }
            cfg = next;
        }
        // SAFETY: `cfg` is a complete config; `ps_init` takes its own reference, ours is
        // released right after whatever the outcome.
        let ps = unsafe { ffi::ps_init(cfg) };
        // SAFETY: releases our reference to the config (once).
        unsafe { ffi::cmd_ln_free_r(cfg) };
        let ps = NonNull::new(ps).ok_or_else(|| {
            SpeechError::Model(format!(
                "PocketSphinx could not load the acoustic model in {}",
                config.hmm.display()
            ))
        })?;
        Ok(Decoder {
            ps,
            words: HashSet::new(),
            searches: VecDeque::new(),
            current: None,
        })
    }

    fn add_words(&mut self, words: &[String], lexicon: &Lexicon) -> Result<(), SpeechError> {
        for word in words {
            if self.words.contains(word) {
                continue;
            }
            for (i, phones) in lexicon.pronunciations(word).iter().enumerate() {
                let entry = if i == 0 {
                    word.clone()
                } else {
                    format!("{word}({})", i + 1)
                };
                let c_word = cstring("word", &entry)?;
                let c_phones = cstring("pronunciation", phones)?;
                // SAFETY: live decoder; both strings NUL-terminated and copied by the call.
                // The base word is always added before its alternates (the library aborts
                // on an alternate without its base).
                let rv = unsafe {
                    ffi::ps_add_word(self.ps.as_ptr(), c_word.as_ptr(), c_phones.as_ptr(), 0)
                };
                if rv < 0 {
                    return Err(SpeechError::Engine(format!(
                        "PocketSphinx refused the word {entry:?} ({phones})"
                    )));
                }
            }
            self.words.insert(word.clone());
        }
        Ok(())
    }

    /// Makes `grammar` the current search, defining it if needed.
    fn use_grammar(
        &mut self,
        grammar: &CompiledGrammar,
        lexicon: &Lexicon,
        max_searches: usize,
    ) -> Result<(), SpeechError> {
        if self.current.as_deref() == Some(grammar.name.as_str()) {
            return Ok(());
        }
        let name = cstring("search name", &grammar.name)?;
        if let Some(i) = self.searches.iter().position(|s| *s == grammar.name) {
            let s = self.searches.remove(i).unwrap_or_default();
            self.searches.push_back(s);
        } else {
            self.add_words(&grammar.words, lexicon)?;
            let jsgf = cstring("grammar", &grammar.jsgf)?;
            // SAFETY: live decoder, no utterance in progress; strings NUL-terminated and
            // copied by the library.
            let rv =
                unsafe { ffi::ps_set_jsgf_string(self.ps.as_ptr(), name.as_ptr(), jsgf.as_ptr()) };
            if rv < 0 {
                return Err(SpeechError::Grammar(format!(
                    "PocketSphinx rejected the grammar:\n{}",
                    grammar.jsgf
                )));
            }
            self.searches.push_back(grammar.name.clone());
            while self.searches.len() > max_searches.max(1) {
                let Some(old) = self.searches.pop_front() else {
                    break;
                };
                if let Ok(old) = CString::new(old) {
                    // SAFETY: live decoder; `old` is not the search about to be selected.
                    unsafe { ffi::ps_unset_search(self.ps.as_ptr(), old.as_ptr()) };
                }
            }
        }
        self.select(&name)?;
        self.current = Some(grammar.name.clone());
        Ok(())
    }

    fn select(&mut self, name: &CStr) -> Result<(), SpeechError> {
        // SAFETY: live decoder, no utterance in progress; `name` NUL-terminated.
        if unsafe { ffi::ps_set_search(self.ps.as_ptr(), name.as_ptr()) } < 0 {
            return Err(SpeechError::Engine(format!(
                "PocketSphinx has no search {name:?}"
            )));
        }
        Ok(())
    }

    /// Decodes a whole utterance of 16 kHz audio with the current search.
    fn decode(&mut self, pcm: &[i16]) -> Result<Decoded, SpeechError> {
        let ps = self.ps.as_ptr();
        // SAFETY: live decoder with a search selected.
        if unsafe { ffi::ps_start_utt(ps) } < 0 {
            return Err(SpeechError::Engine("ps_start_utt failed".into()));
        }
        // SAFETY: `pcm` is a valid slice for the duration of the call; the library only
        // reads `pcm.len()` samples. `full_utt` = 1: the whole utterance at once.
        let frames = unsafe { ffi::ps_process_raw(ps, pcm.as_ptr(), pcm.len(), 0, 1) };
        // SAFETY: ends the utterance started above (also after a processing error).
        let ended = unsafe { ffi::ps_end_utt(ps) };
        if frames < 0 || ended < 0 {
            return Err(SpeechError::Engine(format!(
                "PocketSphinx failed to decode {} samples",
                pcm.len()
            )));
        }
        let mut score = 0i32;
        // SAFETY: live decoder after `ps_end_utt`; the returned string belongs to the decoder
        // and is copied before the next call.
        let hyp = unsafe { ffi::ps_get_hyp(ps, &mut score) };
        let text = if hyp.is_null() {
            String::new()
        } else {
            // SAFETY: non-NULL hypotheses are NUL-terminated strings owned by the decoder.
            unsafe { CStr::from_ptr(hyp) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(Decoded {
            text: text.trim().to_string(),
            score,
            frames,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Engine and sessions
// ---------------------------------------------------------------------------------------------

struct Shared {
    config: SphinxConfig,
    lexicon: Lexicon,
    idle: Mutex<Vec<Decoder>>,
}

impl Shared {
    /// Runs `f` on a pooled decoder; a decoder that failed is dropped, not pooled.
    fn with_decoder<R>(
        &self,
        f: impl FnOnce(&mut Decoder) -> Result<R, SpeechError>,
    ) -> Result<R, SpeechError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut decoder = match pooled {
            Some(d) => d,
            None => Decoder::new(&self.config)?,
        };
        let result = f(&mut decoder);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.config.max_idle_decoders {
                idle.push(decoder);
            }
        }
        result
    }

    /// Decodes one utterance: the words and a 0..1 confidence, `None` if nothing fits.
    fn recognize(
        &self,
        grammar: &CompiledGrammar,
        meaning: &mut Meaning,
        pcm: &[i16],
    ) -> Result<Option<(String, f32)>, SpeechError> {
        self.with_decoder(|d| {
            d.use_grammar(grammar, &self.lexicon, self.config.max_searches)?;
            let heard = d.decode(pcm)?;
            if heard.text.is_empty() {
                return Ok(None);
            }
            let Some(rival) = meaning.rival(&heard.text, &self.lexicon) else {
                return Ok(Some((heard.text, UNRIVALLED_CONFIDENCE)));
            };
            d.use_grammar(&rival, &self.lexicon, self.config.max_searches)?;
            let other = d.decode(pcm)?;
            let margin = if other.text.is_empty() {
                f64::INFINITY
            } else {
                f64::from(heard.score.saturating_sub(other.score)) / f64::from(heard.frames.max(1))
            };
            Ok(Some((heard.text, confidence(margin))))
        })
    }
}

/// Per-frame score margin (log base 1.0001) at which the confidence is 0.5.
const MARGIN_MIDPOINT: f64 = 2.0;
/// Width of the logistic mapping margins to confidences.
const MARGIN_SCALE: f64 = 3.0;
/// Confidence of results that have no rival to compare with (spoken digits, "press two").
const UNRIVALLED_CONFIDENCE: f32 = 0.75;

/// How sure the decoder is of what the words *mean*: `margin` is the per-frame score of the
/// best path minus that of the best path through a grammar without the recognised choice
/// (the rival); a logistic maps it to 0..1.
fn confidence(margin: f64) -> f32 {
    let x = (margin - MARGIN_MIDPOINT) / MARGIN_SCALE;
    (1.0 / (1.0 + (-x).exp())) as f32
}

/// Adds white noise at −48 dBFS RMS to upsampled telephone audio. The acoustic model was
/// trained on wideband speech with some background in every band; digital silence above
/// 4 kHz is far from anything it has seen (measured: 73 % of commands right without, 87 %
/// with). Flat (white) noise scores better than the same power tilted towards high
/// frequencies (a first difference, as before): 235 commands right instead of 233 of 258,
/// fewer non-commands matched (24/30 instead of 29/30) and fewer wrong results accepted at
/// confidence 0.5 (7 instead of 9); at −45 and −51 dBFS, 231 and 233. Deterministic
/// (fixed seed).
fn fill_upper_band(pcm: &mut [i16]) {
    const LEVEL_DB: f64 = -48.0;
    // White noise of RMS 1 is uniform on ±√3.
    let amp = 32768.0 * 10f64.powf(LEVEL_DB / 20.0) * 3f64.sqrt();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for x in pcm {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let u = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        *x = x.saturating_add((u * amp).round() as i16);
    }
}

/// PocketSphinx with a grammar per session (see the module docs).
#[derive(Clone)]
pub struct SphinxEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SphinxEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SphinxEngine")
            .field("config", &self.shared.config)
            .field("words", &self.shared.lexicon.len())
            .finish()
    }
}

impl SphinxEngine {
    /// Loads the dictionary and checks that the acoustic model loads.
    pub fn new(config: SphinxConfig) -> Result<SphinxEngine, SpeechError> {
        if !config.hmm.join("mdef").is_file() {
            return Err(SpeechError::Model(format!(
                "no acoustic model in {} (install pocketsphinx-en-us)",
                config.hmm.display()
            )));
        }
        let lexicon = Lexicon::load(&config.dict)?;
        let first = Decoder::new(&config)?;
        Ok(SphinxEngine {
            shared: Arc::new(Shared {
                config,
                lexicon,
                idle: Mutex::new(vec![first]),
            }),
        })
    }

    /// The dictionary.
    pub fn lexicon(&self) -> &Lexicon {
        &self.shared.lexicon
    }

    /// The JSGF grammar a session for `grammar` would use.
    pub fn compile(&self, grammar: &Grammar) -> Result<CompiledGrammar, SpeechError> {
        compile_grammar(grammar, &self.shared.lexicon)
    }

    /// A session at `sample_rate`, returned as its concrete type.
    pub fn sphinx_session(
        &self,
        grammar: &Grammar,
        sample_rate: u32,
    ) -> Result<SphinxRecognizer, SpeechError> {
        if !SESSION_RATES.contains(&sample_rate) {
            return Err(SpeechError::Rate(sample_rate));
        }
        let compiled = self.compile(grammar)?;
        if !compiled.unknown_words.is_empty() {
            tracing::warn!(
                words = %compiled.unknown_words.join(", "),
                unspeakable = %compiled.unspeakable_choices.join(", "),
                "speech grammar: words not in the pronunciation dictionary were dropped"
            );
        }
        // Define the search now so a bad grammar fails here, not after the caller spoke.
        self.shared.with_decoder(|d| {
            d.use_grammar(
                &compiled,
                &self.shared.lexicon,
                self.shared.config.max_searches,
            )
        })?;
        let resampler =
            Resampler::new(sample_rate, MODEL_RATE).map_err(|_| SpeechError::Rate(sample_rate))?;
        let max = self.shared.config.vad.max_utterance_ms as usize
            + self.shared.config.vad.pre_roll_ms as usize
            + 1000;
        Ok(SphinxRecognizer {
            shared: self.shared.clone(),
            meaning: Meaning::of(grammar),
            fill: sample_rate < MODEL_RATE,
            grammar: Arc::new(compiled),
            vad: Vad::new(self.shared.config.vad.clone(), sample_rate),
            resampler,
            utterance: Vec::with_capacity(max * MODEL_RATE as usize / 1000),
        })
    }
}

impl SpeechEngine for SphinxEngine {
    fn session(
        &self,
        grammar: &Grammar,
        sample_rate: u32,
    ) -> Result<Box<dyn Recognizer>, SpeechError> {
        Ok(Box::new(self.sphinx_session(grammar, sample_rate)?))
    }
}

/// What an utterance means (the choice [`match_choice`] picks), and the rival grammars used
/// for the confidence: the session's grammar without that choice.
#[derive(Clone, Debug)]
struct Meaning {
    grammar: Grammar,
    rivals: HashMap<usize, Option<CompiledGrammar>>,
}

impl Meaning {
    fn of(grammar: &Grammar) -> Meaning {
        Meaning {
            grammar: grammar.clone(),
            rivals: HashMap::new(),
        }
    }

    fn choice(&self, text: &str) -> Option<usize> {
        let words: Vec<ChoiceWords<'_>> = self
            .grammar
            .choices
            .iter()
            .map(|(name, phrases)| ChoiceWords {
                name,
                phrases,
                dtmf: None,
            })
            .collect();
        match_choice(text, &words)
    }

    /// The grammar without the choice `text` means, if it means one and others remain.
    fn rival(&mut self, text: &str, lexicon: &Lexicon) -> Option<CompiledGrammar> {
        let i = self.choice(text)?;
        if self.grammar.choices.len() < 2 {
            return None;
        }
        self.rivals
            .entry(i)
            .or_insert_with(|| {
                let mut rival = self.grammar.clone();
                rival.choices.remove(i);
                compile_grammar(&rival, lexicon).ok()
            })
            .clone()
    }
}

/// One recognition session (see the module docs).
pub struct SphinxRecognizer {
    shared: Arc<Shared>,
    meaning: Meaning,
    /// Fill the empty upper band (telephone audio).
    fill: bool,
    grammar: Arc<CompiledGrammar>,
    vad: Vad,
    resampler: Resampler,
    /// The current utterance at 16 kHz.
    utterance: Vec<i16>,
}

impl std::fmt::Debug for SphinxRecognizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SphinxRecognizer")
            .field("grammar", &self.grammar.name)
            .field("position", &self.vad.position())
            .finish()
    }
}

impl SphinxRecognizer {
    /// The grammar in use.
    pub fn grammar(&self) -> &CompiledGrammar {
        &self.grammar
    }

    /// The endpointer (position, noise floor).
    pub fn vad(&self) -> &Vad {
        &self.vad
    }
}

impl Recognizer for SphinxRecognizer {
    fn push(&mut self, pcm: &[i16]) -> Vec<SpeechEvent> {
        let mut events = Vec::new();
        let SphinxRecognizer {
            shared,
            meaning,
            fill,
            grammar,
            vad,
            resampler,
            utterance,
        } = self;
        vad.push(pcm, &mut |out| match out {
            VadOutput::Start { .. } => {
                events.push(SpeechEvent::Started);
                resampler.reset();
                utterance.clear();
            }
            VadOutput::Audio(a) => resampler.process(a, utterance),
            VadOutput::End { .. } => {
                if *fill {
                    fill_upper_band(utterance);
                }
                let event = match shared.recognize(grammar, meaning, utterance) {
                    Ok(Some((text, confidence))) => {
                        if confidence < shared.config.reject_below {
                            SpeechEvent::NoMatch
                        } else {
                            SpeechEvent::Final { text, confidence }
                        }
                    }
                    Ok(None) => SpeechEvent::NoMatch,
                    Err(e) => {
                        tracing::warn!(error = %e, "speech recognition failed");
                        SpeechEvent::NoMatch
                    }
                };
                events.push(event);
                utterance.clear();
            }
        });
        events
    }

    fn reset(&mut self) {
        self.vad.reset();
        self.resampler.reset();
        self.utterance.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::Wav;
    use std::process::Command;

    const DICT: &str = "\
billing B IH L IH NG
bill B IH L
pay P EY
my M AY
technical T EH K N IH K AH L
support S AH P AO R T
it's IH T S
not N AA T
working W ER K IH NG
to T UW
to(2) T IH
to(3) T AH
i AY
want W AA N T
want(2) W AO N T
speak S P IY K
an AE N
an(2) AH N
please P L IY Z
press P R EH S
one W AH N
two T UW
zero Z IH R OW
oh OW
";

    fn menu() -> Grammar {
        Grammar {
            choices: vec![
                (
                    "billing".into(),
                    vec!["Pay my BILL!".into(), "bill".into(), "factura".into()],
                ),
                (
                    "technical_support".into(),
                    vec!["It’s not working".into(), "xyzzy".into()],
                ),
                ("gibberish".into(), vec!["qwrtz".into()]),
            ],
            digits: false,
        }
    }

    #[test]
    fn lexicon_parses_alternates_and_comments() {
        let lex = Lexicon::parse(DICT);
        assert!(lex.contains("to") && lex.contains("it's"));
        assert_eq!(lex.pronunciations("to"), ["T UW", "T IH", "T AH"]);
        assert_eq!(lex.pronunciations("nothing"), [] as [String; 0]);
        let lex = Lexicon::parse("word W ER D # comment\nodd(2)\n");
        assert_eq!(lex.pronunciations("word"), ["W ER D"]);
        assert_eq!(lex.len(), 1);
    }

    #[test]
    fn menu_grammar_keeps_known_words_and_reports_the_rest() {
        let g = compile_grammar(&menu(), &Lexicon::parse(DICT)).unwrap();
        assert!(
            g.jsgf.starts_with("#JSGF V1.0;\ngrammar menu;\n"),
            "{}",
            g.jsgf
        );
        // Phrases lowercased, punctuation gone, the name (underscores as spaces) included,
        // curly apostrophes straightened.
        assert!(
            g.jsgf.contains("<c0> = pay my bill | bill | billing;"),
            "{}",
            g.jsgf
        );
        assert!(
            g.jsgf
                .contains("<c1> = it's not working | technical support;"),
            "{}",
            g.jsgf
        );
        // A choice with no known word is left out, and reported.
        assert!(!g.jsgf.contains("<c2>"), "{}", g.jsgf);
        assert_eq!(g.unspeakable_choices, ["gibberish"]);
        assert_eq!(g.unknown_words, ["factura", "xyzzy", "qwrtz", "gibberish"]);
        // Keys: "press two"; carrier phrases made only of known words.
        assert!(g.jsgf.contains("<key> = press;"), "{}", g.jsgf);
        assert!(
            g.jsgf
                .contains("<leadart> = /0.1/ i want | /0.1/ i want to speak to | /0.1/ speak to;"),
            "{}",
            g.jsgf
        );
        assert!(
            g.jsgf.contains("<lead> = /0.1/ i want to | /0.1/ please;"),
            "{}",
            g.jsgf
        );
        assert!(g.jsgf.contains("<art> = an | my;"), "{}", g.jsgf);
        assert!(g.jsgf.ends_with(
            "public <utterance> = [<leadart> [<art>] | <lead>] (<c0> | <c1> | <key> <digit>) [<after>];\n"
        ), "{}", g.jsgf);
        // Every word used is in the dictionary, and listed once.
        let lex = Lexicon::parse(DICT);
        assert!(g.words.iter().all(|w| lex.contains(w)), "{:?}", g.words);
        let mut sorted = g.words.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), g.words.len());
        // The search name is a hash of the text: same grammar, same name.
        let again = compile_grammar(&menu(), &lex).unwrap();
        assert_eq!(again.name, g.name);
        assert!(g.name.starts_with('g') && g.name.len() == 17);
        let mut other = menu();
        other.choices.pop();
        other.choices[0].1.push("bill please".into());
        assert_ne!(compile_grammar(&other, &lex).unwrap().name, g.name);
    }

    #[test]
    fn digit_grammars_and_empty_grammars() {
        let lex = Lexicon::parse(DICT);
        let collect = Grammar {
            choices: vec![],
            digits: true,
        };
        let g = compile_grammar(&collect, &lex).unwrap();
        assert!(
            g.jsgf.contains("<digit> = zero | oh | one | two;"),
            "{}",
            g.jsgf
        );
        assert!(
            g.jsgf
                .contains("<intro> = it's;\npublic <utterance> = [<intro>] (<digit>+);"),
            "{}",
            g.jsgf
        );
        let nothing = Grammar {
            choices: vec![],
            digits: false,
        };
        assert!(matches!(
            compile_grammar(&nothing, &lex),
            Err(SpeechError::Grammar(_))
        ));
        let unknown = Grammar {
            choices: vec![("xyzzy".into(), vec!["plugh".into()])],
            digits: false,
        };
        let e = compile_grammar(&unknown, &lex).unwrap_err();
        assert!(e.to_string().contains("plugh"), "{e}");
    }

    #[test]
    fn confidence_grows_with_the_margin() {
        assert!((confidence(MARGIN_MIDPOINT) - 0.5).abs() < 1e-6);
        assert!(confidence(-10.0) < 0.05);
        assert!(confidence(20.0) > 0.95);
        assert_eq!(confidence(f64::INFINITY), 1.0);
        assert!(confidence(1.0) < confidence(3.0));
    }

    #[test]
    fn upper_band_fill_is_quiet_and_deterministic() {
        let mut a = vec![0i16; 16_000];
        fill_upper_band(&mut a);
        let rms = (a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 16_000.0).sqrt();
        let db = 20.0 * (rms / 32768.0).log10();
        assert!((-50.0..-42.0).contains(&db), "{db} dBFS");
        let mut b = vec![0i16; 16_000];
        fill_upper_band(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn engine_reports_a_missing_model() {
        let config = SphinxConfig {
            hmm: PathBuf::from("/nonexistent/model"),
            ..SphinxConfig::default()
        };
        let e = SphinxEngine::new(config).unwrap_err();
        assert!(e.to_string().contains("pocketsphinx-en-us"), "{e}");
        let config = SphinxConfig {
            dict: PathBuf::from("/nonexistent/dict"),
            ..SphinxConfig::default()
        };
        let e = SphinxEngine::new(config).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dict"), "{e}");
    }

    #[test]
    fn sessions_are_send_and_the_engine_is_shared() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<SphinxRecognizer>();
        send_sync::<SphinxEngine>();
    }

    /// Renders `text` with espeak-ng; telephone quality (8 kHz, G.711 µ-law, 300-3400 Hz)
    /// or wideband 16 kHz. Fails (never skips) when a tool is missing.
    fn render(dir: &Path, text: &str, voice: &str, telephone: bool) -> Vec<i16> {
        let raw = dir.join("raw.wav");
        let out = dir.join("out.wav");
        let status = Command::new("espeak-ng")
            .args(["-v", voice, "-s", "150", "-w"])
            .arg(&raw)
            .arg("--")
            .arg(text)
            .status()
            .expect("espeak-ng is required for this test (tools/setup.sh installs it)");
        assert!(status.success(), "espeak-ng failed");
        let sox = |args: &[&std::ffi::OsStr]| {
            let status = Command::new("sox")
                .args(args)
                .status()
                .expect("sox is required for this test (tools/setup.sh installs it)");
            assert!(status.success(), "sox {args:?} failed");
        };
        if telephone {
            let ulaw = dir.join("ulaw.wav");
            sox(&[
                raw.as_os_str(),
                "-r".as_ref(),
                "8000".as_ref(),
                "-c".as_ref(),
                "1".as_ref(),
                "-e".as_ref(),
                "u-law".as_ref(),
                ulaw.as_os_str(),
                "sinc".as_ref(),
                "300-3400".as_ref(),
            ]);
            sox(&[
                ulaw.as_os_str(),
                "-e".as_ref(),
                "signed".as_ref(),
                "-b".as_ref(),
                "16".as_ref(),
                out.as_os_str(),
            ]);
        } else {
            sox(&[
                raw.as_os_str(),
                "-r".as_ref(),
                "16000".as_ref(),
                "-c".as_ref(),
                "1".as_ref(),
                "-e".as_ref(),
                "signed".as_ref(),
                "-b".as_ref(),
                "16".as_ref(),
                out.as_os_str(),
            ]);
        }
        Wav::from_bytes(&std::fs::read(&out).unwrap())
            .unwrap()
            .samples
    }

    fn full_menu() -> Grammar {
        let c = |name: &str, phrases: &[&str]| {
            (
                name.to_string(),
                phrases.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            )
        };
        Grammar {
            choices: vec![
                c("billing", &["billing", "bill", "pay my bill"]),
                c(
                    "technical_support",
                    &["technical support", "tech support", "support"],
                ),
                c("sales", &["sales", "buy"]),
                c("agent", &["agent", "representative", "operator"]),
                c("call_me_back", &["call me back", "callback"]),
                c("order_status", &["order status", "where is my order"]),
                c("cancel", &["cancel", "cancel my service"]),
                c("repeat", &["repeat", "main menu"]),
            ],
            digits: false,
        }
    }

    /// Speech in the middle of 0.6 s of silence before and 1.2 s after, with line noise,
    /// pushed in 20 ms frames: the events.
    fn listen(session: &mut SphinxRecognizer, speech: &[i16], rate: u32) -> Vec<SpeechEvent> {
        let mut pcm = vec![0i16; rate as usize * 6 / 10];
        pcm.extend_from_slice(speech);
        pcm.extend(std::iter::repeat_n(0i16, rate as usize * 12 / 10));
        let mut seed = 7u64;
        for x in &mut pcm {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *x = x.saturating_add(((seed >> 60) as i16) - 8);
        }
        pcm.chunks(rate as usize / 50)
            .flat_map(|frame| session.push(frame))
            .collect()
    }

    #[test]
    fn recognises_rendered_commands_through_the_endpointer() {
        let dir = std::env::temp_dir().join(format!("switchboard-asr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let engine = SphinxEngine::new(SphinxConfig::default())
            .expect("PocketSphinx and its model are required (tools/setup.sh installs them)");
        let grammar = full_menu();
        let words: Vec<ChoiceWords<'_>> = grammar
            .choices
            .iter()
            .map(|(name, phrases)| ChoiceWords {
                name,
                phrases,
                dtmf: None,
            })
            .collect();
        let mut session = engine.sphinx_session(&grammar, 8000).unwrap();
        for (text, voice, choice) in [
            ("billing", "en-us", "billing"),
            ("technical support", "en-us", "technical_support"),
            ("billing", "en-gb", "billing"),
            ("technical support", "en-us+f3", "technical_support"),
        ] {
            let speech = render(&dir, text, voice, true);
            let events = listen(&mut session, &speech, 8000);
            assert_eq!(
                events.first(),
                Some(&SpeechEvent::Started),
                "{text}: {events:?}"
            );
            assert_eq!(events.len(), 2, "{text}: {events:?}");
            let SpeechEvent::Final {
                text: heard,
                confidence,
            } = &events[1]
            else {
                panic!("{text} ({voice}): {events:?}");
            };
            let i = match_choice(heard, &words);
            assert_eq!(
                i.map(|i| grammar.choices[i].0.as_str()),
                Some(choice),
                "said {text:?} ({voice}), heard {heard:?}"
            );
            assert!((0.0..=1.0).contains(confidence));
        }
        // Wideband (browser) audio at 16 kHz, and 48 kHz through the resampler.
        let speech = render(&dir, "technical support", "en-us", false);
        let mut wide = engine.sphinx_session(&grammar, 16_000).unwrap();
        let events = listen(&mut wide, &speech, 16_000);
        assert!(
            matches!(&events[..], [SpeechEvent::Started, SpeechEvent::Final { text, .. }] if text.contains("technical support")),
            "{events:?}"
        );
        let mut up = Vec::new();
        Resampler::new(16_000, 48_000)
            .unwrap()
            .process(&speech, &mut up);
        let mut session48 = engine.sphinx_session(&grammar, 48_000).unwrap();
        let events = listen(&mut session48, &up, 48_000);
        assert!(
            matches!(&events[..], [SpeechEvent::Started, SpeechEvent::Final { text, .. }] if text.contains("technical support")),
            "{events:?}"
        );
        assert_eq!(
            engine.sphinx_session(&grammar, 44_100).unwrap_err(),
            SpeechError::Rate(44_100)
        );
        // Silence alone: no event; reset starts over.
        let silence = vec![0i16; 16_000];
        assert!(session.push(&silence).is_empty());
        session.reset();
        assert_eq!(session.vad().position(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
