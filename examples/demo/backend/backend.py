#!/usr/bin/env python3
"""A tiny backend service for autopilot's Autopilot Pattern demo.

    backend.py NAME PEER PORT

serves HTTP on $BIND_ADDRESS:PORT ($BIND_ADDRESS defaults to 0.0.0.0):

    GET /        {"service": NAME, "hostname": ..., "peers": {PEER: ["addr:port", ...]}}
    GET /health  "ok" (autopilot's health check)

It finds the healthy instances of its PEER service through Consul's HTTP API
($CONSUL, default consul:8500) at start and again on every SIGHUP, which
autopilot's onChange job sends when the PEER watch changes. Standard library
only, so it runs on any python3.
"""

import json
import os
import signal
import socket
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, PEER, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
CONSUL = os.environ.get("CONSUL") or "consul:8500"
HOSTNAME = socket.gethostname()
peers = []


def log(message):
    print(f"{NAME}: {message}", flush=True)


def find_peers():
    """Asks Consul for the healthy instances of PEER."""
    url = f"http://{CONSUL}/v1/health/service/{PEER}?passing=1"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            entries = json.load(answer)
    except OSError as error:
        log(f"cannot ask Consul for {PEER}: {error}")
        return
    found = sorted(
        f"{entry['Service']['Address'] or entry['Node']['Address']}:{entry['Service']['Port']}"
        for entry in entries
    )
    peers[:] = found
    log(f"{PEER} instances: {', '.join(found) or 'none'}")


def on_sighup(_signal, _frame):
    # Not inside the handler: it interrupts the server loop.
    threading.Thread(target=find_peers, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body, kind = b"ok\n", "text/plain"
        else:
            answer = {"service": NAME, "hostname": HOSTNAME, "peers": {PEER: list(peers)}}
            body, kind = (json.dumps(answer) + "\n").encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass  # one line per health check would drown the demo's output


def main():
    signal.signal(signal.SIGHUP, on_sighup)
    address = os.environ.get("BIND_ADDRESS") or "0.0.0.0"
    server = ThreadingHTTPServer((address, PORT), Handler)
    log(f"listening on {address}:{PORT} as {HOSTNAME}")
    find_peers()
    server.serve_forever()


if __name__ == "__main__":
    main()
