//! The single-threaded, edge-triggered epoll loop of one load generator process: ramps its share
//! of connections (paced by --rate, bounded in-flight connects, free-memory guard, ramp timeout),
//! synchronises with the coordinator, runs the scenario's measurement (hold, fan-out publishing
//! open or closed loop, churn cycles, ping, admin requests), reads the server's CPU time at the
//! start and end of the measurement (--pid), has the coordinator take the periodic memory samples,
//! sweeps timeouts once a second, and always stops by its hard deadline. Depends on every connection-level module; nothing depends on it but main
//! and parent.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;

use crate::admin;
use crate::conn::{split_token, token, Phase, Role, Slab};
use crate::coord::{Coord, STDIN_TOKEN};
use crate::env::{Action, Env, SignDone};
use crate::events;
use crate::pinger;
use crate::plan::{Plan, Scenario};
use crate::procfs;
use crate::pump::{self, SignRequest, Work};
use crate::samples;
use crate::stats::{ErrorKind, Stats};
use crate::sys::{self, Epoll, Ready};

/// Connections of the ramp that may be connecting (or signing) at once.
const MAX_PENDING: u64 = 512;
const EVENTS: usize = 1024;
const SCRATCH: usize = 64 * 1024;
const NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Ramp,
    Ready,
    Measure,
    Done,
}

pub struct Runner {
    plan: Plan,
    coord: Coord,
    epoll: Epoll,
    slab: Slab,
    stats: Stats,
    scratch: Vec<u8>,
    req: Vec<u8>,
    signed: Vec<SignDone>,
    sign_queue: VecDeque<SignRequest>,
    admin: Vec<u32>,
    admin_retry_ns: u64,
    stage: Stage,
    start_ns: u64,
    /// Connections (churn: cycles) started so far.
    started: u64,
    ramp_pending: u64,
    /// Fan-out pushes or admin-scenario requests started so far.
    published: u64,
    /// A closed-loop fan-out reached --duration and stopped publishing.
    capped: bool,
    guard: bool,
    next_tick_ns: u64,
}

impl Runner {
    pub fn new(plan: Plan, coord: Coord) -> io::Result<Runner> {
        let cap = plan.capacity() as usize + plan.admin_conns;
        Ok(Runner {
            epoll: Epoll::new()?,
            slab: Slab::new(cap),
            stats: Stats::default(),
            scratch: vec![0; SCRATCH],
            req: Vec::with_capacity(4096),
            signed: Vec::new(),
            sign_queue: VecDeque::new(),
            admin: Vec::new(),
            admin_retry_ns: 0,
            stage: Stage::Ramp,
            start_ns: 0,
            started: 0,
            ramp_pending: 0,
            published: 0,
            capped: false,
            guard: false,
            next_tick_ns: 0,
            plan,
            coord,
        })
    }

    /// Runs the whole scenario for this process and returns what it counted.
    pub fn run(mut self) -> io::Result<(Stats, Coord)> {
        self.coord.register(&self.epoll)?;
        let start = sys::now_ns();
        self.start_ns = start;
        self.next_tick_ns = start; // first tick at once: the memory guard applies before any connect
        self.stats.c.target = self.plan.count;
        self.stats.c.ramp_start_ns = start;
        let deadline = start.saturating_add(self.plan.hard_deadline_ns());
        let mut raw = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        let mut ready: Vec<Ready> = Vec::with_capacity(EVENTS);
        while self.stage != Stage::Done {
            let now = sys::now_ns();
            if now >= deadline || self.coord.aborted() {
                break;
            }
            if now >= self.next_tick_ns {
                self.tick(now);
                self.next_tick_ns = now + NS;
            }
            let stage = match self.stage {
                Stage::Ramp | Stage::Ready => samples::Stage::Ramp,
                Stage::Measure | Stage::Done => samples::Stage::Measure,
            };
            self.coord.sample(&self.stats.c, now, stage);
            self.advance(now);
            if self.stage == Stage::Done {
                break;
            }
            self.pump_admin(now);
            let timeout = self.wait_ms(now);
            self.epoll.wait(&mut raw, &mut ready, timeout)?;
            let now = sys::now_ns();
            for r in &ready {
                self.dispatch(*r, now);
            }
            self.apply_signed(now);
        }
        let now = sys::now_ns();
        let c = &mut self.stats.c;
        if c.ramp_end_ns == 0 {
            c.ramp_end_ns = now;
            c.held_at_ready = c.held;
        }
        if c.measure_end_ns == 0 {
            self.end_measure(now);
        }
        self.coord.finish(&self.stats);
        let stats = std::mem::take(&mut self.stats);
        Ok((stats, self.coord))
    }

