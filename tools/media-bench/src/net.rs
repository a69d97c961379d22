//! UDP sockets on loopback, epoll, and batched datagram I/O (recvmmsg/sendmmsg).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// Largest datagram the RTP paths read (RTP with a 160-byte payload is 172 bytes).
pub const DGRAM: usize = 512;
/// Datagrams per recvmmsg/sendmmsg call.
pub const BATCH: usize = 64;

/// A non-blocking UDP socket on `ip:port` (0: any port) with large buffers.
pub fn bind(ip: Ipv4Addr, port: u16) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddrV4::new(ip, port))?;
    s.set_nonblocking(true)?;
    let size: libc::c_int = 4 * 1024 * 1024;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: valid socket; the option value is a c_int of the size given.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    Ok(s)
}

/// An RTP socket on an even port with its RTCP neighbour (port + 1), searched upwards from
/// `*next` (which is advanced past what was tried).
pub fn bind_pair(ip: Ipv4Addr, next: &mut u32) -> std::io::Result<(UdpSocket, UdpSocket)> {
    while *next < u16::MAX as u32 {
        let p = (*next & !1) as u16;
        *next = p as u32 + 2;
        let Ok(rtp) = bind(ip, p) else { continue };
        let Ok(rtcp) = bind(ip, p + 1) else { continue };
        return Ok((rtp, rtcp));
    }
    Err(std::io::Error::other("no free even/odd port pair"))
}

pub struct Epoll(RawFd);

