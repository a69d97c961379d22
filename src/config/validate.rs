//! Raw profile -> typed [`Profile`], collecting every semantic error.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Location;

use super::error::{position, sanitize, unknown_word, ConfigError};
use super::raw::{
    Node, RawCredentials, RawInbound, RawLimits, RawListener, RawMedia, RawOutbound, RawProfile,
    RawRegistrar, RawRoute, RawTimers, RawTrunk, RawUser, SpannedList, S,
};
use super::{
    parse_duration, Codec, Credentials, DigestAlgorithm, IpNet, Limits, Listener, MediaIo,
    MediaSettings, NumberMatch, Profile, RegistrarSettings, Route, RouteSource, RouteTarget,
    Secret, Timers, TransportKind, Trunk, TrunkInbound, TrunkOutbound, User,
};

/// RFC 4028: Min-SE must not be below 90 seconds.
const RFC4028_MIN_SE: Duration = Duration::from_secs(90);
const MIN_MESSAGE_SIZE: u64 = 1024;
const MAX_MESSAGE_SIZE: u64 = 16 * 1024 * 1024;

const TRANSPORTS: &[(&str, TransportKind)] = &[
    ("udp", TransportKind::Udp),
    ("tcp", TransportKind::Tcp),
    ("tls", TransportKind::Tls),
];
const ALGORITHMS: &[(&str, DigestAlgorithm)] = &[
    ("sha-256", DigestAlgorithm::Sha256),
    ("md5", DigestAlgorithm::Md5),
    ("sha256", DigestAlgorithm::Sha256),
];
const SOURCES: &[&str] = &["any", "local-users", "trunks"];
const TARGET_WORDS: &[&str] = &["user", "echo"];
const TARGET_KEYS: &[&str] = &["user", "trunk", "flow", "queue", "reject"];

struct Ctx {
    file: PathBuf,
    errors: Vec<ConfigError>,
}

impl Ctx {
    fn err(&mut self, at: Location, message: impl Into<String>) {
        self.errors.push(ConfigError::at(&self.file, at, message));
    }
}

fn at<T>(s: &S<T>) -> Location {
    s.referenced
}

/// "line L, column C" for cross-references in messages.
fn place(l: Location) -> String {
    let (line, col) = position(l);
    format!("line {line}, column {col}")
}

pub(super) fn build(path: &Path, doc: S<RawProfile>) -> Result<Profile, Vec<ConfigError>> {
    let mut cx = Ctx {
        file: path.to_path_buf(),
        errors: Vec::new(),
    };
    let root = at(&doc);
    let raw = doc.value;
    let base_dir = path.parent().unwrap_or(Path::new(""));

    let realm = realm(&mut cx, root, raw.realm);
    let listeners = listeners(&mut cx, root, base_dir, raw.listeners);
    let registrar = registrar(&mut cx, raw.registrar);
    let (users, user_names) = users(&mut cx, raw.users, registrar.as_ref());
    let (trunks, trunk_names) = trunks(&mut cx, raw.trunks);
    let routes = routes(&mut cx, raw.routes, &user_names, &trunk_names);
    let timers = timers(&mut cx, raw.timers);
    let limits = limits(&mut cx, raw.limits);
    let media = media(&mut cx, raw.media);

    if !cx.errors.is_empty() {
        let mut errors = cx.errors;
        errors.sort_by_key(|e| (e.line, e.col));
        return Err(errors);
    }
    match (realm, registrar) {
        (Some(realm), Some(registrar)) => Ok(Profile {
            path: path.to_path_buf(),
            listeners,
            realm,
            users,
            trunks,
            routes,
            timers,
            limits,
            registrar,
            media,
        }),
        // Unreachable in practice: a None always comes with an error.
        _ => Err(vec![ConfigError::new(path, 1, 1, "invalid profile")]),
    }
}

// ---------------------------------------------------------------- helpers

/// Items of an optional list (absent or null = empty).
fn items<T>(list: SpannedList<T>) -> Vec<S<T>> {
    list.map(|l| l.value).unwrap_or_default()
}

fn required<T>(cx: &mut Ctx, value: Option<S<T>>, owner: Location, field: &str) -> Option<S<T>> {
    if value.is_none() {
        cx.err(owner, format!("missing field `{field}`"));
    }
    value
}

/// Look a keyword up case-insensitively, reporting unknown ones with a suggestion.
fn keyword<T: Copy>(cx: &mut Ctx, s: &S<String>, what: &str, table: &[(&str, T)]) -> Option<T> {
    let word = s.value.trim();
    if let Some((_, v)) = table.iter().find(|(k, _)| k.eq_ignore_ascii_case(word)) {
        return Some(*v);
    }
    let names: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
    cx.err(at(s), unknown_word(what, word, &names));
    None
}

