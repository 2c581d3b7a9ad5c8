//! `sipp-load`: load benchmarks of the `switchboard` binary, driven by sipp.
//!
//! Every mode starts its own switch (B2BUA) and a sipp UAS on free loopback ports, in a
//! temporary directory, and drives calls into the switch with a sipp UAC bound to
//! 127.0.0.2 (the "carrier" trunk, recognised by source address). The switch routes every
//! call to the "uas" trunk, i.e. the sipp UAS. See `bench/README.md`.
//!
//! Modes:
//! - `max-cps`: ramps the call rate with zero-hold calls; the highest rate with 0 failures.
//! - `latency`: INVITE->180 (and ->100, ->200) delay percentiles seen by the UAC.
//! - `memory`: switch RSS per established (held) call.
//! - `all`: the three, then a summary.
//! - `queue`: the ACD's answer delay: callers into a queue whose agents' phones answer at once.

use bench::procs::{clk_tck, cpu_ticks, rss_kib, spawn_switch, tail, udp_drops, Proc};
use bench::{Result, Rng};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread::sleep;
use std::time::{Duration, Instant};

#[path = "sipp_load/queue.rs"]
mod queue;

const UAC_CPS: &str = include_str!("../scenarios/uac_cps.xml");
const UAC_LATENCY: &str = include_str!("../scenarios/uac_latency.xml");
const UAC_HOLD: &str = include_str!("../scenarios/uac_hold.xml");
const UAS: &str = include_str!("../scenarios/uas.xml");

/// sipp's socket buffer size (bytes); the kernel caps it at net.core.{r,w}mem_max.
const BUFF_SIZE: &str = "4194304";
/// sipp's per-message receive timeout (ms): a call that waits longer fails (FailedTimeoutOnRecv).
const RECV_TIMEOUT_MS: u64 = 10_000;

#[derive(Parser)]
#[command(
    name = "sipp-load",
    about = "SIP load benchmarks of the switchboard B2BUA, driven by sipp",
    long_about = "SIP load benchmarks of the switchboard B2BUA, driven by sipp.\n\n\
        Each mode starts its own switch and sipp UAS on free loopback ports (20000-40000) in a \
        temporary directory, drives calls from a sipp UAC bound to 127.0.0.2 (the carrier trunk), \
        and stops every process it started when it ends, also on error."
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args, Clone, Debug, Serialize)]
struct Common {
    /// The switchboard binary [default: $SWITCHBOARD_BIN, else the workspace's
    /// target/release/switchboard].
    #[arg(long, global = true)]
    switch_bin: Option<PathBuf>,
    /// The sipp binary.
    #[arg(long, global = true, default_value = "sipp")]
    sipp: PathBuf,
    /// Transport of the UAC -> switch leg.
    #[arg(long, global = true, value_enum, default_value_t = Transport::Udp)]
    transport: Transport,
    /// sipp TCP mode for the UAC leg: t1 = one socket for all calls, tn = one per call.
    #[arg(long, global = true, value_enum, default_value_t = TcpMode::T1)]
    tcp_mode: TcpMode,
    /// Transport of the switch -> UAS leg (the "uas" trunk).
    #[arg(long, global = true, value_enum, default_value_t = Transport::Udp)]
    uas_transport: Transport,
    /// The switch's `sip.shards`.
    #[arg(long, global = true, default_value_t = 1)]
    shards: usize,
    /// The switch's `log.level`.
    #[arg(long, global = true, default_value = "warn")]
    switch_log: String,
    /// Called number (sipp -s).
    #[arg(long, global = true, default_value = "1000")]
    service: String,
    /// Source address of the UAC (the carrier trunk's `inbound.from`).
    #[arg(long, global = true, default_value = "127.0.0.2")]
    uac_ip: Ipv4Addr,
    /// Keep the temporary directory (configs, sipp logs, switch stderr) and print its path.
    #[arg(long, global = true)]
    keep_files: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum TcpMode {
    T1,
    Tn,
}

#[derive(Subcommand)]
enum Mode {
    /// Ramp the call rate (zero-hold calls) and report the highest rate with 0 failures.
    MaxCps(MaxCpsArgs),
    /// INVITE->180 delay percentiles (also ->100 and ->200) seen by the UAC at a fixed rate.
    Latency(LatencyArgs),
    /// Switch RSS per established call: N held calls, RSS before and when all are up.
    Memory(MemoryArgs),
    /// max-cps, latency and memory with their defaults (or --quick sizes), then a summary.
    All(AllArgs),
    /// ACD answer delay: callers into a queue whose agents' phones (the sipp UAS) answer
    /// at once; percentiles of the caller's wait from joining to the agent's answer.
    Queue(queue::QueueArgs),
}

#[derive(Args, Clone, Debug, Serialize)]
struct MaxCpsArgs {
    /// First call rate (calls/s).
    #[arg(long, default_value_t = 500)]
    start: u32,
    /// Rate increment between steps.
    #[arg(long, default_value_t = 500)]
    step: u32,
    /// Highest rate tried.
    #[arg(long, default_value_t = 10_000)]
    max: u32,
    /// Length of each step: each step places rate * duration calls.
    #[arg(long, default_value_t = 10)]
    duration_secs: u32,
    /// Pause between steps (after a failing step: at least 5 s, to drain the switch).
    #[arg(long, default_value_t = 2)]
    cooldown_secs: u32,
    /// After the first failing step, bisect between the last passing and the first failing
    /// rate until the gap is at most this many calls/s (0: no bisection).
    #[arg(long, default_value_t = 0)]
    refine_to: u32,
    /// Go on ramping after a failing step (up to --max).
    #[arg(long)]
    keep_going: bool,
}

#[derive(Args, Clone, Debug, Serialize)]
struct LatencyArgs {
    /// Call rate (calls/s).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Number of measured calls.
    #[arg(long, default_value_t = 10_000)]
    calls: u64,
    /// Zero-hold calls placed (at the same rate, not measured) before the measured run.
    #[arg(long, default_value_t = 200)]
    warmup: u64,
}

#[derive(Args, Clone, Debug, Serialize)]
struct MemoryArgs {
    /// Number of concurrent established calls.
    #[arg(long, default_value_t = 2000)]
    calls: u64,
    /// How long each call stays up (must exceed calls/rate + 5 s).
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
    /// Call setup rate (calls/s).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Zero-hold calls placed (and ended) before the baseline RSS is read.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
}

#[derive(Args, Clone, Debug)]
struct AllArgs {
    /// Smoke sizes: max-cps 200..1000 step 400 with 3 s steps; latency 2000 calls at
    /// 500/s; memory 500 calls held 15 s.
    #[arg(long)]
    quick: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut common = cli.common;
    common
        .switch_bin
        .get_or_insert_with(bench::default_switch_bin);
    let mut report = Report {
        common: Some(common.clone()),
        ..Report::default()
    };
    let ok = match cli.mode {
        Mode::MaxCps(a) => record(
            &mut report.max_cps,
            &mut report.errors,
            "max-cps",
            max_cps(&common, &a),
        ),
        Mode::Latency(a) => record(
            &mut report.latency,
            &mut report.errors,
            "latency",
            latency(&common, &a),
        ),
        Mode::Memory(a) => record(
            &mut report.memory,
            &mut report.errors,
            "memory",
            memory(&common, &a),
        ),
        Mode::Queue(a) => record(
            &mut report.queue,
            &mut report.errors,
            "queue",
            queue::run(&common, &a),
        ),
        Mode::All(a) => {
            let (m, l, r) = if a.quick {
                (
                    MaxCpsArgs {
                        start: 200,
                        step: 400,
                        max: 1000,
                        duration_secs: 3,
                        cooldown_secs: 2,
                        refine_to: 0,
                        keep_going: false,
                    },
                    LatencyArgs {
                        rate: 500,
                        calls: 2000,
                        warmup: 200,
                    },
                    MemoryArgs {
                        calls: 500,
                        hold_secs: 15,
                        rate: 500,
                        warmup: 0,
                    },
                )
            } else {
                (
                    MaxCpsArgs {
                        start: 500,
                        step: 500,
                        max: 10_000,
                        duration_secs: 10,
                        cooldown_secs: 2,
                        refine_to: 0,
                        keep_going: false,
                    },
                    LatencyArgs {
                        rate: 1000,
                        calls: 10_000,
                        warmup: 200,
                    },
                    MemoryArgs {
                        calls: 2000,
                        hold_secs: 30,
                        rate: 500,
                        warmup: 0,
                    },
                )
            };
            let a = record(
                &mut report.max_cps,
                &mut report.errors,
                "max-cps",
                max_cps(&common, &m),
            );
            let b = record(
                &mut report.latency,
                &mut report.errors,
                "latency",
                latency(&common, &l),
            );
            let c = record(
                &mut report.memory,
                &mut report.errors,
                "memory",
                memory(&common, &r),
            );
            print_summary(&report);
            a && b && c
        }
    };
    if let Some(path) = &common.json {
        bench::write_json("sipp-load", path, &report);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn record<T>(slot: &mut Option<T>, errors: &mut Vec<String>, mode: &str, r: Result<T>) -> bool {
    match r {
        Ok(v) => {
            *slot = Some(v);
            true
        }
        Err(e) => {
            eprintln!("\nsipp-load {mode}: error: {e}");
            errors.push(format!("{mode}: {e}"));
            false
        }
    }
}

#[derive(Default, Serialize)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    common: Option<Common>,
    max_cps: Option<MaxCpsResult>,
    latency: Option<LatencyResult>,
    memory: Option<MemoryResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<queue::QueueResult>,
    errors: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Files (Proc, tail and the /proc readers are in bench::procs)

/// The first `lines` lines of a file (from its first 64 KiB).
fn head(path: &Path, lines: usize) -> String {
    let Ok(data) = fs::read(path) else {
        return format!("(cannot read {})", path.display());
    };
    let end = data.len().min(64 * 1024);
    let text = String::from_utf8_lossy(&data[..end]);
    text.lines().take(lines).collect::<Vec<_>>().join("\n")
}

/// A file in `dir` whose name ends with `suffix` (sipp names its logs `<scenario>_<pid>_...`).
fn find_file(dir: &Path, suffix: &str) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
}

// ---------------------------------------------------------------------------------------
// Ports

/// A random port in 20000-40000 that binds for both UDP and TCP on `ip`.
fn pick_port(ip: IpAddr, rng: &mut Rng, taken: &mut Vec<u16>) -> Result<u16> {
    for _ in 0..500 {
        let port = 20_000 + (rng.next_u64() % 20_000) as u16;
        if taken.contains(&port) {
            continue;
        }
        let addr = SocketAddr::new(ip, port);
        let ok = {
            let u = UdpSocket::bind(addr);
            let t = TcpListener::bind(addr);
            u.is_ok() && t.is_ok()
        };
        if ok {
            taken.push(port);
            return Ok(port);
        }
    }
    Err(format!("no free port in 20000-40000 on {ip}"))
}

/// Whether something listens on `addr` for `transport` (our own bind fails).
fn is_bound(addr: SocketAddr, transport: Transport) -> bool {
    match transport {
        Transport::Udp => UdpSocket::bind(addr).is_err(),
        Transport::Tcp => TcpListener::bind(addr).is_err(),
    }
}

// ---------------------------------------------------------------------------------------
// The rig: one switch, one UAS, and UAC runs against them.

struct Rig {
    // Field order matters: the processes are stopped before the directory is removed.
    uas: Proc,
    switch: Proc,
    common: Common,
    switch_port: u16,
    uas_port: u16,
    uac_port: u16,
    dir: PathBuf,
    scenarios: PathBuf,
    runs: usize,
    tck: u64,
    _tmp: Option<tempfile::TempDir>,
}

/// What a mode changes in the rig: the config after the trunks (routes,
/// queues, users; `None`: every call to the UAS trunk), and local users
/// registered from the UAS's address before it starts (their calls reach it).
#[derive(Default)]
struct Setup {
    config: Option<String>,
    /// User names; their password is `bench`.
    register: Vec<String>,
}

impl Rig {
    fn start(common: &Common, mode: &str) -> Result<Rig> {
        Rig::start_with(common, mode, &Setup::default())
    }

