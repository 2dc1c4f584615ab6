"""Slow clients at scale, run as its own process:

    python3 -m lib.slowload PORT SLOWLORIS SLOWREAD SECONDS

SLOWLORIS connections send a request line, then one header byte a second,
never finishing the head (the bytes are spread over each second, and the
process runs at nice 10). SLOWREAD connections (4 KiB receive buffer) ask
for /big and then read one byte a second. Connections are opened in
batches; "ready <open>" is printed once all are up, then the trickle goes
on until SECONDS have passed since start, and the last line printed is
"done open=<n> closed=<n> failed=<n>": connections still open, closed by
the peer, and never established. Every wait is bounded by SECONDS; the
process also stops when its stdin closes."""

import errno
import os
import resource
import select
import socket
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_all(port, n_loris, n_read, deadline):
    """Opens every connection (non-blocking, 200 at a time). Returns
    (loris, readers, failed)."""
    loris, readers, failed = [], [], 0
    todo = [("l", i) for i in range(n_loris)] + [("r", i) for i in range(n_read)]
    # interleave, so both kinds are up early
    todo.sort(key=lambda x: x[1])
    ep = select.epoll()
    i = 0
    while i < len(todo) and time.monotonic() < deadline:
        batch = todo[i:i + 200]
        i += len(batch)
        pending = {}
        for kind, _ in batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if kind == "r":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            rc = s.connect_ex(("127.0.0.1", port))
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                continue
            pending[s.fileno()] = (kind, s)
            ep.register(s.fileno(), select.EPOLLOUT)
        while pending and time.monotonic() < deadline:
            for fd, _ in ep.poll(0.5):
                kind, s = pending.pop(fd)
                ep.unregister(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    s.close()
                    failed += 1
                    continue
                try:
                    if kind == "l":
                        s.send(b"GET /loris HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                        loris.append(s)
                    else:
                        s.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                        readers.append(s)
                except OSError:
                    s.close()
                    failed += 1
        for _, s in pending.values():
            s.close()
            failed += 1
    ep.close()
    return loris, readers, failed


def main():
    port, n_loris, n_read, secs = (int(a) for a in sys.argv[1:5])
    raise_nofile()
    # attackers are elsewhere in real life: on this shared machine, do not
    # let the load generator's own CPU pass for the proxy's slowness
    os.nice(10)
    t0 = time.monotonic()
    deadline = t0 + secs
    loris, readers, failed = open_all(port, n_loris, n_read, deadline)
    print("ready %d" % (len(loris) + len(readers)), flush=True)
    # one byte a second per connection, spread over the second in 50
    # slices, so the load is steady rather than a burst each second
    slices = 50
    closed = 0
    tick = time.monotonic()
    k = 0
    while time.monotonic() < deadline:
        # stop with the test
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r and not os.read(sys.stdin.fileno(), 1):
            break
        now = time.monotonic()
        if now < tick:
            time.sleep(min(tick - now, deadline - now, 0.2))
            continue
        tick += 1.0 / slices
        for i in range(k % slices, len(loris), slices):
            s = loris[i]
            if s is None:
                continue
            try:
                s.send(b"a")
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                loris[i] = None
                closed += 1
        for i in range(k % slices, len(readers), slices):
            s = readers[i]
            if s is None:
                continue
            try:
                if s.recv(1) == b"":
                    raise OSError("closed")
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                readers[i] = None
                closed += 1
        k += 1
    loris = [s for s in loris if s is not None]
    readers = [s for s in readers if s is not None]
    print("done open=%d closed=%d failed=%d loris=%d readers=%d" % (
        len(loris) + len(readers), closed, failed, len(loris), len(readers)),
        flush=True)
    for s in loris + readers:
        s.close()


if __name__ == "__main__":
    main()
