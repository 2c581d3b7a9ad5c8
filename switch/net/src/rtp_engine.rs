//! The RTP engine: owns the media sockets and drives `media::session`.
//!
//! `workers` threads each run a single-threaded tokio runtime with a
//! `LocalSet`; every session (a call's or a conference's media) is one task
//! on one of them, owning its legs' sockets. Packets go from socket to
//! session to socket on that thread, never through an actor mailbox; the
//! call actor steers the session through a [`SessionHandle`] (a channel) and
//! hears back through the event callback it gave.
//!
//! Ports come from a configured range: an even port for RTP and the odd port
//! above it for RTCP (RFC 3550 §11). A port pair that fails to bind (taken by
//! another program) is skipped.

use media::record::{Layout, RecordingInfo};
use media::sdp::Negotiated;
use media::session::{Event, LegId, LegOptions, LegStats, Mode, Session, SessionConfig, Transmits};
use media::tone::ToneKind;
use media::wav::Prompt;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct RtpConfig {
    /// Address the sockets bind to (and SDP advertises).
    pub ip: IpAddr,
    /// First port of the range (rounded up to even).
    pub port_min: u16,
    /// Last port of the range.
    pub port_max: u16,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Settings every session starts with.
    pub session: SessionConfig,
}

/// Engine-wide counters, readable from any thread.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Sessions running.
    pub sessions: AtomicU64,
    /// Legs with sockets.
    pub legs: AtomicU64,
    /// RTP/RTCP packets received.
    pub rx_packets: AtomicU64,
    /// Packets sent.
    pub tx_packets: AtomicU64,
    /// Packets the kernel refused (socket buffer full).
    pub tx_dropped: AtomicU64,
    /// Malformed packets dropped (short, bad version, bad lengths, undecodable).
    pub malformed: AtomicU64,
}

struct Inner {
    cfg: RtpConfig,
    ports: Mutex<VecDeque<u16>>,
    workers: Vec<mpsc::UnboundedSender<Spawn>>,
    next_worker: AtomicUsize,
    next_leg: AtomicU64,
    stats: EngineStats,
}

/// Receives a tapped leg's decoded audio on the media thread (rate, one
/// packet's samples): keep it short, e.g. hand it to a channel.
pub type TapFn = Box<dyn FnMut(media::audio::Rate, Vec<i16>) + Send + 'static>;

/// Callback receiving a session's events (called on the media thread: keep it short,
/// e.g. forward to an actor).
pub type EventFn = Box<dyn Fn(SessionEvent) + Send + 'static>;

/// What a session reports to its owner.
#[derive(Debug)]
pub enum SessionEvent {
    /// From the media core: digits, timeouts, prompts done, latching.
    Media(Event),
    /// A recording was finished (stopped or the session ended).
    Recorded {
        /// Its file.
        path: PathBuf,
        /// Length, or what went wrong.
        result: Result<RecordingInfo, String>,
    },
}

struct Spawn {
    cmds: mpsc::UnboundedReceiver<Cmd>,
    events: EventFn,
    engine: Arc<Inner>,
}

enum Cmd {
    AddLeg {
        id: LegId,
        port: u16,
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        opts: LegOptions,
    },
    RemoveLeg(LegId),
    Configure(LegId, Negotiated),
    Mode(Mode),
    Play(LegId, Prompt, u64),
    Tone(LegId, ToneKind),
    StopPlaying(LegId),
    Digits(LegId, String, u32),
    Speech(LegId, bool),
    Tap(LegId, Option<TapFn>),
    RecordStart {
        path: PathBuf,
        layout: Layout,
        sides: Option<(LegId, LegId)>,
    },
    RecordPause(bool),
    RecordSides(Option<(LegId, LegId)>),
    RecordStop,
    Stats(LegId, oneshot::Sender<Option<LegStats>>),
}

/// The RTP engine; cheap to clone.
#[derive(Clone)]
pub struct RtpEngine {
    inner: Arc<Inner>,
}

