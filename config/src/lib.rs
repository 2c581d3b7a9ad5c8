//! Typed configuration for Switchboard.
//!
//! A config file is TOML (see the embedded [`DEFAULT_TOML`] for a commented example).
//! Every section is optional, so an empty file is a valid config with the defaults
//! documented on each field and no users, trunks or routes. Errors, both from
//! deserialization and from the semantic checks run afterwards, name the file, the
//! 1-based line and the key path (e.g. `trunks[1].outbound.host`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

pub mod acd;
pub mod dialplan;
pub mod flow;
mod locate;
pub mod numbering;
pub mod schedule;
#[cfg(test)]
mod tests;
mod validate;

/// The default configuration file, used by `switchboard run` when no file is given.
pub const DEFAULT_TOML: &str = include_str!("../switchboard.toml");

/// Errors from loading a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// Path of the file.
        file: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, does not match the schema, or fails validation.
    #[error("{file}:{line}: {key}{sep}{message}", sep = if key.is_empty() { "" } else { ": " })]
    Invalid {
        /// File label (path, or the label given to [`Config::from_str`]).
        file: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// Key path such as `trunks[1].outbound.host`; empty for a syntax error outside any key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole switch configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SIP signalling settings (`[sip]`).
    pub sip: Sip,
    /// Persistent storage (`[store]`).
    pub store: Store,
    /// Logging (`[log]`).
    pub log: Log,
    /// Registration expiry limits (`[registrar]`).
    pub registrar: Registrar,
    /// Call limits and timers (`[calls]`).
    pub calls: Calls,
    /// The RTP engine (`[media]`).
    pub media: Media,
    /// In-call feature codes (`[features]`).
    pub features: Features,
    /// The control socket (`[control]`).
    pub control: Control,
    /// The HTTP listener: `/metrics` (`[http]`).
    pub http: Http,
    /// Alert thresholds (`[alerts]`).
    pub alerts: Alerts,
    /// Local SIP accounts (`[[users]]`).
    pub users: Vec<User>,
    /// Carrier trunks (`[[trunks]]`).
    pub trunks: Vec<Trunk>,
    /// Dial plan (`[[routes]]`).
    pub routes: Vec<Route>,
    /// Opening hours routes can depend on (`[[schedules]]`).
    pub schedules: Vec<schedule::Schedule>,
    /// IVR settings (`[ivr]`).
    pub ivr: Ivr,
    /// IVR call flows: `[flows.NAME]` tables and the files of `ivr.flows_dir`.
    pub flows: std::collections::BTreeMap<String, flow::Flow>,
    /// ACD settings (`[acd]`).
    pub acd: acd::Acd,
    /// ACD queues (`[[queues]]`).
    pub queues: Vec<acd::Queue>,
    /// Agents (`[[agents]]`).
    pub agents: Vec<acd::Agent>,
    /// How numbers are written in the switch's country (`[numbering]`).
    pub numbering: numbering::Numbering,
}

/// `[ivr]`: call flows, prompts and speech.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ivr {
    /// Directory of flow files (`NAME.toml`, one flow each), relative to
    /// the config file; default none (only `[flows.NAME]` tables).
    pub flows_dir: Option<PathBuf>,
    /// Directory WAV prompts are named relative to; default the config
    /// file's directory.
    pub prompts_dir: PathBuf,
    /// Text-to-speech voice (espeak-ng); default "en-us".
    pub voice: String,
    /// Where synthesized prompts are cached; default `<store.path>/tts`.
    pub tts_cache: Option<PathBuf>,
    /// Text to speech: "espeak" (built in, espeak-ng) or "websocket" (an
    /// external engine at `tts_url`). Default "espeak". Needs a restart.
    pub tts: TtsEngine,
    /// The external TTS engine's `ws://` URL (docs/ivr.md).
    pub tts_url: String,
    /// Node steps one call may take before it is hung up (a guard against
    /// flows that loop through menus forever); default 200.
    pub max_steps: u32,
    /// Speech recognition for `phrases`: "pocketsphinx" (built in, 16 kHz
    /// model: wideband calls), "websocket" (an external engine at
    /// `asr_url`), or "off" (keypad only). Default "pocketsphinx".
    pub asr: AsrEngine,
    /// The external engine's `ws://` URL (see docs/ivr.md for the protocol).
    pub asr_url: String,
    /// pocketsphinx model directory; default Debian's en-us.
    pub asr_model: PathBuf,
    /// Language tag passed to the recognizer; default "en-US".
    pub language: String,
}

