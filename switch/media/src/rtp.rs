//! RTP (RFC 3550) on the relay's hot path: zero-copy header validation,
//! in-place rewriting, the outgoing stream map and receive statistics.
//!
//! Nothing here allocates except [`write()`], which appends to a caller's buffer.

use std::time::Instant;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const HEADER_LEN: usize = 12;

/// Why a datagram is not a valid RTP packet (RFC 3550 §5.1, A.1 header checks).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet shorter than the fixed header")]
    TooShort,
    /// Version field is not 2.
    #[error("RTP version is not 2")]
    BadVersion,
    /// The CSRC list (4 bytes per CC) runs past the end of the packet.
    #[error("RTP CSRC list runs past the end of the packet")]
    BadCsrcCount,
    /// The header extension (RFC 3550 §5.3.1) runs past the end of the packet.
    #[error("RTP header extension runs past the end of the packet")]
    BadExtension,
    /// P is set but the padding count is 0 or larger than the payload.
    #[error("RTP padding count is 0 or larger than the payload")]
    BadPadding,
}

impl RtpError {
    /// Stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RtpError::TooShort => "too_short",
            RtpError::BadVersion => "bad_version",
            RtpError::BadCsrcCount => "bad_csrc_count",
            RtpError::BadExtension => "bad_extension",
            RtpError::BadPadding => "bad_padding",
        }
    }
}

/// A validated RTP header (RFC 3550 §5.1) read from a packet without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// M bit.
    pub marker: bool,
    /// PT, 7 bits.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload: after the CSRC list and any header extension.
    pub payload_offset: usize,
    /// Payload length, excluding padding (RFC 3550 §5.1 "P").
    pub payload_len: usize,
}

impl RtpHeader {
    /// The payload inside `packet` (the packet this header was parsed from).
    /// Returns an empty slice if `packet` is not that packet and is too short.
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet
            .get(self.payload_offset..self.payload_offset.saturating_add(self.payload_len))
            .unwrap_or(&[])
    }
}

/// Validates an RTP packet (RFC 3550 §5.1; extension per §5.3.1, left opaque;
/// padding count must be at least 1, since it counts itself) and reads its header.
pub fn parse(packet: &[u8]) -> Result<RtpHeader, RtpError> {
    let len = packet.len();
    if len < HEADER_LEN {
        return Err(RtpError::TooShort);
    }
    let b0 = packet[0];
    if b0 >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let cc = usize::from(b0 & 0x0f);
    let mut offset = HEADER_LEN + 4 * cc;
    if offset > len {
        return Err(RtpError::BadCsrcCount);
    }
    if b0 & 0x10 != 0 {
        let Some(ext) = packet.get(offset..offset + 4) else {
            return Err(RtpError::BadExtension);
        };
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        offset += 4 + 4 * words;
        if offset > len {
            return Err(RtpError::BadExtension);
        }
    }
    let mut payload_len = len - offset;
    if b0 & 0x20 != 0 {
        let count = usize::from(packet[len - 1]);
        if count == 0 || count > payload_len {
            return Err(RtpError::BadPadding);
        }
        payload_len -= count;
    }
    let b1 = packet[1];
    Ok(RtpHeader {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        payload_offset: offset,
        payload_len,
    })
}

/// RFC 5761 §4: true when the second byte marks RTCP (payload types 64–95 with
/// the marker bit, i.e. byte 1 in 192..=223), for demultiplexing under rtcp-mux.
pub fn is_rtcp(packet: &[u8]) -> bool {
    matches!(packet.get(1), Some(192..=223))
}

