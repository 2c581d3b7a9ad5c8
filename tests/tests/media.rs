//! Anchored media through the switch, with sipp's RTP as the caller.
//!
//! - sipp `uac_pcap` (a carrier sending Debian's `g711a.pcap`, 236 A-law
//!   packets of 30 ms, then an RFC 4733 digit "1") → switch → a test callee
//!   that records every RTP packet: the callee must get them all, from the
//!   switch's address (anchored, not the caller's), with the same payload
//!   bytes in order (a relay between two A-law legs does not touch audio),
//!   one SSRC and consecutive sequence numbers; the audio is not silence;
//!   and the switch logs the digit.
//! - A test caller → switch → sipp UAS with `-rtp_echo`: the caller sends a
//!   known µ-law stream and gets it back through the switch both ways.

use e2e::media::{media_config, sdp, sdp_addr, tone_share, ulaw_tone, PCMU};
use e2e::rtp::{self, RtpPeer};
use e2e::sipp::{run_uac, SippUas};
use e2e::switch::SwitchProc;
use e2e::ua::Ua;
use sip::transaction::TxId;
use sip::{Method, Name, SipMessage};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Config lines sending every call from a trunk to trunk "far" at `host`.
fn to_far(host: impl std::fmt::Display) -> String {
    format!(
        "[[trunks]]\nname = \"far\"\noutbound = {{ host = \"{host}\" }}\n\n\
         [[routes]]\nprefix = \"\"\nfrom = \"trunks\"\ntarget = {{ trunk = \"far\" }}\n"
    )
}

#[test]
fn sipp_pcap_audio_arrives_unchanged_through_the_anchor() {
    e2e::require("sipp");
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/share/sip-tester", dir.path().join("pcap")).unwrap();
    let sent = rtp::pcap_rtp(&dir.path().join("pcap/g711a.pcap"));
    assert_eq!(sent.len(), 236, "Debian's g711a.pcap");

    let port = e2e::free_port("127.0.0.1");
    let sw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut callee = Ua::new("127.0.0.1", sw_addr);
    let extra = to_far(callee.local);
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &media_config(port, dir.path(), "", &extra),
    );
    let peer = RtpPeer::bind();

    let uac_dir = dir.path().to_path_buf();
    let uac_port = e2e::free_port("127.0.0.2").to_string();
    let uac = std::thread::spawn(move || {
        run_uac(
            &uac_dir,
            &format!("127.0.0.1:{port}"),
            &[
                "-sn",
                "uac_pcap",
                "-s",
                "5550100",
                "-i",
                "127.0.0.2",
                "-p",
                &uac_port,
                "-m",
                "1",
            ],
            Duration::from_secs(40),
        )
    });

    let (tx, invite) = callee
        .request(Duration::from_secs(10))
        .expect("INVITE from the switch");
    assert_eq!(invite.method, Method::Invite);
    let offer = sdp_addr(invite.body());
    assert_eq!(offer.ip().to_string(), "127.0.0.1");
    let text = String::from_utf8_lossy(invite.body()).to_string();
    assert!(
        text.contains("PCMA/8000"),
        "offer lists the caller's codec: {text}"
    );
    let tx = tx.unwrap();
    let mut ok = callee.answer(&invite, 200, "callee-tag");
    ok.body = sdp(
        peer.port,
        "8 101",
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
    );
    callee.respond(tx, ok);

    // The call lasts about 9 s (7 s of audio, a digit, a pause); BYE ends it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut bye = None;
    while Instant::now() < deadline {
        if let Some((tx, r)) = callee.request(Duration::from_millis(200)) {
            if r.method == Method::Bye {
                bye = Some((tx, r));
                break;
            }
        }
    }
    let (btx, bye) = bye.expect("BYE relayed to the callee");
    let resp = sip::response_to(&bye, 200, None);
    callee.respond(btx.unwrap(), resp);
    let stats = uac.join().unwrap();
    assert_eq!((stats.successful, stats.failed), (1, 0), "sipp: {stats:?}");

    let got = peer.packets();
    let audio: Vec<_> = got.iter().filter(|p| p.pt == 8).collect();
    let events: Vec<_> = got.iter().filter(|p| p.pt == 101).collect();
    println!(
        "callee got {} audio packets (sent {}), {} telephone-event packets",
        audio.len(),
        sent.len(),
        events.len()
    );
    assert_eq!(audio.len(), sent.len(), "every audio packet relayed once");
    // Anchored: everything comes from the switch's media port, not sipp's.
    assert!(
        got.iter().all(|p| p.from == offer),
        "source is the switch's offered address"
    );
    for (i, (p, (_, payload))) in audio.iter().zip(&sent).enumerate() {
        assert_eq!(&p.payload, payload, "payload of packet {i} changed");
    }
    let ssrc = audio[0].ssrc;
    assert!(
        got.iter().all(|p| p.ssrc == ssrc),
        "one SSRC towards the callee"
    );
    for w in audio.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "consecutive audio sequence numbers"
        );
    }
    // sipp's digit repeats its end packet with the same sequence number:
    // relayed as it came, so no gaps, possibly repeats.
    for w in got.windows(2) {
        assert!(w[1].seq.wrapping_sub(w[0].seq) <= 1, "no sequence gaps");
    }
    let pcm: Vec<i16> = audio
        .iter()
        .flat_map(|p| p.payload.iter().map(|&b| rtp::alaw_to_linear(b)))
        .collect();
    let level = rtp::rms_dbfs(&pcm);
    println!("relayed audio level {level:.1} dBFS");
    assert!(level > -40.0, "audio is not silence ({level:.1} dBFS)");
    assert!(
        events.len() >= 3,
        "the digit's telephone-events are relayed"
    );

    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("dtmf") && l.contains("digit=1")),
        "digit reported: {}",
        sw.log_tail()
    );
}

