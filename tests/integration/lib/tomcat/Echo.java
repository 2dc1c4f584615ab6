// The servlet the AJP tests talk to (tests/integration/lib/tomcat.py): it
// answers /big/<n> with n bytes of the tests' pattern (lib/net.py: block i
// of sha256("gatehouse-<i>") digests) and anything else with a JSON echo
// of what arrived: method, URI, query, headers, client address, body hash,
// and every request attribute Tomcat set.
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Collections;
import java.util.HexFormat;

import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

public class Echo extends HttpServlet {
    private static final int BLOCK = 1 << 20;
    private static byte[] block;

    private static synchronized byte[] block() throws Exception {
        if (block == null) {
            byte[] b = new byte[BLOCK];
            int off = 0;
            for (int i = 0; off < BLOCK; i++) {
                MessageDigest md = MessageDigest.getInstance("SHA-256");
                byte[] d = md.digest(("gatehouse-" + i).getBytes(StandardCharsets.US_ASCII));
                int n = Math.min(d.length, BLOCK - off);
                System.arraycopy(d, 0, b, off, n);
                off += n;
            }
            block = b;
        }
        return block;
    }

    private static String q(String s) {
        if (s == null)
            return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\')
                b.append('\\').append(c);
            else if (c < 0x20)
                b.append(String.format("\\u%04x", (int) c));
            else
                b.append(c);
        }
        return b.append('"').toString();
    }

    @Override
    protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
        try {
            String uri = req.getRequestURI();
            if (uri.startsWith("/big/")) {
                long n = Long.parseLong(uri.substring(5));
                resp.setContentType("application/octet-stream");
                if (req.getParameter("chunked") == null)
                    resp.setContentLengthLong(n);
                OutputStream out = resp.getOutputStream();
                byte[] b = block();
                long left = n;
                while (left > 0) {
                    int k = (int) Math.min(left, BLOCK);
                    out.write(b, 0, k);
                    left -= k;
                }
                return;
            }
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            long len = 0;
            InputStream in = req.getInputStream();
            byte[] buf = new byte[65536];
            for (int r; (r = in.read(buf)) > 0;) {
                md.update(buf, 0, r);
                len += r;
            }
            StringBuilder j = new StringBuilder("{");
            j.append("\"method\":").append(q(req.getMethod()));
            j.append(",\"uri\":").append(q(uri));
            j.append(",\"query\":").append(q(req.getQueryString()));
            j.append(",\"protocol\":").append(q(req.getProtocol()));
            j.append(",\"remote_addr\":").append(q(req.getRemoteAddr()));
            j.append(",\"remote_port\":").append(req.getRemotePort());
            j.append(",\"server_name\":").append(q(req.getServerName()));
            j.append(",\"server_port\":").append(req.getServerPort());
            j.append(",\"secure\":").append(req.isSecure());
            j.append(",\"remote_user\":").append(q(req.getRemoteUser()));
            j.append(",\"auth_type\":").append(q(req.getAuthType()));
            j.append(",\"body_len\":").append(len);
            j.append(",\"body_sha256\":").append(q(HexFormat.of().formatHex(md.digest())));
            j.append(",\"headers\":[");
            boolean first = true;
            for (String name : Collections.list(req.getHeaderNames())) {
                for (String v : Collections.list(req.getHeaders(name))) {
                    j.append(first ? "" : ",").append("[").append(q(name)).append(",").append(q(v)).append("]");
                    first = false;
                }
            }
            j.append("],\"attributes\":[");
            first = true;
            for (String name : Collections.list(req.getAttributeNames())) {
                j.append(first ? "" : ",").append(q(name));
                first = false;
            }
            j.append("]}\n");
            byte[] out = j.toString().getBytes(StandardCharsets.UTF_8);
            resp.setContentType("application/json");
            resp.setHeader("X-Echo", "tomcat");
            resp.setContentLength(out.length);
            resp.getOutputStream().write(out);
        } catch (Exception e) {
            throw new IOException(e);
        }
    }
}
