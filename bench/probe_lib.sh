#!/usr/bin/env bash
# bench/probe_lib.sh: what bench/burst.sh and bench/bulk.sh share around the independent probe
# (bench/burst_probe.py): phases with the server's /metrics at each start, starting and stopping
# the probe, its per-phase table, the pass/fail check, and waiting on a /stats figure. Sourced
# after bench/lib.sh (uses BENCH_ADMIN, BENCH_FRONT, BENCH_DIR, BENCH_TMP, BENCH_PIDS, log,
# stats_json). Environment: PROBE_RT=1 (the probe at real-time priority), PROBE_CPUS (taskset
# list for the probe), P99_MS (5), MAX_MS (50).

P99_MS=${P99_MS:-5}
MAX_MS=${MAX_MS:-50}

# probe_init DIR: the run's output directory (phases.txt, probe.csv, metrics-PHASE.txt).
probe_init() {
    PROBE_OUT=$1
    mkdir -p "$PROBE_OUT"
    PROBE_PHASES="$PROBE_OUT/phases.txt"
    PROBE_CSV="$PROBE_OUT/probe.csv"
    PROBE_STOP="$BENCH_TMP/probe.stop"
    : >"$PROBE_PHASES"
}

# probe_phase NAME: a phase starts now (the server's /metrics, for its loop-turn histogram).
probe_phase() {
    curl -s --max-time 5 "http://$BENCH_ADMIN/metrics" >"$PROBE_OUT/metrics-$1.txt"
    printf '%s %s\n' "$(date +%s.%N)" "$1" >>"$PROBE_PHASES"
    log "phase: $1"
}

# probe_start: the probe in the background, a round trip every 20 ms (at most 600 s).
probe_start() {
    local probe=(python3 "$BENCH_DIR/burst_probe.py" --front "$BENCH_FRONT" --admin "$BENCH_ADMIN"
        --interval-ms 20 --duration 600 --out "$PROBE_CSV" --stop "$PROBE_STOP")
    if [[ ${PROBE_RT:-0} == 1 ]]; then probe=(chrt -f 10 "${probe[@]}"); fi
    if [[ -n ${PROBE_CPUS:-} ]]; then probe=(taskset -c "$PROBE_CPUS" "${probe[@]}"); fi
    "${probe[@]}" &
    PROBE_PID=$!
    BENCH_PIDS+=("$PROBE_PID")
}

probe_stop() {
    touch "$PROBE_STOP"
    wait "$PROBE_PID" 2>/dev/null
}

# probe_report: the probe's p50 / p99 / max per phase, with the server's longest loop turns.
probe_report() {
    echo "probe round trip (connect, long-poll, push, delivery) every 20 ms:"
    python3 "$BENCH_DIR/burst_probe.py" --summary "$PROBE_CSV" "$PROBE_PHASES" --metrics-dir "$PROBE_OUT"
}

# probe_check SUMMARY: returns 1 (and says so in SUMMARY) when a phase's p99 is over P99_MS, its
# worst over MAX_MS, or it had errors.
probe_check() {
    local bad
    bad=$(python3 "$BENCH_DIR/burst_probe.py" --summary "$PROBE_CSV" "$PROBE_PHASES" |
        awk -v p99="$P99_MS" -v mx="$MAX_MS" 'NR > 1 && $1 != "end" && ($4 > p99 || $5 > mx || $6 > 0) { print $1 }')
    [[ -z $bad ]] && return 0
    echo "FAIL: probe over p99 $P99_MS ms / max $MAX_MS ms (or with errors) in: $bad" | tee -a "$1"
    return 1
}

# stats_value FIELD: a top-level number of /stats (-1 when it cannot be read).
stats_value() {
    stats_json "$BENCH_ADMIN" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)[sys.argv[1]])
except Exception: print(-1)' "$1"
}

# wait_stats FIELD ge|le COUNT SECONDS: until /stats's FIELD is at least / at most COUNT.
wait_stats() {
    local deadline=$((SECONDS + $4)) v
    while ((SECONDS < deadline)); do
        v=$(stats_value "$1")
        if [[ $2 == ge ]] && ((v >= $3)); then return 0; fi
        if [[ $2 == le ]] && ((v >= 0 && v <= $3)); then return 0; fi
        sleep 0.2
    done
    return 1
}
