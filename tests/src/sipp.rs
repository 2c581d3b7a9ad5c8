//! Running sipp (Debian `sip-tester`) as caller or callee.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Totals read from sipp's `-trace_stat` csv.
#[derive(Debug, Clone, Default)]
pub struct SippStats {
    /// SuccessfulCall(C)
    pub successful: u64,
    /// FailedCall(C)
    pub failed: u64,
    /// Retransmissions(C)
    pub retransmissions: u64,
    /// sipp's exit status (0: all calls succeeded).
    pub exit_code: Option<i32>,
    /// sipp's error log, if any.
    pub errors: String,
}

/// A scenario file shipped in `tests/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Runs a sipp UAC to completion (bounded by `limit`) in `dir` and returns
/// its statistics. `args` are sipp arguments after the remote address.
pub fn run_uac(dir: &Path, remote: &str, args: &[&str], limit: Duration) -> SippStats {
    crate::require("sipp");
    let n = crate::free_port("127.0.0.1");
    let stat = dir.join(format!("uac-{n}.csv"));
    let errf = dir.join(format!("uac-errors-{n}.log"));
    let mut cmd = Command::new("timeout");
    cmd.arg(limit.as_secs().to_string())
        .arg("sipp")
        .arg(remote)
        .args(args)
        .args(["-nostdin", "-trace_stat", "-fd", "1", "-stf"])
        .arg(&stat)
        .args(["-trace_err", "-error_file"])
        .arg(&errf)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = cmd.status().expect("run sipp");
    let mut s = read_stats(&stat);
    s.exit_code = status.code();
    s.errors = std::fs::read_to_string(&errf).unwrap_or_default();
    s
}

/// Runs one sipp call (`args`: scenario, service, timeouts) from the
/// carrier's address 127.0.0.2, on SIP and media ports of its own.
pub fn run_trunk_call(dir: &Path, remote: &str, args: &[&str], limit: Duration) -> SippStats {
    let sport = crate::free_port("127.0.0.2").to_string();
    let mport = (crate::free_port("127.0.0.2") & !1).to_string();
    let mut all = vec![
        "-i",
        "127.0.0.2",
        "-p",
        &sport,
        "-mi",
        "127.0.0.2",
        "-mp",
        &mport,
    ];
    all.extend_from_slice(&["-m", "1"]);
    all.extend_from_slice(args);
    run_uac(dir, remote, &all, limit)
}

fn read_stats(path: &Path) -> SippStats {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return SippStats::default();
    };
    let Some(last) = lines.next_back() else {
        return SippStats::default();
    };
    let cols: Vec<&str> = header.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    SippStats {
        successful: get("SuccessfulCall(C)"),
        failed: get("FailedCall(C)"),
        retransmissions: get("Retransmissions(C)"),
        exit_code: None,
        errors: String::new(),
    }
}

/// A sipp UAS in the background; killed on drop.
pub struct SippUas {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl SippUas {
    /// Starts `sipp -sn uas` (or `-sf scenario`) on a free port.
    pub fn start(dir: &Path, scenario: Option<&Path>, extra: &[&str]) -> SippUas {
        SippUas::start_on(dir, crate::free_port("127.0.0.1"), scenario, extra)
    }

    /// Like [`SippUas::start`], on `port` (e.g. a gateway coming back).
    pub fn start_on(dir: &Path, port: u16, scenario: Option<&Path>, extra: &[&str]) -> SippUas {
        crate::require("sipp");
        let mut cmd = Command::new("sipp");
        match scenario {
            Some(f) => cmd.arg("-sf").arg(f),
            None => cmd.args(["-sn", "uas"]),
        };
        let child = cmd
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-nostdin"])
            .args(extra)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sipp uas");
        // sipp binds at once; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        SippUas { child, port }
    }
}

impl SippUas {
    /// Waits for the UAS to exit (run it with `-m N`); its exit code
    /// (0: every call of its scenario completed).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for SippUas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