#[test]
fn rtp_echo_through_the_switch_both_ways() {
    e2e::require("sipp");
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let uas = SippUas::start(
        dir.path(),
        None,
        &[
            "-rtp_echo",
            "-mi",
            "127.0.0.1",
            "-mp",
            &e2e::free_port("127.0.0.1").to_string(),
        ],
    );
    let port = e2e::free_port("127.0.0.1");
    let sw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let extra = to_far(format!("127.0.0.1:{}", uas.port));
    let _sw = SwitchProc::start(
        dir.path(),
        port,
        &media_config(port, dir.path(), "", &extra),
    );
    let mut caller = Ua::new("127.0.0.2", sw_addr);
    let peer = RtpPeer::bind();
    let mut invite = caller.invite("carrier", "5550100");
    invite.body = sdp(peer.port, "0", "a=rtpmap:0 PCMU/8000\r\n");
    let tx = caller.send(invite.clone());
    let rs = caller.final_response(tx, Duration::from_secs(10));
    let ok = rs.last().expect("final response").clone();
    assert_eq!(ok.code, 200);
    caller.ack(tx, &invite, &ok);
    let media = sdp_addr(ok.body());

    // 100 frames (2 s) of distinct µ-law payloads.
    let frames: Vec<Vec<u8>> = (0..100u32)
        .map(|i| (0..160u32).map(|k| ((i * 7 + k) % 256) as u8).collect())
        .collect();
    peer.send_stream(media, 0, 160, frames.clone())
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let bye = caller.bye(&invite, &ok);
    let btx = caller.send(bye);
    let r = caller.final_response(btx, Duration::from_secs(5));
    assert_eq!(r.last().map(|r| r.code), Some(200));

    let got = peer.packets();
    println!(
        "sent {} packets, {} came back through the switch",
        frames.len(),
        got.len()
    );
    assert!(got.len() >= 98, "echoed packets: {}", got.len());
    assert!(got.iter().all(|p| p.from == media && p.pt == 0));
    let mut matched = 0;
    for p in &got {
        if frames.contains(&p.payload) {
            matched += 1;
        }
    }
    assert_eq!(matched, got.len(), "every echoed payload is one we sent");
}

