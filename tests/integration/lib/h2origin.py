"""A small HTTP/2 (h2c, prior knowledge) origin on python3-h2 for the
h2-upstream tests: what a gRPC server does not do on demand.

Paths:
  /rst     resets the stream (INTERNAL_ERROR) as soon as the head arrives
  /goaway  GOAWAY (last stream 0, NO_ERROR): the stream was not processed
  /silent  never answers
  other    200 "hello from h2" with the trailer x-trailer: yes
Every request head is kept in .requests (a list of dicts, pseudo-fields
included), with the body length in .bodies and request trailers in
.trailers."""

import socket
import threading

import h2.config
import h2.connection
import h2.events


class H2Origin:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.bodies = []
        self.trailers = []  # request trailers, a dict per request that had them
        self.conns = 0
        self.stopped = False

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _respond(self, c, sid, path):
        if path == "/silent":
            return
        c.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
        c.send_data(sid, b"hello from h2")
        c.send_headers(sid, [("x-trailer", "yes")], end_stream=True)

    def _serve(self, s):
        s.settimeout(30)
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        c = h2.connection.H2Connection(config=cfg)
        c.initiate_connection()
        paths, sizes = {}, {}
        try:
            s.sendall(c.data_to_send())
            for _ in range(10000):
                data = s.recv(65536)
                if not data:
                    return
                for ev in c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        h = dict(ev.headers)
                        self.requests.append(h)
                        path = h.get(":path", "/")
                        paths[ev.stream_id] = path
                        sizes[ev.stream_id] = 0
                        if path == "/rst":
                            c.reset_stream(ev.stream_id, error_code=2)
                        elif path == "/goaway":
                            c.close_connection(error_code=0, last_stream_id=0)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        self.trailers.append(dict(ev.headers))
                    elif isinstance(ev, h2.events.DataReceived):
                        sizes[ev.stream_id] = sizes.get(ev.stream_id, 0) + len(ev.data)
                        c.acknowledge_received_data(ev.flow_controlled_length,
                                                    ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        path = paths.get(ev.stream_id, "/")
                        self.bodies.append(sizes.get(ev.stream_id, 0))
                        if path not in ("/rst", "/goaway"):
                            self._respond(c, ev.stream_id, path)
                s.sendall(c.data_to_send())
        except Exception:
            return
        finally:
            s.close()