    /// Handler context plus the slab and scratch buffer, borrowed side by side.
    fn parts(&mut self, now: u64) -> (Env<'_>, &mut Slab, &mut [u8]) {
        let measuring = self.stage == Stage::Measure;
        let Runner {
            plan,
            stats,
            req,
            signed,
            ramp_pending,
            slab,
            scratch,
            ..
        } = self;
        let env = Env {
            plan,
            stats,
            now,
            measuring,
            req,
            signed,
            ramp_pending,
        };
        (env, slab, scratch)
    }

    fn advance(&mut self, now: u64) {
        match self.stage {
            Stage::Ramp if self.plan.scenario == Scenario::Churn => {
                self.stats.c.ramp_end_ns = now;
                self.begin_measure(now);
            }
            Stage::Ramp => {
                let timed_out = now.saturating_sub(self.start_ns) >= self.plan.ramp_timeout_ns;
                if !self.guard && !timed_out {
                    self.start_more(now);
                }
                let all_started = self.started >= self.plan.count || self.guard || timed_out;
                let pool_ready = !self.plan.publisher || self.admin_open() >= self.plan.admin_conns;
                if all_started && ((self.ramp_pending == 0 && pool_ready) || timed_out) {
                    let c = &mut self.stats.c;
                    c.ramp_end_ns = now;
                    c.held_at_ready = c.held;
                    self.coord.ready(&self.stats.c);
                    self.stage = Stage::Ready;
                }
            }
            Stage::Ready => {
                if self.coord.go() {
                    self.begin_measure(now);
                }
            }
            Stage::Measure => {
                if self.plan.scenario == Scenario::Churn && !self.guard {
                    self.start_churn(now);
                }
                self.check_publish_cap(now);
                if self.measure_done(now) {
                    self.end_measure(now);
                    self.stage = Stage::Done;
                }
            }
            Stage::Done => {}
        }
    }

    /// How many starts the --rate allows by now (unlimited when 0).
    fn allowed_by_rate(&self, now: u64) -> u64 {
        if self.plan.rate == 0 {
            return u64::MAX;
        }
        let elapsed = u128::from(now.saturating_sub(self.start_ns));
        (u128::from(self.plan.rate) * elapsed / u128::from(NS)) as u64 + 1
    }

    fn start_more(&mut self, now: u64) {
        let allowed = self.allowed_by_rate(now);
        while self.started < self.plan.count
            && self.started < allowed
            && self.ramp_pending < MAX_PENDING
            && !self.slab.is_full()
        {
            let index = self.plan.first + self.started;
            self.started += 1;
            self.start_one(index, now, true);
        }
    }

