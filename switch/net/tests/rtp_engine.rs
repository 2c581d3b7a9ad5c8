//! The RTP engine over real loopback sockets: ports, relay, latching,
//! events, and ports coming back when a session ends.

use media::codec::Codec;
use media::sdp::{Direction, Negotiated};
use media::session::{Event, LegOptions, Mode, SessionConfig};
use net::rtp_engine::{RtpConfig, RtpEngine, SessionEvent};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

fn engine(port_min: u16, port_max: u16) -> RtpEngine {
    RtpEngine::start(RtpConfig {
        ip: "127.0.0.1".parse().unwrap(),
        port_min,
        port_max,
        workers: 2,
        session: SessionConfig {
            media_timeout: Some(Duration::from_millis(500)),
            ..SessionConfig::default()
        },
    })
    .unwrap()
}

fn neg(remote: SocketAddr) -> Negotiated {
    Negotiated {
        codec: Codec::Pcmu,
        pt: 0,
        dtmf_pt: Some(101),
        remote,
        remote_rtcp: SocketAddr::new(remote.ip(), remote.port() + 1),
        rtcp_mux: false,
        direction: Direction::SendRecv,
        ptime: 20,
    }
}

fn rtp(seq: u16, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x80,
        pt,
        (seq >> 8) as u8,
        seq as u8,
        0,
        0,
        0,
        seq as u8,
        1,
        2,
        3,
        4,
    ];
    v.extend_from_slice(payload);
    v
}

#[test]
fn relays_between_two_legs_and_reports_events() {
    let e = engine(41000, 41099);
    let (tx, rx) = mpsc::channel();
    let s = e.session(Box::new(move |ev| {
        let _ = tx.send(ev);
    }));
    let a = s.add_leg(LegOptions::default()).unwrap();
    let b = s.add_leg(LegOptions::default()).unwrap();
    assert!(
        a.port.is_multiple_of(2) && b.port.is_multiple_of(2) && a.port != b.port,
        "even ports: {a:?} {b:?}"
    );
    assert!((41000..41099).contains(&a.port));
    let pa = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pb = UdpSocket::bind("127.0.0.1:0").unwrap();
    pb.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.configure(a.id, neg(pa.local_addr().unwrap()));
    s.configure(b.id, neg(pb.local_addr().unwrap()));
    s.set_mode(Mode::Bridge(a.id, b.id));
    let a_addr: SocketAddr = format!("127.0.0.1:{}", a.port).parse().unwrap();
    let mut buf = [0u8; 1500];
    for i in 0..20u16 {
        pa.send_to(&rtp(i, 0, &[i as u8; 160]), a_addr).unwrap();
        let (n, from) = pb.recv_from(&mut buf).expect("relayed packet");
        assert_eq!(from.port(), b.port, "sent from leg B's port");
        assert_eq!(n, 172);
        assert_eq!(&buf[12..n], &[i as u8; 160]);
    }
    // A digit (RFC 4733, end bit) is reported.
    pa.send_to(&rtp(20, 101, &[9, 0x8a, 0, 160]), a_addr)
        .unwrap();
    let digit = (0..50).find_map(|_| match rx.recv_timeout(Duration::from_millis(100)) {
        Ok(SessionEvent::Media(Event::Digit { leg, digit })) if leg == a.id => Some(digit.digit),
        _ => None,
    });
    assert_eq!(digit, Some('9'));
    // Then silence: the media timeout fires for both legs.
    let timeouts = (0..40)
        .filter_map(|_| match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(SessionEvent::Media(Event::MediaTimeout { leg })) => Some(leg),
            _ => None,
        })
        .count();
    assert!(timeouts >= 1, "media timeout reported");
    assert_eq!(e.stats().legs.load(std::sync::atomic::Ordering::Relaxed), 2);
    drop(s);
    // The session ends with its last handle; its ports go back to the pool.
    for _ in 0..50 {
        if e.stats().legs.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        e.stats()
            .sessions
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(
        UdpSocket::bind(("127.0.0.1", a.port)).is_ok(),
        "port released"
    );
}

#[test]
fn port_range_exhaustion_is_an_error_not_a_panic() {
    // 4 ports: two pairs.
    let e = engine(41200, 41203);
    let s = e.session(Box::new(|_| {}));
    assert!(s.add_leg(LegOptions::default()).is_ok());
    assert!(s.add_leg(LegOptions::default()).is_ok());
    let err = s.add_leg(LegOptions::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn garbage_on_media_ports_is_dropped_and_the_call_goes_on() {
    let e = engine(41300, 41399);
    let s = e.session(Box::new(|_| {}));
    let a = s.add_leg(LegOptions::default()).unwrap();
    let b = s.add_leg(LegOptions::default()).unwrap();
    let pa = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pb = UdpSocket::bind("127.0.0.1:0").unwrap();
    pb.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.configure(a.id, neg(pa.local_addr().unwrap()));
    s.configure(b.id, neg(pb.local_addr().unwrap()));
    s.set_mode(Mode::Bridge(a.id, b.id));
    let a_addr: SocketAddr = format!("127.0.0.1:{}", a.port).parse().unwrap();
    let rtcp_addr: SocketAddr = format!("127.0.0.1:{}", a.port + 1).parse().unwrap();
    let mut bad = vec![vec![], vec![0x80], vec![0x40; 40], rtp(1, 0, &[0; 3])];
    bad[3][0] |= 0x20; // padding count larger than the payload
    *bad[3].last_mut().unwrap() = 99;
    for p in &bad {
        pa.send_to(p, a_addr).unwrap();
        pa.send_to(p, rtcp_addr).unwrap();
    }
    pa.send_to(&rtp(2, 0, &[7; 160]), a_addr).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = pb
        .recv_from(&mut buf)
        .expect("the good packet still gets through");
    assert_eq!(&buf[12..n], &[7; 160]);
    // The RTCP socket's garbage may still be in flight when the good RTP
    // packet is relayed: read the counters until they settle (≤ 1 s).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let stats = loop {
        let stats = rt.block_on(s.stats(a.id)).unwrap();
        if stats.malformed >= 6 || std::time::Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(stats.malformed >= 6, "malformed counted: {stats:?}");
    assert_eq!(stats.rx_packets, 1);
    drop(s);
    let mut total = 0;
    for _ in 0..50 {
        total = e
            .stats()
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed);
        if total >= 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        total >= 6,
        "engine-wide count: {total}, sessions {}, rx {}",
        e.stats()
            .sessions
            .load(std::sync::atomic::Ordering::Relaxed),
        e.stats()
            .rx_packets
            .load(std::sync::atomic::Ordering::Relaxed)
    );
}
