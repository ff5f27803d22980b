#!/usr/bin/env bash
# bench/big_channel.sh (make big-channel): does a push to one big channel hold up anyone else?
# The independent probe (bench/burst_probe.py: connect → long-poll → push → delivery on fresh
# sockets every 20 ms, on its own small channel) runs while N `/stream` subscribers of ONE channel
# are connected and then get MESSAGES pushes at RATE per second (each push is N deliveries, one
# send each). Prints the probe's round trip p50 / p99 / max per phase (before, subscribe, push,
# after) with the push on its established admin connection apart, and the fan-out's own delivery
# latency and server CPU per delivery; exits 1 when the probe's p99 in any phase is above P99_MS
# (default 5) or its worst above MAX_MS (default 50), or when a delivery was lost.
#
# Environment: N (subscribers, default 18000: what one epoll process holds under this machine's
# open-file limit; ENGINE=io_uring holds more), ENGINE (epoll | io_uring, default epoll), THREADS
# (2), RATE (pushes per second, 2), MESSAGES (20), PHASE_S (seconds of the before and after
# phases, 3), P99_MS, MAX_MS, PROBE_RT=1 (the probe at real-time priority), BIG_OUT (default
# bench/results/big-channel-ENGINE-N-DATE: probe.csv, phases.txt, loadgen.json, summary.txt).
# Depends on bench/lib.sh, bench/probe_lib.sh, curl, python3; bounded: every phase has a timeout.
set -u -o pipefail
# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"
# shellcheck source=bench/probe_lib.sh
source "$BENCH_DIR/probe_lib.sh"
bench_parse_args 16 "$@"
N=${N:-18000}
ENGINE=${ENGINE:-epoll}
THREADS=${THREADS:-2}
RATE=${RATE:-2}
MESSAGES=${MESSAGES:-20}
PHASE_S=${PHASE_S:-3}
BIG_OUT=${BIG_OUT:-$BENCH_DIR/results/big-channel-$ENGINE-$N-$(date +%F)}
bench_init big-channel
probe_init "$BIG_OUT"

machine_info | tee "$BIG_OUT/summary.txt"
host_check

rcomet_start --engine "$ENGINE" --threads "$THREADS" --max-connections $((N + 1000)) \
    --max-subscribers-per-channel $((N + 10)) --header-timeout 300 --channel-timeout 300 \
    --polling-timeout 300 || exit 1
probe_start

probe_phase before
sleep "$PHASE_S"
probe_phase subscribe
"$LOADGEN_BIN" fanout -n "$N" --per-channel "$N" --transport stream --msg-rate "$RATE" \
    --messages "$MESSAGES" --in-flight 4 --admin-conns 1 --msg-size 100 --drain 30 \
    --ramp-timeout 120 --front "$BENCH_FRONT" --admin "$BENCH_ADMIN" --pid "$RCOMET_PID" \
    --quiet --json >"$BIG_OUT/loadgen.json" 2>"$BIG_OUT/loadgen.err" &
lg_pid=$!
BENCH_PIDS+=("$lg_pid")
# The load generator pushes as soon as all its subscribers are in.
wait_stats subscribers ge "$N" 150 || log "only $(stats_value subscribers) subscribers"
probe_phase push
wait "$lg_pid"
lg_status=$?
probe_phase after
sleep "$PHASE_S"
probe_phase end
probe_stop
fanout=$(python3 - "$BIG_OUT/loadgen.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no load-generator report ({e})")
    sys.exit(0)
lat = d.get("latency_us", {})
cpu = d.get("server_cpu_us_per_delivery")
lost = d.get("expected_deliveries", 0) - d.get("deliveries", 0)
print(f"{d.get('deliveries')} of {d.get('expected_deliveries')} delivered (lost {lost}), "
      f"delivery p50 {lat.get('p50', 0) / 1000:.1f} ms, p99 {lat.get('p99', 0) / 1000:.1f} ms, "
      f"server CPU {cpu if cpu is None else round(cpu, 2)} us per delivery")
PY
)
{
    echo
    echo "command:   ENGINE=$ENGINE N=$N RATE=$RATE MESSAGES=$MESSAGES THREADS=$THREADS PROBE_RT=${PROBE_RT:-0} bash bench/big_channel.sh"
    echo "fan-out:   one channel x $N /stream subscribers, $MESSAGES pushes at $RATE/s: $fanout (${ENGINE}, $THREADS workers)"
    probe_report
} | tee -a "$BIG_OUT/summary.txt"
cp "$RCOMET_LOG" "$BIG_OUT/server.log" 2>/dev/null
rcomet_stop
status=0
if ((lg_status != 0)) || [[ $fanout != *"(lost 0)"* ]]; then
    echo "FAIL: the fan-out lost deliveries or the load generator failed (status $lg_status)" |
        tee -a "$BIG_OUT/summary.txt"
    status=1
fi
probe_check "$BIG_OUT/summary.txt" || status=1
exit "$status"
