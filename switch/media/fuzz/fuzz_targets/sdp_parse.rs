//! Arbitrary bytes into `media::sdp::parse`, and what parses into `answer`.
//!
//! Properties:
//! 1. `parse` never panics;
//! 2. `answer` with a fixed `Local` (all codecs, telephone-event, in both
//!    preference modes) never panics; when it succeeds its body parses, has
//!    as many m= lines as the offer with our audio at the same index, names
//!    the agreed codec first, and `accept_answer` of it agrees on codec,
//!    payload type and telephone-event.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use media::codec::Codec;
use media::sdp::{accept_answer, answer, parse, Direction, Local, Origin};

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = parse(data) else {
        return;
    };
    assert!(offer.audio_index < offer.media_count);
    let local = Local {
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port: 20000,
        codecs: Codec::ALL.to_vec(),
        telephone_event: true,
        ptime: 20,
        direction: Direction::SendRecv,
    };
    for prefer_local in [false, true] {
        let mut origin = Origin::new(1);
        let Ok((body, agreed)) = answer(&offer, &local, &mut origin, prefer_local) else {
            continue;
        };
        let back = parse(&body).unwrap_or_else(|e| {
            panic!(
                "answer does not parse: {e}\n{}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(back.media_count, offer.media_count);
        assert_eq!(back.audio_index, offer.audio_index);
        assert_eq!(back.audio.port, local.port);
        assert_eq!(
            back.audio.formats.first().map(|f| (f.pt, f.codec)),
            Some((agreed.pt, agreed.codec))
        );
        let mine = Local {
            codecs: vec![agreed.codec],
            ..local.clone()
        };
        let seen = accept_answer(&back, &mine).expect("our answer is not acceptable");
        assert_eq!(
            (seen.codec, seen.pt, seen.dtmf_pt),
            (agreed.codec, agreed.pt, agreed.dtmf_pt)
        );
    }
});