/// `[ivr] tts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TtsEngine {
    /// espeak-ng.
    #[default]
    Espeak,
    /// An external engine behind the WebSocket hook.
    Websocket,
}

/// `[ivr] asr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AsrEngine {
    /// Debian's pocketsphinx with the en-us model (grammar mode).
    #[default]
    Pocketsphinx,
    /// An external engine behind the WebSocket hook.
    Websocket,
    /// No speech input.
    Off,
}

impl Default for Ivr {
    fn default() -> Self {
        Ivr {
            flows_dir: None,
            prompts_dir: PathBuf::new(),
            voice: "en-us".into(),
            tts_cache: None,
            tts: TtsEngine::Espeak,
            tts_url: String::new(),
            max_steps: 200,
            asr: AsrEngine::Pocketsphinx,
            asr_url: String::new(),
            asr_model: "/usr/share/pocketsphinx/model/en-us".into(),
            language: "en-US".into(),
        }
    }
}

/// `[sip]`: signalling endpoints and identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sip {
    /// Sockets to listen on; default UDP and TCP on `127.0.0.1:5060`. Must not be empty.
    pub listen: Vec<Listen>,
    /// Digest realm and local domain; default `"switchboard"`.
    pub domain: String,
    /// `User-Agent`/`Server` header value; default `"Switchboard/0.1"`.
    pub user_agent: String,
    /// Number of SIP endpoint shards (one arbiter thread each), `1..=64`;
    /// default 1. Each shard runs one core flat out; add shards when the
    /// machine has cores to spare beyond the transports and the store.
    pub shards: usize,
    /// Digest algorithms offered in challenges, in order of preference;
    /// default `["MD5"]`. `"SHA-256"` (RFC 8760) is stronger, but older
    /// phones (libre 1.x, e.g. Debian's baresip) fail on any SHA-256
    /// challenge, even next to an MD5 one, so it is opt-in.
    pub digest_algorithms: Vec<DigestAlgorithm>,
}

/// A digest algorithm; TOML `"MD5"` or `"SHA-256"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum DigestAlgorithm {
    /// MD5 (RFC 2617/7616).
    #[serde(rename = "MD5")]
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Default for Sip {
    fn default() -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], 5060));
        Sip {
            listen: vec![
                Listen {
                    transport: Transport::Udp,
                    addr,
                },
                Listen {
                    transport: Transport::Tcp,
                    addr,
                },
            ],
            domain: "switchboard".into(),
            user_agent: "Switchboard/0.1".into(),
            shards: 1,
            digest_algorithms: vec![DigestAlgorithm::Md5],
        }
    }
}

/// A listening socket; TOML form `"udp:127.0.0.1:5060"` or `"tcp:[::1]:5060"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listen {
    /// Transport protocol.
    pub transport: Transport,
    /// Local address and port.
    pub addr: SocketAddr,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid listen address {s:?} (expected \"udp:host:port\" or \"tcp:host:port\")"
            )
        };
        let (transport, addr) = s.split_once(':').ok_or_else(bad)?;
        let transport = match transport {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return Err(bad()),
        };
        let addr = addr.parse().map_err(|_| bad())?;
        Ok(Listen { transport, addr })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "a listen address string", str::parse)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// SIP transport protocol; TOML `"udp"` / `"tcp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (the default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// `[store]`: persistent state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Store {
    /// Data directory; default `"switchboard-data"`.
    pub path: PathBuf,
    /// Sync every write to disk; default `true`.
    pub sync_writes: bool,
    /// CDRs older than this many days are deleted (hourly); 0 keeps them
    /// forever. Default 0.
    pub cdr_retention_days: u32,
    /// Interaction events older than this many days are deleted; 0 keeps
    /// them. Default 90.
    pub event_retention_days: u32,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            path: "switchboard-data".into(),
            sync_writes: true,
            cdr_retention_days: 0,
            event_retention_days: 90,
        }
    }
}

/// `[control]`: the control socket `switchboard ctl` talks to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Control {
    /// Unix socket path (created with mode 0600); default
    /// `"switchboard.sock"`; empty turns the socket off.
    pub socket: PathBuf,
    /// Other user ids allowed to connect besides the switch's own (and
    /// root's), checked on the peer's credentials; default none.
    pub allow_uids: Vec<u32>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket: "switchboard.sock".into(),
            allow_uids: Vec::new(),
        }
    }
}

