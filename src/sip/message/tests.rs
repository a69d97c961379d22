use super::*;
use proptest::prelude::*;

fn req(s: &str) -> Request {
    match parse(s.as_bytes()).expect("parses") {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice A.\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

#[test]
fn parses_and_prints_a_plain_invite() {
    let r = req(INVITE);
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.user.as_deref(), Some("bob"));
    assert_eq!(r.from().unwrap().tag(), Some("1928301774"));
    assert_eq!(r.from().unwrap().display.as_deref(), Some("Alice A."));
    assert_eq!(
        r.cseq().unwrap(),
        CSeq {
            seq: 314159,
            method: Method::Invite
        }
    );
    assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(&r.body[..], b"v=0\n");
    let again = req(std::str::from_utf8(&r.to_bytes()).unwrap());
    assert_eq!(again, r);
}

#[test]
fn compact_forms_folding_lf_only_and_comma_vias() {
    let m = "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n\
TO :\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n\
f: \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\n  ;\n  tag = 98asjd8\n\
i: 0ha0isndaksdj@192.0.2.1\n\
CSeq: 8\n   INVITE\n\
v: SIP/2.0/UDP 192.0.2.2;branch=390skdjuw, SIP/2.0/TCP spindle.example.com ;\n  branch  =   z9hG4bK9ikj8  ,\n SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKaaa\n\
m: \"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\n      newvalue ;\n  secondparam ; q = 0.33\n\
l: 0\n\
k: 100rel, timer\n\n";
    let r = req(m);
    let vias = r.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host, "2001:db8::9:1");
    assert_eq!(vias[2].port, Some(5070));
    assert_eq!(r.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(r.from().unwrap().tag(), Some("98asjd8"));
    assert_eq!(r.call_id().unwrap(), "0ha0isndaksdj@192.0.2.1");
    assert_eq!(r.cseq().unwrap().seq, 8);
    assert_eq!(r.contacts().unwrap()[0].params.value("q"), Some("0.33"));
    assert!(r.has_option_tag(&HeaderName::Supported, "timer"));
    assert!(r.body.is_empty());
}

#[test]
fn tel_and_sips_and_ipv6_uris() {
    let u = Uri::parse("tel:+1-201-555-0123;phone-context=+1").unwrap();
    assert_eq!(u.scheme, Scheme::Tel);
    assert_eq!(u.user.as_deref(), Some("+1-201-555-0123"));
    assert_eq!(u.to_string(), "tel:+1-201-555-0123;phone-context=+1");
    let u = Uri::parse("sips:alice:pw@[2001:db8::10]:5061;transport=tls?subject=x").unwrap();
    assert_eq!(u.scheme, Scheme::Sips);
    assert_eq!(u.host, "2001:db8::10");
    assert_eq!(u.port, Some(5061));
    assert_eq!(u.password.as_deref(), Some("pw"));
    assert_eq!(
        u.to_string(),
        "sips:alice:pw@[2001:db8::10]:5061;transport=tls?subject=x"
    );
    assert!(Uri::parse("http://x").is_none());
    assert!(Uri::parse("sip:[::1").is_none());
    let r = req(&INVITE.replace("INVITE sip:bob@biloxi.example.com", "INVITE tel:+15550100"));
    assert_eq!(r.uri.user.as_deref(), Some("+15550100"));
}

#[test]
fn sha256_digest_header_is_kept_whole() {
    let m = INVITE.replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nProxy-Authorization: Digest username=\"1001\", realm=\"x\", nonce=\"n,1\", uri=\"sip:bob@b\", response=\"ab\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c\"\r\n",
    );
    let r = req(&m);
    let v = r.headers.get(&HeaderName::ProxyAuthorization).unwrap();
    assert!(v.contains("algorithm=SHA-256") && v.contains("nonce=\"n,1\""));
}

#[test]
fn udp_without_content_length_takes_the_rest() {
    let m = INVITE.replace("Content-Length: 4\r\n", "");
    let r = req(&m);
    assert_eq!(&r.body[..], b"v=0\n");
}

