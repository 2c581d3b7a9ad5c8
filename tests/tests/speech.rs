//! Speech in IVR menus:
//!
//! - baresip calls on G.722 (16 kHz) and "says" a word synthesized by
//!   espeak-ng (its audio source); pocketsphinx recognizes it and the flow
//!   transfers to the user that word names;
//! - with `[ivr] asr = "websocket"`, a G.711 caller's speech streams to a
//!   small engine in the test suite over the WebSocket hook, whose result
//!   routes the call.

use e2e::baresip::Baresip;
use e2e::media::{media_config, sdp, PCMU};
use e2e::rtp::{linear_to_ulaw, RtpPeer, Sender};
use e2e::switch::SwitchProc;
use e2e::ua::Ua;
use sip::{Method, SipMessage};
use std::path::Path;
use std::time::{Duration, Instant};

const FLOW: &str = r#"
[[routes]]
number = "700"
from = "any"
target = { flow = "voice" }

[flows.voice]
start = "ask"
[flows.voice.nodes.ask]
type = "speech"
prompt = "Say sales or support."
phrases = { sales = "sales", support = "support", billing = "billing" }
timeout_secs = 10
retries = 1
on_failure = "bye"
[flows.voice.nodes.sales]
type = "transfer"
user = "1001"
[flows.voice.nodes.support]
type = "transfer"
user = "1002"
[flows.voice.nodes.billing]
type = "transfer"
user = "1002"
[flows.voice.nodes.bye]
type = "hangup"
prompt = "Goodbye."
"#;

/// `word` by espeak-ng at 16 kHz mono, after `lead` s of silence and
/// followed by 15 s of it (baresip hangs up when its source ends).
fn spoken_wav(dir: &Path, word: &str, lead: f64) -> std::path::PathBuf {
    let raw = dir.join(format!("{word}-22k.wav"));
    let st = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&raw)
        .arg(word)
        .status()
        .unwrap();
    assert!(st.success());
    let out = dir.join(format!("{word}.wav"));
    let st = std::process::Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&out)
        .args(["pad", &lead.to_string(), "15"])
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// A user answering on our own UA: waits for the INVITE, answers, and
/// returns the INVITE.
fn answer(ua: &mut Ua, sw: &SwitchProc, who: &str) -> sip::Request {
    let (tx, inv) = ua
        .request(Duration::from_secs(25))
        .unwrap_or_else(|| panic!("no INVITE for {who}: {}", sw.log_tail()));
    assert_eq!(inv.method, Method::Invite);
    let rtp = RtpPeer::bind();
    let mut ok = ua.answer(&inv, 200, "u");
    ok.body = sdp(rtp.port, "0 101", PCMU);
    ua.respond(tx.unwrap(), ok);
    let (_, ack) = ua.request(Duration::from_secs(5)).expect("ACK");
    assert_eq!(ack.method, Method::Ack);
    inv
}

#[test]
fn a_word_spoken_on_a_g722_call_routes_the_caller() {
    e2e::require("pocketsphinx_continuous");
    e2e::require("espeak-ng");
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let cfg = media_config(port, dir.path(), "", FLOW);
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    let mut users = [
        ("sales", "1001", Ua::new("127.0.0.1", sw.addr())),
        ("support", "1002", Ua::new("127.0.0.1", sw.addr())),
    ];
    for (_, user, ua) in &mut users {
        assert_eq!(ua.register(user, "secret", 300).unwrap().code, 200);
    }
    for (i, (word, user, ua)) in users.iter_mut().enumerate() {
        // The prompt takes ~1.5 s; the word comes after it (the first
        // call) or over it (barge-in, the second).
        let lead = if i == 0 { 2.5 } else { 0.8 };
        let wav = spoken_wav(dir.path(), word, lead);
        let phone = Baresip::start_with(
            &dir.path().join(format!("caller-{word}")),
            "1003",
            "secret",
            port,
            &wav,
            "G722/16000/1",
        );
        assert!(
            phone.wait_log("200 OK", Duration::from_secs(10)),
            "{}",
            phone.log()
        );
        let t0 = Instant::now();
        phone
            .command("dial", &format!("sip:700@127.0.0.1:{port}"))
            .unwrap();
        let inv = answer(ua, &sw, user);
        println!(
            "{word:?} → INVITE to {user} after {:.2} s",
            t0.elapsed().as_secs_f64()
        );
        let from = inv.from().unwrap();
        assert_eq!(
            from.uri.sip().unwrap().user_decoded().as_deref(),
            Some("1003")
        );
        assert!(
            phone.log().contains("Set audio encoder: G722 16000Hz"),
            "a wideband call: {}",
            phone.log()
        );
        phone.command("hangup", "").unwrap();
        let (tx, bye) = ua.request(Duration::from_secs(5)).expect("BYE");
        assert_eq!(bye.method, Method::Bye);
        ua.respond(tx.unwrap(), sip::response_to(&bye, 200, None));
    }
    let cdrs = sw.cdrs(2);
    let mut paths: Vec<String> = cdrs.iter().map(|c| c["ivr_path"].to_string()).collect();
    paths.sort();
    println!("{paths:?}");
    assert_eq!(
        paths,
        [
            r#"["voice:ask(said sales)","voice:sales"]"#,
            r#"["voice:ask(said support)","voice:support"]"#,
        ]
    );
    let log = std::fs::read_to_string(sw.dir.join("switch.log")).unwrap();
    assert!(
        log.contains("engine=\"pocketsphinx\""),
        "the built-in recognized it"
    );
}

