#!/usr/bin/env bash
# bench/lib_icomet.sh: starting and stopping the C++ iComet 0.2.5 server for side-by-side
# benchmarks (source it after bench/lib.sh, do not run it). Writes an iComet config (TAB-indented)
# in the scratch directory with its ports (ICOMET_ADMIN, ICOMET_FRONT: the benchmark ports unless
# set), a pidfile and a log file there, starts $ICOMET_BIN under timeout(1), waits until its admin
# port answers /info, and stops it by PID. Build iComet outside this repository, as
# bench/README.md ("iComet 0.2.5 for the comparison") describes.
#
# Depends on: bench/lib.sh (log, bench_wait_ports_free, BENCH_TMP, BENCH_ADMIN, BENCH_FRONT,
# BENCH_NICE), curl.
# shellcheck disable=SC2034  # globals here are read by the scripts that source this file

ICOMET_BIN=${ICOMET_BIN:-}
ICOMET_ADMIN=${ICOMET_ADMIN:-$BENCH_ADMIN}
ICOMET_FRONT=${ICOMET_FRONT:-$BENCH_FRONT}
ICOMET_PID=""     # the server process (from its pidfile)
ICOMET_WRAPPER="" # the timeout(1) process wrapping it
ICOMET_DIR=""     # config, pidfile and log (log.txt) of the running or last server
ICOMET_GUARD=""    # the port watcher of the running iComet (bench/lib.sh port_guard_start)
ICOMET_STARTS=0
ICOMET_WARNINGS=() # "N error lines, first: ..." per run whose iComet logged ERROR/FATAL

# icomet_write_config FILE DIR KEY=VALUE...: an iComet config with ICOMET_ADMIN / ICOMET_FRONT,
# pidfile and log in DIR; the front section gets every KEY=VALUE (max_channels=1000000, ...).
icomet_write_config() {
    local file=$1 dir=$2 kv
    shift 2
    {
        printf 'pidfile = %s/icomet.pid\n' "$dir"
        printf 'logger:\n\tlevel: info\n\toutput: %s/log.txt\n' "$dir"
        printf 'admin:\n\tlisten: %s\n' "$ICOMET_ADMIN"
        printf 'front:\n\tlisten: %s\n' "$ICOMET_FRONT"
        for kv in "$@"; do
            printf '\t%s: %s\n' "${kv%%=*}" "${kv#*=}"
        done
    } >"$file"
}

# icomet_start KEY=VALUE...: starts iComet with those front settings on its ports and waits
# (15 s at most) until /info answers. Sets ICOMET_PID and ICOMET_DIR.
icomet_start() {
    local i
    icomet_stop
    [[ -x $ICOMET_BIN ]] || { log "ICOMET_BIN '$ICOMET_BIN' is not an executable"; return 1; }
    bench_wait_ports_free "${BENCH_PORT_WAIT:-300}" "$ICOMET_ADMIN" "$ICOMET_FRONT" || return 1
    ICOMET_STARTS=$((ICOMET_STARTS + 1))
    ICOMET_DIR="$BENCH_TMP/icomet.$ICOMET_STARTS"
    mkdir -p "$ICOMET_DIR"
    icomet_write_config "$ICOMET_DIR/icomet.conf" "$ICOMET_DIR" "$@"
    timeout -s TERM -k 10 "$BENCH_SERVER_MAX_LIFE" "${BENCH_NICE[@]}" "$ICOMET_BIN" \
        "$ICOMET_DIR/icomet.conf" \
        </dev/null >"$ICOMET_DIR/stdout.txt" 2>&1 &
    ICOMET_WRAPPER=$!
    ICOMET_PID=""
    for ((i = 0; i < 150; i++)); do
        if [[ -s $ICOMET_DIR/icomet.pid ]] && curl -s -m 1 "http://$ICOMET_ADMIN/info" 2>/dev/null | grep -q version; then
            ICOMET_PID=$(tr -dc '0-9' <"$ICOMET_DIR/icomet.pid")
            break
        fi
        kill -0 "$ICOMET_WRAPPER" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $ICOMET_PID ]]; then
        log "iComet did not become ready; its output and log:"
        tail -n 10 "$ICOMET_DIR/stdout.txt" "$ICOMET_DIR/log.txt" >&2 2>/dev/null
        icomet_stop
        return 1
    fi
    port_guard_start "$ICOMET_PID" "$ICOMET_DIR/intruders" "${ICOMET_ADMIN##*:}" "${ICOMET_FRONT##*:}"
    ICOMET_GUARD=$BENCH_GUARD
    log "iComet pid $ICOMET_PID ready: $*"
}

# icomet_stop: stops the iComet started here (see stop_server). A no-op when none runs.
icomet_stop() {
    stop_server iComet "$ICOMET_PID"
    port_guard_stop "$ICOMET_GUARD" "${ICOMET_DIR:+$ICOMET_DIR/intruders}" "iComet"
    ICOMET_GUARD=""
    if [[ -n $ICOMET_WRAPPER ]]; then
        kill -TERM "$ICOMET_WRAPPER" 2>/dev/null
        wait "$ICOMET_WRAPPER" 2>/dev/null
        icomet_log_check
    fi
    ICOMET_PID=""
    ICOMET_WRAPPER=""
}

# icomet_log_check: counts the error lines of the stopped iComet's log into ICOMET_WARNINGS and
# cuts a log over 10 MB down to its first and last 1,000 lines.
icomet_log_check() {
    local f=$ICOMET_DIR/log.txt n first
    [[ -n $ICOMET_DIR && -s $f ]] || return 0
    n=$(grep -c -E '\[(ERROR|FATAL)\]' "$f")
    if ((n > 0)); then
        first=$(grep -m1 -E '\[(ERROR|FATAL)\]' "$f" | cut -c1-160)
        ICOMET_WARNINGS+=("iComet $ICOMET_DIR: $n ERROR/FATAL lines, first: $first")
        log "iComet logged $n ERROR/FATAL lines, first: $first"
    fi
    if (($(stat -c %s "$f") > 10000000)); then
        { head -n 1000 "$f"; echo "... (cut by bench/lib_icomet.sh) ..."; tail -n 1000 "$f"; } >"$f.cut"
        mv "$f.cut" "$f"
    fi
}
