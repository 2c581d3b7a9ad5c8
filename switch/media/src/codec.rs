//! Audio codecs: G.711 µ-law/A-law, G.722 and Opus, behind one encoder/decoder
//! interface working on 20 ms frames of the codec's internal PCM rate.

use crate::audio::Rate;

/// A codec the media path can decode and encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (RFC 3551 §4.5.14).
    Pcmu,
    /// G.711 A-law (RFC 3551 §4.5.14).
    Pcma,
    /// G.722, 16 kHz audio on an 8 kHz RTP clock (RFC 3551 §4.5.2).
    G722,
    /// Opus (RFC 7587), run mono at 16 kHz inside the switch.
    Opus,
}

impl Codec {
    /// All codecs, in the switch's default preference order.
    pub const ALL: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma];

    /// Encoding name as written in `a=rtpmap`.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// RTP clock rate (what `a=rtpmap` states and timestamps count).
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8_000,
            Codec::Opus => 48_000,
        }
    }

    /// Encoding parameters of `a=rtpmap` (Opus is always `/2`, RFC 7587 §7).
    pub const fn channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// Static payload type of RFC 3551, if any.
    pub const fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::G722 => Some(9),
            Codec::Opus => None,
        }
    }

    /// Rate of the PCM the codec's encoder takes and decoder gives.
    pub const fn pcm_rate(self) -> Rate {
        match self {
            Codec::Pcmu | Codec::Pcma => Rate::Nb8k,
            Codec::G722 | Codec::Opus => Rate::Wb16k,
        }
    }

    /// RTP timestamp increment of one 20 ms frame.
    pub const fn ts_per_frame(self) -> u32 {
        self.clock_rate() / 50
    }

    /// The codec named by an `a=rtpmap` encoding name and clock rate (name case-insensitive).
    pub fn from_rtpmap(name: &str, clock_rate: u32) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name) && c.clock_rate() == clock_rate)
    }

    /// The codec of a static payload type (RFC 3551 table 4), for offers without rtpmap.
    pub fn from_static_pt(pt: u8) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.static_pt() == Some(pt))
    }
}

// ---------------------------------------------------------------------------
// Encoders and decoders.

use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};
use ezk_g722::libg722::{self, Bitrate as G722Bitrate};

/// Why a codec could not encode or decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The peer sent a payload the decoder rejects (corrupt or truncated).
    #[error("{} payload rejected: {reason}", .codec.name())]
    BadPayload {
        /// The decoder's codec.
        codec: Codec,
        /// What the decoder reported.
        reason: String,
    },
    /// The PCM handed to an encoder is not a frame length the codec can encode (a bug of ours).
    #[error("bad frame length: expected {expected} samples, got {got}")]
    BadFrameLength {
        /// Samples in one 20 ms frame at the codec's PCM rate.
        expected: usize,
        /// Samples given.
        got: usize,
    },
    /// libopus refused to create or configure a coder, or failed to encode.
    #[error("opus: {0}")]
    Opus(String),
}

