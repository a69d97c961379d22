//! The floor under Switchboard's relay on this machine (not a test): a bare RTP relay
//! with the same I/O shape as Switchboard's media thread (level-triggered epoll, one
//! `recvfrom` and one `sendto` per packet, no RTP logic at all) carrying N calls of
//! 20 ms G.711-sized packets both ways, pinned to CPU 1, with the generator on CPU 0.
//!
//!   relay-floor [--calls 800,1200,1600] [--duration SECONDS] [--connected | --uring]
//!
//! `--connected`: each leg's socket is `connect()`ed to its peer and sends with `send`
//! (the kernel keeps the route; strangers are filtered by the kernel). `--uring`: the
//! same on io_uring, one multishot receive per leg into a ring of provided buffers and a
//! send per packet from that buffer, submitted in batches (no system call per packet).
//!
//! Prints per step: packets sent and relayed, delivered %, and the relay thread's CPU
//! (utime + stime) per relayed packet and as % of one core. Compare with
//! `tools/bench_media.sh relay` at the same call counts: the difference is what
//! Switchboard's engine costs above bare system calls. Loopback only; every step is
//! bounded in time.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PACKET: usize = 172; // 12-byte RTP header + 160 bytes of G.711

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Buffers the kernel picks from for multishot receives (a provided-buffer ring).
struct BufRing {
    ring: *mut io_uring::types::BufRingEntry,
    entries: u16,
    bufs: Vec<u8>,
    size: usize,
    tail: u16,
}

impl BufRing {
    /// `entries` (a power of two) buffers of `size` bytes, registered as group `bgid`.
    fn new(uring: &io_uring::IoUring, entries: u16, size: usize, bgid: u16) -> BufRing {
        let bytes = entries as usize * std::mem::size_of::<io_uring::types::BufRingEntry>();
        // SAFETY: an anonymous private mapping (page-aligned, zeroed), checked below.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ring, libc::MAP_FAILED, "mmap for the buffer ring");
        let mut b = BufRing {
            ring: ring as *mut io_uring::types::BufRingEntry,
            entries,
            bufs: vec![0u8; entries as usize * size],
            size,
            tail: 0,
        };
        // SAFETY: the mapping lives as long as the ring (it is never unmapped while the
        // ring is open: both are dropped at the end of the relay).
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, entries, bgid, 0)
                .expect("register the buffer ring");
        }
        for bid in 0..entries {
            b.recycle(bid);
        }
        b.publish();
        b
    }

    fn buf(&mut self, bid: u16) -> *mut u8 {
        // SAFETY: bid < entries, so the offset is inside `bufs`.
        unsafe { self.bufs.as_mut_ptr().add(bid as usize * self.size) }
    }

    /// Hands buffer `bid` back to the kernel (visible after `publish`).
    fn recycle(&mut self, bid: u16) {
        let addr = self.buf(bid) as u64;
        let slot = self.tail & (self.entries - 1);
        // SAFETY: slot < entries, inside the mapping.
        let e = unsafe { &mut *self.ring.add(slot as usize) };
        e.set_addr(addr);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field of the ring's first entry, written with release ordering
        // as the kernel reads it with acquire.
        unsafe {
            let tail = io_uring::types::BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

/// The relay on io_uring: one multishot receive per leg fills buffers from a provided
/// ring; each packet goes out of the other leg (a connected socket) by a `Send` from the
/// same buffer, which goes back to the ring when the send completes. All sends and the
/// wait for more packets are one `io_uring_enter` per batch.
fn relay_uring(legs: Vec<UdpSocket>, peers: Vec<std::net::SocketAddr>, shared: Arc<Shared>) {
    use io_uring::{cqueue, opcode, types, IoUring};
    pin(1);
    for (s, p) in legs.iter().zip(&peers) {
        s.connect(p).expect("connect a leg to its peer");
    }
    const SEND: u64 = 1 << 63;
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(65536)
        .build(8192)
        .expect("io_uring");
    let mut bufs = BufRing::new(&ring, 1024, 2048, 0);
    let fds: Vec<i32> = legs.iter().map(|s| s.as_raw_fd()).collect();
    let recv = |i: usize| {
        opcode::RecvMulti::new(types::Fd(fds[i]), 0)
            .build()
            .user_data(i as u64)
    };
    let mut pending: Vec<io_uring::squeue::Entry> = (0..legs.len()).map(recv).collect();
    let mut relayed = 0u64;
    let ts = types::Timespec::new().nsec(50_000_000);
    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(4096);
    while !shared.stop.load(Ordering::Relaxed) {
        bufs.publish();
        let mut i = 0;
        while i < pending.len() {
            let room = {
                let sq = ring.submission();
                sq.capacity() - sq.len()
            };
            let n = room.min(pending.len() - i);
            // SAFETY: sends read ring buffers that stay untouched until their completion.
            unsafe {
                ring.submission()
                    .push_multiple(&pending[i..i + n])
                    .expect("room checked");
            }
            i += n;
            if i < pending.len() {
                ring.submit().expect("submit");
            }
        }
        pending.clear();
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => panic!("io_uring_enter: {e}"),
        }
        done.clear();
        done.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(ud, res, flags) in &done {
            if ud & SEND != 0 {
                bufs.recycle(ud as u16);
                continue;
            }
            let i = ud as usize;
            if let Some(bid) = cqueue::buffer_select(flags) {
                if res > 0 {
                    let buf = bufs.buf(bid);
                    let send = opcode::Send::new(types::Fd(fds[i ^ 1]), buf, res as u32)
                        .build()
                        .user_data(SEND | bid as u64);
                    pending.push(send);
                    relayed += 1;
                } else {
                    bufs.recycle(bid);
                }
            }
            if !cqueue::more(flags) {
                pending.push(recv(i));
            }
        }
        shared.report(relayed);
    }
    drop(ring);
    // SAFETY: the ring (and with it the registration) is gone; unmap what new() mapped.
    unsafe {
        libc::munmap(
            bufs.ring as *mut libc::c_void,
            bufs.entries as usize * std::mem::size_of::<io_uring::types::BufRingEntry>(),
        );
    }
}

/// This thread's CPU time (user + system), as the kernel accounts it.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
    s.set_nonblocking(true).unwrap();
    s
}

