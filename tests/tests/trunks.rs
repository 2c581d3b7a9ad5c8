//! Carrier trunks and outbound calls: who may dial out how far.

use e2e::switch::{base_config, SwitchProc};
use e2e::ua::Ua;
use sip::Method;
use std::time::Duration;

/// Users 1001 (national, the default), 1004 (international), 1005
/// (internal only); routes "00…" (international) and "0…" (national) to
/// the trunk "out", whose gateway is `carrier`.
fn outbound_switch(dir: &std::path::Path, port: u16, carrier: &Ua) -> SwitchProc {
    let extra = format!(
        r#"
[[users]]
name = "1004"
password = "secret"
may_call = "international"

[[users]]
name = "1005"
password = "secret"
may_call = "internal"

[[trunks]]
name = "out"
outbound = {{ host = "{}" }}

[[routes]]
prefix = "00"
target = {{ trunk = "out" }}
class = "international"

[[routes]]
prefix = "0"
target = {{ trunk = "out" }}

[[routes]]
prefix = "100"
target = "users"
"#,
        carrier.local
    );
    SwitchProc::start(dir, port, &base_config(port, &dir.join("db"), &extra))
}

/// `user` (password `password`, or none) dials `number` (answering one
/// 407 if there is a password); `carrier` answers whatever reaches it with
/// 486 meanwhile. The final response, and the number the carrier was
/// asked for, if any.
fn dial(
    sw: &SwitchProc,
    carrier: &mut Ua,
    user: &str,
    password: Option<&str>,
    number: &str,
) -> (sip::Response, Option<String>) {
    let mut ua = Ua::new("127.0.0.1", sw.addr());
    let invite = ua.invite(user, number);
    let tx = ua.send(invite.clone());
    let first = ua.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    let Some(password) = password.filter(|_| first.code == 407) else {
        return (first, None);
    };
    let inv = ua.with_proxy_auth(&invite, &first, user, password);
    let tx = ua.send(inv);
    let reached = carrier_gets(carrier, Duration::from_millis(400));
    let r = ua.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    (r, reached)
}

/// The carrier's gateway: the next INVITE within `wait`, answered 486.
fn carrier_gets(carrier: &mut Ua, wait: Duration) -> Option<String> {
    let (tx, inv) = carrier.request(wait)?;
    if inv.method != Method::Invite {
        return None;
    }
    carrier.respond(tx.unwrap(), sip::response_to(&inv, 486, Some("gw")));
    inv.uri.sip().and_then(|u| u.user.clone())
}

