//! End-to-end calls through a real `switchboard` process with SIPp peers.
//!
//! The call path: a SIPp UAS registers as 1001 (digest) with its own port as
//! Contact; a SIPp UAC on 127.0.0.1 (the demo trunk `demo-carrier` accepts
//! that source without auth) INVITEs sip:1001@switchboard; Switchboard, a
//! B2BUA, calls the registered Contact and relays the call both ways.
//!
//! Each test starts its own switchboard on free loopback ports. SIPp's exit
//! code 0 means every call of the run followed its scenario; any unexpected
//! message, timeout or missing retransmission answer fails it.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

const USER: &str = "1001";
const PASS: &str = "secret1001";

/// Starts a UAS, registers it as 1001 over `transport`, runs the caller to
/// completion, then waits (bounded) for the UAS. Returns (caller, callee).
fn call_through(
    sw: &Switchboard,
    dir: &TempDir,
    uas_scenario: &str,
    uas_extra: &[&str],
    caller: Sipp,
    calls: u64,
    transport: Transport,
) -> (SippRun, SippRun) {
    let uas = start_uas(dir, "uas", uas_scenario, calls, uas_extra, transport);
    let reg = register_with(sw, dir, "register.xml", USER, PASS, uas.port, transport);
    reg.assert_ok(Some(1));
    let uac = caller.transport(transport).run(dir);
    // The callee finishes shortly after the caller (timewait included).
    let uas = uas.wait_for(Duration::from_secs(20));
    (uac, uas)
}

/// No call left in Switchboard once both sides are done.
fn assert_no_active_calls(sw: &Switchboard) {
    let v = sw.wait_metric("switchboard_calls_active", Duration::from_secs(10), |v| {
        v == 0.0
    });
    assert_eq!(
        v,
        Some(0.0),
        "switchboard_calls_active after the calls\n{}",
        sw.metrics()
    );
}

/// (a) 500 calls at 50 calls/s to a registered SIPp UAS, none may fail.
#[test]
fn five_hundred_calls_to_registered_user() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("calls500");
    let caller = uac("uac", "uac_call.xml", &sw, USER, 500)
        .args(["-r", "50", "-l", "50", "-d", "200"])
        .timeout(Duration::from_secs(120));
    let (uac, uas) = call_through(
        &sw,
        &dir,
        "uas_answer.xml",
        &[],
        caller,
        500,
        Transport::Udp,
    );
    uac.assert_ok(Some(500));
    uas.assert_ok(Some(500));
    assert_no_active_calls(&sw);
}

/// (b) The caller cancels while the callee rings: the CANCEL reaches the
/// callee (200 + 487 there), the caller gets 200 for its CANCEL and 487.
#[test]
fn cancel_before_answer_reaches_callee() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("cancel");
    let caller = uac("uac", "uac_cancel.xml", &sw, USER, 3).args(["-r", "5", "-l", "3"]);
    let (uac, uas) = call_through(&sw, &dir, "uas_ring.xml", &[], caller, 3, Transport::Udp);
    uac.assert_ok(Some(3));
    uas.assert_ok(Some(3));
    assert_no_active_calls(&sw);
}

/// (c) The callee hangs up: its BYE reaches the caller, who answers 200.
#[test]
fn bye_from_callee_reaches_caller() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("calleebye");
    let caller = uac("uac", "uac_callee_hangs_up.xml", &sw, USER, 3).args(["-r", "5", "-l", "3"]);
    let (uac, uas) = call_through(
        &sw,
        &dir,
        "uas_bye.xml",
        &["-d", "500"],
        caller,
        3,
        Transport::Udp,
    );
    uac.assert_ok(Some(3));
    uas.assert_ok(Some(3));
    assert_no_active_calls(&sw);
}

/// (d) A busy callee (486) is reported to the caller as 486, ACKed on both legs.
#[test]
fn busy_callee_gives_caller_486() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("busy");
    let caller = uac("uac", "uac_busy.xml", &sw, USER, 3).args(["-r", "5", "-l", "3"]);
    let (uac, uas) = call_through(&sw, &dir, "uas_busy.xml", &[], caller, 3, Transport::Udp);
    uac.assert_ok(Some(3));
    uas.assert_ok(Some(3));
    assert_no_active_calls(&sw);
}

