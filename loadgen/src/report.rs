//! The final report of a run: built from the (merged) counters, latency histogram (percentiles
//! and a quantile ladder for charts), memory probe, periodic memory samples and server CPU
//! readings, printed as one JSON object (--json) or as a human-readable table. Depends on stats,
//! procfs, samples, plan, serde.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plan::{Plan, Scenario};
use crate::procfs::MemProbe;
use crate::samples::{Sample, Series};
use crate::stats::{Errors, Stats};

/// 1 / (1 - q) steps within each decade of the quantile ladder (10 per decade, about evenly
/// spaced on a log axis; 2 gives the median, 1 gives 0.9, 0.99, ...).
const LADDER_STEPS: [f64; 10] = [1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.4, 8.0];
/// The ladder goes up to 1 / (1 - q) = 10^LADDER_DECADES (q = 0.99999), then q = 1 (the maximum).
const LADDER_DECADES: i32 = 5;

/// One server process's own numbers (several --pid: a cluster's nodes, its store).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ServerProcess {
    pub pid: u32,
    /// CPU time over the measurement (the window of `server_cpu_us`).
    pub cpu_us: Option<u64>,
    pub rss_before_bytes: Option<u64>,
    /// At the end of the ramp, and at the end of the hold.
    pub rss_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

/// One point of the latency distribution: `us` is the value at quantile `quantile`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct QuantileValue {
    pub quantile: f64,
    pub us: u64,
}

/// Values of `h` at q = 0, then 1 - 1/x for x = 1.25, 1.6, ... 10^LADDER_DECADES, then q = 1 (the
/// maximum); empty when nothing was recorded.
pub fn quantile_ladder(h: &Histogram<u64>) -> Vec<QuantileValue> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut qs = vec![0.0];
    for decade in 0..LADDER_DECADES {
        for step in LADDER_STEPS {
            let x = step * 10f64.powi(decade);
            if x > 1.0 {
                qs.push(1.0 - 1.0 / x);
            }
        }
    }
    qs.push(1.0 - 1.0 / 10f64.powi(LADDER_DECADES));
    qs.push(1.0);
    qs.into_iter()
        .map(|q| QuantileValue {
            quantile: q,
            us: if q >= 1.0 {
                h.max()
            } else {
                h.value_at_quantile(q)
            },
        })
        .collect()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub transport: &'static str,
    pub connections_target: u64,
    /// Held at the end of the measurement.
    pub connections_held: u64,
    pub connections_held_at_ready: u64,
    pub connections_peak: u64,
    pub connect_rate_per_s: f64,
    pub ramp_s: f64,
    pub measure_s: f64,
    pub errors: Errors,
    pub errors_total: u64,
    pub reconnects: u64,
    pub deliveries: u64,
    pub expected_deliveries: u64,
    /// Expected deliveries that never arrived (fan-out).
    pub undelivered: u64,
    pub deliveries_per_s: f64,
    /// µs: push→deliver (fanout), request (ping, admin), cycle (churn), connect→subscribed
    /// (connect).
    pub latency_us: Latency,
    /// The same distribution at a ladder of quantiles (see `quantile_ladder`), for charts.
    pub latency_quantiles_us: Vec<QuantileValue>,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub noops: u64,
    pub requests: u64,
    pub requests_per_s: f64,
    /// Admin scenario: the request sent (push, sign, info).
    pub op: Option<&'static str>,
    pub requests_failed: u64,
    /// Admin replies (pushes, admin requests) with a status other than 200.
    pub non_200: u64,
    pub cycles: u64,
    pub cycles_per_s: f64,
    pub pushes_sent: u64,
    pub pushes_ok: u64,
    pub pushes_failed: u64,
    /// Fan-out: pushes per second; 0 = closed loop.
    pub msg_rate: u64,
    /// Admin requests kept in flight over `admin_conns` connections.
    pub in_flight: usize,
    pub admin_conns: usize,
    /// Publishing phase: first push → last push reply.
    pub publish_s: f64,
    /// Pushes answered ok per second of the publishing phase.
    pub pushes_per_s: f64,
    /// A closed-loop fan-out stopped at --duration before sending --messages.
    pub publish_capped: bool,
    /// Server CPU time (user + system, /proc/PID/stat) over the measurement, with --pid.
    pub server_cpu_us: Option<u64>,
    /// Time between the two CPU readings.
    pub server_cpu_window_s: Option<f64>,
    /// server_cpu_us / window: cores the server kept busy on average.
    pub server_cpu_cores: Option<f64>,
    pub server_cpu_us_per_push: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Per request answered 200 (ping, admin).
    pub server_cpu_us_per_request: Option<f64>,
    pub server_rss_bytes: Option<u64>,
    pub server_rss_before_bytes: Option<u64>,
    pub server_rss_per_conn_bytes: Option<f64>,
    /// The same at the end of the hold (connections idle for the whole hold; what the allocator
    /// kept of the ramp's transients has had time to go back): RSS at the end − RSS before, ÷ held.
    pub server_rss_idle_per_conn_bytes: Option<f64>,
    /// RssAnon delta per connection: the server's own allocations, without shared pages.
    pub server_rss_anon_per_conn_bytes: Option<f64>,
    pub kernel_sunreclaim_delta_bytes: Option<i64>,
    pub kernel_per_conn_bytes: Option<f64>,
    /// Each --pid process's CPU and RSS; the `server_*` numbers above are their sums.
    pub server_processes: Vec<ServerProcess>,
    pub memory_guard_hit: bool,
    pub processes: usize,
    pub fd_limit: u64,
    pub sources: usize,
    /// Seconds between `samples` at the end of the run (0 = none taken).
    pub sample_interval_s: f64,
    /// Connections held, server and kernel memory over the run (--sample-interval-ms).
    pub samples: Vec<Sample>,
}

