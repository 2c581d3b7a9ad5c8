//! Sample-rate conversion: a cheap streaming converter between the two internal rates for
//! the per-packet path, and rubato for whole prompts at any rate.

use crate::audio::Rate;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};
use std::f64::consts::PI;
use std::sync::LazyLock;

/// Nonzero taps on each side of the half-band filter's center.
const SIDE_TAPS: usize = 8;
/// Nonzero off-center taps; the filter is `2 * TAPS - 1` = 31 taps long (even ones are zero).
const TAPS: usize = 2 * SIDE_TAPS;
/// Input samples kept across calls: the upsampler's window less one, the decimator's likewise.
const UP_HISTORY: usize = TAPS - 1;
const DOWN_HISTORY: usize = 2 * TAPS - 2;
/// Kaiser window shape: about 56 dB of stopband.
const KAISER_BETA: f64 = 5.0;

/// Off-center taps `h[-15], h[-13], …, h[13], h[15]` of a 31-tap Kaiser-windowed half-band
/// lowpass (center tap 1/2, even taps 0), scaled to sum to 1/2 so DC passes at unit gain.
/// At 16 kHz: flat to 3 kHz, -0.3 dB at 3.4 kHz, -6 dB at 4 kHz, ≥ 56 dB down from 5 kHz.
static HALF_BAND: LazyLock<[f32; TAPS]> = LazyLock::new(design_half_band);

fn design_half_band() -> [f32; TAPS] {
    let edge = TAPS as f64; // window half-width, one beyond the outermost tap
    let mut h = [0f64; TAPS];
    for (i, tap) in h.iter_mut().enumerate() {
        let n = (2 * i) as f64 - (TAPS - 1) as f64; // odd offsets -15..=15
        let sinc = (PI * n / 2.0).sin() / (PI * n);
        let window =
            bessel_i0(KAISER_BETA * (1.0 - (n / edge).powi(2)).sqrt()) / bessel_i0(KAISER_BETA);
        *tap = sinc * window;
    }
    let sum: f64 = h.iter().sum();
    h.map(|t| (t * 0.5 / sum) as f32)
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-12 * sum {
        term *= (x / (2.0 * k)).powi(2);
        sum += term;
        k += 1.0;
    }
    sum
}

/// Rounds half away from zero and saturates (`as` saturates; no libm call).
#[inline]
fn to_i16(v: f32) -> i16 {
    (v + 0.5f32.copysign(v)) as i16
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Same,
    Up,
    Down,
}

/// Streaming converter between the two internal rates for the per-packet path (FIR half-band interpolator/decimator, state kept across frames; identity when from == to). Output length is exactly input.len() * to.hz() / from.hz().
///
/// Both directions use one 31-tap half-band lowpass (16 multiplies per output sample). The
/// upsampler passes the input samples through unchanged and interpolates between them; the
/// decimator filters before dropping every other sample. Delay: 16 samples at 16 kHz (1 ms)
/// up, 15 samples at 16 kHz down. Decimating an odd number of samples carries the odd one
/// to the next call, so the output over a stream stays exact (20 ms frames are always even).
#[derive(Clone, Debug)]
pub struct Resampler {
    from: Rate,
    to: Rate,
    direction: Direction,
    /// The last input samples of the previous call (oldest first).
    history: [f32; DOWN_HISTORY],
    /// History followed by the current input, reused across calls.
    work: Vec<f32>,
    /// Filter sums of the current call, reused.
    acc: Vec<f32>,
    /// Decimator: every other sample of `work` (the off-center taps' phase), reused.
    phase: Vec<f32>,
    /// Decimator: index in the next input of the sample that completes the next output.
    due: usize,
}

impl Resampler {
    /// A converter from `from` to `to`, starting from silence.
    pub fn new(from: Rate, to: Rate) -> Self {
        let direction = match (from, to) {
            (Rate::Nb8k, Rate::Wb16k) => Direction::Up,
            (Rate::Wb16k, Rate::Nb8k) => Direction::Down,
            _ => Direction::Same,
        };
        if direction != Direction::Same {
            LazyLock::force(&HALF_BAND);
        }
        Resampler {
            from,
            to,
            direction,
            history: [0.0; DOWN_HISTORY],
            work: Vec::with_capacity(DOWN_HISTORY + 2 * Rate::Wb16k.frame_len()),
            acc: Vec::with_capacity(Rate::Wb16k.frame_len()),
            phase: Vec::with_capacity(Rate::Wb16k.frame_len()),
            due: 1,
        }
    }

