//! sipp UAC → switchboard (as a carrier trunk) → sipp UAS: 1,000 calls at
//! 100 calls/s, none failed, over UDP and over TCP (acceptance point 2).

use e2e::sipp::{run_uac, SippUas};
use e2e::switch::{base_config, SwitchProc};
use std::time::Duration;

fn run(transport: &str) {
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let t = if transport == "tcp" { "t1" } else { "u1" };
    let uas = SippUas::start(dir.path(), None, &["-t", t]);
    let port = e2e::free_port("127.0.0.1");
    let extra = format!(
        r#"[calls]
max_calls = 10000

[[trunks]]
name = "uas"
outbound = {{ host = "127.0.0.1:{}", transport = "{transport}" }}

[[routes]]
prefix = ""
from = "trunks"
target = {{ trunk = "uas" }}
"#,
        uas.port
    );
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), &extra),
    );
    let uac_port = e2e::free_port("127.0.0.2").to_string();
    let remote = format!("127.0.0.1:{port}");
    let stats = run_uac(
        dir.path(),
        &remote,
        &[
            "-sn",
            "uac",
            "-s",
            "5550100",
            "-i",
            "127.0.0.2",
            "-p",
            &uac_port,
            "-t",
            t,
            "-r",
            "100",
            "-m",
            "1000",
            "-timeout",
            "60",
        ],
        Duration::from_secs(90),
    );
    assert_eq!(
        (stats.successful, stats.failed),
        (1000, 0),
        "{transport}: {stats:?}\nswitch log:\n{}",
        sw.log_tail()
    );
    println!(
        "{transport}: 1000 calls at 100 cps, {} retransmissions",
        stats.retransmissions
    );
}

#[test]
fn thousand_calls_over_udp() {
    run("udp");
}

#[test]
fn thousand_calls_over_tcp() {
    run("tcp");
}
