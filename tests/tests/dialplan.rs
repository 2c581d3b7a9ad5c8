//! The dial plan in the running switch: number ranges (patterns), exact
//! numbers and prefixes, per trunk, the most specific winning.

use e2e::switch::{base_config, SwitchProc};
use e2e::ua::Ua;
use std::time::Duration;

#[test]
fn numbers_of_a_range_land_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let routes = r#"
[[trunks]]
name = "other"
inbound = { from = ["127.0.0.9"] }

[[routes]]
pattern = "400-800-1xxx"
from = "trunks"
target = { hangup = 486 }

[[routes]]
number = "4008001234"
from = "trunks"
target = { hangup = 403 }

[[routes]]
pattern = "400-800-[5~9]xxx"
trunk = "carrier"
target = { hangup = 480 }

[[routes]]
prefix = "400"
from = "trunks"
target = { hangup = 404 }
"#;
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), routes),
    );
    let mut carrier = Ua::new("127.0.0.2", sw.addr());
    let mut code = |number: &str| {
        let invite = carrier.invite("5551234", number);
        let tx = carrier.send(invite);
        carrier
            .final_response(tx, Duration::from_secs(5))
            .pop()
            .map(|r| r.code)
    };
    let got: Vec<_> = ["4008001000", "4008001234", "4008006789", "4008002000"]
        .iter()
        .map(|n| (*n, code(n)))
        .collect();
    println!("{got:?}");
    assert_eq!(
        got,
        [
            ("4008001000", Some(486)),
            ("4008001234", Some(403)),
            ("4008006789", Some(480)),
            ("4008002000", Some(404)),
        ]
    );
}

/// A route with opening hours (Mon-Fri 08:00-18:00 Berlin, Christmas off):
/// the same number goes to the target while open and to the closed target
/// otherwise; the switch's clock is set by SWITCHBOARD_FAKE_NOW.
#[test]
fn opening_hours_and_holidays_choose_the_target() {
    let routes = r#"
[[schedules]]
name = "office"
timezone = "Europe/Berlin"
open = ["mon-fri 08:00-18:00"]
holidays = ["2026-12-25"]

[[routes]]
pattern = "400-800-1xxx"
from = "trunks"
target = { hangup = 486 }
schedule = "office"
closed = { hangup = 480 }
"#;
    let mut seen = Vec::new();
    for now in [
        "2026-11-24T10:00:00Z", // Tuesday 11:00 in Berlin: open
        "2026-11-24T20:00:00Z", // Tuesday 21:00: closed
        "2026-11-29T10:00:00Z", // Sunday: closed
        "2026-12-25T10:00:00Z", // Friday, Christmas: closed
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = e2e::free_port("127.0.0.1");
        let cfg = base_config(port, &dir.path().join("db"), routes);
        let sw =
            SwitchProc::start_with_env(dir.path(), port, &cfg, &[("SWITCHBOARD_FAKE_NOW", now)]);
        let mut carrier = Ua::new("127.0.0.2", sw.addr());
        let invite = carrier.invite("5551234", "4008001000");
        let tx = carrier.send(invite);
        let code = carrier
            .final_response(tx, Duration::from_secs(5))
            .pop()
            .map(|r| r.code);
        seen.push((now, code));
    }
    println!("{seen:?}");
    let codes: Vec<_> = seen.iter().map(|(_, c)| *c).collect();
    assert_eq!(codes, [Some(486), Some(480), Some(480), Some(480)]);
}
