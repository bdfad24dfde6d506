"""How GDAL may read a remote raster: with HTTP range requests, or from a cached whole copy, or not at all.

Before GDAL opens a URL, one `Range: bytes=0-0` request asks the server whether it serves byte ranges.
A server that answers 206 is read in place by /vsicurl/ (only the blocks an area needs). A server that
ignores Range answers 200 with the whole file: GDAL cannot read such a server, so a file up to
RANGE_REQUIRED_ABOVE is downloaded once into the cache and read from there, and a larger one is refused
with one line (never download gigabytes; a file of unknown size is cut off at that limit).

The probe is also where a mirror's redirects are checked (confinement.py): a client made with
same_host_only=True refuses, in one line, a redirect to another host before GDAL, which follows
redirects on its own, ever sees the URL.
"""

from ..errors import RemoteError
from .cache import cached_copy
from .http_client import MIB, HttpClient

RANGE_REQUIRED_ABOVE = 64 * MIB


def raster_location(url, client=None, cache_dir=None, log=None, validate=None):
    """'/vsicurl/' + url when the server serves ranges, else the path of a verified cached copy (small files)."""
    client = client or HttpClient()
    info = client.probe(url)
    if info.ranges:
        return "/vsicurl/" + url
    if info.size is not None and info.size > RANGE_REQUIRED_ABOVE:
        raise RemoteError(
            f"The server of {url} ignores HTTP Range requests and the file is {info.size / MIB:.0f} MiB; "
            f"GeoEmbed reads files over {RANGE_REQUIRED_ABOVE // MIB} MiB only in parts: "
            "use a server that supports Range requests, or download the file and give its local path."
        )
    if log is not None:
        log.info(f"The server of {url} ignores Range requests; downloading the whole (small) file once.")
    # A server that does not give the size is cut off at the limit by the download itself.
    return str(cached_copy(url, validate, client=client, cache_dir=cache_dir, log=log, max_size=RANGE_REQUIRED_ABOVE))
