//! Call-progress tones (ITU-T E.180 and national tone plans), DTMF digits (ITU-T Q.23)
//! and plain sines for tests.
//!
//! Levels are given in dBFS for a sine: a sine whose peak is full scale (32767) is 0 dBFS.
//! Tone plans state levels in dBm0; 0 dBm0 is 3.17 dB below that full-scale sine (G.711
//! µ-law's load capacity; A-law's is 3.14 dB).

use crate::audio::Rate;
use std::f64::consts::TAU;

/// Peak of a 0 dBFS sine.
const FULL_SCALE: f64 = 32767.0;
/// dBFS of a 0 dBm0 sine (ITU-T G.711 µ-law: full scale is +3.17 dBm0).
pub const DBM0_IN_DBFS: f32 = -3.17;

/// A call-progress tone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToneKind {
    /// The far end is ringing (audible ringing tone).
    Ringback,
    /// The called party is busy.
    Busy,
    /// The network is congested (reorder / "all circuits busy").
    Congestion,
    /// Ready for digits.
    Dial,
}

/// Whose tone plan to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ToneRegion {
    /// North America (ANSI T1.401 / Telcordia "precise tones").
    #[default]
    Us,
    /// Europe (CEPT recommendation, ETSI ES 201 970): 425 Hz.
    Eu,
    /// United Kingdom (BT SIN 350).
    Uk,
}

/// One entry of a tone plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToneSpec {
    /// Frequencies sounded together, in Hz.
    pub freqs: &'static [f32],
    /// Level of each frequency, in dBm0.
    pub level_dbm0: f32,
    /// Cadence in milliseconds, alternating on and off, repeated; empty means continuous.
    pub cadence_ms: &'static [u32],
}

impl ToneSpec {
    /// The plan entry for `kind` in `region`.
    pub const fn of(kind: ToneKind, region: ToneRegion) -> ToneSpec {
        use ToneKind::*;
        use ToneRegion::*;
        let (freqs, level_dbm0, cadence_ms): (&'static [f32], f32, &'static [u32]) =
            match (region, kind) {
                (Us, Dial) => (&[350.0, 440.0], -13.0, &[]),
                (Us, Ringback) => (&[440.0, 480.0], -19.0, &[2000, 4000]),
                (Us, Busy) => (&[480.0, 620.0], -24.0, &[500, 500]),
                (Us, Congestion) => (&[480.0, 620.0], -24.0, &[250, 250]),
                (Eu, Dial) => (&[425.0], -10.0, &[]),
                (Eu, Ringback) => (&[425.0], -10.0, &[1000, 4000]),
                (Eu, Busy) => (&[425.0], -10.0, &[500, 500]),
                (Eu, Congestion) => (&[425.0], -10.0, &[200, 200]),
                (Uk, Dial) => (&[350.0, 440.0], -13.0, &[]),
                (Uk, Ringback) => (&[400.0, 450.0], -19.0, &[400, 200, 400, 2000]),
                (Uk, Busy) => (&[400.0], -13.0, &[375, 375]),
                (Uk, Congestion) => (&[400.0], -13.0, &[400, 350, 225, 525]),
            };
        ToneSpec {
            freqs,
            level_dbm0,
            cadence_ms,
        }
    }
}

/// A sine oscillator by complex rotation: phase-continuous and four multiplies a sample.
#[derive(Clone, Copy, Debug)]
struct Oscillator {
    /// Current phasor (cos, sin).
    re: f64,
    im: f64,
    /// Rotation per sample.
    step_re: f64,
    step_im: f64,
}

impl Oscillator {
    fn new(hz: f64, rate: Rate) -> Self {
        let w = TAU * hz / f64::from(rate.hz());
        Oscillator {
            re: 1.0,
            im: 0.0,
            step_re: w.cos(),
            step_im: w.sin(),
        }
    }

    /// The current sine value, then advances one sample.
    #[inline]
    fn next(&mut self) -> f64 {
        let out = self.im;
        let re = self.re * self.step_re - self.im * self.step_im;
        self.im = self.re * self.step_im + self.im * self.step_re;
        self.re = re;
        out
    }

    /// Pulls the phasor back onto the unit circle (rounding drift); once a frame is plenty.
    fn renormalize(&mut self) {
        let norm = (self.re * self.re + self.im * self.im).sqrt();
        self.re /= norm;
        self.im /= norm;
    }
}

/// Generates call-progress tones frame by frame with phase continuity.
#[derive(Clone, Debug)]
pub struct ToneGen {
    oscillators: Vec<Oscillator>,
    amplitude: f64,
    rate: Rate,
    /// Cadence segments in samples (on, off, on, off, ...); empty: continuous.
    cadence: Vec<u64>,
    /// Current cadence segment and samples left in it.
    segment: usize,
    left: u64,
}

impl ToneGen {
    /// A generator of `kind` per `region`'s plan at `rate`, starting at the beginning of an "on".
    pub fn new(kind: ToneKind, region: ToneRegion, rate: Rate) -> Self {
        ToneGen::from_spec(ToneSpec::of(kind, region), rate)
    }