/// `[http]`: the HTTP listener for Prometheus (`/metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// Address to listen on, e.g. `"127.0.0.1:9060"`; default that; `""`
    /// turns HTTP off.
    pub listen: String,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:9060".into(),
        }
    }
}

/// `[alerts]`: thresholds that raise an alert (an `alert.raised` event on
/// the stream and `switchboard_alert_active` = 1) and clear it again.
/// 0 turns a threshold off.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    /// Seconds between checks; default 5.
    pub interval_secs: u32,
    /// Unanswered OPTIONS in a row before a pinged trunk is down; default 3.
    pub trunk_down_after: u32,
    /// More calls in progress than this; default 0 (off).
    pub calls_active_max: u32,
    /// A store batch write slower than this many ms (since the last check); default 250.
    pub store_write_ms_max: u32,
    /// A SIP shard whose mailbox holds a probe longer than this many ms; default 250.
    pub shard_lag_ms_max: u32,
    /// A queue's longest waiting caller waited longer than this; default 60 (0 off).
    pub queue_wait_secs_max: u32,
    /// A queue's service level (answered within its time) below this
    /// percentage; default 80 (0 off).
    pub queue_service_level_min_pct: u32,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            interval_secs: 5,
            trunk_down_after: 3,
            calls_active_max: 0,
            store_write_ms_max: 250,
            shard_lag_ms_max: 250,
            queue_wait_secs_max: 60,
            queue_service_level_min_pct: 80,
        }
    }
}

/// `[log]`: logging output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// Output format; default human-readable.
    pub format: LogFormat,
    /// An env-filter directive such as `"info"` or `"info,sip=debug"`; default `"info"`.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// Log output format; TOML `"human"` / `"json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[registrar]`: REGISTER expiry limits in seconds; `min <= default <= max`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registrar {
    /// Shortest accepted expiry (shorter requests get 423); default 60.
    pub min_expires: u32,
    /// Longest granted expiry; default 3600.
    pub max_expires: u32,
    /// Expiry used when the request names none; default 3600.
    pub default_expires: u32,
    /// Seconds between keep-alives (a double CRLF, RFC 5626 §3.5.1) to
    /// each TCP flow and each UDP flow behind NAT (Contact differs from the
    /// REGISTER's source), keeping NAT bindings open; 0 = off. Default 25.
    pub keepalive_secs: u32,
}

impl Default for Registrar {
    fn default() -> Self {
        Registrar {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            keepalive_secs: 25,
        }
    }
}

/// `[calls]`: call limits and timers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Calls {
    /// Seconds to ring before giving up; default 60.
    pub no_answer_timeout_secs: u32,
    /// `Max-Forwards` for requests the switch originates; default 70.
    pub max_forwards: u8,
    /// Maximum concurrent calls; default 100000.
    pub max_calls: u32,
    /// An answered call is hung up after this many seconds (both ends may
    /// vanish without a BYE); 0 means no limit. Default 14400 (4 h).
    pub max_duration_secs: u32,
    /// Session timers (RFC 4028) with callers that support them: the
    /// interval the switch asks for when the caller names none; 0 turns
    /// session timers off. Default 1800.
    pub session_expires_secs: u32,
    /// The shortest session interval accepted (a shorter one gets 422 with
    /// this as Min-SE). RFC 4028 §4 says at least 90; lower values are for
    /// tests. Default 90.
    pub session_min_se_secs: u32,
}

impl Default for Calls {
    fn default() -> Self {
        Calls {
            no_answer_timeout_secs: 60,
            max_forwards: 70,
            max_calls: 100_000,
            max_duration_secs: 14_400,
            session_expires_secs: 1800,
            session_min_se_secs: 90,
        }
    }
}

