#!/usr/bin/env bash
# bench/c1000k.sh (`make c1000k`): the million-connection benchmark, rcomet alone or side by side
# with C++ iComet 0.2.5 (ICOMET_BIN) and/or a server that is already running (COMPARE_*).
#
# Checks the host (sysctl/check.sh), reads the open-file limit, then runs two phases per server:
#   1. hold:  rcomet-loadgen connect -n COUNT (one channel each, JSONP long-poll, memory guard),
#             held HOLD seconds; server RSS and kernel memory per connection at full count, and
#             memory samples every 0.5 s during the ramp;
#   2. push:  rcomet-loadgen fanout -n COUNT, MESSAGES pushes spread over the channels (one or
#             more per subscriber, each a long-poll cycle), at MSG_RATE/s, with every
#             subscriber connected: deliveries/s, latency, lost messages;
# alternating servers, rcomet first (hold: rcomet, iComet, compare; then push in the same order),
# with a fresh server process for every phase of every server the script starts. It prints one
# table (a column per server, then rcomet/other ratios), writes it and two SVG charts (memory
# against connections held during the ramp; push-phase latency percentiles) into the run's
# directory, and exits 1, the failing rows printed first, when a server held fewer connections
# than its target or lost a message.
#
# One epoll rcomet process, and iComet (always one process), hold at most RLIMIT_NOFILE -
# FD_MARGIN connections: when C is more, the script says so in one line and runs that server at
# the largest count it can hold here, which is then its target (io_uring rcomet is not capped).
#
# Env: C (1000000) target connections; ENGINE (io_uring, the server's default, | epoll); THREADS (0 = one per CPU) rcomet
#      workers; HOLD (10) seconds; MSG_RATE (5000) pushes/s; MESSAGES pushes in the push phase
#      (COUNT, or PUSH_SECONDS (10) x MSG_RATE when that is more: the tail percentiles of a phase
#      of a few seconds are one hiccup of the machine, bench/RESULTS.md "2026-12-06"); FD_MARGIN
#      (1000) descriptors kept free in each server for listeners, admin and stats connections;
#      MIN_FREE_MB (3072) loadgen memory guard; POLLING_TIMEOUT (900) long-poll and channel
#      timeout and CHANNEL_BUFFER_SIZE (10), the same for every server started here;
#      ICOMET_BIN: iComet's icomet-server, started here for a compare column on ICOMET_ADMIN
#      (127.0.0.1:18001) and ICOMET_FRONT (127.0.0.1:18101), config and log in the run directory;
#      COMPARE_FRONT, COMPARE_ADMIN, COMPARE_PID: a second server to measure the same way;
#      APPLY_SYSCTL=1: apply sysctl/ first (sysctl/check.sh --apply, as root); without it an
#      untuned host is named in the output and under the table as not comparable;
#      OUT_DIR (unset): a directory to copy table.txt and the two SVGs to as well;
#      ADMIN_CONNS (4) admin connections and IN_FLIGHT (16 per connection) pushes in flight of the
#      push phase (the offered rate is reached only while in-flight / reply time allows it).
#
# Depends on: bench/lib.sh, bench/lib_icomet.sh, bench/c1000k_table.py, bench/c1000k_charts.py,
#             python3, curl, sysctl/check.sh, the release rcomet and rcomet-loadgen
#             (bench/target_dir.sh says where cargo put them).

set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ICOMET_ADMIN=${ICOMET_ADMIN:-127.0.0.1:18001}
ICOMET_FRONT=${ICOMET_FRONT:-127.0.0.1:18101}
source "$BENCH_DIR/lib_icomet.sh"

case ${1-} in
    -h | --help)
        sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac

