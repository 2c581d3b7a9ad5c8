//! SIP transports: UDP sockets and TCP listeners/connections with RFC 3261
//! §18.3 stream framing.

use bytes::Bytes;
use sip::framing::{Frame, StreamFramer};
use sip::transaction::{Peer, Transmit, Transport};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// One listening address.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// UDP or TCP.
    pub transport: Transport,
    /// Address to bind.
    pub addr: SocketAddr,
}

/// Where received messages go: called on the transport's task with the
/// peer and the bytes of one datagram or one framed stream message.
pub type Sink = Arc<dyn Fn(Peer, Bytes) + Send + Sync>;

/// Largest UDP datagram we read.
const MAX_DATAGRAM: usize = 65_535;
/// Queue depth per TCP connection before sends are dropped.
const TCP_QUEUE: usize = 1024;

/// Sends SIP messages; cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct SipSender {
    inner: Arc<Inner>,
}

struct Inner {
    /// Non-blocking std clones of the UDP sockets, for sending from any
    /// thread without a runtime.
    udp: Vec<(SocketAddr, std::net::UdpSocket)>,
    tcp_local: Vec<SocketAddr>,
    conns: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    sink: Sink,
    runtime: tokio::runtime::Handle,
}

impl SipSender {
    /// Local address of the first listener of `transport` (for Via and
    /// Contact).
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        match transport {
            Transport::Udp => self.inner.udp.first().map(|(a, _)| *a),
            Transport::Tcp => self.inner.tcp_local.first().copied(),
        }
    }

    /// Sends one message. Never blocks: a full UDP buffer or TCP queue
    /// drops the message (the transaction layer retransmits over UDP). A TCP
    /// message to a peer with no open connection opens one.
    pub fn send(&self, t: Transmit) {
        match t.peer.transport {
            Transport::Udp => self.send_udp(t.peer.addr, &t.data),
            Transport::Tcp => self.send_tcp(t.peer.addr, t.data),
        }
    }

    /// A keep-alive for a flow (RFC 5626 §3.5.1 double CRLF): a datagram
    /// over UDP, or down the open connection over TCP. A closed TCP flow is
    /// not reopened (the phone's NAT binding is gone with it); false then.
    pub fn keepalive(&self, peer: Peer) -> bool {
        const PING: &[u8] = b"\r\n\r\n";
        match peer.transport {
            Transport::Udp => {
                self.send_udp(peer.addr, PING);
                true
            }
            Transport::Tcp => {
                let conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
                conns
                    .get(&peer.addr)
                    .is_some_and(|tx| tx.try_send(Bytes::from_static(PING)).is_ok())
            }
        }
    }

    fn send_udp(&self, to: SocketAddr, data: &[u8]) {
        let sock = self
            .inner
            .udp
            .iter()
            .find(|(a, _)| a.is_ipv4() == to.is_ipv4())
            .or(self.inner.udp.first());
        if let Some((_, s)) = sock {
            if let Err(e) = s.send_to(data, to) {
                tracing::debug!(%to, error = %e, "udp send failed");
            }
        }
    }

    fn send_tcp(&self, to: SocketAddr, data: Bytes) {
        let mut conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = conns.get(&to) {
            match tx.try_send(data) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(%to, "tcp queue full, message dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(d)) => {
                    conns.remove(&to);
                    return self.connect(conns, to, d);
                }
            }
        }
        self.connect(conns, to, data);
    }

    fn connect(
        &self,
        mut conns: std::sync::MutexGuard<'_, HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
        to: SocketAddr,
        first: Bytes,
    ) {
        let (tx, rx) = mpsc::channel(TCP_QUEUE);
        let _ = tx.try_send(first);
        conns.insert(to, tx);
        drop(conns);
        let inner = self.inner.clone();
        self.inner.runtime.spawn(async move {
            match TcpStream::connect(to).await {
                Ok(stream) => run_connection(inner, stream, to, rx).await,
                Err(e) => {
                    tracing::info!(%to, error = %e, "tcp connect failed");
                    inner
                        .conns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&to);
                }
            }
        });
    }
}

