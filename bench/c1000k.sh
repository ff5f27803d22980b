#!/usr/bin/env bash
# bench/c1000k.sh (`make c1000k`): the million-connection benchmark.
#
# Checks the host (sysctl/check.sh), reads the open-file limit, starts rcomet on the benchmark ports
# sized for the target, then
#   1. hold:  rcomet-loadgen connect -n COUNT (one channel each, JSONP long-poll, memory guard),
#             held HOLD seconds; server RSS and kernel memory per connection at full count;
#   2. push:  rcomet-loadgen fanout -n COUNT, one message per channel (= per subscriber), at
#             MSG_RATE/s, with every subscriber connected: deliveries/s, latency, lost messages;
# and prints one table. With COMPARE_FRONT/COMPARE_ADMIN/COMPARE_PID it runs the same two phases
# against that already-running server and prints it as a second column.
#
# When one epoll server process cannot hold C (RLIMIT_NOFILE < C + FD_MARGIN) it says so in one
# line and runs at the largest count one process can hold here.
#
# Env: C (1000000) target connections; ENGINE (epoll | io_uring); HOLD (10) seconds;
#      MSG_RATE (5000) pushes/s (what two shared CPUs sustain with 1M long-polling subscribers);
#      MESSAGES (COUNT) pushes in the push phase; FD_MARGIN (1000)
#      descriptors kept free in the server for listeners, admin and stats connections;
#      MIN_FREE_MB (3072) loadgen memory guard; POLLING_TIMEOUT (900) server long-poll timeout;
#      COMPARE_FRONT, COMPARE_ADMIN, COMPARE_PID: a second server to measure the same way.
#
# Depends on: bench/lib.sh, sysctl/check.sh, target/release/{rcomet,rcomet-loadgen}.

set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1-} in
    -h | --help)
        sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac

C=${C:-1000000}
ENGINE=${ENGINE:-epoll}
HOLD=${HOLD:-10}
MSG_RATE=${MSG_RATE:-5000}
FD_MARGIN=${FD_MARGIN:-1000}
MIN_FREE_MB=${MIN_FREE_MB:-3072}
POLLING_TIMEOUT=${POLLING_TIMEOUT:-900}
COMPARE_FRONT=${COMPARE_FRONT:-}
COMPARE_ADMIN=${COMPARE_ADMIN:-}
COMPARE_PID=${COMPARE_PID:-}

is_count() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)); }
is_count "$C" || { echo "c1000k.sh: C must be a positive integer, not '$C'" >&2; exit 2; }
case $ENGINE in epoll | io_uring) ;; *)
    echo "c1000k.sh: ENGINE must be epoll or io_uring, not '$ENGINE'" >&2
    exit 2
    ;;
esac
if [[ -n $COMPARE_FRONT || -n $COMPARE_ADMIN ]] && [[ -z $COMPARE_FRONT || -z $COMPARE_ADMIN ]]; then
    echo "c1000k.sh: COMPARE_FRONT and COMPARE_ADMIN go together" >&2
    exit 2
fi
for bin in "$RCOMET_BIN" "$LOADGEN_BIN"; do
    [[ -x $bin ]] || { echo "c1000k.sh: $bin is missing: run 'make build' first" >&2; exit 1; }
done

bench_init c1000k
echo "== rcomet C1000K benchmark: C=$(fmt_int "$C"), ENGINE=$ENGINE =="
machine_info
wait_quiet "${C1000K_LOAD_MAX:-1.5}" "${C1000K_WAIT_TRIES:-6}" 30

# ---- host ---------------------------------------------------------------------------------------

check_out=$(bash "$BENCH_ROOT/sysctl/check.sh" 2>/dev/null)
if bash "$BENCH_ROOT/sysctl/check.sh" --quiet; then
    echo "host: every sysctl/check.sh setting is satisfied"
