//! Media helpers shared by the anchored-media tests: SDP bodies, configs
//! with a media port range, tones and their measurement.

use crate::rtp;
use crate::switch::base_config;
use bytes::Bytes;
use std::net::SocketAddr;

/// PCMU and telephone-event attribute lines for [`sdp`].
pub const PCMU: &str =
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

/// An SDP body for `port` offering/answering the given `m=` formats.
pub fn sdp(port: u16, formats: &str, attrs: &str) -> Bytes {
    Bytes::from(format!(
        "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{attrs}"
    ))
}

/// The audio address an SDP body names (c= and m=audio port).
pub fn sdp_addr(body: &[u8]) -> SocketAddr {
    let text = String::from_utf8_lossy(body);
    let ip = text
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= line")
        .trim();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .expect("m=audio line");
    format!("{ip}:{port}").parse().unwrap()
}

/// The test config: the base one, a media port range of its own, `media`
/// lines in `[media]`, then `extra`.
pub fn media_config(port: u16, dir: &std::path::Path, media: &str, extra: &str) -> String {
    let rtp = 30000 + (port % 100) * 80;
    base_config(
        port,
        &dir.join("db"),
        &format!(
            "[media]\nport_min = {rtp}\nport_max = {}\n{media}\n\n{extra}",
            rtp + 79
        ),
    )
}

/// µ-law frames of a sine.
pub fn ulaw_tone(hz: f64, ms: u32) -> Vec<Vec<u8>> {
    let pcm: Vec<i16> = (0..ms * 8)
        .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin()) as i16)
        .collect();
    pcm.chunks(160)
        .map(|c| c.iter().map(|&x| rtp::linear_to_ulaw(x)).collect())
        .collect()
}

/// Share of a signal's power at `hz` (Goertzel), 0..1.
pub fn tone_share(pcm: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let (mut s1, mut s2) = (0f64, 0f64);
    for &x in pcm {
        let s0 = x as f64 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f64 = pcm.iter().map(|&x| (x as f64).powi(2)).sum();
    2.0 * p / (pcm.len() as f64 * total.max(1.0))
}

/// One channel (1-based) of a WAV file as 16-bit samples at its own rate (sox).
pub fn wav_channel(path: &std::path::Path, channel: u32) -> Vec<i16> {
    let out = std::process::Command::new("sox")
        .arg(path)
        .args(["-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-"])
        .args(["remix", &channel.to_string()])
        .output()
        .expect("sox runs");
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The µ-law payloads of `packets`, decoded.
pub fn ulaw_pcm(packets: &[rtp::Packet]) -> Vec<i16> {
    packets
        .iter()
        .filter(|p| p.pt == 0)
        .flat_map(|p| p.payload.iter().map(|&b| rtp::ulaw_to_linear(b)))
        .collect()
}

/// The WAV file in `dir`, once the switch has logged "recording saved"
/// (the file is complete then); panics after 5 s.
pub fn wait_recording(dir: &std::path::Path, sw: &crate::switch::SwitchProc) -> std::path::PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let f = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "wav"));
        let logged = std::fs::read_to_string(sw.dir.join("switch.log"))
            .unwrap()
            .contains("recording saved");
        match f {
            Some(f) if logged => return f,
            _ if std::time::Instant::now() > deadline => panic!("no recording: {}", sw.log_tail()),
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// A call answered through the switch, PCMU both ways, each side with an
/// RTP socket.
pub struct Answered {
    /// The caller's INVITE.
    pub invite: sip::Request,
    /// Its 200.
    pub ok: sip::Response,
    /// The INVITE the callee got.
    pub callee_invite: sip::Request,
    /// The switch's media address towards the caller and the callee.
    pub a_media: SocketAddr,
    pub b_media: SocketAddr,
    /// The caller's and the callee's RTP sockets.
    pub a_rtp: rtp::RtpPeer,
    pub b_rtp: rtp::RtpPeer,
    /// When the caller got the 200.
    pub answered: std::time::Instant,
}

/// `caller` (as the carrier trunk) dials `number`; `callee` gets the INVITE,
/// answers 200 and gets its ACK; the caller ACKs.
pub fn place_call(
    sw: &crate::switch::SwitchProc,
    caller: &mut crate::ua::Ua,
    callee: &mut crate::ua::Ua,
    number: &str,
) -> Answered {
    use sip::SipMessage;
    use std::time::Duration;
    let (a_rtp, b_rtp) = (rtp::RtpPeer::bind(), rtp::RtpPeer::bind());
    let mut invite = caller.invite("carrier", number);
    invite.body = sdp(a_rtp.port, "0 101", PCMU);
    let tx = caller.send(invite.clone());
    let (stx, callee_invite) = callee
        .request(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("INVITE to {number}: {}", sw.log_tail()));
    let b_media = sdp_addr(callee_invite.body());
    let mut ok_b = callee.answer(&callee_invite, 200, "callee");
    ok_b.body = sdp(b_rtp.port, "0 101", PCMU);
    callee.respond(stx.unwrap(), ok_b);
    let ok = caller
        .final_response(tx, Duration::from_secs(10))
        .pop()
        .expect("200");
    assert_eq!(ok.code, 200, "{}", sw.log_tail());
    let (_, ack) = callee
        .request(Duration::from_secs(5))
        .expect("ACK to the callee");
    assert_eq!(ack.method, sip::Method::Ack);
    let answered = std::time::Instant::now();
    caller.ack(tx, &invite, &ok);
    let a_media = sdp_addr(ok.body());
    Answered {
        invite,
        ok,
        callee_invite,
        a_media,
        b_media,
        a_rtp,
        b_rtp,
        answered,
    }
}

/// In a mix of parties sending tones at `freqs`, party `i` (which received
/// `pcm`) hears every other party's tone (share > 0.25) and not its own.
pub fn assert_hears_the_others(i: usize, pcm: &[i16], freqs: &[f64]) {
    let mid = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
    let shares: Vec<f64> = freqs.iter().map(|&hz| tone_share(mid, hz)).collect();
    println!("party {i} ({} Hz) hears shares {shares:.2?}", freqs[i]);
    for (k, share) in shares.iter().enumerate() {
        if k == i {
            assert!(*share < 0.02, "party {i} hears itself: {shares:.2?}");
        } else {
            assert!(*share > 0.25, "party {i} hears party {k}: {shares:.2?}");
        }
    }
}

/// Runs of 20 ms blocks louder than -40 dBFS, as (start, length) in seconds;
/// gaps shorter than 100 ms are bridged.
pub fn loud_spans(pcm: &[i16], rate: usize) -> Vec<(f64, f64)> {
    let block = rate / 50;
    let loud: Vec<bool> = pcm
        .chunks(block)
        .map(|c| crate::rtp::rms_dbfs(c) > -40.0)
        .collect();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, &l) in loud.iter().enumerate() {
        if !l {
            continue;
        }
        match spans.last_mut() {
            Some((_, end)) if i - *end <= 5 => *end = i + 1,
            _ => spans.push((i, i + 1)),
        }
    }
    spans
        .into_iter()
        .map(|(s, e)| (s as f64 * 0.02, (e - s) as f64 * 0.02))
        .collect()
}

