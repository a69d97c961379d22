//! Real-peer test harness: a Switchboard process on free loopback ports, and
//! SIPp runs against it (scenarios in `tools/sipp/`).
//!
//! Only std. Every wait is bounded; every child is killed by its own handle
//! (its pid) when dropped. Temporary directories live under
//! `std::env::temp_dir()` and are removed when the test passes; when it fails
//! they are kept and their path is printed, with Switchboard's stderr.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const LOCALHOST: &str = "127.0.0.1";

/// Repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scenario file in `tools/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    let p = repo().join("tools/sipp").join(name);
    assert!(p.is_file(), "no SIPp scenario {}", p.display());
    p
}

/// Tests that run SIPp take this lock, so that on a small machine two loads
/// do not share the CPU and turn into timing failures.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------- temp dirs

/// A directory under the system temp dir; removed on drop unless the thread
/// is panicking (then kept, and its path printed).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "switchboard-{tag}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("[harness] test failed; kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------- ports

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((LOCALHOST, port)).is_ok()
}

fn tcp_free(port: u16) -> bool {
    TcpListener::bind((LOCALHOST, port)).is_ok()
}

/// A loopback port free for both UDP and TCP, never handed out twice by this
/// process.
pub fn free_port() -> u16 {
    for _ in 0..500 {
        let port = UdpSocket::bind((LOCALHOST, 0))
            .and_then(|s| s.local_addr())
            .expect("bind an ephemeral UDP port")
            .port();
        if !tcp_free(port) {
            continue;
        }
        if handed_out().lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found in 500 tries");
}

/// The first of `n` consecutive free UDP ports (even), for SIPp's media
/// sockets (`-mp`: it binds the port and the port + 2).
pub fn free_port_block(n: u16) -> u16 {
    for _ in 0..500 {
        let base = UdpSocket::bind((LOCALHOST, 0))
            .and_then(|s| s.local_addr())
            .expect("bind an ephemeral UDP port")
            .port()
            & !1;
        if base < 1024 || base.checked_add(n).is_none() {
            continue;
        }
        if !(base..base + n).all(udp_free) {
            continue;
        }
        let mut used = handed_out().lock().unwrap();
        if (base..base + n).any(|p| used.contains(&p)) {
            continue;
        }
        used.extend(base..base + n);
        return base;
    }
    panic!("no free block of {n} loopback UDP ports found in 500 tries");
}

/// Waits until something listens on `port` (a bind of ours fails), bounded.
pub fn wait_bound(port: u16, tcp: bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let taken = if tcp {
            !tcp_free(port)
        } else {
            !udp_free(port)
        };
        if taken {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

// ---------------------------------------------------------------- HTTP

/// A minimal HTTP/1.1 GET on loopback: (status, body).
/// The item of the JSON list at `path` whose `field` is `value`.
pub fn api_item(sw: &Switchboard, path: &str, field: &str, value: &str) -> serde_json::Value {
    let (_, body) = http_get(sw.http_port, path).unwrap();
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|q| q[field] == value)
        .cloned()
        .unwrap_or_else(|| panic!("no {field} {value} in {path}: {body}"))
}

/// A queue's figures as `/api/v1/queues` gives them.
pub fn queue_json(sw: &Switchboard, queue: &str) -> serde_json::Value {
    api_item(sw, "/api/v1/queues", "queue", queue)
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, &[], "")
}

/// A JSON POST with a bearer token: (status, body).
pub fn http_post(
    port: u16,
    path: &str,
    token: Option<&str>,
    json: &str,
) -> std::io::Result<(u16, String)> {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let headers: Vec<&str> = auth.iter().map(String::as_str).collect();
    http_request(port, "POST", path, &headers, json)
}

fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut extra = String::new();
    for h in headers {
        extra.push_str(h);
        extra.push_str("\r\n");
    }
    if !body.is_empty() {
        extra.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n{body}"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer: {head:?}")))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of an unlabelled metric in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

// ---------------------------------------------------------------- Switchboard

pub fn switchboard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchboard"))
}

/// A running `switchboard run` on free loopback ports; killed on drop.
pub struct Switchboard {
    child: Child,
    pub sip_port: u16,
    pub http_port: u16,
    pub dir: TempDir,
    stderr: PathBuf,
    args: Vec<std::ffi::OsString>,
}

impl Switchboard {
    /// With the demo profile `sip-profiles/default.yaml`.
    pub fn start() -> Switchboard {
        Self::start_with(&repo().join("sip-profiles/default.yaml"))
    }

