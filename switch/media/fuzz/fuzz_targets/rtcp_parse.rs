//! Arbitrary bytes into `media::rtcp::parse` and `RtcpState`.
//!
//! Properties:
//! 1. `parse` never panics (it validates the compound per RFC 3550 A.2 and
//!    hands SR, RR and SDES packets to the `rtcp` crate);
//! 2. what parses is consistent: `report` is the first of `reports`, an SR
//!    implies a sender SSRC;
//! 3. `RtcpState::on_received` takes it without panicking, and the report
//!    the state builds afterwards (SR, RR block, CNAME, then BYE) parses and
//!    carries the LSR of the SR it was given.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use media::rtcp::{parse, RtcpState};
use media::rtp::RxStats;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = parse(data) else {
        return;
    };
    assert_eq!(r.report.as_ref(), r.reports.first());
    if r.sr.is_some() {
        assert!(r.sender_ssrc.is_some());
    }
    let t0 = Instant::now();
    let our_ssrc = r.report.map_or(1, |b| b.ssrc);
    let mut state = RtcpState::new(our_ssrc, "fuzz@example.com".into());
    let mut out = Vec::new();
    state.build_report(t0, SystemTime::now(), 10, 1600, 0, None, &mut out);
    state.on_received(&r, t0 + Duration::from_millis(20));
    let _ = (
        state.rtt_ms(),
        state.remote_fraction_lost(),
        state.remote_jitter(),
    );

    let mut rx = RxStats::new(8000);
    rx.on_packet(1, 0, t0);
    rx.on_packet(2, 160, t0 + Duration::from_millis(20));
    let their = r.sender_ssrc.unwrap_or(2);
    let mut out = Vec::new();
    state.build_report(
        t0 + Duration::from_secs(1),
        SystemTime::now(),
        20,
        3200,
        160,
        Some((&mut rx, their)),
        &mut out,
    );
    state.build_bye(&mut out);
    let back = parse(&out).expect("our report does not parse");
    assert!(back.bye);
    let block = back.report.expect("our report has no block");
    assert_eq!(block.ssrc, their);
    if let Some(sr) = r.sr {
        assert_eq!(block.lsr, (sr.ntp >> 16) as u32);
    }
});
