"""A static HTTP server on 127.0.0.1 that answers some paths with a redirect, for the index-confinement tests.

    with RedirectServer(root, lambda path: other.url + path if path.endswith(".tiff") else None) as server:
        ...server.url...; server.requests

redirect(path) -> a URL (absolute, or a path on this server) to answer 302 with, or None to serve the file under
root (honouring Range). Every request is recorded as (method, path, Range header).
"""

import os
import re
import threading
from urllib.parse import unquote, urlparse

from .loopback import LoopbackServer, QuietHandler

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RedirectServer:
    def __init__(self, root, redirect):
        self.root, self.redirect = os.path.abspath(root), redirect
        self.requests = []
        self._lock = threading.Lock()
        self._httpd = LoopbackServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server):
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, body):
            path = unquote(urlparse(self.path).path)
            header = self.headers.get("Range")
            with server._lock:
                server.requests.append((self.command, path, header))
            target = server.redirect(path)
            if target:
                self._send(302, [("Location", target)], b"")
                return
            local = os.path.normpath(os.path.join(server.root, path.lstrip("/")))
            if not local.startswith(server.root) or not os.path.isfile(local):
                self._send(404, [], b"not found\n", body)
                return
            with open(local, "rb") as handle:
                data = handle.read()
            match = _RANGE.match(header or "")
            if match and match.group(1) and data:
                start = int(match.group(1))
                end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                headers = [("Content-Range", f"bytes {start}-{end}/{len(data)}"), ("Accept-Ranges", "bytes")]
                self._send(206, headers, data[start : end + 1], body)
                return
            self._send(200, [("Accept-Ranges", "bytes")], data, body)

        def _send(self, code, headers, data, body=True):
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body and data:
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

    return Handler