    pub fn start_with(profile: &Path) -> Switchboard {
        Self::start_with_flows(profile, &repo().join("ivr-flows"))
    }

    /// With a profile and a directory of IVR flows of the test's own.
    pub fn start_with_flows(profile: &Path, flows: &Path) -> Switchboard {
        Self::start_full(
            profile,
            flows,
            &repo().join("sip-profiles/contact-centre.yaml"),
        )
    }

    /// With a profile, flows and contact centre of the test's own.
    pub fn start_full(profile: &Path, flows: &Path, contact_centre: &Path) -> Switchboard {
        Self::spawn(
            profile,
            flows,
            contact_centre,
            free_port(),
            TempDir::new("sw"),
        )
    }

    /// The demo profile and a copy of the sample flows made for tests: the customer
    /// look-up goes to this switch's own HTTP port and the office is always open.
    /// `contact_centre` defaults to the demo's.
    pub fn start_ivr(contact_centre: Option<&Path>) -> Switchboard {
        Self::start_ivr_with(contact_centre, &[], &[])
    }

    /// As [`Switchboard::start_ivr`], with flow files of the test's own (name, YAML) and
    /// routes put first in the demo profile (lines like `- { number: "101", to: { flow: x } }`).
    /// `${HTTP_PORT}` in a flow is this switch's HTTP port.
    pub fn start_ivr_with(
        contact_centre: Option<&Path>,
        flows_extra: &[(&str, &str)],
        routes: &[&str],
    ) -> Switchboard {
        let dir = TempDir::new("sw");
        let http_port = free_port();
        let flows = dir.join("flows");
        fs::create_dir_all(flows.join("prompts")).unwrap();
        for entry in fs::read_dir(repo().join("ivr-flows")).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = fs::read_to_string(&path)
                    .unwrap()
                    .replace("127.0.0.1:8080", &format!("127.0.0.1:{http_port}"));
                fs::write(flows.join(&name), text).unwrap();
            }
        }
        for entry in fs::read_dir(repo().join("ivr-flows/prompts"))
            .unwrap()
            .flatten()
        {
            fs::copy(entry.path(), flows.join("prompts").join(entry.file_name())).unwrap();
        }
        fs::write(
            flows.join("calendars.yaml"),
            "calendars:\n  office:\n    hours:\n      mon-sun: \"00:00-23:59\"\n",
        )
        .unwrap();
        for (name, text) in flows_extra {
            fs::write(
                flows.join(name),
                text.replace("${HTTP_PORT}", &http_port.to_string()),
            )
            .unwrap();
        }
        let mut profile_text =
            fs::read_to_string(repo().join("sip-profiles/default.yaml")).unwrap();
        let extra: String = routes.iter().map(|r| format!("  {r}\n")).collect();
        profile_text = profile_text.replacen("routes:\n", &format!("routes:\n{extra}"), 1);
        let profile = dir.join("profile.yaml");
        fs::write(&profile, profile_text).unwrap();
        let cc = contact_centre
            .map(Path::to_path_buf)
            .unwrap_or_else(|| repo().join("sip-profiles/contact-centre.yaml"));
        Self::spawn(&profile, &flows, &cc, http_port, dir)
    }

    fn spawn(
        profile: &Path,
        flows: &Path,
        contact_centre: &Path,
        http_port: u16,
        dir: TempDir,
    ) -> Switchboard {
        let sip_port = free_port();
        let data = dir.join("data");
        fs::create_dir_all(&data).unwrap();
        let stderr = dir.join("switchboard.stderr");
        let args: Vec<std::ffi::OsString> = vec![
            "run".into(),
            "--profile".into(),
            profile.into(),
            "--flows".into(),
            flows.into(),
            "--contact-centre".into(),
            contact_centre.into(),
            "--data".into(),
            data.into(),
            "--sip".into(),
            format!("{LOCALHOST}:{sip_port}").into(),
            "--http".into(),
            format!("{LOCALHOST}:{http_port}").into(),
        ];
        let child = Self::launch(&args, &dir, &stderr);
        let mut sw = Switchboard {
            child,
            sip_port,
            http_port,
            dir,
            stderr,
            args,
        };
        sw.wait_healthy(Duration::from_secs(10));
        sw
    }

    fn launch(args: &[std::ffi::OsString], dir: &TempDir, stderr: &Path) -> Child {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr)
            .unwrap();
        Command::new(switchboard_bin())
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("SWITCHBOARD_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("switchboard.stdout"))
                    .unwrap(),
            ))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn switchboard")
    }

    /// Kills the process with SIGKILL (no chance to save anything) and starts it again with
    /// the same data directory and ports.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::launch(&self.args, &self.dir, &self.stderr);
        self.wait_healthy(Duration::from_secs(10));
    }

    fn wait_healthy(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "switchboard exited during start-up ({status}); stderr:\n{}",
                    self.stderr_text()
                );
            }
            if let Ok((200, _)) = http_get(self.http_port, "/api/v1/health") {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "switchboard not healthy after {limit:?} (http 127.0.0.1:{}); stderr:\n{}",
                    self.http_port,
                    self.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// "127.0.0.1:PORT" of the SIP listeners (UDP and TCP).
    pub fn sip_addr(&self) -> String {
        format!("{LOCALHOST}:{}", self.sip_port)
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn health(&self) -> Option<u16> {
        http_get(self.http_port, "/api/v1/health")
            .ok()
            .map(|(s, _)| s)
    }

    pub fn metrics(&self) -> String {
        match http_get(self.http_port, "/metrics") {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("GET /metrics answered {status}: {body}"),
            Err(e) => panic!("GET /metrics failed: {e}"),
        }
    }

    pub fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.metrics(), name)
    }

    /// Polls a metric until `pred` holds (bounded); returns the last value.
    pub fn wait_metric(
        &self,
        name: &str,
        limit: Duration,
        pred: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.metric(name);
            if v.is_some_and(&pred) || Instant::now() >= deadline {
                return v;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Switchboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let text = self.stderr_text();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(200);
            eprintln!(
                "[harness] switchboard stderr (last {} of {} lines):\n{}",
                lines.len() - from,
                lines.len(),
                lines[from..].join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------- SIPp

/// UDP or TCP, as SIPp's `-t` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn sipp_flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
}

/// One SIPp invocation. Every run gets `-i 127.0.0.1 -p PORT -mp MEDIA
/// -nostdin -timeout T -timeout_error` and writes its stat CSV, error log and
/// message trace into `dir`, named after `name`.
pub struct Sipp {
    pub name: String,
    pub port: u16,
    args: Vec<String>,
    transport: Transport,
    timeout: Duration,
    trace_msg: bool,
}

impl Sipp {
    /// `scenario_file` is a name in `tools/sipp/`.
    pub fn new(name: &str, scenario_file: &str) -> Sipp {
        Sipp {
            name: name.to_string(),
            port: free_port(),
            args: vec!["-sf".into(), scenario(scenario_file).display().to_string()],
            transport: Transport::Udp,
            timeout: Duration::from_secs(60),
            trace_msg: true,
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Sipp {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, a: I) -> Sipp
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn transport(mut self, t: Transport) -> Sipp {
        self.transport = t;
        self
    }

    /// SIPp's own global timeout (`-timeout`, a failure); the harness kills
    /// it 15 s after that if it is still running.
    pub fn timeout(mut self, t: Duration) -> Sipp {
        self.timeout = t;
        self
    }

    /// Message tracing costs SIPp CPU; off for big runs if wanted.
    pub fn trace_msg(mut self, on: bool) -> Sipp {
        self.trace_msg = on;
        self
    }

    pub fn spawn(self, dir: &TempDir) -> SippProc {
        let files = SippFiles {
            stat: dir.join(&format!("{}.stat.csv", self.name)),
            errors: dir.join(&format!("{}.errors.log", self.name)),
            messages: dir.join(&format!("{}.messages.log", self.name)),
            screen: dir.join(&format!("{}.screen.log", self.name)),
            stderr: dir.join(&format!("{}.stderr.log", self.name)),
        };
        let media = free_port_block(4);
        let mut cmd = Command::new("sipp");
        cmd.args(&self.args)
            .args(["-t", self.transport.sipp_flag()])
            .args(["-i", LOCALHOST, "-p", &self.port.to_string()])
            .args(["-mi", LOCALHOST, "-mp", &media.to_string()])
            .args(["-nostdin", "-timeout_error"])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .arg("-trace_stat")
            .arg("-stf")
            .arg(&files.stat)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&files.errors);
        if self.trace_msg {
            cmd.arg("-trace_msg")
                .arg("-message_file")
                .arg(&files.messages);
        }
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&files.screen).unwrap()))
            .stderr(Stdio::from(fs::File::create(&files.stderr).unwrap()));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run sipp ({e}); install it with tools/setup.sh (package sip-tester)")
        });
        SippProc {
            name: self.name,
            port: self.port,
            transport: self.transport,
            child: Some(child),
            kill_after: Instant::now() + self.timeout + Duration::from_secs(15),
            files,
        }
    }

    /// Runs to completion (bounded).
    pub fn run(self, dir: &TempDir) -> SippRun {
        self.spawn(dir).wait()
    }
}

