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
# Depends on bench/lib.sh, curl, python3; bounded: every phase has a timeout.
set -u -o pipefail
# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_parse_args 17 "$@"
N=${N:-60000}
ENGINE=${ENGINE:-io_uring}
THREADS=${THREADS:-2}
PHASE_S=${PHASE_S:-3}
P99_MS=${P99_MS:-5}
MAX_MS=${MAX_MS:-50}
SERVER_CPUS=${SERVER_CPUS:-}
LOADGEN_CPU=${LOADGEN_CPU:-}
BURST_OUT=${BURST_OUT:-$BENCH_DIR/results/burst-$ENGINE-$N-$(date +%F)}
bench_init burst
mkdir -p "$BURST_OUT"
phases="$BURST_OUT/phases.txt"
probe_csv="$BURST_OUT/probe.csv"
: >"$phases"
# Each phase starts with the server's /metrics (for its loop-turn histogram) and a timestamp.
phase() {
    curl -s --max-time 5 "http://$BENCH_ADMIN/metrics" >"$BURST_OUT/metrics-$1.txt"
    printf '%s %s\n' "$(date +%s.%N)" "$1" >>"$phases"
    log "phase: $1"
}

machine_info | tee "$BURST_OUT/summary.txt"
host_check

# stream subscribers of one channel each; the server's timeouts are longer than the run.
rcomet_start --engine "$ENGINE" --threads "$THREADS" --max-connections $((N + 1000)) \
    --header-timeout 300 --channel-timeout 300 --polling-timeout 300 || exit 1
if [[ -n $SERVER_CPUS ]]; then taskset -a -p -c "$SERVER_CPUS" "$RCOMET_PID" >/dev/null || exit 1; fi
stop_file="$BENCH_TMP/probe.stop"
probe=(python3 "$BENCH_DIR/burst_probe.py" --front "$BENCH_FRONT" --admin "$BENCH_ADMIN"
    --interval-ms 20 --duration 600 --out "$probe_csv" --stop "$stop_file")
if [[ ${PROBE_RT:-0} == 1 ]]; then probe=(chrt -f 10 "${probe[@]}"); fi
if [[ -n ${PROBE_CPUS:-} ]]; then probe=(taskset -c "$PROBE_CPUS" "${probe[@]}"); fi
"${probe[@]}" &
probe_pid=$!
BENCH_PIDS+=("$probe_pid")

subscribers() { stats_json "$BENCH_ADMIN" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["subscribers"])
except Exception: print(0)'; }
wait_subscribers() { # wait_subscribers CMP COUNT SECONDS
    local deadline=$((SECONDS + $3)) s
    while ((SECONDS < deadline)); do
        s=$(subscribers)
        if [[ $1 == ge ]] && ((s >= $2)); then return 0; fi
        if [[ $1 == le ]] && ((s <= $2)); then return 0; fi
        sleep 0.2
    done
    return 1
}

phase before
sleep "$PHASE_S"
phase connect
t0=$(date +%s.%N)
# Its own process group, so that one SIGKILL reaches every load-generator process at once.
setsid "$LOADGEN_BIN" connect -n "$N" ${LOADGEN_CPU:+--pin-cpu "$LOADGEN_CPU"} --transport stream --hold 600 --ramp-timeout 120 \
    --front "$BENCH_FRONT" --admin "$BENCH_ADMIN" --quiet --json >"$BURST_OUT/loadgen.json" 2>"$BURST_OUT/loadgen.err" &
lg_pid=$!
BENCH_PIDS+=("$lg_pid")
held_ok=1
wait_subscribers ge "$N" 150 || held_ok=0
t1=$(date +%s.%N)
held=$(subscribers)
phase held
sleep "$PHASE_S"
phase vanish
kill -KILL -- "-$lg_pid" 2>/dev/null
wait_subscribers le 0 120 || log "subscribers still counted after 120 s: $(subscribers)"
phase after
sleep "$PHASE_S"
phase end
touch "$stop_file"
wait "$probe_pid" 2>/dev/null
rate=$(python3 -c "print(round($held / ($t1 - $t0)))")
{
    echo
    echo "command:   ENGINE=$ENGINE N=$N THREADS=$THREADS PROBE_RT=${PROBE_RT:-0} bash bench/burst.sh"
    echo "burst:     $held of $N /stream subscribers held, connected at $rate/s (${ENGINE}, $THREADS workers)"
    echo "probe round trip (connect, long-poll, push, delivery) every 20 ms:"
    python3 "$BENCH_DIR/burst_probe.py" --summary "$probe_csv" "$phases" --metrics-dir "$BURST_OUT"
} | tee -a "$BURST_OUT/summary.txt"
cp "$RCOMET_LOG" "$BURST_OUT/server.log" 2>/dev/null
rcomet_stop
status=0
if ((!held_ok)); then
    echo "FAIL: held $held of $N subscribers" | tee -a "$BURST_OUT/summary.txt"
    status=1
fi
bad=$(python3 "$BENCH_DIR/burst_probe.py" --summary "$probe_csv" "$phases" |
    awk -v p99="$P99_MS" -v mx="$MAX_MS" 'NR > 1 && $1 != "end" && ($4 > p99 || $5 > mx || $6 > 0) { print $1 }')
if [[ -n $bad ]]; then
    echo "FAIL: probe over p99 $P99_MS ms / max $MAX_MS ms (or with errors) in: $bad" | tee -a "$BURST_OUT/summary.txt"
    status=1
fi
exit "$status"
