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
