//! One call's (or one conference's) media, sans-IO.
//!
//! A [`Session`] holds the legs anchored at the switch (each leg is one RTP
//! stream with a peer) and what connects them: a two-party bridge or an
//! N-party conference. Packets come in with [`Session::on_rtp`], the 20 ms
//! clock with [`Session::on_tick`]; what to send comes out in [`Transmits`]
//! and what happened (a digit, a media timeout, a prompt that ended) in
//! [`Session::poll_event`].
//!
//! A bridge between legs of one codec relays packets as they arrive, only
//! rewriting payload type, sequence, timestamp and SSRC (RFC 3550 §7: the
//! switch is a translator that keeps each far end seeing one continuous
//! stream across re-INVITEs and transfers). Legs of different codecs are
//! transcoded packet by packet (decode, resample, encode). Conferences,
//! recordings and prompts run on the tick, fed through jitter buffers.

use crate::audio::Rate;
use crate::codec::{self, Codec, CodecError, Decoder, Encoder};
use crate::dtmf::{Digit, EventReceiver, EventSender, ToneDetector};
use crate::jitter::{JitterBuffer, JitterConfig, Pop};
use crate::mixer::Mixer;
use crate::record::{Layout, Recorder, RecordingInfo};
use crate::resample::Resampler;
use crate::rtcp::RtcpState;
use crate::rtp::{self, RxStats, StreamMap};
use crate::sdp::Negotiated;
use crate::tone::{ToneGen, ToneKind, ToneRegion};
use crate::vad::{SpeechDetector, VadConfig, VadEvent};
use crate::wav::{Player, Prompt};
use std::io::{Seek, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime};

/// Identifies a leg, unique in the process (the driver hands them out).
pub type LegId = u64;

/// How often RTCP reports go out (RFC 3550 §6.2 suggests 5 s minimum).
const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// A recording's output: any seekable writer (a file in practice).
pub trait Sink: Write + Seek {}
impl<T: Write + Seek> Sink for T {}

/// Packets to send, collected in one buffer (no allocation per packet once warm).
#[derive(Default)]
pub struct Transmits {
    buf: Vec<u8>,
    items: Vec<Transmit>,
}

/// One packet in [`Transmits`].
#[derive(Clone, Debug)]
pub struct Transmit {
    /// The leg whose socket sends it.
    pub leg: LegId,
    /// Send on the leg's RTCP socket (else its RTP socket).
    pub rtcp: bool,
    /// Destination.
    pub dest: SocketAddr,
    range: Range<usize>,
}

impl Transmits {
    /// The packets collected, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Transmit, &[u8])> {
        self.items.iter().map(|t| (t, &self.buf[t.range.clone()]))
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No packets.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Forgets the packets (keeps the memory).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }

    fn push(&mut self, leg: LegId, rtcp: bool, dest: SocketAddr, f: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        f(&mut self.buf);
        let range = start..self.buf.len();
        self.items.push(Transmit {
            leg,
            rtcp,
            dest,
            range,
        });
    }
}

/// What the session tells its owner.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A DTMF digit arrived on a leg (RFC 4733 or in-band).
    Digit {
        /// The leg.
        leg: LegId,
        /// The digit.
        digit: Digit,
    },
    /// No RTP from a leg that should be sending for the configured time.
    MediaTimeout {
        /// The silent leg.
        leg: LegId,
    },
    /// Speech started or ended on a leg with speech detection on.
    Speech {
        /// The leg.
        leg: LegId,
        /// What happened.
        event: VadEvent,
    },
    /// A prompt played to a leg ended (not when stopped or replaced).
    PlaybackDone {
        /// The leg.
        leg: LegId,
        /// The tag it was played with.
        tag: u64,
    },
    /// A leg's decoded audio, at its codec's rate, while tapped
    /// ([`Session::tap`]).
    Audio {
        /// The leg.
        leg: LegId,
        /// The rate of `pcm`.
        rate: Rate,
        /// One packet's audio.
        pcm: Vec<i16>,
    },
    /// The first packet from a leg came from another address than its SDP
    /// said (NAT): the leg now sends there (symmetric RTP).
    Latched {
        /// The leg.
        leg: LegId,
        /// The address latched onto.
        addr: SocketAddr,
    },
}

/// How the legs are connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing is relayed (legs may still get prompts).
    Idle,
    /// Two legs hear each other.
    Bridge(LegId, LegId),
    /// Every leg hears all the others (through the mixer).
    Conference,
    /// Supervision: the other legs hear each other; `supervisor` hears
    /// everyone and is heard only by `heard_by` (None: listen; the agent's
    /// leg: whisper). Barge-in is [`Mode::Conference`].
    Supervise {
        /// The supervisor's leg.
        supervisor: LegId,
        /// Who hears the supervisor.
        heard_by: Option<LegId>,
    },
}

impl Mode {
    /// Audio goes through the mixer (not a relay).
    pub fn mixes(&self) -> bool {
        matches!(self, Mode::Conference | Mode::Supervise { .. })
    }
}

