//! Profile loading tests: the demo profile, every error class with its exact
//! position, error collection, route matching and hostile input.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const DEMO: &str = include_str!("../../sip-profiles/default.yaml");

/// A minimal valid profile; tests append sections to it (line 4 onwards).
const BASE: &str = "\
realm: example.org
listeners:
  - { transport: udp, address: 127.0.0.1:5060 }
";

fn parse(text: &str) -> Result<Profile, Vec<ConfigError>> {
    parse_profile(Path::new("p.yaml"), text)
}

fn ok(text: &str) -> Profile {
    match parse(text) {
        Ok(p) => p,
        Err(errors) => panic!("unexpected errors: {}", rendered(&errors).join("\n")),
    }
}

fn rendered(errors: &[ConfigError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

/// All errors, rendered as `file:line:col: message`.
fn errs(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => {
            assert!(!errors.is_empty());
            rendered(&errors)
        }
    }
}

/// The single error, rendered.
fn err(text: &str) -> String {
    let e = errs(text);
    assert_eq!(e.len(), 1, "expected exactly one error, got {e:#?}");
    e.into_iter().next().unwrap_or_default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn route_for<'a>(p: &'a Profile, number: &str) -> Option<&'a RouteTarget> {
    p.routes
        .iter()
        .find(|r| r.matcher.matches(number))
        .map(|r| &r.target)
}

// ------------------------------------------------------------------ demo

#[test]
fn demo_profile_parses_to_expected_values() {
    let p = ok(DEMO);
    assert_eq!(p.path, PathBuf::from("p.yaml"));
    assert_eq!(p.realm, "switchboard.local");

    assert_eq!(p.listeners.len(), 2);
    assert_eq!(p.listeners[0].transport, TransportKind::Udp);
    assert_eq!(p.listeners[1].transport, TransportKind::Tcp);
    for l in &p.listeners {
        assert_eq!(l.addr, "127.0.0.1:5060".parse().unwrap());
        assert!(l.advertised.is_none() && l.tls_cert.is_none() && l.tls_key.is_none());
    }

    assert_eq!(p.users.len(), 10);
    for (i, u) in p.users.iter().enumerate() {
        let ext = format!("{}", 1001 + i);
        assert_eq!(u.extension, ext);
        assert_eq!(u.secret, Secret::Password(format!("secret{ext}")));
        assert_eq!(
            u.display_name.as_deref(),
            Some(format!("Agent {ext}").as_str())
        );
    }
    assert!(p.user("1010").is_some());
    assert!(p.user("1011").is_none());

    assert_eq!(p.trunks.len(), 1);
    let t = p.trunk("demo-carrier").expect("trunk");
    assert_eq!(
        t.inbound.allow,
        vec!["127.0.0.1/32".parse::<IpNet>().unwrap()]
    );
    assert!(t.inbound.digest.is_none());
    let out = t.outbound.as_ref().expect("outbound");
    assert_eq!(out.host, "127.0.0.1");
    assert_eq!(out.port, 5090);
    assert_eq!(out.transport, TransportKind::Udp);
    assert!(out.auth.is_none());
    assert!(!out.register);
    assert_eq!(out.register_expires, 600);
    assert_eq!((t.max_calls, t.max_cps), (Some(500), Some(2000)));
    assert!(p.trunk("nope").is_none());

    assert_eq!(p.routes.len(), 7);
    assert!(matches!(&p.routes[0].matcher, NumberMatch::Exact(n) if n == "100"));
    assert_eq!(p.routes[0].target, RouteTarget::Flow("main".into()));
    assert_eq!(p.routes[1].target, RouteTarget::Queue("support".into()));
    assert_eq!(p.routes[2].target, RouteTarget::Echo);
    assert!(matches!(
        p.routes[3].matcher,
        NumberMatch::Range {
            from: 1001,
            to: 1010,
            len: 4
        }
    ));
    assert_eq!(p.routes[3].target, RouteTarget::User(None));
    assert!(matches!(&p.routes[4].matcher, NumberMatch::Prefix(s) if s == "+"));
    assert!(matches!(&p.routes[5].matcher, NumberMatch::Prefix(s) if s == "00"));
    for r in &p.routes[4..6] {
        assert_eq!(r.from, RouteSource::LocalUsers);
        assert_eq!(r.target, RouteTarget::Trunk("demo-carrier".into()));
    }
    assert!(matches!(&p.routes[6].matcher, NumberMatch::Prefix(s) if s.is_empty()));
    assert_eq!(p.routes[6].from, RouteSource::Any);
    assert_eq!(
        p.routes[6].target,
        RouteTarget::Reject {
            code: 404,
            reason: None
        }
    );

    assert_eq!(p.timers, Timers::default());
    assert_eq!(p.timers.t1, Duration::from_millis(500));
    assert_eq!(p.timers.session_expires, Duration::from_secs(1800));
    assert_eq!(p.limits, Limits::default());
    assert_eq!(p.limits.tcp_idle_timeout, Duration::from_secs(300));
    assert_eq!(p.registrar, RegistrarSettings::default());
    assert_eq!(
        p.registrar.algorithms,
        vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
    );
}

