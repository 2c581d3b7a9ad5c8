//! Parser, serializer and transaction-layer throughput, in messages/s.
//!
//! `cargo bench -p sip --bench parse -- --warm-up-time 1 --measurement-time 3`
//!
//! - `parse_invite`: a phone's INVITE with SDP (~900 bytes), UDP framing.
//! - `parse_200_ok`: the 200 OK with SDP answering it.
//! - `serialize_invite`: `Request::to_bytes` of the parsed INVITE.
//! - `endpoint_invite_roundtrip`: a fresh server `Endpoint` takes the INVITE
//!   as a UDP datagram and produces its 100 Trying (parse, UAS checks, new
//!   server transaction, 100 built and encoded) plus the TU event.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sip::transaction::{Endpoint, Event, Peer, Timers, Transport};
use sip::{Framing, Message};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

const SDP_OFFER: &str = "v=0\r\n\
o=- 20518 0 IN IP4 192.168.1.42\r\n\
s=SDP data\r\n\
c=IN IP4 192.168.1.42\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const SDP_ANSWER: &str = "v=0\r\n\
o=switchboard 1700000000 1700000000 IN IP4 203.0.113.10\r\n\
s=switchboard\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> Vec<u8> {
    let head = "INVITE sip:1002@pbx.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.42:5062;branch=z9hG4bK1523484216;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Desk\" <sip:1001@pbx.example.com>;tag=2099183706\r\n\
To: \"Bob\" <sip:1002@pbx.example.com>\r\n\
Call-ID: 0_1427935530@192.168.1.42\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1001@192.168.1.42:5062>\r\n\
Allow: INVITE, INFO, PRACK, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REGISTER, SUBSCRIBE, REFER, PUBLISH, UPDATE, MESSAGE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
Allow-Events: talk,hold,conference,refer,check-sync\r\n\
Content-Type: application/sdp\r\n";
    format!(
        "{head}Content-Length: {}\r\n\r\n{SDP_OFFER}",
        SDP_OFFER.len()
    )
    .into_bytes()
}

fn ok_200() -> Vec<u8> {
    let head = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.168.1.42:5062;branch=z9hG4bK1523484216;rport=5062;received=198.51.100.7\r\n\
From: \"Alice Desk\" <sip:1001@pbx.example.com>;tag=2099183706\r\n\
To: \"Bob\" <sip:1002@pbx.example.com>;tag=as6f1c2e7a\r\n\
Call-ID: 0_1427935530@192.168.1.42\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1002@203.0.113.10:5060;transport=udp>\r\n\
Record-Route: <sip:203.0.113.10;lr>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
Server: switchboard\r\n\
Content-Type: application/sdp\r\n";
    format!(
        "{head}Content-Length: {}\r\n\r\n{SDP_ANSWER}",
        SDP_ANSWER.len()
    )
    .into_bytes()
}

fn benches(c: &mut Criterion) {
    let invite = Bytes::from(invite());
    let ok = Bytes::from(ok_200());
    let Ok(Message::Request(parsed_invite)) = sip::parse(&invite, Framing::Datagram) else {
        panic!("benchmark INVITE does not parse");
    };
    assert!(
        matches!(sip::parse(&ok, Framing::Datagram), Ok(Message::Response(_))),
        "benchmark 200 does not parse"
    );
    eprintln!("INVITE: {} bytes, 200 OK: {} bytes", invite.len(), ok.len());

    let now = Instant::now();
    let peer = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([198, 51, 100, 7], 5062)),
    };
    // One round by hand: the endpoint must answer 100 and raise the request.
    {
        let mut ep = Endpoint::new(Timers::default(), "ua");
        ep.handle_input(now, peer, invite.clone());
        let t = ep.poll_transmit().expect("no 100 Trying");
        assert!(
            t.data.starts_with(b"SIP/2.0 100 "),
            "not a 100: {:?}",
            String::from_utf8_lossy(&t.data)
        );
        assert!(matches!(
            ep.poll_event(),
            Some(Event::Request { tx: Some(_), .. })
        ));
    }

    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));

    g.bench_function("parse_invite", |b| {
        b.iter(|| sip::parse(black_box(&invite), Framing::Datagram))
    });

    g.bench_function("parse_200_ok", |b| {
        b.iter(|| sip::parse(black_box(&ok), Framing::Datagram))
    });

    g.bench_function("serialize_invite", |b| {
        b.iter(|| black_box(&parsed_invite).to_bytes())
    });

    g.bench_function("endpoint_invite_roundtrip", |b| {
        b.iter_batched(
            || (Endpoint::new(Timers::default(), "ua"), invite.clone()),
            |(mut ep, data)| {
                ep.handle_input(now, peer, data);
                let trying = ep.poll_transmit();
                let event = ep.poll_event();
                black_box((trying, event));
                ep // dropped outside the timed part
            },
            BatchSize::SmallInput,
        )
    });

    g.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);
