#!/usr/bin/python3
"""Helpers for bench/run.sh (stdlib only).

    benchlib.py ports N              N distinct free TCP ports on 127.0.0.1
    benchlib.py wrk FILE             parse wrk --latency output into one TSV line:
                                     requests seconds rps p50_us p99_us non2xx sockerr
    benchlib.py report SCENARIO RAW.tsv OUT.md CMD [--gatehouse BIN] [--note TEXT]...
                                     print the table and write the results file

The raw files are TSV with a header line, written by run.sh; `report` turns
them into medians and ratios. Every figure is computed here, in one place, so
the README can point at it.
"""
import datetime
import os
import platform
import re
import socket
import statistics
import subprocess
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")
PEER_ORDER = ["direct", "direct-xcore", "gatehouse", "varnish", "nginx", "haproxy", "squid",
              "tinyproxy", "gatehouse-hardened", "gatehouse-open"]


# ---------------------------------------------------------------- ports
def free_ports(n):
    """Bind n sockets to port 0 at once (so the ports are distinct), then
    release them. A small race remains until the peer binds; run.sh checks
    that each peer came up."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- wrk
_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _dur_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError("bad duration %r" % text)
    return float(m.group(1)) * _UNIT_US[m.group(2)]


def parse_wrk(text):
    out = {"non2xx": 0, "sockerr": 0}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m)", text, re.M)
    if not m:
        raise ValueError("no 'N requests in T' line in wrk output")
    out["requests"] = int(m.group(1))
    out["seconds"] = _dur_us(m.group(2) + m.group(3)) / 1e6
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    out["rps"] = float(m.group(1)) if m else out["requests"] / out["seconds"]
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.0+)?%%\s+([0-9.]+(?:us|ms|s|m))\s*$" % pct,
                      text, re.M)
        if not m:
            raise ValueError("no %s%% latency in wrk output (run with --latency)"
                             % pct)
        out["p" + pct] = _dur_us(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", text)
    if m:
        out["sockerr"] = sum(int(x) for x in m.groups())
    return out


def parse_h2load(text):
    """h2load's summary as the fields parse_wrk gives; h2load has no
    percentiles, so p50 is the mean and p99 the max request time."""
    out = {}
    m = re.search(r"^finished in ([0-9.]+)(us|ms|s|m), ([0-9.]+) req/s", text, re.M)
    if not m:
        raise ValueError("no 'finished in' line in h2load output")
    out["seconds"] = _dur_us(m.group(1) + m.group(2)) / 1e6
    out["rps"] = float(m.group(3))
    m = re.search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    if not m:
        raise ValueError("no 'requests:' line in h2load output")
    done = int(m.group(2))
    out["sockerr"] = int(m.group(4)) + int(m.group(5)) + int(m.group(6))
    m = re.search(r"^status codes: (\d+) 2xx", text, re.M)
    out["non2xx"] = max(0, done - out["sockerr"] - (int(m.group(1)) if m else 0))
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    out["p50"] = _dur_us(m.group(3)) if m else 0.0
    out["p99"] = _dur_us(m.group(2)) if m else 0.0
    # -D: the rate is over the measured duration, not the warm-up
    out["requests"] = int(round(out["rps"] * out["seconds"])) if out["seconds"] else 0
    return out


# ---------------------------------------------------------------- machine
def _cmd_first_line(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    text = (p.stdout + p.stderr).strip()
    return text.splitlines()[0].strip() if text else "n/a"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "n/a"


def _gatehouse_version(binpath):
    if not binpath or not os.access(binpath, os.X_OK):
        return "not built"
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(binpath))))
    v = _cmd_first_line([binpath, "--version"])
    commit = _cmd_first_line(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--",
                            "src"], capture_output=True, text=True).stdout
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(binpath))
    s = "%s (tree %s%s, binary built %s)" % (
        v if v != "n/a" and "usage" not in v.lower() else "gatehouse",
        commit, "+uncommitted src changes" if dirty.strip() else "",
        mtime.strftime("%Y-%m-%d %H:%M"))
    return s


def machine(gh_bin):
    return [
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU model", _cpu_model()),
        ("kernel", platform.release()),
        ("nginx", _cmd_first_line(["/usr/sbin/nginx", "-v"])),
        ("haproxy", _cmd_first_line(["/usr/sbin/haproxy", "-v"])),
        ("varnish", _cmd_first_line(["/usr/sbin/varnishd", "-V"])),
        ("wrk", _cmd_first_line(["/usr/bin/wrk", "--version"])),
        ("h2load", _cmd_first_line(["/usr/bin/h2load", "--version"])),
        ("openssl", _cmd_first_line(["openssl", "version"])),
        ("squid", _cmd_first_line(["/usr/sbin/squid", "-v"])),
        ("tinyproxy", _cmd_first_line(["/usr/bin/tinyproxy", "-v"])),
        ("gatehouse", _gatehouse_version(gh_bin)),
    ]


# ---------------------------------------------------------------- report
def read_tsv(path):
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    if not lines:
        return []
    head = lines[0].split("\t")
    return [dict(zip(head, l.split("\t"))) for l in lines[1:]]


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, nd=1):
    if x is None or x != x:
        return "n/a"
    return "{:,.{}f}".format(x, nd)


def ratio(a, b):
    if a is None or b is None or a != a or b != b or b == 0:
        return "n/a"
    return "%.2f" % (a / b)


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def text_table(head, rows):
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(c).ljust(w[0]) if i == 0 else str(c).rjust(w[i])
                               for i, c in enumerate(r))
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows])


def peers_in(rows):
    seen = [r["peer"] for r in rows]
    return [p for p in PEER_ORDER if p in seen] + \
        sorted(set(seen) - set(PEER_ORDER))


def report_reverse(rows, vs=("nginx", "haproxy")):
    """Returns (summary table head, rows, ratio lines, raw head, raw rows);
    ratios of gatehouse to each peer in <vs>."""
    per = {}
    raw = []
    for r in rows:
        req = int(r["requests"])
        ok = r.get("status", "ok") == "ok" and req > 0
        cpu_s = int(r["cpu_ticks"]) / CLK_TCK
        core_s = int(r["core_busy_ticks"]) / CLK_TCK
        d = {
            "rps": float(r["rps"]),
            "p50": float(r["p50_us"]) / 1e3,
            "p99": float(r["p99_us"]) / 1e3,
            "us_req": cpu_s / req * 1e6 if req else float("nan"),
            "core_us_req": core_s / req * 1e6 if req else float("nan"),
            # share of the proxy core's busy time that was not the proxy:
            # other tenants on core 0 (the proxy's own softirq is in its
            # stime, so a quiet core shows a few percent at most)
            "load_us_req": int(r["load_busy_ticks"]) / CLK_TCK / req * 1e6
            if req else float("nan"),
            "others": max(0.0, 100.0 * (core_s - cpu_s) / core_s) if core_s
            else float("nan"),
        }
        raw.append([r["round"], r["peer"], "{:,}".format(req),
                    fmt(d["rps"], 0), fmt(d["p50"], 3), fmt(d["p99"], 3),
                    "%d" % int(r["cpu_ticks"]), fmt(d["us_req"], 2),
                    "%d" % int(r["core_busy_ticks"]),
                    "%d" % int(r["core_steal_ticks"]),
                    fmt(d["core_us_req"], 2), fmt(d["others"], 0),
                    "%d" % int(r["load_busy_ticks"]), fmt(d["load_us_req"], 2),
                    r["non2xx"], r["sockerr"], r["loadavg"],
                    r.get("quiet_wait_s", ""), r.get("status", "ok")])
        if ok:
            per.setdefault(r["peer"], []).append(d)
    med = {p: {k: median([d[k] for d in ds]) for k in ds[0]}
           for p, ds in per.items()}
    head = ["peer", "rounds", "req/s", "p50 ms", "p99 ms", "µs/req (process)",
            "µs/req (core 0)", "core 0 others %", "µs/req (core 1)"]
    srows = []
    for p in peers_in(rows):
        m = med.get(p)
        if not m:
            srows.append([p, "0", "failed", "", "", "", "", "", ""])
            continue
        srows.append([p, str(len(per[p])), fmt(m["rps"], 0), fmt(m["p50"], 3),
                      fmt(m["p99"], 3), fmt(m["us_req"], 2),
                      fmt(m["core_us_req"], 2), fmt(m["others"], 0),
                      fmt(m["load_us_req"], 2)])
    ratios = []
    mine = ("gatehouse", "gatehouse-hardened", "gatehouse-open")
    pairs = [("gatehouse", p) for p in peers_in(rows) if p not in mine]
    pairs.append(("gatehouse-hardened", "gatehouse-open"))
    for a, peer in pairs:
        gh, o = med.get(a), med.get(peer)
        if gh and o:
            ratios.append([a + "/" + peer, ratio(gh["us_req"], o["us_req"]),
                           ratio(gh["core_us_req"], o["core_us_req"]),
                           ratio(gh["load_us_req"], o["load_us_req"]),
                           ratio(gh["rps"], o["rps"]), ratio(gh["p99"], o["p99"])])
    rhead = ["round", "peer", "requests", "req/s", "p50 ms", "p99 ms",
             "cpu ticks", "µs/req", "core0 busy ticks", "core0 steal ticks",
             "core0 µs/req", "core0 others %", "core1 busy ticks",
             "core1 µs/req", "non-2xx", "socket errors", "loadavg (1m)", "quiet wait s", "status"]
    return head, srows, ratios, rhead, raw


def report_connect(rows):
    """Returns (summary head, rows, ratios, raw head, raw rows)."""
    gib = float(1 << 30)
    per, raw = {}, []
    for r in rows:
        n, secs = int(r["bytes"]), float(r["seconds"])
        d = {
            "mbs": n / secs / 1e6 if secs else float("nan"),
            "cpu_gib": int(r["cpu_ticks"]) / CLK_TCK / (n / gib) if n
            else float("nan"),
            "core_gib": int(r["core_busy_ticks"]) / CLK_TCK / (n / gib) if n
            else float("nan"),
            "load_gib": int(r["load_busy_ticks"]) / CLK_TCK / (n / gib) if n
            else float("nan"),
        }
        if r["status"] == "ok" and n > 0:
            per.setdefault(r["peer"], []).append(d)
        raw.append([r["round"], r["peer"], "{:,}".format(n), fmt(secs, 3),
                    fmt(d["mbs"], 0), r["cpu_ticks"], fmt(d["cpu_gib"], 3),
                    r["core_busy_ticks"], fmt(d["core_gib"], 3),
                    r["core_steal_ticks"], r["load_busy_ticks"],
                    fmt(d["load_gib"], 3), r["loadavg"], r["quiet_wait_s"],
                    r["status"]])
    med = {p: {k: median([d[k] for d in ds]) for k in ds[0]}
           for p, ds in per.items()}
    direct = med.get("direct")
    xcore = med.get("direct-xcore")
    relay = med.get("relay")
    head = ["peer", "rounds", "MB/s", "x direct", "x xcore", "x relay",
            "proxy CPU s/GiB", "core 0 s/GiB", "core 1 s/GiB"]
    out = []
    for p in peers_in(rows):
        m = med.get(p)
        if not m:
            out.append([p, "0", "failed", "", "", "", "", "", ""])
            continue
        proxy = not p.startswith("direct")
        out.append([p, str(len(per[p])), fmt(m["mbs"], 0),
                    ratio(m["mbs"], direct["mbs"]) if direct else "n/a",
                    ratio(m["mbs"], xcore["mbs"]) if xcore else "n/a",
                    ratio(m["mbs"], relay["mbs"]) if relay and proxy else "-",
                    fmt(m["cpu_gib"], 3) if proxy else "-",
                    fmt(m["core_gib"], 3), fmt(m["load_gib"], 3)])
    ratios = []
    gh = med.get("gatehouse")
    for peer in [p for p in peers_in(rows)
                 if p != "gatehouse" and not p.startswith("direct")]:
        o = med.get(peer)
        if gh and o:
            ratios.append(["gatehouse/" + peer, ratio(gh["cpu_gib"], o["cpu_gib"]),
                           ratio(gh["mbs"], o["mbs"])])
    rhead = ["round", "peer", "bytes", "seconds", "MB/s", "cpu ticks",
             "proxy CPU s/GiB", "core0 busy ticks", "core0 s/GiB",
             "core0 steal ticks", "core1 busy ticks", "core1 s/GiB",
             "loadavg (1m)", "quiet wait s", "status"]
    return head, out, ratios, rhead, raw


def report_idle(rows):
    """Returns (summary head, rows, ratios, raw head, raw rows)."""
    raw = []
    per = {}
    for r in rows:
        n = int(r["alive"])
        b, a = int(r["rss_before_kb"]), int(r["rss_after_kb"])
        bpc = (a - b) * 1024 / n if n else float("nan")
        if r["status"] == "ok":
            per.setdefault(r["peer"], []).append((bpc, b, a))
        raw.append([r["round"], r["peer"], "{:,}/{:,}".format(n, int(r["wanted"])),
                    "{:,}".format(b), "{:,}".format(a), "{:,}".format(a - b),
                    fmt(bpc, 0), r["elapsed_s"], r["status"]])
    head = ["peer", "rounds", "bytes/conn", "min-max", "RSS before KiB",
            "RSS after KiB"]
    out = []
    for p in peers_in(rows):
        v = per.get(p)
        if not v:
            out.append([p, "0", "failed", "", "", ""])
            continue
        bs = [x[0] for x in v]
        out.append([p, str(len(v)), fmt(median(bs), 0),
                    "%s-%s" % (fmt(min(bs), 0), fmt(max(bs), 0)),
                    "{:,.0f}".format(median([x[1] for x in v])),
                    "{:,.0f}".format(median([x[2] for x in v]))])
    ratios = []
    gh = per.get("gatehouse")
    for peer in ("nginx", "haproxy"):
        o = per.get(peer)
        if gh and o:
            ratios.append(["gatehouse/" + peer,
                           ratio(median([x[0] for x in gh]),
                                 median([x[0] for x in o]))])
    rhead = ["round", "peer", "connections idle", "RSS before KiB",
             "RSS after KiB", "ΔRSS KiB", "bytes/conn", "setup s", "status"]
    return head, out, ratios, rhead, raw


def report_load(rows):
    """Latency against offered load: one row per (connections, peer).
    Returns (summary head, rows, per-peer series, raw head, raw rows); the
    series are [(conns, rps, p50 ms, p99 ms, µs/req)] for the charts."""
    raw, series = [], {}
    for r in rows:
        req = int(r["requests"])
        us = int(r["cpu_ticks"]) / CLK_TCK / req * 1e6 if req else float("nan")
        d = (int(r["conns"]), float(r["rps"]), float(r["p50_us"]) / 1e3,
             float(r["p99_us"]) / 1e3, us)
        if r["status"] == "ok" and req > 0:
            series.setdefault(r["peer"], []).append(d)
        raw.append([r["conns"], r["peer"], "{:,}".format(req), fmt(d[1], 0),
                    fmt(d[2], 3), fmt(d[3], 3), fmt(us, 2), r["non2xx"],
                    r["sockerr"], r["loadavg"], r["status"]])
    for v in series.values():
        v.sort()
    levels = sorted({int(r["conns"]) for r in rows})
    peers = peers_in(rows)
    head = ["connections"] + ["%s: req/s / p99 ms / µs/req" % p for p in peers]
    out = []
    for c in levels:
        row = [str(c)]
        for p in peers:
            m = [x for x in series.get(p, []) if x[0] == c]
            row.append("%s / %s / %s" % (fmt(m[0][1], 0), fmt(m[0][3], 3),
                                       fmt(m[0][4], 2)) if m else "failed")
        out.append(row)
    rhead = ["connections", "peer", "requests", "req/s", "p50 ms", "p99 ms",
             "µs/req", "non-2xx", "socket errors", "loadavg (1m)", "status"]
    return head, out, series, rhead, raw


def report_cache_mem(rows):
    head = ["peer", "objects", "RSS before KiB", "RSS after KiB", "bytes/object (RSS)",
            "bytes/object (store)", "re-check misses", "fill s", "status"]
    out = []
    for r in rows:
        n = int(r["objects"])
        b, a = int(r["rss_before_kb"]), int(r["rss_after_kb"])
        st = r.get("store_bytes", "-")
        out.append([r["peer"], "{:,}".format(n), "{:,}".format(b), "{:,}".format(a),
                    fmt((a - b) * 1024 / n if n else float("nan"), 0),
                    fmt(int(st) / n, 0) if st.isdigit() and n else "-",
                    "%s/%s" % (r["check_misses"], r["check_requests"]), r["fill_s"],
                    r["status"]])
    return head, out


def report_evict(rows):
    head = ["trace", "keys", "requests", "cache (objects)", "LRU hit ratio",
            "S3-FIFO hit ratio", "S3-FIFO - LRU", "misses saved"]
    out = []
    for r in rows:
        l, s3 = float(r["lru_hit_ratio"]), float(r["s3fifo_hit_ratio"])
        out.append([r["trace"], "{:,}".format(int(r["keys"])),
                    "{:,}".format(int(r["requests"])), "{:,}".format(int(r["cache_objects"])),
                    "%.1f%%" % (100 * l), "%.1f%%" % (100 * s3),
                    "%+.1f points" % (100 * (s3 - l)),
                    "%.0f%%" % (100 * (s3 - l) / (1 - l)) if l < 1 else "n/a"])
    return head, out


def cmd_report(argv):
    scen, raw_path, out_path, command = argv[:4]
    gh_bin, notes = None, []
    rest = argv[4:]
    while rest:
        k = rest.pop(0)
        if k == "--gatehouse":
            gh_bin = rest.pop(0)
        elif k == "--note":
            notes.append(rest.pop(0))
    rows = read_tsv(raw_path)
    now = datetime.datetime.now()
    md = ["# Benchmark: %s (%s)" % (scen, now.strftime("%Y-%m-%d %H:%M")), ""]
    md += ["Reproduce with: `%s` (from the repository root; see bench/README.md "
           "for the method)." % command, "", "## Machine", ""]
    md.append(md_table(["", ""], [[k, v.replace("|", "\\|")]
                                  for k, v in machine(gh_bin)]))
    md.append("")
    if notes:
        md += ["## Run", ""] + ["- " + n for n in notes] + [""]
    if scen in ("reverse", "forward", "tls-handshake", "tls-keepalive",
                "tls-h2", "hardening") or scen.startswith("static"):
        # the static scenarios serve files instead of proxying, with the
        # same figures (bench/README.md "Scenario static")
        head, srows, ratios, rhead, raw = report_reverse(rows)
        print(text_table(head, srows))
        rh = ["ratio", "µs/req (process)", "µs/req (core 0)", "µs/req (core 1)",
              "req/s", "p99"]
        if ratios:
            print()
            print(text_table(rh, ratios))
        md += ["## Result (median over rounds)", "", md_table(head, srows), ""]
        if ratios:
            md += ["Ratios (below 1 is better for gatehouse in µs/req and p99, "
                   "above 1 is better in req/s):", "", md_table(rh, ratios), ""]
        else:
            md += ["No ratios: gatehouse did not run (see notes).", ""]
        md += ["## Raw per-round numbers", "", md_table(rhead, raw), ""]
    elif scen == "connect":
        head, out, ratios, rhead, raw = report_connect(rows)
        print(text_table(head, out))
        md += ["## Result (median over rounds)", "",
               "MB/s: bytes / seconds from the first byte sent to the sink's "
               "byte count received (10^6 bytes). x direct: MB/s over the "
               "direct connection's; x xcore: over the cross-core direct "
               "connection's; x relay: over the reference relay's (see the "
               "notes).", "", md_table(head, out), ""]
        if ratios:
            rh = ["ratio", "proxy CPU s/GiB", "MB/s"]
            print()
            print(text_table(rh, ratios))
            md += ["Ratios (below 1 is better for gatehouse in CPU, above 1 "
                   "in MB/s):", "", md_table(rh, ratios), ""]
        md += ["## Raw per-round numbers", "", md_table(rhead, raw), ""]
    elif scen == "idle":
        head, out, ratios, rhead, raw = report_idle(rows)
        print(text_table(head, out))
        md += ["## Result (median over rounds)", "",
               "bytes/conn = (RSS after - RSS before) / connections still open.",
               "", md_table(head, out), ""]
        if ratios:
            rh = ["ratio", "bytes/conn"]
            print()
            print(text_table(rh, ratios))
            md += ["Ratios (below 1: gatehouse keeps less per idle "
                   "connection):", "", md_table(rh, ratios), ""]
        else:
            md += ["No ratios: gatehouse did not run (see notes).", ""]
        md += ["## Raw per-round numbers", "", md_table(rhead, raw), ""]
    elif scen == "load":
        head, out, series, rhead, raw = report_load(rows)
        print(text_table(head, out))
        md += ["## Result", "",
               "Each cell: req/s achieved, p99 latency, CPU µs per request of "
               "the proxy process, at that many wrk connections (closed loop: "
               "the offered load grows with the connections).", "",
               md_table(head, out), ""]
        md += ["## Raw numbers", "", md_table(rhead, raw), ""]
    elif scen == "cache":
        md += ["## Result (median over rounds)", "",
               "µs/req is the CPU time of the cache process per hit (the main "
               "figure, see bench/README.md).", ""]
        for size in ("1k", "100k"):
            sub = [r for r in rows if r["size"] == size]
            if not sub:
                continue
            head, srows, ratios, rhead, raw = report_reverse(
                sub, vs=("varnish", "nginx", "haproxy"))
            print("/%s" % size)
            print(text_table(head, srows))
            rh = ["ratio", "µs/req (process)", "µs/req (core 0)",
                  "µs/req (core 1)", "req/s", "p99"]
            md += ["### Hits of /%s" % size, "", md_table(head, srows), ""]
            if ratios:
                print()
                print(text_table(rh, ratios))
                md += ["Ratios (below 1 is better for gatehouse in µs/req and p99, "
                       "above 1 in req/s):", "", md_table(rh, ratios), ""]
            print()
            md += ["Raw per-round numbers (/%s):" % size, "", md_table(rhead, raw), ""]
    elif scen == "cache_mem":
        head, out = report_cache_mem(rows)
        print(text_table(head, out))
        md += ["## Result", "", "bytes/object = (RSS after - RSS before) / objects.", "",
               md_table(head, out), ""]
    elif scen == "evict":
        head, out = report_evict(rows)
        print(text_table(head, out))
        md += ["## Result", "", md_table(head, out), ""]
    else:
        raise SystemExit("unknown scenario " + scen)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        f.write("\n".join(md))
    print("\nwrote " + out_path)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd = sys.argv[1]
    if cmd == "ports":
        print(" ".join(str(p) for p in free_ports(int(sys.argv[2]))))
    elif cmd in ("wrk", "h2load"):
        with open(sys.argv[2]) as f:
            text = f.read()
        w = parse_wrk(text) if cmd == "wrk" else parse_h2load(text)
        print("\t".join(str(w[k]) for k in ("requests", "seconds", "rps", "p50",
                                            "p99", "non2xx", "sockerr")))
    elif cmd == "report":
        cmd_report(sys.argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
