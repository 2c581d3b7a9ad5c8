//! IVR flows in the running switch:
//!
//! - three numbers of a range land in three flows (each says its own
//!   prompt, which the caller hears as real speech of the expected length);
//!   outside opening hours (simulated clock) the closed-hours flow answers;
//! - sipp sends RFC 4733 digits (Debian's dtmf pcaps) through a two-level
//!   menu: barge-in, an invalid digit, a timeout, then a choice that
//!   transfers to a registered user who talks with the caller; other runs
//!   take the give-up path and a failed transfer's `on_failure`.

use e2e::media::{media_config, sdp, sdp_addr, ulaw_pcm, ulaw_tone, PCMU};
use e2e::rtp::{RtpPeer, Sender};
use e2e::switch::SwitchProc;
use e2e::ua::Ua;
use sip::{Method, SipMessage};
use std::path::Path;
use std::time::{Duration, Instant};

const FLOWS: &str = r#"
[[schedules]]
name = "office"
timezone = "Europe/Berlin"
open = ["mon-fri 08:00-18:00"]

[[routes]]
pattern = "400-800-1xxx"
from = "trunks"
target = { flow = "sales" }
schedule = "office"
closed = { flow = "closed" }

[[routes]]
pattern = "400-800-2xxx"
from = "trunks"
target = { flow = "support" }
schedule = "office"
closed = { flow = "closed" }

[[routes]]
pattern = "400-800-3xxx"
from = "trunks"
target = { flow = "billing" }
schedule = "office"
closed = { flow = "closed" }

[flows.sales]
start = "hello"
[flows.sales.nodes.hello]
type = "hangup"
prompt = "Thank you for calling the sales department. Goodbye."

[flows.support]
start = "hello"
[flows.support.nodes.hello]
type = "hangup"
prompt = "You have reached technical support. Please call again later."

[flows.billing]
start = "hello"
[flows.billing.nodes.hello]
type = "hangup"
prompt = "Billing."

[flows.closed]
start = "hello"
[flows.closed.nodes.hello]
type = "hangup"
prompt = "We are closed. Our opening hours are Monday to Friday, eight to six."
reason = "closed"
"#;

