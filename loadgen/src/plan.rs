//! What one process does: turns the parsed command line into a `Plan` (addresses resolved,
//! durations in ns, this process's share of the connections, per-process rate), and decides how
//! many processes the run needs under the open-file limit. Depends on cli and sources.

use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};

use crate::cli::{AdminOp, Command, SubscriberArgs, Transport};
use crate::sources::Sources;

/// Descriptors kept aside per process for stdio, epoll, pipes and slack.
pub const FD_MARGIN: u64 = 32;
const NS: u64 = 1_000_000_000;
/// Slack added to the computed run time before the hard deadline ends the run regardless.
const DEADLINE_SLACK_NS: u64 = 30 * NS;
/// Admin requests in flight per admin connection unless --in-flight says otherwise.
pub const DEFAULT_IN_FLIGHT_PER_CONN: usize = 16;
/// Most admin requests in flight on one admin connection.
pub const MAX_IN_FLIGHT_PER_CONN: usize = 1024;
/// Longest message content (it travels in the request line).
pub const MAX_MSG_SIZE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Connect,
    Fanout,
    Churn,
    Ping,
    Admin,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::Fanout => "fanout",
            Scenario::Churn => "churn",
            Scenario::Ping => "ping",
            Scenario::Admin => "admin",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: Scenario,
    /// The first front and admin addresses (the `Host` header; a lone server's ports).
    pub front: SocketAddrV4,
    pub admin: SocketAddrV4,
    /// Every front and admin address given (several: a cluster's nodes); see `front_for`.
    pub fronts: Vec<SocketAddrV4>,
    pub admins: Vec<SocketAddrV4>,
    pub transport: Transport,
    /// Connections over all processes (subscribers, or ping connections).
    pub total: u64,
    /// This process's share: global indices `first .. first + count`.
    pub first: u64,
    pub count: u64,
    pub per_channel: u64,
    /// Channels over all processes.
    pub channels: u64,
    pub prefix: String,
    pub sign: bool,
    /// Length of the measurement: hold (connect), run time (ping, churn, admin), publish span
    /// (fanout at --msg-rate) or its upper bound (closed-loop fanout).
    pub measure_ns: u64,
    pub messages: u64,
    /// Pushes per second; 0 = closed loop (a new push for each reply).
    pub msg_rate: u64,
    /// Bytes of message content (0 = the timestamp only).
    pub msg_size: usize,
    /// This process sends the fan-out pushes or the admin scenario's requests.
    pub publisher: bool,
    /// Admin requests in flight over all admin connections of this process.
    pub in_flight: usize,
    /// What the admin scenario requests.
    pub admin_op: AdminOp,
    /// Requests the admin scenario sends in total (u64::MAX: until the time is up).
    pub requests: u64,
    pub pipeline: usize,
    /// This process's connect (churn: cycle) rate per second; 0 = unlimited.
    pub rate: u64,
    pub ramp_timeout_ns: u64,
    pub timeout_ns: u64,
    pub drain_ns: u64,
    pub min_free_bytes: u64,
    pub admin_conns: usize,
    pub sources: Sources,
    /// Open-file limit this process works under.
    pub fd_limit: u64,
    /// (index, count) when running as a worker process.
    pub worker: Option<(usize, usize)>,
    /// The server's processes (summed), empty without --pid.
    pub pid: Vec<u32>,
    pub json: bool,
    pub quiet: bool,
    pub pin_cpu: Option<usize>,
    /// Milliseconds between memory samples; 0 = none.
    pub sample_interval_ms: u64,
}

fn resolve_v4(what: &str, addr: &str) -> Result<SocketAddrV4, String> {
    let addrs = addr
        .to_socket_addrs()
        .map_err(|e| format!("--{what} {addr}: {e}"))?;
    for a in addrs {
        if let SocketAddr::V4(v4) = a {
            return Ok(v4);
        }
    }
    Err(format!("--{what} {addr}: no IPv4 address"))
}

/// Most addresses one --front or --admin may list.
pub const MAX_ADDRESSES: usize = 64;

/// A comma-separated list of addresses, each resolved as [`resolve_v4`] does.
fn resolve_list(what: &str, list: &str) -> Result<Vec<SocketAddrV4>, String> {
    let addrs = list
        .split(',')
        .map(|a| resolve_v4(what, a.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.len() > MAX_ADDRESSES {
        return Err(format!("--{what}: at most {MAX_ADDRESSES} addresses"));
    }
    Ok(addrs)
}

fn check_msg_size(size: usize) -> Result<usize, String> {
    if size <= MAX_MSG_SIZE {
        Ok(size)
    } else {
        Err(format!("--msg-size {size}: at most {MAX_MSG_SIZE}"))
    }
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--channel-prefix {prefix:?}: use letters, digits and -._~ only"
        ))
    }
}

