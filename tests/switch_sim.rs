//! Whole calls through `switchboard::call::Switch` on simulated time, over a seeded lossy
//! network, with simulated UAs built on the crate's transaction layer (see `sim/mod.rs`).
//! Public API only; no sockets, no sleeping.

mod sim;

use sim::*;
use switchboard::media::engine::MediaCommand;
use switchboard::sdp::{self, Direction};
use switchboard::sip::auth::{parse_digest, Algorithm};
use switchboard::sip::message::{HeaderName, Method};

/// Parses an SDP the switch sent and checks it is anchored on the switch: its address, one of
/// its media ports.
fn anchored(body: &[u8]) -> sdp::Sdp {
    let s = sdp::parse(std::str::from_utf8(body).expect("UTF-8 SDP")).expect("valid SDP");
    let m = &s.media[0];
    let c = s.connection_for(m).expect("a connection address");
    assert_eq!(c.address, "127.0.0.1");
    assert!(
        m.port >= 40000,
        "a port of the switch's media engine, not the peer's: {}",
        m.port
    );
    s
}

const DEMO: &str = include_str!("../sip-profiles/default.yaml");

const CALLER: &str = "127.0.0.1:5080";
const PHONE: &str = "127.0.0.1:5070";
/// A source that is not a trunk, for messages nobody should accept.
const STRANGER: &str = "127.0.0.9:5080";
/// Where raw, hand-written datagrams come from (nobody listens there).
const PROBE: &str = "127.0.0.1:5099";

struct World {
    sim: Sim,
    /// The trunk caller (source 127.0.0.1 is demo-carrier's allowed address).
    caller: usize,
    /// Extension 1001, registered with Contact 127.0.0.1:5070.
    phone: usize,
    /// The carrier's side of demo-carrier (calls out land here).
    carrier: usize,
}

impl World {
    fn new(profile: &str, seed: u64, net: Net) -> World {
        let mut sim = Sim::new(profile, seed, net);
        let caller = sim.add_ua(Ua::new("caller", CALLER, "+4930123456", None, seed ^ 0xa));
        let phone = sim.add_ua(Ua::new(
            "phone",
            PHONE,
            "1001",
            Some("secret1001"),
            seed ^ 0xb,
        ));
        let carrier = sim.add_ua(Ua::new("carrier", CARRIER, "carrier", None, seed ^ 0xc));
        World {
            sim,
            caller,
            phone,
            carrier,
        }
    }

    fn demo(seed: u64) -> World {
        World::new(DEMO, seed, Net::perfect())
    }

    fn caller(&self) -> &Ua {
        self.sim.ua(self.caller)
    }
    fn phone(&self) -> &Ua {
        self.sim.ua(self.phone)
    }

    fn trace(&self) -> String {
        self.sim.transcript(80)
    }

    /// Registers 1001 answering the challenge of `alg`.
    fn register(&mut self, alg: Algorithm) {
        let p = self.phone;
        let now = self.sim.now;
        self.sim.ua_mut(p).digest = alg;
        self.sim.ua_mut(p).register(now);
        let done = self
            .sim
            .within(secs(40), |s| s.ua(p).reg.final_status().is_some());
        assert!(done, "registration never finished\n{}", self.trace());
        assert_eq!(
            self.phone().reg.final_status(),
            Some(200),
            "registration failed: {:?}\n{}",
            self.phone().reg,
            self.trace()
        );
    }

    /// The trunk caller calls `number`; returns the caller's dialog.
    fn dial(&mut self, number: &str) -> usize {
        let c = self.caller;
        let now = self.sim.now;
        self.sim.ua_mut(c).invite(now, number)
    }

    /// Trunk caller → 1001, until both legs are ACKed. Returns (caller dialog, phone dialog).
    fn call_1001(&mut self) -> (usize, usize) {
        let a = self.dial("1001");
        let (c, p) = (self.caller, self.phone);
        let up = self.sim.within(secs(20), |s| {
            s.ua(c).dialogs[a].state == DialogState::Confirmed
                && s.ua(p)
                    .dialogs
                    .iter()
                    .any(|d| d.role == Role::Uas && d.acks_received > 0)
        });
        assert!(up, "call to 1001 did not come up\n{}", self.trace());
        let b = self
            .phone()
            .dialogs
            .iter()
            .rposition(|d| d.role == Role::Uas && d.acks_received > 0)
            .expect("callee dialog");
        (a, b)
    }

    /// The caller hangs up; waits until both sides saw the BYE through.
    fn caller_hangs_up(&mut self, a: usize, b: usize) {
        let (c, p) = (self.caller, self.phone);
        let now = self.sim.now;
        self.sim.ua_mut(c).bye(now, a);
        let done = self.sim.within(secs(40), |s| {
            s.ua(c).dialogs[a].bye_status.is_some() && s.ua(p).dialogs[b].bye_received.is_some()
        });
        assert!(done, "BYE did not go through\n{}", self.trace());
        assert_eq!(self.caller().dialogs[a].bye_status, Some(200));
    }

    /// Lets every retransmission and linger timer run out, then checks nothing is left.
    fn settle(&mut self) {
        self.sim.run_for(64 * T1 + secs(15));
        let stats = self.sim.switch.stats();
        assert_eq!(
            stats.calls_active,
            0,
            "a call is still active\n{}",
            self.trace()
        );
        assert_eq!(
            self.sim.switch.transactions(),
            0,
            "switch transactions linger\n{}",
            self.trace()
        );
        for ua in &self.sim.uas {
            assert_eq!(ua.transactions(), 0, "{} has transactions left", ua.name);
            assert!(ua.is_idle(), "{} still retransmits", ua.name);
            assert_eq!(ua.parse_failures, 0, "{} got unparsable messages", ua.name);
            for d in &ua.dialogs {
                assert!(
                    !d.ack_timeout,
                    "{}: a 2xx was never ACKed\n{}",
                    ua.name,
                    self.trace()
                );
            }
        }
    }