    /// Converts `input` and appends the result to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match self.direction {
            Direction::Same => out.extend_from_slice(input),
            Direction::Up => self.up(input, out),
            Direction::Down => self.down(input, out),
        }
    }

    /// Input rate.
    pub fn from(&self) -> Rate {
        self.from
    }

    /// Output rate.
    pub fn to(&self) -> Rate {
        self.to
    }

    /// Fills `work` with `keep` samples of history and then `input`; afterwards the
    /// history is the last `keep` samples of `work`.
    fn load(&mut self, keep: usize, input: &[i16]) {
        self.work.clear();
        self.work.extend_from_slice(&self.history[..keep]);
        self.work.extend(input.iter().map(|&s| f32::from(s)));
    }

    fn save(&mut self, keep: usize) {
        let tail = self.work.len() - keep;
        self.history[..keep].copy_from_slice(&self.work[tail..]);
    }

    /// 8 kHz to 16 kHz: each input sample gives itself (delayed by `SIDE_TAPS`) and the
    /// interpolated sample halfway to the next.
    fn up(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.load(UP_HISTORY, input);
        let n = input.len();
        // mid[i] = Σ h[k]·work[i + k], summed tap by tap so the inner loop vectorizes.
        convolve(&mut self.acc, &self.work, n);
        out.reserve(2 * n);
        for (i, &mid) in self.acc.iter().enumerate() {
            out.push(to_i16(self.work[i + SIDE_TAPS - 1]));
            out.push(to_i16(2.0 * mid));
        }
        self.save(UP_HISTORY);
    }

    /// 16 kHz to 8 kHz: one filtered output for every second input sample.
    ///
    /// Output `j` is centered on `work[e + 15]` where `e = due + 2j` (its window is
    /// `work[e ..= e + 30]`); its off-center taps fall on every other sample from `e`, so
    /// they are a plain convolution over the samples `work[due], work[due + 2], …`.
    fn down(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.load(DOWN_HISTORY, input);
        let (len, due) = (input.len(), self.due);
        let m = len.saturating_sub(due).div_ceil(2);
        self.phase.clear();
        self.phase
            .extend(self.work[due..].iter().step_by(2).take(m + TAPS - 1));
        convolve(&mut self.acc, &self.phase, m);
        out.reserve(m);
        for (j, &side) in self.acc.iter().enumerate() {
            out.push(to_i16(0.5 * self.work[due + 2 * j + TAPS - 1] + side));
        }
        self.due = due + 2 * m - len;
        self.save(DOWN_HISTORY);
    }
}

/// `acc[i] = Σ_k HALF_BAND[k] · x[i + k]` for `i < n`.
fn convolve(acc: &mut Vec<f32>, x: &[f32], n: usize) {
    acc.clear();
    acc.resize(n, 0.0);
    for (k, &h) in HALF_BAND.iter().enumerate() {
        for (a, &x) in acc.iter_mut().zip(&x[k..k + n]) {
            *a += h * x;
        }
    }
}

