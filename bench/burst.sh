#!/usr/bin/env bash
# bench/burst.sh (make burst): does a burst of clients hold up anyone else? An independent probe
# (bench/burst_probe.py: connect → long-poll → push → delivery on fresh sockets every 20 ms) runs
# while N `/stream` subscribers connect as fast as the load generator can open them, are held,
# and are then all killed at once (SIGKILL of every load-generator process: the kernel closes
# their sockets together, as a network drop would). Prints the probe's round trip p50 / p99 / max
# in each phase (before, connect, held, vanish, after) and the burst's own connect rate; exits 1
# when the probe's p99 in any phase is above P99_MS (default 5) or its worst above MAX_MS
# (default 50), or when fewer than N subscribers were held.
#
# Environment: N (subscribers, default 60000: io_uring holds them without a descriptor each;
# with epoll the open-file limit caps one process, 18000 here), ENGINE (io_uring | epoll,
# default io_uring), THREADS (2), PHASE_S (seconds of the before, held and after phases, 3),
# P99_MS, MAX_MS, PROBE_RT=1 (run the probe at real-time priority, so the probe's own
# scheduling on a saturated machine is not counted as the server's delay; off by default),
# BURST_OUT (default bench/results/burst-ENGINE-N-DATE: probe.csv, phases.txt, summary.txt).
# Depends on bench/lib.sh, bench/probe_lib.sh, curl, python3; bounded: every phase has a timeout.
set -u -o pipefail
# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"
# shellcheck source=bench/probe_lib.sh
source "$BENCH_DIR/probe_lib.sh"
bench_parse_args 17 "$@"
N=${N:-60000}
ENGINE=${ENGINE:-io_uring}
THREADS=${THREADS:-2}
PHASE_S=${PHASE_S:-3}
SERVER_CPUS=${SERVER_CPUS:-}
LOADGEN_CPU=${LOADGEN_CPU:-}
BURST_OUT=${BURST_OUT:-$BENCH_DIR/results/burst-$ENGINE-$N-$(date +%F)}
bench_init burst
probe_init "$BURST_OUT"

machine_info | tee "$BURST_OUT/summary.txt"
host_check

# stream subscribers of one channel each; the server's timeouts are longer than the run.
rcomet_start --engine "$ENGINE" --threads "$THREADS" --max-connections $((N + 1000)) \
    --header-timeout 300 --channel-timeout 300 --polling-timeout 300 || exit 1
if [[ -n $SERVER_CPUS ]]; then taskset -a -p -c "$SERVER_CPUS" "$RCOMET_PID" >/dev/null || exit 1; fi
probe_start

probe_phase before
sleep "$PHASE_S"
probe_phase connect
t0=$(date +%s.%N)
# Its own process group, so that one SIGKILL reaches every load-generator process at once.
setsid "$LOADGEN_BIN" connect -n "$N" ${LOADGEN_CPU:+--pin-cpu "$LOADGEN_CPU"} --transport stream --hold 600 --ramp-timeout 120 \
    --front "$BENCH_FRONT" --admin "$BENCH_ADMIN" --quiet --json >"$BURST_OUT/loadgen.json" 2>"$BURST_OUT/loadgen.err" &
lg_pid=$!
BENCH_PIDS+=("$lg_pid")
held_ok=1
wait_stats subscribers ge "$N" 150 || held_ok=0
t1=$(date +%s.%N)
held=$(stats_value subscribers)
probe_phase held
sleep "$PHASE_S"
probe_phase vanish
kill -KILL -- "-$lg_pid" 2>/dev/null
wait_stats subscribers le 0 120 || log "subscribers still counted after 120 s: $(stats_value subscribers)"
probe_phase after
sleep "$PHASE_S"
probe_phase end
probe_stop
rate=$(python3 -c "print(round($held / ($t1 - $t0)))")
{
    echo
    echo "command:   ENGINE=$ENGINE N=$N THREADS=$THREADS PROBE_RT=${PROBE_RT:-0} bash bench/burst.sh"
    echo "burst:     $held of $N /stream subscribers held, connected at $rate/s (${ENGINE}, $THREADS workers)"
    probe_report
} | tee -a "$BURST_OUT/summary.txt"
cp "$RCOMET_LOG" "$BURST_OUT/server.log" 2>/dev/null
rcomet_stop
status=0
if ((!held_ok)); then
    echo "FAIL: held $held of $N subscribers" | tee -a "$BURST_OUT/summary.txt"
    status=1
fi
probe_check "$BURST_OUT/summary.txt" || status=1
exit "$status"