    /// Datagrams from `from` to `to` that satisfy `pred`.
    fn count(&self, from: &str, to: &str, pred: impl Fn(&Datagram) -> bool) -> usize {
        self.sim.net.count(addr(from), addr(to), pred)
    }
}

fn top_via_host_port(v: &str) -> (String, Option<u16>, String) {
    let via = switchboard::sip::message::Via::parse(v).expect("Via parses");
    let branch = via.branch().unwrap_or("").to_string();
    (via.host, via.port, branch)
}

// ---------------------------------------------------------------------------------------------
// 1. Registration with digest, then a trunk call to 1001.

fn register_and_call(alg: Algorithm) {
    let mut w = World::demo(1);
    w.register(alg);

    let reg = w.phone().reg.clone();
    assert_eq!(reg.statuses, vec![401, 200]);
    assert_eq!(
        reg.challenge_algorithms,
        vec!["MD5".to_string(), "SHA-256".to_string()],
        "the 401 lists both algorithms, in the profile's order"
    );
    let creds = parse_digest(reg.authorization.as_deref().expect("sent credentials"))
        .expect("our credentials parse");
    assert_eq!(creds.algorithm().unwrap(), alg);
    assert!(
        reg.contacts.iter().any(|c| c.contains("127.0.0.1:5070")),
        "200 lists the binding: {:?}",
        reg.contacts
    );
    assert_eq!(w.sim.switch.registrations(), 1);
    assert_eq!(w.sim.switch.stats().registrations_ok, 1);

    let (a, b) = w.call_1001();

    // The callee sees an INVITE from us: our Via, our Contact, a new Call-ID, the caller's SDP.
    let invites = w.phone().requests(Method::Invite);
    assert_eq!(invites.len(), 1);
    let inv = invites[0].clone();
    let (host, port, branch) = top_via_host_port(inv.headers.get(&HeaderName::Via).unwrap());
    assert_eq!((host.as_str(), port), ("127.0.0.1", Some(5060)));
    assert!(branch.starts_with("z9hG4bK"), "RFC 3261 branch: {branch}");
    let contact = inv.contacts().unwrap();
    assert_eq!(contact.len(), 1);
    assert_eq!(contact[0].uri.host_port(), "127.0.0.1:5060");
    assert_ne!(
        inv.call_id().unwrap(),
        w.caller().dialogs[a].call_id,
        "B2BUA: own Call-ID"
    );
    assert_eq!(inv.uri.user.as_deref(), Some("1001"));
    // Media is anchored: the callee gets our own offer, on our address and a port of ours.
    let offer = anchored(&inv.body);
    assert_eq!(offer.media[0].formats[0], "0", "the caller's codec first");

    // The caller sees 100, 180, then 200 with the callee's SDP.
    let caller_dialog = &w.caller().dialogs[a];
    let statuses = &caller_dialog.invite_statuses;
    let pos = |s: u16| statuses.iter().position(|x| *x == s);
    assert!(
        pos(100) < pos(180) && pos(180) < pos(200) && pos(100).is_some(),
        "caller saw {statuses:?}"
    );
    let ok = w
        .caller()
        .responses(Method::Invite)
        .into_iter()
        .find(|r| r.status == 200)
        .unwrap()
        .clone();
    let answer = anchored(&ok.body);
    assert_eq!(answer.media[0].formats[0], "0");
    assert_eq!(ok.content_type().as_deref(), Some("application/sdp"));
    assert_eq!(w.phone().dialogs[b].acks_received, 1);
    assert_eq!(w.sim.switch.stats().calls_active, 1);

    w.caller_hangs_up(a, b);
    let bye = w.phone().requests(Method::Bye)[0].clone();
    assert_eq!(bye.call_id().unwrap(), inv.call_id().unwrap());
    assert_eq!(
        bye.to().unwrap().tag(),
        Some(w.phone().dialogs[b].local_tag.as_str())
    );

    w.settle();
    let stats = w.sim.switch.stats();
    assert_eq!((stats.calls_started, stats.calls_answered), (1, 1));
    assert_eq!(stats.calls_active, 0);
}

#[test]
fn register_md5_then_trunk_call_to_1001() {
    register_and_call(Algorithm::Md5);
}

#[test]
fn register_sha256_then_trunk_call_to_1001() {
    register_and_call(Algorithm::Sha256);
}

// ---------------------------------------------------------------------------------------------
// 2. BYE from the callee.

#[test]
fn bye_from_callee_reaches_caller() {
    let mut w = World::demo(2);
    w.register(Algorithm::Md5);
    let (a, b) = w.call_1001();
    let (c, p) = (w.caller, w.phone);
    let now = w.sim.now;
    w.sim.ua_mut(p).bye(now, b);
    let done = w.sim.within(secs(10), |s| {
        s.ua(p).dialogs[b].bye_status.is_some() && s.ua(c).dialogs[a].bye_received.is_some()
    });
    assert!(done, "callee's BYE did not reach the caller\n{}", w.trace());
    assert_eq!(w.phone().dialogs[b].bye_status, Some(200));
    let bye = w.caller().requests(Method::Bye)[0].clone();
    let d = &w.caller().dialogs[a];
    assert_eq!(bye.call_id().unwrap(), d.call_id);
    assert_eq!(bye.to().unwrap().tag(), Some(d.local_tag.as_str()));
    assert_eq!(bye.from().unwrap().tag(), d.remote_tag.as_deref());
    w.settle();
}

// ---------------------------------------------------------------------------------------------
// 3. 486 relayed and ACKed on both legs, without storms.

