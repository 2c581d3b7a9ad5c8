//! Call-control header values (arbitrary UTF-8): `Session-Expires`
//! (RFC 4028) into `SessionExpires::parse`, `Replaces` (RFC 3891) into
//! `Replaces::parse`.
//!
//! Property: what parses survives `to_string()` and parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::{Replaces, SessionExpires};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(se) = SessionExpires::parse(&text) {
        let wire = se.to_string();
        let back = SessionExpires::parse(&wire)
            .unwrap_or_else(|| panic!("Session-Expires round trip failed via {wire:?}"));
        assert_eq!(se, back, "Session-Expires changed by a round trip via {wire:?}");
    }
    if let Some(r) = Replaces::parse(&text) {
        let wire = r.to_string();
        let back = Replaces::parse(&wire)
            .unwrap_or_else(|| panic!("Replaces round trip failed via {wire:?}"));
        assert_eq!(r, back, "Replaces changed by a round trip via {wire:?}");
    }
});
