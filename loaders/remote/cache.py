"""The on-disk cache of small remote files (indexes, manifests, small rasters from servers without Range support).

An entry is `files/{key}-{name}` plus `files/{key}.json` (url, size, sha256, ETag, fetch time). Every
use checks the file against its record (size, then SHA-256 of the content) and the caller's format check;
a corrupt entry is logged, deleted and fetched again. Downloads go through HttpClient (size and checksum
headers verified) into a unique temp file beside the entry, renamed into place only when complete. A
per-entry FileLock makes concurrent runs (threads or processes) fetch an entry once: the others wait and
reuse it.
"""

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

from ..errors import RemoteError
from .filelock import FileLock
from .http_client import HttpClient
from .locations import atomic_file, basename, default_cache_dir

CACHE_MAX_AGE_S = 24 * 3600


class CacheEntry:
    """Where one URL's cached copy lives, and what state it is in."""

    def __init__(self, url, cache_dir=None):
        self.url = url
        folder = Path(cache_dir or default_cache_dir()) / "files"
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        self.data = folder / f"{key}-{_safe_name(basename(url))}"
        self.meta_path = folder / f"{key}.json"
        self.lock_path = folder / f"{key}.lock"

    def read_meta(self):
        try:
            with open(self.meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def problem(self, meta, validate):
        """None when the data file matches its record and validate(); else a short reason."""
        if meta is None:
            return "no record of it" if self.data.exists() else "missing"
        try:
            size = self.data.stat().st_size
        except OSError:
            return "missing"
        if size != meta.get("size"):
            return f"{size} bytes instead of {meta.get('size')}"
        if not meta.get("sha256"):
            return "no checksum recorded"
        if meta.get("sha256") != file_sha256(self.data):
            return "its content changed since it was downloaded"
        if validate is not None and not validate(self.data):
            return "not a valid file of its kind"
        return None

    def write_meta(self, meta):
        with atomic_file(self.meta_path) as tmp, open(tmp, "w", encoding="utf-8") as out:
            json.dump(meta, out)

    def remove(self):
        for path in (self.meta_path, self.data):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def remove_orphans(self):
        """Temp files of this entry left by a run that was killed mid-download (call while holding the lock)."""
        prefixes = (f".{self.data.name}.", f".{self.meta_path.name}.")
        if not self.data.parent.is_dir():
            return
        for path in self.data.parent.iterdir():
            if path.name.startswith(prefixes) and path.name.endswith(".partial"):
                with contextlib.suppress(OSError):
                    os.remove(path)


def cached_copy(url, validate=None, client=None, cache_dir=None, max_age=CACHE_MAX_AGE_S, log=None, max_size=None):
    """Local path of a verified cached copy of a remote file, fetched when missing, corrupt or older than max_age.

    validate(path) -> bool is the format check (e.g. Parquet magic and footer); content failing it is
    never cached. An expired entry is revalidated with its ETag (304 keeps it); when the server cannot be
    reached, an expired but intact entry is used with a warning.
    """
    entry = CacheEntry(url, cache_dir)
    meta = entry.read_meta()
    if entry.problem(meta, validate) is None and _fresh(meta, max_age):
        return entry.data  # the common case: no lock, no request
    with FileLock(entry.lock_path):
        # Another run may have fetched (or damaged) the entry while this one waited for the lock.
        meta = entry.read_meta()
        problem = entry.problem(meta, validate)
        if problem is None and _fresh(meta, max_age):
            return entry.data
        entry.remove_orphans()
        if problem not in (None, "missing"):
            _warn(log, f"The cached copy of {url} is corrupt ({problem}); fetching it again.")
            entry.remove()
        return _fetch(entry, meta if problem is None else None, validate, client or HttpClient(), log, max_size)


def _fetch(entry, meta, validate, client, log, max_size):
    headers = {"If-None-Match": meta["etag"]} if meta and meta.get("etag") else {}

    def check(path):
        return None if validate is None or validate(path) else "is not a valid file of the expected kind"

    try:
        response_headers = client.download(entry.url, entry.data, headers=headers, check=check, max_size=max_size)
    except RemoteError as exc:
        if meta is None:
            raise
        _warn(log, f"Using the cached copy of {entry.url} ({_age(meta)} old): {exc}")
        return entry.data
    if response_headers is None:  # 304 Not Modified: the copy is current
        meta["fetched"] = time.time()
    else:
        meta = {
            "url": entry.url,
            "size": entry.data.stat().st_size,
            "sha256": file_sha256(entry.data),
            "etag": response_headers.get("ETag"),
            "fetched": time.time(),
        }
    entry.write_meta(meta)
    return entry.data


def file_sha256(path):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _fresh(meta, max_age):
    return time.time() - meta.get("fetched", 0) < max_age


def _age(meta):
    hours = (time.time() - meta.get("fetched", 0)) / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


def _safe_name(name):
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name.split("?", 1)[0])[:80] or "file"


def _warn(log, message):
    if log is not None:
        log.warning(message)
