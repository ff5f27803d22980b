#!/usr/bin/env bash
# bench/soak.sh (make soak): a bounded churn soak. Clients arrive and leave continuously at a
# steady rate well below saturation (bench/soak_clients.py: long-poll cycles on keep-alive
# connections that close every few polls, /stream subscribers that vanish with a reset, no FIN
# and no /close, and a publisher pushing throughout), while every SAMPLE_S seconds the server's
# RSS, the kernel's memory (SUnreclaim, sockstat), the server's open descriptors and its
# connections, subscribers, channels, timers and mailbox depth (/metrics) are written to a CSV.
#
# Phases: a warm-up (WARMUP_S, default a tenth of SOAK_S) with the same clients, which all leave;
# the baseline is sampled with every client gone (so the allocator's and the slab's first growth
# is not taken for a leak) and once the longest timer (keep-alive, 60 s) has passed, since timer
# entries of closed connections leave the wheel when they come due; then the soak proper for the
# rest of SOAK_S; every client leaves again, the same wait, and the end state is compared with
# the baseline: RSS within 10 %, the same open descriptors and connections, timer entries within
# the sampler's own jitter, no subscriber and no mail left, no client error and no refused
# connection. Prints the table (failing rows first) and exits 1 when a check fails.
#
# Writes into SOAK_OUT (default bench/results/soak-ENGINE-DATE): samples.csv, soak.svg (drawn by
# bench/soak_chart.py), summary.txt and the server's log.
#
# Environment: SOAK_S (total client time, default 420: with the two waits the run stays under
# 10 minutes), DRAIN_S (the wait after the clients leave, default 65),
# WARMUP_S, SAMPLE_S (default 5), ENGINE (epoll | io_uring, default epoll), THREADS (default 2),
# SOAK_POLLERS (8), SOAK_STREAMERS (8), SOAK_PUSH_RATE (pushes/s, 20), SOAK_CHANNELS (20),
# RCOMET_BIN (default: the release build). Depends on bench/lib.sh, curl, python3.
set -u -o pipefail

# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "$0")" && pwd)/lib.sh"
bench_parse_args 25 "$@"

SOAK_S=${SOAK_S:-420}
DRAIN_S=${DRAIN_S:-65}
WARMUP_S=${WARMUP_S:-$(((SOAK_S / 10) > 5 ? SOAK_S / 10 : 5))}
SAMPLE_S=${SAMPLE_S:-5}
ENGINE=${ENGINE:-epoll}
THREADS=${THREADS:-2}
SOAK_OUT=${SOAK_OUT:-$BENCH_DIR/results/soak-$ENGINE-$(date +%F)}
RSS_SLACK_PCT=10
SETTLE_S=60

# The server lives through the whole soak (warm-up, churn, the checks after it): lib.sh's bound
# on a benchmark server's life (an hour) would stop it during a one-hour soak.
if ((BENCH_SERVER_MAX_LIFE < SOAK_S + 900)); then
    BENCH_SERVER_MAX_LIFE=$((SOAK_S + 900))
fi
if ((SOAK_S <= WARMUP_S)); then
    log "SOAK_S ($SOAK_S) must be longer than WARMUP_S ($WARMUP_S)"
    exit 2
fi
bench_init soak
mkdir -p "$SOAK_OUT"
CSV=$SOAK_OUT/samples.csv
T0=$(date +%s)

# metrics_sum TEXT FAMILY: the sum of a /metrics family over its series ("-" when absent).
metrics_sum() {
    awk -v f="$2" '$1 == f || index($1, f "{") == 1 { s += $NF; n++ } END { if (n) printf "%d", s; else printf "-" }' <<<"$1"
}

# sockstat_field PROTO FIELD: a number from /proc/net/sockstat (TCP inuse, TCP mem in pages).
sockstat_field() {
    awk -v p="$1:" -v f="$2" '$1 == p { for (i = 2; i < NF; i++) if ($i == f) print $(i + 1) }' /proc/net/sockstat
}