C=${C:-1000000}
ENGINE=${ENGINE:-io_uring}
THREADS=${THREADS:-0}
HOLD=${HOLD:-10}
MSG_RATE=${MSG_RATE:-5000}
FD_MARGIN=${FD_MARGIN:-1000}
MIN_FREE_MB=${MIN_FREE_MB:-3072}
POLLING_TIMEOUT=${POLLING_TIMEOUT:-900}
CHANNEL_BUFFER_SIZE=${CHANNEL_BUFFER_SIZE:-10}
ADMIN_CONNS=${ADMIN_CONNS:-4}
IN_FLIGHT=${IN_FLIGHT:-$((ADMIN_CONNS * 16))}
COMPARE_FRONT=${COMPARE_FRONT:-}
COMPARE_ADMIN=${COMPARE_ADMIN:-}
COMPARE_PID=${COMPARE_PID:-}
OUT_DIR=${OUT_DIR:-}

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
is_count "$CHANNEL_BUFFER_SIZE" || { echo "c1000k.sh: CHANNEL_BUFFER_SIZE must be a positive integer" >&2; exit 2; }
is_count "$POLLING_TIMEOUT" || { echo "c1000k.sh: POLLING_TIMEOUT must be a positive integer" >&2; exit 2; }
[[ $THREADS =~ ^[0-9]+$ ]] || { echo "c1000k.sh: THREADS must be a number (0 = one per CPU)" >&2; exit 2; }
for bin in "$RCOMET_BIN" "$LOADGEN_BIN"; do
    [[ -x $bin ]] || { echo "c1000k.sh: $bin is missing: run 'make build' first" >&2; exit 1; }
done
if [[ -n $ICOMET_BIN ]]; then
    [[ -x $ICOMET_BIN ]] || { echo "c1000k.sh: ICOMET_BIN=$ICOMET_BIN is not an executable" >&2; exit 1; }
    for a in "$ICOMET_ADMIN" "$ICOMET_FRONT"; do
        if [[ $a == "$BENCH_ADMIN" || $a == "$BENCH_FRONT" || $a == "$COMPARE_FRONT" || $a == "$COMPARE_ADMIN" ]]; then
            echo "c1000k.sh: iComet's port $a is taken by another server of this run: set ICOMET_ADMIN/ICOMET_FRONT" >&2
            exit 2
        fi
    done
fi
command -v python3 >/dev/null 2>&1 || { echo "c1000k.sh: python3 is needed for the table and charts" >&2; exit 1; }

bench_init c1000k
trap 'icomet_stop; bench_cleanup' EXIT
echo "== rcomet C1000K benchmark: C=$(fmt_int "$C"), ENGINE=$ENGINE${ICOMET_BIN:+, with iComet}${COMPARE_FRONT:+, with $COMPARE_FRONT} =="
machine_info
icomet_version=""
if [[ -n $ICOMET_BIN ]]; then
    icomet_version=$(timeout 5 "$ICOMET_BIN" -h 2>&1 | grep -o -m1 'icomet-server [0-9.]*' || echo 'icomet-server ?')
    echo "iComet:    $ICOMET_BIN ($icomet_version), admin $ICOMET_ADMIN, front $ICOMET_FRONT"
fi
wait_quiet "${C1000K_LOAD_MAX:-1.5}" "${C1000K_WAIT_TRIES:-6}" 30

# ---- host ---------------------------------------------------------------------------------------

host_check || echo "host: continuing anyway"


# The soft limit may be raised up to the hard one without privilege; servers started here inherit it.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then ulimit -Sn "$((C + FD_MARGIN))" 2>/dev/null; else ulimit -Sn "$hard" 2>/dev/null; fi
nofile=$(ulimit -Sn)
[[ $nofile == unlimited ]] && nofile=$((C + FD_MARGIN))

# ---- engine and counts --------------------------------------------------------------------------

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

# cap_count WHO NAME FIX: sets CAPPED to the largest count one process can hold under the
# open-file limit (C when it fits), and says so in one line when that is below C.
CAPPED=0
cap_count() {
    local who=$1 name=$2 fix=$3
    CAPPED=$C
    ((nofile >= C + FD_MARGIN)) && return 0
    CAPPED=$((nofile - FD_MARGIN))
    if ((CAPPED < 1)); then
        echo "open-file limit $nofile leaves no room for connections (FD_MARGIN $FD_MARGIN): stopping"
        exit 1
    fi
    echo "open-file limit $(fmt_int "$nofile") < $(fmt_int "$((C + FD_MARGIN))"): $who can hold at most ~$(fmt_int "$CAPPED") here; running $name at $(fmt_int "$CAPPED") ($fix)"
}