#[test]
fn users_dial_out_only_as_far_as_they_may_and_nobody_unauthenticated_does() {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw_addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut carrier = Ua::new("127.0.0.1", sw_addr);
    let sw = outbound_switch(dir.path(), port, &carrier);
    let quiet = Duration::from_millis(400);

    let mut dial = |user: &str, password: Option<&str>, number: &str| {
        let (r, reached) = dial(&sw, &mut carrier, user, password, number);
        (r.code, r.reason, reached)
    };
    let intl = "004412345678";
    let (refused, not) = ("International Calls Not Permitted", None);
    // 1001 may call national numbers, not international ones.
    assert_eq!(
        dial("1001", Some("secret"), intl),
        (403, refused.into(), not)
    );
    let national = dial("1001", Some("secret"), "0301234567");
    assert_eq!((national.0, national.2), (486, Some("0301234567".into())));
    // 1004 may call abroad.
    let abroad = dial("1004", Some("secret"), intl);
    assert_eq!((abroad.0, abroad.2), (486, Some(intl.into())));
    // 1005 may call only inside the switch.
    assert_eq!(
        dial("1005", Some("secret"), "0301234567"),
        (403, "External Calls Not Permitted".into(), None)
    );
    let (code, _, reached) = dial("1005", Some("secret"), "1001");
    assert_eq!(
        (code, reached),
        (480, None),
        "internal calls are fine (1001 is not registered)"
    );

    // Nobody unauthenticated reaches the trunk: no credentials, a wrong
    // password, an unknown user are challenged again or refused.
    assert_eq!(dial("1004", None, intl).0, 407);
    for (user, pw) in [("1004", "wrong"), ("9999", "secret")] {
        let (code, _, reached) = dial(user, Some(pw), intl);
        assert!(matches!(code, 403 | 407), "{user}/{pw}: {code}");
        assert_eq!(reached, None, "{user}/{pw} reached the carrier");
    }
    // The carrier trunk itself (127.0.0.2) has no route out: 404.
    let mut c = Ua::new("127.0.0.2", sw.addr());
    let invite = c.invite("5551234", "004412345678");
    let tx = c.send(invite.clone());
    let r = c.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(r.code, 404);
    assert_eq!(carrier_gets(&mut carrier, quiet), None);

    // Click-to-call dials as the user: refused before any phone rings.
    let out = sw.ctl(&["calls", "originate", "1001", "004412345678"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1001 may not place international calls"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The refusals are in the records.
    let cdrs = sw.cdrs(1);
    assert!(
        cdrs.iter()
            .any(|c| c["reason"] == "international calls not permitted" && c["cause"] == 403),
        "{cdrs:?}"
    );
}

/// RFC 3262: a callee (sipp UAS) sends 183 with `Require: 100rel`; the
/// switch PRACKs it (RAck "1 1 INVITE", checked by sipp), the call is
/// answered and completes; the BYE's CSeq comes after the PRACK's.
#[test]
fn a_reliable_183_is_pracked_and_the_call_completes() {
    use e2e::sipp::SippUas;
    let dir = tempfile::tempdir().unwrap();
    let mut uas = SippUas::start(
        dir.path(),
        Some(&e2e::sipp::scenario("uas_100rel.xml")),
        &["-m", "1", "-trace_msg"],
    );
    let sw = uas_switch(dir.path(), uas.port, "");
    let mut c = Ua::new("127.0.0.2", sw.addr());
    let invite = c.invite("5551234", "0301234567");
    let tx = c.send(invite.clone());
    let mut codes = Vec::new();
    let ok = loop {
        let r = c.response(tx, Duration::from_secs(5)).unwrap_or_else(|| {
            let mut msgs = String::new();
            for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
                if e.file_name().to_string_lossy().ends_with("messages.log") {
                    msgs += &std::fs::read_to_string(e.path()).unwrap_or_default();
                }
            }
            panic!("a response after {codes:?}\n{msgs}\n{}", sw.log_tail())
        });
        codes.push(r.code);
        if r.code >= 200 {
            break r;
        }
    };
    assert_eq!(ok.code, 200, "{codes:?}\n{}", sw.log_tail());
    assert!(
        codes.contains(&183),
        "the early media was relayed: {codes:?}"
    );
    c.ack(tx, &invite, &ok);
    std::thread::sleep(Duration::from_millis(300));
    let bye = c.bye(&invite, &ok);
    let btx = c.send(bye);
    let r = c.final_response(btx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(r.code, 200);
    assert_eq!(
        uas.wait(Duration::from_secs(10)),
        Some(0),
        "sipp's scenario (PRACK with RAck 1 1 INVITE, BYE CSeq 3) completed\n{}",
        sw.log_tail()
    );
}

/// RFC 3262 on the caller's side: a caller whose INVITE says `Require:
/// 100rel` gets the callee's 183 (with SDP) reliably — `Require: 100rel`
/// and an `RSeq`, sent again at T1, 2·T1 while it withholds its PRACK —
/// and the callee's 200 is held until the PRACK comes. A PRACK naming
/// another RSeq is 481. PRACKs stay hop by hop: the callee (sipp) checks
/// the switch's own PRACK on its leg (RAck "1 1 INVITE").
#[test]
fn a_caller_that_requires_100rel_gets_reliable_ringing() {
    use e2e::sipp::SippUas;
    use sip::dialog::Dialog;
    use sip::{Name, SipMessage};
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let mut uas = SippUas::start(
        dir.path(),
        Some(&e2e::sipp::scenario("uas_100rel.xml")),
        &["-m", "1"],
    );
    let sw = uas_switch(dir.path(), uas.port, "");
    let mut c = Ua::new("127.0.0.2", sw.addr());
    let mut invite = c.invite("5551234", "0301234567");
    invite.headers.push(Name::Require, "100rel");
    let tx = c.send(invite.clone());
    // No PRACK for 1.7 s: the 183 comes at 0, 0.5 and 1.5 s, and no 200.
    let until = Instant::now() + Duration::from_millis(1700);
    let mut copies = Vec::new();
    while let Some(r) = c.response(tx, until.saturating_duration_since(Instant::now())) {
        assert!(
            r.code < 200,
            "a final response before the PRACK: {}",
            r.code
        );
        if r.code == 183 {
            copies.push(r);
        }
    }
    let rseq: u32 = copies
        .first()
        .and_then(|r| r.headers.get(&Name::RSeq))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("a 183 with RSeq: {copies:?}\n{}", sw.log_tail()));
    println!("the 183 came {} times in 1.7 s, RSeq {rseq}", copies.len());
    assert!(copies.len() >= 3, "{}", copies.len());
    for r in &copies {
        assert_eq!(
            r.headers.get(&Name::RSeq).map(str::trim),
            Some(rseq.to_string().as_str())
        );
        assert_eq!(r.headers.get(&Name::Require), Some("100rel"));
        assert!(!r.body().is_empty(), "the early media SDP");
    }
    let mut early = Dialog::uac(&invite, &copies[0]).unwrap();
    let mut prack = |c: &mut Ua, rseq: u32| {
        let mut p = c.in_dialog(&mut early, Method::Prack);
        p.headers.push(Name::RAck, format!("{rseq} 1 INVITE"));
        let ptx = c.send(p);
        c.final_response(ptx, Duration::from_secs(5))
            .pop()
            .map(|r| r.code)
    };
    assert_eq!(
        prack(&mut c, rseq + 1),
        Some(481),
        "a PRACK for nothing sent"
    );
    assert_eq!(prack(&mut c, rseq), Some(200), "{}", sw.log_tail());
    let ok = c
        .final_response(tx, Duration::from_secs(5))
        .pop()
        .expect("the 200 after the PRACK");
    assert_eq!(ok.code, 200, "{}", sw.log_tail());
    c.ack(tx, &invite, &ok);
    std::thread::sleep(Duration::from_millis(300));
    let mut d = Dialog::uac(&invite, &ok).unwrap();
    d.local_seq = early.local_seq;
    let bye = c.in_dialog(&mut d, Method::Bye);
    let btx = c.send(bye);
    let r = c.final_response(btx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(r.code, 200);
    assert_eq!(
        uas.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        sw.log_tail()
    );
}

/// A switch whose carrier calls to "0…" go out through trunk "uas" (at
/// 127.0.0.1:`uas_port`), with `extra` config.
fn uas_switch(dir: &std::path::Path, uas_port: u16, extra: &str) -> SwitchProc {
    let port = e2e::free_port("127.0.0.1");
    let extra = format!(
        r#"{extra}

[[trunks]]
name = "uas"
outbound = {{ host = "127.0.0.1:{uas_port}" }}

[[routes]]
prefix = "0"
from = "trunks"
target = {{ trunk = "uas" }}
"#
    );
    SwitchProc::start(dir, port, &base_config(port, &dir.join("db"), &extra))
}

/// A switch with session timers (minimum 4 s, for the test) and every
/// carrier call to a sipp UAS (`uas`, built-in scenario, one call).
fn timer_switch(dir: &std::path::Path) -> (SwitchProc, e2e::sipp::SippUas) {
    let uas = e2e::sipp::SippUas::start(dir, None, &["-m", "1"]);
    let sw = uas_switch(dir, uas.port, "[calls]\nsession_min_se_secs = 4");
    (sw, uas)
}

/// RFC 4028: a sipp caller asks for a 6 s session and never refreshes:
/// the switch hangs up both legs 4 s after the answer (a third of the
/// interval early); sipp checked the 200's Session-Expires and Require.
#[test]
fn a_session_that_is_not_refreshed_is_torn_down_on_both_legs() {
    let dir = tempfile::tempdir().unwrap();
    let (sw, mut uas) = timer_switch(dir.path());
    let t0 = std::time::Instant::now();
    let stats = e2e::sipp::run_trunk_call(
        dir.path(),
        &sw.addr().to_string(),
        &[
            "-sf",
            e2e::sipp::scenario("uac_timer.xml").to_str().unwrap(),
            "-s",
            "0301234567",
            "-timeout",
            "30",
        ],
        Duration::from_secs(40),
    );
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(
        (stats.successful, stats.failed),
        (1, 0),
        "{stats:?}\n{}",
        sw.log_tail()
    );
    assert!((3.5..6.0).contains(&took), "BYE after {took:.2} s");
    assert_eq!(
        uas.wait(Duration::from_secs(5)),
        Some(0),
        "the callee got its BYE too"
    );
    let cdrs = sw.cdrs(1);
    assert_eq!(cdrs[0]["reason"], "session timer expired", "{}", cdrs[0]);
}

/// A caller that refreshes (UPDATE without SDP, answered by the switch
/// with the interval) keeps its call past the first expiry; one asking
/// for less than the minimum gets 422 with Min-SE.
#[test]
fn a_refreshed_session_goes_on_and_a_short_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sw, _uas) = timer_switch(dir.path());
    let mut c = Ua::new("127.0.0.2", sw.addr());
    let mut short = c.invite("5551234", "0301234567");
    short.headers.push(sip::Name::Supported, "timer");
    short.headers.push(sip::Name::SessionExpires, "2");
    let tx = c.send(short);
    let r = c.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(r.code, 422);
    assert_eq!(r.headers.get(&sip::Name::MinSe), Some("4"));

    let mut invite = c.invite("5551234", "0301234567");
    invite.headers.push(sip::Name::Supported, "timer");
    invite
        .headers
        .push(sip::Name::SessionExpires, "6;refresher=uac");
    let tx = c.send(invite.clone());
    let ok = c.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(ok.code, 200, "{}", sw.log_tail());
    assert_eq!(
        ok.headers.get(&sip::Name::SessionExpires),
        Some("6;refresher=uac")
    );
    c.ack(tx, &invite, &ok);
    let answered = std::time::Instant::now();
    assert!(
        c.request(Duration::from_millis(2500)).is_none(),
        "no BYE yet"
    );
    let mut update = c.bye(&invite, &ok);
    update.method = Method::Update;
    let seq = sip::SipMessage::cseq(&invite).unwrap().seq + 1;
    update.headers.set(sip::Name::CSeq, format!("{seq} UPDATE"));
    update
        .headers
        .push(sip::Name::Contact, format!("<sip:5551234@{}>", c.local));
    update
        .headers
        .push(sip::Name::SessionExpires, "6;refresher=uac");
    let utx = c.send(update);
    let r = c.final_response(utx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(r.code, 200, "{}", sw.log_tail());
    assert_eq!(
        r.headers.get(&sip::Name::SessionExpires),
        Some("6;refresher=uac")
    );
    // The first expiry (4 s after the answer) passes; the BYE comes 4 s
    // after the refresh.
    let (btx, bye) = c.request(Duration::from_secs(8)).expect("BYE");
    let at = answered.elapsed().as_secs_f64();
    assert_eq!(bye.method, Method::Bye);
    c.respond(btx.unwrap(), sip::response_to(&bye, 200, None));
    assert!((5.8..8.5).contains(&at), "BYE {at:.2} s after the answer");
}

/// A caller that asks the switch to refresh (refresher=uas) gets an
/// UPDATE with the interval at half of it, again after its 200; when it
/// answers 481 (the dialog is gone for it) the switch ends the call.
#[test]
fn the_switch_refreshes_when_the_caller_asks_it_to() {
    let dir = tempfile::tempdir().unwrap();
    let (sw, mut uas) = timer_switch(dir.path());
    let mut c = Ua::new("127.0.0.2", sw.addr());
    let mut invite = c.invite("5551234", "0301234567");
    invite.headers.push(sip::Name::Supported, "timer");
    invite
        .headers
        .push(sip::Name::SessionExpires, "6;refresher=uas");
    let tx = c.send(invite.clone());
    let ok = c.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(ok.code, 200, "{}", sw.log_tail());
    assert_eq!(
        ok.headers.get(&sip::Name::SessionExpires),
        Some("6;refresher=uas")
    );
    c.ack(tx, &invite, &ok);
    let answered = std::time::Instant::now();
    let mut at = Vec::new();
    for answer in [200, 481] {
        let (utx, u) = c.request(Duration::from_secs(5)).expect("a refresh");
        assert_eq!(u.method, Method::Update);
        // In its own refresh the switch is the UAC, and stays the refresher.
        assert_eq!(
            u.headers.get(&sip::Name::SessionExpires),
            Some("6;refresher=uac")
        );
        at.push(answered.elapsed().as_secs_f64());
        c.respond(utx.unwrap(), sip::response_to(&u, answer, None));
    }
    assert!(
        (2.7..3.8).contains(&at[0]) && (5.7..7.0).contains(&at[1]),
        "{at:?}"
    );
    // After the 481 the call ends: the callee gets its BYE.
    assert_eq!(
        uas.wait(Duration::from_secs(5)),
        Some(0),
        "{}",
        sw.log_tail()
    );
    let cdrs = sw.cdrs(1);
    assert_eq!(cdrs[0]["reason"], "session timer expired", "{}", cdrs[0]);
}

/// Acceptance 2: trunk "out" has two gateways; the first (priority 1)
/// answers INVITEs with 503, so calls go on to the second within the same
/// call. When the first stops answering OPTIONS it is marked down
/// (`switchboard_gateway_up` 0, a `gateway_down` alert) and calls skip it
/// (no 503 round, no wait); when it answers again it is up and first again.
#[test]
fn calls_fail_over_to_the_next_gateway_and_skip_one_that_is_down() {
    use e2e::sipp::{run_trunk_call, scenario, SippUas};
    let dir = tempfile::tempdir().unwrap();
    let gw1_port = e2e::free_port("127.0.0.1");
    let gw1 = SippUas::start_on(
        dir.path(),
        gw1_port,
        Some(&scenario("uas_503.xml")),
        &["-aa"],
    );
    let gw2 = SippUas::start(dir.path(), None, &["-aa"]);
    let port = e2e::free_port("127.0.0.1");
    let extra = format!(
        r#"
[alerts]
trunk_down_after = 2

[[trunks]]
name = "out"
[trunks.outbound]
ping_secs = 1
gateways = [
  {{ host = "127.0.0.1:{gw1_port}", priority = 1 }},
  {{ host = "127.0.0.1:{}", priority = 2 }},
]

[[routes]]
prefix = "0"
from = "trunks"
target = {{ trunk = "out" }}
"#,
        gw2.port
    );
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), &extra),
    );
    let remote = sw.addr().to_string();
    let call = || {
        let t0 = std::time::Instant::now();
        let stats = run_trunk_call(
            dir.path(),
            &remote,
            &[
                "-sn",
                "uac",
                "-s",
                "0301234567",
                "-d",
                "200",
                "-timeout",
                "20",
            ],
            Duration::from_secs(30),
        );
        assert_eq!(
            (stats.successful, stats.failed),
            (1, 0),
            "{stats:?}\n{}",
            sw.log_tail()
        );
        t0.elapsed().as_secs_f64()
    };
    let log = || std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    let gw1_label = format!("gateway=\"127.0.0.1:{gw1_port}\"");
    let gw1_up = || -> Option<f64> {
        let (_, m) = sw.scrape();
        m.iter()
            .find(|(k, _)| k.starts_with("switchboard_gateway_up") && k.contains(&gw1_label))
            .map(|(_, v)| *v)
    };
    let wait_gw1 = |want: f64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        while gw1_up() != Some(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "gateway 1 never {want}: {}",
                sw.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_gw1(1.0);

    // 503 from the first: the second takes the call.
    call();
    assert_eq!(log().matches("gateway failed: the next one").count(), 1);
    assert!(log().contains("code=503"), "{}", sw.log_tail());

    // The first goes silent: marked down, then skipped.
    drop(gw1);
    wait_gw1(0.0);
    assert!(log().contains("gateway down: OPTIONS unanswered"));
    let alerts = sw.ctl_json(&["alerts"]);
    assert!(alerts.to_string().contains("gateway_down"), "{alerts}");
    let (_, m) = sw.scrape();
    assert_eq!(
        m.get(r#"switchboard_trunk_up{trunk="out"}"#),
        Some(&1.0),
        "the second is up"
    );
    let took = call();
    assert!(took < 2.0, "no wait for the dead gateway: {took:.2} s");
    assert_eq!(
        log().matches("gateway failed: the next one").count(),
        1,
        "not tried"
    );

    // It answers again (and takes calls now): up, and first again.
    let _gw1 = SippUas::start_on(dir.path(), gw1_port, None, &["-aa"]);
    wait_gw1(1.0);
    call();
    let gateways: Vec<String> = sw
        .cdrs(3)
        .iter()
        .map(|c| c["gateway"].as_str().unwrap_or("-").to_owned())
        .collect();
    let (g1, g2) = (
        format!("127.0.0.1:{gw1_port}"),
        format!("127.0.0.1:{}", gw2.port),
    );
    let mut sorted = gateways.clone();
    sorted.sort();
    let mut want = vec![g2.clone(), g2, g1];
    want.sort();
    assert_eq!(
        sorted, want,
        "the CDRs name the gateways that carried the calls"
    );
    assert_eq!(log().matches("gateway failed: the next one").count(), 1);
}

/// Acceptance 1: the carrier (sipp on 127.0.0.2) demands REGISTER with a
/// 401 digest challenge (verified by sipp) and grants 60 s; the switch is
/// then registered (metric, event). The carrier calls the registered
/// contact with the DID in To: the call reaches the DID's target (user
/// 1001), who answers; the CDR names the trunk and the DID.
#[test]
fn a_registered_trunk_receives_calls_for_its_dids() {
    use e2e::sipp::{run_uac, scenario};
    let dir = tempfile::tempdir().unwrap();
    let reg_port = e2e::free_port("127.0.0.2");
    let mut registrar = {
        // The registrar listens on the carrier's address (127.0.0.2).
        let mut cmd = std::process::Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario("registrar_401.xml"))
            .args([
                "-i",
                "127.0.0.2",
                "-p",
                &reg_port.to_string(),
                "-m",
                "1",
                "-nostdin",
            ])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        e2e::require("sipp");
        cmd.spawn().expect("sipp registrar")
    };
    let port = e2e::free_port("127.0.0.1");
    let extra = format!(
        r#"
[[trunks]]
name = "reg"
[trunks.outbound]
host = "127.0.0.2:{reg_port}"
auth = {{ username = "trunkuser", password = "trunkpw" }}
register_secs = 3600

[[routes]]
number = "4008001000"
from = "trunks"
target = {{ user = "1001" }}
"#
    );
    let mut sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), &extra),
    );
    let registered = || {
        let (_, m) = sw.scrape();
        m.get(r#"switchboard_trunk_registered{trunk="reg"}"#)
            .copied()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while registered() != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "not registered:\n{}",
            sw.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        registrar.try_wait().unwrap().is_none(),
        "the registrar waits for the removal"
    );
    assert!(
        sw.log_tail()
            .contains("registered with the carrier trunk=reg expires=60"),
        "{}",
        sw.log_tail()
    );

    // The carrier calls the registration; 1001 answers.
    let mut phone = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(phone.register("1001", "secret", 300).unwrap().code, 200);
    let remote = sw.addr().to_string();
    let d = dir.path().to_owned();
    let carrier = std::thread::spawn(move || {
        run_uac(
            &d,
            &remote,
            &[
                "-sf",
                scenario("uac_did.xml").to_str().unwrap(),
                "-s",
                "trunkuser",
                "-i",
                "127.0.0.2",
                "-p",
                &e2e::free_port("127.0.0.2").to_string(),
                "-m",
                "1",
                "-d",
                "500",
                "-timeout",
                "20",
            ],
            Duration::from_secs(30),
        )
    });
    let (tx, inv) = phone.request(Duration::from_secs(5)).expect("1001 rings");
    assert_eq!(inv.method, Method::Invite);
    let ok = phone.answer(&inv, 200, "p1001");
    phone.respond(tx.unwrap(), ok);
    // ACK, then the carrier's BYE.
    for want in [Method::Ack, Method::Bye] {
        let (tx, r) = phone.request(Duration::from_secs(5)).expect("ACK / BYE");
        assert_eq!(r.method, want);
        if let Some(tx) = tx.filter(|_| want == Method::Bye) {
            phone.respond(tx, sip::response_to(&r, 200, None));
        }
    }
    let stats = carrier.join().unwrap();
    assert_eq!((stats.successful, stats.failed), (1, 0), "{stats:?}");
    let cdrs = sw.cdrs(1);
    let c = &cdrs[0];
    assert_eq!(
        (
            c["trunk"].as_str(),
            c["dialed"].as_str(),
            c["destination"].as_str()
        ),
        (Some("reg"), Some("4008001000"), Some("1001")),
        "{c}"
    );

    // Stopping, the switch removes its registration (Expires: 0, challenge answered).
    sw.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = registrar.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = registrar.kill();
            panic!("the registrar heard no removal:\n{}", sw.log_tail());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "the registrar's scenario (challenges answered, Contact, Expires: 0) passed\n{}",
        sw.log_tail()
    );
    assert!(
        sw.log_tail()
            .contains("registration with the carrier removed trunk=reg"),
        "{}",
        sw.log_tail()
    );
}

