//! `rtp-load`: RTP load benchmark of the `switchboard` binary's media anchor.
//!
//! Each step N starts a fresh switch on free loopback ports in a temporary directory, with a
//! caller UA on 127.0.0.2 (the "carrier" trunk, recognised by source address) and a callee UA
//! on 127.0.0.1 (the "far" trunk every call is routed to), both built on the workspace's
//! sans-IO `sip` crate. It primes the switch with a few calls, sets up N calls, sends 20 ms
//! RTP both ways on every call (50 packets/s per direction, paced across each 20 ms), and
//! measures what the switch relays: packets/s, loss, added latency and jitter, the switch's
//! CPU and RSS per call; then it hangs up and stops the switch. See `bench/README.md`.
//!
//! Modes:
//! - `relay`: both legs PCMU; the switch relays packets (rewrites headers only).
//! - `transcode`: the caller speaks PCMU only, the callee Opus only; the switch decodes and
//!   re-encodes every packet.
//! - `all`: both, then a summary.

use bench::procs::{clk_tck, cpu_ticks, rss_kib, spawn_switch, stat_ticks, tail, udp_drops, Proc};
use bench::{Result, Rng};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use serde::Serialize;
use sip::transaction::{new_branch, new_tag, Endpoint, Event, Peer, Timers, Transport, TxId};
use sip::{Host, Method, Name, Request, Response, SipMessage, Uri, Via};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

/// Socket buffer size asked for on the generator's sockets (the kernel caps it at
/// net.core.rmem_max / wmem_max).
const SOCK_BUF: usize = 8 << 20;
/// RTP packets per direction per call per second (20 ms packetisation).
const PPS_PER_STREAM: u64 = 50;
/// Send times kept per stream (transcode mode matches received packets to them): 5.12 s.
const RING: usize = 256;
/// Packets that arrive later than this after the window count as lost.
const GRACE: Duration = Duration::from_secs(1);
/// Stop rule: a step this bad ends the ramp.
const STOP_LOSS_PCT: f64 = 0.1;
const STOP_JITTER_MS: f64 = 5.0;
const STOP_LATENCY_MS: f64 = 50.0;
/// Pass criterion for "largest N".
const PASS_JITTER_MS: f64 = 1.0;
/// Calls set up, given RTP and torn down on each fresh switch before a step is measured, so
/// that one-time costs (code paths faulted in, allocator arenas) are not charged to the step.
const PRIME_CALLS: u64 = 20;
/// File descriptors the switch needs per call (RTP + RTCP socket on each of two legs).
const FDS_PER_CALL: u64 = 4;

#[derive(Parser)]
#[command(
    name = "rtp-load",
    about = "RTP load benchmark of the switchboard media anchor (relay and PCMU<->Opus transcoding)",
    long_about = "RTP load benchmark of the switchboard media anchor.\n\n\
        Each step starts a fresh switch on free loopback ports in a temporary directory, sets up \
        N calls from a caller UA on 127.0.0.2 (carrier trunk) to a callee UA on \
        127.0.0.1, sends 20 ms RTP both ways on every call and reports packets relayed/s, loss, \
        added latency, jitter, switch CPU and RSS per call. It stops every process it started \
        when it ends, also on error."
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: ModeCmd,
}

#[derive(Args, Clone, Debug, Serialize)]
struct Common {
    /// Calls per step, comma-separated [default: relay 250,500,1000,2000,3000,4000,6000;
    /// transcode 50,100,200,400,600,800,1000]. Not with `all`.
    #[arg(long, global = true, value_delimiter = ',')]
    steps: Option<Vec<u64>>,
    /// Length of each measurement window in seconds [default: 10; --quick 3].
    #[arg(long, global = true)]
    secs: Option<u64>,
    /// RTP warm-up before each window in seconds [default: 2; --quick 1].
    #[arg(long, global = true)]
    warmup_secs: Option<u64>,
    /// Call setup (and BYE) rate, calls/s.
    #[arg(long, global = true, default_value_t = 200)]
    cps: u32,
    /// Smoke sizes: relay 100,250,500; transcode 25,50,100; 3 s windows, 1 s warm-up.
    #[arg(long, global = true)]
    quick: bool,
    /// The switch's `[media] workers` (RTP threads) [default: the switch's, one per core].
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// The switch's `[media] opus_complexity` (0..=10) [default: the switch's].
    #[arg(long, global = true)]
    opus_complexity: Option<u8>,
    /// Pin the switch to CPU 0 and this generator to the other CPUs (with `taskset`): the
    /// switch's capacity on exactly one core, without the generator competing for it.
    #[arg(long, global = true)]
    pin: bool,
    /// Go on with the next step after one that breaks the stop rule.
    #[arg(long, global = true)]
    keep_going: bool,
    /// After the ramp, bisect between the largest passing and the smallest failing N until
    /// they are this close (% of the failing N; 0: off; not with --quick).
    #[arg(long, global = true, default_value_t = 10.0)]
    refine_pct: f64,
    /// The switchboard binary [default: $SWITCHBOARD_BIN, else the workspace's
    /// target/release/switchboard].
    #[arg(long, global = true)]
    switch_bin: Option<PathBuf>,
    /// The switch's `log.level`.
    #[arg(long, global = true, default_value = "warn")]
    switch_log: String,
    /// Keep the temporary directory (config, switch stderr) and print its path.
    #[arg(long, global = true)]
    keep_files: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ModeCmd {
    /// PCMU on both legs: the switch relays.
    Relay,
    /// PCMU caller, Opus callee: the switch transcodes every packet both ways.
    Transcode,
    /// relay, then transcode, then a summary.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Relay,
    Transcode,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Relay => "relay",
            Kind::Transcode => "transcode",
        }
    }
    fn default_steps(self, quick: bool) -> Vec<u64> {
        match (self, quick) {
            (Kind::Relay, false) => vec![250, 500, 1000, 2000, 3000, 4000, 6000],
            (Kind::Relay, true) => vec![100, 250, 500],
            (Kind::Transcode, false) => vec![50, 100, 200, 400, 600, 800, 1000],
            (Kind::Transcode, true) => vec![25, 50, 100],
        }
    }
}

