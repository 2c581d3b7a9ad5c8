//! The control socket: a Unix socket speaking JSON lines.
//!
//! Request: `{"id": 1, "cmd": "calls.list", "args": {...}}`.
//! Response: `{"id": 1, "ok": true, "result": ...}` or
//! `{"id": 1, "ok": false, "error": "..."}`. After `events.subscribe` the
//! connection also carries `{"event": {...}}` lines. See docs/control.md.
//!
//! Access: the socket file is created with mode 0600 (bound under a
//! temporary name, restricted, then renamed into place, so it is never
//! reachable with looser rights), and each peer's credentials are checked:
//! its uid must be the switch's, root's, or in `[control] allow_uids`.

use ::actors::call::Hangup;
use ::actors::cdr;
use ::actors::Switch;
use serde::Deserialize;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The commands this switch answers, for `help` and error messages.
pub(crate) const COMMANDS: &[(&str, &str)] = &[
    (
        "status",
        "version, uptime, calls, registrations, media and store counters",
    ),
    ("calls.list", "calls in progress"),
    ("calls.hangup", "end a call: {\"call_id\": \"...\"}"),
    ("calls.originate", "click-to-call: ring a user, then dial a number: {\"user\": \"1001\", \"number\": \"5550100\"}"),
    ("calls.transfer", "transfer the caller: {\"call_id\": \"...\", \"to\": \"1002\"}; the outcome is a call.transfer event"),
    ("calls.record", "recording control: {\"call_id\": \"...\", \"action\": \"start|stop|pause|resume\"}"),
        ("calls.monitor", "a supervisor joins: {\"call_id\": \"...\", \"user\": \"1003\", \"mode\": \"listen|whisper|barge\"}; again to switch modes"),
    ("registrations.list", "registered contacts per user"),
    ("agents.list", "agents: state, phones, queues, skills, calls taken"),
    ("agent.login", "an agent starts taking calls: {\"agent\": \"alice\"} (or a phone's user)"),
    ("agent.logout", "an agent stops: {\"agent\": \"alice\"}"),
    ("agent.pause", "a break: {\"agent\": \"alice\", \"reason\": \"lunch\"}"),
    ("agent.resume", "back from the break: {\"agent\": \"alice\"}"),
    ("queues.list", "queues with waiting callers, agents and today's figures"),
    ("queue.stats", "one queue: {\"queue\": \"sales\"}"),
    (
        "cdr.query",
        "CDRs: {\"since_ms\", \"until_ms\", \"queue\", \"agent\", \"limit\"}",
    ),
    (
        "events.subscribe",
        "stream events: {\"kinds\": [\"call\", \"registration\"]} (empty: all)",
    ),
    (
        "config.reload",
        "re-read the config file; refused with the reason if invalid",
    ),
    ("help", "this list"),
];

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    id: Value,
    cmd: String,
    #[serde(default)]
    args: Value,
}

/// What a connection handler needs.
pub(crate) struct Control {
    pub(crate) switch: Arc<Switch>,
    /// The file the switch was started with (None: the embedded default,
    /// which cannot be reloaded).
    pub(crate) config_path: Option<PathBuf>,
    /// Our own uid (the socket file's owner).
    uid: u32,
}