/// A switch whose config `extra(gw)` names the carrier gateway `gw` (the
/// returned Ua, on 127.0.0.1), in a new folder.
fn with_gateway(
    extra: impl Fn(std::net::SocketAddr) -> String,
) -> (tempfile::TempDir, SwitchProc, Ua) {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let gw = Ua::new(
        "127.0.0.1",
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    );
    let extra = extra(gw.local);
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), &extra),
    );
    (dir, sw, gw)
}

/// Per-trunk limits: trunk "out" takes at most 2 calls at a time, trunk
/// "burst" at most 2 new calls a second; calls over them get 503 at once
/// and never reach the carrier. A call that ends frees its place.
#[test]
fn a_trunk_takes_no_more_calls_than_its_limits() {
    let (_dir, sw, mut gw) = with_gateway(|gw| {
        format!(
            r#"
[[trunks]]
name = "out"
max_calls = 2
outbound = {{ host = "{gw}" }}

[[trunks]]
name = "burst"
max_cps = 2
outbound = {{ host = "{gw}" }}

[[routes]]
prefix = "0"
from = "trunks"
target = {{ trunk = "out" }}

[[routes]]
prefix = "9"
from = "trunks"
target = {{ trunk = "burst" }}
"#
        )
    });
    let mut c = Ua::new("127.0.0.2", sw.addr());
    let quiet = Duration::from_millis(400);
    // Three calls at once to "out": two ring at the carrier, one gets 503.
    let calls: Vec<(sip::Request, sip::transaction::TxId)> = ["0301", "0302", "0303"]
        .iter()
        .map(|n| {
            let inv = c.invite("5551234", n);
            let tx = c.send(inv.clone());
            (inv, tx)
        })
        .collect();
    let mut ringing = Vec::new();
    for _ in 0..2 {
        let (tx, inv) = gw
            .request(Duration::from_secs(5))
            .expect("the carrier gets a call");
        assert_eq!(inv.method, Method::Invite);
        gw.respond(tx.unwrap(), sip::response_to(&inv, 180, Some("gw")));
        ringing.push((tx.unwrap(), inv));
    }
    assert!(
        gw.request(quiet).is_none(),
        "a third call reached the carrier"
    );
    let busy: Vec<u16> = calls
        .iter()
        .filter_map(|(_, tx)| {
            c.final_response(*tx, Duration::from_millis(300))
                .last()
                .map(|r| r.code)
                .filter(|&code| code >= 200)
        })
        .collect();
    assert_eq!(busy, [503], "exactly one over the limit");
    // One of the ringing calls ends (the carrier declines): a new one fits.
    let (tx, inv) = ringing.remove(0);
    gw.respond(tx, sip::response_to(&inv, 486, Some("gw")));
    std::thread::sleep(Duration::from_millis(200));
    let inv = c.invite("5551234", "0304");
    let tx4 = c.send(inv);
    let (gtx, ginv) = gw.request(Duration::from_secs(5)).expect("room again");
    assert_eq!(ginv.method, Method::Invite);
    gw.respond(gtx.unwrap(), sip::response_to(&ginv, 486, Some("gw")));
    let r = c.final_response(tx4, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(r.code, 486);
    let (tx, inv) = ringing.remove(0);
    gw.respond(tx, sip::response_to(&inv, 486, Some("gw")));

    // Three calls within one second to "burst" (max 2 a second).
    let frac = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis()
    };
    while frac() > 300 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let txs: Vec<_> = ["9001", "9002", "9003"]
        .iter()
        .map(|n| {
            let inv = c.invite("5551234", n);
            c.send(inv)
        })
        .collect();
    let mut reached = 0;
    while let Some((tx, inv)) = gw.request(quiet) {
        if inv.method == Method::Invite {
            reached += 1;
            gw.respond(tx.unwrap(), sip::response_to(&inv, 486, Some("gw")));
        }
    }
    let codes: Vec<u16> = txs
        .iter()
        .filter_map(|tx| {
            c.final_response(*tx, Duration::from_secs(2))
                .last()
                .map(|r| r.code)
        })
        .collect();
    assert_eq!(reached, 2, "{codes:?}");
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, [486, 486, 503], "{codes:?}");
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(log.contains("trunk call limit reached"), "{log}");
}

