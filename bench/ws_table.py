#!/usr/bin/env python3
"""bench/ws_table.py: the summary of bench/ws.sh. Reads its runs.tsv (case, engine asked for,
engine that ran, transport, round, report file, commands; one line per run) and the
rcomet-loadgen --json reports it names, takes the median over rounds of each metric per case,
engine and transport, and prints one table with ws/stream per metric and every round's value
(`table`), or one JSON object with the summary and every run (`json`).

Usage: ws_table.py table RUNS.tsv
       ws_table.py json RUNS.tsv MACHINE.txt ROUNDS LOADED END_LOAD
Depends on python3 and bench/bench_report.py.
"""

import json
import statistics
import sys

from bench_report import field, fmt_value as fmt, load

TRANSPORTS = ("ws", "stream")
# The fan-out target: WebSocket deliveries/s at least this share of /stream's.
FAN_TARGET = 0.8

# Per case: label, then (metric name, report field, unit) rows; unit "bytes", "rate", "us",
# "cpu" (µs of server CPU) or "count".
CASES = {
    "mem": ("idle subscribers, one signed channel each", [
        ("held", "connections_held_at_ready", "count"),
        ("server RSS per subscriber", "server_rss_per_conn_bytes", "bytes"),
        ("server RssAnon per subscriber", "server_rss_anon_per_conn_bytes", "bytes"),
        ("connect rate", "connect_rate_per_s", "rate"),
    ]),
    "fan": ("1 channel, pipelined pushes (closed loop)", [
        ("deliveries/s", "deliveries_per_s", "rate"),
        ("push->deliver p50", "latency_us.p50", "us"),
        ("push->deliver p99", "latency_us.p99", "us"),
        ("server CPU per delivery", "server_cpu_us_per_delivery", "cpu"),
    ]),
}

# Counts summed over every round: anything but 0 deserves a look.
CHECKS = ("lost", "duplicated", "out_of_order", "undelivered", "errors_total")


def load_runs(path):
    runs = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 7:
                continue
            case, engine, ran, transport, rnd, report_file, command = parts[:7]
            runs.append({"case": case, "engine": engine, "engine_ran": ran,
                         "transport": transport, "round": int(rnd), "command": command,
                         "report": load(report_file)})
    return runs


def summarize(runs):
    out = []
    for case, (label, metrics) in CASES.items():
        for engine in dict.fromkeys(r["engine"] for r in runs if r["case"] == case):
            mine = [r for r in runs if r["case"] == case and r["engine"] == engine]
            ran = sorted({r["engine_ran"] for r in mine})
            entry = {"case": case, "engine": engine, "engine_ran": ran, "label": label,
                     "commands": {t: next((r["command"] for r in mine if r["transport"] == t), None)
                                  for t in TRANSPORTS},
                     "metrics": {}, "checks": {}}
            for name, path, unit in metrics:
                m = {"field": path, "unit": unit}
                for t in TRANSPORTS:
                    vals = [field(r["report"], path) for r in sorted(mine, key=lambda r: r["round"])
                            if r["transport"] == t]
                    vals = [v for v in vals if v is not None]
                    m[t + "_rounds"] = vals
                    m[t] = statistics.median(vals) if vals else None
                m["ratio"] = m["ws"] / m["stream"] if m["ws"] is not None and m["stream"] else None
                entry["metrics"][name] = m
            for t in TRANSPORTS:
                reps = [r["report"] for r in mine if r["transport"] == t]
                checks = {k: sum(field(rep, k) or 0 for rep in reps) for k in CHECKS}
                checks["runs_without_report"] = sum(1 for rep in reps if not rep)
                entry["checks"][t] = checks
            if case == "fan":
                ratio = entry["metrics"]["deliveries/s"]["ratio"]
                entry["target"] = {"ws_over_stream_at_least": FAN_TARGET,
                                   "met": ratio is not None and ratio >= FAN_TARGET}
            out.append(entry)
    return out


def fmt_checks(c):
    s = "{lost}/{duplicated}/{out_of_order}/{undelivered}/{errors_total}".format(**c)
    if c["runs_without_report"]:
        s += f" ({c['runs_without_report']} runs without report)"
    return s


def table(summary):
    w = 34
    head = (f"{'case / metric':<{w}} | {'ws':>12} | {'stream':>12} | {'ws/stream':>9} | "
            f"rounds (ws; stream)")
    print(head)
    print("-" * (len(head) + 20))
    for e in summary:
        ran = ",".join(e["engine_ran"])
        print(f"{e['label']} [{e['case']}, engine {e['engine']}"
              f"{'' if ran == e['engine'] else ' (ran: ' + ran + ')'}]")
        for name, m in e["metrics"].items():
            ratio = f"{m['ratio']:.3f}" if m["ratio"] is not None else "-"
            rounds = "; ".join(", ".join(fmt(v, m["unit"]) for v in m[t + "_rounds"]) or "-"
                               for t in TRANSPORTS)
            print(f"  {name:<{w - 2}} | {fmt(m['ws'], m['unit']):>12} | "
                  f"{fmt(m['stream'], m['unit']):>12} | {ratio:>9} | {rounds}")
        print(f"  {'lost/dup/ooo/undeliv/errors':<{w - 2}} | {fmt_checks(e['checks']['ws']):>12} | "
              f"{fmt_checks(e['checks']['stream']):>12} |")
        if "target" in e:
            verdict = "met" if e["target"]["met"] else "MISSED"
            print(f"  target: ws deliveries/s >= {FAN_TARGET:.0%} of stream's: {verdict}")
    print()
    print("commands (loadgen also with --front, --admin, --pid SERVER --json --quiet):")
    seen = set()
    for e in summary:
        for t, c in e["commands"].items():
            if c and c not in seen:
                seen.add(c)
                print(f"  [{e['case']} {e['engine']} {t}] {c}")


def main(argv):
    if len(argv) >= 3 and argv[1] == "table":
        table(summarize(load_runs(argv[2])))
        return 0
    if len(argv) >= 7 and argv[1] == "json":
        runs = load_runs(argv[2])
        out = {
            "machine": open(argv[3]).read(),
            "rounds": int(argv[4]),
            "loaded_machine": argv[5] == "1",
            "load_at_end": float(argv[6]),
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
