//! RTP on the test side: a socket that records what arrives, a sender of
//! known packets, pcap reading (sipp's audio files) and G.711 decoding to
//! measure levels.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One received RTP packet.
#[derive(Clone, Debug)]
pub struct Packet {
    /// Source address.
    pub from: SocketAddr,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload.
    pub payload: Vec<u8>,
    /// Arrival.
    pub at: Instant,
}

/// Parses a plain RTP packet (no validation beyond lengths).
pub fn parse(from: SocketAddr, b: &[u8]) -> Option<Packet> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let cc = (b[0] & 0x0f) as usize;
    let mut off = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let len = u16::from_be_bytes([*b.get(off + 2)?, *b.get(off + 3)?]) as usize;
        off += 4 + 4 * len;
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        end -= *b.last()? as usize;
    }
    Some(Packet {
        from,
        pt: b[1] & 0x7f,
        marker: b[1] & 0x80 != 0,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b.get(off..end)?.to_vec(),
        at: Instant::now(),
    })
}

/// Builds an RTP packet.
pub fn build(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A UDP socket on an even port of 127.0.0.1 collecting RTP in a thread.
pub struct RtpPeer {
    /// The socket (also for sending).
    pub sock: UdpSocket,
    /// Its port.
    pub port: u16,
    received: Arc<Mutex<Vec<Packet>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpPeer {
    /// Binds an even port (RTCP would be the next one) and starts collecting.
    pub fn bind() -> RtpPeer {
        let sock = loop {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            if s.local_addr().unwrap().port().is_multiple_of(2) {
                break s;
            }
        };
        let port = sock.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rx = sock.try_clone().unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let (r, st) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = rx.recv_from(&mut buf) {
                    if let Some(p) = parse(from, &buf[..n]) {
                        r.lock().unwrap().push(p);
                    }
                }
            }
        });
        RtpPeer {
            sock,
            port,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// What arrived so far.
    pub fn packets(&self) -> Vec<Packet> {
        self.received.lock().unwrap().clone()
    }

    /// Sends `frames` (payloads) as a paced 20 ms stream to `dest` in a thread.
    pub fn send_stream(
        &self,
        dest: SocketAddr,
        pt: u8,
        ts_step: u32,
        frames: Vec<Vec<u8>>,
    ) -> JoinHandle<()> {
        let sock = self.sock.try_clone().unwrap();
        std::thread::spawn(move || {
            let start = Instant::now();
            for (i, f) in frames.iter().enumerate() {
                let at = start + Duration::from_millis(20 * i as u64);
                if let Some(d) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let p = build(
                    pt,
                    i == 0,
                    1000 + i as u16,
                    5000 + ts_step * i as u32,
                    0x1234_5678,
                    f,
                );
                let _ = sock.send_to(&p, dest);
            }
        })
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The RTP packets (payload type, payload) of a pcap file of UDP over
/// Ethernet or Linux cooked capture, as sipp's audio files are.
pub fn pcap_rtp(path: &std::path::Path) -> Vec<(u8, Vec<u8>)> {
    let d = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &d[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian pcap expected"
    );
    let link = u32::from_le_bytes([d[20], d[21], d[22], d[23]]);
    let l2 = if link == 1 { 14 } else { 16 };
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes([d[off + 8], d[off + 9], d[off + 10], d[off + 11]]) as usize;
        let pkt = &d[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ip = &pkt[l2..];
        let ihl = (ip[0] & 15) as usize * 4;
        let rtp = &ip[ihl + 8..];
        if let Some(p) = parse("0.0.0.0:0".parse().unwrap(), rtp) {
            out.push((p.pt, p.payload));
        }
    }
    out
}

/// G.711 A-law to linear (ITU-T G.711).
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let seg = (a >> 4) & 7;
    let mut t = ((a & 0x0f) as i16) << 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    if a & 0x80 != 0 {
        t
    } else {
        -t
    }
}

/// G.711 µ-law to linear (ITU-T G.711).
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((((u & 0x0f) as i16) << 3) + 0x84) << ((u >> 4) & 7);
    if u & 0x80 != 0 {
        0x84 - t
    } else {
        t - 0x84
    }
}

/// RMS of samples in dBFS.
pub fn rms_dbfs(s: &[i16]) -> f64 {
    if s.is_empty() {
        return -120.0;
    }
    let sum: f64 = s.iter().map(|&x| (x as f64) * (x as f64)).sum();
    let rms = (sum / s.len() as f64).sqrt() / 32768.0;
    20.0 * rms.max(1e-6).log10()
}

/// Linear to G.711 µ-law (ITU-T G.711, with the usual bias of 0x84).
pub fn linear_to_ulaw(x: i16) -> u8 {
    let sign = if x < 0 { 0x80 } else { 0 };
    let mag = (x as i32).abs().min(32635) + 0x84;
    let exp = (31 - (mag as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mant = (mag >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) as u8 | mant as u8)
}

/// A DTMF digit's two tones (ITU-T Q.23) at 8 kHz, `ms` long, each tone at `dbfs`.
pub fn dtmf_pcm(digit: char, ms: u32, dbfs: f64) -> Vec<i16> {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let keys = ["123A", "456B", "789C", "*0#D"];
    let (r, c) = keys
        .iter()
        .enumerate()
        .find_map(|(r, k)| k.find(digit).map(|c| (r, c)))
        .expect("DTMF digit");
    let amp = 32767.0 * 10f64.powf(dbfs / 20.0);
    (0..ms * 8)
        .map(|n| {
            let t = n as f64 / 8000.0;
            let v = amp
                * ((2.0 * std::f64::consts::PI * rows[r] * t).sin()
                    + (2.0 * std::f64::consts::PI * cols[c] * t).sin());
            v as i16
        })
        .collect()
}

/// RFC 4733 telephone-event payload.
pub fn event_payload(code: u8, end: bool, duration: u16) -> Vec<u8> {
    let mut v = vec![code, if end { 0x80 | 10 } else { 10 }];
    v.extend_from_slice(&duration.to_be_bytes());
    v
}

/// An outgoing RTP stream (one SSRC) whose sequence numbers and timestamps
/// continue from one burst of audio or DTMF to the next, paced in real time.
pub struct Sender {
    sock: UdpSocket,
    dest: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    first: bool,
}

impl Sender {
    /// A stream from `peer`'s socket to `dest`.
    pub fn new(peer: &RtpPeer, dest: SocketAddr, ssrc: u32) -> Sender {
        Sender {
            sock: peer.sock.try_clone().unwrap(),
            dest,
            ssrc,
            seq: 1000,
            ts: 5000,
            first: true,
        }
    }

    fn send(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) {
        let p = build(pt, marker || self.first, self.seq, ts, self.ssrc, payload);
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        let _ = self.sock.send_to(&p, self.dest);
    }

    /// Sends `frames` of 20 ms (`ts_step` per frame) at 50 per second.
    pub fn audio(&mut self, pt: u8, ts_step: u32, frames: &[Vec<u8>]) {
        let start = Instant::now();
        for (i, f) in frames.iter().enumerate() {
            let at = start + Duration::from_millis(20 * i as u64);
            if let Some(d) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let ts = self.ts;
            self.send(pt, false, ts, f);
            self.ts = self.ts.wrapping_add(ts_step);
        }
    }

    /// Sends `digits` as RFC 4733 events (payload type `pt`, 8 kHz clock)
    /// of `ms` each with 60 ms between them: a packet every 20 ms with the
    /// duration so far, then the end three times.
    pub fn digits(&mut self, pt: u8, digits: &str, ms: u32) {
        for d in digits.chars() {
            let code = "0123456789*#ABCD".find(d).expect("a DTMF digit") as u8;
            let start = self.ts;
            let total = (ms * 8) as u16;
            let mut dur = 0u16;
            let mut marker = true;
            while dur < total {
                dur = (dur + 160).min(total);
                self.send(pt, marker, start, &event_payload(code, false, dur));
                marker = false;
                std::thread::sleep(Duration::from_millis(20));
            }
            for _ in 0..3 {
                self.send(pt, false, start, &event_payload(code, true, total));
            }
            self.ts = start.wrapping_add(total as u32 + 480);
            std::thread::sleep(Duration::from_millis(60));
        }
    }
}
