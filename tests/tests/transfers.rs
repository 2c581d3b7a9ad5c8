//! Transfers phones ask for (REFER), between real baresip phones.

use e2e::baresip::Baresip;
use e2e::media::{tone_share, ulaw_pcm, ulaw_tone};
use e2e::rtp::Sender;
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
    use e2e::ua::Ua;
    use sip::dialog::Dialog;
    use sip::{Method, Name, SipMessage};
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
                    r.headers.push(Name::Contact, format!("<sip:x@{}>", xua.local));
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
        let mut hold = t.in_dialog(&mut d1, Method::Invite);
        hold.headers.push(Name::Contact, format!("<sip:1001@{}>", t.local));
        hold.headers.push(Name::ContentType, "application/sdp");
        hold.body = e2e::media::sdp(40002, "0 101", &format!("{}a=sendonly\r\n", e2e::media::PCMU));
        let htx = t.send(hold.clone());
        let ok = t.final_response(htx, wait).pop().expect("hold answered");
        assert_eq!(ok.code, 200, "{}", sw.log_tail());
        assert_eq!(direction(ok.body()), "recvonly", "X is held");
        t.ack(htx, &hold, &ok);

        // Call 2: T consults 1002, on a Call-ID of another shard than call 1.
        let shard1 = e2e::shard_of(inv1.call_id().unwrap(), 2);
        let mut inv2 = t.invite("1001", "1002");
        let call2 = loop {
            let id = format!("{}@test", sip::transaction::new_tag());
            if e2e::shard_of(&id, 2) != shard1 {
                break id;
            }
        };
        inv2.headers.set(Name::CallId, call2.clone());
        let tx2 = t.send(inv2.clone());
        let challenge = t.final_response(tx2, wait).pop().expect("407");
        assert_eq!(challenge.code, 407);
        let inv2 = t.with_proxy_auth(&inv2, &challenge, "1001", "secret");
        let tx2 = t.send(inv2.clone());
        let ok2 = t.final_response(tx2, wait).pop().expect("1002 answers");
        assert_eq!(ok2.code, 200, "{}", sw.log_tail());
        t.ack(tx2, &inv2, &ok2);
        assert!(y.wait_log("Call established", wait), "{}", y.log());

        // The transfer: REFER in call 1 naming call 2's dialog.
        let d2 = Dialog::uac(&inv2, &ok2).unwrap();
        let replaces = format!(
            "{};to-tag={};from-tag={}",
            d2.id.call_id, d2.id.remote_tag, d2.id.local_tag
        );
        let escaped = replaces.replace('@', "%40").replace(';', "%3B").replace('=', "%3D");
        let mut refer = t.in_dialog(&mut d1, Method::Refer);
        refer.headers.push(Name::Contact, format!("<sip:1001@{}>", t.local));
        refer.headers.push(
            Name::ReferTo,
            format!("<sip:1002@127.0.0.1:{port}?Replaces={escaped}>"),
        );
        let rtx = t.send(refer);
        let accepted = t.final_response(rtx, wait).pop().expect("REFER answered");
        assert_eq!(accepted.code, 202, "{}", sw.log_tail());

        // T hears how it went and is hung up on both dialogs.
        let (mut notified, mut byes) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + wait;
        while (byes.len() < 2 || !notified.iter().any(|n: &String| n.contains(" 200 ")))
            && Instant::now() < deadline
        {
            let Some((tx, req)) = t.request(Duration::from_millis(200)) else {
                continue;
            };
            let Some(tx) = tx else { continue };
            match req.method {
                Method::Notify => {
                    notified.push(String::from_utf8_lossy(req.body()).trim().to_owned())
                }
                Method::Bye => byes.push(req.call_id().unwrap().to_owned()),
                _ => {}
            }
            t.respond(tx, sip::response_to(&req, 200, None));
        }
        println!("T was notified {notified:?} and hung up on {byes:?}");
        assert!(
            notified.first().is_some_and(|n| n.contains("100 Trying"))
                && notified.last().is_some_and(|n| n.contains("200 OK")),
            "{notified:?}\n{}",
            sw.log_tail()
        );
        byes.sort();
        let mut both = vec![inv1.call_id().unwrap().to_owned(), call2.clone()];
        both.sort();
        assert_eq!(byes, both, "{}", sw.log_tail());

        // X was taken off hold by the switch, and hears 1002 now.
        let t1 = Instant::now() + Duration::from_millis(300);
        std::thread::sleep(Duration::from_millis(2000));
        assert_eq!(*offers.lock().unwrap(), ["sendonly", "sendrecv"], "hold, then off hold");
        let heard: Vec<_> = xrtp.packets().into_iter().filter(|p| p.at > t1).collect();
        let pcm = ulaw_pcm(&heard);
        let (s1200, s500) = (tone_share(&pcm, 1200.0), tone_share(&pcm, 500.0));
        println!("after the transfer X hears 1200 Hz {s1200:.2} ({} ms)", pcm.len() / 8);
        assert!(s1200 > 0.8 && s500 < 0.1, "{s1200} {s500}\n{}", sw.log_tail());
        stop.store(true, Ordering::Relaxed);
    });
    let bye = xua.bye(&xinv, &xok);
    let btx = xua.send(bye);
    assert_eq!(xua.final_response(btx, wait).pop().map(|r| r.code), Some(200));
    assert!(y.wait_log("terminated", Duration::from_secs(5)), "{}", y.log());
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
    let x = cdrs.iter().find(|r| r["dialed"] == "7001").expect("X's CDR");
    assert_eq!(x["destination"], "1002", "{x}");
    let consult = cdrs.iter().find(|r| r["dialed"] == "1002").expect("T's CDR");
    assert_eq!(consult["reason"], "transferred", "{consult}");
}
