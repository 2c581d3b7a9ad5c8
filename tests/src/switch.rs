//! Running the switch binary.

use crate::ua::Ua;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running switchboard process; killed on drop.
pub struct SwitchProc {
    child: Option<Child>,
    /// Its working folder (config, store, log).
    pub dir: PathBuf,
    /// SIP port on 127.0.0.1 (UDP and TCP).
    pub port: u16,
    config: String,
    env: Vec<(String, String)>,
}

/// A config with a carrier trunk recognised by source IP 127.0.0.2, users
/// 1001-1003 (password "secret"), and `extra` appended (more trunks/routes).
pub fn base_config(port: u16, store: &Path, extra: &str) -> String {
    format!(
        r#"[sip]
listen = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]
domain = "switchboard"
shards = 2

[store]
path = "{store}"

[http]
listen = "127.0.0.1:{http}"

[log]
level = "info,sip=debug,actors::asr=debug"

[[users]]
name = "1001"
password = "secret"
display_name = "Alice"

[[users]]
name = "1002"
password = "secret"

[[users]]
name = "1003"
password = "secret"

[[trunks]]
name = "carrier"
inbound = {{ from = ["127.0.0.2"] }}

{extra}
"#,
        store = store.display(),
        http = crate::free_port("127.0.0.1"),
    )
}

impl SwitchProc {
    /// Starts the switch with `config` (written to a new temp folder) and
    /// waits until it answers OPTIONS.
    pub fn start(dir: &Path, port: u16, config: &str) -> SwitchProc {
        Self::start_with_env(dir, port, config, &[])
    }

    /// [`SwitchProc::start`] with environment variables for the switch.
    pub fn start_with_env(dir: &Path, port: u16, config: &str, env: &[(&str, &str)]) -> SwitchProc {
        let mut s = SwitchProc {
            child: None,
            dir: dir.to_path_buf(),
            port,
            config: config.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let cfg = self.dir.join("switchboard.toml");
        std::fs::write(&cfg, &self.config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("switch.log"))
            .unwrap();
        let bin = crate::bin_dir().join("switchboard");
        assert!(
            bin.exists(),
            "{} missing: build it first (cargo build --release -p switchboard)",
            bin.display()
        );
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&cfg)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn switchboard");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut ua = Ua::new("127.0.0.1", self.addr());
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "switchboard exited ({st}) during start:\n{}",
                        self.log_tail()
                    );
                }
            }
            if ua.options(Duration::from_millis(300)) == Some(200) {
                return;
            }
        }
        panic!(
            "switchboard did not answer OPTIONS within 20 s:\n{}",
            self.log_tail()
        );
    }

    /// The HTTP (metrics) address from the config's `[http] listen`.
    pub fn http_addr(&self) -> SocketAddr {
        let line = self
            .config
            .lines()
            .skip_while(|l| l.trim() != "[http]")
            .find_map(|l| l.trim().strip_prefix("listen = "))
            .expect("[http] listen in the config");
        line.trim_matches('"').parse().expect("an ip:port")
    }

    /// The control socket (`switchboard.sock` in the switch's folder).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("switchboard.sock")
    }

    /// `switchboard ctl --socket <ours> args...`.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(crate::bin_dir().join("switchboard"))
            .arg("ctl")
            .arg("--socket")
            .arg(self.control_socket())
            .args(args)
            .output()
            .expect("run switchboard ctl")
    }

    /// `/metrics` as text and as a map from series to value.
    pub fn scrape(&self) -> (String, std::collections::HashMap<String, f64>) {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://{}/metrics", self.http_addr())])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let map = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_owned(), v.parse().ok()?))
            })
            .collect();
        (text, map)
    }

    /// The CDRs of the last 10 minutes once there are at least `n` (or
    /// after 5 s, whatever there are).
    pub fn cdrs(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.ctl_json(&["cdr", "query", "--since", "10m"]);
            let v = v.as_array().cloned().unwrap_or_default();
            if v.len() >= n || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctl --json args...`, parsed; panics with its stderr if it fails.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "ctl {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// The SIP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same config and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The last lines of the switch's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("switch.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for SwitchProc {
    fn drop(&mut self) {
        self.kill9();
        // Every test also checks that no actor failed on the way, unless it
        // injects the failure itself.
        let injected = self.env.iter().any(|(k, _)| k == "SWITCHBOARD_FAULTS");
        if !injected && !std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("switch.log")).unwrap_or_default();
            if let Some(line) = log
                .lines()
                .find(|l| l.contains("call actor failed") || l.contains(" panic="))
            {
                panic!("the switch logged a failure: {line}");
            }
        }
    }
}
