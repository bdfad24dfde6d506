"""A GeoTIFF tile of any pixel product: GDAL window reads turned into (values, valid) by a decode function."""

import os
import re

import numpy as np

from .errors import GeoEmbedError, RemoteError
from .gdal_io import crs_string, open_raster, read_window

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
        c, a, b, f, d, e = self.geotransform
        xs = [c + a * col + b * row for col in (0, self.width) for row in (0, self.height)]
        ys = [f + d * col + e * row for col in (0, self.width) for row in (0, self.height)]
        return (min(xs), min(ys), max(xs), max(ys))

    def read(self, col, row, width, height):
        return self._decode(read_window(self._dataset, self.location, col, row, width, height))

    def close(self):
        self._dataset = None


def open_geotiff_tile(location, decode, expect, product_name):
    """Open a GeoTIFF tile and check it with expect(dataset) -> problem text or None."""
    name = os.path.basename(location.rstrip("/"))
    try:
        dataset = open_raster(location)
    except RemoteError:
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


def nonzero_valid(raw):
    """Values as float32; a pixel whose vector is all zeros (or not finite) is nodata."""
    values = raw.astype(np.float32, copy=False)
    valid = (values != 0).any(axis=0) & np.isfinite(values).all(axis=0)
    return values, valid
