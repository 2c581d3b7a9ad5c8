//! Adaptive jitter buffer for one RTP stream of 20 ms frames.
//!
//! Packets go in with [`JitterBuffer::push`] as they arrive (sequence number, RTP
//! timestamp, arrival instant); the playout loop calls [`JitterBuffer::pop`] once
//! per 20 ms tick and gets the next frame in sequence order, `Missing` for a gap it
//! must conceal, or `Empty` when there is nothing to play.
//!
//! Playout state machine (the buffer never reads the clock; `now` comes in):
//!
//! ```text
//!            push                       pop: oldest packet held >= target delay
//!   Idle ─────────────► Idle (filling) ─────────────────────────────────────► Playing
//!    ▲                                                                          │
//!    └─────────────── pop: buffer empty for more than 3 ticks (drained) ─────────┘
//! ```
//!
//! While playing, each pop consumes one sequence number; a gap before a later
//! stored packet is `Missing` (a gap longer than `max_delay_ms` is skipped). A pop
//! that finds the buffer empty conceals (`Missing`) without moving on, since the
//! packet may only be delayed or the stream paused (DTX); if a later packet then
//! shows it was lost, those ticks count as its concealment, so the timeline holds.
//! After three such ticks playout stops (`Empty`) until the buffer refills to the
//! target delay.
//!
//! The target delay is three times the RFC 3550 §6.4.1 / A.8 interarrival jitter,
//! clamped to `min_delay_ms..=max_delay_ms`. The buffer steers the mean time a
//! frame waits in it towards the target: one extra concealed frame when it runs
//! short (the delay grows by 20 ms), one discarded frame when it holds more than a
//! frame too much (at most every half second).
//!
//! Sequence numbers are extended across the 16-bit wrap as in RFC 3550 A.1. A jump
//! of more than [`MAX_DROPOUT`] ahead or [`MAX_MISORDER`] behind needs a second,
//! sequential packet to confirm it (A.1's probation); then the buffer resynchronizes
//! on the new numbering. An SSRC change is the caller's to see: it calls
//! [`JitterBuffer::reset`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::audio::PTIME_MS;

/// A jump ahead of this many packets is a new numbering, not loss (RFC 3550 A.1).
pub const MAX_DROPOUT: i64 = 3000;
/// A packet this many behind the playout point is a new numbering, not a late one.
pub const MAX_MISORDER: i64 = 100;

/// Frame length in milliseconds, as f64 for the delay arithmetic.
const FRAME_MS: f64 = PTIME_MS as f64;
/// Frames averaged before the delay is steered; afterwards the mean holding time
/// is smoothed with the RFC 3550 jitter gain, 1/16.
const WARMUP_FRAMES: u32 = 16;
/// Pops between two discarded frames, so shrinking the delay is gentle.
const SHRINK_COOLDOWN_TICKS: u32 = 25;
/// Pops that may find the buffer empty while playing (concealed as `Missing`)
/// before playout stops and waits to refill.
const DRY_TICKS: u32 = 3;
/// An apparent transit change larger than this is a timestamp discontinuity (sender
/// restarted its clock), not jitter: the estimate skips it.
const TIMESTAMP_JUMP_SECS: f64 = 1.0;

/// Jitter buffer limits.
#[derive(Clone, Copy, Debug)]
pub struct JitterConfig {
    /// Lowest target delay (default 20 ms).
    pub min_delay_ms: u32,
    /// Highest target delay (default 200 ms); also the longest gap played as
    /// `Missing` frames before playout skips ahead.
    pub max_delay_ms: u32,
    /// Packets held at most (default 64).
    pub capacity: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            min_delay_ms: 20,
            max_delay_ms: 200,
            capacity: 64,
        }
    }
}

/// What became of a pushed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Stored for playout.
    Accepted,
    /// Dropped: its turn has passed (also a far-behind packet on probation).
    Late,
    /// Dropped: this sequence number is already stored or was already played.
    Duplicate,
    /// Dropped: the buffer holds `capacity` packets (also a far-ahead jump on
    /// probation, until the next packet confirms it).
    Overflow,
}

