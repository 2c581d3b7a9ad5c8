//! DTMF: RFC 4733 telephone-events (receiver and sender) and in-band tone detection.
//!
//! Digits reach an IVR two ways. Most trunks and phones send them as RFC 4733
//! telephone-event packets beside the audio ([`EventReceiver`]); some legacy
//! trunks only play the tones into the audio itself ([`ToneDetector`]). Both report
//! a [`Digit`] once, when it ends, with its duration. [`EventSender`] produces the
//! packets for digits we send (call transfer to an IVR behind a trunk, say).

use std::collections::VecDeque;

use crate::audio::{Rate, PTIME_MS};

/// The sixteen DTMF digits, in RFC 4733 §3.2 event-code order.
pub const DIGITS: &str = "0123456789*#ABCD";

/// Where a digit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigitSource {
    /// An RFC 4733 telephone-event.
    Rfc4733,
    /// Detected in the audio.
    InBand,
}

/// One key press, reported when it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digit {
    /// One of [`DIGITS`].
    pub digit: char,
    /// How long the key was held.
    pub duration_ms: u32,
    /// Where it came from.
    pub source: DigitSource,
}

/// DTMF errors. All are ours (bad input from the application), none the peer's:
/// bad packets from a peer are counted, not raised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DtmfError {
    /// The character is not one of [`DIGITS`].
    #[error("not a DTMF digit: {0:?}")]
    UnknownDigit(char),
}

/// RFC 4733 §2.3 event code <-> digit (§3.2 table: 0-9, * = 10, # = 11, A-D = 12-15).
/// Lowercase `a`-`d` are accepted too.
pub fn event_code(digit: char) -> Option<u8> {
    let digit = digit.to_ascii_uppercase();
    DIGITS.chars().position(|d| d == digit).map(|p| p as u8)
}

/// RFC 4733 §2.3 event code <-> digit: the digit of a DTMF event code (0-15).
pub fn digit_of(code: u8) -> Option<char> {
    DIGITS.chars().nth(usize::from(code))
}

/// Durations above this, in timestamp units, need a new long-event segment
/// (RFC 4733 §2.5.1, "Long-Duration Events"): the field is 16 bits.
const MAX_SEGMENT: u64 = 0xFFFF;

/// Volume field we send: -10 dBm0, a usual DTMF level.
const SEND_VOLUME: u8 = 10;

/// Shortest digit we send: ITU-T Q.24 receivers need 40 ms.
pub const MIN_SEND_DURATION_MS: u32 = 40;

/// Silence between two digits we send, after the last retransmitted end packet.
pub const SEND_GAP_MS: u32 = 40;

/// A parsed telephone-event payload (RFC 4733 §2.3):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     event     |E|R| volume    |          duration             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Payload {
    code: u8,
    end: bool,
    duration: u16,
}

impl Payload {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let [code, flags, hi, lo, ..] = *bytes else {
            return None;
        };
        Some(Self {
            code,
            end: flags & 0x80 != 0,
            duration: u16::from_be_bytes([hi, lo]),
        })
    }

    fn encode(self) -> [u8; 4] {
        let [hi, lo] = self.duration.to_be_bytes();
        [self.code, (u8::from(self.end) << 7) | SEND_VOLUME, hi, lo]
    }
}

