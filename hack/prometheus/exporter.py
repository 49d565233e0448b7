#!/usr/bin/env python3
"""Serves the samples tests set, for the local Prometheus to scrape.

kwok pods run no application, so this stands in for the application's own
metrics: GET /metrics answers with every *.prom file of a directory joined
(the node_exporter textfile-collector idea). Tests write one file each,
atomically (a temporary file renamed over it), so a scrape never sees half
of one.

usage: exporter.py DIR HOST PORT
"""

import http.server
import pathlib
import sys


def samples(directory: pathlib.Path) -> bytes:
    parts = []
    for path in sorted(directory.glob("*.prom")):
        try:
            text = path.read_bytes()
        except OSError:
            # Removed between the listing and the read.
            continue
        if text and not text.endswith(b"\n"):
            text += b"\n"
        parts.append(text)
    return b"".join(parts)


def handler(directory: pathlib.Path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/metrics":
                body = samples(directory)
                content_type = "text/plain; version=0.0.4"
            elif self.path == "/healthz":
                body, content_type = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main() -> None:
    directory, host, port = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    directory.mkdir(parents=True, exist_ok=True)
    server = http.server.ThreadingHTTPServer((host, port), handler(directory))
    server.serve_forever()


if __name__ == "__main__":
    main()
