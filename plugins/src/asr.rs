//! Speech recognizers: pocketsphinx (grammar mode, Debian's en-us model)
//! and the WebSocket hook any external engine can serve.
//!
//! Both take one utterance per session (the caller's speech, endpointed by
//! the switch's VAD); audio is 16-bit mono at the opened rate.
//!
//! # The WebSocket hook
//!
//! Per utterance the switch connects to the configured `ws://` URL and
//! sends:
//! 1. a text message `{"type":"start","rate":16000,"encoding":"pcm_s16le",
//!    "phrases":["sales","support"],"language":"en-US"}`;
//! 2. binary messages of raw audio (little-endian 16-bit mono at `rate`),
//!    one per 20 ms as it is spoken;
//! 3. a text message `{"type":"end"}` when the caller stops speaking.
//!
//! The engine answers with text messages `{"type":"partial","text":"sa",
//! "confidence":0.4}` (any number, optional) and one
//! `{"type":"final","text":"sales","confidence":0.92}` after `end` (an empty
//! text: nothing recognized), then may close. The switch waits at most
//! five seconds for the final result.

use crate::{PluginError, Recognition, RecognitionSession, RecognizeParams, Recognizer};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Debian's US English model (package `pocketsphinx-en-us`).
pub const DEBIAN_MODEL: &str = "/usr/share/pocketsphinx/model/en-us";

/// pocketsphinx in grammar (JSGF) mode: the phrases of a menu.
///
/// Runs Debian's `pocketsphinx_continuous` on each utterance (the model
/// loads in about 0.3 s with a grammar): a recognizer crash ends one
/// recognition, never the switch. Its acoustic model is 16 kHz: narrowband
/// audio is upsampled, and recognizes poorly (measured: 0–40 % on espeak-ng
/// words); narrowband callers need an engine behind the WebSocket hook.
pub struct Pocketsphinx {
    model: PathBuf,
    program: PathBuf,
}

impl Pocketsphinx {
    /// The model directory holding `en-us/` and `cmudict-en-us.dict`.
    pub fn new(model: impl Into<PathBuf>) -> Pocketsphinx {
        Pocketsphinx {
            model: model.into(),
            program: "pocketsphinx_continuous".into(),
        }
    }
}

impl Default for Pocketsphinx {
    fn default() -> Self {
        Pocketsphinx::new(DEBIAN_MODEL)
    }
}

struct SphinxSession {
    model: PathBuf,
    program: PathBuf,
    rate: u32,
    phrases: Vec<String>,
    audio: Vec<i16>,
}

impl Recognizer for Pocketsphinx {
    fn name(&self) -> &str {
        "pocketsphinx"
    }

    fn open(&self, params: &RecognizeParams) -> Result<Box<dyn RecognitionSession>, PluginError> {
        if params.phrases.is_empty() {
            return Err(PluginError::new(
                "pocketsphinx",
                "grammar mode needs phrases (free speech needs an external engine)",
            ));
        }
        if params.rate != 8000 && params.rate != 16000 {
            return Err(PluginError::new(
                "pocketsphinx",
                format!("{} Hz audio (8000 or 16000)", params.rate),
            ));
        }
        Ok(Box::new(SphinxSession {
            model: self.model.clone(),
            program: self.program.clone(),
            rate: params.rate,
            phrases: params.phrases.clone(),
            audio: Vec::new(),
        }))
    }
}

/// A JSGF grammar with one rule: any of `phrases` (lower case).
fn jsgf(phrases: &[String]) -> String {
    let alts: Vec<String> = phrases
        .iter()
        .map(|p| {
            p.to_lowercase()
                .chars()
                .filter(|c| c.is_alphabetic() || *c == ' ' || *c == '\'')
                .collect()
        })
        .collect();
    format!(
        "#JSGF V1.0;\ngrammar menu;\npublic <choice> = {};\n",
        alts.join(" | ")
    )
}

impl RecognitionSession for SphinxSession {
    fn feed(&mut self, samples: &[i16]) -> Result<(), PluginError> {
        // At most 30 s per utterance.
        if self.audio.len() < self.rate as usize * 30 {
            self.audio.extend_from_slice(samples);
        }
        Ok(())
    }

    fn results(&mut self) -> Vec<Recognition> {
        Vec::new()
    }

