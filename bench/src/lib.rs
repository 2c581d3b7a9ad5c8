//! What the load generators `sipp-load` and `rtp-load` share: child processes and `/proc`
//! readers ([`procs`]), the switch binary and the temporary directory of a run, the JSON
//! report, and a small random number generator for picking ports.

pub mod procs;

use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors are messages for the user.
pub type Result<T> = std::result::Result<T, String>;

/// The switch binary of this workspace's release build.
const DEFAULT_SWITCH_BIN: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/switchboard");

/// `--switch-bin`'s default: $SWITCHBOARD_BIN, else the workspace's
/// target/release/switchboard.
pub fn default_switch_bin() -> PathBuf {
    std::env::var_os("SWITCHBOARD_BIN")
        .map_or_else(|| PathBuf::from(DEFAULT_SWITCH_BIN), PathBuf::from)
}

/// The switch binary to run: `given`, else the workspace's target/release/switchboard;
/// errs if it does not exist.
pub fn switch_bin(given: Option<&Path>) -> Result<PathBuf> {
    let bin = given.map_or_else(|| PathBuf::from(DEFAULT_SWITCH_BIN), Path::to_path_buf);
    if !bin.exists() {
        return Err(format!(
            "switch binary {} not found (build it: cargo build --release -p switchboard, or pass --switch-bin)",
            bin.display()
        ));
    }
    Ok(bin)
}

/// A new temporary directory named `<prefix>…` and the guard that removes it when dropped;
/// with `keep`, no guard: the directory stays and its path is printed.
pub fn work_dir(prefix: &str, keep: bool) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let dir = tmp.path().to_path_buf();
    let tmp = if keep {
        let _ = tmp.keep();
        println!("files kept in {}", dir.display());
        None
    } else {
        Some(tmp)
    };
    Ok((dir, tmp))
}

/// Writes `report` as pretty JSON to `path`; says how that went (errors prefixed `prog:`).
pub fn write_json(prog: &str, path: &Path, report: &impl Serialize) {
    match serde_json::to_string_pretty(report) {
        Ok(s) => match fs::write(path, s + "\n") {
            Ok(()) => println!("results written to {}", path.display()),
            Err(e) => eprintln!("{prog}: cannot write {}: {e}", path.display()),
        },
        Err(e) => eprintln!("{prog}: cannot encode results: {e}"),
    }
}

/// xorshift64: random ports (and RTP SSRCs), not cryptography.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the time and the pid.
    pub fn seeded() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
