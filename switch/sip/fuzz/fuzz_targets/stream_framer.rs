//! `framing::StreamFramer` under arbitrary chunking.
//!
//! Input: byte 0 seeds the chunk sizes, the rest is the stream.
//!
//! Properties:
//! 1. chunking does not matter: the messages cut from the stream fed in
//!    pieces (draining after each piece, like a transport does) are the
//!    messages cut from the stream fed at once, and a framing error happens
//!    in both or in neither (pings are not compared: a CR/LF run split
//!    across reads may legitimately read as a ping);
//! 2. the framer and the parser agree on the body: a framed message that
//!    parses with `Framing::Stream` has its body end exactly at the end of
//!    the frame.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::framing::{Frame, StreamFramer};
use sip::{Framing, Message};

/// Messages cut, and whether the framer failed (the transport would close
/// the connection, so nothing after an error counts).
fn drain(f: &mut StreamFramer, out: &mut Vec<Bytes>) -> bool {
    loop {
        match f.next_frame() {
            Ok(Some(Frame::Message(m))) => out.push(m),
            Ok(Some(Frame::Ping)) => {}
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

/// Same rule as the parser: the index just past the empty line.
fn header_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| match (buf[i], buf.get(i + 1), buf.get(i + 2)) {
        (b'\n', Some(b'\n'), _) => Some(i + 2),
        (b'\n', Some(b'\r'), Some(b'\n')) => Some(i + 3),
        _ => None,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else { return };

    let mut whole = StreamFramer::new();
    whole.push(stream);
    let mut expect = Vec::new();
    let whole_err = drain(&mut whole, &mut expect);

    let mut chunked = StreamFramer::new();
    let mut got = Vec::new();
    let mut chunked_err = false;
    let mut rng = u32::from(seed) | 1;
    let mut rest = stream;
    while !rest.is_empty() && !chunked_err {
        // xorshift: chunk sizes 1..=64, with 0 mapped to "everything left".
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let n = match rng % 65 {
            0 => rest.len(),
            k => (k as usize).min(rest.len()),
        };
        let (piece, tail) = rest.split_at(n);
        chunked.push(piece);
        rest = tail;
        chunked_err = drain(&mut chunked, &mut got);
    }
    if !chunked_err {
        assert!(chunked.buffered() <= stream.len());
    }

    assert_eq!(whole_err, chunked_err, "framing error depends on chunking");
    assert_eq!(expect, got, "messages cut depend on chunking");

    for frame in &expect {
        if let Ok(msg) = sip::parse(frame, Framing::Stream) {
            let body = match &msg {
                Message::Request(r) => &r.body,
                Message::Response(r) => &r.body,
            };
            let head = header_end(frame).expect("a parsed frame has a header end");
            assert_eq!(
                head + body.len(),
                frame.len(),
                "framer and parser disagree on Content-Length: {}",
                String::from_utf8_lossy(frame).escape_debug()
            );
        }
    }
});