#[test]
fn busy_callee_486_is_relayed_and_acked_on_both_legs() {
    let mut w = World::demo(3);
    w.register(Algorithm::Md5);
    let p = w.phone;
    w.sim.ua_mut(p).behaviour.answer = Answer::After(secs(1), 486);
    let start = w.sim.now;
    let a = w.dial("1001");
    let c = w.caller;
    let done = w
        .sim
        .within(secs(10), |s| s.ua(c).dialogs[a].final_status.is_some());
    assert!(done, "no final response\n{}", w.trace());
    assert_eq!(w.caller().dialogs[a].final_status, Some(486));
    w.settle();

    let is_486 = |d: &Datagram| d.is_response(486, "INVITE");
    let is_ack = |d: &Datagram| d.is_request("ACK");
    assert_eq!(
        w.count(PHONE, SWITCH, is_486),
        1,
        "callee sent 486 once\n{}",
        w.trace()
    );
    assert_eq!(
        w.count(SWITCH, PHONE, is_ack),
        1,
        "switch ACKed the 486 once\n{}",
        w.trace()
    );
    assert_eq!(
        w.count(SWITCH, CALLER, is_486),
        1,
        "caller got 486 once\n{}",
        w.trace()
    );
    assert_eq!(
        w.count(CALLER, SWITCH, is_ack),
        1,
        "caller ACKed once\n{}",
        w.trace()
    );
    // The whole call, 64*T1 after it: INVITE, 100, 180, 486, ACK on the caller's leg;
    // INVITE, 180, 486, ACK on the callee's (our test callee sends no 100).
    let call = |d: &Datagram| d.sent >= start;
    assert_eq!(w.count(CALLER, SWITCH, call), 2, "\n{}", w.trace());
    assert_eq!(w.count(SWITCH, CALLER, call), 3, "\n{}", w.trace());
    assert_eq!(w.count(SWITCH, PHONE, call), 2, "\n{}", w.trace());
    assert_eq!(w.count(PHONE, SWITCH, call), 2, "\n{}", w.trace());
    let stats = w.sim.switch.stats();
    assert_eq!((stats.calls_failed, stats.calls_active), (1, 0));
}

// ---------------------------------------------------------------------------------------------
// 4. CANCEL before answer.

#[test]
fn cancel_before_answer_is_relayed() {
    let mut w = World::demo(4);
    w.register(Algorithm::Md5);
    let (c, p) = (w.caller, w.phone);
    w.sim.ua_mut(p).behaviour.answer = Answer::Never;
    let a = w.dial("1001");
    let ringing = w.sim.within(secs(5), |s| {
        s.ua(c).dialogs[a].invite_statuses.contains(&180)
    });
    assert!(ringing, "no 180\n{}", w.trace());
    let now = w.sim.now;
    w.sim.ua_mut(c).cancel(now, a);
    let done = w.sim.within(secs(10), |s| {
        s.ua(c).dialogs[a].final_status.is_some() && s.ua(c).dialogs[a].cancel_status.is_some()
    });
    assert!(done, "CANCEL did not finish\n{}", w.trace());
    assert_eq!(w.caller().dialogs[a].cancel_status, Some(200));
    assert_eq!(w.caller().dialogs[a].final_status, Some(487));

    // The callee got the CANCEL and answered 200 + 487; the switch ACKed the 487.
    assert_eq!(w.phone().requests(Method::Cancel).len(), 1);
    let b = w.phone().uas_dialog(0).unwrap();
    assert!(w.phone().dialogs[b].cancelled);
    w.settle();
    assert_eq!(w.count(PHONE, SWITCH, |d| d.is_response(200, "CANCEL")), 1);
    assert_eq!(w.count(PHONE, SWITCH, |d| d.is_response(487, "INVITE")), 1);
    let invite_seq = w.phone().dialogs[b]
        .invite
        .as_ref()
        .unwrap()
        .cseq()
        .unwrap()
        .seq;
    assert_eq!(
        w.count(SWITCH, PHONE, |d| d.is_request("ACK")
            && d.header("CSeq") == Some(format!("{invite_seq} ACK"))),
        1,
        "switch ACKs the callee's 487\n{}",
        w.trace()
    );
    assert_eq!(w.count(CALLER, SWITCH, |d| d.is_request("ACK")), 1);
    assert_eq!(w.sim.switch.stats().calls_answered, 0);
}

// ---------------------------------------------------------------------------------------------
// 5. CANCEL/200 race at the switch.

fn cancel_answer_race(cancel_first: bool) {
    let mut w = World::demo(5);
    w.register(Algorithm::Md5);
    let (c, p) = (w.caller, w.phone);
    w.sim.ua_mut(p).behaviour.answer = Answer::Never;
    let a = w.dial("1001");
    let ringing = w.sim.within(secs(5), |s| {
        s.ua(c).dialogs[a].invite_statuses.contains(&180)
    });
    assert!(ringing, "no 180\n{}", w.trace());
    let b = w.phone().uas_dialog(0).unwrap();

    // Both hops take 10 ms: a CANCEL sent by the caller and a 200 sent by the callee at the
    // same instant reach the switch at the same instant, in the order they were sent.
    let race = w.sim.now + ms(100);
    w.sim.run_before(race);
    if cancel_first {
        w.sim.ua_mut(c).cancel(race, a);
        w.sim.flush();
        w.sim.ua_mut(p).answer(race, b, 200);
    } else {
        w.sim.ua_mut(p).answer(race, b, 200);
        w.sim.flush();
        w.sim.ua_mut(c).cancel(race, a);
    }
    w.sim.flush();
    let both_at_switch: Vec<_> = w
        .sim
        .net
        .log
        .iter()
        .filter(|d| d.sent == race && d.to == addr(SWITCH))
        .map(|d| (d.at, d.start_line()))
        .collect();
    assert_eq!(both_at_switch.len(), 2, "{both_at_switch:?}");
    assert_eq!(
        both_at_switch[0].0, both_at_switch[1].0,
        "same arrival instant"
    );

    let settled = w
        .sim
        .within(secs(10), |s| s.ua(c).dialogs[a].final_status.is_some());
    assert!(settled, "caller got no final response\n{}", w.trace());
    let outcome = w.caller().dialogs[a].final_status.unwrap();
    assert_eq!(
        w.caller().dialogs[a].cancel_status,
        Some(200),
        "\n{}",
        w.trace()
    );
    match outcome {
        487 => {
            // The switch must ACK the callee's 200 and then BYE it.
            let done = w.sim.within(secs(10), |s| {
                s.ua(p).dialogs[b].acks_received > 0 && s.ua(p).dialogs[b].bye_received.is_some()
            });
            assert!(
                done,
                "caller got 487, but the callee's 200 was not ACKed and BYEd \
                 (acks {}, bye {:?})\n{}",
                w.phone().dialogs[b].acks_received,
                w.phone().dialogs[b].bye_received,
                w.trace()
            );
        }
        200 => {
            // The call is up: both legs ACKed; hang up normally.
            let up = w
                .sim
                .within(secs(5), |s| s.ua(p).dialogs[b].acks_received > 0);
            assert!(
                up,
                "caller got 200 but the callee got no ACK\n{}",
                w.trace()
            );
            assert_eq!(w.sim.switch.stats().calls_active, 1);
            w.caller_hangs_up(a, b);
        }
        other => panic!("caller got {other} in the CANCEL/200 race\n{}", w.trace()),
    }
    w.settle();
}