    fn start_churn(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.stats.c.measure_start_ns);
        if elapsed >= self.plan.measure_ns {
            return;
        }
        let allowed = if self.plan.rate == 0 {
            u64::MAX
        } else {
            let e = u128::from(elapsed);
            (u128::from(self.plan.rate) * e / u128::from(NS)) as u64 + 1
        };
        while self.started < allowed
            && (self.slab.live() as u64) < MAX_PENDING
            && !self.slab.is_full()
        {
            let index = self.started;
            self.started += 1;
            self.start_one(index, now, false);
        }
    }

    fn start_one(&mut self, index: u64, now: u64, ramping: bool) {
        let role = if self.plan.scenario == Scenario::Ping {
            Role::Ping
        } else {
            Role::Subscriber
        };
        let Some(slot) = self.slab.alloc(role) else {
            return;
        };
        let Some(conn) = self.slab.slot_mut(slot) else {
            return;
        };
        conn.index = index;
        conn.started_ns = now;
        conn.since_ns = now;
        conn.sub.ramping = ramping;
        if ramping {
            self.ramp_pending += 1;
        }
        if role == Role::Subscriber && self.plan.sign {
            conn.phase = Phase::WaitSign;
            let gen = conn.gen;
            let channel = self.plan.channel_of(index);
            self.sign_queue
                .push_back(SignRequest { slot, gen, channel });
        } else {
            self.open_socket(slot, now);
        }
    }

    /// Starts the connect for a slot (front port, or admin port for the admin pool).
    fn open_socket(&mut self, slot: u32, now: u64) {
        let Some(conn) = self.slab.slot_mut(slot) else {
            return;
        };
        let (dst, src) = match conn.role {
            Role::Admin => (self.plan.admin_for(conn.index), None),
            _ => (
                self.plan.front_for(conn.index),
                self.plan.sources.pick(conn.index),
            ),
        };
        let failed = match sys::start_connect(dst, src) {
            Ok(stream) => {
                let tok = token(slot, conn.gen);
                match self
                    .epoll
                    .add(stream.as_raw_fd(), sys::SOCKET_INTEREST, tok)
                {
                    Ok(()) => {
                        conn.stream = Some(stream);
                        conn.phase = Phase::Connecting;
                        conn.since_ns = now;
                        false
                    }
                    Err(_) => true,
                }
            }
            Err(_) => true,
        };
        if failed {
            self.close(slot, Some(ErrorKind::Connect), now);
        }
    }

    fn dispatch(&mut self, ready: Ready, now: u64) {
        if ready.token == STDIN_TOKEN {
            self.coord.on_stdin();
            return;
        }
        let (slot, gen) = split_token(ready.token);
        let action = {
            let (mut env, slab, scratch) = self.parts(now);
            let Some(conn) = slab.get_mut(slot, gen) else {
                return; // stale event for a slot reused in this batch
            };
            events::on_ready(conn, ready, &mut env, scratch)
        };
        self.apply(slot, action, now);
    }

    fn apply(&mut self, slot: u32, action: Action, now: u64) {
        match action {
            Action::Keep => {}
            Action::Close(err) => self.close(slot, err, now),
            Action::Reconnect => self.reconnect(slot, now),
        }
    }

    fn close(&mut self, slot: u32, err: Option<ErrorKind>, now: u64) {
        let role = {
            let (mut env, slab, _) = self.parts(now);
            let Some(conn) = slab.slot_mut(slot) else {
                return;
            };
            if conn.role == Role::Free {
                return;
            }
            if let Some(e) = err {
                env.stats.error(e);
            }
            if conn.sub.held {
                env.stats.c.drop_held();
            }
            if conn.sub.ramping {
                *env.ramp_pending = env.ramp_pending.saturating_sub(1);
            }
            if conn.role == Role::Admin {
                admin::fail_jobs(conn, &mut env);
            }
            conn.role
        };
        self.slab.release(slot);
        if role == Role::Admin {
            self.admin.retain(|&s| s != slot);
        }
    }

    /// Replaces the socket of a slot whose server ended the connection cleanly.
    fn reconnect(&mut self, slot: u32, now: u64) {
        let Some(conn) = self.slab.slot_mut(slot) else {
            return;
        };
        if conn.sub.held {
            conn.sub.held = false;
            self.stats.c.drop_held();
        }
        conn.drop_socket();
        conn.jobs.clear();
        self.stats.c.reconnects += 1;
        self.slab.bump_gen(slot);
        self.open_socket(slot, now);
    }

    fn apply_signed(&mut self, now: u64) {
        if self.signed.is_empty() {
            return;
        }
        let mut done = std::mem::take(&mut self.signed);
        for d in done.drain(..) {
            let Some(conn) = self.slab.get_mut(d.slot, d.gen) else {
                continue;
            };
            if conn.phase != Phase::WaitSign {
                continue;
            }
            match d.token {
                Ok(t) => {
                    conn.sub.token = Some(t);
                    self.open_socket(d.slot, now);
                }
                Err(e) => self.close(d.slot, Some(e), now),
            }
        }
        if self.signed.is_empty() {
            self.signed = done;
        }
    }

    /// Fan-out pushes or admin requests that may start now: open loop, what --msg-rate makes due
    /// by now; closed loop and admin, all that remain until the time is up (--in-flight bounds
    /// how many of them are sent at once).
    fn publish_budget(&self, now: u64) -> u64 {
        if !self.plan.publisher || self.stage != Stage::Measure || self.capped {
            return 0;
        }
        let elapsed = now.saturating_sub(self.stats.c.measure_start_ns);
        let due = match self.plan.scenario {
            Scenario::Fanout if self.plan.msg_rate > 0 => {
                let due = u128::from(self.plan.msg_rate) * u128::from(elapsed) / u128::from(NS);
                (due as u64).saturating_add(1).min(self.plan.messages)
            }
            Scenario::Fanout => self.plan.messages,
            _ if elapsed >= self.plan.measure_ns => 0,
            _ => self.plan.requests,
        };
        due.saturating_sub(self.published)
    }

    /// A closed-loop fan-out that reaches --duration before --messages stops publishing; a single
    /// process then expects only the deliveries of the messages it did publish.
    fn check_publish_cap(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.stats.c.measure_start_ns);
        if !self.plan.closed_loop()
            || !self.plan.publisher
            || self.capped
            || self.published >= self.plan.messages
            || elapsed < self.plan.measure_ns
        {
            return;
        }
        self.capped = true;
        self.stats.c.publish_capped = true;
        if self.plan.worker.is_none() {
            self.stats.c.expected_deliveries = self.expected_deliveries(self.published);
        }
    }

    /// Deliveries the held subscribers should get when the first `sent` messages are published.
    fn expected_deliveries(&self, sent: u64) -> u64 {
        let mut expected = 0;
        for slot in 0..self.slab.slots() {
            if let Some(conn) = self.slab.get(slot) {
                if conn.role == Role::Subscriber && conn.sub.held {
                    let channel = self.plan.channel_of(conn.index);
                    expected += self.plan.messages_for_channel_of(sent, channel);
                }
            }
        }
        expected
    }

    /// Admin connections of the pool that are connected.
    fn admin_open(&self) -> usize {
        self.admin
            .iter()
            .filter(|&&s| {
                self.slab
                    .get(s)
                    .is_some_and(|c| c.role == Role::Admin && c.phase == Phase::Open)
            })
            .count()
    }

    /// Keeps the admin pool open and feeds it /sign and /push requests.
    fn pump_admin(&mut self, now: u64) {
        if !self.plan.needs_admin() {
            return;
        }
        if self.admin.len() < self.plan.admin_conns && now >= self.admin_retry_ns {
            self.admin_retry_ns = now + NS;
            while self.admin.len() < self.plan.admin_conns {
                let Some(slot) = self.slab.alloc(Role::Admin) else {
                    break;
                };
                // Its place in the pool picks its admin address (several: taken in turn).
                if let Some(conn) = self.slab.slot_mut(slot) {
                    conn.index = self.admin.len() as u64;
                }
                self.admin.push(slot);
                self.open_socket(slot, now);
            }
        }
        let budget = self.publish_budget(now);
        let failed = {
            let measuring = self.stage == Stage::Measure;
            let Runner {
                plan,
                slab,
                stats,
                req,
                signed,
                ramp_pending,
                sign_queue,
                admin,
                published,
                ..
            } = self;
            let mut buf = std::mem::take(req);
            let mut env = Env {
                plan,
                stats,
                now,
                measuring,
                req,
                signed,
                ramp_pending,
            };
            let mut work = Work {
                signs: sign_queue,
                started: published,
                budget,
            };
            let failed = pump::fill(admin, slab, &mut env, &mut work, &mut buf);
            *env.req = buf;
            failed
        };
        for (slot, e) in failed {
            self.close(slot, Some(e), now);
        }
    }

    fn begin_measure(&mut self, now: u64) {
        self.stage = Stage::Measure;
        let c = &mut self.stats.c;
        c.measure_start_ns = now;
        if !self.plan.pid.is_empty() {
            c.server_cpu_start_each = procfs::each(&self.plan.pid, procfs::process_cpu_us);
            c.server_cpu_start_us = procfs::sum_each(&c.server_cpu_start_each);
            c.server_cpu_start_ns = sys::now_ns();
        }
        match self.plan.scenario {
            Scenario::Fanout => {
                self.stats.c.expected_deliveries = self.expected_deliveries(self.plan.messages);
            }
            Scenario::Ping => {
                let mut failed = Vec::new();
                {
                    let (mut env, slab, _) = self.parts(now);
                    for slot in 0..slab.slots() {
                        let Some(conn) = slab.slot_mut(slot) else {
                            continue;
                        };
                        if conn.role == Role::Ping && conn.phase == Phase::Open {
                            let n = env.plan.pipeline;
                            if let Err(e) = pinger::send_pings(conn, &mut env, n) {
                                failed.push((slot, e));
                            }
                        }
                    }
                }
                for (slot, e) in failed {
                    self.close(slot, Some(e), now);
                }
            }
            Scenario::Connect | Scenario::Churn | Scenario::Admin => {}
        }
    }

    /// The measurement is over: its end time and the server's CPU time (before any connection of
    /// this process closes, so the server's work on closing is not counted).
    fn end_measure(&mut self, now: u64) {
        let c = &mut self.stats.c;
        c.measure_end_ns = now;
        if c.server_cpu_start_us.is_some() {
            c.server_cpu_end_each = procfs::each(&self.plan.pid, procfs::process_cpu_us);
            c.server_cpu_end_us = procfs::sum_each(&c.server_cpu_end_each);
            c.server_cpu_end_ns = sys::now_ns();
        }
        if !self.plan.pid.is_empty() {
            c.server_rss_end_each = procfs::each(&self.plan.pid, procfs::process_rss);
            c.server_rss_end = procfs::sum_each(&c.server_rss_end_each);
        }
    }

    fn measure_done(&self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.stats.c.measure_start_ns);
        match self.plan.scenario {
            Scenario::Connect | Scenario::Ping | Scenario::Churn => elapsed >= self.plan.measure_ns,
            Scenario::Admin => {
                let c = &self.stats.c;
                c.requests + c.requests_failed >= self.plan.requests
                    || elapsed >= self.plan.measure_ns
            }
            Scenario::Fanout => {
                let c = &self.stats.c;
                let to_publish = if self.capped {
                    self.published
                } else {
                    self.plan.messages
                };
                let published = !self.plan.publisher || c.pushes_ok + c.pushes_failed >= to_publish;
                let delivered = c.unique_deliveries >= c.expected_deliveries;
                (published && delivered)
                    || elapsed >= self.plan.measure_ns.saturating_add(self.plan.drain_ns)
            }
        }
    }

    /// Once a second: memory guard, timeouts, progress.
    fn tick(&mut self, now: u64) {
        let ramping = self.stage == Stage::Ramp
            || (self.stage == Stage::Measure && self.plan.scenario == Scenario::Churn);
        if ramping && !self.guard {
            if let Some(avail) = procfs::mem_available() {
                if avail < self.plan.min_free_bytes {
                    self.guard = true;
                    self.stats.c.memory_guard_hit = true;
                }
            }
        }
        let mut stuck = Vec::new();
        for slot in 0..self.slab.slots() {
            let Some(conn) = self.slab.get(slot) else {
                continue;
            };
            let waiting = match conn.phase {
                Phase::Connecting | Phase::AwaitHead => conn.role != Role::Free,
                Phase::Open => conn.role != Role::Subscriber && !conn.jobs.is_empty(),
                Phase::WaitSign => false,
            };
            if waiting && now.saturating_sub(conn.since_ns) > self.plan.timeout_ns {
                stuck.push(slot);
            }
        }
        for slot in stuck {
            self.close(slot, Some(ErrorKind::Timeout), now);
        }
        self.coord.progress(&self.stats.c, now);
    }

    fn wait_ms(&self, now: u64) -> i32 {
        let paced = match self.stage {
            Stage::Ramp => self.plan.rate > 0 && self.started < self.plan.count,
            Stage::Measure => self.plan.publisher || self.plan.scenario == Scenario::Churn,
            Stage::Ready | Stage::Done => false,
        };
        let base: u64 = if paced { 1 } else { 50 };
        let to_tick = self.next_tick_ns.saturating_sub(now) / 1_000_000 + 1;
        let to_sample = self
            .coord
            .next_sample_ns()
            .map_or(u64::MAX, |t| t.saturating_sub(now) / 1_000_000 + 1);
        base.min(to_tick).min(to_sample) as i32
    }
}