/// The result of one playout tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pop<T> {
    /// The next frame in sequence order.
    Frame(T),
    /// This tick's frame is lost, late, or the buffer is stretching its delay:
    /// conceal it.
    Missing,
    /// Nothing to play: playout has not (re)started yet, or the buffer drained.
    Empty,
}

/// Counters since creation (kept across [`JitterBuffer::reset`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct JitterStats {
    /// Packets pushed, whatever became of them.
    pub received: u64,
    /// Packets that arrived after their turn and were dropped.
    pub late: u64,
    /// Sequence numbers whose turn came without a packet (concealed or skipped).
    /// A packet counted here that still arrives later is also counted in `late`.
    pub lost: u64,
    /// Packets dropped as duplicates.
    pub duplicate: u64,
    /// Packets dropped for lack of room.
    pub overflow: u64,
    /// RFC 3550 A.8 interarrival jitter, in milliseconds.
    pub jitter_ms: f64,
    /// Current target delay, in milliseconds.
    pub delay_ms: u32,
}

#[derive(Debug)]
struct Slot<T> {
    arrival: Instant,
    item: T,
}

/// Adaptive, bounded jitter buffer for one RTP stream of 20 ms frames: orders by
/// sequence number (wrap-around), holds playout until its target delay (adapted from
/// the RFC 3550 interarrival jitter, clamped to min..max), reports late, lost,
/// duplicate packets; resynchronizes on a large sequence/timestamp jump or SSRC
/// change (caller calls reset()).
#[derive(Debug)]
pub struct JitterBuffer<T> {
    clock_rate: f64,
    cfg: JitterConfig,
    /// Stored packets by extended sequence number.
    slots: BTreeMap<i64, Slot<T>>,
    /// Highest extended sequence number stored since the last resync.
    highest: Option<i64>,
    /// Next extended sequence number to play; `None` until playout first starts.
    next: Option<i64>,
    playing: bool,
    /// Bit i set: sequence number `next - 1 - i` arrived (for duplicate detection).
    history: u64,
    /// A jump candidate waiting for its successor (RFC 3550 A.1 probation).
    probation: Option<u16>,
    /// Mean time a played frame waited in the buffer, ms.
    held_ms: f64,
    /// Frames in `held_ms`, up to the warm-up length.
    held_n: u32,
    ticks_since_shrink: u32,
    /// Consecutive pops that found the buffer empty while playing.
    dry_ticks: u32,
    /// Arrival of the first packet, the zero of the arrival clock.
    anchor: Option<Instant>,
    /// Arrival (in timestamp units since `anchor`) and RTP timestamp of the last packet.
    last: Option<(f64, u32)>,
    /// RFC 3550 J, in timestamp units.
    jitter: f64,
    stats: JitterStats,
}

impl<T> JitterBuffer<T> {
    /// A buffer for a stream whose RTP clock runs at `clock_rate` Hz.
    pub fn new(clock_rate: u32, cfg: JitterConfig) -> Self {
        let cfg = JitterConfig {
            min_delay_ms: cfg.min_delay_ms.min(cfg.max_delay_ms),
            capacity: cfg.capacity.max(1),
            ..cfg
        };
        Self {
            clock_rate: f64::from(clock_rate.max(1)),
            cfg,
            slots: BTreeMap::new(),
            highest: None,
            next: None,
            playing: false,
            history: 0,
            probation: None,
            held_ms: 0.0,
            held_n: 0,
            ticks_since_shrink: 0,
            dry_ticks: 0,
            anchor: None,
            last: None,
            jitter: 0.0,
            stats: JitterStats::default(),
        }
    }

    /// Offers one packet. Only `Accepted` packets are ever returned by `pop`.
    pub fn push(&mut self, seq: u16, timestamp: u32, arrival: Instant, item: T) -> Push {
        self.stats.received += 1;
        let mut ext = self.extend(seq);
        if let Some(ahead) = self.jump(ext) {
            if self.probation == Some(seq.wrapping_sub(1)) {
                self.resync();
                ext = self.extend(seq);
            } else {
                self.probation = Some(seq);
                return if ahead {
                    self.stats.overflow += 1;
                    Push::Overflow
                } else {
                    self.stats.late += 1;
                    Push::Late
                };
            }
        }
        self.probation = None;

        if let Some(next) = self.next {
            if ext < next {
                return self.late_or_duplicate(next, ext, timestamp, arrival);
            }
        }
        if self.slots.contains_key(&ext) {
            self.stats.duplicate += 1;
            return Push::Duplicate;
        }
        if self.slots.len() >= self.cfg.capacity {
            self.stats.overflow += 1;
            return Push::Overflow;
        }
        self.update_jitter(timestamp, arrival);
        self.slots.insert(ext, Slot { arrival, item });
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        Push::Accepted
    }