#[test]
fn cancel_and_answer_race_cancel_reaches_switch_first() {
    cancel_answer_race(true);
}

#[test]
fn cancel_and_answer_race_answer_reaches_switch_first() {
    cancel_answer_race(false);
}

// ---------------------------------------------------------------------------------------------
// 6. Refusals and the way out.

#[test]
fn wrong_password_register_is_forbidden() {
    let mut w = World::demo(6);
    let p = w.phone;
    w.sim.ua_mut(p).password = Some("not-the-password".into());
    let now = w.sim.now;
    w.sim.ua_mut(p).register(now);
    let done = w
        .sim
        .within(secs(10), |s| s.ua(p).reg.final_status().is_some());
    assert!(done, "\n{}", w.trace());
    assert_eq!(w.phone().reg.statuses, vec![401, 403]);
    assert_eq!(w.sim.switch.registrations(), 0);
    assert!(w.sim.switch.stats().auth_failures >= 1);
    assert_eq!(w.sim.switch.stats().registrations_ok, 0);
}

fn final_status_of_call_to(w: &mut World, number: &str) -> u16 {
    let a = w.dial(number);
    let c = w.caller;
    let done = w
        .sim
        .within(secs(10), |s| s.ua(c).dialogs[a].final_status.is_some());
    assert!(done, "no final response to {number}\n{}", w.trace());
    w.caller().dialogs[a].final_status.unwrap()
}

#[test]
fn trunk_caller_refusals() {
    let mut w = World::demo(7);
    // 1002 exists but is not registered.
    assert_eq!(final_status_of_call_to(&mut w, "1002"), 480);
    // A trunk may not dial out through us.
    assert_eq!(final_status_of_call_to(&mut w, "+15550100"), 403);
    // No route.
    assert_eq!(final_status_of_call_to(&mut w, "999"), 404);
    // Flows and queues are not built yet.
    for n in ["100", "200"] {
        assert_eq!(final_status_of_call_to(&mut w, n), 480, "number {n}");
    }
    // The echo test answers (the caller's media is looped by the engine); then hang up.
    assert_eq!(final_status_of_call_to(&mut w, "600"), 200);
    let (c, a) = (w.caller, w.caller().dialogs.len() - 1);
    let now = w.sim.now;
    w.sim.ua_mut(c).send_in_dialog(now, a, Method::Bye, None);
    let done = w.sim.within(secs(10), |s| {
        s.ua(c).dialogs[a].outcome(Method::Bye).is_some()
    });
    assert!(done, "echo call BYE\n{}", w.trace());
    w.settle();
    assert_eq!(
        w.sim.net.count(addr(SWITCH), addr(CARRIER), |_| true),
        0,
        "nothing went to the carrier"
    );
}

#[test]
fn authenticated_local_user_dials_out_via_carrier() {
    let mut w = World::demo(8);
    w.register(Algorithm::Sha256);
    let (p, k) = (w.phone, w.carrier);
    w.sim.ua_mut(p).digest = Algorithm::Sha256;
    let now = w.sim.now;
    let a = w.sim.ua_mut(p).invite(now, "+15550100");
    let up = w.sim.within(secs(10), |s| {
        s.ua(p).dialogs[a].state == DialogState::Confirmed
            && s.ua(k).dialogs.iter().any(|d| d.acks_received > 0)
    });
    assert!(up, "outbound call did not come up\n{}", w.trace());
    let d = &w.phone().dialogs[a];
    assert_eq!(d.invite_statuses.first(), Some(&100));
    assert!(
        d.invite_statuses.contains(&407),
        "challenged first: {:?}",
        d.invite_statuses
    );
    assert_eq!(d.final_status, Some(200));
    let inv = w.sim.ua(k).requests(Method::Invite)[0].clone();
    assert_eq!(inv.uri.user.as_deref(), Some("+15550100"));
    assert_eq!(inv.uri.host_port(), "127.0.0.1:5090");
    assert!(
        inv.headers.get(&HeaderName::ProxyAuthorization).is_none(),
        "credentials not leaked"
    );
    let kd = w.sim.ua(k).uas_dialog(0).unwrap();
    let now = w.sim.now;
    w.sim.ua_mut(p).bye(now, a);
    let done = w
        .sim
        .within(secs(10), |s| s.ua(k).dialogs[kd].bye_received.is_some());
    assert!(done, "BYE did not reach the carrier\n{}", w.trace());
    w.settle();
}

// ---------------------------------------------------------------------------------------------
// 7. Malformed datagrams.

