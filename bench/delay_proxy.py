#!/usr/bin/env python3
"""A reverse proxy on loopback that adds a fixed delay to every request: a Maven repository
that is as far away as Maven Central is from a cluster.

    delay_proxy.py --delay-ms 20 --upstream http://127.0.0.1:8081/ [--port N]

GET and HEAD are forwarded to the upstream after the delay (status, Content-Length and body
passed through, HTTP/1.1 keep-alive towards the client). Prints `PORT <n>` once it listens.
"""

import argparse
import http.client
import http.server
import sys
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    upstream = urllib.parse.urlsplit(args.upstream)
    base = upstream.path.rstrip("/")
    local = threading.local()

    def connection():
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            local.conn = conn
        return conn

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def forward(self, body):
            time.sleep(args.delay_ms / 1000)
            for attempt in range(2):
                conn = connection()
                try:
                    conn.request(self.command, base + self.path)
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()
                    local.conn = None
                    if attempt:
                        self.send_error(502)
                        return
            self.send_response(resp.status)
            length = str(len(data)) if body else resp.getheader("Content-Length", "0")
            self.send_header("Content-Length", length)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self):
            self.forward(True)

        def do_HEAD(self):
            self.forward(False)

    class Server(http.server.ThreadingHTTPServer):
        # The default backlog (5) drops connections when a resolver opens dozens at once, and
        # each dropped SYN costs a 1 s retransmission: that would measure the proxy, not the
        # resolver.
        request_queue_size = 1024

    server = Server(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
