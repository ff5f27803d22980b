#!/usr/bin/env bash
# bench/cluster.sh (`make cluster-bench`): cluster mode against one node, in one run, alternating
# rounds (round 1: cluster then single, round 2: single then cluster, ...), fresh processes for
# every run. "cluster" is a real redis-server on a free loopback port (no persistence) and
# NODES (3) rcomet nodes on it, THREADS (1) worker thread each (three nodes on the 2 cores of the
# development machines: one thread each keeps them from fighting over cores); "single" is ONE
# rcomet node without Redis, SINGLE_THREADS (1) worker thread(s). Every server listens on ports
# the kernel picks (127.0.0.1:0, read from its ready line). Subscribers are spread over the
# nodes' front ports (subscriber i on node i mod NODES) and pushes over their admin ports (admin
# connection k on node k mod NODES; ADMIN_CONNS of them, the same number against one node).
# Cases:
#   msg   CHANNELS (10,000) channels x 1 /stream subscriber, closed loop: FAN_IN_FLIGHT (32)
#         pipelined pushes of MSG_SIZE (100) bytes, CL_PUSHES (100,000) or CL_DURATION (10) s:
#         pushes/s, push->deliver p50/p99, rcomet CPU per push (every node) and redis-server CPU
#         per push, lost/dup/ooo;
#   fan   one channel x FAN_N (3,000) /stream subscribers, FAN_PUSHES (1,000) pushes, the same
#         closed loop: deliveries/s, push->deliver p50/p99, rcomet CPU per delivery, redis CPU
#         per push;
#   mem   MEM_N (10,000) idle subscribers (MEM_TRANSPORT, stream), each on its own signed channel
#         (auth token, /sign tokens), held 5 s: rcomet RSS per subscriber (every node's VmRSS
#         delta / subscribers, at the end of the ramp and at the end of the hold) and redis-server
#         RSS per channel.
# CPU is utime + stime of /proc/PID/stat over the measurement (first push until the last
# expected delivery), summed over the nodes; Redis's apart (rcomet-loadgen --pid NODE,...,REDIS).
# Prints one table: per metric the median over rounds for cluster and single, cluster/single, and
# every round's value; writes it, the summary JSON, the runs and every raw report into
# CLUSTER_OUT (bench/results/cluster-DATE). With --json the summary JSON on stdout, the rest on
# stderr. Every run is bounded (RUN_TIMEOUT s per load generator run, BENCH_SERVER_MAX_LIFE s per
# server) and stops by itself.
#
# Usage: bash bench/cluster.sh [--json]
# Env:   ROUNDS (2); ENGINE (epoll | io_uring); CASES ("msg fan mem"); NODES (3); THREADS (1);
#        SINGLE_THREADS (1); ADMIN_CONNS (3); CHANNELS (10000); CL_PUSHES (100000);
#        CL_DURATION (10); FAN_N (3000); FAN_PUSHES (1000); FAN_IN_FLIGHT (32); MSG_SIZE (100);
#        MEM_N (10000); MEM_TRANSPORT (stream); RUN_TIMEOUT (240); REDIS_BIN (redis-server);
#        REDIS_CLI (redis-cli); CLUSTER_OUT; LOAD_MAX (1.5), WAIT_TRIES (6): wait for a quiet
#        machine first.
#
# Depends on: bench/lib.sh, bench/cluster_table.py, python3, curl, redis-server and redis-cli
#             (Debian: redis-server, redis-tools), the release rcomet and rcomet-loadgen
#             (bench/target_dir.sh).

set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_parse_args 41 "$@"

ROUNDS=${ROUNDS:-2}
ENGINE=${ENGINE:-epoll}
CASES=${CASES:-msg fan mem}
NODES=${NODES:-3}
THREADS=${THREADS:-1}
SINGLE_THREADS=${SINGLE_THREADS:-1}
ADMIN_CONNS=${ADMIN_CONNS:-3}
CHANNELS=${CHANNELS:-10000}
CL_PUSHES=${CL_PUSHES:-100000}
CL_DURATION=${CL_DURATION:-10}
FAN_N=${FAN_N:-3000}
FAN_PUSHES=${FAN_PUSHES:-1000}
FAN_IN_FLIGHT=${FAN_IN_FLIGHT:-32}
MSG_SIZE=${MSG_SIZE:-100}
MEM_N=${MEM_N:-10000}
MEM_TRANSPORT=${MEM_TRANSPORT:-stream}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
REDIS_BIN=${REDIS_BIN:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
CLUSTER_OUT=${CLUSTER_OUT:-$BENCH_DIR/results/cluster-$(date +%F)}

die() {
    echo "cluster.sh: $*" >&2
    exit 2
}
case $ENGINE in epoll | io_uring) ;; *) die "ENGINE must be epoll or io_uring, not '$ENGINE'" ;; esac
for c in $CASES; do
    case $c in msg | fan | mem) ;; *) die "unknown case '$c' in CASES (msg, fan, mem)" ;; esac
