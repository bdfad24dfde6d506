"""The one HTTP client of GeoEmbed: timeouts, bounded retries with exponential backoff, Range probes, verified downloads.

Retried (up to `retries` more times, waiting backoff * 2**attempt, at most max_backoff): HTTP 5xx and 429,
connections refused or dropped, timeouts, bodies shorter (or longer) than their Content-Length and bodies
whose checksum header (Content-MD5, x-goog-hash md5) does not match. Not retried: other 4xx (404 says so
in one line), and content that downloads fine but is of the wrong kind (the caller's check).
"""

import base64
import hashlib
import time
from dataclasses import dataclass
from urllib.parse import urljoin

from ..errors import GeoEmbedError, RemoteError
from ..limits import MAX_DOWNLOAD_ENV, http_timeout_s, max_download_bytes
from .confinement import HOW_TO_ALLOW, origin_of, same_origin, shown
from .locations import atomic_file

USER_AGENT = "GeoEmbed (QGIS plugin)"
CONNECT_TIMEOUT_S = 10  # the read timeout (seconds without a byte) is limits.http_timeout_s(), GEOEMBED_HTTP_TIMEOUT_S
RETRIES = 3
BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# Files fetched whole (indexes, manifests) are cut at the size the server declared, or at limits.max_download_bytes()
# (GEOEMBED_MAX_DOWNLOAD_MIB) when it declared none: a server that never stops sending is cut off.
CHUNK = 1 << 20
MIB = 1 << 20

MAX_REDIRECTS = 5

RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524})


def _requests():
    try:
        import requests
    except ImportError as exc:  # pragma: no cover - requests ships with QGIS
        raise GeoEmbedError("Reading http(s) sources needs the 'requests' package; install python3-requests.") from exc
    return requests


class _Transient(Exception):  # noqa: N818 - internal signal, never shown
    """One attempt failed in a way worth another try; str() is the reason for the final message."""

    def __init__(self, reason, kind):
        super().__init__(reason)
        self.kind = kind  # "connect", "status", "short", "checksum", "timeout"


@dataclass
class RangeInfo:
    """What a small `Range: bytes=0-0` request told about a remote file."""

    url: str
    size: int  # total bytes, or None when the server did not say
    ranges: bool  # True when the server answered 206 Partial Content
    etag: str = None


