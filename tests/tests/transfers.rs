//! Transfers phones ask for (REFER), between real baresip phones.

use e2e::baresip::Baresip;
use e2e::media::{tone_share, ulaw_pcm, ulaw_tone};
use e2e::rtp::Sender;
use e2e::switch::SwitchProc;
use e2e::ua::Ua;
use sip::dialog::Dialog;
use sip::{Method, Name, Request, Response, SipMessage};
use std::time::{Duration, Instant};

/// The carrier's 7001 reaches user 1001; users call each other.
const ROUTES: &str = r#"
[[routes]]
number = "7001"
from = "trunks"
target = { user = "1001" }

[[routes]]
prefix = "100"
from = "users"
target = "users"
"#;

/// Blind transfer (RFC 3515): a carrier caller reaches 1001 (baresip,
/// sending 700 Hz); 1001 transfers the call to 1002 (baresip, 1200 Hz) with
/// REFER. The switch answers 202, calls 1002, and when it answers hangs up
/// 1001: the caller now hears 1200 Hz and 1002 hears the caller's 500 Hz
/// (on 1002's own recording). The CDR ends with 1002 as the destination.
#[test]
fn a_user_transfers_the_caller_blind_by_refer() {
    let _heavy = e2e::heavy_lock();
    let (dir, sw) = e2e::media::media_switch(ROUTES);
    let port = sw.addr().port();
    let (w1, w2) = (dir.path().join("700.wav"), dir.path().join("1200.wav"));
    e2e::tone_wav_hz(&w1, 60, 700);
    e2e::tone_wav_hz(&w2, 60, 1200);
    let a = Baresip::start_with(&dir.path().join("a"), "1001", "secret", port, &w1, "PCMU");
    let b = Baresip::start_with(&dir.path().join("b"), "1002", "secret", port, &w2, "PCMU");
    for p in [&a, &b] {
        assert!(p.wait_log("200 OK", Duration::from_secs(10)), "{}", p.log());
    }
    let mut c = e2e::media::dial_in(&sw, "7001");
    assert!(
        a.wait_log("Call established", Duration::from_secs(5)),
        "{}",
        a.log()
    );
    // The caller talks (500 Hz) all along, like a person on the line.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let heard_since = |c: &e2e::media::TrunkCaller, t: Instant| {
        let p: Vec<_> = c.rtp.packets().into_iter().filter(|p| p.at > t).collect();
        ulaw_pcm(&p)
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut tx = Sender::new(&c.rtp, c.media, 0xCA11);
            let tone = ulaw_tone(500.0, 200);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tx.audio(0, 160, &tone);
            }
        });
        let t0 = Instant::now() + Duration::from_millis(300);
        std::thread::sleep(Duration::from_millis(1300));
        let before = heard_since(&c, t0);
        assert!(tone_share(&before, 700.0) > 0.8, "the caller hears 1001");
        let target = format!("sip:1002@127.0.0.1:{port}");
        a.command("transfer", &target).unwrap();
        assert!(
            b.wait_log("Call established", Duration::from_secs(10)),
            "1002 answered the transfer:\n{}\n{}",
            a.log(),
            sw.log_tail()
        );
        assert!(
            a.wait_log("terminated", Duration::from_secs(5)),
            "1001 is out of the call:\n{}",
            a.log()
        );
        let t1 = Instant::now() + Duration::from_millis(300);
        std::thread::sleep(Duration::from_millis(1800));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let after = heard_since(&c, t1);
        let (s700, s1200) = (tone_share(&after, 700.0), tone_share(&after, 1200.0));
        println!("after the transfer the caller hears 1200 Hz {s1200:.2}, 700 Hz {s700:.2}");
        assert!(s1200 > 0.8 && s700 < 0.1, "{s1200} {s700}");
    });
    // 1002 hears the caller.
    let bye = c.ua.bye(&c.invite, &c.ok);
    c.ua.send(bye);
    assert!(
        b.wait_log("terminated", Duration::from_secs(5)),
        "{}",
        b.log()
    );
    // What 1002 heard (its own recording; the first second skipped).
    let (heard, _) = b.recordings();
    let heard = heard.expect("1002's recording");
    let whole = e2e::sox_stat(&heard, None);
    let st = e2e::sox_stat(&heard, Some((1.0, (whole.seconds - 1.3).max(0.3))));
    println!(
        "1002 heard {:.2} s: {:.0} Hz, rms {:.3} (the caller sends 500 Hz)",
        whole.seconds, st.freq, st.rms
    );
    assert!((st.freq - 500.0).abs() < 40.0 && st.rms > 0.05, "{st:?}");
    let cdrs = sw.cdrs(1);
    let cdr = cdrs
        .iter()
        .find(|x| x["dialed"] == "7001")
        .expect("the CDR");
    assert_eq!(cdr["destination"], "1002", "{cdr}");
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(log.contains("blind transfer by REFER"), "{log}");
}

