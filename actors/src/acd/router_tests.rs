use super::*;

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn queue(name: &str, strategy: Strategy) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        strategy,
        skills: vec![],
        relax_after: vec![],
        aging: 1,
        vip_priority: 50,
    }
}

/// A router with one queue and agents a, b, c logged in at t0+0, +1, +2.
fn three(strategy: Strategy) -> (Router, Instant, [AgentIx; 3]) {
    let t0 = Instant::now();
    let mut r = Router::new(t0, 0);
    let q = r.add_queue(queue("q", strategy));
    let ids = ["a", "b", "c"].map(|n| r.add_agent(n, &[], &[q], t0));
    for (i, a) in ids.iter().enumerate() {
        assert!(r.login(*a, secs(t0, i as u64)).is_empty());
    }
    (r, t0, ids)
}

fn offered(d: &[Decision]) -> Vec<(CallerId, Vec<AgentIx>)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Offer { caller, agents, .. } => Some((*caller, agents.clone())),
            _ => None,
        })
        .collect()
}

/// Caller `id` is answered by `a` and the call ends at once (no wrap-up).
fn take(r: &mut Router, id: CallerId, a: AgentIx, now: Instant) -> Vec<Decision> {
    r.answered(id, a);
    r.call_ended(a, Duration::ZERO, now)
}

#[test]
fn longest_idle_takes_the_agent_free_longest() {
    let (mut r, t0, [a, b, c]) = three(Strategy::LongestIdle);
    let now = secs(t0, 10);
    assert_eq!(
        offered(&r.join(1, 0, &CallerSpec::default(), now)),
        [(1, vec![a])]
    );
    take(&mut r, 1, a, secs(t0, 11));
    // a is now the most recently idle: b, then c.
    assert_eq!(
        offered(&r.join(2, 0, &CallerSpec::default(), secs(t0, 12))),
        [(2, vec![b])]
    );
    assert_eq!(
        offered(&r.join(3, 0, &CallerSpec::default(), secs(t0, 12))),
        [(3, vec![c])]
    );
}

#[test]
fn round_robin_goes_around_in_member_order() {
    let (mut r, t0, [a, b, c]) = three(Strategy::RoundRobin);
    let mut got = Vec::new();
    for id in 1..=5 {
        let now = secs(t0, 10 + id);
        let d = offered(&r.join(id, 0, &CallerSpec::default(), now));
        let agent = d[0].1[0];
        got.push(agent);
        take(&mut r, id, agent, now);
    }
    assert_eq!(got, [a, b, c, a, b]);
}

#[test]
fn ring_all_rings_everyone_and_the_first_answer_wins() {
    let (mut r, t0, [a, b, c]) = three(Strategy::RingAll);
    assert_eq!(
        offered(&r.join(1, 0, &CallerSpec::default(), secs(t0, 5))),
        [(1, vec![a, b, c])]
    );
    assert_eq!(
        r.answered(1, b),
        [Decision::Cancel {
            caller: 1,
            agents: vec![a, c]
        }]
    );
    assert_eq!(r.status(a), &Status::Available);
    assert_eq!(r.status(b), &Status::OnCall(1));
}

#[test]
fn fewest_calls_evens_the_load() {
    let (mut r, t0, [a, b, c]) = three(Strategy::FewestCalls);
    // a and b have taken calls (a two), c none: c, then b.
    for (id, agent) in [(1, a), (2, a), (3, b)] {
        r.join(id, 0, &CallerSpec::default(), secs(t0, 3));
        r.answered(id, agent);
        r.call_ended(agent, Duration::ZERO, secs(t0, 4));
    }
    let _ = (a, b);
    let d = offered(&r.join(10, 0, &CallerSpec::default(), secs(t0, 9)));
    assert_eq!(d[0].1, [c]);
    let d = offered(&r.join(11, 0, &CallerSpec::default(), secs(t0, 9)));
    assert_eq!(d[0].1, [b]);
}

