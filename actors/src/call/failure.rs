//! Supervision of one call. A call actor that panics is dropped by its
//! arbiter; actix then stops it, so `stopped` runs with the call still up.
//! [`Call::release`] notices (a leg with a live dialog, or a caller without
//! a final response) and ends the call as cleanly as a hang-up: 500 to an
//! unanswered caller, BYE to every leg with a dialog, CANCEL to a ringing
//! one, the CDR with reason "internal error". Then, as after any call, the
//! registry, room, media and shard entries are released. Nothing else in
//! the switch is touched. `Drop` covers an actor dropped without `stopped`.

use super::*;

/// Fault injection for tests (the control socket's `debug.panic_call`,
/// only when the switch runs with `SWITCHBOARD_FAULTS=1`): the call actor
/// panics.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

impl Handler<InjectPanic> for Call {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, _: &mut Context<Self>) {
        panic!("injected fault in call {}", self.call_id_a());
    }
}

impl Call {
    /// The call is still up somewhere: a caller without a final response
    /// or a leg whose dialog was never ended.
    fn still_up(&self) -> bool {
        let live = |leg: Leg, dialog: bool| dialog && !self.ended[leg as usize];
        // Click-to-call: the user's phone still ringing.
        let ringing_a = self.originated && !self.a_final && self.a_provisional;
        !self.a.final_sent
            || ringing_a
            || live(Leg::A, self.a.dialog.is_some())
            || live(Leg::B, self.b.as_ref().is_some_and(|b| b.dialog.is_some()))
            || live(Leg::C, self.c.as_ref().is_some_and(|c| c.dialog.is_some()))
    }

    /// Ends every leg still up, with requests nobody waits for.
    fn end_legs_now(&mut self) {
        if !self.a.final_sent {
            self.a.final_sent = true;
            let r = response_to(&self.a.invite, 500, Some(&self.a.tag));
            self.respond(self.a.tx, r);
        }
        for leg in [Leg::A, Leg::B, Leg::C] {
            if std::mem::replace(&mut self.ended[leg as usize], true) {
                continue;
            }
            let Some(peer) = self.peer_of(leg) else {
                continue;
            };
            let via = self.switch.via(peer);
            let cancelled = self.cancelled;
            let ringing_a = leg == Leg::A && self.originated && !self.a_final && self.a_provisional;
            let req = match self.dialog_mut(leg) {
                Some(d) => d.request(Method::Bye, &via, 70),
                None if ringing_a => cancel_for(&self.a.invite),
                None => match self.out_mut(leg) {
                    Some(out) if out.provisional && !cancelled => cancel_for(&out.invite),
                    _ => continue,
                },
            };
            self.to_shard(ShardCmd::Detached { peer, req });
        }
        for r in self.ringer_legs().filter(|r| r.provisional && !r.failed) {
            let (peer, req) = (r.peer, cancel_for(&r.invite));
            self.to_shard(ShardCmd::Detached { peer, req });
        }
        if let Some(a) = &self.anchor {
            if self.rec != Rec::Off {
                a.session.stop_recording();
            }
        }
    }

    /// The actor is ending (`me`: its address, None from `Drop`): a call
    /// still up is ended here (the actor failed), then its CDR is written
    /// if not yet, and everything it held is released.
    pub(super) fn release(&mut self, me: Option<Addr<Call>>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.still_up() {
            tracing::error!(call_id = %self.call_id_a(), "call actor failed: ending its call");
            self.switch
                .metrics
                .actor_failures
                .with_label_values(&["call"])
                .inc();
            self.end_reason = Some("internal error".into());
            self.end_legs_now();
        }
        if !self.cdr_written && self.source.is_some() {
            self.cdr_written = true;
            let cdr = self.cdr();
            self.switch.records.write_later(cdr.ops());
            self.ended_call(&cdr);
        }
        // Only our own entry: a re-sent INVITE (after a 407) is a new actor
        // with the same Call-ID.
        let id = self.call_id_a();
        self.switch
            .calls
            .remove_if(&id, |_, e| me.as_ref().is_none_or(|me| e.addr == *me));
        self.leave_room();
        for t in std::mem::take(&mut self.trunk_slots) {
            self.switch.trunk_release(&t);
        }
        // Per shard: the Call-IDs and transactions of the legs it handles
        // (a leg taken over from another call may be on another shard).
        let mut forget: HashMap<usize, (Vec<String>, Vec<TxId>)> = HashMap::new();
        let own = self.shard_index;
        let e = forget.entry(own).or_default();
        if !self.a_moved {
            e.0.push(id);
        }
        // Legs that replaced A came from other calls' INVITEs to us or ours.
        let mut replaced = std::mem::take(&mut self.old_a_ids);
        if self.orig_a.is_some() && !self.a_moved {
            // (A moved leg A is another call's now.)
            replaced.push(self.a.invite.call_id().unwrap_or("").to_owned());
        }
        for call_id in replaced {
            forget
                .entry(self.shard_of_leg(Some(&call_id)))
                .or_default()
                .0
                .push(call_id);
        }
        for (shard, tx) in std::mem::take(&mut self.kept_txs) {
            forget.entry(shard).or_default().1.push(tx);
        }
        let outs: Vec<(String, Option<TxId>)> = self
            .b
            .iter()
            .chain(&self.c)
            .chain(&self.c_done)
            .chain(self.ringer_legs())
            .map(|out| (out.invite.call_id().unwrap_or("").to_owned(), out.tx))
            .collect();
        for (call_id, tx) in outs {
            let e = forget.entry(self.shard_of_leg(Some(&call_id))).or_default();
            e.1.extend(tx);
            e.0.push(call_id);
        }
        for (shard, (call_ids, txs)) in forget {
            let cmd = ShardCmd::Forget {
                call_ids,
                txs,
                ends_call: shard == own,
            };
            match self.switch.shards.get().and_then(|all| all.get(shard)) {
                Some(s) if shard != own => s.do_send(cmd),
                _ => self.shard.do_send(cmd),
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.release(None);
    }
}
