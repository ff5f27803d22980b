//! Command-line interface (clap derive): the five scenarios and the flags they share. Only
//! declarations live here; `plan` turns them into what one process does. Depends on clap.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "rcomet-loadgen",
    version,
    about = "Event-driven load generator for iComet-compatible push servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Open and hold N idle subscribers.
    Connect(ConnectArgs),
    /// Hold N subscribers, publish K messages through /push and measure push→deliver latency.
    Fanout(FanoutArgs),
    /// Connect, subscribe, disconnect continuously at --rate cycles per second.
    Churn(ChurnArgs),
    /// GET /ping over keep-alive connections: requests per second and latency.
    Ping(PingArgs),
    /// Pipelined admin requests (/push, /sign or /info?cname=), each to its own channel.
    Admin(AdminArgs),
}

/// How a subscriber listens.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// JSONP long-polling on /sub, re-polling after each reply (icomet.js without EventSource).
    Poll,
    /// One chunked /stream response, one JSON message per line.
    Stream,
    /// Server-Sent Events on /sse.
    Sse,
    /// WebSocket on /ws: one text frame per message; pings answered.
    Ws,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::Stream => "stream",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Front (subscriber) port of the server; several, comma-separated (the nodes of a cluster):
    /// subscriber i connects to the (i mod n)-th.
    #[arg(long, default_value = "127.0.0.1:8100")]
    pub front: String,
    /// Admin (publisher) port of the server; several, comma-separated: admin connection k of the
    /// pool connects to the (k mod n)-th.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub admin: String,
    /// Seconds of measurement (hold time for connect unless --hold; run time for ping and churn).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Server process id: report its RSS (/proc/PID/status) and CPU time (/proc/PID/stat).
    /// Repeatable or comma-separated (a cluster's nodes and its store): the server numbers are
    /// sums over every process, and `server_processes` has each one's own.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub pid: Vec<u32>,
    /// Stop ramping when MemAvailable falls below this many MiB.
    #[arg(long, default_value_t = 3072)]
    pub min_free_mb: u64,
    /// New connections per second (churn: cycles per second); 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Source addresses: a range `127.0.0.2-127.0.0.40`, one address, or a count from 127.0.0.2.
    /// Default for a loopback target: one 127.0.0.x per 16,000 connections.
    #[arg(long)]
    pub sources: Option<String>,
    /// Behave as if RLIMIT_NOFILE were N (and lower it to N for real).
    #[arg(long)]
    pub fd_limit: Option<u64>,
    /// Pin every load generator process to this CPU.
    #[arg(long)]
    pub pin_cpu: Option<usize>,
    /// Give up ramping after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub ramp_timeout: u64,
    /// Seconds allowed for a connect or for a response head.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Keep-alive admin connections for /sign, /push and the admin scenario (default 4; admin: 1).
    #[arg(long)]
    pub admin_conns: Option<usize>,
    /// Admin requests in flight over all admin connections, pipelined (fan-out pushes, the admin
    /// scenario; default 16 per connection).
    #[arg(long)]
    pub in_flight: Option<usize>,
    /// Seconds to wait for outstanding deliveries after the last publish.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Milliseconds between the memory samples of --json's `samples` (connections held, server
    /// RSS with --pid, kernel SUnreclaim); 0 = none.
    #[arg(long, default_value_t = 500)]
    pub sample_interval_ms: u64,
    #[arg(long, hide = true)]
    pub worker_index: Option<usize>,
    #[arg(long, hide = true)]
    pub workers: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct SubscriberArgs {
    /// Subscribers to hold.
    #[arg(short = 'n', long = "connections")]
    pub n: u64,
    #[arg(long, value_enum, default_value_t = Transport::Poll)]
    pub transport: Transport,
    /// Subscribers per channel (channel = prefix + global index / M).
    #[arg(long, default_value_t = 1)]
    pub per_channel: u64,
    /// Call admin /sign for each subscriber first and pass its token.
    #[arg(long)]
    pub sign: bool,
    /// Channel name prefix (letters, digits, `-._~`).
    #[arg(long, default_value = "lg")]
    pub channel_prefix: String,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub subs: SubscriberArgs,
    /// Seconds to hold the subscribers once the ramp ends (default: --duration).
    #[arg(long)]
    pub hold: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub subs: SubscriberArgs,
    /// Messages to publish in total, round-robin over the channels.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Messages published per second; 0 = closed loop: keep --in-flight pushes in flight and send
    /// the next one as each reply comes back, until --messages are sent or --duration has passed.
    #[arg(long, default_value_t = 1000)]
    pub msg_rate: u64,
    /// Bytes of message content (the timestamp, padded with `-xxx…`; 0 = the timestamp only).
    #[arg(long, default_value_t = 0)]
    pub msg_size: usize,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct ChurnArgs {
    #[arg(long, value_enum, default_value_t = Transport::Poll)]
    pub transport: Transport,
    /// Channels cycled through.
    #[arg(long, default_value_t = 1000)]
    pub channels: u64,
    #[arg(long, default_value = "lg")]
    pub channel_prefix: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct PingArgs {
    /// Keep-alive connections.
    #[arg(short = 'c', long = "conns", default_value_t = 10)]
    pub conns: u64,
    /// Requests in flight per connection (1 = no pipelining).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    #[command(flatten)]
    pub common: Common,
}

/// The admin request the admin scenario sends.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// `/push?cname=<prefix><i>&content=…` (creates the channel).
    Push,
    /// `/sign?cname=<prefix><i>` (creates the channel).
    Sign,
    /// `/info?cname=<prefix><i>` (reads a channel's subscriber count).
    Info,
}

impl AdminOp {
    pub fn name(self) -> &'static str {
        match self {
            AdminOp::Push => "push",
            AdminOp::Sign => "sign",
            AdminOp::Info => "info",
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    #[arg(long, value_enum, default_value_t = AdminOp::Push)]
    pub op: AdminOp,
    /// Requests in total, request i to channel `<prefix><i>`; the run also ends after --duration.
    /// Default: as many as --duration allows.
    #[arg(long)]
    pub requests: Option<u64>,
    #[arg(long, default_value = "lg")]
    pub channel_prefix: String,
    /// Bytes of /push content (--op push; 0 = the timestamp only).
    #[arg(long, default_value_t = 0)]
    pub msg_size: usize,
    #[command(flatten)]
    pub common: Common,
}

impl Command {
    pub fn common(&self) -> &Common {
        match self {
            Command::Connect(a) => &a.common,
            Command::Fanout(a) => &a.common,
            Command::Churn(a) => &a.common,
            Command::Ping(a) => &a.common,
            Command::Admin(a) => &a.common,
        }
    }
}
