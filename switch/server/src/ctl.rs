//! `switchboard ctl`: the control socket's command line. Tables for people,
//! `--json` for scripts, an interactive mode with history (no command), and
//! `ctl events` to follow the event stream.

use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::Table;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `switchboard ctl` options.
#[derive(clap::Args, Clone)]
pub(crate) struct Args {
    /// Control socket (default: `[control] socket` of --config, else ./switchboard.sock).
    #[arg(long, short, global = true)]
    socket: Option<PathBuf>,
    /// Config file naming the socket.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Print the switch's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Clone)]
enum Cmd {
    /// Version, uptime, calls, registrations, media and store counters.
    Status,
    /// Calls in progress.
    Calls {
        #[command(subcommand)]
        cmd: CallsCmd,
    },
    /// Registered phones.
    Registrations {
        #[command(subcommand)]
        cmd: ListCmd,
    },
    /// Agents: list, log in/out, pause/resume.
    Agents {
        #[command(subcommand)]
        cmd: AgentsCmd,
    },
    /// Queues: list, stats.
    Queues {
        #[command(subcommand)]
        cmd: QueuesCmd,
    },
    /// Call detail records.
    Cdr {
        #[command(subcommand)]
        cmd: CdrCmd,
    },
    /// Alerts raised now.
    Alerts,
    /// Follow the event stream (Ctrl-C to stop).
    Events {
        /// Only these kinds (e.g. `call`, `call.end`, `registration`); repeatable.
        #[arg(long = "kind", short)]
        kinds: Vec<String>,
    },
    /// Re-read the switch's config file (refused with the reason if invalid).
    Reload,
    /// The commands the switch's control socket answers.
    Commands,
    /// Send any command: `ctl raw calls.hangup '{"call_id":"..."}'`.
    Raw {
        /// Command name.
        cmd: String,
        /// Arguments as JSON.
        args: Option<String>,
    },
}

#[derive(Subcommand, Clone)]
enum CallsCmd {
    /// List calls in progress.
    List,
    /// Hang a call up.
    Hangup {
        /// Its Call-ID (leg A's, as `calls list` shows).
        call_id: String,
    },
    /// Recording control for one call.
    Record {
        /// The call (leg A's Call-ID).
        call_id: String,
        /// What to do.
        #[arg(value_enum)]
        action: RecordAction,
    },
    /// Click-to-call: ring USER's phone, then dial NUMBER from it.
    Originate {
        /// The local user whose phone rings first.
        user: String,
        /// The number to dial when the user answers.
        number: String,
    },
    /// A supervisor (USER's phone rings) listens, whispers to the agent or barges in.
    Monitor {
        /// The call (leg A's Call-ID).
        call_id: String,
        /// The supervisor's user.
        user: String,
        /// listen, whisper or barge (again while connected: switch).
        #[arg(long, default_value = "listen")]
        mode: String,
    },
    /// Transfer the caller to another number (the callee is released when it answers).
    Transfer {
        /// The call (leg A's Call-ID).
        call_id: String,
        /// Where to: a user or any number the dialplan routes.
        to: String,
    },
}

#[derive(Subcommand, Clone)]
enum AgentsCmd {
    /// Agents and their state.
    List,
    /// Start taking calls (an agent's name or one of their phones).
    Login {
        /// The agent.
        agent: String,
    },
    /// Stop taking calls.
    Logout {
        /// The agent.
        agent: String,
    },
    /// Take a break.
    Pause {
        /// The agent.
        agent: String,
        /// Why (reported).
        #[arg(long, default_value = "break")]
        reason: String,
    },
    /// Back from the break.
    Resume {
        /// The agent.
        agent: String,
    },
}

#[derive(Subcommand, Clone)]
enum QueuesCmd {
    /// Queues and their figures.
    List,
    /// One queue's figures.
    Stats {
        /// The queue.
        queue: String,
    },
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum RecordAction {
    Start,
    Stop,
    Pause,
    Resume,
}

#[derive(Subcommand, Clone)]
enum ListCmd {
    /// List them.
    List,
}

#[derive(Subcommand, Clone)]
enum CdrCmd {
    /// Show CDRs as a table (or JSON).
    Query(CdrArgs),
    /// Write CDRs to stdout as CSV or JSON lines.
    Export {
        #[command(flatten)]
        range: CdrArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
    },
}

#[derive(clap::Args, Clone)]
struct CdrArgs {
    /// Calls that ended at or after: RFC 3339 (`2026-11-24`, `2026-11-24T08:00:00Z`),
    /// a time ago (`30m`, `2h`, `7d`), or unix seconds. Default: 1 day ago.
    #[arg(long, default_value = "1d")]
    since: String,
    /// ... and before (same forms). Default: now and later.
    #[arg(long)]
    until: Option<String>,
    /// Only this queue's calls.
    #[arg(long)]
    queue: Option<String>,
    /// Only this agent's calls.
    #[arg(long)]
    agent: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Json,
}

/// A parser for one interactive line.
#[derive(Parser)]
#[command(name = "", no_binary_name = true, disable_version_flag = true)]
struct Line {
    #[command(subcommand)]
    command: Cmd,
}

/// Runs `switchboard ctl`.
pub(crate) fn main(args: Args) -> ExitCode {
    let socket = match socket_path(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut conn = match Conn::open(&socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard ctl: {}: {e}", socket.display());
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.command {
        Some(cmd) => run(&mut conn, cmd, args.json),
        None => interactive(&mut conn, args.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard ctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn socket_path(args: &Args) -> Result<PathBuf, String> {
    if let Some(s) = &args.socket {
        return Ok(s.clone());
    }
    match &args.config {
        Some(path) => config::Config::from_file(path)
            .map(|c| c.control.socket)
            .map_err(|e| e.to_string()),
        None => Ok(PathBuf::from("switchboard.sock")),
    }
}

/// One connection to the switch.
struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Conn {
    fn open(path: &std::path::Path) -> std::io::Result<Conn> {
        let stream = UnixStream::connect(path)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn {
            stream,
            reader,
            next_id: 1,
        })
    }

    fn read_line(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("the switch closed the connection".into()),
            Ok(_) => serde_json::from_str(&line).map_err(|e| format!("bad reply: {e}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends a command and returns its result (or its error).
    fn call(&mut self, cmd: &str, args: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"id": id, "cmd": cmd, "args": args});
        if let Err(e) = writeln!(self.stream, "{req}") {
            // The switch may have refused us and closed: its reason waits.
            return match self.read_line() {
                Ok(v) if v["error"].is_string() => Err(v["error"].as_str().unwrap_or("").into()),
                _ => Err(e.to_string()),
            };
        }
        loop {
            let v = self.read_line()?;
            if v.get("event").is_some() {
                continue;
            }
            if v["id"] != json!(id) && !v["id"].is_null() {
                continue;
            }
            return match v["ok"].as_bool() {
                Some(true) => Ok(v["result"].clone()),
                _ => Err(v["error"].as_str().unwrap_or("failed").to_owned()),
            };
        }
    }
}

fn run(conn: &mut Conn, cmd: &Cmd, json_out: bool) -> Result<(), String> {
    let print = |v: &Value, table: &dyn Fn(&Value) -> String| {
        if json_out {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{}", table(v));
        }
    };
    match cmd {
        Cmd::Status => print(&conn.call("status", Value::Null)?, &status_table),
        Cmd::Calls {
            cmd: CallsCmd::List,
        } => print(&conn.call("calls.list", Value::Null)?, &|v| {
            rows_table(
                v,
                &[
                    "call_id",
                    "caller",
                    "dialed",
                    "destination",
                    "state",
                    "duration_s",
                ],
            )
        }),
        Cmd::Calls {
            cmd: CallsCmd::Hangup { call_id },
        } => print(
            &conn.call("calls.hangup", json!({ "call_id": call_id }))?,
            &|_| format!("hanging up {call_id}"),
        ),
        Cmd::Calls {
            cmd: CallsCmd::Record { call_id, action },
        } => {
            let action = format!("{action:?}").to_lowercase();
            print(
                &conn.call(
                    "calls.record",
                    json!({ "call_id": call_id, "action": action }),
                )?,
                &|_| format!("recording of {call_id}: {action}"),
            )
        }
        Cmd::Calls {
            cmd: CallsCmd::Originate { user, number },
        } => print(
            &conn.call("calls.originate", json!({ "user": user, "number": number }))?,
            &|v| {
                format!(
                    "ringing {user}, then dialing {number}: call {}",
                    v["call_id"].as_str().unwrap_or("")
                )
            },
        ),
        Cmd::Calls {
            cmd:
                CallsCmd::Monitor {
                    call_id,
                    user,
                    mode,
                },
        } => print(
            &conn.call(
                "calls.monitor",
                json!({ "call_id": call_id, "user": user, "mode": mode }),
            )?,
            &|v| {
                format!(
                    "{call_id}: {} {} ({})",
                    v["supervisor"].as_str().unwrap_or(""),
                    v["mode"].as_str().unwrap_or(""),
                    v["state"].as_str().unwrap_or("")
                )
            },
        ),
        Cmd::Calls {
            cmd: CallsCmd::Transfer { call_id, to },
        } => print(
            &conn.call("calls.transfer", json!({ "call_id": call_id, "to": to }))?,
            &|_| {
                format!("transferring {call_id} to {to} (follow `ctl events --kind call.transfer`)")
            },
        ),
        Cmd::Agents {
            cmd: AgentsCmd::List,
        } => print(&conn.call("agents.list", Value::Null)?, &|v| {
            rows_table(
                v,
                &["agent", "state", "reason", "phones", "queues", "calls"],
            )
        }),
        Cmd::Agents { cmd } => {
            let (name, agent, reason) = match cmd {
                AgentsCmd::Login { agent } => ("agent.login", agent, None),
                AgentsCmd::Logout { agent } => ("agent.logout", agent, None),
                AgentsCmd::Pause { agent, reason } => ("agent.pause", agent, Some(reason)),
                AgentsCmd::Resume { agent } => ("agent.resume", agent, None),
                AgentsCmd::List => unreachable!("listed above"),
            };
            print(
                &conn.call(name, json!({ "agent": agent, "reason": reason }))?,
                &|v| {
                    format!(
                        "{}: {}{}",
                        v["agent"].as_str().unwrap_or(""),
                        v["state"].as_str().unwrap_or(""),
                        v["reason"]
                            .as_str()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    )
                },
            )
        }
        Cmd::Queues { cmd } => {
            let v = match cmd {
                QueuesCmd::List => conn.call("queues.list", Value::Null)?,
                QueuesCmd::Stats { queue } => {
                    Value::Array(vec![conn.call("queue.stats", json!({ "queue": queue }))?])
                }
            };
            print(&v, &|v| {
                rows_table(
                    v,
                    &[
                        "queue",
                        "strategy",
                        "waiting",
                        "longest_wait_s",
                        "agents_logged_in",
                        "agents_available",
                        "answered",
                        "abandoned",
                        "service_level_pct",
                    ],
                )
            })
        }
        Cmd::Registrations { cmd: ListCmd::List } => {
            print(&conn.call("registrations.list", Value::Null)?, &|v| {
                rows_table(
                    v,
                    &[
                        "user",
                        "contact",
                        "expires_in",
                        "source",
                        "transport",
                        "user_agent",
                    ],
                )
            })
        }
        Cmd::Cdr { cmd } => {
            let (range, format) = match cmd {
                CdrCmd::Query(r) => (r, None),
                CdrCmd::Export { range, format } => (range, Some(*format)),
            };
            let q = json!({
                "since_ms": parse_time(&range.since)?,
                "until_ms": range.until.as_deref().map(parse_time).transpose()?,
                "queue": range.queue,
                "agent": range.agent,
                "limit": range.limit,
            });
            let rows = conn.call("cdr.query", q)?;
            match format {
                Some(Format::Csv) => write_csv(&rows)?,
                Some(Format::Json) => {
                    for r in rows.as_array().into_iter().flatten() {
                        println!("{r}");
                    }
                }
                None => print(&rows, &|v| {
                    rows_table(
                        v,
                        &[
                            "end",
                            "call_id",
                            "caller",
                            "dialed",
                            "destination",
                            "disposition",
                            "reason",
                            "talk_s",
                        ],
                    )
                }),
            }
        }
        Cmd::Events { kinds } => {
            conn.call("events.subscribe", json!({ "kinds": kinds }))?;
            loop {
                let v = conn.read_line()?;
                let Some(ev) = v.get("event") else { continue };
                if json_out {
                    println!("{ev}");
                } else {
                    println!(
                        "{} {:<14} {}",
                        ev["ts_ms"].as_u64().map(fmt_ms).unwrap_or_default(),
                        ev["kind"].as_str().unwrap_or(""),
                        ev["data"]
                    );
                }
                let _ = std::io::stdout().flush();
            }
        }
        Cmd::Alerts => print(&conn.call("alerts.list", Value::Null)?, &|v| {
            rows_table(v, &["alert", "subject", "detail"])
        }),
        Cmd::Reload => print(&conn.call("config.reload", Value::Null)?, &|v| {
            let restart = v["restart_needed"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map(|a| format!("; restart needed for: {}", join(a)))
                .unwrap_or_default();
            format!("reloaded {}{restart}", v["reloaded"].as_str().unwrap_or(""))
        }),
        Cmd::Commands => print(&conn.call("help", Value::Null)?, &|v| {
            rows_table(v, &["command", "about"])
        }),
        Cmd::Raw { cmd, args } => {
            let args = match args {
                Some(a) => serde_json::from_str(a).map_err(|e| format!("args: {e}"))?,
                None => Value::Null,
            };
            let v = conn.call(cmd, args)?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    Ok(())
}

/// `switchboard ctl` without a command: a prompt with history.
fn interactive(conn: &mut Conn, json_out: bool) -> Result<(), String> {
    let mut rl = rustyline::DefaultEditor::new().map_err(|e| e.to_string())?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".switchboard_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!("switchboard ctl: commands as on the command line (`calls list`, `status`, `commands`, `help`); `quit` to leave");
    loop {
        let line = match rl.readline("switchboard> ") {
            Ok(l) => l,
            Err(
                rustyline::error::ReadlineError::Interrupted | rustyline::error::ReadlineError::Eof,
            ) => break,
            Err(e) => return Err(e.to_string()),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => continue,
            ["quit" | "exit"] => break,
            _ => {}
        }
        let _ = rl.add_history_entry(line.as_str());
        match Line::try_parse_from(&words) {
            Ok(Line { command }) => {
                if let Err(e) = run(conn, &command, json_out) {
                    eprintln!("error: {e}");
                }
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

/// A time argument as unix ms: RFC 3339 (date or date-time, UTC), a
/// duration ago (`30m`, `2h`, `7d`), or unix seconds.
fn parse_time(s: &str) -> Result<u64, String> {
    let now = SystemTime::now();
    let ms = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs * 1000);
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(ms(now - ago));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    humantime::parse_rfc3339_weak(full.trim_end_matches('Z'))
        .map(ms)
        .map_err(|_| {
            format!("{s:?}: not a time (2026-11-24, 2026-11-24T08:00:00Z, 2h, or unix seconds)")
        })
}

fn fmt_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn join(a: &[Value]) -> String {
    a.iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A cell's text: strings bare, null empty, times of `*_ms` fields readable.
fn cell(row: &Value, col: &str) -> String {
    let v = match col {
        "end" => return row["end_ms"].as_u64().map(fmt_ms).unwrap_or_default(),
        "talk_s" => return format!("{:.1}", row["talk_ms"].as_f64().unwrap_or(0.0) / 1000.0),
        _ => &row[col],
    };
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => join(a),
        other => other.to_string(),
    }
}

fn rows_table(v: &Value, cols: &[&str]) -> String {
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "(none)".into();
    }
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(cols.to_vec());
    for r in &rows {
        t.add_row(cols.iter().map(|c| cell(r, c)).collect::<Vec<_>>());
    }
    format!("{t}\n{} row(s)", rows.len())
}

fn status_table(v: &Value) -> String {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    let flat = |prefix: &str, v: &Value, out: &mut Vec<(String, String)>| {
        if let Value::Object(m) = v {
            for (k, v) in m {
                out.push((format!("{prefix}{k}"), cell(&json!({ "x": v }), "x")));
            }
        }
    };
    let mut rows = Vec::new();
    if let Value::Object(m) = v {
        for (k, val) in m {
            match val {
                Value::Object(_) => flat(&format!("{k}."), val, &mut rows),
                _ => rows.push((k.clone(), cell(&json!({ "x": val }), "x"))),
            }
        }
    }
    for (k, val) in rows {
        t.add_row(vec![k, val]);
    }
    t.to_string()
}

/// CDRs as CSV with a header; times in RFC 3339 (UTC), lists joined.
fn write_csv(rows: &Value) -> Result<(), String> {
    const COLS: [&str; 20] = [
        "call_id",
        "direction",
        "caller",
        "caller_name",
        "dialed",
        "destination",
        "trunk",
        "start",
        "answer",
        "end",
        "disposition",
        "cause",
        "reason",
        "queue",
        "agent",
        "wait_s",
        "talk_s",
        "recordings",
        "ivr_path",
        "digits",
    ];
    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record(COLS).map_err(|e| e.to_string())?;
    for r in rows.as_array().into_iter().flatten() {
        let time = |k: &str| r[k].as_u64().map(fmt_ms).unwrap_or_default();
        let secs = |k: &str| format!("{:.3}", r[k].as_f64().unwrap_or(0.0) / 1000.0);
        let record: Vec<String> = COLS
            .iter()
            .map(|c| match *c {
                "start" => time("start_ms"),
                "answer" => time("answer_ms"),
                "end" => time("end_ms"),
                "wait_s" => secs("wait_ms"),
                "talk_s" => secs("talk_ms"),
                "ivr_path" => r["ivr_path"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(">")
                    })
                    .unwrap_or_default(),
                "recordings" => r["recordings"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(";")
                    })
                    .unwrap_or_default(),
                c => cell(r, c),
            })
            .collect();
        w.write_record(&record).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("2026-11-24").unwrap(), 1_795_478_400_000);
        assert_eq!(
            parse_time("2026-11-24T08:00:00Z").unwrap(),
            1_795_507_200_000
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let ago = parse_time("2h").unwrap();
        assert!((now - ago).abs_diff(7_200_000) < 5_000);
        assert!(parse_time("yesterday").is_err());
    }
}
