//! In-call feature codes (`[features]`) dialed as RFC 4733 digits by a
//! local user during an anchored call:
//!
//! - `*1` / `*2`: the callee (user 1001) starts recording, pauses, resumes
//!   and stops it; the WAV has the two recorded spans with both parties'
//!   tones and silence where it was paused. The same code from the caller
//!   (a carrier trunk) is ignored.
//! - `*3<number>#`: the callee adds user 1002; the three hear each other
//!   (mixed), and when the third party hangs up the first two are bridged
//!   again.

use e2e::media::{media_config, sdp, sdp_addr, tone_share, ulaw_pcm, ulaw_tone, PCMU};
use e2e::rtp::{RtpPeer, Sender};
use e2e::switch::SwitchProc;
use e2e::ua::Ua;
use sip::{Method, Name, SipMessage};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Carrier (127.0.0.2) → switch → user 1001, answered, PCMU both ways.
struct UserCall {
    sw: SwitchProc,
    sw_addr: SocketAddr,
    caller: Ua,
    callee: Ua,
    invite: sip::Request,
    ok: sip::Response,
    a_rtp: RtpPeer,
    b_rtp: RtpPeer,
    a: Sender,
    b: Sender,
    _dir: tempfile::TempDir,
}

const ROUTES: &str = "[[routes]]\nprefix = \"\"\nfrom = \"any\"\ntarget = \"users\"\n";

/// A switch with anchored media (`media` lines in `[media]`) routing every
/// number to the users; its SIP address and folder.
fn media_switch(media: &str) -> (SwitchProc, SocketAddr, tempfile::TempDir) {
    media_switch_env(media, &[])
}

/// [`media_switch`] with environment variables for the switch.
fn media_switch_env(
    media: &str,
    env: &[(&str, &str)],
) -> (SwitchProc, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = media_config(port, dir.path(), media, ROUTES);
    let sw = SwitchProc::start_with_env(dir.path(), port, &cfg, env);
    (sw, sw_addr, dir)
}

fn user_call(media: &str) -> UserCall {
    let (sw, sw_addr, dir) = media_switch(media);
    let mut callee = Ua::new("127.0.0.1", sw_addr);
    let r = callee.register("1001", "secret", 300).expect("REGISTER");
    assert_eq!(r.code, 200);
    let mut caller = Ua::new("127.0.0.2", sw_addr);
    let call = e2e::media::place_call(&sw, &mut caller, &mut callee, "1001");
    let (invite, ok, a_rtp, b_rtp) = (call.invite, call.ok, call.a_rtp, call.b_rtp);
    let a = Sender::new(&a_rtp, call.a_media, 0xA0A0);
    let b = Sender::new(&b_rtp, call.b_media, 0xB0B0);
    UserCall {
        sw,
        sw_addr,
        caller,
        callee,
        invite,
        ok,
        a_rtp,
        b_rtp,
        a,
        b,
        _dir: dir,
    }
}

impl UserCall {
    fn log(&self) -> String {
        std::fs::read_to_string(self.sw.dir.join("switch.log")).unwrap()
    }

    /// Waits up to 3 s for `needle` in the switch's log.
    fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Caller and callee send their tones for `ms` at the same time.
    fn both_talk(&mut self, ms: u32) {
        let (fa, fb) = (ulaw_tone(500.0, ms), ulaw_tone(1500.0, ms));
        let (a, b) = (&mut self.a, &mut self.b);
        std::thread::scope(|s| {
            s.spawn(|| a.audio(0, 160, &fa));
            s.spawn(|| b.audio(0, 160, &fb));
        });
    }