/// `[media]`: the RTP engine: anchoring, ports, codecs, timeouts, recording.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Media {
    /// Anchor media at the switch (SDP rewritten to the switch's address);
    /// false passes SDP through untouched. Default true.
    pub anchor: bool,
    /// Address the RTP sockets bind to and SDP advertises; default the IP of
    /// the first `sip.listen` address.
    pub ip: Option<IpAddr>,
    /// RTP port range; RTP takes even ports, RTCP the odd one above.
    /// Default 30000..=39999.
    pub port_min: u16,
    /// Upper end of the RTP port range.
    pub port_max: u16,
    /// Codecs offered and accepted, in preference order: any of "PCMU",
    /// "PCMA", "G722", "opus". Default all, narrowband first.
    pub codecs: Vec<String>,
    /// Media threads; 0 means one per core. Default 0.
    pub workers: usize,
    /// Opus encoder complexity 0..=10 for transcoded legs: each step up costs
    /// CPU per call for a little quality. Default 1.
    pub opus_complexity: u8,
    /// Hang up a call whose peer sent no RTP for this many seconds (while
    /// not on hold); 0 never. Default 60.
    pub timeout_secs: u32,
    /// Record every answered call: "off", "mono" (both parties mixed) or
    /// "stereo" (caller left, callee right). Default "off".
    pub record: RecordMode,
    /// Directory for recordings; default "recordings".
    pub recordings: String,
}

/// `[features]`: in-call feature codes a local user dials as DTMF (RFC 4733
/// or in-band) during an answered call. Never honoured from a trunk's leg,
/// so a caller from outside cannot record or dial out. An empty code turns
/// its feature off. The digits also reach the other party, as on any PBX
/// that does not hold DTMF back.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    /// Start or stop recording this call; default "*1".
    pub record: String,
    /// Pause or resume this call's recording (e.g. while a card number is
    /// read out; the paused span is silence); default "*2".
    pub record_pause: String,
    /// Add a third party to the call: the code, the number, then "#" (or a
    /// pause of `inter_digit_secs`); the three are mixed. Default "*3".
    pub three_way: String,
    /// Seconds allowed between the digits of a code or number; default 3.
    pub inter_digit_secs: u32,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            record: "*1".into(),
            record_pause: "*2".into(),
            three_way: "*3".into(),
            inter_digit_secs: 3,
        }
    }
}

impl Features {
    /// The configured codes with their key names (empty ones left out).
    pub fn codes(&self) -> Vec<(&'static str, &str)> {
        [
            ("record", self.record.as_str()),
            ("record_pause", self.record_pause.as_str()),
            ("three_way", self.three_way.as_str()),
        ]
        .into_iter()
        .filter(|(_, c)| !c.is_empty())
        .collect()
    }
}

/// Codec names `[media] codecs` accepts.
pub const CODEC_NAMES: [&str; 4] = ["PCMU", "PCMA", "G722", "opus"];

impl Default for Media {
    fn default() -> Self {
        Media {
            anchor: true,
            ip: None,
            port_min: 30_000,
            port_max: 39_999,
            codecs: CODEC_NAMES.iter().map(|s| s.to_string()).collect(),
            workers: 0,
            opus_complexity: 1,
            timeout_secs: 60,
            record: RecordMode::Off,
            recordings: "recordings".into(),
        }
    }
}

/// Call recording; TOML `"off"` / `"mono"` / `"stereo"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    /// No recording.
    #[default]
    Off,
    /// One channel, both parties mixed.
    Mono,
    /// Caller left, callee right.
    Stereo,
}

/// `[[users]]`: a local SIP account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The SIP user part, e.g. `"1001"`; unique, SIP user characters only.
    pub name: String,
    /// Digest password; must not be empty.
    pub password: String,
    /// Optional display name for `From` headers.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The farthest class of call this user may place (a route's `class`):
    /// `"internal"`, `"national"` (the default) or `"international"`.
    #[serde(default = "national")]
    pub may_call: CallClass,
    /// The number shown on calls out through trunks (e.g. the user's DID,
    /// `"+493012345601"`); default the trunk's `caller_id`.
    #[serde(default)]
    pub caller_id: Option<String>,
}

fn national() -> CallClass {
    CallClass::National
}

/// How far a call goes, for users' permissions: internal < national <
/// international.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallClass {
    /// Users, queues, flows, rooms of this switch.
    Internal,
    /// Out through a trunk, in the country.
    National,
    /// Out through a trunk, abroad (and premium ranges an operator marks so).
    International,
}

impl CallClass {
    /// The word used in the config.
    pub fn name(self) -> &'static str {
        match self {
            CallClass::Internal => "internal",
            CallClass::National => "national",
            CallClass::International => "international",
        }
    }
}

