#!/usr/bin/env bash
# check.sh: compares this host's kernel settings, open-file limit and free memory with what rcomet
# needs for 1,000,000 connections (99-rcomet-c1000k.conf and limits.conf next to this script), and
# with --apply writes them. Needs bash and coreutils only; uses sysctl(8) and prlimit(1) if present.

set -u

usage() {
    cat <<'EOF'
Usage: check.sh [--apply] [--quiet | --json] [--conf FILE] [--limits FILE]

Prints "setting | current | wanted | ok?" for every setting in the sysctl.d file, the open-file
limit (ulimit -n, soft and hard) and MemAvailable.

  --apply         write every unsatisfied setting (sysctl -w) and try to raise the open-file limit
                  of this script and of the calling process (prlimit); refusals are reported, not fatal
  --quiet         print nothing on stdout; only the exit status tells
  --json          print the table as JSON (apply messages go to stderr)
  --conf FILE     sysctl.d file to check (default: 99-rcomet-c1000k.conf next to this script)
  --limits FILE   limits.d file holding the wanted nofile (default: limits.conf next to this script)

Exit status: 0 when every row is satisfied, 1 when not, 2 on a usage error.
EOF
}

# Memory an operator should have free before a 1M-connection run on loopback: ~8.4 GB of kernel
# memory for 1M socket pairs plus ~3.8 GiB when every connection holds one unread message.
readonly MIN_MEM_GIB=12
# Fallback when limits.conf cannot be read.
readonly DEFAULT_NOFILE=1100000

script_dir=${BASH_SOURCE[0]%/*}
[[ $script_dir == "${BASH_SOURCE[0]}" ]] && script_dir=.

conf=""
limits=""
apply=0
quiet=0
json=0
while (($# > 0)); do
    case $1 in
        --apply) apply=1 ;;
        --quiet | -q) quiet=1 ;;
        --json) json=1 ;;
        --conf)
            (($# >= 2)) || { echo "check.sh: --conf needs a file" >&2; exit 2; }
            shift
            conf=$1
            ;;
        --conf=*) conf=${1#*=} ;;
        --limits)
            (($# >= 2)) || { echo "check.sh: --limits needs a file" >&2; exit 2; }
            shift
            limits=$1
            ;;
        --limits=*) limits=${1#*=} ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "check.sh: unknown option: $1" >&2
            usage >&2
            exit 2
            ;;
    esac
    shift
done
if ((quiet && json)); then
    echo "check.sh: --quiet and --json exclude each other" >&2
    exit 2
fi

if [[ -z $conf ]]; then
    conf=$script_dir/99-rcomet-c1000k.conf
    [[ -r $conf ]] || conf=/etc/sysctl.d/99-rcomet-c1000k.conf
fi
[[ -z $limits ]] && limits=$script_dir/limits.conf
if [[ ! -r $conf ]]; then
    echo "check.sh: cannot read $conf" >&2
    exit 2
fi

# --- output helpers --------------------------------------------------------------------------

# Informational message: stdout normally, stderr with --json, dropped with --quiet.
note() {
    if ((quiet)); then
        return 0
    elif ((json)); then
        printf '%s\n' "$*" >&2
    else
        printf '%s\n' "$*"
    fi
}

# Problem report: never dropped; stderr with --json or --quiet.
warn() {
    if ((quiet || json)); then
        printf '%s\n' "$*" >&2
    else
        printf '%s\n' "$*"
    fi
}

# --- small pure helpers ----------------------------------------------------------------------

# Sets the variable named $1 to $2 with tabs/newlines turned into spaces, runs of spaces collapsed
# and the ends trimmed (/proc/sys separates fields with tabs, sysctl.d files with spaces).
norm_ws() {
    local -n out=$1
    local s=$2
    s=${s//$'\t'/ }
    s=${s//$'\n'/ }
    s=${s//$'\r'/ }
    while [[ $s == *'  '* ]]; do s=${s//'  '/ }; done
    s=${s# }
    s=${s% }
    out=$s
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# True when unsigned decimal $1 >= $2, for numbers of any length.
num_ge() {
    local a=$1 b=$2
    while [[ ${#a} -gt 1 && $a == 0* ]]; do a=${a#0}; done
    while [[ ${#b} -gt 1 && $b == 0* ]]; do b=${b#0}; done
    if ((${#a} != ${#b})); then
        ((${#a} > ${#b}))
        return
    fi
    [[ $a == "$b" || $a > "$b" ]]
}

# /proc/sys path of a sysctl key ("net.core.somaxconn" or "net/core/somaxconn").
key_path() {
    local k=$1
    if [[ $k == */* ]]; then
        printf '/proc/sys/%s' "${k#/}"
    else
        printf '/proc/sys/%s' "${k//./\/}"
    fi
}

