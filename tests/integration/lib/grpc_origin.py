"""A real gRPC server (python3-grpcio) for the h2-upstream tests: bytes in,
bytes out (no protoc), on a free loopback port, plain (h2c) or TLS.

Methods of service test.Svc:
  Echo   unary: returns b"echo:" + request; a request starting with
         b"missing" aborts with NOT_FOUND and a message naming it
  Count  server streaming: request b"<n>" gives n messages b"msg-<i>"
  Big    unary: returns the request reversed (large messages)
  Chat   bidirectional: answers each message b"re:" + message at once
"""

from concurrent import futures

import grpc

from lib.net import free_port

MAX_MSG = 16 * 1024 * 1024
OPTS = [("grpc.max_receive_message_length", MAX_MSG),
        ("grpc.max_send_message_length", MAX_MSG),
        ("grpc.enable_http_proxy", 0)]


def _echo(req, ctx):
    if req.startswith(b"missing"):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing: %s" % req.decode())
    return b"echo:" + req


def _count(req, ctx):
    for i in range(int(req)):
        yield b"msg-%d" % i


def _big(req, ctx):
    return req[::-1]


def _chat(reqs, ctx):
    for r in reqs:
        yield b"re:" + r


class GrpcOrigin:
    def __init__(self, tls=None):
        """<tls>: (cert_pem_bytes, key_pem_bytes) to serve TLS."""
        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  options=OPTS)
        self.peers = []  # the client address of every Echo call

        def echo(req, ctx):
            self.peers.append(ctx.peer())
            return _echo(req, ctx)

        h = {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Count": grpc.unary_stream_rpc_method_handler(_count),
            "Big": grpc.unary_unary_rpc_method_handler(_big),
            "Chat": grpc.stream_stream_rpc_method_handler(_chat),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Svc", h),))
        addr = "127.0.0.1:%d" % self.port
        if tls:
            creds = grpc.ssl_server_credentials([(tls[1], tls[0])])
            self.server.add_secure_port(addr, creds)
        else:
            self.server.add_insecure_port(addr)

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop(grace=None)


def channel(port, ca=None):
    """A client channel to 127.0.0.1:<port>: h2c with prior knowledge, or
    TLS trusting <ca> (a PEM file) for the name localhost."""
    addr = "127.0.0.1:%d" % port
    if ca is None:
        return grpc.insecure_channel(addr, options=OPTS)
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(
        addr, creds, options=OPTS + [("grpc.ssl_target_name_override", "localhost")])
