//! SIP profiles: loading and validating `sip-profiles/*.yaml`.
//!
//! Pipeline (as in vector's config compiler): the YAML is deserialized into
//! raw serde structs whose leaves carry their source position
//! ([`serde_saphyr::Spanned`]); the validator then checks the whole document,
//! collecting *every* problem with `file:line:col`, and only when there are
//! none builds the immutable, fully typed [`Profile`]. Bad input is reported,
//! never a panic.
//!
//! Structural problems (YAML syntax, a value of the wrong type, an unknown
//! field) stop deserialization, so at most one of those is reported; all
//! semantic problems are reported together.

mod duration;
mod error;
mod ipnet;
mod matcher;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use duration::parse_duration;
pub use error::ConfigError;
pub use ipnet::{IpNet, IpNetParseError};
pub use matcher::NumberMatch;

/// Read and validate the profile at `path`.
///
/// An unreadable file gives one error at 1:1; a file that is not UTF-8 gives
/// one error at the first invalid byte.
pub fn load_profile(path: &Path) -> Result<Profile, Vec<ConfigError>> {
    let bytes = std::fs::read(path).map_err(|e| {
        vec![ConfigError::new(
            path,
            1,
            1,
            format!("cannot read profile: {e}"),
        )]
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse_profile(path, text),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let prefix = std::str::from_utf8(valid).unwrap_or_default();
            let line = prefix.matches('\n').count() + 1;
            let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let byte = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
            Err(vec![ConfigError::new(
                path,
                line,
                col,
                format!("profile is not valid UTF-8 (byte 0x{byte:02x})"),
            )])
        }
    }
}

/// Validate profile text. `path` is used in error messages and to resolve
/// relative TLS certificate paths; the file is not read.
pub fn parse_profile(path: &Path, text: &str) -> Result<Profile, Vec<ConfigError>> {
    // serde-saphyr caps nesting at 64 levels; 64 levels of our visitors in an unoptimised
    // build need more than a test thread's 2 MiB of stack, so parse on a thread of our own.
    let (path, text) = (path.to_path_buf(), text.to_string());
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || parse_collecting(&path, &text));
    match worker.map(|h| h.join()) {
        Ok(Ok(result)) => result,
        _ => Err(vec![ConfigError::new(
            Path::new("profile"),
            1,
            1,
            "the profile could not be parsed",
        )]),
    }
}

/// At most this many unknown fields are reported before the rest of the file is read.
const MAX_UNKNOWN_FIELDS: usize = 50;

/// Parses and validates, reporting every problem at once. serde stops at the first unknown
/// field, so each one is recorded, blanked out of a copy of the text (with spaces, keeping
/// every other position exact), and the copy parsed again.
fn parse_collecting(path: &Path, text: &str) -> Result<Profile, Vec<ConfigError>> {
    let mut text = text.to_string();
    let mut errors = Vec::new();
    for _ in 0..=MAX_UNKNOWN_FIELDS {
        match serde_saphyr::from_str::<raw::S<raw::RawProfile>>(&text) {
            Ok(doc) => {
                return match validate::build(path, doc) {
                    Ok(p) if errors.is_empty() => Ok(p),
                    Ok(_) => Err(errors),
                    Err(more) => {
                        errors.extend(more);
                        errors.sort_by_key(|e| (e.line, e.col));
                        Err(errors)
                    }
                };
            }
            Err(e) => {
                let err = error::from_yaml_error(path, &e);
                let unknown = err.message.starts_with("unknown field");
                let blanked = if unknown {
                    blank_key(&text, err.line, err.col)
                } else {
                    None
                };
                errors.push(err);
                match blanked {
                    Some(t) => text = t,
                    None => break,
                }
            }
        }
    }
    errors.sort_by_key(|e| (e.line, e.col));
    Err(errors)
}