# Current value of a /proc/sys file, whitespace-normalised, or "(absent)" / "(unreadable)".
read_current() {
    local p=$1 v=""
    if [[ ! -e $p ]]; then
        printf '(absent)'
        return
    fi
    if ! { v=$(<"$p"); } 2>/dev/null; then
        printf '(unreadable)'
        return
    fi
    norm_ws v "$v"
    printf '%s' "$v"
}

# How a current value is compared with the wanted one:
#   min      every field >= wanted (a larger ceiling or queue is fine)
#   max      every field <= wanted
#   wider    "low high" range that covers the wanted range
#   contains port list that includes every wanted port or range
#   exact    same text
rule_for() {
    case $1 in
        fs.nr_open | fs.file-max | net.core.somaxconn | net.ipv4.tcp_max_syn_backlog | \
            net.core.netdev_max_backlog | net.ipv4.tcp_mem | net.netfilter.nf_conntrack_max | \
            net.netfilter.nf_conntrack_buckets | vm.max_map_count | net.ipv4.tcp_max_orphans)
            echo min
            ;;
        net.ipv4.tcp_fin_timeout) echo max ;;
        net.ipv4.ip_local_port_range) echo wider ;;
        net.ipv4.ip_local_reserved_ports) echo contains ;;
        *) echo exact ;;
    esac
}

# The wanted column: the wanted value with the comparison spelled out.
wanted_text() {
    local rule=$1 want=$2
    case $rule in
        min) printf '>= %s' "$want" ;;
        max) printf '<= %s' "$want" ;;
        wider) printf 'covers %s' "$want" ;;
        contains) printf 'includes %s' "$want" ;;
        *) printf '%s' "$want" ;;
    esac
}