/// All 16 digits, 40 ms each, first as in-band tones in µ-law audio (from a
/// trunk marked `inband_dtmf`), then as RFC 4733 events: the switch reports
/// 32 digits, in order, with their source.
#[test]
fn dtmf_rfc4733_and_inband_all_sixteen_digits() {
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut callee = Ua::new("127.0.0.1", sw_addr);
    let extra = format!(
        "[[trunks]]\nname = \"tones\"\ninband_dtmf = true\ninbound = {{ from = [\"127.0.0.3\"] }}\n\n{}",
        to_far(callee.local)
    );
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &media_config(port, dir.path(), "", &extra),
    );
    let mut caller = Ua::new("127.0.0.3", sw_addr);
    let peer = RtpPeer::bind();
    let far = RtpPeer::bind();
    let mut invite = caller.invite("carrier", "5550100");
    invite.body = sdp(
        peer.port,
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
    );
    let tx = caller.send(invite.clone());
    let (stx, inv_b) = callee.request(Duration::from_secs(10)).expect("INVITE");
    let mut ok_b = callee.answer(&inv_b, 200, "callee");
    ok_b.body = sdp(
        far.port,
        "0 101",
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
    );
    callee.respond(stx.unwrap(), ok_b);
    let ok = caller
        .final_response(tx, Duration::from_secs(10))
        .pop()
        .expect("200");
    assert_eq!(ok.code, 200);
    caller.ack(tx, &invite, &ok);
    let media = sdp_addr(ok.body());

    let digits = "0123456789*#ABCD";
    // In-band: 40 ms tone, 40 ms silence, -12 dBFS per tone, in 20 ms µ-law frames.
    let mut pcm = vec![0i16; 1600];
    for d in digits.chars() {
        pcm.extend(rtp::dtmf_pcm(d, 40, -12.0));
        pcm.extend(std::iter::repeat_n(0, 320));
    }
    pcm.extend(std::iter::repeat_n(0, 1600));
    let frames: Vec<Vec<u8>> = pcm
        .chunks(160)
        .map(|c| c.iter().map(|&x| rtp::linear_to_ulaw(x)).collect())
        .collect();
    let n = frames.len() as u32;
    peer.send_stream(media, 0, 160, frames).join().unwrap();

    // RFC 4733: per digit 2 packets of 20 ms, then the end sent three times;
    // timestamps continue the audio stream above (SSRC 0x12345678, 20 ms per packet).
    let mut seq = 1000 + n as u16;
    let mut ts = 5000 + 160 * n;
    for (i, d) in digits.chars().enumerate() {
        let code = "0123456789*#ABCD".find(d).unwrap() as u8;
        let start = ts;
        for (k, (end, dur)) in [
            (false, 160u16),
            (false, 320),
            (true, 320),
            (true, 320),
            (true, 320),
        ]
        .into_iter()
        .enumerate()
        {
            let p = rtp::build(
                101,
                k == 0,
                seq,
                start,
                0x1234_5678,
                &rtp::event_payload(code, end, dur),
            );
            peer.sock.send_to(&p, media).unwrap();
            seq = seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(if k < 2 { 20 } else { 5 }));
        }
        // 40 ms of gap before the next digit.
        ts = start + 320 + 320;
        let _ = i;
        std::thread::sleep(Duration::from_millis(40));
    }
    std::thread::sleep(Duration::from_millis(300));
    let bye = caller.bye(&invite, &ok);
    let btx = caller.send(bye);
    let _ = callee.request(Duration::from_secs(5));
    let _ = caller.final_response(btx, Duration::from_secs(5));

    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    let seen: Vec<(String, String)> = log
        .lines()
        .filter(|l| l.contains(" dtmf") && l.contains("digit="))
        .map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            };
            (field("digit="), field("source="))
        })
        .collect();
    let inband: String = seen
        .iter()
        .filter(|(_, s)| s == "InBand")
        .map(|(d, _)| d.as_str())
        .collect();
    let events: String = seen
        .iter()
        .filter(|(_, s)| s == "Rfc4733")
        .map(|(d, _)| d.as_str())
        .collect();
    println!("in-band digits: {inband}\nRFC 4733 digits: {events}");
    assert_eq!(inband, digits, "in-band digits\n{}", sw.log_tail());
    assert_eq!(events, digits, "RFC 4733 digits\n{}", sw.log_tail());
}

