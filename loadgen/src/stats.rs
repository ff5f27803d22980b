//! Counters and the latency histogram one process collects, the JSON result a worker process
//! hands to its parent (histogram as hex of hdrhistogram's V2 serialization), and merging results.
//! Depends on hdrhistogram and serde.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histogram tracks, in µs (one hour); larger values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Why a connection or request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// connect() refused, unreachable, or no local address/port left.
    Connect,
    /// No connect completion or response head within `--timeout`.
    Timeout,
    /// A non-200 status, or a 401/429 message inside a subscription.
    HttpStatus,
    /// A response or message we could not read.
    Parse,
    /// The peer closed or reset the connection unexpectedly.
    Closed,
}

/// Error counts by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Errors {
    pub connect: u64,
    pub timeout: u64,
    pub http_status: u64,
    pub parse: u64,
    pub closed: u64,
}

impl Errors {
    pub fn count(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::HttpStatus => self.http_status += 1,
            ErrorKind::Parse => self.parse += 1,
            ErrorKind::Closed => self.closed += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.http_status + self.parse + self.closed
    }

    pub fn merge(&mut self, o: &Errors) {
        self.connect += o.connect;
        self.timeout += o.timeout;
        self.http_status += o.http_status;
        self.parse += o.parse;
        self.closed += o.closed;
    }
}

/// Everything one process counts. Times are CLOCK_MONOTONIC ns (comparable across processes);
/// 0 means "did not happen".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Connections (subscribers or ping connections) this process was asked to hold.
    pub target: u64,
    /// Connections currently held (subscribed, or connected for ping).
    pub held: u64,
    pub held_peak: u64,
    /// Connections held when the ramp ended.
    pub held_at_ready: u64,
    /// Successful TCP connects, reconnects included.
    pub established: u64,
    /// Reconnects after a response that closed the connection.
    pub reconnects: u64,
    pub errors: Errors,
    /// Data/broadcast messages received, duplicates included.
    pub deliveries: u64,
    /// Deliveries during the measurement, duplicates excluded.
    pub unique_deliveries: u64,
    /// Deliveries the fan-out should produce for the subscribers held at its start.
    pub expected_deliveries: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub noops: u64,
    pub closes: u64,
    /// Completed /ping requests, or admin-scenario requests answered 200 as expected.
    pub requests: u64,
    /// Admin-scenario requests that failed (any status but 200, an unexpected body, a lost
    /// connection).
    pub requests_failed: u64,
    /// Admin replies (pushes and admin-scenario requests) with a status other than 200.
    pub non_200: u64,
    /// Completed churn cycles (connect, subscribe, first frame, disconnect).
    pub cycles: u64,
    pub pushes_sent: u64,
    pub pushes_ok: u64,
    pub pushes_failed: u64,
    pub signs_ok: u64,
    /// A closed-loop fan-out stopped publishing at --duration, before --messages.
    pub publish_capped: bool,
    pub memory_guard_hit: bool,
    pub ramp_start_ns: u64,
    pub ramp_end_ns: u64,
    pub measure_start_ns: u64,
    pub measure_end_ns: u64,
    pub first_delivery_ns: u64,
    pub last_delivery_ns: u64,
    /// When the last push reply arrived (end of the publishing phase).
    pub last_push_reply_ns: u64,
    /// Server CPU (µs, /proc/PID/stat) at the start and at the end of the measurement, and when
    /// each was read; None without --pid or when unreadable.
    pub server_cpu_start_us: Option<u64>,
    pub server_cpu_end_us: Option<u64>,
    pub server_cpu_start_ns: u64,
    pub server_cpu_end_ns: u64,
    /// Server RSS (bytes, /proc/PID/status) at the end of the measurement, with every connection
    /// still held and idle; None without --pid.
    #[serde(default)]
    pub server_rss_end: Option<u64>,
    /// The same three readings of each server process (in --pid order), whose sums are above.
    #[serde(default)]
    pub server_cpu_start_each: Vec<Option<u64>>,
    #[serde(default)]
    pub server_cpu_end_each: Vec<Option<u64>>,
    #[serde(default)]
    pub server_rss_end_each: Vec<Option<u64>>,
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

impl Counters {
    pub fn add_held(&mut self) {
        self.held += 1;
        self.held_peak = self.held_peak.max(self.held);
    }