class HttpClient:
    """Timeouts and bounded retries for every request GeoEmbed itself makes (GDAL's range reads: see gdal_io)."""

    def __init__(self, timeout=None, retries=None, backoff=None, max_backoff=None, same_host_only=False):
        self.timeout = default_timeout() if timeout is None else timeout
        self.retries = RETRIES if retries is None else retries
        self.backoff = BACKOFF_S if backoff is None else backoff
        self.max_backoff = MAX_BACKOFF_S if max_backoff is None else max_backoff
        # For a mirror's files (see confinement.py): redirects are followed only to the same scheme, host and port.
        self.same_host_only = same_host_only
        self.session = _requests().Session()
        self.session.headers["User-Agent"] = USER_AGENT

    # --- the retry loop ------------------------------------------------------------------------

    def _retrying(self, url, attempt):
        """attempt() until it returns; _Transient failures are retried with backoff, then become one RemoteError."""
        tries = self.retries + 1
        for number in range(tries):
            try:
                return attempt()
            except _Transient as exc:
                last = exc
            if number < self.retries:
                time.sleep(min(self.backoff * 2**number, self.max_backoff))
        raise RemoteError(_final_message(url, last, tries))

    def _send(self, method, url, headers=None, stream=False):
        """One request; a response with a retryable status, a refused or dropped connection or a timeout is _Transient."""
        requests = _requests()
        try:
            response = self.session.request(
                method, url, headers=headers or {}, timeout=self.timeout, stream=stream, allow_redirects=not self.same_host_only
            )
            if self.same_host_only:
                response = self._follow_same_host(response, method, url, headers, stream)
        except requests.ConnectTimeout as exc:
            raise _Transient(f"no connection within {_timeouts(self.timeout)[0]:g} s", "timeout") from exc
        except requests.Timeout as exc:
            raise _Transient(f"no answer within {_timeouts(self.timeout)[1]:g} s", "timeout") from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Transient(_connection_reason(exc), "connect") from exc
        except requests.RequestException as exc:
            raise GeoEmbedError(f"Cannot read {url}: {_first_line(exc)}; check the address.") from None
        if response.status_code in RETRY_STATUS:
            response.close()
            raise _Transient(f"HTTP {response.status_code}", "status")
        return response

    def _follow_same_host(self, response, method, url, headers, stream):
        """Follow redirects by hand while they stay on url's scheme, host and port; refuse one that leaves."""
        for _ in range(MAX_REDIRECTS):
            if not response.is_redirect:
                return response
            target = urljoin(response.url or url, response.headers["Location"])
            response.close()
            if not same_origin(url, target):
                raise RemoteError(
                    f"{url} redirects to another host ({shown(origin_of(target))}); GeoEmbed reads a mirror only from "
                    f"its own host: {HOW_TO_ALLOW}."
                )
            method = "GET" if response.status_code == 303 else method
            response = self.session.request(
                method, target, headers=headers or {}, timeout=self.timeout, stream=stream, allow_redirects=False
            )
        if response.is_redirect:
            response.close()
            raise RemoteError(f"{url} redirects more than {MAX_REDIRECTS} times; check the address.")
        return response

    def request(self, method, url, headers=None, stream=False):
        """A response whose status is not retryable (any 2xx, 3xx or 4xx but 429); the caller closes it."""
        return self._retrying(url, lambda: self._send(method, url, headers, stream))

    # --- what GeoEmbed asks of a server ----------------------------------------------------------

    def exists(self, url):
        """True for 2xx, False for 404/403/410; other failures raise one-line errors."""
        response = self.request("HEAD", url)
        response.close()
        if response.status_code in (405, 501):  # HEAD not allowed: ask for one byte instead
            response = self.request("GET", url, headers={"Range": "bytes=0-0"}, stream=True)
            response.close()
        if response.ok:
            return True
        if response.status_code in (403, 404, 410):
            return False
        raise RemoteError(f"Cannot read {url} (HTTP {response.status_code}); check the address.")

    def probe(self, url):
        """RangeInfo from a `Range: bytes=0-0` GET whose body is never read past a byte (a server that ignores
        Range may answer with the whole file: the connection is closed after the headers)."""
        headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
        response = self.request("GET", url, headers=headers, stream=True)
        with response:
            check_status(response, url)
            etag = response.headers.get("ETag")
            if response.status_code == 206:
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                return RangeInfo(url, int(total) if total.isdigit() else None, True, etag)
            length = response.headers.get("Content-Length")
            return RangeInfo(url, int(length) if length and length.isdigit() else None, False, etag)

    def read_range(self, url, start, length):
        """(bytes, total size) of `length` bytes from `start` with one Range request; a short body is retried like a
        download, and a server that ignores Range (200) is refused in one line, never read whole."""
        return self._retrying(url, lambda: self._range_once(url, start, length))

    def _range_once(self, url, start, length):
        headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
        response = self._send("GET", url, headers, stream=True)
        with response:
            check_status(response, url)
            if response.status_code != 206:
                raise RemoteError(f"The server of {url} ignores HTTP Range requests; use a server that supports them.")
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            declared = _int_header(response, "Content-Length")
            if declared is not None and declared != length:  # a range past the end, or a server that lies
                raise _Transient(f"{declared} bytes announced for a range of {length}", "short")
            try:
                data = response.raw.read(length + 1, decode_content=False)
            except Exception as exc:  # noqa: BLE001 - urllib3 and http.client errors of a body cut short
                raise _Transient(f"connection dropped mid-range ({_first_line(exc)})", "short") from exc
            if len(data) != length:
                raise _Transient(f"{len(data)} of {length} bytes of a range", "short")
            return data, int(total) if total.isdigit() else None

    def download(self, url, dest, headers=None, check=None, max_size=None):
        """Stream url into dest atomically (unique temp name beside dest, then os.replace).

        The body must match its Content-Length and any checksum header, else the download is tried
        again; check(tmp_path) -> reason or None judges the content before it replaces dest (a bad
        kind of file is not retried). Returns the response headers, or None for 304 Not Modified
        (dest untouched).
        """
        limit = max_download_bytes() if max_size is None else max_size
        request_headers = {"Accept-Encoding": "identity", **(headers or {})}
        return self._retrying(url, lambda: self._download_once(url, dest, request_headers, check, limit))

    def _download_once(self, url, dest, headers, check, limit):
        requests = _requests()
        response = self._send("GET", url, headers, stream=True)
        with response:
            if response.status_code == 304:
                return None
            check_status(response, url)
            expected = _int_header(response, "Content-Length")
            if expected is not None and expected > limit:
                raise RemoteError(
                    f"{url} is {expected / MIB:.0f} MiB, more than the {limit / MIB:.0f} MiB GeoEmbed downloads whole; "
                    f"check SOURCE (or raise {MAX_DOWNLOAD_ENV})."
                )
            encoded = bool(response.headers.get("Content-Encoding"))  # decoded bytes may outnumber the declared ones
            declared = expected if expected is not None and not encoded else None
            digests = _expected_digests(response.headers)
            md5 = hashlib.md5(usedforsecurity=False)
            with atomic_file(dest) as tmp:
                size = 0
                try:
                    with open(tmp, "wb") as out:
                        for chunk in response.iter_content(CHUNK):
                            out.write(chunk)
                            md5.update(chunk)
                            size += len(chunk)
                            if declared is not None and size > declared:
                                raise RemoteError(
                                    f"{url} sent more than the {declared} bytes its server declared; the server is "
                                    "faulty: check SOURCE."
                                )
                            if size > limit:
                                raise RemoteError(
                                    f"{url} is larger than the {limit / MIB:.0f} MiB GeoEmbed downloads whole (the server "
                                    f"did not say its size or kept sending); check SOURCE (or raise {MAX_DOWNLOAD_ENV})."
                                )
                except requests.Timeout as exc:
                    raise _Transient(_stalled(size, self.timeout), "timeout") from exc
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                    if "timed out" in str(exc):  # requests reports a read timeout mid-body as a ConnectionError
                        raise _Transient(_stalled(size, self.timeout), "timeout") from exc
                    raise _Transient(f"connection dropped after {size} of {expected or '?'} bytes", "short") from exc
                if expected is not None and size != expected and not response.headers.get("Content-Encoding"):
                    raise _Transient(f"{size} of {expected} bytes", "short")
                if "md5" in digests and digests["md5"] != md5.digest():
                    raise _Transient("the body does not match its MD5 checksum header", "checksum")
                reason = check(tmp) if check else None
                if reason:
                    raise GeoEmbedError(f"{url} {reason}; check SOURCE.")
            return dict(response.headers)


