//! What the admin pool sends next: queued /sign calls first, then fan-out pushes or the admin
//! scenario's requests, as many as the caller's budget allows. Each open admin connection is
//! filled up to its share of --in-flight in one write (so a closed loop keeps exactly that many
//! pipelined), and is skipped while the socket still holds unsent bytes. Depends on admin, conn,
//! env, plan.

use std::collections::VecDeque;

use crate::admin;
use crate::conn::{Job, Phase, Role, Slab, MAX_OUT};
use crate::env::Env;
use crate::plan::Scenario;
use crate::stats::ErrorKind;

/// Largest batch of requests written to one connection in one go.
const MAX_BATCH: usize = MAX_OUT / 2;

/// A subscriber waiting for its /sign call.
#[derive(Clone, Copy, Debug)]
pub struct SignRequest {
    pub slot: u32,
    pub gen: u32,
    pub channel: u64,
}

/// Requests waiting for the admin pool.
pub struct Work<'a> {
    pub signs: &'a mut VecDeque<SignRequest>,
    /// Pushes (fan-out) or requests (admin scenario) started so far; the next one's id.
    pub started: &'a mut u64,
    /// How many more of them may start now.
    pub budget: u64,
}

/// Fills the admin connections in `pool` (slots, in pool order) and returns the ones whose write
/// failed. `buf` is scratch space for the requests.
pub fn fill(
    pool: &[u32],
    slab: &mut Slab,
    env: &mut Env<'_>,
    work: &mut Work<'_>,
    buf: &mut Vec<u8>,
) -> Vec<(u32, ErrorKind)> {
    let mut failed = Vec::new();
    for (position, &slot) in pool.iter().enumerate() {
        let limit = env.plan.in_flight_of(position);
        let Some(conn) = slab.slot_mut(slot) else {
            continue;
        };
        if conn.role != Role::Admin || conn.phase != Phase::Open || !conn.out.is_empty() {
            continue;
        }
        buf.clear();
        let was_idle = conn.jobs.is_empty();
        while conn.jobs.len() < limit && buf.len() < MAX_BATCH {
            if let Some(s) = work.signs.pop_front() {
                admin::write_sign(buf, env, s.channel);
                conn.jobs.push_back(Job::Sign {
                    slot: s.slot,
                    gen: s.gen,
                });
            } else if work.budget > 0 {
                work.budget -= 1;
                let id = *work.started;
                *work.started += 1;
                if env.plan.scenario == Scenario::Admin {
                    admin::write_admin_request(buf, env, id);
                    conn.jobs.push_back(Job::Admin { sent_ns: env.now });
                } else {
                    admin::write_push(buf, env, id);
                    conn.jobs.push_back(Job::Push { id });
                    env.stats.c.pushes_sent += 1;
                }
            } else {
                break;
            }
        }
        if buf.is_empty() {
            continue;
        }
        if was_idle {
            conn.since_ns = env.now;
        }
        if let Err(e) = conn.send(buf) {
            failed.push((slot, e));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvParts;
    use crate::plan::plan_from_args;

    /// An admin connection that is open but has no socket: every write is kept in `out`.
    fn open_admin(slab: &mut Slab) -> u32 {
        let slot = slab.alloc(Role::Admin).expect("slot");
        if let Some(c) = slab.slot_mut(slot) {
            c.phase = Phase::Connecting; // `send` buffers while connecting
        }
        slot
    }

    fn set_phase(slab: &mut Slab, slot: u32, phase: Phase) {
        if let Some(c) = slab.slot_mut(slot) {
            c.phase = phase;
        }
    }

    #[test]
    fn keeps_each_connection_at_its_share_of_in_flight() {
        let plan = plan_from_args(&[
            "lg",
            "admin",
            "--op",
            "sign",
            "--in-flight",
            "5",
            "--admin-conns",
            "2",
        ]);
        let mut parts = EnvParts::default();
        let mut env = parts.env(&plan, 1);
        let mut slab = Slab::new(4);
        let pool = [open_admin(&mut slab), open_admin(&mut slab)];
        for &s in &pool {
            set_phase(&mut slab, s, Phase::Open);
        }
        let (mut signs, mut started, mut buf) = (VecDeque::new(), 0u64, Vec::new());
        let mut work = Work {
            signs: &mut signs,
            started: &mut started,
            budget: 100,
        };
        // No sockets: `send` fails, but the jobs were queued first, which is what is counted.
        let failed = fill(&pool, &mut slab, &mut env, &mut work, &mut buf);
        assert_eq!(failed.len(), 2);
        let jobs: Vec<usize> = pool
            .iter()
            .map(|&s| slab.get(s).map_or(0, |c| c.jobs.len()))
            .collect();
        assert_eq!(jobs, [3, 2]);
        assert_eq!((*work.started, work.budget), (5, 95));
        // Full connections take nothing more.
        assert!(fill(&pool, &mut slab, &mut env, &mut work, &mut buf).is_empty());
        assert_eq!(*work.started, 5);
    }

    #[test]
    fn signs_go_first_and_the_budget_bounds_pushes() {
        let plan = plan_from_args(&["lg", "fanout", "-n", "4", "--admin-conns", "1"]);
        let mut parts = EnvParts::default();
        let mut env = parts.env(&plan, 1);
        let mut slab = Slab::new(2);
        let slot = open_admin(&mut slab);
        set_phase(&mut slab, slot, Phase::Open);
        let mut signs: VecDeque<SignRequest> = (0..2)
            .map(|i| SignRequest {
                slot: 9,
                gen: 0,
                channel: i,
            })
            .collect();
        let (mut started, mut buf) = (0u64, Vec::new());
        let mut work = Work {
            signs: &mut signs,
            started: &mut started,
            budget: 3,
        };
        fill(&[slot], &mut slab, &mut env, &mut work, &mut buf);
        let kinds: Vec<bool> = slab
            .get(slot)
            .map(|c| {
                c.jobs
                    .iter()
                    .map(|j| matches!(j, Job::Sign { .. }))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(kinds, [true, true, false, false, false]);
        assert_eq!(env.stats.c.pushes_sent, 3);
        assert_eq!(work.budget, 0);
    }
}
