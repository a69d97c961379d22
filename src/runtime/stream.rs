//! TCP and TLS connections: framing by Content-Length, CRLF keep-alive (RFC 5626 §3.5.1),
//! idle timeout, connection reuse (one connection per peer address, either direction).

use super::ToSwitch;
use crate::config::Limits;
use crate::sip::message::{frame, Frame};
use crate::sip::transport::{Peer, Transport};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

pub(super) async fn accept_tcp(
    listener: TcpListener,
    to_switch: mpsc::Sender<ToSwitch>,
    limits: Limits,
) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer {
            transport: Transport::Tcp,
            addr,
        };
        let (tx, rx) = mpsc::channel(1024);
        if to_switch
            .send(ToSwitch::Connection {
                peer,
                writer: Some(tx),
            })
            .await
            .is_err()
        {
            return;
        }
        tokio::spawn(serve(stream, peer, to_switch.clone(), rx, limits.clone()));
    }
}

pub(super) async fn accept_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    to_switch: mpsc::Sender<ToSwitch>,
    limits: Limits,
) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let to_switch = to_switch.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let hs =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream))
                    .await;
            let Ok(Ok(tls)) = hs else {
                debug!(%addr, "TLS handshake failed");
                return;
            };
            let peer = Peer {
                transport: Transport::Tls,
                addr,
            };
            let (tx, rx) = mpsc::channel(1024);
            if to_switch
                .send(ToSwitch::Connection {
                    peer,
                    writer: Some(tx),
                })
                .await
                .is_err()
            {
                return;
            }
            serve(tls, peer, to_switch, rx, limits).await;
        });
    }
}

/// Opens a connection to `peer` for the switch; returns the writer at once (bytes queue until
/// the connection is up).
pub(super) fn connect(
    peer: Peer,
    to_switch: mpsc::Sender<ToSwitch>,
    limits: Limits,
    tls: Arc<rustls::ClientConfig>,
) -> mpsc::Sender<Bytes> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let stream = match tokio::time::timeout(
            std::time::Duration::from_secs(10),
            TcpStream::connect(peer.addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            _ => {
                warn!(%peer, "cannot connect");
                let _ = to_switch
                    .send(ToSwitch::Connection { peer, writer: None })
                    .await;
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        if peer.transport == Transport::Tls {
            let name = rustls::pki_types::ServerName::IpAddress(peer.addr.ip().into());
            match tokio_rustls::TlsConnector::from(tls)
                .connect(name, stream)
                .await
            {
                Ok(s) => serve(s, peer, to_switch, rx, limits).await,
                Err(e) => {
                    warn!(%peer, error = %e, "TLS connect failed");
                    let _ = to_switch
                        .send(ToSwitch::Connection { peer, writer: None })
                        .await;
                }
            }
        } else {
            serve(stream, peer, to_switch, rx, limits).await;
        }
    });
    tx
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: Peer,
    to_switch: mpsc::Sender<ToSwitch>,
    mut outgoing: mpsc::Receiver<Bytes>,
    limits: Limits,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(8192);
    let idle = limits.tcp_idle_timeout;
    loop {
        tokio::select! {
            r = tokio::time::timeout(idle, rd.read_buf(&mut buf)) => {
                match r {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Err(_) => { debug!(%peer, "idle timeout"); break; }
                    Ok(Ok(_)) => {}
                }
                loop {
                    match frame(&buf, limits.max_message_size) {
                        Frame::Incomplete => break,
                        Frame::KeepAlive { len, ping } => {
                            let _ = buf.split_to(len);
                            if ping && wr.write_all(b"\r\n").await.is_err() {
                                break;
                            }
                        }
                        Frame::Message(len) => {
                            let bytes = buf.split_to(len).freeze();
                            if to_switch.send(ToSwitch::Message { peer, bytes }).await.is_err() {
                                return;
                            }
                        }
                        Frame::Invalid(why) => {
                            warn!(%peer, why, "unframeable stream; closing");
                            let _ = to_switch.send(ToSwitch::Connection { peer, writer: None }).await;
                            return;
                        }
                    }
                }
            }
            m = outgoing.recv() => match m {
                Some(bytes) => if wr.write_all(&bytes).await.is_err() { break },
                None => break,
            },
        }
    }
    let _ = to_switch
        .send(ToSwitch::Connection { peer, writer: None })
        .await;
}
