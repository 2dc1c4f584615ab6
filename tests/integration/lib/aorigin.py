"""A small asyncio HTTP/1.1 origin for load tests, run as its own process
(so thousands of connections cost neither threads nor the test's GIL):

    python3 -m lib.aorigin PORT

  /big      1 MiB of "x" (Content-Length); a slow client's proxy holds the
            connection while the body waits
  anything  "ok\\n"
Keep-alive; request bodies are not supported (GET/HEAD only). Runs until
killed or until its stdin closes (so it dies with the test)."""

import asyncio
import resource
import sys

BIG = b"x" * (1 << 20)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split(b" ")
            path = line[1] if len(line) > 1 else b"/"
            body = BIG if path == b"/big" else b"ok\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                         b"Content-Type: text/plain\r\n\r\n" % len(body))
            if line[0] != b"HEAD":
                writer.write(body)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port,
                                        backlog=4096)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.buffer.read)
    print("ready", flush=True)
    async with server:
        await stdin_closed


if __name__ == "__main__":
    raise_nofile()
    asyncio.run(main(int(sys.argv[1])))
