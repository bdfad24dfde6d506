"""What the test HTTP servers on 127.0.0.1 share: a server that keeps up with GDAL and stays quiet when a client
hangs up, and a handler that sends GET and HEAD to one method and logs nothing."""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer(ThreadingHTTPServer):
    """A listen queue as long as a real server's: GDAL 3.10+ reads the tiles of a window with many parallel range
    requests, and socketserver's default of 5 pending connections drops the rest of such a burst (each then waits
    for a TCP retransmission or GDAL's timeout, a minute or more). Clients that hang up early (the point of several
    tests) are not worth a traceback."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    """GET and HEAD both go to answer(body): the same headers, with or without the body."""

    def log_message(self, *args):
        pass

    def do_HEAD(self):  # noqa: N802
        self.answer(body=False)

    def do_GET(self):  # noqa: N802
        self.answer(body=True)

    def answer(self, body):
        raise NotImplementedError