impl Epoll {
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: no preconditions; result checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    pub fn add(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are valid; ev lives for the call.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms`; the ready tokens go into `out`.
    pub fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32, out: &mut Vec<u64>) {
        out.clear();
        // SAFETY: events has room for its length.
        let n = unsafe {
            libc::epoll_wait(
                self.0,
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        for ev in events.iter().take(n.max(0) as usize) {
            out.push(ev.u64);
        }
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: closes our own descriptor once.
        unsafe { libc::close(self.0) };
    }
}

fn to_sockaddr(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = a else {
        panic!("IPv4 only: {a}");
    };
    // SAFETY: sockaddr_in is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = v4.port().to_be();
    sa.sin_addr = libc::in_addr {
        s_addr: u32::from(*v4.ip()).to_be(),
    };
    sa
}

/// Buffers for one recvmmsg call.
pub struct RxBatch {
    bufs: Vec<[u8; DGRAM]>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RxBatch {
    pub fn new() -> RxBatch {
        RxBatch {
            bufs: vec![[0; DGRAM]; BATCH],
            // SAFETY: plain data; all-zero is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            // SAFETY: plain data; all-zero is valid.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
        }
    }

    /// Reads up to BATCH datagrams without blocking; returns how many (0 when none).
    pub fn recv(&mut self, fd: RawFd) -> usize {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: DGRAM,
            };
            // SAFETY: plain data; all-zero is valid before the fields are set.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_in as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // SAFETY: every header points into buffers owned by self that outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        n.max(0) as usize
    }

    /// The i-th datagram of the last `recv` and its source port.
    pub fn get(&self, i: usize) -> (&[u8], u16) {
        let len = (self.hdrs[i].msg_len as usize).min(DGRAM);
        (&self.bufs[i][..len], u16::from_be(self.addrs[i].sin_port))
    }
}

/// Datagrams queued for one sendmmsg call from one socket.
pub struct TxBatch {
    bufs: Vec<[u8; DGRAM]>,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    n: usize,
}

impl TxBatch {
    pub fn new() -> TxBatch {
        TxBatch {
            bufs: vec![[0; DGRAM]; BATCH],
            lens: vec![0; BATCH],
            // SAFETY: plain data; all-zero is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            // SAFETY: plain data; all-zero is valid.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            n: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.n == BATCH
    }

    /// Queues a datagram to `to`; `fill` writes it and returns its length.
    pub fn push(&mut self, to: SocketAddr, fill: impl FnOnce(&mut [u8]) -> usize) {
        let i = self.n;
        self.lens[i] = fill(&mut self.bufs[i]).min(DGRAM);
        self.addrs[i] = to_sockaddr(to);
        self.n += 1;
    }

    /// Sends what is queued from `fd`; returns (sent, failed).
    pub fn flush(&mut self, fd: RawFd) -> (usize, usize) {
        let total = self.n;
        for i in 0..total {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: self.lens[i],
            };
            // SAFETY: plain data; all-zero is valid before the fields are set.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_in as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        let mut done = 0;
        let mut failed = 0;
        while done < total {
            // SAFETY: the headers from `done` on point into buffers owned by self.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[done..].as_mut_ptr(),
                    (total - done) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                // Buffer full or an error on the first datagram: skip it and go on.
                failed += 1;
                done += 1;
            } else {
                done += r as usize;
            }
        }
        self.n = 0;
        (total - failed, failed)
    }
}

/// Datagrams the kernel dropped on this machine: UDP receive errors (full socket buffers),
/// send errors, datagrams to ports nobody listens on (`/proc/net/snmp`), and packets dropped
/// from the per-CPU input backlog (`/proc/net/softnet_stat`).
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelDrops {
    pub udp_in_errors: u64,
    pub udp_no_ports: u64,
    pub udp_sndbuf_errors: u64,
    pub backlog: u64,
}

impl KernelDrops {
    pub fn read() -> KernelDrops {
        let mut k = KernelDrops::default();
        if let Ok(text) = std::fs::read_to_string("/proc/net/snmp") {
            let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
            if let (Some(names), Some(vals)) = (lines.next(), lines.next()) {
                let names: Vec<&str> = names.split_whitespace().collect();
                let vals: Vec<&str> = vals.split_whitespace().collect();
                let get = |n: &str| -> u64 {
                    names
                        .iter()
                        .position(|x| *x == n)
                        .and_then(|i| vals.get(i)?.parse().ok())
                        .unwrap_or(0)
                };
                k.udp_in_errors = get("InErrors");
                k.udp_no_ports = get("NoPorts");
                k.udp_sndbuf_errors = get("SndbufErrors");
            }
        }
        if let Ok(text) = std::fs::read_to_string("/proc/net/softnet_stat") {
            for line in text.lines() {
                if let Some(v) = line.split_whitespace().nth(1) {
                    k.backlog += u64::from_str_radix(v, 16).unwrap_or(0);
                }
            }
        }
        k
    }

    pub fn since(&self, before: &KernelDrops) -> KernelDrops {
        KernelDrops {
            udp_in_errors: self.udp_in_errors.saturating_sub(before.udp_in_errors),
            udp_no_ports: self.udp_no_ports.saturating_sub(before.udp_no_ports),
            udp_sndbuf_errors: self.udp_sndbuf_errors.saturating_sub(before.udp_sndbuf_errors),
            backlog: self.backlog.saturating_sub(before.backlog),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_on_loopback() {
        let ip = Ipv4Addr::LOCALHOST;
        let a = bind(ip, 0).unwrap();
        let b = bind(ip, 0).unwrap();
        let to = b.local_addr().unwrap();
        let mut tx = TxBatch::new();
        for i in 0..10u8 {
            tx.push(to, |buf| {
                buf[..3].copy_from_slice(&[i, i, i]);
                3
            });
        }
        assert_eq!(tx.flush(a.as_raw_fd()), (10, 0));
        let mut rx = RxBatch::new();
        let mut got = 0;
        for _ in 0..100 {
            got += rx.recv(b.as_raw_fd());
            if got == 10 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got, 10);
        let (d, port) = rx.get(0);
        assert_eq!(port, a.local_addr().unwrap().port());
        assert_eq!(d.len(), 3);
        let _ = KernelDrops::read();
    }
}
