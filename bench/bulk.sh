#!/usr/bin/env bash
# bench/bulk.sh (make bulk): do the server's bulk operations hold up anyone else? The burst
# probe (bench/burst_probe.py: connect → long-poll → push → delivery on fresh sockets every
# 20 ms) runs while CHANNELS channels are created by pipelined /sign requests (each a presence
# event for a /psub reader that stays connected throughout), hold, get BROADCASTS /broadcast
# messages one second apart (each stores a message in every channel), and then all expire
# together CHANNEL_TIMEOUT seconds after their creation (an expiry sweep, and a presence storm:
# one offline event per channel for the reader). Prints the probe's round trip p50 / p99 / max
# per phase (before, create, held, broadcast, expire, after) with the server's own longest loop
# turns; exits 1 when the probe's p99 in any phase is above P99_MS (default 5) or its worst
# above MAX_MS (default 50), or when the channels were not all created or did not all expire.
#
# Environment: CHANNELS (default 200000), BROADCASTS (3), CHANNEL_TIMEOUT (seconds, 12),
# ENGINE (epoll | io_uring, default epoll), THREADS (2), PHASE_S (seconds of the before, held
# and after phases, 3), P99_MS, MAX_MS, PROBE_RT=1 (the probe at real-time priority),
# BULK_OUT (default bench/results/bulk-ENGINE-CHANNELS-DATE: probe.csv, phases.txt,
# summary.txt, the server's /metrics at each phase).
# Depends on bench/lib.sh, bench/burst_probe.py, curl, python3; bounded: every wait has a timeout.
set -u -o pipefail
# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_parse_args 18 "$@"
CHANNELS=${CHANNELS:-200000}
BROADCASTS=${BROADCASTS:-3}
CHANNEL_TIMEOUT=${CHANNEL_TIMEOUT:-12}
ENGINE=${ENGINE:-epoll}
THREADS=${THREADS:-2}
PHASE_S=${PHASE_S:-3}
P99_MS=${P99_MS:-5}
MAX_MS=${MAX_MS:-50}
BULK_OUT=${BULK_OUT:-$BENCH_DIR/results/bulk-$ENGINE-$CHANNELS-$(date +%F)}
bench_init bulk
mkdir -p "$BULK_OUT"
phases="$BULK_OUT/phases.txt"
probe_csv="$BULK_OUT/probe.csv"
: >"$phases"
# Each phase starts with the server's /metrics (for its loop-turn histogram) and a timestamp.
phase() {
    curl -s --max-time 5 "http://$BENCH_ADMIN/metrics" >"$BULK_OUT/metrics-$1.txt"
    printf '%s %s\n' "$(date +%s.%N)" "$1" >>"$phases"
    log "phase: $1"
}
channels() { stats_json "$BENCH_ADMIN" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["channels"])
except Exception: print(-1)'; }
wait_channels() { # wait_channels CMP COUNT SECONDS
    local deadline=$((SECONDS + $3)) c
    while ((SECONDS < deadline)); do
        c=$(channels)
        if [[ $1 == ge ]] && ((c >= $2)); then return 0; fi
        if [[ $1 == le ]] && ((c >= 0 && c <= $2)); then return 0; fi
        sleep 0.2
    done
    return 1
}

machine_info | tee "$BULK_OUT/summary.txt"
host_check

rcomet_start --engine "$ENGINE" --threads "$THREADS" --max-channels $((CHANNELS + 1000)) \
    --channel-timeout "$CHANNEL_TIMEOUT" --polling-timeout 300 || exit 1
# A presence reader for the whole run: every creation and expiry is an event it is sent.
curl -s -N --max-time 900 "http://$BENCH_ADMIN/psub" >"$BENCH_TMP/psub.out" 2>/dev/null &
BENCH_PIDS+=("$!")
stop_file="$BENCH_TMP/probe.stop"
probe=(python3 "$BENCH_DIR/burst_probe.py" --front "$BENCH_FRONT" --admin "$BENCH_ADMIN"
    --interval-ms 20 --duration 600 --out "$probe_csv" --stop "$stop_file")
if [[ ${PROBE_RT:-0} == 1 ]]; then probe=(chrt -f 10 "${probe[@]}"); fi
"${probe[@]}" &
probe_pid=$!
BENCH_PIDS+=("$probe_pid")

ok=1
phase before
sleep "$PHASE_S"
phase create
t0=$(date +%s.%N)
"$LOADGEN_BIN" admin --op sign --requests "$CHANNELS" --channel-prefix bulk- --duration 120 \
    --front "$BENCH_FRONT" --admin "$BENCH_ADMIN" --quiet --json >"$BULK_OUT/loadgen.json" 2>"$BULK_OUT/loadgen.err"
t1=$(date +%s.%N)
# The probe's channel counts too.
wait_channels ge "$CHANNELS" 30 || { log "only $(channels) channels"; ok=0; }
created=$(channels)
phase held
sleep "$PHASE_S"
phase broadcast
for ((i = 1; i <= BROADCASTS; i++)); do
    curl -s --max-time 30 "http://$BENCH_ADMIN/broadcast?content=bulk-$i" >/dev/null || ok=0
    sleep 1
done
phase expire
wait_channels le 1 $((CHANNEL_TIMEOUT + 60)) || { log "$(channels) channels left"; ok=0; }
phase after
sleep "$PHASE_S"
phase end
touch "$stop_file"
wait "$probe_pid" 2>/dev/null
rate=$(python3 -c "print(round($CHANNELS / ($t1 - $t0)))")
events=$(grep -c . "$BENCH_TMP/psub.out" 2>/dev/null || echo 0)
{
    echo
    echo "command:   ENGINE=$ENGINE CHANNELS=$CHANNELS BROADCASTS=$BROADCASTS CHANNEL_TIMEOUT=$CHANNEL_TIMEOUT THREADS=$THREADS PROBE_RT=${PROBE_RT:-0} bash bench/bulk.sh"
    echo "bulk:      $created channels created by /sign at $rate/s, $BROADCASTS broadcasts to all, all expired together; $events presence lines read by /psub (${ENGINE}, $THREADS workers)"
    echo "probe round trip (connect, long-poll, push, delivery) every 20 ms:"
    python3 "$BENCH_DIR/burst_probe.py" --summary "$probe_csv" "$phases" --metrics-dir "$BULK_OUT"
} | tee -a "$BULK_OUT/summary.txt"
cp "$RCOMET_LOG" "$BULK_OUT/server.log" 2>/dev/null
rcomet_stop
status=0
if ((!ok)); then
    echo "FAIL: the channels were not all created, broadcast to or expired in time" | tee -a "$BULK_OUT/summary.txt"
    status=1
fi
bad=$(python3 "$BENCH_DIR/burst_probe.py" --summary "$probe_csv" "$phases" |
    awk -v p99="$P99_MS" -v mx="$MAX_MS" 'NR > 1 && $1 != "end" && ($4 > p99 || $5 > mx || $6 > 0) { print $1 }')
if [[ -n $bad ]]; then
    echo "FAIL: probe over p99 $P99_MS ms / max $MAX_MS ms (or with errors) in: $bad" | tee -a "$BULK_OUT/summary.txt"
    status=1
fi
exit "$status"
