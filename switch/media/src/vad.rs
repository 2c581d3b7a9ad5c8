//! Voice activity detection (webrtc-vad, the WebRTC GMM detector) with start and
//! hangover smoothing, for barge-in over prompts and end-of-utterance detection
//! before speech recognition.
//!
//! The raw detector decides per 20 ms frame; single frames flip often (clicks,
//! breaths, the gaps between words). [`SpeechDetector`] turns that into talkspurts:
//!
//! ```text
//!            speech frames for >= start_ms                  (emit SpeechStart)
//!  Silence ────────────────────────────────────► Speech
//!     ▲                                            │
//!     └──── non-speech frames for >= hangover_ms ──┘        (emit SpeechEnd)
//! ```
//!
//! A non-speech frame while starting resets the count; a speech frame during the
//! hangover cancels it.
//!
//! webrtc-vad has a hangover of its own: after a speech frame it keeps answering
//! "speech" for a few frames (60 ms in modes 2-3 after a short burst, up to 100 ms
//! after a long one; more in modes 0-1). So a 40 ms click already counts as 100 ms
//! of speech, and talkspurt durations include that tail.

use webrtc_vad::{SampleRate, Vad, VadMode};

use crate::audio::{Rate, PTIME_MS};

/// A talkspurt boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech has lasted `start_ms`; it began that long ago.
    SpeechStart,
    /// Silence has lasted `hangover_ms`. `duration_ms` runs from the first speech
    /// frame to the last one (the hangover is not included).
    SpeechEnd {
        /// Length of the talkspurt.
        duration_ms: u32,
    },
}

/// Detector settings.
#[derive(Clone, Copy, Debug)]
pub struct VadConfig {
    /// webrtc-vad mode 0..=3 (quality, low bitrate, aggressive, very aggressive);
    /// higher flags less noise as speech. Larger values count as 3. Default 2.
    pub aggressiveness: u8,
    /// Speech needed to start (default 60 ms).
    pub start_ms: u32,
    /// Silence needed to end (default 500 ms).
    pub hangover_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            aggressiveness: 2,
            start_ms: 60,
            hangover_ms: 500,
        }
    }
}

/// Talkspurt detector for one leg: webrtc-vad per 20 ms frame, smoothed by
/// `start_ms` and `hangover_ms` (see the module diagram).
///
/// Not `Send` (webrtc-vad holds a raw pointer): keep it on the thread of its leg.
pub struct SpeechDetector {
    vad: Vad,
    frame_len: usize,
    cfg: VadConfig,
    in_speech: bool,
    /// Consecutive speech frames while silent, in ms.
    onset_ms: u32,
    /// Consecutive non-speech frames while in speech, in ms.
    silence_ms: u32,
    /// Talkspurt length up to its last speech frame, in ms.
    speech_ms: u32,
    /// A frame of the wrong length, padded or cut to `frame_len`.
    scratch: Vec<i16>,
}

impl std::fmt::Debug for SpeechDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechDetector")
            .field("frame_len", &self.frame_len)
            .field("cfg", &self.cfg)
            .field("in_speech", &self.in_speech)
            .field("speech_ms", &self.speech_ms)
            .finish_non_exhaustive()
    }
}