done
case $MEM_TRANSPORT in poll | stream | sse | ws) ;; *) die "MEM_TRANSPORT: poll, stream, sse or ws" ;; esac
for v in ROUNDS NODES THREADS SINGLE_THREADS ADMIN_CONNS CHANNELS CL_PUSHES CL_DURATION FAN_N \
    FAN_PUSHES FAN_IN_FLIGHT MEM_N RUN_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ $MSG_SIZE =~ ^[0-9]+$ ]] || die "MSG_SIZE must be an integer"
((NODES <= 16)) || die "NODES: at most 16"
for bin in "$RCOMET_BIN" "$LOADGEN_BIN"; do
    [[ -x $bin ]] || die "$bin is missing: run 'make build' first"
done
for tool in "$REDIS_BIN" "$REDIS_CLI" curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (Debian: redis-server, redis-tools, curl, python3)"
done
# The single node holds every subscriber; the load generator holds them all too.
most=$CHANNELS
((FAN_N > most)) && most=$FAN_N
((MEM_N > most)) && most=$MEM_N
(($(ulimit -n) >= most + 200)) || die "ulimit -n $(ulimit -n) is too low for $most subscribers (lower CHANNELS, FAN_N, MEM_N)"

bench_init cluster
mkdir -p "$CLUSTER_OUT/raw" || die "cannot create $CLUSTER_OUT"
echo "== rcomet cluster mode ($NODES nodes over Redis) vs one node =="
{
    machine_info
    printf 'redis:     %s\n' "$("$REDIS_BIN" --version 2>/dev/null | cut -c1-60)"
} | tee "$BENCH_TMP/machine.txt"
wait_quiet "${LOAD_MAX:-1.5}" "${WAIT_TRIES:-6}" 30
echo "load at start: $(load_1min)$( ((BENCH_LOADED)) && echo ' (busy machine: numbers are from a loaded host)')"
start_s=$(date +%s)

# The servers started for the current run (stopped by PID by servers_stop and on exit).
servers_forget() {
    NODE_PIDS=()
    NODE_WRAPPERS=()
    NODE_LOGS=()
    NODE_FRONTS=()
    NODE_ADMINS=()
    REDIS_PID=""
    REDIS_WRAPPER=""
}
servers_forget
REDIS_PORT=""

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# redis_start: a fresh redis-server on a free loopback port, no persistence; sets REDIS_PID.
redis_start() {
    local i log
    REDIS_PORT=$(free_port)
    log=$(mktemp "$BENCH_TMP/redis.XXXX.log")
    timeout -s TERM -k 10 "$BENCH_SERVER_MAX_LIFE" "$REDIS_BIN" --port "$REDIS_PORT" \
        --bind 127.0.0.1 --save "" --appendonly no --daemonize no --logfile "$log" \
        </dev/null >/dev/null 2>&1 &
    REDIS_WRAPPER=$!
    REDIS_PID=""
    for ((i = 0; i < 100; i++)); do
        REDIS_PID=$(timeout 2 "$REDIS_CLI" -p "$REDIS_PORT" info server 2>/dev/null |
            tr -d '\r' | sed -n 's/^process_id://p')
        [[ -n $REDIS_PID ]] && break
        kill -0 "$REDIS_WRAPPER" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $REDIS_PID ]]; then
        log "redis-server did not answer on port $REDIS_PORT; its log:"
        tail -n 10 "$log" >&2
        return 1
    fi
    log "redis-server pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"
}