/// Whether RTP timestamp `a` is after `b`, across the 32-bit wrap.
fn ts_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn units_to_ms(units: u64, clock_rate: u32) -> u32 {
    let ms = units * 1000 / u64::from(clock_rate.max(1));
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// The event a receiver is tracking.
#[derive(Clone, Copy, Debug)]
struct OpenEvent {
    /// RTP timestamp of the current segment: the event's start, or a long event's
    /// latest segment start.
    ts: u32,
    code: u8,
    /// Timestamp units of the segments before this one.
    earlier_segments: u64,
    /// Longest duration seen in this segment.
    duration: u16,
    /// Reported (end seen, or given up on): later packets of it are dropped.
    done: bool,
}

impl OpenEvent {
    fn digit(&self, clock_rate: u32) -> Option<Digit> {
        Some(Digit {
            digit: digit_of(self.code)?,
            duration_ms: units_to_ms(self.earlier_segments + u64::from(self.duration), clock_rate),
            source: DigitSource::Rfc4733,
        })
    }
}

/// RFC 4733 §2.5.2 receiver for one stream of telephone-events.
///
/// One event per RTP timestamp (§2.2.1): packets of the open event update its
/// duration (they may come duplicated or reordered; the longest counts); the E bit
/// ends it (§2.3.2), and its retransmissions are dropped. A packet with a newer
/// timestamp starts the next event, which also ends the open one if its end
/// packets were lost. A newer timestamp with the same event, no marker bit, while
/// the open event's duration is near 0xFFFF continues a long event (§2.5.1,
/// "Long-Duration Events"). Packets older than the open event are stale.
#[derive(Debug)]
pub struct EventReceiver {
    clock_rate: u32,
    current: Option<OpenEvent>,
    /// Digits decided but not handed out yet (at most one waits).
    ready: VecDeque<Digit>,
    bad: u64,
}

impl EventReceiver {
    /// A receiver for telephone-event at `clock_rate` Hz (the SDP rtpmap rate).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            current: None,
            ready: VecDeque::new(),
            bad: 0,
        }
    }

    /// Feeds one telephone-event payload with its RTP timestamp and marker bit.
    /// Reports each event exactly once: at its end (E bit; the retransmitted end
    /// packets are not reported again), or — when the end packets were lost — when a
    /// packet of a new event (new timestamp) arrives. Bad payloads (< 4 bytes,
    /// unknown codes) are ignored (returns None) and counted.
    ///
    /// In the rare case one packet both ends a lost-end event and carries a whole
    /// new event (only its E packets got through), the second digit comes out of
    /// the next call (or [`EventReceiver::flush`]).
    pub fn on_packet(&mut self, timestamp: u32, marker: bool, payload: &[u8]) -> Option<Digit> {
        match Payload::parse(payload) {
            Some(p) if digit_of(p.code).is_some() => self.on_event(timestamp, marker, p),
            _ => self.bad += 1,
        }
        self.ready.pop_front()
    }

    /// Reports an event still open when its stream stopped (call at media timeout / hang-up).
    ///
    /// Call until it returns `None` if several might be waiting.
    pub fn flush(&mut self) -> Option<Digit> {
        if let Some(digit) = self.ready.pop_front() {
            return Some(digit);
        }
        let cur = self.current.as_mut().filter(|c| !c.done)?;
        cur.done = true;
        cur.digit(self.clock_rate)
    }

    /// Payloads dropped as malformed or not DTMF.
    pub fn bad_packets(&self) -> u64 {
        self.bad
    }

    fn on_event(&mut self, ts: u32, marker: bool, p: Payload) {
        match self.current {
            Some(cur) if ts == cur.ts => {
                if cur.done || p.code != cur.code {
                    return; // retransmitted end, or nonsense under an old timestamp
                }
                let cur = OpenEvent {
                    duration: cur.duration.max(p.duration),
                    ..cur
                };
                self.current = Some(cur);
                if p.end {
                    self.finish();
                }
            }
            Some(cur) if ts_after(ts, cur.ts) => {
                let since = u64::from(ts.wrapping_sub(cur.ts));
                let continues = !cur.done
                    && !marker
                    && p.code == cur.code
                    && since <= MAX_SEGMENT
                    && u64::from(cur.duration) + 0x2000 > MAX_SEGMENT;
                if continues {
                    self.current = Some(OpenEvent {
                        ts,
                        earlier_segments: cur.earlier_segments + since,
                        duration: p.duration,
                        ..cur
                    });
                } else {
                    if !cur.done {
                        self.finish(); // its end packets were lost
                    }
                    self.start(ts, p);
                }
                if p.end {
                    self.finish();
                }
            }
            Some(_) => {} // stale: older than the open event
            None => {
                self.start(ts, p);
                if p.end {
                    self.finish();
                }
            }
        }
    }

    fn start(&mut self, ts: u32, p: Payload) {
        self.current = Some(OpenEvent {
            ts,
            code: p.code,
            earlier_segments: 0,
            duration: p.duration,
            done: false,
        });
    }

    /// Reports the open event once.
    fn finish(&mut self) {
        if let Some(cur) = self.current.as_mut().filter(|c| !c.done) {
            cur.done = true;
            if let Some(digit) = cur.digit(self.clock_rate) {
                self.ready.push_back(digit);
            }
        }
    }
}

/// One telephone-event packet to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPacket {
    /// The RFC 4733 §2.3 payload.
    pub payload: [u8; 4],
    /// RTP marker bit: set on the first packet of an event (§2.2.2).
    pub marker: bool,
    /// The E bit is set (one of the three end packets).
    pub end: bool,
    /// RTP timestamp offset from the event's start timestamp (always 0 for
    /// telephone-events: the timestamp is the event start)
    pub timestamp_offset: u32,
}

#[derive(Clone, Copy, Debug)]
enum SendState {
    Idle,
    Sending {
        code: u8,
        /// Event length, timestamp units.
        total: u64,
        /// Units covered by the packets sent so far.
        elapsed: u64,
        /// Where the current long-event segment began, units from the event start.
        segment_start: u64,
        first: bool,
    },
    /// Retransmitting the final packet (`left` more times).
    Ending {
        payload: [u8; 4],
        left: u8,
    },
    /// Silent ticks before the next digit.
    Gap {
        left: u32,
    },
}

/// RFC 4733 §2.5.1 sender: turns digits into telephone-event payloads, one per 20 ms tick.
///
/// ```text
/// Idle ──push──► Sending ──duration reached──► Ending (E bit, 3 packets) ──► Gap (40 ms) ──► Idle
///                  │  ▲                                                                       │
///                  └──┘ one packet per tick, duration grows;                 next queued digit┘
///                       past 0xFFFF units a new segment (new timestamp, no marker)
/// ```
#[derive(Debug)]
pub struct EventSender {
    /// Timestamp units per 20 ms tick.
    tick_units: u64,
    clock_rate: u32,
    queue: VecDeque<(u8, u64)>,
    state: SendState,
}