    fn start_with(common: &Common, mode: &str, setup: &Setup) -> Result<Rig> {
        let switch_bin = bench::switch_bin(common.switch_bin.as_deref())?;
        let (dir, tmp) = bench::work_dir(&format!("sipp-load-{mode}-"), common.keep_files)?;
        let scenarios = dir.join("scenarios");
        fs::create_dir_all(&scenarios)
            .map_err(|e| format!("cannot create {}: {e}", scenarios.display()))?;
        for (name, text) in [
            ("uac_cps.xml", UAC_CPS),
            ("uac_latency.xml", UAC_LATENCY),
            ("uac_hold.xml", UAC_HOLD),
            ("uas.xml", UAS),
        ] {
            let p = scenarios.join(name);
            fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        }

        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut rng = Rng::seeded();
        let mut taken = Vec::new();
        let switch_port = pick_port(lo, &mut rng, &mut taken)?;
        let uas_port = pick_port(lo, &mut rng, &mut taken)?;
        let uac_port = pick_port(IpAddr::V4(common.uac_ip), &mut rng, &mut taken)?;

        let config = format!(
            r#"[sip]
listen = ["udp:127.0.0.1:{switch_port}", "tcp:127.0.0.1:{switch_port}"]
domain = "switchboard"
shards = {shards}

[http]
listen = ""

[store]
path = "{db}"

[log]
level = "{log}"

[calls]
no_answer_timeout_secs = 60
max_calls = 200000

[[trunks]]
name = "carrier"
inbound = {{ from = ["{uac_ip}"] }}

[[trunks]]
name = "uas"
outbound = {{ host = "127.0.0.1:{uas_port}", transport = "{uas_tr}" }}

[control]
socket = "{sock}"

{rest}
"#,
            sock = dir.join("switchboard.sock").display(),
            rest = setup.config.clone().unwrap_or_else(|| {
                "[[routes]]\nprefix = \"\"\nfrom = \"trunks\"\ntarget = { trunk = \"uas\" }\n"
                    .into()
            }),
            shards = common.shards,
            db = dir.join("db").display(),
            log = common.switch_log,
            uac_ip = common.uac_ip,
            uas_tr = common.uas_transport.name(),
        );
        let mut switch = spawn_switch(Command::new(&switch_bin), &dir, &config)?;
        let sw_addr = SocketAddr::new(lo, switch_port);
        wait_ready(
            &mut switch,
            &[(sw_addr, Transport::Udp), (sw_addr, Transport::Tcp)],
        )?;

        if !setup.register.is_empty() {
            let t0 = Instant::now();
            queue::register(sw_addr, uas_port, &setup.register)?;
            println!(
                "registered {} users at 127.0.0.1:{uas_port} in {:.2} s",
                setup.register.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        let uas_dir = dir.join("uas");
        fs::create_dir_all(&uas_dir)
            .map_err(|e| format!("cannot create {}: {e}", uas_dir.display()))?;
        let mut cmd = Command::new(&common.sipp);
        cmd.arg("-sf")
            .arg(scenarios.join("uas.xml"))
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args([
                "-t",
                if common.uas_transport == Transport::Tcp {
                    "t1"
                } else {
                    "u1"
                },
            ])
            .args(["-nostdin", "-buff_size", BUFF_SIZE, "-trace_err"])
            .args(["-trace_stat", "-stf", "uas_stat.csv", "-fd", "1"]);
        let mut uas = Proc::spawn("uas", cmd, &uas_dir)?;
        wait_ready(
            &mut uas,
            &[(SocketAddr::new(lo, uas_port), common.uas_transport)],
        )?;

        println!(
            "switch pid {} on udp+tcp 127.0.0.1:{switch_port} ({} shards); sipp UAS pid {} on {} 127.0.0.1:{uas_port}; UAC {} {}:{uac_port}",
            switch.pid,
            common.shards,
            uas.pid,
            common.uas_transport.name(),
            common.transport.name(),
            common.uac_ip
        );
        Ok(Rig {
            uas,
            switch,
            common: common.clone(),
            switch_port,
            uas_port,
            uac_port,
            dir,
            scenarios,
            runs: 0,
            tck: clk_tck(),
            _tmp: tmp,
        })
    }

    /// Errs (with the stderr tail) if the switch or the UAS has died.
    /// Places `calls` zero-hold calls at `rate` (not measured) and prints
    /// how they went.
    fn warm_up(&mut self, rate: u32, calls: u64) -> Result<()> {
        let run = self.spawn_uac(&UacSpec {
            label: "warmup".into(),
            scenario: "uac_cps.xml",
            rate,
            calls,
            hold_ms: 0,
            counts: false,
            latency: false,
        })?;
        let out = self.finish_uac(run)?;
        println!(
            "warm-up: {} calls, {} ok, {} failed",
            calls, out.stats.successful, out.stats.failed
        );
        out.explain(calls);
        Ok(())
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(s) = self.switch.exited() {
            return Err(self.switch.died(s));
        }
        if let Some(s) = self.uas.exited() {
            return Err(self.uas.died(s));
        }
        Ok(())
    }

    fn cpu(&self) -> (Option<u64>, Option<u64>) {
        (cpu_ticks(self.switch.pid), cpu_ticks(self.uas.pid))
    }

    /// UDP receive-buffer drops so far on the switch's and the UAS's ports.
    fn drops(&self) -> (Option<u64>, Option<u64>) {
        let on = |port: u16| udp_drops(|a| a.port() == port);
        (on(self.switch_port), on(self.uas_port))
    }

    fn spawn_uac(&mut self, spec: &UacSpec) -> Result<UacRun> {
        self.check_alive()?;
        self.runs += 1;
        let run_dir = self.dir.join(format!("{:02}-{}", self.runs, spec.label));
        fs::create_dir_all(&run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        let setup_secs = spec.calls.div_ceil(u64::from(spec.rate.max(1)));
        // sipp's own global timeout, and ours (kill) a little later: sipp may hang at high rates.
        let sipp_timeout = setup_secs + spec.hold_ms.div_ceil(1000) + 60;
        let limit = Duration::from_secs(sipp_timeout + 15);
        let tr = match (self.common.transport, self.common.tcp_mode) {
            (Transport::Udp, _) => "u1",
            (Transport::Tcp, TcpMode::T1) => "t1",
            (Transport::Tcp, TcpMode::Tn) => "tn",
        };
        let mut cmd = Command::new(&self.common.sipp);
        cmd.arg("-sf")
            .arg(self.scenarios.join(spec.scenario))
            .arg(format!("127.0.0.1:{}", self.switch_port))
            .args(["-s", &self.common.service])
            .args([
                "-i",
                &self.common.uac_ip.to_string(),
                "-p",
                &self.uac_port.to_string(),
            ])
            .args(["-t", tr])
            .args(["-r", &spec.rate.to_string(), "-rp", "1000"])
            .args(["-m", &spec.calls.to_string()])
            // Open-call limit: every held call; for zero-hold calls 5 s worth of calls (only a
            // stalled switch gets there; sipp then slows down, which shows as `achieved`).
            .args(["-l", &open_call_limit(spec).to_string()])
            .args(["-d", &spec.hold_ms.to_string()])
            .args(["-nostdin", "-buff_size", BUFF_SIZE])
            .args(["-timeout", &sipp_timeout.to_string()])
            .args(["-recv_timeout", &RECV_TIMEOUT_MS.to_string()])
            .args(["-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_err"]);
        if tr == "tn" {
            cmd.args(["-max_socket", "4096"]);
        }
        if spec.counts {
            cmd.arg("-trace_counts");
        }
        if spec.latency {
            cmd.args(["-trace_shortmsg", "-trace_rtt", "-rtt_freq", "1"]);
        }
        let proc = Proc::spawn("uac", cmd, &run_dir)?;
        let started = Instant::now();
        Ok(UacRun {
            proc,
            dir: run_dir,
            started,
            deadline: started + limit,
        })
    }

    /// Waits for a UAC run to end (or kills it at its deadline) and reads its statistics.
    fn finish_uac(&mut self, mut run: UacRun) -> Result<UacOutcome> {
        let mut timed_out = false;
        let mut uac_ticks = None;
        let status = loop {
            // Read before reaping: an exited (zombie) process still shows its CPU times.
            if let Some(t) = cpu_ticks(run.proc.pid) {
                uac_ticks = Some(t);
            }
            if let Some(s) = run.proc.exited() {
                break Some(s);
            }
            if let Err(e) = self.check_alive() {
                run.proc.stop();
                return Err(e);
            }
            if Instant::now() >= run.deadline {
                timed_out = true;
                run.proc.stop();
                break None;
            }
            sleep(Duration::from_millis(100));
        };
        let stats = match parse_stat_csv(&run.dir.join("stat.csv")) {
            Ok(s) => s,
            Err(e) => {
                return Err(format!(
                    "{e}; sipp UAC exit {}; its stderr:\n{}",
                    status.map_or("none (killed)".into(), |s| s.to_string()),
                    tail(&run.proc.stderr, 20)
                ))
            }
        };
        let errors = find_file(&run.dir, "_errors.log")
            .map(|p| head(&p, 12))
            .filter(|s| !s.trim().is_empty());
        // Let the switch settle, then check it survived.
        self.check_alive()?;
        Ok(UacOutcome {
            stats,
            exit_code: status.and_then(|s| s.code()),
            timed_out,
            uac_ticks,
            errors,
            stderr: tail(&run.proc.stderr, 10),
            dir: run.dir,
        })
    }
}

fn open_call_limit(spec: &UacSpec) -> u64 {
    if spec.hold_ms > 0 {
        spec.calls.max(1)
    } else {
        spec.calls.min((5 * u64::from(spec.rate)).max(1000)).max(1)
    }
}

fn wait_ready(p: &mut Proc, addrs: &[(SocketAddr, Transport)]) -> Result<()> {
    p.wait_bound(&format!("{addrs:?}"), || {
        addrs.iter().all(|&(a, t)| is_bound(a, t))
    })
}

struct UacSpec {
    label: String,
    scenario: &'static str,
    rate: u32,
    calls: u64,
    hold_ms: u64,
    counts: bool,
    latency: bool,
}

struct UacRun {
    proc: Proc,
    dir: PathBuf,
    started: Instant,
    deadline: Instant,
}

struct UacOutcome {
    stats: SippStats,
    exit_code: Option<i32>,
    timed_out: bool,
    /// CPU time of the sipp UAC (clock ticks), as last seen.
    uac_ticks: Option<u64>,
    errors: Option<String>,
    stderr: String,
    dir: PathBuf,
}

impl UacOutcome {
    fn unfinished(&self, calls: u64) -> u64 {
        calls.saturating_sub(self.stats.successful + self.stats.failed)
    }

    /// Prints sipp's failure reasons and the head of its error log if calls failed.
    fn explain(&self, calls: u64) {
        if self.stats.failed == 0 && self.unfinished(calls) == 0 && !self.timed_out {
            return;
        }
        if self.timed_out {
            println!("    sipp UAC did not end by itself and was killed");
        }
        if !self.stats.reasons.is_empty() {
            println!("    sipp failure counters: {}", self.stats.reasons);
        }
        if let Some(e) = &self.errors {
            println!("    sipp error log ({}):", self.dir.display());
            for l in e.lines() {
                println!("      {l}");
            }
        }
        if !self.stderr.trim().is_empty() && self.stderr != "(empty)" {
            println!("    sipp stderr: {}", self.stderr.replace('\n', "\n      "));
        }
    }
}

// ---------------------------------------------------------------------------------------
// sipp's csv files

#[derive(Clone, Debug, Default, Serialize)]
struct SippStats {
    outgoing: u64,
    successful: u64,
    failed: u64,
    current: u64,
    retransmissions: u64,
    dead_call_msgs: u64,
    out_of_call_msgs: u64,
    /// Calls created per second while sipp was creating them (see `creation_rate`).
    call_rate: f64,
    elapsed_secs: f64,
    /// Nonzero Failed*(C) counters, "Name=count, ...".
    reasons: String,
}

/// The last complete row of a sipp csv file (`;`-separated, header first) as a map.
fn last_csv_row(path: &Path) -> Result<HashMap<String, String>> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| format!("{} is empty", path.display()))?
        .split(';')
        .collect();
    let row = lines
        .rev()
        .map(|l| l.split(';').collect::<Vec<_>>())
        .find(|f| f.len() >= header.len().saturating_sub(1) && f.len() > 1)
        .ok_or_else(|| format!("{} has no data row", path.display()))?;
    Ok(header
        .iter()
        .zip(row)
        .filter(|(h, _)| !h.is_empty())
        .map(|(h, v)| (h.to_string(), v.to_string()))
        .collect())
}

/// sipp's date fields: "2024-01-01\t12:00:00.123456\t1704110400.123456" -> epoch seconds.
fn sipp_epoch(v: &str) -> Option<f64> {
    v.split('\t').nth(2)?.trim().parse().ok()
}

/// Calls/s while sipp was creating calls: the final OutgoingCall(C) over the time it took to
/// reach it (interpolated between the once-a-second rows). Unlike CallRate(C), this does not
/// count the time spent waiting for the last calls to end or time out.
fn creation_rate(path: &Path) -> Option<f64> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(';').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (start, now, out) = (
        col("StartTime")?,
        col("CurrentTime")?,
        col("OutgoingCall(C)")?,
    );
    let points: Vec<(f64, f64)> = lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(';').collect();
            let t = sipp_epoch(f.get(now)?)? - sipp_epoch(f.get(start)?)?;
            Some((t, f.get(out)?.trim().parse::<f64>().ok()?))
        })
        .collect();
    let total = points.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let i = points.iter().position(|&(_, n)| n >= total)?;
    let t = if i == 0 {
        points[0].0
    } else {
        let ((t0, n0), (t1, n1)) = (points[i - 1], points[i]);
        if n1 > n0 {
            t0 + (total - n0) / (n1 - n0) * (t1 - t0)
        } else {
            t1
        }
    };
    (t > 0.0).then(|| total / t)
}

