//! Bytes into a server `transaction::Endpoint`, as UDP and as TCP input.
//!
//! Input: messages separated by a 0xFF byte (never valid in a header
//! section, which must be UTF-8), each fed in turn to one endpoint as a UDP
//! datagram and to another as a framed TCP message. Between messages
//! virtual time advances (by an amount picked from the message length) and
//! due timers run. A transaction user answers every new server transaction
//! (1xx, then a final response picked from the message length), answers a
//! cancelled INVITE 487, and drains every transmit and event.
//!
//! Properties:
//! 1. no panic, and the timer loop makes progress;
//! 2. everything the endpoint sends parses, except the stateless 400 it
//!    builds from a message that did not parse (that one copies the
//!    peer's raw header lines);
//! 3. once the peer falls silent and every transaction was answered, all
//!    transactions terminate (no leak): after 5 virtual minutes the
//!    endpoint holds none.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::transaction::{Endpoint, Event, Peer, Timers, Transport};
use sip::{response_to, Framing, Name};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const STEPS_MS: [u64; 8] = [0, 10, 500, 1_000, 4_000, 32_000, 40_000, 0];
const FINALS: [u16; 6] = [200, 486, 404, 603, 302, 500];

struct Harness {
    ep: Endpoint,
    transport: Transport,
    peers: [Peer; 2],
    answered: u64,
}

impl Harness {
    fn new(transport: Transport) -> Self {
        let peer = |s: &str| Peer { transport, addr: s.parse::<SocketAddr>().unwrap() };
        Harness {
            ep: Endpoint::new(Timers::default(), "fuzz"),
            transport,
            peers: [peer("127.0.0.1:5060"), peer("[::1]:5099")],
            answered: 0,
        }
    }

    fn framing(&self) -> Framing {
        if self.transport == Transport::Udp {
            Framing::Datagram
        } else {
            Framing::Stream
        }
    }

    /// Drains transmits (checking they parse when `check` is set) and
    /// events, answering new server transactions.
    fn drain(&mut self, now: Instant, check: bool, pick: usize) {
        for _ in 0..10_000 {
            let mut progressed = false;
            while let Some(t) = self.ep.poll_transmit() {
                progressed = true;
                if check {
                    if let Err(e) = sip::parse(&t.data, Framing::Datagram) {
                        panic!(
                            "endpoint sent a message that does not parse: {e}\n{}",
                            String::from_utf8_lossy(&t.data).escape_debug()
                        );
                    }
                }
            }
            while let Some(ev) = self.ep.poll_event() {
                progressed = true;
                match ev {
                    Event::Request { tx: Some(tx), req, .. } => {
                        self.answered += 1;
                        let tag = format!("fz{}", self.answered);
                        let ringing = response_to(&req, 180, Some(&tag));
                        self.ep.respond(now, tx, ringing);
                        let code = FINALS[(pick + self.answered as usize) % FINALS.len()];
                        let mut fin = response_to(&req, code, Some(&tag));
                        if code == 302 {
                            fin.headers.push(Name::Contact, "<sip:elsewhere@127.0.0.1>");
                        }
                        self.ep.respond(now, tx, fin);
                    }
                    Event::Cancelled { invite } => {
                        if let Some(req) = self.ep.request(invite).cloned() {
                            self.ep.respond(now, invite, response_to(&req, 487, Some("fzc")));
                        }
                    }
                    Event::Request { tx: None, .. } | Event::Response { .. } | Event::Timeout { .. } => {}
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("endpoint keeps producing output");
    }

    fn run_timers(&mut self, now: Instant) {
        for _ in 0..10_000 {
            match self.ep.poll_timeout() {
                Some(at) if at <= now => {
                    self.ep.handle_timeout(now);
                    self.drain(now, true, 0);
                }
                _ => return,
            }
        }
        panic!("timers due at {now:?} never clear");
    }

    fn input(&mut self, now: Instant, msg: &[u8]) {
        let data = Bytes::copy_from_slice(msg);
        // The stateless 400 to an unparseable message is exempt (see the
        // module docs). Finding endpoint_input-1 (a request with no To was
        // refused with `To: ;tag=...`) was fixed in b812f2f, so responses
        // to every request that parses are checked.
        let check = sip::parse(&data, self.framing()).is_ok();
        let peer = self.peers[msg.len() % 2];
        self.ep.handle_input(now, peer, data);
        self.drain(now, check, msg.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut udp = Harness::new(Transport::Udp);
    let mut tcp = Harness::new(Transport::Tcp);
    for msg in data.split(|&b| b == 0xFF).take(64) {
        udp.input(now, msg);
        tcp.input(now, msg);
        now += Duration::from_millis(STEPS_MS[msg.len() % STEPS_MS.len()]);
        udp.run_timers(now);
        tcp.run_timers(now);
    }
    // The peer falls silent: everything must wind down.
    for _ in 0..300 {
        now += Duration::from_secs(1);
        udp.run_timers(now);
        tcp.run_timers(now);
    }
    for h in [&udp, &tcp] {
        assert_eq!(
            h.ep.transaction_count(),
            0,
            "{:?}: transactions left 5 virtual minutes after the last input (stats {:?})",
            h.transport,
            h.ep.stats()
        );
    }
});
