//! The binary's command line: `config check` names file, line and key;
//! `config default` prints a config that checks clean.

use std::process::Command;

fn switchboard() -> Command {
    Command::new(e2e::bin_dir().join("switchboard"))
}

#[test]
fn config_check_reports_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\n\n[[trunks]]\nname = \"c\"\n[trunks.outbound]\nhost = \"127.0.0.1\"\n",
    )
    .unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:7: trunks[0].outbound.host"), "{err}");

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[[routes]]\nprefix = \"9\"\ntarget = { trunk = \"nowhere\" }\n",
    )
    .unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&unknown)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown.toml:3: routes[0].target"),
        "{err}"
    );

    // `run` refuses the same file with the same message, before binding.
    let out = switchboard()
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:7"));
}

#[test]
fn default_config_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchboard().args(["config", "default"]).output().unwrap();
    assert!(out.status.success());
    let f = dir.path().join("default.toml");
    std::fs::write(&f, &out.stdout).unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
