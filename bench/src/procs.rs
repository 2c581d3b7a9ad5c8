//! Child processes and what `/proc` tells about processes and sockets.

use crate::Result;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A child process that is stopped (SIGTERM, then SIGKILL after 3 s) when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub pid: u32,
    /// Where its stderr goes (`<cwd>/<name>.stderr`; stdout goes to `<name>.stdout`).
    pub stderr: PathBuf,
}

impl Proc {
    /// Runs `cmd` in `cwd`, with stdin from /dev/null and stdout and stderr to files there.
    pub fn spawn(name: &str, mut cmd: Command, cwd: &Path) -> Result<Proc> {
        let stdout = cwd.join(format!("{name}.stdout"));
        let stderr = cwd.join(format!("{name}.stderr"));
        let out = File::create(&stdout)
            .map_err(|e| format!("cannot create {}: {e}", stdout.display()))?;
        let err = File::create(&stderr)
            .map_err(|e| format!("cannot create {}: {e}", stderr.display()))?;
        cmd.current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()))?;
        Ok(Proc {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            stderr,
        })
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then SIGKILL if it has not ended 3 s later; at most once.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The error for its having ended with `status`, with the tail of its stderr.
    pub fn died(&mut self, status: ExitStatus) -> String {
        let hint = if status.success() {
            " (a clean exit: it was most likely sent SIGTERM/SIGINT by something else)"
        } else {
            ""
        };
        format!(
            "{} (pid {}) exited: {status}{hint}\n--- {} stderr tail ---\n{}\n--- end ---",
            self.name,
            self.pid,
            self.name,
            tail(&self.stderr, 40)
        )
    }

    /// Waits up to 20 s, checking every 50 ms, until `bound()` says the process has bound
    /// `what`; errs (with the stderr tail) if it dies first or the time runs out.
    pub fn wait_bound(&mut self, what: &str, mut bound: impl FnMut() -> bool) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.exited() {
                return Err(self.died(s));
            }
            if bound() {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "{} (pid {}) did not bind {what} within 20 s; stderr tail:\n{}",
                    self.name,
                    self.pid,
                    tail(&self.stderr, 20)
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the switch with `config`: writes it to `<dir>/switchboard.toml` and runs
/// `cmd run --config <that>` (without RUST_LOG) in `<dir>/switch`, as the Proc "switch".
/// `cmd` is the switch binary, or a wrapper (taskset) given it as its argument.
pub fn spawn_switch(mut cmd: Command, dir: &Path, config: &str) -> Result<Proc> {
    let config_path = dir.join("switchboard.toml");
    fs::write(&config_path, config)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let sw_dir = dir.join("switch");
    fs::create_dir_all(&sw_dir).map_err(|e| format!("cannot create {}: {e}", sw_dir.display()))?;
    cmd.arg("run")
        .arg("--config")
        .arg(&config_path)
        .env_remove("RUST_LOG");
    Proc::spawn("switch", cmd, &sw_dir)
}

/// The last `lines` lines of a file (from its last 64 KiB).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(data) = fs::read(path) else {
        return format!("(cannot read {})", path.display());
    };
    let start = data.len().saturating_sub(64 * 1024);
    let text = String::from_utf8_lossy(&data[start..]);
    let v: Vec<&str> = text.lines().collect();
    if v.is_empty() {
        return "(empty)".into();
    }
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// VmRSS and VmHWM of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        _ => Err(format!("no VmRSS in /proc/{pid}/status")),
    }
}

/// The command name and utime + stime (clock ticks) from the text of a /proc/.../stat file.
pub fn stat_ticks(s: &str) -> Option<(String, u64)> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    let f: Vec<&str> = s.get(close + 2..)?.split_whitespace().collect();
    Some((
        comm,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

/// User + system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?).map(|(_, t)| t)
}

/// Clock ticks per second (`getconf CLK_TCK`, else 100).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Datagrams the kernel dropped (receive buffer full) on the UDP sockets whose local
/// address `wanted` accepts (/proc/net/udp, IPv4), summed; None if the file cannot be read.
pub fn udp_drops(wanted: impl Fn(SocketAddr) -> bool) -> Option<u64> {
    let text = fs::read_to_string("/proc/net/udp").ok()?;
    let mut total = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((ip_hex, port_hex)) = f.get(1).and_then(|a| a.split_once(':')) else {
            continue;
        };
        let (Ok(ip), Ok(port)) = (
            u32::from_str_radix(ip_hex, 16),
            u16::from_str_radix(port_hex, 16),
        ) else {
            continue;
        };
        // /proc/net/udp prints the address in host byte order of a big-endian value.
        let ip = Ipv4Addr::from(u32::from_be(ip));
        if wanted(SocketAddr::new(IpAddr::V4(ip), port)) {
            total += f.last().and_then(|d| d.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_reads_comm_with_spaces() {
        let s = "42 (rtp 0) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        // utime and stime are fields 14 and 15 overall: 11 and 12 after the state.
        assert_eq!(stat_ticks(s), Some(("rtp 0".into(), 11 + 12)));
    }
}
