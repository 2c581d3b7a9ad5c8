//! The ACD from the control socket: agents log in, pause, resume and log
//! out (by name or by their phone's user), and queues report their
//! figures.

use e2e::switch::{base_config, SwitchProc};

const ACD: &str = r#"
[[queues]]
name = "sales"
strategy = "longest-idle"
[[queues]]
name = "support"
strategy = "skills"
skills = { english = 3 }

[[agents]]
name = "alice"
users = ["1001"]
skills = { english = 5 }
queues = ["sales", "support"]

[[agents]]
name = "bob"
users = ["1002"]
queues = ["support"]
"#;

#[test]
fn agents_log_in_pause_resume_and_log_out_from_ctl() {
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &base_config(port, &dir.path().join("db"), ACD),
    );
    let states = || -> Vec<(String, String)> {
        sw.ctl_json(&["agents", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["agent"].as_str().unwrap().to_owned(),
                    a["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(states(), [s("alice", "logged_out"), s("bob", "logged_out")]);
    assert_eq!(
        sw.ctl_json(&["agents", "login", "alice"])["state"],
        "available"
    );
    // Bob logs in by his phone's user.
    assert_eq!(sw.ctl_json(&["agents", "login", "1002"])["agent"], "bob");
    let v = sw.ctl_json(&["agents", "pause", "bob", "--reason", "lunch"]);
    assert_eq!(
        (v["state"].as_str(), v["reason"].as_str()),
        (Some("paused"), Some("lunch"))
    );
    let q = sw.ctl_json(&["queues", "stats", "support"]);
    let q = &q[0];
    assert_eq!(q["agents_logged_in"], 2, "{q}");
    assert_eq!(q["agents_available"], 1, "{q}");
    assert_eq!(q["strategy"], "Skills");
    assert_eq!(
        sw.ctl_json(&["agents", "resume", "bob"])["state"],
        "available"
    );
    assert_eq!(
        sw.ctl_json(&["agents", "logout", "alice"])["state"],
        "logged_out"
    );
    assert_eq!(states(), [s("alice", "logged_out"), s("bob", "available")]);
    let all = sw.ctl_json(&["queues", "list"]);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sales", "support"]);
    // Mistakes are named.
    let out = sw.ctl(&["agents", "resume", "alice"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("alice is not paused"));
    let out = sw.ctl(&["agents", "login", "carol"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent \"carol\""));
    // Each change is logged with what was done.
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(log.contains("agent=\"bob\" op=Pause(\"lunch\")"), "{log}");
}
