"""The gatehouse process under test and its YAML configuration."""

import json
import os
import re
import signal
import subprocess
import time

from .net import HOST, free_port, port_accepts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEBUG_BIN = os.path.join(ROOT, "build", "debug", "gatehouse")
RELEASE_BIN = os.path.join(ROOT, "build", "release", "gatehouse")

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "ThreadSanitizer")


def binary(release=False):
    if release:
        return os.environ.get("GATEHOUSE_RELEASE_BIN", RELEASE_BIN)
    return os.environ.get("GATEHOUSE_BIN", DEBUG_BIN)


def proc_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS",
                   "detect_leaks=1:abort_on_error=1:strict_string_checks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


# ---- YAML -----------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z0-9_./:\-][A-Za-z0-9_./:\- ]*$")


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if (_PLAIN.fullmatch(s) and not s.endswith(" ") and ": " not in s
            and s.lower() not in ("true", "false", "yes", "no", "on", "off",
                                  "null", "~", "y", "n")):
        return s
    return json.dumps(s)  # a JSON string is a valid double-quoted YAML scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict)
                                         else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 1).split("\n")
                out.append("%s- %s" % (pad, inner[0].lstrip()))
                out.extend(inner[1:])
            elif isinstance(v, list) and v:
                out.append("%s-" % pad)
                out.append(to_yaml(v, indent + 1))
            else:
                out.append("%s- %s" % (pad, _scalar(v)))
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


def reverse_config(port, upstreams, sites=None, workers=1, headers=None,
                   timeouts=None, limits=None, log=None, upstream_opts=None,
                   extra=None):
    """A config dict with one reverse listener on 127.0.0.1:<port>.
    <upstreams>: {name: [port, ...] or [{"address": ..., "weight": ...}]}.
    Without <sites>, one default site sends / to the first upstream."""
    ups = {}
    for name, servers in upstreams.items():
        lst = []
        for s in servers:
            lst.append("%s:%d" % (HOST, s) if isinstance(s, int) else s)
        u = {"servers": lst}
        u.update((upstream_opts or {}).get(name, {}))
        ups[name] = u
    if sites is None:
        first = next(iter(upstreams))
        sites = [{"default": True, "routes": [{"path": "/", "upstream": first}]}]
    listener = {"listen": "%s:%d" % (HOST, port)}
    if headers:
        listener["headers"] = headers
    if timeouts:
        listener["timeouts"] = timeouts
    if limits:
        listener["limits"] = limits
    listener["sites"] = sites
    cfg = {"workers": workers}
    if log:
        cfg["log"] = log
    cfg["upstreams"] = ups
    cfg["listeners"] = [listener]
    if extra:
        cfg.update(extra)
    return cfg


def forward_config(port, forward=None, workers=1, headers=None, sites=None,
                   timeouts=None, limits=None, log=None, dns=None,
                   listen=None, extra=None, http2=None):
    """A config dict with one forward listener on 127.0.0.1:<port> (or
    <listen>). <forward> is the "forward:" mapping (default: {} = all
    defaults: loopback clients, CONNECT to 443)."""
    listener = {"listen": listen or "%s:%d" % (HOST, port)}
    if headers:
        listener["headers"] = headers
    if timeouts:
        listener["timeouts"] = timeouts
    if limits:
        listener["limits"] = limits
    if http2:
        listener["http2"] = http2
    listener["forward"] = forward if forward is not None else {}
    if sites:
        listener["sites"] = sites
    cfg = {"workers": workers}
    if log:
        cfg["log"] = log
    if dns:
        cfg["dns"] = dns
    cfg["listeners"] = [listener]
    if extra:
        cfg.update(extra)
    return cfg


# ---- the process ------------------------------------------------------------


