#!/usr/bin/env bash
# bench/ws.sh (`make ws-bench`): WebSocket (/ws) against /stream in one run, on each engine, in
# alternating rounds (round 1: ws then stream, round 2: stream then ws, ...), a fresh server for
# every run. Cases:
#   mem   N (19,000) idle subscribers, each on its own signed channel (/sign tokens, the messenger
#         layout), held 5 s: server memory per subscriber = (RSS with N idle - RSS before) / N,
#         and the same for RssAnon; heartbeats off (polling_timeout 300);
#   fan   one channel x FAN_N (1,000) subscribers, closed loop: FAN_IN_FLIGHT (32) pipelined
#         pushes of MSG_SIZE (100) bytes on one admin connection, FAN_PUSHES (3,000) in all:
#         deliveries/s, push->deliver p50/p99, server CPU per delivery, lost/dup/ooo.
# Prints one table: per case and engine the median over rounds for ws and stream, and ws/stream;
# the fan-out target is ws within 20 % of stream (ratio >= 0.8). With --json one JSON object on
# stdout (every run), the rest on stderr. Every run is bounded (RUN_TIMEOUT s) and stops by itself.
#
# Usage: bash bench/ws.sh [--json]
# Env:   ENGINES ("epoll io_uring"); ROUNDS (3); CASES ("mem fan"); THREADS (2) worker threads;
#        N (19000); FAN_N (1000); FAN_PUSHES (3000); FAN_IN_FLIGHT (32); MSG_SIZE (100);
#        RUN_TIMEOUT (120) s per load generator run; LOAD_MAX (1.5), WAIT_TRIES (6): wait for a
#        quiet machine first.
#
# Depends on: bench/lib.sh, bench/ws_table.py, python3, target/release/{rcomet,rcomet-loadgen}.

set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_parse_args 21 "$@"

ENGINES=${ENGINES:-epoll io_uring}
ROUNDS=${ROUNDS:-3}
CASES=${CASES:-mem fan}
THREADS=${THREADS:-2}
N=${N:-19000}
FAN_N=${FAN_N:-1000}
FAN_PUSHES=${FAN_PUSHES:-3000}
FAN_IN_FLIGHT=${FAN_IN_FLIGHT:-32}
MSG_SIZE=${MSG_SIZE:-100}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}

for e in $ENGINES; do
    case $e in epoll | io_uring) ;; *)
        echo "ws.sh: ENGINES may name epoll and io_uring, not '$e'" >&2
        exit 2
        ;;
    esac
done
for c in $CASES; do
    case $c in mem | fan) ;; *)
        echo "ws.sh: unknown case '$c' (mem, fan)" >&2
        exit 2
        ;;
    esac
done
for bin in "$RCOMET_BIN" "$LOADGEN_BIN"; do
    [[ -x $bin ]] || { echo "ws.sh: $bin is missing: run 'make build' first" >&2; exit 1; }
done
# The server holds N subscribers plus its listeners and the admin connections.
if (($(ulimit -n) < N + 200)); then
    echo "ws.sh: ulimit -n $(ulimit -n) is too low for N=$N (lower N)" >&2
    exit 2
fi

bench_init ws
echo "== rcomet WebSocket benchmarks: /ws vs /stream =="
machine_info | tee "$BENCH_TMP/machine.txt"
wait_quiet "${LOAD_MAX:-1.5}" "${WAIT_TRIES:-6}" 30
echo "load at start: $(load_1min)$( ((BENCH_LOADED)) && echo ' (busy machine: numbers are from a loaded host)')"
start_s=$(date +%s)

# server_flags CASE ENGINE: the rcomet flags of a case.
server_flags() {
    local common=(--engine "$2" --threads "$THREADS" --polling-timeout 300 --channel-timeout 300)
    case $1 in
        mem) echo "${common[@]}" --auth token ;;
        fan) echo "${common[@]}" --max-subscribers-per-channel 100000 ;;
    esac
}

# case_args CASE TRANSPORT: the rcomet-loadgen arguments (ports and --pid are added later).
case_args() {
    case $1 in
        mem) echo connect -n "$N" --sign --transport "$2" --hold 5 --ramp-timeout 90 \
            --channel-prefix "mem-" ;;
        fan) echo fanout -n "$FAN_N" --per-channel "$FAN_N" --transport "$2" --msg-rate 0 \
            --in-flight "$FAN_IN_FLIGHT" --admin-conns 1 --msg-size "$MSG_SIZE" \
            --messages "$FAN_PUSHES" --duration 60 --drain 20 --ramp-timeout 60 ;;
    esac
}

: >"$BENCH_TMP/runs.tsv"
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order=(ws stream); else order=(stream ws); fi
    for engine in $ENGINES; do
        for c in $CASES; do
            for transport in "${order[@]}"; do
                f="$BENCH_TMP/$c.$engine.$transport.$round.json"
                echo '{}' >"$f"
                # shellcheck disable=SC2207  # the arguments contain no spaces or globs
                flags=($(server_flags "$c" "$engine"))
                # shellcheck disable=SC2207
                args=($(case_args "$c" "$transport"))
                ran_engine=-
                if rcomet_start "${flags[@]}"; then
                    ran_engine=$RCOMET_ENGINE
                    log "round $round/$ROUNDS $engine $c $transport: rcomet-loadgen ${args[*]}"
                    loadgen_json "$f" "$RUN_TIMEOUT" "${args[@]}" --front "$BENCH_FRONT" \
                        --admin "$BENCH_ADMIN" --pid "$RCOMET_PID"
                    rcomet_stop
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$engine" "$ran_engine" "$transport" \
                    "$round" "$f" "rcomet ${flags[*]}; rcomet-loadgen ${args[*]}" >>"$BENCH_TMP/runs.tsv"
            done
        done
    done
done

end_load=$(load_1min)
echo
echo "== summary: median of $ROUNDS round(s), $THREADS worker threads, load generator on the same"
echo "   2 cores; load $end_load at the end, $(($(date +%s) - start_s)) s =="
python3 "$BENCH_DIR/ws_table.py" table "$BENCH_TMP/runs.tsv"
echo "memory: (server VmRSS with N idle - before) / N; anon: the same for RssAnon."
echo "server CPU: utime + stime of the server from the first push until the last expected delivery,"
echo "per delivery (10 ms ticks)."
((BENCH_LOADED)) && echo "NOTE: the machine was busy (load >= ${LOAD_MAX:-1.5}) when these ran."
bench_warning_report
bench_intrusion_report

if ((json)); then
    python3 "$BENCH_DIR/ws_table.py" json "$BENCH_TMP/runs.tsv" "$BENCH_TMP/machine.txt" \
        "$ROUNDS" "$BENCH_LOADED" "$end_load" >&3
fi