/// Encodes one 20 ms frame of PCM at `codec().pcm_rate()`, appending the RTP payload to `out`.
pub trait Encoder {
    /// The codec this encoder produces.
    fn codec(&self) -> Codec;
    /// Encodes `pcm` (one frame: `codec().pcm_rate().frame_len()` samples; G.711 and G.722
    /// take any length they can frame, Opus any Opus frame duration) and appends the payload.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Decodes one RTP payload, appending PCM at `codec().pcm_rate()` (Opus payloads of 10–60 ms give that many samples).
pub trait Decoder {
    /// The codec this decoder reads.
    fn codec(&self) -> Codec;
    /// Decodes `payload` and appends its samples to `out`; on error nothing is appended.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Appends one 20 ms frame standing in for a lost packet (Opus: its PLC; others: fade the last frame or silence).
    fn conceal(&mut self, out: &mut Vec<i16>);
}

/// Default Opus encoder complexity (0–10): a fair trade of quality for CPU on a busy switch.
pub const OPUS_DEFAULT_COMPLEXITY: u8 = 5;
/// Default Opus bitrate: wideband speech at 24 kbit/s.
pub const OPUS_DEFAULT_BITRATE_BPS: i32 = 24_000;

/// A fresh encoder for `codec` (Opus with the default complexity and bitrate).
pub fn encoder(codec: Codec) -> Result<Box<dyn Encoder>, CodecError> {
    Ok(match codec {
        Codec::Pcmu => Box::new(G711Encoder { law: Law::Mu }),
        Codec::Pcma => Box::new(G711Encoder { law: Law::A }),
        Codec::G722 => Box::new(G722Encoder::new()),
        Codec::Opus => opus_encoder(OPUS_DEFAULT_COMPLEXITY, OPUS_DEFAULT_BITRATE_BPS)?,
    })
}

/// A fresh decoder for `codec`.
pub fn decoder(codec: Codec) -> Result<Box<dyn Decoder>, CodecError> {
    Ok(match codec {
        Codec::Pcmu => Box::new(G711Decoder::new(Law::Mu)),
        Codec::Pcma => Box::new(G711Decoder::new(Law::A)),
        Codec::G722 => Box::new(G722Decoder::new()),
        Codec::Opus => Box::new(OpusDec::new()?),
    })
}

/// An Opus encoder (mono, 16 kHz, VoIP application) with `complexity` (0–10) and a target
/// bitrate in bit/s (500–512,000).
pub fn opus_encoder(complexity: u8, bitrate_bps: i32) -> Result<Box<dyn Encoder>, CodecError> {
    Ok(Box::new(OpusEnc::new(complexity, bitrate_bps)?))
}

fn check_len(codec: Codec, got: usize, ok: bool) -> Result<(), CodecError> {
    if ok {
        Ok(())
    } else {
        Err(CodecError::BadFrameLength {
            expected: codec.pcm_rate().frame_len(),
            got,
        })
    }
}

// ---------------------------------------------------------------------------
// Concealment for codecs without their own PLC.

/// Repeats the last 20 ms decoded, fading to silence over [`Fade::LOSSES`] lost frames.
#[derive(Debug)]
struct Fade {
    last: Vec<i16>,
    frame_len: usize,
    gain: f32,
}

impl Fade {
    const LOSSES: f32 = 3.0;

    fn new(rate: Rate) -> Self {
        let frame_len = rate.frame_len();
        Fade {
            last: Vec::with_capacity(2 * frame_len),
            frame_len,
            gain: 1.0,
        }
    }

    fn remember(&mut self, decoded: &[i16]) {
        let keep = decoded.len().min(self.frame_len);
        self.last
            .extend_from_slice(&decoded[decoded.len() - keep..]);
        let excess = self.last.len().saturating_sub(self.frame_len);
        self.last.drain(..excess);
        self.gain = 1.0;
    }

    fn conceal(&mut self, out: &mut Vec<i16>) {
        let n = self.frame_len;
        if self.last.is_empty() || self.gain <= 0.0 {
            out.resize(out.len() + n, 0);
            return;
        }
        let step = 1.0 / Fade::LOSSES;
        for i in 0..n {
            let g = self.gain - step * i as f32 / n as f32;
            out.push((f32::from(self.last[i % self.last.len()]) * g) as i16);
        }
        self.gain = (self.gain - step).max(0.0);
    }
}

// ---------------------------------------------------------------------------
// G.711.

/// ITU-T G.711 µ-law and A-law sample conversion (16-bit linear PCM), bit-exact with the
/// standard's reference software (ITU-T G.191 STL `g711.c`).
///
/// Encoding is a table lookup (16 KiB µ-law, 8 KiB A-law, built at compile time from the
/// segment-search reference); decoding a 256-entry table.
pub mod g711 {
    /// The µ-law code of a linear sample.
    #[inline]
    pub fn ulaw_encode(sample: i16) -> u8 {
        ULAW_ENCODE[usize::from(sample as u16 >> 2)]
    }

