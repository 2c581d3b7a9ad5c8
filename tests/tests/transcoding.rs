//! A PCMU phone calls an Opus phone (two baresip instances): the switch
//! transcodes, and each phone hears the other's tone. baresip's `sndfile`
//! records what each phone decoded; sox measures its length, level and
//! frequency.
//!
//! Bounds: the heard tone's frequency within 5 % of the sent one (440 Hz
//! from the PCMU phone, 1000 Hz from the Opus phone); its RMS level within
//! 3 dB of the sent level (-9 dBFS: a half-scale sine); the heard length
//! within 1.5 s of the time between answer and hang-up (baresip starts and
//! stops its recorder with the audio stream, not exactly at the SIP events).

use e2e::baresip::Baresip;
use e2e::switch::{base_config, SwitchProc};
use std::time::{Duration, Instant};

#[test]
fn pcmu_phone_and_opus_phone_hear_each_other() {
    e2e::require("baresip");
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let rtp = 30000 + (port % 100) * 80;
    let extra = format!(
        "[media]\nport_min = {rtp}\nport_max = {}\n\n[[routes]]\nprefix = \"\"\nfrom = \"users\"\ntarget = \"users\"\n",
        rtp + 79
    );
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), &extra),
    );
    let wav_a = dir.path().join("a440.wav");
    let wav_b = dir.path().join("b1000.wav");
    e2e::tone_wav_hz(&wav_a, 120, 440);
    e2e::tone_wav_at(&wav_b, 120, 1000, 48000, 2);
    let a = Baresip::start_with(
        &dir.path().join("a"),
        "1001",
        "secret",
        port,
        &wav_a,
        "PCMU",
    );
    let b = Baresip::start_with(
        &dir.path().join("b"),
        "1002",
        "secret",
        port,
        &wav_b,
        "opus/48000/2",
    );
    for p in [&a, &b] {
        assert!(
            p.wait_log("200 OK", Duration::from_secs(10)),
            "not registered:\n{}",
            p.log()
        );
    }
    a.command("dial", &format!("sip:1002@127.0.0.1:{port}"))
        .unwrap();
    assert!(
        a.wait_log("Call established", Duration::from_secs(10)),
        "call not established:\n{}\nphone B:\n{}\nswitch:\n{}",
        a.log(),
        b.log(),
        sw.log_tail()
    );
    let answered = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    a.command("hangup", "").unwrap();
    let talk = answered.elapsed().as_secs_f64();
    for p in [&a, &b] {
        assert!(
            p.wait_log("terminated (duration", Duration::from_secs(5)),
            "no hang-up:\n{}",
            p.log()
        );
    }
    let (log_a, log_b) = (a.log(), b.log());
    assert!(
        log_a.contains("Set audio encoder: PCMU"),
        "phone A sends PCMU:\n{log_a}"
    );
    assert!(
        log_b.contains("Set audio encoder: opus"),
        "phone B sends Opus:\n{log_b}"
    );
    assert!(
        log_b.contains("Set audio decoder: opus"),
        "phone B receives Opus:\n{log_b}"
    );
    std::thread::sleep(Duration::from_millis(500));

    let sent_rms = 0.5 / 2f64.sqrt();
    for (who, phone, hz) in [
        ("A (PCMU) hears B", &a, 1000.0),
        ("B (Opus) hears A", &b, 440.0),
    ] {
        let (heard, _) = phone.recordings();
        let heard =
            heard.unwrap_or_else(|| panic!("{who}: no recording in {}", phone.dir.display()));
        let whole = e2e::sox_stat(&heard, None);
        // Skip the first second (codec and jitter-buffer start-up).
        let s = e2e::sox_stat(&heard, Some((1.0, (whole.seconds - 1.5).max(0.5))));
        let db = 20.0 * (s.rms / sent_rms).log10();
        println!(
            "{who}: {:.2} s heard of {talk:.2} s talk, level {db:+.1} dB vs sent, {:.0} Hz (sent {hz} Hz)",
            whole.seconds, s.freq
        );
        assert!(
            (whole.seconds - talk).abs() < 1.5,
            "{who}: heard {:.2} s of {talk:.2} s",
            whole.seconds
        );
        assert!(db.abs() < 3.0, "{who}: level {db:+.1} dB off");
        assert!(
            (s.freq - hz).abs() < hz * 0.05,
            "{who}: {:.0} Hz, expected {hz}",
            s.freq
        );
    }
}
