//! The session core driven with synthetic packets and a virtual clock.

use super::*;
use crate::codec::g711;
use crate::sdp::Direction;
use crate::tone::{dtmf_tone, level_dbfs, sine};
use std::io::Cursor;
use std::sync::{Arc, Mutex};

const A: LegId = 1;
const B: LegId = 2;
const C: LegId = 3;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn neg(codec: Codec, pt: u8, dtmf_pt: Option<u8>, port: u16) -> Negotiated {
    Negotiated {
        codec,
        pt,
        dtmf_pt,
        remote: addr(port),
        remote_rtcp: addr(port + 1),
        rtcp_mux: false,
        direction: Direction::SendRecv,
        ptime: 20,
    }
}

fn bridged(a: Negotiated, b: Negotiated, t0: Instant) -> Session {
    let mut s = Session::new(SessionConfig::default(), 7);
    s.add_leg(A, LegOptions::default(), t0);
    s.add_leg(B, LegOptions::default(), t0);
    s.configure(A, a, t0).unwrap();
    s.configure(B, b, t0).unwrap();
    s.set_mode(Mode::Bridge(A, B));
    s
}

fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    rtp::write(&mut v, false, pt, seq, ts, ssrc, payload);
    v
}

fn ulaw(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&x| g711::ulaw_encode(x)).collect()
}

fn sent(out: &Transmits) -> Vec<(LegId, SocketAddr, rtp::RtpHeader, Vec<u8>)> {
    out.iter()
        .filter(|(t, _)| !t.rtcp)
        .map(|(t, d)| {
            let h = rtp::parse(d).expect("valid RTP out");
            (t.leg, t.dest, h, h.payload(d).to_vec())
        })
        .collect()
}

#[test]
fn same_codec_is_relayed_with_our_header() {
    let t0 = Instant::now();
    let mut s = bridged(
        neg(Codec::Pcmu, 0, Some(101), 4000),
        neg(Codec::Pcmu, 0, Some(96), 5000),
        t0,
    );
    let mut out = Transmits::default();
    let mut ssrc_out = None;
    for i in 0..10u16 {
        let p = packet(0, 100 + i, 1000 + 160 * i as u32, 0xAAAA, &[i as u8; 160]);
        s.on_rtp(
            A,
            addr(4000),
            &p,
            t0 + Duration::from_millis(20 * i as u64),
            &mut out,
        );
        let got = sent(&out);
        assert_eq!(got.len(), 1);
        let (leg, dest, h, payload) = &got[0];
        assert_eq!((*leg, *dest), (B, addr(5000)));
        assert_eq!(payload, &vec![i as u8; 160], "payload untouched");
        assert_ne!(h.ssrc, 0xAAAA, "our SSRC, not the caller's");
        assert_eq!(*ssrc_out.get_or_insert(h.ssrc), h.ssrc);
        out.clear();
    }
    // A telephone-event is relayed with B's payload type and reported.
    let ev = packet(101, 110, 2600, 0xAAAA, &[5, 0x8a, 0x01, 0x40]);
    s.on_rtp(
        A,
        addr(4000),
        &ev,
        t0 + Duration::from_millis(220),
        &mut out,
    );
    assert_eq!(sent(&out)[0].2.payload_type, 96);
    match s.poll_event() {
        Some(Event::Digit { leg: A, digit }) => assert_eq!(digit.digit, '5'),
        e => panic!("expected a digit, got {e:?}"),
    }
}

#[test]
fn latches_onto_the_source_and_drops_strangers() {
    let t0 = Instant::now();
    let mut s = bridged(
        neg(Codec::Pcmu, 0, None, 4000),
        neg(Codec::Pcmu, 0, None, 5000),
        t0,
    );
    let mut out = Transmits::default();
    // B is behind NAT: its packets come from 6000, not the SDP's 5000.
    s.on_rtp(B, addr(6000), &packet(0, 1, 0, 9, &[0; 160]), t0, &mut out);
    assert_eq!(
        s.poll_event(),
        Some(Event::Latched {
            leg: B,
            addr: addr(6000)
        })
    );
    out.clear();
    s.on_rtp(A, addr(4000), &packet(0, 1, 0, 8, &[0; 160]), t0, &mut out);
    assert_eq!(
        sent(&out)[0].1,
        addr(6000),
        "A's audio goes where B really is"
    );
    out.clear();
    s.on_rtp(
        B,
        addr(7000),
        &packet(0, 2, 160, 9, &[0; 160]),
        t0,
        &mut out,
    );
    assert!(out.is_empty(), "a third party cannot inject audio");
    assert_eq!(s.stats(B).unwrap().dropped, 1);
}

