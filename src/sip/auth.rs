//! SIP digest authentication (RFC 2617 / RFC 7616 / RFC 8760 as used by RFC 3261 §22).
//!
//! # Contract
//!
//! This module is *sans-IO*: it never reads the clock, never touches a socket and never draws
//! randomness of its own. Every notion of time is a `now_secs: u64` argument (seconds on any
//! monotonic or wall-clock scale the caller keeps consistent), and all secret material
//! (the nonce key, client cnonces) is supplied by the caller.
//!
//! It does not depend on any SIP message type: it takes header *values* as `&str` (with line
//! folding already unfolded to spaces) and plain values, and returns header values as `String`.
//!
//! * [`parse_digest`] turns an `Authorization`, `Proxy-Authorization`, `WWW-Authenticate` or
//!   `Proxy-Authenticate` value into [`DigestParams`] (and [`DigestParams`]'s `Display` turns it
//!   back into a header value).
//! * Server side: [`NonceIssuer`] issues self-validating nonces (timestamp + counter + keyed
//!   MAC; validating needs no server state), [`challenge_header`] builds a `WWW-Authenticate` /
//!   `Proxy-Authenticate` value, and [`Verifier`] checks credentials, including nonce-count
//!   replay protection with bounded memory, returning a [`Verdict`].
//! * Client side: [`authorization_header`] answers a 401/407 challenge.
//! * Primitives: [`ha1`] and [`expected_response`].
//!
//! Supported: algorithms `MD5` and `SHA-256`; `qop=auth` and the RFC 2069 form without qop.
//! Not supported (rejected with an error, never silently mis-handled): the `-sess` algorithms,
//! `SHA-512-256` and `qop=auth-int`.
//!
//! No function in this module panics on any input.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use md5::Md5;
use sha2::{Digest, Sha256};

/// Errors from parsing digest headers or computing digest values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The header value does not use the `Digest` scheme.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The header value is syntactically broken.
    #[error("malformed digest header: {0}")]
    Malformed(&'static str),
    /// A parameter required in this context is absent.
    #[error("missing required digest parameter `{0}`")]
    MissingParam(&'static str),
    /// A known parameter appears more than once.
    #[error("duplicate digest parameter `{0}`")]
    DuplicateParam(String),
    /// `nc` is not exactly 8 hex digits (or is zero on the client side).
    #[error("nonce count must be exactly 8 hex digits and non-zero")]
    BadNonceCount,
    /// A digest algorithm we know but deliberately do not support (`MD5-sess`, ...).
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// A digest algorithm we do not know at all.
    #[error("unknown digest algorithm `{0}`")]
    UnknownAlgorithm(String),
    /// A quality of protection other than `auth` (e.g. `auth-int`).
    #[error("unsupported qop `{0}`")]
    UnsupportedQop(String),
}

/// Digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (the default when a challenge names no algorithm).
    Md5,
    /// `SHA-256` (RFC 7616 / RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The canonical token for headers: `"MD5"` or `"SHA-256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm` token, case-insensitively.
    ///
    /// `MD5-sess`, `SHA-256-sess`, `SHA-512-256` and `SHA-512-256-sess` are recognised but
    /// yield [`AuthError::UnsupportedAlgorithm`]; anything else is
    /// [`AuthError::UnknownAlgorithm`].
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if t.eq_ignore_ascii_case("SHA-256") {
            Ok(Algorithm::Sha256)
        } else if [
            "MD5-sess",
            "SHA-256-sess",
            "SHA-512-256",
            "SHA-512-256-sess",
        ]
        .iter()
        .any(|a| t.eq_ignore_ascii_case(a))
        {
            Err(AuthError::UnsupportedAlgorithm(t.to_string()))
        } else {
            Err(AuthError::UnknownAlgorithm(t.to_string()))
        }
    }

    /// Lowercase hex digest of `data`.
    fn hex_digest(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => to_hex(&Md5::digest(data)),
            Algorithm::Sha256 => to_hex(&Sha256::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s)
    }
}

/// The parameters of a `Digest` challenge or credentials header value.
///
/// Values are stored unquoted and unescaped. `realm` and `nonce` are required in both
/// challenges and credentials; when the value is credentials (it carries `username` or
/// `response`), `username`, `uri` and `response` are guaranteed present by [`parse_digest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestParams {
    /// `username` (credentials only).
    pub username: Option<String>,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` — the digest-uri (credentials only). The SIP layer should check it against the
    /// Request-URI.
    pub uri: Option<String>,
    /// `response` (credentials only).
    pub response: Option<String>,
    /// `algorithm`, raw; see [`DigestParams::algorithm`].
    pub algorithm: Option<String>,
    /// `cnonce` (credentials with qop).
    pub cnonce: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
    /// `qop`, unquoted: a single token in credentials, a comma-separated list in challenges;
    /// see [`DigestParams::qop_options`].
    pub qop: Option<String>,
    /// `nc`: guaranteed to be exactly 8 hex digits when present; see [`DigestParams::nc_value`].
    pub nc: Option<String>,
    /// `stale` (challenges only); `true` only when the header said `stale=true`.
    pub stale: bool,
    /// Unknown parameters, in order of appearance, names as written, values unquoted.
    pub other: Vec<(String, String)>,
}

impl DigestParams {
    /// The algorithm, defaulting to MD5 when the parameter is absent.
    pub fn algorithm(&self) -> Result<Algorithm, AuthError> {
        match &self.algorithm {
            None => Ok(Algorithm::Md5),
            Some(a) => Algorithm::parse(a),
        }
    }

    /// The qop values offered (challenge) or chosen (credentials), trimmed, empty ones skipped.
    pub fn qop_options(&self) -> impl Iterator<Item = &str> {
        self.qop
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|q| !q.is_empty())
    }

    /// The nonce count as a number.
    pub fn nc_value(&self) -> Option<u32> {
        self.nc
            .as_deref()
            .and_then(|nc| u32::from_str_radix(nc, 16).ok())
    }

    /// Looks up an unknown parameter by name (case-insensitive).
    pub fn get_other(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_credentials(&self) -> bool {
        self.username.is_some() || self.response.is_some()
    }
}

impl fmt::Display for DigestParams {
    /// Formats as a header value (`Digest realm="..", ...`) that [`parse_digest`] reads back
    /// to an equal value (CR and LF inside values are written as spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("Digest ");
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push_str(", ");
            }
            first = false;
        };
        let quoted = |out: &mut String, name: &str, v: &str| {
            out.push_str(name);
            out.push('=');
            push_quoted(out, v);
        };
        let token_or_quoted = |out: &mut String, name: &str, v: &str| {
            out.push_str(name);
            out.push('=');
            if !v.is_empty() && v.chars().all(is_token_char) {
                out.push_str(v);
            } else {
                push_quoted(out, v);
            }
        };
        if let Some(v) = &self.username {
            sep(&mut out);
            quoted(&mut out, "username", v);
        }
        sep(&mut out);
        quoted(&mut out, "realm", &self.realm);
        sep(&mut out);
        quoted(&mut out, "nonce", &self.nonce);
        if let Some(v) = &self.uri {
            sep(&mut out);
            quoted(&mut out, "uri", v);
        }
        if let Some(v) = &self.response {
            sep(&mut out);
            quoted(&mut out, "response", v);
        }
        if let Some(v) = &self.algorithm {
            sep(&mut out);
            token_or_quoted(&mut out, "algorithm", v);
        }
        if let Some(v) = &self.cnonce {
            sep(&mut out);
            quoted(&mut out, "cnonce", v);
        }
        if let Some(v) = &self.opaque {
            sep(&mut out);
            quoted(&mut out, "opaque", v);
        }
        if let Some(v) = &self.qop {
            sep(&mut out);
            // RFC 2617: a token in credentials, a quoted list in challenges.
            if self.is_credentials() {
                token_or_quoted(&mut out, "qop", v);
            } else {
                quoted(&mut out, "qop", v);
            }
        }
        if let Some(v) = &self.nc {
            sep(&mut out);
            token_or_quoted(&mut out, "nc", v);
        }
        if self.stale {
            sep(&mut out);
            out.push_str("stale=true");
        }
        for (n, v) in &self.other {
            sep(&mut out);
            token_or_quoted(&mut out, n, v);
        }
        f.write_str(&out)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// RFC 3261 `token` characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Appends `v` as a quoted-string, escaping `"` and `\`; CR and LF (which a quoted-pair may not