#[test]
fn malformed_request_gets_400_naming_the_problem_and_garbage_is_ignored() {
    let mut w = World::demo(9);
    w.register(Algorithm::Md5);
    // Let the REGISTER transactions finish so any transaction left is the bad request's.
    w.sim.run_for(64 * T1);
    assert_eq!(w.sim.switch.transactions(), 0);
    let before = w.sim.switch.stats();
    let bad = "INVITE sip:1001@127.0.0.1:5060 SIP/2.0\r\n\
               Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKbadcseq1\r\n\
               Max-Forwards: 70\r\n\
               From: <sip:mallory@127.0.0.1:5099>;tag=m1\r\n\
               To: <sip:1001@switchboard.local>\r\n\
               Call-ID: bad-cseq-1@127.0.0.1\r\n\
               CSeq: abc\r\n\
               Content-Length: 0\r\n\r\n";
    w.sim.inject(addr(PROBE), bad.as_bytes());
    w.sim.run_for(secs(1));
    let answers: Vec<Datagram> = w
        .sim
        .net
        .between(addr(SWITCH), addr(PROBE))
        .cloned()
        .collect();
    assert_eq!(answers.len(), 1, "one answer\n{}", w.trace());
    assert_eq!(answers[0].status(), Some(400), "{}", answers[0].text());
    let reason = answers[0].reason().unwrap_or_default();
    assert!(
        reason.contains("CSeq"),
        "reason names the problem: {reason:?}"
    );
    assert_eq!(
        answers[0].header("Call-ID").as_deref(),
        Some("bad-cseq-1@127.0.0.1")
    );
    let after = w.sim.switch.stats();
    assert_eq!(after.parse_errors, before.parse_errors + 1);
    assert_eq!(
        after.bad_requests_answered,
        before.bad_requests_answered + 1
    );
    assert_eq!(w.sim.switch.transactions(), 0, "a stateless answer");

    // Garbage: no answer, no panic, counted.
    let garbage: [&[u8]; 4] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nHost: switch\r\n\r\n",
        b"\xff\xfe\xfd SIP/2.0 \x00\x00\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
    ];
    for g in garbage {
        w.sim.inject(addr(PROBE), g);
    }
    w.sim.run_for(secs(1));
    assert_eq!(
        w.sim.net.between(addr(SWITCH), addr(PROBE)).count(),
        1,
        "garbage gets no answer\n{}",
        w.trace()
    );
    assert_eq!(
        w.sim.switch.stats().parse_errors,
        after.parse_errors + garbage.len() as u64
    );

    // The switch still works.
    let (a, b) = w.call_1001();
    w.caller_hangs_up(a, b);
    w.settle();
}

// ---------------------------------------------------------------------------------------------
// 8. In-dialog BYE from a stranger.

#[test]
fn in_dialog_bye_from_stranger_is_refused_and_call_stays_up() {
    let mut w = World::demo(10);
    w.register(Algorithm::Md5);
    let (a, b) = w.call_1001();
    let d = w.caller().dialogs[a].clone();
    let bye = format!(
        "BYE {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {STRANGER};branch=z9hG4bKstranger1\r\n\
         Max-Forwards: 70\r\n\
         From: {from};tag={ftag}\r\n\
         To: {to};tag={ttag}\r\n\
         Call-ID: {cid}\r\n\
         CSeq: {seq} BYE\r\n\
         Content-Length: 0\r\n\r\n",
        target = d.remote_target,
        from = d.local_uri,
        ftag = d.local_tag,
        to = d.remote_uri,
        ttag = d.remote_tag.as_deref().unwrap(),
        cid = d.call_id,
        seq = d.local_cseq + 10,
    );
    w.sim.inject(addr(STRANGER), bye.as_bytes());
    w.sim.run_for(secs(2));
    let answers: Vec<Datagram> = w
        .sim
        .net
        .between(addr(SWITCH), addr(STRANGER))
        .cloned()
        .collect();
    assert_eq!(answers.len(), 1, "\n{}", w.trace());
    assert_eq!(answers[0].status(), Some(403), "{}", answers[0].text());
    let stats = w.sim.switch.stats();
    assert_eq!(stats.foreign_in_dialog_rejected, 1);
    assert_eq!(stats.calls_active, 1, "call still up");
    assert!(
        w.phone().requests(Method::Bye).is_empty(),
        "callee not hung up"
    );
    assert!(w.caller().dialogs[a].bye_received.is_none());
    // The real caller can still hang up.
    w.caller_hangs_up(a, b);
    w.settle();
}

// ---------------------------------------------------------------------------------------------
// 9. Re-INVITE (hold), UPDATE and INFO are relayed.