/// Settings of one mode's run.
struct Plan {
    kind: Kind,
    steps: Vec<u64>,
    secs: u64,
    warmup: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut common = cli.common;
    common
        .switch_bin
        .get_or_insert_with(bench::default_switch_bin);
    let kinds = match cli.mode {
        ModeCmd::Relay => vec![Kind::Relay],
        ModeCmd::Transcode => vec![Kind::Transcode],
        ModeCmd::All => {
            if common.steps.is_some() {
                eprintln!("rtp-load: --steps applies to `relay` or `transcode`, not `all`");
                return ExitCode::FAILURE;
            }
            vec![Kind::Relay, Kind::Transcode]
        }
    };
    if common.cps == 0 || common.secs == Some(0) {
        eprintln!("rtp-load: --cps and --secs must be positive");
        return ExitCode::FAILURE;
    }
    if common.pin {
        if let Err(e) = pin_self() {
            eprintln!("rtp-load: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut report = Report {
        common: common.clone(),
        modes: Vec::new(),
        errors: Vec::new(),
    };
    let mut ok = true;
    for kind in kinds {
        let plan = Plan {
            kind,
            steps: common
                .steps
                .clone()
                .unwrap_or_else(|| kind.default_steps(common.quick)),
            secs: common.secs.unwrap_or(if common.quick { 3 } else { 10 }),
            warmup: common
                .warmup_secs
                .unwrap_or(if common.quick { 1 } else { 2 }),
        };
        match run_mode(&common, &plan, &mut report) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("\nrtp-load {}: error: {e}", kind.name());
                report.errors.push(format!("{}: {e}", kind.name()));
                ok = false;
            }
        }
    }
    print_summary(&report);
    if let Some(path) = &common.json {
        bench::write_json("rtp-load", path, &report);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[derive(Serialize)]
struct Report {
    common: Common,
    modes: Vec<ModeResult>,
    errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
struct ModeResult {
    kind: Kind,
    secs: u64,
    warmup_secs: u64,
    /// Loopback round trip of the generator's own sockets, no switch (µs): the floor of
    /// every latency figure.
    loopback_p50_us: Option<f64>,
    steps: Vec<StepResult>,
    /// Largest N with 0 loss and jitter p99 <= 1 ms.
    best: Option<u64>,
    /// Why the ramp ended before its last step, if it did.
    stopped: Option<String>,
    /// UDP receive-buffer drops on the whole machine during the mode (netstat -su).
    rcvbuf_errors: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
struct StepResult {
    calls: u64,
    setup_secs: f64,
    setup_failed: u64,
    /// Streams (2 per call) that delivered at least one packet.
    streams_flowing: u64,
    window_secs: f64,
    /// Packets sent (both directions) with a send time in the window.
    sent: u64,
    /// Of those, packets received back through the switch (within the grace second).
    received: u64,
    /// Packets relayed and delivered per second (both directions).
    relayed_pps: f64,
    /// Sent rate in % of the nominal 100 packets/s per call.
    send_rate_pct: f64,
    lost: u64,
    loss_pct: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    jitter_p50_ms: f64,
    jitter_p99_ms: f64,
    jitter_max_ms: f64,
    /// How late the generator sent packets against its schedule (p99, ms).
    send_late_p99_ms: f64,
    switch_cpu_pct: f64,
    /// Switch CPU per call in % of one core.
    cpu_per_call_pct: f64,
    /// Calls one fully used core would carry at that cost (N / switch cores used).
    calls_per_core: f64,
    gen_cpu_pct: f64,
    switch_threads: Vec<(String, f64)>,
    gen_threads: Vec<(String, f64)>,
    rss_before_kib: u64,
    rss_during_kib: u64,
    /// (RSS during − RSS before the step) / N; each step has a fresh switch, primed.
    rss_per_call_kib: f64,
    /// System-wide UDP receive-buffer drops in the window (/proc/net/snmp RcvbufErrors).
    kernel_rcvbuf_drops: u64,
    /// Of those, on the generator's own sockets (/proc/net/udp drops).
    gen_socket_drops: u64,
    /// System-wide UDP send-buffer errors in the window (SndbufErrors).
    kernel_sndbuf_errors: u64,
    /// Whole machine busy in the window, % of one core (200 = both cores of 2).
    machine_busy_pct: f64,
    /// Of which stolen by the hypervisor.
    machine_steal_pct: f64,
    /// Busy time not used by the switch or the generator (other processes, softirq
    /// handled outside them), % of one core.
    other_cpu_pct: f64,
    /// Time the switch's RTP threads spent runnable but waiting for a CPU, % of the window
    /// (summed over the threads).
    switch_rtp_wait_pct: f64,
    /// The same for the generator's RTP threads.
    gen_rtp_wait_pct: f64,
    /// Packets that arrived from a leg of another call (relay mode checks the payload).
    misrouted: u64,
    /// Packets from an address no call of this step uses.
    stray: u64,
    /// Transcode mode: packets whose send time could not be found.
    unmatched: u64,
    send_errors: u64,
    teardown_secs: f64,
    verdict: String,
}

// ---------------------------------------------------------------------------------------
// /proc readers (Proc, tail, rss_kib, cpu_ticks, udp_drops etc. are in bench::procs)

/// CPU ticks per thread name (threads of the same name summed).
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        if let Some((comm, t)) = fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| stat_ticks(&s))
        {
            *out.entry(comm).or_insert(0) += t;
        }
    }
    out
}

/// Busiest threads between two samples: (name, % of a core), largest first.
fn thread_pcts(
    a: &BTreeMap<String, u64>,
    b: &BTreeMap<String, u64>,
    tck: u64,
    secs: f64,
    top: usize,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = b
        .iter()
        .map(|(k, &t)| {
            let d = t.saturating_sub(a.get(k).copied().unwrap_or(0));
            (k.clone(), pct(d, tck, secs))
        })
        .filter(|(_, p)| *p >= 0.5)
        .collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    v.truncate(top);
    v
}

fn pct(ticks: u64, tck: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    ticks as f64 * 100.0 / tck as f64 / secs
}

/// Whole-machine CPU time from /proc/stat, in clock ticks: (idle + iowait, steal). Busy time
/// is derived from idle: this kernel samples user/system time at ticks and misses much of
/// a workload that sleeps and wakes thousands of times a second, while idle time is measured.
fn machine_ticks() -> Option<(u64, u64, usize)> {
    let s = fs::read_to_string("/proc/stat").ok()?;
    let cpus = s
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let f: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((f.get(3)? + f.get(4)?, *f.get(7)?, cpus.max(1)))
}

/// Time a process's threads whose names start with one of `prefixes` spent waiting for a
/// CPU while runnable (/proc/.../schedstat, ns), summed.
fn runqueue_wait_ns(pid: u32, prefixes: &[&str]) -> u64 {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for e in dir.flatten() {
        let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|p| comm.starts_with(p)) {
            continue;
        }
        if let Some(w) = fs::read_to_string(e.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            total += w;
        }
    }
    total
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Our soft limit on open files (the switch inherits it).
fn nofile_limit() -> Option<u64> {
    let s = fs::read_to_string("/proc/self/limits").ok()?;
    let l = s.lines().find(|l| l.starts_with("Max open files"))?;
    l.split_whitespace().nth(3)?.parse().ok()
}

/// `Udp:` counters of /proc/net/snmp (what `netstat -su` prints).
fn udp_snmp() -> HashMap<String, u64> {
    let Ok(s) = fs::read_to_string("/proc/net/snmp") else {
        return HashMap::new();
    };
    let lines: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
    if lines.len() < 2 {
        return HashMap::new();
    }
    lines[0]
        .split_whitespace()
        .skip(1)
        .zip(lines[1].split_whitespace().skip(1))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn snmp_delta(a: &HashMap<String, u64>, b: &HashMap<String, u64>, key: &str) -> u64 {
    b.get(key)
        .copied()
        .unwrap_or(0)
        .saturating_sub(a.get(key).copied().unwrap_or(0))
}

// ---------------------------------------------------------------------------------------
// Ports and sockets

/// Binds a UDP socket on a random port of `ip` in 10000-19999 (below the switch's media
/// range and the kernel's ephemeral range); `pair` asks for an even port whose odd
/// neighbour binds too (RTP + RTCP).
fn bind_random(ip: IpAddr, rng: &mut Rng, pair: bool) -> Result<(UdpSocket, Option<UdpSocket>)> {
    for _ in 0..1000 {
        let mut port = 10_000 + (rng.next_u64() % 9_998) as u16;
        if pair {
            port &= !1;
        }
        let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)) else {
            continue;
        };
        if !pair {
            return Ok((s, None));
        }
        if let Ok(r) = UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
            return Ok((s, Some(r)));
        }
    }
    Err(format!("no free port in 10000-19999 on {ip}"))
}

/// Raises a socket's buffers to `SOCK_BUF` (capped by the kernel); the receive size granted.
fn big_buffers(s: &UdpSocket) -> usize {
    let r = socket2::SockRef::from(s);
    let _ = r.set_recv_buffer_size(SOCK_BUF);
    let _ = r.set_send_buffer_size(SOCK_BUF);
    r.recv_buffer_size().unwrap_or(0)
}

/// Throws away whatever is queued on a socket.
fn drain(s: &UdpSocket) -> usize {
    let mut n = 0;
    let mut buf = [0u8; 2048];
    if s.set_nonblocking(true).is_err() {
        return 0;
    }
    while s.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    let _ = s.set_nonblocking(false);
    n
}

// ---------------------------------------------------------------------------------------
// SDP

fn sdp_body(ip: IpAddr, port: u16, pt: u8, rtpmap: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=rtp-load\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=ptime:20\r\na=sendrecv\r\n"
    ))
}

/// The audio address of an SDP body (c= and m=audio port) and its rtpmap entries
/// (payload type, encoding name lowercased).
fn sdp_media(body: &[u8]) -> Option<(SocketAddr, Vec<(u8, String)>)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut ip = None;
    let mut port = None;
    let mut maps = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if let Some(c) = l.strip_prefix("c=IN IP4 ") {
            ip = c.split('/').next()?.trim().parse::<Ipv4Addr>().ok();
        } else if let Some(m) = l.strip_prefix("m=audio ") {
            port = m.split(' ').next()?.parse::<u16>().ok();
        } else if let Some(r) = l.strip_prefix("a=rtpmap:") {
            let (pt, enc) = r.split_once(' ')?;
            let name = enc.split('/').next()?.to_ascii_lowercase();
            maps.push((pt.parse().ok()?, name));
        }
    }
    Some((SocketAddr::new(IpAddr::V4(ip?), port?), maps))
}

// ---------------------------------------------------------------------------------------
// SIP user agents: one thread each, the sans-IO endpoint over a std UDP socket.

/// What a UA knows about one call (keyed by the call's global index).
#[derive(Clone, Debug, Default)]
struct CallState {
    /// The switch's RTP address for this leg (caller: from the 200; callee: from the INVITE).
    media: Option<SocketAddr>,
    /// Caller: 200 received and ACKed. Callee: ACK received.
    up: bool,
    /// Caller: INVITE failed with this code (0: no usable SDP; 408: timeout).
    failed: Option<u16>,
    /// Caller: final response to our BYE. Callee: a BYE arrived.
    ended: Option<u16>,
}

#[derive(Debug, Default)]
struct UaState {
    calls: HashMap<u64, CallState>,
    /// Requests or responses we did not expect (first few kept).
    oddities: Vec<String>,
    retransmissions: u64,
    /// Callee: the payload type of its last answer.
    answer_pt: Option<u8>,
}

impl UaState {
    fn odd(&mut self, s: String) {
        if self.oddities.len() < 10 {
            self.oddities.push(s);
        }
    }
}

enum UaCmd {
    /// Caller: call global indexes `first..first + count` at `cps`.
    Call { first: u64, count: u64, cps: u32 },
    /// Caller: BYE every answered call of `first..first + count` at `cps`.
    Bye { first: u64, count: u64, cps: u32 },
}

/// A UA thread; stopped and joined on drop.
struct Ua {
    cmds: mpsc::Sender<UaCmd>,
    state: Arc<Mutex<UaState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ua {
    fn state(&self) -> std::sync::MutexGuard<'_, UaState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn send(&self, c: UaCmd) -> Result<()> {
        self.cmds
            .send(c)
            .map_err(|_| "a SIP UA thread has ended".to_string())
    }
}

impl Drop for Ua {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The caller's and the callee's common setup.
struct UaConf {
    sock: UdpSocket,
    switch: SocketAddr,
    /// Our RTP address (named in every SDP).
    rtp: SocketAddr,
    kind: Kind,
}

/// Rate pacing of a queue of calls to act on.
struct Paced {
    queue: VecDeque<u64>,
    next: Instant,
    interval: Duration,
}

impl Paced {
    fn new() -> Paced {
        Paced {
            queue: VecDeque::new(),
            next: Instant::now(),
            interval: Duration::from_millis(5),
        }
    }
    fn start(&mut self, first: u64, count: u64, cps: u32) {
        if self.queue.is_empty() {
            self.next = Instant::now();
        }
        self.interval = Duration::from_secs_f64(1.0 / f64::from(cps.max(1)));
        self.queue.extend(first..first + count);
    }
    /// The next call due now, if any.
    fn due(&mut self, now: Instant) -> Option<u64> {
        if self.queue.is_empty() || now < self.next {
            return None;
        }
        self.next += self.interval;
        self.queue.pop_front()
    }
    fn wake(&self) -> Option<Instant> {
        (!self.queue.is_empty()).then_some(self.next)
    }
}

/// The transaction endpoint over a socket.
struct SipIo {
    sock: UdpSocket,
    ep: Endpoint,
    switch: SocketAddr,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl SipIo {
    fn new(sock: UdpSocket, switch: SocketAddr) -> SipIo {
        let local = sock.local_addr().unwrap_or(switch);
        big_buffers(&sock);
        SipIo {
            sock,
            ep: Endpoint::new(Timers::default(), "rtp-load"),
            switch,
            local,
            buf: vec![0u8; 65_535],
        }
    }
    fn peer(&self) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: self.switch,
        }
    }
    fn via(&self) -> Via {
        Via::new(
            "UDP",
            Host::Ip(self.local.ip()),
            Some(self.local.port()),
            &new_branch(),
        )
    }
    fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            let _ = self.sock.send_to(&t.data, t.peer.addr);
        }
    }
    /// Waits for one datagram until `until` (at most 20 ms) and runs due timers.
    fn pump(&mut self, until: Option<Instant>) {
        let now = Instant::now();
        let mut wait = Duration::from_millis(20);
        for t in [until, self.ep.poll_timeout()].into_iter().flatten() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        let _ = self
            .sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        if let Ok((n, from)) = self.sock.recv_from(&mut self.buf) {
            let peer = Peer {
                transport: Transport::Udp,
                addr: from,
            };
            let data = bytes::Bytes::copy_from_slice(&self.buf[..n]);
            self.ep.handle_input(Instant::now(), peer, data);
        }
        self.ep.handle_timeout(Instant::now());
        self.flush();
    }
}