#[test]
fn load_profile_reads_the_demo_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-profiles/default.yaml");
    let p = load_profile(&path).expect("demo profile loads");
    assert_eq!(p.path, path);
    assert_eq!(p.users.len(), 10);
}

#[test]
fn load_profile_reports_io_errors_at_1_1() {
    let path = Path::new("/nonexistent/switchboard/profile.yaml");
    let errors = load_profile(path).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].col), (1, 1));
    assert!(errors[0]
        .to_string()
        .starts_with("/nonexistent/switchboard/profile.yaml:1:1: cannot read profile: "));
}

#[test]
fn load_profile_reports_invalid_utf8_position() {
    let dir = std::env::temp_dir().join(format!("switchboard-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad-utf8.yaml");
    std::fs::write(&path, b"realm: example.org\nlisteners: \xff\xfe\n").unwrap();
    let errors = load_profile(&path).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].col), (2, 12));
    assert_eq!(errors[0].message, "profile is not valid UTF-8 (byte 0xff)");
}

#[test]
fn defaults_apply_to_a_minimal_profile() {
    let p = ok(BASE);
    assert!(p.users.is_empty() && p.trunks.is_empty() && p.routes.is_empty());
    assert_eq!(p.timers, Timers::default());
    assert_eq!(p.limits, Limits::default());
    assert_eq!(p.registrar, RegistrarSettings::default());
    assert_eq!(p.timers.ring_timeout, Duration::from_secs(60));
    assert_eq!(p.limits.max_dialogs, 100_000);
    assert_eq!(p.registrar.nonce_lifetime, Duration::from_secs(300));
}

