//! N-party audio mixer for conferences and supervisor listen/whisper/barge.
//!
//! One call of [`Mixer::mix`] is one 20 ms tick: each party's frame goes in, each
//! listener's mix comes out. Sums run in an `i32` accumulator and are saturated to
//! `i16` once, at the end, so three loud parties clip instead of wrapping.

/// N-party mixer for one 20 ms tick: every listener gets the sum of the parties it
/// hears (by default all but itself), saturated to i16.
///
/// Frames shorter than `frame_len` count as zero-padded, longer ones are cut.
#[derive(Debug)]
pub struct Mixer {
    frame_len: usize,
    /// Sum of every input of the tick, one slot per sample.
    total: Vec<i32>,
}

impl Mixer {
    /// A mixer for frames of `frame_len` samples (see [`crate::audio::Rate::frame_len`]).
    pub fn new(frame_len: usize) -> Self {
        Self {
            frame_len,
            total: vec![0; frame_len],
        }
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// inputs[i]: party i's frame this tick (None when silent/absent); outputs[i] is
    /// overwritten with what party i hears (N-1 mix). Outputs are resized to frame_len.
    ///
    /// Sums every input once, then takes each listener's own input back out: O(N).
    /// Listeners without an input slot (`i >= inputs.len()`) hear everyone.
    pub fn mix(&mut self, inputs: &[Option<&[i16]>], outputs: &mut [Vec<i16>]) {
        self.sum_into_total(inputs);
        for (listener, out) in outputs.iter_mut().enumerate() {
            let own = inputs.get(listener).copied().flatten().unwrap_or(&[]);
            out.clear();
            out.extend(self.total.iter().enumerate().map(|(n, &t)| {
                let mine = own.get(n).copied().map_or(0, i32::from);
                saturate(t - mine)
            }));
        }
    }

    /// Same, with a rule: hears(listener, talker) -> bool (for supervisor
    /// listen/whisper/barge later).
    ///
    /// The rule alone decides, including whether a party hears itself
    /// (`hears(i, i)`); [`Mixer::mix`] is this with `listener != talker`. O(N²).
    pub fn mix_with(
        &mut self,
        inputs: &[Option<&[i16]>],
        outputs: &mut [Vec<i16>],
        hears: impl Fn(usize, usize) -> bool,
    ) {
        for (listener, out) in outputs.iter_mut().enumerate() {
            self.total.iter_mut().for_each(|t| *t = 0);
            for (talker, frame) in inputs.iter().enumerate() {
                if let Some(frame) = frame {
                    if hears(listener, talker) {
                        accumulate(&mut self.total, frame);
                    }
                }
            }
            write_saturated(&self.total, out);
        }
    }

    /// The sum of all inputs (for a mono recording of a conference).
    pub fn mix_all(&mut self, inputs: &[Option<&[i16]>], out: &mut Vec<i16>) {
        self.sum_into_total(inputs);
        write_saturated(&self.total, out);
    }

    fn sum_into_total(&mut self, inputs: &[Option<&[i16]>]) {
        self.total.iter_mut().for_each(|t| *t = 0);
        for frame in inputs.iter().flatten() {
            accumulate(&mut self.total, frame);
        }
    }
}

/// Adds `frame` into `acc`; a longer frame is cut to the accumulator's length.
fn accumulate(acc: &mut [i32], frame: &[i16]) {
    for (a, &s) in acc.iter_mut().zip(frame) {
        *a += i32::from(s);
    }
}

fn write_saturated(acc: &[i32], out: &mut Vec<i16>) {
    out.clear();
    out.extend(acc.iter().map(|&s| saturate(s)));
}

fn saturate(s: i32) -> i16 {
    // Lossless after the clamp.
    s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = 160;

    fn tone(hz: f64, amp: f64) -> Vec<i16> {
        (0..LEN)
            .map(|n| (amp * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// Correlation of `x` with a reference tone, normalized to the tone's energy:
    /// about 1.0 when the tone is present at full amplitude, about 0 when absent.
    fn presence(x: &[i16], reference: &[i16]) -> f64 {
        let dot: f64 = x
            .iter()
            .zip(reference)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let energy: f64 = reference.iter().map(|&b| b as f64 * b as f64).sum();
        dot / energy
    }

    #[test]
    fn three_parties_hear_the_other_two() {
        // 400, 600 and 1000 Hz are orthogonal over 20 ms at 8 kHz (whole cycles).
        let frames = [
            tone(400.0, 5000.0),
            tone(600.0, 5000.0),
            tone(1000.0, 5000.0),
        ];
        let inputs: Vec<Option<&[i16]>> = frames.iter().map(|f| Some(f.as_slice())).collect();
        let mut outputs = vec![Vec::new(); 3];
        let mut mixer = Mixer::new(LEN);
        mixer.mix(&inputs, &mut outputs);
        for (listener, out) in outputs.iter().enumerate() {
            assert_eq!(out.len(), LEN);
            for (talker, frame) in frames.iter().enumerate() {
                let p = presence(out, frame);
                if listener == talker {
                    assert!(p.abs() < 0.01, "party {listener} hears itself: {p}");
                } else {
                    assert!(
                        (p - 1.0).abs() < 0.01,
                        "party {listener} misses {talker}: {p}"
                    );
                }
            }
        }
        // Exactly the sum of the other two, sample by sample.
        let expected: Vec<i16> = (0..LEN).map(|n| frames[1][n] + frames[2][n]).collect();
        assert_eq!(outputs[0], expected);
    }

    #[test]
    fn absent_and_short_inputs() {
        let a = vec![100i16; LEN];
        let b = vec![7i16; 10];
        let inputs: [Option<&[i16]>; 3] = [Some(&a), None, Some(&b)];
        let mut outputs = vec![vec![1, 2, 3], Vec::new(), vec![0; 999], Vec::new()];
        Mixer::new(LEN).mix(&inputs, &mut outputs);
        assert!(outputs.iter().all(|o| o.len() == LEN));
        assert_eq!(&outputs[0][..10], &[7; 10]);
        assert_eq!(&outputs[0][10..], &[0; LEN - 10][..]);
        assert_eq!(&outputs[1][..10], &[107; 10]);
        assert_eq!(&outputs[1][10..], &[100; LEN - 10][..]);
        assert_eq!(outputs[2], a);
        // A listener with no input slot hears everyone.
        assert_eq!(outputs[3], outputs[1]);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let loud = vec![30_000i16; LEN];
        let low = vec![-30_000i16; LEN];
        let inputs: [Option<&[i16]>; 4] = [Some(&loud), Some(&loud), Some(&loud), Some(&low)];
        let mut outputs = vec![Vec::new(); 4];
        let mut mixer = Mixer::new(LEN);
        mixer.mix(&inputs, &mut outputs);
        // 0 hears 30000 + 30000 - 30000 = 30000: the accumulator is exact before the clamp.
        assert!(outputs[0].iter().all(|&s| s == 30_000));
        // 3 hears 90000 -> clipped.
        assert!(outputs[3].iter().all(|&s| s == i16::MAX));
        let mut all = Vec::new();
        mixer.mix_all(&inputs, &mut all);
        assert!(all.iter().all(|&s| s == i16::MAX));
        let negative = [Some(&low[..]), Some(&low[..])];
        mixer.mix_all(&negative, &mut all);
        assert!(all.iter().all(|&s| s == i16::MIN));
    }

    #[test]
    fn whisper_matrix() {
        // 0 = caller, 1 = agent, 2 = supervisor whispering to the agent.
        let frames = [
            tone(400.0, 5000.0),
            tone(600.0, 5000.0),
            tone(1000.0, 5000.0),
        ];
        let inputs: Vec<Option<&[i16]>> = frames.iter().map(|f| Some(f.as_slice())).collect();
        let hears = |listener: usize, talker: usize| match (listener, talker) {
            (l, t) if l == t => false,
            (0, 2) => false, // the caller never hears the supervisor
            _ => true,
        };
        let mut outputs = vec![Vec::new(); 3];
        Mixer::new(LEN).mix_with(&inputs, &mut outputs, hears);
        let heard =
            |listener: usize, talker: usize| presence(&outputs[listener], &frames[talker]) > 0.5;
        assert!(heard(0, 1) && !heard(0, 2) && !heard(0, 0));
        assert!(heard(1, 0) && heard(1, 2) && !heard(1, 1));
        assert!(heard(2, 0) && heard(2, 1) && !heard(2, 2));

        // mix_with(listener != talker) is mix.
        let mut plain = vec![Vec::new(); 3];
        let mut mixer = Mixer::new(LEN);
        mixer.mix(&inputs, &mut plain);
        let mut ruled = vec![Vec::new(); 3];
        mixer.mix_with(&inputs, &mut ruled, |l, t| l != t);
        assert_eq!(plain, ruled);
    }

    #[test]
    fn mix_all_sums_everyone() {
        let a = vec![1000i16; LEN];
        let b = vec![-250i16; LEN];
        let mut out = Vec::new();
        Mixer::new(LEN).mix_all(&[Some(&a), None, Some(&b)], &mut out);
        assert_eq!(out, vec![750; LEN]);
    }
}
