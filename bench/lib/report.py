#!/usr/bin/python3
"""Writes bench/results/REPORT.md: the latest results of every scenario on
one page, with charts drawn by gnuplot (PNG).

    report.py RESULTS_DIR [--gatehouse BIN] [--command CMD]

For each scenario it takes the newest <scenario>-<date>.md in RESULTS_DIR
and copies its result tables (everything from "## Result" up to the raw
numbers), so a scenario added to run.sh appears here without a change.
The charts come from the same files (their result and raw tables), so
results committed from earlier runs chart as well:

  charts/cpu_per_request.png   CPU µs per request of the proxy process, per
                               scenario and peer (lower is better)
  charts/p99.png               p99 latency per scenario and peer
  charts/latency_vs_load.png   p50/p99 against req/s achieved as wrk's
                               connections grow (load scenario)
  charts/idle_memory.png       bytes per idle keep-alive connection

gnuplot is run as a subprocess with its script on stdin; a missing gnuplot
leaves the charts out and says so in the report.
"""
import datetime
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

PEERS = benchlib.PEER_ORDER
COLORS = {"gatehouse": "#2f6fde", "nginx": "#1f9d55", "haproxy": "#d48a00"}


def latest(results, scen, ext):
    pat = os.path.join(results, "%s-*.%s" % (scen, ext))
    files = sorted(f for f in glob.glob(pat)
                   if re.search(r"-\d{4}-\d\d-\d\d\.%s$" % ext, f))
    return files[-1] if files else None


def scenarios(results):
    names = set()
    for f in glob.glob(os.path.join(results, "*-*.md")):
        m = re.match(r"(.+)-\d{4}-\d\d-\d\d\.md$", os.path.basename(f))
        if m:
            names.add(m.group(1))
    order = ["reverse", "load", "idle"]
    return [s for s in order if s in names] + sorted(names - set(order))


def result_section(md_path):
    """The result tables of a scenario's results file, headings demoted."""
    with open(md_path) as f:
        text = f.read()
    m = re.search(r"^## Result.*?(?=^## Raw|\Z)", text, re.M | re.S)
    body = m.group(0) if m else ""
    body = re.sub(r"^## ", "#### ", body, flags=re.M)
    run = re.search(r"^## Run\n(.*?)(?=^## )", text, re.M | re.S)
    return body.strip(), (run.group(1).strip() if run else "")


