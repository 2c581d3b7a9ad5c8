//! ACD routing decisions at contact-center scale: 10,000 agents, 1,000
//! queues, 100 skills (each agent in 5 queues with 3 skills; half the
//! queues require a skill). Two decisions are measured:
//!
//! - **join**: a caller joins a queue while half the agents are free; the
//!   queue's strategy picks a qualified agent;
//! - **free**: an agent finishes a call while 10,000 callers wait (10 per
//!   queue) and gets the best caller across their queues.
//!
//! First a plain loop prints p50/p99/max per decision (hdrhistogram), then
//! criterion measures the same operations.

use actors::acd::router::{CallerSpec, QueueSpec, Router, Status};
use config::acd::Strategy;
use criterion::{criterion_group, Criterion};
use std::time::{Duration, Instant};

const AGENTS: usize = 10_000;
const QUEUES: usize = 1_000;
const SKILLS: usize = 100;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn build(t0: Instant) -> Router {
    let mut rng = Rng(0x5EED);
    let mut r = Router::new(t0, 0);
    let strategies = [
        Strategy::LongestIdle,
        Strategy::Skills,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::Random,
    ];
    for q in 0..QUEUES {
        let skills = if q % 2 == 0 {
            vec![(format!("s{}", rng.below(SKILLS)), 2)]
        } else {
            vec![]
        };
        r.add_queue(QueueSpec {
            name: format!("q{q}"),
            strategy: strategies[q % strategies.len()],
            skills,
            relax_after: vec![Duration::from_secs(30), Duration::from_secs(60)],
            aging: 1,
            vip_priority: 50,
        });
    }
    for a in 0..AGENTS {
        let skills: Vec<(String, u8)> = (0..3)
            .map(|_| (format!("s{}", rng.below(SKILLS)), 1 + rng.below(5) as u8))
            .collect();
        let queues: Vec<usize> = (0..5).map(|_| rng.below(QUEUES)).collect();
        r.add_agent(&format!("a{a}"), &skills, &queues, t0);
    }
    r
}

fn percentiles(name: &str, h: &hdrhistogram::Histogram<u64>) {
    println!(
        "{name}: n={} p50={:.2} µs p99={:.2} µs max={:.2} µs",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

/// Callers join while half the agents are free; each offer is answered and
/// the call ends at once (not timed).
fn joins(n: usize) -> hdrhistogram::Histogram<u64> {
    let t0 = Instant::now();
    let mut r = build(t0);
    for a in (0..AGENTS).step_by(2) {
        r.login(a, t0);
    }
    let mut rng = Rng(7);
    let mut h = hdrhistogram::Histogram::new(3).unwrap();
    let spec = CallerSpec::default();
    for id in 0..n as u64 {
        let q = rng.below(QUEUES);
        let now = t0 + Duration::from_millis(id);
        let start = Instant::now();
        let d = r.join(id, q, &spec, now);
        h.record(start.elapsed().as_nanos() as u64).unwrap();
        for d in d {
            if let actors::acd::router::Decision::Offer { caller, agents, .. } = d {
                r.answered(caller, agents[0]);
                r.call_ended(agents[0], Duration::ZERO, now);
            }
        }
        // Callers nobody could take (no qualified agent free) leave.
        r.leave(id, now);
    }
    h
}

/// Every agent busy, 10 callers waiting per queue; agents free one by one.
fn frees(n: usize) -> hdrhistogram::Histogram<u64> {
    let t0 = Instant::now();
    let mut r = build(t0);
    let mut id = 0u64;
    // Put every agent on a call, then fill the queues.
    for a in 0..AGENTS {
        r.login(a, t0);
    }
    let spec = CallerSpec::default();
    for q in 0..QUEUES {
        while r.waiting(q) < 10 {
            for d in r.join(id, q, &spec, t0) {
                if let actors::acd::router::Decision::Offer { caller, agents, .. } = d {
                    r.answered(caller, agents[0]);
                }
            }
            id += 1;
        }
    }
    let mut rng = Rng(11);
    let mut h = hdrhistogram::Histogram::new(3).unwrap();
    let mut done = 0;
    while done < n {
        let a = rng.below(AGENTS);
        let Status::OnCall(_) = r.status(a).clone() else {
            continue;
        };
        let now = t0 + Duration::from_secs(1) + Duration::from_millis(done as u64);
        let start = Instant::now();
        let d = r.call_ended(a, Duration::ZERO, now);
        h.record(start.elapsed().as_nanos() as u64).unwrap();
        // The agent answers whom they got; a new caller keeps the queue full.
        for d in d {
            if let actors::acd::router::Decision::Offer {
                caller,
                queue,
                agents,
            } = d
            {
                r.answered(caller, agents[0]);
                r.join(id, queue, &spec, now);
                id += 1;
            }
        }
        done += 1;
    }
    h
}

fn criterion_benches(c: &mut Criterion) {
    c.bench_function("acd join (10k agents, 1k queues)", |b| {
        b.iter_custom(|iters| {
            let h = joins(iters as usize);
            Duration::from_nanos((h.mean() * h.len() as f64) as u64)
        })
    });
    c.bench_function("acd agent free (10k callers waiting)", |b| {
        b.iter_custom(|iters| {
            let h = frees(iters as usize);
            Duration::from_nanos((h.mean() * h.len() as f64) as u64)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = criterion_benches
}

fn main() {
    let built = Instant::now();
    let _ = build(built);
    println!(
        "building 10k agents / 1k queues / 100 skills: {:.0} ms",
        built.elapsed().as_secs_f64() * 1000.0
    );
    percentiles("join: pick an agent", &joins(100_000));
    percentiles("free: pick a caller", &frees(50_000));
    benches();
    Criterion::default().configure_from_args().final_summary();
}
