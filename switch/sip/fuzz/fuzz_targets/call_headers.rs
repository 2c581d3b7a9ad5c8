//! Call-control header values (arbitrary UTF-8): `Session-Expires`
//! (RFC 4028) into `SessionExpires::parse`.
//!
//! Property: what parses survives `to_string()` and parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::SessionExpires;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(se) = SessionExpires::parse(&text) {
        let wire = se.to_string();
        let back = SessionExpires::parse(&wire)
            .unwrap_or_else(|| panic!("Session-Expires round trip failed via {wire:?}"));
        assert_eq!(se, back, "Session-Expires changed by a round trip via {wire:?}");
    }
});
