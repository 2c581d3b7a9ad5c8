//! Registrar behaviour over the wire (RFC 3261 §10.3): several contacts,
//! `Contact: *`, Interval Too Brief, non-SIP AOR.

use e2e::switch::{base_config, SwitchProc};
use e2e::ua::Ua;
use sip::auth::{respond, Challenge};
use sip::transaction::new_tag;
use sip::{Contacts, Method, Name, Request, Response, SipMessage};
use std::time::Duration;

const S: Duration = Duration::from_secs(5);

/// Sends `req`, answers one 401, returns the final response.
fn send_authed(ua: &mut Ua, mut req: Request) -> Response {
    let tx = ua.send(req.clone());
    let r = ua.final_response(tx, S).pop().expect("response");
    if r.code != 401 {
        return r;
    }
    let ch = r
        .headers
        .get_all(&Name::WwwAuthenticate)
        .find_map(|v| Challenge::parse(v).ok())
        .unwrap();
    let creds = respond(
        &ch,
        "REGISTER",
        &req.uri.to_string(),
        "1002",
        "secret",
        &new_tag(),
        1,
    );
    let seq = req.cseq().unwrap().seq + 1;
    req.headers.set(Name::CSeq, format!("{seq} REGISTER"));
    let via = sip::Via::new(
        "UDP",
        sip::Host::Ip(ua.local.ip()),
        Some(ua.local.port()),
        &sip::transaction::new_branch(),
    );
    req.headers.set(Name::Via, via.to_string());
    req.headers
        .push(Name::Authorization, creds.to_header_value());
    let tx = ua.send(req);
    ua.final_response(tx, S).pop().expect("final")
}

fn register(ua: &mut Ua, contacts: &[&str], expires: Option<u32>) -> Response {
    let sw = ua.switch;
    let aor = format!("sip:1002@{}", sw.ip());
    let mut req = ua.new_request(Method::Register, &format!("sip:{}", sw.ip()), "1002", &aor);
    req.headers
        .set(Name::From, format!("<{aor}>;tag={}", new_tag()));
    req.headers.remove(&Name::Contact);
    for c in contacts {
        req.headers.push(Name::Contact, *c);
    }
    if let Some(e) = expires {
        req.headers.push(Name::Expires, e.to_string());
    }
    send_authed(ua, req)
}

fn bound(r: &Response) -> usize {
    match r.contacts().unwrap() {
        Contacts::List(l) => l.len(),
        Contacts::Star => panic!("* in a 200"),
    }
}

#[test]
fn contacts_star_and_interval_too_brief() {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), ""),
    );
    let mut ua = Ua::new("127.0.0.1", sw.addr());
    let r = register(
        &mut ua,
        &[
            "<sip:1002@127.0.0.1:7001>",
            "<sip:1002@127.0.0.1:7002>;expires=120",
        ],
        Some(600),
    );
    assert_eq!(r.code, 200);
    assert_eq!(bound(&r), 2);
    let c = r
        .headers
        .get_all(&Name::Contact)
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        c.contains("expires=120") && c.contains("expires=600"),
        "{c}"
    );
    // A third, then one removed with expires=0.
    let r = register(&mut ua, &["<sip:1002@127.0.0.1:7003>"], None);
    assert_eq!(bound(&r), 3);
    let r = register(&mut ua, &["<sip:1002@127.0.0.1:7001>;expires=0"], None);
    assert_eq!(bound(&r), 2);
    // Too brief.
    let r = register(&mut ua, &["<sip:1002@127.0.0.1:7004>"], Some(5));
    assert_eq!(r.code, 423);
    assert_eq!(r.headers.get(&Name::MinExpires), Some("60"));
    // `*` needs Expires: 0.
    let r = register(&mut ua, &["*"], Some(60));
    assert_eq!(r.code, 400);
    let r = register(&mut ua, &["*"], Some(0));
    assert_eq!(r.code, 200);
    assert_eq!(r.headers.count(&Name::Contact), 0);
}

/// Datagrams that arrive on `ua`'s socket within `d`.
fn datagrams(ua: &Ua, d: Duration) -> Vec<Vec<u8>> {
    let until = std::time::Instant::now() + d;
    let mut got = Vec::new();
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        if let Some(b) = ua.recv_raw(left.max(Duration::from_millis(1))) {
            got.push(b);
        }
    }
    got
}