fn epoll_with(socks: &[UdpSocket]) -> i32 {
    // SAFETY: plain epoll calls on descriptors we own; results checked.
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        assert!(ep >= 0);
        for (i, s) in socks.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            assert_eq!(
                libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev),
                0
            );
        }
        ep
    }
}

struct Shared {
    stop: AtomicBool,
    /// Ask the relay for a CPU reading (1), which it answers in `cpu_ns` and clears.
    mark: AtomicBool,
    cpu_ns: AtomicU64,
    relayed: AtomicU64,
}

impl Shared {
    /// The relay's side: packets relayed so far, and its CPU time when asked.
    fn report(&self, relayed: u64) {
        self.relayed.store(relayed, Ordering::Relaxed);
        if self.mark.load(Ordering::Acquire) {
            self.cpu_ns
                .store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
            self.mark.store(false, Ordering::Release);
        }
    }
}

/// The relay: socket 2k is a call's caller-facing leg, 2k+1 its callee-facing leg; a
/// packet in on one goes out of the other to that leg's peer.
fn relay(
    legs: Vec<UdpSocket>,
    peers: Vec<std::net::SocketAddr>,
    shared: Arc<Shared>,
    connected: bool,
) {
    pin(1);
    if connected {
        for (s, p) in legs.iter().zip(&peers) {
            s.connect(p).expect("connect a leg to its peer");
        }
    }
    let ep = epoll_with(&legs);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = [0u8; 2048];
    let mut relayed = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        // SAFETY: events has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        for ev in events.iter().take(n.max(0) as usize) {
            let i = ev.u64 as usize;
            if let Ok((len, _from)) = legs[i].recv_from(&mut buf) {
                let out = i ^ 1;
                let ok = if connected {
                    legs[out].send(&buf[..len]).is_ok()
                } else {
                    legs[out].send_to(&buf[..len], peers[out]).is_ok()
                };
                if ok {
                    relayed += 1;
                }
            }
        }
        shared.report(relayed);
    }
    // SAFETY: our epoll descriptor, closed once.
    unsafe { libc::close(ep) };
}

fn cpu_mark(shared: &Shared) -> Duration {
    shared.mark.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(2);
    while shared.mark.load(Ordering::Acquire) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    Duration::from_nanos(shared.cpu_ns.load(Ordering::Relaxed))
}

