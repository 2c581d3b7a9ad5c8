//! A trunk's gateways for leg B: tried by priority (lower first; among
//! equal ones in a random order weighted by `weight`), skipping those the
//! monitor found down. A gateway that answers 408 or 5xx before ringing, or
//! nothing at all within `failover_secs`, is given up (a silent one is
//! cancelled once it speaks) and the next is called with the same offer,
//! within the same call.

use super::*;

/// What failing over needs: the gateways left and how to call them.
pub(super) struct Failover {
    rest: Vec<Dest>,
    trunk: String,
    number: String,
    source: Source,
    max_forwards: u8,
    timer: Option<SpawnHandle>,
}

impl Call {
    /// The gateways of trunk `name` for `number`, in the order to try.
    pub(super) fn trunk_dests(
        &self,
        name: &str,
        number: &str,
    ) -> Result<Vec<Dest>, (u16, Option<&'static str>)> {
        if self.switch.trunks_down.contains_key(name) {
            return Err((503, Some("Trunk Down")));
        }
        let cfg = self.switch.config();
        let trunk = cfg.trunk(name);
        let Some(out) = trunk.and_then(|t| t.outbound.as_ref()) else {
            return Err((503, Some("Trunk Unavailable")));
        };
        let transport = match out.transport {
            config::Transport::Udp => Transport::Udp,
            config::Transport::Tcp => Transport::Tcp,
        };
        let mut gws: Vec<config::Gateway> = out
            .gateways()
            .into_iter()
            .filter(|g| {
                !self
                    .switch
                    .gateways_down
                    .contains_key(&(name.to_owned(), g.host))
            })
            .collect();
        if gws.is_empty() {
            return Err((503, Some("Trunk Down")));
        }
        order(&mut gws, rand::random);
        let number = cfg.numbering.format(number, out.number_format);
        let number = number.as_str();
        Ok(gws
            .into_iter()
            .map(|g| {
                let mut u = SipUri::new(Some(number), Host::Ip(g.host.ip()), Some(g.host.port()));
                if transport == Transport::Tcp {
                    u.set_param("transport", Some("tcp"));
                }
                Dest {
                    uri: Uri::Sip(u),
                    peer: Peer {
                        transport,
                        addr: g.host,
                    },
                    to_host: g.host.ip().to_string(),
                    auth: out.auth.clone(),
                    from_domain: out.from_domain.clone(),
                    inband_dtmf: trunk.is_some_and(|t| t.inband_dtmf),
                    trunk: Some(name.to_owned()),
                    number: Some(number.to_owned()),
                }
            })
            .collect())
    }

    /// Leg B went to the first of a trunk's gateways (`rest` are the
    /// others): remember how to fail over, and watch for silence.
    pub(super) fn start_failover(
        &mut self,
        trunk: &str,
        rest: Vec<Dest>,
        number: &str,
        source: &Source,
        max_forwards: u8,
        ctx: &mut Context<Self>,
    ) {
        if rest.is_empty() {
            self.failover = None;
            return;
        }
        self.failover = Some(Failover {
            rest,
            trunk: trunk.to_owned(),
            number: number.to_owned(),
            source: source.clone(),
            max_forwards,
            timer: None,
        });
        self.failover_watch(ctx);
    }

    /// A gateway that has not answered the INVITE at all after the trunk's
    /// `failover_secs` is skipped.
    fn failover_watch(&mut self, ctx: &mut Context<Self>) {
        let Some(f) = self.failover.as_ref() else {
            return;
        };
        let secs = self
            .switch
            .config()
            .trunk(&f.trunk)
            .and_then(|t| t.outbound.as_ref())
            .map_or(3, |o| o.failover_secs);
        let call_id = self
            .b
            .as_ref()
            .and_then(|b| b.invite.call_id().map(str::to_owned));
        let h = ctx.run_later(Duration::from_secs(secs.into()), move |this, ctx| {
            let silent = this.b.as_ref().is_some_and(|b| {
                b.invite.call_id().map(str::to_owned) == call_id && !b.provisional
            });
            if silent {
                this.fail_over(408, false, ctx);
            }
        });
        if let Some(f) = self.failover.as_mut() {
            f.timer = Some(h);
        }
    }

