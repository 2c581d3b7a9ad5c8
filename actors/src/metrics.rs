//! Prometheus metrics. Counters are bumped where things happen (SIP
//! messages, calls ending, store writes); gauges and the RTP engine's
//! counters are read when `/metrics` is scraped ([`Metrics::render`]).
//! Names follow Prometheus conventions: `switchboard_` prefix, base units
//! (seconds), `_total` on counters.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric the switch exports.
pub struct Metrics {
    registry: Registry,
    /// Calls ended, by direction and disposition.
    pub calls_total: IntCounterVec,
    /// Calls in progress (ringing or up).
    pub calls_active: IntGauge,
    /// Answered calls in progress.
    pub calls_up: IntGauge,
    /// SIP requests by direction (`in`/`out`) and method (retransmissions
    /// are absorbed by the transaction layer and not counted).
    pub sip_requests: IntCounterVec,
    /// SIP responses by direction and status code.
    pub sip_responses: IntCounterVec,
    /// Live SIP transactions per shard.
    pub transactions: IntGaugeVec,
    /// Users with at least one live registration.
    pub registered_users: IntGauge,
    /// Registered contacts.
    pub registered_contacts: IntGauge,
    /// RTP engine: sessions and legs now.
    pub rtp_sessions: IntGauge,
    /// RTP legs with sockets.
    pub rtp_legs: IntGauge,
    /// RTP/RTCP packets received, sent, refused by the kernel, malformed.
    pub rtp_packets: IntCounterVec,
    /// Store batch writes (one fsync each), seconds.
    pub store_write_seconds: Histogram,
    /// Records (CDRs, events) written.
    pub store_records: IntCounter,
    /// Store write failures.
    pub store_errors: IntCounter,
    /// Actors that failed (a panic, or a stop with their call still up)
    /// and were cleaned up.
    pub actor_failures: IntCounterVec,
    /// Alerts now raised (1) or cleared (0), by alert and subject.
    pub alert_active: IntGaugeVec,
    /// Pinged trunks: 1 answering OPTIONS, 0 down.
    pub trunk_up: IntGaugeVec,
    /// Pinged gateways: 1 answering OPTIONS, 0 down.
    pub gateway_up: IntGaugeVec,
    /// Trunks that register: 1 registered, 0 not.
    pub trunk_registered: IntGaugeVec,
    /// How long a shard took to answer a probe through its mailbox at the
    /// last scrape: its backlog, in seconds.
    pub shard_lag: GaugeVec,
    /// Callers waiting per queue.
    pub queue_waiting: IntGaugeVec,
    /// The longest current wait per queue, seconds.
    pub queue_longest_wait: IntGaugeVec,
    /// Share of answered calls answered within the queue's service-level time.
    pub queue_service_level: GaugeVec,
    /// Queue calls by outcome: joined, answered, abandoned.
    pub queue_calls: IntCounterVec,
    /// Agents by state (logged_out, available, ringing, on_call, wrap_up, paused).
    pub agents: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge =
            |name: &str, help: &str| reg(&r, IntGauge::new(name, help).expect("valid metric"));
        Metrics {
            calls_total: counter_vec(
                "switchboard_calls_total",
                "Calls ended, by direction and disposition.",
                &["direction", "disposition"],
            ),
            calls_active: gauge("switchboard_calls_active", "Calls in progress (ringing or up)."),
            calls_up: gauge("switchboard_calls_up", "Answered calls in progress."),
            sip_requests: counter_vec(
                "switchboard_sip_requests_total",
                "SIP requests received (in) and sent (out), by method; retransmissions not counted.",
                &["direction", "method"],
            ),
            sip_responses: counter_vec(
                "switchboard_sip_responses_total",
                "SIP responses received (in) and sent (out), by status code.",
                &["direction", "code"],
            ),
            transactions: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("switchboard_sip_transactions", "Live SIP transactions per shard."),
                    &["shard"],
                )
                .expect("valid metric"),
            ),
            registered_users: gauge(
                "switchboard_registered_users",
                "Users with at least one live registration.",
            ),
            registered_contacts: gauge("switchboard_registered_contacts", "Registered contacts."),
            rtp_sessions: gauge("switchboard_rtp_sessions", "Media sessions in the RTP engine."),
            rtp_legs: gauge("switchboard_rtp_legs", "Media legs (socket pairs) in the RTP engine."),
            rtp_packets: counter_vec(
                "switchboard_rtp_packets_total",
                "RTP/RTCP packets: received, sent, dropped (kernel refused), malformed.",
                &["kind"],
            ),
            store_write_seconds: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "switchboard_store_write_seconds",
                        "Duration of one store batch write (one fsync).",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            store_records: reg(
                &r,
                IntCounter::new("switchboard_store_records_total", "Records (CDRs, events) written.")
                    .expect("valid metric"),
            ),
            store_errors: reg(
                &r,
                IntCounter::new("switchboard_store_errors_total", "Failed store batch writes.")
                    .expect("valid metric"),
            ),
            actor_failures: counter_vec(
                "switchboard_actor_failures_total",
                "Actors that failed (panic, or stopped with their call up) and were cleaned up, by kind.",
                &["actor"],
            ),
            alert_active: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("switchboard_alert_active", "Alerts raised (1) or cleared (0)."),
                    &["alert", "subject"],
                )
                .expect("valid metric"),
            ),
            trunk_up: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("switchboard_trunk_up", "Pinged trunks: 1 answering OPTIONS, 0 down."),
                    &["trunk"],
                )
                .expect("valid metric"),
            ),
            trunk_registered: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "switchboard_trunk_registered",
                        "Trunks that register with their carrier: 1 registered, 0 not.",
                    ),
                    &["trunk"],
                )
                .expect("valid metric"),
            ),
            gateway_up: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "switchboard_gateway_up",
                        "Pinged trunk gateways: 1 answering OPTIONS, 0 down.",
                    ),
                    &["trunk", "gateway"],
                )
                .expect("valid metric"),
            ),
            shard_lag: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "switchboard_shard_mailbox_lag_seconds",
                        "Time a probe waited in a SIP shard's mailbox at the last scrape.",
                    ),
                    &["shard"],
                )
                .expect("valid metric"),
            ),
            queue_waiting: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new("switchboard_queue_waiting", "Callers waiting per queue."),
                    &["queue"],
                )
                .expect("valid metric"),
            ),
            queue_longest_wait: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "switchboard_queue_longest_wait_seconds",
                        "The longest current wait per queue.",
                    ),
                    &["queue"],
                )
                .expect("valid metric"),
            ),
            queue_service_level: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "switchboard_queue_service_level_ratio",
                        "Answered calls answered within the queue's service-level time, 0..1.",
                    ),
                    &["queue"],
                )
                .expect("valid metric"),
            ),
            queue_calls: counter_vec(
                "switchboard_queue_calls_total",
                "Queue calls by outcome: joined, answered, abandoned.",
                &["queue", "outcome"],
            ),
            agents: reg(
                &r,
                IntGaugeVec::new(Opts::new("switchboard_agents", "Agents by state."), &["state"])
                    .expect("valid metric"),
            ),
            registry: r,
        }
    }

    /// Raises a counter to an absolute value read elsewhere (an atomic the
    /// RTP engine keeps); never lowers it.
    pub fn counter_to(c: &IntCounter, value: u64) {
        let now = c.get();
        if value > now {
            c.inc_by(value - now);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::new();
        m.calls_total
            .with_label_values(&["inbound", "answered"])
            .inc();
        m.sip_requests
            .with_label_values(&["in", "INVITE"])
            .inc_by(3);
        Metrics::counter_to(&m.rtp_packets.with_label_values(&["received"]), 10);
        Metrics::counter_to(&m.rtp_packets.with_label_values(&["received"]), 7);
        let text = m.render();
        assert!(text
            .contains("switchboard_calls_total{direction=\"inbound\",disposition=\"answered\"} 1"));
        assert!(
            text.contains("switchboard_sip_requests_total{direction=\"in\",method=\"INVITE\"} 3")
        );
        assert!(text.contains("switchboard_rtp_packets_total{kind=\"received\"} 10"));
        assert!(text.contains("# TYPE switchboard_store_write_seconds histogram"));
    }
}

