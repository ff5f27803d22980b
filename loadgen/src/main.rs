//! rcomet-loadgen: event-driven load generator for iComet-compatible push servers. This file only
//! wires things: parse the command line, apply the fd limit and CPU pinning, run one process (or
//! a parent with worker processes), and print the report. See README.md for usage.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod admin;
mod cli;
mod conn;
mod coord;
mod env;
mod events;
mod http_reader;
mod message;
mod parent;
mod pinger;
mod plan;
mod procfs;
mod progress;
mod pump;
mod report;
mod runner;
mod samples;
mod seq_check;
mod sources;
mod stats;
mod subscriber;
mod sys;
mod ws_frames;

use clap::Parser;

use crate::cli::Cli;
use crate::coord::{Coord, Standalone};
use crate::plan::Plan;
use crate::procfs::MemProbe;
use crate::progress::Printer;
use crate::report::Report;
use crate::runner::Runner;
use crate::samples::{Sampler, Series};

/// Seconds past the computed hard deadline after which SIGALRM ends the process regardless.
const ALARM_SLACK_S: u64 = 60;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    let cli = Cli::parse();
    let common = cli.command.common();
    if let Some(n) = common.fd_limit {
        if let Err(e) = sys::set_nofile_limit(n) {
            eprintln!("rcomet-loadgen: cannot lower RLIMIT_NOFILE to {n}: {e}");
        }
    }
    let plan = match Plan::new(&cli.command, sys::nofile_limit()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rcomet-loadgen: {e}");
            return 2;
        }
    };
    if let Some(cpu) = plan.pin_cpu {
        if let Err(e) = sys::pin_to_cpu(cpu) {
            eprintln!("rcomet-loadgen: cannot pin to CPU {cpu}: {e}");
        }
    }
    sys::arm_alarm(plan.hard_deadline_ns() / 1_000_000_000 + ALARM_SLACK_S);

    if plan.worker.is_some() {
        let coord = Coord::worker(plan.sample_interval_ms);
        return match Runner::new(plan, coord).and_then(|r| r.run()) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("rcomet-loadgen worker: {e}");
                1
            }
        };
    }

    let processes = plan.processes_needed();
    let outcome = if processes > 1 {
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        parent::run(&plan, processes, &args)
    } else {
        run_here(&plan)
    };
    let (stats, mem, series) = match outcome {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rcomet-loadgen: {e}");
            return 1;
        }
    };
    let report = Report::build(&plan, &stats, &mem, processes).with_samples(series);
    if plan.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    0
}

/// Runs the whole scenario in this process.
fn run_here(plan: &Plan) -> Result<(stats::Stats, MemProbe, Series), String> {
    let mem = MemProbe::baseline(&plan.pid);
    let start = sys::now_ns();
    let coord = Coord::Standalone(Box::new(Standalone {
        mem: mem.clone(),
        printer: Printer::new(start, &plan.pid, plan.quiet),
        sampler: Sampler::new(start, plan.sample_interval_ms, &plan.pid),
    }));
    let runner = Runner::new(plan.clone(), coord).map_err(|e| e.to_string())?;
    let (stats, coord) = runner.run().map_err(|e| e.to_string())?;
    Ok(match coord {
        Coord::Standalone(s) => {
            let Standalone { mem, sampler, .. } = *s;
            (stats, mem, sampler.finish())
        }
        Coord::Worker(_) => (stats, mem, Series::default()),
    })
}
