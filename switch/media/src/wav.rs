//! Prompts: WAV files read into mono PCM at an internal rate, played frame by frame.
//!
//! PCM and float WAVs are read with hound; G.711 A-law/µ-law WAVs (format tags 6 and 7,
//! common for telephony prompts) are decoded here. The RIFF chunks are scanned first so an
//! unsupported file is named precisely ("unsupported format: 64-bit float").

use crate::audio::Rate;
use crate::codec::g711;
use crate::resample;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a WAV file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// Reading the bytes failed.
    #[error("cannot read WAV: {0}")]
    Io(#[from] std::io::Error),
    /// Opening or reading a file failed.
    #[error("cannot read WAV file {}: {source}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The bytes are not a RIFF/WAVE file.
    #[error("not a WAV file: {0}")]
    NotWav(&'static str),
    /// A WAV file, but of an encoding we do not decode.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// A WAV file whose header or data is inconsistent.
    #[error("malformed WAV: {0}")]
    Malformed(String),
}

/// Mono PCM ready to play.
#[derive(Clone, Debug)]
pub struct Prompt {
    /// Sample rate of `samples`.
    pub rate: Rate,
    /// The audio.
    pub samples: Arc<[i16]>,
}

impl Prompt {
    /// A prompt of `samples` at `rate` (for audio made elsewhere, e.g. speech synthesis).
    pub fn new(rate: Rate, samples: impl Into<Arc<[i16]>>) -> Self {
        Prompt {
            rate,
            samples: samples.into(),
        }
    }

    /// Length in milliseconds (rounded down).
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.rate.hz())
    }
}

/// Reads any common WAV (PCM 8/16/24/32-bit int, 32-bit float; mono or several channels, downmixed; any sample rate) into mono PCM at `rate`.
///
/// Also reads 8-bit G.711 A-law and µ-law WAVs. Channels are averaged. A data chunk cut
/// short (a recording that was never finalized) loads as far as it goes. The whole file is
/// read into memory first (prompts are short); call it off the media path.
pub fn load<R: Read>(mut reader: R, rate: Rate) -> Result<Prompt, WavError> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes)?;
    let (format, data) = scan(&bytes)?;
    let data = data.ok_or_else(|| WavError::Malformed("no data chunk".into()))?;
    let mono = match (format.tag, format.bits) {
        (TAG_PCM, 8 | 16 | 24 | 32) | (TAG_FLOAT, 32) => {
            // A data chunk cut short: read the whole frames that are there.
            let frames = data.len() / usize::from(format.block_align.max(1));
            read_with_hound(&bytes, &format, frames)?
        }
        (TAG_ALAW | TAG_ULAW, 8) => {
            let decode = if format.tag == TAG_ALAW {
                g711::alaw_decode
            } else {
                g711::ulaw_decode
            };
            downmix(
                bytes[data].iter().map(|&c| f32::from(decode(c)) / 32768.0),
                format.channels,
            )
        }
        _ => return Err(WavError::Unsupported(format.describe())),
    };
    Ok(Prompt::new(
        rate,
        resample::convert(&mono, format.rate, rate),
    ))
}