#[test]
fn reinvite_update_and_info_are_relayed() {
    let mut w = World::demo(11);
    w.register(Algorithm::Md5);
    let (a, b) = w.call_1001();
    let (c, p) = (w.caller, w.phone);

    // Hold: re-INVITE with a=sendonly.
    let hold = sdp("+4930123456", 50800, "sendonly");
    let now = w.sim.now;
    w.sim
        .ua_mut(c)
        .send_in_dialog(now, a, Method::Invite, Some(("application/sdp", &hold)));
    let done = w.sim.within(secs(10), |s| {
        s.ua(c).dialogs[a].outcome(Method::Invite).is_some()
            && s.ua(p).dialogs[b].acks_received >= 2
    });
    assert!(done, "re-INVITE not completed\n{}", w.trace());
    let reinvites = w.phone().requests(Method::Invite);
    assert_eq!(reinvites.len(), 2);
    let re = reinvites[1];
    let re_offer = anchored(&re.body);
    assert_eq!(
        re_offer.media[0].direction(&re_offer.attributes),
        Direction::SendOnly,
        "callee got a hold offer"
    );
    assert_eq!(
        re.to().unwrap().tag(),
        Some(w.phone().dialogs[b].local_tag.as_str()),
        "in the callee's dialog"
    );
    let out = w.caller().dialogs[a]
        .outcome(Method::Invite)
        .unwrap()
        .clone();
    assert_eq!(out.status, 200);
    let held = anchored(&out.body);
    assert_eq!(
        held.media[0].direction(&held.attributes),
        Direction::RecvOnly,
        "caller's hold answered"
    );
    w.sim.run_for(secs(5));
    let reinvite_seq = out.cseq;
    assert_eq!(
        w.count(SWITCH, CALLER, |d| d.is_response(200, "INVITE")
            && d.header("CSeq") == Some(format!("{reinvite_seq} INVITE"))),
        1,
        "the caller's ACK stopped the 200\n{}",
        w.trace()
    );
    assert_eq!(
        w.phone().dialogs[b].retransmitted_2xx,
        0,
        "the switch ACKed the callee's 200"
    );

    // UPDATE with an offer (off hold).
    let unhold = sdp("+4930123456", 50800, "sendrecv");
    let now = w.sim.now;
    w.sim
        .ua_mut(c)
        .send_in_dialog(now, a, Method::Update, Some(("application/sdp", &unhold)));
    let done = w.sim.within(secs(10), |s| {
        s.ua(c).dialogs[a].outcome(Method::Update).is_some()
    });
    assert!(done, "UPDATE not completed\n{}", w.trace());
    let up = w.phone().requests(Method::Update);
    assert_eq!(up.len(), 1);
    let up_offer = anchored(&up[0].body);
    assert_eq!(
        up_offer.media[0].direction(&up_offer.attributes),
        Direction::SendRecv
    );
    let out = w.caller().dialogs[a]
        .outcome(Method::Update)
        .unwrap()
        .clone();
    assert_eq!(out.status, 200);
    let unheld = anchored(&out.body);
    assert_eq!(
        unheld.media[0].direction(&unheld.attributes),
        Direction::SendRecv
    );

    // INFO (DTMF) from the caller, then from the callee.
    let dtmf = "Signal=5\r\nDuration=160\r\n";
    let now = w.sim.now;
    w.sim
        .ua_mut(c)
        .send_in_dialog(now, a, Method::Info, Some(("application/dtmf-relay", dtmf)));
    let done = w.sim.within(secs(10), |s| {
        s.ua(c).dialogs[a].outcome(Method::Info).is_some()
    });
    assert!(done, "INFO not completed\n{}", w.trace());
    assert_eq!(
        w.caller().dialogs[a].outcome(Method::Info).unwrap().status,
        200
    );
    // Both legs negotiated telephone-event: the digit goes on as RFC 4733, not as INFO.
    assert!(w.phone().requests(Method::Info).is_empty());
    let digits_sent = |w: &World| {
        w.sim
            .media
            .log()
            .commands
            .iter()
            .filter(|c| matches!(c, MediaCommand::SendDigit { digit: '5', .. }))
            .count()
    };
    assert_eq!(digits_sent(&w), 1);

    let now = w.sim.now;
    w.sim
        .ua_mut(p)
        .send_in_dialog(now, b, Method::Info, Some(("application/dtmf-relay", dtmf)));
    let done = w.sim.within(secs(10), |s| {
        s.ua(p).dialogs[b].outcome(Method::Info).is_some()
    });
    assert!(done, "INFO from callee not completed\n{}", w.trace());
    assert_eq!(
        w.phone().dialogs[b].outcome(Method::Info).unwrap().status,
        200
    );
    assert!(w.caller().requests(Method::Info).is_empty());
    assert_eq!(digits_sent(&w), 2);
    let summary = w.sim.switch.call_summaries(w.sim.now);
    assert_eq!(summary.last().unwrap().digits, "55");

    w.caller_hangs_up(a, b);
    w.settle();
}

// ---------------------------------------------------------------------------------------------
// 10. Loss.

/// Registration + call + BYE over a lossy network. Ok(()) when everything completed as it
/// should; Err(why) otherwise. Panics only if state lingers after the run + 64*T1.
fn lossy_run(seed: u64, loss: f64) -> Result<(), String> {
    let net = Net::new(seed, loss, Delay::UniformMs(1, 40));
    let mut w = World::new(DEMO, seed, net);
    let (c, p) = (w.caller, w.phone);
    let result = (|| {
        let now = w.sim.now;
        w.sim.ua_mut(p).register(now);
        w.sim
            .within(secs(60), |s| s.ua(p).reg.final_status().is_some());
        if w.phone().reg.final_status() != Some(200) {
            return Err(format!("registration: {:?}", w.phone().reg.statuses));
        }
        let a = w.dial("1001");
        w.sim
            .within(secs(60), |s| s.ua(c).dialogs[a].final_status.is_some());
        if w.caller().dialogs[a].final_status != Some(200) {
            return Err(format!(
                "INVITE: {:?}",
                w.caller().dialogs[a].invite_statuses
            ));
        }
        // Talk for longer than the callee's 2xx retransmission window (64*T1), so a 200 that
        // never got its ACK shows as a BYE from the callee rather than hiding behind ours.
        w.sim.run_for(64 * T1 + secs(8));
        let Some(b) = w.phone().uas_dialog(0) else {
            return Err("callee has no dialog".into());
        };
        if w.phone()
            .dialogs
            .iter()
            .filter(|d| d.role == Role::Uas)
            .count()
            != 1
        {
            return Err("callee saw more than one call".into());
        }
        if w.phone().dialogs[b].ack_timeout {
            return Err("callee's 200 never got an ACK within 64*T1; the callee hung up".into());
        }
        if w.caller().dialogs[a].bye_received.is_some() || w.phone().dialogs[b].bye_status.is_some()
        {
            return Err("call ended before the caller hung up".into());
        }
        let now = w.sim.now;
        w.sim.ua_mut(c).bye(now, a);
        w.sim.within(secs(60), |s| {
            s.ua(c).dialogs[a].bye_status.is_some() && s.ua(p).dialogs[b].bye_received.is_some()
        });
        let (cd, pd) = (&w.caller().dialogs[a], &w.phone().dialogs[b]);
        if cd.bye_status != Some(200) {
            return Err(format!("caller's BYE: {:?}", cd.bye_status));
        }
        if pd.bye_received.is_none() {
            return Err("callee never got the BYE".into());
        }
        if pd.acks_received == 0 {
            return Err("callee's 200 was never ACKed".into());
        }
        if pd.ack_timeout || cd.ack_timeout {
            return Err("a 2xx retransmission gave up".into());
        }
        Ok(())
    })();
    // However it went: 64*T1 after the end, nothing may be left.
    w.sim.run_for(64 * T1);
    let stats = w.sim.switch.stats();
    assert_eq!(
        stats.calls_active,
        0,
        "seed {seed} loss {loss}: call left active ({result:?})\n{}",
        w.trace()
    );
    assert_eq!(
        w.sim.switch.transactions(),
        0,
        "seed {seed} loss {loss}: transactions linger ({result:?})\n{}",
        w.trace()
    );
    result.map_err(|e| format!("{e}\n{}", w.sim.transcript(60)))
}