/// A caller from the carrier trunk (127.0.0.2) whom the switch answered.
pub struct TrunkCaller {
    /// Its SIP side.
    pub ua: crate::ua::Ua,
    /// Its RTP socket.
    pub rtp: rtp::RtpPeer,
    /// The INVITE and the switch's 200.
    pub invite: sip::Request,
    /// The 200.
    pub ok: sip::Response,
    /// The switch's RTP address for the caller.
    pub media: std::net::SocketAddr,
    /// When it was answered.
    pub answered: std::time::Instant,
}

/// The carrier (127.0.0.2) dials `number` (PCMU and telephone-event 101);
/// the switch answers and the caller ACKs.
pub fn dial_in(sw: &crate::switch::SwitchProc, number: &str) -> TrunkCaller {
    use sip::SipMessage;
    use std::time::{Duration, Instant};
    let mut ua = crate::ua::Ua::new("127.0.0.2", sw.addr());
    let rtp = rtp::RtpPeer::bind();
    let mut invite = ua.invite("5551234", number);
    invite.body = sdp(rtp.port, "0 101", PCMU);
    let tx = ua.send(invite.clone());
    let ok = ua
        .final_response(tx, Duration::from_secs(10))
        .pop()
        .expect("a final response");
    assert_eq!(ok.code, 200, "{number}: {}", sw.log_tail());
    ua.ack(tx, &invite, &ok);
    TrunkCaller {
        ua,
        rtp,
        media: sdp_addr(ok.body()),
        invite,
        answered: Instant::now(),
        ok,
    }
}

impl TrunkCaller {
    /// Waits for the switch's BYE and answers it; when it came.
    pub fn take_bye(&mut self, limit: std::time::Duration) -> std::time::Instant {
        use std::time::{Duration, Instant};
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some((tx, r)) = self.ua.request(Duration::from_millis(200)) {
                if r.method == sip::Method::Bye {
                    self.ua
                        .respond(tx.unwrap(), sip::response_to(&r, 200, None));
                    return Instant::now();
                }
            }
        }
        panic!("no BYE within {limit:?}");
    }

    /// What the caller heard, as 8 kHz PCM.
    pub fn heard(&self) -> Vec<i16> {
        ulaw_pcm(&self.rtp.packets())
    }
}

/// A switch in a new folder with anchored media and `extra` config.
pub fn media_switch(extra: &str) -> (tempfile::TempDir, crate::switch::SwitchProc) {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::free_port("127.0.0.1");
    let sw = crate::switch::SwitchProc::start(
        dir.path(),
        port,
        &media_config(port, dir.path(), "", extra),
    );
    (dir, sw)
}
