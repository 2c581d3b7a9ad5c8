//! Turns IVR prompt parts (text, WAV files, silence, beep) into audio at a
//! leg's rate. Blocking (TTS runs a process, files are read): call it off
//! the actors' threads. Synthesized text is cached on disk
//! ([`plugins::tts::Cached`]); rendered parts are kept in memory too, a
//! file's entry keyed by its modification time so a changed prompt file is
//! read again.

use crate::ivr::Part;
use media::audio::Rate;
use media::wav::Prompt;
use plugins::Synthesizer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Rendered parts kept in memory.
const MEMORY_ENTRIES: usize = 512;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    part: Part,
    rate: Rate,
    mtime: Option<SystemTime>,
}

/// The prompt renderer shared by all calls.
pub struct PromptRenderer {
    tts: Box<dyn Synthesizer>,
    memory: Mutex<HashMap<Key, Arc<[i16]>>>,
}

impl PromptRenderer {
    /// Speech from espeak-ng, cached in `tts_cache`.
    pub fn espeak(tts_cache: &Path) -> PromptRenderer {
        PromptRenderer::new(Box::new(plugins::tts::Cached::new(
            plugins::tts::Espeak::default(),
            tts_cache,
        )))
    }

    /// The engine `[ivr]` names, cached in `tts_cache`.
    pub fn from_config(ivr: &config::Ivr, tts_cache: &Path) -> PromptRenderer {
        match ivr.tts {
            config::TtsEngine::Espeak => PromptRenderer::espeak(tts_cache),
            config::TtsEngine::Websocket => {
                PromptRenderer::new(Box::new(plugins::tts::Cached::new(
                    plugins::hook::WebSocketTts::new(ivr.tts_url.clone()),
                    tts_cache,
                )))
            }
        }
    }

    /// Speech from `tts`.
    pub fn new(tts: Box<dyn Synthesizer>) -> PromptRenderer {
        PromptRenderer {
            tts,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The parts one after another at `rate`. A part that cannot be
    /// rendered (TTS failure, unreadable file) is left out and named in
    /// the error list; the rest still plays.
    pub fn render(&self, parts: &[Part], rate: Rate) -> (Prompt, Vec<String>) {
        let mut samples = Vec::new();
        let mut errors = Vec::new();
        for part in parts {
            match self.part(part, rate) {
                Ok(s) => samples.extend_from_slice(&s),
                Err(e) => errors.push(e),
            }
        }
        (Prompt::new(rate, samples), errors)
    }

    fn part(&self, part: &Part, rate: Rate) -> Result<Arc<[i16]>, String> {
        let mtime = match part {
            Part::File(p) => Some(
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            ),
            _ => None,
        };
        let key = Key {
            part: part.clone(),
            rate,
            mtime,
        };
        if let Some(s) = self.memory.lock().map_err(|e| e.to_string())?.get(&key) {
            return Ok(s.clone());
        }
        let samples: Arc<[i16]> = match part {
            Part::Say { text, voice } => {
                let (hz, pcm) = self
                    .tts
                    .synthesize(text, voice)
                    .map_err(|e| e.to_string())?;
                let f: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
                media::resample::convert(&f, hz, rate).into()
            }
            Part::File(p) => load(p, rate)?.samples,
            Part::Silence(ms) => vec![0i16; rate.per_ms() * *ms as usize].into(),
            Part::Beep => beep(rate).into(),
        };
        let mut mem = self.memory.lock().map_err(|e| e.to_string())?;
        if mem.len() >= MEMORY_ENTRIES {
            // Prompts are few per flow; a full cache is rare: start afresh.
            mem.clear();
        }
        mem.insert(key, samples.clone());
        Ok(samples)
    }
}

fn load(path: &PathBuf, rate: Rate) -> Result<Prompt, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    media::wav::load(std::io::BufReader::new(f), rate)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// 1 kHz for 250 ms at -10 dBFS, with 5 ms ramps.
fn beep(rate: Rate) -> Vec<i16> {
    let hz = rate.hz() as f32;
    let n = rate.per_ms() * 250;
    let ramp = rate.per_ms() * 5;
    (0..n)
        .map(|i| {
            let edge = (i.min(n - 1 - i) as f32 / ramp as f32).min(1.0);
            let v = (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / hz).sin();
            (v * edge * 0.316 * 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_render_at_the_leg_rate() {
        let dir = tempfile::tempdir().unwrap();
        let r = PromptRenderer::espeak(dir.path());
        let parts = [
            Part::Beep,
            Part::Silence(100),
            Part::Say {
                text: "Hello.".into(),
                voice: "en-us".into(),
            },
        ];
        let (p8, errors) = r.render(&parts, Rate::Nb8k);
        assert!(errors.is_empty(), "{errors:?}");
        let (p16, _) = r.render(&parts, Rate::Wb16k);
        assert_eq!(p8.rate, Rate::Nb8k);
        // "Hello." is about half a second: 250 + 100 + ~500 ms.
        assert!(
            (700..1500).contains(&p8.duration_ms()),
            "{}",
            p8.duration_ms()
        );
        assert!(p16.duration_ms().abs_diff(p8.duration_ms()) <= 2);
        // A missing file is reported, the rest plays.
        let (p, errors) = r.render(
            &[Part::File("/nonexistent.wav".into()), Part::Beep],
            Rate::Nb8k,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(p.duration_ms(), 250);
    }
}
