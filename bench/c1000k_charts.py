#!/usr/bin/env python3
"""bench/c1000k_charts.py: the two SVG charts of bench/c1000k.sh, without any library.

Reads RUNS.tsv (as bench/c1000k_table.py: label, short name, column head, target, hold-phase
report, push-phase report, sampler file) and writes into OUTDIR
  c1000k-memory.svg   server RSS (VmRSS of --pid) and kernel memory (SUnreclaim above its value
                      before the ramp) against connections held, from the hold-phase report's
                      `samples` taken during the ramp (stages ramp and ready), every server on
                      the same two panels;
  c1000k-latency.svg  the push phase's push->deliver latency at the report's quantile ladder
                      (`latency_quantiles_us`), x = 1/(1-q) on a log axis labelled by percentile
                      (50 % ... 99.999 %, up to what the sample count supports), y = latency on a
                      log axis, every server on one chart;
each with axes, ticks, labels, a legend and a title that ends with SUFFIX (date, commit). Prints
the paths it wrote.

Usage: c1000k_charts.py RUNS.tsv OUTDIR SUFFIX
Depends on bench/bench_report.py, python3 only.
"""

import math
import os
import sys
from xml.sax.saxutils import escape

from bench_report import fmt_bytes, fmt_us, read_runs

COLORS = ["#1f5fa8", "#d0452b", "#2f9a3c", "#8a53b5"]
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


class Svg:
    def __init__(self, width, height):
        self.width, self.height = width, height
        self.parts = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']

    def line(self, x1, y1, x2, y2, stroke="#000", width=1.0, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                          f'stroke="{stroke}" stroke-width="{width}"{d}/>')

    def polyline(self, points, stroke, width=2.0, dash=None):
        if len(points) < 2:
            return
        d = f' stroke-dasharray="{dash}"' if dash else ""
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" '
                          f'stroke-width="{width}" stroke-linejoin="round"{d}/>')

    def circle(self, x, y, r, fill, stroke=None):
        s = f' stroke="{stroke}" stroke-width="1.5"' if stroke else ""
        self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}"{s}/>')

    def rect(self, x, y, w, h, fill="none", stroke="#000", width=1.0):
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                          f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')

    def text(self, x, y, s, size=12, anchor="start", weight="normal", fill="#222", rotate=None):
        t = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" '
                          f'font-size="{size}" font-weight="{weight}" fill="{fill}" '
                          f'text-anchor="{anchor}"{t}>{escape(s)}</text>')

    def render(self):
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}">\n'
                + "\n".join(self.parts) + "\n</svg>\n")


class Scale:
    """Maps [lo, hi] (linear or log10) onto [a, b] in pixels."""

    def __init__(self, lo, hi, a, b, log=False):
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        if self.hi <= self.lo:
            self.hi = self.lo + 1
        self.a, self.b = a, b

    def __call__(self, v):
        if self.log:
            v = math.log10(max(v, 1e-300))
        f = (v - self.lo) / (self.hi - self.lo)
        return self.a + f * (self.b - self.a)


