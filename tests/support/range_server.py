"""A static HTTP server on 127.0.0.1 that honours Range requests and counts what it sends.

Used to serve a fixture mirror so tests can assert that remote reads fetch only what they need.
"""

import os
import re
import threading
from collections import Counter
from urllib.parse import unquote, urlparse

from .loopback import LoopbackServer, QuietHandler

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    """Context manager: `with RangeServer(root) as server: server.url` ... `server.bytes_sent`."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.bytes_by_path = Counter()
        self.requests = []  # (method, path, range header)
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def answer(self, body):
                path = unquote(urlparse(self.path).path)
                header = self.headers.get("Range")
                with server._lock:
                    server.requests.append((self.command, path, header))
                local = os.path.normpath(os.path.join(server.root, path.lstrip("/")))
                if not local.startswith(server.root) or not os.path.isfile(local):
                    self.send_error(404)
                    return
                size = os.path.getsize(local)
                start, end, status = 0, size - 1, 200
                match = _RANGE.match(header or "")
                if match and size:
                    first, last = match.groups()
                    if first:
                        start, end = int(first), min(int(last) if last else size - 1, size - 1)
                    else:
                        start, end = max(size - int(last), 0), size - 1
                    if start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Length", str(end - start + 1 if size else 0))
                self.send_header("Accept-Ranges", "bytes")
                # Nanoseconds: a test rewriting a file within the second (an index on a reused port) gets a new ETag,
                # as a real server's content-based ETag would change, so the cache does not keep the old copy.
                self.send_header("ETag", f'"{os.stat(local).st_mtime_ns}-{size}"')
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if body and size:
                    with open(local, "rb") as handle:
                        handle.seek(start)
                        data = handle.read(end - start + 1)
                    self.wfile.write(data)
                    with server._lock:
                        server.bytes_by_path[path] += len(data)

        self._httpd = LoopbackServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def bytes_sent(self):
        return sum(self.bytes_by_path.values())

    def reset(self):
        with self._lock:
            self.bytes_by_path.clear()
            self.requests.clear()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