/// (e) 100 calls with 10 % of SIPp's packets lost on both sides: SIPp and
/// Switchboard retransmit, and every call completes.
///
/// The callee is `uas_answer_lossy.xml`: its ACK is optional, because with
/// loss the caller's BYE can overtake Switchboard's (lost, then
/// retransmitted) ACK, which RFC 3261 allows and strict SIPp would call
/// unexpected. Calls are held 2 s so that retransmissions settle first.
#[test]
fn calls_survive_ten_percent_loss() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("lossy");
    let caller = uac("uac", "uac_call.xml", &sw, USER, 100)
        .args(["-r", "10", "-l", "100", "-d", "2000", "-lost", "10"])
        .timeout(Duration::from_secs(120));
    let (uac, uas) = call_through(
        &sw,
        &dir,
        "uas_answer_lossy.xml",
        &["-lost", "10"],
        caller,
        100,
        Transport::Udp,
    );
    uac.assert_ok(Some(100));
    uas.assert_ok(Some(100));
    assert!(
        uac.stat("Retransmissions(C)").unwrap_or(0) > 0,
        "a 10 % lossy run without a single retransmission did not lose anything\n{}",
        uac.report()
    );
    assert_no_active_calls(&sw);
}

/// (f) A REGISTER with the wrong password is refused (401/403 to the
/// answered challenge), and it leaves no binding: a call to 1001 gets 480.
#[test]
fn register_with_wrong_password_is_refused() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("badpass");
    let contact = free_port();
    let reg = register_with(
        &sw,
        &dir,
        "register_badpass.xml",
        USER,
        "not-the-password",
        contact,
        Transport::Udp,
    );
    reg.assert_ok(Some(1));
    let call = uac("uac480", "uac_480.xml", &sw, USER, 1).run(&dir);
    call.assert_ok(Some(1));
    // The right password still works afterwards.
    register(&sw, &dir, USER, PASS, contact);
}

/// (g) A trunk caller may not dial out through the trunk (403), and an
/// unknown number is 404.
#[test]
fn trunk_caller_to_plus_number_403_and_unknown_number_404() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("rejects");
    let forbidden = uac("uac403", "uac_403.xml", &sw, "+15550100", 1).run(&dir);
    forbidden.assert_ok(Some(1));
    let unknown = uac("uac404", "uac_404.xml", &sw, "7777", 1).run(&dir);
    unknown.assert_ok(Some(1));
}

/// (h) A malformed request gets a 400 whose reason says what is wrong;
/// garbage is survived; a call afterwards works.
#[test]
fn malformed_message_gets_400_and_service_continues() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("malformed");
    let before = sw
        .metric("switchboard_sip_parse_errors_total")
        .unwrap_or(0.0);

    let sip_port = sw.sip_port;
    let answer = udp_exchange(
        &sw,
        |port| {
            format!(
                "INVITE sip:1001@127.0.0.1:{sip_port} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-malformed-1\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:mallory@127.0.0.1>;tag=m1\r\n\
                 To: <sip:1001@127.0.0.1>\r\n\
                 Call-ID: malformed-1@127.0.0.1\r\n\
                 CSeq: notanumber INVITE\r\n\
                 Content-Length: 0\r\n\r\n"
            )
            .into_bytes()
        },
        Duration::from_secs(3),
    )
    .expect("no answer to an INVITE with a malformed CSeq");
    let status_line = answer.lines().next().unwrap_or_default().to_string();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("SIP/2.0"), "answer: {answer}");
    assert_eq!(parts.next(), Some("400"), "answer: {answer}");
    let reason = parts.next().unwrap_or_default();
    assert!(
        reason.to_ascii_lowercase().contains("cseq"),
        "the 400's reason phrase should name the CSeq header: {status_line:?}"
    );
    assert!(
        answer.contains("Call-ID: malformed-1@127.0.0.1")
            && answer.contains("branch=z9hG4bK-malformed-1"),
        "the 400 should echo Call-ID and Via: {answer}"
    );

    // Garbage and truncated messages: no answer is required, survival is.
    for junk in [
        &b"\x00\x01\x02 not sip at all\r\n\r\n"[..],
        b"INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nContent-Length: 500\r\n\r\nshort",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"\r\n\r\n",
    ] {
        let _ = udp_exchange(&sw, |_| junk.to_vec(), Duration::from_millis(200));
    }
    assert_eq!(sw.health(), Some(200), "health after malformed input");
    let after = sw
        .metric("switchboard_sip_parse_errors_total")
        .unwrap_or(0.0);
    assert!(
        after >= before + 2.0,
        "parse errors counted: before {before}, after {after}"
    );

    let caller = uac("uac", "uac_call.xml", &sw, USER, 1).args(["-d", "200"]);
    let (uac, uas) = call_through(&sw, &dir, "uas_answer.xml", &[], caller, 1, Transport::Udp);
    uac.assert_ok(Some(1));
    uas.assert_ok(Some(1));
}

