#!/usr/bin/env bash
# bench/lib.sh: shared helpers for the benchmark scripts (source it, do not run it).
# shellcheck disable=SC2034  # globals here are read by the scripts that source this file
#
# Starts rcomet on the fixed benchmark ports (admin 127.0.0.1:18000, front 127.0.0.1:18100, both in
# net.ipv4.ip_local_reserved_ports, see sysctl/), waits for its ready line, stops it by PID; runs
# rcomet-loadgen with --json into a file; reads fields out of JSON (jq, else python3); samples the
# server's memory; prints machine information. Everything a script starts is tracked by PID and
# stopped by bench_cleanup (installed as an EXIT trap by bench_init); nothing is stopped by name.
#
# Depends on: bash, coreutils (timeout), ss (iproute2), jq or python3; the release binaries
# (bench/target_dir.sh says where).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_DIR/.." && pwd)
# Where `make build` put the binaries (CARGO_TARGET_DIR and cargo's config honoured, see
# target_dir.sh); RCOMET_BIN / LOADGEN_BIN name other ones.
if [[ -z ${RCOMET_BIN:-} || -z ${LOADGEN_BIN:-} ]]; then
    BENCH_TARGET_DIR=$(bash "$BENCH_DIR/target_dir.sh")
fi
RCOMET_BIN=${RCOMET_BIN:-$BENCH_TARGET_DIR/release/rcomet}
LOADGEN_BIN=${LOADGEN_BIN:-$BENCH_TARGET_DIR/release/rcomet-loadgen}
BENCH_ADMIN=${BENCH_ADMIN:-127.0.0.1:18000}
BENCH_FRONT=${BENCH_FRONT:-127.0.0.1:18100}
# Longest life of a server started here, even if the script itself is killed (timeout(1) wrapper).
BENCH_SERVER_MAX_LIFE=${BENCH_SERVER_MAX_LIFE:-3600}
# SERVER_NICE: every server started here (rcomet, and iComet through lib_icomet.sh) runs at this
# nice value, e.g. -10: ahead of the load generator on a machine where the two share the CPUs,
# the same for both servers. Unset: the default priority.
BENCH_NICE=()
if [[ -n ${SERVER_NICE:-} ]]; then
    BENCH_NICE=(nice -n "$SERVER_NICE")
fi