/// A non-empty string without whitespace or control characters.
fn token(cx: &mut Ctx, s: &S<String>, what: &str) -> Option<String> {
    let v = s.value.trim();
    if v.is_empty() {
        cx.err(at(s), format!("{what} must not be empty"));
        None
    } else if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        cx.err(
            at(s),
            format!("{what} `{}` must not contain spaces", sanitize(v)),
        );
        None
    } else {
        Some(v.to_owned())
    }
}

/// Free text (display names, reject reasons): non-empty, no control characters.
fn text(cx: &mut Ctx, s: &S<String>, what: &str) -> Option<String> {
    let v = s.value.trim();
    if v.is_empty() {
        cx.err(at(s), format!("{what} must not be empty (omit it instead)"));
        None
    } else if v.chars().any(char::is_control) {
        cx.err(at(s), format!("{what} must not contain control characters"));
        None
    } else {
        Some(v.to_owned())
    }
}

/// A DNS name or IP literal (IPv6 optionally in brackets).
fn check_host(host: &str) -> Result<(), String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        return Err(format!(
            "`{}` is not a valid host name or IP address",
            sanitize(host)
        ));
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{}` is not a valid host name or IP address",
            sanitize(host)
        ));
    }
    Ok(())
}

/// `host` or `host:port` (IPv6 as `[addr]:port`).
fn check_host_port(value: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (format!("[{h}]"), None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (format!("[{h}]"), Some(p)),
                None => return Err(format!("`{}` is not a valid host[:port]", sanitize(value))),
            },
            None => return Err(format!("`{}` is not a valid host[:port]", sanitize(value))),
        }
    } else if value.parse::<IpAddr>().is_ok() {
        (value.to_owned(), None)
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (value.to_owned(), None),
        }
    };
    check_host(&host)?;
    if let Some(p) = port {
        if !matches!(p.parse::<u16>(), Ok(n) if n != 0) {
            return Err(format!(
                "invalid port `{}` in `{}`",
                sanitize(p),
                sanitize(value)
            ));
        }
    }
    Ok(())
}

/// Remember the first location of each key; report later duplicates.
struct Seen<K>(HashMap<K, Location>);

impl<K: std::hash::Hash + Eq> Seen<K> {
    fn new() -> Self {
        Seen(HashMap::new())
    }

    /// The location of the first occurrence if `key` was seen before.
    fn check(&mut self, key: K, here: Location) -> Option<Location> {
        match self.0.get(&key) {
            Some(first) => Some(*first),
            None => {
                self.0.insert(key, here);
                None
            }
        }
    }
}

// ---------------------------------------------------------------- realm & listeners

fn realm(cx: &mut Ctx, root: Location, raw: Option<S<String>>) -> Option<String> {
    let s = required(cx, raw, root, "realm")?;
    let v = s.value.trim();
    if v.is_empty() {
        cx.err(at(&s), "realm must not be empty");
        return None;
    }
    if let Err(e) = check_host(v) {
        cx.err(
            at(&s),
            format!("realm must be our SIP domain (a host name): {e}"),
        );
        return None;
    }
    Some(v.to_owned())
}

fn listeners(
    cx: &mut Ctx,
    root: Location,
    base_dir: &Path,
    raw: SpannedList<RawListener>,
) -> Vec<Listener> {
    let list_at = raw.as_ref().map_or(root, at);
    let raw = items(raw);
    if raw.is_empty() {
        cx.err(list_at, "at least one listener is required");
    }
    let mut seen = Seen::new();
    let mut out = Vec::new();
    for item in raw {
        let item_at = at(&item);
        let address_at = item.value.address.as_ref().map_or(item_at, at);
        if let Some(l) = listener(cx, base_dir, item_at, item.value) {
            // Port 0 asks the OS for a fresh port, so those never collide.
            if l.addr.port() != 0 {
                if let Some(first) = seen.check((l.transport, l.addr), address_at) {
                    cx.err(
                        address_at,
                        format!(
                            "duplicate listener {} {} (first defined at {})",
                            l.transport,
                            l.addr,
                            place(first)
                        ),
                    );
                }
            }
            out.push(l);
        }
    }
    out
}

fn listener(cx: &mut Ctx, base_dir: &Path, item_at: Location, l: RawListener) -> Option<Listener> {
    let transport = required(cx, l.transport, item_at, "transport")
        .and_then(|t| keyword(cx, &t, "transport", TRANSPORTS));
    let addr = required(cx, l.address, item_at, "address").and_then(|a| {
        let v = a.value.trim();
        if let Ok(sa) = v.parse::<SocketAddr>() {
            Some(sa)
        } else if let Ok(ip) = v.parse::<IpAddr>() {
            let port = transport.map_or(5060, TransportKind::default_port);
            Some(SocketAddr::new(ip, port))
        } else {
            cx.err(
                at(&a),
                format!(
                    "invalid listen address `{}`; expected IP:PORT such as `127.0.0.1:5060` or `[::1]:5060`",
                    sanitize(v)
                ),
            );
            None
        }
    });
    let advertised = l.advertised.and_then(|s| {
        let v = token(cx, &s, "advertised")?;
        match check_host_port(&v) {
            Ok(()) => Some(v),
            Err(e) => {
                cx.err(at(&s), format!("invalid advertised address: {e}"));
                None
            }
        }
    });
    let mut path = |s: &Option<S<String>>, what: &str| -> Option<PathBuf> {
        let s = s.as_ref()?;
        let v = token(cx, s, what)?;
        Some(base_dir.join(v))
    };
    let tls_cert = path(&l.cert, "cert");
    let tls_key = path(&l.key, "key");
    match transport {
        Some(TransportKind::Tls) => match (&l.cert, &l.key) {
            (Some(c), None) => cx.err(at(c), "TLS listener has `cert` but no `key`"),
            (None, Some(k)) => cx.err(at(k), "TLS listener has `key` but no `cert`"),
            _ => {}
        },
        Some(t) => {
            for s in [&l.cert, &l.key].into_iter().flatten() {
                cx.err(
                    at(s),
                    format!("`cert`/`key` are only valid on tls listeners, not {t}"),
                );
            }
        }
        None => {}
    }
    Some(Listener {
        transport: transport?,
        addr: addr?,
        advertised,
        tls_cert,
        tls_key,
    })
}

// ---------------------------------------------------------------- users

fn is_sip_user_char(c: char) -> bool {
    // RFC 3261 `user`: unreserved / user-unreserved (escapes not accepted here).
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c)
}

fn users(
    cx: &mut Ctx,
    raw: SpannedList<RawUser>,
    registrar: Option<&RegistrarSettings>,
) -> (Vec<User>, HashSet<String>) {
    let mut seen = Seen::new();
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for item in items(raw) {
        let item_at = at(&item);
        let u = item.value;
        let extension = required(cx, u.extension, item_at, "extension").and_then(|e| {
            let v = token(cx, &e, "extension")?;
            if let Some(bad) = v.chars().find(|c| !is_sip_user_char(*c)) {
                cx.err(
                    at(&e),
                    format!(
                        "extension `{}` contains `{}`, which is not allowed in a SIP user part",
                        sanitize(&v),
                        sanitize(&bad.to_string())
                    ),
                );
                return None;
            }
            if let Some(first) = seen.check(v.clone(), at(&e)) {
                cx.err(
                    at(&e),
                    format!(
                        "duplicate user extension `{v}` (first defined at {})",
                        place(first)
                    ),
                );
            }
            names.insert(v.clone());
            Some(v)
        });
        let secret = match (u.password, u.ha1) {
            (Some(_), Some(h)) => {
                cx.err(at(&h), "use either `password` or `ha1`, not both");
                None
            }
            (None, None) => {
                cx.err(item_at, "user has no credentials: set `password` or `ha1`");
                None
            }
            (Some(p), None) => {
                if p.value.is_empty() {
                    cx.err(at(&p), "password must not be empty");
                    None
                } else {
                    Some(Secret::Password(p.value))
                }
            }
            (None, Some(h)) => ha1(cx, h, registrar),
        };
        let display_name = u.name.and_then(|n| text(cx, &n, "name"));
        if let (Some(extension), Some(secret)) = (extension, secret) {
            out.push(User {
                extension,
                secret,
                display_name,
            });
        }
    }
    (out, names)
}

fn hex_digest(cx: &mut Ctx, s: Option<S<String>>, what: &str, len: usize) -> Option<String> {
    let s = s?;
    let v = s.value.trim();
    if v.len() != len || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        cx.err(
            at(&s),
            format!("ha1 {what} must be {len} hex digits, got `{}`", sanitize(v)),
        );
        return None;
    }
    Some(v.to_ascii_lowercase())
}

fn ha1(
    cx: &mut Ctx,
    h: S<super::raw::RawHa1>,
    registrar: Option<&RegistrarSettings>,
) -> Option<Secret> {
    let h_at = at(&h);
    let (md5_given, sha_given) = (h.value.md5.is_some(), h.value.sha256.is_some());
    if !md5_given && !sha_given {
        cx.err(h_at, "ha1 needs `md5` and/or `sha256`");
        return None;
    }
    let md5 = hex_digest(cx, h.value.md5, "md5", 32);
    let sha256 = hex_digest(cx, h.value.sha256, "sha256", 64);
    if md5_given != md5.is_some() || sha_given != sha256.is_some() {
        return None;
    }
    let secret = Secret::Ha1 { md5, sha256 };
    if let Some(reg) = registrar {
        if !reg.algorithms.iter().any(|a| secret.supports(*a)) {
            cx.err(
                h_at,
                "ha1 has no hash for any algorithm in `registrar.algorithms`; this user could never authenticate",
            );
        }
    }
    Some(secret)
}

// ---------------------------------------------------------------- trunks

fn trunks(cx: &mut Ctx, raw: SpannedList<RawTrunk>) -> (Vec<Trunk>, HashSet<String>) {
    let mut seen = Seen::new();
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for item in items(raw) {
        let item_at = at(&item);
        let t = item.value;
        let name = required(cx, t.name, item_at, "name").and_then(|n| {
            let v = token(cx, &n, "trunk name")?;
            if let Some(first) = seen.check(v.clone(), at(&n)) {
                cx.err(
                    at(&n),
                    format!(
                        "duplicate trunk name `{v}` (first defined at {})",
                        place(first)
                    ),
                );
            }
            names.insert(v.clone());
            Some(v)
        });
        if t.inbound.is_none() && t.outbound.is_none() {
            cx.err(
                item_at,
                "trunk has neither `inbound` nor `outbound`; it could never carry a call",
            );
        }
        let inbound = match t.inbound {
            Some(i) => inbound(cx, i),
            None => Some(TrunkInbound::default()),
        };
        let outbound = match t.outbound {
            Some(o) => outbound(cx, o).map(Some),
            None => Some(None),
        };
        let mut limit = |v: Option<S<u32>>, what: &str| -> Option<Option<u32>> {
            match v {
                Some(s) if s.value == 0 => {
                    cx.err(
                        at(&s),
                        format!("{what} must be at least 1 (omit it for no limit)"),
                    );
                    None
                }
                other => Some(other.map(|s| s.value)),
            }
        };
        let max_calls = limit(t.max_calls, "max_calls");
        let max_cps = limit(t.max_cps, "max_cps");
        if let (Some(name), Some(inbound), Some(outbound), Some(max_calls), Some(max_cps)) =
            (name, inbound, outbound, max_calls, max_cps)
        {
            out.push(Trunk {
                name,
                inbound,
                outbound,
                max_calls,
                max_cps,
            });
        }
    }
    (out, names)
}

fn credentials(cx: &mut Ctx, c: S<RawCredentials>) -> Option<Credentials> {
    let c_at = at(&c);
    let username =
        required(cx, c.value.username, c_at, "username").and_then(|u| token(cx, &u, "username"));
    let password = required(cx, c.value.password, c_at, "password").and_then(|p| {
        if p.value.is_empty() {
            cx.err(at(&p), "password must not be empty");
            None
        } else {
            Some(p.value)
        }
    });
    Some(Credentials {
        username: username?,
        password: password?,
    })
}

fn inbound(cx: &mut Ctx, i: S<RawInbound>) -> Option<TrunkInbound> {
    let i_at = at(&i);
    let raw = i.value;
    let empty = raw.allow.as_ref().is_none_or(|a| a.value.is_empty()) && raw.digest.is_none();
    if empty {
        cx.err(
            i_at,
            "inbound needs `allow` (source addresses) and/or `digest` credentials",
        );
    }
    let mut ok = !empty;
    let mut allow = Vec::new();
    for a in items(raw.allow) {
        match a.value.parse::<IpNet>() {
            Ok(net) => allow.push(net),
            Err(e) => {
                cx.err(at(&a), e.to_string());
                ok = false;
            }
        }
    }
    let digest = match raw.digest {
        Some(d) => {
            let c = credentials(cx, d);
            ok &= c.is_some();
            c
        }
        None => None,
    };
    ok.then_some(TrunkInbound { allow, digest })
}

fn outbound(cx: &mut Ctx, o: S<RawOutbound>) -> Option<TrunkOutbound> {
    let o_at = at(&o);
    let raw = o.value;
    let host = required(cx, raw.host, o_at, "host").and_then(|h| {
        let v = token(cx, &h, "host")?;
        let ipv6 = v.parse::<std::net::Ipv6Addr>().is_ok();
        if !ipv6 && !v.starts_with('[') && v.contains(':') {
            cx.err(
                at(&h),
                format!(
                    "host `{}` must not include a port; use `port:`",
                    sanitize(&v)
                ),
            );
            return None;
        }
        match check_host(&v) {
            Ok(()) => Some(v),
            Err(e) => {
                cx.err(at(&h), e);
                None
            }
        }
    });
    let transport = match &raw.transport {
        Some(t) => keyword(cx, t, "transport", TRANSPORTS),
        None => Some(TransportKind::Udp),
    };
    let port = match raw.port {
        Some(p) if p.value == 0 => {
            cx.err(at(&p), "port must not be 0");
            None
        }
        Some(p) => Some(p.value),
        None => Some(transport.map_or(5060, TransportKind::default_port)),
    };
    let auth_given = raw.auth.is_some();
    let auth = raw.auth.and_then(|a| credentials(cx, a));
    let register = raw.register.as_ref().is_some_and(|r| r.value);
    if let Some(r) = raw.register.as_ref().filter(|r| r.value) {
        if !auth_given {
            cx.err(at(r), "`register: true` needs `auth` credentials");
        }
    }
    let register_expires = match raw.register_expires {
        Some(e) if e.value == 0 => {
            cx.err(at(&e), "register_expires must be at least 1");
            None
        }
        Some(e) => Some(e.value),
        None => Some(600),
    };
    if auth_given && auth.is_none() {
        return None;
    }
    Some(TrunkOutbound {
        host: host?,
        port: port?,
        transport: transport?,
        auth,
        register,
        register_expires: register_expires?,
    })
}

// ---------------------------------------------------------------- routes

fn routes(
    cx: &mut Ctx,
    raw: SpannedList<RawRoute>,
    users: &HashSet<String>,
    trunks: &HashSet<String>,
) -> Vec<Route> {
    let mut out = Vec::new();
    for item in items(raw) {
        let item_at = at(&item);
        let r = item.value;
        let record = r.record;
        let matcher = route_matcher(cx, item_at, r.number, r.prefix, r.range, r.regex);
        let from = match r.from {
            Some(f) => route_source(cx, &f, trunks),
            None => Some(RouteSource::Any),
        };
        let target =
            required(cx, r.to, item_at, "to").and_then(|t| route_target(cx, &t, users, trunks));
        if let (Some(matcher), Some(from), Some(target)) = (matcher, from, target) {
            out.push(Route {
                matcher,
                from,
                target,
                record: record.is_some_and(|r| r.value),
            });
        }
    }
    out
}

fn route_matcher(
    cx: &mut Ctx,
    item_at: Location,
    number: Option<S<String>>,
    prefix: Option<S<String>>,
    range: Option<S<String>>,
    regex: Option<S<String>>,
) -> Option<NumberMatch> {
    let given: Vec<(&str, S<String>)> = [
        ("number", number),
        ("prefix", prefix),
        ("range", range),
        ("regex", regex),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let mut given = given.into_iter();
    let Some((kind, s)) = given.next() else {
        cx.err(
            item_at,
            "route needs one of `number`, `prefix`, `range` or `regex`",
        );
        return None;
    };
    let mut ok = true;
    for (other, o) in given {
        cx.err(
            at(&o),
            format!("route has both `{kind}` and `{other}`; use only one"),
        );
        ok = false;
    }
    let v = s.value.as_str();
    let result = match kind {
        "number" => token(cx, &s, "number").map(NumberMatch::Exact),
        "prefix" => {
            if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.err(
                    at(&s),
                    format!("prefix `{}` must not contain spaces", sanitize(v)),
                );
                None
            } else {
                Some(NumberMatch::Prefix(v.to_owned()))
            }
        }
        "range" => NumberMatch::parse_range(v)
            .map_err(|e| cx.err(at(&s), sanitize(&e)))
            .ok(),
        _ => NumberMatch::parse_regex(v)
            .map_err(|e| cx.err(at(&s), sanitize(&e)))
            .ok(),
    };
    result.filter(|_| ok)
}

/// A node that is either a bare word or a single-key mapping.
enum Choice<'a> {
    Word(&'a str),
    Keyed(&'a S<String>, &'a S<Node>),
}

fn choice<'a>(cx: &mut Ctx, node: &'a S<Node>, field: &str, example: &str) -> Option<Choice<'a>> {
    match &node.value {
        Node::Scalar(s) => Some(Choice::Word(s.trim())),
        Node::Map(entries) if entries.len() == 1 => {
            Some(Choice::Keyed(&entries[0].0, &entries[0].1))
        }
        Node::Map(entries) if entries.len() > 1 => {
            cx.err(
                at(&entries[1].0),
                format!("`{field}` must have exactly one key, e.g. `{field}: {example}`"),
            );
            None
        }
        _ => {
            cx.err(
                at(node),
                format!("`{field}` must be a word or a one-key mapping, e.g. `{field}: {example}`"),
            );
            None
        }
    }
}

/// A scalar name in a mapping value (`trunk: NAME`).
fn name_value(cx: &mut Ctx, key: &S<String>, value: &S<Node>) -> Option<String> {
    match &value.value {
        Node::Scalar(s) if !s.trim().is_empty() => {
            let s = s.trim();
            if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.err(
                    at(value),
                    format!("name `{}` must not contain spaces", sanitize(s)),
                );
                return None;
            }
            Some(s.to_owned())
        }
        Node::Scalar(_) | Node::Null => {
            cx.err(at(key), format!("`{}` needs a name", sanitize(&key.value)));
            None
        }
        _ => {
            cx.err(
                at(value),
                format!("`{}` takes a name", sanitize(&key.value)),
            );
            None
        }
    }
}

fn route_source(cx: &mut Ctx, node: &S<Node>, trunks: &HashSet<String>) -> Option<RouteSource> {
    match choice(cx, node, "from", "local-users")? {
        Choice::Word(w) => match w {
            "any" => Some(RouteSource::Any),
            "local-users" => Some(RouteSource::LocalUsers),
            "trunks" => Some(RouteSource::Trunks),
            "trunk" => {
                cx.err(at(node), "`trunk` needs a name: `from: { trunk: NAME }`");
                None
            }
            other => {
                cx.err(at(node), unknown_word("route source", other, SOURCES));
                None
            }
        },
        Choice::Keyed(k, v) if k.value == "trunk" => {
            let name = name_value(cx, k, v)?;
            if !trunks.contains(&name) {
                cx.err(at(v), unknown_word("trunk", &name, &sorted(trunks)));
                return None;
            }
            Some(RouteSource::Trunk(name))
        }
        Choice::Keyed(k, _) => {
            cx.err(at(k), unknown_word("route source", &k.value, &["trunk"]));
            None
        }
    }
}

fn sorted(names: &HashSet<String>) -> Vec<&str> {
    let mut v: Vec<&str> = names.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
}

fn route_target(
    cx: &mut Ctx,
    node: &S<Node>,
    users: &HashSet<String>,
    trunks: &HashSet<String>,
) -> Option<RouteTarget> {
    let (k, v) = match choice(cx, node, "to", "{ trunk: NAME }")? {
        Choice::Word(w) => {
            return match w {
                "user" => Some(RouteTarget::User(None)),
                "echo" => Some(RouteTarget::Echo),
                "trunk" | "flow" | "queue" | "reject" => {
                    let example = if w == "reject" { "404" } else { "NAME" };
                    cx.err(
                        at(node),
                        format!("`{w}` needs a value: `to: {{ {w}: {example} }}`"),
                    );
                    None
                }
                other => {
                    let mut all = TARGET_WORDS.to_vec();
                    all.extend(&TARGET_KEYS[1..]);
                    cx.err(at(node), unknown_word("route target", other, &all));
                    None
                }
            };
        }
        Choice::Keyed(k, v) => (k, v),
    };
    match k.value.as_str() {
        "user" => {
            if matches!(v.value, Node::Null) {
                return Some(RouteTarget::User(None));
            }
            let ext = name_value(cx, k, v)?;
            if !users.contains(&ext) {
                cx.err(at(v), format!("unknown user `{}`", sanitize(&ext)));
                return None;
            }
            Some(RouteTarget::User(Some(ext)))
        }
        "trunk" => {
            let name = name_value(cx, k, v)?;
            if !trunks.contains(&name) {
                cx.err(at(v), unknown_word("trunk", &name, &sorted(trunks)));
                return None;
            }
            Some(RouteTarget::Trunk(name))
        }
        "flow" => name_value(cx, k, v).map(RouteTarget::Flow),
        "queue" => name_value(cx, k, v).map(RouteTarget::Queue),
        "reject" => reject(cx, v),
        "echo" if matches!(v.value, Node::Null) => Some(RouteTarget::Echo),
        other => {
            cx.err(at(k), unknown_word("route target", other, TARGET_KEYS));
            None
        }
    }
}

fn reject_code(cx: &mut Ctx, node: &S<Node>) -> Option<u16> {
    let text = match &node.value {
        Node::Scalar(s) => s.trim(),
        _ => "",
    };
    match text.parse::<u16>() {
        Ok(code) if (400..=699).contains(&code) => Some(code),
        _ => {
            cx.err(
                at(node),
                format!(
                    "reject code must be a SIP status between 400 and 699, got `{}`",
                    sanitize(text)
                ),
            );
            None
        }
    }
}

fn reject(cx: &mut Ctx, v: &S<Node>) -> Option<RouteTarget> {
    match &v.value {
        Node::Map(entries) => {
            let mut code = None;
            let mut code_seen = false;
            let mut reason = None;
            let mut ok = true;
            for (k, val) in entries {
                match k.value.as_str() {
                    "code" => {
                        code_seen = true;
                        code = reject_code(cx, val);
                    }
                    "reason" => match &val.value {
                        Node::Scalar(s) => {
                            let s = S::new(s.clone(), at(val), val.defined);
                            reason = text(cx, &s, "reason");
                            ok &= reason.is_some();
                        }
                        _ => {
                            cx.err(at(val), "reason must be text");
                            ok = false;
                        }
                    },
                    other => {
                        cx.err(at(k), unknown_word("field", other, &["code", "reason"]));
                        ok = false;
                    }
                }
            }
            if !code_seen {
                cx.err(at(v), "missing field `code`");
            }
            let code = code?;
            ok.then_some(RouteTarget::Reject { code, reason })
        }
        _ => reject_code(cx, v).map(|code| RouteTarget::Reject { code, reason: None }),
    }
}

// ---------------------------------------------------------------- timers, limits, registrar

/// A duration field: (value, location to blame in cross-field checks).
fn duration(
    cx: &mut Ctx,
    raw: Option<S<String>>,
    default: Duration,
    fallback: Location,
    what: &str,
) -> (Option<Duration>, Location) {
    let Some(s) = raw else {
        return (Some(default), fallback);
    };
    match parse_duration(&s.value) {
        Ok(d) if d.is_zero() => {
            cx.err(at(&s), format!("{what} must be greater than zero"));
            (None, at(&s))
        }
        Ok(d) => (Some(d), at(&s)),
        Err(e) => {
            cx.err(at(&s), sanitize(&e));
            (None, at(&s))
        }
    }
}

fn timers(cx: &mut Ctx, raw: Option<S<RawTimers>>) -> Timers {
    let d = Timers::default();
    let Some(raw) = raw else {
        return d;
    };
    let sec = at(&raw);
    let r = raw.value;
    // Which fields were written, to blame the one the user set.
    let (t1_set, t2_set, se_set) = (r.t1.is_some(), r.t2.is_some(), r.session_expires.is_some());
    let (t1, t1_at) = duration(cx, r.t1, d.t1, sec, "t1");
    let (t2, t2_at) = duration(cx, r.t2, d.t2, sec, "t2");
    let (t4, _) = duration(cx, r.t4, d.t4, sec, "t4");
    let (se, se_at) = duration(
        cx,
        r.session_expires,
        d.session_expires,
        sec,
        "session_expires",
    );
    let (min_se, min_se_at) = duration(cx, r.min_se, d.min_se, sec, "min_se");
    let (ring, _) = duration(cx, r.ring_timeout, d.ring_timeout, sec, "ring_timeout");
    if let (Some(a), Some(b)) = (t1, t2) {
        if a > b {
            let blame = if t1_set || !t2_set { t1_at } else { t2_at };
            cx.err(
                blame,
                format!("t1 ({a:?}) must not be greater than t2 ({b:?})"),
            );
        }
    }
    if let Some(m) = min_se {
        if m < RFC4028_MIN_SE {
            cx.err(
                min_se_at,
                format!("min_se must be at least 90s (RFC 4028), got {m:?}"),
            );
        }
        if let Some(s) = se {
            if s < m {
                let blame = if se_set { se_at } else { min_se_at };
                cx.err(
                    blame,
                    format!("session_expires ({s:?}) must not be less than min_se ({m:?})"),
                );
            }
        }
    }
    Timers {
        t1: t1.unwrap_or(d.t1),
        t2: t2.unwrap_or(d.t2),
        t4: t4.unwrap_or(d.t4),
        session_expires: se.unwrap_or(d.session_expires),
        min_se: min_se.unwrap_or(d.min_se),
        ring_timeout: ring.unwrap_or(d.ring_timeout),
    }
}

fn limits(cx: &mut Ctx, raw: Option<S<RawLimits>>) -> Limits {
    let d = Limits::default();
    let Some(raw) = raw else {
        return d;
    };
    let sec = at(&raw);
    let r = raw.value;
    let mut max_message_size = d.max_message_size;
    if let Some(s) = r.max_message_size {
        if !(MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(&s.value) {
            cx.err(
                at(&s),
                format!(
                    "max_message_size must be between {MIN_MESSAGE_SIZE} and {MAX_MESSAGE_SIZE} bytes"
                ),
            );
        } else {
            max_message_size = usize::try_from(s.value).unwrap_or(d.max_message_size);
        }
    }
    let mut max_dialogs = d.max_dialogs;
    if let Some(s) = r.max_dialogs {
        match usize::try_from(s.value) {
            Ok(n) if n >= 1 => max_dialogs = n,
            _ => cx.err(at(&s), "max_dialogs must be at least 1"),
        }
    }
    let (idle, _) = duration(
        cx,
        r.tcp_idle_timeout,
        d.tcp_idle_timeout,
        sec,
        "tcp_idle_timeout",
    );
    Limits {
        max_message_size,
        max_dialogs,
        per_source_rate: r.per_source_rate.map_or(d.per_source_rate, |s| s.value),
        tcp_idle_timeout: idle.unwrap_or(d.tcp_idle_timeout),
    }
}

/// `None` when the algorithm list is unusable (the error is already reported);
/// other problems are reported but still yield settings, so user checks can run.
const MEDIA_IO: &[(&str, MediaIo)] = &[
    ("auto", MediaIo::Auto),
    ("io_uring", MediaIo::Uring),
    ("epoll", MediaIo::Epoll),
];

const CODECS: &[(&str, Codec)] = &[
    ("pcmu", Codec::Pcmu),
    ("pcma", Codec::Pcma),
    ("opus", Codec::Opus),
];

fn media(cx: &mut Ctx, raw: Option<S<RawMedia>>) -> MediaSettings {
    let d = MediaSettings::default();
    let Some(raw) = raw else {
        return d;
    };
    let sec = at(&raw);
    let r = raw.value;
    let ip = |cx: &mut Ctx, s: &Option<S<String>>, what: &str| -> Option<IpAddr> {
        let s = s.as_ref()?;
        match s.value.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                cx.err(
                    at(s),
                    format!("{what} must be an IP address, not {:?}", sanitize(&s.value)),
                );
                None
            }
        }
    };
    let address = ip(cx, &r.address, "media.address");
    let advertised = ip(cx, &r.advertised, "media.advertised");
    let (mut port_min, mut port_max) = (d.port_min, d.port_max);
    if let Some(ports) = &r.rtp_ports {
        let parsed = ports.value.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
        });
        match parsed {
            Some((a, b)) if a >= 1024 && a < b && b - a >= 3 => (port_min, port_max) = (a, b),
            Some(_) => cx.err(
                at(ports),
                "rtp_ports must be LOW-HIGH with 1024 <= LOW < HIGH and room for two calls",
            ),
            None => cx.err(
                at(ports),
                format!(
                    "rtp_ports must look like 20000-29999, not {:?}",
                    sanitize(&ports.value)
                ),
            ),
        }
    }
    let codecs = match r.codecs {
        None => d.codecs.clone(),
        Some(list) => {
            let list_at = at(&list);
            let mut out = Vec::new();
            for c in list.value {
                if let Some(codec) = keyword(cx, &c, "codec", CODECS) {
                    if out.contains(&codec) {
                        cx.err(at(&c), format!("codec {} listed twice", codec.as_str()));
                    }
                    out.push(codec);
                }
            }
            if out.is_empty() {
                cx.err(
                    list_at,
                    "codecs must list at least one of `pcmu`, `pcma`, `opus`",
                );
            }
            out
        }
    };
    let (ptime, ptime_at) = duration(cx, r.ptime, d.ptime, sec, "ptime");
    let ptime = ptime.unwrap_or(d.ptime);
    if ![10, 20, 30, 40, 60].contains(&ptime.as_millis()) {
        cx.err(
            ptime_at,
            "ptime must be one of 10ms, 20ms, 30ms, 40ms, 60ms",
        );
    }
    let (rtp_timeout, _) = duration(cx, r.rtp_timeout, d.rtp_timeout, sec, "rtp_timeout");
    MediaSettings {
        address,
        advertised,
        port_min,
        port_max,
        codecs,
        ptime,
        rtp_timeout: rtp_timeout.unwrap_or(d.rtp_timeout),
        io: r
            .io
            .and_then(|io| keyword(cx, &io, "media io", MEDIA_IO))
            .unwrap_or(d.io),
    }
}

fn registrar(cx: &mut Ctx, raw: Option<S<RawRegistrar>>) -> Option<RegistrarSettings> {
    let d = RegistrarSettings::default();
    let Some(raw) = raw else {
        return Some(d);
    };
    let sec = at(&raw);
    let r = raw.value;
    let value = |s: &Option<S<u32>>, default: u32| {
        (
            s.as_ref().map_or(default, |s| s.value),
            s.as_ref().map_or(sec, at),
        )
    };
    let (min, min_at) = value(&r.min_expires, d.min_expires);
    let (max, max_at) = value(&r.max_expires, d.max_expires);
    // An unset default follows the bounds the user did set.
    let (def, def_at) = value(
        &r.default_expires,
        d.default_expires.min(max).max(min.min(max)),
    );
    if min == 0 {
        cx.err(min_at, "min_expires must be at least 1");
    }
    if min > max {
        let blame = if r.min_expires.is_some() {
            min_at
        } else {
            max_at
        };
        cx.err(
            blame,
            format!("min_expires ({min}) must not be greater than max_expires ({max})"),
        );
    } else if !(min..=max).contains(&def) {
        cx.err(
            def_at,
            format!("default_expires ({def}) must be between min_expires ({min}) and max_expires ({max})"),
        );
    }
    let (nonce, _) = duration(
        cx,
        r.nonce_lifetime,
        d.nonce_lifetime,
        sec,
        "nonce_lifetime",
    );

    let algorithms = match r.algorithms {
        None => Some(d.algorithms.clone()),
        Some(list) => {
            let list_at = at(&list);
            let mut seen = Seen::new();
            let mut out = Vec::new();
            let mut ok = true;
            for a in list.value {
                let shown = [ALGORITHMS[0], ALGORITHMS[1]];
                match keyword_quiet(&a, ALGORITHMS)
                    .or_else(|| keyword(cx, &a, "digest algorithm", &shown))
                {
                    Some(alg) => {
                        if let Some(first) = seen.check(alg, at(&a)) {
                            cx.err(
                                at(&a),
                                format!(
                                    "duplicate algorithm {alg} (first listed at {})",
                                    place(first)
                                ),
                            );
                            ok = false;
                        }
                        out.push(alg);
                    }
                    None => ok = false,
                }
            }
            if out.is_empty() && ok {
                cx.err(
                    list_at,
                    "algorithms must list at least one of `sha-256`, `md5`",
                );
                ok = false;
            }
            ok.then_some(out)
        }
    };
    Some(RegistrarSettings {
        min_expires: min,
        max_expires: max,
        default_expires: def,
        nonce_lifetime: nonce.unwrap_or(d.nonce_lifetime),
        algorithms: algorithms?,
    })
}

fn keyword_quiet<T: Copy>(s: &S<String>, table: &[(&str, T)]) -> Option<T> {
    let word = s.value.trim();
    table
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|(_, v)| *v)
}