/// Sets a flag when dropped.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The SDP direction attribute of a body (sendrecv when absent).
fn direction(body: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(body);
    ["sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| text.contains(&format!("a={d}")))
        .unwrap_or("sendrecv")
}

/// Attended transfer (RFC 3515 + RFC 3891): a carrier caller X (500 Hz)
/// reaches 1001, a user agent driven here (the transferor T). T puts X on
/// hold, calls 1002 (baresip, 1200 Hz) on a Call-ID of another shard, then
/// sends REFER in X's call with `Refer-To: <sip:1002?Replaces=(T's dialog
/// with 1002)>`. The switch answers 202, moves 1002 into X's call by
/// re-INVITE (1002 never sees Replaces), NOTIFYs T with 200, hangs up both
/// of T's dialogs, and takes X off hold. X then hears 1200 Hz and 1002's
/// own recording has X's 500 Hz. CDRs: X's call ends at 1002, T's
/// consultation call "transferred".
#[test]
fn a_user_transfers_the_caller_attended_by_refer_with_replaces() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let _heavy = e2e::heavy_lock();
    let (dir, sw) = e2e::media::media_switch(ROUTES);
    let port = sw.addr().port();
    let w2 = dir.path().join("1200.wav");
    e2e::tone_wav_hz(&w2, 60, 1200);
    let y = Baresip::start_with(&dir.path().join("y"), "1002", "secret", port, &w2, "PCMU");
    assert!(y.wait_log("200 OK", Duration::from_secs(10)), "{}", y.log());
    let mut t = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(t.register("1001", "secret", 300).map(|r| r.code), Some(200));
    let wait = Duration::from_secs(10);

    // Call 1: X → 7001 → T, answered by T.
    let (c, (inv1, tag1)) = std::thread::scope(|s| {
        let answer = s.spawn(|| {
            let (tx, inv) = t.request(wait).expect("T rings");
            assert_eq!(inv.method, Method::Invite);
            let tag = sip::transaction::new_tag();
            let ok = t.answer(&inv, 200, &tag);
            t.respond(tx.unwrap(), ok);
            (inv, tag)
        });
        let c = e2e::media::dial_in(&sw, "7001");
        (c, answer.join().unwrap())
    });
    let e2e::media::TrunkCaller {
        ua: mut xua,
        rtp: xrtp,
        media: xmedia,
        invite: xinv,
        ok: xok,
        ..
    } = c;
    let stop = AtomicBool::new(false);
    // Offers X got in re-INVITEs, by direction.
    let offers = Mutex::new(Vec::<&'static str>::new());
    std::thread::scope(|s| {
        // X talks all along and answers re-INVITEs (hold, off hold) like a phone.
        s.spawn(|| {
            let mut tx = Sender::new(&xrtp, xmedia, 0xCA11);
            let tone = ulaw_tone(500.0, 200);
            while !stop.load(Ordering::Relaxed) {
                tx.audio(0, 160, &tone);
            }
        });
        let xua = &mut xua;
        let (xrtp, offers, stop) = (&xrtp, &offers, &stop);
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Some((Some(tx), req)) = xua.request(Duration::from_millis(100)) else {
                    continue;
                };
                let mut r = sip::response_to(&req, 200, None);
                if req.method == Method::Invite {
                    let d = direction(req.body());
                    offers.lock().unwrap().push(d);
                    let answer = match d {
                        "sendonly" => "a=recvonly\r\n",
                        "inactive" => "a=inactive\r\n",
                        _ => "",
                    };
                    let attrs = format!("{}{answer}", e2e::media::PCMU);
                    r.headers
                        .push(Name::Contact, format!("<sip:x@{}>", xua.local));
                    r.headers.push(Name::ContentType, "application/sdp");
                    r.body = e2e::media::sdp(xrtp.port, "0 101", &attrs);
                }
                xua.respond(tx, r);
            }
        });

        // The helpers stop however this ends (a failed assertion too).
        let _stop = StopOnDrop(stop);
        // T holds X.
        let mut d1 = Dialog::uas(&inv1, &tag1).unwrap();
        hold(&mut t, &mut d1, &sw);

        // Call 2: T consults 1002, on a Call-ID of another shard than call 1.
        let shard1 = e2e::shard_of(inv1.call_id().unwrap(), 2);
        let call2 = loop {
            let id = format!("{}@test", sip::transaction::new_tag());
            if e2e::shard_of(&id, 2) != shard1 {
                break id;
            }
        };
        let (inv2, ok2) = call_out(&mut t, &sw, "1002", Some(&call2));
        assert!(y.wait_log("Call established", wait), "{}", y.log());

        // The transfer: REFER in call 1 naming call 2's dialog.
        let d2 = Dialog::uac(&inv2, &ok2).unwrap();
        refer(&mut t, &mut d1, &sw, &replacing("1002", port, &d2));

        // T hears how it went and is hung up on both dialogs.
        transferor_is_done(&mut t, &sw, &[inv1.call_id().unwrap(), &call2]);

        // X was taken off hold by the switch, and hears 1002 now.
        let t1 = Instant::now() + Duration::from_millis(300);
        std::thread::sleep(Duration::from_millis(2000));
        assert_eq!(
            *offers.lock().unwrap(),
            ["sendonly", "sendrecv"],
            "hold, then off hold"
        );
        let heard: Vec<_> = xrtp.packets().into_iter().filter(|p| p.at > t1).collect();
        let pcm = ulaw_pcm(&heard);
        let (s1200, s500) = (tone_share(&pcm, 1200.0), tone_share(&pcm, 500.0));
        println!(
            "after the transfer X hears 1200 Hz {s1200:.2} ({} ms)",
            pcm.len() / 8
        );
        assert!(
            s1200 > 0.8 && s500 < 0.1,
            "{s1200} {s500}\n{}",
            sw.log_tail()
        );
        stop.store(true, Ordering::Relaxed);
    });
    let bye = xua.bye(&xinv, &xok);
    let btx = xua.send(bye);
    assert_eq!(
        xua.final_response(btx, wait).pop().map(|r| r.code),
        Some(200)
    );
    assert!(
        y.wait_log("terminated", Duration::from_secs(5)),
        "{}",
        y.log()
    );
    let (heard, _) = y.recordings();
    let heard = heard.expect("1002's recording");
    let whole = e2e::sox_stat(&heard, None);
    let st = e2e::sox_stat(&heard, Some(((whole.seconds - 1.8).max(0.0), 1.5)));
    println!(
        "1002 heard {:.2} s; the last part: {:.0} Hz, rms {:.3} (X sends 500 Hz)",
        whole.seconds, st.freq, st.rms
    );
    assert!((st.freq - 500.0).abs() < 40.0 && st.rms > 0.05, "{st:?}");
    let cdrs = sw.cdrs(2);
    let x = cdrs
        .iter()
        .find(|r| r["dialed"] == "7001")
        .expect("X's CDR");
    assert_eq!(x["destination"], "1002", "{x}");
    let consult = cdrs
        .iter()
        .find(|r| r["dialed"] == "1002")
        .expect("T's CDR");
    assert_eq!(consult["reason"], "transferred", "{consult}");
}