/// carry) become spaces so a value can never break a header line.
fn push_quoted(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out.push('"');
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.bump();
        }
    }

    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.bump();
        }
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// Reads a quoted-string; the cursor is on the opening quote.
    fn quoted(&mut self) -> Result<String, AuthError> {
        self.bump();
        let mut v = String::new();
        loop {
            match self.bump() {
                None => return Err(AuthError::Malformed("unterminated quoted string")),
                Some('"') => return Ok(v),
                Some('\\') => match self.bump() {
                    None => return Err(AuthError::Malformed("unterminated quoted string")),
                    Some(c) => v.push(c),
                },
                Some(c) => v.push(c),
            }
        }
    }
}

/// Splits the parameter list after the scheme into `(name, value)` pairs.
fn parse_param_list(s: &str) -> Result<Vec<(&str, String)>, AuthError> {
    let mut cur = Cursor { s, pos: 0 };
    let mut out = Vec::new();
    loop {
        cur.skip_ws();
        match cur.peek() {
            None => break,
            Some(',') => {
                cur.bump();
                continue;
            }
            Some(_) => {}
        }
        let name = cur.take_while(is_token_char);
        if name.is_empty() {
            return Err(AuthError::Malformed("expected parameter name"));
        }
        cur.skip_ws();
        if cur.bump() != Some('=') {
            return Err(AuthError::Malformed("expected '=' after parameter name"));
        }
        cur.skip_ws();
        let value = if cur.peek() == Some('"') {
            cur.quoted()?
        } else {
            // Lenient token: anything up to whitespace, a comma or a quote.
            let v = cur.take_while(|c| !is_ws(c) && c != ',' && c != '"');
            if v.is_empty() {
                return Err(AuthError::Malformed("empty parameter value"));
            }
            v.to_string()
        };
        cur.skip_ws();
        match cur.peek() {
            None | Some(',') => {}
            Some(_) => return Err(AuthError::Malformed("expected ',' between parameters")),
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Parses a `Digest` header value (challenge or credentials).
///
/// Accepts quoted strings with backslash escapes, tokens, arbitrary whitespace, parameters in
/// any order, case-insensitive scheme and parameter names; unknown parameters are kept in
/// [`DigestParams::other`].
///
/// Errors: [`AuthError::NotDigest`] for another scheme; [`AuthError::MissingParam`] when
/// `realm` or `nonce` is absent, or when a credentials value (one carrying `username` or
/// `response`) lacks `username`, `uri` or `response`; [`AuthError::BadNonceCount`] when `nc`
/// is not exactly 8 hex digits; [`AuthError::DuplicateParam`] when a known parameter repeats;
/// [`AuthError::Malformed`] for syntax errors.
pub fn parse_digest(value: &str) -> Result<DigestParams, AuthError> {
    let s = value.trim_matches(is_ws);
    let scheme_end = s.find(is_ws).unwrap_or(s.len());
    let (scheme, rest) = s.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest);
    }

    let mut p = DigestParams::default();
    let mut realm = None;
    let mut nonce = None;
    let mut stale_seen = false;
    for (name, v) in parse_param_list(rest)? {
        let lower = name.to_ascii_lowercase();
        let slot = match lower.as_str() {
            "username" => &mut p.username,
            "realm" => &mut realm,
            "nonce" => &mut nonce,
            "uri" => &mut p.uri,
            "response" => &mut p.response,
            "algorithm" => &mut p.algorithm,
            "cnonce" => &mut p.cnonce,
            "opaque" => &mut p.opaque,
            "qop" => &mut p.qop,
            "nc" => &mut p.nc,
            "stale" => {
                if stale_seen {
                    return Err(AuthError::DuplicateParam(lower));
                }
                stale_seen = true;
                p.stale = v.eq_ignore_ascii_case("true");
                continue;
            }
            _ => {
                p.other.push((name.to_string(), v));
                continue;
            }
        };
        if slot.is_some() {
            return Err(AuthError::DuplicateParam(lower));
        }
        *slot = Some(v);
    }

    p.realm = realm.ok_or(AuthError::MissingParam("realm"))?;
    p.nonce = nonce.ok_or(AuthError::MissingParam("nonce"))?;
    if p.is_credentials() {
        if p.username.is_none() {
            return Err(AuthError::MissingParam("username"));
        }
        if p.uri.is_none() {
            return Err(AuthError::MissingParam("uri"));
        }
        if p.response.is_none() {
            return Err(AuthError::MissingParam("response"));
        }
    }
    if let Some(nc) = &p.nc {
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::BadNonceCount);
        }
    }
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// Digest computations
// ---------------------------------------------------------------------------------------------

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Compares two byte strings in time independent of where they differ (the length is not
/// secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `H(username ":" realm ":" password)` as lowercase hex.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hex_digest(format!("{username}:{realm}:{password}").as_bytes())
}

