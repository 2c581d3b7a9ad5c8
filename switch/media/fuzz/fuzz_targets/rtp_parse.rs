//! Arbitrary bytes into `media::rtp::parse`, and the same bytes into the
//! `rtp` crate's `Packet::unmarshal` as a reference.
//!
//! Properties:
//! 1. `parse` never panics; what parses has its payload inside the packet;
//! 2. `rewrite` of a copy parses again with exactly the new PT, sequence
//!    number, timestamp, SSRC and marker and the same payload, and `write` of
//!    the header fields and payload parses back equal;
//! 3. differential: where the `rtp` crate reads the header extension to the
//!    same payload offset as we do (RFC 3550 §5.3.1 length; it also walks
//!    RFC 8285 elements, which may overrun into the payload or panic), both
//!    accept or both reject, and agree on every field and the payload,
//!    except where RFC 3550 §5.1 is stricter than that crate: version must
//!    be 2 and a padding count must be at least 1 (both rejected by us only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtp::{parse, rewrite, write, RtpError, RtpHeader};
use webrtc_util::Unmarshal;

/// Where the `rtp` crate's header parser leaves the payload: `Ok(None)` if
/// it rejects the header, `Err(())` if it would panic (reading an RFC 8285
/// element past the end of the packet).
fn reference_payload_offset(p: &[u8]) -> Result<Option<usize>, ()> {
    let len = p.len();
    if len < 12 {
        return Ok(None);
    }
    let mut cur = 12 + 4 * usize::from(p[0] & 0x0f);
    if len < cur {
        return Ok(None);
    }
    if p[0] & 0x10 == 0 {
        return Ok(Some(cur));
    }
    if len < cur + 4 {
        return Ok(None);
    }
    let profile = u16::from_be_bytes([p[cur], p[cur + 1]]);
    let ext_len = usize::from(u16::from_be_bytes([p[cur + 2], p[cur + 3]])) * 4;
    cur += 4;
    if len < cur + ext_len {
        return Ok(None);
    }
    let end = cur + ext_len;
    match profile {
        0xBEDE => {
            while cur < end {
                let b = p[cur];
                cur += 1;
                if b == 0 {
                    continue;
                }
                if b >> 4 == 0xf {
                    break;
                }
                let n = usize::from(b & 0x0f) + 1;
                if len - cur < n {
                    return Err(());
                }
                cur += n;
            }
        }
        0x1000 => {
            while cur < end {
                let b = p[cur];
                cur += 1;
                if b == 0 {
                    continue;
                }
                let Some(&n) = p.get(cur) else { return Err(()) };
                cur += 1;
                if len - cur < usize::from(n) {
                    return Err(());
                }
                cur += usize::from(n);
            }
        }
        _ => cur = end,
    }
    Ok(Some(cur))
}

/// Fixed header + CSRCs + extension (RFC 3550 §5.3.1 length), if present.
fn header_len(p: &[u8]) -> Option<usize> {
    let mut n = 12 + 4 * usize::from(p.first()? & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(n..n + 4)?;
        n += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    (n <= p.len()).then_some(n)
}

fn differential(data: &[u8], ours: Result<RtpHeader, RtpError>) {
    let Ok(offset) = reference_payload_offset(data) else {
        return; // the rtp crate would panic here
    };
    if offset.is_some() && offset != header_len(data) {
        return; // RFC 8285 elements overrunning the extension: not comparable
    }
    let mut buf = bytes::Bytes::copy_from_slice(data);
    let theirs = rtp::packet::Packet::unmarshal(&mut buf);
    match (ours, theirs) {
        (Ok(h), Ok(p)) => {
            let r = &p.header;
            assert_eq!(
                (h.marker, h.payload_type, h.seq, h.timestamp, h.ssrc),
                (
                    r.marker,
                    r.payload_type,
                    r.sequence_number,
                    r.timestamp,
                    r.ssrc
                )
            );
            assert_eq!(h.payload(data), &p.payload[..], "payload differs");
        }
        (Err(_), Err(_)) => {}
        (Ok(h), Err(e)) => panic!("we accept, rtp crate rejects ({e}): {h:?}"),
        (Err(e), Ok(_)) => {
            let padding_zero = data[0] & 0x20 != 0 && data.last() == Some(&0);
            match e {
                RtpError::BadVersion => assert_ne!(data[0] >> 6, 2),
                RtpError::BadPadding => assert!(padding_zero, "padding rejected by us only"),
                _ => panic!("we reject ({e}), rtp crate accepts"),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = media::rtp::is_rtcp(data);
    let ours = parse(data);
    if let Ok(h) = ours {
        assert!(h.payload_offset + h.payload_len <= data.len());
        let payload = h.payload(data);
        assert_eq!(payload.len(), h.payload_len);

        // New values derived from the input so they vary.
        let pt = data[data.len() - 1] ^ 0x55;
        let seq = h.seq.wrapping_mul(31).wrapping_add(7);
        let ts = h.timestamp.rotate_left(7) ^ 0xdead_beef;
        let ssrc = !h.ssrc;
        for marker in [None, Some(true), Some(false)] {
            let mut copy = data.to_vec();
            rewrite(&mut copy, pt, seq, ts, ssrc, marker);
            let back = parse(&copy).expect("rewritten packet does not parse");
            let want = RtpHeader {
                marker: marker.unwrap_or(h.marker),
                payload_type: pt & 0x7f,
                seq,
                timestamp: ts,
                ssrc,
                ..h
            };
            assert_eq!(back, want);
            assert_eq!(back.payload(&copy), payload);
        }

        let mut out = Vec::new();
        write(
            &mut out,
            h.marker,
            h.payload_type,
            h.seq,
            h.timestamp,
            h.ssrc,
            payload,
        );
        let w = parse(&out).expect("written packet does not parse");
        assert_eq!(
            (
                w.marker,
                w.payload_type,
                w.seq,
                w.timestamp,
                w.ssrc,
                w.payload(&out)
            ),
            (
                h.marker,
                h.payload_type,
                h.seq,
                h.timestamp,
                h.ssrc,
                payload
            )
        );
    }
    differential(data, ours);
});