#[derive(Clone, Debug)]
pub struct SippFiles {
    pub stat: PathBuf,
    pub errors: PathBuf,
    pub messages: PathBuf,
    pub screen: PathBuf,
    pub stderr: PathBuf,
}

/// A SIPp process in the background (a UAS); killed on drop.
pub struct SippProc {
    pub name: String,
    pub port: u16,
    transport: Transport,
    child: Option<Child>,
    kill_after: Instant,
    pub files: SippFiles,
}

impl SippProc {
    /// Waits until SIPp has bound its SIP port (bounded, 5 s).
    pub fn wait_ready(&self) {
        let tcp = self.transport == Transport::Tcp;
        assert!(
            wait_bound(self.port, tcp, Duration::from_secs(5)),
            "sipp {} did not bind 127.0.0.1:{} within 5 s; stderr:\n{}",
            self.name,
            self.port,
            fs::read_to_string(&self.files.stderr).unwrap_or_default()
        );
    }

    /// "127.0.0.1:PORT" where this SIPp listens.
    pub fn addr(&self) -> String {
        format!("{LOCALHOST}:{}", self.port)
    }

    /// Waits at most `limit` more (and never past its own bound).
    pub fn wait_for(mut self, limit: Duration) -> SippRun {
        self.kill_after = self.kill_after.min(Instant::now() + limit);
        self.wait()
    }