#[test]
fn random_spreads_over_every_agent() {
    let (mut r, t0, ids) = three(Strategy::Random);
    let mut count = [0; 3];
    for id in 0..300 {
        let d = offered(&r.join(id, 0, &CallerSpec::default(), secs(t0, 5)));
        let agent = d[0].1[0];
        count[ids.iter().position(|x| *x == agent).unwrap()] += 1;
        take(&mut r, id, agent, secs(t0, 5));
    }
    assert!(count.iter().all(|&n| n > 60), "{count:?}");
}

#[test]
fn skills_pick_the_most_proficient_and_relax_with_waiting() {
    let t0 = Instant::now();
    let mut r = Router::new(t0, 0);
    let mut spec = queue("es", Strategy::Skills);
    spec.skills = vec![("spanish".into(), 4)];
    spec.relax_after = vec![Duration::from_secs(30), Duration::from_secs(60)];
    let q = r.add_queue(spec);
    let low = r.add_agent("low", &[("spanish".into(), 2)], &[q], t0);
    let none = r.add_agent("none", &[("english".into(), 5)], &[q], t0);
    for a in [low, none] {
        r.login(a, t0);
    }
    // Nobody has spanish 4: the caller waits.
    assert!(r.join(1, q, &CallerSpec::default(), t0).is_empty());
    assert_eq!(r.deadline(), Some(secs(t0, 30)));
    // At 30 s the minimum is 3: still nobody.
    assert!(r.tick(secs(t0, 30)).is_empty());
    // At 60 s it is 2: "low" qualifies; "none" never does.
    assert_eq!(offered(&r.tick(secs(t0, 60))), [(1, vec![low])]);
    // A better agent logs in: with two qualified, the most proficient wins.
    let pro = r.add_agent("pro", &[("spanish".into(), 5)], &[q], t0);
    r.login(pro, secs(t0, 61));
    let d = offered(&r.join(2, q, &CallerSpec::default(), secs(t0, 62)));
    assert_eq!(d, [(2, vec![pro])]);
    // The caller's own skills add to the queue's.
    r.answered(1, low);
    r.call_ended(low, Duration::ZERO, secs(t0, 63));
    let caller = CallerSpec {
        skills: vec![("english".into(), 3)],
        ..Default::default()
    };
    assert!(
        r.join(3, q, &caller, secs(t0, 64)).is_empty(),
        "low has no english"
    );
}

#[test]
fn priority_first_and_a_long_wait_overtakes_it() {
    let t0 = Instant::now();
    let mut r = Router::new(t0, 0);
    let q = r.add_queue(queue("q", Strategy::LongestIdle));
    let a = r.add_agent("a", &[], &[q], t0);
    r.login(a, t0);
    r.join(100, q, &CallerSpec::default(), t0);
    r.answered(100, a); // a is busy from now on
    let normal = CallerSpec::default();
    let high = CallerSpec {
        priority: 1,
        ..Default::default()
    };
    r.join(1, q, &normal, secs(t0, 0));
    r.join(2, q, &high, secs(t0, 30));
    // At 40 s: 1 has 40 s, 2 has 60 + 10 s: priority wins.
    assert!(r.score(2, secs(t0, 40)) > r.score(1, secs(t0, 40)));
    let d = offered(&r.call_ended(a, Duration::ZERO, secs(t0, 40)));
    assert_eq!(d, [(2, vec![a])]);
    take(&mut r, 2, a, secs(t0, 41));
    // Caller 1 got it then; now a high-priority caller who joins late loses
    // to 1's long wait (100 s against 60 + 10 s).
    let mut r2 = Router::new(t0, 0);
    let q = r2.add_queue(queue("q", Strategy::LongestIdle));
    let a = r2.add_agent("a", &[], &[q], t0);
    r2.login(a, t0);
    r2.join(100, q, &normal, t0);
    r2.answered(100, a);
    r2.join(1, q, &normal, t0);
    r2.join(2, q, &high, secs(t0, 90));
    let d = offered(&r2.call_ended(a, Duration::ZERO, secs(t0, 100)));
    assert_eq!(d, [(1, vec![a])]);
    // A VIP (50 levels) beats both.
    r2.answered(1, a);
    r2.join(
        3,
        q,
        &CallerSpec {
            vip: true,
            ..Default::default()
        },
        secs(t0, 101),
    );
    let d = offered(&r2.call_ended(a, Duration::ZERO, secs(t0, 102)));
    assert_eq!(d, [(3, vec![a])]);
}

