"""A WAS host of the cluster test bed: tests/integration/lib/origin.py's
origin server on a given address, until SIGTERM.

  python3 tests/cluster/origin_main.py HOST PORT NAME
"""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))

from lib.origin import Origin  # noqa: E402


def main():
    host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    o = Origin(name=name, port=port, host=host).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    print("origin %s on %s" % (name, o.address), flush=True)
    while not done.wait(1.0):
        pass
    o.stop()


if __name__ == "__main__":
    main()