/// The expected `response` value, lowercase hex.
///
/// * `qop == Some("auth")` (case-insensitive): `H(HA1:nonce:nc:cnonce:qop:HA2)`; `nc` and
///   `cnonce` are then required ([`AuthError::MissingParam`]).
/// * `qop == None`: the RFC 2069 form `H(HA1:nonce:HA2)`.
/// * any other qop (notably `auth-int`): [`AuthError::UnsupportedQop`].
///
/// `HA2 = H(method:digest_uri)`. `ha1_hex` may be in either case.
#[allow(clippy::too_many_arguments)]
pub fn expected_response(
    alg: Algorithm,
    ha1_hex: &str,
    nonce: &str,
    nc: Option<&str>,
    cnonce: Option<&str>,
    qop: Option<&str>,
    method: &str,
    digest_uri: &str,
) -> Result<String, AuthError> {
    let ha1 = ha1_hex.to_ascii_lowercase();
    let ha2 = alg.hex_digest(format!("{method}:{digest_uri}").as_bytes());
    match qop {
        None => Ok(alg.hex_digest(format!("{ha1}:{nonce}:{ha2}").as_bytes())),
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            let nc = nc.ok_or(AuthError::MissingParam("nc"))?;
            let cnonce = cnonce.ok_or(AuthError::MissingParam("cnonce"))?;
            Ok(alg.hex_digest(format!("{ha1}:{nonce}:{nc}:{cnonce}:{q}:{ha2}").as_bytes()))
        }
        Some(q) => Err(AuthError::UnsupportedQop(q.to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// Server side: nonces, challenges, verification
// ---------------------------------------------------------------------------------------------

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner_hash = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner_hash);
    outer.finalize().into()
}

/// Length of an issued nonce: 16 hex timestamp + 16 hex counter + 32 hex MAC.
const NONCE_LEN: usize = 64;

/// Result of [`NonceIssuer::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by us for this realm and within its lifetime.
    Valid,
    /// Issued by us for this realm but older than the lifetime.
    Stale,
    /// Not a nonce we issued for this realm (forged, tampered, or another realm).
    Invalid,
}

/// Issues and checks self-validating nonces.
///
/// A nonce is `hex(timestamp_u64) ‖ hex(counter_u64) ‖ hex(HMAC-SHA256(secret, ts ‖ counter ‖
/// realm)[..16])`, 64 lowercase hex characters. The per-issuer counter makes every nonce unique
/// even within one second (so nonce-count tracking never mixes two clients); checking needs only
/// the secret. Nonces sort lexicographically in issue order within one process.
pub struct NonceIssuer {
    secret: [u8; 32],
    lifetime_secs: u64,
    counter: AtomicU64,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("secret", &"<redacted>")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

impl NonceIssuer {
    /// A new issuer with the caller's random `secret` and nonce lifetime in seconds.
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> Self {
        NonceIssuer {
            secret,
            lifetime_secs,
            counter: AtomicU64::new(0),
        }
    }

    /// The configured lifetime in seconds.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    fn mac_hex(&self, ts: u64, ctr: u64, realm: &str) -> String {
        let mac = hmac_sha256(
            &self.secret,
            &[
                b"switchboard-digest-nonce-v1",
                &ts.to_be_bytes(),
                &ctr.to_be_bytes(),
                realm.as_bytes(),
            ],
        );
        to_hex(&mac[..16])
    }

    /// Issues a fresh nonce for `realm` at time `now_secs`.
    pub fn issue(&self, now_secs: u64, realm: &str) -> String {
        let ctr = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{now_secs:016x}{ctr:016x}{}",
            self.mac_hex(now_secs, ctr, realm)
        )
    }

    /// Checks a nonce presented for `realm` at time `now_secs`.
    ///
    /// A nonce exactly `lifetime_secs` old is still valid; a nonce from the future (the
    /// caller's clock went back) counts as age 0.
    pub fn check(&self, nonce: &str, now_secs: u64, realm: &str) -> NonceStatus {
        let Some((ts, ctr)) = split_nonce(nonce) else {
            return NonceStatus::Invalid;
        };
        let expected = self.mac_hex(ts, ctr, realm);
        if !ct_eq(
            expected.as_bytes(),
            nonce.as_bytes().get(32..).unwrap_or(&[]),
        ) {
            return NonceStatus::Invalid;
        }
        if now_secs.saturating_sub(ts) > self.lifetime_secs {
            NonceStatus::Stale
        } else {
            NonceStatus::Valid
        }
    }
}

/// Timestamp and counter of a nonce in our format (MAC not checked).
fn split_nonce(nonce: &str) -> Option<(u64, u64)> {
    if nonce.len() != NONCE_LEN
        || !nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let ts = u64::from_str_radix(nonce.get(..16)?, 16).ok()?;
    let ctr = u64::from_str_radix(nonce.get(16..32)?, 16).ok()?;
    Some((ts, ctr))
}

/// Builds a challenge value:
/// `Digest realm="..", nonce="..", opaque="..", algorithm=SHA-256, qop="auth", stale=true`
/// (`opaque` only when given, `stale` only when true).
pub fn challenge_header(
    realm: &str,
    nonce: &str,
    algorithm: Algorithm,
    opaque: Option<&str>,
    stale: bool,
) -> String {
    let mut out = String::from("Digest realm=");
    push_quoted(&mut out, realm);
    out.push_str(", nonce=");
    push_quoted(&mut out, nonce);
    if let Some(o) = opaque {
        out.push_str(", opaque=");
        push_quoted(&mut out, o);
    }
    out.push_str(", algorithm=");
    out.push_str(algorithm.as_str());
    out.push_str(", qop=\"auth\"");
    if stale {
        out.push_str(", stale=true");
    }
    out
}