/// Caller ID towards carriers and from them (RFC 3325 / 3323): users show
/// their `caller_id` (or the trunk's), a trusted trunk gets
/// P-Asserted-Identity, a caller asking for privacy is "Anonymous" with
/// `Privacy: id` (the asserted identity still carries the number); from a
/// trunk that is trusted, the number comes from P-Asserted-Identity, and a
/// private caller reaches the user as Anonymous while the CDR keeps the
/// number. The peer trunk owns 700x only: other numbers get 404.
#[test]
fn caller_id_and_privacy_on_trunks() {
    let (_dir, sw, mut gw) = with_gateway(|gw| {
        format!(
            r#"
[[users]]
name = "1004"
password = "secret"
caller_id = "+493012345604"

[[trunks]]
name = "out"
[trunks.outbound]
host = "{gw}"
from_domain = "carrier.example"
caller_id = "+4930123450"
assert_identity = true

[[trunks]]
name = "trusted"
inbound = {{ auth = {{ username = "peer", password = "peerpw" }}, trust_identity = true, numbers = ["700x"] }}

[[routes]]
prefix = "0"
target = {{ trunk = "out" }}

[[routes]]
number = "7003"
from = "trunks"
target = {{ user = "1003" }}
"#
        )
    });
    // A user dials out (answering the 407); the carrier's INVITE headers.
    let mut out = |user: &str, private: bool| -> sip::Request {
        let mut ua = Ua::new("127.0.0.1", sw.addr());
        let mut invite = ua.invite(user, "0301234567");
        if private {
            invite.headers.push(sip::Name::Privacy, "id");
        }
        let tx = ua.send(invite.clone());
        let first = ua.final_response(tx, Duration::from_secs(5)).pop().unwrap();
        let inv = ua.with_proxy_auth(&invite, &first, user, "secret");
        let tx = ua.send(inv);
        let (gtx, ginv) = gw
            .request(Duration::from_secs(5))
            .expect("the carrier gets the call");
        gw.respond(gtx.unwrap(), sip::response_to(&ginv, 486, Some("gw")));
        assert_eq!(
            ua.final_response(tx, Duration::from_secs(5))
                .pop()
                .unwrap()
                .code,
            486
        );
        ginv
    };
    let h = |r: &sip::Request, n: sip::Name| r.headers.get(&n).unwrap_or("").to_owned();
    let own = out("1004", false);
    assert!(
        h(&own, sip::Name::From).contains("<sip:+493012345604@carrier.example>"),
        "{own:?}"
    );
    assert_eq!(
        h(&own, sip::Name::PAssertedIdentity),
        "<sip:+493012345604@carrier.example>"
    );
    let main = out("1002", false);
    assert!(h(&main, sip::Name::From).contains("<sip:+4930123450@carrier.example>"));
    let hidden = out("1004", true);
    assert!(
        h(&hidden, sip::Name::From).starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>"),
        "{}",
        h(&hidden, sip::Name::From)
    );
    assert_eq!(h(&hidden, sip::Name::Privacy), "id");
    assert_eq!(
        h(&hidden, sip::Name::PAssertedIdentity),
        "<sip:+493012345604@carrier.example>"
    );

    // From the trusted peer: the asserted number, hidden from the user.
    let mut phone = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(phone.register("1003", "secret", 300).unwrap().code, 200);
    let mut peer = Ua::new("127.0.0.1", sw.addr());
    for private in [false, true] {
        let mut invite = peer.invite("unknown", "7003");
        invite.headers.push(
            sip::Name::PAssertedIdentity,
            "\"Erika\" <sip:+4915551234@carrier.example>",
        );
        if private {
            invite.headers.push(sip::Name::Privacy, "id");
        }
        let tx = peer.send(invite.clone());
        let first = peer
            .final_response(tx, Duration::from_secs(5))
            .pop()
            .unwrap();
        assert_eq!(first.code, 407);
        let inv = peer.with_proxy_auth(&invite, &first, "peer", "peerpw");
        let tx = peer.send(inv);
        let (ptx, pinv) = phone.request(Duration::from_secs(5)).expect("1003 rings");
        let from = h(&pinv, sip::Name::From);
        if private {
            assert!(from.contains("anonymous@anonymous.invalid"), "{from}");
        } else {
            assert!(from.contains("\"Erika\" <sip:+4915551234@"), "{from}");
        }
        assert_eq!(
            h(&pinv, sip::Name::PAssertedIdentity),
            "",
            "not sent to a phone"
        );
        phone.respond(ptx.unwrap(), sip::response_to(&pinv, 486, Some("p")));
        assert_eq!(
            peer.final_response(tx, Duration::from_secs(5))
                .pop()
                .unwrap()
                .code,
            486
        );
    }
    // The peer owns 700x only: another number is refused.
    let invite = peer.invite("unknown", "8001");
    let tx = peer.send(invite.clone());
    let first = peer
        .final_response(tx, Duration::from_secs(5))
        .pop()
        .unwrap();
    let inv = peer.with_proxy_auth(&invite, &first, "peer", "peerpw");
    let tx = peer.send(inv);
    let r = peer
        .final_response(tx, Duration::from_secs(5))
        .pop()
        .unwrap();
    assert_eq!(
        (r.code, r.reason.as_str()),
        (404, "Not A Number Of This Trunk")
    );
    let cdrs = sw.cdrs(5);
    let inbound: Vec<&serde_json::Value> = cdrs.iter().filter(|c| c["dialed"] == "7003").collect();
    assert_eq!(inbound.len(), 2);
    assert!(
        inbound.iter().all(|c| c["caller"] == "+4915551234"),
        "{inbound:?}"
    );
}

