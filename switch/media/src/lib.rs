//! Media core, sans-IO: RTP/RTCP, SDP offer/answer, codecs, resampling, DTMF,
//! tones, prompts, jitter buffer, mixer, VAD and recording writers.
//!
//! Nothing here touches a socket or reads the clock: callers pass packets and
//! `now` in and get packets, audio and events back. `net` drives it.

pub mod audio;
pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod mixer;
pub mod record;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod tone;
pub mod vad;
pub mod wav;