else
    # Rows look like "setting | current | wanted | NO".
    awk -F' *[|] *' '$4 == "NO" { printf "host: not satisfied: %s is %s, wanted %s\n", $1, $2, $3 }' \
        <<<"$check_out"
    echo "host: continuing anyway (see sysctl/README.md)"
fi

# The soft limit may be raised up to the hard one without privilege.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then ulimit -Sn "$((C + FD_MARGIN))" 2>/dev/null; else ulimit -Sn "$hard" 2>/dev/null; fi
nofile=$(ulimit -Sn)
[[ $nofile == unlimited ]] && nofile=$((C + FD_MARGIN))

# ---- engine and count ---------------------------------------------------------------------------

engine=$ENGINE
if [[ $ENGINE == io_uring ]]; then
    if rcomet_start --engine io_uring --threads 1 --max-connections 1000; then
        if [[ $RCOMET_ENGINE != io_uring ]]; then
            echo "ENGINE=io_uring: not available (rcomet started with engine=$RCOMET_ENGINE instead): using epoll"
            engine=epoll
        fi
        rcomet_stop
    else
        echo "ENGINE=io_uring: not available (rcomet --engine io_uring did not start): using epoll"
        engine=epoll
    fi
fi

count=$C
if [[ $engine == epoll ]] && ((nofile < C + FD_MARGIN)); then
    count=$((nofile - FD_MARGIN))
    if ((count < 1)); then
        echo "open-file limit $nofile leaves no room for connections (FD_MARGIN $FD_MARGIN): stopping"
        exit 1
    fi
    echo "open-file limit $(fmt_int "$nofile") < $(fmt_int "$((C + FD_MARGIN))"): one epoll rcomet process can hold at most ~$(fmt_int "$count") here; running at $(fmt_int "$count") (raise ulimit -n, or ENGINE=io_uring)"
fi
MESSAGES=${MESSAGES:-$count}

# Kernel ~8.4 KB per loopback pair, ~1 KB in rcomet, a 4 KiB tcp_mem page per unread message.
need_mb=$((count * 14 / 1024 + MIN_FREE_MB))
avail_mb=$(($(meminfo_kb MemAvailable) / 1024))
if ((avail_mb < need_mb)); then
    echo "memory: $(fmt_int "$avail_mb") MB available, ~$(fmt_int "$need_mb") MB wanted for $(fmt_int "$count") loopback connections: the load generator's guard (--min-free-mb $MIN_FREE_MB) may stop the ramp early"
fi

ramp_timeout=$((60 + count / 5000))
hold_timeout=$((ramp_timeout + HOLD + 90))
push_s=$(((MESSAGES + MSG_RATE - 1) / MSG_RATE))
drain=30
push_timeout=$((ramp_timeout + push_s + drain + 90))

# run_phases LABEL FRONT ADMIN PID: the hold and push phases against one server; reports in
# $BENCH_TMP/LABEL.{hold,push}.json and memory samples in $BENCH_TMP/LABEL.samples.
run_phases() {
    local label=$1 front=$2 admin=$3 pid=$4 base
    local -a pidarg=()
    [[ -n $pid ]] && pidarg=(--pid "$pid")
    base=$(tcp_alloc)
    [[ -n $pid ]] && sampler_start "$BENCH_TMP/$label.samples" "$pid" "$admin"
    log "$label: hold phase: connect -n $count --transport poll --hold $HOLD"
    loadgen_json "$BENCH_TMP/$label.hold.json" "$hold_timeout" connect -n "$count" --transport poll \
        --per-channel 1 --hold "$HOLD" --ramp-timeout "$ramp_timeout" --min-free-mb "$MIN_FREE_MB" \
        --front "$front" --admin "$admin" "${pidarg[@]}"
    # Let the server and the kernel let go of the first set of connections.
    wait_tcp_baseline "$base" 120
    log "$label: push phase: fanout -n $count --messages $MESSAGES --msg-rate $MSG_RATE"
    loadgen_json "$BENCH_TMP/$label.push.json" "$push_timeout" fanout -n "$count" --transport poll \
        --per-channel 1 --messages "$MESSAGES" --msg-rate "$MSG_RATE" --drain "$drain" \
        --ramp-timeout "$ramp_timeout" --min-free-mb "$MIN_FREE_MB" \
        --front "$front" --admin "$admin" "${pidarg[@]}"
    sampler_stop
    wait_tcp_baseline "$base" 120
}

