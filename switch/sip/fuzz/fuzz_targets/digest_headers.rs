//! Digest `Authorization` / `WWW-Authenticate` header values (arbitrary
//! UTF-8) into `auth::Credentials::parse` and `auth::Challenge::parse`.
//!
//! Properties:
//! 1. what parses survives `to_header_value()` and parses back equal;
//! 2. a parsed challenge answered with `auth::respond` gives credentials
//!    that serialise and parse back equal;
//! 3. `DigestServer::verify` never panics on parsed (untrusted) credentials,
//!    and never says `Ok` to them (their nonce is not one it issued).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::auth::{respond, Challenge, Credentials, DigestServer, Verdict};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;

    if let Ok(c) = Credentials::parse(s) {
        let wire = c.to_header_value();
        let back = Credentials::parse(&wire).unwrap_or_else(|e| {
            panic!("Credentials round trip: {e}\n--- input ---\n{}\n--- to_header_value ---\n{wire}", s.escape_debug())
        });
        assert_eq!(c, back, "Credentials changed by a round trip via {wire:?}");
        let _ = c.uri_matches("sip:bob@example.com");

        let mut server = DigestServer::new("example.com", [7; 32], 300);
        for method in ["INVITE", "REGISTER"] {
            let v = server.verify(&c, method, "secret", 1_000_000);
            assert_ne!(v, Verdict::Ok, "accepted credentials with a nonce it never issued");
        }
    }

    if let Ok(ch) = Challenge::parse(s) {
        let wire = ch.to_header_value();
        let back = Challenge::parse(&wire).unwrap_or_else(|e| {
            panic!("Challenge round trip: {e}\n--- input ---\n{}\n--- to_header_value ---\n{wire}", s.escape_debug())
        });
        assert_eq!(ch, back, "Challenge changed by a round trip via {wire:?}");

        let creds = respond(&ch, "INVITE", "sip:bob@example.com", "alice\"\\", "pw", "0a4f113b", 1);
        let wire = creds.to_header_value();
        let back = Credentials::parse(&wire)
            .unwrap_or_else(|e| panic!("respond() output does not parse: {e}\n{wire}"));
        assert_eq!(creds, back, "respond() credentials changed by a round trip via {wire:?}");
    }
});
