//! Calls through the switch: failure codes, CANCEL, authentication, and
//! registrations surviving a restart (acceptance points 3-5 of the
//! foundation issue).

use e2e::switch::{base_config, SwitchProc};
use e2e::ua::Ua;
use sip::{Method, Name, SipMessage};
use std::time::Duration;

const S: Duration = Duration::from_secs(5);

fn start(extra: &str) -> (tempfile::TempDir, SwitchProc) {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let cfg = base_config(port, &dir.path().join("db"), extra);
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    (dir, sw)
}

const FROM_TRUNK_TO_USERS: &str = r#"
[calls]
no_answer_timeout_secs = 2

[[routes]]
prefix = ""
from = "trunks"
target = "users"
"#;

fn codes(rs: &[sip::Response]) -> Vec<u16> {
    rs.iter().map(|r| r.code).collect()
}

#[test]
fn unknown_user_gets_404_and_unregistered_user_480() {
    let (_d, sw) = start(FROM_TRUNK_TO_USERS);
    let mut caller = Ua::new("127.0.0.2", sw.addr());
    let inv = caller.invite("5551234", "9999");
    let tx = caller.send(inv);
    assert_eq!(
        codes(&caller.final_response(tx, S)).last(),
        Some(&404),
        "{}",
        sw.log_tail()
    );
    let inv = caller.invite("5551234", "1002");
    let tx = caller.send(inv);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&480));
}

/// Registers a test UA as `user` and returns it.
fn phone(sw: &SwitchProc, user: &str) -> Ua {
    let mut ua = Ua::new("127.0.0.1", sw.addr());
    let r = ua.register(user, "secret", 300).expect("REGISTER answered");
    assert_eq!(r.code, 200, "register {user}: {}", sw.log_tail());
    ua
}

#[test]
fn busy_callee_gives_486_and_answer_bye_works() {
    let (_d, sw) = start(FROM_TRUNK_TO_USERS);
    let mut callee = phone(&sw, "1003");
    let mut caller = Ua::new("127.0.0.2", sw.addr());

    // Busy.
    let inv = caller.invite("5551234", "1003");
    let tx = caller.send(inv);
    let (stx, req) = callee.request(S).expect("INVITE at callee");
    assert_eq!(req.method, Method::Invite);
    assert_eq!(req.max_forwards(), Some(69), "Max-Forwards decremented");
    let r = callee.answer(&req, 486, "busytag");
    callee.respond(stx.unwrap(), r);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&486));

    // Answer, ACK, BYE from the caller.
    let inv = caller.invite("5551234", "1003");
    let tx = caller.send(inv.clone());
    let (stx, req) = callee.request(S).expect("second INVITE");
    let stx = stx.unwrap();
    let ring = callee.answer(&req, 180, "t2");
    callee.respond(stx, ring);
    let ok = callee.answer(&req, 200, "t2");
    callee.respond(stx, ok);
    let rs = caller.final_response(tx, S);
    assert_eq!(codes(&rs), vec![100, 180, 200]);
    let ok = rs.last().unwrap().clone();
    assert!(ok.body.starts_with(b"v=0"), "SDP answer relayed");
    caller.ack(tx, &inv, &ok);
    let (none, ack) = callee.request(S).expect("ACK at callee");
    assert!(none.is_none() && ack.method == Method::Ack);
    let bye = caller.bye(&inv, &ok);
    let btx = caller.send(bye);
    let (btx_callee, bye_in) = callee.request(S).expect("BYE at callee");
    assert_eq!(bye_in.method, Method::Bye);
    let r = sip::response_to(&bye_in, 200, None);
    callee.respond(btx_callee.unwrap(), r);
    assert_eq!(codes(&caller.final_response(btx, S)).last(), Some(&200));
}