# Per server: connections (its target), short name, column head, ports.
declare -A COUNT SHORT HEAD FRONT_OF ADMIN_OF
labels=(rcomet)
COUNT[rcomet]=$C
if [[ $engine == epoll ]]; then
    cap_count "one epoll rcomet process" rcomet "raise ulimit -n, or ENGINE=io_uring"
    COUNT[rcomet]=$CAPPED
fi
SHORT[rcomet]=rcomet
FRONT_OF[rcomet]=$BENCH_FRONT
ADMIN_OF[rcomet]=$BENCH_ADMIN
if [[ -n $ICOMET_BIN ]]; then
    labels+=(icomet)
    cap_count "iComet, one process with ordinary descriptors," iComet "raise ulimit -n"
    COUNT[icomet]=$CAPPED
    SHORT[icomet]=iComet
    HEAD[icomet]="iComet ${icomet_version#icomet-server }"
    FRONT_OF[icomet]=$ICOMET_FRONT
    ADMIN_OF[icomet]=$ICOMET_ADMIN
fi
if [[ -n $COMPARE_FRONT ]]; then
    labels+=(compare)
    COUNT[compare]=${COUNT[rcomet]}
    SHORT[compare]=compare
    HEAD[compare]="compare ($COMPARE_FRONT${COMPARE_PID:+, pid $COMPARE_PID})"
    FRONT_OF[compare]=$COMPARE_FRONT
    ADMIN_OF[compare]=$COMPARE_ADMIN
fi
max_count=0
for l in "${labels[@]}"; do ((COUNT[$l] > max_count)) && max_count=${COUNT[$l]}; done
MESSAGES=${MESSAGES:-}
PUSH_SECONDS=${PUSH_SECONDS:-10}

# Kernel ~8.4 KB per loopback pair, ~3 KB in the server, a 4 KiB tcp_mem page per unread message.
need_mb=$((max_count * 16 / 1024 + MIN_FREE_MB))
avail_mb=$(($(meminfo_kb MemAvailable) / 1024))
if ((avail_mb < need_mb)); then
    echo "memory: $(fmt_int "$avail_mb") MB available, ~$(fmt_int "$need_mb") MB wanted for $(fmt_int "$max_count") loopback connections: the load generator's guard (--min-free-mb $MIN_FREE_MB) may stop the ramp early"
fi

drain=30
# phase_timeouts COUNT MESSAGES: sets ramp_timeout, hold_timeout and push_timeout (seconds).
phase_timeouts() {
    local n=$1 m=$2
    ramp_timeout=$((60 + n / 5000))
    hold_timeout=$((ramp_timeout + HOLD + 90))
    push_timeout=$((ramp_timeout + (m + MSG_RATE - 1) / MSG_RATE + drain + 90))
}

# The same settings for every server started here.
max_conns=$((C + FD_MARGIN))
rcomet_flags=(--engine "$engine" --max-connections "$((COUNT[rcomet] + FD_MARGIN))"
    --max-channels "$max_conns" --max-subscribers-per-channel "$max_conns"
    --polling-timeout "$POLLING_TIMEOUT" --channel-timeout "$POLLING_TIMEOUT"
    --channel-buffer-size "$CHANNEL_BUFFER_SIZE" --header-timeout 60)
((THREADS > 0)) && rcomet_flags+=(--threads "$THREADS")
icomet_settings=(max_channels="$max_conns" max_subscribers_per_channel="$max_conns"
    polling_timeout="$POLLING_TIMEOUT" channel_timeout="$POLLING_TIMEOUT"
    channel_buffer_size="$CHANNEL_BUFFER_SIZE")