/// The number dialed for call `idx` and back.
fn number_of(idx: u64) -> String {
    format!("9{idx}")
}

fn index_of(number: &str) -> Option<u64> {
    number.strip_prefix('9')?.parse().ok()
}

/// The body of a UA thread: `caller_loop` or `callee_loop`.
type UaLoop = fn(UaConf, mpsc::Receiver<UaCmd>, &Mutex<UaState>, &AtomicBool);

/// Starts a UA thread named `name` that runs `body`.
fn spawn_ua(name: &str, conf: UaConf, body: UaLoop) -> Result<Ua> {
    let (tx, rx) = mpsc::channel();
    let state = Arc::new(Mutex::new(UaState::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let (st, sp) = (state.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || body(conf, rx, &st, &sp))
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(Ua {
        cmds: tx,
        state,
        stop,
        thread: Some(thread),
    })
}

fn caller_loop(conf: UaConf, rx: mpsc::Receiver<UaCmd>, state: &Mutex<UaState>, stop: &AtomicBool) {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let mut io = SipIo::new(conf.sock, conf.switch);
    let offer = sdp_body(conf.rtp.ip(), conf.rtp.port(), 0, "PCMU/8000");
    let mut invites = Paced::new();
    let mut byes = Paced::new();
    let mut invite_tx: HashMap<TxId, (u64, Request)> = HashMap::new();
    let mut bye_tx: HashMap<TxId, u64> = HashMap::new();
    let mut dialogs: HashMap<u64, sip::dialog::Dialog> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                UaCmd::Call { first, count, cps } => invites.start(first, count, cps),
                UaCmd::Bye { first, count, cps } => byes.start(first, count, cps),
            }
        }
        let now = Instant::now();
        while let Some(idx) = invites.due(now) {
            let sw = io.switch;
            let uri = format!("sip:{}@{sw}", number_of(idx));
            let Ok(ruri) = Uri::parse(&uri) else { continue };
            let mut r = Request::new(Method::Invite, ruri);
            r.headers.push(Name::Via, io.via().to_string());
            r.headers.push(Name::MaxForwards, "70");
            r.headers.push(
                Name::From,
                format!("<sip:carrier@{}>;tag={}", io.local.ip(), new_tag()),
            );
            r.headers.push(Name::To, format!("<{uri}>"));
            r.headers
                .push(Name::CallId, format!("{}-{idx}@rtp-load", new_tag()));
            r.headers.push(Name::CSeq, "1 INVITE");
            r.headers
                .push(Name::Contact, format!("<sip:carrier@{}>", io.local));
            r.headers.push(Name::ContentType, "application/sdp");
            r.body = offer.clone();
            let p = io.peer();
            let tx = io.ep.send_request(Instant::now(), p, r.clone());
            invite_tx.insert(tx, (idx, r));
            lock().calls.entry(idx).or_default();
        }
        while let Some(idx) = byes.due(now) {
            let via = io.via();
            let Some(d) = dialogs.get_mut(&idx) else {
                continue;
            };
            let bye = d.request(Method::Bye, &via, 70);
            let p = io.peer();
            let tx = io.ep.send_request(Instant::now(), p, bye);
            bye_tx.insert(tx, idx);
        }
        io.flush();
        let wake = [invites.wake(), byes.wake()].into_iter().flatten().min();
        io.pump(wake);
        while let Some(ev) = io.ep.poll_event() {
            match ev {
                Event::Response { tx, resp } => {
                    if let Some((idx, invite)) = invite_tx.get(&tx) {
                        let idx = *idx;
                        if resp.code < 200 {
                            continue;
                        }
                        if resp.code >= 300 {
                            lock().calls.entry(idx).or_default().failed = Some(resp.code);
                            invite_tx.remove(&tx);
                            continue;
                        }
                        if dialogs.contains_key(&idx) {
                            continue; // a second 2xx (another fork): not expected here
                        }
                        let Ok(mut d) = sip::dialog::Dialog::uac(invite, &resp) else {
                            lock().odd(format!("caller: unusable 200 for call {idx}"));
                            continue;
                        };
                        let ack = d.request(Method::Ack, &io.via(), 70);
                        let p = io.peer();
                        io.ep.ack_2xx(tx, p, &ack);
                        dialogs.insert(idx, d);
                        let media = sdp_media(resp.body()).map(|(a, _)| a);
                        let mut s = lock();
                        let c = s.calls.entry(idx).or_default();
                        c.media = media;
                        if media.is_some() {
                            c.up = true;
                        } else {
                            c.failed = Some(0);
                        }
                    } else if let Some(&idx) = bye_tx.get(&tx) {
                        if resp.code >= 200 {
                            bye_tx.remove(&tx);
                            dialogs.remove(&idx);
                            lock().calls.entry(idx).or_default().ended = Some(resp.code);
                        }
                    }
                }
                Event::Timeout { tx } => {
                    if let Some((idx, _)) = invite_tx.remove(&tx) {
                        let mut s = lock();
                        let c = s.calls.entry(idx).or_default();
                        if !c.up {
                            c.failed = Some(408);
                        }
                    } else if let Some(idx) = bye_tx.remove(&tx) {
                        dialogs.remove(&idx);
                        lock().calls.entry(idx).or_default().ended = Some(408);
                    }
                }
                Event::Request { tx, req, .. } => {
                    // The switch hanging up a call on its own (or anything else): answer it
                    // and note it; it is not part of the plan.
                    lock().odd(format!("caller got {} {}", req.method, req.uri));
                    if let Some(tx) = tx {
                        let r = sip::response_to(&req, 200, Some(&new_tag()));
                        io.ep.respond(Instant::now(), tx, r);
                    }
                }
                Event::Cancelled { .. } => {}
            }
        }
        io.flush();
        lock().retransmissions = io.ep.stats().retransmissions;
    }
}

/// The callee's answer to the switch's offer: PCMU (relay) or Opus (transcode), using the
/// payload type the offer gave it.
fn answer_for(kind: Kind, offer: &[(u8, String)], rtp: SocketAddr) -> Option<(u8, bytes::Bytes)> {
    let (want, map) = match kind {
        Kind::Relay => ("pcmu", "PCMU/8000"),
        Kind::Transcode => ("opus", "opus/48000/2"),
    };
    let pt = offer
        .iter()
        .find(|(_, n)| n == want)
        .map(|(pt, _)| *pt)
        .or((kind == Kind::Relay).then_some(0))?;
    Some((pt, sdp_body(rtp.ip(), rtp.port(), pt, map)))
}

fn callee_loop(conf: UaConf, rx: mpsc::Receiver<UaCmd>, state: &Mutex<UaState>, stop: &AtomicBool) {
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let mut io = SipIo::new(conf.sock, conf.switch);
    let mut by_call_id: HashMap<String, u64> = HashMap::new();
    let contact = format!("<sip:far@{}>", io.local);
    while !stop.load(Ordering::Relaxed) {
        while rx.try_recv().is_ok() {}
        io.pump(None);
        while let Some(ev) = io.ep.poll_event() {
            let Event::Request { tx, req, .. } = ev else {
                continue;
            };
            let call_id = req.call_id().unwrap_or("").to_string();
            match (&req.method, tx) {
                (Method::Invite, Some(tx)) => {
                    if let Some(&idx) = by_call_id.get(&call_id) {
                        // A re-INVITE: answer with the same media.
                        let mut r = sip::response_to(&req, 200, None);
                        r.headers.push(Name::Contact, contact.clone());
                        lock().odd(format!("callee: re-INVITE on call {idx}"));
                        io.ep.respond(Instant::now(), tx, r);
                        continue;
                    }
                    let idx = req
                        .uri
                        .sip()
                        .and_then(|u| u.user.as_deref())
                        .and_then(index_of);
                    let offer = sdp_media(req.body());
                    let answer = offer
                        .as_ref()
                        .and_then(|(_, maps)| answer_for(conf.kind, maps, conf.rtp));
                    let (Some(idx), Some((media, _)), Some((pt, body))) = (idx, offer, answer)
                    else {
                        lock().odd(format!(
                            "callee: cannot answer INVITE {} (offer: {})",
                            req.uri,
                            String::from_utf8_lossy(req.body()).replace("\r\n", " | ")
                        ));
                        let r = sip::response_to(&req, 488, Some(&new_tag()));
                        io.ep.respond(Instant::now(), tx, r);
                        continue;
                    };
                    let mut r: Response = sip::response_to(&req, 200, Some(&new_tag()));
                    r.headers.push(Name::Contact, contact.clone());
                    r.headers.push(Name::ContentType, "application/sdp");
                    r.body = body;
                    io.ep.respond(Instant::now(), tx, r);
                    by_call_id.insert(call_id, idx);
                    let mut s = lock();
                    s.answer_pt = Some(pt);
                    s.calls.entry(idx).or_default().media = Some(media);
                }
                (Method::Ack, _) => {
                    if let Some(&idx) = by_call_id.get(&call_id) {
                        lock().calls.entry(idx).or_default().up = true;
                    }
                }
                (Method::Bye, Some(tx)) => {
                    let r = sip::response_to(&req, 200, None);
                    io.ep.respond(Instant::now(), tx, r);
                    if let Some(idx) = by_call_id.remove(&call_id) {
                        lock().calls.entry(idx).or_default().ended = Some(200);
                    }
                }
                (_, Some(tx)) => {
                    let code = if req.method == Method::Cancel {
                        200
                    } else {
                        481
                    };
                    lock().odd(format!("callee got {} {}", req.method, req.uri));
                    let r = sip::response_to(&req, code, Some(&new_tag()));
                    io.ep.respond(Instant::now(), tx, r);
                }
                (_, None) => {}
            }
        }
        io.flush();
        lock().retransmissions = io.ep.stats().retransmissions;
    }
}

