//! Registrar binding store (RFC 3261 §10.3).
//!
//! # Contract
//!
//! This module is *sans-IO*: it never reads the clock, never touches a socket and never draws
//! randomness. Every operation that depends on time takes `now: Instant` from the caller, and
//! all deadlines are computed by adding durations to passed-in instants.
//!
//! It does not depend on any SIP message type: the SIP layer parses a REGISTER into a
//! [`RegisterRequest`] (AoR, Call-ID, CSeq number, Contact header values, Expires header,
//! source address, transport) and turns the returned [`RegisterOutcome`] into a response:
//!
//! * [`RegisterOutcome::Ok`] → 200 with one Contact per returned [`Binding`] and
//!   `expires=` [`Binding::remaining_secs`];
//! * [`RegisterOutcome::IntervalTooBrief`] → 423 with `Min-Expires`;
//! * [`RegisterOutcome::BadRequest`] → 400;
//! * [`RegisterOutcome::OutOfOrder`] → 500 (RFC 3261 §10.3 step 6).
//!
//! A request is validated as a whole before anything changes: an outcome other than `Ok`
//! leaves the store untouched.
//!
//! Expired bindings stay stored (but are never returned by [`Registrar::lookup`] or in an
//! `Ok` outcome) until [`Registrar::expire`] removes and returns them, so the caller sees
//! every expiry (the ACD logs the agent out); [`Registrar::next_expiry`] says when to call it.
//! A binding refreshed after its deadline but before `expire` ran is simply refreshed.
//!
//! AoRs are compared exactly: the caller passes the canonical AoR (e.g. the extension).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Expiry limits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrarLimits {
    /// Smallest non-zero expiry accepted (smaller → 423). 0 accepts any.
    pub min_expires: u32,
    /// Larger expiries are lowered to this.
    pub max_expires: u32,
    /// Used when neither the contact nor the request gives an expiry.
    pub default_expires: u32,
}

impl Default for RegistrarLimits {
    fn default() -> Self {
        RegistrarLimits {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
        }
    }
}

/// One Contact header entry of a REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactParam {
    /// The contact URI (without angle brackets).
    pub uri: String,
    /// The `expires` contact parameter.
    pub expires: Option<u32>,
    /// The `q` contact parameter (must be within 0.0..=1.0).
    pub q: Option<f32>,
    /// Other raw contact parameters (`+sip.instance`, `reg-id`, ...), echoed in the 200.
    pub params: String,
}

/// The Contact header(s) of a REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactSpec {
    /// `Contact: *`.
    Star,
    /// A list of contacts (an empty list is treated as a query).
    List(Vec<ContactParam>),
}

/// A parsed REGISTER, as far as the binding store needs it.
#[derive(Debug, Clone)]
pub struct RegisterRequest<'a> {
    /// Address-of-record (canonical form chosen by the caller).
    pub aor: &'a str,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Contacts; `None` = no Contact header = query only.
    pub contacts: Option<ContactSpec>,
    /// The Expires header.
    pub expires_header: Option<u32>,
    /// Where the request came from.
    pub source: SocketAddr,
    /// Transport it came over (`"udp"`, `"tcp"`, `"tls"`, `"ws"`, ...).
    pub transport: &'a str,
}

/// A stored binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Address-of-record.
    pub aor: String,
    /// Contact URI as last registered.
    pub contact_uri: String,
    /// Raw extra contact parameters as last registered.
    pub params: String,
    /// `q` as last registered.
    pub q: Option<f32>,
    /// Deadline.
    pub expires_at: Instant,
    /// Call-ID of the registering request.
    pub call_id: String,
    /// CSeq of the registering request.
    pub cseq: u32,
    /// Source address of the registering request.
    pub source: SocketAddr,
    /// Transport of the registering request.
    pub transport: String,
}