    /// Called once per 20 ms playout tick: the next frame in order, Missing for a
    /// gap (conceal it), Empty before playout started or when drained.
    pub fn pop(&mut self, now: Instant) -> Pop<T> {
        if !self.playing && !self.try_start(now) {
            return Pop::Empty;
        }
        self.ticks_since_shrink = self.ticks_since_shrink.saturating_add(1);
        let (Some(next), Some(&lowest)) = (self.next, self.slots.keys().next()) else {
            // Ran dry: the next packet is lost, delayed, or the stream paused. Conceal
            // without moving on (a delayed packet or the next talkspurt then still
            // plays), and after DRY_TICKS stop and wait to refill to the target.
            self.dry_ticks += 1;
            if self.dry_ticks > DRY_TICKS {
                self.playing = false;
                return Pop::Empty;
            }
            return Pop::Missing;
        };
        let gap = lowest - next;
        let dry = i64::from(std::mem::take(&mut self.dry_ticks));
        if gap > i64::from(self.cfg.max_delay_ms / PTIME_MS) {
            // Concealing the whole gap would delay the stream beyond its maximum.
            self.skip_to(lowest);
            return self.play(lowest, now);
        }
        if gap > 0 && dry > 0 {
            // The dry ticks already concealed the first slots of this gap.
            self.skip_to(next + gap.min(dry));
            if dry >= gap {
                return self.play(lowest, now);
            }
        }
        if gap > 0 {
            self.stats.lost += 1;
            self.advance(false);
            return Pop::Missing;
        }
        self.play(next, now)
    }

    /// Forgets the stream (buffered packets, playout position, jitter estimate),
    /// keeping the counters: call it when the SSRC changes.
    pub fn reset(&mut self) {
        self.resync();
    }