/// Why a [`Verifier`] rejected credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// `ha1_lookup` knows no such user (for that algorithm).
    UnknownUser,
    /// The response does not match (wrong password, or tampered fields).
    BadResponse,
    /// The credentials are for another realm.
    BadRealm,
    /// The nonce was not issued by us for this realm.
    BadNonce,
    /// The nonce count was not higher than the last one accepted for this nonce.
    Replay,
    /// qop other than `auth`, or no qop while the verifier requires it.
    UnsupportedQop,
    /// An algorithm other than MD5 / SHA-256.
    UnsupportedAlgorithm,
    /// `username`, `uri`, `response` — or with qop, `nc`/`cnonce` — is missing.
    MissingParam,
}

/// Outcome of [`Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated.
    Ok {
        /// The authenticated username.
        username: String,
    },
    /// The credentials were right but the nonce has expired: re-challenge with `stale=true`.
    Stale,
    /// Rejected.
    Failed(FailureReason),
}

/// Verifies digest credentials against nonces from its [`NonceIssuer`], with nonce-count
/// replay protection.
///
/// For each nonce it remembers the highest `nc` accepted (only after the response verified).
/// Memory is bounded: entries for expired nonces are purged on every [`Verifier::verify`] (and
/// by [`Verifier::purge`]), and at most `max_nonces` entries are kept, evicting the oldest. A
/// nonce whose entry was evicted while still within its lifetime is answered
/// [`Verdict::Stale`] (forcing a fresh nonce) instead of losing its replay history.
///
/// Without qop (RFC 2069 clients) there is no nonce count and therefore no replay protection
/// within the nonce lifetime; use [`Verifier::with_require_qop`] to refuse such clients.
#[derive(Debug)]
pub struct Verifier {
    issuer: NonceIssuer,
    /// nonce → highest nc accepted. Keys are our nonces, which sort in issue order.
    seen: BTreeMap<String, u32>,
    /// Largest nonce evicted by the cap; nonces at or below it have lost their history.
    evicted_floor: Option<String>,
    max_nonces: usize,
    require_qop: bool,
}

impl Verifier {
    /// Default cap on tracked nonces.
    pub const DEFAULT_MAX_NONCES: usize = 100_000;

    /// A verifier using `issuer`, tracking at most [`Self::DEFAULT_MAX_NONCES`] nonces and
    /// accepting RFC 2069 (no qop) credentials.
    pub fn new(issuer: NonceIssuer) -> Self {
        Verifier {
            issuer,
            seen: BTreeMap::new(),
            evicted_floor: None,
            max_nonces: Self::DEFAULT_MAX_NONCES,
            require_qop: false,
        }
    }

    /// Sets the cap on tracked nonces (at least 1).
    pub fn with_max_nonces(mut self, max: usize) -> Self {
        self.max_nonces = max.max(1);
        self
    }

    /// When `true`, credentials without `qop=auth` fail with
    /// [`FailureReason::UnsupportedQop`].
    pub fn with_require_qop(mut self, require: bool) -> Self {
        self.require_qop = require;
        self
    }

    /// The nonce issuer.
    pub fn issuer(&self) -> &NonceIssuer {
        &self.issuer
    }

    /// Convenience: a challenge value with a freshly issued nonce.
    pub fn challenge(
        &self,
        now_secs: u64,
        realm: &str,
        algorithm: Algorithm,
        stale: bool,
    ) -> String {
        let nonce = self.issuer.issue(now_secs, realm);
        challenge_header(realm, &nonce, algorithm, None, stale)
    }