start_s=$(date +%s)
tcp_base=$(tcp_alloc)
max_conns=$((count + FD_MARGIN))
if ! rcomet_start --engine "$engine" --max-connections "$max_conns" --max-channels "$max_conns" \
    --polling-timeout "$POLLING_TIMEOUT" --channel-timeout "$POLLING_TIMEOUT" --header-timeout 60; then
    echo "c1000k.sh: rcomet did not start" >&2
    exit 1
fi
rcomet_label="rcomet ($RCOMET_ENGINE)"
run_phases rcomet "$BENCH_FRONT" "$BENCH_ADMIN" "$RCOMET_PID"
rcomet_stop

if [[ -n $COMPARE_FRONT ]]; then
    wait_tcp_baseline "$tcp_base" 120
    if [[ -n $COMPARE_PID ]] && ! kill -0 "$COMPARE_PID" 2>/dev/null; then
        log "COMPARE_PID $COMPARE_PID is not running: no memory figures for it"
        COMPARE_PID=""
    fi
    if curl -s -m 5 -o /dev/null "http://$COMPARE_FRONT/ping"; then
        run_phases compare "$COMPARE_FRONT" "$COMPARE_ADMIN" "$COMPARE_PID"
    else
        echo "compare server: no answer to GET http://$COMPARE_FRONT/ping: its column stays empty"
        echo '{}' >"$BENCH_TMP/compare.hold.json"
        echo '{}' >"$BENCH_TMP/compare.push.json"
    fi
fi

# ---- table --------------------------------------------------------------------------------------

# cell LABEL KIND: one formatted value for the table from the LABEL reports.
cell() {
    local h="$BENCH_TMP/$1.hold.json" p="$BENCH_TMP/$1.push.json" s="$BENCH_TMP/$1.samples"
    case $2 in
        held) printf '%s' "$(fmt_int "$(jget "$h" .connections_held_at_ready)") (end of hold $(fmt_int "$(jget "$h" .connections_held)"))" ;;
        rate) printf '%s/s (%s s)' "$(fmt_int "$(jget "$h" .connect_rate_per_s)")" "$(awk -v v="$(jget "$h" .ramp_s)" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.1f", v; else printf "-" }')" ;;
        rss) printf '%s' "$(fmt_bytes "$(jget "$h" .server_rss_bytes)")" ;;
        rss_peak)
            if [[ -s $s ]]; then printf '%s' "$(fmt_bytes "$(($(sampler_max "$s" 2) * 1024))")"; else printf -- '-'; fi
            ;;
        rss_conn) printf '%s (anon %s)' "$(fmt_bytes "$(jget "$h" .server_rss_per_conn_bytes)")" "$(fmt_bytes "$(jget "$h" .server_rss_anon_per_conn_bytes)")" ;;
        kern_conn) printf '%s' "$(fmt_bytes "$(jget "$h" .kernel_per_conn_bytes)")" ;;
        hold_err) printf '%s' "$(jget "$h" .errors_total)$([[ $(jget "$h" .memory_guard_hit) == true ]] && echo ', memory guard hit')" ;;
        push_held) printf '%s' "$(fmt_int "$(jget "$p" .connections_held_at_ready)")" ;;
        deliv) printf '%s / %s' "$(fmt_int "$(jget "$p" .deliveries)")" "$(fmt_int "$(jget "$p" .expected_deliveries)")" ;;
        deliv_s) printf '%s/s' "$(fmt_int "$(jget "$p" .deliveries_per_s)")" ;;
        lat)
            printf '%s / %s / %s / %s / %s' "$(fmt_us "$(jget "$p" .latency_us.p50)")" \
                "$(fmt_us "$(jget "$p" .latency_us.p90)")" "$(fmt_us "$(jget "$p" .latency_us.p99)")" \
                "$(fmt_us "$(jget "$p" .latency_us.p999)")" "$(fmt_us "$(jget "$p" .latency_us.max)")"
            ;;
        lost) printf '%s / %s / %s / %s' "$(jget "$p" .lost)" "$(jget "$p" .duplicated)" "$(jget "$p" .out_of_order)" "$(jget "$p" .undelivered)" ;;
        push_err) printf '%s (pushes failed %s)' "$(jget "$p" .errors_total)" "$(jget "$p" .pushes_failed)" ;;
        procs) printf '%s (fd limit %s)' "$(jget "$h" .processes)" "$(fmt_int "$(jget "$h" .fd_limit)")" ;;
    esac
}