def nice_step(span, ticks=6):
    raw = span / max(ticks, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def linear_ticks(lo, hi, ticks=6):
    """A nice range covering [min(lo, 0), hi] and its tick values: (bottom, top, step, ticks)."""
    lo = min(lo, 0)
    if hi <= lo:
        hi = lo + 1
    step = nice_step(hi - lo, ticks)
    bottom = math.floor(lo / step + 1e-9) * step
    top = math.ceil(hi / step - 1e-9) * step
    n = int(round((top - bottom) / step))
    return bottom, top, step, [bottom + i * step for i in range(n + 1)]


def fmt_num(v, step):
    """A tick label with as many decimals as the step needs."""
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > 1e-9 * step:
        decimals += 1
    return f"{v:,.{decimals}f}"


def fmt_ms(ms):
    if ms >= 1000:
        s = ms / 1000
        return f"{s:g} s"
    if ms >= 1:
        return f"{ms:g} ms"
    return f"{ms * 1000:g} us"


def panel(svg, box, xs, ys, xticks, yticks, xlabel, ylabel, title):
    """Frame, grid, ticks and labels of one plot area; box = (left, top, width, height)."""
    left, top, w, h = box
    for v, label in yticks:
        y = ys(v)
        svg.line(left, y, left + w, y, stroke="#e3e3e3")
        svg.line(left - 5, y, left, y, stroke="#444")
        svg.text(left - 8, y + 4, label, size=11, anchor="end")
    for v, label in xticks:
        x = xs(v)
        svg.line(x, top, x, top + h, stroke="#e3e3e3")
        svg.line(x, top + h, x, top + h + 5, stroke="#444")
        svg.text(x, top + h + 19, label, size=11, anchor="middle")
    svg.rect(left, top, w, h, stroke="#444")
    svg.text(left + w / 2, top + h + 40, xlabel, size=12, anchor="middle")
    svg.text(left - 58, top + h / 2, ylabel, size=12, anchor="middle", rotate=-90)
    svg.text(left + w / 2, top - 10, title, size=13, anchor="middle", weight="bold")


def legend(svg, x, y, entries):
    """entries: (color, dash or None, text); one per line."""
    for i, (color, dash, text) in enumerate(entries):
        yy = y + i * 18
        svg.line(x, yy - 4, x + 26, yy - 4, stroke=color, width=2.5, dash=dash)
        svg.text(x + 34, yy, text, size=12)


def memory_chart(runs, suffix):
    svg = Svg(1000, 560)
    svg.text(500, 26, "C1000K ramp: server and kernel memory against connections held", size=16,
             anchor="middle", weight="bold")
    svg.text(500, 46, suffix, size=12, anchor="middle", fill="#555")
    series = []
    for i, r in enumerate(runs):
        samples = [s for s in r["hold"].get("samples") or []
                   if isinstance(s, dict) and s.get("stage") in ("ramp", "ready")]
        base = next((s.get("kernel_sunreclaim_bytes") for s in samples
                     if s.get("kernel_sunreclaim_bytes") is not None), None)
        rss, kern, ready = [], [], None
        for s in samples:
            held = s.get("connections_held")
            if held is None:
                continue
            if s.get("server_rss_bytes") is not None:
                rss.append((held, s["server_rss_bytes"] / 1e6))
            if base is not None and s.get("kernel_sunreclaim_bytes") is not None:
                kern.append((held, (s["kernel_sunreclaim_bytes"] - base) / 1e6))
            if s.get("stage") == "ready":
                ready = held
        series.append({"color": COLORS[i % len(COLORS)], "rss": rss, "kern": kern,
                       "ready": ready, "run": r})
    max_x = max([x for s in series for x, _ in s["rss"] + s["kern"]] + [1])
    _, xtop, xstep, xt = linear_ticks(0, max_x, 5)
    boxes = [(90, 90, 380, 300), (590, 90, 380, 300)]
    what = [("rss", "server RSS (VmRSS)", "MB (10^6 bytes)"),
            ("kern", "kernel memory (SUnreclaim increase)", "MB (10^6 bytes)")]
    for box, (key, title, ylabel) in zip(boxes, what):
        vals = [y for s in series for _, y in s[key]] or [0, 1]
        ybottom, ytop, ystep, yt = linear_ticks(min(vals), max(vals), 5)
        left, top, w, h = box
        xs = Scale(0, xtop, left, left + w)
        ys = Scale(ybottom, ytop, top + h, top)
        panel(svg, box, xs, ys, [(v, fmt_num(v, xstep)) for v in xt],
              [(v, fmt_num(v, ystep)) for v in yt], "connections held", ylabel, title)
        for s in series:
            pts = [(xs(x), ys(y)) for x, y in s[key]]
            svg.polyline(pts, s["color"], width=2.2)
            for x, y in pts:
                svg.circle(x, y, 1.8, s["color"])
            if pts and s["ready"] is not None:
                last = [p for (x, _), p in zip(s[key], pts) if x == s["ready"]]
                if last:
                    svg.circle(last[-1][0], last[-1][1], 4, s["color"])
    entries = []
    for s in series:
        h = s["run"]["hold"]
        held = h.get("connections_held_at_ready")
        text = (f"{s['run']['head']}: {held:,} held, RSS "
                f"{fmt_bytes(h.get('server_rss_per_conn_bytes'))}/conn, kernel "
                f"{fmt_bytes(h.get('kernel_per_conn_bytes'))}/conn"
                if isinstance(held, int) else f"{s['run']['head']}: no samples")
        if not s["rss"] and isinstance(held, int):
            text += " (no server RSS: no --pid)"
        entries.append((s["color"], None, text))
    legend(svg, 90, 458, entries)
    svg.text(90, 458 + 18 * len(entries) + 8,
             "Samples every 0.5 s during the ramp (rcomet-loadgen --json samples); the dot is the "
             "ramp end. Kernel: /proc/meminfo SUnreclaim minus its", size=11, fill="#555")
    svg.text(90, 458 + 18 * len(entries) + 23,
             "value before the ramp, system-wide: both sockets of every loopback connection "
             "(client and server), plus whatever else the machine did meanwhile.", size=11,
             fill="#555")
    return svg.render()


def latency_chart(runs, suffix):
    svg = Svg(1000, 580)
    svg.text(500, 26, "C1000K push phase: push->deliver latency by percentile", size=16,
             anchor="middle", weight="bold")
    svg.text(500, 46, suffix, size=12, anchor="middle", fill="#555")
    series = []
    for i, r in enumerate(runs):
        p = r["push"]
        count = (p.get("latency_us") or {}).get("count") or 0
        pts = []
        for e in p.get("latency_quantiles_us") or []:
            q, us = e.get("quantile"), e.get("us")
            if not isinstance(q, (int, float)) or not isinstance(us, (int, float)) or q >= 1:
                continue
            x = 1 / (1 - q)
            if x <= max(count, 1) * (1 + 1e-9):
                pts.append((x, max(us, 1) / 1000))
        series.append({"color": COLORS[i % len(COLORS)], "pts": pts, "run": r, "count": count})
    max_x = max([x for s in series for x, _ in s["pts"]] + [10])
    decades = max(1, min(5, math.ceil(math.log10(max_x) - 1e-9)))
    ys_all = [y for s in series for _, y in s["pts"]] or [1]
    ylo = 10 ** math.floor(math.log10(min(ys_all)))
    yhi = 10 ** math.ceil(math.log10(max(ys_all)))
    if yhi <= ylo:
        yhi = ylo * 10
    box = (100, 80, 860, 330)
    left, top, w, h = box
    xs = Scale(1, 10 ** decades, left, left + w, log=True)
    ys = Scale(ylo, yhi, top + h, top, log=True)
    labels = {0: "0%", 1: "90%", 2: "99%", 3: "99.9%", 4: "99.99%", 5: "99.999%"}
    xticks = [(10 ** d, labels[d]) for d in range(decades + 1)]
    xticks.insert(1, (2, "50%"))
    yticks = []
    d = math.floor(math.log10(ylo))
    while 10 ** d <= yhi * (1 + 1e-9):
        for m in (1, 2, 5):
            v = m * 10 ** d
            if ylo * (1 - 1e-9) <= v <= yhi * (1 + 1e-9):
                yticks.append((v, fmt_ms(float(f"{v:.6g}"))))
        d += 1
    panel(svg, box, xs, ys, xticks, yticks, "percentile (axis: 1 / (1 - q), log scale)",
          "latency (log scale)", "")
    for s in series:
        pts = [(xs(x), ys(y)) for x, y in s["pts"]]
        svg.polyline(pts, s["color"], width=2.2)
        for x, y in pts:
            svg.circle(x, y, 2.2, s["color"])
    entries = []
    for s in series:
        lat = s["run"]["push"].get("latency_us") or {}
        if s["pts"]:
            text = (f"{s['run']['head']}: p50 {fmt_us(lat.get('p50'))}, p99 "
                    f"{fmt_us(lat.get('p99'))}, p99.9 {fmt_us(lat.get('p999'))}, p99.99 "
                    f"{fmt_us(lat.get('p9999'))}, max {fmt_us(lat.get('max'))} "
                    f"({s['count']:,} deliveries)")
        else:
            text = f"{s['run']['head']}: no latency data"
        entries.append((s["color"], None, text))
    legend(svg, 100, 478, entries)
    svg.text(100, 478 + 18 * len(entries) + 8,
             "From each push phase's hdrhistogram (rcomet-loadgen --json latency_quantiles_us), "
             "drawn up to the percentile its delivery count supports.", size=11, fill="#555")
    return svg.render()


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    runs = read_runs(argv[1])
    if not runs:
        print("c1000k_charts.py: no runs in " + argv[1], file=sys.stderr)
        return 2
    os.makedirs(argv[2], exist_ok=True)
    for name, make in (("c1000k-memory.svg", memory_chart), ("c1000k-latency.svg", latency_chart)):
        path = os.path.join(argv[2], name)
        with open(path, "w") as f:
            f.write(make(runs, argv[3]))
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