#[test]
fn cancel_before_answer_and_no_answer_timeout() {
    let (_d, sw) = start(FROM_TRUNK_TO_USERS);
    let mut callee = phone(&sw, "1003");
    let mut caller = Ua::new("127.0.0.2", sw.addr());

    // CANCEL after ringing.
    let inv = caller.invite("5551234", "1003");
    let tx = caller.send(inv.clone());
    let (stx, req) = callee.request(S).unwrap();
    let stx = stx.unwrap();
    let ring = callee.answer(&req, 180, "t1");
    callee.respond(stx, ring);
    assert_eq!(caller.response(tx, S).map(|r| r.code), Some(100));
    assert_eq!(caller.response(tx, S).map(|r| r.code), Some(180));
    let cancel = caller.cancel_for(&inv);
    let ctx = caller.send(cancel);
    assert_eq!(codes(&caller.final_response(ctx, S)), vec![200]);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&487));
    let (_, c) = callee.request(S).expect("CANCEL reaches the callee");
    assert_eq!(c.method, Method::Cancel);
    let r = sip::response_to(&req, 487, Some("t1"));
    callee.respond(stx, r);

    // No answer: the switch gives up after no_answer_timeout_secs (2 s).
    let inv = caller.invite("5551234", "1003");
    let tx = caller.send(inv);
    let (stx, req) = callee.request(S).unwrap();
    let stx = stx.unwrap();
    let ring = callee.answer(&req, 180, "t3");
    callee.respond(stx, ring);
    let t0 = std::time::Instant::now();
    let rs = caller.final_response(tx, Duration::from_secs(10));
    assert!(
        matches!(rs.last().map(|r| r.code), Some(480 | 408)),
        "{:?}",
        codes(&rs)
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "timed out after the configured 2 s"
    );
    let (_, c) = callee.request(S).expect("CANCEL on no answer");
    assert_eq!(c.method, Method::Cancel);
}

const USERS_TO_TRUNK: &str = r#"
[[trunks]]
name = "out"
outbound = { host = "127.0.0.1:TRUNKPORT" }

[[routes]]
prefix = "9"
from = "users"
target = { trunk = "out" }
strip = 1

[[routes]]
prefix = ""
from = "users"
target = "users"
"#;

#[test]
fn unauthenticated_invite_never_reaches_a_trunk() {
    let mut carrier = Ua::new("127.0.0.1", "127.0.0.1:9".parse().unwrap());
    let extra = USERS_TO_TRUNK.replace("TRUNKPORT", &carrier.local.port().to_string());
    let (_d, sw) = start(&extra);
    carrier.switch = sw.addr();
    let mut caller = Ua::new("127.0.0.3", sw.addr());
    // No credentials: challenged.
    let inv = caller.invite("1001", "90123456");
    let tx = caller.send(inv.clone());
    let rs = caller.final_response(tx, S);
    let challenge = rs.last().unwrap().clone();
    assert_eq!(challenge.code, 407);
    // Wrong password: challenged again, never routed.
    let bad = caller.with_proxy_auth(&inv, &challenge, "1001", "wrong");
    let tx = caller.send(bad);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&407));
    // Unknown user with any password: same.
    let bad = caller.with_proxy_auth(&inv, &challenge, "6666", "secret");
    let tx = caller.send(bad);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&407));
    assert!(
        carrier.request(Duration::from_millis(500)).is_none(),
        "nothing may reach the trunk"
    );
    // Right password: routed to the trunk with the prefix stripped.
    let good = caller.with_proxy_auth(&inv, &challenge, "1001", "secret");
    let tx = caller.send(good);
    let (ctx, out) = carrier
        .request(S)
        .expect("authenticated call reaches the trunk");
    assert_eq!(out.uri.sip().unwrap().user.as_deref(), Some("0123456"));
    assert!(out.from().unwrap().display.as_deref() == Some("Alice"));
    let r = sip::response_to(&out, 503, Some("x"));
    carrier.respond(ctx.unwrap(), r);
    let last = caller.final_response(tx, S).last().map(|r| r.code);
    assert!(matches!(last, Some(500..=599)), "{last:?}");
}

#[test]
fn wrong_password_gets_401_never_200() {
    let (_d, sw) = start("");
    let mut ua = Ua::new("127.0.0.1", sw.addr());
    for _ in 0..3 {
        let r = ua.register("1001", "not-the-password", 300).unwrap();
        assert_eq!(r.code, 401, "wrong password must be re-challenged");
    }
    let r = ua.register("1001", "secret", 300).unwrap();
    assert_eq!(r.code, 200);
    assert!(r.headers.get(&Name::Contact).unwrap().contains("expires="));
}

#[test]
fn registrations_survive_restart_and_kill9() {
    let (_d, mut sw) = start(FROM_TRUNK_TO_USERS);
    let mut callee = phone(&sw, "1001");
    for kill in [false, true] {
        if kill {
            sw.kill9();
            sw.restart();
        } else {
            sw.restart();
        }
        let mut caller = Ua::new("127.0.0.2", sw.addr());
        let inv = caller.invite("5551234", "1001");
        let tx = caller.send(inv);
        let (stx, req) = callee
            .request(S)
            .unwrap_or_else(|| panic!("no INVITE after restart (kill={kill}):\n{}", sw.log_tail()));
        let r = callee.answer(&req, 486, "x");
        callee.respond(stx.unwrap(), r);
        assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&486));
    }
    // Unregister with expires=0: now 480.
    let r = callee.register("1001", "secret", 0).unwrap();
    assert_eq!(r.code, 200);
    sw.restart();
    let mut caller = Ua::new("127.0.0.2", sw.addr());
    let inv = caller.invite("5551234", "1001");
    let tx = caller.send(inv);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&480));
}