impl Binding {
    /// Seconds left until the deadline, rounded up (0 when expired), for `expires=` in a 200.
    pub fn remaining_secs(&self, now: Instant) -> u32 {
        let d = self.expires_at.saturating_duration_since(now);
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// Whether the binding is expired at `now` (deadline reached).
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at <= now
    }
}

/// Result of [`Registrar::register`].
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterOutcome {
    /// Success: the AoR's unexpired bindings after the update, in [`Registrar::lookup`] order.
    Ok(Vec<Binding>),
    /// 423 Interval Too Brief, with the Min-Expires value.
    IntervalTooBrief {
        /// Value for the Min-Expires header.
        min_expires: u32,
    },
    /// 400 Bad Request, with a reason phrase.
    BadRequest(&'static str),
    /// Same Call-ID with a CSeq not higher than the binding's: 500, nothing changed.
    OutOfOrder,
}

/// A binding plus its store-internal id (fresh on every refresh: higher = more recent).
#[derive(Debug)]
struct Slot {
    id: u64,
    binding: Binding,
}

/// The binding store.
#[derive(Debug)]
pub struct Registrar {
    limits: RegistrarLimits,
    aors: HashMap<String, Vec<Slot>>,
    /// (deadline, slot id) → AoR, for `expire` and `next_expiry`.
    deadlines: BTreeMap<(Instant, u64), String>,
    next_id: u64,
}

/// Effective q for ordering: an absent q ranks as 1.0.
fn q_rank(q: Option<f32>) -> f32 {
    q.unwrap_or(1.0)
}

/// URI comparison key: scheme and host part (host, port, parameters, headers) case-insensitive,
/// user part exact, URI parameters order-insensitive.
fn uri_key(uri: &str) -> (String, String, String, Vec<String>, String) {
    let u = uri.trim();
    let u = u
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(u)
        .trim();
    let (scheme, rest) = match u.split_once(':') {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), u),
    };
    let (rest, headers) = match rest.split_once('?') {
        Some((r, h)) => (r, h.to_ascii_lowercase()),
        None => (rest, String::new()),
    };
    let (user, hostpart) = match rest.split_once('@') {
        Some((user, h)) => (user.to_string(), h),
        None => (String::new(), rest),
    };
    let mut parts = hostpart.split(';');
    let host = parts.next().unwrap_or("").to_ascii_lowercase();
    let mut params: Vec<String> = parts
        .filter(|p| !p.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    params.sort();
    (scheme, user, host, params, headers)
}

fn same_uri(a: &str, b: &str) -> bool {
    uri_key(a) == uri_key(b)
}