#[cfg(test)]
mod dashboard {
    use super::*;

    /// Every metric the shipped Grafana dashboard queries exists.
    #[test]
    fn the_grafana_dashboard_queries_real_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/grafana/switchboard.json"
        );
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let m = Metrics::new();
        // Vec metrics appear once they have a child.
        m.calls_total.with_label_values(&["inbound", "answered"]);
        m.sip_requests.with_label_values(&["in", "INVITE"]);
        m.sip_responses.with_label_values(&["in", "200"]);
        m.transactions.with_label_values(&["0"]);
        m.rtp_packets.with_label_values(&["received"]);
        m.actor_failures.with_label_values(&["call"]);
        m.alert_active.with_label_values(&["a", "b"]);
        m.trunk_up.with_label_values(&["t"]);
        m.gateway_up.with_label_values(&["t", "127.0.0.1:5060"]);
        m.trunk_registered.with_label_values(&["t"]);
        m.shard_lag.with_label_values(&["0"]);
        m.queue_waiting.with_label_values(&["q"]);
        m.queue_longest_wait.with_label_values(&["q"]);
        m.queue_service_level.with_label_values(&["q"]);
        m.queue_calls.with_label_values(&["q", "joined"]);
        m.agents.with_label_values(&["available"]);
        let families: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 12);
        for p in panels {
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if !word.starts_with("switchboard_") {
                        continue;
                    }
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| word.strip_suffix(s))
                        .unwrap_or(word);
                    assert!(
                        families.iter().any(|f| f == word || f == base),
                        "panel {:?} queries unknown metric {word}",
                        p["title"]
                    );
                }
            }
        }
    }
}