/// (i) `switchboard check` reports a broken profile as file:line:col lines
/// and fails; the demo profile passes.
#[test]
fn check_reports_broken_profile_with_positions() {
    let dir = TempDir::new("check");
    let good = repo().join("sip-profiles/default.yaml");
    let text = fs::read_to_string(&good).unwrap();

    // An unknown top-level field after `realm:`, and a route to a trunk that
    // does not exist.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let realm = lines
        .iter()
        .position(|l| l.starts_with("realm:"))
        .expect("realm line");
    lines.insert(realm + 1, "bogus_setting: 42".to_string());
    let route = lines
        .iter()
        .position(|l| l.contains("{ trunk: demo-carrier }") && l.trim_start().starts_with("- {"))
        .expect("a route to demo-carrier");
    lines[route] = lines[route].replace("{ trunk: demo-carrier }", "{ trunk: no-such-carrier }");
    let unknown_line = realm + 2; // 1-based
    let route_line = route + 1;
    let bad = dir.join("broken.yaml");
    fs::write(&bad, lines.join("\n") + "\n").unwrap();

    let run = |profile: &std::path::Path| {
        std::process::Command::new(switchboard_bin())
            .arg("check")
            .arg("--profile")
            .arg(profile)
            .arg("--flows")
            .arg(repo().join("ivr-flows"))
            .output()
            .expect("run switchboard check")
    };

    let ok = run(&good);
    assert!(
        ok.status.success(),
        "check of the demo profile failed: {}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );

    let out = run(&bad);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "check accepted a broken profile:\n{all}"
    );
    let prefix = format!("{}:", bad.display());
    let positions: Vec<(usize, usize)> = all
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let mut it = rest.splitn(3, ':');
            let line = it.next()?.parse().ok()?;
            let col = it.next()?.parse().ok()?;
            let msg = it.next()?;
            (!msg.trim().is_empty()).then_some((line, col))
        })
        .collect();
    for (what, want) in [
        ("unknown field", unknown_line),
        ("unknown trunk", route_line),
    ] {
        assert!(
            positions
                .iter()
                .any(|&(line, col)| line == want && col >= 1),
            "no `{prefix}{want}:COL: message` line for the {what}; output:\n{all}"
        );
    }
}

/// (j) The same call over TCP: registration, caller and callee all on TCP.
#[test]
fn calls_over_tcp() {
    let _serial = serial();
    let sw = Switchboard::start();
    let dir = TempDir::new("tcp");
    let caller =
        uac("uac", "uac_call.xml", &sw, USER, 10).args(["-r", "10", "-l", "10", "-d", "200"]);
    let (uac, uas) = call_through(&sw, &dir, "uas_answer.xml", &[], caller, 10, Transport::Tcp);
    uac.assert_ok(Some(10));
    uas.assert_ok(Some(10));
    assert_no_active_calls(&sw);
}
