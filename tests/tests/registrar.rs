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