#[test]
fn a_missed_offer_goes_to_the_next_agent_and_repeated_misses_pause() {
    let t0 = Instant::now();
    let mut r = Router::new(t0, 2);
    let q = r.add_queue(queue("q", Strategy::LongestIdle));
    let a = r.add_agent("a", &[], &[q], t0);
    let b = r.add_agent("b", &[], &[q], t0);
    r.login(a, t0);
    r.login(b, secs(t0, 1));
    assert_eq!(
        offered(&r.join(1, q, &CallerSpec::default(), secs(t0, 2))),
        [(1, vec![a])]
    );
    // a lets it ring out: b gets it; a, free again, is not offered the same caller.
    let d = r.missed(1, a, secs(t0, 17));
    assert_eq!(offered(&d), [(1, vec![b])]);
    assert_eq!(r.status(a), &Status::Available);
    // b misses too: back to a only after the retry pause.
    let d = r.missed(1, b, secs(t0, 32));
    assert!(offered(&d).is_empty(), "{d:?}");
    assert_eq!(offered(&r.tick(secs(t0, 37))), [(1, vec![a])]);
    // a's second miss in a row: paused.
    let d = r.missed(1, a, secs(t0, 52));
    assert!(d.contains(&Decision::AutoPaused(a)), "{d:?}");
    assert_eq!(r.status(a), &Status::Paused("missed offers".into()));
    // The caller goes to b, the one other agent (b's retry pause is over).
    assert_eq!(offered(&d), [(1, vec![b])]);
    // A new caller while a is paused waits for b; resumed, a takes them.
    r.answered(1, b);
    assert!(r
        .join(2, q, &CallerSpec::default(), secs(t0, 55))
        .is_empty());
    assert_eq!(offered(&r.resume(a, secs(t0, 60))), [(2, vec![a])]);
}

#[test]
fn wrap_up_is_respected() {
    let (mut r, t0, [a, b, c]) = three(Strategy::LongestIdle);
    let _ = (b, c);
    for (id, agent) in [(1, a), (2, b), (3, c)] {
        assert_eq!(
            offered(&r.join(id, 0, &CallerSpec::default(), secs(t0, 5))),
            [(id, vec![agent])]
        );
        r.answered(id, agent);
    }
    assert!(r
        .call_ended(a, Duration::from_secs(10), secs(t0, 20))
        .is_empty());
    assert!(r
        .join(4, 0, &CallerSpec::default(), secs(t0, 21))
        .is_empty());
    assert_eq!(r.deadline(), Some(secs(t0, 30)));
    assert_eq!(offered(&r.tick(secs(t0, 30))), [(4, vec![a])]);
}

#[test]
fn a_free_agent_takes_the_best_caller_of_all_their_queues() {
    let t0 = Instant::now();
    let mut r = Router::new(t0, 0);
    let q1 = r.add_queue(queue("q1", Strategy::LongestIdle));
    let q2 = r.add_queue(queue("q2", Strategy::LongestIdle));
    let a = r.add_agent("a", &[], &[q1, q2], t0);
    r.join(1, q1, &CallerSpec::default(), t0);
    r.join(
        2,
        q2,
        &CallerSpec {
            priority: 2,
            ..Default::default()
        },
        secs(t0, 10),
    );
    r.join(3, q2, &CallerSpec::default(), secs(t0, 5));
    assert_eq!(r.waiting(q2), 2);
    assert_eq!(offered(&r.login(a, secs(t0, 20))), [(2, vec![a])]);
    // A caller who hangs up while ringing frees the agent for the next.
    let d = r.leave(2, secs(t0, 21));
    assert_eq!(
        d[0],
        Decision::Cancel {
            caller: 2,
            agents: vec![a]
        }
    );
    assert_eq!(offered(&d), [(1, vec![a])]);
}