    /// The linear sample of a µ-law code.
    #[inline]
    pub fn ulaw_decode(code: u8) -> i16 {
        ULAW_DECODE[usize::from(code)]
    }

    /// The A-law code of a linear sample.
    #[inline]
    pub fn alaw_encode(sample: i16) -> u8 {
        ALAW_ENCODE[usize::from(sample as u16 >> 3)]
    }

    /// The linear sample of an A-law code.
    #[inline]
    pub fn alaw_decode(code: u8) -> i16 {
        ALAW_DECODE[usize::from(code)]
    }

    /// µ-law code for each 14-bit input (the two low bits never matter), built at compile time.
    static ULAW_ENCODE: [u8; 1 << 14] = encode_table::<{ 1 << 14 }>(true);
    /// A-law code for each 13-bit input (the three low bits never matter).
    static ALAW_ENCODE: [u8; 1 << 13] = encode_table::<{ 1 << 13 }>(false);
    static ULAW_DECODE: [i16; 256] = decode_table(true);
    static ALAW_DECODE: [i16; 256] = decode_table(false);

    const fn encode_table<const N: usize>(mu: bool) -> [u8; N] {
        let mut t = [0u8; N];
        let mut i = 0;
        while i < N {
            t[i] = if mu {
                ulaw_reference(((i as u16) << 2) as i16)
            } else {
                alaw_reference(((i as u16) << 3) as i16)
            };
            i += 1;
        }
        t
    }

    const fn decode_table(mu: bool) -> [i16; 256] {
        let mut t = [0i16; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = if mu {
                ulaw_reference_decode(i as u8)
            } else {
                alaw_reference_decode(i as u8)
            };
            i += 1;
        }
        t
    }

    /// Index of the first segment end `>= v`, or 8 if `v` is beyond the last.
    const fn segment(v: i32, ends: &[i32; 8]) -> i32 {
        let mut seg = 0;
        while seg < 8 && v > ends[seg] {
            seg += 1;
        }
        seg as i32
    }

