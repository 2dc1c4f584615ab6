"""For the forward-proxy tests: a test certificate authority made with the
openssl command at run time
(nothing secret is committed), and an HTTPS origin: lib.origin.Origin with
each accepted connection wrapped in TLS."""

import base64
import hashlib
import os
import socket
import ssl
import subprocess

from .origin import Origin


class TestCA:
    """ca.pem, and server.pem/server.key for 127.0.0.1 and localhost,
    signed by it; .spki is the server key's SPKI SHA-256 in base64 (what
    Chromium's --ignore-certificate-errors-spki-list takes)."""

    def __init__(self, d):
        self.dir = str(d)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "server.pem")
        self.key = os.path.join(self.dir, "server.key")
        ext = os.path.join(self.dir, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "basicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.ca_key,
            "-out", self.ca, "-days", "2", "-subj", "/CN=Gatehouse test CA")
        csr = os.path.join(self.dir, "server.csr")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key,
            "-out", csr, "-subj", "/CN=localhost")
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey",
            self.ca_key, "-CAcreateserial", "-out", self.cert, "-days", "2",
            "-extfile", ext)
        der = run("openssl", "pkey", "-in", self.key, "-pubout", "-outform",
                  "DER").stdout
        self.spki = base64.b64encode(hashlib.sha256(der).digest()).decode()

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


class TLSOrigin(Origin):
    """The test origin, over TLS: same endpoints, same counters."""

    def __init__(self, name, ca, **kw):
        super().__init__(name, **kw)
        self.ctx = ca.server_context()

    def _serve(self, s, addr, conn_id):
        try:
            s.settimeout(10)
            s = self.ctx.wrap_socket(s, server_side=True)
        except (OSError, ssl.SSLError) as e:
            with self.lock:
                self.errors.append("%s: handshake: %r" % (self.name, e))
                self.open_conns -= 1
                self.conns.pop(conn_id, None)
            try:
                s.close()
            except OSError:
                pass
            return
        with self.lock:
            self.conns[conn_id] = s
        super()._serve(s, addr, conn_id)