/// Binds every listener and starts its tasks on the current tokio runtime.
/// Received messages are passed to `sink`.
pub async fn bind(listens: &[Listen], sink: Sink) -> io::Result<SipSender> {
    let mut udp_socks = Vec::new();
    let mut udp = Vec::new();
    let mut tcp_listeners = Vec::new();
    let mut tcp_local = Vec::new();
    for l in listens {
        match l.transport {
            Transport::Udp => {
                let std_clone = bind_udp(l.addr)?;
                let local = std_clone.local_addr()?;
                let send_clone = std_clone.try_clone()?;
                send_clone.set_nonblocking(true)?;
                udp.push((local, send_clone));
                udp_socks.push(UdpSocket::from_std(std_clone)?);
            }
            Transport::Tcp => {
                let s = TcpListener::bind(l.addr).await?;
                tcp_local.push(s.local_addr()?);
                tcp_listeners.push(s);
            }
        }
    }
    let inner = Arc::new(Inner {
        udp,
        tcp_local,
        conns: Mutex::new(HashMap::new()),
        sink,
        runtime: tokio::runtime::Handle::current(),
    });
    for s in udp_socks {
        tokio::spawn(udp_loop(inner.clone(), s));
    }
    for l in tcp_listeners {
        tokio::spawn(accept_loop(inner.clone(), l));
    }
    Ok(SipSender { inner })
}

/// Socket buffer we ask the kernel for; it caps the request at
/// `net.core.rmem_max`/`wmem_max` (4 MiB on our machines). A burst of a
/// few thousand datagrams must fit while a shard is busy.
const UDP_BUFFER: usize = 8 * 1024 * 1024;

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, it only drops sooner.
    let _ = s.set_recv_buffer_size(UDP_BUFFER);
    let _ = s.set_send_buffer_size(UDP_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    let s: std::net::UdpSocket = s.into();
    tracing::debug!(%addr, rcvbuf = UDP_BUFFER, "udp socket bound");
    Ok(s)
}

async fn udp_loop(inner: Arc<Inner>, sock: UdpSocket) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                // RFC 5626 keep-alive: a bare CRLF datagram carries nothing.
                if buf[..n].iter().all(|&c| c == b'\r' || c == b'\n') {
                    continue;
                }
                let peer = Peer {
                    transport: Transport::Udp,
                    addr: from,
                };
                (inner.sink)(peer, Bytes::copy_from_slice(&buf[..n]));
            }
            Err(e) => tracing::debug!(error = %e, "udp recv error"),
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let _ = stream.set_nodelay(true);
                let (tx, rx) = mpsc::channel(TCP_QUEUE);
                inner
                    .conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(from, tx);
                tokio::spawn(run_connection(inner.clone(), stream, from, rx));
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads framed messages into the sink and writes queued messages, until
/// either side closes or the peer breaks framing (RFC 4475 §3.1.2.3: close).
async fn run_connection(
    inner: Arc<Inner>,
    stream: TcpStream,
    peer_addr: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (pong_tx, mut pong_rx) = mpsc::channel::<()>(4);
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(d) => if wr.write_all(&d).await.is_err() { break },
                    None => break,
                },
                p = pong_rx.recv() => match p {
                    Some(()) => if wr.write_all(b"\r\n").await.is_err() { break },
                    None => break,
                },
            }
        }
    });
    let peer = Peer {
        transport: Transport::Tcp,
        addr: peer_addr,
    };
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => (inner.sink)(peer, m),
                Ok(Some(Frame::Ping)) => {
                    let _ = pong_tx.try_send(());
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer_addr, error = %e, "closing tcp connection on framing error");
                    break 'read;
                }
            }
        }
    }
    writer.abort();
    inner
        .conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&peer_addr);
}
