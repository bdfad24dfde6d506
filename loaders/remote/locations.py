"""Locations (local path or http(s) URL), the cache folder, and files written atomically.

Remote access itself: http_client.py (the one HTTP client), cache.py (verified, locked cache of small
files), range_check.py (whether a remote raster may be read with GDAL's range requests), gdal_io.py.
"""

import os
import tempfile
from pathlib import Path


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
        try:
            if exc_type is None:
                with open(self.tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(self.tmp, self.dest)
        finally:
            if os.path.exists(self.tmp):  # failed, or the rename itself failed
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