/// `t` puts the other party of dialog `d` on hold (re-INVITE, a=sendonly);
/// the answer must be recvonly.
fn hold(t: &mut Ua, d: &mut Dialog, sw: &SwitchProc) {
    let mut hold = t.in_dialog(d, Method::Invite);
    hold.headers
        .push(Name::Contact, format!("<sip:1001@{}>", t.local));
    hold.headers.push(Name::ContentType, "application/sdp");
    let attrs = format!("{}a=sendonly\r\n", e2e::media::PCMU);
    hold.body = e2e::media::sdp(40002, "0 101", &attrs);
    let htx = t.send(hold.clone());
    let ok = t
        .final_response(htx, Duration::from_secs(10))
        .pop()
        .expect("hold answered");
    assert_eq!(ok.code, 200, "{}", sw.log_tail());
    assert_eq!(direction(ok.body()), "recvonly", "held");
    t.ack(htx, &hold, &ok);
}

/// 1001 (`t`) calls `number` (answering the 407; on Call-ID `call_id` if
/// given); the INVITE and its 200, ACKed.
fn call_out(
    t: &mut Ua,
    sw: &SwitchProc,
    number: &str,
    call_id: Option<&str>,
) -> (Request, Response) {
    let wait = Duration::from_secs(10);
    let mut inv = t.invite("1001", number);
    if let Some(id) = call_id {
        inv.headers.set(Name::CallId, id);
    }
    let tx = t.send(inv.clone());
    let challenge = t.final_response(tx, wait).pop().expect("407");
    assert_eq!(challenge.code, 407);
    let inv = t.with_proxy_auth(&inv, &challenge, "1001", "secret");
    let tx = t.send(inv.clone());
    let ok = t.final_response(tx, wait).pop().expect("answered");
    assert_eq!(ok.code, 200, "{}", sw.log_tail());
    t.ack(tx, &inv, &ok);
    (inv, ok)
}