fn parse_stat_csv(path: &Path) -> Result<SippStats> {
    let row = last_csv_row(path)?;
    let n = |k: &str| {
        row.get(k)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut reasons: Vec<(String, u64)> = row
        .iter()
        .filter(|(k, _)| {
            k.starts_with("Failed") && k.ends_with("(C)") && k.as_str() != "FailedCall(C)"
        })
        .filter_map(|(k, v)| {
            let c = v.trim().parse::<u64>().ok()?;
            (c > 0).then(|| {
                (
                    k.trim_start_matches("Failed")
                        .trim_end_matches("(C)")
                        .to_string(),
                    c,
                )
            })
        })
        .collect();
    reasons.sort();
    let elapsed = match (
        row.get("StartTime").and_then(|v| sipp_epoch(v)),
        row.get("CurrentTime").and_then(|v| sipp_epoch(v)),
    ) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    Ok(SippStats {
        outgoing: n("OutgoingCall(C)"),
        successful: n("SuccessfulCall(C)"),
        failed: n("FailedCall(C)"),
        current: n("CurrentCall"),
        retransmissions: n("Retransmissions(C)"),
        dead_call_msgs: n("DeadCallMsgs(C)"),
        out_of_call_msgs: n("OutOfCallMsgs(C)"),
        call_rate: creation_rate(path).unwrap_or_else(|| {
            row.get("CallRate(C)")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        }),
        elapsed_secs: elapsed,
        reasons: reasons
            .iter()
            .map(|(k, c)| format!("{k}={c}"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// From sipp's `-trace_counts` file: (ACKs sent so far, calls now in the hold pause).
fn parse_counts(dir: &Path) -> Option<(u64, u64)> {
    let row = last_csv_row(&find_file(dir, "_counts.csv")?).ok()?;
    let get = |suffix: &str| {
        row.iter()
            .find(|(k, _)| k.ends_with(suffix))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    };
    Some((get("_ACK_Sent")?, get("_Pause_Sessions").unwrap_or(0)))
}

// ---------------------------------------------------------------------------------------
// max-cps

#[derive(Clone, Debug, Serialize)]
struct Step {
    rate: u32,
    calls: u64,
    successful: u64,
    failed: u64,
    /// Calls neither successful nor failed when sipp ended (killed, or -timeout).
    unfinished: u64,
    retransmissions: u64,
    /// Calls/s sipp actually created (while creating; see `creation_rate`).
    achieved_cps: f64,
    /// Share of one core the switch used during the step, in percent.
    switch_cpu_pct: Option<f64>,
    uas_cpu_pct: Option<f64>,
    uac_cpu_pct: Option<f64>,
    /// Datagrams the kernel dropped on the switch's / the UAS's UDP port (buffer full).
    switch_udp_drops: Option<u64>,
    uas_udp_drops: Option<u64>,
    /// Switch CPU time per call, in microseconds.
    switch_cpu_us_per_call: Option<f64>,
    /// No failed or unfinished call (whatever the rate achieved).
    pass: bool,
    /// sipp achieved at least 95% of the target rate.
    sustained: bool,
    failure_reasons: String,
    sipp_exit: Option<i32>,
}

#[derive(Clone, Debug, Serialize)]
struct MaxCpsResult {
    transport: Transport,
    duration_secs: u32,
    steps: Vec<Step>,
    /// The highest rate whose step had no failed or unfinished call and at which sipp
    /// created calls at >= 95% of the target rate: the headline figure.
    max_rate: Option<u32>,
    /// sipp's achieved rate, retransmissions and switch socket drops at that step.
    achieved_at_max: Option<f64>,
    retransmissions_at_max: Option<u64>,
    switch_drops_at_max: Option<u64>,
    /// The same, also with no retransmission.
    max_rate_no_retransmissions: Option<u32>,
    /// The highest rate with no failed call, whatever rate sipp achieved.
    max_rate_zero_failures_any_speed: Option<u32>,
    /// The lowest rate that failed or fell behind.
    first_bad_rate: Option<u32>,
}

fn max_cps(common: &Common, a: &MaxCpsArgs) -> Result<MaxCpsResult> {
    if a.start == 0 || a.duration_secs == 0 {
        return Err("--start and --duration-secs must be positive".into());
    }
    println!(
        "\n=== max-cps: {} UAC leg, zero-hold calls, {} s per step, rates {}..={} step {} ===",
        common.transport.name(),
        a.duration_secs,
        a.start,
        a.max,
        a.step.max(1)
    );
    machine_note();
    let mut rig = Rig::start(common, "max-cps")?;
    sleep(Duration::from_millis(500));
    println!(
        "{:>6} {:>7} {:>7} {:>6} {:>6} {:>7} {:>8} {:>7} {:>7} {:>7} {:>10} {:>9}  result",
        "rate",
        "calls",
        "ok",
        "failed",
        "unfin",
        "retrans",
        "achieved",
        "sw-cpu",
        "uac-cpu",
        "uas-cpu",
        "sw-us/call",
        "drops",
    );
    let mut steps: Vec<Step> = Vec::new();
    let mut rate = a.start;
    let mut bisect: Option<(u32, u32)> = None; // (last good, first bad)
    loop {
        let step = run_step(&mut rig, rate, a.duration_secs)?;
        let good = step.good();
        steps.push(step);
        let pause = if good {
            a.cooldown_secs
        } else {
            a.cooldown_secs.max(5)
        };
        // Next rate.
        let next = match bisect {
            Some((lo, hi)) => {
                let (lo, hi) = if good { (rate, hi) } else { (lo, rate) };
                bisect = Some((lo, hi));
                (hi - lo > a.refine_to).then_some(lo + (hi - lo) / 2)
            }
            None if !good && a.refine_to > 0 && !a.keep_going => {
                let lo = steps
                    .iter()
                    .filter(|s| s.good())
                    .map(|s| s.rate)
                    .max()
                    .unwrap_or(0);
                bisect = Some((lo, rate));
                (rate - lo > a.refine_to).then_some(lo + (rate - lo) / 2)
            }
            None if !good && !a.keep_going => None,
            None => {
                let r = rate.saturating_add(a.step.max(1));
                (a.step > 0 && r <= a.max).then_some(r)
            }
        };
        let Some(next) = next.filter(|&r| r > 0) else {
            break;
        };
        if next == rate {
            break;
        }
        sleep(Duration::from_secs(u64::from(pause)));
        rig.check_alive()?;
        rate = next;
    }
    let best = steps
        .iter()
        .filter(|s| s.good())
        .max_by_key(|s| s.rate)
        .cloned();
    let result = MaxCpsResult {
        transport: common.transport,
        duration_secs: a.duration_secs,
        max_rate: best.as_ref().map(|s| s.rate),
        achieved_at_max: best.as_ref().map(|s| s.achieved_cps),
        retransmissions_at_max: best.as_ref().map(|s| s.retransmissions),
        switch_drops_at_max: best.as_ref().and_then(|s| s.switch_udp_drops),
        max_rate_no_retransmissions: steps
            .iter()
            .filter(|s| s.good() && s.retransmissions == 0)
            .map(|s| s.rate)
            .max(),
        max_rate_zero_failures_any_speed: steps.iter().filter(|s| s.pass).map(|s| s.rate).max(),
        first_bad_rate: steps.iter().filter(|s| !s.good()).map(|s| s.rate).min(),
        steps,
    };
    let tr = common.transport.name();
    match &best {
        Some(_) => {
            let r = result.max_rate.unwrap_or(0);
            println!(
                "highest rate with 0 failures ({tr}): {r} calls/s (sipp achieved {:.0}/s; {} retransmissions, {} datagrams dropped at the switch)",
                result.achieved_at_max.unwrap_or(0.0),
                result.retransmissions_at_max.unwrap_or(0),
                result
                    .switch_drops_at_max
                    .map_or("?".into(), |d| d.to_string())
            );
        }
        None => {
            println!("highest rate with 0 failures ({tr}): none (every step failed or fell behind)")
        }
    }
    if result.max_rate_no_retransmissions != result.max_rate {
        println!(
            "highest rate with 0 failures and 0 retransmissions: {}",
            result
                .max_rate_no_retransmissions
                .map_or("none".into(), |r| format!("{r} calls/s"))
        );
    }
    if result.max_rate_zero_failures_any_speed > result.max_rate {
        println!(
            "(steps up to {} calls/s had 0 failures too, but sipp created calls at under 95% of the target rate)",
            result.max_rate_zero_failures_any_speed.unwrap_or(0)
        );
    }
    if let Some(f) = result.first_bad_rate {
        println!("first failing (or falling-behind) rate: {f} calls/s");
    } else if steps_hit_cap(&result, a) {
        println!("no step failed up to --max {}", a.max);
    }
    Ok(result)
}

fn steps_hit_cap(r: &MaxCpsResult, a: &MaxCpsArgs) -> bool {
    r.steps
        .last()
        .is_some_and(|s| s.rate + a.step.max(1) > a.max)
}

fn run_step(rig: &mut Rig, rate: u32, duration_secs: u32) -> Result<Step> {
    let calls = u64::from(rate) * u64::from(duration_secs);
    let (sw0, uas0) = rig.cpu();
    let (swd0, uasd0) = rig.drops();
    let t0 = Instant::now();
    let run = rig.spawn_uac(&UacSpec {
        label: format!("cps-{rate}"),
        scenario: "uac_cps.xml",
        rate,
        calls,
        hold_ms: 0,
        counts: false,
        latency: false,
    })?;
    let out = rig.finish_uac(run)?;
    let secs = t0.elapsed().as_secs_f64();
    let (sw1, uas1) = rig.cpu();
    let (swd1, uasd1) = rig.drops();
    let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    let tck = rig.tck as f64;
    let pct = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / tck / secs * 100.0),
        _ => None,
    };
    let switch_cpu_us_per_call = match (sw0, sw1) {
        (Some(a), Some(b)) if out.stats.outgoing > 0 => {
            Some(b.saturating_sub(a) as f64 / tck * 1e6 / out.stats.outgoing as f64)
        }
        _ => None,
    };
    let unfinished = out.unfinished(calls);
    let step = Step {
        rate,
        calls,
        successful: out.stats.successful,
        failed: out.stats.failed,
        unfinished,
        retransmissions: out.stats.retransmissions,
        achieved_cps: out.stats.call_rate,
        switch_cpu_pct: pct(sw0, sw1),
        uas_cpu_pct: pct(uas0, uas1),
        uac_cpu_pct: pct(Some(0), out.uac_ticks),
        switch_udp_drops: delta(swd0, swd1),
        uas_udp_drops: delta(uasd0, uasd1),
        switch_cpu_us_per_call,
        pass: out.stats.failed == 0
            && unfinished == 0
            && !out.timed_out
            && out.stats.successful == calls,
        sustained: out.stats.call_rate >= 0.95 * f64::from(rate),
        failure_reasons: out.stats.reasons.clone(),
        sipp_exit: out.exit_code,
    };
    print_step(&step);
    out.explain(calls);
    Ok(step)
}

impl Step {
    /// No failure, and sipp kept up with the target rate.
    fn good(&self) -> bool {
        self.pass && self.sustained
    }
}

fn print_step(s: &Step) {
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    println!(
        "{:>6} {:>7} {:>7} {:>6} {:>6} {:>7} {:>8.1} {:>6}% {:>6}% {:>6}% {:>10} {:>9}  {}",
        s.rate,
        s.calls,
        s.successful,
        s.failed,
        s.unfinished,
        s.retransmissions,
        s.achieved_cps,
        opt(s.switch_cpu_pct, 0),
        opt(s.uac_cpu_pct, 0),
        opt(s.uas_cpu_pct, 0),
        opt(s.switch_cpu_us_per_call, 0),
        format!(
            "{}/{}",
            s.switch_udp_drops.map_or("-".into(), |d| d.to_string()),
            s.uas_udp_drops.map_or("-".into(), |d| d.to_string())
        ),
        match (s.pass, s.sustained) {
            (true, true) => "ok",
            (true, false) => "SLOW (0 failures, but under 95% of the target rate)",
            (false, _) => "FAIL",
        }
    );
}

fn machine_note() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "machine: {cores} cores, shared by the switch, the sipp UAC and the sipp UAS (each sipp is single-threaded);\n\
         figures are for this machine and load generator, not the switch alone"
    );
}

// ---------------------------------------------------------------------------------------
// latency

#[derive(Clone, Debug, Serialize)]
struct Percentiles {
    samples: u64,
    min_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    mean_ms: f64,
}

impl Percentiles {
    fn from_hist(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            samples: h.len(),
            min_ms: ms(h.min()),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        })
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}, min {:.3}; n={})",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms, self.min_ms, self.samples
        )
    }
}

