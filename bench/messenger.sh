#!/usr/bin/env bash
# bench/messenger.sh (`make messenger`): rcomet and C++ iComet 0.2.5 side by side in the messenger
# layout, in one run: alternating rounds (rcomet, iComet, rcomet, iComet, ...), a fresh server
# process for every case of every round, the same settings for both (ports, max_channels 1000000,
# max_subscribers_per_channel 1000000, polling_timeout 30, channel_timeout 30,
# channel_buffer_size 10, log level info to a file). Cases:
#   cl      10,000 channels x 1 /stream subscriber, closed loop: 32 pushes in flight on one admin
#           connection: pushes/s, push->deliver p50/p99, server CPU per push, lost/dup/ooo;
#   ol      the same layout, open loop at 10,000 pushes/s;
#   push, sign, info   pipelined admin requests on one connection (64 in flight), each to its own
#           channel (/info?cname=): requests/s, latency, server CPU per request, non-200;
#   fan1k, fan10k   one channel x 1,000 / 10,000 /stream subscribers, 32 pushes in flight:
#           deliveries/s, server CPU per delivery.
# Prints one table: per metric the median over rounds for each server and the ratio
# rcomet/iComet (with --json one JSON object on stdout, the rest on stderr).
#
# Usage: ICOMET_BIN=/path/to/icomet-server bash bench/messenger.sh [--json]
# Env:   ICOMET_BIN (unset: the iComet column is skipped); ROUNDS (2); ENGINE (io_uring, the server's default, | epoll);
#        THREADS (2) rcomet worker threads; CASES ("cl ol push sign info fan1k fan10k");
#        CHANNELS (10000); MSG_SIZE (100) bytes of content; FAN_IN_FLIGHT (32);
#        CL_PUSHES (200000), CL_DURATION (10) s cap of the closed loop; OL_RATE (10000),
#        OL_PUSHES (50000); ADMIN_REQUESTS (100000), ADMIN_IN_FLIGHT (64);
#        FAN1K_PUSHES (1000), FAN10K_PUSHES (100); RUN_TIMEOUT (240) s per load generator run;
#        LOAD_MAX (1.5), WAIT_TRIES (6): wait for a quiet machine first; SERVER_NICE (unset):
#        both servers at this nice value, ahead of the load generator (bench/lib.sh).
#
# Depends on: bench/lib.sh, bench/lib_icomet.sh, bench/messenger_table.py, python3, curl,
#             the release rcomet and rcomet-loadgen (bench/target_dir.sh).

set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$BENCH_DIR/lib_icomet.sh"

bench_parse_args 25 "$@"

ROUNDS=${ROUNDS:-2}
ENGINE=${ENGINE:-io_uring}
THREADS=${THREADS:-2}
CASES=${CASES:-cl ol push sign info fan1k fan10k}
CHANNELS=${CHANNELS:-10000}
MSG_SIZE=${MSG_SIZE:-100}
FAN_IN_FLIGHT=${FAN_IN_FLIGHT:-32}
CL_PUSHES=${CL_PUSHES:-200000}
CL_DURATION=${CL_DURATION:-10}
OL_RATE=${OL_RATE:-10000}
OL_PUSHES=${OL_PUSHES:-50000}
ADMIN_REQUESTS=${ADMIN_REQUESTS:-100000}
ADMIN_IN_FLIGHT=${ADMIN_IN_FLIGHT:-64}
FAN1K_PUSHES=${FAN1K_PUSHES:-1000}
FAN10K_PUSHES=${FAN10K_PUSHES:-100}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}

case $ENGINE in epoll | io_uring) ;; *)
    echo "messenger.sh: ENGINE must be epoll or io_uring, not '$ENGINE'" >&2
    exit 2
    ;;
esac
for bin in "$RCOMET_BIN" "$LOADGEN_BIN"; do
    [[ -x $bin ]] || { echo "messenger.sh: $bin is missing: run 'make build' first" >&2; exit 1; }
done
for c in $CASES; do
    case $c in cl | ol | push | sign | info | fan1k | fan10k) ;; *)
        echo "messenger.sh: unknown case '$c' in CASES" >&2
        exit 2
        ;;
    esac
done
servers=(rcomet)
if [[ -z $ICOMET_BIN ]]; then
    icomet_note="iComet: skipped (ICOMET_BIN is not set; build iComet 0.2.5 and point ICOMET_BIN at icomet-server)"
elif [[ ! -x $ICOMET_BIN ]]; then
    echo "messenger.sh: ICOMET_BIN=$ICOMET_BIN is not an executable" >&2
    exit 1
else
    servers+=(icomet)
    icomet_note="iComet: $ICOMET_BIN ($(timeout 5 "$ICOMET_BIN" -h 2>&1 | grep -o -m1 'icomet-server [0-9.]*' || echo 'version ?'))"
fi

