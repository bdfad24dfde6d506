"""GDAL access to local and remote rasters, with one-line errors instead of silent None returns.

Remote rasters: range_check decides first (one small Range request) whether /vsicurl/ can read the URL
in parts. GDAL itself retries HTTP 429/5xx and timeouts (GDAL_HTTP_MAX_RETRY, GDAL_HTTP_RETRY_DELAY);
a connection dropped mid-response is not retried by GDAL, so a failed open or block read of a URL is
tried again here (after clearing GDAL's cache of that URL, which may hold the cut-short bytes).

GDAL's Python bindings return None on failure unless something in the process called gdal.UseExceptions()
(QGIS 3.44's Processing plugin does, and GDAL 4 will by default); then they raise RuntimeError, and GDAL 3.7+
puts all its messages into it, over several lines. Every GDAL call here goes through gdal_call(), which gives the
same one-line errors either way.
"""

import math
import os
import re
import time
from contextlib import contextmanager, nullcontext

import numpy as np
from osgeo import gdal, osr

from ..errors import GeoEmbedError, RemoteError
from ..limits import HTTP_TIMEOUT_ENV, check_raster_header, check_read, http_timeout_s
from ..remote.locations import basename, is_url
from ..remote.range_check import raster_location

OPEN_FLAGS = gdal.OF_RASTER | gdal.OF_READONLY | gdal.OF_VERBOSE_ERROR
OPEN_RETRIES = 2
READ_RETRIES = 2
RETRY_BACKOFF_S = 1.0  # doubled on each further try

# Remote rasters are read with HTTP range requests; these keep GDAL from probing sidecar files
# (.aux.xml, .ovr, directory listings) and bound its retries and waits: a request is given up when fewer than
# LOW_SPEED_LIMIT bytes/s arrive for LOW_SPEED_TIME seconds (a stalled server) or after TIMEOUT seconds in all.
# GEOEMBED_HTTP_TIMEOUT_S sets the stall time (TIMEOUT is twice it). The same GDAL variables set in the
# environment win (e.g. GDAL_HTTP_MAX_RETRY=10 on a very flaky link).
_HTTP_CODE = re.compile(r"(?:response_code=|HTTP error code: ?)(\d+)")

REMOTE_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.vrt",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_LOW_SPEED_TIME": "30",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_USERAGENT": "GeoEmbed (QGIS plugin)",
}


def gdal_path(location):
    return "/vsicurl/" + location if is_url(location) else location


def _remote(path):
    return path.startswith("/vsicurl/")


@contextmanager
def gdal_errors(http_warnings=False):
    """Collect GDAL error messages (without touching the process-wide UseExceptions setting).

    http_warnings: also collect GDAL's "HTTP error code: N ... Retrying" warnings, which name the
    HTTP status that a later, vaguer failure (e.g. "TIFFReadEncodedTile() failed") comes from.
    """
    messages = []

    def handler(err_class, _err_no, message):
        if err_class >= gdal.CE_Failure or (http_warnings and _HTTP_CODE.search(str(message))):
            messages.append(" ".join(str(message).split()))

    gdal.PushErrorHandler(handler)
    try:
        yield messages
    finally:
        gdal.PopErrorHandler()


CAUSE_PREFIX = "May be caused by: "


def exception_messages(error):
    """GDAL's messages in a RuntimeError it raised, first one first, each on one line.

    GDAL 3.7+ raises "last message\nMay be caused by: earlier\nMay be caused by: first" (the order is reversed
    here to match what an error handler collects); older GDAL raises the last message only.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line[len(CAUSE_PREFIX) :] if line.startswith(CAUSE_PREFIX) else line for line in lines]
    return [" ".join(line.split()) for line in reversed(lines)]


def gdal_call(function, *args, http_warnings=False, **kwargs):
    """function(*args, **kwargs) -> (result, messages), the same whether GDAL raises exceptions or not.

    result is None when GDAL failed (it returned None or raised); messages are GDAL's, one line each, first one
    first (see gdal_errors). With exceptions on, GDAL 3.7+ sends its failures to the exception rather than to the
    pushed handler, so the messages come from both.
    """
    with gdal_errors(http_warnings) as messages:
        try:
            result = function(*args, **kwargs)
        except RuntimeError as error:
            messages.extend(message for message in exception_messages(error) if message not in messages)
            result = None
    return result, messages


def remote_options():
    """Thread-local GDAL options for HTTP range reads (Processing runs algorithms in worker threads); the same
    variables set in the environment win."""
    options = {**REMOTE_OPTIONS, **_timeout_options()}
    return thread_options({key: value for key, value in options.items() if key not in os.environ})


@contextmanager
def thread_options(options):
    """GDAL config options for this thread only, restored afterwards."""
    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
    for key, value in options.items():
        gdal.SetThreadLocalConfigOption(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)


def _timeout_options():
    """GDAL's HTTP waits from GEOEMBED_HTTP_TIMEOUT_S, when it is set (else REMOTE_OPTIONS' defaults)."""
    if not os.environ.get(HTTP_TIMEOUT_ENV, "").strip():
        return {}
    stall = http_timeout_s()
    return {
        "GDAL_HTTP_TIMEOUT": str(max(1, math.ceil(2 * stall))),
        "GDAL_HTTP_LOW_SPEED_TIME": str(max(1, math.ceil(stall))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, math.ceil(min(stall, 10)))),
    }


def open_raster(location, client=None):
    """Open a raster read-only; raise GeoEmbedError naming the file and GDAL's reason (RemoteError for URLs)."""
    path = raster_location(location, client) if is_url(location) else location
    for attempt in range(OPEN_RETRIES + 1 if _remote(path) else 1):
        if attempt:
            _before_retry(path, attempt)
        # Remote options only for URLs: locally, EMPTY_DIR would hide the .aux.xml sidecar (class names, statistics).
        with remote_options() if _remote(path) else nullcontext():
            dataset, messages = gdal_call(gdal.OpenEx, path, OPEN_FLAGS, http_warnings=True)
        if dataset is not None:
            check_header(dataset, location)
            return dataset
        if any("not recognized as" in message for message in messages):
            break  # a file of another kind: another try would say the same
    reason = _reason(messages, path) if messages else "not a raster GDAL can read"
    error = RemoteError if is_url(location) else GeoEmbedError  # a URL GDAL cannot open is a remote problem
    raise error(f"Cannot open raster {location}: {reason}.")