/// A carrier's 302: trunk "follow" calls the Contact's number through the
/// same trunk (the user may call it), trunk "refuse" (the default) fails
/// the call with 480; a redirect to a number the user may not call
/// (abroad) is not followed.
#[test]
fn redirects_are_followed_or_refused_per_trunk() {
    let (_dir, sw, mut gw) = with_gateway(|gw| {
        format!(
            r#"
[[trunks]]
name = "follow"
outbound = {{ host = "{gw}", redirects = "follow" }}

[[trunks]]
name = "refuse"
outbound = {{ host = "{gw}" }}

[[routes]]
prefix = "00"
target = {{ trunk = "follow" }}
class = "international"

[[routes]]
prefix = "0"
target = {{ trunk = "follow" }}

[[routes]]
prefix = "8"
target = {{ trunk = "refuse" }}
"#
        )
    });
    let mut ua = Ua::new("127.0.0.1", sw.addr());
    let dial = |ua: &mut Ua, number: &str| {
        let invite = ua.invite("1001", number);
        let tx = ua.send(invite.clone());
        let first = ua.final_response(tx, Duration::from_secs(5)).pop().unwrap();
        let inv = ua.with_proxy_auth(&invite, &first, "1001", "secret");
        ua.send(inv)
    };
    let redirect_to = |gw: &mut Ua, to: &str| -> String {
        let (tx, inv) = gw.request(Duration::from_secs(5)).expect("an INVITE");
        let mut r = sip::response_to(&inv, 302, Some("gw"));
        r.headers
            .push(sip::Name::Contact, format!("<sip:{to}@127.0.0.1>"));
        gw.respond(tx.unwrap(), r);
        inv.uri
            .sip()
            .and_then(|u| u.user.clone())
            .unwrap_or_default()
    };
    // Followed: 0301 → 302 to 0309 → the carrier gets 0309 (busy).
    let tx = dial(&mut ua, "0301");
    assert_eq!(redirect_to(&mut gw, "0309"), "0301");
    let (gtx, ginv) = gw
        .request(Duration::from_secs(5))
        .expect("the redirect followed");
    assert_eq!(
        ginv.uri.sip().and_then(|u| u.user.clone()).as_deref(),
        Some("0309")
    );
    gw.respond(gtx.unwrap(), sip::response_to(&ginv, 486, Some("gw")));
    let r = ua.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    assert_eq!(r.code, 486);
    // Not followed to a number 1001 may not call (international).
    let tx = dial(&mut ua, "0302");
    redirect_to(&mut gw, "00441234");
    assert!(gw.request(Duration::from_millis(400)).is_none());
    assert_eq!(
        ua.final_response(tx, Duration::from_secs(5))
            .pop()
            .unwrap()
            .code,
        480
    );
    // Refused by policy.
    let tx = dial(&mut ua, "8123");
    redirect_to(&mut gw, "0309");
    assert!(gw.request(Duration::from_millis(400)).is_none());
    assert_eq!(
        ua.final_response(tx, Duration::from_secs(5))
            .pop()
            .unwrap()
            .code,
        480
    );
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert_eq!(log.matches("following the carrier's redirect").count(), 1);
}