impl Registrar {
    /// A new, empty store. Inconsistent limits are normalised: `max_expires` is raised to
    /// `min_expires` if below it, and `default_expires` is clamped into
    /// `max(min_expires, 1)..=max_expires`.
    pub fn new(limits: RegistrarLimits) -> Self {
        let mut l = limits;
        l.max_expires = l.max_expires.max(l.min_expires).max(1);
        l.default_expires = l.default_expires.clamp(l.min_expires.max(1), l.max_expires);
        Registrar {
            limits: l,
            aors: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// The (normalised) limits in force.
    pub fn limits(&self) -> RegistrarLimits {
        self.limits
    }

    /// Applies a REGISTER at `now`. See the module docs for the mapping to responses.
    pub fn register(&mut self, now: Instant, req: &RegisterRequest) -> RegisterOutcome {
        if req.aor.is_empty() {
            return RegisterOutcome::BadRequest("empty address-of-record");
        }
        let list: &[ContactParam] = match &req.contacts {
            None => return RegisterOutcome::Ok(self.current(now, req.aor)),
            Some(ContactSpec::Star) => return self.remove_all(now, req),
            Some(ContactSpec::List(list)) => list,
        };
        if list.is_empty() {
            return RegisterOutcome::Ok(self.current(now, req.aor));
        }
        if list.len() == 1 && list[0].uri.trim() == "*" {
            if list[0].expires.is_some_and(|e| e != 0) {
                return RegisterOutcome::BadRequest("\"*\" contact requires Expires: 0");
            }
            return self.remove_all(now, req);
        }

        // Validate everything first; nothing changes unless the whole request is acceptable.
        for c in list {
            if c.uri.trim() == "*" {
                return RegisterOutcome::BadRequest("\"*\" mixed with other contacts");
            }
            if c.uri.trim().is_empty() {
                return RegisterOutcome::BadRequest("empty contact URI");
            }
            if c.q.is_some_and(|q| !(0.0..=1.0).contains(&q)) {
                return RegisterOutcome::BadRequest("invalid q value");
            }
        }
        let min = self.limits.min_expires;
        let secs: Vec<u32> = list
            .iter()
            .map(|c| {
                c.expires
                    .or(req.expires_header)
                    .unwrap_or(self.limits.default_expires)
            })
            .collect();
        if secs.iter().any(|&s| s > 0 && s < min) {
            return RegisterOutcome::IntervalTooBrief { min_expires: min };
        }
        if let Some(existing) = self.aors.get(req.aor) {
            let out_of_order = list.iter().any(|c| {
                existing.iter().any(|s| {
                    same_uri(&s.binding.contact_uri, &c.uri)
                        && s.binding.call_id == req.call_id
                        && req.cseq <= s.binding.cseq
                })
            });
            if out_of_order {
                return RegisterOutcome::OutOfOrder;
            }
        }

        // Apply.
        for (c, &s) in list.iter().zip(&secs) {
            if s == 0 {
                self.remove_contact(req.aor, &c.uri);
            } else {
                let ttl = Duration::from_secs(u64::from(s.min(self.limits.max_expires)));
                let expires_at = now.checked_add(ttl).unwrap_or(now);
                self.upsert(req, c, expires_at);
            }
        }
        RegisterOutcome::Ok(self.current(now, req.aor))
    }

    /// `Contact: *` with `Expires: 0`: removes every binding of the AoR.
    fn remove_all(&mut self, now: Instant, req: &RegisterRequest) -> RegisterOutcome {
        if req.expires_header != Some(0) {
            return RegisterOutcome::BadRequest("\"*\" contact requires Expires: 0");
        }
        if let Some(existing) = self.aors.get(req.aor) {
            if existing
                .iter()
                .any(|s| s.binding.call_id == req.call_id && req.cseq <= s.binding.cseq)
            {
                return RegisterOutcome::OutOfOrder;
            }
        }
        if let Some(slots) = self.aors.remove(req.aor) {
            for s in slots {
                self.deadlines.remove(&(s.binding.expires_at, s.id));
            }
        }
        RegisterOutcome::Ok(self.current(now, req.aor))
    }

    fn remove_contact(&mut self, aor: &str, uri: &str) {
        let Some(slots) = self.aors.get_mut(aor) else {
            return;
        };
        if let Some(pos) = slots
            .iter()
            .position(|s| same_uri(&s.binding.contact_uri, uri))
        {
            let s = slots.remove(pos);
            self.deadlines.remove(&(s.binding.expires_at, s.id));
        }
        if slots.is_empty() {
            self.aors.remove(aor);
        }
    }

    fn upsert(&mut self, req: &RegisterRequest, c: &ContactParam, expires_at: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let slots = self.aors.entry(req.aor.to_string()).or_default();
        let binding = Binding {
            aor: req.aor.to_string(),
            contact_uri: c.uri.trim().to_string(),
            params: c.params.clone(),
            q: c.q,
            expires_at,
            call_id: req.call_id.to_string(),
            cseq: req.cseq,
            source: req.source,
            transport: req.transport.to_string(),
        };
        match slots
            .iter_mut()
            .find(|s| same_uri(&s.binding.contact_uri, &c.uri))
        {
            Some(slot) => {
                self.deadlines.remove(&(slot.binding.expires_at, slot.id));
                slot.id = id;
                slot.binding = binding;
            }
            None => slots.push(Slot { id, binding }),
        }
        self.deadlines.insert((expires_at, id), req.aor.to_string());
    }

    fn current(&self, now: Instant, aor: &str) -> Vec<Binding> {
        self.lookup(now, aor).into_iter().cloned().collect()
    }

    /// Unexpired bindings of `aor`: highest q first (absent q ranks as 1.0), then most
    /// recently registered/refreshed first.
    pub fn lookup(&self, now: Instant, aor: &str) -> Vec<&Binding> {
        let Some(slots) = self.aors.get(aor) else {
            return Vec::new();
        };
        let mut live: Vec<&Slot> = slots
            .iter()
            .filter(|s| !s.binding.is_expired(now))
            .collect();
        live.sort_by(|a, b| {
            q_rank(b.binding.q)
                .total_cmp(&q_rank(a.binding.q))
                .then_with(|| b.id.cmp(&a.id))
        });
        live.into_iter().map(|s| &s.binding).collect()
    }

    /// Removes and returns every binding whose deadline is at or before `now`, earliest first.
    pub fn expire(&mut self, now: Instant) -> Vec<Binding> {
        let due: Vec<((Instant, u64), String)> = self
            .deadlines
            .range(..=(now, u64::MAX))
            .map(|(k, aor)| (*k, aor.clone()))
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for (key, aor) in due {
            self.deadlines.remove(&key);
            if let Some(slots) = self.aors.get_mut(&aor) {
                if let Some(pos) = slots.iter().position(|s| s.id == key.1) {
                    out.push(slots.remove(pos).binding);
                }
                if slots.is_empty() {
                    self.aors.remove(&aor);
                }
            }
        }
        out
    }

    /// The earliest deadline of any stored binding (possibly already past: call
    /// [`Registrar::expire`] then).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(t, _)| *t)
    }

    /// Puts back a binding as stored before a restart (an expired one is dropped). A
    /// binding for the same contact of the AoR is replaced.
    pub fn restore(&mut self, now: Instant, binding: Binding) {
        if binding.is_expired(now) {
            return;
        }
        self.remove_contact(&binding.aor, &binding.contact_uri);
        let id = self.next_id;
        self.next_id += 1;
        self.deadlines
            .insert((binding.expires_at, id), binding.aor.clone());
        self.aors
            .entry(binding.aor.clone())
            .or_default()
            .push(Slot { id, binding });
    }

    /// Number of stored bindings, including expired ones not yet removed by `expire`.
    pub fn binding_count(&self) -> usize {
        self.deadlines.len()
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let mut total = 0;
        for (aor, slots) in &self.aors {
            assert!(!slots.is_empty(), "empty AoR entry kept");
            for (i, s) in slots.iter().enumerate() {
                total += 1;
                assert_eq!(&s.binding.aor, aor);
                assert_eq!(
                    self.deadlines.get(&(s.binding.expires_at, s.id)),
                    Some(aor),
                    "deadline index out of sync"
                );
                for t in &slots[i + 1..] {
                    assert!(
                        !same_uri(&s.binding.contact_uri, &t.binding.contact_uri),
                        "duplicate contact"
                    );
                }
            }
        }
        assert_eq!(total, self.deadlines.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: RegistrarLimits = RegistrarLimits {
        min_expires: 60,
        max_expires: 3600,
        default_expires: 1800,
    };

    fn src() -> SocketAddr {
        "192.0.2.10:5060".parse().unwrap()
    }

    fn contact(uri: &str, expires: Option<u32>) -> ContactParam {
        ContactParam {
            uri: uri.to_string(),
            expires,
            q: None,
            params: String::new(),
        }
    }

    fn req<'a>(
        aor: &'a str,
        call_id: &'a str,
        cseq: u32,
        contacts: Option<ContactSpec>,
        expires_header: Option<u32>,
    ) -> RegisterRequest<'a> {
        RegisterRequest {
            aor,
            call_id,
            cseq,
            contacts,
            expires_header,
            source: src(),
            transport: "udp",
        }
    }

    fn list(cs: Vec<ContactParam>) -> Option<ContactSpec> {
        Some(ContactSpec::List(cs))
    }

    fn ok(o: RegisterOutcome) -> Vec<Binding> {
        match o {
            RegisterOutcome::Ok(b) => b,
            other => panic!("expected Ok, got {other:?}"),
        }
    }

    #[test]
    fn expires_precedence_and_clamping() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        // Default.
        let b = ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                1,
                list(vec![contact("sip:1001@10.0.0.1", None)]),
                None,
            ),
        ));
        assert_eq!(b[0].remaining_secs(t0), 1800);
        // Header overrides default.
        let b = ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                2,
                list(vec![contact("sip:1001@10.0.0.1", None)]),
                Some(120),
            ),
        ));
        assert_eq!(b[0].remaining_secs(t0), 120);
        // Contact param overrides header.
        let b = ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                3,
                list(vec![contact("sip:1001@10.0.0.1", Some(300))]),
                Some(120),
            ),
        ));
        assert_eq!(b[0].remaining_secs(t0), 300);
        // Too long is lowered to max.
        let b = ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                4,
                list(vec![contact("sip:1001@10.0.0.1", Some(99_999))]),
                None,
            ),
        ));
        assert_eq!(b[0].remaining_secs(t0), 3600);
        assert_eq!(b[0].expires_at, t0 + Duration::from_secs(3600));
        assert_eq!(r.binding_count(), 1);
        r.check_invariants();
    }

    #[test]
    fn interval_too_brief_changes_nothing() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                1,
                list(vec![contact("sip:a@h", Some(600))]),
                None,
            ),
        ));
        let o = r.register(
            t0,
            &req(
                "1001",
                "c1",
                2,
                list(vec![
                    contact("sip:a@h", Some(0)),
                    contact("sip:b@h", Some(30)),
                ]),
                None,
            ),
        );
        assert_eq!(o, RegisterOutcome::IntervalTooBrief { min_expires: 60 });
        // Header too brief too.
        let o = r.register(
            t0,
            &req(
                "1001",
                "c1",
                3,
                list(vec![contact("sip:b@h", None)]),
                Some(59),
            ),
        );
        assert_eq!(o, RegisterOutcome::IntervalTooBrief { min_expires: 60 });
        let b = r.lookup(t0, "1001");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact_uri, "sip:a@h");
        assert_eq!(b[0].cseq, 1);
        // Exactly min is fine.
        ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                4,
                list(vec![contact("sip:b@h", Some(60))]),
                None,
            ),
        ));
        assert_eq!(r.binding_count(), 2);
        r.check_invariants();
    }

    #[test]
    fn expires_zero_removes_that_contact() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                1,
                list(vec![contact("sip:a@h", None), contact("sip:b@h", None)]),
                None,
            ),
        ));
        assert_eq!(r.binding_count(), 2);
        let b = ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                2,
                list(vec![contact("sip:a@h", Some(0))]),
                Some(600),
            ),
        ));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact_uri, "sip:b@h");
        // Via the Expires header, and removing an unknown contact is harmless.
        let b = ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                3,
                list(vec![contact("sip:b@h", None), contact("sip:zzz@h", None)]),
                Some(0),
            ),
        ));
        assert!(b.is_empty());
        assert_eq!(r.binding_count(), 0);
        assert_eq!(r.next_expiry(), None);
        r.check_invariants();
    }

    #[test]
    fn star_rules() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                1,
                list(vec![contact("sip:a@h", None), contact("sip:b@h", None)]),
                None,
            ),
        ));
        ok(r.register(
            t0,
            &req("1002", "c9", 1, list(vec![contact("sip:x@h", None)]), None),
        ));
        for e in [None, Some(60)] {
            assert!(matches!(
                r.register(t0, &req("1001", "c2", 1, Some(ContactSpec::Star), e)),
                RegisterOutcome::BadRequest(_)
            ));
        }
        assert!(matches!(
            r.register(
                t0,
                &req(
                    "1001",
                    "c2",
                    1,
                    list(vec![contact("*", None), contact("sip:c@h", None)]),
                    Some(0)
                )
            ),
            RegisterOutcome::BadRequest(_)
        ));
        assert_eq!(r.binding_count(), 3);
        // Out of order "*" (same Call-ID, same CSeq) is refused.
        assert_eq!(
            r.register(t0, &req("1001", "c1", 1, Some(ContactSpec::Star), Some(0))),
            RegisterOutcome::OutOfOrder
        );
        assert_eq!(r.binding_count(), 3);
        let b = ok(r.register(t0, &req("1001", "c2", 1, Some(ContactSpec::Star), Some(0))));
        assert!(b.is_empty());
        assert!(r.lookup(t0, "1001").is_empty());
        assert_eq!(r.lookup(t0, "1002").len(), 1);
        // A lone "*" given as a list item behaves like Star.
        let b = ok(r.register(
            t0,
            &req("1002", "c9", 2, list(vec![contact("*", None)]), Some(0)),
        ));
        assert!(b.is_empty());
        assert_eq!(r.binding_count(), 0);
        r.check_invariants();
    }

    #[test]
    fn same_contact_is_updated() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                1,
                list(vec![contact(
                    "sip:Alice@Example.COM:5060;transport=TCP",
                    None,
                )]),
                None,
            ),
        ));
        // Scheme/host/params case differ, params reordered: same binding.
        let mut c = contact("SIP:Alice@example.com:5060;Transport=tcp", Some(900));
        c.params = "+sip.instance=\"<urn:uuid:1>\";reg-id=1".into();
        c.q = Some(0.5);
        let t1 = t0 + Duration::from_secs(10);
        let b = ok(r.register(t1, &req("1001", "other-call", 1, list(vec![c]), None)));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].call_id, "other-call");
        assert_eq!(b[0].params, "+sip.instance=\"<urn:uuid:1>\";reg-id=1");
        assert_eq!(b[0].q, Some(0.5));
        assert_eq!(b[0].remaining_secs(t1), 900);
        // User part differs in case: a different binding.
        let b = ok(r.register(
            t1,
            &req(
                "1001",
                "c3",
                1,
                list(vec![contact(
                    "sip:alice@example.com:5060;transport=tcp",
                    None,
                )]),
                None,
            ),
        ));
        assert_eq!(b.len(), 2);
        assert_eq!(r.binding_count(), 2);
        r.check_invariants();
    }

    #[test]
    fn out_of_order_cseq() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                5,
                list(vec![contact("sip:a@h", Some(600))]),
                None,
            ),
        ));
        for cseq in [5, 4] {
            assert_eq!(
                r.register(
                    t0,
                    &req(
                        "1001",
                        "c1",
                        cseq,
                        list(vec![contact("sip:b@h", None), contact("sip:a@h", Some(0))]),
                        None
                    )
                ),
                RegisterOutcome::OutOfOrder
            );
        }
        // Nothing changed (b was not added, a not removed).
        let b = r.lookup(t0, "1001");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].cseq, 5);
        // Different Call-ID with lower CSeq is fine; higher CSeq with same Call-ID too.
        ok(r.register(
            t0,
            &req("1001", "c2", 1, list(vec![contact("sip:b@h", None)]), None),
        ));
        let b = ok(r.register(
            t0,
            &req(
                "1001",
                "c1",
                6,
                list(vec![contact("sip:a@h", Some(0))]),
                None,
            ),
        ));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact_uri, "sip:b@h");
        r.check_invariants();
    }

    #[test]
    fn bad_requests_change_nothing() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        let mut bad_q = contact("sip:b@h", None);
        bad_q.q = Some(1.5);
        for cs in [
            vec![contact("sip:a@h", None), bad_q],
            vec![contact("sip:a@h", None), contact("  ", None)],
        ] {
            assert!(matches!(
                r.register(t0, &req("1001", "c", 1, list(cs), None)),
                RegisterOutcome::BadRequest(_)
            ));
        }
        assert!(matches!(
            r.register(
                t0,
                &req("", "c", 1, list(vec![contact("sip:a@h", None)]), None)
            ),
            RegisterOutcome::BadRequest(_)
        ));
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn query_and_ordering() {
        let t0 = Instant::now();
        let mut r = Registrar::new(LIMITS);
        let mut low = contact("sip:low@h", None);
        low.q = Some(0.1);
        let mut high = contact("sip:high@h", None);
        high.q = Some(0.9);
        ok(r.register(
            t0,
            &req(
                "1001",
                "c",
                1,
                list(vec![low, contact("sip:old@h", None), high]),
                None,
            ),
        ));
        ok(r.register(
            t0 + Duration::from_secs(1),
            &req("1001", "d", 1, list(vec![contact("sip:new@h", None)]), None),
        ));
        let order: Vec<_> = r
            .lookup(t0, "1001")
            .iter()
            .map(|b| b.contact_uri.clone())
            .collect();
        assert_eq!(order, ["sip:new@h", "sip:old@h", "sip:high@h", "sip:low@h"]);
        // A query returns the same without changing anything.
        let q = ok(r.register(t0, &req("1001", "e", 1, None, Some(0))));
        assert_eq!(
            q.iter().map(|b| b.contact_uri.as_str()).collect::<Vec<_>>(),
            order
        );
        let q = ok(r.register(t0, &req("1001", "e", 1, list(vec![]), None)));
        assert_eq!(q.len(), 4);
        assert!(r.lookup(t0, "nobody").is_empty());
        assert_eq!(r.binding_count(), 4);
    }

    #[test]
    fn expiry_and_next_expiry() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut r = Registrar::new(LIMITS);
        assert_eq!(r.next_expiry(), None);
        ok(r.register(
            t0,
            &req(
                "1001",
                "c",
                1,
                list(vec![
                    contact("sip:a@h", Some(60)),
                    contact("sip:b@h", Some(120)),
                ]),
                None,
            ),
        ));
        ok(r.register(
            t0,
            &req(
                "1002",
                "c2",
                1,
                list(vec![contact("sip:x@h", Some(90))]),
                None,
            ),
        ));
        assert_eq!(r.next_expiry(), Some(t0 + s(60)));
        assert!(r.expire(t0 + s(59)).is_empty());
        // At the deadline: not returned by lookup, still stored until expire().
        assert_eq!(r.lookup(t0 + s(60), "1001").len(), 1);
        assert_eq!(r.binding_count(), 3);
        let gone = r.expire(t0 + s(100));
        assert_eq!(
            gone.iter()
                .map(|b| b.contact_uri.as_str())
                .collect::<Vec<_>>(),
            ["sip:a@h", "sip:x@h"]
        );
        assert_eq!(r.binding_count(), 1);
        assert_eq!(r.next_expiry(), Some(t0 + s(120)));
        // Refreshing moves the deadline.
        ok(r.register(
            t0 + s(110),
            &req(
                "1001",
                "c",
                2,
                list(vec![contact("sip:b@h", Some(600))]),
                None,
            ),
        ));
        assert_eq!(r.next_expiry(), Some(t0 + s(710)));
        assert!(r.expire(t0 + s(700)).is_empty());
        assert_eq!(r.expire(t0 + s(710)).len(), 1);
        assert_eq!(r.binding_count(), 0);
        assert_eq!(r.next_expiry(), None);
        r.check_invariants();
    }

    #[test]
    fn limits_are_normalised() {
        let r = Registrar::new(RegistrarLimits {
            min_expires: 100,
            max_expires: 10,
            default_expires: 0,
        });
        let l = r.limits();
        assert_eq!(
            (l.min_expires, l.max_expires, l.default_expires),
            (100, 100, 100)
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Register {
            aor: u8,
            call: u8,
            cseq: u32,
            star: bool,
            contacts: Vec<(u8, Option<u32>)>,
            header: Option<u32>,
        },
        Query(u8),
        Advance(u64),
        Expire,
    }

    fn op() -> impl Strategy<Value = Op> {
        let exp = proptest::option::of(prop_oneof![Just(0u32), 1u32..200, 200u32..5000]);
        prop_oneof![
            4 => (
                0u8..3,
                0u8..3,
                0u32..6,
                proptest::bool::weighted(0.1),
                proptest::collection::vec((0u8..4, exp.clone()), 0..4),
                exp,
            )
                .prop_map(|(aor, call, cseq, star, contacts, header)| Op::Register {
                    aor,
                    call,
                    cseq,
                    star,
                    contacts,
                    header
                }),
            1 => (0u8..3).prop_map(Op::Query),
            2 => (0u64..400).prop_map(Op::Advance),
            1 => Just(Op::Expire),
        ]
    }

    proptest! {
        #[test]
        fn random_sequences_stay_consistent(ops in proptest::collection::vec(op(), 1..60)) {
            let limits = RegistrarLimits { min_expires: 30, max_expires: 600, default_expires: 120 };
            let t0 = Instant::now();
            let mut now = t0;
            let mut r = Registrar::new(limits);
            let aors = ["1001", "1002", "1003"];
            for op in ops {
                let before = r.binding_count();
                match op {
                    Op::Register { aor, call, cseq, star, contacts, header } => {
                        let call_id = format!("call-{call}");
                        let spec = if star {
                            ContactSpec::Star
                        } else {
                            ContactSpec::List(
                                contacts
                                    .iter()
                                    .map(|(c, e)| contact(&format!("sip:u{c}@HOST{c}"), *e))
                                    .collect(),
                            )
                        };
                        let rq = req(aors[aor as usize], &call_id, cseq, Some(spec), header);
                        match r.register(now, &rq) {
                            RegisterOutcome::Ok(bs) => {
                                prop_assert!(bs.iter().all(|b| b.expires_at > now));
                                prop_assert!(bs.iter().all(|b| b.remaining_secs(now) <= 600));
                                prop_assert_eq!(bs.len(), r.lookup(now, rq.aor).len());
                            }
                            _ => prop_assert_eq!(r.binding_count(), before),
                        }
                    }
                    Op::Query(a) => {
                        let got = r.register(now, &req(aors[a as usize], "q", 0, None, None));
                        prop_assert_eq!(r.binding_count(), before);
                        prop_assert!(matches!(got, RegisterOutcome::Ok(_)));
                    }
                    Op::Advance(secs) => now += Duration::from_secs(secs),
                    Op::Expire => {
                        let gone = r.expire(now);
                        prop_assert!(gone.iter().all(|b| b.expires_at <= now));
                        prop_assert_eq!(r.binding_count(), before - gone.len());
                        prop_assert!(r.next_expiry().is_none_or(|t| t > now));
                        let live: usize = aors.iter().map(|a| r.lookup(now, a).len()).sum();
                        prop_assert_eq!(live, r.binding_count());
                    }
                }
                r.check_invariants();
                let mut total = 0;
                for a in aors {
                    let bs = r.lookup(now, a);
                    prop_assert!(bs.iter().all(|b| b.expires_at > now && b.aor == a));
                    total += bs.len();
                }
                prop_assert!(total <= r.binding_count());
                let earliest = aors
                    .iter()
                    .flat_map(|a| r.aors.get(*a).into_iter().flatten())
                    .map(|s| s.binding.expires_at)
                    .min();
                prop_assert_eq!(r.next_expiry(), earliest);
            }
        }
    }
}