#[test]
fn malformed_packets_are_counted_never_relayed() {
    let t0 = Instant::now();
    let mut s = bridged(
        neg(Codec::Pcmu, 0, None, 4000),
        neg(Codec::Pcmu, 0, None, 5000),
        t0,
    );
    let mut out = Transmits::default();
    let good = packet(0, 1, 0, 9, &[1; 160]);
    let mut bad_version = good.clone();
    bad_version[0] = 0x40;
    let mut bad_padding = good.clone();
    bad_padding[0] |= 0x20;
    *bad_padding.last_mut().unwrap() = 200;
    let mut bad_ext = good.clone();
    bad_ext[0] |= 0x10;
    bad_ext[14] = 0xff;
    bad_ext[15] = 0xff;
    let mut bad_csrc = good[..20].to_vec();
    bad_csrc[0] |= 0x0f;
    for p in [
        &good[..5],
        &bad_version,
        &bad_padding,
        &bad_ext,
        &bad_csrc,
        &[][..],
    ] {
        s.on_rtp(A, addr(4000), p, t0, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(s.stats(A).unwrap().malformed, 6);
    // Garbage on the RTCP socket too.
    s.on_rtcp(A, addr(4001), &[0x80, 200, 0, 50], t0);
    assert_eq!(s.stats(A).unwrap().malformed, 7);
}

/// Goertzel power of `hz` in `pcm` relative to the signal's total power.
fn tone_share(pcm: &[i16], rate: u32, hz: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * hz / rate as f32;
    let (mut s1, mut s2) = (0f32, 0f32);
    for &x in pcm {
        let s0 = x as f32 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f32 = pcm.iter().map(|&x| (x as f32) * (x as f32)).sum();
    2.0 * p / (pcm.len() as f32 * total.max(1.0))
}

#[test]
fn pcmu_to_opus_is_transcoded_at_the_right_clock() {
    let t0 = Instant::now();
    let mut s = bridged(
        neg(Codec::Pcmu, 0, None, 4000),
        neg(Codec::Opus, 111, None, 5000),
        t0,
    );
    let tone = sine(1000.0, Rate::Nb8k, 1000, -12.0);
    let mut out = Transmits::default();
    let mut packets = Vec::new();
    for (i, frame) in tone.chunks(160).enumerate() {
        let p = packet(0, i as u16, 160 * i as u32, 9, &ulaw(frame));
        s.on_rtp(
            A,
            addr(4000),
            &p,
            t0 + Duration::from_millis(20 * i as u64),
            &mut out,
        );
        packets.extend(sent(&out));
        out.clear();
    }
    assert_eq!(packets.len(), 50, "one Opus packet per 20 ms");
    for w in packets.windows(2) {
        assert_eq!(w[0].2.payload_type, 111);
        assert_eq!(
            w[1].2.timestamp.wrapping_sub(w[0].2.timestamp),
            960,
            "48 kHz clock"
        );
    }
    let mut dec = codec::decoder(Codec::Opus).unwrap();
    let mut pcm = Vec::new();
    for p in &packets {
        dec.decode(&p.3, &mut pcm).unwrap();
    }
    let tail = &pcm[pcm.len() / 2..];
    let level = level_dbfs(tail);
    assert!((level + 12.0).abs() < 2.0, "level {level:.1} dBFS");
    assert!(
        tone_share(tail, 16_000, 1000.0) > 0.9,
        "it is the 1 kHz tone"
    );
}

#[test]
fn opus_to_pcmu_the_other_way() {
    let t0 = Instant::now();
    let mut s = bridged(
        neg(Codec::Pcmu, 0, None, 4000),
        neg(Codec::Opus, 111, None, 5000),
        t0,
    );
    let mut enc = codec::encoder(Codec::Opus).unwrap();
    let tone = sine(440.0, Rate::Wb16k, 1000, -12.0);
    let mut out = Transmits::default();
    let mut pcm = Vec::new();
    for (i, frame) in tone.chunks(320).enumerate() {
        let mut payload = Vec::new();
        enc.encode(frame, &mut payload).unwrap();
        let p = packet(111, i as u16, 960 * i as u32, 9, &payload);
        s.on_rtp(
            B,
            addr(5000),
            &p,
            t0 + Duration::from_millis(20 * i as u64),
            &mut out,
        );
        for (leg, _, h, payload) in sent(&out) {
            assert_eq!((leg, h.payload_type, payload.len()), (A, 0, 160));
            pcm.extend(payload.iter().map(|&b| g711::ulaw_decode(b)));
        }
        out.clear();
    }
    let tail = &pcm[pcm.len() / 2..];
    assert!((level_dbfs(tail) + 12.0).abs() < 2.0);
    assert!(tone_share(tail, 8000, 440.0) > 0.9);
}

#[test]
fn media_timeout_only_for_legs_that_should_send() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        media_timeout: Some(Duration::from_secs(5)),
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg, 1);
    s.add_leg(A, LegOptions::default(), t0);
    s.add_leg(B, LegOptions::default(), t0);
    s.configure(A, neg(Codec::Pcmu, 0, None, 4000), t0).unwrap();
    // B is on hold (we offered sendonly): it is not expected to send.
    let mut b = neg(Codec::Pcmu, 0, None, 5000);
    b.direction = Direction::SendOnly;
    s.configure(B, b, t0).unwrap();
    s.set_mode(Mode::Bridge(A, B));
    let mut out = Transmits::default();
    assert!(s.poll_timeout().unwrap() <= t0 + Duration::from_secs(5));
    s.on_tick(t0 + Duration::from_secs(4), SystemTime::now(), &mut out);
    assert_eq!(s.poll_event(), None);
    s.on_tick(t0 + Duration::from_secs(5), SystemTime::now(), &mut out);
    assert_eq!(s.poll_event(), Some(Event::MediaTimeout { leg: A }));
    assert_eq!(
        s.poll_event(),
        None,
        "B is not expected to send: no timeout"
    );
    s.on_tick(t0 + Duration::from_secs(9), SystemTime::now(), &mut out);
    assert_eq!(s.poll_event(), None, "reported once");
}

#[test]
fn hold_stops_audio_towards_the_held_leg() {
    let t0 = Instant::now();
    let mut b = neg(Codec::Pcmu, 0, None, 5000);
    b.direction = Direction::RecvOnly;
    let mut s = bridged(neg(Codec::Pcmu, 0, None, 4000), b.clone(), t0);
    let mut out = Transmits::default();
    s.on_rtp(B, addr(5000), &packet(0, 1, 0, 9, &[0; 160]), t0, &mut out);
    assert_eq!(sent(&out).len(), 1, "B still talks to A");
    out.clear();
    b.direction = Direction::Inactive;
    s.configure(B, b, t0).unwrap();
    s.on_rtp(A, addr(4000), &packet(0, 1, 0, 8, &[0; 160]), t0, &mut out);
    assert!(out.is_empty(), "nothing to an inactive leg");
}

#[test]
fn digits_go_out_as_rfc4733_events() {
    let t0 = Instant::now();
    let mut s = bridged(
        neg(Codec::Pcmu, 0, Some(101), 4000),
        neg(Codec::Pcmu, 0, Some(101), 5000),
        t0,
    );
    s.send_digits(A, "7#", 60);
    assert!(s.needs_tick());
    let mut out = Transmits::default();
    let mut got = Vec::new();
    for i in 0..40u64 {
        s.on_tick(
            t0 + Duration::from_millis(20 * i),
            SystemTime::now(),
            &mut out,
        );
        got.extend(sent(&out));
        out.clear();
    }
    assert!(!s.needs_tick());
    let mut rx = crate::dtmf::EventReceiver::new(8000);
    let digits: String = got
        .iter()
        .filter_map(|(_, _, h, p)| rx.on_packet(h.timestamp, h.marker, p))
        .map(|d| d.digit)
        .collect();
    assert_eq!(digits, "7#");
    assert!(got
        .iter()
        .all(|(leg, _, h, _)| *leg == A && h.payload_type == 101));
}

#[test]
fn inband_tones_are_detected_on_a_trunk_leg() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), 3);
    s.add_leg(A, LegOptions { inband_dtmf: true }, t0);
    s.configure(A, neg(Codec::Pcma, 8, None, 4000), t0).unwrap();
    let mut pcm = vec![0i16; 800];
    for d in "19*D".chars() {
        pcm.extend(dtmf_tone(d, Rate::Nb8k, 40, -15.0).unwrap());
        pcm.extend(vec![0; 320]);
    }
    pcm.extend(vec![0; 800]);
    let mut out = Transmits::default();
    for (i, f) in pcm.chunks(160).enumerate() {
        let payload: Vec<u8> = f.iter().map(|&x| g711::alaw_encode(x)).collect();
        let p = packet(8, i as u16, 160 * i as u32, 5, &payload);
        s.on_rtp(
            A,
            addr(4000),
            &p,
            t0 + Duration::from_millis(20 * i as u64),
            &mut out,
        );
    }
    let mut digits = String::new();
    while let Some(e) = s.poll_event() {
        if let Event::Digit { digit, .. } = e {
            assert_eq!(digit.source, crate::dtmf::DigitSource::InBand);
            digits.push(digit.digit);
        }
    }
    assert_eq!(digits, "19*D");
}

