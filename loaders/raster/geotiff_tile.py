"""A GeoTIFF tile of any pixel product: GDAL window reads turned into (values, valid) by a decode function."""

import math
import os
import re

import numpy as np
from osgeo import gdal

from ..errors import GeoEmbedError, RemoteError
from ..limits import ImplausibleFile
from .gdal_io import crs_string, open_raster, read_window
from .grid import raster_bounds

YEAR_IN_PATH = re.compile(r"(?:^|[/_])(?P<year>(?:19|20)\d\d)(?:[/_.]|$)")


class GeoTiffTile:
    """Tile protocol (see mosaic.py) over a GDAL raster; decode(raw (bands, rows, cols)) -> (values, valid)."""

    def __init__(self, location, dataset, decode):
        self.location = location
        self._dataset = dataset
        self._decode = decode
        self.crs = crs_string(dataset)
        self.geotransform = tuple(dataset.GetGeoTransform())
        self.width, self.height = dataset.RasterXSize, dataset.RasterYSize
        self.band_count = dataset.RasterCount
        self.descriptions = [dataset.GetRasterBand(i + 1).GetDescription() for i in range(dataset.RasterCount)]
        years = [int(m["year"]) for m in YEAR_IN_PATH.finditer(location.replace("\\", "/"))]
        self.year = years[-1] if years else None  # the last year in the path is the file's own

    @property
    def bounds(self):
        return raster_bounds(self.geotransform, self.width, self.height)

    def read(self, col, row, width, height):
        return self._decode(read_window(self._dataset, self.location, col, row, width, height))

    def close(self):
        self._dataset = None


def open_geotiff_tile(location, decode, expect, product_name):
    """Open a GeoTIFF tile and check it with expect(dataset) -> problem text or None."""
    name = os.path.basename(location.rstrip("/"))
    try:
        dataset = open_raster(location)
    except (RemoteError, ImplausibleFile):
        raise
    except GeoEmbedError as exc:
        raise GeoEmbedError(f"{name} is not a {product_name} file ({exc}); check SOURCE or choose the right PRODUCT.") from exc
    problem = expect(dataset)
    if problem:
        raise GeoEmbedError(f"{name} is not a {product_name} file: {problem}; check SOURCE or choose the right PRODUCT.")
    tile = GeoTiffTile(location, dataset, decode)
    if tile.crs is None or tile.geotransform == (0.0, 1.0, 0.0, 0.0, 0.0, 1.0):
        raise GeoEmbedError(f"{name} has no georeferencing (CRS or geotransform); {product_name} files carry both.")
    return tile


def band_problem(dataset, count, data_type, at_least=False):
    """None when the dataset has count (or more) bands of data_type, else what it has instead."""
    band = dataset.GetRasterBand(1) if dataset.RasterCount else None
    enough = dataset.RasterCount >= count if at_least else dataset.RasterCount == count
    if band is not None and enough and band.DataType == data_type:
        return None
    found = gdal.GetDataTypeName(band.DataType) if band is not None else "no"
    wanted = f"{'at least ' if at_least else ''}{count} {gdal.GetDataTypeName(data_type)}"
    return f"expected {wanted} bands, found {dataset.RasterCount} {found} band(s)"


def nonzero_valid(raw):
    """Values as float32; a pixel whose vector is all zeros (or not finite) is nodata."""
    values = raw.astype(np.float32, copy=False)
    valid = (values != 0).any(axis=0) & np.isfinite(values).all(axis=0)
    return values, valid


def embedding_decoder(nodata=None, signed_byte=False):
    """decode(raw) for a raster whose bands are the components of its vectors, stored as they are.

    Values become float32 (never de-quantised). Nodata: a vector with a NaN or infinite component, an all-zero
    vector (never a real embedding) and the file's noData value: in any band, except 0, which is an ordinary
    component value and so marks nodata only when every band holds it. signed_byte: GDAL < 3.7 hands signed
    8-bit bands over as uint8 (Byte + PIXELTYPE=SIGNEDBYTE); they are read back as int8.
    """
    sentinel = nodata if nodata is not None and math.isfinite(nodata) and nodata != 0 else None

    def decode(raw):
        if signed_byte and raw.dtype == np.uint8:
            raw = raw.view(np.int8)
        values = raw.astype(np.float32, copy=False)
        valid = np.isfinite(values).all(axis=0) & (values != 0).any(axis=0)
        if sentinel is not None and _fits(raw.dtype, sentinel):
            valid &= ~(raw == raw.dtype.type(sentinel)).any(axis=0)
        return values, valid

    return decode


def _fits(dtype, value):
    """True when value is representable in dtype (a noData of -9999 cannot occur in a uint8 band)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return True
