//! Audio frames shared by every stage of the media path.

/// Packetization time of every frame the media path produces (RFC 3551 §4.5 default).
pub const PTIME_MS: u32 = 20;

/// Sample rate of the internal PCM path: narrowband legs run at 8 kHz, wideband
/// legs (G.722, Opus) at 16 kHz so speech recognition gets wideband audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rate {
    /// 8,000 samples per second.
    Nb8k,
    /// 16,000 samples per second.
    Wb16k,
}

impl Rate {
    /// Samples per second.
    pub const fn hz(self) -> u32 {
        match self {
            Rate::Nb8k => 8_000,
            Rate::Wb16k => 16_000,
        }
    }

    /// Samples in one millisecond.
    pub const fn per_ms(self) -> usize {
        (self.hz() / 1000) as usize
    }

    /// Samples in one frame of [`PTIME_MS`].
    pub const fn frame_len(self) -> usize {
        self.per_ms() * PTIME_MS as usize
    }
}
