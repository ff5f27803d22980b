#!/usr/bin/env python3
"""bench/c1000k_table.py: the result table of bench/c1000k.sh and its pass/fail check.

Reads RUNS.tsv (one line per server: label, column head, target connections, hold-phase report,
push-phase report, memory sampler file of bench/lib.sh) and the rcomet-loadgen --json reports it
names, and prints one table: a column per server (the first is rcomet) and, per other server, the
ratio rcomet/other of every numeric row. A server fails when it held fewer connections than its
target (hold phase at ramp end or at the end of the hold, or subscribers of the push phase) or
lost a message (seq gaps, expected deliveries that never came, pushes that failed); the failing
rows are then printed first, above the table, with the reason for each, and the exit status is 1.

Usage: c1000k_table.py RUNS.tsv
Depends on bench/bench_report.py, python3 only.
"""

import sys

import bench_report
from bench_report import fmt_bytes, fmt_us

LABEL_W = 38
CELL_W = 30
RATIO_W = 14


def get(report, path):
    v = report
    for k in path.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    if isinstance(v, bool):
        return v
    return v if isinstance(v, (int, float)) else None


def sampler_max_kb(path, column=2):
    """Largest numeric value of a 1-based column of a bench/lib.sh sampler file."""
    best = None
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= column and parts[column - 1].isdigit():
                    v = int(parts[column - 1])
                    best = v if best is None else max(best, v)
    except OSError:
        pass
    return best


def fmt_int(v):
    return "-" if v is None else f"{v:,.0f}"


def cells(run):
    """Per row key: (text, number for the ratio or None)."""
    h, p = run["hold"], run["push"]
    out = {}
    out["target"] = (fmt_int(run["target"]), None)
    held, end = get(h, "connections_held_at_ready"), get(h, "connections_held")
    out["held"] = (f"{fmt_int(held)} (end of hold {fmt_int(end)})", held)
    rate, ramp = get(h, "connect_rate_per_s"), get(h, "ramp_s")
    ramp_s = "-" if ramp is None else f"{ramp:.1f} s"
    out["rate"] = (f"{fmt_int(rate)}/s ({ramp_s})", rate)
    rss = get(h, "server_rss_bytes")
    out["rss"] = (fmt_bytes(rss), rss)
    peak = run["rss_peak_kb"]
    peak = None if peak is None else peak * 1024
    out["rss_peak"] = (fmt_bytes(peak), peak)
    per, anon = get(h, "server_rss_per_conn_bytes"), get(h, "server_rss_anon_per_conn_bytes")
    out["rss_conn"] = (f"{fmt_bytes(per)} (anon {fmt_bytes(anon)})", per)
    kern = get(h, "kernel_per_conn_bytes")
    out["kern_conn"] = (fmt_bytes(kern), kern)
    err = get(h, "errors_total")
    guard = ", memory guard hit" if get(h, "memory_guard_hit") else ""
    out["hold_err"] = (f"{fmt_int(err)}{guard}", None)
    pheld = get(p, "connections_held_at_ready")
    out["push_held"] = (fmt_int(pheld), pheld)
    out["deliv"] = (f"{fmt_int(get(p, 'deliveries'))} / {fmt_int(get(p, 'expected_deliveries'))}",
                    None)
    ds = get(p, "deliveries_per_s")
    out["deliv_s"] = (f"{fmt_int(ds)}/s", ds)
    for key in ("p50", "p90", "p99", "p999", "p9999", "max"):
        v = get(p, "latency_us." + key)
        out["lat_" + key] = (fmt_us(v), v)
    counts = [get(p, k) for k in ("lost", "duplicated", "out_of_order", "undelivered")]
    out["lost"] = (" / ".join(fmt_int(c) for c in counts), None)
    out["push_err"] = (f"{fmt_int(get(p, 'errors_total'))} (pushes failed "
                       f"{fmt_int(get(p, 'pushes_failed'))})", None)
    out["procs"] = (f"{fmt_int(get(h, 'processes'))} (fd limit {fmt_int(get(h, 'fd_limit'))})",
                    None)
    return out


