"""bench/bench_report.py: what the benchmark scripts' Python readers share: loading rcomet-loadgen
--json reports, the RUNS.tsv file bench/c1000k.sh writes, and the number formats of the tables
and charts (the same as bench/lib.sh's).

Imported by bench/c1000k_table.py, bench/c1000k_charts.py, bench/messenger_table.py,
bench/ws_table.py and bench/cluster_table.py (each run from bench/, so this file is on its import
path). Depends on python3 only.
"""

import json


def load(path):
    """A --json report as a dict ({} when missing or unreadable)."""
    try:
        with open(path) as f:
            v = json.load(f)
        return v if isinstance(v, dict) else {}
    except (OSError, ValueError):
        return {}


def field(report, path):
    """The number at dotted `path` of a report (None when absent or not a number)."""
    v = report
    for k in path.split("."):
        v = v.get(k) if isinstance(v, dict) else None
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt_value(v, unit):
    """A table cell: `rate` (/s), `cpu` (us, 3 decimals), `bytes`, `count`, else a latency."""
    if v is None:
        return "-"
    if unit == "rate":
        return f"{v:,.0f}/s"
    if unit == "cpu":
        return f"{v:.3f} us"
    if unit == "bytes":
        return fmt_bytes(v)
    if unit == "count":
        return f"{v:,.0f}"
    return fmt_us(v)


def read_runs(path):
    """RUNS.tsv of bench/c1000k.sh: one dict per server (label, short, head, target, the hold-
    and push-phase reports, and the path of its memory sampler file)."""
    runs = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 7:
                continue
            label, short, head, target, hold, push, samples = parts[:7]
            runs.append({"label": label, "short": short, "head": head, "target": int(target),
                         "hold": load(hold), "push": load(push), "samples": samples})
    return runs


def fmt_us(v):
    """Microseconds as us, ms or s."""
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} s"
    if v >= 1e4:
        return f"{v / 1e3:.1f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.2f} ms"
    return f"{v:.0f} us"


def fmt_bytes(v):
    """Powers of 1000, as bench/lib.sh's fmt_bytes."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f} GB"
    if a >= 1e6:
        return f"{v / 1e6:.1f} MB"
    if a >= 1e3:
        return f"{v / 1e3:.1f} KB"
    return f"{v:.0f} B"