/// Seconds of speech espeak-ng makes of `text` (en-us), measured from its WAV.
fn espeak_secs(text: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("t.wav");
    let st = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng");
    assert!(st.success());
    // 16-bit mono at 22050 Hz after the 44-byte header.
    let bytes = std::fs::read(&wav).unwrap();
    let samples: Vec<i16> = bytes[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    // espeak-ng pads with silence; count from the first to the last loud 20 ms.
    let spans = e2e::media::loud_spans(&samples, 22050);
    spans.last().map_or(0.0, |(s, l)| s + l) - spans.first().map_or(0.0, |(s, _)| *s)
}

fn ivr_switch(dir: &Path, port: u16, env: &[(&str, &str)]) -> SwitchProc {
    let cfg = media_config(port, dir, "", FLOWS);
    SwitchProc::start_with_env(dir, port, &cfg, env)
}

/// Monday 2026-11-23 10:00 in Berlin: open.
const OPEN: &str = "2026-11-23T09:00:00Z";
/// Sunday: closed.
const SUNDAY: &str = "2026-11-22T12:00:00Z";

#[test]
fn numbers_of_a_range_reach_their_flows_and_closed_hours_the_closed_flow() {
    e2e::require("espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw = ivr_switch(dir.path(), port, &[("SWITCHBOARD_FAKE_NOW", OPEN)]);
    let texts = [
        (
            "4008001000",
            "sales",
            "Thank you for calling the sales department. Goodbye.",
        ),
        (
            "4008002345",
            "support",
            "You have reached technical support. Please call again later.",
        ),
        ("4008003999", "billing", "Billing."),
    ];
    for (number, flow, text) in texts {
        let mut c = e2e::media::dial_in(&sw, number);
        let bye = c.take_bye(Duration::from_secs(20));
        let pcm = c.heard();
        let spans = e2e::media::loud_spans(&pcm, 8000);
        let speech =
            spans.last().map_or(0.0, |(s, l)| s + l) - spans.first().map_or(0.0, |(s, _)| *s);
        let expected = espeak_secs(text);
        let rms = e2e::rtp::rms_dbfs(&pcm);
        println!(
            "{number} → {flow}: heard {speech:.2} s of speech in {} spans (espeak-ng alone: {expected:.2} s), {rms:.1} dBFS, BYE after {:.2} s",
            spans.len(),
            (bye - c.answered).as_secs_f64()
        );
        // Acceptance 4: real speech of the expected length (±20 %), not silence.
        assert!(
            (speech - expected).abs() <= expected * 0.2,
            "{number}: {speech:.2} s heard, {expected:.2} s expected"
        );
        assert!(
            rms > -35.0,
            "{number}: the prompt is too quiet: {rms:.1} dBFS"
        );
        // Speech has pauses between words: several loud spans for a sentence.
        if text.len() > 20 {
            assert!(spans.len() >= 2, "{number}: {spans:?}");
        }
    }
    let cdrs = sw.ctl_json(&["cdr", "query", "--since", "10m"]);
    let cdrs = cdrs.as_array().unwrap();
    assert_eq!(cdrs.len(), 3, "{cdrs:?}");
    for (number, flow, _) in texts {
        let cdr = cdrs
            .iter()
            .find(|c| c["dialed"] == number)
            .unwrap_or_else(|| panic!("no CDR for {number}: {cdrs:?}"));
        assert_eq!(cdr["destination"], format!("flow:{flow}"), "{cdr}");
        assert_eq!(cdr["disposition"], "answered", "{cdr}");
        assert_eq!(
            cdr["ivr_path"],
            serde_json::json!([format!("{flow}:hello")]),
            "{cdr}"
        );
        assert_eq!(cdr["reason"], "ivr hangup", "{cdr}");
    }
    drop(sw);

    // Sunday: every number of the range gets the closed-hours flow.
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let sw = ivr_switch(dir.path(), port, &[("SWITCHBOARD_FAKE_NOW", SUNDAY)]);
    for (number, _, _) in texts {
        let mut c = e2e::media::dial_in(&sw, number);
        c.take_bye(Duration::from_secs(20));
        assert!(e2e::rtp::rms_dbfs(&c.heard()) > -35.0);
    }
    let cdrs = sw.ctl_json(&["cdr", "query", "--since", "10m"]);
    let cdrs = cdrs.as_array().unwrap();
    assert_eq!(cdrs.len(), 3);
    for c in cdrs {
        assert_eq!(c["destination"], "flow:closed", "{c}");
        assert_eq!(c["reason"], "closed", "{c}");
    }
}

const MENU: &str = r#"
[[routes]]
prefix = "500"
from = "trunks"
target = { flow = "main" }

[flows.main]
start = "top"
[flows.main.nodes.top]
type = "menu"
prompt = "Main menu."
options = { "1" = "sales", "2" = "support" }
timeout_secs = 3
retries = 1
invalid_prompt = "Invalid."
on_failure = "operator"
[flows.main.nodes.support]
type = "menu"
prompt = "Support menu."
options = { "4" = "tech", "5" = "billing" }
timeout_secs = 3
retries = 2
invalid_prompt = "Invalid."
on_failure = "operator"
[flows.main.nodes.tech]
type = "transfer"
user = "1001"
[flows.main.nodes.billing]
type = "transfer"
user = "1002"
[flows.main.nodes.sales]
type = "transfer"
user = "1003"
timeout_secs = 5
on_failure = "operator"
[flows.main.nodes.operator]
type = "hangup"
prompt = "Goodbye."
reason = "no choice"
"#;

/// A switch with `MENU` (and `media` lines) and user 1001 registered.
fn menu_switch(dir: &Path, media: &str) -> (SwitchProc, Ua) {
    let port = e2e::free_port("127.0.0.1");
    let cfg = media_config(port, dir, media, MENU);
    let sw = SwitchProc::start(dir, port, &cfg);
    let mut agent = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(agent.register("1001", "secret", 300).unwrap().code, 200);
    (sw, agent)
}

/// 1001 gets the flow's transfer and answers it (SDP for a new RTP peer);
/// the INVITE and the peer, once the ACK came.
fn agent_answers(agent: &mut Ua, sw: &SwitchProc) -> (sip::Request, RtpPeer) {
    let (tx, inv) = agent
        .request(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no INVITE for 1001: {}", sw.log_tail()));
    assert_eq!(inv.method, Method::Invite);
    let rtp = RtpPeer::bind();
    let mut ok = agent.answer(&inv, 200, "agent");
    ok.body = sdp(rtp.port, "0 101", PCMU);
    agent.respond(tx.unwrap(), ok);
    let (_, ack) = agent.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    (inv, rtp)
}

/// A sipp caller from the carrier's address that dials `number`, then
/// for each (pause ms, digit) waits and plays Debian's RFC 4733 pcap of the
/// digit, then waits for the BYE (from the switch or, after a transfer, the
/// far end) and answers it.
fn sipp_dtmf_scenario(steps: &[(u32, char)]) -> String {
    let mut body = String::new();
    for (pause, d) in steps {
        let name = match d {
            '*' => "star".to_owned(),
            '#' => "pound".to_owned(),
            d => d.to_string(),
        };
        body.push_str(&format!(
            "  <pause milliseconds=\"{pause}\"/>\n  <nop><action><exec play_pcap_audio=\"pcap/dtmf_2833_{name}.pcap\"/></action></nop>\n"
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="IVR caller with DTMF">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:5551234@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-4]
      From: sipp <sip:5551234@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
{body}  <recv request="BYE" timeout="40000"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    )
}

/// Runs one sipp caller with `steps` against the switch in `dir`.
fn sipp_caller(
    dir: &Path,
    sw: &SwitchProc,
    steps: &[(u32, char)],
) -> std::thread::JoinHandle<e2e::sipp::SippStats> {
    let scen = dir.join(format!("ivr-{}.xml", e2e::free_port("127.0.0.1")));
    std::fs::write(&scen, sipp_dtmf_scenario(steps)).unwrap();
    let pcap = dir.join("pcap");
    if !pcap.exists() {
        std::os::unix::fs::symlink("/usr/share/sip-tester", &pcap).unwrap();
    }
    let remote = sw.addr().to_string();
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        e2e::sipp::run_trunk_call(
            &dir,
            &remote,
            &[
                "-sf",
                scen.to_str().unwrap(),
                "-s",
                "5000",
                "-timeout",
                "60",
            ],
            Duration::from_secs(70),
        )
    })
}

#[test]
fn dtmf_from_sipp_walks_a_two_level_menu_to_a_user() {
    e2e::require("sipp");
    e2e::require("espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let cfg = media_config(port, dir.path(), "", MENU);
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    let mut agent = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(agent.register("1001", "secret", 300).unwrap().code, 200);

    // Prompts last under a second each ("Main menu." ~0.8 s). From the ACK:
    // 2.0 s "2" (after the main prompt) → support menu; 4.0 s "3": invalid,
    // "Invalid." and the support prompt again (~to 5.6 s), then 3 s without
    // a digit: timeout (~8.6 s), the prompt again; 10.5 s "4" → user 1001.
    // (Debian's pcaps are cuts of one stream, digits in order 1..9: a
    // caller's timestamps must grow, so the digits do too.)
    let steps = [(2000, '2'), (2000, '3'), (6500, '4')];
    let caller = sipp_caller(dir.path(), &sw, &steps);
    let (tx, inv) = agent
        .request(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no INVITE for 1001: {}", sw.log_tail()));
    assert_eq!(inv.method, Method::Invite);
    let from = inv.from().unwrap();
    assert_eq!(
        from.uri.sip().unwrap().user_decoded().as_deref(),
        Some("5551234"),
        "the caller's number is shown"
    );
    let rtp = RtpPeer::bind();
    let mut ok = agent.answer(&inv, 200, "agent");
    ok.body = sdp(rtp.port, "0 101", PCMU);
    agent.respond(tx.unwrap(), ok.clone());
    let (_, ack) = agent.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    // The agent talks; sipp's caller (no audio of its own) is bridged: the
    // agent's tone reaches sipp's media port, which the switch latches to.
    let mut s = Sender::new(&rtp, sdp_addr(inv.body()), 0xA6E7);
    s.audio(0, 160, &ulaw_tone(700.0, 1000));
    // The agent hangs up; sipp gets the BYE.
    let btx = e2e::ua::bye_as_callee(&mut agent, &inv, "agent");
    let r = agent.final_response(btx, Duration::from_secs(5));
    assert_eq!(r.last().map(|r| r.code), Some(200));
    let stats = caller.join().unwrap();
    assert_eq!(stats.successful, 1, "sipp: {stats:?}\n{}", sw.log_tail());

    let cdrs = sw.cdrs(1);
    let cdr = &cdrs[0];
    println!("{cdr}");
    assert_eq!(cdr["destination"], "1001", "{cdr}");
    assert_eq!(cdr["disposition"], "answered");
    assert_eq!(
        cdr["ivr_path"],
        serde_json::json!([
            "main:top(2)",
            "main:support(invalid 3,timeout,4)",
            "main:tech"
        ]),
        "{cdr}"
    );
    assert_eq!(cdr["reason"], "callee hung up");
}

#[test]
fn menu_timeouts_and_a_failed_transfer_take_their_configured_paths() {
    e2e::require("sipp");
    e2e::require("espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let cfg = media_config(port, dir.path(), "", MENU);
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    // 1: no digit at all: top times out twice (retries = 1) → operator.
    let a = sipp_caller(dir.path(), &sw, &[]);
    // 2: "1" → sales → user 1003 is not registered → on_failure operator.
    let b = sipp_caller(dir.path(), &sw, &[(1500, '1')]);
    for (name, h) in [("no digit", a), ("sales", b)] {
        let stats = h.join().unwrap();
        assert_eq!(stats.successful, 1, "{name}: {stats:?}\n{}", sw.log_tail());
    }
    let cdrs = sw.cdrs(2);
    assert_eq!(cdrs.len(), 2, "{cdrs:?}");
    let mut paths: Vec<serde_json::Value> = cdrs.iter().map(|c| c["ivr_path"].clone()).collect();
    paths.sort_by_key(|p| p.to_string());
    assert_eq!(
        paths,
        [
            serde_json::json!(["main:top(1)", "main:sales(failed 480)", "main:operator"]),
            serde_json::json!(["main:top(timeout,timeout,gave up)", "main:operator"]),
        ]
    );
    for c in &cdrs {
        assert_eq!(c["reason"], "no choice", "{c}");
        assert_eq!(c["destination"], "flow:main", "{c}");
    }
}

/// After the menu the caller and the user the flow chose hear each other:
/// the caller's digits (RFC 4733 from our own sender) pick "2" then "4";
/// 1001 answers; 500 Hz from the caller and 1500 Hz from 1001 cross.
#[test]
fn after_the_menu_caller_and_user_talk() {
    e2e::require("espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let (sw, mut agent) = menu_switch(dir.path(), "record = \"stereo\"");
    let c = e2e::media::dial_in(&sw, "500");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.rtp.packets().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        c.rtp.packets().first().expect("the main prompt").from,
        c.media
    );
    let mut s = Sender::new(&c.rtp, c.media, 0xCA11);
    // Barge in on the main prompt, then on the support prompt.
    s.digits(101, "2", 100);
    std::thread::sleep(Duration::from_millis(300));
    s.digits(101, "4", 100);
    let (inv, rtp) = agent_answers(&mut agent, &sw);
    let t0 = Instant::now();
    let mut b = Sender::new(&rtp, sdp_addr(inv.body()), 0xB0B0);
    let (fa, fb) = (ulaw_tone(500.0, 1500), ulaw_tone(1500.0, 1500));
    std::thread::scope(|sc| {
        sc.spawn(|| s.audio(0, 160, &fa));
        sc.spawn(|| b.audio(0, 160, &fb));
    });
    let after = |pkts: Vec<e2e::rtp::Packet>| -> Vec<i16> {
        let p: Vec<_> = pkts
            .into_iter()
            .filter(|p| p.at > t0 + Duration::from_millis(300))
            .collect();
        ulaw_pcm(&p)
    };
    let caller_heard = after(c.rtp.packets());
    let agent_heard = after(rtp.packets());
    let (ca, ag) = (
        e2e::media::tone_share(&caller_heard, 1500.0),
        e2e::media::tone_share(&agent_heard, 500.0),
    );
    println!("caller hears 1001 at share {ca:.2} ({} samples), 1001 hears the caller at {ag:.2} ({} samples)", caller_heard.len(), agent_heard.len());
    assert!(ca > 0.8 && ag > 0.8, "{ca:.2} {ag:.2}");
    let btx = e2e::ua::bye_as_callee(&mut agent, &inv, "agent");
    let r = agent.final_response(btx, Duration::from_secs(5));
    assert_eq!(r.last().map(|r| r.code), Some(200));
    let mut c = c;
    c.take_bye(Duration::from_secs(5));
    let cdrs = sw.cdrs(1);
    assert_eq!(
        cdrs[0]["ivr_path"],
        serde_json::json!(["main:top(2)", "main:support(4)", "main:tech"])
    );
    // The call's stereo recording (from the IVR's answer on) has the
    // caller left and, after the transfer, 1001 right.
    let rec = cdrs[0]["recordings"][0]
        .as_str()
        .expect("a recording")
        .to_owned();
    let found = e2e::media::wait_recording(&sw.dir.join("recordings"), &sw);
    assert_eq!(found, sw.dir.join(&rec));
    let rec = found.display().to_string();
    let (left, right) = (
        e2e::media::wav_channel(std::path::Path::new(&rec), 1),
        e2e::media::wav_channel(std::path::Path::new(&rec), 2),
    );
    let (ls, rs) = (
        e2e::media::loud_spans(&left, 8000),
        e2e::media::loud_spans(&right, 8000),
    );
    println!("recording: left spans {ls:?}, right spans {rs:?}");
    let (start, len) = *rs.last().expect("1001 on the right");
    let talk = &right[(start * 8000.0) as usize..((start + len) * 8000.0) as usize];
    assert!(
        len > 1.0 && e2e::media::tone_share(talk, 1500.0) > 0.8,
        "{rs:?}"
    );
    let (start, len) = *ls.last().expect("the caller on the left");
    let talk = &left[(start * 8000.0) as usize..((start + len) * 8000.0) as usize];
    assert!(
        len > 1.0 && e2e::media::tone_share(talk, 500.0) > 0.8,
        "{ls:?}"
    );
}

/// `switchboard config check` names the flow file, line and reason for an
/// unknown node, a loop without exit and a missing WAV; a running switch
/// refuses a reload with a broken flow and keeps its flows; a good reload
/// changes the flow for new calls while a call in the old one finishes it.
#[test]
fn broken_flow_files_are_refused_and_reload_keeps_calls_in_their_flow() {
    e2e::require("sox");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = e2e::free_port("127.0.0.1");
    std::fs::create_dir_all(d.join("flows")).unwrap();
    std::fs::create_dir_all(d.join("prompts")).unwrap();
    e2e::tone_wav(&d.join("prompts/beep.wav"), 1);
    let main = media_config(
        port,
        d,
        "",
        "[ivr]\nflows_dir = \"flows\"\nprompts_dir = \"prompts\"\n\n[[routes]]\nnumber = \"600\"\nfrom = \"trunks\"\ntarget = { flow = \"main\" }\n",
    );
    let cfg_path = d.join("switchboard.toml");
    std::fs::write(&cfg_path, &main).unwrap();
    let flow = |reason: &str| {
        format!(
            "start = \"menu\"\n\n[nodes.menu]\ntype = \"menu\"\nprompt = {{ file = \"beep.wav\" }}\noptions = {{ \"1\" = \"done\" }}\ntimeout_secs = 30\n\n[nodes.done]\ntype = \"hangup\"\nreason = \"{reason}\"\n"
        )
    };
    let flow_file = d.join("flows/main.toml");
    std::fs::write(&flow_file, flow("old flow")).unwrap();
    let check = || {
        let out = std::process::Command::new(e2e::bin_dir().join("switchboard"))
            .args(["config", "check"])
            .arg(&cfg_path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    };
    assert_eq!(check(), (true, String::new()));
    let good = flow("old flow");
    let ff = flow_file.display();
    for (broken, want) in [
        (
            good.replace("\"1\" = \"done\"", "\"1\" = \"don\""),
            format!("{ff}:6: nodes.menu.options.1: unknown node \"don\""),
        ),
        (
            good.replace("options = { \"1\" = \"done\" }", "options = { \"1\" = \"menu\" }\non_failure = \"menu\""),
            format!("{ff}:3: nodes.menu: loop without exit: from \"menu\" no path leads to a transfer, a hang-up or an on_failure"),
        ),
        (
            good.replace("beep.wav", "missing.wav"),
            format!("{ff}:5: nodes.menu.prompt: WAV file {}: No such file or directory (os error 2)", d.join("prompts/missing.wav").display()),
        ),
    ] {
        std::fs::write(&flow_file, &broken).unwrap();
        let (ok, err) = check();
        println!("{err}");
        assert!(!ok);
        assert_eq!(err, want);
    }
    std::fs::write(&flow_file, &good).unwrap();

    // (The test harness writes the config to the same path.)
    let sw = SwitchProc::start(d, port, &main);
    let mut old = e2e::media::dial_in(&sw, "600");
    // A broken flow: the reload is refused with the reason; the flows stay.
    std::fs::write(
        &flow_file,
        good.replace("\"1\" = \"done\"", "\"1\" = \"don\""),
    )
    .unwrap();
    let out = sw.ctl(&["reload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("reload refused") && err.contains("unknown node \"don\""),
        "{err}"
    );
    // A good new version: new calls get it, the call in progress keeps its flow.
    std::fs::write(&flow_file, flow("new flow")).unwrap();
    let out = sw.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut new = e2e::media::dial_in(&sw, "600");
    for c in [&mut old, &mut new] {
        let mut s = Sender::new(&c.rtp, c.media, 0x600);
        s.digits(101, "1", 100);
        c.take_bye(Duration::from_secs(5));
    }
    let cdrs = sw.cdrs(2);
    let mut reasons: Vec<&str> = cdrs.iter().map(|c| c["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["new flow", "old flow"]);
}

/// DTMF by SIP INFO (`application/dtmf-relay`, as many phones and carriers
/// send it): the caller's INFO digits walk the menu like RFC 4733 ones
/// ("2", then "4" → user 1001); once the caller and the user are bridged,
/// an INFO from the caller reaches the user with its body (relayed).
#[test]
fn dtmf_by_info_walks_the_menu_and_is_relayed_once_bridged() {
    use sip::{Name, Request};
    e2e::require("espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let (sw, mut agent) = menu_switch(dir.path(), "");
    let wait = Duration::from_secs(5);
    let caller = e2e::media::dial_in(&sw, "5001");
    let mut c = caller.ua;
    let mut d = sip::dialog::Dialog::uac(&caller.invite, &caller.ok).unwrap();
    let info = |c: &Ua, d: &mut sip::dialog::Dialog, digit: char| -> Request {
        let mut r = c.in_dialog(d, Method::Info);
        r.headers.push(Name::ContentType, "application/dtmf-relay");
        r.body = bytes::Bytes::from(format!("Signal={digit}\r\nDuration=160\r\n"));
        r
    };
    for digit in ['2', '4'] {
        std::thread::sleep(Duration::from_millis(1200));
        let r = info(&c, &mut d, digit);
        let t = c.send(r);
        assert_eq!(c.final_response(t, wait).pop().map(|r| r.code), Some(200));
    }
    let _answered = agent_answers(&mut agent, &sw);
    // Bridged: the caller's INFO is relayed to the user.
    let r = info(&c, &mut d, '7');
    let t = c.send(r);
    let (itx, relayed) = agent.request(wait).expect("the relayed INFO");
    assert_eq!(relayed.method, Method::Info);
    assert_eq!(
        relayed.headers.get(&Name::ContentType),
        Some("application/dtmf-relay")
    );
    assert!(String::from_utf8_lossy(relayed.body()).contains("Signal=7"));
    agent.respond(itx.unwrap(), sip::response_to(&relayed, 200, None));
    assert_eq!(c.final_response(t, wait).pop().map(|r| r.code), Some(200));
    let bye = c.in_dialog(&mut d, Method::Bye);
    let bt = c.send(bye);
    let (btx, b) = agent.request(wait).expect("BYE");
    assert_eq!(b.method, Method::Bye);
    agent.respond(btx.unwrap(), sip::response_to(&b, 200, None));
    assert_eq!(c.final_response(bt, wait).pop().map(|r| r.code), Some(200));
    let cdrs = sw.cdrs(1);
    assert_eq!(
        cdrs[0]["ivr_path"],
        serde_json::json!(["main:top(2)", "main:support(4)", "main:tech"]),
        "{}",
        cdrs[0]
    );
}