    pub fn drop_held(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    /// Adds another process's counters: sums counts, widens the time spans.
    pub fn merge(&mut self, o: &Counters) {
        self.target += o.target;
        self.held += o.held;
        self.held_peak += o.held_peak;
        self.held_at_ready += o.held_at_ready;
        self.established += o.established;
        self.reconnects += o.reconnects;
        self.errors.merge(&o.errors);
        self.deliveries += o.deliveries;
        self.unique_deliveries += o.unique_deliveries;
        self.expected_deliveries += o.expected_deliveries;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        self.noops += o.noops;
        self.closes += o.closes;
        self.requests += o.requests;
        self.requests_failed += o.requests_failed;
        self.non_200 += o.non_200;
        self.cycles += o.cycles;
        self.pushes_sent += o.pushes_sent;
        self.pushes_ok += o.pushes_ok;
        self.pushes_failed += o.pushes_failed;
        self.signs_ok += o.signs_ok;
        self.publish_capped |= o.publish_capped;
        self.memory_guard_hit |= o.memory_guard_hit;
        self.ramp_start_ns = min_nonzero(self.ramp_start_ns, o.ramp_start_ns);
        self.ramp_end_ns = self.ramp_end_ns.max(o.ramp_end_ns);
        self.measure_start_ns = min_nonzero(self.measure_start_ns, o.measure_start_ns);
        self.measure_end_ns = self.measure_end_ns.max(o.measure_end_ns);
        self.first_delivery_ns = min_nonzero(self.first_delivery_ns, o.first_delivery_ns);
        self.last_delivery_ns = self.last_delivery_ns.max(o.last_delivery_ns);
        self.last_push_reply_ns = self.last_push_reply_ns.max(o.last_push_reply_ns);
        // CPU time only grows: the earliest start and the latest end reading span every process.
        if o.server_cpu_start_ns != 0
            && (self.server_cpu_start_ns == 0 || o.server_cpu_start_ns < self.server_cpu_start_ns)
        {
            self.server_cpu_start_ns = o.server_cpu_start_ns;
            self.server_cpu_start_us = o.server_cpu_start_us;
            self.server_cpu_start_each
                .clone_from(&o.server_cpu_start_each);
        }
        // Each process reads the RSS when its own hold ends; the largest reading is kept.
        if o.server_rss_end > self.server_rss_end {
            self.server_rss_end = o.server_rss_end;
            self.server_rss_end_each.clone_from(&o.server_rss_end_each);
        }
        if o.server_cpu_end_ns > self.server_cpu_end_ns {
            self.server_cpu_end_ns = o.server_cpu_end_ns;
            self.server_cpu_end_us = o.server_cpu_end_us;
            self.server_cpu_end_each.clone_from(&o.server_cpu_end_each);
        }
    }

    /// Each server process's CPU between the two readings, in µs (in --pid order).
    pub fn server_cpu_us_each(&self) -> Vec<Option<u64>> {
        self.server_cpu_start_each
            .iter()
            .zip(&self.server_cpu_end_each)
            .map(|(a, b)| Some(b.as_ref()?.saturating_sub(*a.as_ref()?)))
            .collect()
    }

    /// Server CPU used between the two readings, in µs.
    pub fn server_cpu_us(&self) -> Option<u64> {
        match (self.server_cpu_start_us, self.server_cpu_end_us) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        }
    }
}

/// A latency histogram in µs.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants (low ≥ 1, high ≥ 2·low, 3 significant figures): never an error.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Records one latency (µs), clamped to the histogram's range.
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

/// What a process collected.
#[derive(Clone, Debug)]
pub struct Stats {
    pub c: Counters,
    pub latency: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            c: Counters::default(),
            latency: new_histogram(),
        }
    }
}

impl Stats {
    pub fn error(&mut self, kind: ErrorKind) {
        self.c.errors.count(kind);
    }

    /// Adds a worker's result.
    pub fn merge(&mut self, r: &WorkerResult) -> Result<(), String> {
        self.c.merge(&r.counters);
        let hist = decode_histogram(&r.latency_hex)?;
        self.latency
            .add(&hist)
            .map_err(|e| format!("histogram merge: {e:?}"))
    }