/// A `Write + Seek` whose bytes the test can read after the session drops it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Cursor<Vec<u8>>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Shared {
    fn seek(&mut self, p: std::io::SeekFrom) -> std::io::Result<u64> {
        self.0.lock().unwrap().seek(p)
    }
}

/// Two bridged legs of `codec` (payload type `pt`), recorded in stereo.
fn recorded_bridge(codec: Codec, pt: u8) -> (Session, Shared, Instant) {
    let t0 = Instant::now();
    let mut s = bridged(neg(codec, pt, None, 4000), neg(codec, pt, None, 5000), t0);
    let file = Shared::default();
    s.start_recording(Box::new(file.clone()), Layout::Stereo, Some((A, B)))
        .unwrap();
    (s, file, t0)
}

/// The left and right channels of the stereo WAV written into `file`.
fn stereo_channels(file: &Shared) -> (Vec<i16>, Vec<i16>) {
    let bytes = file.0.lock().unwrap().get_ref().clone();
    let mut r = hound::WavReader::new(Cursor::new(bytes)).unwrap();
    assert_eq!(r.spec().channels, 2);
    let samples: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

#[test]
fn stereo_recording_keeps_the_timeline_and_both_sides() {
    let (mut s, file, t0) = recorded_bridge(Codec::Pcmu, 0);
    let ta = sine(500.0, Rate::Nb8k, 2000, -10.0);
    let tb = sine(1500.0, Rate::Nb8k, 1000, -10.0);
    let mut out = Transmits::default();
    // 2 s of ticks; A talks throughout, B only in the second half.
    for i in 0..100usize {
        let now = t0 + Duration::from_millis(20 * i as u64);
        let pa = packet(
            0,
            i as u16,
            160 * i as u32,
            1,
            &ulaw(&ta[160 * i..160 * (i + 1)]),
        );
        s.on_rtp(A, addr(4000), &pa, now, &mut out);
        if i >= 50 {
            let k = i - 50;
            let pb = packet(
                0,
                k as u16,
                160 * k as u32,
                2,
                &ulaw(&tb[160 * k..160 * (k + 1)]),
            );
            s.on_rtp(B, addr(5000), &pb, now, &mut out);
        }
        s.on_tick(now, SystemTime::now(), &mut out);
        out.clear();
    }
    let info = s.stop_recording().unwrap().unwrap();
    assert_eq!(info.duration_ms, 2000, "one 20 ms frame per tick");
    let (left, right) = stereo_channels(&file);
    assert!(
        tone_share(&left[8000..], 8000, 500.0) > 0.8,
        "caller on the left"
    );
    assert!(
        level_dbfs(&right[..7000]) < -60.0,
        "callee silent in the first second"
    );
    assert!(
        tone_share(&right[10000..], 8000, 1500.0) > 0.8,
        "callee on the right"
    );
}

#[test]
fn conference_each_hears_the_other_two() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), 9);
    let freqs = [(A, 400.0f32, 4000u16), (B, 1000.0, 5000), (C, 2200.0, 6000)];
    for (id, _, port) in freqs {
        s.add_leg(id, LegOptions::default(), t0);
        s.configure(id, neg(Codec::Pcmu, 0, None, port), t0)
            .unwrap();
    }
    s.set_mode(Mode::Conference);
    assert!(s.needs_tick());
    let tones: Vec<Vec<i16>> = freqs
        .iter()
        .map(|f| sine(f.1, Rate::Nb8k, 2000, -15.0))
        .collect();
    let mut heard: HashMap<LegId, Vec<i16>> = HashMap::new();
    let mut out = Transmits::default();
    for i in 0..100usize {
        let now = t0 + Duration::from_millis(20 * i as u64);
        for (k, (id, _, port)) in freqs.iter().enumerate() {
            let p = packet(
                0,
                i as u16,
                160 * i as u32,
                *id as u32,
                &ulaw(&tones[k][160 * i..160 * (i + 1)]),
            );
            s.on_rtp(*id, addr(*port), &p, now, &mut out);
        }
        s.on_tick(now, SystemTime::now(), &mut out);
        for (leg, _, _, payload) in sent(&out) {
            heard
                .entry(leg)
                .or_default()
                .extend(payload.iter().map(|&b| g711::ulaw_decode(b)));
        }
        out.clear();
    }
    for (id, own, _) in freqs {
        let pcm = &heard[&id][4000..];
        for (other, f, _) in freqs {
            let share = tone_share(pcm, 8000, f);
            if other == id {
                assert!(share < 0.01, "leg {id} hears itself ({share:.3})");
            } else {
                assert!(share > 0.3, "leg {id} hears leg {other} ({share:.3})");
            }
        }
        let _ = own;
    }
}