open_fds() {
    find "/proc/$RCOMET_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

CSV_HEAD="t_s,phase,rss_kb,rss_anon_kb,sunreclaim_kb,tcp_inuse,tcp_mem_pages,fds,connections,subscribers,channels,timers,mailbox,accepted,refused,pushes,deliveries"

# sample PHASE: one CSV row (also kept in LAST_* for the checks).
sample() {
    local m
    m=$(curl -s -m 5 "http://$BENCH_ADMIN/metrics" 2>/dev/null)
    LAST_RSS=$(proc_status_kb "$RCOMET_PID" VmRSS)
    LAST_FDS=$(open_fds)
    LAST_CONNS=$(metrics_sum "$m" rcomet_connections)
    LAST_SUBS=$(metrics_sum "$m" rcomet_subscribers)
    LAST_TIMERS=$(metrics_sum "$m" rcomet_timers)
    LAST_MAIL=$(metrics_sum "$m" rcomet_mailbox_depth)
    LAST_REFUSED=$(metrics_sum "$m" rcomet_connections_refused_total)
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$(($(date +%s) - T0))" "$1" \
        "$LAST_RSS" "$(proc_status_kb "$RCOMET_PID" RssAnon)" "$(meminfo_kb SUnreclaim)" \
        "$(sockstat_field TCP inuse)" "$(sockstat_field TCP mem)" "$LAST_FDS" "$LAST_CONNS" \
        "$LAST_SUBS" "$(metrics_sum "$m" rcomet_channels)" "$LAST_TIMERS" "$LAST_MAIL" \
        "$(metrics_sum "$m" rcomet_connections_accepted_total)" "$LAST_REFUSED" \
        "$(metrics_sum "$m" rcomet_pushes_total)" "$(metrics_sum "$m" rcomet_deliveries_total)" >>"$CSV"
}

# clients PHASE SECONDS OUT_JSON: runs the clients for SECONDS, sampling meanwhile.
clients() {
    local phase=$1 seconds=$2 out=$3 pid
    python3 "$BENCH_DIR/soak_clients.py" --admin "$BENCH_ADMIN" --front "$BENCH_FRONT" \
        --seconds "$seconds" --pollers "${SOAK_POLLERS:-8}" --streamers "${SOAK_STREAMERS:-8}" \
        --push-rate "${SOAK_PUSH_RATE:-20}" --channels "${SOAK_CHANNELS:-20}" >"$out" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sample "$phase"
        sleep "$SAMPLE_S"
    done
    wait "$pid"
}

# settle PHASE: every client is gone; waits (bounded) until the server holds only the sampler's
# own connection and no subscriber, then samples.
settle() {
    local i
    for ((i = 0; i < SETTLE_S; i++)); do
        sample "$1"
        [[ $LAST_CONNS == 1 && $LAST_SUBS == 0 && $LAST_MAIL == 0 ]] && return 0
        sleep 1
    done
    log "the server still holds $LAST_CONNS connections and $LAST_SUBS subscribers after ${SETTLE_S}s"
    return 1
}

# drain PHASE: samples every SAMPLE_S for DRAIN_S seconds (timer entries of closed connections
# come due and leave the wheel); the last sample is the phase's reading.
drain() {
    local until=$(($(date +%s) + DRAIN_S))
    while (($(date +%s) < until)); do
        sleep "$SAMPLE_S"
        sample "$1"
    done
}

echo "$CSV_HEAD" >"$CSV"
rcomet_start --engine "$ENGINE" --threads "$THREADS" || exit 1
sample start
START_RSS=$LAST_RSS
log "warm-up: ${WARMUP_S}s of churn, then every client leaves"
clients warmup "$WARMUP_S" "$BENCH_TMP/warmup.json"
warm_rc=$?
settle baseline
drain baseline
BASE_RSS=$LAST_RSS BASE_FDS=$LAST_FDS BASE_CONNS=$LAST_CONNS BASE_TIMERS=$LAST_TIMERS
log "baseline: RSS ${BASE_RSS} kB, ${BASE_FDS} descriptors, ${BASE_TIMERS} timers"
SOAK_MAIN=$((SOAK_S - WARMUP_S))
log "soak: ${SOAK_MAIN}s of churn"
clients soak "$SOAK_MAIN" "$BENCH_TMP/soak.json"
soak_rc=$?
settle end
drain end
END_RSS=$LAST_RSS END_FDS=$LAST_FDS END_CONNS=$LAST_CONNS END_TIMERS=$LAST_TIMERS
END_SUBS=$LAST_SUBS END_MAIL=$LAST_MAIL END_REFUSED=$LAST_REFUSED
cp "$RCOMET_LOG" "$SOAK_OUT/rcomet.log" 2>/dev/null
rcomet_stop

jfield() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], "-"))' "$1" "$2" 2>/dev/null || echo -; }
ERRORS=$(($(jfield "$BENCH_TMP/warmup.json" errors) + $(jfield "$BENCH_TMP/soak.json" errors)))
FIRST_ERROR=$(jfield "$BENCH_TMP/soak.json" first_error)
[[ $FIRST_ERROR == None ]] && FIRST_ERROR=$(jfield "$BENCH_TMP/warmup.json" first_error)
CYCLES="polls $(jfield "$BENCH_TMP/soak.json" polls), streams $(jfield "$BENCH_TMP/soak.json" streams), pushes $(jfield "$BENCH_TMP/soak.json" pushes), connections $(jfield "$BENCH_TMP/soak.json" connections)"

