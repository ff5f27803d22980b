#!/usr/bin/env python3
"""bench/messenger_table.py: the summary of bench/messenger.sh. Reads its runs.tsv (case, server,
round, report file, load generator arguments; one line per run) and the rcomet-loadgen --json
reports it names, takes the median over rounds of each metric per server, and prints one table
with the ratio rcomet/iComet per metric (`table`), or one JSON object with every run (`json`).

Usage: messenger_table.py table RUNS.tsv
       messenger_table.py json RUNS.tsv MACHINE.txt ENGINE THREADS ROUNDS LOADED END_LOAD
Depends on python3 only.
"""

import json
import statistics
import sys

from bench_report import field, fmt_us

SERVERS = ("rcomet", "icomet")

# Per case: label, then (metric name, report field, unit) rows; unit "rate" (per second, higher
# is better), "us" (latency, lower is better) or "cpu" (µs of server CPU, lower is better).
CASES = {
    "cl": ("10,000 ch x 1 stream, closed loop (pushes in flight)", [
        ("pushes/s", "pushes_per_s", "rate"),
        ("push->deliver p50", "latency_us.p50", "us"),
        ("push->deliver p99", "latency_us.p99", "us"),
        ("push->deliver p99.9", "latency_us.p999", "us"),
        ("server CPU per push", "server_cpu_us_per_push", "cpu"),
    ]),
    "ol": ("10,000 ch x 1 stream, open loop (offered rate)", [
        ("pushes/s (achieved)", "pushes_per_s", "rate"),
        ("push->deliver p50", "latency_us.p50", "us"),
        ("push->deliver p99", "latency_us.p99", "us"),
        ("push->deliver p99.9", "latency_us.p999", "us"),
        ("server CPU per push", "server_cpu_us_per_push", "cpu"),
    ]),
    "push": ("admin /push, each to its own channel, pipelined", [
        ("requests/s", "requests_per_s", "rate"),
        ("latency p50", "latency_us.p50", "us"),
        ("latency p99", "latency_us.p99", "us"),
        ("server CPU per request", "server_cpu_us_per_request", "cpu"),
    ]),
    "sign": ("admin /sign, each to its own channel, pipelined", [
        ("requests/s", "requests_per_s", "rate"),
        ("latency p50", "latency_us.p50", "us"),
        ("latency p99", "latency_us.p99", "us"),
        ("server CPU per request", "server_cpu_us_per_request", "cpu"),
    ]),
    "info": ("admin /info?cname=, distinct channels, pipelined", [
        ("requests/s", "requests_per_s", "rate"),
        ("latency p50", "latency_us.p50", "us"),
        ("latency p99", "latency_us.p99", "us"),
        ("server CPU per request", "server_cpu_us_per_request", "cpu"),
    ]),
    "fan1k": ("1 ch x 1,000 stream, pipelined pushes", [
        ("deliveries/s", "deliveries_per_s", "rate"),
        ("push->deliver p50", "latency_us.p50", "us"),
        ("push->deliver p99", "latency_us.p99", "us"),
        ("server CPU per delivery", "server_cpu_us_per_delivery", "cpu"),
    ]),
    "fan10k": ("1 ch x 10,000 stream, pipelined pushes", [
        ("deliveries/s", "deliveries_per_s", "rate"),
        ("push->deliver p50", "latency_us.p50", "us"),
        ("push->deliver p99", "latency_us.p99", "us"),
        ("server CPU per delivery", "server_cpu_us_per_delivery", "cpu"),
    ]),
}

# Counts summed over every round: anything but 0 deserves a look.
CHECKS = ("lost", "duplicated", "out_of_order", "undelivered", "non_200", "errors_total")


def load_runs(path):
    runs = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5:
                continue
            case, server, rnd, report_file, args = parts[:5]
            try:
                report = json.load(open(report_file))
            except (OSError, ValueError):
                report = {}
            runs.append({"case": case, "server": server, "round": int(rnd),
                         "command": "rcomet-loadgen " + args, "report": report})
    return runs


def summarize(runs):
    out = {}
    for case, (label, metrics) in CASES.items():
        mine = [r for r in runs if r["case"] == case]
        if not mine:
            continue
        entry = {"label": label, "command": mine[0]["command"], "metrics": {}, "checks": {}}
        for name, path, unit in metrics:
            m = {"field": path, "unit": unit}
            for s in SERVERS:
                vals = [field(r["report"], path) for r in mine if r["server"] == s]
                vals = [v for v in vals if v is not None]
                m[s + "_rounds"] = vals
                m[s] = statistics.median(vals) if vals else None
            rc, ic = m["rcomet"], m["icomet"]
            m["ratio"] = rc / ic if rc is not None and ic else None
            entry["metrics"][name] = m
        for s in SERVERS:
            reps = [r["report"] for r in mine if r["server"] == s]
            if not reps:
                continue
            checks = {k: sum(field(rep, k) or 0 for rep in reps) for k in CHECKS}
            checks["runs_without_report"] = sum(1 for rep in reps if not rep)
            checks["publish_capped"] = sum(1 for rep in reps if rep.get("publish_capped"))
            entry["checks"][s] = checks
        out[case] = entry
    return out


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "rate":
        return f"{v:,.0f}/s"
    if unit == "cpu":
        return f"{v:.2f} us"
    return fmt_us(v)


def fmt_checks(c):
    if c is None:
        return "-"
    s = "{lost}/{duplicated}/{out_of_order}/{undelivered}/{non_200}/{errors_total}".format(**c)
    if c["runs_without_report"]:
        s += f" ({c['runs_without_report']} runs without report)"
    if c["publish_capped"]:
        s += " (stopped at duration)"
    return s


def table(summary):
    w = 46
    head = f"{'case / metric':<{w}} | {'rcomet':>14} | {'iComet':>14} | {'rcomet/iComet':>13}"
    print(head)
    print("-" * len(head))
    for case, e in summary.items():
        print(f"{e['label']} [{case}]")
        for name, m in e["metrics"].items():
            ratio = f"{m['ratio']:.2f}x" if m["ratio"] is not None else "-"
            print(f"  {name:<{w - 2}} | {fmt(m['rcomet'], m['unit']):>14} | "
                  f"{fmt(m['icomet'], m['unit']):>14} | {ratio:>13}")
        rc, ic = e["checks"].get("rcomet"), e["checks"].get("icomet")
        print(f"  {'lost/dup/ooo/undeliv/non-200/errors':<{w - 2}} | {fmt_checks(rc):>14} | "
              f"{fmt_checks(ic):>14} |")
    print()
    print("commands (each with --front, --admin, --pid SERVER --json --quiet):")
    for case, e in summary.items():
        print(f"  [{case}] {e['command']}")


def main(argv):
    if len(argv) >= 3 and argv[1] == "table":
        table(summarize(load_runs(argv[2])))
        return 0
    if len(argv) >= 9 and argv[1] == "json":
        runs = load_runs(argv[2])
        out = {
            "machine": open(argv[3]).read(),
            "engine": argv[4],
            "threads": int(argv[5]),
            "rounds": int(argv[6]),
            "loaded_machine": argv[7] == "1",
            "load_at_end": float(argv[8]),
            "summary": summarize(runs),
            "runs": runs,
        }
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