/// A leg's local transport address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegInfo {
    /// Its id within the engine.
    pub id: LegId,
    /// RTP port (RTCP is port + 1).
    pub port: u16,
}

impl RtpEngine {
    /// Starts the worker threads.
    pub fn start(cfg: RtpConfig) -> io::Result<RtpEngine> {
        let first = cfg.port_min.saturating_add(cfg.port_min & 1);
        let mut ports: VecDeque<u16> = (first..cfg.port_max).step_by(2).collect();
        if ports.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty RTP port range",
            ));
        }
        // Start at a random place: two switches sharing a range (tests, a
        // restart while old sockets linger) don't fight over the same ports.
        let start = rand::random::<u32>() as usize % ports.len();
        ports.rotate_left(start);
        let mut workers = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..cfg.workers.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            workers.push(tx);
            receivers.push(rx);
        }
        let inner = Arc::new(Inner {
            cfg,
            ports: Mutex::new(ports),
            workers,
            next_worker: AtomicUsize::new(0),
            next_leg: AtomicU64::new(1),
            stats: EngineStats::default(),
        });
        for (i, rx) in receivers.into_iter().enumerate() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("rtp-{i}"))
                .spawn(move || worker(rt, rx))?;
        }
        Ok(RtpEngine { inner })
    }

    /// The address sockets bind to and SDP advertises.
    pub fn ip(&self) -> IpAddr {
        self.inner.cfg.ip
    }

    /// Engine-wide counters.
    pub fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    /// A new, empty session on the next worker; `events` hears what happens in it.
    pub fn session(&self, events: EventFn) -> SessionHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let n = self.inner.next_worker.fetch_add(1, Ordering::Relaxed) % self.inner.workers.len();
        let _ = self.inner.workers[n].send(Spawn {
            cmds: rx,
            events,
            engine: self.inner.clone(),
        });
        SessionHandle {
            tx,
            engine: self.clone(),
        }
    }

    /// Takes a free even port and binds RTP and RTCP sockets on it.
    fn bind_pair(&self) -> io::Result<(u16, std::net::UdpSocket, std::net::UdpSocket)> {
        let ip = self.inner.cfg.ip;
        let tries = self
            .inner
            .ports
            .lock()
            .map(|p| p.len())
            .unwrap_or(0)
            .min(64);
        for _ in 0..tries {
            let Some(port) = self.inner.ports.lock().ok().and_then(|mut p| p.pop_front()) else {
                break;
            };
            let pair = std::net::UdpSocket::bind(SocketAddr::new(ip, port)).and_then(|rtp| {
                let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
                rtp.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                Ok((rtp, rtcp))
            });
            match pair {
                Ok((rtp, rtcp)) => return Ok((port, rtp, rtcp)),
                // Taken by someone else: put it at the back and try the next.
                Err(_) => release_port(&self.inner, port),
            }
        }
        Err(io::Error::new(io::ErrorKind::AddrInUse, "no free RTP port"))
    }
}

fn release_port(inner: &Inner, port: u16) {
    if let Ok(mut p) = inner.ports.lock() {
        p.push_back(port);
    }
}

/// Steers one session; cheap to clone. The session ends when every handle is dropped
/// (or [`SessionHandle::close`] is called).
#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    engine: RtpEngine,
}

