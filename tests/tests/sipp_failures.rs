//! Failure outcomes with sipp on both sides of the switch (acceptance point
//! 4 with real peers): busy, CANCEL before answer, no answer, unknown and
//! unregistered users each reach the caller as the right final response.

use e2e::sipp::{run_uac, scenario, SippUas};
use e2e::switch::{base_config, SwitchProc};
use std::path::Path;
use std::time::Duration;

struct Setup {
    dir: tempfile::TempDir,
    sw: SwitchProc,
    uas: Option<SippUas>,
}

/// A switch routing numbers starting with 7 to a sipp UAS running
/// `uas_scenario` (if any) and everything else from the trunk to users.
fn setup(uas_scenario: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let uas = uas_scenario.map(|s| SippUas::start(dir.path(), Some(&scenario(s)), &["-m", "1"]));
    let port = e2e::free_port("127.0.0.1");
    let uas_port = uas.as_ref().map_or(9, |u| u.port);
    let extra = format!(
        r#"[calls]
no_answer_timeout_secs = 2

[[trunks]]
name = "callee"
outbound = {{ host = "127.0.0.1:{uas_port}" }}

[[routes]]
prefix = "7"
from = "trunks"
target = {{ trunk = "callee" }}

[[routes]]
prefix = ""
from = "trunks"
target = "users"
"#
    );
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), &extra),
    );
    Setup { dir, sw, uas }
}

fn expect_code(dir: &Path, port: u16, number: &str, code: u16) -> e2e::sipp::SippStats {
    let xml = std::fs::read_to_string(scenario("uac_expect.xml"))
        .unwrap()
        .replace("EXPECTED_CODE", &code.to_string());
    let f = dir.join(format!("uac_expect_{code}.xml"));
    std::fs::write(&f, xml).unwrap();
    call(dir, port, number, &f)
}

fn call(dir: &Path, port: u16, number: &str, scenario_file: &Path) -> e2e::sipp::SippStats {
    let uac_port = e2e::free_port("127.0.0.2").to_string();
    let sf = scenario_file.to_string_lossy().into_owned();
    run_uac(
        dir,
        &format!("127.0.0.1:{port}"),
        &[
            "-sf",
            &sf,
            "-s",
            number,
            "-i",
            "127.0.0.2",
            "-p",
            &uac_port,
            "-m",
            "1",
            "-timeout",
            "20",
        ],
        Duration::from_secs(30),
    )
}

#[test]
fn busy_callee_reaches_caller_as_486() {
    let mut s = setup(Some("uas_busy.xml"));
    let st = expect_code(s.dir.path(), s.sw.port, "7001", 486);
    assert_eq!(
        (st.successful, st.failed),
        (1, 0),
        "{st:?}\n{}",
        s.sw.log_tail()
    );
    assert_eq!(
        s.uas.as_mut().unwrap().wait(Duration::from_secs(10)),
        Some(0),
        "UAS got its ACK"
    );
}

#[test]
fn cancel_before_answer_gives_487_and_cancels_the_callee() {
    let mut s = setup(Some("uas_ring.xml"));
    let st = call(s.dir.path(), s.sw.port, "7002", &scenario("uac_cancel.xml"));
    assert_eq!(
        (st.successful, st.failed),
        (1, 0),
        "{st:?}\n{}",
        s.sw.log_tail()
    );
    assert_eq!(
        s.uas.as_mut().unwrap().wait(Duration::from_secs(10)),
        Some(0),
        "UAS saw CANCEL, sent 487, got ACK"
    );
}

#[test]
fn no_answer_gives_480_after_the_timeout_and_cancels_the_callee() {
    let mut s = setup(Some("uas_ring.xml"));
    let t0 = std::time::Instant::now();
    let st = expect_code(s.dir.path(), s.sw.port, "7003", 480);
    assert_eq!(
        (st.successful, st.failed),
        (1, 0),
        "{st:?}\n{}",
        s.sw.log_tail()
    );
    assert!(t0.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        s.uas.as_mut().unwrap().wait(Duration::from_secs(10)),
        Some(0)
    );
}

#[test]
fn unknown_user_404_and_unregistered_user_480() {
    let s = setup(None);
    let st = expect_code(s.dir.path(), s.sw.port, "4242", 404);
    assert_eq!((st.successful, st.failed), (1, 0), "404: {st:?}");
    let st = expect_code(s.dir.path(), s.sw.port, "1002", 480);
    assert_eq!((st.successful, st.failed), (1, 0), "480: {st:?}");
}
