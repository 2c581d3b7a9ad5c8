//! baresip registers with digest auth as user 1001; sipp calls 1001 through
//! the switch; baresip auto-answers; both sides see 200/ACK/BYE
//! (acceptance point 3).

use e2e::baresip::Baresip;
use e2e::sipp::run_uac;
use e2e::switch::{base_config, SwitchProc};
use std::time::Duration;

#[test]
fn baresip_answers_a_sipp_call() {
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let extra = "[[routes]]\nprefix = \"\"\nfrom = \"trunks\"\ntarget = \"users\"\n";
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), extra),
    );
    let wav = dir.path().join("tone.wav");
    e2e::tone_wav(&wav, 120);
    let phone = Baresip::start(&dir.path().join("phone"), "1001", "secret", port, &wav);
    assert!(
        phone.wait_log("200 OK", Duration::from_secs(10)),
        "baresip did not register:\n{}\nswitch:\n{}",
        phone.log(),
        sw.log_tail()
    );
    let uac_port = e2e::free_port("127.0.0.2").to_string();
    let stats = run_uac(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &[
            "-sn",
            "uac",
            "-s",
            "1001",
            "-i",
            "127.0.0.2",
            "-p",
            &uac_port,
            "-m",
            "1",
            "-d",
            "2000",
            "-timeout",
            "30",
        ],
        Duration::from_secs(40),
    );
    assert_eq!(
        (stats.successful, stats.failed),
        (1, 0),
        "{stats:?}\nbaresip:\n{}\nswitch:\n{}",
        phone.log(),
        sw.log_tail()
    );
    assert!(
        phone.wait_log("Call established", Duration::from_secs(5)),
        "baresip saw no 200/ACK:\n{}",
        phone.log()
    );
    assert!(
        phone.wait_log("terminated (duration", Duration::from_secs(5)),
        "baresip saw no BYE:\n{}",
        phone.log()
    );
}

#[test]
fn baresip_with_a_wrong_password_is_refused() {
    let _heavy = e2e::heavy_lock();
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), ""),
    );
    let wav = dir.path().join("tone.wav");
    e2e::tone_wav(&wav, 10);
    let phone = Baresip::start(
        &dir.path().join("phone"),
        "1001",
        "not-the-password",
        port,
        &wav,
    );
    assert!(
        phone.wait_log("401 Unauthorized", Duration::from_secs(10)),
        "no 401:\n{}\nswitch:\n{}",
        phone.log(),
        sw.log_tail()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !phone.log().contains("200 OK"),
        "registered with a wrong password:\n{}",
        phone.log()
    );
}
