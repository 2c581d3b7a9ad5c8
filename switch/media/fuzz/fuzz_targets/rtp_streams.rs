//! A stream of relayed and generated packets through `StreamMap`, the
//! relayed ones also through `RxStats`, reported with `RtcpState`.
//!
//! Input: 8-byte records. Byte 0: bit 0 generated (else relayed), bits 1-2
//! the source SSRC (of 4), bit 3 a 48 kHz clock (else 8 kHz). Bytes 1-2:
//! sequence number step (i16), bytes 3-4: timestamp step (i16, ×8), byte 5:
//! milliseconds since the previous record, byte 6: `ts_advance` / 8 of a
//! generated packet (0: RFC 4733 continuation), byte 7: payload length.
//!
//! Properties:
//! 1. no panic or overflow (fuzz builds keep overflow checks);
//! 2. a generated packet, and a relayed one that re-anchors (marker asked
//!    for), gets the sequence number after the highest sent so far;
//! 3. `packets()` counts every call, `octets()` every `add_octets`;
//! 4. receive statistics stay sane (jitter finite, non-negative; lost no
//!    more than expected), and a report built from them parses.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use media::rtcp::{parse, RtcpState};
use media::rtp::{RxStats, StreamMap};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut map = StreamMap::new(0x5157, 65000, u32::MAX - 1000);
    let mut rx = RxStats::new(8000);
    let mut highest: Option<u16> = None;
    let mut in_seq = [0u16; 4];
    let mut in_ts = [0u32; 4];
    let mut calls = 0u64;
    let mut octets = 0u64;
    for r in data.chunks_exact(8) {
        let own = r[0] & 1 != 0;
        let src = usize::from((r[0] >> 1) & 3);
        let clock = if r[0] & 8 != 0 { 48_000 } else { 8_000 };
        let dseq = i16::from_be_bytes([r[1], r[2]]);
        let dts = i32::from(i16::from_be_bytes([r[3], r[4]])) * 8;
        now += Duration::from_millis(u64::from(r[5]));
        calls += 1;
        let (seq, new_anchor) = if own {
            let (seq, _) = map.next_own(u32::from(r[6]) * 8, now, clock);
            (seq, true)
        } else {
            in_seq[src] = in_seq[src].wrapping_add(dseq as u16);
            in_ts[src] = in_ts[src].wrapping_add(dts as u32);
            let (seq, _, marker) = map.map(src as u32, in_seq[src], in_ts[src], now, clock);
            if src == 0 {
                rx.on_packet(in_seq[src], in_ts[src], now);
            }
            (seq, marker == Some(true))
        };
        if new_anchor {
            if let Some(h) = highest {
                assert_eq!(
                    seq,
                    h.wrapping_add(1),
                    "new anchor does not continue the sequence"
                );
            }
        }
        if highest.is_none_or(|h| (seq.wrapping_sub(h) as i16) > 0) {
            highest = Some(seq);
        }
        map.add_octets(usize::from(r[7]));
        octets += u64::from(r[7]);
    }
    assert_eq!(map.packets(), calls);
    assert_eq!(map.octets(), octets);

    let jitter = rx.jitter_ms();
    assert!(jitter.is_finite() && jitter >= 0.0, "jitter {jitter}");
    let _ = (rx.received(), rx.extended_highest_seq(), rx.jitter_units());
    let mut state = RtcpState::new(map.ssrc(), "fuzz".into());
    let mut out = Vec::new();
    let sent = map.packets() as u32;
    state.build_report(
        now,
        SystemTime::UNIX_EPOCH,
        sent,
        octets as u32,
        0,
        Some((&mut rx, 0)),
        &mut out,
    );
    let report = parse(&out).expect("our report does not parse");
    state.on_received(&report, now);
    let _ = rx.take_fraction_lost();
});