# True when every port or range in list $2 lies inside a range of list $1 ("8000,9000-9010").
ports_cover() {
    local have=$1 need=$2 item lo hi p i found
    local -a have_lo=() have_hi=() items=()
    IFS=',' read -r -a items <<<"$have"
    for item in "${items[@]}"; do
        item=${item// /}
        [[ -z $item ]] && continue
        if [[ $item =~ ^([0-9]+)-([0-9]+)$ ]]; then
            have_lo+=("${BASH_REMATCH[1]}")
            have_hi+=("${BASH_REMATCH[2]}")
        elif is_uint "$item"; then
            have_lo+=("$item")
            have_hi+=("$item")
        fi
    done
    IFS=',' read -r -a items <<<"$need"
    for item in "${items[@]}"; do
        item=${item// /}
        [[ -z $item ]] && continue
        if [[ $item =~ ^([0-9]+)-([0-9]+)$ ]]; then
            lo=$((10#${BASH_REMATCH[1]}))
            hi=$((10#${BASH_REMATCH[2]}))
        elif is_uint "$item"; then
            lo=$((10#$item))
            hi=$lo
        else
            return 1
        fi
        ((hi - lo > 65535)) && return 1
        for ((p = lo; p <= hi; p++)); do
            found=0
            for i in "${!have_lo[@]}"; do
                if ((p >= 10#${have_lo[i]} && p <= 10#${have_hi[i]})); then
                    found=1
                    break
                fi
            done
            ((found)) || return 1
        done
    done
    return 0
}

# True when current value $2 satisfies wanted value $3 under rule $1.
satisfies() {
    local rule=$1 cur=$2 want=$3 i
    local -a c=() w=()
    [[ $cur == '('* ]] && return 1
    case $rule in
        min | max)
            read -r -a c <<<"$cur"
            read -r -a w <<<"$want"
            ((${#c[@]} == ${#w[@]})) || return 1
            for i in "${!w[@]}"; do
                is_uint "${c[i]}" && is_uint "${w[i]}" || return 1
                if [[ $rule == min ]]; then
                    num_ge "${c[i]}" "${w[i]}" || return 1
                else
                    num_ge "${w[i]}" "${c[i]}" || return 1
                fi
            done
            ;;
        wider)
            read -r -a c <<<"$cur"
            read -r -a w <<<"$want"
            ((${#c[@]} == 2 && ${#w[@]} == 2)) || return 1
            is_uint "${c[0]}" && is_uint "${c[1]}" && is_uint "${w[0]}" && is_uint "${w[1]}" || return 1
            num_ge "${w[0]}" "${c[0]}" && num_ge "${c[1]}" "${w[1]}"
            ;;
        contains) ports_cover "$cur" "$want" ;;
        *) [[ $cur == "$want" ]] ;;
    esac
}

# Prints the value to write so that rule $1 holds without lowering anything already better.
target_value() {
    local rule=$1 cur=$2 want=$3 i out=""
    local -a c=() w=()
    read -r -a c <<<"$cur"
    read -r -a w <<<"$want"
    case $rule in
        min)
            if [[ $cur != '('* ]] && ((${#c[@]} == ${#w[@]})); then
                for i in "${!w[@]}"; do
                    if is_uint "${c[i]}" && num_ge "${c[i]}" "${w[i]}"; then
                        out+=" ${c[i]}"
                    else
                        out+=" ${w[i]}"
                    fi
                done
                printf '%s' "${out# }"
                return
            fi
            ;;
        wider)
            if ((${#c[@]} == 2)) && is_uint "${c[0]}" && is_uint "${c[1]}"; then
                num_ge "${c[0]}" "${w[0]}" && c[0]=${w[0]}
                num_ge "${w[1]}" "${c[1]}" && c[1]=${w[1]}
                printf '%s %s' "${c[0]}" "${c[1]}"
                return
            fi
            ;;
        contains)
            # The kernel keeps reserved ports as a bitmap: repeating a port is harmless.
            want=${want// /}
            if [[ -n $cur && $cur != '('* ]]; then
                printf '%s,%s' "$cur" "$want"
                return
            fi
            ;;
    esac
    printf '%s' "$want"
}

# Prints "N.N" (GiB) for $1 kB.
kib_to_gib() {
    local tenths=$(($1 * 10 / 1048576))
    printf "%d.%d" $((tenths / 10)) $((tenths % 10))
}

# --- inputs ----------------------------------------------------------------------------------

conf_keys=()
conf_vals=()
lineno=0
while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == '#'* || $line == ';'* ]] && continue
    # sysctl.d: a leading "-" means "ignore a failure to set this key".
    line=${line#-}
    if [[ $line != *=* ]]; then
        warn "check.sh: $conf:$lineno: not a key = value line, ignored"
        continue
    fi
    norm_ws key "${line%%=*}"
    norm_ws val "${line#*=}"
    conf_keys+=("$key")
    conf_vals+=("$val")
done <"$conf"

want_nofile=""
if [[ -r $limits ]]; then
    while read -r dom typ item val _; do
        [[ -z ${dom-} || $dom == '#'* ]] && continue
        [[ ${item-} == nofile && (${typ-} == hard || ${typ-} == -) ]] || continue
        is_uint "${val-}" || continue
        if [[ -z $want_nofile ]] || num_ge "$val" "$want_nofile"; then want_nofile=$val; fi
    done <"$limits"
fi
[[ -z $want_nofile ]] && want_nofile=$DEFAULT_NOFILE

# --- the table -------------------------------------------------------------------------------

rows_name=()
rows_cur=()
rows_want=()
rows_rule=()
rows_ok=()

add_row() {
    rows_name+=("$1")
    rows_cur+=("$2")
    rows_want+=("$3")
    rows_rule+=("$4")
    rows_ok+=("$5")
}

evaluate() {
    local i key want rule cur ok soft hard name kb mem_kb="" gib want_gib
    rows_name=()
    rows_cur=()
    rows_want=()
    rows_rule=()
    rows_ok=()
    for i in "${!conf_keys[@]}"; do
        key=${conf_keys[i]}
        want=${conf_vals[i]}
        rule=$(rule_for "${key//\//.}")
        cur=$(read_current "$(key_path "$key")")
        ok=0
        satisfies "$rule" "$cur" "$want" && ok=1
        add_row "$key" "$cur" "$want" "$rule" "$ok"
    done

    soft=$(ulimit -Sn)
    hard=$(ulimit -Hn)
    ok=0
    [[ $soft == unlimited ]] || num_ge "$soft" "$want_nofile" && ok=1
    add_row "ulimit -n (soft)" "$soft" "$want_nofile" min "$ok"
    ok=0
    [[ $hard == unlimited ]] || num_ge "$hard" "$want_nofile" && ok=1
    add_row "ulimit -n (hard)" "$hard" "$want_nofile" min "$ok"

    if [[ -r /proc/meminfo ]]; then
        while read -r name kb _; do
            if [[ $name == MemAvailable: ]]; then
                mem_kb=$kb
                break
            fi
        done </proc/meminfo
    fi
    want_gib="$MIN_MEM_GIB.0"
    if is_uint "$mem_kb"; then
        gib=$(kib_to_gib "$mem_kb")
        ok=0
        ((mem_kb >= MIN_MEM_GIB * 1048576)) && ok=1
        add_row "MemAvailable" "$gib GiB" "$want_gib GiB" min "$ok"
    else
        add_row "MemAvailable" "(unreadable)" "$want_gib GiB" min 0
    fi
}

all_ok() {
    local ok
    for ok in "${rows_ok[@]}"; do
        ((ok)) || return 1
    done
    return 0
}

print_table() {
    local i w1=7 w2=7 w3=6 sep bad=0
    local -a shown=()
    for i in "${!rows_name[@]}"; do
        shown[i]=$(wanted_text "${rows_rule[i]}" "${rows_want[i]}")
        ((${#rows_name[i]} > w1)) && w1=${#rows_name[i]}
        ((${#rows_cur[i]} > w2)) && w2=${#rows_cur[i]}
        ((${#shown[i]} > w3)) && w3=${#shown[i]}
    done
    printf '%-*s | %-*s | %-*s | %s\n' "$w1" setting "$w2" current "$w3" wanted "ok?"
    printf -v sep '%*s-+-%*s-+-%*s-+-%s' "$w1" '' "$w2" '' "$w3" '' '---'
    printf '%s\n' "${sep// /-}"
    for i in "${!rows_name[@]}"; do
        local mark=ok
        if ! ((rows_ok[i])); then
            mark=NO
            bad=$((bad + 1))
        fi
        printf '%-*s | %-*s | %-*s | %s\n' "$w1" "${rows_name[i]}" "$w2" "${rows_cur[i]}" \
            "$w3" "${shown[i]}" "$mark"
    done
    if ((bad == 0)); then
        printf '\nall %d settings satisfied\n' "${#rows_name[@]}"
    else
        printf '\n%d of %d settings not satisfied\n' "$bad" "${#rows_name[@]}"
    fi
}

json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/\\t}
    s=${s//$'\n'/\\n}
    printf '"%s"' "$s"
}

print_json() {
    local i n=${#rows_name[@]} sat=false
    all_ok && sat=true
    printf '{\n  "satisfied": %s,\n  "settings": [\n' "$sat"
    for i in "${!rows_name[@]}"; do
        local ok=false
        ((rows_ok[i])) && ok=true
        printf '    {"setting": %s, "current": %s, "wanted": %s, "rule": %s, "ok": %s}' \
            "$(json_str "${rows_name[i]}")" "$(json_str "${rows_cur[i]}")" \
            "$(json_str "${rows_want[i]}")" "$(json_str "${rows_rule[i]}")" "$ok"
        if ((i + 1 < n)); then printf ',\n'; else printf '\n'; fi
    done
    printf '  ]\n}\n'
}

# --- applying --------------------------------------------------------------------------------

# Writes one key; reports whether the kernel took it, refused it or kept another value.
apply_setting() {
    local key=$1 want=$2 rule path cur target err rc now
    rule=$(rule_for "${key//\//.}")
    path=$(key_path "$key")
    cur=$(read_current "$path")
    if satisfies "$rule" "$cur" "$want"; then
        return 0
    fi
    if [[ $cur == '(absent)' ]]; then
        warn "absent   $key: no $path on this kernel (module not loaded?)"
        return 1
    fi
    target=$(target_value "$rule" "$cur" "$want")
    if command -v sysctl >/dev/null 2>&1; then
        err=$(sysctl -q -w "$key=$target" 2>&1 >/dev/null)
        rc=$?
    else
        err=$({ printf '%s\n' "$target" >"$path"; } 2>&1)
        rc=$?
    fi
    norm_ws err "$err"
    now=$(read_current "$path")
    if satisfies "$rule" "$now" "$want"; then
        note "set      $key = $target"
        return 0
    elif ((rc != 0)) || [[ -n $err ]]; then
        warn "refused  $key = $target: ${err:-write failed (exit $rc)}"
    else
        warn "kept     $key: wrote '$target', kernel reads back '$now'"
    fi
    return 1
}

# Raises RLIMIT_NOFILE of this shell and of the calling process as far as the kernel allows.
apply_nofile() {
    local want=$1 soft hard err new_soft nr_open caller comm=""
    soft=$(ulimit -Sn)
    hard=$(ulimit -Hn)
    if [[ $hard != unlimited ]] && ! num_ge "$hard" "$want"; then
        # Try in a subshell first, so a refusal leaves this shell untouched.
        if err=$( (ulimit -Hn "$want") 2>&1); then
            ulimit -Hn "$want"
            note "set      ulimit -n (hard) = $want"
            hard=$want
        else
            err=${err##*: }
            nr_open=$(read_current /proc/sys/fs/nr_open)
            if is_uint "$nr_open" && ! num_ge "$nr_open" "$want"; then
                warn "refused  ulimit -n (hard) = $want: $err; fs.nr_open is $nr_open, below $want"
            else
                warn "refused  ulimit -n (hard) = $want: $err."
                warn "         The open-file hard limit stays at $hard: raising it needs CAP_SYS_RESOURCE"
                warn "         (or limits.conf / LimitNOFILE= applied at login or service start)."
                warn "         Where it cannot be raised, see README.md: spread connections over several"
                warn "         processes, or use rcomet's io_uring engine with direct descriptors."
            fi
        fi
    fi
    new_soft=$want
    if [[ $hard != unlimited ]] && ! num_ge "$hard" "$want"; then new_soft=$hard; fi
    if [[ $soft != unlimited ]] && ! num_ge "$soft" "$new_soft"; then
        if err=$( (ulimit -Sn "$new_soft") 2>&1); then
            ulimit -Sn "$new_soft"
            note "set      ulimit -n (soft) = $new_soft"
            soft=$new_soft
        else
            warn "refused  ulimit -n (soft) = $new_soft: ${err##*: }"
        fi
    fi

    # A script's own limit ends with it: carry the result over to the process that ran it.
    caller=$PPID
    [[ -r /proc/$caller/comm ]] && comm=$(</proc/"$caller"/comm)
    local c_soft="" c_hard="" line
    if [[ -r /proc/$caller/limits ]]; then
        while IFS= read -r line; do
            if [[ $line == 'Max open files'* ]]; then
                read -r _ _ _ c_soft c_hard _ <<<"$line"
                break
            fi
        done </proc/"$caller"/limits
    fi
    if [[ $c_soft == "$soft" && $c_hard == "$hard" ]]; then
        return 0
    fi
    if command -v prlimit >/dev/null 2>&1; then
        if err=$(prlimit --pid "$caller" --nofile="$soft:$hard" 2>&1); then
            note "set      ulimit -n of the calling process $caller ($comm) = $soft:$hard"
        else
            norm_ws err "$err"
            warn "refused  prlimit of the calling process $caller ($comm): $err"
        fi
    else
        note "note     prlimit(1) not found: run 'ulimit -n $soft' in your shell to keep the new limit"
    fi
}

if ((apply)); then
    [[ $EUID -ne 0 ]] && warn "check.sh: not root: the kernel will refuse most writes"
    for i in "${!conf_keys[@]}"; do
        apply_setting "${conf_keys[i]}" "${conf_vals[i]}"
    done
    # After fs.nr_open is raised, since the hard limit cannot exceed it.
    apply_nofile "$want_nofile"
    note ""
fi

evaluate
if ((json)); then
    print_json
elif ((!quiet)); then
    print_table
fi
all_ok