fn lossy_runs(loss: f64, seeds: u64) -> (u64, Vec<(u64, String)>) {
    let mut failures = Vec::new();
    for seed in 1..=seeds {
        if let Err(e) = lossy_run(seed, loss) {
            failures.push((seed, e));
        }
    }
    let ok = seeds - failures.len() as u64;
    println!("loss {:.0}%: {ok}/{seeds} calls complete", loss * 100.0);
    (ok, failures)
}

fn describe(failures: &[(u64, String)]) -> String {
    let mut s = String::new();
    for (seed, why) in failures.iter().take(3) {
        s.push_str(&format!("--- seed {seed}: {why}\n"));
    }
    let firsts: Vec<String> = failures
        .iter()
        .map(|(seed, why)| format!("{seed}: {}", why.lines().next().unwrap_or("")))
        .collect();
    s.push_str(&format!("all failures: {firsts:?}"));
    s
}

#[test]
fn ten_percent_loss_every_call_completes() {
    let (ok, failures) = lossy_runs(0.10, 50);
    assert_eq!(ok, 50, "{}", describe(&failures));
}

#[test]
fn thirty_percent_loss_nearly_every_call_completes_and_nothing_lingers() {
    let seeds = 60;
    let (ok, failures) = lossy_runs(0.30, seeds);
    assert!(
        ok * 100 >= seeds * 95,
        "{ok}/{seeds} complete\n{}",
        describe(&failures)
    );
}

// ---------------------------------------------------------------------------------------------
// 11. Session timer ends a call whose callee died.

fn session_timer_profile() -> String {
    let p = DEMO.replace("session_expires: 30m", "session_expires: 90s");
    assert_ne!(
        p, DEMO,
        "the demo profile's timers line changed; update this test"
    );
    assert!(p.contains("min_se: 90s"));
    p
}

fn callee_dies_after_answer(callee_refreshes: bool) {
    let mut w = World::new(&session_timer_profile(), 12, Net::perfect());
    w.register(Algorithm::Md5);
    let (c, p) = (w.caller, w.phone);
    if callee_refreshes {
        w.sim.ua_mut(p).behaviour.session_expires = Some("90;refresher=uas".into());
    }
    let (a, b) = w.call_1001();
    let answered = w.caller().dialogs[a].answered_at.unwrap();
    let ok = w
        .caller()
        .responses(Method::Invite)
        .into_iter()
        .find(|r| r.status == 200)
        .unwrap()
        .clone();
    let se = ok
        .headers
        .get(&HeaderName::SessionExpires)
        .map(str::to_string);
    assert!(
        se.as_deref().is_some_and(|v| v.starts_with("90")),
        "caller's 200 carries Session-Expires: 90: {se:?}"
    );
    let _ = b;
    w.sim.ua_mut(p).dead = true;

    // Nothing ends the call before half the interval.
    w.sim.run_until(answered + secs(44), |_| false);
    assert!(
        w.caller().dialogs[a].bye_received.is_none(),
        "\n{}",
        w.trace()
    );
    assert_eq!(w.sim.switch.stats().calls_active, 1);

    // By now the INVITE transactions are gone; the call's session timer must still be armed:
    // a refresh due at +45 s, or the expiry of the callee's refreshes at +60 s.
    let next = w.sim.switch.poll_timeout();
    assert!(
        next.is_some_and(|t| t <= answered + secs(90)),
        "switch has no wake-up within the 90 s session interval: poll_timeout() = {:?} after \
         the answer (transactions: {})\n{}",
        next.map(|t| t - answered),
        w.sim.switch.transactions(),
        w.trace()
    );

    let ended = w.sim.run_until(answered + secs(130), |s| {
        s.ua(c).dialogs[a].bye_received.is_some()
    });
    assert!(
        ended,
        "no BYE to the caller within 130 s of a dead callee\n{}",
        w.trace()
    );
    let bye_at = w.caller().dialogs[a].bye_received.unwrap() - answered;
    println!(
        "session timer (callee refreshes: {callee_refreshes}): BYE to caller after {bye_at:?}"
    );
    assert!(bye_at >= secs(45), "BYE too early: {bye_at:?}");
    let to_callee_refreshes = w.count(SWITCH, PHONE, |d| {
        (d.is_request("UPDATE") || d.is_request("INVITE"))
            && d.header("Session-Expires").is_some()
            && d.sent > answered
    });
    if callee_refreshes {
        assert_eq!(
            to_callee_refreshes,
            0,
            "the callee is the refresher\n{}",
            w.trace()
        );
        assert!(
            bye_at <= secs(90),
            "non-refresher BYEs before expiry: {bye_at:?}"
        );
    } else {
        assert!(
            to_callee_refreshes > 0,
            "switch refreshes the callee\n{}",
            w.trace()
        );
    }
    assert_eq!(w.sim.switch.stats().calls_active, 0, "call gone");
    w.sim.run_for(64 * T1 + secs(15));
    assert_eq!(w.sim.switch.transactions(), 0, "\n{}", w.trace());
    assert_eq!(w.sim.switch.stats().calls_active, 0);
}

