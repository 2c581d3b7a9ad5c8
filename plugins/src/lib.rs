//! `plugins`: the hooks speech and other outside engines plug into, and
//! the built-in implementations.
//!
//! - [`Synthesizer`] (text to speech): `open(text, voice)` gives an
//!   [`AudioStream`] that yields audio as it is made. Built-in:
//!   [`tts::Espeak`] (espeak-ng), and [`tts::Cached`] to keep each
//!   text+voice once on disk.
//! - [`Recognizer`] (speech to text): `open(params)` gives a
//!   [`RecognitionSession`]; `feed` audio in, `results` (partial and final,
//!   with confidence) out, `close` for the final result. Built-ins come with
//!   the IVR (pocketsphinx for menu phrases, a WebSocket hook for any
//!   external engine).

pub mod asr;
pub mod hook;
pub mod tts;

/// An engine failed (not found, bad output, ...).
#[derive(Debug, thiserror::Error)]
#[error("{engine}: {message}")]
pub struct PluginError {
    /// Which engine.
    pub engine: String,
    /// What went wrong.
    pub message: String,
}

impl PluginError {
    /// An error of `engine`.
    pub fn new(engine: &str, message: impl Into<String>) -> PluginError {
        PluginError {
            engine: engine.to_owned(),
            message: message.into(),
        }
    }
}

/// Audio as it is produced: 16-bit mono at `rate()`.
pub trait AudioStream: Send {
    /// Samples per second.
    fn rate(&self) -> u32;
    /// Appends the next samples to `out`; `Ok(false)` once it has ended.
    fn read(&mut self, out: &mut Vec<i16>) -> Result<bool, PluginError>;
}

/// Text to speech.
pub trait Synthesizer: Send + Sync {
    /// The engine's name (part of cache keys and logs).
    fn name(&self) -> &str;
    /// Starts speaking `text` with `voice`.
    fn open(&self, text: &str, voice: &str) -> Result<Box<dyn AudioStream>, PluginError>;

    /// The whole utterance: (rate, samples).
    fn synthesize(&self, text: &str, voice: &str) -> Result<(u32, Vec<i16>), PluginError> {
        let mut s = self.open(text, voice)?;
        let mut out = Vec::new();
        while s.read(&mut out)? {}
        Ok((s.rate(), out))
    }
}

/// What a recognition is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecognizeParams {
    /// Samples per second of the audio fed in (8000 or 16000).
    pub rate: u32,
    /// The phrases expected (a menu's grammar); empty: free speech.
    pub phrases: Vec<String>,
    /// Language tag, e.g. "en-US".
    pub language: String,
}

/// A partial or final result.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// What was heard.
    pub text: String,
    /// 0.0..=1.0.
    pub confidence: f32,
    /// Final for this utterance (else partial).
    pub is_final: bool,
}

/// One utterance being recognized.
pub trait RecognitionSession: Send {
    /// More audio (16-bit mono at the opened rate).
    fn feed(&mut self, samples: &[i16]) -> Result<(), PluginError>;
    /// Results since the last call.
    fn results(&mut self) -> Vec<Recognition>;
    /// The utterance is over: its final results.
    fn close(self: Box<Self>) -> Result<Vec<Recognition>, PluginError>;
}

/// Speech to text.
pub trait Recognizer: Send + Sync {
    /// The engine's name.
    fn name(&self) -> &str;
    /// Starts an utterance.
    fn open(&self, params: &RecognizeParams) -> Result<Box<dyn RecognitionSession>, PluginError>;
}