/// `[[trunks]]`: a carrier connection; at least one of `inbound` / `outbound`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    /// Unique name, referenced by routes.
    pub name: String,
    /// How calls from the carrier are recognised.
    #[serde(default)]
    pub inbound: Option<TrunkInbound>,
    /// Where calls to the carrier are sent.
    #[serde(default)]
    pub outbound: Option<TrunkOutbound>,
    /// Listen for in-band DTMF tones in the carrier's audio (for carriers
    /// that do not send RFC 4733 events). Default false.
    #[serde(default)]
    pub inband_dtmf: bool,
    /// Calls in progress on this trunk, both directions, at most (more get
    /// 503); 0 (the default): no limit.
    #[serde(default)]
    pub max_calls: u32,
    /// New calls on this trunk per second, both directions, at most (more
    /// get 503); 0 (the default): no limit.
    #[serde(default)]
    pub max_cps: u32,
}

impl Trunk {
    /// Whether a request from `ip` is recognised as coming from this trunk by address.
    pub fn accepts_ip(&self, ip: IpAddr) -> bool {
        self.inbound
            .as_ref()
            .is_some_and(|i| i.from.iter().any(|r| r.contains(ip)))
    }
}

/// `[trunks.inbound]`: requests matching `from` (and `auth`, if set) come from the trunk.
/// At least one of `from` / `auth` must be given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkInbound {
    /// Carrier source addresses: IPs or CIDR ranges (`"192.0.2.0/24"`).
    #[serde(default)]
    pub from: Vec<IpRange>,
    /// Digest credentials the carrier must present.
    #[serde(default)]
    pub auth: Option<TrunkAuth>,
    /// The carrier is trusted to assert who calls (RFC 3325): the caller's
    /// number comes from `P-Asserted-Identity` when present. Default false.
    #[serde(default)]
    pub trust_identity: bool,
    /// The numbers this carrier owns for us (patterns like routes'
    /// `pattern`: `"400-800-1xxx"`, `"4930123456."`): a call from the trunk
    /// to any other number gets 404. Default empty: every number.
    #[serde(default)]
    pub numbers: Vec<PatternField>,
    /// Bring the caller's number and the dialed number to E.164 (per
    /// `[numbering]`) before routing, `numbers` and records: routes then
    /// match `+4930…`. Default false (numbers as the carrier sends them).
    #[serde(default)]
    pub normalize: bool,
}

impl TrunkInbound {
    /// Whether the trunk may send calls for `dialed`.
    pub fn owns(&self, dialed: &str) -> bool {
        self.numbers.is_empty() || self.numbers.iter().any(|p| p.pattern.matches(dialed))
    }
}

/// Digest credentials (`{ username = "...", password = "..." }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkAuth {
    /// Digest username.
    pub username: String,
    /// Digest password.
    pub password: String,
}

/// `[trunks.outbound]`: where calls to the carrier go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkOutbound {
    /// Carrier proxy address, `"127.0.0.1:5070"` (IP and port): one
    /// gateway. Give either `host` or `gateways`.
    #[serde(default, deserialize_with = "opt_socket_addr")]
    pub host: Option<SocketAddr>,
    /// Several gateways: a call tries them by `priority` (lower first;
    /// among equal ones by `weight`, at random) and moves on to the next
    /// when one answers 408 or 5xx or not at all.
    #[serde(default)]
    pub gateways: Vec<Gateway>,
    /// Transport to the carrier; default UDP.
    #[serde(default)]
    pub transport: Transport,
    /// Our credentials, used when the carrier challenges.
    #[serde(default)]
    pub auth: Option<TrunkAuth>,
    /// Domain for the `From` URI; default: the carrier's host.
    #[serde(default)]
    pub from_domain: Option<String>,
    /// Send OPTIONS to the carrier every this many seconds; after
    /// `[alerts] trunk_down_after` unanswered ones the trunk is down (calls
    /// to it get 503 at once, an alert is raised) until one is answered
    /// again. 0 (the default) never pings.
    #[serde(default)]
    pub ping_secs: u32,
    /// A gateway that has not answered a call's INVITE at all (not even
    /// 100 Trying) after this many seconds is skipped for the next one;
    /// default 3.
    #[serde(default = "three")]
    pub failover_secs: u32,
    /// Register with the carrier (at `host`, or the first gateway) as
    /// `auth.username`, asking for this many seconds and renewing before
    /// they run out; 0 (the default) does not register. Calls the carrier
    /// sends to that registration (Request-URI user = the username) come
    /// from this trunk, with the number dialed taken from `To`.
    #[serde(default)]
    pub register_secs: u32,
    /// The number shown for users' calls out this trunk when the user has
    /// no `caller_id` (a company's main number); default the user's name.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Send `P-Asserted-Identity` with the caller's number (RFC 3325; for a
    /// carrier that trusts us): it also carries the number of a caller who
    /// asked for privacy. Default false.
    #[serde(default)]
    pub assert_identity: bool,
    /// What a 3xx from the carrier does: `"refuse"` (the default; the
    /// caller gets 480) or `"follow"`: the number in its Contact is called
    /// through this trunk, if the caller may call it by a route to this
    /// trunk (at most 3 redirects per call; never for calls from trunks).
    #[serde(default)]
    pub redirects: Redirects,
    /// How the carrier wants numbers (the called number and the caller ID):
    /// `"as_dialed"` (the default), `"e164"` (`+4930…`), `"international"`
    /// (`4930…`) or `"national"` (`030…`, others `00…`), per `[numbering]`.
    #[serde(default)]
    pub number_format: numbering::NumberFormat,
}