# server_up LABEL: a fresh server (rcomet, iComet) or the running one (compare); sets SERVER_PID
# (empty when unknown) and returns 1 when there is no server to measure.
SERVER_PID=""
server_up() {
    SERVER_PID=""
    case $1 in
        rcomet)
            rcomet_start "${rcomet_flags[@]}" || return 1
            SERVER_PID=$RCOMET_PID
            HEAD[rcomet]="rcomet ($RCOMET_ENGINE, $(grep -m1 -o 'workers=[0-9]*' "$RCOMET_LOG" | cut -d= -f2) workers)"
            ;;
        icomet)
            icomet_start "${icomet_settings[@]}" || return 1
            SERVER_PID=$ICOMET_PID
            ;;
        compare)
            if [[ -n $COMPARE_PID ]] && ! kill -0 "$COMPARE_PID" 2>/dev/null; then
                log "COMPARE_PID $COMPARE_PID is not running: no memory figures for it"
                COMPARE_PID=""
            fi
            SERVER_PID=$COMPARE_PID
            curl -s -m 5 -o /dev/null "http://$COMPARE_FRONT/ping" && return 0
            echo "compare server: no answer to GET http://$COMPARE_FRONT/ping: its column stays empty"
            return 1
            ;;
    esac
}

server_down() {
    case $1 in
        rcomet) rcomet_stop ;;
        icomet) icomet_stop ;;
    esac
}

# run_phase LABEL PHASE: one phase (hold or push) against one server; its report in
# $BENCH_TMP/LABEL.PHASE.json ("{}" when it did not run) and, in the hold phase, memory samples
# (bench/lib.sh's sampler, every second) appended to $BENCH_TMP/LABEL.samples. The push phase
# has only the load generator's own samples (server RSS from /proc, no process started): the
# sampler's curl, jq and awk each second took a CPU for a few ms on this 2-CPU VM, and with it
# running rcomet's push p99 at 19,000 was 0.8-1.2 ms against 0.34-0.44 ms without.
run_phase() {
    local label=$1 phase=$2 n=${COUNT[$1]} base out="$BENCH_TMP/$1.$2.json" m
    local front=${FRONT_OF[$1]} admin=${ADMIN_OF[$1]}
    local -a pidarg=()
    echo '{}' >"$out"
    m=${MESSAGES:-$((n > PUSH_SECONDS * MSG_RATE ? n : PUSH_SECONDS * MSG_RATE))}
    phase_timeouts "$n" "$m"
    base=$(tcp_alloc)
    server_up "$label" || return 0
    [[ -n $SERVER_PID ]] && pidarg=(--pid "$SERVER_PID")
    [[ -n $SERVER_PID && $phase == hold ]] && sampler_start "$BENCH_TMP/$label.samples" "$SERVER_PID" "$admin"
    if [[ $phase == hold ]]; then
        log "$label: hold phase: connect -n $n --transport poll --hold $HOLD"
        loadgen_json "$out" "$hold_timeout" connect -n "$n" --transport poll \
            --per-channel 1 --hold "$HOLD" --ramp-timeout "$ramp_timeout" --min-free-mb "$MIN_FREE_MB" \
            --sample-interval-ms 500 --front "$front" --admin "$admin" "${pidarg[@]}"
    else
        log "$label: push phase: fanout -n $n --messages $m --msg-rate $MSG_RATE"
        loadgen_json "$out" "$push_timeout" fanout -n "$n" --transport poll \
            --per-channel 1 --messages "$m" --msg-rate "$MSG_RATE" --drain "$drain" \
            --admin-conns "$ADMIN_CONNS" --in-flight "$IN_FLIGHT" \
            --ramp-timeout "$ramp_timeout" --min-free-mb "$MIN_FREE_MB" \
            --sample-interval-ms 500 --front "$front" --admin "$admin" "${pidarg[@]}"
    fi
    sampler_stop
    server_down "$label"
    # Let the server and the kernel let go of this set of connections before the next run.
    wait_tcp_baseline "$base" 120
}