bench_init messenger
trap 'icomet_stop; bench_cleanup' EXIT
echo "== rcomet vs iComet, messenger layout =="
{
    machine_info
    echo "$icomet_note"
} | tee "$BENCH_TMP/machine.txt"
wait_quiet "${LOAD_MAX:-1.5}" "${WAIT_TRIES:-6}" 30
echo "load at start: $(load_1min)$( ((BENCH_LOADED)) && echo ' (busy machine: numbers are from a loaded host)')"
[[ -n ${SERVER_NICE:-} ]] && echo "servers:   both at nice $SERVER_NICE (SERVER_NICE), ahead of the load generator"
start_s=$(date +%s)

# The same front settings for both servers.
SETTINGS=(max_channels=1000000 max_subscribers_per_channel=1000000 polling_timeout=30
    channel_timeout=30 channel_buffer_size=10)
rcomet_flags=(--engine "$ENGINE" --threads "$THREADS")
for kv in "${SETTINGS[@]}"; do
    k=${kv%%=*}
    rcomet_flags+=("--${k//_/-}" "${kv#*=}")
done

SERVER_PID=""
SERVER_ENGINE="-"

# server_start NAME: a fresh rcomet or iComet on the benchmark ports; sets SERVER_PID.
server_start() {
    SERVER_PID=""
    if [[ $1 == rcomet ]]; then
        rcomet_start "${rcomet_flags[@]}" || return 1
        SERVER_PID=$RCOMET_PID
        SERVER_ENGINE=$RCOMET_ENGINE
    else
        icomet_start "${SETTINGS[@]}" || return 1
        SERVER_PID=$ICOMET_PID
    fi
}

server_stop() {
    if [[ $1 == rcomet ]]; then rcomet_stop; else icomet_stop; fi
}

# case_args CASE: the rcomet-loadgen arguments of a case (ports and --pid are added later).
case_args() {
    local fan=(--transport stream --msg-rate 0 --in-flight "$FAN_IN_FLIGHT" --admin-conns 1
        --msg-size "$MSG_SIZE" --drain 20 --ramp-timeout 90)
    local adm=(admin --requests "$ADMIN_REQUESTS" --in-flight "$ADMIN_IN_FLIGHT" --admin-conns 1
        --msg-size "$MSG_SIZE" --duration 120)
    case $1 in
        cl) echo fanout -n "$CHANNELS" --per-channel 1 "${fan[@]}" --messages "$CL_PUSHES" \
            --duration "$CL_DURATION" ;;
        ol) echo fanout -n "$CHANNELS" --per-channel 1 --transport stream --msg-rate "$OL_RATE" \
            --messages "$OL_PUSHES" --in-flight "$FAN_IN_FLIGHT" --admin-conns 1 \
            --msg-size "$MSG_SIZE" --drain 20 --ramp-timeout 90 ;;
        push | sign | info) echo "${adm[@]}" --op "$1" --channel-prefix "$1-" ;;
        fan1k) echo fanout -n 1000 --per-channel 1000 "${fan[@]}" --messages "$FAN1K_PUSHES" \
            --duration 60 ;;
        fan10k) echo fanout -n 10000 --per-channel 10000 "${fan[@]}" --messages "$FAN10K_PUSHES" \
            --duration 60 ;;
    esac
}

: >"$BENCH_TMP/runs.tsv"
for ((round = 1; round <= ROUNDS; round++)); do
    for server in "${servers[@]}"; do
        for c in $CASES; do
            f="$BENCH_TMP/$c.$server.$round.json"
            echo '{}' >"$f"
            # shellcheck disable=SC2207  # the case arguments contain no spaces or globs
            args=($(case_args "$c"))
            if server_start "$server"; then
                log "round $round/$ROUNDS $server $c: rcomet-loadgen ${args[*]}"
                loadgen_json "$f" "$RUN_TIMEOUT" "${args[@]}" --front "$BENCH_FRONT" \
                    --admin "$BENCH_ADMIN" --pid "$SERVER_PID"
                server_stop "$server"
            fi
            printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$server" "$round" "$f" "${args[*]}" >>"$BENCH_TMP/runs.tsv"
        done
    done
done

end_load=$(load_1min)
echo
echo "== summary: median of $ROUNDS round(s); rcomet engine $SERVER_ENGINE, $THREADS worker threads; iComet one thread;"
echo "   load generator on the same 2 cores; load $end_load at the end, $(($(date +%s) - start_s)) s =="
python3 "$BENCH_DIR/messenger_table.py" table "$BENCH_TMP/runs.tsv"
echo "$icomet_note"
echo "ratio = rcomet / iComet: above 1 is better for rates (/s), below 1 for latency and CPU."
echo "server CPU: utime + stime of the server process from the first push (request) until the"
echo "last expected delivery (reply), divided by pushes, deliveries or requests (10 ms ticks)."
((BENCH_LOADED)) && echo "NOTE: the machine was busy (load >= ${LOAD_MAX:-1.5}) when these ran."
bench_warning_report
bench_intrusion_report

if ((json)); then
    python3 "$BENCH_DIR/messenger_table.py" json "$BENCH_TMP/runs.tsv" "$BENCH_TMP/machine.txt" \
        "$ENGINE" "$THREADS" "$ROUNDS" "$BENCH_LOADED" "$end_load" >&3
fi
