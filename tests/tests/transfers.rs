//! Transfers phones ask for (REFER), between real baresip phones.

use e2e::baresip::Baresip;
use e2e::media::{tone_share, ulaw_pcm, ulaw_tone};
use e2e::rtp::Sender;
use std::time::{Duration, Instant};

/// Blind transfer (RFC 3515): a carrier caller reaches 1001 (baresip,
/// sending 700 Hz); 1001 transfers the call to 1002 (baresip, 1200 Hz) with
/// REFER. The switch answers 202, calls 1002, and when it answers hangs up
/// 1001: the caller now hears 1200 Hz and 1002 hears the caller's 500 Hz
/// (on 1002's own recording). The CDR ends with 1002 as the destination.
#[test]
fn a_user_transfers_the_caller_blind_by_refer() {
    let _heavy = e2e::heavy_lock();
    let cfg = r#"
[[routes]]
number = "7001"
from = "trunks"
target = { user = "1001" }

[[routes]]
prefix = "100"
from = "users"
target = "users"
"#;
    let (dir, sw) = e2e::media::media_switch(cfg);
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
