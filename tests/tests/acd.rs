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
    // Sessions survive a restart: bob is still logged in, alice out.
    let mut sw = sw;
    sw.ctl_json(&["agents", "pause", "bob", "--reason", "training"]);
    sw.restart();
    let after: Vec<(String, String)> = sw
        .ctl_json(&["agents", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent"].as_str().unwrap().to_owned(),
                format!("{} {}", a["state"], a["reason"]),
            )
        })
        .collect();
    assert_eq!(
        after,
        [
            s("alice", "\"logged_out\" null"),
            s("bob", "\"paused\" \"training\"")
        ]
    );
    // Each change is logged with what was done.
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(log.contains("agent=\"bob\" op=Pause(\"lunch\")"), "{log}");
}

const QUEUE: &str = r#"
[acd]
auto_pause_after = 2

[alerts]
interval_secs = 1
queue_wait_secs_max = 1

[[queues]]
name = "sales"
strategy = "longest-idle"
ring_timeout_secs = 3
wrap_up_secs = 1

[[agents]]
name = "alice"
users = ["1001"]
queues = ["sales"]

[[agents]]
name = "bob"
users = ["1002"]
queues = ["sales"]

[[routes]]
number = "700"
from = "trunks"
target = { queue = "sales" }
"#;

/// A caller from the trunk waits in "sales" hearing ringback; alice (idle
/// longest) is offered first and lets it ring out; bob gets it, answers,
/// and the two talk; the CDR names the queue, the agent and the wait; bob
/// wraps up, then is available again. The wait raised the queue_wait
/// alert (over 1 s); /metrics has the queue's and agents' figures.
#[test]
fn a_queued_caller_reaches_the_next_agent_when_one_does_not_answer() {
    use e2e::media::{media_config, sdp, sdp_addr, PCMU};
    use e2e::rtp::RtpPeer;
    use sip::{Method, SipMessage};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw = SwitchProc::start(dir.path(), port, &media_config(port, dir.path(), "", QUEUE));
    let mut alice = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    let mut bob = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    assert_eq!(alice.register("1001", "secret", 300).unwrap().code, 200);
    assert_eq!(bob.register("1002", "secret", 300).unwrap().code, 200);
    sw.ctl_json(&["agents", "login", "alice"]);
    std::thread::sleep(Duration::from_millis(50));
    sw.ctl_json(&["agents", "login", "bob"]);

    let mut c = e2e::media::dial_in(&sw, "700");
    let joined = Instant::now();
    // alice rings: the queue and the caller on her display, X-Queue.
    let (atx, inv) = alice.request(Duration::from_secs(5)).expect("alice rings");
    assert_eq!(inv.method, Method::Invite);
    let from = inv.headers.get(&sip::Name::From).unwrap().to_owned();
    assert!(from.contains("\"sales: 5551234\""), "{from}");
    assert_eq!(
        inv.headers.get(&sip::Name::Other("X-Queue".into())),
        Some("sales")
    );
    alice.respond(atx.unwrap(), sip::response_to(&inv, 180, Some("alice")));
    // She lets it ring 3 s: the switch cancels and offers bob.
    let (ctx_, cancel) = alice
        .request(Duration::from_secs(4))
        .expect("CANCEL to alice");
    assert_eq!(cancel.method, Method::Cancel);
    alice.respond(ctx_.unwrap(), sip::response_to(&cancel, 200, None));
    alice.respond(atx.unwrap(), sip::response_to(&inv, 487, Some("alice")));
    let (btx, binv) = bob.request(Duration::from_secs(5)).expect("bob rings");
    assert_eq!(binv.method, Method::Invite);
    let rtp = RtpPeer::bind();
    let mut ok = bob.answer(&binv, 200, "bob");
    ok.body = sdp(rtp.port, "0 101", PCMU);
    bob.respond(btx.unwrap(), ok);
    let waited = joined.elapsed();
    let (_, ack) = bob.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    // The caller heard ringback while waiting (425/440 Hz or 440/480 Hz).
    let waiting = c.heard();
    assert!(e2e::rtp::rms_dbfs(&waiting) > -40.0, "music on hold");
    assert_eq!(sw.ctl_json(&["agents", "list"])[1]["state"], "on_call");
    // They talk.
    let (ca, ag) = talk(&c, &rtp, sdp_addr(binv.body()), 1000);
    println!(
        "waited {:.2} s; caller hears bob at {ca:.2}, bob hears the caller at {ag:.2}",
        waited.as_secs_f64()
    );
    assert!(ca > 0.8 && ag > 0.8);
    // Bob hangs up; wrap-up, then available.
    let btx = e2e::ua::bye_as_callee(&mut bob, &binv, "bob");
    assert_eq!(
        bob.final_response(btx, Duration::from_secs(5))
            .last()
            .map(|r| r.code),
        Some(200)
    );
    c.take_bye(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    let agents = sw.ctl_json(&["agents", "list"]);
    assert_eq!(agents[1]["state"], "wrap_up", "{agents}");
    assert_eq!(agents[1]["calls"], 1);
    assert_eq!(agents[0]["state"], "available", "one miss of 2 allowed");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(sw.ctl_json(&["agents", "list"])[1]["state"], "available");
    let cdrs = sw.cdrs(1);
    let cdr = &cdrs[0];
    println!("{cdr}");
    assert_eq!(cdr["queue"], "sales");
    assert_eq!(cdr["agent"], "bob");
    let wait = cdr["wait_ms"].as_u64().unwrap();
    assert!((3000..5000).contains(&wait), "{wait}");
    let talk = cdr["talk_ms"].as_u64().unwrap();
    assert!(
        (900..2500).contains(&talk),
        "talk counts from the agent's answer: {talk}"
    );
    let q = &sw.ctl_json(&["queues", "stats", "sales"])[0];
    assert_eq!(
        (
            q["joined"].as_u64(),
            q["answered"].as_u64(),
            q["abandoned"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{q}"
    );
}

/// A reload that changes a queue's strategy applies to the next caller
/// while a call from that queue goes on (issue 4, acceptance 5).
#[test]
fn a_reload_changes_the_strategy_for_the_next_caller_only() {
    use sip::Method;
    use std::time::Duration;
    let agents = r#"
[[queues]]
name = "sales"
strategy = "longest-idle"

[[agents]]
name = "alice"
users = ["1001"]
skills = { english = 1 }
queues = ["sales"]

[[agents]]
name = "bob"
users = ["1002"]
skills = { english = 1 }
queues = ["sales"]

[[agents]]
name = "carol"
users = ["1003"]
skills = { english = 5 }
queues = ["sales"]

[[routes]]
number = "700"
from = "trunks"
target = { queue = "sales" }
"#;
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let cfg = e2e::media::media_config(port, dir.path(), "", agents);
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    let mut phones: Vec<e2e::ua::Ua> = ["1001", "1002", "1003"]
        .iter()
        .map(|u| {
            let mut ua = e2e::ua::Ua::new("127.0.0.1", sw.addr());
            assert_eq!(ua.register(u, "secret", 300).unwrap().code, 200);
            ua
        })
        .collect();
    for a in ["alice", "bob", "carol"] {
        sw.ctl_json(&["agents", "login", a]);
        std::thread::sleep(Duration::from_millis(30));
    }
    // The phone of `i` answers the next offer.
    let answer = |ua: &mut e2e::ua::Ua, tag: &str| -> sip::Request {
        let (tx, inv) = ua.request(Duration::from_secs(5)).expect("an offer");
        assert_eq!(inv.method, Method::Invite);
        let rtp = e2e::rtp::RtpPeer::bind();
        let mut ok = ua.answer(&inv, 200, tag);
        ok.body = e2e::media::sdp(rtp.port, "0 101", e2e::media::PCMU);
        ua.respond(tx.unwrap(), ok);
        let (_, ack) = ua.request(Duration::from_secs(5)).expect("ACK");
        assert_eq!(ack.method, Method::Ack);
        inv
    };
    // Longest idle: alice.
    let mut first = e2e::media::dial_in(&sw, "700");
    let inv1 = answer(&mut phones[0], "alice");
    // The strategy becomes skills-based: carol (english 5) beats bob, who
    // is idle longer and would have been next.
    std::fs::write(
        dir.path().join("switchboard.toml"),
        cfg.replace("\"longest-idle\"", "\"skills\""),
    )
    .unwrap();
    let out = sw.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut second = e2e::media::dial_in(&sw, "700");
    let inv2 = answer(&mut phones[2], "carol");
    assert!(
        phones[1].request(Duration::from_millis(300)).is_none(),
        "bob was not offered"
    );
    let q = &sw.ctl_json(&["queues", "stats", "sales"])[0];
    assert_eq!(q["strategy"], "Skills");
    // The first call went on through the reload: both calls up, then
    // hung up by their agents, each with its CDR.
    assert_eq!(sw.ctl_json(&["calls", "list"]).as_array().unwrap().len(), 2);
    for (ua, inv, tag, caller) in [
        (0, &inv1, "alice", &mut first),
        (2, &inv2, "carol", &mut second),
    ] {
        let tx = e2e::ua::bye_as_callee(&mut phones[ua], inv, tag);
        let r = phones[ua].final_response(tx, Duration::from_secs(5));
        assert_eq!(r.last().map(|r| r.code), Some(200));
        caller.take_bye(Duration::from_secs(5));
    }
    let cdrs = sw.cdrs(2);
    let mut agents: Vec<&str> = cdrs.iter().map(|c| c["agent"].as_str().unwrap()).collect();
    agents.sort();
    assert_eq!(agents, ["alice", "carol"]);
}

/// A caller waiting with nobody logged in hears their position and
/// estimated wait spoken every `announce_secs` (here 8 s; no music, so
/// what arrives between announcements is silence).
#[test]
fn waiting_callers_hear_position_and_wait_announcements() {
    use std::time::Duration;
    let cfg = r#"
[[queues]]
name = "sales"
music = "none"
announce_secs = 8

[[agents]]
name = "alice"
users = ["1001"]
queues = ["sales"]

[[routes]]
number = "700"
from = "trunks"
target = { queue = "sales" }
"#;
    let (_dir, sw) = e2e::media::media_switch(cfg);
    let c = e2e::media::dial_in(&sw, "700");
    std::thread::sleep(Duration::from_millis(17_500));
    // Arrival times of loud packets, relative to the answer.
    let loud: Vec<f64> = c
        .rtp
        .packets()
        .iter()
        .filter(|p| e2e::rtp::rms_dbfs(&e2e::media::ulaw_pcm(std::slice::from_ref(p))) > -40.0)
        .map(|p| (p.at - c.answered).as_secs_f64())
        .collect();
    // Announcements: runs of loud packets with gaps under 1 s.
    let mut runs: Vec<(f64, f64)> = Vec::new();
    for t in loud {
        match runs.last_mut() {
            Some((_, end)) if t - *end < 1.0 => *end = t,
            _ => runs.push((t, t)),
        }
    }
    println!("announcements (start, end) s: {runs:?}");
    assert_eq!(runs.len(), 2, "{runs:?}");
    for (i, (start, end)) in runs.iter().enumerate() {
        let due = 8.0 * (i + 1) as f64;
        assert!(
            (start - due).abs() < 0.8,
            "announcement {i} at {start:.2} s, due {due}"
        );
        if i == 0 {
            // (The second is still speaking when the test stops listening.)
            assert!(
                (3.0..8.0).contains(&(end - start)),
                "speech of {:.2} s",
                end - start
            );
        }
    }
    let pcm = c.heard();
    assert!(e2e::rtp::rms_dbfs(&pcm) > -40.0);
}

/// A waiting caller presses the callback key: they hear a confirmation and
/// the switch hangs up; the switch restarts; when an agent logs in, the
/// agent's phone rings first ("Callback NUMBER (queue)") and, once
/// answered, the caller's number is dialed through the queue's callback
/// trunk (issue 6, acceptance 3).
#[test]
fn a_callback_survives_a_restart_and_reaches_the_caller() {
    use e2e::media::{sdp, sdp_addr, PCMU};
    use e2e::rtp::{RtpPeer, Sender};
    use sip::{Method, SipMessage};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut carrier = e2e::ua::Ua::new("127.0.0.2", sw_addr);
    let cfg = format!(
        r#"
[[trunks]]
name = "out"
outbound = {{ host = "{}" }}

[[queues]]
name = "sales"
music = "none"
announce_secs = 0
callback_key = "1"
callback_trunk = "out"

[[agents]]
name = "alice"
users = ["1001"]
queues = ["sales"]

[[routes]]
number = "700"
from = "trunks"
target = {{ queue = "sales" }}
"#,
        carrier.local
    );
    let mut sw = SwitchProc::start(
        dir.path(),
        port,
        &e2e::media::media_config(port, dir.path(), "", &cfg),
    );
    // The caller waits (nobody logged in) and presses 1.
    let rtp = RtpPeer::bind();
    let mut invite = carrier.invite("5551234", "700");
    invite.body = sdp(rtp.port, "0 101", PCMU);
    let tx = carrier.send(invite.clone());
    let ok = carrier
        .final_response(tx, Duration::from_secs(10))
        .pop()
        .unwrap();
    assert_eq!(ok.code, 200, "{}", sw.log_tail());
    carrier.ack(tx, &invite, &ok);
    std::thread::sleep(Duration::from_millis(300));
    let mut s = Sender::new(&rtp, sdp_addr(ok.body()), 0xCA11);
    s.digits(101, "1", 100);
    let (btx, bye) = carrier
        .request(Duration::from_secs(15))
        .expect("BYE after the confirmation");
    assert_eq!(bye.method, Method::Bye);
    carrier.respond(btx.unwrap(), sip::response_to(&bye, 200, None));
    // The confirmation was spoken (several seconds of audio).
    let heard = e2e::media::loud_spans(&e2e::media::ulaw_pcm(&rtp.packets()), 8000);
    let speech: f64 = heard.iter().map(|(_, l)| l).sum();
    assert!(speech > 2.0, "{heard:?}");
    let cdrs = sw.cdrs(1);
    assert_eq!(cdrs[0]["reason"], "callback requested", "{cdrs:?}");

    sw.restart();
    let q = &sw.ctl_json(&["queues", "stats", "sales"])[0];
    assert_eq!(q["waiting"], 1, "the callback kept its place: {q}");
    let mut alice = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    assert_eq!(alice.register("1001", "secret", 300).unwrap().code, 200);
    sw.ctl_json(&["agents", "login", "alice"]);
    let (atx, ainv) = alice
        .request(Duration::from_secs(5))
        .expect("alice rings for the callback");
    assert_eq!(ainv.method, Method::Invite);
    let from = ainv.headers.get(&sip::Name::From).unwrap().to_owned();
    assert!(from.contains("Callback 5551234 (sales)"), "{from}");
    let arttp = RtpPeer::bind();
    let mut aok = alice.answer(&ainv, 200, "alice");
    aok.body = sdp(arttp.port, "0 101", PCMU);
    alice.respond(atx.unwrap(), aok);
    // The caller's number is dialed through the "out" trunk.
    let (ctx_, cinv) = loop {
        let (t, r) = carrier
            .request(Duration::from_secs(5))
            .expect("the callback reaches the caller");
        if r.method == Method::Invite {
            break (t, r);
        }
    };
    assert_eq!(
        cinv.uri.to_string(),
        format!("sip:5551234@{}", carrier.local)
    );
    let crtp = RtpPeer::bind();
    let mut cok = carrier.answer(&cinv, 200, "caller");
    cok.body = sdp(crtp.port, "0 101", PCMU);
    carrier.respond(ctx_.unwrap(), cok);
    std::thread::sleep(Duration::from_millis(300));
    let agents = sw.ctl_json(&["agents", "list"]);
    assert_eq!(agents[0]["state"], "on_call", "{agents}");
    let q = &sw.ctl_json(&["queues", "stats", "sales"])[0];
    assert_eq!(
        (q["waiting"].as_u64(), q["answered"].as_u64()),
        (Some(0), Some(1)),
        "{q}"
    );
    // Done: after another restart no callback is left.
    let tx = e2e::ua::bye_as_callee(&mut alice, &ainv, "alice");
    let _ = alice.final_response(tx, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    sw.restart();
    let q = &sw.ctl_json(&["queues", "stats", "sales"])[0];
    assert_eq!(q["waiting"], 0, "{q}");
}

/// A supervisor (1003) joins an agent's call (caller from the trunk ↔
/// 1001): listening they hear both and nobody hears them; whispering only
/// the agent hears them; barged in, everyone does (issue 6, acceptance 5;
/// checked on what each party receives: 500 Hz caller, 1500 Hz agent,
/// 1000 Hz supervisor).
#[test]
fn a_supervisor_listens_whispers_and_barges_in() {
    use e2e::media::{sdp, sdp_addr, tone_share, ulaw_pcm, ulaw_tone, PCMU};
    use e2e::rtp::{RtpPeer, Sender};
    use sip::{Method, SipMessage};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let routes = "[[routes]]\nprefix = \"\"\nfrom = \"any\"\ntarget = \"users\"\n";
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &e2e::media::media_config(port, dir.path(), "", routes),
    );
    let mut agent = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    let mut sup = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    assert_eq!(agent.register("1001", "secret", 300).unwrap().code, 200);
    assert_eq!(sup.register("1003", "secret", 300).unwrap().code, 200);
    let mut caller = e2e::ua::Ua::new("127.0.0.2", sw.addr());
    let call = e2e::media::place_call(&sw, &mut caller, &mut agent, "1001");
    let calls = sw.ctl_json(&["calls", "list"]);
    let id = calls[0]["call_id"].as_str().unwrap().to_owned();
    let v = sw.ctl_json(&["calls", "monitor", &id, "1003", "--mode", "listen"]);
    assert_eq!(v["state"], "ringing the supervisor", "{v}");
    let (tx, inv) = sup
        .request(Duration::from_secs(5))
        .expect("the supervisor's phone rings");
    assert_eq!(inv.method, Method::Invite);
    let s_rtp = RtpPeer::bind();
    let mut ok = sup.answer(&inv, 200, "sup");
    ok.body = sdp(s_rtp.port, "0 101", PCMU);
    sup.respond(tx.unwrap(), ok);
    let (_, ack) = sup.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    let mut a = Sender::new(&call.a_rtp, call.a_media, 0xA);
    let mut b = Sender::new(&call.b_rtp, call.b_media, 0xB);
    let mut s = Sender::new(&s_rtp, sdp_addr(inv.body()), 0x5);
    // All three talk for 1.5 s; what did each hear (after 400 ms)?
    let talk = |a: &mut Sender, b: &mut Sender, s: &mut Sender| {
        let t0 = Instant::now();
        let (fa, fb, fs) = (
            ulaw_tone(500.0, 1500),
            ulaw_tone(1500.0, 1500),
            ulaw_tone(1000.0, 1500),
        );
        std::thread::scope(|sc| {
            sc.spawn(|| a.audio(0, 160, &fa));
            sc.spawn(|| b.audio(0, 160, &fb));
            sc.spawn(|| s.audio(0, 160, &fs));
        });
        let heard = |p: &RtpPeer| {
            let pk: Vec<_> = p
                .packets()
                .into_iter()
                .filter(|p| {
                    p.at > t0 + Duration::from_millis(400)
                        && p.at < t0 + Duration::from_millis(1500)
                })
                .collect();
            let pcm = ulaw_pcm(&pk);
            [500.0, 1500.0, 1000.0].map(|hz| (tone_share(&pcm, hz) * 100.0).round() / 100.0)
        };
        (heard(&call.a_rtp), heard(&call.b_rtp), heard(&s_rtp))
    };
    // Shares of (500 caller, 1500 agent, 1000 supervisor) in what each hears.
    let (ha, hb, hs) = talk(&mut a, &mut b, &mut s);
    println!("listen:  caller {ha:?} agent {hb:?} supervisor {hs:?}");
    assert!(hs[0] > 0.25 && hs[1] > 0.25, "the supervisor hears both");
    assert!(ha[2] < 0.02 && hb[2] < 0.02, "nobody hears the supervisor");
    assert!(
        ha[1] > 0.9 && hb[0] > 0.9,
        "caller and agent hear each other"
    );
    sw.ctl_json(&["calls", "monitor", &id, "1003", "--mode", "whisper"]);
    let (ha, hb, hs) = talk(&mut a, &mut b, &mut s);
    println!("whisper: caller {ha:?} agent {hb:?} supervisor {hs:?}");
    assert!(
        hb[2] > 0.25 && hb[0] > 0.25,
        "the agent hears the supervisor and the caller"
    );
    assert!(ha[2] < 0.02, "the caller does not hear the supervisor");
    assert!(hs[0] > 0.25 && hs[1] > 0.25);
    sw.ctl_json(&["calls", "monitor", &id, "1003", "--mode", "barge"]);
    let (ha, hb, hs) = talk(&mut a, &mut b, &mut s);
    println!("barge:   caller {ha:?} agent {hb:?} supervisor {hs:?}");
    assert!(
        ha[2] > 0.25 && ha[1] > 0.25,
        "the caller hears the supervisor and the agent"
    );
    assert!(hb[2] > 0.25 && hb[0] > 0.25);
    assert!(hs[0] > 0.25 && hs[1] > 0.25);
}

/// Queue rules: a queue nobody is logged in to (join_empty = false)
/// overflows into another; the maximum wait overflows to a user; the last
/// agent leaving a leave_when_empty queue lets its callers go (here: hung
/// up); music from a WAV file loops.
#[test]
fn overflow_max_wait_leave_when_empty_and_music_files() {
    use e2e::media::{sdp, PCMU};
    use sip::Method;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    e2e::tone_wav_hz(&dir.path().join("prompts/moh.wav"), 1, 700);
    let cfg = format!(
        r#"
[ivr]
prompts_dir = "{}"

[[queues]]
name = "empty"
join_empty = false
overflow = {{ queue = "wait" }}

[[queues]]
name = "wait"
max_wait_secs = 3
music = {{ file = "moh.wav" }}
announce_secs = 0
overflow = {{ user = "1003" }}

[[queues]]
name = "closing"
leave_when_empty = true
music = "none"
announce_secs = 0

[[agents]]
name = "alice"
users = ["1001"]
queues = ["empty", "closing"]

[[agents]]
name = "bob"
users = ["1002"]
queues = ["wait"]

[[routes]]
number = "701"
from = "trunks"
target = {{ queue = "empty" }}
priority = 4
vip = true

[[routes]]
number = "702"
from = "trunks"
target = {{ queue = "closing" }}
"#,
        dir.path().join("prompts").display()
    );
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &e2e::media::media_config(port, dir.path(), "", &cfg),
    );
    let mut op = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    assert_eq!(op.register("1003", "secret", 300).unwrap().code, 200);
    // Nobody in "empty" → "wait" (bob logged in but paused, so he is not
    // offered) → after 3 s of looped music, user 1003.
    sw.ctl_json(&["agents", "login", "bob"]);
    sw.ctl_json(&["agents", "pause", "bob"]);
    let c = e2e::media::dial_in(&sw, "701");
    let (tx, inv) = op
        .request(Duration::from_secs(6))
        .expect("the overflow user rings");
    let waited = c.answered.elapsed().as_secs_f64();
    assert_eq!(inv.method, Method::Invite);
    assert!((2.8..4.5).contains(&waited), "rang after {waited:.2} s");
    let rtp = e2e::rtp::RtpPeer::bind();
    let mut ok = op.answer(&inv, 200, "op");
    ok.body = sdp(rtp.port, "0 101", PCMU);
    op.respond(tx.unwrap(), ok);
    let (_, ack) = op.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    // The music: the 1 s file looped for the 3 s wait.
    let pcm = c.heard();
    let spans = e2e::media::loud_spans(&pcm, 8000);
    let share = e2e::media::tone_share(&pcm, 700.0);
    println!("music {spans:?} share {share:.2}, rang after {waited:.2} s");
    assert!(share > 0.8, "{share}");
    assert!(spans.iter().map(|s| s.1).sum::<f64>() > 2.5, "{spans:?}");
    let btx = e2e::ua::bye_as_callee(&mut op, &inv, "op");
    let _ = op.final_response(btx, Duration::from_secs(5));
    let mut c = c;
    c.take_bye(Duration::from_secs(5));
    let cdrs = sw.cdrs(1);
    assert_eq!(cdrs[0]["destination"], "1003", "{}", cdrs[0]);
    // The caller's priority and VIP went with them to the next queue.
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(log.contains(r#"queue="wait" priority=4 vip=true"#), "{log}");

    // "closing": alice (paused) is the only agent; she logs out: the
    // waiting caller is let go.
    sw.ctl_json(&["agents", "login", "alice"]);
    sw.ctl_json(&["agents", "pause", "alice"]);
    let mut c = e2e::media::dial_in(&sw, "702");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sw.ctl_json(&["queues", "stats", "closing"])[0]["waiting"],
        1
    );
    sw.ctl_json(&["agents", "logout", "alice"]);
    c.take_bye(Duration::from_secs(5));
    let cdrs = sw.cdrs(2);
    let last = cdrs.iter().find(|c| c["dialed"] == "702").unwrap();
    assert_eq!(last["reason"], "queue closing: no agents", "{last}");
}

/// The caller sends 500 Hz, the agent (RTP socket `rtp`, the switch's
/// media address for it `agent_media`) 1500 Hz for `ms`: how much of what
/// each one hears after the first 300 ms is the other's tone.
fn talk(
    c: &e2e::media::TrunkCaller,
    rtp: &e2e::rtp::RtpPeer,
    agent_media: std::net::SocketAddr,
    ms: u32,
) -> (f64, f64) {
    use e2e::media::{tone_share, ulaw_pcm, ulaw_tone};
    use e2e::rtp::Sender;
    let t0 = std::time::Instant::now();
    let mut a = Sender::new(&c.rtp, c.media, 0xCA11);
    let mut b = Sender::new(rtp, agent_media, 0xB0B);
    let (fa, fb) = (ulaw_tone(500.0, ms), ulaw_tone(1500.0, ms));
    std::thread::scope(|s| {
        s.spawn(|| a.audio(0, 160, &fa));
        s.spawn(|| b.audio(0, 160, &fb));
    });
    let after = |p: Vec<e2e::rtp::Packet>| {
        ulaw_pcm(
            &p.into_iter()
                .filter(|p| p.at > t0 + std::time::Duration::from_millis(300))
                .collect::<Vec<_>>(),
        )
    };
    (
        tone_share(&after(c.rtp.packets()), 1500.0),
        tone_share(&after(rtp.packets()), 500.0),
    )
}

/// Queue "q" (no announcements) with agent alice on phone 1001.
const ALICE_IN_Q: &str = r#"
[[queues]]
name = "q"
announce_secs = 0

[[agents]]
name = "alice"
users = ["1001"]
queues = ["q"]
"#;

/// A switch with `cfg` (media anchored), alice's phone 1001 registered and
/// alice logged in.
fn alice_switch(cfg: &str) -> (tempfile::TempDir, SwitchProc, e2e::ua::Ua) {
    let (dir, sw) = e2e::media::media_switch(cfg);
    let mut phone = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    assert_eq!(phone.register("1001", "secret", 300).unwrap().code, 200);
    sw.ctl_json(&["agents", "login", "alice"]);
    (dir, sw, phone)
}

/// The next offer on `phone`: answered (tag `tag`, PCMU) and ACKed.
fn answer_offer(phone: &mut e2e::ua::Ua, tag: &str) -> (sip::Request, e2e::rtp::RtpPeer) {
    let (tx, inv) = phone
        .request(std::time::Duration::from_secs(5))
        .expect("an offer rings the phone");
    assert_eq!(inv.method, sip::Method::Invite);
    let rtp = e2e::rtp::RtpPeer::bind();
    let mut ok = phone.answer(&inv, 200, tag);
    ok.body = e2e::media::sdp(rtp.port, "0 101", e2e::media::PCMU);
    phone.respond(tx.unwrap(), ok);
    let (_, ack) = phone
        .request(std::time::Duration::from_secs(5))
        .expect("ACK");
    assert_eq!(ack.method, sip::Method::Ack);
    (inv, rtp)
}

/// An agent's phone dials *11 (log in), *13 (pause, again: resume) and
/// *12 (log out): the switch answers, says the new state and hangs up.
/// Then callers of two priorities (set by their route) wait; the agent
/// logs in and gets the higher priority first, though it came later.
#[test]
fn agent_feature_codes_and_route_priorities() {
    use sip::Method;
    use std::time::Duration;
    let cfg = ALICE_IN_Q.to_owned()
        + r#"

[[routes]]
number = "711"
from = "trunks"
target = { queue = "q" }

[[routes]]
number = "712"
from = "trunks"
target = { queue = "q" }
priority = 5
"#;
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &e2e::media::media_config(port, dir.path(), "", &cfg),
    );
    let mut phone = e2e::ua::Ua::new("127.0.0.1", sw.addr());
    assert_eq!(phone.register("1001", "secret", 300).unwrap().code, 200);
    let state = || {
        sw.ctl_json(&["agents", "list"])[0]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut dial_code = |code: &str| {
        let invite = phone.invite("1001", code);
        let tx = phone.send(invite.clone());
        let first = phone
            .final_response(tx, Duration::from_secs(5))
            .pop()
            .unwrap();
        let r = if first.code == 407 {
            let inv = phone.with_proxy_auth(&invite, &first, "1001", "secret");
            let tx = phone.send(inv.clone());
            let ok = phone
                .final_response(tx, Duration::from_secs(5))
                .pop()
                .unwrap();
            assert_eq!(ok.code, 200);
            phone.ack(tx, &inv, &ok);
            ok
        } else {
            phone.ack(tx, &invite, &first);
            first
        };
        assert_eq!(r.code, 200, "{code}");
        let answered = std::time::Instant::now();
        let (btx, bye) = phone
            .request(Duration::from_secs(10))
            .expect("BYE after the confirmation");
        assert_eq!(bye.method, Method::Bye);
        phone.respond(btx.unwrap(), sip::response_to(&bye, 200, None));
        // The state was spoken first ("Agent alice, you are ...": ~2 s).
        let spoken = answered.elapsed();
        assert!(
            spoken > Duration::from_millis(1200),
            "{code}: BYE after {spoken:?}"
        );
    };
    dial_code("*11");
    assert_eq!(state(), "available");
    dial_code("*13");
    assert_eq!(state(), "paused");
    dial_code("*13");
    assert_eq!(state(), "available");
    dial_code("*12");
    assert_eq!(state(), "logged_out");

    // Priorities from the route.
    let mut low = e2e::media::dial_in(&sw, "711");
    std::thread::sleep(Duration::from_millis(500));
    let _high = e2e::media::dial_in(&sw, "712");
    std::thread::sleep(Duration::from_millis(300));
    sw.ctl_json(&["agents", "login", "alice"]);
    let (inv, _rtp) = answer_offer(&mut phone, "alice");
    let btx = e2e::ua::bye_as_callee(&mut phone, &inv, "alice");
    let _ = phone.final_response(btx, Duration::from_secs(5));
    let cdrs = sw.cdrs(5);
    let taken = cdrs
        .iter()
        .find(|c| c["agent"] == "alice")
        .expect("a CDR with alice");
    assert_eq!(taken["dialed"], "712", "the higher priority first: {taken}");
    assert_eq!(sw.ctl_json(&["queues", "stats", "q"])[0]["waiting"], 1);
    let bye = low.ua.bye(&low.invite, &low.ok);
    low.ua.send(bye);
}

/// An IVR flow hands the caller to a queue with the priority it set; the
/// agent's call carries the flow's path and the queue in its CDR.
#[test]
fn an_ivr_flow_sends_the_caller_to_a_queue() {
    use std::time::Duration;
    let cfg = ALICE_IN_Q.to_owned()
        + r#"

[[routes]]
number = "720"
from = "trunks"
target = { flow = "front" }

[flows.front]
start = "vip"
[flows.front.nodes.vip]
type = "set"
vars = { priority = "7", vip = "yes" }
next = "toq"
[flows.front.nodes.toq]
type = "transfer"
queue = "q"
"#;
    let (_dir, sw, mut phone) = alice_switch(&cfg);
    let mut c = e2e::media::dial_in(&sw, "720");
    let (inv, _rtp) = answer_offer(&mut phone, "alice");
    let btx = e2e::ua::bye_as_callee(&mut phone, &inv, "alice");
    let _ = phone.final_response(btx, Duration::from_secs(5));
    c.take_bye(Duration::from_secs(5));
    let cdrs = sw.cdrs(1);
    let cdr = &cdrs[0];
    assert_eq!(cdr["queue"], "q", "{cdr}");
    assert_eq!(cdr["agent"], "alice");
    assert_eq!(
        cdr["ivr_path"],
        serde_json::json!(["front:vip", "front:toq"])
    );
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    let joined = log
        .lines()
        .find(|l| l.contains("joined queue"))
        .unwrap_or("");
    assert!(
        joined.ends_with("queue=\"q\" priority=7 vip=true"),
        "{joined}"
    );
}

/// An agent who lets `auto_pause_after` offers in a row ring out is paused
/// ("missed offers") and gets no more calls until resumed (issue 6,
/// acceptance 2, second half).
#[test]
fn an_agent_who_misses_offers_is_paused() {
    use std::time::Duration;
    let cfg = ALICE_IN_Q.replace("announce_secs = 0", "announce_secs = 0\nring_timeout_secs = 1")
        + "[acd]\nauto_pause_after = 2\n\n[[routes]]\nnumber = \"730\"\nfrom = \"trunks\"\ntarget = { queue = \"q\" }\n";
    let (_dir, sw, mut phone) = alice_switch(&cfg);
    let _caller = e2e::media::dial_in(&sw, "730");
    // Two offers ring out (1 s each, then CANCEL; the second after the
    // 5 s retry pause for the same caller).
    for n in 1..=2 {
        let (tx, inv) = phone
            .request(Duration::from_secs(8))
            .unwrap_or_else(|| panic!("offer {n}"));
        assert_eq!(inv.method, sip::Method::Invite, "offer {n}");
        phone.respond(tx.unwrap(), sip::response_to(&inv, 180, Some("alice")));
        let (ctx_, cancel) = phone.request(Duration::from_secs(3)).expect("CANCEL");
        assert_eq!(cancel.method, sip::Method::Cancel);
        phone.respond(ctx_.unwrap(), sip::response_to(&cancel, 200, None));
        phone.respond(tx.unwrap(), sip::response_to(&inv, 487, Some("alice")));
    }
    std::thread::sleep(Duration::from_millis(300));
    let a = &sw.ctl_json(&["agents", "list"])[0];
    assert_eq!(
        (a["state"].as_str(), a["reason"].as_str()),
        (Some("paused"), Some("missed offers")),
        "{a}"
    );
    // No more offers while paused.
    let more = phone.request(Duration::from_secs(6));
    assert!(
        more.as_ref()
            .is_none_or(|(_, r)| r.method != sip::Method::Invite),
        "{more:?}"
    );
    assert_eq!(sw.ctl_json(&["queues", "stats", "q"])[0]["waiting"], 1);
}

/// Ring-all with real parallel legs: alice has two phones (1001, 1003),
/// bob one (1002). A caller rings all three at once, each with the queue in
/// the display name; bob answers and talks to the caller; both of alice's
/// phones get a CANCEL. Then an agent whose phone is not registered counts
/// as a miss while the other agent's phone rings.
#[test]
fn ring_all_rings_every_phone_and_cancels_the_others_on_answer() {
    use e2e::media::{sdp, sdp_addr, PCMU};
    use e2e::rtp::RtpPeer;
    use sip::{Method, SipMessage};
    use std::time::Duration;
    let cfg = r#"
[[queues]]
name = "all"
strategy = "ring-all"
announce_secs = 0
ring_timeout_secs = 10
wrap_up_secs = 0

[[agents]]
name = "alice"
users = ["1001", "1003"]
queues = ["all"]

[[agents]]
name = "bob"
users = ["1002"]
queues = ["all"]

[[routes]]
number = "720"
from = "trunks"
target = { queue = "all" }
"#;
    let (_dir, sw) = e2e::media::media_switch(cfg);
    let mut phones: Vec<e2e::ua::Ua> = ["1001", "1003", "1002"]
        .iter()
        .map(|u| {
            let mut p = e2e::ua::Ua::new("127.0.0.1", sw.addr());
            assert_eq!(p.register(u, "secret", 300).unwrap().code, 200);
            p
        })
        .collect();
    sw.ctl_json(&["agents", "login", "alice"]);
    sw.ctl_json(&["agents", "login", "bob"]);
    let mut c = e2e::media::dial_in(&sw, "720");
    let mut rung = Vec::new();
    for p in phones.iter_mut() {
        let (tx, inv) = p
            .request(Duration::from_secs(5))
            .expect("every phone rings");
        assert_eq!(inv.method, Method::Invite);
        let from = inv.headers.get(&sip::Name::From).unwrap().to_owned();
        assert!(from.contains("\"all: 5551234\""), "{from}");
        p.respond(tx.unwrap(), sip::response_to(&inv, 180, Some("ring")));
        rung.push((tx.unwrap(), inv));
    }
    let agents = sw.ctl_json(&["agents", "list"]);
    assert_eq!(
        (agents[0]["state"].as_str(), agents[1]["state"].as_str()),
        (Some("ringing"), Some("ringing")),
        "{agents}"
    );
    // Bob answers.
    let rtp = RtpPeer::bind();
    let mut ok = phones[2].answer(&rung[2].1, 200, "bob");
    ok.body = sdp(rtp.port, "0 101", PCMU);
    phones[2].respond(rung[2].0, ok);
    let (_, ack) = phones[2].request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    // Alice's two phones stop ringing.
    for i in 0..2 {
        let (tx, cancel) = phones[i]
            .request(Duration::from_secs(5))
            .expect("CANCEL to alice's phone");
        assert_eq!(cancel.method, Method::Cancel, "phone {i}");
        assert_eq!(cancel.call_id(), rung[i].1.call_id());
        phones[i].respond(tx.unwrap(), sip::response_to(&cancel, 200, None));
        phones[i].respond(rung[i].0, sip::response_to(&rung[i].1, 487, Some("ring")));
    }
    // The caller and bob talk.
    let (ca, ag) = talk(&c, &rtp, sdp_addr(rung[2].1.body()), 800);
    assert!(
        ca > 0.8 && ag > 0.8,
        "caller hears bob {ca:.2}, bob the caller {ag:.2}"
    );
    let agents = sw.ctl_json(&["agents", "list"]);
    assert_eq!(agents[0]["state"], "available", "{agents}");
    assert_eq!(agents[1]["state"], "on_call", "{agents}");
    let btx = e2e::ua::bye_as_callee(&mut phones[2], &rung[2].1, "bob");
    let _ = phones[2].final_response(btx, Duration::from_secs(5));
    c.take_bye(Duration::from_secs(5));
    let cdrs = sw.cdrs(1);
    assert_eq!(cdrs[0]["agent"], "bob", "{}", cdrs[0]);
    assert_eq!(cdrs[0]["destination"], "1002", "{}", cdrs[0]);

    // Alice's phones unregister: the next caller rings bob only, and
    // alice's offer (no phone to ring) is a miss.
    for (i, u) in [(0, "1001"), (1, "1003")] {
        assert_eq!(phones[i].register(u, "secret", 0).unwrap().code, 200);
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut c2 = e2e::media::dial_in(&sw, "720");
    let (tx, inv) = phones[2]
        .request(Duration::from_secs(5))
        .expect("bob rings");
    assert_eq!(inv.method, Method::Invite);
    let ok = phones[2].answer(&inv, 200, "bob2");
    let mut ok = ok;
    ok.body = sdp(rtp.port, "0 101", PCMU);
    phones[2].respond(tx.unwrap(), ok);
    let _ = phones[2].request(Duration::from_secs(5)).expect("ACK");
    let bye = c2.ua.bye(&c2.invite, &c2.ok);
    c2.ua.send(bye);
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(
        log.contains("queue: cannot ring the agent's phone")
            && log.contains("offer missed agent=alice"),
        "{log}"
    );
    // A caller who hangs up while bob's phone rings: bob's phone is cancelled.
    let (tx, bye) = phones[2]
        .request(Duration::from_secs(5))
        .expect("BYE to bob");
    assert_eq!(bye.method, Method::Bye);
    phones[2].respond(tx.unwrap(), sip::response_to(&bye, 200, None));
    std::thread::sleep(Duration::from_millis(200));
    let mut c3 = e2e::media::dial_in(&sw, "720");
    let (tx, inv) = phones[2]
        .request(Duration::from_secs(5))
        .expect("bob rings");
    assert_eq!(inv.method, Method::Invite);
    phones[2].respond(tx.unwrap(), sip::response_to(&inv, 180, Some("ring")));
    let bye = c3.ua.bye(&c3.invite, &c3.ok);
    c3.ua.send(bye);
    let (ctx_, cancel) = phones[2].request(Duration::from_secs(5)).expect("CANCEL");
    assert_eq!(cancel.method, Method::Cancel);
    phones[2].respond(ctx_.unwrap(), sip::response_to(&cancel, 200, None));
    phones[2].respond(tx.unwrap(), sip::response_to(&inv, 487, Some("ring")));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sw.ctl_json(&["agents", "list"])[1]["state"], "available");
    assert_eq!(
        sw.ctl_json(&["calls", "list"]).as_array().map(Vec::len),
        Some(0)
    );
}
