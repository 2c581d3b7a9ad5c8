//! Call recording: 16-bit PCM WAV, written one 20 ms tick at a time.
//!
//! The recorder never reads the clock: every tick the call's media loop hands it
//! both sides' frames, so the file's timeline is the call's timeline. Pausing (for
//! card numbers, say) writes silence instead of audio for the same reason.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use crate::audio::Rate;

/// How the two sides of a call are laid out in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// caller and agent mixed into one channel
    Mono,
    /// left = caller (leg A), right = agent/callee (leg B)
    Stereo,
}

impl Layout {
    /// Channels in the file.
    pub const fn channels(self) -> u16 {
        match self {
            Layout::Mono => 1,
            Layout::Stereo => 2,
        }
    }
}

/// Why a recording failed. Every variant is on our side: the file, not a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Creating, writing or seeking the file failed.
    #[error("recording I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The WAV encoder refused (for example, the file outgrew the 4 GiB WAV limit).
    #[error("recording WAV encoding failed: {0}")]
    Wav(hound::Error),
}

impl From<hound::Error> for RecordError {
    fn from(e: hound::Error) -> Self {
        match e {
            hound::Error::IoError(io) => RecordError::Io(io),
            other => RecordError::Wav(other),
        }
    }
}

/// What a finished recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordingInfo {
    /// Samples per channel.
    pub samples: u64,
    /// Length of the audio, rounded down to the millisecond.
    pub duration_ms: u64,
}

/// 16-bit PCM WAV writer of one call, one tick (20 ms) at a time.
///
/// Dropping it without [`Recorder::finalize`] still finalizes the header (hound
/// does that on drop) but swallows any error.
pub struct Recorder<W: Write + Seek> {
    wav: hound::WavWriter<W>,
    rate: Rate,
    layout: Layout,
    paused: bool,
    /// Samples per channel written so far.
    samples: u64,
}

impl<W: Write + Seek> std::fmt::Debug for Recorder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("rate", &self.rate)
            .field("layout", &self.layout)
            .field("paused", &self.paused)
            .field("samples", &self.samples)
            .finish()
    }
}