/// A call from a test caller (the carrier trunk, 127.0.0.2) through the
/// switch to a test callee (trunk "far"), both with RTP sockets, PCMU.
struct Call {
    sw: SwitchProc,
    caller: Ua,
    callee: Ua,
    m: e2e::media::Answered,
    _dir: tempfile::TempDir,
}

fn call(media_extra: &str) -> Call {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut callee = Ua::new("127.0.0.1", sw_addr);
    let extra = to_far(callee.local);
    let cfg = media_config(port, dir.path(), media_extra, &extra);
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    let mut caller = Ua::new("127.0.0.2", sw_addr);
    let m = e2e::media::place_call(&sw, &mut caller, &mut callee, "5550100");
    Call {
        sw,
        caller,
        callee,
        m,
        _dir: dir,
    }
}

impl Call {
    /// The caller sends re-INVITE `r` (its Contact and `body` added); the
    /// request, its transaction, and the callee's relayed copy with its
    /// server transaction.
    fn reoffer(
        &mut self,
        mut r: sip::Request,
        body: bytes::Bytes,
    ) -> (sip::Request, TxId, TxId, sip::Request) {
        r.headers.push(
            Name::Contact,
            format!("<sip:carrier@{}>", self.caller.local),
        );
        r.headers.push(Name::ContentType, "application/sdp");
        r.body = body;
        let tx = self.caller.send(r.clone());
        let (stx, got) = self
            .callee
            .request(Duration::from_secs(5))
            .expect("re-INVITE relayed");
        assert_eq!(got.method, Method::Invite);
        (r, tx, stx.expect("a transaction"), got)
    }

    /// The caller hangs up; the callee answers the relayed BYE.
    fn hang_up(&mut self) {
        let mut bye = self.caller.bye(&self.m.invite, &self.m.ok);
        // Above any re-INVITE the test sent in this dialog.
        bye.headers.set(Name::CSeq, "100 BYE");
        let btx = self.caller.send(bye);
        if let Some((tx, r)) = self.callee.request(Duration::from_secs(5)) {
            assert_eq!(r.method, Method::Bye);
            let resp = sip::response_to(&r, 200, None);
            self.callee.respond(tx.unwrap(), resp);
        }
        let r = self.caller.final_response(btx, Duration::from_secs(5));
        assert_eq!(r.last().map(|r| r.code), Some(200));
    }
}

/// Stereo recording of a 3 s call: the WAV's length matches the time from
/// answer to hang-up within 100 ms; the caller's tone is on the left, the
/// callee's on the right.
#[test]
fn recording_matches_the_call_and_has_both_parties() {
    e2e::require("sox");
    let _heavy = e2e::heavy_lock();
    let rec = tempfile::tempdir().unwrap();
    let mut c = call(&format!(
        "record = \"stereo\"\nrecordings = \"{}\"",
        rec.path().display()
    ));
    let a =
        c.m.a_rtp
            .send_stream(c.m.a_media, 0, 160, ulaw_tone(500.0, 3000));
    let b =
        c.m.b_rtp
            .send_stream(c.m.b_media, 0, 160, ulaw_tone(1500.0, 3000));
    a.join().unwrap();
    b.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let talk = c.m.answered.elapsed().as_secs_f64();
    c.hang_up();
    let file = e2e::media::wait_recording(rec.path(), &c.sw);
    let whole = e2e::sox_stat(&file, None);
    println!(
        "recording {:.3} s, call {talk:.3} s (answer to BYE)",
        whole.seconds
    );
    assert!(
        (whole.seconds - talk).abs() <= 0.1,
        "recording {:.3} s vs call {talk:.3} s",
        whole.seconds
    );
    for (channel, hz) in [(1, 500.0), (2, 1500.0)] {
        let pcm = e2e::media::wav_channel(&file, channel);
        let mid = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
        let share = tone_share(mid, hz);
        let level = rtp::rms_dbfs(mid);
        println!("channel {channel}: {hz} Hz share {share:.2}, level {level:.1} dBFS");
        assert!(
            share > 0.8 && level > -20.0,
            "channel {channel} carries the {hz} Hz party"
        );
    }
}

