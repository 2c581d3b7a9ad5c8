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
