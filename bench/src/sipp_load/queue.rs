//! `sipp-load queue`: the ACD's end-to-end answer delay under load.
//!
//! The switch gets `--agents` users (password `bench`) registered from the
//! sipp UAS's address, one agent per user, all logged in at start, in one
//! queue; every call from the carrier trunk goes to that queue. The sipp UAC
//! places `--calls` callers at `--rate`; the switch answers each (the join)
//! and offers it to an agent, whose phone (the sipp UAS) answers at once
//! with 180 and 200. A caller hangs up `--hold-secs` after the switch
//! answered. The answer delay is the CDR's `wait_ms`: from the join to the
//! agent's 200 (ACD decision, INVITE to the phone, its answer, the bridge),
//! millisecond resolution.

use super::*;

#[derive(Args, Clone, Debug, Serialize)]
pub(super) struct QueueArgs {
    /// Caller rate (calls/s).
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Number of callers.
    #[arg(long, default_value_t = 2000)]
    calls: u64,
    /// How long a caller stays after the switch answered, seconds.
    #[arg(long, default_value_t = 4)]
    hold_secs: u64,
    /// Agents (each on its own user, all of them on the sipp UAS).
    #[arg(long, default_value_t = 400)]
    agents: u32,
    /// The queue's strategy.
    #[arg(long, default_value = "longest-idle")]
    strategy: String,
    /// Runs of `--calls` callers against the same switch (its RSS is printed
    /// after each: steady figures mean nothing piles up per call).
    #[arg(long, default_value_t = 1)]
    rounds: u32,
}

#[derive(Clone, Debug, Serialize)]
pub(super) struct QueueResult {
    args: QueueArgs,
    successful: u64,
    failed: u64,
    unfinished: u64,
    achieved_cps: f64,
    /// Queue CDRs with an agent, and without.
    answered: u64,
    unanswered: u64,
    /// Join -> the agent's answer (CDR wait_ms).
    answer_delay: Option<Percentiles>,
    /// The switch's CPU use during the runs (% of one core) and its RSS after each.
    switch_cpu_pct: Option<f64>,
    switch_rss_kib: Vec<u64>,
}

/// The config after the trunks: users, agents, the queue, the route.
fn config(a: &QueueArgs) -> String {
    let mut c = format!(
        r#"[media]
port_min = 40000
port_max = 59999

[acd]
login_at_start = true

[[queues]]
name = "bench"
strategy = "{}"
ring_timeout_secs = 10
wrap_up_secs = 0
announce_secs = 0

[[routes]]
prefix = ""
from = "trunks"
target = {{ queue = "bench" }}
"#,
        a.strategy
    );
    for u in users(a.agents) {
        let _ = write!(
            c,
            "\n[[users]]\nname = \"{u}\"\npassword = \"bench\"\n\n[[agents]]\nname = \"agent{u}\"\nusers = [\"{u}\"]\nqueues = [\"bench\"]\n"
        );
    }
    c
}

fn users(n: u32) -> Vec<String> {
    (0..n).map(|i| (30000 + i).to_string()).collect()
}

/// Registers `users` (password `bench`) at the switch from 127.0.0.1:`port`
/// (answering the digest challenge), so calls to them go to that port.
pub(super) fn register(switch: SocketAddr, port: u16, users: &[String]) -> Result<()> {
    let sock = UdpSocket::bind(("127.0.0.1", port))
        .map_err(|e| format!("cannot bind 127.0.0.1:{port} to register: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let uri = format!("sip:{switch}");
    for (i, user) in users.iter().enumerate() {
        let mut auth = String::new();
        for cseq in 1..=2 {
            let msg = format!(
                "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{i}-{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=b{i}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: reg-{i}@bench\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n\
                 Expires: 3600\r\n{auth}Content-Length: 0\r\n\r\n"
            );
            sock.send_to(msg.as_bytes(), switch)
                .map_err(|e| e.to_string())?;
            let resp = final_response(&sock)?;
            match resp.code {
                200 => break,
                401 if cseq == 1 => {
                    let ch = resp
                        .headers
                        .get_all(&sip::Name::WwwAuthenticate)
                        .find_map(|v| sip::auth::Challenge::parse(v).ok())
                        .ok_or("401 without a usable challenge")?;
                    let creds =
                        sip::auth::respond(&ch, "REGISTER", &uri, user, "bench", "benchcnonce", 1);
                    auth = format!("Authorization: {}\r\n", creds.to_header_value());
                }
                code => return Err(format!("REGISTER {user}: {code} {}", resp.reason)),
            }
        }
    }
    Ok(())
}

/// The next final response on `sock`.
fn final_response(sock: &UdpSocket) -> Result<sip::Response> {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, _) = sock
            .recv_from(&mut buf)
            .map_err(|e| format!("no answer to REGISTER: {e}"))?;
        if let Ok(sip::Message::Response(r)) = sip::parse(
            &bytes::Bytes::copy_from_slice(&buf[..n]),
            sip::Framing::Datagram,
        ) {
            if r.code >= 200 {
                return Ok(r);
            }
        }
    }
}