def _stalled(size, timeout):
    return f"the server stalled: no byte for {_timeouts(timeout)[1]:g} s after {size} bytes"


def default_timeout():
    """(connect, read) seconds: the read timeout is the stall time of limits.http_timeout_s()."""
    stall = http_timeout_s()
    return (min(CONNECT_TIMEOUT_S, stall), stall)


def check_status(response, url):
    """Raise the one-line error of a final 4xx/other non-2xx answer (retryable ones never get here)."""
    code = response.status_code
    if 200 <= code < 300:
        return
    if code in (404, 410):
        raise RemoteError(f"Not found (HTTP {code}): {url}; check SOURCE (the address, year and file name).")
    if code in (401, 403):
        raise RemoteError(f"Access denied (HTTP {code}): {url}; check SOURCE or that the file is public.")
    raise RemoteError(f"Cannot read {url} (HTTP {code}); check the address.")


def _final_message(url, failure, tries):
    if failure.kind == "status":
        return f"Cannot read {url}: the server answered {failure} to all {tries} tries; try again later."
    if failure.kind == "short":
        return f"Download of {url} was cut short ({failure}) on all {tries} tries; check your network and try again."
    if failure.kind == "checksum":
        return f"Download of {url} was corrupted ({failure}) on all {tries} tries; check your network and try again."
    return f"Cannot reach {url} ({failure}, {tries} tries); check the address and your network."


def _connection_reason(exc):
    text = str(exc)
    for marker, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("reset by peer", "connection reset"),
        ("RemoteDisconnected", "connection closed by the server"),
        ("IncompleteRead", "connection dropped mid-body"),
    ):
        if marker in text:
            return reason
    return type(exc).__name__


def _timeouts(timeout):
    """(connect, read) seconds of a requests timeout value."""
    return tuple(timeout) if isinstance(timeout, tuple) else (timeout, timeout)


def _first_line(exc):
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _int_header(response, name):
    value = response.headers.get(name)
    return int(value) if value and value.strip().isdigit() else None


def _expected_digests(headers):
    """{'md5': bytes} from Content-MD5 or Google's x-goog-hash (both base64), when the server sends one."""
    candidates = [headers.get("Content-MD5")]
    for part in (headers.get("x-goog-hash") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "md5":
            candidates.append(value)
    for value in candidates:
        if not value:
            continue
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            continue
        if len(digest) == 16:
            return {"md5": digest}
    return {}