/// Each --pid process's readings, in order.
fn server_processes(plan: &Plan, c: &crate::stats::Counters, mem: &MemProbe) -> Vec<ServerProcess> {
    let cpu = c.server_cpu_us_each();
    let at = |v: &[Option<u64>], i: usize| v.get(i).copied().flatten();
    plan.pid
        .iter()
        .enumerate()
        .map(|(i, &pid)| ServerProcess {
            pid,
            cpu_us: at(&cpu, i),
            rss_before_bytes: at(&mem.rss_before_each, i),
            rss_bytes: at(&mem.rss_held_each, i),
            rss_end_bytes: at(&c.server_rss_end_each, i),
        })
        .collect()
}

fn secs(from_ns: u64, to_ns: u64) -> f64 {
    if from_ns == 0 || to_ns <= from_ns {
        return 0.0;
    }
    (to_ns - from_ns) as f64 / 1e9
}

fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

impl Report {
    pub fn build(plan: &Plan, stats: &Stats, mem: &MemProbe, processes: usize) -> Report {
        let c = &stats.c;
        let h = &stats.latency;
        let ramp_s = secs(c.ramp_start_ns, c.ramp_end_ns);
        let measure_s = secs(c.measure_start_ns, c.measure_end_ns);
        let delivery_s = secs(c.measure_start_ns, c.last_delivery_ns);
        let held = c.held_at_ready;
        let rss_delta = match (mem.rss_before, mem.rss_held) {
            (Some(b), Some(a)) => Some(a as i64 - b as i64),
            _ => None,
        };
        let idle_delta = match (mem.rss_before, c.server_rss_end) {
            (Some(b), Some(a)) => Some(a as i64 - b as i64),
            _ => None,
        };
        let anon_delta = match (mem.rss_anon_before, mem.rss_anon_held) {
            (Some(b), Some(a)) => Some(a as i64 - b as i64),
            _ => None,
        };
        let kernel_delta = match (mem.sunreclaim_before, mem.sunreclaim_held) {
            (Some(b), Some(a)) => Some(a as i64 - b as i64),
            _ => None,
        };
        let per_conn = |d: Option<i64>| d.filter(|_| held > 0).map(|d| d as f64 / held as f64);
        let publish_s = secs(c.measure_start_ns, c.last_push_reply_ns);
        let cpu = c.server_cpu_us();
        let cpu_window_s = cpu.map(|_| secs(c.server_cpu_start_ns, c.server_cpu_end_ns));
        let cpu_per = |n: u64| cpu.filter(|_| n > 0).map(|us| us as f64 / n as f64);
        Report {
            scenario: plan.scenario.name(),
            transport: plan.transport.name(),
            connections_target: c.target,
            connections_held: c.held,
            connections_held_at_ready: held,
            connections_peak: c.held_peak,
            connect_rate_per_s: rate(held, ramp_s),
            ramp_s,
            measure_s,
            errors: c.errors,
            errors_total: c.errors.total(),
            reconnects: c.reconnects,
            deliveries: c.deliveries,
            expected_deliveries: c.expected_deliveries,
            undelivered: c.expected_deliveries.saturating_sub(c.unique_deliveries),
            deliveries_per_s: rate(c.deliveries, delivery_s),
            latency_us: Latency {
                count: h.len(),
                mean: if h.is_empty() { 0.0 } else { h.mean() },
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                p9999: h.value_at_quantile(0.9999),
                max: h.max(),
            },
            latency_quantiles_us: quantile_ladder(h),
            lost: c.lost,
            duplicated: c.duplicated,
            out_of_order: c.out_of_order,
            noops: c.noops,
            requests: c.requests,
            requests_per_s: rate(c.requests, measure_s),
            op: (plan.scenario == Scenario::Admin).then(|| plan.admin_op.name()),
            requests_failed: c.requests_failed,
            non_200: c.non_200,
            cycles: c.cycles,
            cycles_per_s: rate(c.cycles, measure_s),
            pushes_sent: c.pushes_sent,
            pushes_ok: c.pushes_ok,
            pushes_failed: c.pushes_failed,
            msg_rate: plan.msg_rate,
            in_flight: plan.in_flight,
            admin_conns: plan.admin_conns,
            publish_s,
            pushes_per_s: rate(c.pushes_ok, publish_s),
            publish_capped: c.publish_capped,
            server_cpu_us: cpu,
            server_cpu_window_s: cpu_window_s,
            server_cpu_cores: cpu
                .zip(cpu_window_s)
                .filter(|&(_, w)| w > 0.0)
                .map(|(us, w)| us as f64 / 1e6 / w),
            server_cpu_us_per_push: cpu_per(c.pushes_ok),
            server_cpu_us_per_delivery: cpu_per(c.deliveries),
            server_cpu_us_per_request: cpu_per(c.requests),
            server_rss_bytes: mem.rss_held,
            server_rss_before_bytes: mem.rss_before,
            server_rss_per_conn_bytes: per_conn(rss_delta),
            server_rss_idle_per_conn_bytes: per_conn(idle_delta),
            server_rss_anon_per_conn_bytes: per_conn(anon_delta),
            kernel_sunreclaim_delta_bytes: kernel_delta,
            kernel_per_conn_bytes: per_conn(kernel_delta),
            server_processes: server_processes(plan, c, mem),
            memory_guard_hit: c.memory_guard_hit,
            processes,
            fd_limit: plan.fd_limit,
            sources: plan.sources.len(),
            sample_interval_s: 0.0,
            samples: Vec::new(),
        }
    }

