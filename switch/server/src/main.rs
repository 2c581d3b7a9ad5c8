//! `switchboard`: the contact-center switch binary.

use ::actors::registrar::{self, Registrar};
use ::actors::shard::{Inbound, Shard};
use ::actors::store::{RocksStore, Store};
use ::actors::Switch;
use actix::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

mod control;
mod ctl;
mod http;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "An actor-based contact-center telephony switch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the switch (on the embedded default config unless --config is given).
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Log format; overrides the config's `log.format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Talk to a running switch over its control socket (interactive
    /// without a command).
    Ctl(ctl::Args),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file; errors name file, line and key.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the embedded default configuration.
    Default,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => match config::Config::from_file(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{}", config::DEFAULT_TOML);
            ExitCode::SUCCESS
        }
        Command::Ctl(args) => ctl::main(args),
        Command::Run { config, log_format } => {
            let cfg = match &config {
                Some(path) => match config::Config::from_file(path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => config::Config::embedded_default(),
            };
            init_logging(&cfg, log_format);
            // A panic (a call actor's, say) goes to the log with its place;
            // supervision then ends only what failed.
            std::panic::set_hook(Box::new(|info| {
                tracing::error!(panic = %info, "panic");
            }));
            match run(cfg, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("switchboard: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(cfg: &config::Config, flag: Option<LogFormat>) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log.level));
    let json = match flag {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Human) => false,
        None => cfg.log.format == config::LogFormat::Json,
    };
    // Colours only on a terminal: log files and journald get plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn run(cfg: config::Config, config_path: Option<PathBuf>) -> Result<(), String> {
    let store: Arc<dyn Store> = Arc::new(
        RocksStore::open(&cfg.store.path, cfg.store.sync_writes).map_err(|e| e.to_string())?,
    );
    let location = registrar::load(store.as_ref());
    tracing::info!(registrations = location.len(), store = %cfg.store.path.display(), "store opened");
    let system = System::new();
    let result = system.block_on(async move { start(cfg, store, location, config_path).await });
    result?;
    system.run().map_err(|e| e.to_string())
}

async fn start(
    cfg: config::Config,
    store: Arc<dyn Store>,
    location: registrar::Location,
    config_path: Option<PathBuf>,
) -> Result<(), String> {
    let shards_cell: Arc<OnceLock<Vec<Addr<Shard>>>> = Arc::new(OnceLock::new());
    let cell = shards_cell.clone();
    let sink: net::Sink = Arc::new(move |peer, data| {
        let Some(shards) = cell.get() else { return };
        let i =
            sip::peek_call_id(&data).map_or(0, |c| ::actors::context::shard_of(c, shards.len()));
        shards[i].do_send(Inbound { peer, data });
    });
    let listens: Vec<net::Listen> = cfg
        .sip
        .listen
        .iter()
        .map(|l| net::Listen {
            transport: match l.transport {
                config::Transport::Udp => sip::transaction::Transport::Udp,
                config::Transport::Tcp => sip::transaction::Transport::Tcp,
            },
            addr: l.addr,
        })
        .collect();
    let nshards = cfg.sip.shards.max(1);
    let arbiters: Vec<ArbiterHandle> = (0..nshards)
        .map(|_| {
            let a = Arbiter::new();
            let h = a.handle();
            // The arbiter lives as long as the system; its handle keeps it.
            std::mem::forget(a);
            h
        })
        .collect();
    // The transports' receive loops run on shard 0's arbiter: messages for
    // shard 0 reach it without a cross-thread wake-up (measured: such a
    // hop costs ~150 us at p50 and over 1 ms at p99 on our 2-core VMs).
    let (tx, rx) = tokio::sync::oneshot::channel();
    arbiters[0].spawn(async move {
        let _ = tx.send(net::bind(&listens, sink).await);
    });
    let sender = rx
        .await
        .map_err(|_| "transport start was cancelled".to_string())?
        .map_err(|e| format!("cannot listen: {e}"))?;
    let media = if cfg.media.anchor {
        Some(start_media(&cfg)?)
    } else {
        None
    };
    let switch = Switch::new(cfg.clone(), location, sender, media, store.clone());
    let shards: Vec<Addr<Shard>> = arbiters
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let sw = switch.clone();
            Shard::start_in_arbiter(h, move |_| Shard::new(i, sw))
        })
        .collect();
    let _ = switch.shards.set(shards.clone());
    let _ = shards_cell.set(shards);
    let registrar = Registrar::new(switch.clone(), store).start();
    let _ = switch.registrar.set(registrar);
    ::actors::monitor::Monitor::new(switch.clone()).start();
    let trunk_regs = ::actors::trunk_reg::TrunkRegistrations::new(switch.clone()).start();
    let _ = switch
        .acd
        .set(::actors::acd::Acd::new(switch.clone()).start());
    if !cfg.http.listen.is_empty() {
        http::start(switch.clone(), &cfg.http.listen).await?;
    }
    if !cfg.control.socket.as_os_str().is_empty() {
        let path = std::path::absolute(&cfg.control.socket).map_err(|e| e.to_string())?;
        control::start(
            switch.clone(),
            &path,
            config_path.map(|p| std::path::absolute(&p).unwrap_or(p)),
        )?;
    }
    for l in &cfg.sip.listen {
        tracing::info!(transport = ?l.transport, addr = %l.addr, "listening");
    }
    tracing::info!(
        shards = nshards,
        users = cfg.users.len(),
        trunks = cfg.trunks.len(),
        "switchboard running"
    );
    actix::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        // Carriers hear that our registrations end (Expires: 0), for up to 3 s.
        let _ = trunk_regs.send(::actors::trunk_reg::Unregister).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline
            && trunk_regs
                .send(::actors::trunk_reg::Unregistering)
                .await
                .unwrap_or(false)
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        System::current().stop();
    });
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Starts the RTP engine per `[media]`.
fn start_media(cfg: &config::Config) -> Result<net::rtp_engine::RtpEngine, String> {
    let m = &cfg.media;
    let ip = match m.ip {
        Some(ip) => ip,
        None => {
            let ip = cfg.sip.listen[0].addr.ip();
            if ip.is_unspecified() {
                return Err(format!(
                    "sip.listen[0] is {ip}: set media.ip to the address peers should send RTP to"
                ));
            }
            ip
        }
    };
    let workers = if m.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        m.workers
    };
    let session = media::session::SessionConfig {
        media_timeout: (m.timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(m.timeout_secs as u64)),
        cname: format!("switchboard@{ip}"),
        opus_complexity: m.opus_complexity,
        ..Default::default()
    };
    let engine = net::rtp_engine::RtpEngine::start(net::rtp_engine::RtpConfig {
        ip,
        port_min: m.port_min,
        port_max: m.port_max,
        workers,
        session,
    })
    .map_err(|e| format!("cannot start the RTP engine: {e}"))?;
    tracing::info!(%ip, ports = %format!("{}-{}", m.port_min, m.port_max), workers, "media anchored");
    Ok(engine)
}