/// Number normalization (`[numbering] country_code = "49"`): a carrier
/// (by digest) with `inbound.normalize` has national numbers (the caller's and the
/// dialed one) in E.164 before routing — its call to "0301234567" takes
/// the route for "+49301234567", 1001 sees the caller "040555" as
/// "+4940555", and the CDR keeps both in E.164. A trunk with
/// `number_format = "national"` gets a user's call to "+49897654321" as
/// "0897654321", showing its caller ID "+4930123450" as "030123450".
#[test]
fn numbers_are_normalized_from_carriers_and_written_as_each_wants() {
    let (_dir, sw, mut gw) = with_gateway(|gw| {
        format!(
            r#"
[numbering]
country_code = "49"

[[trunks]]
name = "out"
[trunks.outbound]
host = "{gw}"
caller_id = "+4930123450"
assert_identity = true
number_format = "national"

[[trunks]]
name = "de"
inbound = {{ auth = {{ username = "de", password = "depw" }}, normalize = true }}

[[routes]]
prefix = "+49"
from = "users"
target = {{ trunk = "out" }}

[[routes]]
number = "+49301234567"
from = "trunks"
target = {{ user = "1001" }}
"#
        )
    });
    let user = |r: &sip::Request, n: sip::Name| {
        let v = r.headers.get(&n).unwrap_or("");
        sip::NameAddr::parse(v, "h")
            .ok()
            .and_then(|a| a.uri.sip().and_then(|u| u.user.clone()))
            .unwrap_or_default()
    };
    // Out: 1002 dials +49897654321.
    let mut ua = Ua::new("127.0.0.1", sw.addr());
    let invite = ua.invite("1002", "+49897654321");
    let tx = ua.send(invite.clone());
    let first = ua.final_response(tx, Duration::from_secs(5)).pop().unwrap();
    let authed = ua.with_proxy_auth(&invite, &first, "1002", "secret");
    let tx = ua.send(authed);
    let (gtx, ginv) = gw
        .request(Duration::from_secs(5))
        .expect("the carrier gets the call");
    gw.respond(gtx.unwrap(), sip::response_to(&ginv, 486, Some("gw")));
    assert_eq!(
        ua.final_response(tx, Duration::from_secs(5))
            .pop()
            .map(|r| r.code),
        Some(486)
    );
    let ruri = ginv.uri.sip().and_then(|u| u.user.clone());
    println!(
        "to the national trunk: {ruri:?}, To {}, From {}, PAI {}",
        user(&ginv, sip::Name::To),
        user(&ginv, sip::Name::From),
        user(&ginv, sip::Name::PAssertedIdentity)
    );
    assert_eq!(ruri.as_deref(), Some("0897654321"));
    assert_eq!(user(&ginv, sip::Name::To), "0897654321");
    assert_eq!(user(&ginv, sip::Name::From), "030123450");
    assert_eq!(user(&ginv, sip::Name::PAssertedIdentity), "030123450");

    // In: the carrier (digest user "de") sends national numbers.
    let mut phone = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(
        phone.register("1001", "secret", 300).map(|r| r.code),
        Some(200)
    );
    let mut carrier = Ua::new("127.0.0.1", sw.addr());
    let inv = carrier.invite("040555", "0301234567");
    let tx = carrier.send(inv.clone());
    let challenge = carrier
        .final_response(tx, Duration::from_secs(5))
        .pop()
        .unwrap();
    assert_eq!(challenge.code, 407);
    let inv = carrier.with_proxy_auth(&inv, &challenge, "de", "depw");
    let tx = carrier.send(inv);
    let (ptx, pinv) = phone.request(Duration::from_secs(5)).expect("1001 rings");
    assert_eq!(pinv.method, Method::Invite);
    println!("1001 sees the caller as {}", user(&pinv, sip::Name::From));
    assert_eq!(user(&pinv, sip::Name::From), "+4940555");
    phone.respond(ptx.unwrap(), sip::response_to(&pinv, 486, Some("p1001")));
    assert_eq!(
        carrier
            .final_response(tx, Duration::from_secs(5))
            .pop()
            .map(|r| r.code),
        Some(486)
    );
    let cdrs = sw.cdrs(2);
    let cdr = cdrs
        .iter()
        .find(|c| c["trunk"] == "de")
        .expect("the carrier's CDR");
    assert_eq!(
        (cdr["caller"].as_str(), cdr["dialed"].as_str()),
        (Some("+4940555"), Some("+49301234567")),
        "{cdr}"
    );
}