def check_header(dataset, location):
    """Refuse (limits.ImplausibleFile) a raster whose stated size, band count or block size no embedding has, before
    anything is read: GDAL decompresses a whole block to read one pixel, so a huge block is a decompression bomb."""
    bands = dataset.RasterCount
    band = dataset.GetRasterBand(1) if bands else None
    item_bytes = max(1, gdal.GetDataTypeSize(band.DataType) // 8) if band is not None else 1
    block = tuple(band.GetBlockSize()) if band is not None else None
    interleave = dataset.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") or "PIXEL"
    check_raster_header(
        basename(location), dataset.RasterXSize, dataset.RasterYSize, bands, item_bytes, block, interleave != "BAND"
    )


def _before_retry(path, attempt):
    """Wait, and forget what GDAL cached of a remote file (a dropped response may have left a short block)."""
    time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
    gdal.VSICurlPartialClearCache(path)


def _reason(messages, path=None):
    """The most telling GDAL message, one line: an HTTP status when there is one, else the last message
    (without the file name GDAL puts in front, which the caller's message already has)."""
    for message in messages:
        match = _HTTP_CODE.search(message)
        if match:
            code = int(match.group(1))
            return f"HTTP {code}" if code else "no answer from the server (timeout or dropped connection)"
    message = messages[-1]
    for name in (path, os.path.basename(path or "")):  # GDAL 3.13 names the file without its folder
        if name and message.startswith(name):
            message = message[len(name) :].lstrip(":, ")
            break
    return message.rstrip(".")


def is_signed_byte(dataset):
    """GDAL < 3.7 stores int8 as Byte + PIXELTYPE=SIGNEDBYTE; 3.7+ has GDT_Int8 (14)."""
    band = dataset.GetRasterBand(1)
    if band.DataType == getattr(gdal, "GDT_Int8", 14):
        return True
    return band.DataType == gdal.GDT_Byte and band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE"


def read_window(dataset, location, col, row, width, height, **options):
    """All bands of a pixel window as (bands, height, width), in the raw orientation of the file.

    options go to ReadAsArray (buf_xsize, buf_ysize and resample_alg read the window decimated). A window whose array
    would not fit in memory is refused before GDAL allocates it."""
    path = dataset.GetDescription()
    bands = dataset.RasterCount
    item_bytes = max(1, gdal.GetDataTypeSize(dataset.GetRasterBand(1).DataType) // 8) if bands else 1
    out_width, out_height = options.get("buf_xsize") or width, options.get("buf_ysize") or height
    check_read(basename(location), out_width, out_height, bands, item_bytes)
    for attempt in range(READ_RETRIES + 1 if _remote(path) else 1):
        if attempt:
            _before_retry(path, attempt)
        with remote_options():
            window = (int(col), int(row), int(width), int(height))
            array, messages = gdal_call(dataset.ReadAsArray, *window, http_warnings=True, **options)
        if array is not None:
            return array[np.newaxis] if array.ndim == 2 else array
    reason = _reason(messages, path) if messages else "read failed"
    if _remote(path):
        tries = f"{READ_RETRIES + 1} tries" if READ_RETRIES else "1 try"
        raise RemoteError(f"Cannot read {location}: {reason} ({tries}); check your network and try again.")
    raise GeoEmbedError(f"Cannot read {location}: {reason}; check the file or your connection.")


def crs_string(dataset):
    """'EPSG:n' when the dataset's CRS has an EPSG code, else its WKT."""
    srs = dataset.GetSpatialRef()
    if srs is None:
        return None
    srs = srs.Clone()
    gdal_call(srs.AutoIdentifyEPSG)  # fails (raises, with exceptions on) for a CRS without an EPSG code: fine
    code = srs.GetAuthorityCode(None)
    if srs.GetAuthorityName(None) == "EPSG" and code:
        return f"EPSG:{code}"
    return srs.ExportToWkt()


def crs_wkt(crs):
    """WKT (GDAL's flavour) for any CRS string pyproj or GDAL understands."""
    srs = osr.SpatialReference()
    status, _ = gdal_call(srs.SetFromUserInput, crs)
    if status != 0:
        raise GeoEmbedError(f"Unknown CRS '{crs}'; give an EPSG code such as EPSG:32631.")
    return srs.ExportToWkt()