/// A trunk's policy for 3xx responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redirects {
    /// The call fails (480).
    #[default]
    Refuse,
    /// The Contact's number is called.
    Follow,
}

fn three() -> u32 {
    3
}

impl TrunkOutbound {
    /// The registrar: `host`, else the first gateway by priority.
    pub fn registrar(&self) -> Option<SocketAddr> {
        self.host.or_else(|| {
            self.gateways
                .iter()
                .min_by_key(|g| g.priority)
                .map(|g| g.host)
        })
    }

    /// The gateways (`host` is one of priority 1).
    pub fn gateways(&self) -> Vec<Gateway> {
        match self.host {
            Some(host) => vec![Gateway {
                host,
                priority: 1,
                weight: 1,
            }],
            None => self.gateways.clone(),
        }
    }
}

/// `{ host = "ip:port", priority = 1, weight = 1 }`: one of a trunk's gateways.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Address, IP and port.
    #[serde(deserialize_with = "socket_addr")]
    pub host: SocketAddr,
    /// Lower first; default 1.
    #[serde(default = "one")]
    pub priority: u32,
    /// Share of calls among gateways of the same priority; default 1.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

fn opt_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parse_str(d, "an ip:port string", |s| {
        s.parse()
            .map_err(|_| format!("invalid socket address {s:?} (expected host:port)"))
    })
}

/// Deserializes a string through `parse`. Parsing inside the visitor (rather than via
/// `#[serde(try_from)]`) lets toml attach the error to the value's own span, even in arrays.
fn parse_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Visitor<T>(&'static str, fn(&str) -> Result<T, String>);
    impl<T> serde::de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
            (self.1)(s).map_err(E::custom)
        }
    }
    d.deserialize_str(Visitor(expecting, parse))
}

/// An IP address or CIDR range; TOML `"10.0.0.1"` or `"10.0.0.0/8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    /// Network (or host) address.
    pub addr: IpAddr,
    /// Prefix length; 32 / 128 for a single address.
    pub prefix_len: u8,
}

impl IpRange {
    /// Whether `ip` is inside the range (IPv4-mapped IPv6 addresses match IPv4 ranges).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid IP address or range {s:?} (expected e.g. \"192.0.2.1\" or \"192.0.2.0/24\")")
        };
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let addr: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(len) => len.parse().ok().filter(|&l| l <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpRange { addr, prefix_len })
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, "an IP address or range string", str::parse)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// `[[routes]]`: one dial-plan entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Optional label for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Numbers starting with this (digits, `*`, `#`, `+`; `""` matches
    /// everything). One of `prefix`, `number` and `pattern` is required.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Exactly this number (a DID).
    #[serde(default)]
    pub number: Option<String>,
    /// A number range such as `"400-800-1xxx"` (see [`dialplan::Pattern`]).
    #[serde(default)]
    pub pattern: Option<PatternField>,
    /// Only calls from this trunk (implies `from = "trunks"`); a route for
    /// one trunk beats an equally specific one for all.
    #[serde(default)]
    pub trunk: Option<String>,
    /// Which callers may use this route; default users.
    #[serde(default)]
    pub from: RouteSource,
    /// Where matching calls go.
    pub target: RouteTarget,
    /// Opening hours (a `[[schedules]]` name): outside them, or on a
    /// holiday, the call goes to `closed` instead of `target`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Where calls go while `schedule` is closed.
    #[serde(default)]
    pub closed: Option<RouteTarget>,
    /// For a queue target: the caller's priority level (higher first); default 0.
    #[serde(default)]
    pub priority: u32,
    /// For a queue target: a VIP caller (the queue's `vip_priority` is added).
    #[serde(default)]
    pub vip: bool,
    /// For a queue target: skills the caller needs (name → minimum proficiency).
    #[serde(default)]
    pub skills: std::collections::BTreeMap<String, u8>,
    /// The class of the calls this route places, checked against the
    /// calling user's `may_call`: default `"national"` for a trunk target,
    /// `"internal"` for the others.
    #[serde(default)]
    pub class: Option<CallClass>,
    /// Characters stripped from the front of the dialed number; default 0.
    #[serde(default)]
    pub strip: usize,
    /// Prepended after stripping; default `""`.
    #[serde(default)]
    pub prepend: String,
}