class Gatehouse:
    def __init__(self, workdir, config, port, release=False, args=None,
                 name="gatehouse"):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = port
        self.bin = binary(release)
        self.name = name
        self.config_path = os.path.join(self.workdir, name + ".yaml")
        self.stdout_path = os.path.join(self.workdir, name + ".stdout")
        self.stderr_path = os.path.join(self.workdir, name + ".stderr")
        self.access_log = os.path.join(self.workdir, name + ".access.log")
        self.error_log = os.path.join(self.workdir, name + ".error.log")
        if isinstance(config, dict):
            config = dict(config)
            log = dict(config.get("log") or {})
            log.setdefault("access", self.access_log)
            log.setdefault("error", self.error_log)
            log.setdefault("level", "info")
            config["log"] = log
            # The suite runs as root, and started as root gatehouse drops to
            # "nobody" unless told otherwise (docs/security.md); the files the
            # tests make (static roots, cache directories) are root's. Tests
            # of privileges set their own "security" section.
            if "security" not in config and os.geteuid() == 0:
                config["security"] = {"run_as_root": True}
            # keep "workers" first for readability
            text = to_yaml(config) + "\n"
        else:
            text = config
        with open(self.config_path, "w") as f:
            f.write(text)
        self.config_text = text
        self.args = args
        self.proc = None
        self.returncode = None

    def start(self, timeout=15.0):
        for _ in range(6):  # a concurrent make may be relinking it
            if os.path.exists(self.bin):
                break
            time.sleep(0.5)
        if not os.path.exists(self.bin):
            raise AssertionError("gatehouse binary not built: %s" % self.bin)
        args = self.args if self.args is not None else ["-c", self.config_path]
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = _spawn(lambda: subprocess.Popen(
            [self.bin] + args, stdout=self._out, stderr=self._err,
            cwd=self.workdir, env=proc_env()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "gatehouse exited with %s at start\nconfig:\n%s\n"
                    "stderr:\n%s" % (self.proc.returncode, self.config_text,
                                     self.stderr()[-4000:]))
            if port_accepts(self.port, 0.2):
                return self
            time.sleep(0.05)
        raise AssertionError("gatehouse did not accept on port %d within %ss"
                             "\nstderr:\n%s" % (self.port, timeout,
                                                self.stderr()[-4000:]))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Sends <sig>, waits; kills after <timeout>. Returns the exit code
        (negative: killed by that signal; None: had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.returncode = None
                self._close_files()
                return None
        self.returncode = self.proc.returncode
        self._close_files()
        return self.returncode

    def _close_files(self):
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f and not f.closed:
                f.close()

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def sanitizer_report(self):
        text = self.stderr()
        bad = [ln for ln in text.splitlines()
               if any(m in ln for m in SANITIZER_MARKS)]
        return bad, text

    def access_lines(self):
        try:
            with open(self.access_log, "rb") as f:
                return [ln for ln in f.read().decode(errors="replace")
                        .splitlines() if ln.strip()]
        except OSError:
            return []

    def wait_access_lines(self, pred, timeout=5.0):
        """Polls the access log until pred(lines) is true or <timeout>
        passed; returns the lines last read."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.access_lines()
            if pred(lines) or time.monotonic() >= deadline:
                return lines
            time.sleep(0.05)

    def error_log_text(self):
        try:
            with open(self.error_log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def vm_hwm_kib(self):
        return _status_kib(self.proc.pid, "VmHWM")

    def vm_rss_kib(self):
        return _status_kib(self.proc.pid, "VmRSS")


def _status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1])
    except OSError:
        return None
    return None


def run_cli(args, timeout=20, release=False, cwd=None):
    """Runs gatehouse with <args> to completion; returns CompletedProcess
    with str stdout/stderr."""
    b = binary(release)
    if not os.path.exists(b):
        raise AssertionError("gatehouse binary not built: %s" % b)
    return _spawn(lambda: subprocess.run(
        [b] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=timeout, env=proc_env(), cwd=cwd, text=True))


def _spawn(fn, tries=5):
    """Runs fn() (a Popen/run), retrying briefly when the binary cannot be
    executed because a concurrent `make` is rewriting it (ETXTBSY, ENOENT,
    EACCES). Anything the binary itself does is not retried."""
    for i in range(tries):
        try:
            return fn()
        except OSError:
            if i == tries - 1:
                raise
            time.sleep(0.5)


__all__ = ["Gatehouse", "reverse_config", "to_yaml", "run_cli", "binary",
           "free_port", "ROOT", "SANITIZER_MARKS"]