// ---------------------------------------------------------------------------------------
// RTP: pre-built payloads, senders and receivers

/// Pre-encoded 20 ms frames, one second's cycle of each.
struct Payloads {
    /// µ-law frames of a 440 Hz tone (160 bytes each).
    ulaw: Vec<Vec<u8>>,
    /// Opus frames (16 kHz mono, 24 kbit/s) of a 1 kHz tone.
    opus: Vec<Vec<u8>>,
}

/// Linear to G.711 µ-law (ITU-T G.711, with the usual bias of 0x84).
fn linear_to_ulaw(x: i16) -> u8 {
    let sign = if x < 0 { 0x80 } else { 0 };
    let mag = i32::from(x).abs().min(32635) + 0x84;
    let exp = (31 - (mag as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mant = (mag >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mant as u8)
}

/// A tone at half scale: `n` samples at `rate` Hz of `hz` (a whole number of cycles per
/// second, so a one-second cycle loops without a click).
fn tone(hz: f64, rate: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| (16_384.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / rate).sin()) as i16)
        .collect()
}

impl Payloads {
    fn build(kind: Kind) -> Result<Payloads> {
        let ulaw = tone(440.0, 8000.0, 8000)
            .chunks(160)
            .map(|c| c.iter().map(|&s| linear_to_ulaw(s)).collect())
            .collect();
        let mut opus = Vec::new();
        if kind == Kind::Transcode {
            use audiopus::coder::Encoder;
            use audiopus::{Application, Bitrate, Channels, SampleRate};
            let e = |e: audiopus::Error| format!("opus encoder: {e}");
            let mut enc =
                Encoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip).map_err(e)?;
            enc.set_bitrate(Bitrate::BitsPerSecond(24_000)).map_err(e)?;
            let mut out = vec![0u8; 1500];
            for frame in tone(1000.0, 16_000.0, 16_000).chunks(320) {
                let n = enc.encode(frame, &mut out).map_err(e)?;
                opus.push(out[..n].to_vec());
            }
        }
        Ok(Payloads { ulaw, opus })
    }
}

/// Controls shared by the RTP threads of one step. Times are ns since the rig's clock base.
struct Ctl {
    stop_tx: AtomicBool,
    stop_rx: AtomicBool,
    /// When a receiver last got a packet from the switch (ns on the clock).
    last_rx: AtomicU64,
    w0: AtomicU64,
    w1: AtomicU64,
    /// Streams that have delivered their first packet.
    flowing: AtomicUsize,
    /// Transcode mode: per stream, RING slots of (packet index & 0xffff) << 48 | send ns.
    ring: Vec<AtomicU64>,
}

