"""Report of the "pools" scenario (bench/run.sh pools): the reverse
scenario's table for each proxy, then the issue 4 targets:

  - gatehouse round_robin CPU per request at most the better of nginx and
    HAProxy (both round robin);
  - least_conn, random_two and ewma within 3% of round_robin CPU per
    request.

  pools_report.py RAW.tsv OUT.md COMMAND [--gatehouse BIN] [--note TEXT]...
"""

import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import (CLK_TCK, machine, md_table, median,  # noqa: E402
                      read_tsv, report_reverse, text_table)

ORDER = ["gh-rr", "gh-lc", "gh-p2c", "gh-ewma", "nginx", "haproxy"]
NAMES = {"gh-rr": "gatehouse round_robin", "gh-lc": "gatehouse least_conn",
         "gh-p2c": "gatehouse random_two", "gh-ewma": "gatehouse ewma"}


def medians(rows):
    per = {}
    for r in rows:
        req = int(r["requests"])
        if r.get("status", "ok") != "ok" or req == 0:
            continue
        per.setdefault(r["peer"], []).append({
            "us_req": int(r["cpu_ticks"]) / CLK_TCK / req * 1e6,
            "core_us_req": int(r["core_busy_ticks"]) / CLK_TCK / req * 1e6,
            "rps": float(r["rps"]),
        })
    return {p: {k: median([d[k] for d in ds]) for k in ds[0]}
            for p, ds in per.items()}


def targets(med):
    """Rows: target, figures, verdict."""
    out = []
    rr = med.get("gh-rr")
    peers = [med[p]["us_req"] for p in ("nginx", "haproxy") if p in med]
    if rr and peers:
        best = min(peers)
        out.append(["round_robin µs/req ≤ the better of nginx and HAProxy",
                    "%.2f vs %.2f (ratio %.3f)" % (rr["us_req"], best,
                                                   rr["us_req"] / best),
                    "met" if rr["us_req"] <= best else "NOT met"])
    for p in ("gh-lc", "gh-p2c", "gh-ewma"):
        m = med.get(p)
        if rr and m:
            d = m["us_req"] / rr["us_req"] - 1
            out.append(["%s within 3%% of round_robin µs/req" % NAMES[p][10:],
                        "%.2f vs %.2f (%+.1f%%)" % (m["us_req"], rr["us_req"],
                                                    100 * d),
                        "met" if d <= 0.03 else "NOT met"])
    return out


def main(argv):
    raw_path, out_path, command = argv[:3]
    gh_bin, notes = None, []
    rest = argv[3:]
    pick = {}
    while rest:
        k = rest.pop(0)
        if k == "--gatehouse":
            gh_bin = rest.pop(0)
        elif k == "--note":
            notes.append(rest.pop(0))
        elif k == "--pick":
            with open(rest.pop(0)) as f:
                for ln in f:
                    if ln.strip():
                        name, ns = ln.split()
                        pick[name] = float(ns)
    rows = read_tsv(raw_path)
    head, srows, _, rhead, raw = report_reverse(rows)
    srows.sort(key=lambda r: ORDER.index(r[0]) if r[0] in ORDER else 99)
    med = medians(rows)
    tgt = targets(med)
    print(text_table(head, srows))
    th = ["target", "median figures", "verdict"]
    if tgt:
        print()
        print(text_table(th, tgt))
    now = datetime.datetime.now()
    md = ["# Benchmark: pools (%s)" % now.strftime("%Y-%m-%d %H:%M"), ""]
    md += ["Reproduce with: `%s` (from the repository root; see bench/README.md "
           "for the method)." % command, "", "## Machine", ""]
    md.append(md_table(["", ""], [[k, v.replace("|", "\\|")]
                                  for k, v in machine(gh_bin)]))
    md.append("")
    if notes:
        md += ["## Run", ""] + ["- " + n for n in notes] + [""]
    md += ["## Result (median over rounds)", "",
           "gh-rr, gh-lc, gh-p2c, gh-ewma: gatehouse with balance round_robin, "
           "least_conn, random_two, ewma.", "", md_table(head, srows), ""]
    if tgt:
        md += ["## Targets (issue 4)", "", md_table(th, tgt), ""]
    if pick:
        rr = med.get("gh-rr", {}).get("us_req")
        base = pick.get("round_robin")
        ph = ["balancer", "ns per request", "vs round_robin, ns",
              "vs round_robin, % of gh-rr µs/req"]
        prow = []
        for name, ns in pick.items():
            d = ns - base if base is not None else float("nan")
            pct = "%+.2f%%" % (100 * d / (rr * 1000)) if rr else "n/a"
            prow.append([name, "%.1f" % ns, "%+.1f" % d, pct])
        print()
        print(text_table(ph, prow))
        md += ["## The balancers' own cost", "",
               "bench/lib/pick_cost.c on cpu 0, after the runs: what one "
               "request costs in src/upstream/ (prepare, pick, report, "
               "release) over three servers, without the network; 5,000,000 "
               "requests per balancer. The last column puts the difference "
               "to round_robin against gh-rr's median µs/req: the share of a "
               "request's CPU that the choice of balancer can change.", "",
               md_table(ph, prow), ""]
    md += ["## Raw per-round numbers", "", md_table(rhead, raw), ""]
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        f.write("\n".join(md))
    print("\nwrote " + out_path)


if __name__ == "__main__":
    main(sys.argv[1:])