    pub fn wait(mut self) -> SippRun {
        let mut child = self.child.take().expect("waited twice");
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= self.kill_after => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(_) => break None,
            }
        };
        SippRun {
            name: self.name.clone(),
            status,
            files: self.files.clone(),
        }
    }
}

impl Drop for SippProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The outcome of one SIPp run.
pub struct SippRun {
    pub name: String,
    /// None: the harness had to kill it.
    pub status: Option<ExitStatus>,
    pub files: SippFiles,
}

impl SippRun {
    /// SIPp's exit code: 0 = every call succeeded, 1 = some failed,
    /// 255 = fatal error or global timeout.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// A counter from the last row of the stat CSV, e.g. "SuccessfulCall(C)".
    pub fn stat(&self, column: &str) -> Option<u64> {
        let text = fs::read_to_string(&self.files.stat).ok()?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next()?.split(';').collect();
        let last: Vec<&str> = lines.next_back()?.split(';').collect();
        let i = header.iter().position(|h| *h == column)?;
        last.get(i)?.trim().parse().ok()
    }

    pub fn successful(&self) -> u64 {
        self.stat("SuccessfulCall(C)").unwrap_or(0)
    }

    pub fn failed(&self) -> u64 {
        self.stat("FailedCall(C)").unwrap_or(0)
    }

    /// Everything useful for a failure message.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "--- sipp {}: exit {:?}", self.name, self.status);
        for col in [
            "SuccessfulCall(C)",
            "FailedCall(C)",
            "Retransmissions(C)",
            "FailedMaxUDPRetrans(C)",
            "FailedUnexpectedMessage(C)",
            "FailedCallRejected(C)",
            "FailedTimeoutOnRecv(C)",
            "FailedTimeoutOnSend(C)",
            "OutOfCallMsgs(C)",
            "DeadCallMsgs(C)",
        ] {
            if let Some(v) = self.stat(col) {
                let _ = write!(out, "{col}={v} ");
            }
        }
        let _ = writeln!(out);
        let head = |p: &Path, n: usize| {
            let t = fs::read_to_string(p).unwrap_or_default();
            t.chars().take(n).collect::<String>()
        };
        let _ = writeln!(out, "stderr:\n{}", head(&self.files.stderr, 3000));
        let _ = writeln!(
            out,
            "errors ({}):\n{}",
            self.files.errors.display(),
            head(&self.files.errors, 6000)
        );
        let _ = writeln!(out, "message trace: {}", self.files.messages.display());
        out
    }

    /// Asserts exit code 0 and, when given, the number of successful calls
    /// with no failed ones.
    pub fn assert_ok(&self, calls: Option<u64>) {
        assert_eq!(
            self.code(),
            Some(0),
            "sipp {} did not succeed\n{}",
            self.name,
            self.report()
        );
        if let Some(n) = calls {
            assert_eq!(
                (self.successful(), self.failed()),
                (n, 0),
                "sipp {}: (successful, failed) calls\n{}",
                self.name,
                self.report()
            );
        }
    }
}