/// A call whose parties stop sending RTP is hung up on both legs after
/// `media.timeout_secs`.
#[test]
fn silent_call_is_hung_up_after_the_media_timeout() {
    let mut c = call("timeout_secs = 2");
    let started = Instant::now();
    let (tx_b, bye_b) = c
        .callee
        .request(Duration::from_secs(6))
        .expect("BYE to the callee");
    assert_eq!(bye_b.method, Method::Bye);
    let resp = sip::response_to(&bye_b, 200, None);
    c.callee.respond(tx_b.unwrap(), resp);
    let (tx_a, bye_a) = c
        .caller
        .request(Duration::from_secs(2))
        .expect("BYE to the caller");
    assert_eq!(bye_a.method, Method::Bye);
    let resp = sip::response_to(&bye_a, 200, None);
    c.caller.respond(tx_a.unwrap(), resp);
    let after = started.elapsed().as_secs_f64();
    println!("hung up after {after:.1} s of silence");
    assert!((1.5..4.0).contains(&after), "{after:.1} s");
    assert!(std::fs::read_to_string(c.sw.dir.join("switch.log"))
        .unwrap()
        .contains("media timeout"));
}

/// Hold and resume by re-INVITE: the offer reaches the other side with the
/// switch's address and the same direction, the answer comes back, and
/// audio towards the held party stops until it resumes.
#[test]
fn hold_and_resume_by_reinvite() {
    let mut c = call("");
    let _keep = &c.m.callee_invite;
    let reinvite = |c: &mut Call, dir: &str| {
        let mut d = sip::dialog::Dialog::uac(&c.m.invite, &c.m.ok).unwrap();
        let via = sip::Via::new(
            "UDP",
            sip::Host::Ip(c.caller.local.ip()),
            Some(c.caller.local.port()),
            &sip::transaction::new_branch(),
        );
        // Later re-INVITEs need a higher CSeq than the earlier ones.
        let mut r = d.request(Method::Invite, &via, 70);
        let seq = if dir == "sendonly" { 10 } else { 20 };
        r.headers.set(Name::CSeq, format!("{seq} INVITE"));
        let body = sdp(c.m.a_rtp.port, "0 101", &format!("{PCMU}a={dir}\r\n"));
        let (r, tx, stx, got) = c.reoffer(r, body);
        let text = String::from_utf8_lossy(got.body()).to_string();
        assert!(text.contains(&format!("a={dir}")), "direction kept: {text}");
        assert_eq!(
            sdp_addr(got.body()),
            c.m.b_media,
            "same switch address towards the callee"
        );
        let answer_dir = if dir == "sendonly" {
            "recvonly"
        } else {
            "sendrecv"
        };
        let mut ok = sip::response_to(&got, 200, None);
        ok.headers
            .push(Name::Contact, format!("<sip:callee@{}>", c.callee.local));
        ok.headers.push(Name::ContentType, "application/sdp");
        ok.body = sdp(
            c.m.b_rtp.port,
            "0 101",
            &format!("{PCMU}a={answer_dir}\r\n"),
        );
        c.callee.respond(stx, ok);
        let resp = c
            .caller
            .final_response(tx, Duration::from_secs(5))
            .pop()
            .expect("answer");
        assert_eq!(resp.code, 200);
        let text = String::from_utf8_lossy(resp.body()).to_string();
        assert!(
            text.contains(&format!("a={answer_dir}")),
            "answer direction: {text}"
        );
        c.caller.ack(tx, &r, &resp);
        // The ACK is relayed to the callee; drain it.
        let _ = c.callee.request(Duration::from_millis(300));
    };
    // Before hold: callee audio reaches the caller.
    c.m.b_rtp
        .send_stream(c.m.b_media, 0, 160, ulaw_tone(700.0, 400))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = c.m.a_rtp.packets().len();
    assert!(before >= 18, "audio before hold: {before}");
    reinvite(&mut c, "sendonly");
    c.m.b_rtp
        .send_stream(c.m.b_media, 0, 160, ulaw_tone(700.0, 400))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let held = c.m.a_rtp.packets().len() - before;
    assert_eq!(held, 0, "nothing reaches the party that holds");
    reinvite(&mut c, "sendrecv");
    c.m.b_rtp
        .send_stream(c.m.b_media, 0, 160, ulaw_tone(700.0, 400))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let resumed = c.m.a_rtp.packets().len() - before;
    println!("packets to the caller: {before} before hold, {held} on hold, {resumed} after resume");
    assert!(resumed >= 18, "audio after resume: {resumed}");
    c.hang_up();
}