impl SpeechDetector {
    /// A detector for 20 ms frames at `rate`.
    pub fn new(rate: Rate, cfg: VadConfig) -> Self {
        let sample_rate = match rate {
            Rate::Nb8k => SampleRate::Rate8kHz,
            Rate::Wb16k => SampleRate::Rate16kHz,
        };
        let mode = match cfg.aggressiveness {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        Self {
            vad: Vad::new_with_rate_and_mode(sample_rate, mode),
            frame_len: rate.frame_len(),
            cfg,
            in_speech: false,
            onset_ms: 0,
            silence_ms: 0,
            speech_ms: 0,
            scratch: vec![0; rate.frame_len()],
        }
    }

    /// One 20 ms frame at `rate`.
    ///
    /// A frame of another length is padded with zeros or cut (webrtc-vad accepts
    /// only 10, 20 or 30 ms).
    pub fn process(&mut self, frame: &[i16]) -> Option<VadEvent> {
        let voiced = self.is_voiced(frame);
        if !self.in_speech {
            if !voiced {
                self.onset_ms = 0;
                return None;
            }
            self.onset_ms += PTIME_MS;
            if self.onset_ms < self.cfg.start_ms {
                return None;
            }
            self.in_speech = true;
            self.speech_ms = self.onset_ms;
            self.onset_ms = 0;
            self.silence_ms = 0;
            return Some(VadEvent::SpeechStart);
        }
        if voiced {
            self.speech_ms += self.silence_ms + PTIME_MS;
            self.silence_ms = 0;
            return None;
        }
        self.silence_ms += PTIME_MS;
        if self.silence_ms < self.cfg.hangover_ms {
            return None;
        }
        let duration_ms = self.speech_ms;
        self.in_speech = false;
        self.silence_ms = 0;
        self.speech_ms = 0;
        Some(VadEvent::SpeechEnd { duration_ms })
    }

    /// Whether a talkspurt is open (between `SpeechStart` and `SpeechEnd`).
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Back to silence without an event (after a prompt restarts, say).
    pub fn reset(&mut self) {
        self.vad.reset();
        self.in_speech = false;
        self.onset_ms = 0;
        self.silence_ms = 0;
        self.speech_ms = 0;
    }

    fn is_voiced(&mut self, frame: &[i16]) -> bool {
        let frame = if frame.len() == self.frame_len {
            frame
        } else {
            let n = frame.len().min(self.frame_len);
            self.scratch[..n].copy_from_slice(&frame[..n]);
            self.scratch[n..].fill(0);
            &self.scratch
        };
        // Err only for a frame length it does not take, excluded above.
        self.vad.is_voice_segment(frame).unwrap_or(false)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// `text` spoken by espeak-ng with `voice` at `wpm` words per minute, resampled
    /// by sox to `rate`; `None` when either tool (or the voice) is missing.
    pub(crate) fn espeak(text: &str, voice: &str, wpm: u32, rate: Rate) -> Option<Vec<i16>> {
        let dir = tempfile::tempdir().ok()?;
        let raw = dir.path().join("speech.wav");
        let resampled = dir.path().join("speech-resampled.wav");
        let spoke = Command::new("espeak-ng")
            .args(["-v", voice, "-s", &wpm.to_string(), "-w"])
            .arg(&raw)
            .arg(text)
            .output()
            .ok()?;
        if !spoke.status.success() {
            return None;
        }
        let converted = Command::new("sox")
            .arg(&raw)
            .args(["-r", &rate.hz().to_string(), "-c", "1", "-b", "16"])
            .arg(&resampled)
            .output()
            .ok()?;
        if !converted.status.success() {
            return None;
        }
        let mut reader = hound::WavReader::open(&resampled).ok()?;
        reader.samples::<i16>().collect::<Result<Vec<_>, _>>().ok()
    }

    /// A sustained, syllable-modulated vowel: harmonics of a 120-160 Hz gliding
    /// pitch shaped by /a/ formants.
    fn vowel(rate: Rate, ms: usize) -> Vec<i16> {
        let hz = f64::from(rate.hz());
        let formants = [(730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)];
        let gain = |f: f64| -> f64 {
            formants
                .iter()
                .map(|&(fc, bw): &(f64, f64)| {
                    let r = f / fc;
                    1.0 / ((1.0 - r * r).powi(2) + (f * bw / (fc * fc)).powi(2)).sqrt()
                })
                .product::<f64>()
        };
        let mut phase = 0.0f64;
        (0..ms * rate.per_ms())
            .map(|i| {
                let t = i as f64 / hz;
                let f0 = 140.0 + 20.0 * (2.0 * std::f64::consts::PI * 1.5 * t).sin();
                phase += 2.0 * std::f64::consts::PI * f0 / hz;
                let am = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                let s: f64 = (1..25)
                    .map(|k| gain(k as f64 * f0) / k as f64 * (k as f64 * phase).sin())
                    .sum();
                (s * am * 800.0).clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    fn events(det: &mut SpeechDetector, pcm: &[i16], frame_len: usize) -> Vec<(usize, VadEvent)> {
        pcm.chunks(frame_len)
            .enumerate()
            .filter_map(|(i, f)| det.process(f).map(|e| (i * PTIME_MS as usize, e)))
            .collect()
    }

    #[test]
    fn silence_is_not_speech() {
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            let mut det = SpeechDetector::new(rate, VadConfig::default());
            let silence = vec![0i16; 5 * rate.hz() as usize];
            assert_eq!(events(&mut det, &silence, rate.frame_len()), vec![]);
            assert!(!det.in_speech());
        }
    }

    #[test]
    fn a_vowel_starts_and_ends_a_talkspurt() {
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            let mut pcm = vec![0i16; 500 * rate.per_ms()];
            pcm.extend(vowel(rate, 1500));
            pcm.extend(vec![0i16; 1500 * rate.per_ms()]);
            let mut det = SpeechDetector::new(rate, VadConfig::default());
            let got = events(&mut det, &pcm, rate.frame_len());
            assert_eq!(got.len(), 2, "{rate:?}: {got:?}");
            let (start_at, start) = got[0];
            let (end_at, end) = got[1];
            assert_eq!(start, VadEvent::SpeechStart);
            // Starts 60 ms (three frames) into the vowel, give or take the onset.
            assert!(
                (540..=640).contains(&start_at),
                "{rate:?}: start at {start_at}"
            );
            let VadEvent::SpeechEnd { duration_ms } = end else {
                panic!("{end:?}");
            };
            assert!(
                (1400..=1600).contains(&duration_ms),
                "{rate:?}: {duration_ms}"
            );
            // Ends after the 500 ms hangover.
            let silence_from = 2000;
            assert!(
                (silence_from + 480..=silence_from + 640).contains(&end_at),
                "{rate:?}: end at {end_at}"
            );
            assert!(!det.in_speech());
        }
    }

    #[test]
    fn short_blips_do_not_start_and_short_gaps_do_not_end() {
        let rate = Rate::Nb8k;
        let cfg = VadConfig {
            start_ms: 120,
            hangover_ms: 300,
            ..VadConfig::default()
        };
        let mut det = SpeechDetector::new(rate, cfg);
        // 20 ms blips separated by silence never reach 120 ms (webrtc-vad itself
        // holds speech for 60-100 ms after it, see the module docs).
        let mut pcm = Vec::new();
        for _ in 0..5 {
            pcm.extend(vowel(rate, 20));
            pcm.extend(vec![0i16; 200 * rate.per_ms()]);
        }
        assert_eq!(events(&mut det, &pcm, rate.frame_len()), vec![]);
        // Speech with a 100 ms gap stays one talkspurt.
        let mut pcm = vowel(rate, 600);
        pcm.extend(vec![0i16; 100 * rate.per_ms()]);
        pcm.extend(vowel(rate, 600));
        pcm.extend(vec![0i16; 600 * rate.per_ms()]);
        let got: Vec<VadEvent> = events(&mut det, &pcm, rate.frame_len())
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], VadEvent::SpeechStart);
        assert!(
            matches!(got[1], VadEvent::SpeechEnd { duration_ms } if (1200..=1500).contains(&duration_ms)),
            "{got:?}"
        );
    }

    #[test]
    fn odd_frame_lengths_do_not_panic() {
        let mut det = SpeechDetector::new(
            Rate::Nb8k,
            VadConfig {
                aggressiveness: 9,
                ..VadConfig::default()
            },
        );
        assert_eq!(det.process(&[]), None);
        assert_eq!(det.process(&[0; 7]), None);
        assert_eq!(det.process(&[0; 1000]), None);
    }

    #[test]
    fn real_speech_is_one_or_more_talkspurts() {
        let text = "please hold while we connect your call, one two three four five six seven eight nine zero";
        for rate in [Rate::Nb8k, Rate::Wb16k] {
            let Some(speech) = espeak(text, "en", 175, rate) else {
                eprintln!("espeak-ng or sox missing: skipping the real speech VAD test");
                return;
            };
            let mut pcm = vec![0i16; 300 * rate.per_ms()];
            pcm.extend(&speech);
            pcm.extend(vec![0i16; 1000 * rate.per_ms()]);
            let mut det = SpeechDetector::new(rate, VadConfig::default());
            let got = events(&mut det, &pcm, rate.frame_len());
            // Start, end, start, end, ...
            assert!(!got.is_empty(), "{rate:?}: no speech found");
            let alternating = got.chunks(2).all(|pair| {
                matches!(
                    pair,
                    [(_, VadEvent::SpeechStart), (_, VadEvent::SpeechEnd { .. })]
                )
            });
            assert!(alternating, "{rate:?}: {got:?}");
            // Most of the utterance is inside talkspurts.
            let spoken: u32 = got
                .iter()
                .filter_map(|e| match e.1 {
                    VadEvent::SpeechEnd { duration_ms } => Some(duration_ms),
                    VadEvent::SpeechStart => None,
                })
                .sum();
            let speech_ms = (speech.len() / rate.per_ms()) as u32;
            assert!(
                spoken * 10 >= speech_ms * 6,
                "{rate:?}: {spoken} of {speech_ms} ms: {got:?}"
            );
            // The first talkspurt starts near the start of the speech.
            assert!(got[0].0 < 300 + 400, "{rate:?}: {got:?}");
        }
    }
}