/// A route's `pattern`: its text, compiled when the config is read (a bad
/// one is an error naming file, line and key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PatternField {
    /// As written.
    pub text: String,
    /// Compiled.
    pub pattern: dialplan::Pattern,
}

impl TryFrom<String> for PatternField {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let pattern = dialplan::Pattern::parse(&text)?;
        Ok(PatternField { text, pattern })
    }
}

impl Route {
    /// How specifically this route matches `dialed` (None: not at all).
    fn score(&self, dialed: &str) -> Option<(dialplan::Score, bool)> {
        let s = dialplan::score(
            self.number.as_deref(),
            self.pattern.as_ref().map(|p| &p.pattern),
            self.prefix.as_deref(),
            dialed,
        )?;
        Some((s, self.trunk.is_some()))
    }

    /// What it matches, for messages: `prefix "9"`, `number "..."`, `pattern "..."`.
    pub fn matcher(&self) -> String {
        match (&self.number, &self.pattern, &self.prefix) {
            (Some(n), _, _) => format!("number {n:?}"),
            (_, Some(p), _) => format!("pattern {:?}", p.text),
            (_, _, Some(p)) => format!("prefix {p:?}"),
            _ => "nothing".into(),
        }
    }

    /// The number to send on: `dialed` minus `strip` leading characters, plus `prepend` in front.
    pub fn rewrite(&self, dialed: &str) -> String {
        let rest = dialed
            .char_indices()
            .nth(self.strip)
            .map_or("", |(i, _)| &dialed[i..]);
        format!("{}{rest}", self.prepend)
    }
}

/// Who a route serves; TOML `"users"` / `"trunks"` / `"any"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSource {
    /// Calls from local users (the default).
    #[default]
    Users,
    /// Calls arriving from trunks.
    Trunks,
    /// Everyone.
    Any,
}

impl RouteSource {
    /// Whether a route with this `from` may be used by a call from `source`
    /// (`Any` on either side matches everything).
    pub fn allows(self, source: RouteSource) -> bool {
        self == RouteSource::Any || source == RouteSource::Any || self == source
    }
}

/// Route destination. TOML: `"users"`, `{ user = "1001" }`, `{ trunk = "demo" }`,
/// `{ conference = "room" }`, `{ flow = "main" }`, `{ hangup = 404 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawTarget")]
pub enum RouteTarget {
    /// A fixed local user.
    User(String),
    /// A trunk (which must have `outbound`).
    Trunk(String),
    /// The local user named by the (rewritten) dialed number.
    Users,
    /// A conference room: every caller routed here hears all the others.
    Conference(String),
    /// An IVR flow: the switch answers and the flow decides.
    Flow(String),
    /// An ACD queue: the switch answers and the caller waits for an agent.
    Queue(String),
    /// Reject with this SIP status code (`400..=699`).
    Hangup {
        /// SIP status code.
        code: u16,
    },
}

/// The TOML shape of [`RouteTarget`].
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawTarget {
    Users,
    User(String),
    Trunk(String),
    Conference(String),
    Flow(String),
    Queue(String),
    Hangup(u16),
}

impl From<RawTarget> for RouteTarget {
    fn from(raw: RawTarget) -> Self {
        match raw {
            RawTarget::Users => RouteTarget::Users,
            RawTarget::User(u) => RouteTarget::User(u),
            RawTarget::Trunk(t) => RouteTarget::Trunk(t),
            RawTarget::Conference(c) => RouteTarget::Conference(c),
            RawTarget::Flow(f) => RouteTarget::Flow(f),
            RawTarget::Queue(q) => RouteTarget::Queue(q),
            RawTarget::Hangup(code) => RouteTarget::Hangup { code },
        }
    }
}