/// Per-session settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// A leg expected to send that stays silent this long raises [`Event::MediaTimeout`].
    pub media_timeout: Option<Duration>,
    /// RTCP SDES CNAME.
    pub cname: String,
    /// Jitter buffers of the mixing/recording path.
    pub jitter: JitterConfig,
    /// Call-progress tone style.
    pub tones: ToneRegion,
    /// Opus encoder complexity (0..=10): CPU per transcoded call against quality.
    pub opus_complexity: u8,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            media_timeout: Some(Duration::from_secs(60)),
            cname: "switchboard".into(),
            jitter: JitterConfig::default(),
            tones: ToneRegion::default(),
            opus_complexity: codec::OPUS_DEFAULT_COMPLEXITY,
        }
    }
}

/// Per-leg options.
#[derive(Clone, Copy, Debug, Default)]
pub struct LegOptions {
    /// Listen for in-band DTMF tones (trunks that do not send RFC 4733).
    pub inband_dtmf: bool,
}

/// Counters of one leg.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LegStats {
    /// RTP packets received and accepted.
    pub rx_packets: u64,
    /// RTP packets sent.
    pub tx_packets: u64,
    /// Packets dropped as malformed (RTP or RTCP).
    pub malformed: u64,
    /// RTP packets dropped: unknown payload type, wrong source, leg not ready.
    pub dropped: u64,
    /// Packets lost per RFC 3550 A.3.
    pub lost: i64,
    /// Interarrival jitter in ms (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Round-trip time from RTCP, if known.
    pub rtt_ms: Option<f64>,
    /// RTCP packets received.
    pub rtcp_rx: u64,
}

/// Something played to a leg instead of what it would hear.
enum Source {
    /// The prompt and its tag.
    Prompt(Player, u64),
    Tone(ToneGen),
}

struct Leg {
    id: LegId,
    opts: LegOptions,
    neg: Option<Negotiated>,
    /// Where RTP goes (SDP, then the latched source).
    dest: Option<SocketAddr>,
    dest_rtcp: Option<SocketAddr>,
    latched: bool,
    out: StreamMap,
    rx: RxStats,
    rtcp: RtcpState,
    next_rtcp: Instant,
    peer_ssrc: Option<u32>,
    dec: Option<Box<dyn Decoder>>,
    enc: Option<Box<dyn Encoder>>,
    opus_complexity: u8,
    /// The leg's PCM converted to the session's core rate and back.
    to_core: Resampler,
    from_core: Resampler,
    /// Core-rate PCM waiting to be encoded for this leg (transcoded bridge).
    pending: Vec<i16>,
    dtmf_in: EventReceiver,
    dtmf_out: EventSender,
    tones: Option<ToneDetector>,
    /// Speech detection and the PCM it has not seen yet (it takes 20 ms frames).
    vad: Option<(SpeechDetector, Vec<i16>)>,
    /// Report the leg's decoded audio ([`Event::Audio`]): speech recognition.
    tap: bool,
    /// Decoded frames (core rate) for the tick: conference and recording.
    jb: JitterBuffer<Vec<i16>>,
    /// Core-rate audio not yet a whole 20 ms frame, its timestamp, and the
    /// timestamp the next packet should have to continue it.
    jb_pend: Vec<i16>,
    jb_pend_ts: u32,
    jb_next_ts: u32,
    source: Option<Source>,
    last_rx: Instant,
    timed_out: bool,
    /// Timestamp and time of the last packet sent, for the SR's RTP time.
    last_sent: Option<(u32, Instant)>,
    stats: LegStats,
}

impl Leg {
    /// The leg's decoder, built on first use.
    fn decoder(&mut self) -> Option<&mut Box<dyn Decoder>> {
        if self.dec.is_none() {
            self.dec = codec::decoder(self.codec()?).ok();
        }
        self.dec.as_mut()
    }

    /// The leg's encoder, built on first use.
    fn encoder(&mut self) -> Option<&mut Box<dyn Encoder>> {
        if self.enc.is_none() {
            self.enc = match self.codec()? {
                Codec::Opus => {
                    codec::opus_encoder(self.opus_complexity, codec::OPUS_DEFAULT_BITRATE_BPS).ok()
                }
                c => codec::encoder(c).ok(),
            };
        }
        self.enc.as_mut()
    }

    /// Relays `pkt` (described by `hdr`) to this leg as payload type `pt`,
    /// on our SSRC with sequence and timestamp mapped (RFC 3550 §7 translator).
    fn relay(
        &mut self,
        pkt: &[u8],
        hdr: &rtp::RtpHeader,
        pt: u8,
        dest: SocketAddr,
        now: Instant,
        out: &mut Transmits,
    ) {
        let clock = self.codec().map_or(8000, |c| c.clock_rate());
        let (seq, ts, m) = self.out.map(hdr.ssrc, hdr.seq, hdr.timestamp, now, clock);
        let ssrc = self.out.ssrc();
        self.sent(ts, now, hdr.payload_len);
        out.push(self.id, false, dest, |buf| {
            let start = buf.len();
            buf.extend_from_slice(pkt);
            rtp::rewrite(&mut buf[start..], pt, seq, ts, ssrc, m);
        });
    }