impl SessionHandle {
    /// Allocates ports and adds a leg to the session.
    pub fn add_leg(&self, opts: LegOptions) -> io::Result<LegInfo> {
        let (port, rtp, rtcp) = self.engine.bind_pair()?;
        let id = self.engine.inner.next_leg.fetch_add(1, Ordering::Relaxed);
        let cmd = Cmd::AddLeg {
            id,
            port,
            rtp,
            rtcp,
            opts,
        };
        if let Err(mpsc::error::SendError(Cmd::AddLeg { port, .. })) = self.tx.send(cmd) {
            release_port(&self.engine.inner, port);
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "media session ended",
            ));
        }
        Ok(LegInfo { id, port })
    }

    /// Removes a leg and frees its ports.
    pub fn remove_leg(&self, leg: LegId) {
        let _ = self.tx.send(Cmd::RemoveLeg(leg));
    }

    /// Applies an offer/answer result to a leg.
    pub fn configure(&self, leg: LegId, neg: Negotiated) {
        let _ = self.tx.send(Cmd::Configure(leg, neg));
    }

    /// Connects the legs (bridge, conference) or disconnects them.
    pub fn set_mode(&self, mode: Mode) {
        let _ = self.tx.send(Cmd::Mode(mode));
    }

    /// Plays a prompt to a leg; `tag` comes back in its `PlaybackDone`.
    pub fn play(&self, leg: LegId, prompt: Prompt, tag: u64) {
        let _ = self.tx.send(Cmd::Play(leg, prompt, tag));
    }

    /// Plays a call-progress tone to a leg until stopped.
    pub fn play_tone(&self, leg: LegId, kind: ToneKind) {
        let _ = self.tx.send(Cmd::Tone(leg, kind));
    }

    /// Stops a prompt or tone.
    pub fn stop_playing(&self, leg: LegId) {
        let _ = self.tx.send(Cmd::StopPlaying(leg));
    }

    /// Sends RFC 4733 digits to a leg.
    pub fn send_digits(&self, leg: LegId, digits: &str, duration_ms: u32) {
        let _ = self
            .tx
            .send(Cmd::Digits(leg, digits.to_owned(), duration_ms));
    }

    /// Turns speech start/end detection on or off for a leg.
    pub fn detect_speech(&self, leg: LegId, on: bool) {
        let _ = self.tx.send(Cmd::Speech(leg, on));
    }

    /// Hands a leg's decoded audio to `f` on the media thread (None: stop).
    pub fn tap(&self, leg: LegId, f: Option<TapFn>) {
        let _ = self.tx.send(Cmd::Tap(leg, f));
    }

    /// Starts recording to `path` (a WAV file).
    pub fn record(&self, path: PathBuf, layout: Layout, sides: Option<(LegId, LegId)>) {
        let _ = self.tx.send(Cmd::RecordStart {
            path,
            layout,
            sides,
        });
    }

    /// Re-points a stereo recording's sides (caller left, callee right).
    pub fn set_recording_sides(&self, sides: Option<(LegId, LegId)>) {
        let _ = self.tx.send(Cmd::RecordSides(sides));
    }

    /// Pauses or resumes the recording (silence keeps its timeline).
    pub fn pause_recording(&self, pause: bool) {
        let _ = self.tx.send(Cmd::RecordPause(pause));
    }

    /// Stops the recording; a [`SessionEvent::Recorded`] follows.
    pub fn stop_recording(&self) {
        let _ = self.tx.send(Cmd::RecordStop);
    }

    /// A leg's counters.
    pub async fn stats(&self, leg: LegId) -> Option<LegStats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Stats(leg, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// Ends the session now (pending commands are still applied first).
    pub fn close(self) {}
}

fn worker(rt: tokio::runtime::Runtime, mut rx: mpsc::UnboundedReceiver<Spawn>) {
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        while let Some(s) = rx.recv().await {
            tokio::task::spawn_local(run_session(s));
        }
    });
}