    /// G.711 µ-law encoding by segment search, as ITU-T G.191's `ulaw_compress`: 14-bit
    /// input, negative samples by one's complement so `x` and `-1 - x` mirror each other.
    pub(crate) const fn ulaw_reference(sample: i16) -> u8 {
        const BIAS: i32 = 0x21; // 0x84 at 16-bit scale
        const CLIP: i32 = 8158;
        const ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
        let (mut v, mask) = if sample < 0 {
            ((!sample >> 2) as i32, 0x7F)
        } else {
            ((sample >> 2) as i32, 0xFF)
        };
        if v > CLIP {
            v = CLIP;
        }
        v += BIAS;
        let seg = segment(v, &ENDS);
        (((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask) as u8
    }

    /// G.711 µ-law decoding (the reference algorithm).
    pub(crate) const fn ulaw_reference_decode(code: u8) -> i16 {
        const BIAS: i32 = 0x84;
        let u = !code as i32;
        let t = (((u & 0x0F) << 3) + BIAS) << ((u & 0x70) >> 4);
        (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
    }

    /// G.711 A-law encoding by segment search, as ITU-T G.191's `alaw_compress`: 13-bit
    /// input, negative samples by one's complement.
    pub(crate) const fn alaw_reference(sample: i16) -> u8 {
        const ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
        let mut v = (sample >> 3) as i32;
        let mask = if v >= 0 {
            0xD5
        } else {
            v = -v - 1;
            0x55
        };
        let seg = segment(v, &ENDS);
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        let quant = if seg < 2 {
            (v >> 1) & 0xF
        } else {
            (v >> seg) & 0xF
        };
        (((seg << 4) | quant) ^ mask) as u8
    }

    /// G.711 A-law decoding (the reference algorithm).
    pub(crate) const fn alaw_reference_decode(code: u8) -> i16 {
        let a = (code ^ 0x55) as i32;
        let mut t = (a & 0x0F) << 4;
        let seg = (a & 0x70) >> 4;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => t = (t + 0x108) << (seg - 1),
        }
        (if a & 0x80 != 0 { t } else { -t }) as i16
    }
}

#[derive(Clone, Copy, Debug)]
enum Law {
    Mu,
    A,
}

impl Law {
    fn codec(self) -> Codec {
        match self {
            Law::Mu => Codec::Pcmu,
            Law::A => Codec::Pcma,
        }
    }
}

#[derive(Debug)]
struct G711Encoder {
    law: Law,
}

impl Encoder for G711Encoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self.law {
            Law::Mu => out.extend(pcm.iter().map(|&s| g711::ulaw_encode(s))),
            Law::A => out.extend(pcm.iter().map(|&s| g711::alaw_encode(s))),
        }
        Ok(())
    }
}

#[derive(Debug)]
struct G711Decoder {
    law: Law,
    fade: Fade,
}

impl G711Decoder {
    fn new(law: Law) -> Self {
        G711Decoder {
            law,
            fade: Fade::new(Rate::Nb8k),
        }
    }
}

impl Decoder for G711Decoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        match self.law {
            Law::Mu => out.extend(payload.iter().map(|&c| g711::ulaw_decode(c))),
            Law::A => out.extend(payload.iter().map(|&c| g711::alaw_decode(c))),
        }
        self.fade.remember(&out[start..]);
        Ok(())
    }

    fn conceal(&mut self, out: &mut Vec<i16>) {
        self.fade.conceal(out);
    }
}

// ---------------------------------------------------------------------------
// G.722 (64 kbit/s mode, one byte per pair of 16 kHz samples), via ezk-g722's libg722 port.

struct G722Encoder {
    inner: libg722::encoder::Encoder,
}

impl G722Encoder {
    fn new() -> Self {
        // Argument order here is (rate, eight_k, packed); the decoder's is (rate, packed, eight_k).
        G722Encoder {
            inner: libg722::encoder::Encoder::new(G722Bitrate::Mode1_64000, false, false),
        }
    }
}

impl Encoder for G722Encoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        // libg722 asserts an even sample count; check first rather than panic.
        check_len(Codec::G722, pcm.len(), pcm.len().is_multiple_of(2))?;
        out.extend_from_slice(&self.inner.encode(pcm));
        Ok(())
    }
}

struct G722Decoder {
    inner: libg722::decoder::Decoder,
    fade: Fade,
}

impl G722Decoder {
    fn new() -> Self {
        G722Decoder {
            inner: libg722::decoder::Decoder::new(G722Bitrate::Mode1_64000, false, false),
            fade: Fade::new(Rate::Wb16k),
        }
    }
}

impl Decoder for G722Decoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        out.extend_from_slice(&self.inner.decode(payload));
        self.fade.remember(&out[start..]);
        Ok(())
    }

    fn conceal(&mut self, out: &mut Vec<i16>) {
        self.fade.conceal(out);
    }
}

// ---------------------------------------------------------------------------
// Opus (RFC 7587), mono at 16 kHz.

/// Largest packet libopus may produce for one call (its documentation's recommendation).
const OPUS_MAX_PACKET: usize = 4000;
/// Samples of the longest Opus packet (120 ms) at 16 kHz.
const OPUS_MAX_SAMPLES: usize = 120 * 16;