/// Three callers in a conference room: each hears the other two and not
/// itself (tones measured on what each receives).
#[test]
fn conference_of_three_each_hears_the_other_two() {
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let extra =
        "[[routes]]\nprefix = \"800\"\nfrom = \"trunks\"\ntarget = { conference = \"room1\" }\n";
    let _sw = SwitchProc::start(dir.path(), port, &media_config(port, dir.path(), "", extra));
    let freqs = [400.0, 1000.0, 2200.0];
    let mut parties = Vec::new();
    for _ in freqs {
        let mut ua = Ua::new("127.0.0.2", sw_addr);
        let peer = RtpPeer::bind();
        let mut invite = ua.invite("carrier", "800");
        invite.body = sdp(peer.port, "0 101", PCMU);
        let tx = ua.send(invite.clone());
        let ok = ua
            .final_response(tx, Duration::from_secs(5))
            .pop()
            .expect("answer");
        assert_eq!(ok.code, 200);
        ua.ack(tx, &invite, &ok);
        let media = sdp_addr(ok.body());
        parties.push((ua, peer, invite, ok, media));
    }
    let senders: Vec<_> = parties
        .iter()
        .zip(freqs)
        .map(|((_, peer, _, _, media), hz)| peer.send_stream(*media, 0, 160, ulaw_tone(hz, 2000)))
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    for (i, (ua, peer, invite, ok, _)) in parties.iter_mut().enumerate() {
        let pcm: Vec<i16> = peer
            .packets()
            .iter()
            .flat_map(|p| p.payload.iter().map(|&b| rtp::ulaw_to_linear(b)))
            .collect();
        assert!(pcm.len() > 8000, "party {i} heard {} samples", pcm.len());
        e2e::media::assert_hears_the_others(i, &pcm, &freqs);
        if i == 0 {
            // A re-INVITE (hold) in the room is answered by the switch itself.
            let mut d = sip::dialog::Dialog::uac(invite, ok).unwrap();
            let via = sip::Via::new(
                "UDP",
                sip::Host::Ip(ua.local.ip()),
                Some(ua.local.port()),
                &sip::transaction::new_branch(),
            );
            let mut re = d.request(Method::Invite, &via, 70);
            re.headers.set(Name::CSeq, "50 INVITE");
            re.headers
                .push(Name::Contact, format!("<sip:carrier@{}>", ua.local));
            re.headers.push(Name::ContentType, "application/sdp");
            re.body = sdp(peer.port, "0 101", &format!("{PCMU}a=sendonly\r\n"));
            let tx = ua.send(re.clone());
            let r = ua
                .final_response(tx, Duration::from_secs(5))
                .pop()
                .expect("answer");
            assert_eq!(r.code, 200);
            let text = String::from_utf8_lossy(r.body()).to_string();
            assert!(text.contains("a=recvonly"), "hold answered: {text}");
            assert_eq!(
                sdp_addr(r.body()),
                sdp_addr(ok.body()),
                "same media address"
            );
            ua.ack(tx, &re, &r);
        }
        let mut bye = ua.bye(invite, ok);
        bye.headers.set(Name::CSeq, "100 BYE");
        let btx = ua.send(bye);
        assert_eq!(
            ua.final_response(btx, Duration::from_secs(5))
                .pop()
                .map(|r| r.code),
            Some(200)
        );
    }
}

