#!/usr/bin/python3
"""Fills a cache with distinct 1 KiB objects (the cache_mem scenario).

    cache_fill.py --port P --count N [--conns 4] [--prefix /obj/]
        GETs <prefix>0 .. <prefix>N-1 over keep-alive connections; prints
        one JSON line: requests, errors, seconds, non200.
    cache_fill.py --port P --count N --check K
        GETs K of those paths again, chosen at random (seed 1); prints the
        same JSON (the caller counts origin requests to find misses).
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time


def worker(port, paths, out, lock):
    conn = None
    done = errors = non200 = 0
    for p in paths:
        for attempt in range(2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", p)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    non200 += 1
                done += 1
                break
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                if attempt == 1:
                    errors += 1
    if conn is not None:
        conn.close()
    with lock:
        out["requests"] += done
        out["errors"] += errors
        out["non200"] += non200


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--prefix", default="/obj/")
    ap.add_argument("--check", type=int, default=0)
    a = ap.parse_args()
    paths = ["%s%d" % (a.prefix, i) for i in range(a.count)]
    if a.check:
        paths = random.Random(1).sample(paths, min(a.check, len(paths)))
    out = {"requests": 0, "errors": 0, "non200": 0}
    lock = threading.Lock()
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(a.port, paths[i::a.conns], out, lock))
          for i in range(a.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(out))
    return 0 if out["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