    /// A generator of any tone plan entry.
    pub fn from_spec(spec: ToneSpec, rate: Rate) -> Self {
        let per_ms = rate.per_ms() as u64;
        let cadence: Vec<u64> = spec
            .cadence_ms
            .iter()
            .map(|&ms| u64::from(ms) * per_ms)
            .collect();
        let left = cadence.first().copied().unwrap_or(0);
        ToneGen {
            oscillators: spec
                .freqs
                .iter()
                .map(|&hz| Oscillator::new(f64::from(hz), rate))
                .collect(),
            amplitude: amplitude(spec.level_dbm0 + DBM0_IN_DBFS),
            rate,
            cadence,
            segment: 0,
            left,
        }
    }

    /// Appends the next 20 ms frame.
    pub fn next_frame(&mut self, out: &mut Vec<i16>) {
        out.reserve(self.rate.frame_len());
        for _ in 0..self.rate.frame_len() {
            let on = self.advance_cadence();
            let sum: f64 = self.oscillators.iter_mut().map(Oscillator::next).sum();
            out.push(if on { to_i16(sum * self.amplitude) } else { 0 });
        }
        self.oscillators
            .iter_mut()
            .for_each(Oscillator::renormalize);
    }

    /// Whether the current sample is in an "on" segment; moves one sample on.
    fn advance_cadence(&mut self) -> bool {
        if self.cadence.is_empty() {
            return true;
        }
        while self.left == 0 {
            self.segment = (self.segment + 1) % self.cadence.len();
            self.left = self.cadence[self.segment];
        }
        self.left -= 1;
        self.segment.is_multiple_of(2)
    }
}

/// Peak amplitude of a sine at `level_dbfs`.
fn amplitude(level_dbfs: f32) -> f64 {
    FULL_SCALE * 10f64.powf(f64::from(level_dbfs) / 20.0)
}

fn to_i16(v: f64) -> i16 {
    // `as` saturates; round to nearest.
    v.round() as i16
}

/// The sum of sines at `freqs`, each at `level_dbfs`, `duration_ms` long.
fn sines(freqs: &[f32], rate: Rate, duration_ms: u32, level_dbfs: f32) -> Vec<i16> {
    let amp = amplitude(level_dbfs);
    let n = rate.per_ms() * duration_ms as usize;
    let w: Vec<f64> = freqs
        .iter()
        .map(|&hz| TAU * f64::from(hz) / f64::from(rate.hz()))
        .collect();
    (0..n)
        .map(|i| to_i16(amp * w.iter().map(|w| (w * i as f64).sin()).sum::<f64>()))
        .collect()
}

/// The two frequencies (low, high) of a DTMF digit (ITU-T Q.23); None for an unknown digit.
pub fn dtmf_freqs(digit: char) -> Option<(f32, f32)> {
    const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (row, col) = match digit.to_ascii_uppercase() {
        '1' => (0, 0),
        '2' => (0, 1),
        '3' => (0, 2),
        'A' => (0, 3),
        '4' => (1, 0),
        '5' => (1, 1),
        '6' => (1, 2),
        'B' => (1, 3),
        '7' => (2, 0),
        '8' => (2, 1),
        '9' => (2, 2),
        'C' => (2, 3),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        'D' => (3, 3),
        _ => return None,
    };
    Some((LOW[row], HIGH[col]))
}

/// A DTMF digit (0-9 * # A-D) as PCM: both tones (ITU-T Q.23 frequencies) at `level_dbfs` each (e.g. -10.0), `duration_ms` long. None for an unknown digit.
pub fn dtmf_tone(digit: char, rate: Rate, duration_ms: u32, level_dbfs: f32) -> Option<Vec<i16>> {
    let (low, high) = dtmf_freqs(digit)?;
    Some(sines(&[low, high], rate, duration_ms, level_dbfs))
}

/// A sine of `hz` at `level_dbfs`, `duration_ms` long (tests and test signals).
pub fn sine(hz: f32, rate: Rate, duration_ms: u32, level_dbfs: f32) -> Vec<i16> {
    sines(&[hz], rate, duration_ms, level_dbfs)
}

/// Level of `samples` in dBFS, sine-referenced (a full-scale sine reads 0 dBFS, silence
/// -inf).
pub fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let power: f64 = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    (10.0 * (2.0 * power / (FULL_SCALE * FULL_SCALE)).log10()) as f32
}