    /// The caller hangs up; the callee answers the BYE.
    fn hang_up(&mut self) {
        let mut bye = self.caller.bye(&self.invite, &self.ok);
        bye.headers.set(Name::CSeq, "100 BYE");
        let btx = self.caller.send(bye);
        let (tx, r) = self.callee.request(Duration::from_secs(5)).expect("BYE");
        assert_eq!(r.method, Method::Bye);
        self.callee
            .respond(tx.unwrap(), sip::response_to(&r, 200, None));
        let r = self.caller.final_response(btx, Duration::from_secs(5));
        assert_eq!(r.last().map(|r| r.code), Some(200));
    }
}

#[test]
fn feature_codes_start_pause_resume_and_stop_recording() {
    recording_controlled(false);
}

/// The same through the control socket (`ctl calls record ID start|...`).
#[test]
fn ctl_starts_pauses_resumes_and_stops_recording() {
    recording_controlled(true);
}

/// Start, 1 s of both parties, pause, 1 s, resume, 1 s, stop: by the
/// callee's feature codes or by `ctl`. The WAV holds the two recorded
/// spans with both tones and silence between them.
fn recording_controlled(via_ctl: bool) {
    e2e::require("sox");
    let _heavy = e2e::heavy_lock();
    let rec = tempfile::tempdir().unwrap();
    let mut c = user_call(&format!("recordings = \"{}\"", rec.path().display()));
    let call_id = c.invite.call_id().unwrap().to_owned();
    let control = |c: &mut UserCall, code: &str, action: &str| {
        if via_ctl {
            let out = c.sw.ctl(&["calls", "record", &call_id, action]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            c.b.digits(101, code, 60);
        }
    };
    if !via_ctl {
        // From the caller's leg (a carrier trunk) the code does nothing.
        c.a.digits(101, "*1", 60);
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !c.log().contains("recording started"),
            "a trunk's caller must not control recording"
        );
    }
    control(&mut c, "*1", "start");
    assert!(c.wait_log("recording started"), "{}", c.sw.log_tail());
    c.both_talk(1000);
    control(&mut c, "*2", "pause");
    assert!(c.wait_log("Pause"), "{}", c.sw.log_tail());
    c.both_talk(1000);
    control(&mut c, "*2", "resume");
    assert!(c.wait_log("Resume"), "{}", c.sw.log_tail());
    c.both_talk(1000);
    if via_ctl {
        let again = c.sw.ctl(&["calls", "record", &call_id, "resume"]);
        assert!(String::from_utf8_lossy(&again.stderr).contains("not paused"));
    }
    control(&mut c, "*1", "stop");
    let file = e2e::media::wait_recording(rec.path(), &c.sw);
    c.hang_up();

    let whole = e2e::sox_stat(&file, None);
    println!("recording {:.3} s", whole.seconds);
    assert!(
        (2.8..4.5).contains(&whole.seconds),
        "two 1 s spans, a paused 1 s and the digits between: {:.3} s",
        whole.seconds
    );
    for (channel, hz) in [(1, 500.0), (2, 1500.0)] {
        let pcm = e2e::media::wav_channel(&file, channel);
        let spans = e2e::media::loud_spans(&pcm, 8000);
        println!("channel {channel} ({hz} Hz): loud spans (start s, length s) {spans:.2?}");
        assert_eq!(spans.len(), 2, "recorded, paused, recorded: {spans:.2?}");
        for (start, len) in &spans {
            assert!((0.8..1.2).contains(len), "a 1 s span: {spans:.2?}");
            let from = (start * 8000.0) as usize + 800;
            let to = from + (len * 8000.0) as usize - 1600;
            let share = tone_share(&pcm[from..to], hz);
            assert!(share > 0.8, "channel {channel} carries {hz} Hz: {share:.2}");
        }
        let gap = spans[1].0 - (spans[0].0 + spans[0].1);
        assert!(
            gap > 0.9,
            "the paused second is silence in the file: gap {gap:.2} s"
        );
    }
}