# check NAME BASELINE END LIMIT OK: one row of the table.
ROWS_FAIL=() ROWS_OK=()
check() {
    local row
    row=$(printf '%-22s %12s %12s %-22s %s' "$1" "$2" "$3" "$4" "$([[ $5 == 1 ]] && echo ok || echo FAIL)")
    if [[ $5 == 1 ]]; then ROWS_OK+=("$row"); else ROWS_FAIL+=("$row"); fi
}
num() { [[ $1 =~ ^[0-9]+$ ]]; }
rss_limit=$((BASE_RSS * (100 + RSS_SLACK_PCT) / 100))
check "RSS (kB)" "$BASE_RSS" "$END_RSS" "<= $rss_limit (+${RSS_SLACK_PCT} %)" \
    "$(num "$END_RSS" && ((END_RSS <= rss_limit)) && echo 1)"
check "open descriptors" "$BASE_FDS" "$END_FDS" "= baseline" "$([[ $END_FDS == "$BASE_FDS" ]] && echo 1)"
check "connections" "$BASE_CONNS" "$END_CONNS" "= baseline (the sampler)" "$([[ $END_CONNS == "$BASE_CONNS" ]] && echo 1)"
# Each sample is a new admin connection with its own timer entries: allow that much jitter.
timer_limit=$((BASE_TIMERS + 4))
check "timer entries" "$BASE_TIMERS" "$END_TIMERS" "<= $timer_limit" \
    "$(num "$END_TIMERS" && ((END_TIMERS <= timer_limit)) && echo 1)"
check "subscribers" 0 "$END_SUBS" "= 0" "$([[ $END_SUBS == 0 ]] && echo 1)"
check "mailbox depth" 0 "$END_MAIL" "= 0" "$([[ $END_MAIL == 0 ]] && echo 1)"
check "refused connections" 0 "$END_REFUSED" "= 0" "$([[ $END_REFUSED == 0 ]] && echo 1)"
check "client errors" 0 "$ERRORS" "= 0" "$( ((ERRORS == 0 && warm_rc == 0 && soak_rc == 0)) && echo 1)"

{
    echo "soak: engine $RCOMET_LAST_ENGINE, $THREADS threads, ${SOAK_S}s of churn (${WARMUP_S}s warm-up), samples every ${SAMPLE_S}s"
    echo "RSS at start ${START_RSS} kB; baseline after the warm-up with every client gone ${BASE_RSS} kB"
    echo "soak clients: $CYCLES"
    ((${#ROWS_FAIL[@]})) && echo "first client error: $FIRST_ERROR"
    printf '%-22s %12s %12s %-22s %s\n' check baseline end limit verdict
    for row in "${ROWS_FAIL[@]}" "${ROWS_OK[@]}"; do echo "$row"; done
} | tee "$SOAK_OUT/summary.txt"

python3 "$BENCH_DIR/soak_chart.py" "$CSV" "$SOAK_OUT/soak.svg" \
    "$RCOMET_LAST_ENGINE, $(date +%F), $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null)" ||
    log "the chart was not drawn"
log "samples, chart and summary in $SOAK_OUT"
if ((${#ROWS_FAIL[@]})); then
    log "soak FAILED: ${#ROWS_FAIL[@]} check(s)"
    exit 1
fi