use std::collections::HashMap;

#[test]
fn speech_detection_reports_start_and_end() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), 4);
    s.add_leg(A, LegOptions::default(), t0);
    s.configure(A, neg(Codec::Pcmu, 0, None, 4000), t0).unwrap();
    s.detect_speech(A, true);
    // 1 s of a voice-like signal (150 Hz buzz with harmonics), then 1.5 s silence.
    let mut pcm: Vec<i16> = (0..8000)
        .map(|n| {
            let t = n as f32 / 8000.0;
            let v: f32 = (1..12)
                .map(|k| (2.0 * std::f32::consts::PI * 150.0 * k as f32 * t).sin() / k as f32)
                .sum();
            (v * 4000.0 * (1.0 + (2.0 * std::f32::consts::PI * 4.0 * t).sin()) / 2.0) as i16
        })
        .collect();
    pcm.extend(vec![0; 12000]);
    let mut out = Transmits::default();
    let mut events = Vec::new();
    for (i, f) in pcm.chunks(160).enumerate() {
        let p = packet(0, i as u16, 160 * i as u32, 5, &ulaw(f));
        s.on_rtp(
            A,
            addr(4000),
            &p,
            t0 + Duration::from_millis(20 * i as u64),
            &mut out,
        );
        while let Some(e) = s.poll_event() {
            if let Event::Speech { event, .. } = e {
                events.push(event);
            }
        }
    }
    assert_eq!(events.first(), Some(&VadEvent::SpeechStart), "{events:?}");
    assert!(
        matches!(events.last(), Some(VadEvent::SpeechEnd { .. })),
        "{events:?}"
    );
}

