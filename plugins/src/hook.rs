//! The WebSocket hook's plumbing, and text to speech through it.
//!
//! # Speech synthesis over the hook
//!
//! Per prompt text the switch connects to `[ivr] tts_url` and sends text
//! `{"type":"synthesize","text":"Welcome.","voice":"en-us","rate":16000,
//! "encoding":"pcm_s16le"}`. The engine streams binary messages of raw
//! audio (little-endian 16-bit mono at `rate`; any chunk size) and then
//! text `{"type":"end"}` (or closes). `{"type":"error","message":"..."}`
//! fails the prompt. Results are cached like espeak-ng's.

use crate::{AudioStream, PluginError, Synthesizer};
use std::net::TcpStream;
use std::time::Duration;

/// A client WebSocket over plain TCP.
pub type Ws = tungstenite::WebSocket<TcpStream>;

/// Connects to `url` (`ws://host:port/path`) with 2 s to connect and 5 s
/// per read or write; errors are labelled `engine`.
pub fn connect(engine: &str, url: &str) -> Result<Ws, PluginError> {
    let err = |e: &dyn std::fmt::Display| PluginError::new(engine, format!("{url}: {e}"));
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| err(&"only ws:// URLs"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .map_err(|e| err(&e))?
        .next()
        .ok_or_else(|| err(&"no address"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| err(&e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .and_then(|()| stream.set_nodelay(true))
        .map_err(|e| err(&e))?;
    let (ws, _) = tungstenite::client(url, stream).map_err(|e| err(&e))?;
    Ok(ws)
}

/// Speech synthesis by an external engine behind the hook.
pub struct WebSocketTts {
    url: String,
    rate: u32,
}

impl WebSocketTts {
    /// The engine at `url`, asked for audio at 16 kHz.
    pub fn new(url: impl Into<String>) -> WebSocketTts {
        WebSocketTts {
            url: url.into(),
            rate: 16000,
        }
    }
}

struct WsAudio {
    ws: Ws,
    rate: u32,
    done: bool,
    url: String,
}

impl Synthesizer for WebSocketTts {
    fn name(&self) -> &str {
        "websocket-tts"
    }

    fn open(&self, text: &str, voice: &str) -> Result<Box<dyn AudioStream>, PluginError> {
        let mut ws = connect("websocket-tts", &self.url)?;
        let req = serde_json::json!({
            "type": "synthesize",
            "text": text,
            "voice": voice,
            "rate": self.rate,
            "encoding": "pcm_s16le",
        });
        ws.send(tungstenite::Message::text(req.to_string()))
            .map_err(|e| PluginError::new("websocket-tts", format!("{}: {e}", self.url)))?;
        Ok(Box::new(WsAudio {
            ws,
            rate: self.rate,
            done: false,
            url: self.url.clone(),
        }))
    }
}

impl AudioStream for WsAudio {
    fn rate(&self) -> u32 {
        self.rate
    }

    fn read(&mut self, out: &mut Vec<i16>) -> Result<bool, PluginError> {
        let err = |e: &dyn std::fmt::Display| {
            PluginError::new("websocket-tts", format!("{}: {e}", self.url))
        };
        while !self.done {
            match self.ws.read() {
                Ok(tungstenite::Message::Binary(b)) => {
                    out.extend(b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])));
                    return Ok(true);
                }
                Ok(tungstenite::Message::Text(t)) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("end") => {
                            self.done = true;
                            let _ = self.ws.close(None);
                        }
                        Some("error") => {
                            self.done = true;
                            return Err(err(&v["message"].as_str().unwrap_or("engine error")));
                        }
                        _ => {}
                    }
                }
                Ok(tungstenite::Message::Close(_)) => self.done = true,
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => self.done = true,
                Err(e) => return Err(err(&e)),
            }
        }
        Ok(false)
    }
}