#[test]
fn max_forwards_zero_gets_483() {
    let (_d, sw) = start(FROM_TRUNK_TO_USERS);
    let _callee = phone(&sw, "1003");
    let mut caller = Ua::new("127.0.0.2", sw.addr());
    let mut inv = caller.invite("5551234", "1003");
    inv.headers.set(Name::MaxForwards, "0");
    let tx = caller.send(inv);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&483));
}

#[test]
fn outbound_trunk_answers_carrier_challenge_with_digest() {
    let mut carrier = Ua::new("127.0.0.1", "127.0.0.1:9".parse().unwrap());
    let extra = format!(
        r#"
[[trunks]]
name = "out"
outbound = {{ host = "127.0.0.1:{}", auth = {{ username = "acct", password = "trunkpw" }} }}

[[routes]]
prefix = ""
from = "trunks"
target = {{ trunk = "out" }}
"#,
        carrier.local.port()
    );
    let (_d, sw) = start(&extra);
    carrier.switch = sw.addr();
    let mut server = sip::auth::DigestServer::new("carrier", [7; 32], 60);
    let mut caller = Ua::new("127.0.0.2", sw.addr());
    let inv = caller.invite("5551234", "4930123");
    let tx = caller.send(inv);
    // First INVITE: challenge it.
    let (stx, first) = carrier.request(S).expect("INVITE at carrier");
    let mut ch = sip::response_to(&first, 407, Some("c1"));
    for c in server.challenges(1_000, false) {
        ch.headers
            .push(Name::ProxyAuthenticate, c.to_header_value());
    }
    carrier.respond(stx.unwrap(), ch);
    // Second INVITE carries credentials that verify.
    let (stx, second) = carrier.request(S).expect("authenticated INVITE");
    let creds = second
        .headers
        .get(&Name::ProxyAuthorization)
        .and_then(|v| sip::auth::Credentials::parse(v).ok())
        .expect("Proxy-Authorization");
    assert_eq!(creds.username, "acct");
    assert_eq!(
        server.verify(&creds, "INVITE", "trunkpw", 1_001),
        sip::auth::Verdict::Ok
    );
    assert!(second.cseq().unwrap().seq > first.cseq().unwrap().seq);
    let r = carrier.answer(&second, 486, "c2");
    carrier.respond(stx.unwrap(), r);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&486));
}

/// RFC 3261 §9.1: leg B is only cancelled once it sent a provisional
/// response; a callee that stays silent gets no CANCEL until its 180.
#[test]
fn cancel_waits_for_the_callees_first_provisional() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let extra = format!(
        "[[trunks]]\nname = \"t\"\noutbound = {{ host = \"{}\" }}\n\n[[routes]]\nprefix = \"\"\nfrom = \"trunks\"\ntarget = {{ trunk = \"t\" }}\n",
        silent.local_addr().unwrap()
    );
    let (_d, sw) = start(&extra);
    let mut caller = Ua::new("127.0.0.2", sw.addr());
    let inv = caller.invite("5551234", "4930");
    let tx = caller.send(inv.clone());
    let recv = |timeout_ms: u64| -> Option<(sip::Request, std::net::SocketAddr)> {
        silent
            .set_read_timeout(Some(Duration::from_millis(timeout_ms)))
            .unwrap();
        let mut buf = [0u8; 65535];
        let (n, from) = silent.recv_from(&mut buf).ok()?;
        match sip::parse(
            &bytes::Bytes::copy_from_slice(&buf[..n]),
            sip::Framing::Datagram,
        ) {
            Ok(sip::Message::Request(r)) => Some((r, from)),
            _ => None,
        }
    };
    let (b_invite, from) = recv(3000).expect("INVITE on leg B");
    assert_eq!(caller.response(tx, S).map(|r| r.code), Some(100));
    let cancel = caller.cancel_for(&inv);
    let ctx = caller.send(cancel);
    assert_eq!(codes(&caller.final_response(ctx, S)), vec![200]);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&487));
    // Only INVITE retransmissions reach the silent callee, no CANCEL.
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_millis(1200) {
        if let Some((r, _)) = recv(300) {
            assert_eq!(
                r.method,
                Method::Invite,
                "nothing but INVITE before a provisional"
            );
        }
    }
    let ring = sip::response_to(&b_invite, 180, Some("late"));
    silent.send_to(&ring.to_bytes(), from).unwrap();
    let deadline = std::time::Instant::now() + S;
    let mut got_cancel = false;
    while std::time::Instant::now() < deadline && !got_cancel {
        got_cancel = recv(300).is_some_and(|(r, _)| r.method == Method::Cancel);
    }
    assert!(got_cancel, "CANCEL after the 180:\n{}", sw.log_tail());
}

