//! `net`: the only socket code of Switchboard. SIP over UDP and TCP on
//! tokio; received messages go to a sink, messages to send come in through a
//! [`SipSender`]. The protocol logic stays in the sans-IO `sip` crate.

mod sip_transport;

pub use sip_transport::{bind, Listen, Sink, SipSender};