fn step(calls: usize, window: Duration, connected: bool, uring: bool) {
    // The relay's legs and the generator's ends, pairwise: end i talks to leg i.
    let legs: Vec<UdpSocket> = (0..2 * calls).map(|_| socket()).collect();
    let ends: Vec<UdpSocket> = (0..2 * calls).map(|_| socket()).collect();
    let leg_addrs: Vec<_> = legs.iter().map(|s| s.local_addr().unwrap()).collect();
    let peers: Vec<_> = ends.iter().map(|s| s.local_addr().unwrap()).collect();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        mark: AtomicBool::new(false),
        cpu_ns: AtomicU64::new(0),
        relayed: AtomicU64::new(0),
    });
    let relay_thread = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            if uring {
                relay_uring(legs, peers, shared)
            } else {
                relay(legs, peers, shared, connected)
            }
        })
    };
    pin(0);
    let ep = epoll_with(&ends);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    let mut buf = [0u8; 2048];
    let packet = [0x80u8; PACKET];
    let warm_up = Duration::from_secs(2);
    let start = Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut window_from: Option<(Duration, u64, u64, u64)> = None;
    let mut result = None;
    // Every end sends one packet per 20 ms, spread over the 20 ms in 1 ms slices.
    let slices = 20;
    let mut slice = 0usize;
    let mut next = start;
    loop {
        let now = Instant::now();
        if now >= next {
            let per = ends.len().div_ceil(slices);
            for i in (slice * per)..((slice + 1) * per).min(ends.len()) {
                if ends[i].send_to(&packet, leg_addrs[i]).is_ok() {
                    sent += 1;
                }
            }
            slice = (slice + 1) % slices;
            next += Duration::from_millis(1);
        }
        let elapsed = now - start;
        if window_from.is_none() && elapsed >= warm_up {
            let relayed = shared.relayed.load(Ordering::Relaxed);
            window_from = Some((cpu_mark(&shared), sent, received, relayed));
        }
        if let Some((cpu0, sent0, _, relayed0)) = window_from {
            if elapsed >= warm_up + window && result.is_none() {
                let cpu = cpu_mark(&shared) - cpu0;
                let relayed = shared.relayed.load(Ordering::Relaxed) - relayed0;
                result = Some((cpu, sent - sent0, relayed));
            }
        }
        if elapsed >= warm_up + window + Duration::from_secs(1) {
            break;
        }
        let wait = next.saturating_duration_since(Instant::now()).as_millis() as i32;
        // SAFETY: events has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, wait) };
        for ev in events.iter().take(n.max(0) as usize) {
            while ends[ev.u64 as usize].recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    relay_thread.join().unwrap();
    // SAFETY: our epoll descriptor, closed once.
    unsafe { libc::close(ep) };
    let (cpu, sent_w, relayed_w) = result.expect("window measured");
    println!(
        "{calls:>6} {sent:>10} {received:>10} {:>8.3} {:>8.2} {:>7.1}",
        100.0 * received as f64 / sent.max(1) as f64,
        cpu.as_secs_f64() * 1e6 / relayed_w.max(1) as f64,
        100.0 * cpu.as_secs_f64() / window.as_secs_f64(),
    );
    let _ = sent_w;
}

fn main() {
    let mut calls = vec![800usize, 1200, 1600];
    let mut duration = 20u64;
    let mut connected = false;
    let mut uring = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => {
                calls = args
                    .next()
                    .expect("--calls N,N")
                    .split(',')
                    .map(|n| n.trim().parse().expect("a number of calls"))
                    .collect()
            }
            "--connected" => connected = true,
            "--uring" => uring = true,
            "--duration" => duration = args.next().expect("seconds").parse().expect("seconds"),
            "-h" | "--help" => {
                println!(
                    "relay-floor [--calls 800,1200,1600] [--duration SECONDS] [--connected | --uring]"
                );
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    // SAFETY: raising our own descriptor limit.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: 65536,
            rlim_max: 65536,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    let how = if uring {
        "io_uring: multishot receive into provided buffers, send from them, batched"
    } else if connected {
        "epoll + recvfrom + send on connected sockets"
    } else {
        "epoll + recvfrom + sendto"
    };
    println!("relay-floor: bare relay ({how}) on CPU 1, generator on CPU 0, {duration} s window after 2 s warm-up");
    println!(" calls       sent   received   deliv%  us/pkt  relay%");
    for n in calls {
        step(n, Duration::from_secs(duration), connected, uring);
    }
}