#[test]
fn three_way_call_mixes_the_third_party_then_bridges_again() {
    let _heavy = e2e::heavy_lock();
    let mut c = user_call("");
    let mut third = Ua::new("127.0.0.3", c.sw_addr);
    let r = third.register("1002", "secret", 300).expect("REGISTER");
    assert_eq!(r.code, 200);
    let c_rtp = RtpPeer::bind();

    c.b.digits(101, "*31002#", 60);
    let (stx, inv_c) = third
        .request(Duration::from_secs(8))
        .unwrap_or_else(|| panic!("INVITE to the third party: {}", c.sw.log_tail()));
    assert_eq!(inv_c.method, Method::Invite);
    let from = inv_c.from().unwrap();
    assert_eq!(
        from.uri.sip().and_then(|u| u.user.clone()).as_deref(),
        Some("1001"),
        "the third party sees the user who added it"
    );
    let c_media = sdp_addr(inv_c.body());
    assert_eq!(c_media.ip().to_string(), "127.0.0.1", "anchored offer");
    let mut ok_c = third.answer(&inv_c, 200, "third");
    ok_c.body = sdp(c_rtp.port, "0 101", PCMU);
    third.respond(stx.unwrap(), ok_c.clone());
    let (_, ack) = third.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    assert!(
        c.wait_log("three-way: the third party joined"),
        "{}",
        c.sw.log_tail()
    );
    let mut cs = Sender::new(&c_rtp, c_media, 0xC0C0);

    // The three talk at once: 400, 1000, 2200 Hz.
    let marks = [
        c.a_rtp.packets().len(),
        c.b_rtp.packets().len(),
        c_rtp.packets().len(),
    ];
    let freqs = [400.0, 1000.0, 2200.0];
    let tones: Vec<_> = freqs.iter().map(|&hz| ulaw_tone(hz, 2000)).collect();
    {
        let (a, b) = (&mut c.a, &mut c.b);
        let cs = &mut cs;
        std::thread::scope(|s| {
            s.spawn(|| a.audio(0, 160, &tones[0]));
            s.spawn(|| b.audio(0, 160, &tones[1]));
            s.spawn(|| cs.audio(0, 160, &tones[2]));
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    let heard = [
        c.a_rtp.packets()[marks[0]..].to_vec(),
        c.b_rtp.packets()[marks[1]..].to_vec(),
        c_rtp.packets()[marks[2]..].to_vec(),
    ];
    for (i, packets) in heard.iter().enumerate() {
        let pcm = ulaw_pcm(packets);
        assert!(pcm.len() > 8000, "party {i} heard {} samples", pcm.len());
        e2e::media::assert_hears_the_others(i, &pcm, &freqs);
    }

    // The third party hangs up: caller and callee are bridged again.
    // The third party is the UAS of its dialog: From/To reversed.
    let btx = e2e::ua::bye_as_callee(&mut third, &inv_c, "third");
    assert_eq!(
        third
            .final_response(btx, Duration::from_secs(5))
            .pop()
            .map(|r| r.code),
        Some(200)
    );
    assert!(
        c.wait_log("three-way: third party hung up"),
        "{}",
        c.sw.log_tail()
    );
    let marks = [c.a_rtp.packets().len(), c.b_rtp.packets().len()];
    c.both_talk(1000);
    std::thread::sleep(Duration::from_millis(300));
    for (i, (packets, hz)) in [
        (c.a_rtp.packets()[marks[0]..].to_vec(), 1500.0),
        (c.b_rtp.packets()[marks[1]..].to_vec(), 500.0),
    ]
    .iter()
    .enumerate()
    {
        let pcm = ulaw_pcm(packets);
        assert!(pcm.len() > 4000, "party {i} heard {} samples", pcm.len());
        let share = tone_share(&pcm[pcm.len() / 4..pcm.len() * 3 / 4], *hz);
        println!("after the third party left, party {i} hears the other at share {share:.2}");
        assert!(share > 0.8, "party {i} hears the other: {share:.2}");
    }
    c.hang_up();
}

/// An operator transfers the caller to user 1002 (`ctl calls transfer`):
/// 1002 rings showing the caller, answers, the first callee is hung up,
/// and caller and 1002 hear each other; the CDR ends with 1002.
#[test]
fn an_operator_transfers_the_caller_to_another_user() {
    e2e::require("sox");
    let _heavy = e2e::heavy_lock();
    let rec = tempfile::tempdir().unwrap();
    let mut c = user_call(&format!(
        "record = \"stereo\"\nrecordings = \"{}\"",
        rec.path().display()
    ));
    let mut target = Ua::new("127.0.0.3", c.sw_addr);
    assert_eq!(target.register("1002", "secret", 300).unwrap().code, 200);
    let t_rtp = RtpPeer::bind();
    let call_id = c.invite.call_id().unwrap().to_owned();
    let evil =
        c.sw.ctl(&["calls", "transfer", &call_id, "1002\r\nX-Evil: 1"]);
    assert!(String::from_utf8_lossy(&evil.stderr).contains("is not a number"));
    let out = c.sw.ctl(&["calls", "transfer", &call_id, "1002"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stx, inv) = target
        .request(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("INVITE to 1002: {}", c.sw.log_tail()));
    assert_eq!(inv.method, Method::Invite);
    let from = inv.from().unwrap();
    assert_eq!(
        from.uri.sip().and_then(|u| u.user.clone()).as_deref(),
        Some("carrier"),
        "the target sees the caller"
    );
    let t_media = sdp_addr(inv.body());
    let mut ok = target.answer(&inv, 200, "target");
    ok.body = sdp(t_rtp.port, "0 101", PCMU);
    target.respond(stx.unwrap(), ok);
    let _ack = target.request(Duration::from_secs(5)).expect("ACK");
    // The first callee is released.
    let (btx, bye) = c
        .callee
        .request(Duration::from_secs(5))
        .expect("BYE to 1001");
    assert_eq!(bye.method, Method::Bye);
    c.callee
        .respond(btx.unwrap(), sip::response_to(&bye, 200, None));
    assert!(c.wait_log("transfer: answered"), "{}", c.sw.log_tail());

    // Caller and 1002 hear each other.
    let mut t = Sender::new(&t_rtp, t_media, 0xD0D0);
    let marks = (c.a_rtp.packets().len(), t_rtp.packets().len());
    let (fa, ft) = (ulaw_tone(500.0, 1000), ulaw_tone(1500.0, 1000));
    {
        let a = &mut c.a;
        let t = &mut t;
        std::thread::scope(|s| {
            s.spawn(|| a.audio(0, 160, &fa));
            s.spawn(|| t.audio(0, 160, &ft));
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    let to_a = ulaw_pcm(&c.a_rtp.packets()[marks.0..]);
    let to_t = ulaw_pcm(&t_rtp.packets()[marks.1..]);
    assert!(
        to_a.len() > 4000 && to_t.len() > 4000,
        "{} / {}",
        to_a.len(),
        to_t.len()
    );
    let (sa, st) = (tone_share(&to_a, 1500.0), tone_share(&to_t, 500.0));
    println!("after the transfer: caller hears 1002 at {sa:.2}, 1002 hears the caller at {st:.2}");
    assert!(sa > 0.8 && st > 0.8);

    // The caller hangs up: 1002 gets the BYE; the CDR ends with 1002.
    let mut bye = c.caller.bye(&c.invite, &c.ok);
    bye.headers.set(Name::CSeq, "100 BYE");
    let btx = c.caller.send(bye);
    let (ttx, tbye) = target.request(Duration::from_secs(5)).expect("BYE to 1002");
    assert_eq!(tbye.method, Method::Bye);
    target.respond(ttx.unwrap(), sip::response_to(&tbye, 200, None));
    let r = c.caller.final_response(btx, Duration::from_secs(5));
    assert_eq!(r.last().map(|r| r.code), Some(200));
    std::thread::sleep(Duration::from_millis(300));
    let cdrs = c.sw.ctl_json(&["cdr", "query", "--since", "10m"]);
    assert_eq!(cdrs[0]["destination"], "1002", "{cdrs}");
    assert_eq!(cdrs[0]["reason"], "caller hung up");
    // The stereo recording follows the transfer: caller left, 1002 right.
    let file = e2e::media::wait_recording(rec.path(), &c.sw);
    let (left, right) = (
        e2e::media::wav_channel(&file, 1),
        e2e::media::wav_channel(&file, 2),
    );
    // The loud 20 ms blocks of the last 2 s (the talk after the transfer).
    let tail = |pcm: &[i16]| -> Vec<i16> {
        pcm[pcm.len().saturating_sub(16000)..]
            .chunks(160)
            .filter(|b| e2e::rtp::rms_dbfs(b) > -40.0)
            .flatten()
            .copied()
            .collect()
    };
    let (l, r) = (
        tone_share(&tail(&left), 500.0),
        tone_share(&tail(&right), 1500.0),
    );
    println!("recording after the transfer: caller left {l:.2}, 1002 right {r:.2}");
    assert!(l > 0.8 && r > 0.8);
}

/// Answers an INVITE at `ua` with 200 and an SDP for `rtp`, takes the ACK;
/// returns the INVITE and the switch's media address in it.
fn answer_with_media(ua: &mut Ua, rtp: &RtpPeer, tag: &str) -> (sip::Request, SocketAddr) {
    let (tx, inv) = ua.request(Duration::from_secs(5)).expect("INVITE");
    assert_eq!(inv.method, Method::Invite);
    let media = sdp_addr(inv.body());
    let mut ok = ua.answer(&inv, 200, tag);
    ok.body = sdp(rtp.port, "0 101", PCMU);
    ua.respond(tx.unwrap(), ok);
    let (_, ack) = ua.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    (inv, media)
}

/// Click-to-call (`ctl calls originate 1001 1002`): 1001's phone rings
/// first showing what it will call; once it answers it hears ringback
/// while 1002 rings; then the two talk. The CDR names 1001 as the caller.
#[test]
fn click_to_call_rings_the_user_then_dials_the_number() {
    let _heavy = e2e::heavy_lock();
    let (sw, sw_addr, _dir) = media_switch("");
    let mut phone = Ua::new("127.0.0.1", sw_addr);
    assert_eq!(phone.register("1001", "secret", 300).unwrap().code, 200);
    let mut target = Ua::new("127.0.0.3", sw_addr);
    assert_eq!(target.register("1002", "secret", 300).unwrap().code, 200);
    let (p_rtp, t_rtp) = (RtpPeer::bind(), RtpPeer::bind());

    let r = sw.ctl_json(&["calls", "originate", "1001", "1002"]);
    let call_id = r["call_id"].as_str().expect("a call id").to_owned();
    let (inv, p_media) = answer_with_media(&mut phone, &p_rtp, "phone");
    let from = inv.from().unwrap();
    assert_eq!(from.display.as_deref(), Some("Call to 1002"));
    assert_eq!(inv.call_id(), Some(call_id.as_str()));

    // 1002 rings; meanwhile the phone hears ringback from the switch.
    let (tx, t_inv) = target
        .request(Duration::from_secs(5))
        .expect("INVITE to 1002");
    assert_eq!(
        t_inv
            .from()
            .unwrap()
            .uri
            .sip()
            .and_then(|u| u.user.clone())
            .as_deref(),
        Some("1001"),
        "1002 sees the user calling"
    );
    std::thread::sleep(Duration::from_millis(1000));
    let ringback = ulaw_pcm(&p_rtp.packets());
    let share = tone_share(&ringback, 440.0) + tone_share(&ringback, 480.0);
    println!(
        "ringback: {} samples, 440+480 Hz share {share:.2}",
        ringback.len()
    );
    assert!(
        ringback.len() > 4000 && share > 0.5,
        "ringback while 1002 rings"
    );
    let t_media = sdp_addr(t_inv.body());
    let mut ok = target.answer(&t_inv, 200, "target");
    ok.body = sdp(t_rtp.port, "0 101", PCMU);
    target.respond(tx.unwrap(), ok.clone());
    let (_, ack) = target.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);

    // They talk.
    std::thread::sleep(Duration::from_millis(200));
    let marks = (p_rtp.packets().len(), t_rtp.packets().len());
    let mut p = Sender::new(&p_rtp, p_media, 0xE0E0);
    let mut t = Sender::new(&t_rtp, t_media, 0xF0F0);
    let (fp, ft) = (ulaw_tone(700.0, 1000), ulaw_tone(1300.0, 1000));
    std::thread::scope(|s| {
        s.spawn(|| p.audio(0, 160, &fp));
        s.spawn(|| t.audio(0, 160, &ft));
    });
    std::thread::sleep(Duration::from_millis(300));
    let to_p = ulaw_pcm(&p_rtp.packets()[marks.0..]);
    let to_t = ulaw_pcm(&t_rtp.packets()[marks.1..]);
    let (sp, st) = (tone_share(&to_p, 1300.0), tone_share(&to_t, 700.0));
    println!("connected: the user hears 1002 at {sp:.2}, 1002 hears the user at {st:.2}");
    assert!(sp > 0.8 && st > 0.8);

    // The user hangs up (the phone is the UAS of its dialog).
    let btx = e2e::ua::bye_as_callee(&mut phone, &inv, "phone");
    let (ttx, bye) = target.request(Duration::from_secs(5)).expect("BYE to 1002");
    assert_eq!(bye.method, Method::Bye);
    target.respond(ttx.unwrap(), sip::response_to(&bye, 200, None));
    let r = phone.final_response(btx, Duration::from_secs(5));
    assert_eq!(r.last().map(|r| r.code), Some(200));
    std::thread::sleep(Duration::from_millis(300));
    let cdr = &sw.ctl_json(&["cdr", "query", "--since", "10m"])[0];
    assert_eq!(cdr["call_id"], call_id.as_str(), "{cdr}");
    assert_eq!(cdr["caller"], "1001");
    assert_eq!(cdr["dialed"], "1002");
    assert_eq!(cdr["destination"], "1002");
    assert_eq!(cdr["disposition"], "answered");
    assert_eq!(cdr["reason"], "caller hung up");
}

/// 1001 and 1002 register; `ctl calls originate 1001 1002`; 1001's phone
/// answers; 1002 gets the INVITE (not yet answered). The phones, the
/// INVITE 1001 answered, and 1002's server transaction and INVITE.
fn originate_1001_to_1002(
    sw: &SwitchProc,
    sw_addr: SocketAddr,
) -> (
    Ua,
    Ua,
    sip::Request,
    Option<sip::transaction::TxId>,
    sip::Request,
) {
    let mut phone = Ua::new("127.0.0.1", sw_addr);
    assert_eq!(phone.register("1001", "secret", 300).unwrap().code, 200);
    let mut target = Ua::new("127.0.0.3", sw_addr);
    assert_eq!(target.register("1002", "secret", 300).unwrap().code, 200);
    let p_rtp = RtpPeer::bind();
    sw.ctl_json(&["calls", "originate", "1001", "1002"]);
    let (inv, _) = answer_with_media(&mut phone, &p_rtp, "phone");
    let (tx, t_inv) = target
        .request(Duration::from_secs(5))
        .expect("INVITE to 1002");
    (phone, target, inv, tx, t_inv)
}

/// Click-to-call whose number is busy: the user's phone, answered, is hung
/// up; the CDR says busy. An unregistered user cannot be rung.
#[test]
fn click_to_call_to_a_busy_number_hangs_the_phone_up() {
    let _heavy = e2e::heavy_lock();
    let (sw, sw_addr, _dir) = media_switch("");
    let out = sw.ctl(&["calls", "originate", "1003", "1002"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1003 is not registered"));
    let (mut phone, mut target, _inv, tx, t_inv) = originate_1001_to_1002(&sw, sw_addr);
    target.respond(tx.unwrap(), target.answer(&t_inv, 486, "busy"));
    let (btx, bye) = phone
        .request(Duration::from_secs(5))
        .expect("BYE to the phone");
    assert_eq!(bye.method, Method::Bye);
    phone.respond(btx.unwrap(), sip::response_to(&bye, 200, None));
    std::thread::sleep(Duration::from_millis(300));
    let cdr = &sw.ctl_json(&["cdr", "query", "--since", "10m"])[0];
    assert_eq!(cdr["disposition"], "busy", "{cdr}");
    assert_eq!(cdr["cause"], 486);
    assert_eq!(cdr["caller"], "1001");
}

/// A click-to-call whose actor fails while the user's phone rings: the
/// phone gets a CANCEL (not left ringing), and the CDR says internal error.
#[test]
fn a_failed_click_to_call_cancels_the_ringing_phone() {
    let _heavy = e2e::heavy_lock();
    let (sw, sw_addr, _dir) = media_switch_env("", &[("SWITCHBOARD_FAULTS", "1")]);
    let mut phone = Ua::new("127.0.0.1", sw_addr);
    assert_eq!(phone.register("1001", "secret", 300).unwrap().code, 200);
    let r = sw.ctl_json(&["calls", "originate", "1001", "1002"]);
    let call_id = r["call_id"].as_str().unwrap().to_owned();
    let (tx, inv) = phone.request(Duration::from_secs(5)).expect("INVITE");
    phone.respond(tx.unwrap(), phone.answer(&inv, 180, "phone"));
    std::thread::sleep(Duration::from_millis(200));
    let out = sw.ctl(&[
        "raw",
        "debug.panic_call",
        &format!("{{\"call_id\":\"{call_id}\"}}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, cancel) = phone
        .request(Duration::from_secs(5))
        .expect("CANCEL to the phone");
    assert_eq!(cancel.method, Method::Cancel);
    std::thread::sleep(Duration::from_millis(300));
    let cdr = &sw.ctl_json(&["cdr", "query", "--since", "10m"])[0];
    assert_eq!(cdr["reason"], "internal error", "{cdr}");
}

/// Click-to-call where the user hangs up while the number still rings:
/// the number gets a CANCEL, and the CDR says cancelled (487).
#[test]
fn click_to_call_given_up_while_the_number_rings_is_cancelled() {
    let _heavy = e2e::heavy_lock();
    let (sw, sw_addr, _dir) = media_switch("");
    let (mut phone, mut target, inv, ttx, t_inv) = originate_1001_to_1002(&sw, sw_addr);
    target.respond(ttx.unwrap(), target.answer(&t_inv, 180, "target"));
    std::thread::sleep(Duration::from_millis(200));
    let btx = e2e::ua::bye_as_callee(&mut phone, &inv, "phone");
    assert_eq!(
        phone
            .final_response(btx, Duration::from_secs(5))
            .last()
            .map(|r| r.code),
        Some(200)
    );
    let (_, cancel) = target
        .request(Duration::from_secs(5))
        .expect("CANCEL to 1002");
    assert_eq!(cancel.method, Method::Cancel);
    std::thread::sleep(Duration::from_millis(300));
    let cdr = &sw.ctl_json(&["cdr", "query", "--since", "10m"])[0];
    assert_eq!(cdr["disposition"], "cancelled", "{cdr}");
    assert_eq!(cdr["cause"], 487);
}
