//! What every actor shares: configuration, the location service, the
//! digest server, the SIP sender and the addresses of the shards.

use crate::registrar::{Location, Registrar};
use crate::shard::Shard;
use actix::{Addr, Recipient};
use sip::auth::{Algorithm, DigestServer};
use sip::transaction::{Peer, Transport};
use sip::{Host, SipUri, Via};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nonce lifetime for digest challenges.
pub const NONCE_TTL_SECS: u64 = 300;

/// The switch's shared state, built once at start-up.
pub struct Switch {
    config: RwLock<Arc<config::Config>>,
    /// Registered contacts by user.
    pub location: Location,
    /// Digest nonces and replay protection, shared by registrar and calls.
    pub auth: Mutex<DigestServer>,
    /// Sends SIP messages.
    pub sender: net::SipSender,
    /// Shard addresses, index = Call-ID hash modulo count.
    pub shards: OnceLock<Vec<Addr<Shard>>>,
    /// The registrar.
    pub registrar: OnceLock<Addr<Registrar>>,
    /// The ACD (queues and agents).
    pub acd: OnceLock<Addr<crate::acd::Acd>>,
    /// The RTP engine (None when media is not anchored).
    pub media: Option<net::rtp_engine::RtpEngine>,
    /// Conference rooms by name: their media session and participant count.
    pub rooms: dashmap::DashMap<String, (net::rtp_engine::SessionHandle, usize)>,
    /// Which call owns a leg of a shared (conference) session, for its events.
    pub leg_owners: dashmap::DashMap<media::session::LegId, Recipient<crate::call::MediaMsg>>,
    /// Durable state (registrations, CDRs, events).
    pub store: Arc<dyn crate::store::Store>,
    /// The records writer (group commit).
    pub records: crate::store::Writer,
    /// Calls in progress by leg A's Call-ID.
    pub calls: dashmap::DashMap<String, crate::call::CallEntry>,
    /// The event stream.
    pub events: crate::events::Events,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Trunks the monitor found down (OPTIONS unanswered).
    pub trunks_down: dashmap::DashMap<String, ()>,
    /// Calls in progress and new calls this second, by trunk (its limits).
    pub trunk_use: dashmap::DashMap<String, TrunkUse>,
    /// Trunk gateways the monitor found down, by (trunk, address).
    pub gateways_down: dashmap::DashMap<(String, std::net::SocketAddr), ()>,
    /// Alerts raised now, by (alert, subject).
    pub alerts: dashmap::DashMap<(String, String), serde_json::Value>,
    /// When the switch started, unix ms.
    pub started_ms: u64,
    /// Renders IVR prompts (TTS and WAV files).
    pub prompts: Arc<crate::prompts::PromptRenderer>,
    /// Added to the clock for schedules: `SWITCHBOARD_FAKE_NOW` (an RFC 3339
    /// instant) makes the switch start at that time, for tests and demos.
    clock_offset: jiff::SignedDuration,
}

impl Switch {
    /// Builds the context. `shards` and `registrar` are filled in once the
    /// actors run.
    pub fn new(
        config: config::Config,
        location: Location,
        sender: net::SipSender,
        media: Option<net::rtp_engine::RtpEngine>,
        store: Arc<dyn crate::store::Store>,
    ) -> Arc<Switch> {
        let secret: [u8; 32] = rand::random();
        let algorithms: Vec<Algorithm> = config
            .sip
            .digest_algorithms
            .iter()
            .map(|a| match a {
                config::DigestAlgorithm::Md5 => Algorithm::Md5,
                config::DigestAlgorithm::Sha256 => Algorithm::Sha256,
            })
            .collect();
        let auth = DigestServer::new(config.sip.domain.clone(), secret, NONCE_TTL_SECS)
            .with_algorithms(&algorithms)
            // RFC 2069-style (no qop) credentials can't be bound to a count:
            // one use per nonce, so a sniffed one is worth one request at most.
            .with_no_qop_max_uses(1);
        let metrics = crate::metrics::Metrics::new();
        let tts_cache = config
            .ivr
            .tts_cache
            .clone()
            .unwrap_or_else(|| config.store.path.join("tts"));
        Arc::new(Switch {
            prompts: Arc::new(crate::prompts::PromptRenderer::from_config(
                &config.ivr,
                &tts_cache,
            )),
            config: RwLock::new(Arc::new(config)),
            location,
            auth: Mutex::new(auth),
            sender,
            shards: OnceLock::new(),
            registrar: OnceLock::new(),
            acd: OnceLock::new(),
            media,
            rooms: Default::default(),
            leg_owners: Default::default(),
            records: crate::store::Writer::start(
                store.clone(),
                Some(metrics.store_write_seconds.clone()),
            ),
            metrics,
            store,
            calls: Default::default(),
            events: Default::default(),
            trunks_down: Default::default(),
            gateways_down: Default::default(),
            trunk_use: Default::default(),
            alerts: Default::default(),
            started_ms: unix_ms(),
            clock_offset: fake_now_offset(),
        })
    }