impl EventSender {
    /// A sender for telephone-event at `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            tick_units: (u64::from(clock_rate) * u64::from(PTIME_MS) / 1000).max(1),
            clock_rate,
            queue: VecDeque::new(),
            state: SendState::Idle,
        }
    }

    /// Queues a digit; Err for an unknown digit.
    ///
    /// Durations under [`MIN_SEND_DURATION_MS`] are sent as that.
    pub fn push(&mut self, digit: char, duration_ms: u32) -> Result<(), DtmfError> {
        let code = event_code(digit).ok_or(DtmfError::UnknownDigit(digit))?;
        let ms = u64::from(duration_ms.max(MIN_SEND_DURATION_MS));
        self.queue
            .push_back((code, ms * u64::from(self.clock_rate) / 1000));
        Ok(())
    }

    /// Nothing queued and nothing being sent (gap included).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, SendState::Idle) && self.queue.is_empty()
    }

    /// Next packet for this 20 ms tick: first packet has marker set; duration field
    /// grows per packet; the end is sent three times (E bit) per §2.5.1
    /// ("Retransmission of Final Packet"); then the next queued digit after a 40 ms+
    /// gap. None when idle or in a gap. `new_event` tells the caller to take a fresh
    /// RTP timestamp for the event start (also for each segment of a long event).
    pub fn next_packet(&mut self) -> Option<(EventPacket, bool)> {
        match self.state {
            SendState::Idle => {
                let (code, total) = self.queue.pop_front()?;
                self.state = SendState::Sending {
                    code,
                    total,
                    elapsed: 0,
                    segment_start: 0,
                    first: true,
                };
                self.next_packet()
            }
            SendState::Sending {
                code,
                total,
                elapsed,
                mut segment_start,
                first,
            } => {
                let covered = (elapsed + self.tick_units).min(total);
                let mut new_event = first;
                if covered - segment_start > MAX_SEGMENT {
                    // The previous segment ends where the last packet left it.
                    segment_start = elapsed;
                    new_event = true;
                }
                let end = covered >= total;
                let duration = u16::try_from(covered - segment_start).unwrap_or(u16::MAX);
                let payload = Payload {
                    code,
                    end,
                    duration,
                }
                .encode();
                self.state = if end {
                    SendState::Ending { payload, left: 2 }
                } else {
                    SendState::Sending {
                        code,
                        total,
                        elapsed: covered,
                        segment_start,
                        first: false,
                    }
                };
                Some((packet(payload, first, end), new_event))
            }
            SendState::Ending { payload, left } => {
                self.state = match left {
                    0 | 1 => SendState::Gap {
                        left: SEND_GAP_MS.div_ceil(PTIME_MS),
                    },
                    _ => SendState::Ending {
                        payload,
                        left: left - 1,
                    },
                };
                Some((packet(payload, false, true), false))
            }
            SendState::Gap { left } => {
                self.state = match left {
                    0 | 1 => SendState::Idle,
                    _ => SendState::Gap { left: left - 1 },
                };
                None
            }
        }
    }
}

fn packet(payload: [u8; 4], marker: bool, end: bool) -> EventPacket {
    EventPacket {
        payload,
        marker,
        end,
        timestamp_offset: 0,
    }
}