/// A Refer-To for an attended transfer to `user`: Replaces names `d`,
/// the transferor's dialog with the switch in the consultation call.
fn replacing(user: &str, port: u16, d: &Dialog) -> String {
    let replaces = format!(
        "{};to-tag={};from-tag={}",
        d.id.call_id, d.id.remote_tag, d.id.local_tag
    );
    let escaped = replaces
        .replace('@', "%40")
        .replace(';', "%3B")
        .replace('=', "%3D");
    format!("<sip:{user}@127.0.0.1:{port}?Replaces={escaped}>")
}

/// REFER in dialog `d` with `refer_to`; the switch must accept it (202).
fn refer(t: &mut Ua, d: &mut Dialog, sw: &SwitchProc, refer_to: &str) {
    let mut refer = t.in_dialog(d, Method::Refer);
    refer
        .headers
        .push(Name::Contact, format!("<sip:1001@{}>", t.local));
    refer.headers.push(Name::ReferTo, refer_to);
    let rtx = t.send(refer);
    let accepted = t
        .final_response(rtx, Duration::from_secs(10))
        .pop()
        .expect("REFER answered");
    assert_eq!(accepted.code, 202, "{}", sw.log_tail());
}

/// The transferor hears how it went (NOTIFY 100, then 200) and is hung up
/// on each of the dialogs `call_ids` (answering everything).
fn transferor_is_done(t: &mut Ua, sw: &SwitchProc, call_ids: &[&str]) {
    let (mut notified, mut byes) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while (byes.len() < call_ids.len() || !notified.iter().any(|n: &String| n.contains(" 200 ")))
        && Instant::now() < deadline
    {
        let Some((Some(tx), req)) = t.request(Duration::from_millis(200)) else {
            continue;
        };
        match req.method {
            Method::Notify => notified.push(String::from_utf8_lossy(req.body()).trim().to_owned()),
            Method::Bye => byes.push(req.call_id().unwrap().to_owned()),
            _ => {}
        }
        t.respond(tx, sip::response_to(&req, 200, None));
    }
    println!("the transferor was notified {notified:?} and hung up on {byes:?}");
    assert!(
        notified.first().is_some_and(|n| n.contains("100 Trying"))
            && notified.last().is_some_and(|n| n.contains("200 OK")),
        "{notified:?}\n{}",
        sw.log_tail()
    );
    byes.sort();
    let mut want: Vec<String> = call_ids.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(byes, want, "{}", sw.log_tail());
}