def gnuplot(script, out):
    p = subprocess.run(["gnuplot"], input=script, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0 or not os.path.exists(out):
        raise RuntimeError("gnuplot failed: %s" % p.stderr[-500:])


HEAD = """set terminal pngcairo size 900,480 enhanced font "DejaVu Sans,11"
set output "%s"
set title "%s"
set grid ytics lc rgb "#dddddd"
set key top left
set border 3
set tics nomirror
"""


def bar_chart(out, title, ylabel, groups, values):
    """groups: [label]; values: {peer: [v per group or None]}."""
    peers = [p for p in PEERS if p in values] + sorted(set(values) - set(PEERS))
    data = os.path.splitext(out)[0] + ".dat"
    with open(data, "w") as f:
        f.write("group " + " ".join(peers) + "\n")
        for i, g in enumerate(groups):
            row = []
            for p in peers:
                v = values[p][i]
                row.append("%.4f" % v if v is not None and v == v else "NaN")
            f.write('"%s" %s\n' % (g, " ".join(row)))
    s = HEAD % (out, title)
    s += "set ylabel \"%s\"\nset style data histogram\nset style histogram cluster gap 1\n" % ylabel
    s += "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset yrange [0:*]\n"
    s += "set key autotitle columnhead\n"
    parts = []
    for i, p in enumerate(peers):
        parts.append('"%s" using %d:xtic(1) lc rgb "%s" title "%s"'
                     % (data, i + 2, COLORS.get(p, "#7a4fd6"), p))
    s += "plot " + ", ".join(parts) + "\n"
    gnuplot(s, out)


def load_chart(out, series):
    data = os.path.splitext(out)[0] + ".dat"
    peers = [p for p in PEERS if p in series]
    with open(data, "w") as f:
        for p in peers:
            f.write("# %s: conns rps p50_ms p99_ms\n" % p)
            for c, rps, p50, p99, _ in series[p]:
                f.write("%d %.1f %.4f %.4f\n" % (c, rps, p50, p99))
            f.write("\n\n")
    s = HEAD % (out, "Latency against offered load (wrk connections 1..N)")
    s += "set xlabel \"requests / s achieved\"\nset ylabel \"latency, ms (log)\"\n"
    s += "set logscale y\nset key top right\n"
    parts = []
    for i, p in enumerate(peers):
        col = COLORS.get(p, "#7a4fd6")
        parts.append('"%s" index %d using 2:4 with linespoints lw 2 pt 7 lc rgb "%s" '
                     'title "%s p99"' % (data, i, col, p))
        parts.append('"%s" index %d using 2:3 with linespoints lw 1 dt 2 pt 6 lc rgb "%s" '
                     'title "%s p50"' % (data, i, col, p))
        parts.append('"%s" index %d using 2:4:(sprintf("%%d", $1)) with labels '
                     'offset 0,0.8 font ",8" tc rgb "%s" notitle' % (data, i, col))
    s += "plot " + ", ".join(parts) + "\n"
    gnuplot(s, out)


def md_tables(text, section):
    """The tables under the heading <section> ("## Result...") of a results
    file: a list of [dict(header -> cell)]."""
    m = re.search(r"^## %s.*?(?=^## |\Z)" % re.escape(section), text, re.M | re.S)
    if not m:
        return []
    tables, cur, head = [], None, None
    for line in m.group(0).splitlines():
        if not line.startswith("|"):
            cur, head = None, None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if head is None:
            head, cur = cells, []
            tables.append(cur)
        elif all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        else:
            cur.append(dict(zip(head, cells)))
    return tables


def num(cell):
    try:
        return float(cell.replace(",", ""))
    except (AttributeError, ValueError):
        return None


def charts(results, chart_dir, scen):
    """Draws what the results files allow; returns [(title, file, caption)].
    Any scenario whose result table has the columns "peer", "µs/req
    (process)" and "p99 ms" joins the CPU and p99 charts."""
    made = []
    groups, cpu, p99 = [], {}, {}

    def add(group, per):  # per: {peer: (us_req, p99_ms)}
        groups.append(group)
        for p in per:
            if p not in cpu:
                cpu[p] = [None] * (len(groups) - 1)
                p99[p] = [None] * (len(groups) - 1)
        for p in cpu:
            v = per.get(p)
            cpu[p].append(v[0] if v else None)
            p99[p].append(v[1] if v else None)

    texts = {}
    for s in scen:
        with open(latest(results, s, "md")) as f:
            texts[s] = f.read()
    load_series = {}
    for s in scen:
        t = texts[s]
        if s == "load":
            for r in (md_tables(t, "Raw") or [[]])[0]:
                if r.get("status") != "ok":
                    continue
                load_series.setdefault(r["peer"], []).append(
                    (int(r["connections"]), num(r["req/s"]), num(r["p50 ms"]),
                     num(r["p99 ms"]), num(r["µs/req"])))
            continue
        for tab in md_tables(t, "Result")[:1]:
            if tab and {"peer", "µs/req (process)", "p99 ms"} <= set(tab[0]):
                add(s, {r["peer"]: (num(r["µs/req (process)"]), num(r["p99 ms"]))
                        for r in tab})
    for v in load_series.values():
        v.sort()
    levels = sorted({x[0] for v in load_series.values() for x in v})
    for c in levels:
        add("load %d conns" % c, {p: (x[4], x[3]) for p, v in load_series.items()
                                  for x in v if x[0] == c})
    if groups:
        out = os.path.join(chart_dir, "cpu_per_request.png")
        bar_chart(out, "CPU per request of the proxy process (lower is better)",
                  "µs / request", groups, cpu)
        made.append(("CPU per request", out, "utime+stime of the proxy process "
                     "over each timed run, divided by the requests it served "
                     "(medians over rounds for reverse)."))
        out = os.path.join(chart_dir, "p99.png")
        bar_chart(out, "p99 latency (lower is better)", "ms", groups, p99)
        made.append(("p99 latency", out, "wrk --latency, per scenario and "
                     "connection count."))
    if load_series:
        out = os.path.join(chart_dir, "latency_vs_load.png")
        load_chart(out, load_series)
        made.append(("Latency against offered load", out, "Each point is one wrk "
                     "run, labelled with its connection count; solid p99, dashed "
                     "p50."))
    if "idle" in texts:
        vals = {}
        for tab in md_tables(texts["idle"], "Result")[:1]:
            for r in tab:
                vals[r["peer"]] = [num(r.get("bytes/conn"))]
        if vals:
            out = os.path.join(chart_dir, "idle_memory.png")
            bar_chart(out, "Memory per idle keep-alive connection (lower is better)",
                      "bytes / connection", ["idle"], vals)
            made.append(("Memory per idle connection", out, "ΔRSS / connections "
                         "held open (see the idle scenario's notes on nginx)."))
    return made


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    results = sys.argv[1]
    gh_bin, command = None, "make bench"
    rest = sys.argv[2:]
    while rest:
        k = rest.pop(0)
        if k == "--gatehouse":
            gh_bin = rest.pop(0)
        elif k == "--command":
            command = rest.pop(0)
    scen = scenarios(results)
    if not scen:
        raise SystemExit("report.py: no results in %s" % results)
    chart_dir = os.path.join(results, "charts")
    os.makedirs(chart_dir, exist_ok=True)
    md = ["# Gatehouse benchmark report", "",
          "Written %s by `bench/lib/report.py` from the newest results of each "
          "scenario in this directory. Reproduce with `%s` (from the repository "
          "root); bench/README.md explains the method of each scenario."
          % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), command), "",
          "## Machine", "",
          "Where this report was written; each scenario's results file names "
          "the machine, the peers' versions and the gatehouse binary it ran "
          "with, and the load average during its run.", "",
          benchlib.md_table(["", ""], [[k, v.replace("|", "\\|")]
                                       for k, v in benchlib.machine(gh_bin)]),
          "", "Load average when the report was written: %s."
          % " ".join(open("/proc/loadavg").read().split()[0:3]), ""]
    md += ["## Charts", ""]
    if shutil.which("gnuplot") is None:
        md += ["gnuplot is not installed (Debian package gnuplot-nox): no charts.", ""]
    else:
        try:
            for title, path, caption in charts(results, chart_dir, scen):
                rel = os.path.relpath(path, results)
                md += ["### %s" % title, "", "![%s](%s)" % (title, rel), "", caption, ""]
        except (RuntimeError, OSError, ValueError, KeyError, IndexError) as e:
            md += ["Charts failed: %s" % e, ""]
    md += ["## Scenarios", ""]
    for s in scen:
        path = latest(results, s, "md")
        body, run = result_section(path)
        md += ["### %s" % s, "", "From [%s](%s)." % (os.path.basename(path),
                                                    os.path.basename(path)), ""]
        if run:
            md += [run, ""]
        md += [body or "(no result tables)", ""]
    out = os.path.join(results, "REPORT.md")
    with open(out, "w") as f:
        f.write("\n".join(md) + "\n")
    print("wrote " + out)


if __name__ == "__main__":
    main()
