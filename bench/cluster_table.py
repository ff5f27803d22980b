#!/usr/bin/env python3
"""bench/cluster_table.py: the summary of bench/cluster.sh. Reads its runs.tsv (case, setup
(cluster or single), round, report file, whether the report's last --pid is redis-server (1/0),
commands; one line per run) and the rcomet-loadgen --json reports it names, takes the median over
rounds of each metric per case and setup, and prints one table with cluster/single per metric and
every round's value (`table`), or one JSON object with the summary and every run (`json`).

rcomet's CPU and memory are summed over its nodes from the report's `server_processes` (every
--pid but Redis); Redis's are its own entry, the last.

Usage: cluster_table.py table RUNS.tsv
       cluster_table.py json RUNS.tsv MACHINE.txt ROUNDS LOADED END_LOAD
Depends on python3 and bench/bench_report.py.
"""

import json
import statistics
import sys

from bench_report import field, fmt_value as fmt, load

SETUPS = ("cluster", "single")


def processes(run):
    """(rcomet node entries, redis entry or None) of a run's server_processes."""
    procs = run["report"].get("server_processes") or []
    if run["redis"] and procs:
        return procs[:-1], procs[-1]
    return procs, None


def total(entries, key):
    """The sum of `key` over entries; None when there is none or one is missing."""
    vals = [e.get(key) for e in entries]
    if not vals or any(not isinstance(v, (int, float)) for v in vals):
        return None
    return sum(vals)


def per(value, count):
    return value / count if value is not None and count else None


def rcomet_cpu(run, count_field):
    nodes, _ = processes(run)
    return per(total(nodes, "cpu_us"), field(run["report"], count_field))


def redis_cpu(run, count_field):
    _, redis = processes(run)
    if redis is None:
        return None
    return per(redis.get("cpu_us"), field(run["report"], count_field))


def rss_per(entries, after_key, held):
    after, before = total(entries, after_key), total(entries, "rss_before_bytes")
    if after is None or before is None:
        return None
    return per(after - before, held)


def rcomet_rss(run, after_key):
    nodes, _ = processes(run)
    return rss_per(nodes, after_key, field(run["report"], "connections_held_at_ready"))


def redis_rss(run):
    _, redis = processes(run)
    if redis is None:
        return None
    return rss_per([redis], "rss_bytes", field(run["report"], "connections_held_at_ready"))


def from_report(path):
    return lambda run: field(run["report"], path)


# Per case: label, then (metric, how to get it from a run, unit) rows; unit "rate", "us",
# "cpu" (µs of CPU), "bytes" or "count".
CASES = {
    "msg": ("channels x 1 /stream subscriber, pipelined pushes (closed loop)", [
        ("pushes/s", from_report("pushes_per_s"), "rate"),
        ("push->deliver p50", from_report("latency_us.p50"), "us"),
        ("push->deliver p99", from_report("latency_us.p99"), "us"),
        ("rcomet CPU per push", lambda r: rcomet_cpu(r, "pushes_ok"), "cpu"),
        ("redis CPU per push", lambda r: redis_cpu(r, "pushes_ok"), "cpu"),
    ]),
    "fan": ("1 channel x many /stream subscribers, pipelined pushes", [
        ("deliveries/s", from_report("deliveries_per_s"), "rate"),
        ("push->deliver p50", from_report("latency_us.p50"), "us"),
        ("push->deliver p99", from_report("latency_us.p99"), "us"),
        ("rcomet CPU per delivery", lambda r: rcomet_cpu(r, "deliveries"), "cpu"),
        ("redis CPU per push", lambda r: redis_cpu(r, "pushes_ok"), "cpu"),
    ]),
    "mem": ("idle subscribers, one signed channel each", [
        ("held", from_report("connections_held_at_ready"), "count"),
        ("rcomet RSS per subscriber", lambda r: rcomet_rss(r, "rss_bytes"), "bytes"),
        ("  the same at the end of the hold", lambda r: rcomet_rss(r, "rss_end_bytes"), "bytes"),
        ("redis RSS per channel", redis_rss, "bytes"),
    ]),
}

# Counts summed over every round: anything but 0 deserves a look.
CHECKS = ("lost", "duplicated", "out_of_order", "undelivered", "errors_total", "non_200")


def load_runs(path):
    runs = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 6:
                continue
            case, setup, rnd, report_file, redis, command = parts[:6]
            runs.append({"case": case, "setup": setup, "round": int(rnd), "redis": redis == "1",
                         "command": command, "report": load(report_file)})
    return runs


def summarize(runs):
    out = []
    for case, (label, metrics) in CASES.items():
        mine = sorted((r for r in runs if r["case"] == case), key=lambda r: r["round"])
        if not mine:
            continue
        entry = {"case": case, "label": label,
                 "commands": {s: next((r["command"] for r in mine if r["setup"] == s), None)
                              for s in SETUPS},
                 "metrics": {}, "checks": {}}
        for name, get, unit in metrics:
            m = {"unit": unit}
            for s in SETUPS:
                vals = [get(r) for r in mine if r["setup"] == s]
                vals = [v for v in vals if v is not None]
                m[s + "_rounds"] = vals
                m[s] = statistics.median(vals) if vals else None
            m["ratio"] = (m["cluster"] / m["single"]
                          if m["cluster"] is not None and m["single"] else None)
            entry["metrics"][name.strip()] = m
        for s in SETUPS:
            reps = [r["report"] for r in mine if r["setup"] == s]
            checks = {k: sum(field(rep, k) or 0 for rep in reps) for k in CHECKS}
            checks["runs_without_report"] = sum(1 for rep in reps if not rep)
            entry["checks"][s] = checks
        out.append(entry)
    return out


def fmt_checks(c):
    s = "{lost}/{duplicated}/{out_of_order}/{undelivered}/{errors_total}/{non_200}".format(**c)
    if c["runs_without_report"]:
        s += f" ({c['runs_without_report']} runs without report)"
    return s


def table(summary):
    w = 36
    head = (f"{'case / metric':<{w}} | {'cluster':>12} | {'single':>12} | {'ratio':>7} | "
            f"rounds (cluster; single)")
    print(head)
    print("-" * (len(head) + 20))
    for e in summary:
        print(f"{e['label']} [{e['case']}]")
        for name, m in e["metrics"].items():
            ratio = f"{m['ratio']:.3f}" if m["ratio"] is not None else "-"
            rounds = "; ".join(", ".join(fmt(v, m["unit"]) for v in m[s + "_rounds"]) or "-"
                               for s in SETUPS)
            print(f"  {name:<{w - 2}} | {fmt(m['cluster'], m['unit']):>12} | "
                  f"{fmt(m['single'], m['unit']):>12} | {ratio:>7} | {rounds}")
        print(f"  {'lost/dup/ooo/undeliv/errors/non200':<{w - 2}} | "
              f"{fmt_checks(e['checks']['cluster']):>12} | {fmt_checks(e['checks']['single']):>12} |")
    print()
    print("commands (loadgen also with --front and --admin of every node, --pid NODES[,REDIS],")
    print("--json --quiet):")
    for e in summary:
        for s, c in e["commands"].items():
            if c:
                print(f"  [{e['case']} {s}] {c}")


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
