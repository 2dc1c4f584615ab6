"""A real Tomcat for the AJP tests: Debian's tomcat10 started with its own
CATALINA_BASE in a temp dir, an HTTP connector and an AJP/1.3 connector
(secretRequired, with a secret) on free loopback ports, and one servlet
(lib/tomcat/Echo.java, compiled at start) that echoes what it received.

The Debian service is never used: CATALINA_HOME=/usr/share/tomcat10 and our
own base, started in the foreground (catalina.sh run) and stopped with
SIGTERM (then SIGKILL) by the test that started it.
"""

import os
import shutil
import signal
import subprocess
import time

from .net import HOST, free_port, port_accepts

CATALINA_HOME = "/usr/share/tomcat10"
HERE = os.path.dirname(os.path.abspath(__file__))

SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector address="{host}" port="{http_port}" protocol="HTTP/1.1"
               connectionTimeout="20000" maxKeepAliveRequests="-1"/>
    <Connector address="{host}" port="{ajp_port}" protocol="AJP/1.3"
               secretRequired="true" secret="{secret}" packetSize="8192"
               connectionTimeout="60000"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false"
            autoDeploy="false" deployOnStartup="true"/>
    </Engine>
  </Service>
</Server>
"""

WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="5.0"
         metadata-complete="true">
  <servlet><servlet-name>echo</servlet-name><servlet-class>Echo</servlet-class>
    <load-on-startup>1</load-on-startup></servlet>
  <servlet-mapping><servlet-name>echo</servlet-name><url-pattern>/</url-pattern>
  </servlet-mapping>
</web-app>
"""


def available():
    return (os.path.exists(os.path.join(CATALINA_HOME, "bin", "catalina.sh"))
            and shutil.which("javac") is not None)


class Tomcat:
    def __init__(self, base, secret="s3cret-for-tests"):
        self.base = str(base)
        self.secret = secret
        self.http_port = free_port()
        self.ajp_port = free_port()
        while self.ajp_port == self.http_port:
            self.ajp_port = free_port()
        self.proc = None

    def _layout(self):
        b = self.base
        for d in ("conf", "logs", "temp", "work", "webapps/ROOT/WEB-INF/classes"):
            os.makedirs(os.path.join(b, d), exist_ok=True)
        with open(os.path.join(b, "conf", "server.xml"), "w") as f:
            f.write(SERVER_XML.format(host=HOST, http_port=self.http_port,
                                      ajp_port=self.ajp_port,
                                      secret=self.secret))
        for name in ("catalina.properties", "context.xml"):
            src = os.path.join(CATALINA_HOME, "etc", name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(b, "conf", name))
        with open(os.path.join(b, "webapps/ROOT/WEB-INF/web.xml"), "w") as f:
            f.write(WEB_XML)
        subprocess.run(
            ["javac", "-cp", os.path.join(CATALINA_HOME, "lib", "servlet-api.jar"),
             "-d", os.path.join(b, "webapps/ROOT/WEB-INF/classes"),
             os.path.join(HERE, "tomcat", "Echo.java")],
            check=True, timeout=120, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)

    def start(self, timeout=90.0):
        self._layout()
        env = dict(os.environ)
        env.update({
            "CATALINA_HOME": CATALINA_HOME,
            "CATALINA_BASE": self.base,
            "CATALINA_TMPDIR": os.path.join(self.base, "temp"),
            "CATALINA_PID": os.path.join(self.base, "tomcat.pid"),
            # a small, quickly started JVM
            "JAVA_OPTS": "-Xms32m -Xmx256m -XX:TieredStopAtLevel=1 "
                         "-XX:+UseSerialGC -Djava.awt.headless=true",
        })
        self.log = open(os.path.join(self.base, "logs", "catalina.out"), "wb")
        self.proc = subprocess.Popen(
            [os.path.join(CATALINA_HOME, "bin", "catalina.sh"), "run"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("tomcat exited at start:\n" + self.output())
            if port_accepts(self.http_port, 0.2) and port_accepts(self.ajp_port, 0.2):
                if self._servlet_ready():
                    return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError("tomcat did not start within %ss:\n%s"
                             % (timeout, self.output()))

    def _servlet_ready(self):
        from .net import get
        try:
            return get(self.http_port, "/ready", timeout=5).status == 200
        except Exception:
            return False

    def output(self):
        try:
            with open(os.path.join(self.base, "logs", "catalina.out"), "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        # catalina.sh run execs java: its pid is the JVM's
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.log.close()