/// Phones 1002 (baresip, 500 Hz) and 1003 (baresip, 1200 Hz), registered;
/// and 1001, the transferor: a user agent driven by the test.
fn phones(dir: &std::path::Path, sw: &SwitchProc) -> (Baresip, Baresip, Ua) {
    let port = sw.addr().port();
    let (w1, w2) = (dir.join("500.wav"), dir.join("1200.wav"));
    e2e::tone_wav_hz(&w1, 60, 500);
    e2e::tone_wav_hz(&w2, 60, 1200);
    let x = Baresip::start_with(&dir.join("x"), "1002", "secret", port, &w1, "PCMU");
    let z = Baresip::start_with(&dir.join("z"), "1003", "secret", port, &w2, "PCMU");
    for p in [&x, &z] {
        assert!(p.wait_log("200 OK", Duration::from_secs(10)), "{}", p.log());
    }
    let mut t = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(t.register("1001", "secret", 300).map(|r| r.code), Some(200));
    (x, z, t)
}

/// After a transfer 1002 and 1003 talk for 2.5 s; 1002 hangs up; each
/// one's own recording ends with the other's tone (only 1003's when
/// `x_was_held`: baresip 1.0 decodes nothing once a far end held it,
/// though RTP keeps coming, so 1002's own recording stays empty).
fn they_talk(x: &Baresip, z: &Baresip, sw: &SwitchProc, x_was_held: bool) {
    std::thread::sleep(Duration::from_millis(2500));
    x.command("hangup", "").unwrap();
    for p in [x, z] {
        assert!(
            p.wait_log("terminated", Duration::from_secs(5)),
            "{}\n{}",
            p.log(),
            sw.log_tail()
        );
    }
    let check: &[(&Baresip, f64)] = if x_was_held {
        &[(z, 500.0)]
    } else {
        &[(x, 1200.0), (z, 500.0)]
    };
    for &(p, hz) in check {
        let heard = p.recordings().0.expect("a recording");
        let whole = e2e::sox_stat(&heard, None);
        let st = e2e::sox_stat(&heard, Some(((whole.seconds - 1.8).max(0.0), 1.5)));
        println!(
            "a phone heard {:.2} s, ending with {:.0} Hz, rms {:.3} (want {hz} Hz)",
            whole.seconds, st.freq, st.rms
        );
        assert!(
            (st.freq - hz).abs() < hz * 0.06 && st.rms > 0.05,
            "{st:?}\n{}",
            sw.log_tail()
        );
    }
}

/// Blind transfer by the calling side (REFER from leg A): 1001 calls 1002
/// and REFERs it to 1003. When 1003 answers it replaces 1001 as leg A
/// (1001 gets NOTIFY 200 and BYE); 1002 and 1003 hear each other. The CDR
/// is still 1001's call to 1002.
#[test]
fn the_caller_transfers_the_callee_blind_by_refer() {
    let _heavy = e2e::heavy_lock();
    let (dir, sw) = e2e::media::media_switch(ROUTES);
    let (x, z, mut t) = phones(dir.path(), &sw);
    let (inv, ok) = call_out(&mut t, &sw, "1002", None);
    assert!(
        x.wait_log("Call established", Duration::from_secs(5)),
        "{}",
        x.log()
    );
    let mut d = Dialog::uac(&inv, &ok).unwrap();
    let port = sw.addr().port();
    refer(&mut t, &mut d, &sw, &format!("<sip:1003@127.0.0.1:{port}>"));
    transferor_is_done(&mut t, &sw, &[inv.call_id().unwrap()]);
    assert!(
        z.wait_log("Call established", Duration::from_secs(5)),
        "{}",
        z.log()
    );
    they_talk(&x, &z, &sw, false);
    let cdrs = sw.cdrs(1);
    let cdr = cdrs
        .iter()
        .find(|c| c["call_id"] == inv.call_id().unwrap())
        .expect("the CDR");
    assert_eq!(
        (cdr["caller"].as_str(), cdr["dialed"].as_str()),
        (Some("1001"), Some("1002")),
        "{cdr}"
    );
}

