#!/usr/bin/env python3
"""bench/soak_chart.py: the SVG chart of bench/soak.sh, with the drawing code of
bench/c1000k_charts.py (no library).

Four panels against the time since the server started, from samples.csv: server RSS and the
change of the kernel's unreclaimable slab since the first sample (MB, system-wide), open connections and subscribers, the server's open
descriptors, and timers and mailbox depth; the phases (warm-up, baseline, soak, end) shaded
alternately. The title ends with SUFFIX (engine, date, commit).

Usage: soak_chart.py samples.csv OUT.svg SUFFIX
Depends on bench/c1000k_charts.py, python3 only.
"""

import csv
import sys

from c1000k_charts import COLORS, Scale, Svg, fmt_num, legend, linear_ticks, panel


def read(path):
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append(row)
    return rows


def series(rows, key, scale=1.0, from_first=False):
    """(t, value * scale) points; with from_first, the change since the first value."""
    out = []
    for r in rows:
        try:
            out.append((float(r["t_s"]), float(r[key]) * scale))
        except (KeyError, ValueError):
            continue
    if from_first and out:
        first = out[0][1]
        out = [(t, v - first) for t, v in out]
    return out


def draw(svg, box, rows, lines, ylabel, title):
    """lines: (label, key, scale[, from_first]); one polyline each, phases shaded behind."""
    data = [(line[0], series(rows, *line[1:])) for line in lines]
    xs_all = [x for _, pts in data for x, _ in pts] or [0, 1]
    ys_all = [y for _, pts in data for _, y in pts] or [0, 1]
    _, xtop, xstep, xt = linear_ticks(0, max(xs_all), 5)
    ybottom, ytop, ystep, yt = linear_ticks(min(ys_all), max(ys_all), 5)
    left, top, w, h = box
    xs = Scale(0, xtop, left, left + w)
    ys = Scale(ybottom, ytop, top + h, top)
    # Phase bands: consecutive samples of the same phase.
    start, phase, shade = None, None, False
    for r in rows + [{"t_s": r.get("t_s", "0"), "phase": None} for r in rows[-1:]]:
        if r.get("phase") != phase:
            if phase is not None and shade:
                x0, x1 = xs(start), xs(float(r["t_s"]))
                svg.rect(x0, top, max(x1 - x0, 0.5), h, fill="#f3f3f3", stroke="none", width=0)
            if phase is not None:
                shade = not shade
            start, phase = float(r["t_s"]), r.get("phase")
    panel(svg, box, xs, ys, [(v, fmt_num(v, xstep)) for v in xt],
          [(v, fmt_num(v, ystep)) for v in yt], "seconds since the server started", ylabel, title)
    entries = []
    for i, (label, pts) in enumerate(data):
        color = COLORS[i % len(COLORS)]
        svg.polyline([(xs(x), ys(y)) for x, y in pts], color, width=2.0)
        entries.append((color, None, label))
    legend(svg, left + 12, top + 18, entries)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    rows = read(sys.argv[1])
    svg = Svg(1000, 760)
    svg.text(500, 26, "Churn soak: memory, connections, descriptors, timers", size=16,
             anchor="middle", weight="bold")
    svg.text(500, 46, sys.argv[3] + " (shaded: every other phase; warm-up, baseline, soak, end)",
             size=12, anchor="middle", fill="#555")
    boxes = [(90, 90, 380, 250), (590, 90, 380, 250), (90, 440, 380, 250), (590, 440, 380, 250)]
    draw(svg, boxes[0], rows, [("server RSS (VmRSS)", "rss_kb", 1e-3),
                               ("kernel SUnreclaim change (system-wide)", "sunreclaim_kb", 1e-3, True)],
         "MB (10^3 kB)", "memory")
    draw(svg, boxes[1], rows, [("open connections", "connections", 1),
                               ("subscribers", "subscribers", 1)], "count", "connections")
    draw(svg, boxes[2], rows, [("open descriptors", "fds", 1)], "count", "server descriptors")
    draw(svg, boxes[3], rows, [("timers", "timers", 1), ("mailbox depth", "mailbox", 1)],
         "entries", "timer wheel and mailboxes")
    with open(sys.argv[2], "w") as f:
        f.write(svg.render())
    print(sys.argv[2])


if __name__ == "__main__":
    main()