    /// Leg B's gateway failed (`code`; `answered`: it sent that final
    /// response, else it stayed silent) before ringing: the next gateway
    /// gets the same INVITE. False if there is none (or it had rung).
    pub(super) fn fail_over(&mut self, code: u16, answered: bool, ctx: &mut Context<Self>) -> bool {
        let rang = self.b.as_ref().is_none_or(|b| b.rang || b.dialog.is_some());
        let Some(f) = self.failover.as_mut() else {
            return false;
        };
        if f.rest.is_empty() || rang || self.cancelled || self.phase == Phase::Ending {
            return false;
        }
        let dest = f.rest.remove(0);
        if let Some(h) = f.timer.take() {
            ctx.cancel_future(h);
        }
        let (trunk, number, source, mf) = (
            f.trunk.clone(),
            f.number.clone(),
            f.source.clone(),
            f.max_forwards,
        );
        let Some(mut old) = self.b.take() else {
            return false;
        };
        if answered {
            old.failed = true;
        } else if old.provisional {
            self.to_shard(ShardCmd::Request {
                peer: old.peer,
                req: cancel_for(&old.invite),
                owner: ctx.address().recipient(),
            });
        } else {
            // Cancelled if it ever answers (`c_done`).
            old.cancel_pending = true;
        }
        tracing::info!(call_id = %self.call_id_a(), %trunk, from = %old.peer.addr, to = %dest.peer.addr, code, "gateway failed: the next one");
        self.switch.publish(
            "trunk.failover",
            serde_json::json!({
                "call_id": self.call_id_a(),
                "trunk": trunk,
                "gateway": old.peer.addr.to_string(),
                "code": code,
                "next": dest.peer.addr.to_string(),
            }),
        );
        self.call_b_again(old, dest, &number, &source, mf, ctx);
        self.failover_watch(ctx);
        true
    }

    /// Leg B's INVITE (`old`, given up) is replaced by one to `dest` for
    /// `number` with the same offer, in the same call.
    fn call_b_again(
        &mut self,
        old: LegB,
        dest: Dest,
        number: &str,
        source: &Source,
        mf: u8,
        ctx: &mut Context<Self>,
    ) {
        self.gateway = Some(dest.peer.addr.to_string());
        let mut invite = self.build_b_invite(&dest, number, source, mf.saturating_sub(1));
        self.session_offer_b(&mut invite);
        copy_body(&old.invite, &mut invite);
        self.c_done.push(old);
        self.b = Some(LegB::new(invite.clone(), dest.peer, dest.auth));
        self.to_shard(ShardCmd::Adopt {
            call_id: invite.call_id().unwrap_or("").to_owned(),
            call: ctx.address(),
        });
        self.to_shard(ShardCmd::Request {
            peer: dest.peer,
            req: invite,
            owner: ctx.address().recipient(),
        });
    }
}

