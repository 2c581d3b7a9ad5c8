//! The RFC 4475 / RFC 5118 vectors sent over UDP to a running switch: a 400
//! where INDEX.tsv says so, the semantic response where one is named, and
//! the switch keeps running (acceptance point 1, over the wire).

use e2e::switch::{base_config, SwitchProc};
use e2e::ua::Ua;
use std::time::Duration;

fn status(resp: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(resp.get(8..11)?).ok()?;
    resp.starts_with(b"SIP/2.0 ")
        .then(|| s.parse().ok())
        .flatten()
}

#[test]
fn torture_messages_over_udp() {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let mut sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), ""),
    );
    let root = e2e::conformance_dir();
    let index = std::fs::read_to_string(root.join("INDEX.tsv")).expect("INDEX.tsv");
    let ua = Ua::new("127.0.0.3", sw.addr());
    let mut checked = 0;
    for line in index.lines().skip(1).filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (file, expected) = (f[0], f[3]);
        if expected == "n/a" {
            continue;
        }
        let data = std::fs::read(root.join(file)).unwrap();
        ua.send_raw(&data);
        // Collect the responses to this message (same Call-ID; earlier
        // finals are retransmitted by Timer G since nobody ACKs them).
        let cid = sip::peek_call_id(&data).map(str::to_owned);
        let mut got = Vec::new();
        while let Some(r) = ua.recv_raw(Duration::from_millis(300)) {
            if sip::peek_call_id(&r).map(str::to_owned) == cid {
                got.extend(status(&r));
            }
        }
        let first_final = got.iter().copied().find(|&c| c >= 200);
        let want: Option<&[u16]> = match expected {
            "invalid:400" => Some(&[400]),
            "semantic:505" => Some(&[505]),
            "semantic:501" => Some(&[501]),
            "semantic:416" => Some(&[416]),
            "semantic:416-or-404" => Some(&[416, 404]),
            "semantic:420" => Some(&[420]),
            "semantic:415" => Some(&[415]),
            "semantic:406-or-400" => Some(&[406, 400]),
            "semantic:400" => Some(&[400]),
            "semantic:400-at-registrar" => Some(&[400]),
            "semantic:200-or-401-or-405" => Some(&[401]),
            "invalid:discard" | "semantic:discard" => Some(&[]),
            _ => None,
        };
        if let Some(want) = want {
            match first_final {
                Some(c) => assert!(want.contains(&c), "{file} ({expected}): got {c}"),
                None => assert!(
                    want.is_empty(),
                    "{file} ({expected}): no response, want {want:?}"
                ),
            }
            checked += 1;
        }
        assert!(sw.alive(), "switch died on {file}:\n{}", sw.log_tail());
    }
    assert!(checked >= 27, "only {checked} rows had a wire verdict");
    let mut probe = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(
        probe.options(Duration::from_secs(2)),
        Some(200),
        "switch still answers"
    );
}