/// Replaces the mapping entry whose key starts at `line`:`col` (1-based) with spaces: in a
/// flow mapping up to the next `,` or the closing brace, in a block mapping the line and its
/// more-indented continuation lines.
fn blank_key(text: &str, line: usize, col: usize) -> Option<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let l = line.checked_sub(1)?;
    let chars: Vec<char> = lines.get(l)?.chars().collect();
    let start = col.checked_sub(1)?;
    if start >= chars.len() {
        return None;
    }
    let before = chars[..start].iter().rev().find(|c| !c.is_whitespace());
    let mut out = chars.clone();
    if matches!(before, Some('{') | Some(',')) {
        // Flow style: to the next top-level ',' (inclusive) or up to the closing '}'.
        let (mut depth, mut quote, mut end) = (0i32, None::<char>, chars.len());
        for (i, &c) in chars.iter().enumerate().skip(start) {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '{' | '[') => depth += 1,
                (None, '}' | ']') if depth == 0 => {
                    end = i;
                    break;
                }
                (None, '}' | ']') => depth -= 1,
                (None, ',') if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        let mut from = start;
        if end < chars.len() && matches!(chars[end], '}' | ']') && before == Some(&',') {
            // The last entry: its leading comma goes too (a `{ a: 1 }` stays well-formed).
            from = chars[..start]
                .iter()
                .rposition(|c| *c == ',')
                .unwrap_or(start);
        }
        for c in out.iter_mut().take(end).skip(from) {
            *c = ' ';
        }
        lines[l] = out.into_iter().collect();
    } else {
        let indent = start;
        lines[l] = " ".repeat(chars.len());
        for next in lines.iter_mut().skip(l + 1) {
            let ind = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && ind <= indent {
                break;
            }
            *next = " ".repeat(next.len());
        }
    }
    Some(lines.join("\n"))
}

/// A validated SIP profile. Build one with [`load_profile`] / [`parse_profile`].
#[derive(Debug, Clone)]
pub struct Profile {
    /// The file the profile was loaded from.
    pub path: PathBuf,
    pub listeners: Vec<Listener>,
    /// Digest realm and our SIP domain.
    pub realm: String,
    pub users: Vec<User>,
    pub trunks: Vec<Trunk>,
    /// Ordered; the first matching route wins.
    pub routes: Vec<Route>,
    pub timers: Timers,
    pub limits: Limits,
    pub registrar: RegistrarSettings,
    pub media: MediaSettings,
}

/// A codec Switchboard can speak on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

impl Codec {
    /// The profile keyword (`pcmu`, `pcma`, `opus`).
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
            Codec::Opus => "opus",
        }
    }
}

/// How media is anchored: where RTP sockets live and what the legs may speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    /// IP the RTP sockets bind to; `None` = the first listener's address.
    pub address: Option<IpAddr>,
    /// IP written in SDP instead (NAT); `None` = the bound address.
    pub advertised: Option<IpAddr>,
    /// Inclusive RTP port range (even ports are RTP, the odd one above RTCP).
    pub port_min: u16,
    pub port_max: u16,
    /// Preference order for negotiation on every leg; telephone-event is always offered.
    pub codecs: Vec<Codec>,
    pub ptime: Duration,
    /// A leg that sends no RTP for this long ends the call.
    pub rtp_timeout: Duration,
    /// How the media thread does its socket I/O.
    pub io: MediaIo,
}

/// The media thread's socket I/O (`media.io` in the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaIo {
    /// io_uring when the kernel offers what it needs (6.1 or later, not blocked by a
    /// seccomp profile), epoll otherwise.
    #[default]
    Auto,
    /// io_uring, or the media thread does not start.
    Uring,
    /// epoll with one system call per packet each way.
    Epoll,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            address: None,
            advertised: None,
            port_min: 20000,
            port_max: 29999,
            codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
            ptime: Duration::from_millis(20),
            rtp_timeout: Duration::from_secs(60),
            io: MediaIo::Auto,
        }
    }
}

impl Profile {
    /// The local user with this extension.
    pub fn user(&self, ext: &str) -> Option<&User> {
        self.users.iter().find(|u| u.extension == ext)
    }

