#!/usr/bin/env python3
"""A stand-in for a replicated database, to show autopilot's leader lock
(examples/failover/README.md). It stores nothing; it only knows its role and
which primary it follows, in two files of its state directory:

  db.py serve STATE PORT   serve /health, /primary, /replica and /state on PORT
  db.py promote STATE      become the primary (autopilot runs it on lock.primary acquired)
  db.py demote STATE       become a replica   (on lock.primary lost)
  db.py follow STATE       follow the primary Consul advertises (on watch.db-primary changed)

The role file is absent until the first promotion: no file means replica.
"""

import http.server
import json
import os
import sys
import time
import urllib.request


def read(state, name, default=""):
    try:
        with open(os.path.join(state, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


def write(state, name, value):
    # Write then rename, so the server never reads half a file.
    path = os.path.join(state, name)
    with open(path + ".tmp", "w") as f:
        f.write(value + "\n")
    os.replace(path + ".tmp", path)


def role(state):
    return read(state, "role", "replica")


def serve(state, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            current = role(state)
            if self.path == "/health":
                self.answer(200, "ok")
            elif self.path in ("/primary", "/replica"):
                # The role checks: the db-primary and db-replica services pass
                # only on the instance whose role they name.
                self.answer(200 if self.path[1:] == current else 503, current)
            elif self.path == "/state":
                self.answer(200, json.dumps({"role": current, "following": read(state, "following")}))
            else:
                self.answer(404, "not found")

        def answer(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    print(f"db: serving on {port} as {role(state)}", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def follow(state):
    """Points a replica at the primary Consul advertises (the passing db-primary).

    While nobody is advertised (the old primary left, the new one's check has
    not passed yet) it asks again for a while: a change that arrives while this
    runs starts no second run, so this run must see the failover through.
    """
    consul = os.environ.get("CONSUL", "consul:8500")
    url = f"http://{consul}/v1/health/service/db-primary?passing=1"
    for _ in range(100):
        if role(state) == "primary":
            write(state, "following", "")
            return
        with urllib.request.urlopen(url, timeout=5) as answer:
            instances = json.load(answer)
        if instances:
            primary = instances[0]["Service"]["ID"]
            write(state, "following", primary)
            print(f"db: replica following {primary}", flush=True)
            return
        time.sleep(0.1)
    write(state, "following", "")
    print("db: no primary advertised", flush=True)


def main():
    command, state = sys.argv[1], sys.argv[2]
    if command == "serve":
        serve(state, int(sys.argv[3]))
    elif command == "promote":
        write(state, "role", "primary")
        write(state, "following", "")
        print("db: promoted to primary", flush=True)
    elif command == "demote":
        write(state, "role", "replica")
        print("db: demoted to replica", flush=True)
    elif command == "follow":
        follow(state)
    else:
        sys.exit(f"db.py: unknown command {command!r}")


if __name__ == "__main__":
    main()
