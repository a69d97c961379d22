//! The runtime: the only place with tokio, sockets, tasks and `Instant::now()`.
//!
//! One task owns the [`Switch`] core and the UDP sockets; stream connections (TCP, TLS) run
//! in tasks of their own that frame messages and hand them to the switch task over a
//! channel. The HTTP server (health, metrics) asks the switch task through the same channel.

mod apps;
mod http;
mod media;
mod store;
mod stream;
mod tls;

use crate::call::{LocalAddrs, Stats, Switch, SwitchConfig, CONTACT_HISTORY};
use crate::config::{Profile, TransportKind};
use crate::sip::transport::{Peer, Transport};
use anyhow::{Context, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// What `switchboard run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub profile: Arc<Profile>,
    pub flows: PathBuf,
    /// Queues and agents.
    pub contact_centre: PathBuf,
    pub data: PathBuf,
    /// Overrides the address and port of the profile's UDP and TCP listeners.
    pub sip: Option<SocketAddr>,
    pub http: SocketAddr,
}

/// Messages into the switch task.
pub(crate) enum ToSwitch {
    /// A framed message from a stream connection.
    Message { peer: Peer, bytes: Bytes },
    /// A stream connection opened (`writer` sends bytes to it) or closed (`None`).
    Connection {
        peer: Peer,
        writer: Option<mpsc::Sender<Bytes>>,
    },
    /// The HTTP server wants the counters.
    Stats(oneshot::Sender<(Stats, usize)>),
    /// The HTTP server wants the calls.
    Calls(oneshot::Sender<Vec<crate::call::CallSummary>>),
    /// The media thread reports.
    Media(crate::media::engine::MediaEvent),
    /// Results for IVR calls (speech, HTTP).
    App(crate::call::AppInput),
    /// The flows changed on disk and are valid.
    Flows(crate::ivr::Flows),
    /// The API changes an agent's state.
    AgentState {
        agent: String,
        token: Option<String>,
        state: crate::acd::AgentStateChange,
        reply: oneshot::Sender<Result<crate::acd::AgentStatus, crate::call::AgentRequestError>>,
    },
    /// The API wants the agents.
    Agents(oneshot::Sender<Vec<crate::acd::AgentView>>),
    /// The API wants the queues' figures.
    Queues(oneshot::Sender<Vec<crate::acd::QueueStats>>),
    /// The API books a callback.
    ScheduleCallback {
        queue: String,
        number: String,
        at: crate::ivr::LocalDateTime,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The API changes a waiting caller's priority.
    SetPriority {
        call: u64,
        priority: i32,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Runs Switchboard until SIGINT/SIGTERM.
pub fn run(opts: RunOptions) -> Result<()> {
    raise_descriptor_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(opts, None))
}

/// Every call holds four RTP/RTCP sockets, so the soft limit on open descriptors (often
/// 1,024, about 250 calls) is raised to the hard one, as far as the system lets us.
fn raise_descriptor_limit() {
    // SAFETY: getrlimit/setrlimit on our own process with a zeroed, then filled struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        // The kernel refuses more than fs.nr_open, 1,048,576 by default.
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0
            && lim.rlim_cur < lim.rlim_max.min(1 << 20)
        {
            let before = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!(limit = before, "could not raise the open descriptor limit");
            }
        }
    }
}