impl Plan {
    /// Builds the plan for this process; `nofile` is the current soft RLIMIT_NOFILE.
    pub fn new(cmd: &Command, nofile: u64) -> Result<Plan, String> {
        let common = cmd.common();
        let fronts = resolve_list("front", &common.front)?;
        let admins = resolve_list("admin", &common.admin)?;
        let (front, admin) = (fronts[0], admins[0]);
        let fd_limit = common.fd_limit.unwrap_or(nofile).min(nofile);
        let admin_default = if matches!(cmd, Command::Admin(_)) {
            1
        } else {
            4
        };
        let admin_conns = common.admin_conns.unwrap_or(admin_default).clamp(1, 64);
        let in_flight = common
            .in_flight
            .unwrap_or(DEFAULT_IN_FLIGHT_PER_CONN * admin_conns)
            .clamp(1, MAX_IN_FLIGHT_PER_CONN * admin_conns);
        let mut plan = Plan {
            scenario: Scenario::Connect,
            front,
            admin,
            fronts,
            admins,
            transport: Transport::Poll,
            total: 0,
            first: 0,
            count: 0,
            per_channel: 1,
            channels: 1,
            prefix: String::new(),
            sign: false,
            measure_ns: common.duration.saturating_mul(NS),
            messages: 0,
            msg_rate: 0,
            msg_size: 0,
            publisher: false,
            in_flight,
            admin_op: AdminOp::Push,
            requests: 0,
            pipeline: 1,
            rate: common.rate,
            ramp_timeout_ns: common.ramp_timeout.saturating_mul(NS),
            timeout_ns: common.timeout.max(1).saturating_mul(NS),
            drain_ns: common.drain.saturating_mul(NS),
            min_free_bytes: common.min_free_mb.saturating_mul(1 << 20),
            admin_conns,
            sources: Sources::default(),
            fd_limit,
            worker: None,
            pid: common.pid.clone(),
            json: common.json,
            quiet: common.quiet,
            pin_cpu: common.pin_cpu,
            sample_interval_ms: common.sample_interval_ms,
        };
        match cmd {
            Command::Connect(a) => {
                plan.scenario = Scenario::Connect;
                plan.subscribers(&a.subs)?;
                if let Some(hold) = a.hold {
                    plan.measure_ns = hold.saturating_mul(NS);
                }
            }
            Command::Fanout(a) => {
                plan.scenario = Scenario::Fanout;
                plan.subscribers(&a.subs)?;
                plan.messages = a.messages;
                plan.msg_rate = a.msg_rate;
                plan.msg_size = check_msg_size(a.msg_size)?;
                if let Some(span) = a.messages.saturating_mul(NS).checked_div(a.msg_rate) {
                    plan.measure_ns = span;
                }
            }
            Command::Churn(a) => {
                plan.scenario = Scenario::Churn;
                check_prefix(&a.channel_prefix)?;
                plan.transport = a.transport;
                plan.prefix = a.channel_prefix.clone();
                plan.channels = a.channels.max(1);
                plan.total = plan.capacity();
            }
            Command::Ping(a) => {
                plan.scenario = Scenario::Ping;
                plan.total = a.conns;
                plan.pipeline = a.pipeline.clamp(1, 64);
            }
            Command::Admin(a) => {
                plan.scenario = Scenario::Admin;
                check_prefix(&a.channel_prefix)?;
                plan.prefix = a.channel_prefix.clone();
                plan.admin_op = a.op;
                plan.requests = a.requests.unwrap_or(u64::MAX);
                plan.msg_size = check_msg_size(a.msg_size)?;
            }
        }
        if plan.capacity() == 0 {
            return Err(format!(
                "fd limit {} leaves no room for connections (needs > {})",
                plan.fd_limit,
                FD_MARGIN + plan.admin_conns as u64
            ));
        }
        plan.sources = match &common.sources {
            Some(spec) => Sources::parse(spec)?,
            None => Sources::auto(front.ip().is_loopback(), plan.total),
        };
        plan.first = 0;
        plan.count = plan.total;
        plan.publisher = matches!(plan.scenario, Scenario::Fanout | Scenario::Admin);
        if let (Some(index), Some(workers)) = (common.worker_index, common.workers) {
            plan.take_share(index, workers)?;
        }
        Ok(plan)
    }

    fn subscribers(&mut self, s: &SubscriberArgs) -> Result<(), String> {
        check_prefix(&s.channel_prefix)?;
        self.transport = s.transport;
        self.total = s.n;
        self.per_channel = s.per_channel.max(1);
        self.channels = s.n.div_ceil(self.per_channel).max(1);
        self.prefix = s.channel_prefix.clone();
        self.sign = s.sign;
        Ok(())
    }