impl Ctl {
    fn in_window(&self, t: u64) -> bool {
        t >= self.w0.load(Ordering::Relaxed) && t < self.w1.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn ns(self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// One direction of one call, as sent.
struct TxStream {
    /// Global stream id: call i's caller->callee stream is i, callee->caller is N + i.
    id: u32,
    dest: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// Packets sent so far.
    k: u64,
}

struct TxOut {
    /// Packets sent in the window, per global stream id.
    in_window: Vec<u64>,
    /// Packets not sent because the thread fell more than 200 ms behind.
    skipped: u64,
    errors: u64,
    /// Lateness against the schedule, µs (window only).
    late: Histogram<u64>,
}

struct RxOut {
    /// Packets received whose send time is in the window, per global stream id.
    in_window: Vec<u64>,
    latency: Histogram<u64>,
    jitter: Histogram<u64>,
    misrouted: u64,
    stray: u64,
    unmatched: u64,
    rtcp: u64,
}

enum ThreadOut {
    Tx(TxOut),
    Rx(RxOut),
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

/// What payload a sender puts in its packets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Content {
    /// 160 bytes: send time (u64 ns) and stream id (u32) first, then µ-law silence.
    Stamped,
    Ulaw,
    Opus,
}

struct Sender {
    name: String,
    sock: UdpSocket,
    streams: Vec<TxStream>,
    /// Streams by 1 ms slot of the 20 ms cycle.
    slots: Vec<Vec<usize>>,
    content: Content,
    pt: u8,
    ts_step: u32,
    payloads: Arc<Payloads>,
    total_streams: usize,
    /// When tick 0 is due (ns on the clock).
    start: u64,
}

fn run_sender(mut s: Sender, ctl: Arc<Ctl>, clock: Clock) -> TxOut {
    let mut out = TxOut {
        in_window: vec![0; s.total_streams],
        skipped: 0,
        errors: 0,
        late: hist(),
    };
    let mut pkt = Vec::with_capacity(1500);
    let mut tick: u64 = 0;
    const MS: u64 = 1_000_000;
    while !ctl.stop_tx.load(Ordering::Relaxed) {
        let now = clock.ns();
        if now < s.start + tick * MS {
            sleep(Duration::from_nanos(s.start + tick * MS - now));
            continue;
        }
        let due = (now - s.start) / MS;
        if due > tick + 200 {
            // Far behind (descheduled): drop the backlog rather than burst it.
            for t in tick..due {
                out.skipped += s.slots[(t % 20) as usize].len() as u64;
            }
            tick = due;
        }
        while tick <= due {
            let sched = s.start + tick * MS;
            let slot = (tick % 20) as usize;
            for &i in &s.slots[slot] {
                let st = &mut s.streams[i];
                pkt.clear();
                pkt.push(0x80);
                pkt.push(s.pt | if st.k == 0 { 0x80 } else { 0 });
                pkt.extend_from_slice(&st.seq.to_be_bytes());
                pkt.extend_from_slice(&st.ts.to_be_bytes());
                pkt.extend_from_slice(&st.ssrc.to_be_bytes());
                let cycle = (st.k % PPS_PER_STREAM) as usize;
                let t = clock.ns();
                match s.content {
                    Content::Stamped => {
                        pkt.extend_from_slice(&t.to_le_bytes());
                        pkt.extend_from_slice(&st.id.to_le_bytes());
                        pkt.resize(12 + 160, 0xff);
                    }
                    Content::Ulaw => pkt.extend_from_slice(&s.payloads.ulaw[cycle]),
                    Content::Opus => pkt.extend_from_slice(&s.payloads.opus[cycle]),
                }
                if s.content != Content::Stamped {
                    let slot = st.id as usize * RING + (st.k as usize % RING);
                    ctl.ring[slot].store(((st.k & 0xffff) << 48) | t, Ordering::Relaxed);
                }
                if s.sock.send_to(&pkt, st.dest).is_err() {
                    out.errors += 1;
                }
                if ctl.in_window(t) {
                    out.in_window[st.id as usize] += 1;
                    let _ = out.late.record(t.saturating_sub(sched) / 1000);
                }
                st.k += 1;
                st.seq = st.seq.wrapping_add(1);
                st.ts = st.ts.wrapping_add(s.ts_step);
            }
            tick += 1;
        }
    }
    out
}

/// One direction of one call, as received.
struct RxStream {
    /// Global id of the stream these packets were sent on.
    id: u32,
    started: bool,
    last_seq: u16,
    /// Packets since the first, by sequence number (transcode matching).
    ext: i64,
    prev_transit: Option<i64>,
    /// RFC 3550 A.8 interarrival jitter, ns.
    jitter: f64,
}

struct Receiver {
    sock: UdpSocket,
    rtcp: UdpSocket,
    /// Local stream index by the switch leg's source port (u32::MAX: none).
    demux: Vec<u32>,
    switch_ip: IpAddr,
    streams: Vec<RxStream>,
    stamped: bool,
    total_streams: usize,
}

fn run_receiver(mut r: Receiver, ctl: Arc<Ctl>, clock: Clock) -> RxOut {
    let mut out = RxOut {
        in_window: vec![0; r.total_streams],
        latency: hist(),
        jitter: hist(),
        misrouted: 0,
        stray: 0,
        unmatched: 0,
        rtcp: 0,
    };
    let _ = r.sock.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = r.rtcp.set_nonblocking(true);
    let mut buf = [0u8; 2048];
    let mut last_rtcp = clock.ns();
    while !ctl.stop_rx.load(Ordering::Relaxed) {
        let res = r.sock.recv_from(&mut buf);
        let now = clock.ns();
        if now - last_rtcp > 100_000_000 {
            last_rtcp = now;
            let mut b = [0u8; 1500];
            while r.rtcp.recv_from(&mut b).is_ok() {
                out.rtcp += 1;
            }
        }
        let Ok((n, from)) = res else { continue };
        ctl.last_rx.store(now, Ordering::Relaxed);
        if from.ip() != r.switch_ip || n < 12 || buf[0] >> 6 != 2 {
            out.stray += 1;
            continue;
        }
        let local = r.demux[from.port() as usize];
        if local == u32::MAX {
            out.stray += 1;
            continue;
        }
        let st = &mut r.streams[local as usize];
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        if !st.started {
            st.started = true;
            st.last_seq = seq;
            st.ext = 0;
            ctl.flowing.fetch_add(1, Ordering::Relaxed);
        } else {
            st.ext += i64::from(seq.wrapping_sub(st.last_seq) as i16);
            st.last_seq = seq;
        }
        let cc = usize::from(buf[0] & 0x0f);
        let off = 12 + 4 * cc;
        let (sent_ns, id) = if r.stamped {
            let (Some(t), Some(id)) = (buf.get(off..off + 8), buf.get(off + 8..off + 12)) else {
                out.stray += 1;
                continue;
            };
            let t = u64::from_le_bytes(t.try_into().unwrap_or([0; 8]));
            let id = u32::from_le_bytes(id.try_into().unwrap_or([0; 4]));
            if id != st.id {
                out.misrouted += 1;
            }
            if id as usize >= r.total_streams {
                continue;
            }
            (t, id)
        } else {
            if st.ext < 0 {
                out.unmatched += 1;
                continue;
            }
            let k = st.ext as u64;
            let v = ctl.ring[st.id as usize * RING + (k as usize % RING)].load(Ordering::Relaxed);
            if v >> 48 != (k & 0xffff) {
                out.unmatched += 1;
                continue;
            }
            (v & ((1 << 48) - 1), st.id)
        };
        let transit = now as i64 - sent_ns as i64;
        if let Some(p) = st.prev_transit {
            let d = (transit - p).abs() as f64;
            st.jitter += (d - st.jitter) / 16.0;
        }
        st.prev_transit = Some(transit);
        if ctl.in_window(sent_ns) {
            out.in_window[id as usize] += 1;
            let _ = out.latency.record((transit.max(0) as u64) / 1000);
            let _ = out.jitter.record((st.jitter / 1000.0) as u64);
        }
    }
    out
}

/// The RTP threads of one step; stopped and joined on drop.
struct RtpRun {
    ctl: Arc<Ctl>,
    threads: Vec<JoinHandle<ThreadOut>>,
}

impl RtpRun {
    fn finish(mut self) -> Vec<ThreadOut> {
        self.ctl.stop_tx.store(true, Ordering::Relaxed);
        self.ctl.stop_rx.store(true, Ordering::Relaxed);
        self.threads
            .drain(..)
            .filter_map(|t| t.join().ok())
            .collect()
    }
}

impl Drop for RtpRun {
    fn drop(&mut self) {
        self.ctl.stop_tx.store(true, Ordering::Relaxed);
        self.ctl.stop_rx.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The rig: one switch, two SIP UAs, two RTP sockets (+ RTCP sinks).

struct Rig {
    // Field order matters: threads stop, then the switch, then the directory goes.
    caller: Ua,
    callee: Ua,
    switch: Proc,
    kind: Kind,
    /// Caller side RTP (127.0.0.2) and its RTCP sink.
    rtp_a: UdpSocket,
    rtcp_a: UdpSocket,
    /// Callee side RTP (127.0.0.1) and its RTCP sink.
    rtp_b: UdpSocket,
    rtcp_b: UdpSocket,
    switch_ip: IpAddr,
    payloads: Arc<Payloads>,
    clock: Clock,
    next_idx: u64,
    tck: u64,
    rng: Rng,
    _tmp: Option<tempfile::TempDir>,
}

impl Rig {
    /// A fresh switch and UAs; `announce` prints where everything is.
    fn start(common: &Common, kind: Kind, announce: bool) -> Result<Rig> {
        let switch_bin = bench::switch_bin(common.switch_bin.as_deref())?;
        let (dir, tmp) = bench::work_dir(&format!("rtp-load-{}-", kind.name()), common.keep_files)?;
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let carrier = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let mut rng = Rng::seeded();
        // The switch's SIP port: bind, note, release (as sipp-load does).
        let switch_port = {
            let (s, _) = bind_random(lo, &mut rng, false)?;
            s.local_addr().map_err(|e| e.to_string())?.port()
        };
        let (sip_b, _) = bind_random(lo, &mut rng, false)?;
        let (sip_a, _) = bind_random(carrier, &mut rng, false)?;
        let (rtp_a, rtcp_a) = bind_random(carrier, &mut rng, true)?;
        let (rtp_b, rtcp_b) = bind_random(lo, &mut rng, true)?;
        let (Some(rtcp_a), Some(rtcp_b)) = (rtcp_a, rtcp_b) else {
            return Err("cannot bind RTCP sinks".into());
        };
        let granted = [&rtp_a, &rtp_b].map(big_buffers);
        let addr = |s: &UdpSocket| s.local_addr().map_err(|e| e.to_string());
        let callee_sip = addr(&sip_b)?;

        let mut workers = common
            .workers
            .map_or(String::new(), |w| format!("workers = {w}\n"));
        if let Some(c) = common.opus_complexity {
            workers.push_str(&format!("opus_complexity = {c}\n"));
        }
        let config = format!(
            r#"[sip]
listen = ["udp:127.0.0.1:{switch_port}"]
shards = 1

[http]
listen = ""

[store]
path = "{db}"
sync_writes = false

[log]
level = "{log}"

[media]
port_min = 20000
port_max = 59999
timeout_secs = 0
codecs = ["PCMU", "PCMA", "G722", "opus"]
{workers}
[calls]
max_calls = 100000
max_duration_secs = 0

[[trunks]]
name = "carrier"
inbound = {{ from = ["127.0.0.2"] }}

[[trunks]]
name = "far"
outbound = {{ host = "{callee_sip}" }}

[[routes]]
prefix = ""
from = "trunks"
target = {{ trunk = "far" }}
"#,
            db = dir.join("db").display(),
            log = common.switch_log,
        );
        let cmd = if common.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&switch_bin);
            c
        } else {
            Command::new(&switch_bin)
        };
        let mut switch = spawn_switch(cmd, &dir, &config)?;
        let sw_addr = SocketAddr::new(lo, switch_port);
        switch.wait_bound(&sw_addr.to_string(), || UdpSocket::bind(sw_addr).is_err())?;
        // Bound is not quite ready: let the actors start.
        sleep(Duration::from_millis(300));
        let caller = spawn_ua(
            "sip-caller",
            UaConf {
                sock: sip_a,
                switch: sw_addr,
                rtp: addr(&rtp_a)?,
                kind,
            },
            caller_loop,
        )?;
        let callee = spawn_ua(
            "sip-callee",
            UaConf {
                sock: sip_b,
                switch: sw_addr,
                rtp: addr(&rtp_b)?,
                kind,
            },
            callee_loop,
        )?;
        if announce {
            println!(
            "switch pid {} on udp {sw_addr} (media 127.0.0.1:20000-59999{}{}); caller UA {} rtp {}; callee UA {} rtp {}; \
             generator SO_RCVBUF {} KiB (as the kernel reports it: twice what it grants)",
            switch.pid,
            if common.pin { ", pinned to CPU 0" } else { "" },
            common
                .workers
                .map_or(String::new(), |w| format!(", {w} RTP workers")),
            carrier,
            addr(&rtp_a)?,
            callee_sip,
            addr(&rtp_b)?,
            granted[0] / 1024,
        );
        }
        Ok(Rig {
            caller,
            callee,
            switch,
            kind,
            rtp_a,
            rtcp_a,
            rtp_b,
            rtcp_b,
            switch_ip: lo,
            payloads: Arc::new(Payloads::build(kind)?),
            clock: Clock(Instant::now()),
            next_idx: 1,
            tck: clk_tck(),
            rng,
            _tmp: tmp,
        })
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(s) = self.switch.exited() {
            return Err(self.switch.died(s));
        }
        Ok(())
    }

    /// Sleeps until `t` (ns on the rig clock), checking on the switch every 200 ms.
    fn sleep_until(&mut self, t: u64) -> Result<()> {
        loop {
            self.check_alive()?;
            let now = self.clock.ns();
            if now >= t {
                return Ok(());
            }
            sleep(Duration::from_nanos((t - now).min(200_000_000)));
        }
    }

    fn gen_addrs(&self) -> Vec<SocketAddr> {
        [&self.rtp_a, &self.rtp_b, &self.rtcp_a, &self.rtcp_b]
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Round trip of the generator's own sockets with no switch: a packet from the caller
    /// side socket to the callee side socket, 200 times (µs, p50 and p99).
    fn loopback(&self) -> Option<(f64, f64)> {
        let dest = self.rtp_b.local_addr().ok()?;
        let _ = self
            .rtp_b
            .set_read_timeout(Some(Duration::from_millis(100)));
        let mut h = hist();
        let mut buf = [0u8; 2048];
        for _ in 0..200 {
            let t = Instant::now();
            self.rtp_a.send_to(&[0x80; 172], dest).ok()?;
            self.rtp_b.recv_from(&mut buf).ok()?;
            let _ = h.record(t.elapsed().as_nanos() as u64 / 100);
            sleep(Duration::from_millis(1));
        }
        let _ = self.rtp_b.set_read_timeout(None);
        Some((
            h.value_at_quantile(0.5) as f64 / 10.0,
            h.value_at_quantile(0.99) as f64 / 10.0,
        ))
    }

    /// Sets up `n` calls, runs RTP through them, measures, and tears them down.
    /// `warmup_ms` of RTP before a window of `secs`.
    fn step(&mut self, n: u64, warmup_ms: u64, secs: u64, cps: u32) -> Result<StepResult> {
        let mut res = StepResult {
            calls: n,
            ..StepResult::default()
        };
        self.check_alive()?;
        for s in [&self.rtp_a, &self.rtp_b, &self.rtcp_a, &self.rtcp_b] {
            drain(s);
        }
        let pid = self.switch.pid;
        let fds_before = fd_count(pid);
        res.rss_before_kib = rss_kib(pid)?.0;

        // Set up.
        let first = self.next_idx;
        self.next_idx += n;
        let range = first..first + n;
        let t_setup = Instant::now();
        self.caller.send(UaCmd::Call {
            first,
            count: n,
            cps,
        })?;
        let limit = Duration::from_secs_f64(n as f64 / f64::from(cps) + 40.0);
        let mut last_print = Instant::now();
        let (up, failed) = loop {
            self.check_alive()?;
            let (up, failed) = {
                let s = self.caller.state();
                let c = self.callee.state();
                let mut up = 0;
                let mut failed = 0;
                for i in range.clone() {
                    match s.calls.get(&i) {
                        Some(x) if x.failed.is_some() => failed += 1,
                        Some(x) if x.up && c.calls.get(&i).is_some_and(|y| y.up) => up += 1,
                        _ => {}
                    }
                }
                (up, failed)
            };
            if up + failed >= n {
                break (up, failed);
            }
            if t_setup.elapsed() > limit {
                println!(
                    "    setup: only {up} of {n} calls up after {:.0} s ({failed} failed)",
                    limit.as_secs_f64()
                );
                break (up, failed);
            }
            if last_print.elapsed() > Duration::from_secs(10) {
                last_print = Instant::now();
                println!("    setup: {up} of {n} calls up, {failed} failed");
            }
            sleep(Duration::from_millis(100));
        };
        res.setup_secs = t_setup.elapsed().as_secs_f64();
        res.setup_failed = n - up;
        if failed > 0 {
            let s = self.caller.state();
            let mut codes: BTreeMap<u16, u64> = BTreeMap::new();
            for i in range.clone() {
                if let Some(c) = s.calls.get(&i).and_then(|x| x.failed) {
                    *codes.entry(c).or_insert(0) += 1;
                }
            }
            println!("    setup: {failed} calls failed, by final response: {codes:?} (0 = 200 without usable SDP)");
        }
        self.print_oddities();

        // Pair the legs: call i's caller-side and callee-side switch addresses.
        let mut legs: Vec<(SocketAddr, SocketAddr)> = Vec::new();
        {
            let s = self.caller.state();
            let c = self.callee.state();
            for i in range.clone() {
                if let (Some(a), Some(b)) = (
                    s.calls.get(&i).filter(|x| x.up).and_then(|x| x.media),
                    c.calls.get(&i).filter(|x| x.up).and_then(|x| x.media),
                ) {
                    legs.push((a, b));
                }
            }
        }
        if legs.is_empty() {
            self.teardown(&range, cps, fds_before)?;
            return Err(format!(
                "no call of {n} was set up (switch stderr tail:\n{})",
                tail(&self.switch.stderr, 20)
            ));
        }
        let m = legs.len();
        let total = 2 * m;

        // RTP threads.
        let ctl = Arc::new(Ctl {
            stop_tx: AtomicBool::new(false),
            stop_rx: AtomicBool::new(false),
            last_rx: AtomicU64::new(0),
            w0: AtomicU64::new(u64::MAX),
            w1: AtomicU64::new(u64::MAX),
            flowing: AtomicUsize::new(0),
            ring: if self.kind == Kind::Transcode {
                (0..total * RING)
                    .map(|_| AtomicU64::new(u64::MAX))
                    .collect()
            } else {
                Vec::new()
            },
        });
        let start = self.clock.ns() + 20_000_000;
        let (content_a, content_b, pt_b, ts_b) = match self.kind {
            Kind::Relay => (Content::Stamped, Content::Stamped, 0u8, 160u32),
            // The callee sends Opus with the payload type it answered (the switch's offer's).
            Kind::Transcode => (Content::Ulaw, Content::Opus, self.opus_pt(), 960u32),
        };
        let mk_streams = |rng: &mut Rng, base: usize, dest: &dyn Fn(usize) -> SocketAddr| {
            (0..m)
                .map(|i| TxStream {
                    id: (base + i) as u32,
                    dest: dest(i),
                    ssrc: rng.next_u64() as u32,
                    seq: rng.next_u64() as u16,
                    ts: rng.next_u64() as u32,
                    k: 0,
                })
                .collect::<Vec<_>>()
        };
        let slots = |offset: usize| {
            let mut v = vec![Vec::new(); 20];
            for i in 0..m {
                v[(i + offset) % 20].push(i);
            }
            v
        };
        let streams_a = mk_streams(&mut self.rng, 0, &|i| legs[i].0);
        let streams_b = mk_streams(&mut self.rng, m, &|i| legs[i].1);
        let clone = |s: &UdpSocket| s.try_clone().map_err(|e| format!("socket clone: {e}"));
        let senders = [
            Sender {
                name: "tx-caller".into(),
                sock: clone(&self.rtp_a)?,
                streams: streams_a,
                slots: slots(0),
                content: content_a,
                pt: 0,
                ts_step: 160,
                payloads: self.payloads.clone(),
                total_streams: total,
                start,
            },
            Sender {
                name: "tx-callee".into(),
                sock: clone(&self.rtp_b)?,
                streams: streams_b,
                slots: slots(10),
                content: content_b,
                pt: pt_b,
                ts_step: ts_b,
                payloads: self.payloads.clone(),
                total_streams: total,
                start,
            },
        ];
        // Receivers: the callee side hears caller->callee streams (ids 0..m) from the
        // switch's B legs; the caller side hears callee->caller streams (m..2m) from A legs.
        let demux = |pick: &dyn Fn(usize) -> SocketAddr| {
            let mut d = vec![u32::MAX; 65_536];
            for i in 0..m {
                d[pick(i).port() as usize] = i as u32;
            }
            d
        };
        let rx_streams = |base: usize| {
            (0..m)
                .map(|i| RxStream {
                    id: (base + i) as u32,
                    started: false,
                    last_seq: 0,
                    ext: 0,
                    prev_transit: None,
                    jitter: 0.0,
                })
                .collect::<Vec<_>>()
        };
        let stamped = self.kind == Kind::Relay;
        let receivers = [
            (
                "rx-callee",
                Receiver {
                    sock: clone(&self.rtp_b)?,
                    rtcp: clone(&self.rtcp_b)?,
                    demux: demux(&|i| legs[i].1),
                    switch_ip: self.switch_ip,
                    streams: rx_streams(0),
                    stamped,
                    total_streams: total,
                },
            ),
            (
                "rx-caller",
                Receiver {
                    sock: clone(&self.rtp_a)?,
                    rtcp: clone(&self.rtcp_a)?,
                    demux: demux(&|i| legs[i].0),
                    switch_ip: self.switch_ip,
                    streams: rx_streams(m),
                    stamped,
                    total_streams: total,
                },
            ),
        ];
        let mut run = RtpRun {
            ctl: ctl.clone(),
            threads: Vec::new(),
        };
        let clock = self.clock;
        for (name, r) in receivers {
            let c = ctl.clone();
            run.threads.push(
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || ThreadOut::Rx(run_receiver(r, c, clock)))
                    .map_err(|e| format!("cannot start a thread: {e}"))?,
            );
        }
        for s in senders {
            let c = ctl.clone();
            run.threads.push(
                std::thread::Builder::new()
                    .name(s.name.clone())
                    .spawn(move || ThreadOut::Tx(run_sender(s, c, clock)))
                    .map_err(|e| format!("cannot start a thread: {e}"))?,
            );
        }

        // Wait for every stream to flow (at most 10 s), then warm up and measure.
        let flow_deadline = self.clock.ns() + 10_000_000_000;
        while ctl.flowing.load(Ordering::Relaxed) < total && self.clock.ns() < flow_deadline {
            self.check_alive()?;
            sleep(Duration::from_millis(20));
        }
        res.streams_flowing = ctl.flowing.load(Ordering::Relaxed) as u64;
        if res.streams_flowing < total as u64 {
            println!(
                "    only {} of {total} RTP streams delivered a packet within 10 s",
                res.streams_flowing
            );
        }
        let w0 = self.clock.ns() + warmup_ms * 1_000_000;
        let w1 = w0 + secs * 1_000_000_000;
        ctl.w0.store(w0, Ordering::Relaxed);
        ctl.w1.store(w1, Ordering::Relaxed);
        self.sleep_until(w0)?;
        let me = std::process::id();
        let (sw0, gen0) = (cpu_ticks(pid), cpu_ticks(me));
        let (swt0, gent0) = (thread_ticks(pid), thread_ticks(me));
        let snmp0 = udp_snmp();
        let mach0 = machine_ticks();
        let (swq0, genq0) = (
            runqueue_wait_ns(pid, &["rtp-"]),
            runqueue_wait_ns(me, &["rx-", "tx-"]),
        );
        let gaddrs = self.gen_addrs();
        let gdrop0 = udp_drops(|a| gaddrs.contains(&a)).unwrap_or(0);
        let t0 = Instant::now();
        self.sleep_until(w0 + secs * 500_000_000)?;
        let mut rs = [0u64; 3];
        for r in &mut rs {
            *r = rss_kib(pid)?.0;
            sleep(Duration::from_millis(50));
        }
        rs.sort_unstable();
        res.rss_during_kib = rs[1];
        self.sleep_until(w1)?;
        let (sw1, gen1) = (cpu_ticks(pid), cpu_ticks(me));
        let (swt1, gent1) = (thread_ticks(pid), thread_ticks(me));
        let snmp1 = udp_snmp();
        let mach1 = machine_ticks();
        let (swq1, genq1) = (
            runqueue_wait_ns(pid, &["rtp-"]),
            runqueue_wait_ns(me, &["rx-", "tx-"]),
        );
        let gdrop1 = udp_drops(|a| gaddrs.contains(&a)).unwrap_or(0);
        let window = t0.elapsed().as_secs_f64();
        self.sleep_until(w1 + GRACE.as_nanos() as u64)?;
        // Stop sending, and keep receiving (outside the window: not counted) until the
        // switch has nothing more queued, so that its backlog does not overflow our socket
        // buffers and show up as drops later.
        ctl.stop_tx.store(true, Ordering::Relaxed);
        let until = self.clock.ns() + 10_000_000_000;
        while self.clock.ns() < until
            && self.clock.ns() < ctl.last_rx.load(Ordering::Relaxed) + 200_000_000
        {
            sleep(Duration::from_millis(20));
        }
        let outs = run.finish();

        // Tally.
        let mut sent = vec![0u64; total];
        let mut recv = vec![0u64; total];
        let mut lat = hist();
        let mut jit = hist();
        let mut late = hist();
        for o in outs {
            match o {
                ThreadOut::Tx(t) => {
                    for (a, b) in sent.iter_mut().zip(&t.in_window) {
                        *a += b;
                    }
                    let _ = late.add(&t.late);
                    res.send_errors += t.errors;
                    if t.skipped > 0 {
                        println!("    generator fell behind: {} packets not sent", t.skipped);
                    }
                }
                ThreadOut::Rx(r) => {
                    for (a, b) in recv.iter_mut().zip(&r.in_window) {
                        *a += b;
                    }
                    let _ = lat.add(&r.latency);
                    let _ = jit.add(&r.jitter);
                    res.misrouted += r.misrouted;
                    res.stray += r.stray;
                    res.unmatched += r.unmatched;
                }
            }
        }
        res.window_secs = secs as f64;
        res.sent = sent.iter().sum();
        res.received = recv.iter().zip(&sent).map(|(r, s)| (*r).min(*s)).sum();
        res.lost = sent
            .iter()
            .zip(&recv)
            .map(|(s, r)| s.saturating_sub(*r))
            .sum();
        // Calls that never came up count as lost too (their packets were never sent).
        let missing = (n - m as u64) * 2 * PPS_PER_STREAM * secs;
        res.lost += missing;
        let expected = res.sent + missing;
        res.loss_pct = if expected > 0 {
            res.lost as f64 * 100.0 / expected as f64
        } else {
            0.0
        };
        res.relayed_pps = res.received as f64 / secs as f64;
        res.send_rate_pct =
            res.sent as f64 * 100.0 / (total as f64 * PPS_PER_STREAM as f64 * secs as f64);
        let ms = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                f64::NAN
            } else if q >= 1.0 {
                h.max() as f64 / 1000.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        res.latency_p50_ms = ms(&lat, 0.5);
        res.latency_p99_ms = ms(&lat, 0.99);
        res.latency_max_ms = ms(&lat, 1.0);
        res.jitter_p50_ms = ms(&jit, 0.5);
        res.jitter_p99_ms = ms(&jit, 0.99);
        res.jitter_max_ms = ms(&jit, 1.0);
        res.send_late_p99_ms = ms(&late, 0.99);
        if let (Some(a), Some(b)) = (sw0, sw1) {
            res.switch_cpu_pct = pct(b.saturating_sub(a), self.tck, window);
        }
        if let (Some(a), Some(b)) = (gen0, gen1) {
            res.gen_cpu_pct = pct(b.saturating_sub(a), self.tck, window);
        }
        res.cpu_per_call_pct = res.switch_cpu_pct / n as f64;
        res.calls_per_core = if res.switch_cpu_pct > 0.0 {
            n as f64 * 100.0 / res.switch_cpu_pct
        } else {
            0.0
        };
        res.switch_threads = thread_pcts(&swt0, &swt1, self.tck, window, 5);
        res.gen_threads = thread_pcts(&gent0, &gent1, self.tck, window, 6);
        res.kernel_rcvbuf_drops = snmp_delta(&snmp0, &snmp1, "RcvbufErrors");
        res.kernel_sndbuf_errors = snmp_delta(&snmp0, &snmp1, "SndbufErrors");
        res.gen_socket_drops = gdrop1.saturating_sub(gdrop0);
        if let (Some((i0, st0, _)), Some((i1, st1, cores))) = (mach0, mach1) {
            let cores = cores as f64;
            res.machine_busy_pct =
                (cores * 100.0 - pct(i1.saturating_sub(i0), self.tck, window)).max(0.0);
            res.machine_steal_pct = pct(st1.saturating_sub(st0), self.tck, window);
            res.other_cpu_pct =
                (res.machine_busy_pct - res.switch_cpu_pct - res.gen_cpu_pct).max(0.0);
        }
        let wait = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e7 / window;
        res.switch_rtp_wait_pct = wait(swq0, swq1);
        res.gen_rtp_wait_pct = wait(genq0, genq1);
        res.rss_per_call_kib = (res.rss_during_kib as f64 - res.rss_before_kib as f64) / n as f64;

        // Tear down.
        let t_down = Instant::now();
        self.teardown(&range, cps, fds_before)?;
        res.teardown_secs = t_down.elapsed().as_secs_f64();
        res.verdict = verdict(&res);
        Ok(res)
    }

    /// The payload type the switch offered the callee for Opus (what the callee answered).
    fn opus_pt(&self) -> u8 {
        self.callee.state().answer_pt.unwrap_or(96)
    }

    /// BYEs every call of `range`, waits for them to end and for the switch to close the
    /// calls' sockets.
    fn teardown(
        &mut self,
        range: &std::ops::Range<u64>,
        cps: u32,
        fds_before: usize,
    ) -> Result<()> {
        let n = range.end - range.start;
        // BYE twice as fast as the calls were set up: nothing else is happening now.
        self.caller.send(UaCmd::Bye {
            first: range.start,
            count: n,
            cps: cps.saturating_mul(2),
        })?;
        let limit = Duration::from_secs_f64(n as f64 / f64::from(cps) + 40.0);
        let t = Instant::now();
        loop {
            self.check_alive()?;
            let pending = {
                let s = self.caller.state();
                range
                    .clone()
                    .filter(|i| s.calls.get(i).is_some_and(|c| c.up && c.ended.is_none()))
                    .count()
            };
            if pending == 0 {
                break;
            }
            if t.elapsed() > limit {
                println!(
                    "    teardown: {pending} BYEs unanswered after {:.0} s",
                    limit.as_secs_f64()
                );
                break;
            }
            sleep(Duration::from_millis(100));
        }
        {
            let s = self.caller.state();
            let bad: usize = range
                .clone()
                .filter(|i| {
                    s.calls
                        .get(i)
                        .and_then(|c| c.ended)
                        .is_some_and(|code| code != 200)
                })
                .count();
            if bad > 0 {
                println!("    teardown: {bad} BYEs got an error response or timed out");
            }
        }
        // The switch closes a call's four sockets when its media session ends.
        let t = Instant::now();
        let pid = self.switch.pid;
        loop {
            self.check_alive()?;
            let fds = fd_count(pid);
            if fds <= fds_before + 4 {
                break;
            }
            if t.elapsed() > Duration::from_secs(20) {
                println!(
                    "    teardown: the switch still has {} more open files than before the step",
                    fds - fds_before
                );
                break;
            }
            sleep(Duration::from_millis(100));
        }
        for ua in [&self.caller, &self.callee] {
            let mut s = ua.state();
            for i in range.clone() {
                s.calls.remove(&i);
            }
        }
        self.print_oddities();
        Ok(())
    }

    fn print_oddities(&self) {
        for (who, ua) in [("caller", &self.caller), ("callee", &self.callee)] {
            let odd = std::mem::take(&mut ua.state().oddities);
            for o in odd {
                println!("    {who} UA: {o}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Verdicts, the ramp, tables

/// 0 loss and jitter p99 <= 1 ms, every call set up.
fn passes(r: &StepResult) -> bool {
    r.setup_failed == 0 && r.lost == 0 && r.jitter_p99_ms <= PASS_JITTER_MS
}

/// Why a step ends the ramp, if it does.
fn stop_reason(r: &StepResult) -> Option<String> {
    let mut why = Vec::new();
    if r.setup_failed > 0 {
        why.push(format!("{} calls not set up", r.setup_failed));
    }
    if r.loss_pct > STOP_LOSS_PCT {
        why.push(format!("loss {:.3} % > {STOP_LOSS_PCT} %", r.loss_pct));
    }
    if r.jitter_p99_ms.is_nan() || r.jitter_p99_ms > STOP_JITTER_MS {
        why.push(format!(
            "jitter p99 {:.3} ms > {STOP_JITTER_MS} ms",
            r.jitter_p99_ms
        ));
    }
    if r.latency_p99_ms.is_nan() || r.latency_p99_ms > STOP_LATENCY_MS {
        why.push(format!(
            "latency p99 {:.3} ms > {STOP_LATENCY_MS} ms",
            r.latency_p99_ms
        ));
    }
    (!why.is_empty()).then(|| why.join(", "))
}

fn verdict(r: &StepResult) -> String {
    if passes(r) {
        return "ok".into();
    }
    let mut v = Vec::new();
    if r.setup_failed > 0 {
        v.push("SETUP");
    }
    if r.lost > 0 {
        v.push("LOSS");
    }
    if r.jitter_p99_ms.is_nan() || r.jitter_p99_ms > PASS_JITTER_MS {
        v.push("JITTER");
    }
    if r.latency_p99_ms.is_nan() || r.latency_p99_ms > STOP_LATENCY_MS {
        v.push("LATENCY");
    }
    let mut s = v.join("+");
    if stop_reason(r).is_some() {
        s.push_str(" (stop)");
    }
    s
}

fn machine_note(common: &Common) {
    let cores = machine_ticks().map_or(0, |(_, _, c)| c);
    if common.pin {
        println!(
            "machine: {cores} cores; the switch is pinned to CPU 0 (so it runs one RTP worker unless \
             --workers says otherwise), this generator (2 sender + 2 receiver threads) to the others"
        );
    } else {
        println!(
            "machine: {cores} cores, shared by the switch and this generator (2 sender + 2 receiver \
             threads); figures are for this machine, not the switch alone"
        );
    }
}

/// Moves every thread of this process (and those it starts later) off CPU 0.
fn pin_self() -> Result<()> {
    let cores = machine_ticks().map_or(0, |(_, _, c)| c);
    if cores < 2 {
        return Err("--pin needs at least 2 CPUs".into());
    }
    let list = format!("1-{}", cores - 1);
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", &list, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("--pin: cannot run taskset: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err("--pin: taskset failed".into())
    }
}

fn table_header() {
    println!(
        "{:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>8} {:>10} {:>7} {:>8} {:>6}  result",
        "N",
        "pkts/s",
        "lost",
        "loss%",
        "lat50",
        "lat99",
        "latmax",
        "jit50",
        "jit99",
        "sw-cpu",
        "cpu/call",
        "calls/core",
        "gen-cpu",
        "KiB/call",
        "kdrop",
    );
}

fn table_row(r: &StepResult) -> String {
    format!(
        "{:>6} {:>9.0} {:>7} {:>7.3} {:>7.3} {:>7.3} {:>7.2} {:>6.3} {:>6.3} {:>6.0}% {:>7.4}% {:>10.0} {:>6.0}% {:>8.1} {:>6}  {}",
        r.calls,
        r.relayed_pps,
        r.lost,
        r.loss_pct,
        r.latency_p50_ms,
        r.latency_p99_ms,
        r.latency_max_ms,
        r.jitter_p50_ms,
        r.jitter_p99_ms,
        r.switch_cpu_pct,
        r.cpu_per_call_pct,
        r.calls_per_core,
        r.gen_cpu_pct,
        r.rss_per_call_kib,
        r.kernel_rcvbuf_drops,
        r.verdict
    )
}

fn threads_str(v: &[(String, f64)]) -> String {
    v.iter()
        .map(|(k, p)| format!("{k} {p:.0}%"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn detail(r: &StepResult) -> String {
    format!(
        "       setup {:.1} s, {}/{} streams flowing; sent {:.1} % of nominal (late p99 {:.2} ms{})\n       \
         cpu: switch {}; generator {}; machine busy {:.0}% (steal {:.0}%, other {:.0}%); \
         waiting for a CPU: switch rtp {:.0}%, generator rtp {:.0}%\n       \
         RSS {:.1} -> {:.1} MiB ({:+.1} KiB/call); UDP drops: rcvbuf {} (generator sockets {}), \
         sndbuf {}; misrouted {}, stray {}, unmatched {}; teardown {:.1} s",
        r.setup_secs,
        r.streams_flowing,
        2 * r.calls,
        r.send_rate_pct,
        r.send_late_p99_ms,
        if r.send_errors > 0 {
            format!(", {} send errors", r.send_errors)
        } else {
            String::new()
        },
        threads_str(&r.switch_threads),
        threads_str(&r.gen_threads),
        r.machine_busy_pct,
        r.machine_steal_pct,
        r.other_cpu_pct,
        r.switch_rtp_wait_pct,
        r.gen_rtp_wait_pct,
        r.rss_before_kib as f64 / 1024.0,
        r.rss_during_kib as f64 / 1024.0,
        r.rss_per_call_kib,
        r.kernel_rcvbuf_drops,
        r.gen_socket_drops,
        r.kernel_sndbuf_errors,
        r.misrouted,
        r.stray,
        r.unmatched,
        r.teardown_secs,
    )
}

fn run_mode(common: &Common, plan: &Plan, report: &mut Report) -> Result<()> {
    let kind = plan.kind;
    println!(
        "\n=== {}: steps {:?} calls, {} s windows after {} s warm-up, calls set up at {}/s ===",
        kind.name(),
        plan.steps,
        plan.secs,
        plan.warmup,
        common.cps
    );
    match kind {
        Kind::Relay => println!(
            "caller PCMU <-> switch <-> callee PCMU: the switch relays; 100 packets/s per call (50 each way)"
        ),
        Kind::Transcode => println!(
            "caller PCMU <-> switch <-> callee Opus: the switch decodes and re-encodes every packet; 100 packets/s per call"
        ),
    }
    machine_note(common);
    let snmp0 = udp_snmp();
    let mut mode = ModeResult {
        kind,
        secs: plan.secs,
        warmup_secs: plan.warmup,
        loopback_p50_us: None,
        steps: Vec::new(),
        best: None,
        stopped: None,
        rcvbuf_errors: 0,
    };
    let r = ramp(common, plan, &mut mode);
    mode.best = mode
        .steps
        .iter()
        .filter(|s| passes(s))
        .map(|s| s.calls)
        .max();
    if let Err(e) = &r {
        mode.stopped = Some(format!("error: {}", e.lines().next().unwrap_or("")));
    }
    let snmp1 = udp_snmp();
    println!(
        "UDP receive buffer errors during this mode (netstat -su, whole machine): +{}; send buffer errors +{}",
        snmp_delta(&snmp0, &snmp1, "RcvbufErrors"),
        snmp_delta(&snmp0, &snmp1, "SndbufErrors")
    );
    mode.rcvbuf_errors = snmp_delta(&snmp0, &snmp1, "RcvbufErrors");
    report.modes.push(mode);
    r
}

fn ramp(common: &Common, plan: &Plan, mode: &mut ModeResult) -> Result<()> {
    {
        let rig = Rig::start(common, plan.kind, true)?;
        if let Some((p50, p99)) = rig.loopback() {
            println!(
                "generator loopback (socket to socket, no switch): p50 {p50:.1} us, p99 {p99:.1} us"
            );
            mode.loopback_p50_us = Some(p50);
        }
    }
    println!(
        "each step: a fresh switch, primed with {PRIME_CALLS} calls (1 s of RTP, then BYE); \
         latency/jitter in ms, cpu in % of one core"
    );
    let fd_limit = nofile_limit();
    table_header();
    let run_one = |n: u64, mode: &mut ModeResult| -> Result<Option<StepResult>> {
        if let Some(limit) = fd_limit {
            let need = n * FDS_PER_CALL + 256;
            if need > limit {
                let why = format!(
                    "{n} calls need about {need} open files in the switch (4 per call), but the limit \
                     it inherits is {limit} (ulimit -n)"
                );
                println!("{n:>6}  skipped: {why}");
                mode.stopped = Some(why);
                return Ok(None);
            }
        }
        let mut rig = Rig::start(common, plan.kind, false)?;
        rig.step(n.min(PRIME_CALLS), 0, 1, common.cps)?;
        let r = rig.step(n, plan.warmup * 1000, plan.secs, common.cps)?;
        drop(rig);
        println!("{}", table_row(&r));
        println!("{}", detail(&r));
        if r.other_cpu_pct > 20.0 {
            println!(
                "       note: {:.0}% of a core went to other processes during the window: figures disturbed",
                r.other_cpu_pct
            );
        }
        let _ = std::io::stdout().flush();
        mode.steps.push(r.clone());
        Ok(Some(r))
    };
    for &n in &plan.steps {
        let Some(r) = run_one(n, mode)? else { break };
        if let Some(why) = stop_reason(&r) {
            if !common.keep_going {
                mode.stopped = Some(format!("{n} calls: {why}"));
                break;
            }
        }
    }
    // Bisect between the largest passing N and the smallest failing N above it.
    if common.refine_pct > 0.0 && !common.quick {
        loop {
            let good = mode
                .steps
                .iter()
                .filter(|s| passes(s))
                .map(|s| s.calls)
                .max()
                .unwrap_or(0);
            let Some(bad) = mode
                .steps
                .iter()
                .filter(|s| !passes(s) && s.calls > good)
                .map(|s| s.calls)
                .min()
            else {
                break;
            };
            let gap = (bad as f64 * common.refine_pct / 100.0).max(5.0);
            if (bad - good) as f64 <= gap {
                break;
            }
            let mid = ((good + bad) / 2).div_ceil(5) * 5;
            if mid <= good || mid >= bad {
                break;
            }
            println!("{:>6}  (refining between {good} and {bad})", "");
            if run_one(mid, mode)?.is_none() {
                break;
            }
        }
    }
    Ok(())
}

fn print_summary(r: &Report) {
    let mut s = String::new();
    let _ = writeln!(s, "\n=== summary ===");
    let best = |k: Kind| {
        r.modes
            .iter()
            .find(|m| m.kind == k)
            .map(|m| m.best.map_or("none".to_string(), |b| b.to_string()))
    };
    let parts: Vec<String> = [Kind::Relay, Kind::Transcode]
        .into_iter()
        .filter_map(|k| best(k).map(|b| format!("{} {b}", k.name())))
        .collect();
    let _ = writeln!(
        s,
        "largest N with 0 loss and jitter p99 <= 1 ms: {}",
        parts.join(", ")
    );
    for m in &r.modes {
        let target = match m.kind {
            Kind::Relay => 3000,
            Kind::Transcode => 500,
        };
        match m.best.and_then(|b| m.steps.iter().find(|st| st.calls == b)) {
            Some(st) => {
                let _ = writeln!(
                    s,
                    "{} @ {}: {:.0} packets relayed/s, switch CPU {:.0}% = {:.4}% of a core per call \
                     (~{:.0} calls per core; target >= {target}), latency p99 {:.3} ms, jitter p99 {:.3} ms, \
                     RSS {:.1} KiB per call (target <= 64)",
                    m.kind.name(),
                    st.calls,
                    st.relayed_pps,
                    st.switch_cpu_pct,
                    st.cpu_per_call_pct,
                    st.calls_per_core,
                    st.latency_p99_ms,
                    st.jitter_p99_ms,
                    st.rss_per_call_kib,
                );
            }
            None => {
                let _ = writeln!(s, "{}: no step passed", m.kind.name());
            }
        }
        if let Some(why) = &m.stopped {
            let _ = writeln!(s, "  {} ramp ended: {why}", m.kind.name());
        }
    }
    for e in &r.errors {
        let first = e.lines().next().unwrap_or("");
        let _ = writeln!(s, "error: {first}");
    }
    print!("{s}");
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_media_reads_address_and_rtpmaps() {
        let body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 20004 RTP/AVP 0 96 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 opus/48000/2\r\n\
            a=rtpmap:101 telephone-event/8000\r\n";
        let (addr, maps) = sdp_media(body).unwrap();
        assert_eq!(addr, "127.0.0.1:20004".parse().unwrap());
        assert_eq!(maps[1], (96, "opus".to_string()));
        let rtp: SocketAddr = "127.0.0.1:10000".parse().unwrap();
        let (pt, a) = answer_for(Kind::Transcode, &maps, rtp).unwrap();
        assert_eq!(pt, 96);
        assert!(std::str::from_utf8(&a)
            .unwrap()
            .contains("m=audio 10000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2"));
        assert_eq!(answer_for(Kind::Relay, &maps, rtp).unwrap().0, 0);
        assert!(answer_for(Kind::Transcode, &maps[..1], rtp).is_none());
    }

    #[test]
    fn numbers_carry_the_call_index() {
        assert_eq!(index_of(&number_of(1234)), Some(1234));
        assert_eq!(index_of("1234"), None);
    }

    #[test]
    fn ulaw_encodes_silence_and_extremes() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
    }

    #[test]
    fn verdicts() {
        let mut r = StepResult {
            calls: 100,
            latency_p99_ms: 0.5,
            jitter_p99_ms: 0.2,
            ..StepResult::default()
        };
        assert!(passes(&r));
        assert_eq!(verdict(&r), "ok");
        r.lost = 1;
        r.loss_pct = 0.001;
        assert_eq!(verdict(&r), "LOSS");
        assert!(stop_reason(&r).is_none());
        r.jitter_p99_ms = 6.0;
        assert_eq!(verdict(&r), "LOSS+JITTER (stop)");
    }
}