/// Binds everything, then serves. `ready` receives the bound SIP and HTTP addresses.
pub async fn serve(
    opts: RunOptions,
    ready: Option<oneshot::Sender<(LocalAddrs, SocketAddr)>>,
) -> Result<()> {
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("creating data directory {}", opts.data.display()))?;
    let profile = opts.profile.clone();
    let mut acd = crate::setup::load_contact_centre(&opts.contact_centre)
        .map_err(|e| anyhow::anyhow!("contact centre:\n{}", e.join("\n")))?;
    let (flows, flow_errors) = crate::setup::load_flows(&opts.flows, Some(&profile), Some(&acd));
    if !flow_errors.is_empty() {
        let lines: Vec<String> = flow_errors.iter().map(|e| e.to_string()).collect();
        anyhow::bail!("IVR flows:\n{}", lines.join("\n"));
    }
    info!(flows = flows.len(), dir = %opts.flows.display(), "IVR flows loaded");
    acd.seed = rand::random();
    let (to_switch, mut inbox) = mpsc::channel::<ToSwitch>(65_536);

    let mut local = LocalAddrs::default();
    let mut udp: Option<Arc<UdpSocket>> = None;
    for l in &profile.listeners {
        let mut addr = l.addr;
        if let (Some(o), TransportKind::Udp | TransportKind::Tcp) = (opts.sip, l.transport) {
            addr = o;
        }
        if local.advertised.is_none() {
            local.advertised = l.advertised.clone();
        }
        match l.transport {
            TransportKind::Udp => {
                let sock = bind_udp(addr).with_context(|| format!("binding UDP {addr}"))?;
                local.udp = Some(sock.local_addr()?);
                info!(addr = %sock.local_addr()?, "listening on UDP");
                udp = Some(Arc::new(sock));
            }
            TransportKind::Tcp => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding TCP {addr}"))?;
                local.tcp = Some(listener.local_addr()?);
                info!(addr = %listener.local_addr()?, "listening on TCP");
                tokio::spawn(stream::accept_tcp(
                    listener,
                    to_switch.clone(),
                    profile.limits.clone(),
                ));
            }
            TransportKind::Tls => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding TLS {addr}"))?;
                local.tls = Some(listener.local_addr()?);
                let acceptor = tls::acceptor(l, &profile.realm)?;
                info!(addr = %listener.local_addr()?, "listening on TLS");
                tokio::spawn(stream::accept_tls(
                    listener,
                    acceptor,
                    to_switch.clone(),
                    profile.limits.clone(),
                ));
            }
        }
    }

    let mut trunk_addrs = HashMap::new();
    for t in &profile.trunks {
        if let Some(out) = &t.outbound {
            match (out.host.as_str(), out.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
            {
                Some(a) => {
                    trunk_addrs.insert(t.name.clone(), a);
                }
                None => {
                    warn!(trunk = %t.name, host = %out.host, "cannot resolve trunk host; outbound calls to it will fail")
                }
            }
        }
    }

    let http_listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .with_context(|| format!("binding HTTP {}", opts.http))?;
    let http_addr = http_listener.local_addr()?;
    info!(addr = %http_addr, "HTTP listening");
    let media_counters = media::MediaCounters::default();
    tokio::spawn(http::serve(
        http_listener,
        to_switch.clone(),
        media_counters.clone(),
        opts.data.clone(),
    ));
    tokio::spawn(watch_flows(
        opts.flows.clone(),
        profile.clone(),
        Arc::new(acd.clone()),
        to_switch.clone(),
    ));
    let speech = std::sync::mpsc::channel();

    let default_ip = local
        .udp
        .or(local.tcp)
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let media_ports = media::MediaPorts::start(
        &profile.media,
        default_ip,
        to_switch.clone(),
        media_counters,
        speech.0.clone(),
    )
    .context("starting the media thread")?;
    let engine = match crate::speech::default_engine() {
        Ok(e) => Some(e),
        Err(e) => {
            warn!(error = %e, "speech recognition unavailable; IVR menus take DTMF only");
            None
        }
    };
    let apps = apps::AppPorts::start(
        media_ports.handle(),
        to_switch.clone(),
        opts.flows.join("prompts"),
        opts.data.join("tts-cache"),
        engine,
        speech,
    )
    .context("starting the prompt and speech threads")?;
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut secret);
    let now = Instant::now();
    let mut switch = Switch::new(
        now,
        SwitchConfig {
            profile: profile.clone(),
            local: local.clone(),
            trunk_addrs,
            seed: rand::random(),
            nonce_secret: secret,
            media: Box::new(media_ports),
            data_dir: opts.data.clone(),
            apps: Box::new(apps),
            flows,
            local_epoch: local_now(),
            acd,
        },
    );
    let mut store = store::Store::open(&opts.data.join("switchboard.db"))?;
    switch.restore_callbacks(
        now,
        store.callbacks(now).context("reading pending callbacks")?,
    );
    switch.restore_contact_history(
        store
            .last_agents(CONTACT_HISTORY)
            .context("reading contact history")?,
    );
    switch.restore_registrations(
        now,
        store.registrations(now).context("reading registrations")?,
    );
    switch.restore_agent_states(now, store.agent_states().context("reading agent states")?);
    let mut regs_saved = Instant::now();
    if let Some(r) = ready {
        let _ = r.send((local.clone(), http_addr));
    }
    let tls_connector = tls::connector();
    let mut conns: HashMap<Peer, mpsc::Sender<Bytes>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    loop {
        // Changed registrations are stored at most a second late.
        let deadline = match (switch.poll_timeout(), switch.registrations_changed()) {
            (d, true) => {
                let flush = regs_saved + REGISTRATIONS_EVERY;
                Some(d.map_or(flush, |d| d.min(flush)))
            }
            (d, false) => d,
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                info!("shutting down");
                break;
            }
            r = recv(&udp, &mut buf) => {
                if let Some((n, from)) = r {
                    let now = Instant::now();
                    let peer = Peer { transport: Transport::Udp, addr: from };
                    switch.handle_message(now, peer, &buf[..n]);
                    // Drain what else is waiting without going back to the reactor.
                    if let Some(sock) = &udp {
                        for _ in 0..64 {
                            match sock.try_recv_from(&mut buf) {
                                Ok((n, from)) => {
                                    let peer = Peer { transport: Transport::Udp, addr: from };
                                    switch.handle_message(now, peer, &buf[..n]);
                                }
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
            Some(msg) = inbox.recv() => match msg {
                ToSwitch::Message { peer, bytes } => switch.handle_message(Instant::now(), peer, &bytes),
                ToSwitch::Connection { peer, writer: Some(w) } => { conns.insert(peer, w); }
                ToSwitch::Connection { peer, writer: None } => { conns.remove(&peer); }
                ToSwitch::Stats(reply) => { let _ = reply.send((switch.stats(), switch.registrations())); }
                ToSwitch::Calls(reply) => { let _ = reply.send(switch.call_summaries(Instant::now())); }
                ToSwitch::Media(event) => switch.handle_media_event(Instant::now(), event),
                ToSwitch::App(input) => switch.handle_app_input(Instant::now(), input),
                ToSwitch::Flows(flows) => switch.set_flows(flows),
                ToSwitch::AgentState { agent, token, state, reply } => {
                    let _ = reply.send(switch.set_agent_state(Instant::now(), &agent, token.as_deref(), state));
                }
                ToSwitch::Agents(reply) => { let _ = reply.send(switch.agents()); }
                ToSwitch::Queues(reply) => { let _ = reply.send(switch.queues(Instant::now())); }
                ToSwitch::ScheduleCallback { queue, number, at, reply } => {
                    let _ = reply.send(switch.schedule_callback(Instant::now(), &queue, &number, at));
                }
                ToSwitch::SetPriority { call, priority, reply } => {
                    let _ = reply.send(switch.set_priority(Instant::now(), call, priority));
                }
            },
            _ = sleep => switch.handle_timeout(Instant::now()),
        }
        while let Some(rec) = switch.poll_persist() {
            if let Err(e) = store.persist(&rec, Instant::now()) {
                warn!(error = %e, "could not store a callback");
            }
        }
        while let Some(cdr) = switch.poll_cdr() {
            if let Err(e) = store.call_ended(&cdr) {
                warn!(error = %e, "could not store a call record");
            }
        }
        while let Some((agent, state)) = switch.poll_agent_state() {
            if let Err(e) = store.save_agent_state(&agent, state.as_ref()) {
                warn!(error = %e, "could not store an agent's state");
            }
        }
        if switch.registrations_changed() && regs_saved.elapsed() >= REGISTRATIONS_EVERY {
            regs_saved = Instant::now();
            let changed = switch.poll_registrations(regs_saved);
            if let Err(e) = store.save_registrations(&changed, regs_saved) {
                warn!(error = %e, "could not store registrations");
            }
        }
        while let Some(t) = switch.poll_transmit() {
            match t.peer.transport {
                Transport::Udp => {
                    if let Some(sock) = &udp {
                        if let Err(e) = sock.try_send_to(&t.bytes, t.peer.addr) {
                            if e.kind() == std::io::ErrorKind::WouldBlock {
                                let _ = sock.send_to(&t.bytes, t.peer.addr).await;
                            }
                        }
                    }
                }
                Transport::Tcp | Transport::Tls => {
                    let w = conns.entry(t.peer).or_insert_with(|| {
                        stream::connect(
                            t.peer,
                            to_switch.clone(),
                            profile.limits.clone(),
                            tls_connector.clone(),
                        )
                    });
                    if w.try_send(t.bytes).is_err() {
                        warn!(peer = %t.peer, "stream connection congested or gone; message dropped");
                        conns.remove(&t.peer);
                    }
                }
            }
        }
    }
    Ok(())
}

/// How often changed registrations are written to the database (in one transaction).
const REGISTRATIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The local wall-clock time now (the business's time zone is the machine's).
pub(crate) fn local_now() -> crate::ivr::LocalDateTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r writes only into the tm we pass; both pointers are valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    let fallback = crate::ivr::Date::new(1970, 1, 1).expect("valid date");
    let (date, h, m, s) = if ok {
        (
            crate::ivr::Date::new(tm.tm_year + 1900, (tm.tm_mon + 1) as u8, tm.tm_mday as u8)
                .unwrap_or(fallback),
            tm.tm_hour as u8,
            tm.tm_min as u8,
            tm.tm_sec.min(59) as u8,
        )
    } else {
        (fallback, 0, 0, 0)
    };
    crate::ivr::LocalDateTime::new(date, h, m, s).expect("valid time")
        + std::time::Duration::from_millis(u64::from(now.subsec_millis()))
}

/// Reloads the flows when a file of their directory changes (checked every second). An
/// invalid edit is reported, every error with its position, and the running flows stay.
async fn watch_flows(
    dir: PathBuf,
    profile: Arc<Profile>,
    acd: Arc<crate::acd::AcdConfig>,
    to_switch: mpsc::Sender<ToSwitch>,
) {
    let stamp = |dir: &std::path::Path| -> Vec<(PathBuf, std::time::SystemTime, u64)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((e.path(), m.modified().ok()?, m.len()))
            })
            .collect();
        v.sort();
        v
    };
    let mut last = stamp(&dir);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = stamp(&dir);
        if now == last {
            continue;
        }
        last = now;
        let (flows, errors) = crate::setup::load_flows(&dir, Some(&profile), Some(&acd));
        if errors.is_empty() {
            info!(flows = flows.len(), "IVR flows reloaded");
            if to_switch.send(ToSwitch::Flows(flows)).await.is_err() {
                return;
            }
        } else {
            for e in &errors {
                warn!("{e}");
            }
            warn!(
                errors = errors.len(),
                "IVR flows not reloaded: the running version stays"
            );
        }
    }
}

async fn recv(sock: &Option<Arc<UdpSocket>>, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await.ok(),
        None => std::future::pending().await,
    }
}

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket> {
    let std_sock = std::net::UdpSocket::bind(addr)?;
    std_sock.set_nonblocking(true)?;
    // Larger buffers ride out bursts at high call rates.
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = std_sock.as_raw_fd();
        let size: libc::c_int = 4 * 1024 * 1024;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // SAFETY: fd is a valid socket for the duration of the call; the option value
            // is a c_int of the size given.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    &size as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
    Ok(UdpSocket::from_std(std_sock)?)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