impl Config {
    /// Reads and validates a config file; errors are labelled with `path`.
    ///
    /// Relative `[ivr]` directories are taken from the file's directory, and
    /// the flow files of `ivr.flows_dir` are read and checked too (errors
    /// name the flow file).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let base = path.parent().unwrap_or(Path::new(""));
                Config::parse(&text, &file, base)
            }
            Err(source) => Err(ConfigError::Io { file, source }),
        }
    }

    /// Parses and validates config text; `file_label` names the source in
    /// errors; relative directories are taken from the working directory.
    pub fn from_str(text: &str, file_label: &str) -> Result<Config, ConfigError> {
        Config::parse(text, file_label, Path::new(""))
    }

    fn parse(text: &str, file_label: &str, base: &Path) -> Result<Config, ConfigError> {
        let doc = locate::Doc::parse(text, file_label)?;
        let mut config = Config::deserialize(doc.deserializer()).map_err(|e| doc.de_error(&e))?;
        config.ivr.prompts_dir = base.join(&config.ivr.prompts_dir);
        if let Some(dir) = &config.ivr.flows_dir {
            let dir = base.join(dir);
            config.ivr.flows_dir = Some(dir.clone());
            validate::load_flows(&mut config, &dir, &doc)?;
        }
        validate::check(&config, &doc)?;
        Ok(config)
    }

    /// The embedded [`DEFAULT_TOML`] config.
    ///
    /// # Panics
    /// Only if the embedded file is invalid, which a unit test rules out.
    pub fn embedded_default() -> Config {
        Config::from_str(DEFAULT_TOML, "<embedded switchboard.toml>")
            .unwrap_or_else(|e| panic!("embedded default config is invalid: {e}"))
    }

    /// The local user with this name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Whether `user` may place a call by `route` to `target` (the route's
    /// target now, see [`Config::target_at`]); Err: the class refused.
    pub fn permits(
        &self,
        user: &str,
        route: &Route,
        target: &RouteTarget,
    ) -> Result<(), CallClass> {
        let class = route.class.unwrap_or(match target {
            RouteTarget::Trunk(_) => CallClass::National,
            _ => CallClass::Internal,
        });
        let may = self.user(user).map_or(CallClass::Internal, |u| u.may_call);
        if class <= may {
            Ok(())
        } else {
            Err(class)
        }
    }

    /// The trunk with this name.
    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The first trunk whose `inbound.from` contains `ip`.
    pub fn trunk_for_ip(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.accepts_ip(ip))
    }

    /// The route for `dialed` from a caller of kind `source`: the longest matching prefix among
    /// routes whose `from` allows `source` (see [`RouteSource::allows`]); ties go to the
    /// route listed first.
    pub fn route_for(&self, dialed: &str, source: RouteSource) -> Option<&Route> {
        self.route_for_call(dialed, source, None)
    }

    /// Where `route` sends a call at instant `at`: its target, or its
    /// `closed` target while its schedule is closed. Also whether it was
    /// closed.
    pub fn target_at<'a>(&self, route: &'a Route, at: jiff::Timestamp) -> (&'a RouteTarget, bool) {
        let (Some(name), Some(closed)) = (&route.schedule, &route.closed) else {
            return (&route.target, false);
        };
        let open = self
            .schedules
            .iter()
            .find(|s| s.name == *name)
            .and_then(|s| s.compile().ok())
            .is_none_or(|c| c.is_open(at));
        if open {
            (&route.target, false)
        } else {
            (closed, true)
        }
    }

    /// [`Config::route_for`] for a call from `trunk` (if from a trunk):
    /// routes limited to that trunk take part too. The most specific match
    /// wins (see [`dialplan`]); ties go to the route listed first.
    pub fn route_for_call(
        &self,
        dialed: &str,
        source: RouteSource,
        trunk: Option<&str>,
    ) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| match &r.trunk {
                // A trunk's own route serves calls from that trunk only.
                Some(t) => RouteSource::Trunks.allows(source) && trunk == Some(t.as_str()),
                None => r.from.allows(source),
            })
            .filter_map(|r| Some((r.score(dialed)?, r)))
            .rev() // max_by_key keeps the last maximum; reversing makes that the first listed
            .max_by_key(|(s, _)| *s)
            .map(|(_, r)| r)
    }
}

#[cfg(test)]
mod flow_tests;

#[cfg(test)]
mod acd_tests;