#[derive(Clone, Debug, Serialize)]
struct LatencyResult {
    transport: Transport,
    rate: u32,
    calls: u64,
    successful: u64,
    failed: u64,
    unfinished: u64,
    retransmissions: u64,
    achieved_cps: f64,
    /// INVITE sent -> first 180 received, from sipp's -trace_shortmsg (microsecond timestamps).
    invite_to_180: Option<Percentiles>,
    /// INVITE sent -> first 100 received (the switch's own answer).
    invite_to_100: Option<Percentiles>,
    /// INVITE sent -> first 200 received.
    invite_to_200: Option<Percentiles>,
    /// The same INVITE->180 delay as sipp's rtd ("ring") measures it (-trace_rtt).
    sipp_rtd_ring: Option<Percentiles>,
    /// The step between distinct sipp rtd values, in ms (its clock granularity here).
    sipp_rtd_granularity_ms: Option<f64>,
}

fn latency(common: &Common, a: &LatencyArgs) -> Result<LatencyResult> {
    if a.rate == 0 || a.calls == 0 {
        return Err("--rate and --calls must be positive".into());
    }
    println!(
        "\n=== latency: {} calls at {}/s, {} UAC leg, INVITE->180 as seen by the UAC ===",
        a.calls,
        a.rate,
        common.transport.name()
    );
    machine_note();
    let mut rig = Rig::start(common, "latency")?;
    sleep(Duration::from_millis(500));
    if a.warmup > 0 {
        rig.warm_up(a.rate, a.warmup)?;
        sleep(Duration::from_secs(1));
    }
    let run = rig.spawn_uac(&UacSpec {
        label: format!("latency-{}", a.rate),
        scenario: "uac_latency.xml",
        rate: a.rate,
        calls: a.calls,
        hold_ms: 0,
        counts: false,
        latency: true,
    })?;
    let out = rig.finish_uac(run)?;
    let unfinished = out.unfinished(a.calls);
    println!(
        "calls {}  ok {}  failed {}  unfinished {}  retransmissions {}  achieved {:.1}/s",
        a.calls,
        out.stats.successful,
        out.stats.failed,
        unfinished,
        out.stats.retransmissions,
        out.stats.call_rate
    );
    out.explain(a.calls);

    let (h100, h180, h200) = shortmsg_latencies(&out.dir)?;
    let (rtd, gran) = rtd_ring(&out.dir);
    let res = LatencyResult {
        transport: common.transport,
        rate: a.rate,
        calls: a.calls,
        successful: out.stats.successful,
        failed: out.stats.failed,
        unfinished,
        retransmissions: out.stats.retransmissions,
        achieved_cps: out.stats.call_rate,
        invite_to_180: Percentiles::from_hist(&h180),
        invite_to_100: Percentiles::from_hist(&h100),
        invite_to_200: Percentiles::from_hist(&h200),
        sipp_rtd_ring: rtd.as_ref().and_then(Percentiles::from_hist),
        sipp_rtd_granularity_ms: gran,
    };
    println!("delays in ms, from sipp's -trace_shortmsg timestamps (microseconds):");
    let show = |name: &str, p: &Option<Percentiles>| match p {
        Some(p) => println!("  {name:<14} {}", p.line()),
        None => println!("  {name:<14} no samples"),
    };
    show("INVITE->180", &res.invite_to_180);
    show("INVITE->100", &res.invite_to_100);
    show("INVITE->200", &res.invite_to_200);
    match (&res.sipp_rtd_ring, res.sipp_rtd_granularity_ms) {
        (Some(p), g) => {
            println!("  sipp rtd 180   {}", p.line());
            match g {
                Some(g) if g >= 0.95 => println!(
                    "  note: sipp's own rtd (-trace_rtt) values on this machine come in steps of {g:.1} ms (its clock\n\
                     \x20       granularity), too coarse here; the percentiles above use -trace_shortmsg timestamps"
                ),
                Some(g) => println!(
                    "  note: sipp's own rtd (-trace_rtt) values come in steps of {g:.1} ms or finer; the percentiles above use\n\
                     \x20       -trace_shortmsg timestamps (microseconds)"
                ),
                None => println!("  note: every sipp rtd sample was the same value; its granularity is at least that coarse"),
            }
        }
        (None, _) => println!("  sipp rtd: no -trace_rtt samples"),
    }
    Ok(res)
}

