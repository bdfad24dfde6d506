"""A hostile HTTP server on 127.0.0.1: servers that never stop sending, or stop sending and never hang up.

fault_server.py plays a flaky but honest server; this one plays a broken or malicious one. Paths:

    /endless/<name>       every request: 200, no Content-Length, bytes until the client hangs up
    /overflow/<name>      every request: 200, Content-Length 100, then bytes until the client hangs up
    /silent/<name>        every request: the connection is accepted and nothing is ever sent
    /stall/<name>         every request: 200 and a Content-Length of 1 MiB, 1000 bytes, then nothing
    /stall-ranges/<name>  the first GET (the one-byte Range probe) and every HEAD are answered from `files`, honestly;
                          every later one gets the 206 headers of the range asked, 16 bytes and then nothing
    /endless-ranges/<name> the same honest probe, then the 206 headers of the range asked without a length, and
                          bytes until the client hangs up

Nothing runs unbounded: a stall waits at most MAX_STALL_S, a stream ends after MAX_SEND_BYTES, and closing the server
(leaving the with block) ends both at once.

    with HostileServer(files={"tile.tif": data}) as server:
        server.url + "/endless/tile.tif"; server.sent("/endless/tile.tif")
"""

import re
import threading
from collections import Counter
from urllib.parse import unquote, urlparse

from .loopback import LoopbackServer, QuietHandler

MAX_STALL_S = 30.0
MAX_SEND_BYTES = 4 << 30
CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class HostileServer:
    """Context manager: url, requests (Counter of paths), sent(path) (body bytes written)."""

    def __init__(self, files=None):
        self.files = dict(files or {})
        self.requests = Counter()
        self.bytes_sent = Counter()
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def sent(self, path):
        with self._lock:
            return self.bytes_sent[path]

    def _count(self, path):
        with self._lock:
            self.requests[path] += 1
            return self.requests[path]

    def _add_sent(self, path, count):
        with self._lock:
            self.bytes_sent[path] += count

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.closing.set()  # wakes every stalled answer and stops every endless one
        self._httpd.shutdown()
        self._httpd.server_close()


class _Server(LoopbackServer):
    def handle_error(self, request, client_address):
        pass  # clients hanging up on an endless body is the point


def _handler(server):
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, body):
            path = unquote(urlparse(self.path).path)
            number = server._count(path)
            kind, _, name = path.lstrip("/").partition("/")
            if kind == "silent":
                server.closing.wait(MAX_STALL_S)
                self.close_connection = True
                return
            if kind in ("stall-ranges", "endless-ranges") and (number == 1 or not body) and name in server.files:
                self._honest(server.files[name], body)
                return
            if kind == "endless":
                self._headers(200, None, body)
                self._endless(path, body)
            elif kind == "overflow":
                self._headers(200, 100, body)
                self._endless(path, body)
            elif kind == "stall":
                self._headers(200, 1 << 20, body)
                self._stall(path, 1000, body)
            elif kind == "stall-ranges":
                start, end, size = self._asked(name)
                self._headers(206, end - start + 1, body, content_range=f"bytes {start}-{end}/{size}")
                self._stall(path, 16, body)
            elif kind == "endless-ranges":
                start, end, size = self._asked(name)
                self._headers(206, None, body, content_range=f"bytes {start}-{end}/{size}")
                self._endless(path, body)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def _asked(self, name):
            """(start, end, size) of the range asked for, as an honest server would state it."""
            size = len(server.files.get(name, b"")) or 1 << 30
            match = _RANGE.match(self.headers.get("Range") or "")
            start = int(match.group(1)) if match else 0
            end = min(int(match.group(2)) if match and match.group(2) else size - 1, size - 1)
            return start, end, size

        def _honest(self, data, body):
            match = _RANGE.match(self.headers.get("Range") or "")
            start, end = (int(match.group(1)), int(match.group(2) or len(data) - 1)) if match else (0, len(data) - 1)
            end = min(end, len(data) - 1)
            self.send_response(206 if match else 200)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(data[start : end + 1])

        def _headers(self, status, length, body, content_range=None):
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            if content_range:
                self.send_header("Content-Range", content_range)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")  # without a length, the body ends when the connection does
            self.end_headers()
            self.close_connection = True

        def _endless(self, path, body):
            chunk = b"\x5a" * CHUNK
            sent = 0
            while body and sent < MAX_SEND_BYTES and not server.closing.is_set():
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return  # the client hung up: what a careful client does
                sent += len(chunk)
                server._add_sent(path, len(chunk))

        def _stall(self, path, first, body):
            if body:
                try:
                    self.wfile.write(b"\x00" * first)
                    self.wfile.flush()
                except OSError:
                    return
                server._add_sent(path, first)
            server.closing.wait(MAX_STALL_S)

    return Handler