    /// The report with the run's memory samples.
    pub fn with_samples(mut self, series: Series) -> Report {
        self.sample_interval_s = series.interval_s;
        self.samples = series.samples;
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A two-column table for people.
    pub fn to_table(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |b| format!("{b}"));
        let optf = |v: Option<f64>| v.map_or("-".to_string(), |b| format!("{b:.0}"));
        let l = &self.latency_us;
        let e = &self.errors;
        let mut rows: Vec<(&str, String)> = vec![
            (
                "scenario",
                match self.op {
                    Some(op) => format!("{} (/{op})", self.scenario),
                    None => format!("{} ({})", self.scenario, self.transport),
                },
            ),
            (
                "processes / fd limit",
                format!("{} / {}", self.processes, self.fd_limit),
            ),
            ("source addresses", format!("{}", self.sources)),
            (
                "connections held",
                format!(
                    "{} of {} (at ramp end {}, peak {})",
                    self.connections_held,
                    self.connections_target,
                    self.connections_held_at_ready,
                    self.connections_peak
                ),
            ),
            (
                "ramp",
                format!(
                    "{:.2} s, {:.0} conn/s",
                    self.ramp_s, self.connect_rate_per_s
                ),
            ),
            ("measurement", format!("{:.2} s", self.measure_s)),
            (
                "errors",
                format!(
                    "{} (connect {}, timeout {}, http_status {}, parse {}, closed {})",
                    self.errors_total, e.connect, e.timeout, e.http_status, e.parse, e.closed
                ),
            ),
            (
                "deliveries",
                format!(
                    "{} of {} expected, {:.0}/s, undelivered {}",
                    self.deliveries,
                    self.expected_deliveries,
                    self.deliveries_per_s,
                    self.undelivered
                ),
            ),
            (
                "seq check",
                format!(
                    "lost {}, duplicated {}, out of order {}",
                    self.lost, self.duplicated, self.out_of_order
                ),
            ),
            (
                "latency µs",
                format!(
                    "n {} p50 {} p90 {} p99 {} p99.9 {} p99.99 {} max {}",
                    l.count, l.p50, l.p90, l.p99, l.p999, l.p9999, l.max
                ),
            ),
        ];
        if self.requests > 0 || self.op.is_some() {
            let op = self.op.map_or(String::new(), |o| {
                format!(
                    " /{o}, {} in flight on {} conn(s), failed {}, non-200 {}",
                    self.in_flight, self.admin_conns, self.requests_failed, self.non_200
                )
            });
            rows.push((
                "requests",
                format!("{} ({:.0}/s){op}", self.requests, self.requests_per_s),
            ));
        }
        if self.cycles > 0 {
            rows.push((
                "churn cycles",
                format!("{} ({:.0}/s)", self.cycles, self.cycles_per_s),
            ));
        }
        if self.pushes_sent > 0 {
            let mode = if self.msg_rate == 0 {
                format!("closed loop, {} in flight", self.in_flight)
            } else {
                format!("offered {}/s", self.msg_rate)
            };
            rows.push((
                "pushes",
                format!(
                    "{} sent, {} ok, {} failed (non-200 {}); {:.0}/s over {:.2} s ({mode}){}",
                    self.pushes_sent,
                    self.pushes_ok,
                    self.pushes_failed,
                    self.non_200,
                    self.pushes_per_s,
                    self.publish_s,
                    if self.publish_capped {
                        ", stopped at --duration"
                    } else {
                        ""
                    }
                ),
            ));
        }
        if let Some(us) = self.server_cpu_us {
            let per = |v: Option<f64>, what: &str| {
                v.map_or(String::new(), |v| format!(", {v:.2} µs per {what}"))
            };
            rows.push((
                "server CPU",
                format!(
                    "{:.3} s over {:.2} s ({:.2} cores){}{}{}",
                    us as f64 / 1e6,
                    self.server_cpu_window_s.unwrap_or(0.0),
                    self.server_cpu_cores.unwrap_or(0.0),
                    per(self.server_cpu_us_per_push, "push"),
                    per(self.server_cpu_us_per_delivery, "delivery"),
                    per(self.server_cpu_us_per_request, "request"),
                ),
            ));
        }
        rows.push((
            "server rss",
            format!(
                "{} B (before {}), per conn {} (RssAnon {}; at the end of the hold {})",
                opt(self.server_rss_bytes),
                opt(self.server_rss_before_bytes),
                optf(self.server_rss_per_conn_bytes),
                optf(self.server_rss_anon_per_conn_bytes),
                optf(self.server_rss_idle_per_conn_bytes)
            ),
        ));
        if self.server_processes.len() > 1 {
            let each: Vec<String> = self
                .server_processes
                .iter()
                .map(|p| {
                    let cpu = p
                        .cpu_us
                        .map_or("-".into(), |us| format!("{:.3} s", us as f64 / 1e6));
                    format!("pid {}: CPU {cpu}, rss {} B", p.pid, opt(p.rss_bytes))
                })
                .collect();
            rows.push(("server processes", each.join("; ")));
        }
        rows.push((
            "kernel SUnreclaim",
            format!(
                "delta {} B, per conn {}",
                self.kernel_sunreclaim_delta_bytes
                    .map_or("-".to_string(), |d| d.to_string()),
                optf(self.kernel_per_conn_bytes)
            ),
        ));
        if !self.samples.is_empty() {
            rows.push((
                "memory samples",
                format!(
                    "{} (every {} s; in --json)",
                    self.samples.len(),
                    self.sample_interval_s
                ),
            ));
        }
        if self.memory_guard_hit {
            rows.push(("memory guard", "hit: ramp stopped early".to_string()));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<width$}  {v}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::stats::record_us;
    use clap::Parser;

    #[test]
    fn per_connection_figures_and_json_names() {
        let cli = Cli::try_parse_from(["lg", "connect", "-n", "10"]).expect("args");
        let plan = Plan::new(&cli.command, 20_000).expect("plan");
        let mut stats = Stats::default();
        stats.c.target = 10;
        stats.c.held = 10;
        stats.c.held_at_ready = 10;
        stats.c.ramp_start_ns = 1_000_000_000;
        stats.c.ramp_end_ns = 3_000_000_000;
        record_us(&mut stats.latency, 100);
        let mem = MemProbe {
            pids: vec![1],
            rss_before: Some(1000),
            rss_held: Some(3000),
            sunreclaim_before: Some(10_000),
            sunreclaim_held: Some(50_000),
            rss_anon_before: None,
            rss_anon_held: None,
            rss_before_each: vec![Some(1000)],
            rss_held_each: vec![Some(3000)],
        };
        let r = Report::build(&plan, &stats, &mem, 1);
        assert_eq!(r.connect_rate_per_s, 5.0);
        assert_eq!(r.server_rss_per_conn_bytes, Some(200.0));
        assert_eq!(r.kernel_per_conn_bytes, Some(4000.0));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        for key in [
            "connections_target",
            "latency_us",
            "kernel_sunreclaim_delta_bytes",
            "sources",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["latency_us"]["p50"], 100);
        assert!(r.to_table().contains("connections held"));
        assert_eq!(v["server_cpu_us_per_push"], serde_json::Value::Null);
        assert_eq!(v["samples"], serde_json::json!([]));
        assert_eq!(v["sample_interval_s"], 0.0);
    }

    #[test]
    fn each_server_process_is_reported() {
        let plan = crate::plan::plan_from_args(&["lg", "connect", "-n", "2", "--pid", "7,8"]);
        let mut stats = Stats::default();
        stats.c.server_cpu_start_us = Some(30);
        stats.c.server_cpu_end_us = Some(100);
        stats.c.server_cpu_start_each = vec![Some(10), Some(20)];
        stats.c.server_cpu_end_each = vec![Some(40), Some(60)];
        stats.c.server_rss_end_each = vec![Some(5), None];
        let mem = MemProbe {
            pids: vec![7, 8],
            rss_before_each: vec![Some(1), Some(2)],
            rss_held_each: vec![Some(3), Some(4)],
            ..MemProbe::default()
        };
        let r = Report::build(&plan, &stats, &mem, 1);
        assert_eq!(r.server_cpu_us, Some(70));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(
            v["server_processes"],
            serde_json::json!([
                {"pid": 7, "cpu_us": 30, "rss_before_bytes": 1, "rss_bytes": 3, "rss_end_bytes": 5},
                {"pid": 8, "cpu_us": 40, "rss_before_bytes": 2, "rss_bytes": 4, "rss_end_bytes": null},
            ])
        );
        let none = crate::plan::plan_from_args(&["lg", "connect", "-n", "2"]);
        let r = Report::build(&none, &Stats::default(), &MemProbe::default(), 1);
        assert!(r.server_processes.is_empty());
    }

    #[test]
    fn quantile_ladder_spans_median_to_max() {
        let mut h = crate::stats::new_histogram();
        for us in 1..=100_000u64 {
            record_us(&mut h, us);
        }
        let ladder = quantile_ladder(&h);
        assert_eq!(ladder.len(), 1 + 9 + 4 * 10 + 1 + 1);
        assert_eq!(ladder[0].quantile, 0.0);
        assert_eq!(ladder[0].us, 1);
        let last = ladder[ladder.len() - 1];
        assert_eq!((last.quantile, last.us), (1.0, h.max()));
        for w in ladder.windows(2) {
            assert!(w[0].quantile < w[1].quantile, "{w:?}");
            assert!(w[0].us <= w[1].us, "{w:?}");
        }
        let at = |q: f64| {
            ladder
                .iter()
                .find(|p| (p.quantile - q).abs() < 1e-12)
                .map(|p| p.us)
        };
        assert_eq!(at(0.5), Some(h.value_at_quantile(0.5)));
        assert_eq!(at(0.99), Some(h.value_at_quantile(0.99)));
        assert_eq!(at(0.99999), Some(h.value_at_quantile(0.99999)));
        let p99 = at(0.99).unwrap_or(0);
        assert!((98_900..=99_100).contains(&p99), "{p99}");
        assert!(quantile_ladder(&crate::stats::new_histogram()).is_empty());
    }

    #[test]
    fn samples_and_quantiles_in_json() {
        use crate::samples::Stage;
        let plan = crate::plan::plan_from_args(&["lg", "connect", "-n", "2"]);
        let mut stats = Stats::default();
        for us in [100, 200, 300] {
            record_us(&mut stats.latency, us);
        }
        let sample = |t_s, stage, held| Sample {
            t_s,
            stage,
            connections_held: held,
            server_rss_bytes: Some(4_000_000 + held * 1000),
            server_rss_anon_bytes: Some(1_000_000),
            kernel_sunreclaim_bytes: Some(90_000_000),
            mem_available_bytes: None,
        };
        let series = Series {
            interval_s: 0.5,
            samples: vec![
                sample(0.0, Stage::Ramp, 0),
                sample(0.5, Stage::Ramp, 1),
                sample(0.7, Stage::Ready, 2),
                sample(1.0, Stage::Measure, 2),
            ],
        };
        let r = Report::build(&plan, &stats, &MemProbe::default(), 1).with_samples(series);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(v["sample_interval_s"], 0.5);
        let samples = v["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), 4);
        assert_eq!(
            samples[2],
            serde_json::json!({
                "t_s": 0.7,
                "stage": "ready",
                "connections_held": 2,
                "server_rss_bytes": 4_002_000,
                "server_rss_anon_bytes": 1_000_000,
                "kernel_sunreclaim_bytes": 90_000_000,
                "mem_available_bytes": null,
            })
        );
        assert_eq!(samples[3]["stage"], "measure");
        assert_eq!(v["latency_us"]["p9999"], 300);
        let ladder = v["latency_quantiles_us"].as_array().expect("ladder");
        assert_eq!(ladder[0], serde_json::json!({"quantile": 0.0, "us": 100}));
        assert_eq!(ladder[ladder.len() - 1]["quantile"], 1.0);
        assert_eq!(ladder[ladder.len() - 1]["us"], 300);
        let table = r.to_table();
        assert!(table.contains("4 (every 0.5 s; in --json)"), "{table}");
    }

    #[test]
    fn pushes_per_second_and_server_cpu_per_push_and_delivery() {
        let plan = crate::plan::plan_from_args(&[
            "lg",
            "fanout",
            "-n",
            "10",
            "--msg-rate",
            "0",
            "--in-flight",
            "32",
            "--admin-conns",
            "1",
        ]);
        let mut stats = Stats::default();
        let c = &mut stats.c;
        c.measure_start_ns = 1_000_000_000;
        c.measure_end_ns = 3_500_000_000;
        c.last_push_reply_ns = 3_000_000_000;
        c.pushes_sent = 1000;
        c.pushes_ok = 1000;
        c.deliveries = 4000;
        c.server_cpu_start_us = Some(10_000);
        c.server_cpu_end_us = Some(60_000);
        c.server_cpu_start_ns = 1_000_000_000;
        c.server_cpu_end_ns = 3_500_000_000;
        let r = Report::build(&plan, &stats, &MemProbe::default(), 1);
        assert_eq!(r.publish_s, 2.0);
        assert_eq!(r.pushes_per_s, 500.0);
        assert_eq!(r.server_cpu_us, Some(50_000));
        assert_eq!(r.server_cpu_us_per_push, Some(50.0));
        assert_eq!(r.server_cpu_us_per_delivery, Some(12.5));
        assert_eq!(r.server_cpu_us_per_request, None);
        assert_eq!(r.server_cpu_cores, Some(0.02));
        assert_eq!((r.msg_rate, r.in_flight, r.admin_conns), (0, 32, 1));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(v["server_cpu_us_per_push"], 50.0);
        assert_eq!(v["pushes_per_s"], 500.0);
        let table = r.to_table();
        assert!(table.contains("closed loop, 32 in flight"), "{table}");
        assert!(table.contains("50.00 µs per push"), "{table}");
    }
}