# node_start NAME FLAGS...: one rcomet on ports the kernel picks; appends to the NODE_* arrays.
node_start() {
    local name=$1 log i line pid=""
    shift
    log=$(mktemp "$BENCH_TMP/$name.XXXX.log")
    timeout -s TERM -k 10 "$BENCH_SERVER_MAX_LIFE" "$RCOMET_BIN" --admin-listen 127.0.0.1:0 \
        --front-listen 127.0.0.1:0 --log-level info "$@" </dev/null >"$log" 2>&1 &
    NODE_WRAPPERS+=($!)
    NODE_LOGS+=("$log")
    for ((i = 0; i < 150; i++)); do
        line=$(grep -m1 '^rcomet ready ' "$log" 2>/dev/null)
        if [[ -n $line ]]; then
            pid=$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' <<<"$line")
            break
        fi
        kill -0 "${NODE_WRAPPERS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $pid ]]; then
        log "rcomet $name did not become ready ($*); its output:"
        tail -n 20 "$log" >&2
        return 1
    fi
    NODE_PIDS+=("$pid")
    NODE_ADMINS+=("$(sed -n 's/.* admin=\([^ ]*\).*/\1/p' <<<"$line")")
    NODE_FRONTS+=("$(sed -n 's/.* front=\([^ ]*\).*/\1/p' <<<"$line")")
    RCOMET_LAST_ENGINE=$(sed -n 's/.* engine=\([a-z_]*\).*/\1/p' <<<"$line")
    log "rcomet $name pid $pid ready (engine $RCOMET_LAST_ENGINE): $*"
}

# wait_connected ADMIN: until the node's /stats says every Redis shard is connected (15 s).
wait_connected() {
    local i
    for ((i = 0; i < 150; i++)); do
        curl -s -m 2 "http://$1/stats" 2>/dev/null | grep -q '"connected": true' && return 0
        sleep 0.1
    done
    log "node $1 did not connect to Redis"
    return 1
}

# servers_stop: the nodes first (so none logs a lost Redis), then Redis; each by its PID.
servers_stop() {
    local i n f first
    for i in "${!NODE_PIDS[@]}"; do
        stop_server rcomet "${NODE_PIDS[$i]}"
    done
    for i in "${!NODE_WRAPPERS[@]}"; do
        kill -TERM "${NODE_WRAPPERS[$i]}" 2>/dev/null
        wait "${NODE_WRAPPERS[$i]}" 2>/dev/null
    done
    for f in "${NODE_LOGS[@]}"; do
        n=$(grep -c -E '\[(WARN|ERROR)\]' "$f")
        if ((n > 0)); then
            first=$(grep -m1 -E '\[(WARN|ERROR)\]' "$f" | cut -c1-160)
            BENCH_SERVER_WARNINGS+=("$(basename "$f"): $n WARN/ERROR lines, first: $first")
        fi
    done
    stop_server redis-server "$REDIS_PID"
    if [[ -n $REDIS_WRAPPER ]]; then
        kill -TERM "$REDIS_WRAPPER" 2>/dev/null
        wait "$REDIS_WRAPPER" 2>/dev/null
    fi
    servers_forget
}
trap 'servers_stop; bench_cleanup' EXIT

# node_flags CASE: the rcomet flags every node of a case gets.
node_flags() {
    local f=(--engine "$ENGINE" --max-channels 1000000 --max-subscribers-per-channel 1000000
        --channel-buffer-size 10)
    case $1 in
        # Heartbeats and channel expiry out of the way of an idle hold.
        mem) f+=(--auth token --polling-timeout 300 --channel-timeout 300) ;;
        *) f+=(--polling-timeout 30 --channel-timeout 30) ;;
    esac
    echo "${f[@]}"
}

# setup_start SETUP CASE: the servers of a run (cluster: Redis and NODES nodes; single: one).
setup_start() {
    local i flags
    # shellcheck disable=SC2207  # the flags contain no spaces or globs
    flags=($(node_flags "$2"))
    if [[ $1 == single ]]; then
        node_start single "${flags[@]}" --threads "$SINGLE_THREADS"
        return
    fi
    redis_start || return 1
    for ((i = 1; i <= NODES; i++)); do
        node_start "node$i" "${flags[@]}" --threads "$THREADS" \
            --cluster-redis "127.0.0.1:$REDIS_PORT" --cluster-node "bench$i" || return 1
    done
    for i in "${!NODE_ADMINS[@]}"; do
        wait_connected "${NODE_ADMINS[$i]}" || return 1
    done
}