#[test]
fn full_featured_profile() {
    let p = ok(&format!(
        "{BASE}  - {{ transport: tls, address: '[::1]:5061', advertised: 'sip.example.com:5061', cert: tls/cert.pem, key: /etc/key.pem }}
  - {{ transport: tls, address: 0.0.0.0 }}
users:
  - extension: \"2001\"
    ha1: {{ md5: 72EAC991C2407626E14689BEE2A3C8F4 }}
trunks:
  - name: carrier
    inbound:
      allow: [10.0.0.0/8, '2001:db8::/32']
      digest: {{ username: in, password: pw }}
    outbound: {{ host: sip.carrier.example, transport: tls, auth: {{ username: u, password: p }}, register: true, register_expires: 300 }}
routes:
  - {{ regex: '9[0-9]{{3}}', from: {{ trunk: carrier }}, to: {{ user: \"2001\" }} }}
  - {{ number: '555', from: trunks, to: {{ reject: {{ code: 486, reason: Busy Here }} }} }}
  - {{ prefix: '', from: any, to: {{ user: }} }}
timers: {{ t1: 1s, t2: 1h30m }}
limits: {{ per_source_rate: 50 }}
registrar: {{ algorithms: [MD5] }}
"
    ));
    assert_eq!(p.listeners.len(), 3);
    let tls = &p.listeners[1];
    assert_eq!(tls.transport, TransportKind::Tls);
    assert_eq!(tls.addr, "[::1]:5061".parse().unwrap());
    assert_eq!(tls.advertised.as_deref(), Some("sip.example.com:5061"));
    // Relative paths resolve against the profile's directory.
    let q = parse_profile(
        Path::new("/etc/switchboard/p.yaml"),
        &format!(
            "{BASE}  - {{ transport: tls, address: 0.0.0.0:5061, cert: tls/c.pem, key: /k.pem }}\n"
        ),
    )
    .expect("valid");
    assert_eq!(
        q.listeners[1].tls_cert.as_deref(),
        Some(Path::new("/etc/switchboard/tls/c.pem"))
    );
    assert_eq!(q.listeners[1].tls_key.as_deref(), Some(Path::new("/k.pem")));
    // A TLS listener without a port gets 5061.
    assert_eq!(p.listeners[2].addr, "0.0.0.0:5061".parse().unwrap());

    let u = p.user("2001").expect("user");
    assert_eq!(
        u.secret,
        Secret::Ha1 {
            md5: Some("72eac991c2407626e14689bee2a3c8f4".into()),
            sha256: None
        }
    );
    assert!(!format!("{:?}", u.secret).contains("72eac"));

    let t = p.trunk("carrier").expect("trunk");
    let digest = t.inbound.digest.as_ref().expect("digest");
    assert_eq!(
        (digest.username.as_str(), digest.password.as_str()),
        ("in", "pw")
    );
    assert!(!format!("{digest:?}").contains("pw"));
    let out = t.outbound.as_ref().expect("outbound");
    assert_eq!(out.port, 5061);
    assert_eq!(out.transport, TransportKind::Tls);
    assert!(out.register);
    assert_eq!(out.register_expires, 300);
    assert_eq!(t.max_calls, None);

    assert_eq!(p.routes[0].from, RouteSource::Trunk("carrier".into()));
    assert_eq!(
        route_for(&p, "9123"),
        Some(&RouteTarget::User(Some("2001".into())))
    );
    assert_eq!(p.routes[1].from, RouteSource::Trunks);
    assert_eq!(
        route_for(&p, "555"),
        Some(&RouteTarget::Reject {
            code: 486,
            reason: Some("Busy Here".into())
        })
    );
    assert_eq!(route_for(&p, "91234"), Some(&RouteTarget::User(None)));

    assert_eq!(p.timers.t1, Duration::from_secs(1));
    assert_eq!(p.timers.t2, Duration::from_secs(5400));
    assert_eq!(p.timers.t4, Duration::from_secs(5));
    assert_eq!(p.limits.per_source_rate, 50);
    assert_eq!(p.registrar.algorithms, vec![DigestAlgorithm::Md5]);
}

// ------------------------------------------------------------------ structural errors

#[test]
fn yaml_syntax_errors_have_positions() {
    assert_eq!(
        err("realm: example.org\nlisteners:\n  - { transport: udp, address: 127.0.0.1:5060\nusers: []\n"),
        "p.yaml:3:5: unclosed bracket '{'"
    );
    assert_eq!(err("realm: \"unterminated\n"), "p.yaml:1:8: unclosed quote");
    assert_eq!(
        err("realm: x\nlisteners:\n\t- a\n"),
        "p.yaml:3:2: tabs disallowed within this context (block indentation)"
    );
    assert_eq!(
        err("realm: x\nrealm: y\n"),
        "p.yaml:2:1: duplicate mapping key `realm` is not allowed here"
    );
    assert_eq!(
        err("---\nrealm: a\n---\nrealm: b\n"),
        "p.yaml:4:1: a profile must be a single YAML document (remove the extra `---`)"
    );
}

#[test]
fn unknown_field_suggests_the_closest_name() {
    // The typo also leaves `inbound` without `allow`: both are said, the typo with its fix.
    let e = errs(&format!(
        "{BASE}trunks:\n  - {{ name: t, inbound: {{ alow: [127.0.0.1] }} }}\n"
    ));
    assert!(
        e.contains(&"p.yaml:5:27: unknown field `alow`; did you mean `allow`?".to_string()),
        "{e:#?}"
    );
    assert!(e.iter().all(|l| l.starts_with("p.yaml:5:")), "{e:#?}");
    let e = errs("realm: x\nlistener: []\n");
    assert!(
        e.contains(&"p.yaml:2:1: unknown field `listener`; did you mean `listeners`?".to_string()),
        "{e:#?}"
    );
    assert_eq!(
        err(&format!("{BASE}timers: {{ t3: 1s }}\n")),
        "p.yaml:4:11: unknown field `t3`; did you mean `t1`?"
    );
}

#[test]
fn unknown_field_without_a_close_match_lists_the_fields() {
    assert_eq!(
        err(&format!("{BASE}users:\n  - {{ extension: \"1\", password: x, colour: red }}\n")),
        "p.yaml:5:36: unknown field `colour`; expected one of `extension`, `password`, `ha1`, `name`"
    );
}

#[test]
fn wrong_value_types_are_reported() {
    assert_eq!(
        err(&format!(
            "{BASE}trunks:\n  - {{ name: t, max_calls: lots, outbound: {{ host: h }} }}\n"
        )),
        "p.yaml:5:27: expected a whole number from 0 to 4294967295"
    );
    assert_eq!(
        err(&format!(
            "{BASE}trunks:\n  - {{ name: t, outbound: {{ host: h, port: 70000 }} }}\n"
        )),
        "p.yaml:5:43: expected a whole number from 0 to 65535"
    );
    assert_eq!(
        err("realm: x\nlisteners: { transport: udp }\n"),
        "p.yaml:2:12: expected sequence start"
    );
    assert_eq!(err("realm: [a, b]\n"), "p.yaml:1:8: expected string scalar");
}

// ------------------------------------------------------------------ semantic errors

#[test]
fn duplicate_user_extension() {
    assert_eq!(
        err(&format!(
            "{BASE}users:\n  - {{ extension: \"1001\", password: a }}\n  - {{ extension: \"1001\", password: b }}\n"
        )),
        "p.yaml:6:18: duplicate user extension `1001` (first defined at line 5, column 18)"
    );
}

#[test]
fn duplicate_trunk_name() {
    assert_eq!(
        err(&format!(
            "{BASE}trunks:\n  - {{ name: c, outbound: {{ host: a }} }}\n  - {{ name: c, outbound: {{ host: b }} }}\n"
        )),
        "p.yaml:6:13: duplicate trunk name `c` (first defined at line 5, column 13)"
    );
}

#[test]
fn duplicate_listener() {
    assert_eq!(
        err(&format!(
            "{BASE}  - {{ transport: tcp, address: 127.0.0.1:5060 }}\n  - {{ transport: UDP, address: 127.0.0.1:5060 }}\n"
        )),
        "p.yaml:5:32: duplicate listener udp 127.0.0.1:5060 (first defined at line 3, column 32)"
    );
}

#[test]
fn route_naming_an_unknown_trunk() {
    let text = format!(
        "{BASE}trunks:\n  - {{ name: carrier, outbound: {{ host: h }} }}\nroutes:\n  - {{ prefix: '0', to: {{ trunk: carier }} }}\n"
    );
    assert_eq!(
        err(&text),
        "p.yaml:7:33: unknown trunk `carier`; did you mean `carrier`?"
    );
}

#[test]
fn route_to_unknown_user() {
    assert_eq!(
        err(&format!(
            "{BASE}routes:\n  - {{ number: '0', to: {{ user: '1001' }} }}\n"
        )),
        "p.yaml:5:32: unknown user `1001`"
    );
}

#[test]
fn route_from_unknown_trunk() {
    assert_eq!(
        err(&format!(
            "{BASE}routes:\n  - {{ number: '0', from: {{ trunk: ghost }}, to: echo }}\n"
        )),
        "p.yaml:5:35: unknown trunk `ghost`"
    );
}

#[test]
fn bad_route_words_get_suggestions() {
    assert_eq!(
        err(&format!(
            "{BASE}routes:\n  - {{ number: '0', from: local-user, to: echo }}\n"
        )),
        "p.yaml:5:26: unknown route source `local-user`; did you mean `local-users`?"
    );
    assert_eq!(
        err(&format!("{BASE}routes:\n  - {{ number: '0', to: eco }}\n")),
        "p.yaml:5:24: unknown route target `eco`; did you mean `echo`?"
    );
    assert_eq!(
        err(&format!(
            "{BASE}routes:\n  - {{ number: '0', to: {{ queu: sales }} }}\n"
        )),
        "p.yaml:5:26: unknown route target `queu`; did you mean `queue`?"
    );
    assert_eq!(
        err(&format!(
            "{BASE}routes:\n  - {{ number: '0', to: trunk }}\n"
        )),
        "p.yaml:5:24: `trunk` needs a value: `to: { trunk: NAME }`"
    );
}

#[test]
fn invalid_ip_or_cidr() {
    let e = errs(&format!(
        "{BASE}trunks:\n  - name: t\n    inbound: {{ allow: [10.0.0.0/33, 'not-an-ip', 10.0.0.1/8, '::1'] }}\n"
    ));
    assert_eq!(
        e,
        vec![
            "p.yaml:6:24: prefix length /33 is too long for 10.0.0.0 (at most /32)",
            "p.yaml:6:37: invalid IP address or network `not-an-ip`; expected e.g. `10.0.0.1`, `10.0.0.0/8` or `2001:db8::/32`",
            "p.yaml:6:50: `10.0.0.1/8` has host bits set; did you mean `10.0.0.0/8`?",
        ]
    );
}

#[test]
fn reject_code_out_of_range() {
    assert_eq!(
        err(&format!(
            "{BASE}routes:\n  - {{ prefix: '', to: {{ reject: 200 }} }}\n"
        )),
        "p.yaml:5:33: reject code must be a SIP status between 400 and 699, got `200`"
    );
    assert_eq!(
        err(&format!(
            "{BASE}routes:\n  - {{ prefix: '', to: {{ reject: {{ code: 700, reason: Nope }} }} }}\n"
        )),
        "p.yaml:5:41: reject code must be a SIP status between 400 and 699, got `700`"
    );
}

#[test]
fn bad_ha1_values() {
    let e = errs(&format!(
        "{BASE}users:
  - {{ extension: '1', ha1: {{ md5: 72eac991c2407626e14689bee2a3c8fz }} }}
  - {{ extension: '2', ha1: {{ sha256: abc }} }}
  - {{ extension: '3', ha1: {{}} }}
"
    ));
    assert_eq!(
        e,
        vec![
            "p.yaml:5:35: ha1 md5 must be 32 hex digits, got `72eac991c2407626e14689bee2a3c8fz`",
            "p.yaml:6:38: ha1 sha256 must be 64 hex digits, got `abc`",
            "p.yaml:7:28: ha1 needs `md5` and/or `sha256`",
        ]
    );
}

#[test]
fn realm_must_be_present_and_non_empty() {
    assert_eq!(
        err("realm: ''\nlisteners:\n  - { transport: udp, address: 127.0.0.1:5060 }\n"),
        "p.yaml:1:8: realm must not be empty"
    );
    assert_eq!(
        err("listeners:\n  - { transport: udp, address: 127.0.0.1:5060 }\n"),
        "p.yaml:1:1: missing field `realm`"
    );
}

#[test]
fn listeners_are_required() {
    assert_eq!(
        err("realm: example.org\nlisteners: []\n"),
        "p.yaml:2:12: at least one listener is required"
    );
    assert_eq!(
        errs(""),
        vec![
            "p.yaml:1:1: missing field `realm`",
            "p.yaml:1:1: at least one listener is required"
        ]
    );
}

#[test]
fn tls_cert_and_key_come_together() {
    let e = errs(&format!(
        "{BASE}  - {{ transport: tls, address: 0.0.0.0:5061, cert: c.pem }}\n  - {{ transport: tls, address: 0.0.0.0:5062, key: k.pem }}\n  - {{ transport: tcp, address: 0.0.0.0:5062, key: k.pem }}\n"
    ));
    assert_eq!(
        e,
        vec![
            "p.yaml:4:52: TLS listener has `cert` but no `key`",
            "p.yaml:5:51: TLS listener has `key` but no `cert`",
            "p.yaml:6:51: `cert`/`key` are only valid on tls listeners, not tcp",
        ]
    );
}

#[test]
fn min_expires_above_max_expires() {
    assert_eq!(
        err(&format!(
            "{BASE}registrar: {{ min_expires: 600, max_expires: 300, default_expires: 300 }}\n"
        )),
        "p.yaml:4:27: min_expires (600) must not be greater than max_expires (300)"
    );
}

#[test]
fn unset_default_expires_follows_the_bounds() {
    let p = ok(&format!("{BASE}registrar: {{ max_expires: 1800 }}\n"));
    assert_eq!(p.registrar.default_expires, 1800);
    let p = ok(&format!(
        "{BASE}registrar: {{ min_expires: 7200, max_expires: 9000 }}\n"
    ));
    assert_eq!(p.registrar.default_expires, 7200);
    assert_eq!(
        err(&format!("{BASE}registrar: {{ default_expires: 10 }}\n")),
        "p.yaml:4:31: default_expires (10) must be between min_expires (60) and max_expires (3600)"
    );
}

#[test]
fn t1_above_t2() {
    assert_eq!(
        err(&format!("{BASE}timers: {{ t1: 5s, t2: 4s }}\n")),
        "p.yaml:4:15: t1 (5s) must not be greater than t2 (4s)"
    );
}

#[test]
fn bad_durations() {
    let e = errs(&format!(
        "{BASE}timers:\n  t1: 500\n  t2: 4 seconds\n  ring_timeout: 0s\nlimits: {{ tcp_idle_timeout: 5d }}\n"
    ));
    assert_eq!(
        e,
        vec![
            "p.yaml:5:7: duration `500` has no unit; write e.g. `500s` or `500ms` (units: ms, s, m, h)",
            "p.yaml:6:7: unknown unit ` seconds` in duration `4 seconds`; use ms, s, m or h",
            "p.yaml:7:17: ring_timeout must be greater than zero",
            "p.yaml:8:29: unknown unit `d` in duration `5d`; use ms, s, m or h",
        ]
    );
}

#[test]
fn invalid_ranges() {
    let e = errs(&format!(
        "{BASE}routes:\n  - {{ range: '100-1000', to: user }}\n  - {{ range: '1010-1001', to: user }}\n  - {{ range: abc, to: user }}\n"
    ));
    assert_eq!(
        e,
        vec![
            "p.yaml:5:14: invalid range `100-1000`: `100` and `1000` have different lengths",
            "p.yaml:6:14: invalid range `1010-1001`: `1010` is greater than `1001`",
            "p.yaml:7:14: invalid range `abc`; expected `FROM-TO` such as `1001-1010`",
        ]
    );
}

#[test]
fn invalid_regex() {
    let e = err(&format!(
        "{BASE}routes:\n  - {{ regex: '([0-9]', to: echo }}\n"
    ));
    assert!(
        e.starts_with("p.yaml:5:14: invalid regex `([0-9]`: "),
        "{e}"
    );
}

#[test]
fn route_matcher_must_be_unique() {
    assert_eq!(
        errs(&format!(
            "{BASE}routes:\n  - {{ number: '1', prefix: '1', to: echo }}\n  - {{ to: echo }}\n"
        )),
        vec![
            "p.yaml:5:28: route has both `number` and `prefix`; use only one",
            "p.yaml:6:5: route needs one of `number`, `prefix`, `range` or `regex`",
        ]
    );
}

#[test]
fn other_semantic_checks() {
    let e = errs(&format!(
        "{BASE}users:
  - {{ extension: '1' }}
  - {{ extension: 'a b', password: x }}
trunks:
  - {{ name: empty }}
  - {{ name: r, outbound: {{ host: 'h:5060', register: true }}, max_cps: 0 }}
timers: {{ min_se: 60s }}
registrar: {{ algorithms: [sha-512, md5, md5] }}
limits: {{ max_message_size: 10 }}
"
    ));
    assert_eq!(
        e,
        vec![
            "p.yaml:5:5: user has no credentials: set `password` or `ha1`",
            "p.yaml:6:18: extension `a b` must not contain spaces",
            "p.yaml:8:5: trunk has neither `inbound` nor `outbound`; it could never carry a call",
            "p.yaml:9:34: host `h:5060` must not include a port; use `port:`",
            "p.yaml:9:54: `register: true` needs `auth` credentials",
            "p.yaml:9:71: max_cps must be at least 1 (omit it for no limit)",
            "p.yaml:10:19: min_se must be at least 90s (RFC 4028), got 60s",
            "p.yaml:11:27: unknown digest algorithm `sha-512`; expected one of `sha-256`, `md5`",
            "p.yaml:11:41: duplicate algorithm MD5 (first listed at line 11, column 36)",
            "p.yaml:12:29: max_message_size must be between 1024 and 16777216 bytes",
        ]
    );
}

#[test]
fn ha1_must_cover_an_enabled_algorithm() {
    assert_eq!(
        err(&format!(
            "{BASE}users:\n  - {{ extension: '1', ha1: {{ md5: 72eac991c2407626e14689bee2a3c8f4 }} }}\nregistrar: {{ algorithms: [sha-256] }}\n"
        )),
        "p.yaml:5:28: ha1 has no hash for any algorithm in `registrar.algorithms`; this user could never authenticate"
    );
}

#[test]
fn all_semantic_errors_are_reported_together() {
    let text = "\
realm: ''
listeners:
  - { transport: udpp, address: 127.0.0.1:5060 }
users:
  - { extension: '1001', password: a }
  - { extension: '1001', password: b }
trunks:
  - { name: t, inbound: { allow: [300.0.0.1] } }
routes:
  - { range: '20-10', to: { trunk: nope } }
  - { prefix: '', to: { reject: 99 } }
timers: { t1: 10s, t2: 4s }
registrar: { min_expires: 100, max_expires: 10 }
";
    let e = errs(text);
    assert_eq!(
        e,
        vec![
            "p.yaml:1:8: realm must not be empty",
            "p.yaml:3:18: unknown transport `udpp`; did you mean `udp`?",
            "p.yaml:6:18: duplicate user extension `1001` (first defined at line 5, column 18)",
            "p.yaml:8:35: invalid IP address or network `300.0.0.1`; expected e.g. `10.0.0.1`, `10.0.0.0/8` or `2001:db8::/32`",
            "p.yaml:10:14: invalid range `20-10`: `20` is greater than `10`",
            "p.yaml:10:36: unknown trunk `nope`; expected one of `t`",
            "p.yaml:11:33: reject code must be a SIP status between 400 and 699, got `99`",
            "p.yaml:12:15: t1 (10s) must not be greater than t2 (4s)",
            "p.yaml:13:27: min_expires (100) must not be greater than max_expires (10)",
        ]
    );
    // The structured fields agree with the rendering.
    let first = &parse(text).unwrap_err()[0];
    assert_eq!(first.file, PathBuf::from("p.yaml"));
    assert_eq!((first.line, first.col), (1, 8));
    assert_eq!(first.message, "realm must not be empty");
}

// ------------------------------------------------------------------ matching

#[test]
fn demo_routes_match_in_order() {
    let p = ok(DEMO);
    assert_eq!(
        route_for(&p, "100"),
        Some(&RouteTarget::Flow("main".into()))
    );
    assert_eq!(
        route_for(&p, "200"),
        Some(&RouteTarget::Queue("support".into()))
    );
    assert_eq!(route_for(&p, "600"), Some(&RouteTarget::Echo));
    assert_eq!(route_for(&p, "1001"), Some(&RouteTarget::User(None)));
    assert_eq!(route_for(&p, "1010"), Some(&RouteTarget::User(None)));
    let carrier = RouteTarget::Trunk("demo-carrier".into());
    assert_eq!(route_for(&p, "+493012345"), Some(&carrier));
    assert_eq!(route_for(&p, "00493012345"), Some(&carrier));
    let reject = RouteTarget::Reject {
        code: 404,
        reason: None,
    };
    // The empty prefix matches everything else, including the empty string.
    for n in ["1011", "1000", "1000x", "0", "", "sales"] {
        assert_eq!(route_for(&p, n), Some(&reject), "{n}");
    }
}

#[test]
fn trunk_for_source_uses_cidr_and_longest_prefix() {
    let p = ok(&format!(
        "{BASE}trunks:
  - {{ name: wide, inbound: {{ allow: [10.0.0.0/8, '2001:db8::/32'] }} }}
  - {{ name: narrow, inbound: {{ allow: [10.1.2.0/24] }} }}
  - {{ name: host, inbound: {{ allow: [192.0.2.7, '::1'] }} }}
  - {{ name: out-only, outbound: {{ host: example.net }} }}
"
    ));
    let name = |s: &str| p.trunk_for_source(ip(s)).map(|t| t.name.as_str());
    assert_eq!(name("10.200.0.1"), Some("wide"));
    assert_eq!(name("10.1.2.3"), Some("narrow"));
    assert_eq!(name("::ffff:10.1.2.3"), Some("narrow"));
    assert_eq!(name("2001:db8:5::1"), Some("wide"));
    assert_eq!(name("192.0.2.7"), Some("host"));
    assert_eq!(name("192.0.2.8"), None);
    assert_eq!(name("::1"), Some("host"));
    assert_eq!(name("11.0.0.1"), None);
}

// ------------------------------------------------------------------ hostile input

#[test]
fn garbage_input_gives_errors_not_panics() {
    let samples: Vec<String> = vec![
        "\u{0}\u{1}\u{2}\u{7f}".into(),
        "{{{{{{{{".into(),
        "]]]".into(),
        "- - - -\n  - : :\n".into(),
        ":".into(),
        "&a [*a]".into(),
        "*unknown".into(),
        "realm: !!binary AAAA\n".into(),
        "---\nrealm: a\n---\nrealm: b\n".into(),
        "[".repeat(10_000),
        "a: ".repeat(1_000),
        "realm: x\nrealm: y\n".into(),
        String::from_utf8_lossy(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, b'\n', b'\t', b':'])
            .into_owned(),
        "routes:\n  - to: ".to_owned() + &"{ a: ".repeat(200),
        "realm: x\nlisteners:\n  - { transport: [udp], address: {a: b} }\n".into(),
        "42".into(),
        "~".into(),
    ];
    for s in &samples {
        let result = parse(s);
        assert!(result.is_err(), "accepted garbage: {s:?}");
    }
    // Deep nesting everywhere, including the polymorphic `to:` values.
    for depth in [63, 64, 65, 10_000] {
        for open in ["{ a: ", "[", "- ", "{ to: "] {
            let nested = open.repeat(depth);
            for prefix in [
                "",
                "realm: ",
                "routes:\n  - to: ",
                "routes:\n  - to: { reject: ",
            ] {
                assert!(parse(&format!("{prefix}{nested}")).is_err());
            }
        }
    }
    // Pseudo-random bytes (xorshift), lossily decoded.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let len = (state % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
    }
    // Mutations of the demo profile: truncations must never panic either.
    for cut in (0..DEMO.len()).step_by(37) {
        if DEMO.is_char_boundary(cut) {
            let _ = parse(&DEMO[..cut]);
        }
    }
}

#[test]
fn error_messages_neutralise_control_characters() {
    let e = err(&format!(
        "{BASE}routes:\n  - {{ number: '0', to: \"ech\\eo\" }}\n"
    ));
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.contains("\\u{1b}"), "{e}");
}

#[test]
fn media_section_parses_with_defaults_and_values() {
    let p = ok(BASE);
    assert_eq!(p.media, MediaSettings::default());
    let p = ok(&format!(
        "{BASE}media: {{ address: 127.0.0.1, advertised: 203.0.113.9, rtp_ports: 30000-30099, codecs: [opus, pcma], ptime: 40ms, rtp_timeout: 15s, io: epoll }}\n"
    ));
    assert_eq!(p.media.io, MediaIo::Epoll);
    assert_eq!(p.media.address, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(p.media.advertised, Some("203.0.113.9".parse().unwrap()));
    assert_eq!((p.media.port_min, p.media.port_max), (30000, 30099));
    assert_eq!(p.media.codecs, vec![Codec::Opus, Codec::Pcma]);
    assert_eq!(p.media.ptime, Duration::from_millis(40));
    assert_eq!(p.media.rtp_timeout, Duration::from_secs(15));
    let demo = parse_profile(Path::new("d.yaml"), DEMO).expect("demo");
    assert_eq!(
        demo.media.codecs,
        vec![Codec::Pcmu, Codec::Pcma, Codec::Opus]
    );
}

#[test]
fn media_section_errors_name_their_place() {
    let e = errs(&format!(
        "{BASE}media: {{ address: nowhere, rtp_ports: 9-8, codecs: [pcmu, g729, pcmu], ptime: 25ms }}\n"
    ));
    assert!(
        e.iter()
            .any(|l| l.starts_with("p.yaml:4:19: media.address must be an IP address")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("p.yaml:4:39: rtp_ports must be")),
        "{e:?}"
    );
    assert!(e.iter().any(|l| l.contains("g729")), "{e:?}");
    assert!(
        e.iter().any(|l| l.contains("codec pcmu listed twice")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|l| l.contains("ptime must be one of")),
        "{e:?}"
    );
    assert_eq!(
        err(&format!("{BASE}media: {{ io: uring }}\n")),
        "p.yaml:4:14: unknown media io `uring`; expected one of `auto`, `io_uring`, `epoll`"
    );
}

#[test]
fn routes_may_record() {
    let p = ok(&format!("{BASE}routes:\n  - {{ number: \"7\", to: echo, record: true }}\n  - {{ number: \"8\", to: echo }}\n"));
    assert!(p.routes[0].record);
    assert!(!p.routes[1].record);
}

#[test]
fn unknown_fields_do_not_hide_the_other_errors() {
    let text = format!(
        "{BASE}bogus_setting: 42\nroutes:\n  - {{ number: \"1\", to: {{ trunk: nowhere }}, colour: red }}\n  - number: \"2\"\n    to: echo\n    flavour:\n      deep: 1\ntimers: {{ t1: 9s, t2: 4s }}\n"
    );
    let e = errs(&text);
    assert!(
        e.iter()
            .any(|l| l.starts_with("p.yaml:4:1: unknown field `bogus_setting`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("p.yaml:6:44: unknown field `colour`")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("p.yaml:9:5: unknown field `flavour`")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|l| l.contains("nowhere")),
        "semantic errors still reported: {e:?}"
    );
    assert!(e.iter().any(|l| l.contains("t1")), "{e:?}");
    // In order of position.
    let pos: Vec<(usize, usize)> = e
        .iter()
        .map(|l| {
            let mut it = l.split(':').skip(1);
            (
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert!(pos.windows(2).all(|w| w[0] <= w[1]), "{e:?}");
}
