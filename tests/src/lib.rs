//! End-to-end harness: runs the built `switchboard` binary on loopback with
//! real peers (sipp, baresip) and a small test UA built on the `sip` crate's
//! transaction endpoint over a real UDP socket.

pub mod asr_engine;
pub mod baresip;
pub mod media;
pub mod rtp;
pub mod sipp;
pub mod switch;
pub mod ua;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};

/// The folder of the test binary's profile (`target/release`), where the
/// `switchboard` binary is.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(|p| p.parent())
        .expect("bin dir")
        .to_path_buf()
}

/// A port free for both UDP and TCP on `ip`. Ports are handed out from a
/// per-process range so parallel tests don't race for the same one.
pub fn free_port(ip: &str) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20000 + (std::process::id() % 200) as u16 * 100;
    loop {
        let off = NEXT.fetch_add(1, Ordering::Relaxed) % 10000;
        let port = base.wrapping_add(off * 7 % 20000);
        if port < 1024 {
            continue;
        }
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        if UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok() {
            return port;
        }
    }
}

/// Fails the test with a clear message if a program is missing.
pub fn require(program: &str) {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{program} is not installed: run the README's test command, which installs it"
    );
}

/// The shared conformance vectors (see the sip crate's conformance test).
pub fn conformance_dir() -> PathBuf {
    std::env::var("SWITCHBOARD_CONFORMANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance")
        })
}

/// Serialises heavy tests (load runs, real phones) across test processes
/// and threads, so they don't starve each other on a 2-core machine.
pub fn heavy_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("switchboard-e2e.lock"))
        .expect("lock file");
    f.lock().expect("lock");
    f
}

/// Writes a mono 8 kHz WAV of a 440 Hz tone, `secs` long (sox).
pub fn tone_wav(path: &std::path::Path, secs: u32) {
    tone_wav_hz(path, secs, 440);
}

/// Writes a mono 8 kHz WAV of a `hz` tone at half scale, `secs` long (sox).
pub fn tone_wav_hz(path: &std::path::Path, secs: u32, hz: u32) {
    tone_wav_at(path, secs, hz, 8000, 1);
}

/// Writes a WAV of a `hz` tone at half scale, `secs` long, at `rate` with
/// `channels` (baresip's file source needs the codec's rate: 48 kHz for Opus).
pub fn tone_wav_at(path: &std::path::Path, secs: u32, hz: u32, rate: u32, channels: u32) {
    require("sox");
    let ok = std::process::Command::new("sox")
        .args([
            "-n",
            "-r",
            &rate.to_string(),
            "-c",
            &channels.to_string(),
            "-b",
            "16",
        ])
        .arg(path)
        .args([
            "synth",
            &secs.to_string(),
            "sine",
            &hz.to_string(),
            "vol",
            "0.5",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sox failed to write {}", path.display());
}

/// What `sox FILE -n stat` says about a WAV.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoxStat {
    /// Length in seconds.
    pub seconds: f64,
    /// RMS amplitude (full scale 1.0).
    pub rms: f64,
    /// sox's rough frequency estimate in Hz.
    pub freq: f64,
}

/// Runs `sox FILE [trim START LEN] -n stat` and reads its figures.
pub fn sox_stat(path: &std::path::Path, trim: Option<(f64, f64)>) -> SoxStat {
    require("sox");
    let mut cmd = std::process::Command::new("sox");
    // The first channel: sox's frequency estimate is meant for one channel.
    cmd.arg(path).arg("-n").args(["remix", "1"]);
    if let Some((start, len)) = trim {
        cmd.args(["trim", &start.to_string(), &len.to_string()]);
    }
    let out = cmd.arg("stat").output().expect("run sox");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    SoxStat {
        seconds: get("Length (seconds)"),
        rms: get("RMS     amplitude"),
        freq: get("Rough   frequency"),
    }
}

/// The switch's shard for a Call-ID with `shards` shards (mirrors
/// `actors::context::shard_of`, so a test can put two calls on different
/// shards).
pub fn shard_of(call_id: &str, shards: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}
