//! Every input that ever broke the crate, kept in `tests/regressions/`
//! (rustls' habit): fed to the parser and to a transaction endpoint over
//! UDP and TCP. None may panic, and every response the endpoint sends for a
//! request that parsed must itself parse.

use bytes::Bytes;
use sip::transaction::{Endpoint, Event, Peer, Timers, Transport};
use sip::{parse, response_to, Framing};
use std::time::{Duration, Instant};

#[test]
fn regression_inputs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = Bytes::from(std::fs::read(&path).unwrap());
        let _ = parse(&data, Framing::Datagram);
        let _ = parse(&data, Framing::Stream);
        for transport in [Transport::Udp, Transport::Tcp] {
            let mut ep = Endpoint::new(Timers::default(), "t");
            let peer = Peer {
                transport,
                addr: "127.0.0.1:5060".parse().unwrap(),
            };
            let now = Instant::now();
            let parsed = parse(&data, Framing::Datagram).is_ok();
            ep.handle_input(now, peer, data.clone());
            while let Some(ev) = ep.poll_event() {
                if let Event::Request {
                    tx: Some(tx), req, ..
                } = ev
                {
                    ep.respond(now, tx, response_to(&req, 200, Some("t")));
                }
            }
            while let Some(t) = ep.poll_transmit() {
                if parsed {
                    assert!(
                        parse(&t.data, Framing::Datagram).is_ok(),
                        "{}: unparseable output {:?}",
                        path.display(),
                        t.data
                    );
                }
            }
            ep.handle_timeout(now + Duration::from_secs(300));
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