    /// Books a packet sent to this leg.
    fn sent(&mut self, ts: u32, now: Instant, payload_len: usize) {
        self.stats.tx_packets += 1;
        self.out.add_octets(payload_len);
        self.last_sent = Some((ts, now));
    }

    /// Our stream's RTP timestamp at `now` (RFC 3550 §6.4.1: the SR's RTP time).
    fn rtp_time(&self, now: Instant) -> u32 {
        let clock = self.codec().map_or(8000, |c| c.clock_rate());
        self.last_sent.map_or(0, |(ts, at)| {
            let d = now.saturating_duration_since(at);
            ts.wrapping_add((d.as_secs_f64() * clock as f64) as u32)
        })
    }

    fn rate(&self) -> Rate {
        self.neg.as_ref().map_or(Rate::Nb8k, |n| n.codec.pcm_rate())
    }

    fn codec(&self) -> Option<Codec> {
        self.neg.as_ref().map(|n| n.codec)
    }

    /// We may send to this leg (negotiated, not on hold from its side).
    fn sends(&self) -> bool {
        self.dest.is_some() && self.neg.as_ref().is_some_and(|n| n.direction.sends())
    }

    /// This leg should be sending to us.
    fn receives(&self) -> bool {
        self.neg.as_ref().is_some_and(|n| n.direction.receives())
    }
}

struct Recording {
    rec: Recorder<Box<dyn Sink>>,
    rate: Rate,
    /// Caller and callee for a stereo file (else the conference mix).
    sides: Option<(LegId, LegId)>,
}

/// The media of one call or conference.
pub struct Session {
    cfg: SessionConfig,
    legs: Vec<Leg>,
    mode: Mode,
    core: Rate,
    events: std::collections::VecDeque<Event>,
    recording: Option<Recording>,
    mixer: Mixer,
    scratch: Vec<i16>,
    scratch2: Vec<i16>,
    payload: Vec<u8>,
    frames: Vec<Vec<i16>>,
    mixed: Vec<Vec<i16>>,
    ssrc_seed: u32,
    /// Malformed packets not yet taken by [`Session::take_malformed`].
    malformed: u64,
}

fn two_mut<T>(v: &mut [T], i: usize, j: usize) -> (&mut T, &mut T) {
    assert!(i != j);
    if i < j {
        let (a, b) = v.split_at_mut(j);
        (&mut a[i], &mut b[0])
    } else {
        let (a, b) = v.split_at_mut(i);
        (&mut b[0], &mut a[j])
    }
}

impl Session {
    /// An empty session; `ssrc_seed` makes this session's SSRCs distinct (pass a random number).
    pub fn new(cfg: SessionConfig, ssrc_seed: u32) -> Session {
        Session {
            cfg,
            legs: Vec::new(),
            mode: Mode::Idle,
            core: Rate::Nb8k,
            events: Default::default(),
            recording: None,
            mixer: Mixer::new(Rate::Nb8k.frame_len()),
            scratch: Vec::new(),
            scratch2: Vec::new(),
            payload: Vec::new(),
            frames: Vec::new(),
            mixed: Vec::new(),
            ssrc_seed,
            malformed: 0,
        }
    }

    /// Malformed packets (RTP, RTCP, undecodable payloads) since the last call.
    pub fn take_malformed(&mut self) -> u64 {
        std::mem::take(&mut self.malformed)
    }

    fn index(&self, id: LegId) -> Option<usize> {
        self.legs.iter().position(|l| l.id == id)
    }

    /// Adds a leg (not sending until [`Session::configure`] gives it a peer).
    pub fn add_leg(&mut self, id: LegId, opts: LegOptions, now: Instant) {
        if self.index(id).is_some() {
            return;
        }
        let ssrc = self
            .ssrc_seed
            .wrapping_mul(2_654_435_761)
            .wrapping_add(id as u32 ^ (id >> 32) as u32)
            .wrapping_mul(0x9E37_79B9)
            | 1;
        let first_seq = (ssrc >> 7) as u16;
        let first_ts = ssrc.rotate_left(13);
        self.legs.push(Leg {
            id,
            opts,
            neg: None,
            dest: None,
            dest_rtcp: None,
            latched: false,
            out: StreamMap::new(ssrc, first_seq, first_ts),
            rx: RxStats::new(8000),
            rtcp: RtcpState::new(ssrc, self.cfg.cname.clone()),
            next_rtcp: now + RTCP_INTERVAL,
            peer_ssrc: None,
            dec: None,
            enc: None,
            opus_complexity: self.cfg.opus_complexity,
            to_core: Resampler::new(Rate::Nb8k, self.core),
            from_core: Resampler::new(self.core, Rate::Nb8k),
            pending: Vec::new(),
            dtmf_in: EventReceiver::new(8000),
            dtmf_out: EventSender::new(8000),
            tones: opts.inband_dtmf.then(|| ToneDetector::new(Rate::Nb8k)),
            vad: None,
            tap: false,
            jb: JitterBuffer::new(8000, self.cfg.jitter),
            jb_pend: Vec::new(),
            jb_pend_ts: 0,
            jb_next_ts: 0,
            source: None,
            last_rx: now,
            timed_out: false,
            last_sent: None,
            stats: LegStats::default(),
        });
    }