    /// Counters and the current estimates.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            jitter_ms: self.jitter_ms(),
            delay_ms: self.target_ms(),
            ..self.stats
        }
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Plays the stored frame `seq` (the lowest stored), first adapting the delay.
    fn play(&mut self, seq: i64, now: Instant) -> Pop<T> {
        let Some(slot) = self.slots.get(&seq) else {
            return Pop::Empty;
        };
        let held = now.saturating_duration_since(slot.arrival).as_secs_f64() * 1000.0;
        // Running average while warming up, then the RFC 3550 gain of 1/16.
        self.held_n = self.held_n.saturating_add(1);
        self.held_ms += (held - self.held_ms) / f64::from(self.held_n.min(WARMUP_FRAMES));
        let settled = self.held_n >= WARMUP_FRAMES;
        let target = f64::from(self.target_ms());
        if settled && self.held_ms < target - FRAME_MS / 2.0 {
            // Too little cushion: stretch by one concealed frame.
            self.held_ms += FRAME_MS;
            return Pop::Missing;
        }
        let seq = if settled
            && self.held_ms > target + FRAME_MS
            && self.ticks_since_shrink >= SHRINK_COOLDOWN_TICKS
            && self.slots.contains_key(&(seq + 1))
        {
            // Too much cushion: discard this frame, play the next one now.
            self.slots.remove(&seq);
            self.advance(true);
            self.held_ms -= FRAME_MS;
            self.ticks_since_shrink = 0;
            seq + 1
        } else {
            seq
        };
        match self.slots.remove(&seq) {
            Some(slot) => {
                self.advance(true);
                Pop::Frame(slot.item)
            }
            None => Pop::Empty,
        }
    }

    /// Idle → Playing once the oldest stored packet has waited the target delay.
    fn try_start(&mut self, now: Instant) -> bool {
        let Some(&lowest) = self.slots.keys().next() else {
            return false;
        };
        let Some(first_arrival) = self.slots.values().map(|s| s.arrival).min() else {
            return false;
        };
        let waited = now.saturating_duration_since(first_arrival).as_secs_f64() * 1000.0;
        if waited < f64::from(self.target_ms()) {
            return false;
        }
        match self.next {
            Some(next) if lowest > next => self.skip_to(lowest),
            _ => self.next = Some(lowest),
        }
        self.playing = true;
        self.held_ms = 0.0;
        self.held_n = 0;
        self.dry_ticks = 0;
        true
    }

    /// Moves the playout point forward to `seq`, counting what it passes as lost.
    fn skip_to(&mut self, seq: i64) {
        let Some(next) = self.next else {
            self.next = Some(seq);
            return;
        };
        let gap = seq - next;
        if gap > 0 {
            self.stats.lost += gap as u64;
            self.history = if gap >= 64 { 0 } else { self.history << gap };
            self.next = Some(seq);
        }
    }

    fn advance(&mut self, received: bool) {
        self.history = (self.history << 1) | u64::from(received);
        self.next = self.next.map(|n| n + 1);
    }

    fn late_or_duplicate(&mut self, next: i64, ext: i64, timestamp: u32, arrival: Instant) -> Push {
        let age = next - 1 - ext;
        if age < 64 {
            let bit = 1u64 << age;
            if self.history & bit != 0 {
                self.stats.duplicate += 1;
                return Push::Duplicate;
            }
            self.history |= bit;
        }
        self.update_jitter(timestamp, arrival);
        self.stats.late += 1;
        Push::Late
    }

    /// Extends `seq` to 64 bits next to the highest sequence number seen (RFC 3550 A.1).
    fn extend(&self, seq: u16) -> i64 {
        match self.highest.or(self.next) {
            Some(h) => h + i64::from(seq.wrapping_sub(h as u16) as i16),
            None => i64::from(seq),
        }
    }

    /// `Some(true)` for a jump far ahead, `Some(false)` far behind, `None` in range.
    fn jump(&self, ext: i64) -> Option<bool> {
        let highest = self.highest.or(self.next)?;
        let base = self
            .next
            .or_else(|| self.slots.keys().next().copied())
            .unwrap_or(highest);
        if ext >= highest + MAX_DROPOUT {
            Some(true)
        } else if ext < base - MAX_MISORDER {
            Some(false)
        } else {
            None
        }
    }

    fn resync(&mut self) {
        self.slots.clear();
        self.highest = None;
        self.next = None;
        self.playing = false;
        self.history = 0;
        self.probation = None;
        self.held_ms = 0.0;
        self.held_n = 0;
        self.ticks_since_shrink = 0;
        self.dry_ticks = 0;
        self.anchor = None;
        self.last = None;
        self.jitter = 0.0;
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16, D the change in relative transit time.
    fn update_jitter(&mut self, timestamp: u32, arrival: Instant) {
        let anchor = *self.anchor.get_or_insert(arrival);
        let at = arrival.saturating_duration_since(anchor).as_secs_f64() * self.clock_rate;
        if let Some((last_at, last_ts)) = self.last {
            let ts_delta = f64::from(timestamp.wrapping_sub(last_ts) as i32);
            let d = ((at - last_at) - ts_delta).abs();
            if d < TIMESTAMP_JUMP_SECS * self.clock_rate {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last = Some((at, timestamp));
    }

    fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / self.clock_rate
    }

    /// Three times the jitter, within the configured bounds.
    fn target_ms(&self) -> u32 {
        let want = (3.0 * self.jitter_ms()).ceil();
        let want = if want.is_finite() && want < f64::from(u32::MAX) {
            want as u32
        } else {
            u32::MAX
        };
        want.clamp(self.cfg.min_delay_ms, self.cfg.max_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FRAME: u32 = 160;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Packets `(seq, arrival ms)` delivered into a buffer popped every 20 ms at
    /// `phase` ms past the tick; returns every pop's result (seq numbers as items).
    fn run(
        buf: &mut JitterBuffer<u16>,
        t0: Instant,
        packets: &[(u16, u64)],
        phase: u64,
        ticks: u64,
    ) -> Vec<Pop<u16>> {
        let mut sorted = packets.to_vec();
        sorted.sort_by_key(|&(_, at)| at);
        let mut pending = sorted.into_iter().peekable();
        let mut out = Vec::new();
        for tick in 0..ticks {
            let now = tick * 20 + phase;
            while let Some(&(seq, at)) = pending.peek() {
                if at > now {
                    break;
                }
                let ts = u32::from(seq).wrapping_mul(FRAME);
                buf.push(seq, ts, t0 + ms(at), seq);
                pending.next();
            }
            out.push(buf.pop(t0 + ms(now)));
        }
        out
    }

    fn frames(pops: &[Pop<u16>]) -> Vec<u16> {
        pops.iter()
            .filter_map(|p| match p {
                Pop::Frame(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    fn count(pops: &[Pop<u16>], what: Pop<u16>) -> usize {
        pops.iter().filter(|&&p| p == what).count()
    }

    #[test]
    fn in_order_stream_plays_in_order_then_drains() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        assert_eq!(buf.pop(t0), Pop::Empty);
        let packets: Vec<(u16, u64)> = (0..100u16).map(|s| (s, u64::from(s) * 20)).collect();
        let pops = run(&mut buf, t0, &packets, 5, 130);
        assert_eq!(frames(&pops), (0..100).collect::<Vec<_>>());
        // Playout starts once the first packet has waited the 20 ms minimum...
        assert_eq!(&pops[..2], &[Pop::Empty, Pop::Frame(0)]);
        assert!(pops[1..101].iter().all(|p| matches!(p, Pop::Frame(_))));
        // ...after the last frame three ticks are concealed (the stream might only
        // pause), then the buffer reports itself drained.
        assert_eq!(
            &pops[101..105],
            &[Pop::Missing, Pop::Missing, Pop::Missing, Pop::Empty]
        );
        assert!(pops[105..].iter().all(|p| *p == Pop::Empty));
        assert!(buf.is_empty());
        let stats = buf.stats();
        assert_eq!(
            (stats.received, stats.lost, stats.late, stats.duplicate),
            (100, 0, 0, 0)
        );
        assert_eq!(stats.delay_ms, 20);
        assert!(stats.jitter_ms < 0.01);
    }

    #[test]
    fn reordering_within_the_delay_is_undone() {
        // Pairs swapped on the wire: 1 0 3 2 5 4 ...
        let packets: Vec<(u16, u64)> = (0..100u16).map(|s| (s ^ 1, u64::from(s) * 20)).collect();
        let t0 = Instant::now();
        // With a fixed 60 ms delay nothing needs concealing.
        let fixed = JitterConfig {
            min_delay_ms: 60,
            max_delay_ms: 60,
            ..JitterConfig::default()
        };
        let mut buf = JitterBuffer::new(8000, fixed);
        let pops = run(&mut buf, t0, &packets, 5, 110);
        assert_eq!(frames(&pops), (0..100).collect::<Vec<_>>());
        assert!(
            pops[3..103].iter().all(|p| matches!(p, Pop::Frame(_))),
            "{pops:?}"
        );
        // Adaptive: the swaps read as 40 ms of jitter; the buffer may stretch while
        // it grows its delay but loses nothing.
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        let pops = run(&mut buf, t0, &packets, 5, 130);
        assert_eq!(frames(&pops), (0..100).collect::<Vec<_>>());
        let stats = buf.stats();
        assert_eq!((stats.late, stats.lost), (0, 0));
        assert!(stats.delay_ms > 60, "{stats:?}");
    }

    #[test]
    fn loss_is_concealed_and_counted() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        let packets: Vec<(u16, u64)> = (0..50u16)
            .filter(|s| ![10, 20, 21].contains(s))
            .map(|s| (s, u64::from(s) * 20))
            .collect();
        let pops = run(&mut buf, t0, &packets, 5, 60);
        let expected: Vec<u16> = (0..50).filter(|s| ![10, 20, 21].contains(s)).collect();
        assert_eq!(frames(&pops), expected);
        // One concealed frame per lost packet, on time: 20 is concealed while the
        // buffer runs dry (it cannot know yet), 21 once 22 shows the gap.
        let first = pops.iter().position(|p| *p == Pop::Frame(0)).unwrap();
        let last = pops.iter().position(|p| *p == Pop::Frame(49)).unwrap();
        assert_eq!(last - first, 49);
        assert_eq!(count(&pops[first..=last], Pop::Missing), 3);
        assert_eq!(count(&pops[first..=last], Pop::Empty), 0);
        assert_eq!(buf.stats().lost, 3);
    }

    #[test]
    fn late_packet_is_counted_and_dropped() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        // Packet 10 comes 150 ms late, long after its turn.
        let packets: Vec<(u16, u64)> = (0..30u16)
            .map(|s| (s, u64::from(s) * 20 + if s == 10 { 150 } else { 0 }))
            .collect();
        let pops = run(&mut buf, t0, &packets, 5, 40);
        let expected: Vec<u16> = (0..30).filter(|&s| s != 10).collect();
        assert_eq!(frames(&pops), expected);
        assert_eq!(pops[11], Pop::Missing);
        let stats = buf.stats();
        assert_eq!((stats.late, stats.lost), (1, 1));
        // A second copy of the late packet is a duplicate, not another late one.
        assert_eq!(buf.push(10, 1600, t0 + ms(900), 10), Push::Duplicate);
    }

    #[test]
    fn duplicates_before_and_after_playout() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        assert_eq!(buf.push(1, 160, t0, 1), Push::Accepted);
        assert_eq!(buf.push(1, 160, t0 + ms(1), 1), Push::Duplicate);
        assert_eq!(buf.push(2, 320, t0 + ms(20), 2), Push::Accepted);
        assert_eq!(buf.pop(t0 + ms(25)), Pop::Frame(1));
        assert_eq!(buf.push(1, 160, t0 + ms(30), 1), Push::Duplicate);
        assert_eq!(buf.pop(t0 + ms(45)), Pop::Frame(2));
        assert_eq!(buf.push(2, 320, t0 + ms(50), 2), Push::Duplicate);
        assert_eq!(buf.stats().duplicate, 3);
        assert_eq!(buf.stats().late, 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        let seqs: Vec<u16> = (0..40u16).map(|n| 65_520u16.wrapping_add(n)).collect();
        // Swap the two packets around the wrap.
        let packets: Vec<(u16, u64)> = seqs
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let slot = match s {
                    65_535 => 16,
                    0 => 15,
                    _ => i,
                };
                (s, slot as u64 * 20)
            })
            .collect();
        let pops = run(&mut buf, t0, &packets, 5, 50);
        assert_eq!(frames(&pops), seqs);
        assert_eq!(buf.stats().lost, 0);
    }

    #[test]
    fn capacity_bounds_the_buffer() {
        let t0 = Instant::now();
        let cfg = JitterConfig {
            capacity: 8,
            ..JitterConfig::default()
        };
        let mut buf = JitterBuffer::new(8000, cfg);
        let results: Vec<Push> = (0..12u16)
            .map(|s| buf.push(s, u32::from(s) * FRAME, t0, s))
            .collect();
        assert!(results[..8].iter().all(|r| *r == Push::Accepted));
        assert!(results[8..].iter().all(|r| *r == Push::Overflow));
        assert_eq!(buf.len(), 8);
        assert_eq!(buf.stats().overflow, 4);
        // Playing makes room again (the burst raised the target delay: wait it out).
        assert_eq!(buf.pop(t0 + ms(200)), Pop::Frame(0));
        assert_eq!(buf.push(8, 8 * FRAME, t0 + ms(21), 8), Push::Accepted);
    }

    #[test]
    fn target_delay_grows_under_jitter_and_shrinks_back() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        // 10 s of network delay uniform in 0..80 ms, then 20 s of steady delay.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next_rand = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % 81
        };
        let packets: Vec<(u16, u64)> = (0..1500u16)
            .map(|s| {
                let delay = if s < 500 { next_rand() } else { 40 };
                (s, u64::from(s) * 20 + delay)
            })
            .collect();
        let pops = run(&mut buf, t0, &packets, 5, 500);
        let stats = buf.stats();
        assert!(stats.jitter_ms > 15.0, "jitter {}", stats.jitter_ms);
        assert!(stats.delay_ms >= 60, "delay {}", stats.delay_ms);
        // Once adapted (after the first 2 s) few frames are lost to lateness.
        let missing = count(&pops[100..], Pop::Missing);
        assert!(missing < 20, "{missing} concealed frames of 400");
        let grown = buf.len();
        assert!(grown >= 3, "buffer holds {grown}");

        let mut rest = Vec::new();
        for tick in 500..1500u64 {
            let now = tick * 20 + 5;
            for &(seq, at) in packets
                .iter()
                .filter(|&&(_, at)| at > now - 20 && at <= now)
            {
                buf.push(seq, u32::from(seq) * FRAME, t0 + ms(at), seq);
            }
            rest.push(buf.pop(t0 + ms(now)));
        }
        let stats = buf.stats();
        assert_eq!(stats.delay_ms, 20, "jitter {}", stats.jitter_ms);
        assert!(buf.len() <= 2, "buffer still holds {}", buf.len());
        // Everything that arrived was played or discarded in order.
        let played = frames(&pops)
            .into_iter()
            .chain(frames(&rest))
            .collect::<Vec<_>>();
        assert!(played.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn large_jump_resynchronizes_after_probation() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        for s in 0..5u16 {
            buf.push(s, u32::from(s) * FRAME, t0 + ms(u64::from(s) * 20), s);
        }
        assert_eq!(buf.pop(t0 + ms(85)), Pop::Frame(0));
        // The sender restarts its numbering at 20000: the first packet is held on
        // probation, the second confirms the new numbering.
        assert_eq!(buf.push(20_000, 0, t0 + ms(100), 20_000), Push::Overflow);
        assert_eq!(buf.push(20_001, 160, t0 + ms(120), 20_001), Push::Accepted);
        assert_eq!(buf.len(), 1);
        assert_eq!(buf.pop(t0 + ms(145)), Pop::Frame(20_001));
        // A single stray old packet does not pull it back.
        assert_eq!(buf.push(3, 480, t0 + ms(150), 3), Push::Late);
        assert_eq!(buf.push(20_002, 320, t0 + ms(150), 20_002), Push::Accepted);
        // Nor does one far behind across the wrap (60000 is 39998 ahead of 20002,
        // that is 25538 behind).
        assert_eq!(buf.push(60_000, 0, t0 + ms(160), 60_000), Push::Late);
        assert_eq!(buf.push(20_003, 480, t0 + ms(170), 20_003), Push::Accepted);
    }

    #[test]
    fn reset_forgets_the_stream() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        buf.push(7, 0, t0, 7);
        buf.reset();
        assert!(buf.is_empty());
        assert_eq!(buf.pop(t0 + ms(100)), Pop::Empty);
        assert_eq!(buf.push(1000, 0, t0 + ms(100), 1000), Push::Accepted);
        assert_eq!(buf.pop(t0 + ms(125)), Pop::Frame(1000));
        assert_eq!(buf.stats().received, 2);
    }

    #[test]
    fn long_outage_skips_ahead_instead_of_concealing_it_all() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        // 0..10, then 2 s of nothing, then 110..120 (numbers kept counting).
        let packets: Vec<(u16, u64)> = (0..10u16)
            .chain(110..120)
            .map(|s| (s, u64::from(s) * 20))
            .collect();
        let pops = run(&mut buf, t0, &packets, 5, 130);
        assert_eq!(frames(&pops), (0..10).chain(110..120).collect::<Vec<_>>());
        // Three ticks concealed as the buffer runs dry, then it waits.
        let first = pops.iter().position(|p| *p == Pop::Frame(0)).unwrap();
        let last = pops.iter().position(|p| *p == Pop::Frame(119)).unwrap();
        assert_eq!(count(&pops[first..=last], Pop::Missing), 3);
        assert_eq!(buf.stats().lost, 100);
    }

    #[test]
    fn timestamp_discontinuity_does_not_inflate_jitter() {
        let t0 = Instant::now();
        let mut buf = JitterBuffer::new(8000, JitterConfig::default());
        for s in 0..50u16 {
            let ts = u32::from(s) * FRAME + if s >= 25 { 3_000_000 } else { 0 };
            buf.push(s, ts, t0 + ms(u64::from(s) * 20), s);
        }
        assert!(buf.stats().jitter_ms < 0.01);
    }
}