    pub fn to_result(&self) -> WorkerResult {
        WorkerResult {
            counters: self.c.clone(),
            latency_hex: encode_histogram(&self.latency),
        }
    }
}

/// The JSON a worker prints as its result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerResult {
    pub counters: Counters,
    /// hdrhistogram V2 serialization, hex encoded.
    pub latency_hex: String,
}

pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    if V2Serializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub fn decode_histogram(hex: &str) -> Result<Histogram<u64>, String> {
    if hex.is_empty() {
        return Ok(new_histogram());
    }
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err("odd hex length".into());
    }
    let nibble = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err("bad hex digit".into()),
        }
    };
    let mut bytes = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks_exact(2) {
        bytes.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram decode: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_survives_hex_round_trip_and_merge() {
        let mut a = Stats::default();
        for us in [10, 20, 30, 1000] {
            record_us(&mut a.latency, us);
        }
        a.c.deliveries = 4;
        a.c.errors.count(ErrorKind::Timeout);
        a.c.ramp_start_ns = 50;
        let r = a.to_result();
        let json = serde_json::to_string(&r).expect("json");
        let back: WorkerResult = serde_json::from_str(&json).expect("parse");
        let mut total = Stats::default();
        total.merge(&back).expect("merge");
        total.merge(&back).expect("merge");
        assert_eq!(total.latency.len(), 8);
        assert_eq!(total.c.deliveries, 8);
        assert_eq!(total.c.errors.timeout, 2);
        assert_eq!(total.c.ramp_start_ns, 50);
        assert!(total.latency.max() >= 1000);
    }

    #[test]
    fn bad_hex_is_an_error() {
        assert!(decode_histogram("abc").is_err());
        assert!(decode_histogram("zz").is_err());
        assert!(decode_histogram("0000").is_err());
    }

    #[test]
    fn server_cpu_spans_the_earliest_and_latest_readings() {
        let mut a = Counters {
            server_cpu_start_us: Some(1_000),
            server_cpu_start_ns: 20,
            server_cpu_end_us: Some(5_000),
            server_cpu_end_ns: 90,
            ..Counters::default()
        };
        let b = Counters {
            server_cpu_start_us: Some(800),
            server_cpu_start_ns: 10,
            server_cpu_end_us: Some(7_000),
            server_cpu_end_ns: 95,
            ..Counters::default()
        };
        assert_eq!(a.server_cpu_us(), Some(4_000));
        a.merge(&b);
        assert_eq!(a.server_cpu_us(), Some(6_200));
        a.merge(&Counters::default());
        assert_eq!(a.server_cpu_us(), Some(6_200));
        assert_eq!(Counters::default().server_cpu_us(), None);
    }

    #[test]
    fn each_server_process_is_kept_with_the_readings_chosen() {
        let mut a = Counters {
            server_cpu_start_us: Some(30),
            server_cpu_start_ns: 20,
            server_cpu_start_each: vec![Some(10), Some(20)],
            server_cpu_end_us: Some(100),
            server_cpu_end_ns: 90,
            server_cpu_end_each: vec![Some(40), Some(60)],
            ..Counters::default()
        };
        assert_eq!(a.server_cpu_us_each(), [Some(30), Some(40)]);
        let b = Counters {
            server_cpu_start_us: Some(25),
            server_cpu_start_ns: 10,
            server_cpu_start_each: vec![Some(5), Some(20)],
            server_cpu_end_us: Some(90),
            server_cpu_end_ns: 80,
            server_cpu_end_each: vec![Some(30), Some(60)],
            server_rss_end: Some(7),
            server_rss_end_each: vec![Some(3), Some(4)],
            ..Counters::default()
        };
        a.merge(&b);
        // The earlier start (b's) and the later end (a's), each process alike.
        assert_eq!(a.server_cpu_us_each(), [Some(35), Some(40)]);
        assert_eq!(a.server_cpu_us(), Some(75));
        assert_eq!(a.server_rss_end_each, [Some(3), Some(4)]);
        let json = serde_json::to_string(&a).expect("json");
        let back: Counters = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, a);
    }

    #[test]
    fn held_tracks_peak() {
        let mut c = Counters::default();
        c.add_held();
        c.add_held();
        c.drop_held();
        assert_eq!((c.held, c.held_peak), (1, 2));
    }
}