    /// Removes a leg; a bridge or recording that used it stops.
    pub fn remove_leg(&mut self, id: LegId) {
        if let Some(i) = self.index(id) {
            self.legs.swap_remove(i);
        }
        if matches!(self.mode, Mode::Bridge(a, b) if a == id || b == id) {
            self.mode = Mode::Idle;
        }
        self.update_core();
    }

    /// The legs' ids.
    pub fn legs(&self) -> impl Iterator<Item = LegId> + '_ {
        self.legs.iter().map(|l| l.id)
    }

    /// Applies an offer/answer result to a leg: its codec, payload types,
    /// where to send, direction (hold). Codecs are rebuilt only when they change.
    pub fn configure(
        &mut self,
        id: LegId,
        neg: Negotiated,
        now: Instant,
    ) -> Result<(), CodecError> {
        let Some(i) = self.index(id) else {
            return Ok(());
        };
        let leg = &mut self.legs[i];
        let same_codec = leg.codec() == Some(neg.codec);
        if !same_codec {
            // Built on first use: a relayed leg never needs them (an Opus
            // encoder and decoder are ~40 KiB).
            leg.dec = None;
            leg.enc = None;
            leg.opus_complexity = self.cfg.opus_complexity;
            // Fail here, not on the first packet, if the codec cannot be built.
            codec::decoder(neg.codec)?;
            leg.rx = RxStats::new(neg.codec.clock_rate());
            leg.jb = JitterBuffer::new(neg.codec.clock_rate(), self.cfg.jitter);
            let clock = neg.codec.clock_rate();
            leg.dtmf_in = EventReceiver::new(clock);
            leg.dtmf_out = EventSender::new(clock);
            if leg.opts.inband_dtmf {
                leg.tones = Some(ToneDetector::new(neg.codec.pcm_rate()));
            }
            if leg.vad.is_some() {
                leg.vad = Some((
                    SpeechDetector::new(neg.codec.pcm_rate(), VadConfig::default()),
                    Vec::new(),
                ));
            }
            leg.pending.clear();
        }
        // A new remote address (re-INVITE, transfer) is taken as given and
        // latched afresh.
        let moved = leg.neg.as_ref().is_none_or(|n| n.remote != neg.remote);
        if moved {
            leg.dest = Some(neg.remote);
            leg.dest_rtcp = Some(if neg.rtcp_mux {
                neg.remote
            } else {
                neg.remote_rtcp
            });
            leg.latched = false;
        }
        if !leg.receives() || moved {
            leg.last_rx = now;
            leg.timed_out = false;
        }
        leg.neg = Some(neg);
        self.update_core();
        Ok(())
    }

    /// Connects legs.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        for l in &mut self.legs {
            l.pending.clear();
            l.jb.reset();
            l.jb_pend.clear();
        }
        self.update_core();
    }

    /// The current mode.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The core rate: 16 kHz as soon as one leg is wideband.
    fn update_core(&mut self) {
        let core = if self.legs.iter().any(|l| l.rate() == Rate::Wb16k) {
            Rate::Wb16k
        } else {
            Rate::Nb8k
        };
        // A recording keeps the rate it started with.
        let core = match &self.recording {
            Some(r) => r.rate,
            None => core,
        };
        for l in &mut self.legs {
            let r = l.rate();
            if l.to_core.from() != r || l.to_core.to() != core {
                l.to_core = Resampler::new(r, core);
                l.from_core = Resampler::new(core, r);
                l.pending.clear();
            }
        }
        if core != self.core {
            self.core = core;
            self.mixer = Mixer::new(core.frame_len());
        }
    }

    /// Starts recording into `sink`: stereo with `caller` left and `callee`
    /// right (with more legs, everyone but the caller right), or mono
    /// (mixed). Without sides, a conference is recorded mixed.
    pub fn start_recording(
        &mut self,
        sink: Box<dyn Sink>,
        layout: Layout,
        sides: Option<(LegId, LegId)>,
    ) -> Result<(), crate::record::RecordError> {
        self.update_core();
        let rec = Recorder::new(sink, self.core, layout)?;
        self.recording = Some(Recording {
            rec,
            rate: self.core,
            sides,
        });
        for l in &mut self.legs {
            l.jb.reset();
            l.jb_pend.clear();
        }
        Ok(())
    }

    /// Which legs a stereo recording puts left and right (after a
    /// transfer replaced the callee).
    pub fn set_recording_sides(&mut self, sides: Option<(LegId, LegId)>) {
        if let Some(r) = &mut self.recording {
            r.sides = sides;
        }
    }

    /// Pauses (writes silence) or resumes the recording.
    pub fn pause_recording(&mut self, pause: bool) {
        if let Some(r) = &mut self.recording {
            if pause {
                r.rec.pause();
            } else {
                r.rec.resume();
            }
        }
    }

    /// Stops the recording and finishes its file.
    pub fn stop_recording(&mut self) -> Option<Result<RecordingInfo, crate::record::RecordError>> {
        let r = self.recording.take()?;
        let info = r.rec.finalize();
        self.update_core();
        Some(info)
    }

    /// Plays a prompt to a leg (it hears nothing else meanwhile); `tag`
    /// comes back in [`Event::PlaybackDone`]. A prompt at another rate than
    /// the leg's is converted.
    pub fn play(&mut self, id: LegId, prompt: Prompt, tag: u64) {
        if let Some(i) = self.index(id) {
            let rate = self.legs[i].rate();
            let prompt = if prompt.rate == rate {
                prompt
            } else {
                // Rendered for another rate (the leg's codec changed): convert.
                let mut r = Resampler::new(prompt.rate, rate);
                let mut out = Vec::with_capacity(prompt.samples.len() * 2);
                r.process(&prompt.samples, &mut out);
                Prompt::new(rate, out)
            };
            self.legs[i].source = Some(Source::Prompt(Player::new(prompt), tag));
        }
    }

    /// Plays a call-progress tone to a leg until stopped.
    pub fn play_tone(&mut self, id: LegId, kind: ToneKind) {
        if let Some(i) = self.index(id) {
            let rate = self.legs[i].rate();
            self.legs[i].source = Some(Source::Tone(ToneGen::new(kind, self.cfg.tones, rate)));
        }
    }

    /// Stops a prompt or tone.
    pub fn stop_playing(&mut self, id: LegId) {
        if let Some(i) = self.index(id) {
            self.legs[i].source = None;
        }
    }

    /// Reports a leg's decoded audio as [`Event::Audio`] (on) or stops.
    pub fn tap(&mut self, id: LegId, on: bool) {
        if let Some(i) = self.index(id) {
            self.legs[i].tap = on;
        }
    }

    /// Turns speech detection (start/end events) on or off for a leg.
    pub fn detect_speech(&mut self, id: LegId, on: bool) {
        if let Some(i) = self.index(id) {
            let rate = self.legs[i].rate();
            self.legs[i].vad =
                on.then(|| (SpeechDetector::new(rate, VadConfig::default()), Vec::new()));
        }
    }

    /// Sends DTMF digits to a leg as RFC 4733 events.
    pub fn send_digits(&mut self, id: LegId, digits: &str, duration_ms: u32) {
        if let Some(i) = self.index(id) {
            for d in digits.chars() {
                let _ = self.legs[i].dtmf_out.push(d, duration_ms);
            }
        }
    }

    /// Counters of a leg.
    pub fn stats(&self, id: LegId) -> Option<LegStats> {
        let l = &self.legs[self.index(id)?];
        let mut s = l.stats;
        s.lost = l.rx.lost();
        s.jitter_ms = l.rx.jitter_ms();
        s.rtt_ms = l.rtcp.rtt_ms();
        Some(s)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True when the 20 ms tick has work (prompts, DTMF to send, conference,
    /// recording); otherwise the driver may sleep until [`Session::poll_timeout`].
    pub fn needs_tick(&self) -> bool {
        self.recording.is_some()
            || self.mode.mixes()
            || self
                .legs
                .iter()
                .any(|l| l.source.is_some() || !l.dtmf_out.is_idle())
    }

    /// When the session next needs [`Session::on_tick`] if it needs no 20 ms tick.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        for l in &self.legs {
            if l.neg.is_some() {
                t = Some(t.map_or(l.next_rtcp, |t| t.min(l.next_rtcp)));
            }
            if let (Some(to), true, false) = (self.cfg.media_timeout, l.receives(), l.timed_out) {
                let at = l.last_rx + to;
                t = Some(t.map_or(at, |t| t.min(at)));
            }
        }
        t
    }

    /// An RTP (or, with rtcp-mux, RTCP) packet arrived on leg `id`'s RTP socket.
    pub fn on_rtp(
        &mut self,
        id: LegId,
        from: SocketAddr,
        pkt: &[u8],
        now: Instant,
        out: &mut Transmits,
    ) {
        let Some(i) = self.index(id) else { return };
        if rtp::is_rtcp(pkt) {
            return self.on_rtcp(id, from, pkt, now);
        }
        let hdr = match rtp::parse(pkt) {
            Ok(h) => h,
            Err(_) => {
                self.legs[i].stats.malformed += 1;
                self.malformed += 1;
                return;
            }
        };
        let leg = &mut self.legs[i];
        let Some(neg) = leg.neg.clone() else {
            leg.stats.dropped += 1;
            return;
        };
        // Symmetric RTP (RFC 4961 style latching): the first packet fixes
        // where we send; packets from elsewhere are dropped afterwards.
        if !leg.latched {
            leg.latched = true;
            if leg.dest != Some(from) {
                leg.dest = Some(from);
                if !neg.rtcp_mux {
                    leg.dest_rtcp = Some(SocketAddr::new(from.ip(), from.port().wrapping_add(1)));
                } else {
                    leg.dest_rtcp = Some(from);
                }
                self.events.push_back(Event::Latched {
                    leg: id,
                    addr: from,
                });
            }
        } else if leg.dest != Some(from) {
            leg.stats.dropped += 1;
            return;
        }
        let is_dtmf = neg.dtmf_pt == Some(hdr.payload_type);
        if !is_dtmf && hdr.payload_type != neg.pt {
            leg.stats.dropped += 1;
            return;
        }
        leg.stats.rx_packets += 1;
        leg.last_rx = now;
        leg.timed_out = false;
        if leg.peer_ssrc != Some(hdr.ssrc) {
            leg.peer_ssrc = Some(hdr.ssrc);
            leg.rx = RxStats::new(neg.codec.clock_rate());
            leg.jb.reset();
        }
        leg.rx.on_packet(hdr.seq, hdr.timestamp, now);
        let payload = hdr.payload(pkt);
        let mut digit_now = None;
        if is_dtmf {
            digit_now = leg.dtmf_in.on_packet(hdr.timestamp, hdr.marker, payload);
            if let Some(digit) = digit_now {
                self.events.push_back(Event::Digit { leg: id, digit });
            }
        }
        let needs_pcm = !is_dtmf
            && (leg.tones.is_some()
                || leg.tap
                || leg.vad.is_some()
                || self.recording.is_some()
                || self.mode.mixes());
        if needs_pcm {
            self.decode_to_jb(i, hdr.seq, hdr.timestamp, payload, now);
        }
        // The bridge.
        let Mode::Bridge(a, b) = self.mode else {
            return;
        };
        let other = if a == id {
            b
        } else if b == id {
            a
        } else {
            return;
        };
        let Some(j) = self.index(other) else { return };
        let (_, dst) = two_mut(&mut self.legs, i, j);
        if !dst.sends() || dst.source.is_some() {
            return;
        }
        let Some(dneg) = dst.neg.clone() else { return };
        let dest = dst.dest.unwrap_or(dneg.remote);
        if is_dtmf {
            // Same clock: relay the event; otherwise it is regenerated at its end.
            if let Some(pt) = dneg.dtmf_pt {
                if dneg.codec.clock_rate() == neg.codec.clock_rate() {
                    dst.relay(pkt, &hdr, pt, dest, now, out);
                } else if let Some(digit) = digit_now {
                    let _ = dst.dtmf_out.push(digit.digit, digit.duration_ms.max(40));
                }
            }
            return;
        }
        if dneg.codec == neg.codec {
            dst.relay(pkt, &hdr, dneg.pt, dest, now, out);
            return;
        }
        // Transcode: decode, to the core rate, then frame by frame to the
        // other leg's rate and codec.
        self.scratch.clear();
        let (src, dst) = two_mut(&mut self.legs, i, j);
        if let Some(dec) = src.decoder() {
            if dec.decode(payload, &mut self.scratch).is_err() {
                src.stats.malformed += 1;
                self.malformed += 1;
                return;
            }
        }
        src.to_core.process(&self.scratch, &mut dst.pending);
        Self::flush_pending(
            dst,
            self.core,
            &mut self.scratch2,
            &mut self.payload,
            now,
            out,
        );
    }

    /// Encodes whole frames of a leg's pending core-rate PCM and sends them.
    fn flush_pending(
        dst: &mut Leg,
        core: Rate,
        pcm: &mut Vec<i16>,
        payload: &mut Vec<u8>,
        now: Instant,
        out: &mut Transmits,
    ) {
        let n = core.frame_len();
        let Some(neg) = dst.neg.clone() else { return };
        let Some(dest) = dst.dest else { return };
        let mut off = 0;
        while dst.pending.len() - off >= n {
            pcm.clear();
            dst.from_core.process(&dst.pending[off..off + n], pcm);
            off += n;
            payload.clear();
            let Some(enc) = dst.encoder() else { break };
            if enc.encode(pcm, payload).is_err() {
                continue;
            }
            let (seq, ts) = dst
                .out
                .next_own(neg.codec.ts_per_frame(), now, neg.codec.clock_rate());
            let ssrc = dst.out.ssrc();
            dst.sent(ts, now, payload.len());
            out.push(dst.id, false, dest, |buf| {
                rtp::write(buf, false, neg.pt, seq, ts, ssrc, payload)
            });
        }
        dst.pending.drain(..off);
    }

    /// Decodes one packet of leg `i` into its jitter buffer (core rate) and
    /// runs the in-band DTMF detector on it.
    fn decode_to_jb(&mut self, i: usize, seq: u16, ts: u32, payload: &[u8], now: Instant) {
        let leg = &mut self.legs[i];
        let Some(dec) = leg.decoder() else { return };
        self.scratch.clear();
        if dec.decode(payload, &mut self.scratch).is_err() {
            leg.stats.malformed += 1;
            self.malformed += 1;
            return;
        }
        if leg.tap {
            self.events.push_back(Event::Audio {
                leg: leg.id,
                rate: leg.rate(),
                pcm: self.scratch.clone(),
            });
        }
        if let Some(det) = leg.tones.as_mut() {
            if let Some(digit) = det.process(&self.scratch) {
                self.events.push_back(Event::Digit { leg: leg.id, digit });
            }
        }
        if let Some((vad, pending)) = leg.vad.as_mut() {
            pending.extend_from_slice(&self.scratch);
            let n = leg
                .neg
                .as_ref()
                .map_or(160, |n| n.codec.pcm_rate().frame_len());
            let mut off = 0;
            while pending.len() - off >= n {
                if let Some(event) = vad.process(&pending[off..off + n]) {
                    self.events.push_back(Event::Speech { leg: leg.id, event });
                }
                off += n;
            }
            pending.drain(..off);
        }
        if self.recording.is_some() || self.mode.mixes() {
            // The tick takes 20 ms frames; packets may carry 10, 30, 60 ms.
            // Cut the audio into 20 ms frames numbered by timestamp (so
            // reordered packets still sort) and keep the rest for the next packet.
            let Some(codec) = leg.codec() else { return };
            let step = codec.ts_per_frame();
            let n = self.core.frame_len();
            if leg.jb_pend.is_empty() || leg.jb_next_ts != ts {
                leg.jb_pend.clear();
                leg.jb_pend_ts = ts;
            }
            let units = self.scratch.len() as u64 * codec.clock_rate() as u64
                / codec.pcm_rate().hz() as u64;
            leg.jb_next_ts = ts.wrapping_add(units as u32);
            leg.to_core.process(&self.scratch, &mut leg.jb_pend);
            let mut off = 0;
            while leg.jb_pend.len() - off >= n {
                let frame = leg.jb_pend[off..off + n].to_vec();
                let fts = leg.jb_pend_ts;
                leg.jb.push((fts / step) as u16, fts, now, frame);
                leg.jb_pend_ts = fts.wrapping_add(step);
                off += n;
            }
            leg.jb_pend.drain(..off);
        }
        let _ = seq;
    }

    /// An RTCP packet arrived on leg `id`'s RTCP socket.
    pub fn on_rtcp(&mut self, id: LegId, _from: SocketAddr, pkt: &[u8], now: Instant) {
        let Some(i) = self.index(id) else { return };
        let leg = &mut self.legs[i];
        match crate::rtcp::parse(pkt) {
            Ok(r) => {
                leg.stats.rtcp_rx += 1;
                leg.rtcp.on_received(&r, now);
            }
            Err(_) => {
                leg.stats.malformed += 1;
                self.malformed += 1;
            }
        }
    }

    /// The clock: call every 20 ms while [`Session::needs_tick`], else at
    /// [`Session::poll_timeout`].
    pub fn on_tick(&mut self, now: Instant, wall: SystemTime, out: &mut Transmits) {
        self.check_timeouts(now);
        self.send_rtcp(now, wall, out);
        self.send_dtmf(now, out);
        let mixing = self.mode.mixes() || self.recording.is_some();
        if mixing {
            self.mix_tick(now, out);
        }
        self.play_tick(now, out);
    }

    fn check_timeouts(&mut self, now: Instant) {
        let Some(to) = self.cfg.media_timeout else {
            return;
        };
        for l in &mut self.legs {
            if l.receives() && !l.timed_out && now.duration_since(l.last_rx) >= to {
                l.timed_out = true;
                self.events.push_back(Event::MediaTimeout { leg: l.id });
            }
        }
    }

    fn send_rtcp(&mut self, now: Instant, wall: SystemTime, out: &mut Transmits) {
        let mut buf = std::mem::take(&mut self.payload);
        for l in &mut self.legs {
            if l.neg.is_none() || now < l.next_rtcp {
                continue;
            }
            l.next_rtcp = now + RTCP_INTERVAL;
            let Some(dest) = l.dest_rtcp else { continue };
            let ts_now = l.rtp_time(now);
            buf.clear();
            let rx = l.peer_ssrc.map(|s| (&mut l.rx, s));
            l.rtcp.build_report(
                now,
                wall,
                l.out.packets() as u32,
                l.out.octets() as u32,
                ts_now,
                rx,
                &mut buf,
            );
            let mux = l.neg.as_ref().is_some_and(|n| n.rtcp_mux);
            out.push(l.id, !mux, dest, |b| b.extend_from_slice(&buf));
        }
        self.payload = buf;
    }

    fn send_dtmf(&mut self, now: Instant, out: &mut Transmits) {
        for l in &mut self.legs {
            if l.dtmf_out.is_idle() {
                continue;
            }
            let (Some(neg), Some(dest)) = (l.neg.clone(), l.dest) else {
                continue;
            };
            let Some(pt) = neg.dtmf_pt else {
                // No telephone-event on this leg: nothing we can send.
                l.dtmf_out = EventSender::new(neg.codec.clock_rate());
                continue;
            };
            let Some((p, new_event)) = l.dtmf_out.next_packet() else {
                continue;
            };
            // Every packet of an event carries its start timestamp (RFC 4733 §2.5.1.2).
            let advance = if new_event {
                neg.codec.ts_per_frame()
            } else {
                0
            };
            let (seq, ts) = l.out.next_own(advance, now, neg.codec.clock_rate());
            let ssrc = l.out.ssrc();
            l.sent(ts, now, p.payload.len());
            out.push(l.id, false, dest, |buf| {
                rtp::write(buf, p.marker, pt, seq, ts, ssrc, &p.payload)
            });
        }
    }

    /// Conference and recording: one frame per leg from its jitter buffer,
    /// mixed (each leg hears the others), recorded, encoded and sent.
    fn mix_tick(&mut self, now: Instant, out: &mut Transmits) {
        let n = self.core.frame_len();
        let count = self.legs.len();
        self.frames.resize_with(count, Vec::new);
        let mut present = vec![false; count];
        for (k, l) in self.legs.iter_mut().enumerate() {
            let f = &mut self.frames[k];
            f.clear();
            match l.jb.pop(now) {
                Pop::Frame(frame) => {
                    f.extend_from_slice(&frame);
                    present[k] = true;
                }
                Pop::Missing => {
                    if let Some(dec) = l.decoder() {
                        self.scratch.clear();
                        dec.conceal(&mut self.scratch);
                        l.to_core.process(&self.scratch, f);
                        present[k] = true;
                    }
                }
                Pop::Empty => {}
            }
            f.resize(n, 0);
        }
        if let Some(r) = &mut self.recording {
            let side = |id: LegId| self.legs.iter().position(|l| l.id == id);
            let res = match r.sides.and_then(|(a, b)| Some((side(a)?, side(b)?))) {
                Some((a, b)) if count == 2 => r.rec.write(&self.frames[a], &self.frames[b]),
                // More parties than the two sides (a three-way call): the
                // right channel carries everyone but the caller.
                Some((a, _)) => {
                    let inputs: Vec<Option<&[i16]>> = self
                        .frames
                        .iter()
                        .enumerate()
                        .map(|(k, f)| (k != a).then_some(f.as_slice()))
                        .collect();
                    self.scratch2.clear();
                    self.mixer.mix_all(&inputs, &mut self.scratch2);
                    r.rec.write(&self.frames[a], &self.scratch2)
                }
                None => {
                    let inputs: Vec<Option<&[i16]>> =
                        self.frames.iter().map(|f| Some(f.as_slice())).collect();
                    self.scratch2.clear();
                    self.mixer.mix_all(&inputs, &mut self.scratch2);
                    r.rec.write(&self.scratch2, &[])
                }
            };
            if let Err(e) = res {
                // A full disk must not end the call: stop recording.
                let _ = e;
                self.recording = None;
            }
        }
        if !self.mode.mixes() {
            return;
        }
        let inputs: Vec<Option<&[i16]>> = self
            .frames
            .iter()
            .zip(&present)
            .map(|(f, p)| p.then_some(f.as_slice()))
            .collect();
        self.mixed.resize_with(count, Vec::new);
        match self.mode.clone() {
            Mode::Supervise {
                supervisor,
                heard_by,
            } => {
                let pos = |id: LegId| self.legs.iter().position(|l| l.id == id);
                let (sup, to) = (pos(supervisor), heard_by.and_then(pos));
                self.mixer
                    .mix_with(&inputs, &mut self.mixed, |listener, talker| {
                        listener != talker && (Some(talker) != sup || Some(listener) == to)
                    });
            }
            _ => self.mixer.mix(&inputs, &mut self.mixed),
        }
        for (k, l) in self.legs.iter_mut().enumerate() {
            if l.source.is_some() || !l.sends() {
                continue;
            }
            l.pending.extend_from_slice(&self.mixed[k]);
            Self::flush_pending(
                l,
                self.core,
                &mut self.scratch2,
                &mut self.payload,
                now,
                out,
            );
        }
    }

    /// Prompts and tones: one frame per playing leg.
    fn play_tick(&mut self, now: Instant, out: &mut Transmits) {
        for l in &mut self.legs {
            let Some(src) = l.source.as_mut() else {
                continue;
            };
            self.scratch.clear();
            let more = match src {
                Source::Prompt(p, _) => p.next_frame(&mut self.scratch),
                Source::Tone(t) => {
                    t.next_frame(&mut self.scratch);
                    true
                }
            };
            if !more {
                let tag = match l.source.take() {
                    Some(Source::Prompt(_, tag)) => tag,
                    _ => 0,
                };
                self.events
                    .push_back(Event::PlaybackDone { leg: l.id, tag });
                continue;
            }
            if !l.sends() {
                continue;
            }
            let (Some(neg), Some(dest)) = (l.neg.clone(), l.dest) else {
                continue;
            };
            let Some(enc) = l.encoder() else { continue };
            self.payload.clear();
            if enc.encode(&self.scratch, &mut self.payload).is_err() {
                continue;
            }
            let (seq, ts) = l
                .out
                .next_own(neg.codec.ts_per_frame(), now, neg.codec.clock_rate());
            let ssrc = l.out.ssrc();
            l.sent(ts, now, self.payload.len());
            let payload = &self.payload;
            out.push(l.id, false, dest, |buf| {
                rtp::write(buf, false, neg.pt, seq, ts, ssrc, payload)
            });
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
