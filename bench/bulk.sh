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
# Environment: CHANNELS (default 200000), BROADCASTS (3), BROADCAST_GAP_S (seconds between two
# broadcasts, 1; 0 sends them back to back, so each arrives while the last is being stored),
# CHANNEL_TIMEOUT (seconds, 12),
# ENGINE (epoll | io_uring, default epoll), THREADS (2), PHASE_S (seconds of the before, held
# and after phases, 3), P99_MS, MAX_MS, PROBE_RT=1 (the probe at real-time priority),
# BULK_OUT (default bench/results/bulk-ENGINE-CHANNELS-DATE: probe.csv, phases.txt,
# summary.txt, the server's /metrics at each phase).
# Depends on bench/lib.sh, bench/probe_lib.sh, curl, python3; bounded: every wait has a timeout.
set -u -o pipefail
# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"
# shellcheck source=bench/probe_lib.sh
source "$BENCH_DIR/probe_lib.sh"
bench_parse_args 18 "$@"
CHANNELS=${CHANNELS:-200000}
BROADCASTS=${BROADCASTS:-3}
BROADCAST_GAP_S=${BROADCAST_GAP_S:-1}
CHANNEL_TIMEOUT=${CHANNEL_TIMEOUT:-12}
ENGINE=${ENGINE:-epoll}
THREADS=${THREADS:-2}
PHASE_S=${PHASE_S:-3}
BULK_OUT=${BULK_OUT:-$BENCH_DIR/results/bulk-$ENGINE-$CHANNELS-$(date +%F)}
bench_init bulk
probe_init "$BULK_OUT"

machine_info | tee "$BULK_OUT/summary.txt"
host_check

rcomet_start --engine "$ENGINE" --threads "$THREADS" --max-channels $((CHANNELS + 1000)) \
    --channel-timeout "$CHANNEL_TIMEOUT" --polling-timeout 300 || exit 1
# A presence reader for the whole run: every creation and expiry is an event it is sent.
curl -s -N --max-time 900 "http://$BENCH_ADMIN/psub" >"$BENCH_TMP/psub.out" 2>/dev/null &
BENCH_PIDS+=("$!")
probe_start

ok=1
probe_phase before
sleep "$PHASE_S"
probe_phase create
t0=$(date +%s.%N)
"$LOADGEN_BIN" admin --op sign --requests "$CHANNELS" --channel-prefix bulk- --duration 120 \
    --front "$BENCH_FRONT" --admin "$BENCH_ADMIN" --quiet --json >"$BULK_OUT/loadgen.json" 2>"$BULK_OUT/loadgen.err"
t1=$(date +%s.%N)
# The probe's channel counts too.
wait_stats channels ge "$CHANNELS" 30 || { log "only $(stats_value channels) channels"; ok=0; }
created=$(stats_value channels)
probe_phase held
sleep "$PHASE_S"
probe_phase broadcast
for ((i = 1; i <= BROADCASTS; i++)); do
    curl -s --max-time 30 "http://$BENCH_ADMIN/broadcast?content=bulk-$i" >/dev/null || ok=0
    sleep "$BROADCAST_GAP_S"
done
# Back to back: the phase lasts while they are being stored.
[[ $BROADCAST_GAP_S == 0 ]] && sleep "$PHASE_S"
probe_phase expire
wait_stats channels le 1 $((CHANNEL_TIMEOUT + 60)) || { log "$(stats_value channels) channels left"; ok=0; }
probe_phase after
sleep "$PHASE_S"
probe_phase end
probe_stop
rate=$(python3 -c "print(round($CHANNELS / ($t1 - $t0)))")
events=$(grep -c . "$BENCH_TMP/psub.out" 2>/dev/null || echo 0)
{
    echo
    echo "command:   ENGINE=$ENGINE CHANNELS=$CHANNELS BROADCASTS=$BROADCASTS BROADCAST_GAP_S=$BROADCAST_GAP_S CHANNEL_TIMEOUT=$CHANNEL_TIMEOUT THREADS=$THREADS PROBE_RT=${PROBE_RT:-0} bash bench/bulk.sh"
    echo "bulk:      $created channels created by /sign at $rate/s, $BROADCASTS broadcasts to all, all expired together; $events presence lines read by /psub (${ENGINE}, $THREADS workers)"
    probe_report
} | tee -a "$BULK_OUT/summary.txt"
cp "$RCOMET_LOG" "$BULK_OUT/server.log" 2>/dev/null
rcomet_stop
status=0
if ((!ok)); then
    echo "FAIL: the channels were not all created, broadcast to or expired in time" | tee -a "$BULK_OUT/summary.txt"
    status=1
fi
probe_check "$BULK_OUT/summary.txt" || status=1
exit "$status"