fn opus_err(e: audiopus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

fn opus_bad_payload(e: audiopus::Error) -> CodecError {
    CodecError::BadPayload {
        codec: Codec::Opus,
        reason: e.to_string(),
    }
}

/// Opus frame durations (2.5, 5, 10, 20, 40, 60 ms) as sample counts at 16 kHz.
fn opus_frame_len_ok(len: usize) -> bool {
    matches!(len, 40 | 80 | 160 | 320 | 640 | 960)
}

struct OpusEnc {
    inner: OpusEncoder,
    packet: Vec<u8>,
}

impl OpusEnc {
    fn new(complexity: u8, bitrate_bps: i32) -> Result<Self, CodecError> {
        let mut inner = OpusEncoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip)
            .map_err(opus_err)?;
        inner.set_complexity(complexity).map_err(opus_err)?;
        inner
            .set_bitrate(Bitrate::BitsPerSecond(bitrate_bps))
            .map_err(opus_err)?;
        Ok(OpusEnc {
            inner,
            packet: vec![0; OPUS_MAX_PACKET],
        })
    }
}

impl Encoder for OpusEnc {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        check_len(Codec::Opus, pcm.len(), opus_frame_len_ok(pcm.len()))?;
        let n = self.inner.encode(pcm, &mut self.packet).map_err(opus_err)?;
        out.extend_from_slice(&self.packet[..n]);
        Ok(())
    }
}

struct OpusDec {
    inner: OpusDecoder,
    pcm: Vec<i16>,
}

impl OpusDec {
    fn new() -> Result<Self, CodecError> {
        let inner = OpusDecoder::new(SampleRate::Hz16000, Channels::Mono).map_err(opus_err)?;
        Ok(OpusDec {
            inner,
            pcm: vec![0; OPUS_MAX_SAMPLES],
        })
    }
}

