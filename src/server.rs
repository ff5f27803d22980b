//! Process-level wiring: one pinned worker thread per core, each with its own SO_REUSEPORT admin
//! and front listeners and its own backend; the mailbox mesh between them; signals, graceful
//! shutdown, daemon mode and the pidfile; how the start-up ends is told to the terminal, to the
//! process that ran `-d` and to a service manager.
//!
//! In cluster mode it also starts the cluster thread (`cluster`), wired to the workers' mailboxes.
//!
//! Depends on: config, engine, worker, cluster, daemon, logging, notify.

use crate::cluster::{self, Handle};
use crate::config::{Action, Config, EngineKind, LogOutput, LoggerConfig, Startup};
use crate::engine::epoll::Epoll;
use crate::engine::uring::{Uring, UringConfig};
use crate::engine::{probe, sys, Backend};
use crate::notify::Notifier;
use crate::worker::conn::Port;
use crate::worker::mailbox::{mailbox, Outbox};
use crate::worker::shared::connections_per_worker;
use crate::worker::{self, Batch, Msg, Shared, WorkerSetup};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Descriptors kept free of connections on epoll, for what opens files while running (the
/// configuration read again, log rotation, the snapshot written at a stop, hand-overs).
const SPARE_DESCRIPTORS: usize = 16;

/// A running server: its bound addresses and the handles to stop it.
pub struct Server {
    pub admin_addr: SocketAddr,
    pub front_addr: SocketAddr,
    /// The engine the workers run on: "epoll" or "io_uring".
    pub engine: &'static str,
    outboxes: Vec<Outbox<Batch>>,
    threads: Vec<JoinHandle<worker::Hub>>,
    shared: Arc<Shared>,
    /// The configuration in force (the start's, then each reload's).
    config: Config,
}

/// The engine a server runs on, once the configuration and the kernel have been consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chosen {
    Epoll,
    IoUring,
}

/// The engine to run: io_uring when configured (or `auto`) and the kernel passes the probe. A
/// fallback from an explicit `io_uring` is a warning; from `auto` it is what was asked for.
fn choose_engine(config: &Config) -> Chosen {
    let level = match config.server.engine {
        EngineKind::Epoll => return Chosen::Epoll,
        EngineKind::Auto => log::Level::Info,
        EngineKind::IoUring => log::Level::Warn,
    };
    match probe::uring_available() {
        Ok(()) => Chosen::IoUring,
        Err(reason) => {
            log::log!(level, "io_uring unavailable: {reason}; using epoll");
            Chosen::Epoll
        }
    }
}

/// Binds one listener per worker on `addr`; port 0 is resolved by the first bind and reused.
///
/// SO_REUSEPORT would let a second server on the same port silently take half of the connections,
/// so a plain bind first proves the address is free and a taken port is refused at start.
fn bind_all(addr: SocketAddr, count: usize) -> io::Result<(SocketAddr, Vec<TcpListener>)> {
    if addr.port() != 0 {
        let probe = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        drop(probe);
    }
    let first = sys::reuseport_listener(addr)?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(sys::reuseport_listener(bound)?);
    }
    Ok((bound, all))
}

impl Server {
    /// Binds every listener and starts the workers on the configured engine (io_uring falls back
    /// to epoll, with one log line, where the kernel does not offer what it needs).
    pub fn start(config: Config) -> io::Result<Server> {
        let threads = config.server.threads.max(1);
        match choose_engine(&config) {
            Chosen::IoUring => {
                // Each worker's tables hold as many connections as its slab, unless configured.
                let slots = connections_per_worker(config.server.max_connections, threads);
                let capacity = match config.server.uring_slots {
                    0 => slots.min(u32::MAX as usize) as u32,
                    n => n,
                };
                let mut uring = UringConfig::new(capacity);
                uring.table_size = Some(config.server.uring_table_size).filter(|&n| n > 0);
                let backends = (0..threads)
                    .map(|_| Uring::new(uring.clone()))
                    .collect::<io::Result<Vec<_>>>()?;
                Server::start_with(config, backends, "io_uring")
            }
            Chosen::Epoll => {
                let backends = (0..threads)
                    .map(|_| Epoll::new())
                    .collect::<io::Result<Vec<_>>>()?;
                let server = Server::start_with(config, backends, "epoll")?;
                server.limit_to_descriptors();
                Ok(server)
            }
        }
    }

