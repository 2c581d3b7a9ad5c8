//! `net`: the only socket code of Switchboard. SIP over UDP and TCP on
//! tokio; received messages go to a sink, messages to send come in through a
//! [`SipSender`]. The RTP engine ([`rtp_engine`]) owns the media sockets and
//! drives the sans-IO `media` sessions. The protocol logic stays in the
//! sans-IO `sip` and `media` crates.

pub mod rtp_engine;
mod sip_transport;

pub use sip_transport::{bind, Listen, Sink, SipSender};
