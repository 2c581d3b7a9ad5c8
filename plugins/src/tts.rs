//! Built-in speech synthesis: espeak-ng (Debian `espeak-ng`), and a disk
//! cache for any synthesizer.

use crate::{AudioStream, PluginError, Synthesizer};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

/// espeak-ng run as a program: the text goes in on stdin (never as an
/// argument, so no text is taken for an option), the WAV comes out on
/// stdout and is streamed as it arrives.
#[derive(Debug, Clone)]
pub struct Espeak {
    /// The program; default `espeak-ng` on the PATH.
    pub program: PathBuf,
    /// Words per minute; default 160.
    pub speed: u32,
}

impl Default for Espeak {
    fn default() -> Self {
        Espeak {
            program: "espeak-ng".into(),
            speed: 160,
        }
    }
}

/// espeak-ng's output as it is read.
struct EspeakStream {
    child: Child,
    out: ChildStdout,
    rate: u32,
    /// A byte left over from an odd-sized read.
    odd: Option<u8>,
    done: bool,
}

impl Synthesizer for Espeak {
    fn name(&self) -> &str {
        "espeak-ng"
    }

    fn open(&self, text: &str, voice: &str) -> Result<Box<dyn AudioStream>, PluginError> {
        let err = |m: String| PluginError::new("espeak-ng", m);
        if voice.is_empty()
            || !voice
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c))
        {
            return Err(err(format!("bad voice name {voice:?}")));
        }
        let mut child = Command::new(&self.program)
            .args([
                "-v",
                voice,
                "-s",
                &self.speed.to_string(),
                "--stdout",
                "--stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", self.program.display())))?;
        let mut stdin = child.stdin.take().ok_or_else(|| err("no stdin".into()))?;
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| err(format!("writing the text: {e}")))?;
        drop(stdin);
        let mut out = child.stdout.take().ok_or_else(|| err("no stdout".into()))?;
        // RIFF header: the rate at bytes 24..28; PCM data after the 44 bytes.
        let mut header = [0u8; 44];
        out.read_exact(&mut header)
            .map_err(|e| err(format!("no WAV output: {e}")))?;
        if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" || &header[36..40] != b"data" {
            let _ = child.kill();
            return Err(err("output is not a plain PCM WAV".into()));
        }
        let rate = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
        Ok(Box::new(EspeakStream {
            child,
            out,
            rate,
            odd: None,
            done: false,
        }))
    }
}

impl AudioStream for EspeakStream {
    fn rate(&self) -> u32 {
        self.rate
    }

    fn read(&mut self, out: &mut Vec<i16>) -> Result<bool, PluginError> {
        if self.done {
            return Ok(false);
        }
        let mut buf = [0u8; 8192];
        let n = self
            .out
            .read(&mut buf)
            .map_err(|e| PluginError::new("espeak-ng", e.to_string()))?;
        if n == 0 {
            self.done = true;
            let status = self
                .child
                .wait()
                .map_err(|e| PluginError::new("espeak-ng", e.to_string()))?;
            if !status.success() {
                return Err(PluginError::new(
                    "espeak-ng",
                    format!("exited with {status}"),
                ));
            }
            return Ok(false);
        }
        let mut bytes: Vec<u8> = self.odd.take().into_iter().collect();
        bytes.extend_from_slice(&buf[..n]);
        if bytes.len() % 2 == 1 {
            self.odd = bytes.pop();
        }
        out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
        Ok(true)
    }
}

impl Drop for EspeakStream {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Keeps each text+voice a synthesizer spoke as a WAV in `dir` and plays
/// it from there afterwards (prompts repeat: a menu is spoken to every
/// caller).
pub struct Cached<S> {
    inner: S,
    dir: PathBuf,
}

impl<S: Synthesizer> Cached<S> {
    /// `inner` cached in `dir` (created if needed).
    pub fn new(inner: S, dir: impl Into<PathBuf>) -> Cached<S> {
        Cached {
            inner,
            dir: dir.into(),
        }
    }