    /// Number of nonces whose nonce count is being tracked.
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }

    /// Forgets nonces older than the issuer's lifetime.
    pub fn purge(&mut self, now_secs: u64) {
        let lifetime = self.issuer.lifetime_secs;
        while let Some((k, _)) = self.seen.first_key_value() {
            let expired = split_nonce(k)
                .map(|(ts, _)| now_secs.saturating_sub(ts) > lifetime)
                .unwrap_or(true);
            if !expired {
                break;
            }
            self.seen.pop_first();
        }
    }

    /// Verifies credentials `params` for a request with `method` in `realm` at `now_secs`.
    ///
    /// `ha1_lookup(username, algorithm)` returns the stored HA1 hex (see [`ha1`]) or `None`
    /// for an unknown user. The caller should also check `params.uri` against the
    /// Request-URI. Order of checks: realm, algorithm, required parameters, qop, nonce
    /// authenticity, user, response (constant time), nonce age (→ [`Verdict::Stale`] only when
    /// the response was right), nonce-count replay.
    pub fn verify(
        &mut self,
        now_secs: u64,
        method: &str,
        params: &DigestParams,
        realm: &str,
        ha1_lookup: impl Fn(&str, Algorithm) -> Option<String>,
    ) -> Verdict {
        use FailureReason as F;
        self.purge(now_secs);

        if params.realm != realm {
            return Verdict::Failed(F::BadRealm);
        }
        let Ok(alg) = params.algorithm() else {
            return Verdict::Failed(F::UnsupportedAlgorithm);
        };
        let (Some(username), Some(uri), Some(response)) =
            (&params.username, &params.uri, &params.response)
        else {
            return Verdict::Failed(F::MissingParam);
        };
        let counted_nc = match params.qop.as_deref() {
            None if self.require_qop => return Verdict::Failed(F::UnsupportedQop),
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                match (params.nc_value(), &params.cnonce) {
                    (Some(nc), Some(_)) => Some(nc),
                    _ => return Verdict::Failed(F::MissingParam),
                }
            }
            Some(_) => return Verdict::Failed(F::UnsupportedQop),
        };

        let status = self.issuer.check(&params.nonce, now_secs, realm);
        if status == NonceStatus::Invalid {
            return Verdict::Failed(F::BadNonce);
        }
        let Some(stored_ha1) = ha1_lookup(username, alg) else {
            return Verdict::Failed(F::UnknownUser);
        };
        let expected = match expected_response(
            alg,
            &stored_ha1,
            &params.nonce,
            params.nc.as_deref(),
            params.cnonce.as_deref(),
            params.qop.as_deref(),
            method,
            uri,
        ) {
            Ok(e) => e,
            Err(_) => return Verdict::Failed(F::UnsupportedQop),
        };
        if !ct_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Verdict::Failed(F::BadResponse);
        }
        if status == NonceStatus::Stale {
            return Verdict::Stale;
        }

        if let Some(nc) = counted_nc {
            let last = self.seen.get(&params.nonce).copied();
            if last.is_none()
                && self
                    .evicted_floor
                    .as_deref()
                    .is_some_and(|floor| params.nonce.as_str() <= floor)
            {
                // Its history was evicted under memory pressure: force a fresh nonce.
                return Verdict::Stale;
            }
            if nc <= last.unwrap_or(0) {
                return Verdict::Failed(F::Replay);
            }
            self.seen.insert(params.nonce.clone(), nc);
            while self.seen.len() > self.max_nonces {
                if let Some((k, _)) = self.seen.pop_first() {
                    if self.evicted_floor.as_deref().is_none_or(|f| k.as_str() > f) {
                        self.evicted_floor = Some(k);
                    }
                }
            }
        }
        Verdict::Ok {
            username: username.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// Builds an `Authorization` / `Proxy-Authorization` value answering `challenge`.
///
/// Uses the challenge's algorithm (MD5 when absent), `qop=auth` when the challenge offers it
/// (the RFC 2069 form when the challenge has no qop), and echoes `opaque`. `cnonce` is the
/// caller's random client nonce and `nc` the count of requests sent with this nonce (starting
/// at 1).
///
/// Errors: unsupported/unknown algorithm; [`AuthError::UnsupportedQop`] when the challenge
/// offers qop but not `auth`; [`AuthError::BadNonceCount`] for `nc == 0` with qop.
pub fn authorization_header(
    challenge: &DigestParams,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    let alg = challenge.algorithm()?;
    let qop = if challenge.qop_options().next().is_none() {
        None
    } else if challenge
        .qop_options()
        .any(|q| q.eq_ignore_ascii_case("auth"))
    {
        Some("auth")
    } else {
        return Err(AuthError::UnsupportedQop(
            challenge.qop.clone().unwrap_or_default(),
        ));
    };
    if qop.is_some() && nc == 0 {
        return Err(AuthError::BadNonceCount);
    }
    let nc_str = format!("{nc:08x}");
    let (nc_opt, cnonce_opt) = match qop {
        Some(_) => (Some(nc_str.as_str()), Some(cnonce)),
        None => (None, None),
    };
    let h1 = ha1(alg, username, &challenge.realm, password);
    let response = expected_response(
        alg,
        &h1,
        &challenge.nonce,
        nc_opt,
        cnonce_opt,
        qop,
        method,
        uri,
    )?;
    let creds = DigestParams {
        username: Some(username.to_string()),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: Some(uri.to_string()),
        response: Some(response),
        algorithm: Some(alg.as_str().to_string()),
        cnonce: cnonce_opt.map(str::to_string),
        opaque: challenge.opaque.clone(),
        qop: qop.map(str::to_string),
        nc: nc_opt.map(str::to_string),
        stale: false,
        other: Vec::new(),
    };
    Ok(creds.to_string())
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: [u8; 32] = [7u8; 32];
    const REALM: &str = "switchboard.example";

    fn verifier(lifetime: u64) -> Verifier {
        Verifier::new(NonceIssuer::new(SECRET, lifetime))
    }

    fn lookup_for(
        user: &'static str,
        password: &'static str,
        realm: &'static str,
    ) -> impl Fn(&str, Algorithm) -> Option<String> {
        move |u, alg| (u == user).then(|| ha1(alg, user, realm, password))
    }

    fn credentials(
        v: &Verifier,
        now: u64,
        alg: Algorithm,
        password: &str,
        nc: u32,
    ) -> DigestParams {
        let challenge = parse_digest(&v.challenge(now, REALM, alg, false)).unwrap();
        let hdr = authorization_header(
            &challenge,
            "REGISTER",
            "sip:switchboard.example",
            "1001",
            password,
            "c0ffee",
            nc,
        )
        .unwrap();
        parse_digest(&hdr).unwrap()
    }

    #[test]
    fn algorithm_parse_and_as_str() {
        assert_eq!(Algorithm::parse("md5"), Ok(Algorithm::Md5));
        assert_eq!(Algorithm::parse("sha-256"), Ok(Algorithm::Sha256));
        assert_eq!("SHA-256".parse::<Algorithm>(), Ok(Algorithm::Sha256));
        assert_eq!(Algorithm::Md5.as_str(), "MD5");
        assert_eq!(Algorithm::Sha256.as_str(), "SHA-256");
        assert!(matches!(
            Algorithm::parse("MD5-sess"),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Algorithm::parse("sha-256-SESS"),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Algorithm::parse("rot13"),
            Err(AuthError::UnknownAlgorithm(_))
        ));
    }

    #[test]
    fn rfc2617_example() {
        let hdr = "Digest username=\"Mufasa\",\n                 realm=\"testrealm@host.com\",\n                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\n                 uri=\"/dir/index.html\",\n                 qop=auth,\n                 nc=00000001,\n                 cnonce=\"0a4f113b\",\n                 response=\"6629fae49393a05397450978507c4ef1\",\n                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let p = parse_digest(hdr).unwrap();
        assert_eq!(p.username.as_deref(), Some("Mufasa"));
        assert_eq!(p.nc_value(), Some(1));
        let h1 = ha1(Algorithm::Md5, "Mufasa", &p.realm, "Circle Of Life");
        let r = expected_response(
            Algorithm::Md5,
            &h1,
            &p.nonce,
            p.nc.as_deref(),
            p.cnonce.as_deref(),
            p.qop.as_deref(),
            "GET",
            p.uri.as_deref().unwrap(),
        )
        .unwrap();
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        assert_eq!(p.response.as_deref(), Some(r.as_str()));
    }

    #[test]
    fn rfc7616_examples() {
        let realm = "http-auth@example.org";
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let sha = ha1(Algorithm::Sha256, "Mufasa", realm, "Circle of Life");
        let r = expected_response(
            Algorithm::Sha256,
            &sha,
            nonce,
            Some("00000001"),
            Some(cnonce),
            Some("auth"),
            "GET",
            "/dir/index.html",
        )
        .unwrap();
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = ha1(Algorithm::Md5, "Mufasa", realm, "Circle of Life");
        let r = expected_response(
            Algorithm::Md5,
            &md5,
            nonce,
            Some("00000001"),
            Some(cnonce),
            Some("auth"),
            "GET",
            "/dir/index.html",
        )
        .unwrap();
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");

        // And the client side produces exactly that response.
        let challenge = parse_digest(&format!(
            "Digest realm=\"{realm}\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"{nonce}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        ))
        .unwrap();
        let hdr = authorization_header(
            &challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle of Life",
            cnonce,
            1,
        )
        .unwrap();
        let creds = parse_digest(&hdr).unwrap();
        assert_eq!(
            creds.response.as_deref(),
            Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
        );
        assert_eq!(
            creds.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert_eq!(creds.qop.as_deref(), Some("auth"));
        assert_eq!(creds.nc.as_deref(), Some("00000001"));
        assert_eq!(creds.algorithm.as_deref(), Some("SHA-256"));
    }

    #[test]
    fn auth_int_is_rejected() {
        assert_eq!(
            expected_response(
                Algorithm::Md5,
                "00",
                "n",
                Some("00000001"),
                Some("c"),
                Some("auth-int"),
                "GET",
                "/"
            ),
            Err(AuthError::UnsupportedQop("auth-int".into()))
        );
        let ch = parse_digest("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").unwrap();
        assert!(matches!(
            authorization_header(&ch, "INVITE", "sip:x", "u", "p", "c", 1),
            Err(AuthError::UnsupportedQop(_))
        ));
        let ch = parse_digest("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess").unwrap();
        assert!(matches!(
            authorization_header(&ch, "INVITE", "sip:x", "u", "p", "c", 1),
            Err(AuthError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn round_trip_both_algorithms() {
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let mut v = verifier(300);
            let creds = credentials(&v, 1000, alg, "s3cret", 1);
            assert_eq!(creds.algorithm().unwrap(), alg);
            let verdict = v.verify(
                1010,
                "REGISTER",
                &creds,
                REALM,
                lookup_for("1001", "s3cret", REALM),
            );
            assert_eq!(
                verdict,
                Verdict::Ok {
                    username: "1001".into()
                }
            );
        }
    }

    #[test]
    fn rfc2069_form_without_qop() {
        let v0 = verifier(300);
        let nonce = v0.issuer().issue(1000, REALM);
        let ch = parse_digest(&format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\"")).unwrap();
        let hdr =
            authorization_header(&ch, "INVITE", "sip:2000@x", "1001", "pw", "unused", 0).unwrap();
        let creds = parse_digest(&hdr).unwrap();
        assert!(creds.qop.is_none() && creds.cnonce.is_none() && creds.nc.is_none());
        assert_eq!(creds.algorithm.as_deref(), Some("MD5"));
        let mut v = v0;
        assert_eq!(
            v.verify(
                1001,
                "INVITE",
                &creds,
                REALM,
                lookup_for("1001", "pw", REALM)
            ),
            Verdict::Ok {
                username: "1001".into()
            }
        );
        let mut strict = verifier(300).with_require_qop(true);
        assert_eq!(
            strict.verify(
                1001,
                "INVITE",
                &creds,
                REALM,
                lookup_for("1001", "pw", REALM)
            ),
            Verdict::Failed(FailureReason::UnsupportedQop)
        );
    }

    #[test]
    fn stale_nonce() {
        let mut v = verifier(60);
        let creds = credentials(&v, 1000, Algorithm::Sha256, "pw", 1);
        assert_eq!(
            v.verify(
                1061,
                "REGISTER",
                &creds,
                REALM,
                lookup_for("1001", "pw", REALM)
            ),
            Verdict::Stale
        );
        // A stale nonce with a wrong password is a plain failure, not Stale.
        assert_eq!(
            v.verify(
                1061,
                "REGISTER",
                &creds,
                REALM,
                lookup_for("1001", "nope", REALM)
            ),
            Verdict::Failed(FailureReason::BadResponse)
        );
        // Exactly at the lifetime boundary it is still valid.
        assert_eq!(
            v.verify(
                1060,
                "REGISTER",
                &creds,
                REALM,
                lookup_for("1001", "pw", REALM)
            ),
            Verdict::Ok {
                username: "1001".into()
            }
        );
        assert_eq!(
            v.issuer().check(&creds.nonce, 5000, REALM),
            NonceStatus::Stale
        );
    }

    #[test]
    fn tampered_nonce_is_invalid() {
        let issuer = NonceIssuer::new(SECRET, 60);
        let nonce = issuer.issue(1000, REALM);
        assert_eq!(nonce.len(), 64);
        assert_eq!(issuer.check(&nonce, 1000, REALM), NonceStatus::Valid);
        // Change the timestamp to make it look fresh, the counter, or the MAC.
        for i in [15usize, 20, 40, 63] {
            let mut b = nonce.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let t = String::from_utf8(b).unwrap();
            assert_eq!(
                issuer.check(&t, 1000, REALM),
                NonceStatus::Invalid,
                "pos {i}"
            );
        }
        assert_eq!(
            issuer.check(&nonce, 1000, "other.realm"),
            NonceStatus::Invalid
        );
        assert_eq!(
            NonceIssuer::new([8u8; 32], 60).check(&nonce, 1000, REALM),
            NonceStatus::Invalid
        );
        for junk in [
            "",
            "zz",
            &nonce[..63],
            &nonce.to_uppercase(),
            "é".repeat(32).as_str(),
        ] {
            assert_eq!(issuer.check(junk, 1000, REALM), NonceStatus::Invalid);
        }
        // Unique even within one second.
        assert_ne!(issuer.issue(1000, REALM), issuer.issue(1000, REALM));

        let mut v = verifier(60);
        let mut creds = credentials(&v, 1000, Algorithm::Md5, "pw", 1);
        creds.nonce = format!("{:016x}{}", 999_999u64, &creds.nonce[16..]);
        assert_eq!(
            v.verify(
                1000,
                "REGISTER",
                &creds,
                REALM,
                lookup_for("1001", "pw", REALM)
            ),
            Verdict::Failed(FailureReason::BadNonce)
        );
    }

    #[test]
    fn wrong_password_unknown_user_bad_realm() {
        let mut v = verifier(60);
        let creds = credentials(&v, 1000, Algorithm::Sha256, "guess", 1);
        assert_eq!(
            v.verify(
                1000,
                "REGISTER",
                &creds,
                REALM,
                lookup_for("1001", "pw", REALM)
            ),
            Verdict::Failed(FailureReason::BadResponse)
        );
        assert_eq!(
            v.verify(
                1000,
                "REGISTER",
                &creds,
                REALM,
                lookup_for("1002", "pw", REALM)
            ),
            Verdict::Failed(FailureReason::UnknownUser)
        );
        assert_eq!(
            v.verify(
                1000,
                "REGISTER",
                &creds,
                "elsewhere",
                lookup_for("1001", "guess", REALM)
            ),
            Verdict::Failed(FailureReason::BadRealm)
        );
        // Right password but the method differs from the one signed.
        assert_eq!(
            v.verify(
                1000,
                "INVITE",
                &creds,
                REALM,
                lookup_for("1001", "guess", REALM)
            ),
            Verdict::Failed(FailureReason::BadResponse)
        );
        // Uppercase HA1 from storage and uppercase response from the client still match.
        let mut up = creds.clone();
        up.response = up.response.map(|r| r.to_uppercase());
        assert_eq!(
            v.verify(1000, "REGISTER", &up, REALM, |_, alg| Some(
                ha1(alg, "1001", REALM, "guess").to_uppercase()
            )),
            Verdict::Ok {
                username: "1001".into()
            }
        );
    }

    #[test]
    fn missing_and_unsupported_params() {
        let mut v = verifier(60);
        let lookup = lookup_for("1001", "pw", REALM);
        let base = credentials(&v, 1000, Algorithm::Md5, "pw", 1);
        let mut c = base.clone();
        c.cnonce = None;
        assert_eq!(
            v.verify(1000, "REGISTER", &c, REALM, &lookup),
            Verdict::Failed(FailureReason::MissingParam)
        );
        let mut c = base.clone();
        c.qop = Some("auth-int".into());
        assert_eq!(
            v.verify(1000, "REGISTER", &c, REALM, &lookup),
            Verdict::Failed(FailureReason::UnsupportedQop)
        );
        let mut c = base.clone();
        c.algorithm = Some("MD5-sess".into());
        assert_eq!(
            v.verify(1000, "REGISTER", &c, REALM, &lookup),
            Verdict::Failed(FailureReason::UnsupportedAlgorithm)
        );
        let mut c = base.clone();
        c.response = None;
        assert_eq!(
            v.verify(1000, "REGISTER", &c, REALM, &lookup),
            Verdict::Failed(FailureReason::MissingParam)
        );
        // A challenge passed as credentials.
        let ch = parse_digest(&v.challenge(1000, REALM, Algorithm::Md5, false)).unwrap();
        assert_eq!(
            v.verify(1000, "REGISTER", &ch, REALM, &lookup),
            Verdict::Failed(FailureReason::MissingParam)
        );
    }

    #[test]
    fn replayed_nc() {
        let mut v = verifier(300);
        let lookup = lookup_for("1001", "pw", REALM);
        let first = credentials(&v, 1000, Algorithm::Sha256, "pw", 1);
        let ok = Verdict::Ok {
            username: "1001".into(),
        };
        assert_eq!(v.verify(1000, "REGISTER", &first, REALM, &lookup), ok);
        assert_eq!(
            v.verify(1001, "REGISTER", &first, REALM, &lookup),
            Verdict::Failed(FailureReason::Replay)
        );
        // The next count on the same nonce is fine, then going back is a replay.
        let ch = DigestParams {
            username: None,
            uri: None,
            response: None,
            qop: Some("auth".into()),
            algorithm: Some("SHA-256".into()),
            ..first.clone()
        };
        let mk = |nc| {
            parse_digest(
                &authorization_header(
                    &ch,
                    "REGISTER",
                    "sip:switchboard.example",
                    "1001",
                    "pw",
                    "c0ffee",
                    nc,
                )
                .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(v.verify(1002, "REGISTER", &mk(3), REALM, &lookup), ok);
        assert_eq!(
            v.verify(1003, "REGISTER", &mk(2), REALM, &lookup),
            Verdict::Failed(FailureReason::Replay)
        );
        assert_eq!(v.verify(1004, "REGISTER", &mk(4), REALM, &lookup), ok);
        // A failed attempt does not advance the counter.
        let mut bad = mk(5);
        bad.response = Some("0".repeat(64));
        assert_eq!(
            v.verify(1005, "REGISTER", &bad, REALM, &lookup),
            Verdict::Failed(FailureReason::BadResponse)
        );
        assert_eq!(v.verify(1006, "REGISTER", &mk(5), REALM, &lookup), ok);
    }

    #[test]
    fn memory_is_bounded() {
        let mut v = verifier(100).with_max_nonces(3);
        let lookup = lookup_for("1001", "pw", REALM);
        let old = credentials(&v, 1000, Algorithm::Md5, "pw", 1);
        for t in 0..5 {
            let c = credentials(&v, 1000 + t, Algorithm::Md5, "pw", 1);
            assert!(matches!(
                v.verify(1000 + t, "REGISTER", &c, REALM, &lookup),
                Verdict::Ok { .. }
            ));
            assert!(v.tracked_nonces() <= 3);
        }
        // `old` was issued before the evicted ones: its history is gone, so it is Stale.
        assert_eq!(
            v.verify(1010, "REGISTER", &old, REALM, &lookup),
            Verdict::Stale
        );
        // Everything expires and is purged.
        v.purge(2000);
        assert_eq!(v.tracked_nonces(), 0);
        let c = credentials(&v, 3000, Algorithm::Md5, "pw", 1);
        assert!(matches!(
            v.verify(3000, "REGISTER", &c, REALM, &lookup),
            Verdict::Ok { .. }
        ));
        assert_eq!(v.tracked_nonces(), 1);
        assert!(matches!(
            v.verify(3500, "REGISTER", &c, REALM, &lookup),
            Verdict::Stale
        ));
        assert_eq!(v.tracked_nonces(), 0);
    }

    #[test]
    fn challenge_header_format() {
        let h = challenge_header("r\"x", "abc", Algorithm::Sha256, None, false);
        assert_eq!(
            h,
            "Digest realm=\"r\\\"x\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\""
        );
        let h = challenge_header("r", "abc", Algorithm::Md5, Some("op"), true);
        assert_eq!(
            h,
            "Digest realm=\"r\", nonce=\"abc\", opaque=\"op\", algorithm=MD5, qop=\"auth\", stale=true"
        );
        let p = parse_digest(&h).unwrap();
        assert!(p.stale);
        assert_eq!(p.opaque.as_deref(), Some("op"));
        assert_eq!(p.qop_options().collect::<Vec<_>>(), vec!["auth"]);
        assert_eq!(p.algorithm(), Ok(Algorithm::Md5));
    }

    #[test]
    fn parser_weird_spacing_case_and_escapes() {
        let p = parse_digest(
            "  dIgEsT   REALM = \"a \\\"b\\\\ c\" ,,nonce=xyz,QOP=\"auth,auth-int\" ,  \
             Stale=TRUE, Domain=\"sip:a sip:b\",\tAlgorithm = sha-256 , x-foo=bar  ",
        )
        .unwrap();
        assert_eq!(p.realm, "a \"b\\ c");
        assert_eq!(p.nonce, "xyz");
        assert_eq!(
            p.qop_options().collect::<Vec<_>>(),
            vec!["auth", "auth-int"]
        );
        assert!(p.stale);
        assert_eq!(p.algorithm(), Ok(Algorithm::Sha256));
        assert_eq!(p.get_other("domain"), Some("sip:a sip:b"));
        assert_eq!(p.get_other("X-FOO"), Some("bar"));
        assert_eq!(p.other.len(), 2);
        // Round trip through Display.
        assert_eq!(parse_digest(&p.to_string()).unwrap(), p);

        let c = parse_digest(
            "Digest username=\"1001\",realm=\"r\",nonce=\"n\",uri=\"sip:r\",response=\"ab\",\
             cnonce=\"cc\",nc=0000000A,qop=auth",
        )
        .unwrap();
        assert_eq!(c.nc_value(), Some(10));
        let s = c.to_string();
        assert!(s.contains("qop=auth") && s.contains("nc=0000000A"), "{s}");
        assert_eq!(parse_digest(&s).unwrap(), c);
    }

    #[test]
    fn parser_errors() {
        use AuthError as E;
        assert_eq!(parse_digest("Basic realm=\"x\""), Err(E::NotDigest));
        assert_eq!(parse_digest(""), Err(E::NotDigest));
        assert_eq!(parse_digest("Digestrealm=\"x\""), Err(E::NotDigest));
        assert_eq!(parse_digest("Digest"), Err(E::MissingParam("realm")));
        assert_eq!(
            parse_digest("Digest realm=x"),
            Err(E::MissingParam("nonce"))
        );
        assert_eq!(
            parse_digest("Digest realm=x, nonce=y, username=u, response=r"),
            Err(E::MissingParam("uri"))
        );
        assert_eq!(
            parse_digest("Digest realm=x, nonce=y, username=u, uri=z"),
            Err(E::MissingParam("response"))
        );
        assert_eq!(
            parse_digest("Digest realm=x, nonce=y, response=r, uri=z"),
            Err(E::MissingParam("username"))
        );
        for nc in ["1", "000000001", "0000000g", "\"\"", "+0000001"] {
            assert_eq!(
                parse_digest(&format!("Digest realm=x, nonce=y, nc={nc}")),
                Err(E::BadNonceCount),
                "{nc}"
            );
        }
        assert!(matches!(
            parse_digest("Digest realm=\"x, nonce=y"),
            Err(E::Malformed(_))
        ));
        assert!(matches!(
            parse_digest("Digest realm=\"x\\"),
            Err(E::Malformed(_))
        ));
        assert!(matches!(
            parse_digest("Digest realm x, nonce=y"),
            Err(E::Malformed(_))
        ));
        assert!(matches!(
            parse_digest("Digest realm=, nonce=y"),
            Err(E::Malformed(_))
        ));
        assert!(matches!(
            parse_digest("Digest realm=\"a\"b, nonce=y"),
            Err(E::Malformed(_))
        ));
        assert!(matches!(
            parse_digest("Digest realm=a, nonce=y, REALM=b"),
            Err(E::DuplicateParam(_))
        ));
    }

    fn header_ish() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("Digest ".to_string()),
                Just("realm".to_string()),
                Just("nonce".to_string()),
                Just("username".to_string()),
                Just("uri".to_string()),
                Just("response".to_string()),
                Just("nc".to_string()),
                Just("qop".to_string()),
                Just("=".to_string()),
                Just(",".to_string()),
                Just("\"".to_string()),
                Just("\\".to_string()),
                Just(" ".to_string()),
                "[a-z0-9é]{0,9}",
            ],
            0..24,
        )
        .prop_map(|v| v.concat())
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[^\r\n]{0,12}")
    }

    prop_compose! {
        fn arb_params()(
            creds in any::<bool>(),
            username in "[^\r\n]{0,12}",
            realm in "[^\r\n]{0,12}",
            nonce in "[^\r\n]{0,12}",
            uri in "[^\r\n]{0,12}",
            response in "[0-9a-f]{0,64}",
            algorithm in opt_text(),
            cnonce in opt_text(),
            opaque in opt_text(),
            qop in opt_text(),
            nc in proptest::option::of("[0-9a-fA-F]{8}"),
            stale in any::<bool>(),
            other in proptest::collection::vec(("x-[a-z]{1,5}", "[^\r\n]{0,8}"), 0..3),
        ) -> DigestParams {
            DigestParams {
                username: creds.then_some(username),
                realm,
                nonce,
                uri: creds.then_some(uri),
                response: creds.then_some(response),
                algorithm,
                cnonce,
                opaque,
                qop,
                nc,
                stale,
                other,
            }
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse_digest(&s);
        }

        #[test]
        fn parse_never_panics_on_header_like_input(s in header_ish()) {
            if let Ok(p) = parse_digest(&s) {
                // Whatever parses also round-trips.
                prop_assert_eq!(parse_digest(&p.to_string()).unwrap(), p);
            }
        }

        #[test]
        fn display_parse_round_trip(p in arb_params()) {
            prop_assert_eq!(parse_digest(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn verify_never_panics(p in arb_params(), now in any::<u64>(), method in ".{0,8}") {
            let mut v = verifier(60);
            let _ = v.verify(now, &method, &p, &p.realm.clone(), |u, a| Some(ha1(a, u, "r", "p")));
            let _ = v.issuer().check(&p.nonce, now, "r");
        }
    }
}
