//! A small speech engine behind the switch's WebSocket hook, for tests.
//! Recognition: it reads the start message and the audio, sends a partial
//! result while audio streams, and after `end` a final result: `answer`
//! when it got at least `min_ms` of audio louder than -40 dBFS, else
//! nothing. Synthesis: any text is 1 s of a 1 kHz tone, in 100 ms pieces.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the engine saw of one utterance.
#[derive(Debug, Clone, Default)]
pub struct Utterance {
    /// The start message.
    pub start: serde_json::Value,
    /// Milliseconds of audio received.
    pub audio_ms: u64,
    /// Milliseconds of it above -40 dBFS.
    pub loud_ms: u64,
}

/// The running engine.
pub struct Engine {
    /// `ws://127.0.0.1:PORT/asr`.
    pub url: String,
    /// Utterances served.
    pub seen: Arc<Mutex<Vec<Utterance>>>,
    /// Texts synthesized.
    pub spoken: Arc<Mutex<Vec<String>>>,
    _thread: JoinHandle<()>,
}

impl Engine {
    /// Serves utterances, answering `answer`.
    pub fn start(answer: &str, min_ms: u64) -> Engine {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/asr", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let spoken = Arc::new(Mutex::new(Vec::new()));
        let (answer, s2, t2) = (answer.to_owned(), seen.clone(), spoken.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (answer, seen, spoken) = (answer.clone(), s2.clone(), t2.clone());
                std::thread::spawn(move || serve(stream, &answer, min_ms, &seen, &spoken));
            }
        });
        Engine {
            url,
            seen,
            spoken,
            _thread: thread,
        }
    }
}

fn serve(
    stream: std::net::TcpStream,
    answer: &str,
    min_ms: u64,
    seen: &Mutex<Vec<Utterance>>,
    spoken: &Mutex<Vec<String>>,
) {
    use tungstenite::Message;
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    let mut u = Utterance::default();
    let mut rate = 8000u64;
    let mut partial_sent = false;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                match v["type"].as_str() {
                    Some("synthesize") => {
                        let rate = v["rate"].as_u64().unwrap_or(16000) as usize;
                        spoken
                            .lock()
                            .unwrap()
                            .push(v["text"].as_str().unwrap_or("").to_owned());
                        let tone: Vec<u8> = (0..rate)
                            .flat_map(|n| {
                                let x = (2.0 * std::f64::consts::PI * 1000.0 * n as f64
                                    / rate as f64)
                                    .sin();
                                ((x * 12000.0) as i16).to_le_bytes()
                            })
                            .collect();
                        for chunk in tone.chunks(rate / 5) {
                            let _ = ws.send(Message::binary(chunk.to_vec()));
                        }
                        let _ = ws.send(Message::text(r#"{"type":"end"}"#));
                        let _ = ws.close(None);
                        let _ = ws.flush();
                        return;
                    }
                    Some("start") => {
                        rate = v["rate"].as_u64().unwrap_or(8000);
                        u.start = v;
                    }
                    Some("end") => {
                        let text = if u.loud_ms >= min_ms { answer } else { "" };
                        let fin =
                            serde_json::json!({"type": "final", "text": text, "confidence": 0.9});
                        let _ = ws.send(Message::text(fin.to_string()));
                        seen.lock().unwrap().push(u);
                        let _ = ws.close(None);
                        let _ = ws.flush();
                        return;
                    }
                    _ => {}
                }
            }
            Ok(Message::Binary(b)) => {
                let samples: Vec<i16> = b
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                let ms = samples.len() as u64 * 1000 / rate;
                u.audio_ms += ms;
                if crate::rtp::rms_dbfs(&samples) > -40.0 {
                    u.loud_ms += ms;
                }
                if !partial_sent && u.loud_ms > 100 {
                    partial_sent = true;
                    let p = serde_json::json!({"type": "partial", "text": "…", "confidence": 0.3});
                    let _ = ws.send(Message::text(p.to_string()));
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}