impl<W: Write + Seek> Recorder<W> {
    /// Starts a WAV file on `writer` (the header is written now, sizes at finalize).
    pub fn new(writer: W, rate: Rate, layout: Layout) -> Result<Self, RecordError> {
        let spec = hound::WavSpec {
            channels: layout.channels(),
            sample_rate: rate.hz(),
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(Self {
            wav: hound::WavWriter::new(writer, spec)?,
            rate,
            layout,
            paused: false,
            samples: 0,
        })
    }

    /// One tick: `left` and `right` are the two sides' 20 ms frames at `rate` (either
    /// may be shorter/empty: padded with zeros). Mono sums with saturation.
    ///
    /// A tick is `rate.frame_len()` samples, or the longer of the two frames if one
    /// is longer (no audio is cut).
    pub fn write(&mut self, left: &[i16], right: &[i16]) -> Result<(), RecordError> {
        let len = self.rate.frame_len().max(left.len()).max(right.len());
        for n in 0..len {
            let (l, r) = if self.paused {
                (0, 0)
            } else {
                (
                    left.get(n).copied().unwrap_or(0),
                    right.get(n).copied().unwrap_or(0),
                )
            };
            match self.layout {
                Layout::Mono => self.wav.write_sample(l.saturating_add(r))?,
                Layout::Stereo => {
                    self.wav.write_sample(l)?;
                    self.wav.write_sample(r)?;
                }
            }
        }
        self.samples += len as u64;
        Ok(())
    }

    /// While paused, silence is written so the file's timeline stays aligned with the call.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Ends a pause: the next tick records audio again.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Whether ticks are being replaced by silence.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Samples per channel written so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Writes the final sizes into the header and flushes.
    pub fn finalize(self) -> Result<RecordingInfo, RecordError> {
        let samples = self.samples;
        let hz = u64::from(self.rate.hz());
        self.wav.finalize()?;
        Ok(RecordingInfo {
            samples,
            duration_ms: samples * 1000 / hz,
        })
    }
}

/// Creates (or truncates) `path` and starts a recording into it.
pub fn create_file(
    path: &Path,
    rate: Rate,
    layout: Layout,
) -> Result<Recorder<BufWriter<File>>, RecordError> {
    let file = File::create(path)?;
    Recorder::new(BufWriter::new(file), rate, layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn ramp(start: i16, len: usize) -> Vec<i16> {
        (0..len).map(|n| start.wrapping_add(n as i16)).collect()
    }

    fn read_back(bytes: Vec<u8>) -> (hound::WavSpec, Vec<i16>) {
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let spec = reader.spec();
        let samples = reader.samples::<i16>().map(Result::unwrap).collect();
        (spec, samples)
    }

    #[test]
    fn stereo_file_keeps_each_side_in_its_channel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut rec = create_file(&path, Rate::Nb8k, Layout::Stereo).unwrap();
        for tick in 0..50 {
            rec.write(&ramp(tick * 600, 160), &ramp(-tick * 100, 160))
                .unwrap();
        }
        let info = rec.finalize().unwrap();
        assert_eq!(
            info,
            RecordingInfo {
                samples: 50 * 160,
                duration_ms: 1000
            }
        );

        let mut reader = hound::WavReader::open(&path).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(reader.duration(), 8000);
        let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
        for tick in 0..50i16 {
            let at = tick as usize * 160..(tick as usize + 1) * 160;
            assert_eq!(left[at.clone()], ramp(tick * 600, 160)[..]);
            assert_eq!(right[at], ramp(-tick * 100, 160)[..]);
        }
    }

    #[test]
    fn mono_sums_with_saturation_and_pads_short_frames() {
        let mut bytes = Cursor::new(Vec::new());
        let mut rec = Recorder::new(&mut bytes, Rate::Wb16k, Layout::Mono).unwrap();
        rec.write(&[1000; 320], &[-300; 320]).unwrap();
        rec.write(&[30_000; 320], &[30_000; 320]).unwrap();
        rec.write(&[5; 100], &[]).unwrap();
        let info = rec.finalize().unwrap();
        assert_eq!(
            info,
            RecordingInfo {
                samples: 3 * 320,
                duration_ms: 60
            }
        );

        let (spec, samples) = read_back(bytes.into_inner());
        assert_eq!((spec.channels, spec.sample_rate), (1, 16_000));
        assert_eq!(samples.len(), 960);
        assert!(samples[..320].iter().all(|&s| s == 700));
        assert!(samples[320..640].iter().all(|&s| s == i16::MAX));
        assert!(samples[640..740].iter().all(|&s| s == 5));
        assert!(samples[740..].iter().all(|&s| s == 0));
    }

    #[test]
    fn pause_writes_silence_and_keeps_the_timeline() {
        let mut bytes = Cursor::new(Vec::new());
        let mut rec = Recorder::new(&mut bytes, Rate::Nb8k, Layout::Stereo).unwrap();
        rec.write(&[10; 160], &[20; 160]).unwrap();
        rec.pause();
        assert!(rec.is_paused());
        for _ in 0..3 {
            rec.write(&[10; 160], &[20; 160]).unwrap();
        }
        rec.resume();
        assert!(!rec.is_paused());
        rec.write(&[10; 160], &[20; 160]).unwrap();
        let info = rec.finalize().unwrap();
        assert_eq!(
            info,
            RecordingInfo {
                samples: 5 * 160,
                duration_ms: 100
            }
        );

        let (_, samples) = read_back(bytes.into_inner());
        assert_eq!(samples.len(), 2 * 5 * 160);
        let (first, rest) = samples.split_at(2 * 160);
        let (paused, last) = rest.split_at(2 * 3 * 160);
        assert!(first.chunks(2).all(|lr| lr == [10, 20]));
        assert!(paused.iter().all(|&s| s == 0));
        assert!(last.chunks(2).all(|lr| lr == [10, 20]));
    }

    #[test]
    fn a_longer_frame_is_kept_whole() {
        let mut bytes = Cursor::new(Vec::new());
        let mut rec = Recorder::new(&mut bytes, Rate::Nb8k, Layout::Mono).unwrap();
        rec.write(&[1; 240], &[]).unwrap();
        assert_eq!(rec.finalize().unwrap().samples, 240);
    }
}
