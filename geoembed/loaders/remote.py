"""Remote access: locations (local path or http(s) URL), small-file downloads and the on-disk cache.

Large rasters are never downloaded: GDAL reads them with HTTP range requests (see gdal_io.py).
Only small files (indexes) come through here, into a cache written atomically.
"""

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from .errors import GeoEmbedError, RemoteError

USER_AGENT = "GeoEmbed (QGIS plugin)"
TIMEOUT = (10, 60)  # connect, read (seconds)
RETRIES = 3
BACKOFF_S = 0.5
CACHE_MAX_AGE_S = 24 * 3600


def is_url(location):
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def join(base, *parts):
    """Join path parts onto a folder, for URLs and local paths alike."""
    if is_url(base):
        return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts)])
    return os.path.join(base, *parts)


def parent(location):
    if is_url(location):
        return location.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(location))


def basename(location):
    return location.rstrip("/").rsplit("/", 1)[-1] if is_url(location) else os.path.basename(location)


def default_cache_dir():
    """GEOEMBED_CACHE_DIR, else the XDG cache folder."""
    if os.environ.get("GEOEMBED_CACHE_DIR"):
        return Path(os.environ["GEOEMBED_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "geoembed"


def _requests():
    try:
        import requests
    except ImportError as exc:  # pragma: no cover - requests ships with QGIS
        raise GeoEmbedError("Reading http(s) sources needs the 'requests' package; install python3-requests.") from exc
    return requests


class HttpClient:
    """Small HTTP client with timeouts and bounded retries with backoff on 5xx and dropped connections."""

    def __init__(self, timeout=TIMEOUT, retries=RETRIES, backoff=BACKOFF_S):
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.session = _requests().Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def _request(self, method, url, **kwargs):
        requests = _requests()
        last = None
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}"
            else:
                if response.status_code < 500:
                    return response
                last = f"HTTP {response.status_code}"
                response.close()
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise RemoteError(f"Cannot reach {url} ({last} after {self.retries + 1} tries); check the address and your network.")

    def exists(self, url):
        """True for 2xx, False for 404/403/410; other failures raise."""
        response = self._request("HEAD", url, allow_redirects=True)
        response.close()
        if response.ok:
            return True
        if response.status_code in (403, 404, 410):
            return False
        raise RemoteError(f"Cannot read {url} (HTTP {response.status_code}); check the address.")

    def download(self, url, dest, headers=None):
        """Stream a URL into dest atomically; returns the response headers, or None for 304 Not Modified."""
        response = self._request("GET", url, stream=True, headers=headers or {})
        with response:
            if response.status_code == 304:
                return None
            if response.status_code == 404:
                raise GeoEmbedError(f"Not found (HTTP 404): {url}; check SOURCE.")
            if not response.ok:
                raise GeoEmbedError(f"Cannot read {url} (HTTP {response.status_code}); check the address.")
            expected = response.headers.get("Content-Length")
            with atomic_file(dest) as tmp:
                size = 0
                with open(tmp, "wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
                if expected is not None and int(expected) != size:
                    raise GeoEmbedError(f"Download of {url} was cut short ({size} of {expected} bytes); try again.")
            return dict(response.headers)


class atomic_file:  # noqa: N801 - used like open()
    """Context manager yielding a temporary path beside dest; renamed onto dest only on success."""

    def __init__(self, dest):
        self.dest = Path(dest)

    def __enter__(self):
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".partial", dir=self.dest.parent)
        os.close(fd)
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            with open(self.tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(self.tmp, self.dest)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)
        return False


def _umask():
    """The process umask, read without os.umask(), which would briefly change it for every thread."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def cached_copy(url, validate, client=None, cache_dir=None, max_age=CACHE_MAX_AGE_S, log=None):
    """Local path of a cached copy of a small remote file, refreshed when older than max_age.

    validate(path) -> bool rejects corrupt entries, which are fetched again.
    """
    cache_dir = Path(cache_dir or default_cache_dir()) / "files"
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    data_path = cache_dir / f"{key}-{basename(url)}"
    meta_path = cache_dir / f"{key}.json"
    meta = _read_meta(meta_path)
    usable = meta is not None and data_path.exists() and data_path.stat().st_size == meta.get("size") and validate(data_path)
    if usable and time.time() - meta.get("fetched", 0) < max_age:
        return data_path
    client = client or HttpClient()
    headers = {}
    if usable and meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    try:
        response_headers = client.download(url, data_path, headers=headers)
    except GeoEmbedError as exc:
        if usable:
            if log:
                log.warning(f"Using the cached copy of {url}: {exc}")
            return data_path
        raise
    if response_headers is not None:
        if not validate(data_path):
            os.remove(data_path)
            raise GeoEmbedError(f"{url} is not a valid file of the expected kind; check SOURCE.")
        meta = {"url": url, "size": data_path.stat().st_size, "etag": response_headers.get("ETag")}
    meta["fetched"] = time.time()
    with atomic_file(meta_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        json.dump(meta, out)
    return data_path


def _read_meta(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