/// Converts a whole buffer of mono samples at any rate (8k, 11.025k, 22.05k, 44.1k, 48k…) to `to`, via rubato (offline use: prompts).
///
/// Samples are floats in [-1, 1] (full scale maps to ±32767; beyond clips). The output has
/// `ceil(input.len() * to / from_hz)` samples with rubato's delay trimmed. Empty for a zero
/// `from_hz`.
pub fn convert(input: &[f32], from_hz: u32, to: Rate) -> Vec<i16> {
    let scale = |v: &f32| to_i16(v * 32767.0);
    if input.is_empty() || from_hz == 0 {
        return Vec::new();
    }
    if from_hz == to.hz() {
        return input.iter().map(scale).collect();
    }
    let resampled = InterleavedSlice::new(input, 1, input.len())
        .ok()
        .and_then(|adapter| {
            let mut fft = Fft::<f32>::new(
                from_hz as usize,
                to.hz() as usize,
                1024,
                1,
                FixedSync::Input,
            )
            .ok()?;
            fft.process_all(&adapter, input.len(), None).ok()
        });
    resampled
        .map(|buf| buf.take_data().iter().map(scale).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{amplitude_at, level_dbfs, sine};

    fn run(from: Rate, to: Rate, input: &[i16], frame: usize) -> Vec<i16> {
        let mut r = Resampler::new(from, to);
        assert_eq!((r.from(), r.to()), (from, to));
        let mut out = Vec::new();
        for chunk in input.chunks(frame) {
            let before = out.len();
            r.process(chunk, &mut out);
            if chunk.len() % 2 == 0 {
                assert_eq!(
                    out.len() - before,
                    chunk.len() * to.hz() as usize / from.hz() as usize
                );
            }
        }
        out
    }

    #[test]
    fn tone_8k_to_16k_to_8k_keeps_level() {
        for hz in [300.0, 1000.0, 3000.0] {
            let input = sine(hz, Rate::Nb8k, 1000, -10.0);
            let up = run(Rate::Nb8k, Rate::Wb16k, &input, 160);
            assert_eq!(up.len(), 16_000);
            let back = run(Rate::Wb16k, Rate::Nb8k, &up, 320);
            assert_eq!(back.len(), 8_000);
            let skip = 80; // past the filters' start-up
            let gain_up = level_dbfs(&up[2 * skip..]) - level_dbfs(&input[skip..]);
            let gain = level_dbfs(&back[skip..]) - level_dbfs(&input[skip..]);
            assert!(
                gain_up.abs() < 0.5 && gain.abs() < 0.5,
                "{hz} Hz: up {gain_up:+.2} dB, round trip {gain:+.2} dB"
            );
            println!("{hz} Hz: up {gain_up:+.2} dB, round trip {gain:+.2} dB");
        }
    }

    #[test]
    fn upsampling_adds_no_image() {
        // 1 kHz at 8 kHz images to 7 kHz at 16 kHz without the interpolation filter.
        let up = run(
            Rate::Nb8k,
            Rate::Wb16k,
            &sine(1000.0, Rate::Nb8k, 1000, -10.0),
            160,
        );
        let tone = amplitude_at(&up[..16_000], 1000.0, 16_000);
        let image = amplitude_at(&up[..16_000], 7000.0, 16_000);
        assert!(
            20.0 * (image / tone).log10() < -50.0,
            "image {image} vs tone {tone}"
        );
    }

    #[test]
    fn decimation_suppresses_aliases() {
        for hz in [5000.0, 6000.0, 7000.0] {
            let input = sine(hz, Rate::Wb16k, 1000, -10.0);
            let down = run(Rate::Wb16k, Rate::Nb8k, &input, 320);
            let attenuation = level_dbfs(&input) - level_dbfs(&down[80..]);
            assert!(
                attenuation >= 30.0,
                "{hz} Hz attenuated only {attenuation:.1} dB"
            );
            println!("{hz} Hz at 16 kHz -> 8 kHz: {attenuation:.1} dB down");
        }
    }

    #[test]
    fn odd_chunks_stream_like_whole_frames() {
        let input = sine(700.0, Rate::Wb16k, 200, -10.0);
        let whole = run(Rate::Wb16k, Rate::Nb8k, &input, 320);
        let odd = run(Rate::Wb16k, Rate::Nb8k, &input, 37);
        assert_eq!(whole, odd);
        let input = sine(700.0, Rate::Nb8k, 200, -10.0);
        assert_eq!(
            run(Rate::Nb8k, Rate::Wb16k, &input, 160),
            run(Rate::Nb8k, Rate::Wb16k, &input, 13)
        );
    }

    #[test]
    fn same_rate_is_identity() {
        let input = sine(440.0, Rate::Nb8k, 40, -3.0);
        assert_eq!(run(Rate::Nb8k, Rate::Nb8k, &input, 160), input);
        assert_eq!(run(Rate::Wb16k, Rate::Wb16k, &input, 7), input);
    }

    #[test]
    fn filter_passes_dc_at_unit_gain() {
        let up = run(Rate::Nb8k, Rate::Wb16k, &[1000; 400], 160);
        assert!(
            up[100..].iter().all(|&s| (999..=1001).contains(&s)),
            "{:?}",
            &up[100..110]
        );
        let down = run(Rate::Wb16k, Rate::Nb8k, &[-1000; 400], 320);
        assert!(down[50..].iter().all(|&s| (-1001..=-999).contains(&s)));
        let full = run(
            Rate::Nb8k,
            Rate::Wb16k,
            &[i16::MAX, i16::MIN].repeat(200),
            160,
        );
        assert_eq!(full.len(), 800); // saturates, no overflow
    }

    /// Zero crossings going up, as a frequency estimate over `samples`.
    fn rising_crossings(samples: &[i16]) -> usize {
        samples.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count()
    }

    #[test]
    fn convert_keeps_frequency_and_length() {
        // A 22,050 Hz prompt (espeak-ng's rate) of a 440 Hz sine, 2 s.
        let from = 22_050u32;
        let input: Vec<f32> = (0..2 * from)
            .map(|i| 0.5 * (2.0 * PI * 440.0 * f64::from(i) / f64::from(from)).sin() as f32)
            .collect();
        for to in [Rate::Nb8k, Rate::Wb16k] {
            let out = convert(&input, from, to);
            let expected =
                (input.len() as u64 * u64::from(to.hz())).div_ceil(u64::from(from)) as usize;
            assert_eq!(out.len(), expected, "{to:?}");
            assert!(
                (rising_crossings(&out) as i64 - 880).abs() <= 1,
                "{to:?}: {}",
                rising_crossings(&out)
            );
            let level = level_dbfs(&out[100..out.len() - 100]);
            assert!((level - -6.02).abs() < 0.2, "{to:?}: {level} dBFS");
        }
    }

    #[test]
    fn convert_other_rates() {
        for from in [8_000u32, 11_025, 16_000, 44_100, 48_000, 8_001] {
            let input: Vec<f32> = (0..from)
                .map(|i| 0.5 * (2.0 * PI * 1000.0 * f64::from(i) / f64::from(from)).sin() as f32)
                .collect();
            let out = convert(&input, from, Rate::Nb8k);
            assert_eq!(out.len(), 8000, "{from}");
            assert!(
                (rising_crossings(&out) as i64 - 1000).abs() <= 1,
                "{from}: {}",
                rising_crossings(&out)
            );
        }
        assert!(convert(&[0.5; 10], 0, Rate::Nb8k).is_empty());
        assert!(convert(&[], 44_100, Rate::Nb8k).is_empty());
        assert_eq!(
            convert(&[1.0, -1.0, 2.0, 0.0], 8000, Rate::Nb8k),
            [32767, -32767, 32767, 0]
        );
    }
}