    /// Narrows the plan to worker `index` of `workers`.
    fn take_share(&mut self, index: usize, workers: usize) -> Result<(), String> {
        if workers == 0 || index >= workers {
            return Err(format!("bad worker index {index} of {workers}"));
        }
        let (i, k) = (index as u128, workers as u128);
        let total = u128::from(self.total);
        self.first = (total * i / k) as u64;
        self.count = (total * (i + 1) / k) as u64 - self.first;
        self.rate = self.rate.div_ceil(workers as u64);
        self.publisher = self.scenario == Scenario::Fanout && index == 0;
        self.worker = Some((index, workers));
        Ok(())
    }

    /// Connections one process may hold under its fd limit.
    pub fn capacity(&self) -> u64 {
        self.fd_limit
            .saturating_sub(FD_MARGIN + self.admin_conns as u64)
    }

    /// Processes needed to hold `total` connections (1 for a worker, churn and admin).
    pub fn processes_needed(&self) -> usize {
        if self.worker.is_some() || matches!(self.scenario, Scenario::Churn | Scenario::Admin) {
            return 1;
        }
        let cap = self.capacity().max(1);
        self.total.div_ceil(cap).max(1) as usize
    }

    /// The front address of the subscriber (or ping connection) with this global index: the
    /// addresses taken in turn.
    pub fn front_for(&self, global_index: u64) -> SocketAddrV4 {
        let n = self.fronts.len().max(1) as u64;
        self.fronts
            .get((global_index % n) as usize)
            .copied()
            .unwrap_or(self.front)
    }

    /// The admin address of the admin connection at `position` of the pool, in turn.
    pub fn admin_for(&self, position: u64) -> SocketAddrV4 {
        let n = self.admins.len().max(1) as u64;
        self.admins
            .get((position % n) as usize)
            .copied()
            .unwrap_or(self.admin)
    }

    /// Whether this process needs admin connections.
    pub fn needs_admin(&self) -> bool {
        self.sign || self.publisher
    }

    /// Total time the run may take before it stops regardless.
    pub fn hard_deadline_ns(&self) -> u64 {
        self.ramp_timeout_ns
            .saturating_add(self.measure_ns)
            .saturating_add(self.drain_ns)
            .saturating_add(DEADLINE_SLACK_NS)
    }

    /// Channel number of the subscriber with this global index.
    pub fn channel_of(&self, global_index: u64) -> u64 {
        match self.scenario {
            Scenario::Churn => global_index % self.channels,
            _ => global_index / self.per_channel,
        }
    }

    /// Messages channel `c` gets when the first `sent` messages are published (message i goes to
    /// channel i mod channels).
    pub fn messages_for_channel_of(&self, sent: u64, c: u64) -> u64 {
        let base = sent / self.channels;
        base + u64::from(c < sent % self.channels)
    }

    /// The fan-out publishes closed loop: a new push for each reply, --in-flight at a time.
    pub fn closed_loop(&self) -> bool {
        self.scenario == Scenario::Fanout && self.msg_rate == 0
    }

    /// Requests in flight allowed on the admin connection at `position` of the pool: --in-flight
    /// shared out over --admin-conns, the first ones taking the remainder.
    pub fn in_flight_of(&self, position: usize) -> usize {
        let conns = self.admin_conns.max(1);
        if position >= conns {
            return 0;
        }
        self.in_flight / conns + usize::from(position < self.in_flight % conns)
    }
}

