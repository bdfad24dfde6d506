"""A fault-injecting HTTP server on 127.0.0.1 for the remote-access tests.

Every path may get a script of behaviours, one per request (the last one repeats): answer normally
(honouring Range), answer with an HTTP status, drop the connection part-way through the body, announce
a Content-Length longer than the body, ignore Range and send the whole body, wait before answering,
send the body slowly, or corrupt one byte of it. Paths without a script are served normally from `root` (or from bodies added with
`add`). The server counts requests and the body bytes it managed to send, per path.

    with FaultServer(root) as server:
        server.add("/index.parquet", data, [Status(503, times=2), Ok()])
        ...server.url + "/index.parquet"...
        server.count("/index.parquet"), server.sent("/index.parquet")
"""

import base64
import hashlib
import os
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from .loopback import LoopbackServer, QuietHandler

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
CHUNK = 64 * 1024


# --- behaviours ---------------------------------------------------------------------------------


@dataclass
class Ok:
    """Answer normally: 206 for a satisfiable Range, else 200 with the whole body."""

    times: int = 1


@dataclass
class Status:
    """Answer with this HTTP status and a small error body."""

    code: int
    times: int = 1


@dataclass
class Drop:
    """Send the headers (with the true Content-Length) and `after` body bytes, then close the connection."""

    after: int = 0
    times: int = 1


@dataclass
class WrongLength:
    """Announce `extra` more bytes in Content-Length than the body has, send the body, then close."""

    extra: int = 1000
    times: int = 1


@dataclass
class IgnoreRange:
    """Answer every request with 200 and the whole body, whatever its Range header says."""

    times: int = 1


@dataclass
class Slow:
    """Wait `delay` seconds before answering (normally)."""

    delay: float
    times: int = 1


@dataclass
class Trickle:
    """Answer normally, but send the body in `chunk`-byte pieces `delay` seconds apart."""

    chunk: int
    delay: float
    times: int = 1


@dataclass
class Corrupt:
    """Answer normally but flip one byte in the middle of the body (its Content-MD5, if sent, stays the true one)."""

    times: int = 1


@dataclass
class Request:
    method: str
    path: str
    range: str
    behaviour: str


class Body:
    """A body of `size` bytes: `data` followed by a repeating filler (so a huge body needs no memory)."""

    def __init__(self, data=b"", size=None):
        self.data = bytes(data)
        self.size = len(self.data) if size is None else int(size)

    def read(self, start, length):
        end = min(start + length, self.size)
        if start >= end:
            return b""
        head = self.data[start:end]
        filler = end - max(start, len(self.data))
        return head + (b"\x5a" * filler if filler > 0 else b"")


class _Script:
    def __init__(self, steps, methods):
        self.steps = [step for step in steps for _ in range(step.times)]
        self.methods = methods

    def next(self, method):
        if method not in self.methods:
            return Ok()
        return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]


class FaultServer:
    """Context manager; `url`, `add`, `requests`, `count`, `sent`, `reset`."""

    def __init__(self, root=None):
        self.root = os.path.abspath(root) if root else None
        self.bodies, self.scripts, self.md5_paths = {}, {}, set()
        self.requests = []
        self.bytes_by_path = Counter()
        self._lock = threading.Lock()
        self._active = 0  # requests being answered
        self._httpd = LoopbackServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, path, data=b"", script=(), size=None, methods=("GET", "HEAD"), md5=False):
        """Serve `data` (padded to `size`) at `path`, following `script` for requests of `methods` (others: Ok);
        a path of `root` keeps its file's bytes. md5: send Content-MD5 with every body."""
        with self._lock:
            if md5:
                self.md5_paths.add(path)
            if data or size is not None:
                self.bodies[path] = Body(data, size)
            if script:
                self.scripts[path] = _Script(list(script), set(methods))

    def count(self, path, method="GET"):
        with self._lock:
            return sum(1 for request in self.requests if request.path == path and request.method == method)

    def sent(self, path=None):
        """Body bytes sent, once every answer under way has finished (or after 5 s)."""
        self.settle()
        with self._lock:
            return sum(self.bytes_by_path.values()) if path is None else self.bytes_by_path[path]

    def settle(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self._active and time.monotonic() < deadline:
            time.sleep(0.01)

    def reset(self):
        with self._lock:
            self.requests.clear()
            self.bytes_by_path.clear()

    def _body(self, path):
        if path in self.bodies:
            return self.bodies[path]
        if self.root is None:
            return None
        local = os.path.normpath(os.path.join(self.root, path.lstrip("/")))
        if not local.startswith(self.root) or not os.path.isfile(local):
            return None
        with open(local, "rb") as handle:
            return Body(handle.read())

    def _step(self, path, method):
        with self._lock:
            script = self.scripts.get(path)
            return script.next(method) if script else Ok()

    def _record(self, method, path, header, behaviour):
        with self._lock:
            self.requests.append(Request(method, path, header, behaviour))

    def _count_bytes(self, path, n):
        with self._lock:
            self.bytes_by_path[path] += n

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
            with server._lock:
                server._active += 1
            try:
                self._answer_one(body)
            finally:
                with server._lock:
                    server._active -= 1

        def _answer_one(self, send_body):
            path = unquote(urlparse(self.path).path)
            header = self.headers.get("Range")
            step = server._step(path, self.command)
            server._record(self.command, path, header, type(step).__name__)
            if isinstance(step, Slow):
                time.sleep(step.delay)
            if isinstance(step, Status):
                self._status(step.code)
                return
            body = server._body(path)
            if body is None:
                self._status(404)
                return
            start, end, status = 0, body.size - 1, 200
            match = _RANGE.match(header or "")
            if match and body.size and not isinstance(step, IgnoreRange):
                first, last = match.groups()
                if first:
                    start, end = int(first), min(int(last) if last else body.size - 1, body.size - 1)
                else:
                    start = max(body.size - int(last), 0)
                if start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{body.size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            length = end - start + 1 if body.size else 0
            announced = length + step.extra if isinstance(step, WrongLength) else length
            self.send_response(status)
            self.send_header("Content-Length", str(announced))
            self.send_header("Content-Type", "application/octet-stream")
            if not isinstance(step, IgnoreRange):
                self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{body.size}")
            if path in server.md5_paths:
                digest = hashlib.md5(body.read(start, length), usedforsecurity=False).digest()
                self.send_header("Content-MD5", base64.b64encode(digest).decode("ascii"))
            if isinstance(step, (Drop, WrongLength)):
                self.send_header("Connection", "close")
            self.end_headers()
            if not send_body:
                return
            limit = min(length, step.after) if isinstance(step, Drop) else length
            chunk, delay = (step.chunk, step.delay) if isinstance(step, Trickle) else (CHUNK, 0)
            flip = start + length // 2 if isinstance(step, Corrupt) else None
            self._send(path, body, start, limit, chunk, delay, flip)
            if isinstance(step, (Drop, WrongLength)):
                self._hang_up()

        def _send(self, path, body, start, length, chunk, delay, flip=None):
            position = 0
            while position < length:
                data = body.read(start + position, min(chunk, length - position))
                if flip is not None and start + position <= flip < start + position + len(data):
                    at = flip - start - position
                    data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                server._count_bytes(path, len(data))
                position += len(data)
                if delay and position < length:
                    time.sleep(delay)

        def _status(self, code):
            message = f"{code} from the fault server\n".encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(message)))
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(message)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        def _hang_up(self):
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return Handler
