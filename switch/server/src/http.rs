//! The HTTP listener (`[http] listen`): `/metrics` in the Prometheus text
//! format. Gauges and the RTP engine's counters are read at each scrape;
//! each SIP shard is probed through its mailbox to report its backlog.

use ::actors::metrics::Metrics;
use ::actors::shard::GetStats;
use ::actors::Switch;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Binds `addr` and serves on the current runtime.
pub(crate) async fn start(switch: Arc<Switch>, addr: &str) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("http.listen {addr}: {e}"))?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(switch);
    tracing::info!(%addr, "http listening (/metrics)");
    actix::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok(())
}

async fn metrics(State(sw): State<Arc<Switch>>) -> impl IntoResponse {
    let m = &sw.metrics;
    let calls = sw.calls.len() as i64;
    let up = sw.calls.iter().filter(|e| e.answer_ms.is_some()).count() as i64;
    m.calls_active.set(calls);
    m.calls_up.set(up);
    let now = ::actors::context::unix_now();
    let (mut users, mut contacts) = (0, 0);
    for e in sw.location.iter() {
        let live = e.value().iter().filter(|b| b.expires_at > now).count();
        users += (live > 0) as i64;
        contacts += live as i64;
    }
    m.registered_users.set(users);
    m.registered_contacts.set(contacts);
    if let Some(engine) = &sw.media {
        let s = engine.stats();
        m.rtp_sessions.set(s.sessions.load(Relaxed) as i64);
        m.rtp_legs.set(s.legs.load(Relaxed) as i64);
        for (kind, v) in [
            ("received", &s.rx_packets),
            ("sent", &s.tx_packets),
            ("dropped", &s.tx_dropped),
            ("malformed", &s.malformed),
        ] {
            Metrics::counter_to(&m.rtp_packets.with_label_values(&[kind]), v.load(Relaxed));
        }
    }
    let w = sw.records.stats();
    Metrics::counter_to(&m.store_records, w.requests.load(Relaxed));
    Metrics::counter_to(&m.store_errors, w.errors.load(Relaxed));
    for (i, shard) in sw.shards.get().into_iter().flatten().enumerate() {
        let t = std::time::Instant::now();
        let label = i.to_string();
        match tokio::time::timeout(std::time::Duration::from_secs(2), shard.send(GetStats)).await {
            Ok(Ok(stats)) => {
                m.transactions
                    .with_label_values(&[&label])
                    .set(stats.transactions as i64);
                m.shard_lag
                    .with_label_values(&[&label])
                    .set(t.elapsed().as_secs_f64());
            }
            _ => m.shard_lag.with_label_values(&[&label]).set(2.0),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
}
