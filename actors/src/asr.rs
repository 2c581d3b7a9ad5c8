//! Listening for speech in an IVR menu: the caller's audio (tapped on the
//! media thread) goes to a recognition thread that endpoints utterances
//! with webrtc-vad and runs each through the configured recognizer
//! ([`plugins::Recognizer`]); what it hears goes back to the call actor.
//! Audio never passes through an actor's mailbox.

use actix::prelude::*;
use media::audio::Rate;
use media::vad::{SpeechDetector, VadConfig, VadEvent};
use plugins::{RecognizeParams, Recognizer};
use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// What the recognition thread tells the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// The caller started speaking.
    Started,
    /// The utterance's result (None: nothing recognized).
    Final(Option<(String, f32)>),
    /// The engine failed on this utterance.
    Failed(String),
}

/// A [`Heard`] from listener `id`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AsrMsg {
    /// Which listener (a call may listen several times).
    pub id: u64,
    /// What was heard.
    pub heard: Heard,
}

/// Audio kept from before the VAD's start (it needs 60 ms of speech to
/// say so, and the word's onset must reach the recognizer).
const PREROLL_MS: usize = 300;
/// Longest utterance.
const UTTERANCE_MAX_MS: usize = 15_000;
/// Audio packets queued for the thread before new ones are dropped (3 s).
const QUEUE: usize = 150;

/// The recognizer `[ivr]` names (None: speech input is off).
pub fn recognizer(cfg: &config::Config) -> Option<Arc<dyn Recognizer>> {
    match cfg.ivr.asr {
        config::AsrEngine::Off => None,
        config::AsrEngine::Pocketsphinx => Some(Arc::new(plugins::asr::Pocketsphinx::new(
            cfg.ivr.asr_model.clone(),
        ))),
        config::AsrEngine::Websocket => Some(Arc::new(plugins::asr::WebSocketHook::new(
            cfg.ivr.asr_url.clone(),
        ))),
    }
}

/// One listening spell of a call: a thread fed by the tap.
pub struct Listener {
    tx: mpsc::SyncSender<(Rate, Vec<i16>)>,
}

impl Listener {
    /// Starts the thread; results go to `to` as [`AsrMsg`] with `id`.
    pub fn start(
        engine: Arc<dyn Recognizer>,
        phrases: Vec<String>,
        language: String,
        id: u64,
        to: Recipient<AsrMsg>,
    ) -> Listener {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("asr".into())
            .spawn(move || listen(rx, engine.as_ref(), &phrases, &language, id, &to));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a recognition thread");
        }
        Listener { tx }
    }

    /// The tap for the media session: hands audio to the thread, dropping
    /// it if the thread is too far behind.
    pub fn tap(&self) -> net::rtp_engine::TapFn {
        let tx = self.tx.clone();
        Box::new(move |rate, pcm| {
            let _ = tx.try_send((rate, pcm));
        })
    }
}

fn listen(
    rx: mpsc::Receiver<(Rate, Vec<i16>)>,
    engine: &dyn Recognizer,
    phrases: &[String],
    language: &str,
    id: u64,
    to: &Recipient<AsrMsg>,
) {
    let send = |heard| to.do_send(AsrMsg { id, heard });
    let mut vad: Option<(Rate, SpeechDetector)> = None;
    let mut pending: Vec<i16> = Vec::new();
    let mut preroll: VecDeque<i16> = VecDeque::new();
    let mut session: Option<(Box<dyn plugins::RecognitionSession>, usize)> = None;
    let (mut packets, mut utterances) = (0u64, 0u64);
    // A stream of packets; the thread ends when the tap and the listener are gone.
    while let Ok((rate, pcm)) = rx.recv_timeout(Duration::from_secs(60)) {
        packets += 1;
        if vad.as_ref().is_none_or(|(r, _)| *r != rate) {
            vad = Some((rate, SpeechDetector::new(rate, VadConfig::default())));
            pending.clear();
            preroll.clear();
        }
        let Some((_, det)) = vad.as_mut() else {
            continue;
        };
        pending.extend_from_slice(&pcm);
        let n = rate.frame_len();
        let mut off = 0;
        while pending.len() - off >= n {
            let frame = &pending[off..off + n];
            off += n;
            let event = det.process(frame);
            if let Some((s, len)) = session.as_mut() {
                if let Err(e) = s.feed(frame) {
                    tracing::warn!(engine = engine.name(), error = %e, "recognition failed");
                    session = None;
                    send(Heard::Failed(e.to_string()));
                    continue;
                }
                *len += n;
                for r in s.results() {
                    tracing::debug!(text = %r.text, confidence = r.confidence, "partial result");
                }
            } else {
                preroll.extend(frame);
                let keep = rate.per_ms() * PREROLL_MS;
                while preroll.len() > keep {
                    preroll.pop_front();
                }
            }
            let too_long = session
                .as_ref()
                .is_some_and(|(_, len)| *len > rate.per_ms() * UTTERANCE_MAX_MS);
            match event {
                Some(VadEvent::SpeechStart) if session.is_none() => {
                    utterances += 1;
                    let params = RecognizeParams {
                        rate: rate.hz(),
                        phrases: phrases.to_vec(),
                        language: language.to_owned(),
                    };
                    send(Heard::Started);
                    match engine.open(&params) {
                        Ok(mut s) => {
                            let before: Vec<i16> = preroll.drain(..).collect();
                            match s.feed(&before) {
                                Ok(()) => session = Some((s, before.len())),
                                Err(e) => send(Heard::Failed(e.to_string())),
                            }
                        }
                        Err(e) => {
                            tracing::warn!(engine = engine.name(), error = %e, "recognizer unavailable");
                            send(Heard::Failed(e.to_string()));
                        }
                    }
                }
                Some(VadEvent::SpeechEnd { .. }) => finish(&mut session, engine, &send),
                _ if too_long => finish(&mut session, engine, &send),
                _ => {}
            }
        }
        pending.drain(..off);
    }
    tracing::debug!(id, packets, utterances, "listening ended");
}

/// Closes the utterance and reports its best final result.
fn finish(
    session: &mut Option<(Box<dyn plugins::RecognitionSession>, usize)>,
    engine: &dyn Recognizer,
    send: &dyn Fn(Heard),
) {
    let Some((s, _)) = session.take() else { return };
    let started = std::time::Instant::now();
    match s.close() {
        Ok(results) => {
            let best = results
                .into_iter()
                .filter(|r| r.is_final && !r.text.trim().is_empty())
                .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
                .map(|r| (r.text, r.confidence));
            tracing::info!(
                engine = engine.name(),
                heard = ?best,
                ms = started.elapsed().as_millis() as u64,
                "speech recognized"
            );
            send(Heard::Final(best));
        }
        Err(e) => {
            tracing::warn!(engine = engine.name(), error = %e, "recognition failed");
            send(Heard::Failed(e.to_string()));
        }
    }
}