#[test]
fn errors_are_answerable_with_reasons() {
    let m = INVITE.replace("CSeq: 314159 INVITE", "CSeq: abc INVITE");
    let e = parse(m.as_bytes()).unwrap_err();
    assert_eq!(e.reason, "malformed CSeq header");
    assert!(e.request.is_some());
    let resp = response_to(
        e.request.as_ref().unwrap(),
        400,
        Some(&e.reason),
        Some("t1"),
    );
    let printed = String::from_utf8(resp.to_bytes()).unwrap();
    assert!(printed.starts_with("SIP/2.0 400 malformed CSeq header\r\n"));
    assert!(printed.contains("tag=t1"));

    let m = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
    assert_eq!(
        parse(m.as_bytes()).unwrap_err().reason,
        "CSeq method does not match the request method"
    );
    let m = INVITE.replace("Content-Length: 4", "Content-Length: 400");
    assert_eq!(
        parse(m.as_bytes()).unwrap_err().reason,
        "Content-Length larger than the body"
    );
    let m = INVITE.replace("Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", "");
    let e = parse(m.as_bytes()).unwrap_err();
    assert_eq!(e.reason, "missing Call-ID header");
    assert!(e.request.is_none(), "no Call-ID: cannot be answered");
    let m = INVITE.replace("sip:bob@biloxi.example.com SIP/2.0", "http://bob SIP/2.0");
    assert_eq!(parse(m.as_bytes()).unwrap_err().status, 416);
    let m = INVITE.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
    assert_eq!(parse(m.as_bytes()).unwrap_err().status, 505);
    let m = INVITE.replace("Max-Forwards: 70", "Max-Forwards: seventy");
    assert_eq!(
        parse(m.as_bytes()).unwrap_err().reason,
        "malformed Max-Forwards header"
    );
    assert!(parse(b"\x00\xff\xfe garbage").is_err());
    assert!(parse(b"").is_err());
}

#[test]
fn responses_parse() {
    let m = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport=5062;received=192.0.2.4\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    let Message::Response(r) = parse(m.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(r.status, 180);
    assert_eq!(r.reason, "Ringing");
    let via = r.top_via().unwrap();
    let src: std::net::SocketAddr = "198.51.100.1:9999".parse().unwrap();
    assert_eq!(via.response_target(src), "192.0.2.4:5062".parse().unwrap());
}

#[test]
fn via_response_target_uses_rport_flag_and_source() {
    let via = Via::parse("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;rport").unwrap();
    let src: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    assert_eq!(via.response_target(src), "10.0.0.1:40000".parse().unwrap());
    let via = Via::parse("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx").unwrap();
    assert_eq!(via.response_target(src), "10.0.0.1:5060".parse().unwrap());
}

#[test]
fn framing_a_stream() {
    let mut buf = b"\r\n\r\n".to_vec();
    assert_eq!(frame(&buf, 65535), Frame::KeepAlive { len: 4, ping: true });
    buf = INVITE.as_bytes().to_vec();
    let n = buf.len();
    buf.extend_from_slice(&INVITE.as_bytes()[..20]);
    assert_eq!(frame(&buf, 65535), Frame::Message(n));
    assert_eq!(frame(&buf[n..], 65535), Frame::Incomplete);
    assert_eq!(frame(&INVITE.as_bytes()[..n - 2], 65535), Frame::Incomplete);
    assert!(matches!(frame(INVITE.as_bytes(), 100), Frame::Invalid(_)));
    let bad = INVITE.replace("Content-Length: 4", "Content-Length: x");
    assert!(matches!(frame(bad.as_bytes(), 65535), Frame::Invalid(_)));
}

#[test]
fn header_set_and_remove() {
    let mut h = Headers::default();
    h.push(HeaderName::Via, "a");
    h.push(HeaderName::To, "t");
    h.push(HeaderName::Via, "b");
    h.set(HeaderName::Via, "c");
    assert_eq!(h.get_all(&HeaderName::Via).collect::<Vec<_>>(), vec!["c"]);
    h.push_front(HeaderName::Via, "z");
    assert_eq!(h.remove_first(&HeaderName::Via).as_deref(), Some("z"));
    assert_eq!(
        HeaderName::from_wire("x-foo"),
        HeaderName::Other("X-Foo".into())
    );
    assert_eq!(HeaderName::from_wire("i"), HeaderName::CallId);
    assert_eq!(HeaderName::from_wire("call-id"), HeaderName::CallId);
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes);
        let _ = frame(&bytes, 300);
    }

    #[test]
    fn mutated_invites_never_panic(pos in 0usize..400, b in any::<u8>(), cut in 0usize..450) {
        let mut m = INVITE.as_bytes().to_vec();
        let p = pos % m.len();
        m[p] = b;
        m.truncate(cut.min(m.len()));
        if let Ok(msg) = parse(&m) {
            // Whatever parses prints and parses again to the same thing.
            let again = parse(&msg.to_bytes()).expect("printed message parses");
            prop_assert_eq!(again.to_bytes(), msg.to_bytes());
        }
    }
}