RCOMET_PID=""     # the server process (from its ready line)
RCOMET_WRAPPER="" # the timeout(1) process wrapping it
RCOMET_LOG=""     # its stdout + stderr
RCOMET_ENGINE=""  # engine named in its start-up log line (epoll, io_uring) or "unknown"
RCOMET_LAST_ENGINE="none" # the engine of the last server that started (kept after it stops)
RCOMET_GUARD=""   # the port watcher of the running rcomet
RCOMET_FLAGS=""   # its flags, for messages
BENCH_INTRUSIONS=() # "flags: pid ... (cmdline)" for each run where another process shared our ports
BENCH_TMP=""
BENCH_PIDS=()     # background helpers (samplers) to stop on exit

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# bench_init NAME: creates the scratch directory and the EXIT/INT/TERM cleanup.
bench_init() {
    BENCH_TMP=$(mktemp -d "/tmp/rcomet-bench-$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'log "interrupted"; exit 130' INT TERM
}

bench_cleanup() {
    local p
    for p in "${BENCH_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    BENCH_PIDS=()
    rcomet_stop
}

# Prints the PIDs of processes listening on TCP port $1 (empty when none).
port_listeners() {
    ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' '
}

# bench_wait_ports_free [SECONDS [ADDR...]]: waits until nothing listens on the ports of ADDR...
# (default: the benchmark ports). rcomet binds with SO_REUSEPORT, so a second server on the same
# port would silently share its traffic.
bench_wait_ports_free() {
    local limit=${1:-300} waited=0 addr port who
    local -a addrs=("${@:2}")
    ((${#addrs[@]})) || addrs=("$BENCH_ADMIN" "$BENCH_FRONT")
    for addr in "${addrs[@]}"; do
        port=${addr##*:}
        while who=$(port_listeners "$port") && [[ -n $who ]]; do
            if ((waited >= limit)); then
                log "port $port is still taken by pid(s) $who after ${limit}s: not starting a second server on it"
                return 1
            fi
            ((waited % 30 == 0)) && log "port $port is taken by pid(s) $who (another run?): waiting"
            sleep 5
            waited=$((waited + 5))
        done
    done
    return 0
}

# rcomet_start [FLAGS...]: starts rcomet on the benchmark ports with FLAGS and waits for
# "rcomet ready admin=.. front=.. pid=..". Sets RCOMET_PID, RCOMET_ENGINE, RCOMET_LOG.
rcomet_start() {
    local i line
    rcomet_stop
    bench_wait_ports_free "${BENCH_PORT_WAIT:-300}" || return 1
    RCOMET_LOG=$(mktemp "$BENCH_TMP/rcomet.XXXX.log")
    timeout -s TERM -k 10 "$BENCH_SERVER_MAX_LIFE" "${BENCH_NICE[@]}" "$RCOMET_BIN" \
        --admin-listen "$BENCH_ADMIN" --front-listen "$BENCH_FRONT" --log-level info "$@" \
        </dev/null >"$RCOMET_LOG" 2>&1 &
    RCOMET_WRAPPER=$!
    RCOMET_PID=""
    for ((i = 0; i < 150; i++)); do
        line=$(grep -m1 '^rcomet ready ' "$RCOMET_LOG" 2>/dev/null)
        if [[ -n $line ]]; then
            RCOMET_PID=$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' <<<"$line")
            break
        fi
        kill -0 "$RCOMET_WRAPPER" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $RCOMET_PID ]]; then
        log "rcomet did not become ready ($*); its output:"
        tail -n 20 "$RCOMET_LOG" >&2
        rcomet_stop
        return 1
    fi
    RCOMET_ENGINE=$(grep -m1 -o 'engine=[a-z_]*' "$RCOMET_LOG" | cut -d= -f2)
    RCOMET_ENGINE=${RCOMET_ENGINE:-unknown}
    RCOMET_LAST_ENGINE=$RCOMET_ENGINE
    RCOMET_FLAGS="$*"
    port_guard_start "$RCOMET_PID" "$RCOMET_LOG.intruders" "${BENCH_ADMIN##*:}" "${BENCH_FRONT##*:}"
    RCOMET_GUARD=$BENCH_GUARD
    log "rcomet pid $RCOMET_PID ready (engine $RCOMET_ENGINE): $*"
}

# port_listener_count PORT...: the number of listening TCP sockets on PORT... (no process lookup,
# so it costs a few ms whatever the number of connections open; `ss -p` reads every process's
# descriptors, ~150 ms of CPU with 20,000 connections).
port_listener_count() {
    local filter="" port
    for port in "$@"; do filter+="${filter:+ or }sport = :$port"; done
    ss -ltnH "( $filter )" 2>/dev/null | wc -l
}

# port_guard_start PID FILE PORT...: every GUARD_INTERVAL seconds (5), counts the listening
# sockets on PORT... and, when there are more than PID's own (counted at the start), notes in FILE
# every other process listening there. With SO_REUSEPORT the kernel would hand such a process part
# of our connections, so a run during which that happened is not valid (its clients would also
# count as errors or lost messages). Every server a benchmark starts gets the same watcher. Each
# check starts `ss` and `wc`, a few ms of a CPU: once a second that alone moved a hand-run
# long-poll push phase's p99 from 326 to 583 µs (medians of three), hence the longer interval.
# Sets BENCH_GUARD to the watcher's PID.
port_guard_start() {
    local me=$1 out=$2
    local -a ports=("${@:3}")
    (
        own=$(port_listener_count "${ports[@]}")
        while kill -0 "$me" 2>/dev/null; do
            if (($(port_listener_count "${ports[@]}") > own)); then
                for port in "${ports[@]}"; do
                    for p in $(port_listeners "$port"); do
                        [[ $p == "$me" ]] && continue
                        printf '%s port %s: pid %s (%s)\n' "$(date +%T)" "$port" "$p" \
                            "$(tr '\0\n' '  ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-100)" >>"$out"
                    done
                done
            fi
            sleep "${GUARD_INTERVAL:-5}"
        done
    ) &
    BENCH_GUARD=$!
}

# port_guard_stop GUARD FILE WHAT: ends the watcher GUARD (a PID, or empty); when FILE names an
# intruder, records it in BENCH_INTRUSIONS (as WHAT: the intruder) and says so.
port_guard_stop() {
    local guard=$1 f=$2 what=$3 first
    if [[ -n $guard ]]; then
        kill "$guard" 2>/dev/null
        wait "$guard" 2>/dev/null
    fi
    if [[ -n $f && -s $f ]]; then
        first=$(head -n 1 "$f")
        BENCH_INTRUSIONS+=("$what: ${first#* }")
        log "INVALID RUN: another process listened on the benchmark ports meanwhile: ${first#* }"
        rm -f "$f"
    fi
}

BENCH_SERVER_WARNINGS=() # "flags: N warnings, first: ..." per run whose server logged WARN/ERROR

# server_log_check: counts the WARN/ERROR lines of the stopped server's log, notes them in
# BENCH_SERVER_WARNINGS, and cuts a log over 10 MB down to its first and last 1,000 lines.
server_log_check() {
    local f=$RCOMET_LOG n first
    [[ -n $f && -s $f ]] || return 0
    n=$(grep -c -E '\[(WARN|ERROR)\]' "$f")
    if ((n > 0)); then
        first=$(grep -m1 -E '\[(WARN|ERROR)\]' "$f" | cut -c1-160)
        BENCH_SERVER_WARNINGS+=("rcomet $RCOMET_FLAGS: $n WARN/ERROR lines, first: $first")
        log "rcomet logged $n WARN/ERROR lines, first: $first"
    fi
    if (($(stat -c %s "$f") > 10000000)); then
        { head -n 1000 "$f"; echo "... (cut by bench/lib.sh) ..."; tail -n 1000 "$f"; } >"$f.cut"
        mv "$f.cut" "$f"
    fi
}

# bench_intrusion_report: prints the runs spoiled by another listener (nothing when none).
bench_intrusion_report() {
    local m
    ((${#BENCH_INTRUSIONS[@]} == 0)) && return 0
    echo "WARNING: another process listened on the benchmark ports ($BENCH_ADMIN, $BENCH_FRONT) during"
    echo "these runs; SO_REUSEPORT gave it part of the connections, so their numbers are NOT valid:"
    for m in "${BENCH_INTRUSIONS[@]}"; do echo "  - $m"; done
}

# bench_warning_report: prints the runs whose server logged warnings or errors.
bench_warning_report() {
    local m
    ((${#BENCH_SERVER_WARNINGS[@]} == 0)) && return 0
    echo "server warnings:"
    for m in "${BENCH_SERVER_WARNINGS[@]}"; do echo "  - $m"; done
}

# bench_parse_args LAST_HELP_LINE "$@": the arguments every benchmark script takes. --json sets
# json=1 and sends the human output to stderr, keeping stdout (fd 3) for the JSON; -h/--help prints
# the script's header comment up to line LAST_HELP_LINE; anything else is an error (exit 2).
bench_parse_args() {
    local last=$1 arg script
    shift
    script=$(basename "$0")
    json=0
    for arg in "$@"; do
        case $arg in
            --json) json=1 ;;
            -h | --help)
                sed -n "2,${last}p" "$0" | sed 's/^# \{0,1\}//'
                exit 0
                ;;
            *)
                echo "$script: unknown argument $arg" >&2
                exit 2
                ;;
        esac
    done
    if ((json)); then exec 3>&1 1>&2; fi
}

# stop_server NAME PID: SIGTERM to a server started here, SIGKILL after 15 s. A no-op when PID is
# empty or gone.
stop_server() {
    local name=$1 pid=$2 i
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name pid $pid ignored SIGTERM for 15 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
}

# rcomet_stop: stops the rcomet started here (see stop_server). A no-op when none runs.
rcomet_stop() {
    stop_server rcomet "$RCOMET_PID"
    if [[ -n $RCOMET_WRAPPER ]]; then
        kill -TERM "$RCOMET_WRAPPER" 2>/dev/null
        wait "$RCOMET_WRAPPER" 2>/dev/null
    fi
    port_guard_stop "$RCOMET_GUARD" "${RCOMET_LOG:+$RCOMET_LOG.intruders}" "rcomet $RCOMET_FLAGS"
    RCOMET_GUARD=""
    server_log_check
    RCOMET_PID=""
    RCOMET_WRAPPER=""
}

# loadgen_json OUT SECONDS SCENARIO [ARGS...]: runs rcomet-loadgen SCENARIO ARGS --json --quiet,
# bounded by SECONDS, the JSON report in OUT and its stderr in OUT.err. Returns its exit status
# (124 on timeout); OUT holds "{}" when no report came out.
loadgen_json() {
    local out=$1 secs=$2 rc
    shift 2
    timeout -s TERM -k 15 "$secs" "$LOADGEN_BIN" "$@" --json --quiet >"$out" 2>"$out.err"
    rc=$?
    if ! json_valid "$out"; then
        log "loadgen $1 gave no JSON report (exit $rc); stderr:"
        tail -n 5 "$out.err" >&2
        echo '{}' >"$out"
    elif ((rc != 0)); then
        log "loadgen $1 exited with $rc"
    fi
    return $rc
}

json_valid() {
    [[ -s $1 ]] || return 1
    if command -v jq >/dev/null 2>&1; then
        jq -e . "$1" >/dev/null 2>&1
    else
        python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null
    fi
}

# json_stdin PATH: like jget, for a JSON object on stdin.
json_stdin() {
    local f
    f=$(mktemp "${BENCH_TMP:-/tmp}/json.XXXX")
    cat >"$f"
    jget "$f" "$1"
    rm -f "$f"
}

# jget FILE PATH: prints the value at a jq-style PATH (".latency_us.p99", ".errors.connect"), or
# "-" when absent or null.
jget() {
    local v
    if command -v jq >/dev/null 2>&1; then
        v=$(jq -r "$2 // \"-\"" "$1" 2>/dev/null)
    else
        v=$(python3 - "$1" "$2" 2>/dev/null <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].lstrip('.').split('.'):
    v = v.get(k) if isinstance(v, dict) else None
print('-' if v is None else (str(v).lower() if isinstance(v, bool) else v))
EOF
)
    fi
    printf '%s' "${v:--}"
}

# fmt_int N: 1234567 -> 1,234,567 (anything not a number is printed as is).
fmt_int() {
    local n=$1
    if [[ $n =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
        awk -v n="$n" 'BEGIN { printf "%.0f", n }' | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
    else
        printf '%s' "$n"
    fi
}

# fmt_bytes N: bytes with one decimal in B / KB / MB / GB (powers of 1000, as the notes use).
fmt_bytes() {
    local n=$1
    [[ $n =~ ^-?[0-9]+(\.[0-9]+)?$ ]] || { printf '%s' "$n"; return; }
    awk -v n="$n" 'BEGIN {
        a = n < 0 ? -n : n
        if (a >= 1e9) printf "%.2f GB", n / 1e9
        else if (a >= 1e6) printf "%.1f MB", n / 1e6
        else if (a >= 1e3) printf "%.1f KB", n / 1e3
        else printf "%.0f B", n }'
}

# fmt_us N: microseconds as "850 us" / "12.3 ms" / "1.20 s".
fmt_us() {
    local n=$1
    [[ $n =~ ^[0-9]+(\.[0-9]+)?$ ]] || { printf '%s' "$n"; return; }
    awk -v n="$n" 'BEGIN {
        if (n >= 1e6) printf "%.2f s", n / 1e6
        else if (n >= 1e4) printf "%.1f ms", n / 1e3
        else if (n >= 1e3) printf "%.2f ms", n / 1e3
        else printf "%.0f us", n }'
}

# proc_status_kb PID FIELD: VmRSS / RssAnon / VmHWM of PID in kB ("-" when unreadable).
proc_status_kb() {
    local v
    v=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null)
    printf '%s' "${v:--}"
}

meminfo_kb() {
    awk -v f="$1:" '$1 == f { print $2 }' /proc/meminfo
}

# TCP sockets allocated system-wide (from /proc/net/sockstat).
tcp_alloc() {
    awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "alloc") print $(i + 1) }' /proc/net/sockstat
}

# wait_tcp_baseline BASE [SECONDS]: after a large run the kernel needs a while to free sockets;
# waits until sockstat's TCP alloc is back within 1,000 of BASE (or the time is up).
wait_tcp_baseline() {
    local base=$1 limit=${2:-120} waited=0 now
    while now=$(tcp_alloc) && ((now > base + 1000)); do
        if ((waited >= limit)); then
            log "TCP sockets still at $now (baseline $base) after ${limit}s: continuing"
            return 1
        fi
        sleep 2
        waited=$((waited + 2))
    done
    return 0
}

# stats_json ADMIN: the server's admin /stats object (empty on failure).
stats_json() {
    curl -s -m 5 "http://$1/stats" 2>/dev/null || true
}

# sampler_start OUT PID ADMIN: every second appends
# "unix_s vmrss_kb rssanon_kb sunreclaim_kb memavailable_kb tcp_alloc server_connections" to OUT.
sampler_start() {
    local out=$1 pid=$2 admin=$3
    (
        while kill -0 "$pid" 2>/dev/null; do
            conns=$(stats_json "$admin" | json_stdin .connections)
            printf '%s %s %s %s %s %s %s\n' "$(date +%s)" "$(proc_status_kb "$pid" VmRSS)" \
                "$(proc_status_kb "$pid" RssAnon)" "$(meminfo_kb SUnreclaim)" \
                "$(meminfo_kb MemAvailable)" "$(tcp_alloc)" "${conns:--}" >>"$out"
            sleep 1
        done
    ) &
    BENCH_PIDS+=($!)
}

sampler_stop() {
    local p
    for p in "${BENCH_PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    BENCH_PIDS=()
}

# sampler_max OUT COLUMN: the largest numeric value of COLUMN (1-based) in a sampler file.
sampler_max() {
    awk -v c="$2" '$c ~ /^[0-9]+$/ && $c + 0 > m { m = $c + 0 } END { print m + 0 }' "$1" 2>/dev/null
}

# host_check: compares the host with sysctl/check.sh (kernel settings, open-file limit, memory).
# With APPLY_SYSCTL=1 it first applies them (check.sh --apply: sysctl -w needs root; refusals are
# reported). On a host that still misses a setting, BENCH_UNTUNED=1 and it says plainly that the
# results are not comparable with bench/RESULTS.md (which were measured with sysctl/ applied);
# host_untuned_note repeats that under a result table.
BENCH_UNTUNED=0
BENCH_UNTUNED_WHAT=""
host_check() {
    local out
    if [[ ${APPLY_SYSCTL:-0} == 1 ]]; then
        log "APPLY_SYSCTL=1: applying sysctl/ (sysctl/check.sh --apply)"
        timeout 60 bash "$BENCH_ROOT/sysctl/check.sh" --apply --quiet 2>&1 | sed 's/^/host: /' >&2
    fi
    if timeout 60 bash "$BENCH_ROOT/sysctl/check.sh" --quiet; then
        echo "host: every sysctl/check.sh setting is satisfied"
        BENCH_UNTUNED=0
        return 0
    fi
    out=$(timeout 60 bash "$BENCH_ROOT/sysctl/check.sh" 2>/dev/null)
    # Rows look like "setting | current | wanted | NO".
    awk -F' *[|] *' '$4 == "NO" { printf "host: not satisfied: %s is %s, wanted %s\n", $1, $2, $3 }' <<<"$out"
    # Only kernel settings (net.*, fs.*) make a host untuned: the open-file limit and free memory
    # bound how many connections a run can reach, which the scripts cap and say.
    BENCH_UNTUNED_WHAT=$(awk -F' *[|] *' '$4 == "NO" && $1 ~ /^[a-z]+\./ { printf "%s%s", (n++ ? ", " : ""), $1 }' <<<"$out")
    if [[ -z $BENCH_UNTUNED_WHAT ]]; then
        BENCH_UNTUNED=0
        return 0
    fi
    BENCH_UNTUNED=1
    echo "host: UNTUNED (sysctl/ not applied): these results are NOT comparable with bench/RESULTS.md;"
    echo "host: run with APPLY_SYSCTL=1 (as root) or see sysctl/README.md"
    return 1
}

host_untuned_note() {
    if ((BENCH_UNTUNED)); then
        echo "NOTE: UNTUNED HOST ($BENCH_UNTUNED_WHAT not as sysctl/ sets them): NOT comparable with bench/RESULTS.md."
    fi
}

# load_1min: the 1-minute load average.
load_1min() {
    cut -d' ' -f1 /proc/loadavg
}

# wait_quiet [MAX_LOAD] [TRIES] [PAUSE]: waits until the 1-minute load is below MAX_LOAD (the
# machine is shared). Sets BENCH_LOADED=1 and returns 1 when it never got quiet.
BENCH_LOADED=0
wait_quiet() {
    local max=${1:-1.5} tries=${2:-6} pause=${3:-30} i l
    for ((i = 0; i < tries; i++)); do
        l=$(load_1min)
        if awk -v l="$l" -v m="$max" 'BEGIN { exit !(l < m) }'; then
            BENCH_LOADED=0
            return 0
        fi
        log "load average $l >= $max (machine busy): waiting ${pause}s ($((i + 1))/$tries)"
        sleep "$pause"
    done
    BENCH_LOADED=1
    log "machine still busy (load $(load_1min)): running anyway, numbers marked as from a loaded machine"
    return 1
}

# machine_info: one block describing the host and the build.
machine_info() {
    local model mem_gib commit
    model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
    commit=$(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
    if [[ -n $(git -C "$BENCH_ROOT" status --porcelain -- src loadgen 2>/dev/null) ]]; then
        commit+=" (+ uncommitted changes in src/ or loadgen/)"
    fi
    printf 'date:      %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    printf 'host:      %s, %s CPUs (%s), %s GiB RAM, %s GiB available\n' "$(hostname)" "$(nproc)" \
        "${model:-unknown}" "$mem_gib" "$(awk '/^MemAvailable:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
    printf 'kernel:    %s\n' "$(uname -sr)"
    printf 'ulimit -n: %s soft, %s hard\n' "$(ulimit -Sn)" "$(ulimit -Hn)"
    printf 'load:      %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'rcomet:    %s\n' "$commit"
}