/// Session timers towards the callee (RFC 4028 §7, the switch as UAC): the
/// INVITE offers `Session-Expires: 4` with `Supported: timer`. A callee
/// that makes the switch the refresher (`refresher=uac`) gets an UPDATE at
/// half the interval, again and again, and the caller sees none of it; a
/// callee that refreshes itself (`refresher=uas`) and never does is hung up
/// with the caller a third of the interval before expiry.
#[test]
fn the_callee_leg_has_its_own_session_timer() {
    use sip::Name;
    use std::time::Instant;
    let (_dir, sw, mut gw) = with_gateway(|gw| {
        format!(
            "[calls]\nsession_expires_secs = 4\nsession_min_se_secs = 2\n{}",
            carrier_calls_out_to(gw)
        )
    });
    let wait = Duration::from_secs(5);
    let call = |gw: &mut Ua, refresher: &str| {
        let mut c = Ua::new("127.0.0.2", sw.addr());
        let invite = c.invite("5551234", "0301234567");
        let tx = c.send(invite.clone());
        let (gtx, ginv) = gw.request(wait).expect("the callee rings");
        assert_eq!(ginv.headers.get(&Name::SessionExpires), Some("4"));
        assert!(ginv
            .headers
            .get(&Name::Supported)
            .unwrap_or("")
            .contains("timer"));
        let mut ok = gw.answer(&ginv, 200, "gw");
        ok.headers
            .push(Name::SessionExpires, format!("4;refresher={refresher}"));
        ok.headers.push(Name::Require, "timer");
        gw.respond(gtx.unwrap(), ok);
        let ok = c.final_response(tx, wait).pop().expect("answered");
        assert_eq!(ok.code, 200);
        assert!(
            ok.headers.get(&Name::SessionExpires).is_none(),
            "the caller asked for no timer"
        );
        c.ack(tx, &invite, &ok);
        let (_, ack) = gw.request(wait).expect("ACK");
        assert_eq!(ack.method, Method::Ack);
        (c, invite, ok, Instant::now())
    };

    // The switch refreshes the callee's session.
    let (mut c, invite, ok, t0) = call(&mut gw, "uac");
    let mut updates = Vec::new();
    while t0.elapsed() < Duration::from_millis(4600) {
        if let Some((Some(tx), r)) = gw.request(Duration::from_millis(100)) {
            assert_eq!(r.method, Method::Update, "{r:?}");
            assert_eq!(
                r.headers.get(&Name::SessionExpires),
                Some("4;refresher=uac")
            );
            updates.push(t0.elapsed().as_secs_f64());
            let mut ok = sip::response_to(&r, 200, None);
            ok.headers.push(Name::SessionExpires, "4;refresher=uac");
            ok.headers.push(Name::Require, "timer");
            gw.respond(tx, ok);
        }
    }
    println!("the switch refreshed the callee's session at {updates:.2?} s");
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(
        (1.8..2.4).contains(&updates[0]) && (3.8..4.5).contains(&updates[1]),
        "{updates:?}"
    );
    assert!(
        c.request(Duration::from_millis(100)).is_none(),
        "the caller saw nothing"
    );
    let bye = c.bye(&invite, &ok);
    let btx = c.send(bye);
    let (gtx, gbye) = gw.request(wait).expect("the callee's BYE");
    assert_eq!(gbye.method, Method::Bye);
    gw.respond(gtx.unwrap(), sip::response_to(&gbye, 200, None));
    assert_eq!(c.final_response(btx, wait).pop().map(|r| r.code), Some(200));

    // The callee is the refresher and never refreshes.
    let (mut c2, _, _, t1) = call(&mut gw, "uas");
    let (btx, bye) = gw.request(wait).expect("the callee's BYE");
    assert_eq!(bye.method, Method::Bye);
    let at = t1.elapsed().as_secs_f64();
    gw.respond(btx.unwrap(), sip::response_to(&bye, 200, None));
    let (ctx, cbye) = c2.request(wait).expect("the caller's BYE");
    assert_eq!(cbye.method, Method::Bye);
    c2.respond(ctx.unwrap(), sip::response_to(&cbye, 200, None));
    println!("an unrefreshed callee session ended at {at:.2} s");
    assert!((2.4..3.2).contains(&at), "{at}");
    let cdrs = sw.cdrs(2);
    assert!(
        cdrs.iter().any(|r| r["reason"] == "session timer expired"),
        "{cdrs:?}"
    );
}