/// µ-law frames of `pcm` (8 kHz).
fn ulaw_frames(pcm: &[i16]) -> Vec<Vec<u8>> {
    pcm.chunks(160)
        .map(|c| {
            let mut f: Vec<u8> = c.iter().map(|&x| linear_to_ulaw(x)).collect();
            f.resize(160, 0xff);
            f
        })
        .collect()
}

#[test]
fn the_websocket_hook_recognizes_a_g711_caller() {
    e2e::require("espeak-ng");
    let engine = e2e::asr_engine::Engine::start("billing", 300);
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let extra = format!(
        "[ivr]\nasr = \"websocket\"\nasr_url = \"{}\"\n{FLOW}",
        engine.url
    );
    let cfg = media_config(port, dir.path(), "", &extra);
    let sw = SwitchProc::start(dir.path(), port, &cfg);
    let mut agent = Ua::new("127.0.0.1", sw.addr());
    assert_eq!(agent.register("1002", "secret", 300).unwrap().code, 200);

    let c = e2e::media::dial_in(&sw, "700");
    let (mut caller, rtp, invite, ok) = (c.ua, c.rtp, c.invite, c.ok);
    // Speech: "billing" at 8 kHz (the caller's narrowband line), with
    // silence around it, streamed in real time.
    let wav = dir.path().join("billing.wav");
    let st = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg("billing")
        .status()
        .unwrap();
    assert!(st.success());
    let w8 = dir.path().join("billing8k.wav");
    let st = std::process::Command::new("sox")
        .arg(&wav)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&w8)
        .args(["pad", "0.5", "1.5"])
        .status()
        .unwrap();
    assert!(st.success());
    let pcm = e2e::media::wav_channel(&w8, 1);
    let mut s = Sender::new(&rtp, e2e::media::sdp_addr(ok.body()), 0x5EEC);
    let frames = ulaw_frames(&pcm);
    std::thread::scope(|sc| {
        sc.spawn(|| s.audio(0, 160, &frames));
        let inv = answer(&mut agent, &sw, "1002");
        assert_eq!(inv.method, Method::Invite);
    });
    let seen = engine.seen.lock().unwrap().clone();
    println!("engine saw: {seen:?}");
    assert_eq!(seen.len(), 1, "one utterance");
    let u = &seen[0];
    assert_eq!(u.start["rate"], 8000);
    assert_eq!(u.start["encoding"], "pcm_s16le");
    assert_eq!(
        u.start["phrases"],
        serde_json::json!(["billing", "sales", "support"])
    );
    // The word (~0.5 s) plus the VAD's pre-roll and hangover.
    assert!((400..2000).contains(&u.audio_ms), "{u:?}");
    assert!(u.loud_ms >= 300, "{u:?}");
    let mut bye = caller.bye(&invite, &ok);
    bye.headers.set(sip::Name::CSeq, "10 BYE");
    let btx = caller.send(bye);
    let (tx, r) = agent
        .request(Duration::from_secs(5))
        .expect("BYE to the agent");
    assert_eq!(r.method, Method::Bye);
    agent.respond(tx.unwrap(), sip::response_to(&r, 200, None));
    let r = caller.final_response(btx, Duration::from_secs(5));
    assert_eq!(r.last().map(|r| r.code), Some(200));
    let cdrs = sw.cdrs(1);
    assert_eq!(
        cdrs[0]["ivr_path"],
        serde_json::json!(["voice:ask(said billing)", "voice:billing"])
    );
}

/// `[ivr] tts = "websocket"`: prompts come from the engine behind the hook
/// (the test engine speaks any text as 1 s of 1 kHz); the caller hears
/// them, and the text is cached (asked for once for two calls).
#[test]
fn prompts_come_from_a_tts_engine_behind_the_hook() {
    let engine = e2e::asr_engine::Engine::start("", 0);
    let dir = tempfile::tempdir().unwrap();
    let port = e2e::free_port("127.0.0.1");
    let extra = format!(
        "[ivr]\ntts = \"websocket\"\ntts_url = \"{}\"\n\n[[routes]]\nnumber = \"600\"\nfrom = \"any\"\ntarget = {{ flow = \"hello\" }}\n\n[flows.hello]\nstart = \"bye\"\n[flows.hello.nodes.bye]\ntype = \"hangup\"\nprompt = \"Hello from the hook.\"\n",
        engine.url
    );
    let sw = SwitchProc::start(
        dir.path(),
        port,
        &media_config(port, dir.path(), "", &extra),
    );
    for _ in 0..2 {
        let mut c = e2e::media::dial_in(&sw, "600");
        c.take_bye(Duration::from_secs(10));
        let pcm = c.heard();
        let spans = e2e::media::loud_spans(&pcm, 8000);
        let share = e2e::media::tone_share(&pcm, 1000.0);
        println!("heard {spans:?}, 1 kHz share {share:.2}");
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert!((0.95..=1.1).contains(&spans[0].1), "{spans:?}");
        assert!(share > 0.9);
    }
    assert_eq!(*engine.spoken.lock().unwrap(), ["Hello from the hook."]);
}