/// Attended transfer by a user who placed both calls (an outbound agent):
/// 1001 calls 1002 and holds it, calls 1003, then REFERs in the first call
/// with Replaces naming the second. 1003 replaces 1001 as leg A of the
/// first call, 1001 is hung up on both, 1002 is re-INVITEd off hold, and
/// 1003 hears 1002.
#[test]
fn the_caller_transfers_attended_after_consulting() {
    let _heavy = e2e::heavy_lock();
    let (dir, sw) = e2e::media::media_switch(ROUTES);
    let (x, z, mut t) = phones(dir.path(), &sw);
    let (inv1, ok1) = call_out(&mut t, &sw, "1002", None);
    let mut d1 = Dialog::uac(&inv1, &ok1).unwrap();
    hold(&mut t, &mut d1, &sw);
    let (inv2, ok2) = call_out(&mut t, &sw, "1003", None);
    assert!(
        z.wait_log("Call established", Duration::from_secs(5)),
        "{}",
        z.log()
    );
    let d2 = Dialog::uac(&inv2, &ok2).unwrap();
    let port = sw.addr().port();
    refer(&mut t, &mut d1, &sw, &replacing("1003", port, &d2));
    transferor_is_done(
        &mut t,
        &sw,
        &[inv1.call_id().unwrap(), inv2.call_id().unwrap()],
    );
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(log.contains("taking the other party off hold"), "{log}");
    they_talk(&x, &z, &sw, true);
    let cdrs = sw.cdrs(2);
    let consult = cdrs
        .iter()
        .find(|c| c["call_id"] == inv2.call_id().unwrap())
        .expect("the consultation's CDR");
    assert_eq!(consult["reason"], "transferred", "{consult}");
}

/// `ua` answers the next INVITE (200 with SDP, our tag "tag-<user>");
/// the INVITE and the tag.
fn answer_next(ua: &mut Ua, user: &str) -> (Request, String) {
    let (tx, inv) = ua.request(Duration::from_secs(10)).expect("rings");
    assert_eq!(inv.method, Method::Invite);
    let tag = format!("tag-{user}");
    let ok = ua.answer(&inv, 200, &tag);
    ua.respond(tx.unwrap(), ok);
    (inv, tag)
}