struct LegSock {
    id: LegId,
    port: u16,
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

const TICK: Duration = Duration::from_millis(20);

async fn run_session(s: Spawn) {
    let Spawn {
        mut cmds,
        events,
        engine,
    } = s;
    engine.stats.sessions.fetch_add(1, Ordering::Relaxed);
    let seed = rand::random::<u32>();
    let mut session = Session::new(engine.cfg.session.clone(), seed);
    let mut socks: Vec<LegSock> = Vec::new();
    let mut out = Transmits::default();
    let mut buf = vec![0u8; 2048];
    let mut next_tick = Instant::now() + TICK;
    let mut recording: Option<PathBuf> = None;
    let mut taps: std::collections::HashMap<LegId, TapFn> = std::collections::HashMap::new();
    let mut rr = 0usize;
    // Counted locally, published now and then: the engine-wide atomics are
    // shared by every worker thread.
    let mut counts = Counts::default();
    let sleep = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(sleep);
    let mut deadline = Instant::now();
    loop {
        let now = Instant::now();
        let wake = if session.needs_tick() {
            if next_tick + 10 * TICK < now {
                next_tick = now;
            }
            next_tick
        } else {
            next_tick = now + TICK;
            // At least 1 ms ahead: a deadline the session failed to move
            // must not spin the loop.
            session
                .poll_timeout()
                .unwrap_or(now + Duration::from_secs(3600))
                .max(now + Duration::from_millis(1))
        };
        if wake != deadline {
            deadline = wake;
            sleep.as_mut().reset(wake.into());
        }
        tokio::select! {
            biased;
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    Cmd::AddLeg { id, port, rtp, rtcp, opts } => {
                        match (UdpSocket::from_std(rtp), UdpSocket::from_std(rtcp)) {
                            (Ok(rtp), Ok(rtcp)) => {
                                engine.stats.legs.fetch_add(1, Ordering::Relaxed);
                                socks.push(LegSock { id, port, rtp, rtcp });
                                session.add_leg(id, opts, Instant::now());
                            }
                            _ => release_port(&engine, port),
                        }
                    }
                    Cmd::RemoveLeg(id) => {
                        session.remove_leg(id);
                        if let Some(i) = socks.iter().position(|s| s.id == id) {
                            let s = socks.swap_remove(i);
                            engine.stats.legs.fetch_sub(1, Ordering::Relaxed);
                            release_port(&engine, s.port);
                        }
                    }
                    Cmd::Configure(id, neg) => {
                        if let Err(e) = session.configure(id, neg, Instant::now()) {
                            tracing::warn!(leg = id, error = %e, "codec setup failed");
                        }
                    }
                    Cmd::Mode(m) => session.set_mode(m),
                    Cmd::Play(id, p, tag) => session.play(id, p, tag),
                    Cmd::Tone(id, k) => session.play_tone(id, k),
                    Cmd::StopPlaying(id) => session.stop_playing(id),
                    Cmd::Digits(id, d, ms) => session.send_digits(id, &d, ms),
                    Cmd::Speech(id, on) => session.detect_speech(id, on),
                    Cmd::Tap(id, f) => {
                        session.tap(id, f.is_some());
                        match f {
                            Some(f) => { taps.insert(id, f); }
                            None => { taps.remove(&id); }
                        }
                    }
                    Cmd::RecordStart { path, layout, sides } => {
                        finish_recording(&mut session, &mut recording, &events);
                        match std::fs::File::create(&path) {
                            Ok(f) => {
                                let sink = Box::new(std::io::BufWriter::with_capacity(64 * 1024, f));
                                match session.start_recording(sink, layout, sides) {
                                    Ok(()) => recording = Some(path),
                                    Err(e) => events(SessionEvent::Recorded { path, result: Err(e.to_string()) }),
                                }
                            }
                            Err(e) => events(SessionEvent::Recorded { path, result: Err(e.to_string()) }),
                        }
                        next_tick = Instant::now() + TICK;
                    }
                    Cmd::RecordPause(p) => session.pause_recording(p),
                    Cmd::RecordSides(sides) => session.set_recording_sides(sides),
                    Cmd::RecordStop => finish_recording(&mut session, &mut recording, &events),
                    Cmd::Stats(id, reply) => {
                        let _ = reply.send(session.stats(id));
                    }
                }
            }
            (k, is_rtcp, n, from) = recv_any(&socks, &mut buf, &mut rr) => {
                let now = Instant::now();
                let id = socks[k].id;
                counts.rx += 1;
                if is_rtcp {
                    session.on_rtcp(id, from, &buf[..n], now);
                } else {
                    session.on_rtp(id, from, &buf[..n], now, &mut out);
                }
            }
            _ = &mut sleep => {
                let now = Instant::now();
                session.on_tick(now, SystemTime::now(), &mut out);
                if session.needs_tick() {
                    next_tick += TICK;
                }
            }
        }
        send_all(&socks, &mut out, &mut counts);
        if counts.rx + counts.tx >= 256 {
            counts.malformed += session.take_malformed();
            counts.publish(&engine.stats);
        }
        while let Some(ev) = session.poll_event() {
            match ev {
                // Tapped audio goes to its tap (moved, not copied).
                Event::Audio { leg, rate, pcm } => {
                    if let Some(f) = taps.get_mut(&leg) {
                        f(rate, pcm);
                    }
                }
                ev => events(SessionEvent::Media(ev)),
            }
        }
    }
    counts.malformed += session.take_malformed();
    counts.publish(&engine.stats);
    finish_recording(&mut session, &mut recording, &events);
    for s in socks {
        engine.stats.legs.fetch_sub(1, Ordering::Relaxed);
        release_port(&engine, s.port);
    }
    engine.stats.sessions.fetch_sub(1, Ordering::Relaxed);
}

