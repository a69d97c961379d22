//! SIP over TLS against a real TLS peer: `openssl s_client` carries our SIP text to a
//! switchboard with a TLS listener (self-signed certificate made at start-up): OPTIONS,
//! then a digest REGISTER on the same connection.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use switchboard::sip::auth;
use switchboard::sip::message::{parse, HeaderName, Message};

/// Reads SIP messages from a byte stream (headers, then Content-Length bytes).
fn reader(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        loop {
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" && head.is_empty() {
                    continue;
                }
                if let Some(v) = line.strip_prefix("Content-Length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            head.push_str(&String::from_utf8_lossy(&body));
            if tx.send(head).is_err() {
                return;
            }
        }
    });
    rx
}

fn request(method: &str, cseq: u32, extra: &str) -> String {
    format!(
        "{method} sip:switchboard.local SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKtls{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:1001@switchboard.local>;tag=t1\r\nTo: <sip:1001@switchboard.local>\r\nCall-ID: tls-test-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:1001@127.0.0.1:5999;transport=tls>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn options_and_digest_register_over_tls() {
    let _serial = serial();
    let dir = TempDir::new("tls");
    let tls_port = free_port();
    let path = demo_profile_with(
        &dir,
        "tls.yaml",
        "  - { transport: tcp, address: 127.0.0.1:5060 }",
        &format!("  - {{ transport: tcp, address: 127.0.0.1:5060 }}\n  - {{ transport: tls, address: 127.0.0.1:{tls_port} }}"),
    );
    let sw = Switchboard::start_with(&path);
    assert!(
        wait_bound(tls_port, true, Duration::from_secs(5)),
        "TLS listener not up"
    );

    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{tls_port}"),
            "-quiet",
            "-ign_eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client (tools/setup.sh installs openssl)");
    let responses = reader(client.stdout.take().unwrap());
    let mut stdin = client.stdin.take().unwrap();
    let next = |what: &str| {
        let text = responses
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no answer to {what}; stderr:\n{}", sw.stderr_text()));
        match parse(text.as_bytes()).unwrap_or_else(|e| panic!("bad answer to {what}: {e}\n{text}"))
        {
            Message::Response(r) => r,
            Message::Request(r) => panic!("a request instead of an answer to {what}: {r:?}"),
        }
    };

    stdin
        .write_all(request("OPTIONS", 1, "").as_bytes())
        .unwrap();
    let ok = next("OPTIONS");
    assert_eq!(ok.status, 200);
    assert!(ok
        .headers
        .get(&HeaderName::Allow)
        .unwrap()
        .contains("INVITE"));

    stdin
        .write_all(request("REGISTER", 2, "Expires: 600\r\n").as_bytes())
        .unwrap();
    let challenge = next("REGISTER");
    assert_eq!(challenge.status, 401);
    let ch =
        auth::parse_digest(challenge.headers.get(&HeaderName::WwwAuthenticate).unwrap()).unwrap();
    let cred = auth::authorization_header(
        &ch,
        "REGISTER",
        "sip:switchboard.local",
        "1001",
        "secret1001",
        "tlscnonce",
        1,
    )
    .unwrap();
    stdin
        .write_all(
            request(
                "REGISTER",
                3,
                &format!("Authorization: {cred}\r\nExpires: 600\r\n"),
            )
            .as_bytes(),
        )
        .unwrap();
    let registered = next("authenticated REGISTER");
    assert_eq!(registered.status, 200);
    assert!(registered
        .headers
        .get(&HeaderName::Contact)
        .unwrap()
        .contains("transport=tls"));
    assert_eq!(sw.metric("switchboard_registrations_active"), Some(1.0));

    drop(stdin);
    let _ = client.kill();
    let _ = client.wait();
}