// ---------------------------------------------------------------- helpers

/// Writes a one-user registration CSV for `tools/sipp/register*.xml`.
pub fn register_csv(
    dir: &TempDir,
    name: &str,
    user: &str,
    pass: &str,
    contact_port: u16,
) -> PathBuf {
    let path = dir.join(&format!("{name}.csv"));
    fs::write(
        &path,
        format!(
            "SEQUENTIAL\n{user};{LOCALHOST}:{contact_port};[authentication username={user} password={pass}]\n"
        ),
    )
    .unwrap();
    path
}

/// REGISTERs `user` (digest) with Contact 127.0.0.1:`contact_port` over
/// `transport`; returns the finished SIPp run of `tools/sipp/register.xml`.
pub fn register_with(
    sw: &Switchboard,
    dir: &TempDir,
    scenario_file: &str,
    user: &str,
    pass: &str,
    contact_port: u16,
    transport: Transport,
) -> SippRun {
    let name = format!("{}-{user}", scenario_file.trim_end_matches(".xml"));
    let csv = register_csv(dir, &name, user, pass, contact_port);
    Sipp::new(&name, scenario_file)
        .transport(transport)
        .arg("-inf")
        .arg(csv.display().to_string())
        // The digest uri is the Request-URI, sip:switchboard.local.
        .args(["-auth_uri", "switchboard.local"])
        // A refused REGISTER must not make SIPp send a BYE.
        .args(["-default_behaviors", "all,-bye"])
        .args(["-m", "1"])
        .arg(sw.sip_addr())
        .timeout(Duration::from_secs(15))
        .run(dir)
}

/// REGISTERs `user` over UDP and asserts a 200.
pub fn register(
    sw: &Switchboard,
    dir: &TempDir,
    user: &str,
    pass: &str,
    contact_port: u16,
) -> SippRun {
    let run = register_with(
        sw,
        dir,
        "register.xml",
        user,
        pass,
        contact_port,
        Transport::Udp,
    );
    run.assert_ok(Some(1));
    run
}

/// A SIPp UAS on its own port, started and bound.
pub fn start_uas(
    dir: &TempDir,
    name: &str,
    scenario_file: &str,
    calls: u64,
    extra: &[&str],
    transport: Transport,
) -> SippProc {
    let uas = Sipp::new(name, scenario_file)
        .transport(transport)
        .args(["-m".to_string(), calls.to_string()])
        .args(extra.iter().map(|s| s.to_string()))
        .timeout(Duration::from_secs(120))
        .spawn(dir);
    uas.wait_ready();
    uas
}

/// A SIPp UAC calling `number` at Switchboard.
pub fn uac(name: &str, scenario_file: &str, sw: &Switchboard, number: &str, calls: u64) -> Sipp {
    Sipp::new(name, scenario_file)
        .args(["-s", number])
        .args(["-m".to_string(), calls.to_string()])
        .arg(sw.sip_addr())
}

/// Sends one datagram to Switchboard's UDP listener from a fresh socket and
/// waits (bounded) for one answer. `build` gets that socket's port, for the
/// Via header (responses go to the Via's sent-by).
pub fn udp_exchange(
    sw: &Switchboard,
    build: impl Fn(u16) -> Vec<u8>,
    wait: Duration,
) -> Option<String> {
    let sock = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(&build(port), (LOCALHOST, sw.sip_port))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

/// The demo profile with `from` replaced by `to`, written as `dir/name`. Panics when the
/// demo no longer holds `from` (the test that edits it needs updating).
pub fn demo_profile_with(dir: &TempDir, name: &str, from: &str, to: &str) -> PathBuf {
    let demo = fs::read_to_string(repo().join("sip-profiles/default.yaml")).unwrap();
    assert!(
        demo.contains(from),
        "the demo profile no longer has {from:?}; update this test"
    );
    let path = dir.join(name);
    fs::write(&path, demo.replace(from, to)).unwrap();
    path
}

/// Whether this machine's kernel lets Switchboard's media thread use io_uring (6.1 or later,
/// not switched off by `kernel.io_uring_disabled`); `media.io: auto` must then take it.
pub fn kernel_offers_io_uring() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim() != "0")
        .unwrap_or(false);
    version >= (6, 1) && !disabled
}