/// Microseconds since the epoch from sipp's "1704110400.123456".
fn epoch_us(v: &str) -> Option<u64> {
    let (s, f) = v.trim().split_once('.').unwrap_or((v.trim(), "0"));
    let mut frac: String = f.chars().take(6).collect();
    while frac.len() < 6 {
        frac.push('0');
    }
    Some(s.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?)
}

/// INVITE->100, ->180 and ->200 delays (us) per call from `<scenario>_<pid>_shortmessages.log`.
fn shortmsg_latencies(dir: &Path) -> Result<(Histogram<u64>, Histogram<u64>, Histogram<u64>)> {
    let path = find_file(dir, "_shortmessages.log")
        .ok_or_else(|| format!("no sipp shortmessages log in {}", dir.display()))?;
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[derive(Default)]
    struct Call {
        invite: Option<u64>,
        r100: Option<u64>,
        r180: Option<u64>,
        r200: Option<u64>,
    }
    let mut calls: HashMap<&str, Call> = HashMap::new();
    for line in text.lines() {
        // date \t time \t epoch \t S|R \t call-id \t CSeq:N METHOD \t first line
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 7 || !f[5].ends_with(" INVITE") {
            continue;
        }
        let Some(t) = epoch_us(f[2]) else { continue };
        let c = calls.entry(f[4]).or_default();
        let first = f[6];
        let slot = match f[3] {
            "S" if first.starts_with("INVITE ") => &mut c.invite,
            "R" if first.starts_with("SIP/2.0 100") => &mut c.r100,
            "R" if first.starts_with("SIP/2.0 180") => &mut c.r180,
            "R" if first.starts_with("SIP/2.0 200") => &mut c.r200,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(t);
        }
    }
    let new = || Histogram::<u64>::new(3).map_err(|e| e.to_string());
    let (mut h100, mut h180, mut h200) = (new()?, new()?, new()?);
    for c in calls.values() {
        let Some(i) = c.invite else { continue };
        for (r, h) in [
            (c.r100, &mut h100),
            (c.r180, &mut h180),
            (c.r200, &mut h200),
        ] {
            if let Some(r) = r {
                h.record(r.saturating_sub(i)).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok((h100, h180, h200))
}

/// sipp's own "ring" rtd samples (ms, from -trace_rtt) and the step between distinct values
/// (ms, at 0.1 ms resolution).
fn rtd_ring(dir: &Path) -> (Option<Histogram<u64>>, Option<f64>) {
    let Some(path) = find_file(dir, "_rtt.csv") else {
        return (None, None);
    };
    let Ok(text) = fs::read_to_string(path) else {
        return (None, None);
    };
    let Ok(mut h) = Histogram::<u64>::new(3) else {
        return (None, None);
    };
    let mut values: Vec<u64> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(';').collect();
        if f.len() >= 3 && f[2].trim() == "ring" {
            if let Ok(ms) = f[1].trim().parse::<f64>() {
                let us = (ms * 1000.0).round().max(0.0) as u64;
                let _ = h.record(us);
                values.push(us);
            }
        }
    }
    if h.is_empty() {
        return (None, None);
    }
    // Cluster to 0.1 ms (sipp adds a few us of jitter to a coarse clock: 4.001, 8.002, ...),
    // then take the smallest step between distinct values; 0.1 means "0.1 ms or finer".
    for v in &mut values {
        *v = (*v + 50) / 100;
    }
    values.sort_unstable();
    values.dedup();
    let gran = values
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .map(|tenths| tenths as f64 / 10.0);
    (Some(h), gran)
}

// ---------------------------------------------------------------------------------------
// memory

#[derive(Clone, Debug, Serialize)]
struct MemoryResult {
    transport: Transport,
    calls: u64,
    rate: u32,
    hold_secs: u64,
    warmup: u64,
    rss_before_kib: u64,
    /// RSS when all calls were established (setup time + 2 s after the first INVITE).
    rss_established_kib: u64,
    /// Calls in the hold pause at that moment (sipp -trace_counts).
    established: u64,
    bytes_per_call: Option<f64>,
    /// RSS again shortly before the calls hang up (transaction state of the setup gone).
    rss_late_kib: Option<u64>,
    established_late: Option<u64>,
    bytes_per_call_late: Option<f64>,
    /// RSS after every call has ended (+3 s).
    rss_after_kib: u64,
    hwm_kib: u64,
    successful: u64,
    failed: u64,
    unfinished: u64,
}

fn memory(common: &Common, a: &MemoryArgs) -> Result<MemoryResult> {
    if a.rate == 0 || a.calls == 0 {
        return Err("--rate and --calls must be positive".into());
    }
    let setup = Duration::from_secs_f64(a.calls as f64 / f64::from(a.rate));
    if Duration::from_secs(a.hold_secs) < setup + Duration::from_secs(5) {
        return Err(format!(
            "--hold-secs {} is too short: setting up {} calls at {}/s takes {:.1} s; hold at least {} s",
            a.hold_secs,
            a.calls,
            a.rate,
            setup.as_secs_f64(),
            setup.as_secs() + 6
        ));
    }
    println!(
        "\n=== memory: {} calls held {} s (set up at {}/s), {} UAC leg ===",
        a.calls,
        a.hold_secs,
        a.rate,
        common.transport.name()
    );
    machine_note();
    let mut rig = Rig::start(common, "memory")?;
    sleep(Duration::from_secs(1));
    if a.warmup > 0 {
        rig.warm_up(a.rate, a.warmup)?;
        sleep(Duration::from_secs(5));
    }
    rig.check_alive()?;
    let (rss_before, _) = rss_kib(rig.switch.pid)?;
    println!("switch RSS before: {} KiB", rss_before);

    let mut run = rig.spawn_uac(&UacSpec {
        label: format!("hold-{}", a.calls),
        scenario: "uac_hold.xml",
        rate: a.rate,
        calls: a.calls,
        hold_ms: a.hold_secs * 1000,
        counts: true,
        latency: false,
    })?;
    let hold = Duration::from_secs(a.hold_secs);
    // Wait until every call is in the hold pause and the setup time + 2 s has passed; give up
    // waiting for stragglers 3 s before the first calls would hang up.
    let min_wait = setup + Duration::from_secs(2);
    let give_up = hold.saturating_sub(Duration::from_secs(3)).max(min_wait);
    let mut held = 0;
    let mut acks = 0;
    loop {
        rig.check_alive()?;
        let waited = run.started.elapsed();
        if let Some((ack, pause)) = parse_counts(&run.dir) {
            acks = ack;
            held = pause;
        }
        if waited >= min_wait && (held >= a.calls || waited >= give_up) {
            break;
        }
        if run.proc.exited().is_some() {
            break;
        }
        sleep(Duration::from_millis(200));
    }
    // Counts are dumped once a second; read RSS now (median of three samples, 100 ms apart).
    let mut samples = Vec::new();
    for _ in 0..3 {
        samples.push(rss_kib(rig.switch.pid)?.0);
        sleep(Duration::from_millis(100));
    }
    samples.sort_unstable();
    let rss_est = samples[1];
    if let Some((ack, pause)) = parse_counts(&run.dir) {
        acks = ack;
        held = pause;
    }
    let per_call =
        |rss: u64, n: u64| (n > 0).then(|| (rss as f64 - rss_before as f64) * 1024.0 / n as f64);
    let bytes_per_call = per_call(rss_est, held);
    println!(
        "established at +{:.1} s: {} calls held ({} ACKs sent); switch RSS {} KiB (+{} KiB) -> {} bytes per established call",
        run.started.elapsed().as_secs_f64(),
        held,
        acks,
        rss_est,
        rss_est as i64 - rss_before as i64,
        bytes_per_call.map_or("-".into(), |b| format!("{b:.0}"))
    );
    if held < a.calls {
        println!(
            "  warning: only {held} of {} calls were established when RSS was read",
            a.calls
        );
    }

    // A second reading shortly before the hang-ups, when the setup transactions have expired.
    let late_at = hold.saturating_sub(Duration::from_secs(2));
    let (mut rss_late, mut held_late) = (None, None);
    if late_at > run.started.elapsed() + Duration::from_secs(5) {
        while run.started.elapsed() < late_at {
            rig.check_alive()?;
            sleep(Duration::from_millis(200));
        }
        let r = rss_kib(rig.switch.pid)?.0;
        let h = parse_counts(&run.dir).map_or(held, |(_, p)| p);
        println!(
            "before hang-up at +{:.1} s: {} calls held; switch RSS {} KiB (+{} KiB) -> {} bytes per call",
            run.started.elapsed().as_secs_f64(),
            h,
            r,
            r as i64 - rss_before as i64,
            per_call(r, h).map_or("-".into(), |b| format!("{b:.0}"))
        );
        rss_late = Some(r);
        held_late = Some(h);
    }
    let out = rig.finish_uac(run)?;
    let unfinished = out.unfinished(a.calls);
    println!(
        "calls {}  ok {}  failed {}  unfinished {}  retransmissions {}",
        a.calls, out.stats.successful, out.stats.failed, unfinished, out.stats.retransmissions
    );
    out.explain(a.calls);
    sleep(Duration::from_secs(3));
    rig.check_alive()?;
    let (rss_after, hwm) = rss_kib(rig.switch.pid)?;
    println!("after all calls ended (+3 s): switch RSS {rss_after} KiB (peak {hwm} KiB)");
    Ok(MemoryResult {
        transport: common.transport,
        calls: a.calls,
        rate: a.rate,
        hold_secs: a.hold_secs,
        warmup: a.warmup,
        rss_before_kib: rss_before,
        rss_established_kib: rss_est,
        established: held,
        bytes_per_call,
        rss_late_kib: rss_late,
        established_late: held_late,
        bytes_per_call_late: match (rss_late, held_late) {
            (Some(r), Some(h)) => per_call(r, h),
            _ => None,
        },
        rss_after_kib: rss_after,
        hwm_kib: hwm,
        successful: out.stats.successful,
        failed: out.stats.failed,
        unfinished,
    })
}

// ---------------------------------------------------------------------------------------
// summary

fn print_summary(r: &Report) {
    let mut s = String::new();
    let _ = writeln!(s, "\n=== summary (foundation acceptance point 7) ===");
    let _ = writeln!(s, "{:<34} result", "measure");
    match &r.max_cps {
        Some(m) => {
            let v = match (m.max_rate, m.achieved_at_max) {
                (Some(rate), Some(ach)) => {
                    let step = m.steps.iter().find(|s| s.rate == rate);
                    format!(
                        "{rate} calls/s (achieved {ach:.0}/s, {} retrans; switch CPU {}; 0 retrans up to {}; first bad rate {})",
                        m.retransmissions_at_max.unwrap_or(0),
                        step.and_then(|s| s.switch_cpu_pct)
                            .map_or("-".into(), |c| format!("{c:.0}%")),
                        m.max_rate_no_retransmissions
                            .map_or("-".into(), |r| r.to_string()),
                        m.first_bad_rate.map_or("none".into(), |f| f.to_string())
                    )
                }
                _ => "none: every step failed or fell behind".into(),
            };
            let _ = writeln!(
                s,
                "{:<34} {v}",
                format!("max cps, 0 failures ({})", m.transport.name())
            );
        }
        None => {
            let _ = writeln!(s, "{:<34} error", "max cps");
        }
    }
    match &r.latency {
        Some(l) => {
            let v = match &l.invite_to_180 {
                Some(p) => format!(
                    "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms (n={}, failed {})",
                    p.p50_ms,
                    p.p90_ms,
                    p.p99_ms,
                    p.max_ms,
                    p.samples,
                    l.failed + l.unfinished
                ),
                None => "no samples".into(),
            };
            let _ = writeln!(
                s,
                "{:<34} {v}",
                format!("INVITE->180 @ {}/s ({})", l.rate, l.transport.name())
            );
        }
        None => {
            let _ = writeln!(s, "{:<34} error", "INVITE->180 latency");
        }
    }
    match &r.memory {
        Some(m) => {
            let v = format!(
                "{} bytes (RSS {} -> {} KiB with {} calls up{}; after hang-up {} KiB)",
                m.bytes_per_call.map_or("-".into(), |b| format!("{b:.0}")),
                m.rss_before_kib,
                m.rss_established_kib,
                m.established,
                m.bytes_per_call_late.map_or(String::new(), |b| format!(
                    "; {b:.0} bytes/call just before hang-up"
                )),
                m.rss_after_kib
            );
            let _ = writeln!(
                s,
                "{:<34} {v}",
                format!("memory per established call ({})", m.calls)
            );
        }
        None => {
            let _ = writeln!(s, "{:<34} error", "memory per established call");
        }
    }
    for e in &r.errors {
        let first = e.lines().next().unwrap_or("");
        let _ = writeln!(s, "error: {first}");
    }
    print!("{s}");
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(secs: f64) -> String {
        format!("2026-01-01\t00:00:00.000000\t{secs:.6}")
    }

    #[test]
    fn epoch_microseconds() {
        assert_eq!(epoch_us("1795488151.355875"), Some(1_795_488_151_355_875));
        assert_eq!(epoch_us("10.5"), Some(10_500_000));
        assert_eq!(epoch_us("7"), Some(7_000_000));
        assert_eq!(epoch_us("x.1"), None);
    }

    #[test]
    fn stat_csv_last_row_failures_and_creation_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat.csv");
        let header = "StartTime;CurrentTime;CallRate(C);OutgoingCall(C);CurrentCall;SuccessfulCall(C);FailedCall(C);FailedMaxUDPRetrans(C);FailedTimeoutOnRecv(C);Retransmissions(C);";
        let row = |t: f64, out: u64, ok: u64, failed: u64, recv: u64| {
            format!(
                "{};{};5.0;{out};0;{ok};{failed};0;{recv};3;",
                stamp(1000.0),
                stamp(1000.0 + t)
            )
        };
        let text = [
            header.to_string(),
            row(0.0, 0, 0, 0, 0),
            row(1.0, 100, 90, 0, 0),
            row(2.0, 200, 195, 0, 0),
            row(3.0, 250, 240, 0, 0),
            row(13.0, 250, 248, 2, 2),
            "2026-01-01\t00:00".to_string(), // a row cut short while being written
        ]
        .join("\n");
        fs::write(&path, text).unwrap();
        let s = parse_stat_csv(&path).unwrap();
        assert_eq!((s.outgoing, s.successful, s.failed), (250, 248, 2));
        assert_eq!(s.retransmissions, 3);
        assert_eq!(s.reasons, "TimeoutOnRecv=2");
        // 250 calls reached at t = 2 + 50/50 * 1 = 3 s, not the 13 s of the whole run.
        assert!((s.call_rate - 250.0 / 3.0).abs() < 1e-6, "{}", s.call_rate);
        assert!((s.elapsed_secs - 13.0).abs() < 1e-6);
    }

    #[test]
    fn shortmsg_delays_use_first_invite_and_first_response() {
        let dir = tempfile::tempdir().unwrap();
        let line = |t: &str, dir: &str, id: &str, cseq: &str, first: &str| {
            format!("2026-01-01\t00:00:00.0\t{t}\t{dir}\t{id}\tCSeq:{cseq}\t{first}\n")
        };
        let mut text = String::new();
        text += &line(
            "100.000000",
            "S",
            "1-1@h",
            "1 INVITE",
            "INVITE sip:1@h SIP/2.0",
        );
        text += &line("100.000200", "R", "1-1@h", "1 INVITE", "SIP/2.0 100 Trying");
        text += &line(
            "100.000500",
            "S",
            "1-1@h",
            "1 INVITE",
            "INVITE sip:1@h SIP/2.0",
        );
        text += &line(
            "100.001500",
            "R",
            "1-1@h",
            "1 INVITE",
            "SIP/2.0 180 Ringing",
        );
        text += &line(
            "100.001600",
            "R",
            "1-1@h",
            "1 INVITE",
            "SIP/2.0 180 Ringing",
        );
        text += &line("100.002000", "R", "1-1@h", "1 INVITE", "SIP/2.0 200 OK");
        text += &line("100.003000", "S", "1-1@h", "2 BYE", "BYE sip:x SIP/2.0");
        text += &line("100.003100", "R", "1-1@h", "2 BYE", "SIP/2.0 200 OK");
        text += &line(
            "200.000000",
            "S",
            "2-1@h",
            "1 INVITE",
            "INVITE sip:1@h SIP/2.0",
        );
        fs::write(dir.path().join("uac_latency_1_shortmessages.log"), text).unwrap();
        let (h100, h180, h200) = shortmsg_latencies(dir.path()).unwrap();
        assert_eq!((h100.len(), h180.len(), h200.len()), (1, 1, 1));
        assert_eq!(h100.max(), 200);
        assert!(h180.equivalent(h180.max(), 1500));
        assert!(h200.equivalent(h200.max(), 2000));
    }

    #[test]
    fn rtd_granularity_clusters_coarse_clock() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Date_ms;response_time_ms;rtd_no\n1;0;ring\n2;4.001;ring\n3;4;answer\n4;8.002;ring\n5;4;ring\n";
        fs::write(dir.path().join("uac_latency_1_rtt.csv"), text).unwrap();
        let (h, g) = rtd_ring(dir.path());
        assert_eq!(h.unwrap().len(), 4);
        assert_eq!(g, Some(4.0));
    }

    #[test]
    fn counts_file_gives_acks_and_held_calls() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "CurrentTime;ElapsedTime;0_INVITE_Sent;5_ACK_Sent;5_ACK_Retrans;6_Pause_Sessions;6_Pause_Unexp;\n{};00:00:01;300;290;0;280;0;\n",
            stamp(1.0)
        );
        fs::write(dir.path().join("uac_hold_1_counts.csv"), text).unwrap();
        assert_eq!(parse_counts(dir.path()), Some((290, 280)));
    }

    #[test]
    fn open_call_limit_keeps_held_calls() {
        let spec = |calls, rate, hold_ms| UacSpec {
            label: String::new(),
            scenario: "x",
            rate,
            calls,
            hold_ms,
            counts: false,
            latency: false,
        };
        assert_eq!(open_call_limit(&spec(2000, 500, 30_000)), 2000);
        assert_eq!(open_call_limit(&spec(30_000, 3000, 0)), 15_000);
        assert_eq!(open_call_limit(&spec(600, 200, 0)), 600);
    }
}