#[test]
fn recording_a_30ms_ptime_leg_keeps_its_audio_whole() {
    let (mut s, file, t0) = recorded_bridge(Codec::Pcma, 8);
    let tone = sine(700.0, Rate::Nb8k, 2100, -10.0);
    let mut out = Transmits::default();
    // Packets of 30 ms (sipp's g711a.pcap style) against a 20 ms tick.
    let mut next_packet = 0usize;
    for tick in 0..100u64 {
        let now = t0 + Duration::from_millis(20 * tick);
        while (next_packet as u64) * 30 <= tick * 20 && next_packet < 70 {
            let k = next_packet;
            let payload: Vec<u8> = tone[240 * k..240 * (k + 1)]
                .iter()
                .map(|&x| g711::alaw_encode(x))
                .collect();
            let p = packet(8, k as u16, 240 * k as u32, 1, &payload);
            s.on_rtp(A, addr(4000), &p, now, &mut out);
            next_packet += 1;
        }
        s.on_tick(now, SystemTime::now(), &mut out);
        out.clear();
    }
    let info = s.stop_recording().unwrap().unwrap();
    assert_eq!(info.duration_ms, 2000);
    let (left, _) = stereo_channels(&file);
    let mid = &left[4000..14000];
    assert!(
        tone_share(mid, 8000, 700.0) > 0.95,
        "clean tone: {}",
        tone_share(mid, 8000, 700.0)
    );
    assert!(
        (level_dbfs(mid) + 10.0).abs() < 1.0,
        "level {}",
        level_dbfs(mid)
    );
}