impl Call {
    /// A 3xx from leg B's trunk (RFC 3261 §8.1.3.4): with the trunk's
    /// `redirects = "follow"`, the Contact's number is called through the
    /// same trunk if the calling user may call it by a route to that trunk
    /// (at most 3 times). False: the call fails as before.
    pub(super) fn follow_redirect(&mut self, resp: &Response, ctx: &mut Context<Self>) -> bool {
        let Some(trunk) = self.trunk_out.clone() else {
            return false;
        };
        let cfg = self.switch.config();
        let follow = cfg
            .trunk(&trunk)
            .and_then(|t| t.outbound.as_ref())
            .is_some_and(|o| o.redirects == config::Redirects::Follow);
        let Some(Source::User(user)) = self.source.clone() else {
            return false;
        };
        if !follow || self.redirects >= 3 || self.cancelled || self.phase == Phase::Ending {
            return false;
        }
        let number = match resp.contacts() {
            Ok(sip::Contacts::List(l)) => l.iter().find_map(|c| {
                c.uri
                    .sip()
                    .and_then(|u| u.user_decoded().map(|u| u.into_owned()))
            }),
            _ => None,
        };
        let Some(number) =
            number.filter(|n| !n.is_empty() && n.len() <= 64 && n.chars().all(dialable))
        else {
            return false;
        };
        let allowed = cfg
            .route_for(&number, config::RouteSource::Users)
            .is_some_and(|r| {
                let (t, _) = cfg.target_at(r, self.switch.now());
                *t == RouteTarget::Trunk(trunk.clone()) && cfg.permits(&user, r, t).is_ok()
            });
        if !allowed {
            tracing::info!(call_id = %self.call_id_a(), %trunk, %number, "redirect not followed: not a number the caller may call through this trunk");
            return false;
        }
        let Ok(mut dests) = self.trunk_dests(&trunk, &number) else {
            return false;
        };
        if dests.is_empty() {
            return false;
        }
        let dest = dests.remove(0);
        let Some(mut old) = self.b.take() else {
            return false;
        };
        old.failed = true;
        self.redirects += 1;
        tracing::info!(call_id = %self.call_id_a(), %trunk, code = resp.code, %number, "following the carrier's redirect");
        self.switch.publish(
            "call.redirect",
            serde_json::json!({"call_id": self.call_id_a(), "trunk": trunk, "code": resp.code, "to": number}),
        );
        let mf = cfg.calls.max_forwards;
        self.call_b_again(old, dest, &number, &Source::User(user), mf, ctx);
        self.destination = Some(number);
        true
    }
}

/// Orders gateways for a call: by priority, and within a priority a
/// weighted random order (`rand01` gives numbers in [0, 1)).
fn order(gws: &mut Vec<config::Gateway>, mut rand01: impl FnMut() -> f64) {
    let mut out = Vec::with_capacity(gws.len());
    gws.sort_by_key(|g| g.priority);
    while !gws.is_empty() {
        let p = gws[0].priority;
        let n = gws.iter().take_while(|g| g.priority == p).count();
        let mut group: Vec<config::Gateway> = gws.drain(..n).collect();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|g| u64::from(g.weight.max(1))).sum();
            let mut pick = (rand01() * total as f64) as u64;
            let i = group
                .iter()
                .position(|g| {
                    let w = u64::from(g.weight.max(1));
                    if pick < w {
                        return true;
                    }
                    pick -= w;
                    false
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(i));
        }
    }
    *gws = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(port: u16, priority: u32, weight: u32) -> config::Gateway {
        config::Gateway {
            host: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            priority,
            weight,
        }
    }

    #[test]
    fn gateways_go_by_priority_then_weight() {
        let ports = |v: &[config::Gateway]| v.iter().map(|g| g.host.port()).collect::<Vec<_>>();
        let mut v = vec![gw(3, 2, 1), gw(1, 1, 1), gw(2, 1, 1)];
        order(&mut v, || 0.0);
        assert_eq!(ports(&v), [1, 2, 3]);
        let mut v = vec![gw(3, 2, 1), gw(1, 1, 1), gw(2, 1, 1)];
        order(&mut v, || 0.99);
        assert_eq!(ports(&v), [2, 1, 3]);
        // Weight 3 against 1: first three times in four.
        let mut seed = 0u64;
        let mut firsts = [0; 2];
        for _ in 0..4000 {
            let mut v = vec![gw(1, 1, 3), gw(2, 1, 1)];
            order(&mut v, || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 11) as f64 / (1u64 << 53) as f64
            });
            firsts[usize::from(v[0].host.port() - 1)] += 1;
        }
        assert!((2800..3200).contains(&firsts[0]), "{firsts:?}");
    }
}
