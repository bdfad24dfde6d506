"""GDAL access to local and remote rasters, with one-line errors instead of silent None returns."""

from contextlib import contextmanager

import numpy as np
from osgeo import gdal, osr

from .errors import GeoEmbedError, RemoteError
from .remote import is_url

# Remote rasters are read with HTTP range requests; these keep GDAL from probing sidecar files
# (.aux.xml, .ovr, directory listings) and bound its retries.
REMOTE_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.vrt",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_USERAGENT": "GeoEmbed (QGIS plugin)",
}


def gdal_path(location):
    return "/vsicurl/" + location if is_url(location) else location


@contextmanager
def gdal_errors():
    """Collect GDAL error messages (without touching the process-wide UseExceptions setting)."""
    messages = []

    def handler(err_class, _err_no, message):
        if err_class >= gdal.CE_Failure:
            messages.append(" ".join(str(message).split()))

    gdal.PushErrorHandler(handler)
    try:
        yield messages
    finally:
        gdal.PopErrorHandler()


@contextmanager
def remote_options():
    """Thread-local GDAL options for HTTP range reads (Processing runs algorithms in worker threads)."""
    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in REMOTE_OPTIONS}
    for key, value in REMOTE_OPTIONS.items():
        gdal.SetThreadLocalConfigOption(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)


def open_raster(location):
    """Open a raster read-only; raise GeoEmbedError naming the file and GDAL's reason."""
    with remote_options(), gdal_errors() as messages:
        dataset = gdal.OpenEx(gdal_path(location), gdal.OF_RASTER | gdal.OF_READONLY | gdal.OF_VERBOSE_ERROR)
    if dataset is None:
        reason = messages[-1].rstrip(".") if messages else "not a raster GDAL can read"
        error = RemoteError if is_url(location) else GeoEmbedError  # a URL GDAL cannot open is a remote problem
        raise error(f"Cannot open raster {location}: {reason}.")
    return dataset


def is_signed_byte(dataset):
    """GDAL < 3.7 stores int8 as Byte + PIXELTYPE=SIGNEDBYTE; 3.7+ has GDT_Int8 (14)."""
    band = dataset.GetRasterBand(1)
    if band.DataType == getattr(gdal, "GDT_Int8", 14):
        return True
    return band.DataType == gdal.GDT_Byte and band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE"


def read_window(dataset, location, col, row, width, height):
    """All bands of a pixel window as (bands, height, width), in the raw orientation of the file."""
    with remote_options(), gdal_errors() as messages:
        array = dataset.ReadAsArray(int(col), int(row), int(width), int(height))
    if array is None:
        reason = messages[-1].rstrip(".") if messages else "read failed"
        raise GeoEmbedError(f"Cannot read {location}: {reason}; check the file or your connection.")
    if array.ndim == 2:
        array = array[np.newaxis]
    return array


def crs_string(dataset):
    """'EPSG:n' when the dataset's CRS has an EPSG code, else its WKT."""
    srs = dataset.GetSpatialRef()
    if srs is None:
        return None
    srs = srs.Clone()
    srs.AutoIdentifyEPSG()
    code = srs.GetAuthorityCode(None)
    if srs.GetAuthorityName(None) == "EPSG" and code:
        return f"EPSG:{code}"
    return srs.ExportToWkt()


def crs_wkt(crs):
    """WKT (GDAL's flavour) for any CRS string pyproj or GDAL understands."""
    srs = osr.SpatialReference()
    if srs.SetFromUserInput(crs) != 0:
        raise GeoEmbedError(f"Unknown CRS '{crs}'; give an EPSG code such as EPSG:32631.")
    return srs.ExportToWkt()