/// Binds the socket at `path` (mode 0600) and serves it on the current
/// (actix) runtime.
pub(crate) fn start(
    switch: Arc<Switch>,
    path: &Path,
    config_path: Option<PathBuf>,
) -> Result<(), String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(format!(
                "{}: exists and is not a socket; refusing to replace it",
                path.display()
            ));
        }
        // A socket left by a killed switch is removed; a live one is an error.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{}: another switch is listening there",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("switchboard.sock"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| format!("control socket {}: {e}", tmp.display()))?;
    // 0600; 0660 when [control] allow_uids names others (they must then be
    // in the switch's group; the peer-uid check still admits only them).
    let mode = if switch.config().control.allow_uids.is_empty() {
        0o600
    } else {
        0o660
    };
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let uid = std::fs::metadata(path).map_err(|e| e.to_string())?.uid();
    let control = Arc::new(Control {
        switch,
        config_path,
        uid,
    });
    tracing::info!(socket = %path.display(), "control socket");
    actix::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let c = control.clone();
                    actix::spawn(async move { c.serve(stream).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

impl Control {
    fn allowed(&self, uid: u32) -> bool {
        uid == 0 || uid == self.uid || self.switch.config().control.allow_uids.contains(&uid)
    }

    async fn serve(self: Arc<Self>, stream: UnixStream) {
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        let (rd, mut wr) = stream.into_split();
        if !uid.is_some_and(|u| self.allowed(u)) {
            tracing::warn!(?uid, "control socket: peer refused by its credentials");
            let line = json!({"ok": false, "error": "permission denied: this uid may not use the control socket"});
            let _ = wr.write_all(format!("{line}\n").as_bytes()).await;
            return;
        }
        let mut lines = BufReader::new(rd).lines();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<String>(256);
        let writer = actix::spawn(async move {
            while let Some(line) = out_rx.recv().await {
                if wr.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim().is_empty() {
                continue;
            }
            let reply = match serde_json::from_str::<Request>(&line) {
                Ok(req) => {
                    let id = req.id.clone();
                    match self.command(&req, &out_tx).await {
                        Ok(result) => json!({"id": id, "ok": true, "result": result}),
                        Err(e) => json!({"id": id, "ok": false, "error": e}),
                    }
                }
                Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
            };
            if out_tx.send(format!("{reply}\n")).await.is_err() {
                break;
            }
        }
        drop(out_tx);
        let _ = writer.await;
    }

    async fn command(
        &self,
        req: &Request,
        out: &tokio::sync::mpsc::Sender<String>,
    ) -> Result<Value, String> {
        let sw = &self.switch;
        match req.cmd.as_str() {
            "help" => Ok(COMMANDS
                .iter()
                .map(|(c, d)| json!({"command": c, "about": d}))
                .collect()),
            "status" => Ok(self.status()),
            "calls.list" => {
                let now = ::actors::context::unix_ms();
                let mut calls: Vec<Value> = sw
                    .calls
                    .iter()
                    .map(|e| {
                        json!({
                            "call_id": e.key(),
                            "caller": e.caller,
                            "dialed": e.dialed,
                            "destination": e.destination,
                            "state": if e.answer_ms.is_some() { "up" } else { "ringing" },
                            "start_ms": e.start_ms,
                            "answer_ms": e.answer_ms,
                            "duration_s": now.saturating_sub(e.start_ms) / 1000,
                        })
                    })
                    .collect();
                calls.sort_by_key(|c| c["start_ms"].as_u64());
                Ok(Value::Array(calls))
            }
            "calls.hangup" => {
                let (id, addr) = self.call_of(&req.args)?;
                addr.do_send(Hangup {
                    reason: "hung up by an operator".into(),
                });
                Ok(json!({"call_id": id}))
            }
            "calls.originate" => {
                let user = req.args["user"].as_str();
                let number = req.args["number"].as_str();
                let (Some(user), Some(number)) = (user, number) else {
                    return Err(
                        "calls.originate needs {\"user\": \"...\", \"number\": \"...\"}".into(),
                    );
                };
                let shards = sw.shards.get().ok_or("the switch is starting")?;
                let i = (::actors::context::unix_ms() as usize) % shards.len();
                let call_id = shards[i]
                    .send(::actors::call::Originate {
                        user: user.to_owned(),
                        number: number.to_owned(),
                        trunk: None,
                        acd: None,
                    })
                    .await
                    .map_err(|e| e.to_string())??;
                Ok(
                    json!({"call_id": call_id, "user": user, "number": number, "state": "ringing the user"}),
                )
            }
            "calls.transfer" => {
                let (id, addr) = self.call_of(&req.args)?;
                let to = req.args["to"]
                    .as_str()
                    .ok_or("calls.transfer needs {\"call_id\": \"...\", \"to\": \"number\"}")?
                    .to_owned();
                addr.send(::actors::call::Transfer { to: to.clone() })
                    .await
                    .map_err(|e| e.to_string())??;
                Ok(json!({"call_id": id, "to": to, "state": "calling"}))
            }
            "calls.monitor" => {
                let (id, addr) = self.call_of(&req.args)?;
                let user = req.args["user"]
                    .as_str()
                    .ok_or("calls.monitor needs {\"call_id\", \"user\", \"mode\"}")?
                    .to_owned();
                let mode = match req.args["mode"].as_str().unwrap_or("listen") {
                    "listen" => ::actors::call::SuperviseMode::Listen,
                    "whisper" => ::actors::call::SuperviseMode::Whisper,
                    "barge" => ::actors::call::SuperviseMode::Barge,
                    m => return Err(format!("mode {m:?}: listen, whisper or barge")),
                };
                let state = addr
                    .send(::actors::call::Supervise {
                        user: user.clone(),
                        mode,
                    })
                    .await
                    .map_err(|e| e.to_string())??;
                Ok(
                    json!({"call_id": id, "supervisor": user, "mode": format!("{mode:?}").to_lowercase(), "state": state}),
                )
            }
            "calls.record" => {
                let (id, addr) = self.call_of(&req.args)?;
                let cmd = match req.args["action"].as_str() {
                    Some("start") => ::actors::call::RecordCmd::Start,
                    Some("stop") => ::actors::call::RecordCmd::Stop,
                    Some("pause") => ::actors::call::RecordCmd::Pause,
                    Some("resume") => ::actors::call::RecordCmd::Resume,
                    _ => {
                        return Err(
                            "calls.record needs \"action\": start, stop, pause or resume".into(),
                        )
                    }
                };
                addr.send(cmd).await.map_err(|e| e.to_string())??;
                Ok(json!({"call_id": id, "recording": format!("{cmd:?}").to_lowercase()}))
            }
            "agents.list" => self
                .acd()?
                .send(::actors::acd::ListAgents)
                .await
                .map_err(|e| e.to_string())?,
            "agent.login" | "agent.logout" | "agent.pause" | "agent.resume" => {
                let agent = req.args["agent"]
                    .as_str()
                    .ok_or_else(|| format!("{} needs {{\"agent\": \"name\"}}", req.cmd))?
                    .to_owned();
                let op = match req.cmd.as_str() {
                    "agent.login" => ::actors::acd::AgentOp::Login,
                    "agent.logout" => ::actors::acd::AgentOp::Logout,
                    "agent.pause" => ::actors::acd::AgentOp::Pause(
                        req.args["reason"].as_str().unwrap_or("break").to_owned(),
                    ),
                    _ => ::actors::acd::AgentOp::Resume,
                };
                self.acd()?
                    .send(::actors::acd::AgentCmd { agent, op })
                    .await
                    .map_err(|e| e.to_string())?
            }
            "queues.list" => self
                .acd()?
                .send(::actors::acd::QueueStats(None))
                .await
                .map_err(|e| e.to_string())?,
            "queue.stats" => {
                let q = req.args["queue"]
                    .as_str()
                    .ok_or("queue.stats needs {\"queue\": \"name\"}")?
                    .to_owned();
                self.acd()?
                    .send(::actors::acd::QueueStats(Some(q)))
                    .await
                    .map_err(|e| e.to_string())?
            }
            "registrations.list" => {
                let now = ::actors::context::unix_now();
                let mut rows: Vec<Value> = Vec::new();
                for e in sw.location.iter() {
                    for b in e.value().iter().filter(|b| b.expires_at > now) {
                        rows.push(json!({
                            "user": e.key(),
                            "contact": b.contact,
                            "expires_in": b.expires_at - now,
                            "source": b.source.to_string(),
                            "transport": b.transport,
                            "user_agent": b.user_agent,
                        }));
                    }
                }
                rows.sort_by(|a, b| a["user"].as_str().cmp(&b["user"].as_str()));
                Ok(Value::Array(rows))
            }
            "cdr.query" => {
                let mut q: cdr::Query = if req.args.is_null() {
                    cdr::Query::default()
                } else {
                    serde_json::from_value(req.args.clone())
                        .map_err(|e| format!("cdr.query: {e}"))?
                };
                // One answer stays a sane size; page with since_ms.
                q.limit = Some(q.limit.unwrap_or(1000).min(100_000));
                let store = sw.store.clone();
                let rows = tokio::task::spawn_blocking(move || cdr::query(store.as_ref(), &q))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                serde_json::to_value(rows).map_err(|e| e.to_string())
            }
            "events.subscribe" => {
                let kinds: Vec<String> = match &req.args["kinds"] {
                    Value::Null => Vec::new(),
                    v => serde_json::from_value(v.clone())
                        .map_err(|e| format!("events.subscribe: kinds: {e}"))?,
                };
                let mut rx = sw.events.subscribe();
                let out = out.clone();
                let filter = kinds.clone();
                actix::spawn(async move {
                    loop {
                        match rx.recv().await {
                            Ok(ev) if ev.matches(&filter) => {
                                let line = json!({ "event": &*ev });
                                if out.send(format!("{line}\n")).await.is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                let line =
                                    json!({"event": {"kind": "lagged", "data": {"missed": n}}});
                                if out.send(format!("{line}\n")).await.is_err() {
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                });
                Ok(json!({"subscribed": kinds}))
            }
            "config.reload" => self.reload(),
            "alerts.list" => Ok(Value::Array(
                sw.alerts.iter().map(|e| e.value().clone()).collect(),
            )),
            // Fault injection for the supervision test; off unless the
            // switch runs with SWITCHBOARD_FAULTS=1.
            "debug.panic_call"
                if std::env::var_os("SWITCHBOARD_FAULTS").is_some_and(|v| v == "1") =>
            {
                let (id, addr) = self.call_of(&req.args)?;
                addr.do_send(::actors::call::InjectPanic);
                Ok(json!({"call_id": id}))
            }
            other => Err(format!(
                "unknown command {other:?}; known: {}",
                COMMANDS
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The call named by `args.call_id`.
    fn call_of(&self, args: &Value) -> Result<(String, actix::Addr<::actors::call::Call>), String> {
        let id = args["call_id"]
            .as_str()
            .ok_or("this command needs {\"call_id\": \"...\"}")?;
        let addr = self
            .switch
            .calls
            .get(id)
            .map(|e| e.addr.clone())
            .ok_or_else(|| format!("no call {id}"))?;
        Ok((id.to_owned(), addr))
    }

    fn status(&self) -> Value {
        let sw = &self.switch;
        let now = ::actors::context::unix_ms();
        let calls = sw.calls.len();
        let up = sw.calls.iter().filter(|e| e.answer_ms.is_some()).count();
        let users = sw.location.len();
        let contacts: usize = sw.location.iter().map(|e| e.value().len()).sum();
        let media = sw.media.as_ref().map(|m| {
            let s = m.stats();
            use std::sync::atomic::Ordering::Relaxed;
            json!({
                "sessions": s.sessions.load(Relaxed),
                "legs": s.legs.load(Relaxed),
                "rx_packets": s.rx_packets.load(Relaxed),
                "tx_packets": s.tx_packets.load(Relaxed),
                "malformed": s.malformed.load(Relaxed),
            })
        });
        let w = sw.records.stats();
        use std::sync::atomic::Ordering::Relaxed;
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": now.saturating_sub(sw.started_ms) / 1000,
            "calls": {"active": calls, "up": up},
            "alerts": sw.alerts.len(),
            "trunks_down": sw.trunks_down.iter().map(|e| e.key().clone()).collect::<Vec<_>>(),
            "registrations": {"users": users, "contacts": contacts},
            "shards": sw.shards.get().map_or(0, Vec::len),
            "media": media,
            "store": {
                "batches": w.groups.load(Relaxed),
                "records": w.requests.load(Relaxed),
                "errors": w.errors.load(Relaxed),
            },
        })
    }

    /// The ACD actor.
    fn acd(&self) -> Result<&actix::Addr<::actors::acd::Acd>, String> {
        self.switch
            .acd
            .get()
            .ok_or_else(|| "the switch is starting".into())
    }

    /// Re-reads the config file; applies what can change live, refuses an
    /// invalid file (the old config stays) and names what needs a restart.
    fn reload(&self) -> Result<Value, String> {
        let path = self
            .config_path
            .as_ref()
            .ok_or("the switch runs on the embedded default config: nothing to reload")?;
        let mut new =
            config::Config::from_file(path).map_err(|e| format!("reload refused: {e}"))?;
        let old = self.switch.config();
        let mut restart = Vec::new();
        for (name, changed) in [
            ("sip", old.sip != new.sip),
            ("store", old.store != new.store),
            ("log", old.log != new.log),
            ("control", old.control.socket != new.control.socket),
            ("http", old.http != new.http),
            (
                "ivr.tts",
                old.ivr.tts_cache != new.ivr.tts_cache
                    || old.ivr.tts != new.ivr.tts
                    || old.ivr.tts_url != new.ivr.tts_url,
            ),
            (
                "media",
                old.media.anchor != new.media.anchor
                    || old.media.ip != new.media.ip
                    || old.media.port_min != new.media.port_min
                    || old.media.port_max != new.media.port_max
                    || old.media.workers != new.media.workers
                    || old.media.timeout_secs != new.media.timeout_secs
                    || old.media.opus_complexity != new.media.opus_complexity,
            ),
        ] {
            if changed {
                restart.push(name);
            }
        }
        // What needs a restart keeps its running values until then (a new
        // [sip] domain, say, would not match the digest server's realm).
        new.sip = old.sip.clone();
        new.store = old.store.clone();
        new.log = old.log.clone();
        new.control.socket = old.control.socket.clone();
        new.http = old.http.clone();
        new.ivr.tts_cache = old.ivr.tts_cache.clone();
        new.ivr.tts = old.ivr.tts;
        new.ivr.tts_url = old.ivr.tts_url.clone();
        let m = &old.media;
        new.media.anchor = m.anchor;
        new.media.ip = m.ip;
        new.media.port_min = m.port_min;
        new.media.port_max = m.port_max;
        new.media.workers = m.workers;
        new.media.timeout_secs = m.timeout_secs;
        new.media.opus_complexity = m.opus_complexity;
        self.switch.set_config(new);
        tracing::info!(file = %path.display(), ?restart, "config reloaded");
        self.switch.publish(
            "config.reload",
            json!({"file": path.display().to_string(), "restart_needed": restart}),
        );
        Ok(json!({"reloaded": path.display().to_string(), "restart_needed": restart}))
    }
}