    /// Where `text` spoken with `voice` is kept.
    pub fn path(&self, text: &str, voice: &str) -> PathBuf {
        let mut h = Sha256::new();
        for part in [self.inner.name(), voice, text] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        self.dir
            .join(format!("{}.wav", hex::encode(&h.finalize()[..16])))
    }
}

/// Audio already in memory, handed out in 20 ms pieces.
struct Memory {
    rate: u32,
    samples: Vec<i16>,
    at: usize,
}

impl AudioStream for Memory {
    fn rate(&self) -> u32 {
        self.rate
    }

    fn read(&mut self, out: &mut Vec<i16>) -> Result<bool, PluginError> {
        if self.at >= self.samples.len() {
            return Ok(false);
        }
        let end = (self.at + self.rate as usize / 50).min(self.samples.len());
        out.extend_from_slice(&self.samples[self.at..end]);
        self.at = end;
        Ok(true)
    }
}

impl<S: Synthesizer> Synthesizer for Cached<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn open(&self, text: &str, voice: &str) -> Result<Box<dyn AudioStream>, PluginError> {
        let err = |m: String| PluginError::new("tts cache", m);
        let path = self.path(text, voice);
        if let Ok(mut r) = hound::WavReader::open(&path) {
            let rate = r.spec().sample_rate;
            let samples: Result<Vec<i16>, _> = r.samples::<i16>().collect();
            if let Ok(samples) = samples {
                return Ok(Box::new(Memory {
                    rate,
                    samples,
                    at: 0,
                }));
            }
        }
        let (rate, samples) = self.inner.synthesize(text, voice)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| err(format!("{}: {e}", self.dir.display())))?;
        // Written under a temporary name, then renamed: a reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let written = (|| -> Result<(), hound::Error> {
            let mut w = hound::WavWriter::create(&tmp, spec)?;
            for s in &samples {
                w.write_sample(*s)?;
            }
            w.finalize()
        })();
        match written
            .map_err(|e| e.to_string())
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| e.to_string()))
        {
            Ok(()) => {}
            // The audio is still good; only the cache missed out.
            Err(_) => {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok(Box::new(Memory {
            rate,
            samples,
            at: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms_dbfs(s: &[i16]) -> f64 {
        let p: f64 = s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64;
        10.0 * (p.sqrt() / 32768.0).max(1e-9).powi(2).log10()
    }

    #[test]
    fn espeak_speaks_and_streams() {
        let e = Espeak::default();
        let mut s = e.open("support", "en-us").expect("espeak-ng installed");
        let mut out = Vec::new();
        let mut reads = 0;
        while s.read(&mut out).unwrap() {
            reads += 1;
        }
        let secs = out.len() as f64 / s.rate() as f64;
        println!(
            "espeak-ng: 'support' {secs:.2} s at {} Hz in {reads} reads, {:.1} dBFS",
            s.rate(),
            rms_dbfs(&out)
        );
        assert_eq!(s.rate(), 22050);
        assert!((0.3..2.0).contains(&secs), "{secs}");
        assert!(rms_dbfs(&out) > -40.0, "speech, not silence");
        // Text that looks like an option is still just text.
        assert!(e.synthesize("--help", "en-us").unwrap().1.len() > 1000);
        assert!(e.open("x", "en us; rm").is_err(), "voice names are checked");
    }

    #[test]
    fn the_cache_keeps_each_text_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cached::new(Espeak::default(), dir.path().join("tts"));
        let first = c.synthesize("billing", "en-us").unwrap();
        let path = c.path("billing", "en-us");
        assert!(path.exists());
        let t = std::time::Instant::now();
        let again = c.synthesize("billing", "en-us").unwrap();
        println!("cache hit in {:?}", t.elapsed());
        assert_eq!(first, again);
        assert_ne!(path, c.path("billing", "en-gb"), "voice is part of the key");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tts")).unwrap().count(),
            1
        );
    }
}