rows=(
    "connections held|held"
    "connect rate (ramp time)|rate"
    "server RSS at full count|rss"
    "server RSS peak (both phases)|rss_peak"
    "server RSS / connection|rss_conn"
    "kernel memory / connection|kern_conn"
    "hold-phase errors|hold_err"
    "push: subscribers held|push_held"
    "push: deliveries / expected|deliv"
    "push: deliveries/s|deliv_s"
    "latency p50/p90/p99/p99.9/max|lat"
    "lost / dup / out-of-order / undeliv.|lost"
    "push-phase errors|push_err"
    "load generator processes|procs"
)
labels=(rcomet)
heads=("$rcomet_label")
if [[ -n $COMPARE_FRONT ]]; then
    labels+=(compare)
    heads+=("compare ($COMPARE_FRONT${COMPARE_PID:+, pid $COMPARE_PID})")
fi

echo
echo "== C1000K result: $(fmt_int "$count") connections (C=$(fmt_int "$C")), one channel each, JSONP long-poll; push: $(fmt_int "$MESSAGES") messages at $(fmt_int "$MSG_RATE")/s =="
line=$(printf '%-38s' "")
for hd in "${heads[@]}"; do line+=$(printf ' | %-50s' "$hd"); done
echo "$line"
printf '%s\n' "$(printf '%.0s-' $(seq 1 $((38 + 53 * ${#heads[@]}))))"
for r in "${rows[@]}"; do
    line=$(printf '%-38s' "${r%%|*}")
    for l in "${labels[@]}"; do line+=$(printf ' | %-50s' "$(cell "$l" "${r#*|}")"); done
    echo "$line"
done
echo "RSS / connection: VmRSS (RssAnon) delta from before the ramp to full count / held; kernel: SUnreclaim"
echo "delta / held (client + server socket of each loopback connection). Client and server share $(nproc) CPUs."
echo "load $(load_1min) at the end; $(($(date +%s) - start_s)) s; raw reports in $BENCH_TMP"
((BENCH_LOADED)) && echo "NOTE: the machine was busy (load >= ${C1000K_LOAD_MAX:-1.5}) when this ran."
# The server's own count (admin /stats, sampled every second) should never exceed what the load
# generator opened plus a few admin connections: more means clients of someone else's test.
if [[ -s $BENCH_TMP/rcomet.samples ]]; then
    seen=$(sampler_max "$BENCH_TMP/rcomet.samples" 7)
    if ((seen > count + 100)); then
        echo "WARNING: rcomet counted up to $(fmt_int "$seen") connections, more than the $(fmt_int "$count") opened here: other clients used the benchmark ports; numbers NOT valid"
    fi
fi
bench_warning_report
bench_intrusion_report
trap - EXIT
bench_cleanup