/// Rewrites payload type, sequence number, timestamp and SSRC in place
/// (RFC 3550 §5.1 fields; marker kept unless `marker` is Some). Does nothing to
/// a packet shorter than the fixed header.
pub fn rewrite(
    packet: &mut [u8],
    pt: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: Option<bool>,
) {
    let Some(h) = packet.get_mut(..HEADER_LEN) else {
        return;
    };
    let m = match marker {
        Some(true) => 0x80,
        Some(false) => 0,
        None => h[1] & 0x80,
    };
    h[1] = m | (pt & 0x7f);
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Appends a minimal RTP packet (RFC 3550 §5.1: version 2, no padding, no CSRC,
/// no extension) to `out`.
pub fn write(
    out: &mut Vec<u8>,
    marker: bool,
    pt: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.reserve(HEADER_LEN + payload.len());
    out.push(0x80);
    out.push(if marker { 0x80 } else { 0 } | (pt & 0x7f));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// RFC 3550 A.1: a sequence jump larger than this is a discontinuity.
const MAX_DROPOUT: i32 = 3000;
/// RFC 3550 A.1: a packet this much older than the highest is a discontinuity.
const MAX_MISORDER: i32 = 100;
/// A relayed source whose timestamps stray from wall time by more than this
/// many seconds has jumped (a new stream under the same SSRC).
const MAX_TS_SKEW_SECS: i64 = 2;
/// Lateness of our own packets (timer jitter) still treated as back-to-back.
const OWN_SLACK_MS: u64 = 60;

/// Where the current relayed source sits on the outgoing stream.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    ssrc: u32,
    /// Highest incoming sequence number and its timestamp and arrival.
    seq: u16,
    ts: u32,
    at: Instant,
    /// Outgoing = incoming + offset (wrapping).
    seq_offset: u16,
    ts_offset: u32,
}

/// Maps incoming streams onto one continuous outgoing stream (RFC 3550 §5.1,
/// §8.2: our SSRC; sequence numbers and timestamps with no jumps the far end
/// could take for a new stream).
///
/// A relayed source keeps its own spacing: outgoing = incoming + an offset, so
/// upstream losses and reordering show through unchanged. When the source SSRC
/// changes (re-INVITE, transfer), its sequence jumps (RFC 3550 A.1 limits) or
/// its timestamp strays from wall time, or our own packets were sent in
/// between, the mapping re-anchors: sequence = last + 1, timestamp advanced by
/// the wall time since our last new timestamp at `clock_rate` (rounded to whole
/// frames; at least one frame), and the marker bit is requested (RFC 3551 §4.1).
///
/// `clock_rate` is that of the outgoing stream. Counters for RTCP are kept by
/// [`StreamMap::map`] and [`StreamMap::next_own`] (one packet per call) and
/// [`StreamMap::add_octets`] (payload octets, called for each packet sent).
#[derive(Clone, Debug)]
pub struct StreamMap {
    ssrc: u32,
    /// Nothing sent yet.
    fresh: bool,
    /// Highest outgoing sequence number so far.
    seq: u16,
    /// Highest outgoing timestamp so far, and when it was first used.
    ts: u32,
    ts_at: Option<Instant>,
    /// Timestamp units of one packet (0: unknown), the unit of wall-time rounding.
    frame: u32,
    /// Timestamp units the packets at `ts` cover (more than `frame` after
    /// RFC 4733 continuation packets); the least advance to a new timestamp.
    covered: u32,
    anchor: Option<Anchor>,
    packets: u64,
    octets: u64,
}

impl StreamMap {
    /// A stream with our SSRC whose first packet gets `first_seq` and `first_ts`
    /// (random values, RFC 3550 §5.1).
    pub fn new(ssrc: u32, first_seq: u16, first_ts: u32) -> Self {
        StreamMap {
            ssrc,
            fresh: true,
            seq: first_seq.wrapping_sub(1),
            ts: first_ts,
            ts_at: None,
            frame: 0,
            covered: 0,
            anchor: None,
            packets: 0,
            octets: 0,
        }
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// For a relayed packet: (seq, ts, marker_override).
    pub fn map(
        &mut self,
        in_ssrc: u32,
        in_seq: u16,
        in_ts: u32,
        now: Instant,
        clock_rate: u32,
    ) -> (u16, u32, Option<bool>) {
        self.packets += 1;
        if let Some(a) = self.anchor.as_mut() {
            if a.ssrc == in_ssrc && !jumped(a, in_seq, in_ts, now, clock_rate) {
                let out_seq = in_seq.wrapping_add(a.seq_offset);
                let out_ts = in_ts.wrapping_add(a.ts_offset);
                let seq_delta = in_seq.wrapping_sub(a.seq) as i16;
                if seq_delta > 0 {
                    let ts_delta = in_ts.wrapping_sub(a.ts);
                    if seq_delta == 1 && ts_delta > 0 && ts_delta <= clock_rate / 5 {
                        self.frame = ts_delta;
                    }
                    a.seq = in_seq;
                    a.ts = in_ts;
                    a.at = now;
                }
                if (out_seq.wrapping_sub(self.seq) as i16) > 0 {
                    self.seq = out_seq;
                }
                if (out_ts.wrapping_sub(self.ts) as i32) > 0 {
                    self.ts = out_ts;
                    self.ts_at = Some(now);
                    self.covered = self.frame;
                }
                return (out_seq, out_ts, None);
            }
        }
        let (out_seq, out_ts) = self.step(now, clock_rate);
        self.covered = self.frame;
        self.anchor = Some(Anchor {
            ssrc: in_ssrc,
            seq: in_seq,
            ts: in_ts,
            at: now,
            seq_offset: out_seq.wrapping_sub(in_seq),
            ts_offset: out_ts.wrapping_sub(in_ts),
        });
        (out_seq, out_ts, Some(true))
    }

    /// For a packet we generate ourselves (tone, prompt, transcoded frame,
    /// DTMF) covering `ts_advance` units: (seq, ts). `ts_advance == 0` repeats
    /// the previous timestamp (RFC 4733 §2.5.1.2: every packet of one event
    /// carries the event's start). Relayed packets that follow re-anchor.
    pub fn next_own(&mut self, ts_advance: u32, now: Instant, clock_rate: u32) -> (u16, u32) {
        self.packets += 1;
        self.anchor = None;
        if ts_advance == 0 && !self.fresh {
            // The event now covers at least up to one packet after `now`.
            let frame = self.frame_or_default(clock_rate);
            let elapsed = self
                .ts_at
                .map_or(0, |at| units(now.saturating_duration_since(at), clock_rate));
            let covered = round_to(elapsed, frame).saturating_add(u64::from(frame));
            self.covered = self.covered.max(covered.min(u64::from(u32::MAX)) as u32);
            self.seq = self.seq.wrapping_add(1);
            return (self.seq, self.ts);
        }
        let out = self.step(now, clock_rate);
        if ts_advance > 0 {
            self.frame = ts_advance;
            self.covered = ts_advance;
        }
        out
    }

    /// Counts the `payload_len` payload octets of a sent packet, for the
    /// sender report (RFC 3550 §6.4.1 sender's octet count).
    pub fn add_octets(&mut self, payload_len: usize) {
        self.octets += payload_len as u64;
    }

    /// Packets mapped or generated so far (RFC 3550 §6.4.1 sender's packet count).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Payload octets counted by [`StreamMap::add_octets`].
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// The next sequence number and a new timestamp after what was sent.
    fn step(&mut self, now: Instant, clock_rate: u32) -> (u16, u32) {
        self.seq = self.seq.wrapping_add(1);
        if self.fresh {
            self.fresh = false;
        } else {
            self.ts = self.ts.wrapping_add(self.advance(now, clock_rate));
        }
        self.ts_at = Some(now);
        (self.seq, self.ts)
    }

    /// Timestamp units since the last new timestamp: what the last packets
    /// covered when back to back (within timer slack), else the wall time
    /// rounded to whole frames.
    fn advance(&self, now: Instant, clock_rate: u32) -> u32 {
        let frame = self.frame_or_default(clock_rate);
        let covered = if self.covered > 0 {
            self.covered
        } else {
            frame
        };
        let Some(at) = self.ts_at else {
            return covered;
        };
        let elapsed = units(now.saturating_duration_since(at), clock_rate);
        let slack = u64::from(clock_rate) * OWN_SLACK_MS / 1000;
        if elapsed <= u64::from(covered) + slack {
            return covered;
        }
        // Wraps past 2^32 units (hours): any value is as good as another then.
        round_to(elapsed, frame).max(u64::from(covered)) as u32
    }

    /// One packet's worth of timestamp units (20 ms if not known yet).
    fn frame_or_default(&self, clock_rate: u32) -> u32 {
        if self.frame > 0 {
            self.frame
        } else {
            (clock_rate / 50).max(1)
        }
    }
}

/// `n` rounded to the nearest multiple of `unit` (> 0).
fn round_to(n: u64, unit: u32) -> u64 {
    let unit = u64::from(unit.max(1));
    (n + unit / 2) / unit * unit
}

/// RFC 3550 A.1 sequence limits, and timestamps against wall time.
fn jumped(a: &Anchor, seq: u16, ts: u32, now: Instant, clock_rate: u32) -> bool {
    let seq_delta = i32::from(seq.wrapping_sub(a.seq) as i16);
    if !(-MAX_MISORDER..=MAX_DROPOUT).contains(&seq_delta) {
        return true;
    }
    let ts_delta = i64::from(ts.wrapping_sub(a.ts) as i32);
    let wall = units(now.saturating_duration_since(a.at), clock_rate) as i64;
    (ts_delta - wall).abs() > MAX_TS_SKEW_SECS * i64::from(clock_rate)
}

/// A duration in units of `clock_rate`.
fn units(d: std::time::Duration, clock_rate: u32) -> u64 {
    (d.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u64
}

/// RFC 3550 A.1: packets needed in sequence before a source is valid.
const MIN_SEQUENTIAL: u32 = 2;
const SEQ_MOD: u32 = 1 << 16;

/// Receive statistics of one incoming stream per RFC 3550 A.1 (sequence
/// validity, wrap, cycles), A.3 (expected/lost/fraction) and A.8 (interarrival
/// jitter).
///
/// As in A.1, a new source is on probation until `MIN_SEQUENTIAL` (2)
/// packets arrive in sequence; the first is not counted. Two sequential
/// packets after a large jump restart the counts (the sender restarted).
#[derive(Clone, Debug)]
pub struct RxStats {
    clock_rate: u32,
    started: bool,
    max_seq: u16,
    /// Shifted count of sequence number cycles (A.1 `cycles`).
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Reference for arrival times in RTP units.
    epoch: Option<Instant>,
    /// Relative transit time of the previous counted packet (A.8).
    transit: Option<u32>,
    /// Interarrival jitter, timestamp units (A.8 floating-point form).
    jitter: f64,
}

impl RxStats {
    /// Statistics for a stream whose timestamps run at `clock_rate`.
    pub fn new(clock_rate: u32) -> Self {
        RxStats {
            clock_rate: clock_rate.max(1),
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            probation: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            epoch: None,
            transit: None,
            jitter: 0.0,
        }
    }

    /// Records a packet (A.1 `update_seq`, then A.8 jitter for counted packets).
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, arrival: Instant) {
        if self.update_seq(seq) {
            self.update_jitter(timestamp, arrival);
        }
    }

    /// Packets counted (A.1 `received`) since the sequence was (re)initialised.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative packets lost (A.3): expected − received; negative with duplicates.
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter (A.8) in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// Extended highest sequence number received (A.1 cycles + max_seq).
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Interarrival jitter (A.8) in timestamp units, as a report block carries it.
    pub fn jitter_units(&self) -> u32 {
        self.jitter as u32
    }

    /// Fraction lost since the previous call (A.3), 8-bit fixed point, for a
    /// report block.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        if expected_interval == 0 || received_interval >= expected_interval {
            return 0;
        }
        let lost_interval = expected_interval - received_interval;
        ((lost_interval << 8) / expected_interval).min(255) as u8
    }

    fn expected(&self) -> u64 {
        if !self.started || self.probation > 0 {
            return 0;
        }
        (u64::from(self.cycles) + u64::from(self.max_seq) + 1)
            .saturating_sub(u64::from(self.base_seq))
    }

    /// A.1 `init_seq`.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.transit = None;
    }

    /// A.1 `update_seq`: true when the packet is counted.
    fn update_seq(&mut self, seq: u16) -> bool {
        if !self.started {
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        }
        if i32::from(udelta) < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - MAX_MISORDER as u32 {
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet, counted.
        self.received += 1;
        true
    }

    /// A.8: J += (|D| − J) / 16 with D the change in relative transit time.
    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let arrival_units = units(arrival.saturating_duration_since(epoch), self.clock_rate) as u32;
        let transit = arrival_units.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = f64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use webrtc_util::Unmarshal;

    fn packet(b0: u8, b1: u8, extra: &[u8]) -> Vec<u8> {
        let mut p = vec![b0, b1, 0x12, 0x34, 0, 0, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef];
        p.extend_from_slice(extra);
        p
    }

    #[test]
    fn parses_minimal_packet() {
        let p = packet(0x80, 0x80 | 8, &[1, 2, 3]);
        let h = parse(&p).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                marker: true,
                payload_type: 8,
                seq: 0x1234,
                timestamp: 320,
                ssrc: 0xdead_beef,
                payload_offset: 12,
                payload_len: 3
            }
        );
        assert_eq!(h.payload(&p), &[1, 2, 3]);
        assert_eq!(parse(&p[..12]).unwrap().payload_len, 0);
    }

    #[test]
    fn parses_csrc_extension_padding() {
        // CC=2, X, P: 2 CSRCs, a one-word extension, 2 payload bytes, 3 padding.
        let mut extra = vec![0, 0, 0, 1, 0, 0, 0, 2];
        extra.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
        extra.extend_from_slice(&[7, 8, 0, 0, 3]);
        let p = packet(0x80 | 0x20 | 0x10 | 2, 0, &extra);
        let h = parse(&p).unwrap();
        assert_eq!(h.payload_offset, 12 + 8 + 8);
        assert_eq!(h.payload_len, 2);
        assert_eq!(h.payload(&p), &[7, 8]);
        assert!(!h.marker);

        // Padding that is the whole payload: empty payload.
        let p = packet(0xa0, 0, &[0, 0, 0, 4]);
        assert_eq!(parse(&p).unwrap().payload_len, 0);
        // CC=15 exactly filling the packet.
        let p = packet(0x8f, 0, &[0; 60]);
        assert_eq!(parse(&p).unwrap().payload_offset, 72);
        // Empty extension (length 0).
        let p = packet(0x90, 0, &[0x12, 0x34, 0, 0, 9]);
        let h = parse(&p).unwrap();
        assert_eq!(h.payload(&p), &[9]);
    }

    #[test]
    fn rejects_malformed() {
        let full = packet(0x80, 0, &[]);
        for n in 0..12 {
            assert_eq!(parse(&full[..n]), Err(RtpError::TooShort), "len {n}");
        }
        for v in [0u8, 1, 3] {
            assert_eq!(
                parse(&packet(v << 6, 0, &[0; 8])),
                Err(RtpError::BadVersion)
            );
        }
        assert_eq!(
            parse(&packet(0x8f, 0, &[0; 56])),
            Err(RtpError::BadCsrcCount)
        );
        assert_eq!(parse(&packet(0x81, 0, &[])), Err(RtpError::BadCsrcCount));
        // X set, no room for the extension header; then a length beyond the end.
        assert_eq!(
            parse(&packet(0x90, 0, &[0xbe, 0xde, 0])),
            Err(RtpError::BadExtension)
        );
        assert_eq!(
            parse(&packet(0x90, 0, &[0xbe, 0xde, 0, 2, 0, 0, 0, 0])),
            Err(RtpError::BadExtension)
        );
        assert_eq!(
            parse(&packet(0x91, 0, &[0, 0, 0, 0, 0xbe, 0xde, 0, 1])),
            Err(RtpError::BadExtension)
        );
        // P set: count 0, count larger than the payload, no payload at all.
        assert_eq!(
            parse(&packet(0xa0, 0, &[1, 2, 0])),
            Err(RtpError::BadPadding)
        );
        assert_eq!(
            parse(&packet(0xa0, 0, &[1, 2, 4])),
            Err(RtpError::BadPadding)
        );
        assert_eq!(parse(&packet(0xa0, 0, &[])), Err(RtpError::BadPadding));
        assert_eq!(
            parse(&packet(0xb0, 0, &[0xbe, 0xde, 0, 0, 2])),
            Err(RtpError::BadPadding)
        );

        let labels = [
            RtpError::TooShort,
            RtpError::BadVersion,
            RtpError::BadCsrcCount,
            RtpError::BadExtension,
            RtpError::BadPadding,
        ]
        .map(RtpError::as_str);
        assert_eq!(
            labels,
            [
                "too_short",
                "bad_version",
                "bad_csrc_count",
                "bad_extension",
                "bad_padding"
            ]
        );
    }

    #[test]
    fn demultiplexes_rtcp() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x80, 201]));
        assert!(is_rtcp(&[0x81, 203]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8]));
        assert!(!is_rtcp(&[0x80, 0x80 | 96]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&[]));
    }

    #[test]
    fn write_and_rewrite_round_trip() {
        let mut out = vec![0xff];
        write(&mut out, true, 0xff, 65535, u32::MAX, 7, b"abc");
        let h = parse(&out[1..]).unwrap();
        assert_eq!(
            (h.marker, h.payload_type, h.seq, h.timestamp, h.ssrc),
            (true, 0x7f, 65535, u32::MAX, 7)
        );
        assert_eq!(h.payload(&out[1..]), b"abc");

        // Rewriting keeps CSRC, extension, padding and payload.
        let mut extra = vec![0, 0, 0, 1];
        extra.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
        extra.extend_from_slice(&[7, 8, 0, 2]);
        let mut p = packet(0x80 | 0x20 | 0x10 | 1, 0x80 | 96, &extra);
        let before = parse(&p).unwrap();
        rewrite(&mut p, 101, 9, 10, 11, None);
        let h = parse(&p).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                marker: true,
                payload_type: 101,
                seq: 9,
                timestamp: 10,
                ssrc: 11,
                ..before
            }
        );
        rewrite(&mut p, 0, 1, 2, 3, Some(false));
        assert!(!parse(&p).unwrap().marker);
        rewrite(&mut p, 0, 1, 2, 3, Some(true));
        assert!(parse(&p).unwrap().marker);
        assert_eq!(parse(&p).unwrap().payload(&p), &[7, 8]);

        let mut short = [0x80u8; 11];
        rewrite(&mut short, 0, 1, 2, 3, Some(true));
        assert_eq!(short, [0x80; 11]);
    }

    /// What the `rtp` crate's parser says about a packet: None if rejected,
    /// else (marker, pt, seq, ts, ssrc, payload).
    fn reference(p: &[u8]) -> Option<(bool, u8, u16, u32, u32, Vec<u8>)> {
        let mut buf = bytes::Bytes::copy_from_slice(p);
        let pkt = ::rtp::packet::Packet::unmarshal(&mut buf).ok()?;
        let h = pkt.header;
        Some((
            h.marker,
            h.payload_type,
            h.sequence_number,
            h.timestamp,
            h.ssrc,
            pkt.payload.to_vec(),
        ))
    }

    /// Our parser against `rtp::packet::Packet::unmarshal`. They agree except
    /// where RFC 3550 §5.1 is stricter than that crate: it accepts any version
    /// and a padding count of 0 (the count includes itself, so it is ≥ 1).
    #[test]
    fn agrees_with_rtp_crate() {
        let mut cases: Vec<(Vec<u8>, bool)> = vec![
            (packet(0x80, 0, &[1, 2, 3]), true),
            (packet(0x80, 0x80 | 111, &[]), true),
            (packet(0x82, 8, &[0, 0, 0, 1, 0, 0, 0, 2, 9]), true),
            (packet(0x8f, 8, &[0; 60]), true),
            (packet(0x8f, 8, &[0; 59]), true),
            (packet(0x90, 0, &[0x12, 0x34, 0, 1, 1, 2, 3, 4, 5, 6]), true),
            (packet(0x90, 0, &[0x12, 0x34, 0, 2, 1, 2, 3, 4]), true),
            (packet(0x90, 0, &[0x12, 0x34, 0]), true),
            (
                packet(0x90, 0, &[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 5]),
                true,
            ),
            (
                packet(0x90, 0, &[0x10, 0x00, 0, 1, 0x01, 0x01, 0xaa, 0, 5]),
                true,
            ),
            (packet(0xa0, 0, &[1, 2, 0, 2]), true),
            (packet(0xa0, 0, &[1, 2, 0, 4]), true),
            (packet(0xa0, 0, &[1, 2, 0, 5]), true),
            (packet(0xa0, 0, &[]), true),
            (packet(0xb1, 0, &[0, 0, 0, 1, 0x12, 0x34, 0, 0, 1, 1]), true),
            // Differences, RFC 3550 §5.1: version must be 2; padding count ≥ 1.
            (packet(0x00, 0, &[1]), false),
            (packet(0x40, 0, &[1]), false),
            (packet(0xc0, 0, &[1]), false),
            (packet(0xa0, 0, &[1, 2, 0]), false),
        ];
        for n in 0..12 {
            cases.push((packet(0x80, 0, &[])[..n].to_vec(), true));
        }
        for (p, should_agree) in cases {
            let ours = parse(&p).ok().map(|h| {
                (
                    h.marker,
                    h.payload_type,
                    h.seq,
                    h.timestamp,
                    h.ssrc,
                    h.payload(&p).to_vec(),
                )
            });
            let theirs = reference(&p);
            if should_agree {
                assert_eq!(ours, theirs, "{p:02x?}");
            } else {
                assert!(ours.is_none() && theirs.is_some(), "{p:02x?}");
            }
        }
    }

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn stream_map_follows_source_and_reanchors_on_ssrc_change() {
        let t0 = Instant::now();
        let mut m = StreamMap::new(0xabc, 100, 9000);
        assert_eq!(m.ssrc(), 0xabc);
        assert_eq!(m.map(1, 1000, 5000, t0, 8000), (100, 9000, Some(true)));
        assert_eq!(m.map(1, 1001, 5160, ms(t0, 20), 8000), (101, 9160, None));
        // Upstream loss and reordering show through.
        assert_eq!(m.map(1, 1003, 5480, ms(t0, 60), 8000), (103, 9480, None));
        assert_eq!(m.map(1, 1002, 5320, ms(t0, 61), 8000), (102, 9320, None));
        assert_eq!(m.map(1, 1004, 5640, ms(t0, 80), 8000), (104, 9640, None));
        // Transfer: new SSRC 200 ms later; timestamps advance by the wall time.
        assert_eq!(
            m.map(2, 50000, 123, ms(t0, 280), 8000),
            (105, 9640 + 1600, Some(true))
        );
        assert_eq!(
            m.map(2, 50001, 283, ms(t0, 300), 8000),
            (106, 9640 + 1760, None)
        );
        // Back-to-back change (no gap): one frame on.
        assert_eq!(
            m.map(3, 7, 1_000_000, ms(t0, 320), 8000),
            (107, 9640 + 1920, Some(true))
        );
    }

    #[test]
    fn stream_map_reanchors_on_jumps() {
        let t0 = Instant::now();
        let mut m = StreamMap::new(1, 0, 0);
        m.map(9, 10, 1000, t0, 8000);
        m.map(9, 11, 1160, ms(t0, 20), 8000);
        // Sequence jump beyond MAX_DROPOUT, same SSRC.
        assert_eq!(
            m.map(9, 20000, 1320, ms(t0, 40), 8000),
            (2, 320, Some(true))
        );
        assert_eq!(m.map(9, 20001, 1480, ms(t0, 60), 8000), (3, 480, None));
        // Timestamp jump (10 s) with the sequence continuing.
        assert_eq!(
            m.map(9, 20002, 81480, ms(t0, 80), 8000),
            (4, 640, Some(true))
        );
        // Going backwards too far in sequence.
        assert_eq!(
            m.map(9, 19000, 81640, ms(t0, 100), 8000),
            (5, 800, Some(true))
        );
        // Sequence wrap is not a jump.
        let mut m = StreamMap::new(1, 65535, u32::MAX - 159);
        assert_eq!(
            m.map(9, 65535, 0, t0, 8000),
            (65535, u32::MAX - 159, Some(true))
        );
        assert_eq!(m.map(9, 0, 160, ms(t0, 20), 8000), (0, 0, None));
    }

    #[test]
    fn stream_map_own_and_relayed_alternate() {
        let t0 = Instant::now();
        let mut m = StreamMap::new(5, 10, 100);
        // A prompt first: timer jitter does not disturb the spacing.
        assert_eq!(m.next_own(160, t0, 8000), (10, 100));
        assert_eq!(m.next_own(160, ms(t0, 25), 8000), (11, 260));
        assert_eq!(m.next_own(160, ms(t0, 38), 8000), (12, 420));
        assert_eq!(m.next_own(160, ms(t0, 61), 8000), (13, 580));
        // Then the bridged leg.
        assert_eq!(
            m.map(77, 500, 40_000, ms(t0, 80), 8000),
            (14, 740, Some(true))
        );
        assert_eq!(m.map(77, 501, 40_160, ms(t0, 100), 8000), (15, 900, None));
        // A DTMF event: start, continuation packets keep its timestamp.
        assert_eq!(m.next_own(160, ms(t0, 120), 8000), (16, 1060));
        assert_eq!(m.next_own(0, ms(t0, 140), 8000), (17, 1060));
        assert_eq!(m.next_own(0, ms(t0, 160), 8000), (18, 1060));
        // The leg resumes (same SSRC): re-anchored after our packets.
        assert_eq!(
            m.map(77, 504, 40_640, ms(t0, 180), 8000),
            (19, 1060 + 480, Some(true))
        );
        assert_eq!(
            m.map(77, 505, 40_800, ms(t0, 200), 8000),
            (20, 1060 + 640, None)
        );
        // Silence, then a tone a second later: wall time shows in the timestamp.
        assert_eq!(m.next_own(160, ms(t0, 1200), 8000), (21, 1700 + 8000));
        // Opus at 48 kHz.
        let mut m = StreamMap::new(5, 0, 0);
        assert_eq!(m.next_own(960, t0, 48000), (0, 0));
        assert_eq!(m.next_own(960, ms(t0, 20), 48000), (1, 960));
        assert_eq!(m.next_own(960, ms(t0, 520), 48000), (2, 960 + 24000));
    }

    #[test]
    fn stream_map_counts() {
        let t0 = Instant::now();
        let mut m = StreamMap::new(5, 0, 0);
        m.next_own(160, t0, 8000);
        m.add_octets(160);
        m.map(1, 1, 1, ms(t0, 20), 8000);
        m.add_octets(160);
        assert_eq!((m.packets(), m.octets()), (2, 320));
    }

    #[test]
    fn rx_stats_loss_and_fraction() {
        let t0 = Instant::now();
        let mut rx = RxStats::new(8000);
        assert_eq!(
            (rx.received(), rx.lost(), rx.take_fraction_lost()),
            (0, 0, 0)
        );
        for seq in (1u16..=10).filter(|s| *s != 5 && *s != 7) {
            rx.on_packet(seq, u32::from(seq) * 160, ms(t0, u64::from(seq) * 20));
        }
        // A.1: the first packet is probation, so counting starts at seq 2.
        assert_eq!(rx.received(), 7);
        assert_eq!(rx.lost(), 2);
        assert_eq!(rx.extended_highest_seq(), 10);
        assert_eq!(rx.take_fraction_lost(), ((2u32 << 8) / 9) as u8);
        assert_eq!(rx.take_fraction_lost(), 0);
        for seq in 11u16..=20 {
            rx.on_packet(seq, u32::from(seq) * 160, ms(t0, u64::from(seq) * 20));
        }
        assert_eq!(rx.take_fraction_lost(), 0);
        assert_eq!(rx.lost(), 2);
        // A duplicate makes the cumulative loss go down.
        rx.on_packet(20, 3200, ms(t0, 401));
        assert_eq!(rx.lost(), 1);
    }

    #[test]
    fn rx_stats_sequence_wrap_and_restart() {
        let t0 = Instant::now();
        let mut rx = RxStats::new(8000);
        for (i, seq) in [65534u16, 65535, 0, 1, 2].into_iter().enumerate() {
            rx.on_packet(seq, i as u32 * 160, ms(t0, i as u64 * 20));
        }
        assert_eq!(rx.extended_highest_seq(), 65536 + 2);
        assert_eq!((rx.received(), rx.lost()), (4, 0));
        // A jump: the first packet is held as suspect, the second restarts.
        rx.on_packet(40000, 0, ms(t0, 100));
        assert_eq!(rx.extended_highest_seq(), 65536 + 2);
        rx.on_packet(40001, 160, ms(t0, 120));
        assert_eq!(rx.extended_highest_seq(), 40001);
        assert_eq!((rx.received(), rx.lost()), (1, 0));
        rx.on_packet(40002, 320, ms(t0, 140));
        assert_eq!((rx.received(), rx.lost()), (2, 0));
    }

    #[test]
    fn rx_stats_jitter_matches_a8_by_hand() {
        let t0 = Instant::now();
        let mut rx = RxStats::new(8000);
        // 20 ms packets; the third arrives 5 ms late.
        for (i, at) in [0u64, 20, 45, 60, 80].into_iter().enumerate() {
            rx.on_packet(100 + i as u16, 1000 + i as u32 * 160, ms(t0, at));
        }
        // Counted from the second packet: D = 40, 40, 0 units.
        // J = 40/16 = 2.5; J = 2.5 + 37.5/16 = 4.84375; J = 4.84375 · 15/16.
        let j = 4.84375 * 15.0 / 16.0;
        assert_eq!(rx.jitter_units(), 4);
        assert!(
            (rx.jitter_ms() - j / 8.0).abs() < 1e-9,
            "{}",
            rx.jitter_ms()
        );
        // Perfectly paced stream: no jitter.
        let mut rx = RxStats::new(48000);
        for i in 0..50u32 {
            rx.on_packet(i as u16, i * 960, ms(t0, u64::from(i) * 20));
        }
        assert_eq!(rx.jitter_units(), 0);
    }
}