fn finish_recording(session: &mut Session, recording: &mut Option<PathBuf>, events: &EventFn) {
    if let (Some(path), Some(result)) = (recording.take(), session.stop_recording()) {
        events(SessionEvent::Recorded {
            path,
            result: result.map_err(|e| e.to_string()),
        });
    }
}

/// Waits for a datagram on any leg socket: (socket index, is RTCP socket, length, source).
/// Sockets are polled round-robin from `rr` so one busy leg cannot starve another.
async fn recv_any(
    socks: &[LegSock],
    buf: &mut [u8],
    rr: &mut usize,
) -> (usize, bool, usize, SocketAddr) {
    poll_fn(|cx| {
        let n = socks.len();
        for k in 0..n {
            let i = (*rr + k) % n;
            for (is_rtcp, sock) in [(false, &socks[i].rtp), (true, &socks[i].rtcp)] {
                let mut rb = ReadBuf::new(buf);
                match sock.poll_recv_from(cx, &mut rb) {
                    Poll::Ready(Ok(from)) => {
                        *rr = i + 1;
                        return Poll::Ready((i, is_rtcp, rb.filled().len(), from));
                    }
                    // ICMP port unreachable and the like: try the others.
                    Poll::Ready(Err(_)) => continue,
                    Poll::Pending => {}
                }
            }
        }
        Poll::Pending
    })
    .await
}

#[derive(Default)]
struct Counts {
    rx: u64,
    tx: u64,
    tx_dropped: u64,
    malformed: u64,
}

impl Counts {
    fn publish(&mut self, stats: &EngineStats) {
        stats.rx_packets.fetch_add(self.rx, Ordering::Relaxed);
        stats.tx_packets.fetch_add(self.tx, Ordering::Relaxed);
        stats
            .tx_dropped
            .fetch_add(self.tx_dropped, Ordering::Relaxed);
        stats.malformed.fetch_add(self.malformed, Ordering::Relaxed);
        *self = Counts::default();
    }
}

fn send_all(socks: &[LegSock], out: &mut Transmits, counts: &mut Counts) {
    if out.is_empty() {
        return;
    }
    for (t, data) in out.iter() {
        let Some(s) = socks.iter().find(|s| s.id == t.leg) else {
            continue;
        };
        let sock = if t.rtcp { &s.rtcp } else { &s.rtp };
        match sock.try_send_to(data, t.dest) {
            Ok(_) => counts.tx += 1,
            Err(_) => counts.tx_dropped += 1,
        }
    }
    out.clear();
}