ROWS = [
    ("target", "target connections (this server)"),
    ("held", "connections held"),
    ("rate", "connect rate (ramp time)"),
    ("rss", "server RSS at full count"),
    ("rss_peak", "server RSS peak (either phase)"),
    ("rss_conn", "server RSS / connection"),
    ("kern_conn", "kernel memory / connection"),
    ("hold_err", "hold-phase errors"),
    ("push_held", "push: subscribers held"),
    ("deliv", "push: deliveries / expected"),
    ("deliv_s", "push: deliveries/s"),
    ("lat_p50", "push latency p50"),
    ("lat_p90", "push latency p90"),
    ("lat_p99", "push latency p99"),
    ("lat_p999", "push latency p99.9"),
    ("lat_p9999", "push latency p99.99"),
    ("lat_max", "push latency max"),
    ("lost", "lost / dup / out-of-order / undeliv."),
    ("push_err", "push-phase errors"),
    ("procs", "load generator processes"),
]


def failures(run):
    """(row key, reason) for every way this server missed its target or lost messages."""
    h, p, t = run["hold"], run["push"], run["target"]
    out = []
    if not h:
        out.append(("held", "no hold-phase report"))
    else:
        held, end = get(h, "connections_held_at_ready") or 0, get(h, "connections_held") or 0
        if held < t or end < t:
            out.append(("held", f"connections held {held:,} (end of hold {end:,}) < target {t:,}"))
    if not p:
        out.append(("push_held", "no push-phase report"))
        return out
    pheld = get(p, "connections_held_at_ready") or 0
    if pheld < t:
        out.append(("push_held", f"push phase held {pheld:,} subscribers < target {t:,}"))
    lost, undeliv = get(p, "lost") or 0, get(p, "undelivered") or 0
    if lost or undeliv:
        out.append(("lost", f"{lost:,} messages lost (seq gaps), {undeliv:,} expected "
                            "deliveries never arrived"))
    failed = get(p, "pushes_failed") or 0
    if failed:
        out.append(("push_err", f"{failed:,} pushes failed (messages never published)"))
    return out


def render(runs):
    """The table lines and the failure lines."""
    data = [cells(r) for r in runs]
    others = list(range(1, len(runs)))
    width = max([CELL_W] + [len(r["head"]) for r in runs]
                + [len(d[key][0]) for d in data for key, _ in ROWS])
    head = f"{'':<{LABEL_W}}"
    for r in runs:
        head += f" | {r['head']:<{width}}"
    for i in others:
        head += f" | {'rcomet/' + runs[i]['short']:>{RATIO_W}}"
    lines = {}
    for key, name in ROWS:
        line = f"{name:<{LABEL_W}}"
        for d in data:
            line += f" | {d[key][0]:<{width}}"
        for i in others:
            a, b = data[0][key][1], data[i][key][1]
            ratio = f"{a / b:.2f}x" if a is not None and b else ""
            line += f" | {ratio:>{RATIO_W}}"
        lines[key] = line.rstrip()
    rule = "-" * len(head)
    fails = []
    for r in runs:
        for key, why in failures(r):
            fails.append((key, f"{r['head']}: {why}"))
    return head, rule, lines, fails


def loadgen_rss_max_kb(report):
    """Largest server VmRSS among a load generator report's own samples, in kB."""
    values = [s.get("server_rss_bytes") for s in (report or {}).get("samples") or []]
    values = [v for v in values if isinstance(v, int)]
    return max(values) // 1024 if values else None


def read_runs(path):
    runs = bench_report.read_runs(path)
    for run in runs:
        # The hold phase is sampled by bench/lib.sh's sampler, the push phase by the load
        # generator alone (see run_phase in bench/c1000k.sh).
        peaks = [sampler_max_kb(run["samples"]), loadgen_rss_max_kb(run.get("push"))]
        peaks = [p for p in peaks if p is not None]
        run["rss_peak_kb"] = max(peaks) if peaks else None
    return runs


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = read_runs(argv[1])
    if not runs:
        print("c1000k_table.py: no runs in " + argv[1], file=sys.stderr)
        return 2
    head, rule, lines, fails = render(runs)
    if fails:
        print(f"FAILED: {len(fails)} check(s): a server held fewer connections than its target "
              "or lost messages. Failing rows:")
        print(head)
        print(rule)
        failing = {key for key, _ in fails}
        for key, _ in ROWS:
            if key in failing:
                print(lines[key])
        for _, why in fails:
            print(f"  - {why}")
        print()
    print(head)
    print(rule)
    for key, _ in ROWS:
        print(lines[key])
    if len(runs) > 1:
        print("ratio = rcomet / other: above 1 is better for rates (/s), below 1 for memory and "
              "latency.")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