start_s=$(date +%s)
for phase in hold push; do
    for label in "${labels[@]}"; do
        run_phase "$label" "$phase"
    done
done
HEAD[rcomet]=${HEAD[rcomet]:-rcomet ($engine)}

# ---- table and charts ---------------------------------------------------------------------------

runs="$BENCH_TMP/runs.tsv"
: >"$runs"
for l in "${labels[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$l" "${SHORT[$l]}" "${HEAD[$l]}" "${COUNT[$l]}" \
        "$BENCH_TMP/$l.hold.json" "$BENCH_TMP/$l.push.json" "$BENCH_TMP/$l.samples" >>"$runs"
done
counts=""
for l in "${labels[@]}"; do counts+="${counts:+, }${SHORT[$l]} $(fmt_int "${COUNT[$l]}")"; done
commit=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
stamp="$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, C=$(fmt_int "$C"), $(nproc) CPUs shared by servers and load generator"

table="$BENCH_TMP/table.txt"
{
    echo "== C1000K result: $counts connections (C=$(fmt_int "$C")), one channel each, JSONP long-poll; push: one message per subscriber at $(fmt_int "$MSG_RATE")/s =="
    timeout 60 python3 "$BENCH_DIR/c1000k_table.py" "$runs"
    echo "$?" >"$BENCH_TMP/table.rc"
    echo "RSS / connection: VmRSS (RssAnon) delta from before the ramp to full count / held; kernel: SUnreclaim"
    echo "delta / held (client + server socket of each loopback connection). Client and server share $(nproc) CPUs."
    echo "Order: hold phase of each server, then push phase of each (rcomet first), a fresh server per phase;"
    echo "every server: polling_timeout = channel_timeout = $POLLING_TIMEOUT s, channel_buffer_size $CHANNEL_BUFFER_SIZE."
    echo "load $(load_1min) at the end; $(($(date +%s) - start_s)) s; raw reports in $BENCH_TMP"
    ((BENCH_LOADED)) && echo "NOTE: the machine was busy (load >= ${C1000K_LOAD_MAX:-1.5}) when this ran."
    host_untuned_note
    # The server's own count (admin /stats, sampled every second of the hold phase) should never exceed what the
    # load generator opened plus a few admin connections: more means clients of someone else's test.
    if [[ -s $BENCH_TMP/rcomet.samples ]]; then
        seen=$(sampler_max "$BENCH_TMP/rcomet.samples" 7)
        if ((seen > COUNT[rcomet] + 100)); then
            echo "WARNING: rcomet counted up to $(fmt_int "$seen") connections, more than the $(fmt_int "${COUNT[rcomet]}") opened here: other clients used the benchmark ports; numbers NOT valid"
        fi
    fi
    bench_warning_report
    if ((${#ICOMET_WARNINGS[@]})); then
        echo "iComet errors:"
        for w in "${ICOMET_WARNINGS[@]}"; do echo "  - $w"; done
    fi
    bench_intrusion_report
} | tee "$table"
table_rc=$(cat "$BENCH_TMP/table.rc" 2>/dev/null || echo 2)
rm -f "$BENCH_TMP/table.rc"

charts=$(timeout 60 python3 "$BENCH_DIR/c1000k_charts.py" "$runs" "$BENCH_TMP" "$stamp")
echo "table and charts: $table${charts:+ }$(tr '\n' ' ' <<<"$charts")"
if [[ -n $OUT_DIR ]]; then
    mkdir -p "$OUT_DIR" && cp "$table" $charts "$OUT_DIR/" && echo "copied to $OUT_DIR"
fi

trap - EXIT
icomet_stop
bench_cleanup
status=0
if ((table_rc != 0)); then
    echo "c1000k: FAILED (see the failing rows above the table)"
    status=1
fi
if ((${#BENCH_INTRUSIONS[@]})); then
    echo "c1000k: INVALID: another process shared the benchmark ports"
    status=1
fi
exit "$status"
