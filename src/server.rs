//! Process-level wiring: one pinned worker thread per core, each with its own SO_REUSEPORT admin
//! and front listeners and its own backend; the mailbox mesh between them; signals, graceful
//! shutdown, daemon mode and the pidfile.
//!
//! Depends on: config, engine, worker, daemon, logging.

use crate::config::{Action, Config, EngineKind, Startup};
use crate::engine::epoll::Epoll;
use crate::engine::uring::{Uring, UringConfig};
use crate::engine::{probe, sys, Backend};
use crate::worker::conn::Port;
use crate::worker::mailbox::{mailbox, Outbox};
use crate::worker::shared::connections_per_worker;
use crate::worker::{self, Batch, Msg, Shared, WorkerSetup};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running server: its bound addresses and the handles to stop it.
pub struct Server {
    pub admin_addr: SocketAddr,
    pub front_addr: SocketAddr,
    /// The engine the workers run on: "epoll" or "io_uring".
    pub engine: &'static str,
    outboxes: Vec<Outbox<Batch>>,
    threads: Vec<JoinHandle<worker::Hub>>,
    shared: Arc<Shared>,
}

/// The engine to run: io_uring only when configured and the kernel passes the probe.
fn choose_engine(config: &Config) -> EngineKind {
    match config.server.engine {
        EngineKind::Epoll => EngineKind::Epoll,
        EngineKind::IoUring => match probe::uring_available() {
            Ok(()) => EngineKind::IoUring,
            Err(reason) => {
                log::warn!("io_uring unavailable: {reason}; using epoll");
                EngineKind::Epoll
            }
        },
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
            EngineKind::IoUring => {
                // Each worker's tables hold as many connections as its slab.
                let slots = connections_per_worker(config.server.max_connections, threads);
                let capacity = slots.min(u32::MAX as usize) as u32;
                let backends = (0..threads)
                    .map(|_| Uring::new(UringConfig::new(capacity)))
                    .collect::<io::Result<Vec<_>>>()?;
                Server::start_with(config, backends, "io_uring")
            }
            EngineKind::Epoll => {
                let backends = (0..threads)
                    .map(|_| Epoll::new())
                    .collect::<io::Result<Vec<_>>>()?;
                Server::start_with(config, backends, "epoll")
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
        let snapshot = config.server.snapshot.clone();
        let mut restore = match &snapshot {
            Some(path) => worker::snapshot::load(path, threads),
            None => Vec::new(),
        };
        restore.resize_with(threads, Vec::new);
        let shared = Arc::new(Shared::new(config, threads));
        let mut outboxes = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        for backend in &backends {
            let (outbox, inbox) = mailbox::<Batch>(backend.waker());
            outboxes.push(outbox);
            inboxes.push(inbox);
        }
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
            shared,
        })
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
        if let Some(path) = &self.shared.config.server.snapshot {
            worker::snapshot::save(path, &hubs);
        }
    }

    /// True while every worker thread is running.
    pub fn healthy(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }
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
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    set
}

/// Waits up to `timeout` for SIGINT/SIGTERM; returns the signal number if one came.
fn wait_for_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; no siginfo is requested.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
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
    if matches!(action, Action::Stop | Action::Restart) {
        let Some(pidfile) = config.pidfile.clone() else {
            eprintln!("rcomet: -s stop/restart needs a pidfile in the config file");
            return 1;
        };
        let stop_wait = Duration::from_secs(u64::from(config.server.shutdown_timeout) + 10);
        match crate::daemon::stop(&pidfile, stop_wait) {
            Ok(()) => {}
            Err(e) if matches!(action, Action::Restart) => eprintln!("rcomet: {e}"),
            Err(e) => {
                eprintln!("rcomet: {e}");
                return 1;
            }
        }
        if matches!(action, Action::Stop) {
            return 0;
        }
    }
    if let Err(e) = crate::logging::init(&config.logger) {
        eprintln!("rcomet: cannot open log output: {e}");
        return 1;
    }
    for w in &warnings {
        log::warn!("{w}");
    }
    if daemon {
        if let Err(e) = crate::daemon::daemonize() {
            log::error!("cannot daemonize: {e}");
            return 1;
        }
    }
    let _pidfile = match &config.pidfile {
        Some(path) => match crate::daemon::Pidfile::create(path) {
            Ok(p) => Some(p),
            Err(e) => {
                log::error!("pidfile {}: {e}", path.display());
                return 1;
            }
        },
        None => None,
    };
    let signals = block_stop_signals();
    let threads = config.server.threads;
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start: {e}");
            return 1;
        }
    };
    log::info!(
        "rcomet {} ready: admin={} front={} workers={} engine={}",
        env!("CARGO_PKG_VERSION"),
        server.admin_addr,
        server.front_addr,
        threads,
        server.engine
    );
    // The ready line on stdout is what scripts and tests wait for, whatever the log output is.
    println!(
        "rcomet ready admin={} front={} pid={} engine={}",
        server.admin_addr,
        server.front_addr,
        std::process::id(),
        server.engine
    );
    loop {
        if let Some(sig) = wait_for_signal(&signals, Duration::from_millis(500)) {
            log::info!("signal {sig}: shutting down");
            break;
        }
        if !server.healthy() {
            log::error!("a worker thread died; shutting down");
            server.shutdown();
            return 1;
        }
    }
    server.shutdown();
    log::info!("rcomet stopped");
    0
}