    fn close(self: Box<Self>) -> Result<Vec<Recognition>, PluginError> {
        let err = |m: String| PluginError::new("pocketsphinx", m);
        let audio = if self.rate == 16000 {
            self.audio
        } else {
            let f: Vec<f32> = self.audio.iter().map(|&s| f32::from(s) / 32768.0).collect();
            media::resample::convert(&f, self.rate, media::audio::Rate::Wb16k)
        };
        let dir = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
        let wav = dir.path().join("utt.wav");
        let gram = dir.path().join("menu.gram");
        std::fs::write(&gram, jsgf(&self.phrases)).map_err(|e| err(e.to_string()))?;
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        (|| -> Result<(), hound::Error> {
            let mut w = hound::WavWriter::create(&wav, spec)?;
            for s in &audio {
                w.write_sample(*s)?;
            }
            w.finalize()
        })()
        .map_err(|e| err(e.to_string()))?;
        let out = Command::new(&self.program)
            .arg("-infile")
            .arg(&wav)
            .arg("-jsgf")
            .arg(&gram)
            .arg("-dict")
            .arg(self.model.join("cmudict-en-us.dict"))
            .arg("-hmm")
            .arg(self.model.join("en-us"))
            .args(["-time", "yes", "-logfn", "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("{}: {e}", self.program.display())))?;
        if !out.status.success() {
            return Err(err(format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(vec![parse_sphinx(&String::from_utf8_lossy(&out.stdout))])
    }
}

/// `pocketsphinx_continuous -time yes` output: a hypothesis line, then
/// "word start end posterior" lines. Confidence: the least sure word.
fn parse_sphinx(out: &str) -> Recognition {
    let mut text = String::new();
    let mut confidence: Option<f32> = None;
    for line in out.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts[..] {
            [word, _, _, p] if p.parse::<f32>().is_ok() => {
                let filler =
                    word.starts_with('<') || word.starts_with('[') || word.starts_with("++");
                if !filler {
                    let p: f32 = p.parse().unwrap_or(0.0);
                    confidence = Some(confidence.map_or(p, |c| c.min(p)));
                }
            }
            _ if text.is_empty() && !line.trim().is_empty() => text = line.trim().to_owned(),
            _ => {}
        }
    }
    Recognition {
        confidence: if text.is_empty() {
            0.0
        } else {
            confidence.unwrap_or(1.0).clamp(0.0, 1.0)
        },
        text,
        is_final: true,
    }
}

/// An external engine behind a WebSocket (see the module docs).
pub struct WebSocketHook {
    url: String,
}

impl WebSocketHook {
    /// The engine at `url` (`ws://host:port/path`).
    pub fn new(url: impl Into<String>) -> WebSocketHook {
        WebSocketHook { url: url.into() }
    }
}

struct WsSession {
    ws: crate::hook::Ws,
    results: Vec<Recognition>,
    url: String,
}

fn ws_err(url: &str, e: impl std::fmt::Display) -> PluginError {
    PluginError::new("websocket", format!("{url}: {e}"))
}

impl Recognizer for WebSocketHook {
    fn name(&self) -> &str {
        "websocket"
    }

    fn open(&self, params: &RecognizeParams) -> Result<Box<dyn RecognitionSession>, PluginError> {
        let mut ws = crate::hook::connect("websocket", &self.url)?;
        let start = serde_json::json!({
            "type": "start",
            "rate": params.rate,
            "encoding": "pcm_s16le",
            "phrases": params.phrases,
            "language": params.language,
        });
        ws.send(tungstenite::Message::text(start.to_string()))
            .map_err(|e| ws_err(&self.url, e))?;
        Ok(Box::new(WsSession {
            ws,
            results: Vec::new(),
            url: self.url.clone(),
        }))
    }
}

impl WsSession {
    /// A result from a text message, if it is one.
    fn parse(text: &str) -> Option<Recognition> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let is_final = match v["type"].as_str()? {
            "final" => true,
            "partial" => false,
            _ => return None,
        };
        Some(Recognition {
            text: v["text"].as_str().unwrap_or_default().to_owned(),
            confidence: v["confidence"].as_f64().unwrap_or(1.0).clamp(0.0, 1.0) as f32,
            is_final,
        })
    }
}

impl RecognitionSession for WsSession {
    fn feed(&mut self, samples: &[i16]) -> Result<(), PluginError> {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            bytes.write_all(&s.to_le_bytes()).ok();
        }
        self.ws
            .send(tungstenite::Message::binary(bytes))
            .map_err(|e| ws_err(&self.url, e))
    }

    fn results(&mut self) -> Vec<Recognition> {
        std::mem::take(&mut self.results)
    }

    fn close(mut self: Box<Self>) -> Result<Vec<Recognition>, PluginError> {
        let url = self.url.clone();
        self.ws
            .send(tungstenite::Message::text(r#"{"type":"end"}"#))
            .map_err(|e| ws_err(&url, e))?;
        let mut out = std::mem::take(&mut self.results);
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    if let Some(r) = WsSession::parse(t.as_str()) {
                        let done = r.is_final;
                        out.push(r);
                        if done {
                            let _ = self.ws.close(None);
                            return Ok(out);
                        }
                    }
                }
                Ok(tungstenite::Message::Close(_)) => return Ok(out),
                Ok(_) => {}
                Err(e) => return Err(ws_err(&url, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sphinx_output_is_parsed() {
        let r = parse_sphinx("support\nsupport 0.000 0.530 0.870000\n<sil> 0.540 0.790 1.000000\n");
        assert_eq!(r.text, "support");
        assert!((r.confidence - 0.87).abs() < 1e-6);
        let r = parse_sphinx("\n");
        assert_eq!((r.text.as_str(), r.confidence), ("", 0.0));
    }

    #[test]
    fn grammar_lists_the_phrases() {
        let g = jsgf(&["Sales".into(), "customer support".into()]);
        assert!(
            g.ends_with("public <choice> = sales | customer support;\n"),
            "{g}"
        );
    }
}