/// Row (low group) frequencies, Hz.
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies, Hz.
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Goertzel block: 102 samples at 8 kHz (12.75 ms; 78 Hz resolution, enough to
/// tell adjacent rows apart), so a 40 ms tone fills at least two whole blocks.
const BLOCK_MS_X100: usize = 1275;
/// Full-scale sine amplitude.
const FULL_SCALE: f64 = 32767.0;
/// Weakest tone accepted, per frequency.
const MIN_LEVEL_DBFS: f64 = -36.0;
/// High group may be this much above the low group (normal twist), dB.
const NORMAL_TWIST_DB: f64 = 8.0;
/// Low group may be this much above the high group (reverse twist), dB.
const REVERSE_TWIST_DB: f64 = 4.0;
/// The strongest row (column) must beat the other rows (columns) by this, dB.
/// Rows are only 10% apart: a row tone 1.5% off leaks within 10-12 dB of its
/// neighbour's filter, so 8 dB would drop such tones in noise.
const RELATIVE_PEAK_DB: f64 = 6.0;
/// Share of the block's energy the two tones must carry: 0.8-1.0 for real digits
/// (less when off frequency or in noise), at most 0.64 in 35 minutes of synthetic
/// speech (espeak-ng, 13 voices, 3 speeds).
const MIN_TONE_SHARE: f64 = 0.65;
/// A tone's second harmonic must stay this far below it, dB. Speech harmonics
/// that mimic a digit came within 7.6-9.4 dB; real digits have none.
const HARMONIC_DB: f64 = 10.0;
/// Consecutive matching blocks that make a digit (25.5 ms).
const ON_BLOCKS: u32 = 2;
/// Consecutive other blocks that end it (25.5 ms).
const OFF_BLOCKS: u32 = 2;

fn db(ratio_db: f64) -> f64 {
    10f64.powf(ratio_db / 10.0)
}

/// One Goertzel filter.
#[derive(Clone, Copy, Debug, Default)]
struct Goertzel {
    coeff: f64,
    s1: f64,
    s2: f64,
}

impl Goertzel {
    fn new(hz: f64, sample_rate: f64) -> Self {
        Self {
            coeff: 2.0 * (2.0 * std::f64::consts::PI * hz / sample_rate).cos(),
            s1: 0.0,
            s2: 0.0,
        }
    }

    fn feed(&mut self, x: f64) {
        let s = x + self.coeff * self.s1 - self.s2;
        self.s2 = self.s1;
        self.s1 = s;
    }

    /// |X(f)|² over the block, then resets.
    fn take_power(&mut self) -> f64 {
        let p = self.s1 * self.s1 + self.s2 * self.s2 - self.coeff * self.s1 * self.s2;
        self.s1 = 0.0;
        self.s2 = 0.0;
        p
    }
}

/// Filter bank order: 4 rows, 4 columns, then their second harmonics in the same order.
const FILTERS: usize = 16;

/// In-band DTMF detector (Goertzel, ITU-T Q.24 acceptance: 40 ms tones, 40 ms
/// pauses, twist limits normal 8 dB / reverse 4 dB, relative peak checks against
/// the other row/column frequencies and against total energy, optionally
/// 2nd-harmonic check for speech rejection).
///
/// Every 12.75 ms block is classified as one digit or none: both tones at least
/// -36 dBFS, twist within limits, each tone 6 dB above the others of its group,
/// the pair carrying 65% of the block's energy and (harmonic check, on by default)
/// neither tone's second harmonic within 10 dB of it. Two matching blocks in a row
/// start a digit, two other blocks in a row end it: tones of 40 ms and pauses of
/// 40 ms are always seen, a dropout shorter than a block never splits a digit.
#[derive(Debug)]
pub struct ToneDetector {
    block_len: usize,
    filters: [Goertzel; FILTERS],
    /// Sum of squares of the block so far.
    energy: f64,
    filled: usize,
    harmonic_check: bool,
    /// A digit seen in `count` consecutive blocks, not yet confirmed.
    candidate: Option<(char, u32)>,
    /// The digit being held: its key, blocks since it started, trailing misses.
    active: Option<(char, u32, u32)>,
    ready: VecDeque<Digit>,
}

impl ToneDetector {
    /// A detector for PCM at `rate`, with the second-harmonic check on.
    pub fn new(rate: Rate) -> Self {
        let hz = f64::from(rate.hz());
        let mut filters = [Goertzel::default(); FILTERS];
        for (i, f) in ROWS.iter().chain(&COLS).enumerate() {
            filters[i] = Goertzel::new(*f, hz);
            filters[i + 8] = Goertzel::new(2.0 * f, hz);
        }
        Self {
            block_len: rate.per_ms() * BLOCK_MS_X100 / 100,
            filters,
            energy: 0.0,
            filled: 0,
            harmonic_check: true,
            candidate: None,
            active: None,
            ready: VecDeque::new(),
        }
    }

    /// Turns the second-harmonic check off (music on hold with pure tones, tests)
    /// or back on.
    pub fn with_harmonic_check(mut self, on: bool) -> Self {
        self.harmonic_check = on;
        self
    }

    /// Feeds PCM (any length, typically 20 ms frames) and reports each digit once,
    /// at its end (so the duration is known).
    ///
    /// Should several digits end within one call (a long buffer), the others come
    /// out of the next calls; `process(&[])` hands them out.
    pub fn process(&mut self, pcm: &[i16]) -> Option<Digit> {
        for &s in pcm {
            let x = f64::from(s);
            self.energy += x * x;
            for f in &mut self.filters {
                f.feed(x);
            }
            self.filled += 1;
            if self.filled == self.block_len {
                let hit = self.classify();
                self.on_block(hit);
            }
        }
        self.ready.pop_front()
    }

    /// Reports a digit still sounding (call when the audio stops).
    pub fn flush(&mut self) -> Option<Digit> {
        if let Some((digit, blocks, misses)) = self.active.take() {
            self.report(digit, blocks - misses);
        }
        self.candidate = None;
        self.ready.pop_front()
    }

    /// Classifies the block just filled, and resets the filters.
    fn classify(&mut self) -> Option<char> {
        let n = self.block_len as f64;
        // Scale |X|² and the energy so that a sine of amplitude A reads A².
        let scale = 4.0 / (n * n);
        let mut p = [0.0; FILTERS];
        for (p, f) in p.iter_mut().zip(&mut self.filters) {
            *p = f.take_power() * scale;
        }
        let total = 2.0 * std::mem::take(&mut self.energy) / n;
        self.filled = 0;

        let (row, row_p) = strongest(&p[0..4]);
        let (col, col_p) = strongest(&p[4..8]);
        let min_power = (FULL_SCALE * 10f64.powf(MIN_LEVEL_DBFS / 20.0)).powi(2);
        let ok = row_p >= min_power
            && col_p >= min_power
            && col_p <= row_p * db(NORMAL_TWIST_DB)
            && row_p <= col_p * db(REVERSE_TWIST_DB)
            && stands_out(&p[0..4], row)
            && stands_out(&p[4..8], col)
            && row_p + col_p >= MIN_TONE_SHARE * total
            && (!self.harmonic_check || self.harmonics_low(&p, row, col));
        ok.then(|| KEYPAD[row][col])
    }

    /// Second-harmonic check. A row's second harmonic (1394, 1540, 1704 Hz) lies
    /// 58-93 Hz from a column frequency, close enough for that column tone to leak
    /// into the harmonic's filter; for those pairs only the column's harmonic is
    /// checked.
    fn harmonics_low(&self, p: &[f64; FILTERS], row: usize, col: usize) -> bool {
        let col_ok = p[12 + col] * db(HARMONIC_DB) < p[4 + col];
        let row_masked = (2.0 * ROWS[row] - COLS[col]).abs() < 150.0;
        col_ok && (row_masked || p[8 + row] * db(HARMONIC_DB) < p[row])
    }

    fn on_block(&mut self, hit: Option<char>) {
        if let Some((digit, blocks, misses)) = self.active {
            if hit == Some(digit) {
                self.active = Some((digit, blocks + 1, 0));
                return;
            }
            if misses + 1 < OFF_BLOCKS {
                self.active = Some((digit, blocks + 1, misses + 1));
                return;
            }
            // Ended: the trailing misses are not part of it.
            self.active = None;
            self.report(digit, blocks - misses);
            // A different digit right away starts a new candidate.
            self.candidate = hit.map(|h| (h, 1));
            return;
        }
        self.candidate = match (hit, self.candidate) {
            (Some(h), Some((c, count))) if h == c => Some((c, count + 1)),
            (Some(h), _) => Some((h, 1)),
            (None, _) => None,
        };
        if let Some((digit, count)) = self.candidate {
            if count >= ON_BLOCKS {
                self.active = Some((digit, count, 0));
                self.candidate = None;
            }
        }
    }

    fn report(&mut self, digit: char, blocks: u32) {
        self.ready.push_back(Digit {
            digit,
            duration_ms: (blocks as usize * BLOCK_MS_X100).div_ceil(100) as u32,
            source: DigitSource::InBand,
        });
    }
}

/// Index and power of the strongest of a group.
fn strongest(group: &[f64]) -> (usize, f64) {
    group.iter().copied().enumerate().fold(
        (0, f64::MIN),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

/// Whether `group[best]` beats every other member by [`RELATIVE_PEAK_DB`].
fn stands_out(group: &[f64], best: usize) -> bool {
    group
        .iter()
        .enumerate()
        .all(|(i, &p)| i == best || p * db(RELATIVE_PEAK_DB) < group[best])
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- RFC 4733 ----

    /// The packets a phone sends for one event: `updates` packets 20 ms apart with
    /// growing durations (marker on the first, E on the last), then the end twice more.
    fn event_packets(code: u8, ts: u32, updates: u16) -> Vec<(u32, bool, [u8; 4])> {
        let mut out = Vec::new();
        for k in 1..=updates {
            let end = k == updates;
            let payload = Payload {
                code,
                end,
                duration: k * 160,
            }
            .encode();
            out.push((ts, k == 1, payload));
        }
        let last = out[out.len() - 1];
        out.push((ts, false, last.2));
        out.push((ts, false, last.2));
        out
    }

    fn feed(rx: &mut EventReceiver, packets: &[(u32, bool, [u8; 4])]) -> Vec<Digit> {
        let mut out: Vec<Digit> = packets
            .iter()
            .filter_map(|&(ts, m, p)| rx.on_packet(ts, m, &p))
            .collect();
        while let Some(d) = rx.flush() {
            out.push(d);
        }
        out
    }

    fn string(digits: &[Digit]) -> String {
        digits.iter().map(|d| d.digit).collect()
    }

    #[test]
    fn codes_and_digits_round_trip() {
        for (code, digit) in DIGITS.chars().enumerate() {
            assert_eq!(event_code(digit), Some(code as u8));
            assert_eq!(digit_of(code as u8), Some(digit));
        }
        assert_eq!(event_code('b'), Some(13));
        assert_eq!(event_code('E'), None);
        assert_eq!(digit_of(16), None);
    }

    #[test]
    fn every_digit_from_a_clean_stream() {
        let mut rx = EventReceiver::new(8000);
        for (code, digit) in DIGITS.chars().enumerate() {
            let ts = 1_000_000 + code as u32 * 4000;
            let packets = event_packets(code as u8, ts, 5);
            let reported: Vec<(usize, Digit)> = packets
                .iter()
                .enumerate()
                .filter_map(|(i, &(ts, m, p))| rx.on_packet(ts, m, &p).map(|d| (i, d)))
                .collect();
            // Once, at the first end packet, with the full duration.
            let expected = Digit {
                digit,
                duration_ms: 100,
                source: DigitSource::Rfc4733,
            };
            assert_eq!(reported, vec![(4, expected)]);
        }
        assert_eq!(rx.flush(), None);
        assert_eq!(rx.bad_packets(), 0);
    }

    #[test]
    fn duplicated_and_reordered_packets() {
        let mut rx = EventReceiver::new(8000);
        let mut all = Vec::new();
        for code in 0..16u8 {
            let p = event_packets(
                code,
                (u32::MAX - 30_000).wrapping_add(u32::from(code) * 4000),
                5,
            );
            // 1 3 2 2 4 5E 4 5E 5E 5E: swapped, duplicated, a stale update after the end.
            all.extend([p[0], p[2], p[1], p[1], p[3], p[4], p[3], p[5], p[6], p[4]]);
        }
        let digits = feed(&mut rx, &all);
        assert_eq!(string(&digits), DIGITS);
        assert!(digits.iter().all(|d| d.duration_ms == 100), "{digits:?}");
        // Timestamps wrapped through u32::MAX on the way.
    }

    #[test]
    fn lost_end_packets_report_at_the_next_event() {
        let mut rx = EventReceiver::new(8000);
        let mut reports = Vec::new();
        for code in 0..16u8 {
            let packets = event_packets(code, u32::from(code) * 4000, 5);
            for &(ts, m, p) in packets.iter().filter(|(_, _, p)| p[1] & 0x80 == 0) {
                reports.push((code, rx.on_packet(ts, m, &p)));
            }
        }
        // Each digit comes out with the first packet of the next one...
        let digits: Vec<Digit> = reports.iter().filter_map(|r| r.1).collect();
        assert_eq!(string(&digits), &DIGITS[..15]);
        assert!(digits.iter().all(|d| d.duration_ms == 80));
        for (i, (code, report)) in reports.iter().enumerate() {
            assert_eq!(report.is_some(), i % 4 == 0 && *code > 0);
        }
        // ...and the last one at flush, once.
        assert_eq!(
            rx.flush().map(|d| (d.digit, d.duration_ms)),
            Some(('D', 80))
        );
        assert_eq!(rx.flush(), None);
    }

    #[test]
    fn lost_first_packet_and_stale_packets() {
        let mut rx = EventReceiver::new(8000);
        let five = event_packets(5, 8000, 5);
        let six = event_packets(6, 16000, 5);
        let mut stream: Vec<_> = five[1..].to_vec(); // marker packet lost
        stream.push(six[0]);
        stream.push(five[2]); // stale: older event, already reported
        stream.extend_from_slice(&six[1..]);
        let digits = feed(&mut rx, &stream);
        assert_eq!(string(&digits), "56");
    }

    #[test]
    fn same_digit_twice_is_two_events() {
        let mut rx = EventReceiver::new(8000);
        let mut stream = event_packets(1, 0, 3);
        stream.extend(event_packets(1, 4000, 3));
        assert_eq!(string(&feed(&mut rx, &stream)), "11");
    }

    #[test]
    fn bad_payloads_are_counted() {
        let mut rx = EventReceiver::new(8000);
        assert_eq!(rx.on_packet(0, true, &[1, 0x80, 0]), None);
        assert_eq!(rx.on_packet(0, true, &[]), None);
        assert_eq!(rx.on_packet(0, true, &[16, 0x8a, 0, 160]), None); // flash: not DTMF
        assert_eq!(rx.on_packet(0, true, &[255, 0x8a, 0, 160]), None);
        assert_eq!(rx.bad_packets(), 4);
        assert_eq!(rx.flush(), None);
        // A good one still works, and extra bytes (RFC 2198 leftovers) are ignored.
        let d = rx.on_packet(160, true, &[3, 0x8a, 1, 64, 0xde, 0xad]);
        assert_eq!(d.map(|d| (d.digit, d.duration_ms)), Some(('3', 40)));
    }

    /// Runs a sender to idle, stamping packets with a media clock that advances one
    /// tick per call; returns (timestamp, packet) for every packet sent and the ticks.
    fn drain(tx: &mut EventSender, tick_units: u32) -> (Vec<(u32, EventPacket)>, u32) {
        let mut out = Vec::new();
        let mut event_ts = 0;
        let mut tick = 0u32;
        while !tx.is_idle() {
            if let Some((packet, new_event)) = tx.next_packet() {
                if new_event {
                    event_ts = 12_345u32.wrapping_add(tick * tick_units);
                }
                out.push((event_ts + packet.timestamp_offset, packet));
            }
            tick += 1;
            assert!(tick < 100_000, "sender never idles");
        }
        (out, tick)
    }

    #[test]
    fn sender_packet_layout() {
        let mut tx = EventSender::new(8000);
        assert!(tx.is_idle());
        assert_eq!(tx.next_packet(), None);
        tx.push('7', 100).unwrap();
        tx.push('#', 40).unwrap();
        assert!(matches!(
            tx.push('x', 40),
            Err(DtmfError::UnknownDigit('x'))
        ));
        let mut ticks = Vec::new();
        while !tx.is_idle() {
            ticks.push(tx.next_packet());
        }
        /// (event code, marker, end, duration, new_event) of one tick.
        type Tick = Option<(u8, bool, bool, u16, bool)>;
        let durations: Vec<Tick> = ticks
            .iter()
            .map(|t| {
                t.map(|(p, new)| {
                    (
                        p.payload[0],
                        p.marker,
                        p.end,
                        u16::from_be_bytes([p.payload[2], p.payload[3]]),
                        new,
                    )
                })
            })
            .collect();
        assert_eq!(
            durations,
            vec![
                Some((7, true, false, 160, true)),
                Some((7, false, false, 320, false)),
                Some((7, false, false, 480, false)),
                Some((7, false, false, 640, false)),
                Some((7, false, true, 800, false)),
                Some((7, false, true, 800, false)),
                Some((7, false, true, 800, false)),
                None,
                None,
                Some((11, true, false, 160, true)),
                Some((11, false, true, 320, false)),
                Some((11, false, true, 320, false)),
                Some((11, false, true, 320, false)),
                None,
                None,
            ]
        );
        assert!(ticks
            .iter()
            .flatten()
            .all(|(p, _)| p.payload[1] & 0x3f == SEND_VOLUME));
    }

    #[test]
    fn sender_to_receiver_round_trip() {
        let durations = [
            40, 100, 40, 60, 250, 40, 80, 40, 40, 120, 40, 40, 500, 40, 45, 40,
        ];
        let mut tx = EventSender::new(8000);
        for (digit, &ms) in DIGITS.chars().zip(&durations) {
            tx.push(digit, ms).unwrap();
        }
        let (packets, _) = drain(&mut tx, 160);
        let mut rx = EventReceiver::new(8000);
        let mut digits = Vec::new();
        for (ts, p) in &packets {
            digits.extend(rx.on_packet(*ts, p.marker, &p.payload));
        }
        assert_eq!(rx.flush(), None);
        assert_eq!(string(&digits), DIGITS);
        for (d, &ms) in digits.iter().zip(&durations) {
            assert_eq!(d.duration_ms, ms, "{d:?}");
        }
    }

    #[test]
    fn long_event_is_sent_in_segments_and_received_as_one() {
        // telephone-event/48000 (Opus legs): 0xFFFF units is only 1.365 s.
        let mut tx = EventSender::new(48_000);
        tx.push('5', 3000).unwrap();
        tx.push('6', 100).unwrap();
        let (packets, _) = drain(&mut tx, 960);
        let starts: Vec<u32> = packets
            .iter()
            .map(|(ts, _)| *ts)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(starts.len(), 4, "three segments of '5', one event '6'");
        assert_eq!(packets.iter().filter(|(_, p)| p.marker).count(), 2);
        assert!(packets
            .iter()
            .all(|(_, p)| u16::from_be_bytes([p.payload[2], p.payload[3]]) > 0));
        let mut rx = EventReceiver::new(48_000);
        let digits: Vec<Digit> = packets
            .iter()
            .filter_map(|(ts, p)| rx.on_packet(*ts, p.marker, &p.payload))
            .collect();
        assert_eq!(string(&digits), "56");
        assert_eq!(digits[0].duration_ms, 3000);
        assert_eq!(digits[1].duration_ms, 100);
    }

    // ---- in-band ----

    struct Noise(u64);

    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }

        /// Roughly Gaussian, unit variance.
        fn gauss(&mut self) -> f64 {
            self.uniform() + self.uniform() + self.uniform()
        }
    }

    fn amplitude(dbfs: f64) -> f64 {
        32767.0 * 10f64.powf(dbfs / 20.0)
    }

    /// Adds a sine at `hz` and `dbfs` (0 dBFS = full-scale sine) to `buf` from `at`.
    fn add_sine(
        buf: &mut [f64],
        rate: Rate,
        at: usize,
        len: usize,
        hz: f64,
        dbfs: f64,
        phase: f64,
    ) {
        let a = amplitude(dbfs);
        let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate.hz());
        for (n, x) in buf[at..at + len].iter_mut().enumerate() {
            *x += a * (w * n as f64 + phase).sin();
        }
    }

    /// Adds white noise at `dbfs` RMS (relative to a full-scale sine's RMS).
    fn add_noise(buf: &mut [f64], dbfs: f64, seed: u64) {
        let sigma = amplitude(dbfs) / std::f64::consts::SQRT_2;
        let mut noise = Noise(seed | 1);
        for x in buf.iter_mut() {
            *x += sigma * noise.gauss();
        }
    }

    fn pcm(buf: &[f64]) -> Vec<i16> {
        buf.iter()
            .map(|&x| x.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    fn freqs(digit: char) -> (f64, f64) {
        for (r, row) in KEYPAD.iter().enumerate() {
            if let Some(c) = row.iter().position(|&d| d == digit) {
                return (ROWS[r], COLS[c]);
            }
        }
        panic!("{digit}");
    }

    struct Burst {
        on_ms: usize,
        off_ms: usize,
        row_dbfs: f64,
        col_dbfs: f64,
        detune: f64,
    }

    /// `digits` as tone bursts after 100 ms of lead-in, with noise at `noise_dbfs`.
    fn dial(rate: Rate, digits: &str, b: &Burst, noise_dbfs: f64, seed: u64) -> Vec<i16> {
        let per_ms = rate.per_ms();
        let len = (100 + digits.len() * (b.on_ms + b.off_ms) + 100) * per_ms;
        let mut buf = vec![0.0; len];
        let mut phases = Noise(seed ^ 0x9e37_79b9);
        for (i, d) in digits.chars().enumerate() {
            let (row, col) = freqs(d);
            let at = (100 + i * (b.on_ms + b.off_ms)) * per_ms;
            let n = b.on_ms * per_ms;
            let pi = std::f64::consts::PI;
            add_sine(
                &mut buf,
                rate,
                at,
                n,
                row * b.detune,
                b.row_dbfs,
                phases.uniform() * pi,
            );
            add_sine(
                &mut buf,
                rate,
                at,
                n,
                col * b.detune,
                b.col_dbfs,
                phases.uniform() * pi,
            );
        }
        add_noise(&mut buf, noise_dbfs, seed);
        pcm(&buf)
    }

    /// Runs `pcm` through a detector in 20 ms frames.
    fn detect(rate: Rate, pcm: &[i16]) -> Vec<Digit> {
        let mut det = ToneDetector::new(rate);
        let mut out: Vec<Digit> = pcm
            .chunks(rate.frame_len())
            .filter_map(|f| det.process(f))
            .collect();
        while let Some(d) = det.flush() {
            out.push(d);
        }
        out
    }

    #[test]
    fn detects_every_digit_at_40_ms_on_40_ms_off() {
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            for (i, level) in [-5.0, -10.0, -15.0, -20.0, -25.0, -30.0]
                .into_iter()
                .enumerate()
            {
                let burst = Burst {
                    on_ms: 40,
                    off_ms: 40,
                    row_dbfs: level,
                    col_dbfs: level,
                    detune: 1.0,
                };
                let pcm = dial(rate, DIGITS, &burst, -40.0, 7 + i as u64);
                let digits = detect(rate, &pcm);
                assert_eq!(string(&digits), DIGITS, "{rate:?} at {level} dBFS");
                for d in &digits {
                    assert_eq!(d.source, DigitSource::InBand);
                    assert!(
                        (25..=65).contains(&d.duration_ms),
                        "{rate:?} {level}: {d:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn reports_the_duration_of_a_long_press() {
        let burst = Burst {
            on_ms: 500,
            off_ms: 100,
            row_dbfs: -10.0,
            col_dbfs: -10.0,
            detune: 1.0,
        };
        let digits = detect(Rate::Nb8k, &dial(Rate::Nb8k, "5", &burst, -50.0, 3));
        assert_eq!(digits.len(), 1);
        assert!((480..=520).contains(&digits[0].duration_ms), "{digits:?}");
    }

    #[test]
    fn tolerates_1_5_percent_frequency_error() {
        for detune in [0.985, 1.015] {
            let burst = Burst {
                on_ms: 40,
                off_ms: 40,
                row_dbfs: -20.0,
                col_dbfs: -20.0,
                detune,
            };
            let digits = detect(Rate::Nb8k, &dial(Rate::Nb8k, DIGITS, &burst, -40.0, 11));
            assert_eq!(string(&digits), DIGITS, "detune {detune}");
        }
    }

    #[test]
    fn twist_limits() {
        let cases = [
            (-20.0, -13.0, true),  // high group 7 dB up: normal twist within 8 dB
            (-20.0, -10.0, false), // 10 dB
            (-17.0, -20.0, true),  // low group 3 dB up: reverse twist within 4 dB
            (-14.0, -20.0, false), // 6 dB
        ];
        for (row_dbfs, col_dbfs, accepted) in cases {
            let burst = Burst {
                on_ms: 60,
                off_ms: 60,
                row_dbfs,
                col_dbfs,
                detune: 1.0,
            };
            let digits = detect(Rate::Nb8k, &dial(Rate::Nb8k, "159#", &burst, -50.0, 5));
            let expected = if accepted { "159#" } else { "" };
            assert_eq!(string(&digits), expected, "row {row_dbfs} col {col_dbfs}");
        }
    }

    #[test]
    fn rejects_too_short_tones() {
        let burst = Burst {
            on_ms: 10,
            off_ms: 60,
            row_dbfs: -10.0,
            col_dbfs: -10.0,
            detune: 1.0,
        };
        let digits = detect(Rate::Nb8k, &dial(Rate::Nb8k, DIGITS, &burst, -50.0, 5));
        assert_eq!(string(&digits), "");
    }

    #[test]
    fn flush_reports_a_digit_still_sounding() {
        let mut buf = vec![0.0; 8000 / 10];
        add_sine(&mut buf, Rate::Nb8k, 0, 800, 941.0, -10.0, 0.0);
        add_sine(&mut buf, Rate::Nb8k, 0, 800, 1633.0, -10.0, 0.0);
        let mut det = ToneDetector::new(Rate::Nb8k);
        assert_eq!(det.process(&pcm(&buf)), None);
        let d = det.flush().unwrap();
        assert_eq!(d.digit, 'D');
        assert!(d.duration_ms >= 90);
        assert_eq!(det.flush(), None);
    }

    #[test]
    fn no_digits_in_noise() {
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            for (seed, level) in [(1u64, -10.0), (2, -25.0), (3, -40.0)] {
                let mut buf = vec![0.0; 10 * rate.hz() as usize];
                add_noise(&mut buf, level, seed);
                assert_eq!(detect(rate, &pcm(&buf)), vec![], "{rate:?} {level}");
            }
        }
    }

    #[test]
    fn no_digits_in_single_tones_and_call_progress_tones() {
        let tones: Vec<Vec<f64>> = ROWS
            .iter()
            .chain(&COLS)
            .map(|&f| vec![f])
            .chain([
                vec![1000.0],
                vec![2100.0],
                vec![350.0, 440.0],
                vec![440.0, 480.0],
                vec![480.0, 620.0],
                vec![400.0, 450.0],
            ])
            .collect();
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            for tone in &tones {
                let mut buf = vec![0.0; 2 * rate.hz() as usize];
                let len = buf.len();
                for &f in tone {
                    add_sine(&mut buf, rate, 0, len, f, -10.0, 0.0);
                }
                add_noise(&mut buf, -50.0, 9);
                assert_eq!(detect(rate, &pcm(&buf)), vec![], "{rate:?} {tone:?}");
            }
        }
    }

    /// A vowel: harmonics of `f0` (with `vibrato`, a fraction of f0 at 5 Hz) falling
    /// 6 dB per octave, shaped by formant resonances (frequency, bandwidth), amplitude
    /// modulated at 4 Hz like syllables, at `dbfs` peak-ish level.
    fn vowel(
        rate: Rate,
        secs: f64,
        f0: f64,
        vibrato: f64,
        formants: &[(f64, f64)],
        dbfs: f64,
    ) -> Vec<f64> {
        let hz = f64::from(rate.hz());
        let n = (secs * hz) as usize;
        let gain = |f: f64| -> f64 {
            formants
                .iter()
                .map(|&(fc, bw)| {
                    let r = f / fc;
                    1.0 / ((1.0 - r * r).powi(2) + (f * bw / (fc * fc)).powi(2)).sqrt()
                })
                .product()
        };
        let harmonics: Vec<(usize, f64)> = (1..)
            .take_while(|&k| k as f64 * f0 < 3600.0)
            .map(|k| (k, gain(k as f64 * f0) / k as f64))
            .collect();
        let peak: f64 = harmonics.iter().map(|h| h.1).sum();
        let scale = amplitude(dbfs) / peak;
        let mut phase = 0.0;
        (0..n)
            .map(|i| {
                let t = i as f64 / hz;
                let f = f0 * (1.0 + vibrato * (2.0 * std::f64::consts::PI * 5.0 * t).sin());
                phase += 2.0 * std::f64::consts::PI * f / hz;
                let am = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                let s: f64 = harmonics
                    .iter()
                    .map(|&(k, a)| a * (k as f64 * phase).sin())
                    .sum();
                scale * am * s
            })
            .collect()
    }

    #[test]
    fn no_digits_in_speech_like_harmonics() {
        let vowels: [(&str, [(f64, f64); 3]); 7] = [
            ("a", [(730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)]),
            ("i", [(270.0, 60.0), (2290.0, 100.0), (3010.0, 120.0)]),
            ("u", [(300.0, 60.0), (870.0, 90.0), (2240.0, 150.0)]),
            ("e", [(530.0, 70.0), (1840.0, 100.0), (2480.0, 150.0)]),
            ("o", [(570.0, 80.0), (840.0, 90.0), (2410.0, 150.0)]),
            ("ae", [(660.0, 80.0), (1720.0, 100.0), (2410.0, 150.0)]),
            // Formants right on a DTMF pair ('5': 770 + 1336), the talk-off worst case.
            ("5", [(770.0, 80.0), (1336.0, 90.0), (2500.0, 150.0)]),
        ];
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            for (name, formants) in &vowels {
                for (f0, vibrato) in [(150.0, 0.0), (150.0, 0.03), (110.0, 0.02), (220.0, 0.02)] {
                    let mut buf = vowel(rate, 2.0, f0, vibrato, formants, -6.0);
                    add_noise(&mut buf, -45.0, 4);
                    let digits = detect(rate, &pcm(&buf));
                    assert_eq!(
                        digits,
                        vec![],
                        "{rate:?} /{name}/ at {f0} Hz, vibrato {vibrato}"
                    );
                }
            }
        }
    }

    #[test]
    fn harmonic_check_can_be_turned_off() {
        let burst = Burst {
            on_ms: 40,
            off_ms: 40,
            row_dbfs: -20.0,
            col_dbfs: -20.0,
            detune: 1.0,
        };
        let pcm = dial(Rate::Nb8k, DIGITS, &burst, -40.0, 1);
        let mut det = ToneDetector::new(Rate::Nb8k).with_harmonic_check(false);
        let mut digits: Vec<Digit> = pcm.chunks(160).filter_map(|f| det.process(f)).collect();
        digits.extend(det.flush());
        assert_eq!(string(&digits), DIGITS);
    }

    #[test]
    fn no_digits_in_real_speech() {
        let text = "please hold while we connect your call, one two three four five six seven eight nine zero";
        // en+f3 spoken slowly came closest to a false 'A' while tuning.
        for (voice, wpm) in [("en", 175), ("en+f3", 120), ("en-us", 260)] {
            for rate in [Rate::Nb8k, Rate::Wb16k] {
                let Some(speech) = crate::vad::tests::espeak(text, voice, wpm, rate) else {
                    eprintln!("espeak-ng or sox missing: skipping the real speech talk-off test");
                    return;
                };
                let digits = detect(rate, &speech);
                assert_eq!(digits, vec![], "voice {voice} at {wpm} wpm, {rate:?}");
            }
        }
    }
}