/// Reads the WAV file at `path` (see [`load`]).
pub fn load_file(path: &Path, rate: Rate) -> Result<Prompt, WavError> {
    let file = std::fs::File::open(path).map_err(|source| WavError::File {
        path: path.to_owned(),
        source,
    })?;
    load(std::io::BufReader::new(file), rate).map_err(|e| match e {
        WavError::Io(source) => WavError::File {
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

const TAG_PCM: u16 = 0x0001;
const TAG_FLOAT: u16 = 0x0003;
const TAG_ALAW: u16 = 0x0006;
const TAG_ULAW: u16 = 0x0007;
const TAG_EXTENSIBLE: u16 = 0xFFFE;

/// What the `fmt ` chunk says (for WAVE_FORMAT_EXTENSIBLE, the sub-format's tag).
#[derive(Clone, Copy, Debug)]
struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    block_align: u16,
    bits: u16,
}

impl Format {
    fn describe(&self) -> String {
        let bits = self.bits;
        match self.tag {
            TAG_PCM => format!("{bits}-bit integer PCM"),
            TAG_FLOAT => format!("{bits}-bit float"),
            TAG_ALAW => format!("{bits}-bit A-law"),
            TAG_ULAW => format!("{bits}-bit µ-law"),
            0x0002 => "Microsoft ADPCM".into(),
            0x0011 => "IMA ADPCM".into(),
            0x0031 => "GSM 6.10".into(),
            0x0055 => "MP3".into(),
            0x0064 | 0x0040 => "G.721 ADPCM".into(),
            0x0065 => "G.722".into(),
            tag => format!("format tag {tag:#06x}"),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walks the RIFF chunks: the format, and where the data is (clamped to the bytes present).
fn scan(bytes: &[u8]) -> Result<(Format, Option<Range<usize>>), WavError> {
    if bytes.len() < 12 {
        return Err(WavError::NotWav("shorter than a RIFF header"));
    }
    match (&bytes[..4], &bytes[8..12]) {
        (b"RIFF", b"WAVE") => {}
        (b"RF64", b"WAVE") => return Err(WavError::Unsupported("RF64 (WAV over 4 GiB)".into())),
        (b"RIFF", _) => return Err(WavError::NotWav("a RIFF file, but not WAVE")),
        _ => return Err(WavError::NotWav("no RIFF header")),
    }
    let (mut format, mut data) = (None, None);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let size = u32_at(bytes, at + 4) as usize;
        let body = at + 8..(at + 8).saturating_add(size).min(bytes.len());
        match &bytes[at..at + 4] {
            b"fmt " => format = Some(parse_fmt(&bytes[body.clone()])?),
            b"data" => data = Some(body.clone()),
            _ => {}
        }
        at = body.start.saturating_add(size).saturating_add(size & 1);
    }
    let format = format.ok_or_else(|| WavError::Malformed("no fmt chunk".into()))?;
    if format.channels == 0 {
        return Err(WavError::Malformed("zero channels".into()));
    }
    if format.rate == 0 {
        return Err(WavError::Malformed("sample rate 0".into()));
    }
    Ok((format, data))
}

fn parse_fmt(fmt: &[u8]) -> Result<Format, WavError> {
    if fmt.len() < 16 {
        return Err(WavError::Malformed(format!(
            "fmt chunk of {} bytes",
            fmt.len()
        )));
    }
    let mut format = Format {
        tag: u16_at(fmt, 0),
        channels: u16_at(fmt, 2),
        rate: u32_at(fmt, 4),
        block_align: u16_at(fmt, 12),
        bits: u16_at(fmt, 14),
    };
    if format.tag == TAG_EXTENSIBLE {
        if fmt.len() < 40 {
            return Err(WavError::Malformed(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk too short".into(),
            ));
        }
        // The sub-format GUID starts with the format tag; valid bits, if given, win (as in
        // hound, which then reads e.g. 24 valid bits in 4-byte containers).
        format.tag = u16_at(fmt, 24);
        let valid_bits = u16_at(fmt, 18);
        if valid_bits != 0 {
            format.bits = valid_bits;
        }
    }
    Ok(format)
}

/// Integer and float PCM through hound, as floats in [-1, 1), channels averaged; at most
/// `frames` frames.
fn read_with_hound(bytes: &[u8], format: &Format, frames: usize) -> Result<Vec<f32>, WavError> {
    let mut reader =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| hound_error(e, format))?;
    let spec = reader.spec();
    let channels = spec.channels;
    let n = frames * usize::from(channels);
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => collect(reader.samples::<f32>().take(n), format)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            let ints = collect(reader.samples::<i32>().take(n), format)?;
            ints.into_iter().map(|s| s as f32 * scale).collect()
        }
    };
    Ok(downmix(samples.into_iter(), channels))
}

fn collect<S>(
    samples: impl Iterator<Item = hound::Result<S>>,
    format: &Format,
) -> Result<Vec<S>, WavError> {
    samples
        .collect::<hound::Result<Vec<S>>>()
        .map_err(|e| hound_error(e, format))
}

fn hound_error(e: hound::Error, format: &Format) -> WavError {
    match e {
        hound::Error::IoError(e) => WavError::Io(e),
        hound::Error::FormatError(what) => WavError::Malformed(what.into()),
        hound::Error::Unsupported | hound::Error::TooWide | hound::Error::InvalidSampleFormat => {
            WavError::Unsupported(format.describe())
        }
        other => WavError::Malformed(other.to_string()),
    }
}

/// Averages interleaved frames of `channels` samples into one; a partial last frame is dropped.
fn downmix(samples: impl Iterator<Item = f32>, channels: u16) -> Vec<f32> {
    let channels = usize::from(channels.max(1));
    if channels == 1 {
        return samples.collect();
    }
    let (mut out, mut sum, mut n) = (Vec::new(), 0.0f32, 0);
    for s in samples {
        sum += s;
        n += 1;
        if n == channels {
            out.push(sum / channels as f32);
            (sum, n) = (0.0, 0);
        }
    }
    out
}

/// Plays a prompt frame by frame.
#[derive(Clone, Debug)]
pub struct Player {
    prompt: Prompt,
    /// Samples played so far.
    position: usize,
}

impl Player {
    /// A player at the start of `prompt`.
    pub fn new(prompt: Prompt) -> Self {
        Player {
            prompt,
            position: 0,
        }
    }

    /// Appends the next 20 ms frame (the last one padded with zeros); false once the prompt is done (nothing appended).
    pub fn next_frame(&mut self, out: &mut Vec<i16>) -> bool {
        let samples = &self.prompt.samples;
        if self.position >= samples.len() {
            return false;
        }
        let frame = self.prompt.rate.frame_len();
        let end = (self.position + frame).min(samples.len());
        out.extend_from_slice(&samples[self.position..end]);
        out.resize(out.len() + frame - (end - self.position), 0);
        self.position += frame;
        true
    }

    /// Milliseconds played (whole frames, so the padded end of the last frame counts).
    pub fn position_ms(&self) -> u64 {
        self.position as u64 * 1000 / u64::from(self.prompt.rate.hz())
    }

    /// Whether every frame has been played.
    pub fn is_done(&self) -> bool {
        self.position >= self.prompt.samples.len()
    }

    /// The prompt being played.
    pub fn prompt(&self) -> &Prompt {
        &self.prompt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{level_dbfs, sine};
    use hound::{SampleFormat, WavSpec, WavWriter};
    use std::f64::consts::TAU;

    /// `seconds` of a sine of `hz` at `amplitude` (of full scale), at `rate`.
    fn wave(hz: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<f64> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| amplitude * (TAU * hz * i as f64 / f64::from(rate)).sin())
            .collect()
    }

    /// A WAV written by hound: every channel carries `samples` times its gain.
    fn write(spec: WavSpec, samples: &[f64], gains: &[f64]) -> Vec<u8> {
        assert_eq!(gains.len(), usize::from(spec.channels));
        let mut cursor = Cursor::new(Vec::new());
        let mut w = WavWriter::new(&mut cursor, spec).unwrap();
        let full = ((1i64 << (spec.bits_per_sample - 1)) - 1) as f64;
        for &s in samples {
            for g in gains {
                match spec.sample_format {
                    SampleFormat::Float => w.write_sample((s * g) as f32).unwrap(),
                    SampleFormat::Int => w.write_sample((s * g * full).round() as i32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(channels: u16, sample_rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
        WavSpec {
            channels,
            sample_rate,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    /// A WAV header and data chunk by hand, for formats hound does not write.
    fn handmade(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        let block = u32::from(channels) * u32::from(bits) / 8;
        b.extend_from_slice(&(rate * block).to_le_bytes());
        b.extend_from_slice(&(block as u16).to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    fn rising_crossings(samples: &[i16]) -> usize {
        samples.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count()
    }

    /// Checks duration, level (dBFS) and frequency (by zero crossings per second).
    fn check(prompt: &Prompt, rate: Rate, ms: u64, level: f32, hz: usize) {
        assert_eq!(prompt.rate, rate);
        assert!(
            prompt.duration_ms().abs_diff(ms) <= 1,
            "{} ms",
            prompt.duration_ms()
        );
        let n = prompt.samples.len();
        let got = level_dbfs(&prompt.samples[n / 10..n - n / 10]);
        assert!(
            (got - level).abs() < 0.2,
            "level {got:.2} dBFS, expected {level}"
        );
        let crossings = rising_crossings(&prompt.samples) as f64 * 1000.0 / ms as f64;
        assert!((crossings - hz as f64).abs() <= 2.0, "{crossings} Hz");
    }

    #[test]
    fn stereo_44k1_16bit_is_downmixed_and_resampled() {
        let wav = write(
            spec(2, 44_100, 16, SampleFormat::Int),
            &wave(1000.0, 44_100, 1.5, 0.5),
            &[1.0, 1.0],
        );
        check(
            &load(&wav[..], Rate::Wb16k).unwrap(),
            Rate::Wb16k,
            1500,
            -6.02,
            1000,
        );
        // One silent channel halves the level.
        let wav = write(
            spec(2, 44_100, 16, SampleFormat::Int),
            &wave(1000.0, 44_100, 1.5, 0.5),
            &[1.0, 0.0],
        );
        check(
            &load(&wav[..], Rate::Nb8k).unwrap(),
            Rate::Nb8k,
            1500,
            -12.04,
            1000,
        );
    }

    #[test]
    fn espeak_like_22k05_mono() {
        let wav = write(
            spec(1, 22_050, 16, SampleFormat::Int),
            &wave(440.0, 22_050, 2.0, 0.25),
            &[1.0],
        );
        check(
            &load(&wav[..], Rate::Nb8k).unwrap(),
            Rate::Nb8k,
            2000,
            -12.04,
            440,
        );
        check(
            &load(&wav[..], Rate::Wb16k).unwrap(),
            Rate::Wb16k,
            2000,
            -12.04,
            440,
        );
    }

    #[test]
    fn mono_8k_at_8k_is_bit_exact() {
        let pcm = sine(1000.0, Rate::Nb8k, 300, -3.0);
        let samples: Vec<f64> = pcm.iter().map(|&s| f64::from(s) / 32767.0).collect();
        let wav = write(spec(1, 8000, 16, SampleFormat::Int), &samples, &[1.0]);
        let prompt = load(&wav[..], Rate::Nb8k).unwrap();
        assert_eq!(prompt.duration_ms(), 300);
        // 16-bit full scale is 32768 in, 32767 out: at most one step off.
        assert!(prompt
            .samples
            .iter()
            .zip(&pcm)
            .all(|(a, b)| (a - b).abs() <= 1));
    }

    #[test]
    fn float_48k_and_other_depths() {
        let tone = wave(1000.0, 48_000, 1.0, 0.5);
        let wav = write(spec(1, 48_000, 32, SampleFormat::Float), &tone, &[1.0]);
        check(
            &load(&wav[..], Rate::Wb16k).unwrap(),
            Rate::Wb16k,
            1000,
            -6.02,
            1000,
        );
        for bits in [8, 24, 32] {
            let wav = write(spec(1, 48_000, bits, SampleFormat::Int), &tone, &[1.0]);
            check(
                &load(&wav[..], Rate::Nb8k).unwrap(),
                Rate::Nb8k,
                1000,
                -6.02,
                1000,
            );
        }
        let wav = write(
            spec(3, 16_000, 16, SampleFormat::Int),
            &wave(500.0, 16_000, 0.5, 0.5),
            &[1.0, 1.0, 1.0],
        );
        check(
            &load(&wav[..], Rate::Wb16k).unwrap(),
            Rate::Wb16k,
            500,
            -6.02,
            500,
        );
    }

    #[test]
    fn g711_wavs() {
        let pcm = sine(1000.0, Rate::Nb8k, 500, -6.0);
        let ulaw: Vec<u8> = pcm.iter().map(|&s| g711::ulaw_encode(s)).collect();
        check(
            &load(&handmade(TAG_ULAW, 1, 8000, 8, &ulaw)[..], Rate::Nb8k).unwrap(),
            Rate::Nb8k,
            500,
            -6.0,
            1000,
        );
        let alaw: Vec<u8> = pcm.iter().map(|&s| g711::alaw_encode(s)).collect();
        check(
            &load(&handmade(TAG_ALAW, 1, 8000, 8, &alaw)[..], Rate::Wb16k).unwrap(),
            Rate::Wb16k,
            500,
            -6.0,
            1000,
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |bytes: &[u8]| load(bytes, Rate::Nb8k).unwrap_err().to_string();
        assert_eq!(err(b""), "not a WAV file: shorter than a RIFF header");
        assert_eq!(
            err(b"ID3\x04 this is an mp3 file"),
            "not a WAV file: no RIFF header"
        );
        assert_eq!(
            err(&handmade(TAG_FLOAT, 1, 8000, 64, &[0; 64])),
            "unsupported format: 64-bit float"
        );
        assert_eq!(
            err(&handmade(TAG_FLOAT, 1, 8000, 24, &[0; 48])),
            "unsupported format: 24-bit float"
        );
        assert_eq!(
            err(&handmade(0x0002, 1, 8000, 4, &[0; 64])),
            "unsupported format: Microsoft ADPCM"
        );
        assert_eq!(
            err(&handmade(TAG_PCM, 1, 8000, 12, &[0; 64])),
            "unsupported format: 12-bit integer PCM"
        );
        assert_eq!(
            err(&handmade(TAG_PCM, 0, 8000, 16, &[0; 64])),
            "malformed WAV: zero channels"
        );
        let mut no_fmt = handmade(TAG_PCM, 1, 8000, 16, &[0; 8]);
        no_fmt[12..16].copy_from_slice(b"junk");
        assert_eq!(err(&no_fmt), "malformed WAV: no fmt chunk");
        for cut in 0..60 {
            // Any prefix of a file: an error or a (short) prompt, never a panic.
            let _ = load(&handmade(TAG_PCM, 2, 8000, 16, &[1; 64])[..cut], Rate::Nb8k);
        }
    }

    #[test]
    fn truncated_data_loads_what_is_there() {
        let wav = write(
            spec(1, 8000, 16, SampleFormat::Int),
            &wave(1000.0, 8000, 1.0, 0.5),
            &[1.0],
        );
        let cut = &wav[..wav.len() - 8000]; // half of the 16,000 data bytes
        let prompt = load(cut, Rate::Nb8k).unwrap();
        assert_eq!(prompt.duration_ms(), 500);
    }

    #[test]
    fn load_file_reads_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("welcome.wav");
        std::fs::write(
            &path,
            write(
                spec(1, 22_050, 16, SampleFormat::Int),
                &wave(440.0, 22_050, 1.0, 0.5),
                &[1.0],
            ),
        )
        .unwrap();
        check(
            &load_file(&path, Rate::Nb8k).unwrap(),
            Rate::Nb8k,
            1000,
            -6.02,
            440,
        );
        let missing = dir.path().join("missing.wav");
        let msg = load_file(&missing, Rate::Nb8k).unwrap_err().to_string();
        assert!(
            msg.starts_with("cannot read WAV file ") && msg.contains("missing.wav"),
            "{msg}"
        );
    }

    #[test]
    fn player_plays_whole_frames_then_stops() {
        let prompt = Prompt::new(Rate::Nb8k, vec![5i16; 400]); // 50 ms: 2.5 frames
        assert_eq!(prompt.duration_ms(), 50);
        let mut player = Player::new(prompt);
        let mut out = Vec::new();
        let mut frames = 0;
        while player.next_frame(&mut out) {
            frames += 1;
            assert_eq!(out.len(), frames * 160);
        }
        assert_eq!(frames, 3);
        assert!(player.is_done());
        assert_eq!(player.position_ms(), 60);
        assert!(out[..400].iter().all(|&s| s == 5) && out[400..].iter().all(|&s| s == 0));
        assert!(!player.next_frame(&mut out));
        assert_eq!(out.len(), 480);
        let mut empty = Player::new(Prompt::new(Rate::Wb16k, Vec::new()));
        assert!(!empty.next_frame(&mut out));
        assert_eq!(empty.position_ms(), 0);
    }
}