    /// The trunk with this name.
    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The trunk whose inbound `allow` list contains `ip`. When several do,
    /// the most specific network (longest prefix) wins; on a tie, the trunk
    /// listed first.
    pub fn trunk_for_source(&self, ip: IpAddr) -> Option<&Trunk> {
        let mut best: Option<(&Trunk, u8)> = None;
        for trunk in &self.trunks {
            for net in trunk.inbound.allow.iter().filter(|n| n.contains(ip)) {
                if best.is_none_or(|(_, len)| net.prefix_len() > len) {
                    best = Some((trunk, net.prefix_len()));
                }
            }
        }
        best.map(|(t, _)| t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
}

impl TransportKind {
    /// The lowercase name used in profiles (`udp`, `tcp`, `tls`).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        }
    }

    /// The default SIP port for this transport (5061 for TLS, else 5060).
    pub fn default_port(self) -> u16 {
        match self {
            TransportKind::Tls => 5061,
            TransportKind::Udp | TransportKind::Tcp => 5060,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub transport: TransportKind,
    pub addr: SocketAddr,
    /// Host or host:port written in Via/Contact/SDP instead of `addr`.
    pub advertised: Option<String>,
    /// Resolved against the profile's directory. For TLS without cert/key the
    /// runtime generates a self-signed certificate.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub extension: String,
    pub secret: Secret,
    pub display_name: Option<String>,
}

/// How a user's digest credentials are stored. `Debug` redacts the values.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    /// Lowercase hex HA1 values, H(user:realm:password); at least one is set.
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl Secret {
    /// Whether this secret can answer a challenge with `algorithm`.
    pub fn supports(&self, algorithm: DigestAlgorithm) -> bool {
        match (self, algorithm) {
            (Secret::Password(_), _) => true,
            (Secret::Ha1 { md5, .. }, DigestAlgorithm::Md5) => md5.is_some(),
            (Secret::Ha1 { sha256, .. }, DigestAlgorithm::Sha256) => sha256.is_some(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        match self {
            Secret::Password(_) => f.debug_tuple("Password").field(&"<redacted>").finish(),
            Secret::Ha1 { md5, sha256 } => f
                .debug_struct("Ha1")
                .field("md5", &redact(md5))
                .field("sha256", &redact(sha256))
                .finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    pub inbound: TrunkInbound,
    pub outbound: Option<TrunkOutbound>,
    pub max_calls: Option<u32>,
    pub max_cps: Option<u32>,
}

/// How calls from a trunk are recognised: by source address and/or digest.
#[derive(Debug, Clone, Default)]
pub struct TrunkInbound {
    pub allow: Vec<IpNet>,
    pub digest: Option<Credentials>,
}

#[derive(Debug, Clone)]
pub struct TrunkOutbound {
    pub host: String,
    /// Default 5060 (5061 when `transport` is tls).
    pub port: u16,
    /// Default udp.
    pub transport: TransportKind,
    pub auth: Option<Credentials>,
    /// Register with the carrier. Default false.
    pub register: bool,
    /// Default 600.
    pub register_expires: u32,
}

/// A username/password pair. `Debug` redacts the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub matcher: NumberMatch,
    pub from: RouteSource,
    pub target: RouteTarget,
    /// Record calls on this route (stereo WAV in the data directory).
    pub record: bool,
}

/// Which callers a route applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSource {
    Any,
    /// Only authenticated local users.
    LocalUsers,
    /// Any trunk.
    Trunks,
    /// This trunk only.
    Trunk(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// A local user; `None` means the dialled number itself is the extension.
    User(Option<String>),
    Trunk(String),
    Flow(String),
    Queue(String),
    Echo,
    Reject {
        code: u16,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// RFC 4028 session interval we ask for.
    pub session_expires: Duration,
    pub min_se: Duration,
    /// How long an outbound leg may ring.
    pub ring_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            session_expires: Duration::from_secs(1800),
            min_se: Duration::from_secs(90),
            ring_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: usize,
    pub max_dialogs: usize,
    /// Requests per second per source IP; 0 = unlimited.
    pub per_source_rate: u32,
    pub tcp_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65535,
            max_dialogs: 100_000,
            per_source_rate: 0,
            tcp_idle_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarSettings {
    /// Seconds; default 60.
    pub min_expires: u32,
    /// Seconds; default 3600.
    pub max_expires: u32,
    /// Seconds; default 3600, or the nearest bound when the profile sets
    /// bounds that exclude 3600.
    pub default_expires: u32,
    pub nonce_lifetime: Duration,
    /// Challenge with each of these, in order.
    pub algorithms: Vec<DigestAlgorithm>,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        RegistrarSettings {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The RFC 8760 token (`MD5`, `SHA-256`).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks that every `*.yaml`/`*.yml` file in `dir` is well-formed YAML, reporting syntax
/// errors with their position. (The flow language's own checks build on this.) A missing
/// directory is an error; an empty one is fine.
pub fn check_yaml_dir(dir: &Path) -> Vec<ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return vec![ConfigError::new(
                dir,
                1,
                1,
                format!("cannot read flows directory: {e}"),
            )]
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut errors = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                if let Err(e) = serde_saphyr::from_str::<serde::de::IgnoredAny>(&text) {
                    errors.push(error::from_yaml_error(&f, &e));
                }
            }
            Err(e) => errors.push(ConfigError::new(&f, 1, 1, format!("cannot read file: {e}"))),
        }
    }
    errors
}