/// Delayed offer: a carrier's INVITE without SDP. The callee gets the
/// switch's own offer; the caller gets the switch's offer in the 200 and
/// answers in its ACK; then audio crosses both ways through the anchor. A
/// second call whose ACK carries no answer is hung up on both legs.
#[test]
fn delayed_offer_is_anchored_and_answered_in_the_ack() {
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut callee = Ua::new("127.0.0.1", sw_addr);
    let cfg = media_config(port, dir.path(), "", &to_far(callee.local));
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    let mut caller = Ua::new("127.0.0.2", sw_addr);
    for answer_in_ack in [true, false] {
        let (a_rtp, b_rtp) = (RtpPeer::bind(), RtpPeer::bind());
        let mut invite = caller.invite("carrier", "5550100");
        invite.body = bytes::Bytes::new();
        invite.headers.remove(&Name::ContentType);
        let tx = caller.send(invite.clone());
        let (stx, inv_b) = callee.request(Duration::from_secs(10)).expect("INVITE");
        let b_media = sdp_addr(inv_b.body());
        assert_eq!(b_media.ip().to_string(), "127.0.0.1", "the switch offers");
        let mut ok_b = callee.answer(&inv_b, 200, "callee");
        ok_b.body = sdp(b_rtp.port, "0 101", PCMU);
        callee.respond(stx.unwrap(), ok_b.clone());
        let ok = caller
            .final_response(tx, Duration::from_secs(10))
            .pop()
            .expect("200");
        assert_eq!(ok.code, 200, "{}", sw.log_tail());
        let offer = String::from_utf8_lossy(ok.body()).to_string();
        assert!(
            offer.contains("m=audio ") && offer.contains("RTP/AVP 0 "),
            "an offer in the 200, the callee's PCMU first: {offer}"
        );
        let a_media = sdp_addr(ok.body());
        let _ack_b = callee.request(Duration::from_secs(5)).expect("ACK");
        if !answer_in_ack {
            caller.ack(tx, &invite, &ok);
            let (btx, bye_b) = callee
                .request(Duration::from_secs(5))
                .expect("BYE to the callee");
            assert_eq!(bye_b.method, Method::Bye);
            callee.respond(btx.unwrap(), sip::response_to(&bye_b, 200, None));
            let (atx, bye_a) = caller
                .request(Duration::from_secs(5))
                .expect("BYE to the caller");
            assert_eq!(bye_a.method, Method::Bye);
            caller.respond(atx.unwrap(), sip::response_to(&bye_a, 200, None));
            println!("an ACK without an answer: both legs hung up");
            break;
        }
        caller.ack_with(tx, &invite, &ok, sdp(a_rtp.port, "0 101", PCMU));
        let a = a_rtp.send_stream(a_media, 0, 160, ulaw_tone(600.0, 600));
        let b = b_rtp.send_stream(b_media, 0, 160, ulaw_tone(1200.0, 600));
        a.join().unwrap();
        b.join().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (to_a, to_b) = (a_rtp.packets(), b_rtp.packets());
        println!(
            "delayed offer: {} packets reached the caller, {} the callee",
            to_a.len(),
            to_b.len()
        );
        assert!(to_a.len() >= 25 && to_b.len() >= 25, "{}", sw.log_tail());
        assert!(tone_share(&e2e::media::ulaw_pcm(&to_a), 1200.0) > 0.8);
        assert!(tone_share(&e2e::media::ulaw_pcm(&to_b), 600.0) > 0.8);
        let mut bye = caller.bye(&invite, &ok);
        bye.headers.set(Name::CSeq, "100 BYE");
        let btx = caller.send(bye);
        let (tx_b, r) = callee.request(Duration::from_secs(5)).expect("BYE");
        callee.respond(tx_b.unwrap(), sip::response_to(&r, 200, None));
        let r = caller.final_response(btx, Duration::from_secs(5));
        assert_eq!(r.last().map(|r| r.code), Some(200));
    }
}

