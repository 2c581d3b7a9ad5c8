//! Arbitrary bytes into `sip::parse` with both framings.
//!
//! Properties checked on every input that parses:
//! 1. the message re-serialised with `to_bytes()` parses again, with the
//!    same framing (round trip);
//! 2. serialising is a fixed point after one round: `to_bytes(parse(to_bytes(m)))
//!    == to_bytes(m)`, and the start line, body and header count survive;
//! 3. `validate::check_request` and the typed accessors never panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::validate::{check_request, UasPolicy};
use sip::{Framing, Message, Name, SipMessage, MAX_MESSAGE};

fn exercise_accessors<M: SipMessage>(m: &M) {
    let _ = m.call_id();
    let _ = m.cseq();
    let _ = m.from();
    let _ = m.to();
    let _ = m.vias();
    let _ = m.top_via();
    let _ = m.contacts();
}

/// Start line, header count without Content-Length (which `to_bytes`
/// rewrites), body.
fn shape(m: &Message) -> (String, usize, Bytes) {
    let non_cl = m.headers().iter().filter(|h| h.name != Name::ContentLength).count();
    match m {
        Message::Request(r) => (format!("{} {}", r.method, r.uri), non_cl, r.body.clone()),
        Message::Response(r) => (format!("{} {}", r.code, r.reason), non_cl, r.body.clone()),
    }
}

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    let _ = sip::peek_call_id(data);
    for framing in [Framing::Datagram, Framing::Stream] {
        let Ok(msg) = sip::parse(&buf, framing) else { continue };
        match &msg {
            Message::Request(r) => {
                let _ = check_request(r, &UasPolicy::default());
                let _ = r.max_forwards();
                exercise_accessors(r);
            }
            Message::Response(r) => exercise_accessors(r),
        }

        let wire = msg.to_bytes();
        if wire.len() > MAX_MESSAGE {
            // Compact names expand on output; over the limit is a refusal by
            // design, not a round-trip failure.
            continue;
        }
        let again = match sip::parse(&Bytes::from(wire.clone()), framing) {
            Ok(m) => m,
            Err(e) => panic!(
                "round trip: parsed with {framing:?} but its to_bytes() does not parse: {e}\n\
                 --- input ---\n{}\n--- to_bytes ---\n{}",
                String::from_utf8_lossy(data).escape_debug(),
                String::from_utf8_lossy(&wire).escape_debug()
            ),
        };
        let wire2 = again.to_bytes();
        assert!(
            wire2 == wire,
            "round trip: to_bytes is not a fixed point ({framing:?})\n--- first ---\n{}\n--- second ---\n{}",
            String::from_utf8_lossy(&wire).escape_debug(),
            String::from_utf8_lossy(&wire2).escape_debug()
        );
        let (line1, n1, body1) = shape(&msg);
        let (line2, n2, body2) = shape(&again);
        assert_eq!(line1, line2, "round trip changed the start line");
        assert_eq!(n1, n2, "round trip changed the number of header fields");
        assert_eq!(body1, body2, "round trip changed the body");
    }
});