/// RFC 3262 §3 with a 2xx held for a PRACK that never comes: the caller
/// (requiring 100rel) gets the callee's 183 reliably, the callee answers,
/// and the caller CANCELs instead of PRACKing: its INVITE ends with 487
/// (it never had a 2xx) and the callee, who had answered, gets a BYE.
#[test]
fn a_caller_that_cancels_before_its_prack_gets_487_and_the_callee_a_bye() {
    use sip::Name;
    let (_dir, sw, mut gw) = with_gateway(carrier_calls_out_to);
    let wait = Duration::from_secs(5);
    let mut c = Ua::new("127.0.0.2", sw.addr());
    let mut invite = c.invite("5551234", "0301234567");
    invite.headers.push(Name::Require, "100rel");
    let tx = c.send(invite.clone());
    let (gtx, ginv) = gw.request(wait).expect("the callee rings");
    let gtx = gtx.unwrap();
    let mut early = gw.answer(&ginv, 183, "gw");
    early.headers.push(Name::ContentType, "application/sdp");
    early.body = e2e::ua::sdp(40010);
    gw.respond(gtx, early);
    gw.respond(gtx, gw.answer(&ginv, 200, "gw"));
    let r183 = loop {
        let r = c.response(tx, wait).expect("the 183");
        assert!(r.code < 200, "no final before the PRACK: {}", r.code);
        if r.code == 183 {
            break r;
        }
    };
    assert!(r183.headers.get(&Name::RSeq).is_some());
    let (_, ack) = gw.request(wait).expect("the callee's ACK");
    assert_eq!(ack.method, Method::Ack);
    let cancel = c.cancel_for(&invite);
    let ctx = c.send(cancel);
    assert_eq!(c.final_response(ctx, wait).pop().map(|r| r.code), Some(200));
    let fin = c.final_response(tx, wait);
    assert_eq!(
        fin.last().map(|r| r.code),
        Some(487),
        "{fin:?}\n{}",
        sw.log_tail()
    );
    let (btx, bye) = gw.request(wait).expect("the callee's BYE");
    assert_eq!(bye.method, Method::Bye);
    gw.respond(btx.unwrap(), sip::response_to(&bye, 200, None));
}

/// Config: the carrier's calls to "0…" go out through trunk "out" to `gw`.
fn carrier_calls_out_to(gw: std::net::SocketAddr) -> String {
    format!(
        r#"
[[trunks]]
name = "out"
outbound = {{ host = "{gw}" }}

[[routes]]
prefix = "0"
from = "trunks"
target = {{ trunk = "out" }}
"#
    )
}
