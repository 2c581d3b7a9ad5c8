//! The crate's error type: what a peer sent that we cannot accept.

/// Why a message (or a header inside it) could not be parsed.
///
/// Every variant is a peer fault ("the peer misbehaved"); the transaction
/// layer maps them to a stateless `400 Bad Request` where a response is
/// possible, or drops the message. The `code()` strings are stable and meant
/// for operators to search logs by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The header section did not end with an empty line.
    #[error("incomplete header section")]
    Incomplete,
    /// The header section is not valid UTF-8.
    #[error("header section is not UTF-8")]
    NotUtf8,
    /// The start line is not a valid Request-Line or Status-Line.
    #[error("bad start line: {0}")]
    StartLine(&'static str),
    /// A header line has no name or no colon.
    #[error("bad header line")]
    HeaderLine,
    /// A known header's value does not follow its grammar.
    #[error("bad {header} header: {why}")]
    Header {
        /// The header's canonical name.
        header: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A URI does not follow RFC 3261 §19.1 (or RFC 5118 for IPv6).
    #[error("bad URI: {0}")]
    Uri(&'static str),
    /// Content-Length is missing on a stream, negative, duplicated with
    /// different values, or larger than the data received.
    #[error("bad framing: {0}")]
    Framing(&'static str),
    /// The message is larger than the configured limit.
    #[error("message too large")]
    TooLarge,
}

impl ParseError {
    /// A stable, searchable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Incomplete => "SIP-P001",
            ParseError::NotUtf8 => "SIP-P002",
            ParseError::StartLine(_) => "SIP-P003",
            ParseError::HeaderLine => "SIP-P004",
            ParseError::Header { .. } => "SIP-P005",
            ParseError::Uri(_) => "SIP-P006",
            ParseError::Framing(_) => "SIP-P007",
            ParseError::TooLarge => "SIP-P008",
        }
    }

    pub(crate) fn header(header: &'static str, why: &'static str) -> Self {
        ParseError::Header { header, why }
    }
}