#[test]
fn three_way_stereo_recording_puts_the_caller_left_and_the_others_right() {
    let (mut s, file, t0) = recorded_bridge(Codec::Pcmu, 0);
    s.add_leg(C, LegOptions::default(), t0);
    s.configure(C, neg(Codec::Pcmu, 0, None, 6000), t0).unwrap();
    s.set_mode(Mode::Conference);
    let parties = [(A, 500.0f32, 4000u16), (B, 1500.0, 5000), (C, 2500.0, 6000)];
    let tones: Vec<Vec<i16>> = parties
        .iter()
        .map(|p| sine(p.1, Rate::Nb8k, 1000, -15.0))
        .collect();
    let mut out = Transmits::default();
    for i in 0..50usize {
        let now = t0 + Duration::from_millis(20 * i as u64);
        for (k, (id, _, port)) in parties.iter().enumerate() {
            let frame = ulaw(&tones[k][160 * i..160 * (i + 1)]);
            let p = packet(0, i as u16, 160 * i as u32, *id as u32, &frame);
            s.on_rtp(*id, addr(*port), &p, now, &mut out);
        }
        s.on_tick(now, SystemTime::now(), &mut out);
        out.clear();
    }
    s.stop_recording().unwrap().unwrap();
    let (left, right) = stereo_channels(&file);
    let share = |pcm: &[i16], hz| tone_share(&pcm[2000..], 8000, hz);
    assert!(share(&left, 500.0) > 0.8, "the caller alone on the left");
    assert!(share(&right, 1500.0) > 0.3 && share(&right, 2500.0) > 0.3);
    assert!(share(&right, 500.0) < 0.01, "the caller not on the right");
}

/// An IVR call: A alone is answered and recorded (no sides yet), a prompt
/// plays, A sends digits; later B is added and bridged, and the recording's
/// sides are set: both parties' audio lands on its side.
#[test]
fn a_recording_started_before_the_callee_exists_gets_both_sides() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), 7);
    s.add_leg(A, LegOptions::default(), t0);
    s.configure(A, neg(Codec::Pcmu, 0, Some(101), 4000), t0)
        .unwrap();
    let file = Shared::default();
    s.start_recording(Box::new(file.clone()), Layout::Stereo, None)
        .unwrap();
    s.play(A, Prompt::new(Rate::Wb16k, vec![1000i16; 16000]), 9);
    let mut out = Transmits::default();
    let mut done = None;
    // 1 s: the prompt (given at 16 kHz, played at A's 8 kHz) and two digits.
    for i in 0..60usize {
        let now = t0 + Duration::from_millis(20 * i as u64);
        if (10..15).contains(&i) {
            let end = i == 14;
            let p = packet(
                101,
                i as u16,
                800,
                1,
                &[2, if end { 0x8a } else { 0x0a }, 0, 160 * (i as u8 - 9)],
            );
            s.on_rtp(A, addr(4000), &p, now, &mut out);
        }
        s.on_tick(now, SystemTime::now(), &mut out);
        out.clear();
        while let Some(e) = s.poll_event() {
            if let Event::PlaybackDone { tag, .. } = e {
                done = Some((i, tag));
            }
        }
    }
    let (at, tag) = done.expect("the prompt ended");
    assert_eq!(tag, 9);
    assert!((49..=51).contains(&at), "1 s of prompt ended at tick {at}");
    s.add_leg(B, LegOptions::default(), t0);
    s.configure(B, neg(Codec::Pcmu, 0, None, 5000), t0).unwrap();
    s.set_mode(Mode::Bridge(A, B));
    s.set_recording_sides(Some((A, B)));
    let ta = sine(500.0, Rate::Nb8k, 1000, -10.0);
    let tb = sine(1500.0, Rate::Nb8k, 1000, -10.0);
    for k in 0..50usize {
        let now = t0 + Duration::from_millis(1200 + 20 * k as u64);
        let i = 60 + k;
        let pa = packet(
            0,
            i as u16,
            160 * i as u32,
            1,
            &ulaw(&ta[160 * k..160 * (k + 1)]),
        );
        s.on_rtp(A, addr(4000), &pa, now, &mut out);
        let pb = packet(
            0,
            k as u16,
            160 * k as u32,
            2,
            &ulaw(&tb[160 * k..160 * (k + 1)]),
        );
        s.on_rtp(B, addr(5000), &pb, now, &mut out);
        s.on_tick(now, SystemTime::now(), &mut out);
        out.clear();
    }
    s.stop_recording().unwrap().unwrap();
    let (left, right) = stereo_channels(&file);
    let second = left.len() - 8000 + 1600..left.len();
    assert!(
        tone_share(&left[second.clone()], 8000, 500.0) > 0.8,
        "caller on the left"
    );
    assert!(
        tone_share(&right[second], 8000, 1500.0) > 0.8,
        "callee on the right"
    );
}