/// A re-INVITE that changes the codec (RFC 3264 §8.3.2) keeps the audio
/// flowing: the caller, on PCMU, re-offers PCMA only; the callee is
/// re-offered its current PCMU first and keeps it; the caller's answer is
/// PCMA. From then on the callee's PCMU tone reaches the caller as PCMA
/// (transcoded by the switch), with no gap in the session.
#[test]
fn a_reinvite_changing_the_codec_keeps_the_audio_flowing() {
    let mut c = call("");
    c.m.b_rtp
        .send_stream(c.m.b_media, 0, 160, ulaw_tone(700.0, 400))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        c.m.a_rtp.packets().iter().all(|p| p.pt == 0),
        "PCMU at first"
    );
    let mut d = sip::dialog::Dialog::uac(&c.m.invite, &c.m.ok).unwrap();
    let r = c.caller.in_dialog(&mut d, Method::Invite);
    let pcma = "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let (r, tx, stx, got) = c.reoffer(r, sdp(c.m.a_rtp.port, "8 101", pcma));
    let offered = String::from_utf8_lossy(got.body()).to_string();
    let m_line = offered
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap_or("");
    assert!(
        m_line.contains(" RTP/AVP 0 "),
        "the callee's codec first: {m_line}"
    );
    let mut ok = sip::response_to(&got, 200, None);
    ok.headers
        .push(Name::Contact, format!("<sip:callee@{}>", c.callee.local));
    ok.headers.push(Name::ContentType, "application/sdp");
    ok.body = sdp(c.m.b_rtp.port, "0 101", PCMU);
    c.callee.respond(stx, ok);
    let resp = c
        .caller
        .final_response(tx, Duration::from_secs(5))
        .pop()
        .expect("answer");
    assert_eq!(resp.code, 200, "{}", c.sw.log_tail());
    let answer = String::from_utf8_lossy(resp.body()).to_string();
    assert!(
        answer.contains("m=audio") && answer.contains(" RTP/AVP 8"),
        "{answer}"
    );
    assert_eq!(sdp_addr(resp.body()), c.m.a_media, "the same address");
    c.caller.ack(tx, &r, &resp);
    let _ = c.callee.request(Duration::from_millis(300));
    let t1 = Instant::now();
    c.m.b_rtp
        .send_stream(c.m.b_media, 0, 160, ulaw_tone(700.0, 800))
        .join()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let after: Vec<_> =
        c.m.a_rtp
            .packets()
            .into_iter()
            .filter(|p| p.at > t1)
            .collect();
    assert!(after.len() >= 35, "{} packets", after.len());
    assert!(after.iter().all(|p| p.pt == 8), "PCMA after the change");
    let pcm: Vec<i16> = after
        .iter()
        .flat_map(|p| p.payload.iter().map(|&b| rtp::alaw_to_linear(b)))
        .collect();
    let share = tone_share(&pcm, 700.0);
    println!(
        "after the codec change the caller gets {} PCMA packets, 700 Hz share {share:.2}",
        after.len()
    );
    assert!(share > 0.8, "{share}");
    c.hang_up();
}