impl Decoder for OpusDec {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let packet = Packet::try_from(payload).map_err(opus_bad_payload)?;
        let signals = MutSignals::try_from(&mut self.pcm[..]).map_err(opus_err)?;
        let n = self
            .inner
            .decode(Some(packet), signals, false)
            .map_err(opus_bad_payload)?;
        out.extend_from_slice(&self.pcm[..n]);
        Ok(())
    }

    fn conceal(&mut self, out: &mut Vec<i16>) {
        let frame = Rate::Wb16k.frame_len();
        let decoded = MutSignals::try_from(&mut self.pcm[..frame])
            .and_then(|signals| self.inner.decode(None, signals, false));
        match decoded {
            Ok(n) => out.extend_from_slice(&self.pcm[..n.min(frame)]),
            Err(_) => out.resize(out.len() + frame, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::g711::*;
    use super::*;
    use crate::tone::{level_dbfs, sine};

    /// Encodes `pcm` frame by frame and decodes every payload.
    fn round_trip(enc: &mut dyn Encoder, dec: &mut dyn Decoder, pcm: &[i16]) -> Vec<i16> {
        let frame = enc.codec().pcm_rate().frame_len();
        let (mut payload, mut out) = (Vec::new(), Vec::new());
        for chunk in pcm.chunks(frame) {
            payload.clear();
            enc.encode(chunk, &mut payload).unwrap();
            dec.decode(&payload, &mut out).unwrap();
        }
        out
    }

    /// (delay in samples, SNR in dB) of `output` against `input` at the best delay up to `max_lag`.
    fn snr_at_best_delay(input: &[i16], output: &[i16], max_lag: usize) -> (usize, f64) {
        let skip = 800; // past codec start-up
        let len = input.len().min(output.len()) - max_lag - skip;
        let x = |i: usize| f64::from(input[i]);
        let best = (0..=max_lag)
            .map(|lag| {
                let noise: f64 = (skip..skip + len)
                    .map(|i| (x(i) - f64::from(output[i + lag])).powi(2))
                    .sum();
                (lag, noise)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        let signal: f64 = (skip..skip + len).map(|i| x(i).powi(2)).sum();
        (best.0, 10.0 * (signal / best.1.max(1e-9)).log10())
    }

    /// Deterministic noise for garbage payloads (xorshift64).
    fn garbage(seed: u64, len: usize) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    #[test]
    fn g711_reference_code_points() {
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(-4), 0x7F);
        assert_eq!(ulaw_encode(-5), 0x7E);
        assert_eq!(ulaw_decode(0x7E), -8);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn g711_tables_match_the_reference_algorithm() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), ulaw_reference(s), "µ-law {s}");
            assert_eq!(alaw_encode(s), alaw_reference(s), "A-law {s}");
            // Sign symmetry: `s` and `-1 - s` differ in the sign bit only.
            assert_eq!(ulaw_encode(!s), ulaw_encode(s) ^ 0x80, "µ-law {s}");
            assert_eq!(alaw_encode(!s), alaw_encode(s) ^ 0x80, "A-law {s}");
        }
        for c in 0..=255u8 {
            // Every reconstruction level encodes back to itself.
            assert_eq!(
                ulaw_decode(ulaw_encode(ulaw_decode(c))),
                ulaw_decode(c),
                "µ-law code {c:#04x}"
            );
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law code {c:#04x}");
        }
    }

    #[test]
    fn g711_round_trip_error_is_half_a_step() {
        let mut prev = (ulaw_encode(i16::MIN), alaw_encode(i16::MIN));
        for s in i16::MIN..=i16::MAX {
            let m = i32::from(s).abs();
            // µ-law: steps are 1/16 to 1/32 of the biased magnitude (|s| + 132); 14-bit input.
            let err = (i32::from(ulaw_decode(ulaw_encode(s))) - i32::from(s)).abs();
            if m <= 32124 {
                assert!(err <= (m + 135) / 32 + 3, "µ-law {s}: error {err}");
            }
            // A-law: steps of 16 up to 512, then 1/16 to 1/32 of |s|; 13-bit input.
            let err = (i32::from(alaw_decode(alaw_encode(s))) - i32::from(s)).abs();
            if m <= 32256 {
                assert!(err <= (m / 32).max(8) + 7, "A-law {s}: error {err}");
            }
            // Monotonic: a larger sample never gets a smaller level.
            let codes = (ulaw_encode(s), alaw_encode(s));
            assert!(
                ulaw_decode(codes.0) >= ulaw_decode(prev.0)
                    && alaw_decode(codes.1) >= alaw_decode(prev.1)
            );
            prev = codes;
        }
    }

    #[test]
    fn sine_round_trips_through_every_codec() {
        for codec in Codec::ALL {
            let rate = codec.pcm_rate();
            let input = sine(1000.0, rate, 1000, -10.0);
            let mut enc = encoder(codec).unwrap();
            let mut dec = decoder(codec).unwrap();
            assert_eq!((enc.codec(), dec.codec()), (codec, codec));
            let output = round_trip(enc.as_mut(), dec.as_mut(), &input);
            assert_eq!(output.len(), input.len(), "{codec:?}");
            let steady = 4 * rate.frame_len()..input.len() - rate.frame_len();
            let gain = level_dbfs(&output[steady.clone()]) - level_dbfs(&input[steady]);
            let (delay, snr) = snr_at_best_delay(&input, &output, rate.per_ms() * 20);
            let min_snr = match codec {
                Codec::Pcmu | Codec::Pcma => 35.0,
                Codec::G722 => 35.0,
                Codec::Opus => 12.0,
            };
            assert!(gain.abs() <= 1.5, "{codec:?}: level off by {gain:+.2} dB");
            assert!(
                snr >= min_snr,
                "{codec:?}: SNR {snr:.1} dB at delay {delay}"
            );
            println!(
                "{codec:?}: gain {gain:+.2} dB, SNR {snr:.1} dB at lag {delay} (mod one period)"
            );
        }
    }

    #[test]
    fn conceal_appends_one_frame_and_fades() {
        for codec in Codec::ALL {
            let rate = codec.pcm_rate();
            let mut dec = decoder(codec).unwrap();
            let mut out = vec![7; 3];
            dec.conceal(&mut out);
            assert_eq!(
                out.len(),
                3 + rate.frame_len(),
                "{codec:?} before any packet"
            );
            let mut enc = encoder(codec).unwrap();
            let input = sine(1000.0, rate, 200, -10.0);
            let decoded = round_trip(enc.as_mut(), dec.as_mut(), &input);
            let last = level_dbfs(&decoded[decoded.len() - rate.frame_len()..]);
            let mut levels = Vec::new();
            for _ in 0..5 {
                let mut frame = Vec::new();
                dec.conceal(&mut frame);
                assert_eq!(frame.len(), rate.frame_len(), "{codec:?}");
                levels.push(level_dbfs(&frame));
            }
            assert!(
                levels[0] > last - 12.0,
                "{codec:?}: first concealed frame {levels:?} vs {last}"
            );
            assert!(
                levels[4] < last - 20.0,
                "{codec:?}: still loud after 100 ms of loss {levels:?}"
            );
        }
    }

    #[test]
    fn opus_decodes_10_to_60_ms_payloads() {
        for ms in [10, 20, 40, 60] {
            let pcm = sine(440.0, Rate::Wb16k, ms, -10.0);
            let mut enc = encoder(Codec::Opus).unwrap();
            let mut dec = decoder(Codec::Opus).unwrap();
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            let mut out = Vec::new();
            dec.decode(&payload, &mut out).unwrap();
            assert_eq!(out.len(), pcm.len(), "{ms} ms");
        }
    }

    #[test]
    fn opus_complexities_and_bitrates() {
        let pcm = sine(1000.0, Rate::Wb16k, 20, -10.0);
        for complexity in [0, 3, 5, 10] {
            let mut enc = opus_encoder(complexity, 16_000).unwrap();
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            assert!(
                !payload.is_empty() && payload.len() < 200,
                "{}",
                payload.len()
            );
        }
        assert!(matches!(opus_encoder(11, 24_000), Err(CodecError::Opus(_))));
        assert!(matches!(opus_encoder(5, 0), Err(CodecError::Opus(_))));
    }

    #[test]
    fn encoders_reject_lengths_they_cannot_frame() {
        let mut out = Vec::new();
        let err = encoder(Codec::G722)
            .unwrap()
            .encode(&[0; 319], &mut out)
            .unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::BadFrameLength {
                    expected: 320,
                    got: 319
                }
            ),
            "{err}"
        );
        let err = encoder(Codec::Opus)
            .unwrap()
            .encode(&[0; 300], &mut out)
            .unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::BadFrameLength {
                    expected: 320,
                    got: 300
                }
            ),
            "{err}"
        );
        assert!(out.is_empty());
        encoder(Codec::Pcmu)
            .unwrap()
            .encode(&[0; 80], &mut out)
            .unwrap();
        assert_eq!(out.len(), 80);
    }

    #[test]
    fn garbage_payloads_never_panic() {
        for codec in Codec::ALL {
            let mut dec = decoder(codec).unwrap();
            let mut out = Vec::new();
            for seed in 0..300u64 {
                let payload = garbage(seed, (seed as usize * 7) % 1500);
                let before = out.len();
                match dec.decode(&payload, &mut out) {
                    Ok(()) => {
                        assert!(out.len() - before <= OPUS_MAX_SAMPLES.max(2 * payload.len()))
                    }
                    Err(e) => {
                        assert_eq!(out.len(), before, "{codec:?}: {e}");
                        assert!(matches!(e, CodecError::BadPayload { .. }), "{e}");
                    }
                }
                if seed % 10 == 0 {
                    dec.conceal(&mut out);
                }
            }
            for payload in [&[][..], &[0xFF; 3], &[0x00; 1], &[0xFC, 0xFF, 0xFF]] {
                let _ = dec.decode(payload, &mut out);
            }
        }
        let err = decoder(Codec::Opus)
            .unwrap()
            .decode(&[], &mut Vec::new())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("opus payload rejected"),
            "{err}"
        );
    }
}