/// Builds a plan from a command line, for tests of the modules that take one.
#[cfg(test)]
pub fn plan_from_args(args: &[&str]) -> Plan {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from(args).expect("args");
    Plan::new(&cli.command, 20_000).expect("plan")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    #[test]
    fn splits_connections_over_processes() {
        let p = plan_from_args(&[
            "lg",
            "connect",
            "-n",
            "300",
            "--fd-limit",
            "150",
            "--rate",
            "100",
        ]);
        assert_eq!(p.capacity(), 150 - FD_MARGIN - 4);
        assert_eq!(p.processes_needed(), 3);
        let w = plan_from_args(&[
            "lg",
            "connect",
            "-n",
            "300",
            "--fd-limit",
            "150",
            "--rate",
            "100",
            "--worker-index",
            "2",
            "--workers",
            "3",
        ]);
        assert_eq!((w.first, w.count, w.rate), (200, 100, 34));
        assert_eq!(w.processes_needed(), 1);
    }

    #[test]
    fn fanout_channels_and_publisher() {
        let p = plan_from_args(&[
            "lg",
            "fanout",
            "-n",
            "100",
            "--per-channel",
            "10",
            "--messages",
            "25",
        ]);
        assert_eq!(p.channels, 10);
        assert_eq!(p.messages_for_channel_of(p.messages, 4), 3);
        assert_eq!(p.messages_for_channel_of(p.messages, 5), 2);
        assert_eq!(p.messages_for_channel_of(12, 1), 2);
        assert_eq!(p.messages_for_channel_of(12, 2), 1);
        assert_eq!(p.channel_of(57), 5);
        assert!(p.publisher);
        let w = plan_from_args(&[
            "lg",
            "fanout",
            "-n",
            "100",
            "--worker-index",
            "1",
            "--workers",
            "2",
        ]);
        assert!(!w.publisher);
    }

    #[test]
    fn in_flight_is_shared_over_admin_connections() {
        let p = plan_from_args(&["lg", "fanout", "-n", "1", "--msg-rate", "0"]);
        assert!(p.closed_loop());
        assert_eq!((p.admin_conns, p.in_flight), (4, 64), "16 per connection");
        assert_eq!(
            p.measure_ns,
            10 * NS,
            "closed loop: --duration bounds publishing"
        );
        let p = plan_from_args(&[
            "lg",
            "fanout",
            "-n",
            "1",
            "--msg-rate",
            "0",
            "--in-flight",
            "32",
            "--admin-conns",
            "1",
        ]);
        assert_eq!((p.in_flight_of(0), p.in_flight_of(1)), (32, 0));
        let p = plan_from_args(&["lg", "admin", "--in-flight", "10", "--admin-conns", "3"]);
        let shares: Vec<usize> = (0..4).map(|i| p.in_flight_of(i)).collect();
        assert_eq!(shares, [4, 3, 3, 0]);
        let open = plan_from_args(&[
            "lg",
            "fanout",
            "-n",
            "1",
            "--messages",
            "50",
            "--msg-rate",
            "10",
        ]);
        assert!(!open.closed_loop());
        assert_eq!(open.measure_ns, 5 * NS);
    }

    #[test]
    fn several_servers_are_taken_in_turn() {
        let p = plan_from_args(&[
            "lg",
            "fanout",
            "-n",
            "7",
            "--front",
            "127.0.0.1:1,127.0.0.1:2, 127.0.0.1:3",
            "--admin",
            "127.0.0.1:11,127.0.0.1:12",
            "--pid",
            "10,11",
            "--pid",
            "12",
        ]);
        let ports: Vec<u16> = (0..7).map(|i| p.front_for(i).port()).collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3, 1]);
        let ports: Vec<u16> = (0..4).map(|k| p.admin_for(k).port()).collect();
        assert_eq!(ports, [11, 12, 11, 12]);
        assert_eq!(
            (p.front.port(), p.admin.port()),
            (1, 11),
            "the first is the Host"
        );
        assert_eq!(p.pid, [10, 11, 12]);
        let one = plan_from_args(&["lg", "connect", "-n", "3"]);
        assert_eq!(one.front_for(2), one.front);
        assert_eq!(one.admin_for(5), one.admin);
        assert!(one.pid.is_empty());
        let cli =
            Cli::try_parse_from(["lg", "ping", "--front", "127.0.0.1:1,nowhere"]).expect("args");
        assert!(Plan::new(&cli.command, 20_000).is_err());
    }

    #[test]
    fn admin_scenario_plan() {
        let p = plan_from_args(&["lg", "admin", "--op", "info", "--requests", "500"]);
        assert_eq!(p.scenario, Scenario::Admin);
        assert_eq!(p.admin_op, AdminOp::Info);
        assert_eq!((p.requests, p.admin_conns, p.in_flight), (500, 1, 16));
        assert!(p.publisher && p.needs_admin());
        assert_eq!((p.total, p.processes_needed()), (0, 1));
        let unbounded = plan_from_args(&["lg", "admin", "--duration", "2"]);
        assert_eq!(unbounded.requests, u64::MAX);
        assert_eq!(unbounded.measure_ns, 2 * NS);
        let cli = Cli::try_parse_from(["lg", "admin", "--msg-size", "5000"]).expect("args");
        assert!(Plan::new(&cli.command, 20_000).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        let cli = Cli::try_parse_from(["lg", "connect", "-n", "1", "--channel-prefix", "a b"])
            .expect("args");
        assert!(Plan::new(&cli.command, 20_000).is_err());
        let cli = Cli::try_parse_from(["lg", "ping", "--fd-limit", "10"]).expect("args");
        assert!(Plan::new(&cli.command, 20_000).is_err());
        let cli = Cli::try_parse_from(["lg", "ping", "--front", "nowhere"]).expect("args");
        assert!(Plan::new(&cli.command, 20_000).is_err());
    }
}