/// Review findings: a BYE with the right Call-ID but wrong tags is 481
/// and does not end the call; a dialed number with escaped CR/LF is
/// refused before it reaches a trunk; an INVITE without Contact is 400;
/// digest credentials computed for another Request-URI are not accepted.
#[test]
fn dialog_tags_dialed_numbers_contact_and_digest_uri_are_checked() {
    let (_d, sw) = start(FROM_TRUNK_TO_USERS);
    let mut callee = phone(&sw, "1003");
    let mut caller = Ua::new("127.0.0.2", sw.addr());
    let inv = caller.invite("5551234", "1003");
    let tx = caller.send(inv.clone());
    let (stx, req) = callee.request(S).unwrap();
    let ok = callee.answer(&req, 200, "t9");
    callee.respond(stx.unwrap(), ok);
    let ok = caller.final_response(tx, S).pop().unwrap();
    assert_eq!(ok.code, 200);
    caller.ack(tx, &inv, &ok);
    assert!(callee
        .request(S)
        .is_some_and(|(_, r)| r.method == Method::Ack));

    // A forged BYE: same Call-ID, wrong From tag, from another address.
    let mut forger = Ua::new("127.0.0.5", sw.addr());
    let mut bye = caller.bye(&inv, &ok);
    bye.headers.set(Name::From, "<sip:x@127.0.0.5>;tag=forged");
    let ftx = forger.send(bye);
    assert_eq!(codes(&forger.final_response(ftx, S)), vec![481]);
    assert!(
        callee.request(Duration::from_millis(300)).is_none(),
        "forged BYE must not reach the callee"
    );
    // The real BYE still works.
    let bye = caller.bye(&inv, &ok);
    let btx = caller.send(bye);
    let (cbtx, b) = callee.request(S).expect("real BYE");
    assert_eq!(b.method, Method::Bye);
    let r = sip::response_to(&b, 200, None);
    callee.respond(cbtx.unwrap(), r);
    assert_eq!(codes(&caller.final_response(btx, S)).last(), Some(&200));

    // Header injection attempt through the dialed number.
    let mut inj = caller.invite("5551234", "1003");
    inj.uri = sip::Uri::parse(&format!("sip:00%0D%0AP-Asserted-Identity:x@{}", sw.addr())).unwrap();
    let tx = caller.send(inj);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&484));

    // No Contact.
    let mut nc = caller.invite("5551234", "1003");
    nc.headers.remove(&Name::Contact);
    let tx = caller.send(nc);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&400));
}

#[test]
fn digest_response_for_another_uri_is_refused() {
    let mut carrier = Ua::new("127.0.0.1", "127.0.0.1:9".parse().unwrap());
    let extra = USERS_TO_TRUNK.replace("TRUNKPORT", &carrier.local.port().to_string());
    let (_d, sw) = start(&extra);
    carrier.switch = sw.addr();
    let mut caller = Ua::new("127.0.0.3", sw.addr());
    let inv = caller.invite("1001", "90123456");
    let tx = caller.send(inv.clone());
    let challenge = caller.final_response(tx, S).pop().unwrap();
    assert_eq!(challenge.code, 407);
    // Credentials computed for a harmless number, sent with a premium one.
    let harmless = caller.invite("1001", "1002");
    let creds = caller.with_proxy_auth(&harmless, &challenge, "1001", "secret");
    let mut replay = caller.invite("1001", "900900123");
    replay.headers.push(
        Name::ProxyAuthorization,
        creds.headers.get(&Name::ProxyAuthorization).unwrap(),
    );
    let tx = caller.send(replay);
    assert_eq!(codes(&caller.final_response(tx, S)).last(), Some(&407));
    assert!(
        carrier.request(Duration::from_millis(500)).is_none(),
        "nothing may reach the trunk"
    );
}
