"""Serves a folder over HTTP on 127.0.0.1 *without* decoding the request path.

Usage: raw_server.py DIR
A request for `/metadata/1...%2Fdelegatedrole.json` reads the file of that exact name, the way
a TUF repository stores a percent-encoded role name; a path part `..` is refused. Prints the
URL on the first line, then one access-log line per request: `GET PATH STATUS`.
"""
import http.server
import os
import sys

root = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        path = os.path.join(root, *parts) if parts else root
        if ".." in parts or not os.path.isfile(path):
            status, body = 404, b""
        else:
            with open(path, "rb") as f:
                status, body = 200, f.read()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(f"GET {self.path} {status}", flush=True)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
