//! Multi-process runs: when one process cannot hold its share under the open-file limit, the
//! parent starts K copies of this binary (`--worker-index i --workers K`), reads their JSON lines
//! (progress, ready, result) from stdout pipes, prints one combined progress line, tells every
//! worker `go` once all have ramped (after probing server and kernel memory), takes the memory
//! samples with the workers' summed connections, and merges the results. Children that outlive
//! the hard deadline are killed. Depends on coord, stats, progress, procfs, samples, plan, sys.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::coord::WorkerLine;
use crate::plan::Plan;
use crate::procfs::MemProbe;
use crate::progress::{Printer, Progress};
use crate::samples::{Sampler, Series, Stage};
use crate::stats::{Stats, WorkerResult};
use crate::sys::now_ns;

/// Longest line accepted from a worker (a result with its histogram is a few KiB).
const MAX_WORKER_LINE: u64 = 8 << 20;
/// Extra time the parent gives its workers beyond their own hard deadline.
const PARENT_SLACK_NS: u64 = 20_000_000_000;
const NS: u64 = 1_000_000_000;

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    progress: Progress,
    ready: bool,
    result: Option<WorkerResult>,
    eof: bool,
}

/// Runs `count` worker processes with `args` (this process's own arguments) and merges them.
pub fn run(
    plan: &Plan,
    count: usize,
    args: &[OsString],
) -> Result<(Stats, MemProbe, Series), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let mut mem = MemProbe::baseline(&plan.pid);
    let start = now_ns();
    let deadline = start
        .saturating_add(plan.hard_deadline_ns())
        .saturating_add(PARENT_SLACK_NS);
    let (tx, rx) = mpsc::channel::<(usize, Option<String>)>();
    let mut workers: Vec<Worker> = Vec::with_capacity(count);
    for i in 0..count {
        let spawned = Command::new(&exe)
            .args(args)
            .arg("--worker-index")
            .arg(i.to_string())
            .arg("--workers")
            .arg(count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut workers);
                return Err(format!("cannot start worker {i}: {e}"));
            }
        };
        let stdin = child.stdin.take();
        if let Some(stdout) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || forward_lines(i, stdout, tx));
        }
        workers.push(Worker {
            child,
            stdin,
            progress: Progress::default(),
            ready: false,
            result: None,
            eof: false,
        });
    }
    drop(tx);
    let mut printer = Printer::new(start, &plan.pid, plan.quiet);
    let mut sampler = Sampler::new(start, plan.sample_interval_ms, &plan.pid);
    let held = |workers: &[Worker]| workers.iter().map(|w| w.progress.held).sum::<u64>();
    let mut next_tick = start + NS;
    let mut go_sent = false;
    loop {
        if workers.iter().all(|w| w.eof) {
            break;
        }
        let now = now_ns();
        if now >= deadline {
            eprintln!("rcomet-loadgen: workers passed the hard deadline; stopping them");
            break;
        }
        let wake = sampler
            .next_due_ns()
            .map_or(next_tick, |t| t.min(next_tick));
        let wait = wake.saturating_sub(now).min(deadline - now);
        match rx.recv_timeout(Duration::from_nanos(wait)) {
            Ok((i, Some(line))) => {
                if let Some(w) = workers.get_mut(i) {
                    take_line(w, &line);
                }
            }
            Ok((i, None)) => {
                if let Some(w) = workers.get_mut(i) {
                    w.eof = true;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !go_sent && workers.iter().all(|w| w.ready || w.eof) {
            mem.at_hold();
            sampler.record(now_ns(), held(&workers), Stage::Ready);
            for w in &mut workers {
                if let Some(stdin) = w.stdin.as_mut() {
                    // A worker that already exited cannot be told; its result (if any) still counts.
                    let _ = stdin.write_all(b"go\n").and_then(|_| stdin.flush());
                }
            }
            go_sent = true;
        }
        let now = now_ns();
        let stage = if go_sent { Stage::Measure } else { Stage::Ramp };
        sampler.maybe(now, held(&workers), stage);
        if now >= next_tick {
            let mut total = Progress::default();
            for w in &workers {
                total.merge(&w.progress);
            }
            printer.print(&total, now);
            next_tick = now + NS;
        }
    }
    stop_all(&mut workers);
    let mut stats = Stats::default();
    for (i, w) in workers.iter().enumerate() {
        match &w.result {
            Some(r) => stats.merge(r)?,
            None => eprintln!("rcomet-loadgen: worker {i} ended without a result"),
        }
    }
    stats.c.target = plan.total;
    Ok((stats, mem, sampler.finish()))
}

fn take_line(w: &mut Worker, line: &str) {
    match serde_json::from_str::<WorkerLine>(line) {
        Ok(WorkerLine::Progress(p)) => w.progress = p,
        Ok(WorkerLine::Ready { held }) => {
            w.ready = true;
            w.progress.held = held;
        }
        Ok(WorkerLine::Result(r)) => {
            w.progress = Progress::of(&r.counters);
            w.result = Some(*r);
        }
        Err(e) => eprintln!("rcomet-loadgen: unreadable worker line ({e})"),
    }
}

/// Reads a worker's stdout line by line (bounded) and forwards each line; `None` at the end.
fn forward_lines<R: Read>(i: usize, out: R, tx: mpsc::Sender<(usize, Option<String>)>) {
    let mut reader = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_WORKER_LINE)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim().to_string();
                if !line.is_empty() && tx.send((i, Some(line))).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send((i, None));
}

/// Closes the workers' stdin (which ends them) and reaps them, killing any that linger.
fn stop_all(workers: &mut [Worker]) {
    for w in workers.iter_mut() {
        w.stdin = None;
    }
    let give_up = now_ns() + 5 * NS;
    for w in workers.iter_mut() {
        loop {
            match w.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if now_ns() >= give_up => {
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}