/// Peak amplitude of the `hz` component of `samples` (Goertzel); exact for whole cycles.
#[cfg(test)]
pub(crate) fn amplitude_at(samples: &[i16], hz: f32, rate_hz: u32) -> f64 {
    let w = TAU * f64::from(hz) / f64::from(rate_hz);
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let coeff = 2.0 * w.cos();
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / samples.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of (on, milliseconds): a millisecond is "on" when any of its samples is not zero.
    fn cadence_runs(samples: &[i16], rate: Rate) -> Vec<(bool, u32)> {
        let mut runs: Vec<(bool, u32)> = Vec::new();
        for ms in samples.chunks(rate.per_ms()) {
            let on = ms.iter().any(|&s| s != 0);
            match runs.last_mut() {
                Some((last, n)) if *last == on => *n += 1,
                _ => runs.push((on, 1)),
            }
        }
        runs
    }

    fn generate(kind: ToneKind, region: ToneRegion, rate: Rate, ms: u32) -> Vec<i16> {
        let mut gen = ToneGen::new(kind, region, rate);
        let mut out = Vec::new();
        for _ in 0..ms / 20 {
            gen.next_frame(&mut out);
        }
        out
    }

    #[test]
    fn us_ringback_cadence_is_2s_on_4s_off() {
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            let out = generate(ToneKind::Ringback, ToneRegion::Us, rate, 12_000);
            assert_eq!(out.len(), 12 * rate.hz() as usize);
            assert_eq!(
                cadence_runs(&out, rate),
                [(true, 2000), (false, 4000), (true, 2000), (false, 4000)]
            );
        }
    }

    #[test]
    fn uk_ringback_cadence_is_double_ring() {
        let out = generate(ToneKind::Ringback, ToneRegion::Uk, Rate::Nb8k, 6_000);
        assert_eq!(
            cadence_runs(&out, Rate::Nb8k),
            [
                (true, 400),
                (false, 200),
                (true, 400),
                (false, 2000),
                (true, 400),
                (false, 200),
                (true, 400),
                (false, 2000)
            ]
        );
    }

    #[test]
    fn busy_and_congestion_cadences() {
        let busy = generate(ToneKind::Busy, ToneRegion::Us, Rate::Nb8k, 2_000);
        assert_eq!(
            cadence_runs(&busy, Rate::Nb8k),
            [(true, 500), (false, 500), (true, 500), (false, 500)]
        );
        let congestion = generate(ToneKind::Congestion, ToneRegion::Eu, Rate::Nb8k, 800);
        assert_eq!(
            cadence_runs(&congestion, Rate::Nb8k),
            [(true, 200), (false, 200), (true, 200), (false, 200)]
        );
        let dial = generate(ToneKind::Dial, ToneRegion::Us, Rate::Wb16k, 1_000);
        assert_eq!(cadence_runs(&dial, Rate::Wb16k), [(true, 1000)]);
    }

    #[test]
    fn tone_frequencies_and_levels_follow_the_plan() {
        for region in [ToneRegion::Us, ToneRegion::Eu, ToneRegion::Uk] {
            let spec = ToneSpec::of(ToneKind::Dial, region);
            // One second of continuous tone: 1 Hz bins, every plan frequency on a bin.
            let out = generate(ToneKind::Dial, region, Rate::Nb8k, 1_000);
            let expected = amplitude(spec.level_dbm0 + DBM0_IN_DBFS);
            for &hz in spec.freqs {
                let a = amplitude_at(&out, hz, 8000);
                assert!(
                    (a / expected - 1.0).abs() < 0.01,
                    "{region:?} {hz} Hz: {a} vs {expected}"
                );
            }
            // Nothing at a frequency the plan does not use.
            assert!(amplitude_at(&out, 1000.0, 8000) < expected * 0.01);
        }
    }

    #[test]
    fn tone_is_phase_continuous_across_frames() {
        // Frame-by-frame output equals one long sine sum (no restart per frame).
        let out = generate(ToneKind::Dial, ToneRegion::Eu, Rate::Nb8k, 1_000);
        let reference = sines(&[425.0], Rate::Nb8k, 1_000, -10.0 + DBM0_IN_DBFS);
        let worst = out
            .iter()
            .zip(&reference)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max();
        assert!(worst <= Some(1), "worst sample difference {worst:?}");
    }

    #[test]
    fn dtmf_tone_has_both_frequencies_at_the_level() {
        for digit in "0123456789*#ABCDabcd".chars() {
            let (low, high) = dtmf_freqs(digit).unwrap();
            let pcm = dtmf_tone(digit, Rate::Nb8k, 1_000, -10.0).unwrap();
            assert_eq!(pcm.len(), 8000);
            let expected = amplitude(-10.0);
            for hz in [low, high] {
                let a = amplitude_at(&pcm, hz, 8000);
                let db = 20.0 * (a / expected).log10();
                assert!(db.abs() < 0.1, "digit {digit} {hz} Hz: {db:+.2} dB");
            }
            // Two equal sines at -10 dBFS each: total power +3 dB.
            assert!(
                (level_dbfs(&pcm) - -6.99).abs() < 0.05,
                "{}",
                level_dbfs(&pcm)
            );
        }
        assert_eq!(dtmf_tone('E', Rate::Nb8k, 100, -10.0), None);
        assert_eq!(dtmf_tone('5', Rate::Wb16k, 40, -10.0).unwrap().len(), 640);
    }

    #[test]
    fn sine_level_and_length() {
        let s = sine(1000.0, Rate::Wb16k, 500, -6.0);
        assert_eq!(s.len(), 8000);
        assert!((level_dbfs(&s) - -6.0).abs() < 0.01);
        assert!((amplitude_at(&s, 1000.0, 16_000) / amplitude(-6.0) - 1.0).abs() < 0.001);
        assert_eq!(level_dbfs(&[]), f32::NEG_INFINITY);
    }
}