# case_args CASE: the rcomet-loadgen arguments of a case (ports and --pid are added later).
case_args() {
    local loop=(--transport stream --msg-rate 0 --in-flight "$FAN_IN_FLIGHT" --admin-conns
        "$ADMIN_CONNS" --msg-size "$MSG_SIZE" --drain 20 --ramp-timeout 90)
    case $1 in
        msg) echo fanout -n "$CHANNELS" --per-channel 1 "${loop[@]}" --messages "$CL_PUSHES" \
            --duration "$CL_DURATION" --channel-prefix msg- ;;
        fan) echo fanout -n "$FAN_N" --per-channel "$FAN_N" "${loop[@]}" --messages "$FAN_PUSHES" \
            --duration 60 --channel-prefix fan- ;;
        mem) echo connect -n "$MEM_N" --sign --transport "$MEM_TRANSPORT" --admin-conns \
            "$ADMIN_CONNS" --hold 5 --ramp-timeout 90 --channel-prefix mem- ;;
    esac
}

join() {
    local IFS=,
    echo "$*"
}

: >"$BENCH_TMP/runs.tsv"
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order=(cluster single); else order=(single cluster); fi
    for c in $CASES; do
        for setup in "${order[@]}"; do
            f="$CLUSTER_OUT/raw/$c.$setup.$round.json"
            echo '{}' >"$f"
            # shellcheck disable=SC2207  # the arguments contain no spaces or globs
            args=($(case_args "$c"))
            redis=0
            if setup_start "$setup" "$c"; then
                pids=("${NODE_PIDS[@]}")
                if [[ $setup == cluster ]]; then
                    pids+=("$REDIS_PID")
                    redis=1
                fi
                log "round $round/$ROUNDS $c $setup: rcomet-loadgen ${args[*]}"
                loadgen_json "$f" "$RUN_TIMEOUT" "${args[@]}" --front "$(join "${NODE_FRONTS[@]}")" \
                    --admin "$(join "${NODE_ADMINS[@]}")" --pid "$(join "${pids[@]}")"
            fi
            servers_stop
            if [[ $setup == single ]]; then
                servers="rcomet $(node_flags "$c") --threads $SINGLE_THREADS"
            else
                servers="$NODES x rcomet $(node_flags "$c") --threads $THREADS --cluster-redis R --cluster-node bench<i>; redis-server --save '' --appendonly no"
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$setup" "$round" "$f" "$redis" \
                "$servers; rcomet-loadgen ${args[*]}" >>"$BENCH_TMP/runs.tsv"
        done
    done
done

end_load=$(load_1min)
cp "$BENCH_TMP/runs.tsv" "$BENCH_TMP/machine.txt" "$CLUSTER_OUT/"
{
    echo
    echo "== summary: median of $ROUNDS round(s); engine $RCOMET_LAST_ENGINE; cluster: $NODES rcomet nodes x"
    echo "   $THREADS worker thread(s) over one redis-server; single: one node x $SINGLE_THREADS thread(s),"
    echo "   no Redis; load generator on the same cores; load $end_load at the end, $(($(date +%s) - start_s)) s =="
    python3 "$BENCH_DIR/cluster_table.py" table "$CLUSTER_OUT/runs.tsv"
    echo "ratio = cluster / single: above 1 is better for rates (/s), below 1 for latency, CPU, memory."
    echo "CPU: utime + stime (10 ms ticks) from the first push until the last expected delivery:"
    echo "rcomet = every node summed, redis = redis-server alone. Memory: VmRSS with every subscriber"
    echo "held minus before, over subscribers (rcomet: every node summed; redis: per channel)."
    echo "All processes (nodes, Redis, load generator) share this machine's $(nproc) CPUs."
    ((BENCH_LOADED)) && echo "NOTE: the machine was busy (load >= ${LOAD_MAX:-1.5}) when these ran."
    bench_warning_report
} | tee "$CLUSTER_OUT/table.txt"
python3 "$BENCH_DIR/cluster_table.py" json "$CLUSTER_OUT/runs.tsv" "$BENCH_TMP/machine.txt" \
    "$ROUNDS" "$BENCH_LOADED" "$end_load" >"$CLUSTER_OUT/summary.json"
echo "written: $CLUSTER_OUT (table.txt, summary.json, runs.tsv, raw/)"
if ((json)); then cat "$CLUSTER_OUT/summary.json" >&3; fi