/// REGISTERs `user` over a new TCP connection (answering the 401); returns
/// the connection once the 200 came.
fn register_over_tcp(sw: &SwitchProc, user: &str) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(sw.addr()).unwrap();
    tcp.set_read_timeout(Some(S)).unwrap();
    let local = tcp.local_addr().unwrap();
    let mut scratch = Ua::new("127.0.0.1", sw.addr());
    let aor = format!("sip:{user}@{}", sw.addr().ip());
    let uri = format!("sip:{}", sw.addr().ip());
    let mut req = scratch.new_request(Method::Register, &uri, user, &aor);
    req.headers
        .set(Name::Contact, format!("<sip:{user}@{local};transport=tcp>"));
    let mut exchange = |req: &mut Request, seq: u32| {
        let via = sip::Via::new(
            "TCP",
            sip::Host::Ip(local.ip()),
            Some(local.port()),
            &sip::transaction::new_branch(),
        );
        req.headers.set(Name::Via, via.to_string());
        req.headers.set(Name::CSeq, format!("{seq} REGISTER"));
        tcp.write_all(&req.to_bytes()).unwrap();
        let mut buf = vec![0u8; 8192];
        let n = tcp.read(&mut buf).unwrap();
        let msg = sip::parse(
            &bytes::Bytes::copy_from_slice(&buf[..n]),
            sip::Framing::Stream,
        );
        match msg {
            Ok(sip::Message::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    };
    let challenge = exchange(&mut req, 1);
    assert_eq!(challenge.code, 401);
    let ch = challenge
        .headers
        .get_all(&Name::WwwAuthenticate)
        .find_map(|v| Challenge::parse(v).ok())
        .unwrap();
    let creds = respond(&ch, "REGISTER", &uri, user, "secret", &new_tag(), 1);
    req.headers
        .push(Name::Authorization, creds.to_header_value());
    assert_eq!(exchange(&mut req, 2).code, 200);
    tcp
}

/// NAT keep-alives (RFC 5626 §3.5.1 double CRLF, every `keepalive_secs`):
/// a UDP phone whose Contact names a private address (behind NAT) gets
/// them on the flow its REGISTER came from; a UDP phone whose Contact is
/// its source gets none; a TCP phone gets them down its connection.
#[test]
fn phones_behind_nat_and_on_tcp_get_keepalives() {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let extra = "[registrar]\nkeepalive_secs = 1\n";
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), extra),
    );
    let mut natted = Ua::new("127.0.0.1", sw.addr());
    let r = register(&mut natted, &["<sip:1002@10.0.0.5:5060>"], Some(300));
    assert_eq!(r.code, 200);
    let mut direct = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(
        direct.register("1001", "secret", 300).map(|r| r.code),
        Some(200)
    );
    let mut tcp = register_over_tcp(&sw, "1003");
    let (nat_pings, direct_pings) = std::thread::scope(|s| {
        let n = s.spawn(|| datagrams(&natted, Duration::from_millis(3200)));
        let d = datagrams(&direct, Duration::from_millis(3200));
        (n.join().unwrap(), d)
    });
    let mut over_tcp = Vec::new();
    tcp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        let mut buf = [0u8; 64];
        if let Ok(n) = std::io::Read::read(&mut tcp, &mut buf) {
            over_tcp.extend_from_slice(&buf[..n]);
        }
    }
    println!(
        "in 3.2 s: {} keep-alives to the phone behind NAT, {} to the direct one; {} bytes down TCP in 1.5 s",
        nat_pings.len(),
        direct_pings.len(),
        over_tcp.len()
    );
    assert!(nat_pings.len() >= 3, "{nat_pings:?}");
    assert!(nat_pings.iter().all(|p| p == b"\r\n\r\n"), "{nat_pings:?}");
    assert!(direct_pings.is_empty(), "{direct_pings:?}");
    assert!(over_tcp.len() >= 4, "{over_tcp:?}");
    assert!(over_tcp.chunks(4).all(|c| c == b"\r\n\r\n"), "{over_tcp:?}");
}