    /// Starts one worker per backend.
    fn start_with<B: Backend + Send + 'static>(
        config: Config,
        backends: Vec<B>,
        engine: &'static str,
    ) -> io::Result<Server> {
        let threads = backends.len();
        let (admin_addr, admin_listeners) = bind_all(config.admin.listen, threads)?;
        let (front_addr, front_listeners) = bind_all(config.front.listen, threads)?;
        // In cluster mode the channels live in Redis: no snapshot is read or written.
        let snapshot = config
            .server
            .snapshot
            .clone()
            .filter(|_| !config.cluster.enabled());
        let mut restore = match &snapshot {
            Some(path) => worker::snapshot::load(path, threads),
            None => Vec::new(),
        };
        restore.resize_with(threads, Vec::new);
        let mut outboxes = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        for backend in &backends {
            let (outbox, inbox) = mailbox::<Batch>(backend.waker());
            outboxes.push(outbox);
            inboxes.push(inbox);
        }
        let mut shared = Shared::new(config, threads);
        shared.cluster = start_cluster(&shared.config, &outboxes, shared.counters())?;
        let shared = Arc::new(shared);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut handles = Vec::with_capacity(threads);
        let listeners = admin_listeners.into_iter().zip(front_listeners);
        for (id, (((mut backend, inbox), (admin, front)), restore)) in backends
            .into_iter()
            .zip(inboxes)
            .zip(listeners)
            .zip(restore)
            .enumerate()
        {
            backend.listen(admin, Port::Admin.tag(), true)?;
            backend.listen(front, Port::Front.tag(), false)?;
            let setup = WorkerSetup {
                id,
                inbox,
                peers: outboxes.clone(),
                hub: worker::new_hub(&shared, id, &restore),
                shared: Arc::clone(&shared),
            };
            let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
            let handle = std::thread::Builder::new()
                .name(format!("rcomet-w{id}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    worker::run(backend, setup)
                })?;
            handles.push(handle);
        }
        Ok(Server {
            admin_addr,
            front_addr,
            engine,
            outboxes,
            threads: handles,
            config: shared.config.clone(),
            shared,
        })
    }

    /// Epoll holds one descriptor per connection: when the open-file limit allows fewer than
    /// `server.max_connections`, the connections it allows (less [`SPARE_DESCRIPTORS`]) become
    /// the limit, so a connection beyond is refused at once instead of failing to be accepted.
    fn limit_to_descriptors(&self) {
        let Some(left) = sys::descriptors_left() else {
            return;
        };
        let most = left.saturating_sub(SPARE_DESCRIPTORS);
        let max = self.config.server.max_connections;
        if most < max {
            log::info!(
                "the open-file limit allows {most} connections: server.max_connections {max} is \
                 lowered to that (raise LimitNOFILE / ulimit -n)"
            );
            self.shared.limit_connections(most);
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Asks every worker to stop accepting, finish or close its connections, and exit; waits for
    /// them (each bounds its own wait by the configured shutdown timeout).
    pub fn shutdown(self) {
        for outbox in &self.outboxes {
            outbox.send(vec![Msg::Shutdown]);
        }
        let hubs: Vec<_> = self
            .threads
            .into_iter()
            .filter_map(|handle| handle.join().ok())
            .collect();
        if let Some(path) = &self.config.server.snapshot {
            if !self.config.cluster.enabled() {
                worker::snapshot::save(path, &hubs);
            }
        }
    }

    /// SIGHUP: reads the configuration again (the same command line: file and flags), applies
    /// what can change while running — the log output is reopened even when unchanged, for
    /// logrotate — and says in the log what changed and which keys wait for a restart. A
    /// configuration that does not load is reported and the running one stays.
    pub fn reload(&mut self) {
        let read = match crate::config::from_args(std::env::args_os()) {
            Ok(startup) => startup.config,
            Err(e) => {
                log::error!("reload: configuration refused, nothing changed: {e}");
                return;
            }
        };
        let changes = crate::config::reload::changes(&self.config, &read);
        let next = crate::config::reload::applied(&self.config, &read);
        if let Err(e) = crate::logging::reconfigure(&next.logger) {
            log::error!("reload: log output not reopened, nothing changed: {e}");
            return;
        }
        let next = Arc::new(next);
        for outbox in &self.outboxes {
            outbox.send(vec![Msg::Reload(Arc::clone(&next))]);
        }
        self.config = (*next).clone();
        match (changes.live.is_empty(), changes.need_restart.is_empty()) {
            (true, true) => log::info!("reload: configuration unchanged; log output reopened"),
            _ => log::info!(
                "reload: applied [{}]; need a restart [{}]",
                changes.live.join(", "),
                changes.need_restart.join(", ")
            ),
        }
    }

    /// True while every worker thread is running.
    pub fn healthy(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }
}

/// Cluster mode: starts the thread that talks to Redis, whose events reach the workers through
/// their mailboxes.
fn start_cluster(
    config: &Config,
    outboxes: &[Outbox<Batch>],
    counters: Arc<cluster::Counters>,
) -> io::Result<Option<Handle>> {
    let c = &config.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let settings = cluster::Settings {
        redis: c.redis.clone(),
        prefix: c.prefix.clone(),
        node: c.node.clone().unwrap_or_else(cluster::default_node_name),
        workers: outboxes.len(),
        buffer: u32::try_from(config.front.channel_buffer_size).unwrap_or(u32::MAX),
        channel_timeout: config.front.channel_timeout,
    };
    log::info!(
        "cluster mode: node {} over Redis {}",
        settings.node,
        settings.redis.join(", ")
    );
    if let Some(path) = &config.server.snapshot {
        log::warn!(
            "cluster mode: the snapshot file {} (server.snapshot) is not used: Redis keeps the \
             channels' state, so no snapshot is read at start or written at stop",
            path.display()
        );
    }
    let outboxes = outboxes.to_vec();
    let sink: cluster::Sink = Box::new(move |w, events| {
        if let Some(outbox) = outboxes.get(w) {
            outbox.send(vec![Msg::Cluster(events)]);
        }
    });
    cluster::start(settings, sink, counters).map(Some)
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it spawns later), so that only the
/// main thread receives them through `wait_for_signal`.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

/// Waits up to `timeout` for SIGINT/SIGTERM/SIGHUP; returns the signal number if one came.
fn wait_for_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; no siginfo is requested.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// How the start-up ends, told to whoever waits for it: the terminal (a fatal error reaches stderr
/// whatever the log output is), the process that ran `-d` (through the daemon's start-up pipe)
/// and a service manager (`NOTIFY_SOCKET`).
struct Launch {
    /// Set in a daemon: the waiting parent prints what it is sent.
    report: Option<crate::daemon::StartReport>,
    /// Where the log goes, which decides where else a fatal error is written.
    log_output: LogOutput,
    notifier: Notifier,
}

impl Launch {
    /// Reports a fatal start-up error once on stderr (or through the waiting parent's stderr) and
    /// in the log; returns the exit status. A log on stderr already is that line; a log on stdout
    /// does not get it, so that a terminal shows it once.
    fn fail(self, reason: &str) -> i32 {
        if self.log_output != LogOutput::Stdout {
            log::error!("{reason}");
            log::logger().flush();
        }
        match self.report {
            Some(report) => report.failed(reason),
            None if self.log_output != LogOutput::Stderr => eprintln!("rcomet: {reason}"),
            None => {}
        }
        1
    }

    /// Prints the ready line on stdout (the original stdout with `-d`) and notifies the service
    /// manager. Scripts and tests wait for this line, whatever the log output is.
    fn ready(self, server: &Server, logger: &LoggerConfig) -> Notifier {
        let line = format!(
            "rcomet ready admin={} front={} pid={} workers={} engine={}",
            server.admin_addr,
            server.front_addr,
            std::process::id(),
            server.threads.len(),
            server.engine
        );
        // On stdout the log line would repeat the ready line; elsewhere the log records it too.
        if logger.output != LogOutput::Stdout {
            log::info!(
                "rcomet {} ready: admin={} front={} workers={} engine={}",
                env!("CARGO_PKG_VERSION"),
                server.admin_addr,
                server.front_addr,
                server.threads.len(),
                server.engine
            );
        }
        match self.report {
            Some(report) => report.ready(&line),
            None => {
                let mut out = io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
        let status = format!(
            "admin {} front {} engine {}",
            server.admin_addr, server.front_addr, server.engine
        );
        if let Err(e) = self.notifier.ready(&status) {
            log::warn!("cannot notify the service manager (READY=1): {e}");
        }
        self.notifier
    }
}

/// A snapshot the graceful stop could not write (its directory missing or read-only, as under
/// a service manager that gives the service no state directory) would lose every channel's seq
/// at the next restart with only an error at the stop: said once at start instead. Cluster mode
/// writes none (its own warning, `start_cluster`).
fn snapshot_warning(config: &Config) -> Option<String> {
    let path = config.server.snapshot.as_ref()?;
    if config.cluster.enabled() {
        return None;
    }
    worker::snapshot::check_writable(path).err()
}

/// `-s stop` and `-s restart`: stops the server named in the pidfile. Returns the exit status when
/// the process is done (stop, or a failed stop), `None` when it goes on to start (restart, or no
/// action).
fn stop_running(action: Action, config: &Config) -> Option<i32> {
    if action == Action::Reload {
        let Some(pidfile) = &config.pidfile else {
            eprintln!("rcomet: -s reload needs a pidfile in the config file");
            return Some(1);
        };
        return match crate::daemon::reload(pidfile) {
            Ok(()) => Some(0),
            Err(e) => {
                eprintln!("rcomet: {e}");
                Some(1)
            }
        };
    }
    if !matches!(action, Action::Stop | Action::Restart) {
        return None;
    }
    let Some(pidfile) = &config.pidfile else {
        eprintln!("rcomet: -s stop/restart needs a pidfile in the config file");
        return Some(1);
    };
    let stop_wait = Duration::from_secs(u64::from(config.server.shutdown_timeout) + 10);
    match crate::daemon::stop(pidfile, stop_wait) {
        Ok(()) => {}
        // Restarting a server that is not running just starts one.
        Err(e) if matches!(action, Action::Restart) => eprintln!("rcomet: {e}"),
        Err(e) => {
            eprintln!("rcomet: {e}");
            return Some(1);
        }
    }
    matches!(action, Action::Stop).then_some(0)
}

/// The whole process life for the `rcomet` binary: stop/restart actions, daemon mode, pidfile,
/// logging, workers, and a clean exit on SIGINT/SIGTERM. Returns the exit status.
pub fn run(startup: Startup) -> i32 {
    let Startup {
        config,
        daemon,
        action,
        warnings,
    } = startup;
    if let Some(status) = stop_running(action, &config) {
        return status;
    }
    if let Err(e) = crate::logging::init(&config.logger) {
        match &config.logger.output {
            LogOutput::File(path) => {
                eprintln!("rcomet: cannot open log file {}: {e}", path.display())
            }
            _ => eprintln!("rcomet: cannot open log output: {e}"),
        }
        return 1;
    }
    let logger = config.logger.clone();
    let mut warnings = warnings;
    warnings.extend(snapshot_warning(&config));
    for w in &warnings {
        log::warn!("{w}");
        // A log file is not where someone starting the server looks first.
        if matches!(logger.output, LogOutput::File(_)) {
            eprintln!("rcomet: warning: {w}");
        }
    }
    let mut launch = Launch {
        report: None,
        log_output: logger.output.clone(),
        notifier: Notifier::default(),
    };
    match Notifier::from_env() {
        Ok(n) => launch.notifier = n,
        Err(e) => return launch.fail(&format!("{e}")),
    }
    if daemon {
        match crate::daemon::daemonize() {
            Ok(report) => launch.report = Some(report),
            Err(e) => return launch.fail(&format!("cannot daemonize: {e}")),
        }
    }
    let pidfile = match &config.pidfile {
        Some(path) => match crate::daemon::Pidfile::create(path) {
            Ok(p) => Some(p),
            Err(e) => return launch.fail(&format!("pidfile: {e}")),
        },
        None => None,
    };
    let signals = block_stop_signals();
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            // Removed before anyone is told, so that nothing stale is left when they look.
            drop(pidfile);
            return launch.fail(&format!("cannot start: {e}"));
        }
    };
    let notifier = launch.ready(&server, &logger);
    let mut server = server;
    loop {
        match wait_for_signal(&signals, Duration::from_millis(500)) {
            Some(libc::SIGHUP) => server.reload(),
            Some(sig) => {
                log::info!("signal {sig}: shutting down");
                break;
            }
            None => {}
        }
        if !server.healthy() {
            log::error!("a worker thread died; shutting down");
            let _ = notifier.stopping();
            server.shutdown();
            return 1;
        }
    }
    if let Err(e) = notifier.stopping() {
        log::warn!("cannot notify the service manager (STOPPING=1): {e}");
    }
    server.shutdown();
    drop(pidfile);
    log::info!("rcomet stopped");
    0
}