/// REFER's edges: no Refer-To (400), a Replaces that does not parse (400),
/// a carrier's leg (403: only local users transfer); a blind transfer to a
/// busy target (its INVITE carries `Referred-By`, RFC 3892) ends with
/// NOTIFY "486" and the call as it was; an attended transfer naming no
/// dialog the switch has ends with NOTIFY "481".
#[test]
fn refers_that_cannot_be_done_leave_the_call_as_it_was() {
    let (_dir, sw) = e2e::media::media_switch(ROUTES);
    let port = sw.addr().port();
    let mut t = Ua::new("127.0.0.1", sw.addr());
    let mut x = Ua::new("127.0.0.1", sw.addr());
    let mut z = Ua::new("127.0.0.1", sw.addr());
    for (ua, user) in [(&mut t, "1001"), (&mut x, "1002"), (&mut z, "1003")] {
        assert_eq!(ua.register(user, "secret", 300).map(|r| r.code), Some(200));
    }
    let ((inv, ok), _) = std::thread::scope(|s| {
        let answered = s.spawn(|| answer_next(&mut x, "1002"));
        (
            call_out(&mut t, &sw, "1002", None),
            answered.join().unwrap(),
        )
    });
    let wait = Duration::from_secs(5);
    assert_eq!(x.request(wait).map(|(_, r)| r.method), Some(Method::Ack));
    let mut d = Dialog::uac(&inv, &ok).unwrap();
    let send_refer = |t: &mut Ua, d: &mut Dialog, refer_to: Option<&str>| {
        let mut r = t.in_dialog(d, Method::Refer);
        r.headers
            .push(Name::Contact, format!("<sip:1001@{}>", t.local));
        if let Some(to) = refer_to {
            r.headers.push(Name::ReferTo, to);
        }
        let tx = t.send(r);
        t.final_response(tx, wait).pop().map(|r| r.code)
    };
    assert_eq!(send_refer(&mut t, &mut d, None), Some(400));
    let bad = format!("<sip:1003@127.0.0.1:{port}?Replaces=nonsense>");
    assert_eq!(send_refer(&mut t, &mut d, Some(&bad)), Some(400));

    // Blind, to a busy 1003.
    let to = format!("<sip:1003@127.0.0.1:{port}>");
    assert_eq!(send_refer(&mut t, &mut d, Some(&to)), Some(202));
    let (ztx, zinv) = z.request(wait).expect("1003 rings");
    assert_eq!(
        zinv.headers.get(&Name::ReferredBy),
        Some("<sip:1001@switchboard>")
    );
    z.respond(ztx.unwrap(), sip::response_to(&zinv, 486, Some("busy")));
    let mut notified = Vec::new();
    let deadline = Instant::now() + wait;
    while !notified.iter().any(|n: &String| n.contains("486")) && Instant::now() < deadline {
        if let Some((Some(tx), req)) = t.request(Duration::from_millis(100)) {
            assert_eq!(req.method, Method::Notify, "{req:?}");
            notified.push(String::from_utf8_lossy(req.body()).trim().to_owned());
            t.respond(tx, sip::response_to(&req, 200, None));
        }
    }
    println!("a transfer to a busy target: {notified:?}");
    assert_eq!(
        notified.last().map(String::as_str),
        Some("SIP/2.0 486 Busy Here")
    );

    // Attended, naming a dialog that does not exist.
    let ghost = "<sip:1003@127.0.0.1?Replaces=nothere%40x%3Bto-tag%3Da%3Bfrom-tag%3Db>";
    assert_eq!(send_refer(&mut t, &mut d, Some(ghost)), Some(202));
    let mut last = String::new();
    let deadline = Instant::now() + wait;
    while !last.contains("481") && Instant::now() < deadline {
        if let Some((Some(tx), req)) = t.request(Duration::from_millis(100)) {
            assert_eq!(req.method, Method::Notify, "{req:?}");
            last = String::from_utf8_lossy(req.body()).trim().to_owned();
            t.respond(tx, sip::response_to(&req, 200, None));
        }
    }
    assert!(last.contains("481"), "{last}");
    // The call is as it was: nobody got a BYE, and it still works.
    let nothing = x.request(Duration::from_millis(200));
    assert!(nothing.is_none(), "{nothing:?}");
    let bye = t.in_dialog(&mut d, Method::Bye);
    let btx = t.send(bye);
    let (xtx, xbye) = x.request(wait).expect("the BYE reaches 1002");
    assert_eq!(xbye.method, Method::Bye);
    x.respond(xtx.unwrap(), sip::response_to(&xbye, 200, None));
    assert_eq!(t.final_response(btx, wait).pop().map(|r| r.code), Some(200));

    // A carrier's caller cannot transfer.
    let (c, _) = std::thread::scope(|s| {
        let answered = s.spawn(|| answer_next(&mut t, "1001"));
        (e2e::media::dial_in(&sw, "7001"), answered.join().unwrap())
    });
    let mut cua = c.ua;
    let mut cd = Dialog::uac(&c.invite, &c.ok).unwrap();
    let mut r = cua.in_dialog(&mut cd, Method::Refer);
    r.headers
        .push(Name::ReferTo, format!("<sip:00441234@127.0.0.1:{port}>"));
    let tx = cua.send(r);
    assert_eq!(
        cua.final_response(tx, wait).pop().map(|r| r.code),
        Some(403)
    );
}