    /// Publishes an event on the stream (and into the store).
    pub fn publish(&self, kind: &str, data: serde_json::Value) {
        self.events.publish(&self.records, kind, data);
    }

    /// The instant schedules are checked against (the real clock unless
    /// `SWITCHBOARD_FAKE_NOW` moved it).
    pub fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
            .checked_add(self.clock_offset)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    }

    /// Replaces the configuration (a reload): calls routed from now on use
    /// it; calls in progress keep what they already decided.
    pub fn set_config(&self, config: config::Config) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<config::Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Which shard handles `call_id`.
    pub fn shard_index(&self, call_id: &str) -> usize {
        let n = self.shards.get().map_or(1, Vec::len).max(1);
        shard_of(call_id, n)
    }

    /// Our address for `transport`, for Via and Contact.
    pub fn local_addr(&self, transport: Transport) -> SocketAddr {
        self.sender
            .local_addr(transport)
            .or_else(|| self.sender.local_addr(Transport::Udp))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    /// Takes a call on trunk `name` if its `max_calls` and `max_cps` allow
    /// (release it with [`Switch::trunk_release`]); false if they do not.
    pub fn trunk_take(&self, name: &str) -> bool {
        let cfg = self.config();
        let Some(t) = cfg.trunk(name) else {
            return true;
        };
        if t.max_calls == 0 && t.max_cps == 0 {
            return true;
        }
        let mut u = self.trunk_use.entry(name.to_owned()).or_default();
        let now = unix_now();
        if u.second != now {
            u.second = now;
            u.started = 0;
        }
        if (t.max_calls > 0 && u.active >= t.max_calls) || (t.max_cps > 0 && u.started >= t.max_cps)
        {
            return false;
        }
        u.active += 1;
        u.started += 1;
        true
    }

    /// A call taken with [`Switch::trunk_take`] ended.
    pub fn trunk_release(&self, name: &str) {
        if let Some(mut u) = self.trunk_use.get_mut(name) {
            u.active = u.active.saturating_sub(1);
        }
    }

    /// A Via for a request we send to `peer`.
    pub fn via(&self, peer: Peer) -> Via {
        let local = self.local_addr(peer.transport);
        Via::new(
            peer.transport.as_str(),
            Host::Ip(local.ip()),
            Some(local.port()),
            &sip::transaction::new_branch(),
        )
    }

    /// A 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) to `req`
    /// carrying a challenge per configured digest algorithm.
    pub fn challenge(
        &self,
        req: &sip::Request,
        code: u16,
        to_tag: &str,
        stale: bool,
    ) -> sip::Response {
        let mut r = sip::response_to(req, code, Some(to_tag));
        let name = if code == 407 {
            sip::Name::ProxyAuthenticate
        } else {
            sip::Name::WwwAuthenticate
        };
        let challenges = self
            .auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .challenges(unix_now(), stale);
        for c in challenges {
            r.headers.push(name.clone(), c.to_header_value());
        }
        r
    }

    /// Our Contact URI for `transport`.
    pub fn contact(&self, transport: Transport) -> SipUri {
        let local = self.local_addr(transport);
        let mut u = SipUri::new(
            Some("switchboard"),
            Host::Ip(local.ip()),
            Some(local.port()),
        );
        if transport == Transport::Tcp {
            u.set_param("transport", Some("tcp"));
        }
        u
    }
}

/// Stable Call-ID → shard mapping.
pub fn shard_of(call_id: &str, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// A new Call-ID that maps to shard `index` of `shards`, so both legs of a
/// B2BUA call live on one arbiter.
pub fn call_id_for_shard(index: usize, shards: usize, host: &str) -> String {
    loop {
        let id = format!("{:016x}@{host}", rand::random::<u64>());
        if shard_of(&id, shards) == index {
            return id;
        }
    }
}

/// The offset `SWITCHBOARD_FAKE_NOW` asks for (zero without it).
fn fake_now_offset() -> jiff::SignedDuration {
    let Some(v) = std::env::var_os("SWITCHBOARD_FAKE_NOW") else {
        return jiff::SignedDuration::ZERO;
    };
    match v.to_string_lossy().parse::<jiff::Timestamp>() {
        Ok(t) => {
            tracing::warn!(now = %t, "the clock is moved by SWITCHBOARD_FAKE_NOW (schedules)");
            t.duration_since(jiff::Timestamp::now())
        }
        Err(e) => {
            tracing::error!(error = %e, "SWITCHBOARD_FAKE_NOW is not an RFC 3339 instant; ignored");
            jiff::SignedDuration::ZERO
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A trunk's calls in progress and this second's new calls.
#[derive(Debug, Default)]
pub struct TrunkUse {
    /// Calls in progress (both directions).
    pub active: u32,
    /// The unix second `started` counts.
    pub second: u64,
    /// Calls started in that second.
    pub started: u32,
}
