//! Cutting SIP messages out of a byte stream (TCP/TLS), RFC 3261 §18.3:
//! Content-Length is mandatory on streams. Also recognises the RFC 5626
//! §4.4.1 CRLF keep-alive ping.

use crate::error::ParseError;
use crate::message::{header_end, MAX_MESSAGE};
use bytes::{Buf, Bytes, BytesMut};

/// One unit cut from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The exact bytes of one message, ready for [`crate::parse`] with
    /// [`crate::Framing::Stream`].
    Message(Bytes),
    /// A double-CRLF ping; answer with a single CRLF (pong).
    Ping,
}

/// Accumulates stream bytes and yields whole messages.
///
/// A framing error (no or bad Content-Length, oversize) is fatal for the
/// connection: the transport closes it (RFC 4475 §3.1.2.3).
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
}

impl StreamFramer {
    /// A new, empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more data is needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            return Ok(Some(Frame::Ping));
        }
        let crlfs = self
            .buf
            .iter()
            .take_while(|&&c| c == b'\r' || c == b'\n')
            .count();
        if crlfs == self.buf.len() && crlfs < 4 {
            return Ok(None); // maybe the start of a ping
        }
        self.buf.advance(crlfs);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(end) = header_end(&self.buf) else {
            return if self.buf.len() > MAX_MESSAGE {
                Err(ParseError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let len = content_length(&self.buf[..end])?;
        if end + len > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        if self.buf.len() < end + len {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.buf.split_to(end + len).freeze())))
    }
}

/// Content-Length from a header section; every occurrence must agree.
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    let mut found: Option<usize> = None;
    for line in head.split('\n') {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim_end();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let v = value.trim();
            if v.is_empty() || v.len() > 9 || !v.bytes().all(|c| c.is_ascii_digit()) {
                return Err(ParseError::Framing("Content-Length is not a number"));
            }
            let n = v
                .parse()
                .map_err(|_| ParseError::Framing("bad Content-Length"))?;
            if found.is_some_and(|f| f != n) {
                return Err(ParseError::Framing("conflicting Content-Length values"));
            }
            found = Some(n);
        }
    }
    found.ok_or(ParseError::Framing("Content-Length required on a stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_messages_fed_byte_by_byte() {
        let one = b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabc";
        let mut wire = b"\r\n\r\n".to_vec();
        wire.extend_from_slice(one);
        wire.extend_from_slice(one);
        let mut f = StreamFramer::new();
        let mut frames = Vec::new();
        for b in &wire {
            f.push(std::slice::from_ref(b));
            while let Some(fr) = f.next_frame().unwrap() {
                frames.push(fr);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Ping);
        assert_eq!(frames[1], Frame::Message(Bytes::from_static(one)));
    }

    #[test]
    fn framing_errors() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert!(f.next_frame().is_err());
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert!(f.next_frame().is_err());
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 9999\r\n\r\nshort");
        assert_eq!(f.next_frame(), Ok(None));
    }
}
