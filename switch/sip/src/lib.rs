//! `sip`: the SIP message model, parser and serializer, transactions,
//! dialogs and digest authentication of Switchboard.
//!
//! Sans-IO: nothing here touches a socket or reads a clock. Bytes and `now`
//! go in; messages to send, events and deadlines come out.

pub mod auth;
pub mod dialog;
mod error;
pub mod framing;
mod header;
mod lex;
mod message;
mod method;
pub mod transaction;
mod typed;
mod uri;
pub mod validate;

pub use error::ParseError;
pub use header::{Header, Headers, Name};
pub use lex::{find_param, Param};
pub use message::{
    parse, peek_call_id, response_to, Framing, Message, Request, Response, SipMessage, Version,
    MAX_MESSAGE,
};
pub use method::Method;
pub use typed::{
    option_tags, parse_delta_seconds, parse_name_addrs, CSeq, Contacts, NameAddr, Refresher,
    Replaces, SessionExpires, Via, BRANCH_COOKIE,
};
pub use uri::{unescape, Host, SipUri, Uri};

/// The standard reason phrase for a status code (RFC 3261 §21).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        c if c < 200 => "Session Progress",
        c if c < 300 => "OK",
        c if c < 400 => "Redirect",
        c if c < 500 => "Client Error",
        c if c < 600 => "Server Error",
        _ => "Global Failure",
    }
}