#[test]
fn session_timer_ends_call_when_callee_dies_switch_refreshes() {
    callee_dies_after_answer(false);
}

#[test]
fn session_timer_ends_call_when_callee_dies_callee_refreshes() {
    callee_dies_after_answer(true);
}

// ---------------------------------------------------------------------------------------------
// 12. 100rel.

#[test]
fn reliable_180_from_callee_is_pracked() {
    let mut w = World::demo(13);
    w.register(Algorithm::Md5);
    let p = w.phone;
    w.sim.ua_mut(p).behaviour.reliable_ringing = true;
    w.sim.ua_mut(p).behaviour.answer = Answer::After(secs(2), 200);
    let (a, b) = w.call_1001();
    let pracks = w.phone().requests(Method::Prack);
    assert_eq!(pracks.len(), 1, "one PRACK\n{}", w.trace());
    let invite = w.phone().dialogs[b].invite.clone().unwrap();
    let invite_seq = invite.cseq().unwrap().seq;
    assert_eq!(
        pracks[0].headers.get(&HeaderName::RAck),
        Some(format!("1 {invite_seq} INVITE").as_str())
    );
    assert_eq!(pracks[0].call_id().unwrap(), invite.call_id().unwrap());
    assert_eq!(
        pracks[0].to().unwrap().tag(),
        Some(w.phone().dialogs[b].local_tag.as_str())
    );
    assert_eq!(w.count(PHONE, SWITCH, |d| d.is_response(200, "PRACK")), 1);
    assert_eq!(
        w.count(PHONE, SWITCH, |d| d.is_response(180, "INVITE")),
        1,
        "PRACK arrived before the 180 needed a retransmission"
    );
    // The caller did not ask for 100rel: its 180 is not reliable.
    let ringing = w
        .caller()
        .responses(Method::Invite)
        .into_iter()
        .find(|r| r.status == 180)
        .expect("caller got 180")
        .clone();
    assert!(!ringing.has_option_tag(&HeaderName::Require, "100rel"));
    w.caller_hangs_up(a, b);
    w.settle();
}

// ---------------------------------------------------------------------------------------------
// 13. Lost ACKs for 2xx.

#[test]
fn lost_acks_from_caller_make_switch_retransmit_200_until_acked() {
    let mut net = Net::perfect();
    let caller = addr(CALLER);
    let mut dropped = 0;
    net.drop_rule = Some(Box::new(move |d: &Datagram| {
        if d.from == caller && d.is_request("ACK") && dropped < 2 {
            dropped += 1;
            return true;
        }
        false
    }));
    let mut w = World::new(DEMO, 14, net);
    w.register(Algorithm::Md5);
    let (a, b) = w.call_1001();
    w.sim.run_for(64 * T1);
    let oks: Vec<_> = w
        .sim
        .net
        .between(addr(SWITCH), caller)
        .filter(|d| d.is_response(200, "INVITE"))
        .map(|d| d.sent)
        .collect();
    let gaps: Vec<_> = oks.windows(2).map(|p| p[1] - p[0]).collect();
    assert_eq!(
        gaps,
        vec![T1, 2 * T1],
        "200 sent at 0, T1, 3*T1 and then stops\n{}",
        w.trace()
    );
    let acks = w.count(CALLER, SWITCH, |d| d.is_request("ACK"));
    assert_eq!(acks, 3, "one ACK per 200");
    assert_eq!(
        w.sim.switch.stats().calls_active,
        1,
        "call survives the lost ACKs"
    );
    assert_eq!(w.phone().dialogs[b].acks_received, 1);
    w.caller_hangs_up(a, b);
    w.settle();
}

#[test]
fn lost_ack_to_callee_is_resent_for_its_retransmitted_200() {
    let mut net = Net::perfect();
    let phone = addr(PHONE);
    let mut dropped = 0;
    net.drop_rule = Some(Box::new(move |d: &Datagram| {
        if d.to == phone && d.is_request("ACK") && dropped < 1 {
            dropped += 1;
            return true;
        }
        false
    }));
    let mut w = World::new(DEMO, 15, net);
    w.register(Algorithm::Md5);
    let a = w.dial("1001");
    let (c, p) = (w.caller, w.phone);
    let done = w.sim.within(secs(40), |s| {
        s.ua(c).dialogs[a].state == DialogState::Confirmed
            && s.ua(p)
                .dialogs
                .iter()
                .any(|d| d.acks_received > 0 || d.ack_timeout)
    });
    assert!(done, "\n{}", w.trace());
    let b = w.phone().uas_dialog(0).unwrap();
    let d = &w.phone().dialogs[b];
    assert!(
        !d.ack_timeout && d.acks_received >= 1,
        "switch never ACKed the callee's retransmitted 200 (callee retransmitted it {} times, \
         then gave up and sent BYE)\n{}",
        d.retransmitted_2xx,
        w.trace()
    );
    assert_eq!(
        d.retransmitted_2xx, 1,
        "one retransmission, then the ACK stopped it"
    );
    w.caller_hangs_up(a, b);
    w.settle();
}

// Sanity: the harness's own assumptions.
#[test]
fn harness_network_is_seeded_and_lossy() {
    let run = |seed| {
        let mut net = Net::new(seed, 0.3, Delay::UniformMs(1, 40));
        let t = std::time::Instant::now();
        for i in 0..1000u32 {
            net.send(
                t,
                addr(CALLER),
                addr(SWITCH),
                bytes::Bytes::from(i.to_string()),
            );
        }
        net.log
            .iter()
            .map(|d| (d.dropped, (d.at - d.sent).as_millis()))
            .collect::<Vec<_>>()
    };
    let x = run(3);
    assert_eq!(x, run(3), "same seed, same network");
    assert_ne!(x, run(4));
    let dropped = x.iter().filter(|(d, _)| *d).count();
    assert!(
        (240..360).contains(&dropped),
        "about 30% dropped: {dropped}"
    );
    assert!(x.iter().all(|(_, ms)| (1..=40).contains(ms)));
}