pub(super) fn run(common: &Common, a: &QueueArgs) -> Result<QueueResult> {
    if a.rate == 0 || a.calls == 0 || a.agents == 0 {
        return Err("--rate, --calls and --agents must be positive".into());
    }
    println!(
        "\n=== queue: {} callers at {}/s held {} s, {} agents ({}), {} UAC leg ===",
        a.calls,
        a.rate,
        a.hold_secs,
        a.agents,
        a.strategy,
        common.transport.name()
    );
    machine_note();
    let setup = Setup {
        config: Some(config(a)),
        register: users(a.agents),
    };
    let mut rig = Rig::start_with(common, "queue", &setup)?;
    sleep(Duration::from_secs(1));
    let (cpu0, _) = rig.cpu();
    let t0 = Instant::now();
    let (mut successful, mut failed, mut unfinished, mut rate) = (0, 0, 0, 0.0);
    let mut rss = Vec::new();
    for round in 1..=a.rounds.max(1) {
        let run = rig.spawn_uac(&UacSpec {
            label: format!("queue-{round}"),
            scenario: "uac_hold.xml",
            rate: a.rate,
            calls: a.calls,
            hold_ms: a.hold_secs * 1000,
            counts: false,
            latency: false,
        })?;
        let out = rig.finish_uac(run)?;
        out.explain(a.calls);
        successful += out.stats.successful;
        failed += out.stats.failed;
        unfinished += out.unfinished(a.calls);
        rate = out.stats.call_rate;
        // The last calls end when their BYEs are answered.
        sleep(Duration::from_secs(1));
        let kib = rss_kib(rig.switch.pid).map(|r| r.0).unwrap_or(0);
        println!(
            "round {round}: {} ok, {} failed; switch RSS {kib} KiB",
            out.stats.successful, out.stats.failed
        );
        rss.push(kib);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, _) = rig.cpu();
    let switch_cpu_pct = match (cpu0, cpu1) {
        (Some(x), Some(y)) => Some((y - x) as f64 / rig.tck as f64 / elapsed * 100.0),
        _ => None,
    };
    let switch_bin = bench::switch_bin(common.switch_bin.as_deref())?;
    let sock = rig.dir.join("switchboard.sock");
    let q = Command::new(&switch_bin)
        .arg("ctl")
        .arg("--socket")
        .arg(&sock)
        .args([
            "cdr", "query", "--json", "--since", "1h", "--queue", "bench",
        ])
        .args([
            "--limit",
            &(a.calls * u64::from(a.rounds) + 100).to_string(),
        ])
        .output()
        .map_err(|e| format!("switchboard ctl: {e}"))?;
    if !q.status.success() {
        return Err(format!(
            "cdr query failed: {}",
            String::from_utf8_lossy(&q.stderr)
        ));
    }
    let cdrs: serde_json::Value =
        serde_json::from_slice(&q.stdout).map_err(|e| format!("cdr query: not JSON: {e}"))?;
    let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let (mut answered, mut unanswered) = (0, 0);
    for c in cdrs.as_array().into_iter().flatten() {
        if c["agent"].is_string() {
            answered += 1;
            let wait_us = c["wait_ms"].as_u64().unwrap_or(0) * 1000;
            let _ = hist.record(wait_us.max(1));
        } else {
            unanswered += 1;
        }
    }
    let r = QueueResult {
        args: a.clone(),
        successful,
        failed,
        unfinished,
        achieved_cps: rate,
        answered,
        unanswered,
        answer_delay: Percentiles::from_hist(&hist),
        switch_cpu_pct,
        switch_rss_kib: rss,
    };
    println!(
        "callers: {} ok, {} failed, {} unfinished ({:.1} calls/s achieved)",
        r.successful, r.failed, r.unfinished, r.achieved_cps
    );
    println!(
        "queue CDRs: {} answered by an agent, {} not",
        r.answered, r.unanswered
    );
    match &r.answer_delay {
        Some(p) => println!("answer delay (join -> agent's 200), ms: {}", p.line()),
        None => println!("answer delay: no answered calls"),
    }
    if let Some(cpu) = r.switch_cpu_pct {
        println!("switch: {cpu:.0} % of a core during the run");
    }
    Ok(r)
}
