"""Embedding GeoTIFFs written by GeoEmbed (or any north-up Float32 embedding raster) as EmbeddingRasters.

Bands with a scale or offset (GDAL's, e.g. geoembed:load OUTPUT_TYPE=int16) are read as the values they stand for,
as QGIS and GDAL show them; nodata is told from the stored numbers."""

import json
import math

import numpy as np
from osgeo import gdal

from ..errors import GeoEmbedError
from ..model import EmbeddingBlock, EmbeddingRaster, Provenance
from .gdal_io import crs_string, open_raster, read_window
from .grid import Grid
from .scaled_int16 import is_term_scale, term_values


class EmbeddingTiff(EmbeddingRaster):
    """A north-up embedding raster on disk, read block by block."""

    def __init__(self, location):
        self.location = location
        self._dataset = open_raster(location)
        gt = self._dataset.GetGeoTransform()
        if gt[2] != 0 or gt[4] != 0 or gt[5] >= 0:
            raise GeoEmbedError(f"{location} is not north-up; load it with geoembed:load first.")
        crs = crs_string(self._dataset)
        if crs is None:
            raise GeoEmbedError(f"{location} has no CRS; load it with geoembed:load first.")
        self.grid = Grid(crs, gt[0], gt[3], gt[1], -gt[5], self._dataset.RasterXSize, self._dataset.RasterYSize)
        bands = [self._dataset.GetRasterBand(i + 1) for i in range(self._dataset.RasterCount)]
        self.band_names = tuple(band.GetDescription() or f"B{i + 1:02d}" for i, band in enumerate(bands))
        self.nodata = bands[0].GetNoDataValue()
        self.scale, self.offset = bands[0].GetScale() or 1.0, bands[0].GetOffset() or 0.0
        meta = self._dataset.GetMetadata() or {}
        year = meta.get("GEOEMBED_YEAR")
        self.provenance = Provenance(
            product=meta.get("GEOEMBED_PRODUCT", "unknown"),
            product_name=meta.get("GEOEMBED_PRODUCT_NAME", ""),
            year=int(year) if year else None,
            sources=json.loads(meta.get("GEOEMBED_SOURCES", "[]")),
            dequantization=meta.get("GEOEMBED_DEQUANTIZATION", ""),
            licence=meta.get("GEOEMBED_LICENCE", ""),
            attribution=meta.get("GEOEMBED_ATTRIBUTION", ""),
            product_version=meta.get("GEOEMBED_PRODUCT_VERSION", ""),
        )

    def _block(self, stored):
        nodata = None
        if self.nodata is not None and not math.isnan(self.nodata):
            nodata = (stored == self.nodata).any(axis=0)
        values = self._values(stored)
        valid = np.isfinite(values).all(axis=0)  # NaN or infinite components are never a vector
        if nodata is not None:
            valid &= ~nodata
        return EmbeddingBlock(values, valid)

    def _values(self, stored):
        """Float32 values of stored numbers: scale and offset applied as GDAL does (in double, then float32)."""
        if self.scale == 1.0 and self.offset == 0.0:
            return stored.astype(np.float32, copy=False)
        if is_term_scale(self.scale, self.offset) and stored.dtype == np.int16:
            return term_values(stored)  # exact, and without float64 temporaries
        values = stored * self.scale  # float64
        values += self.offset
        return values.astype(np.float32)

    def read(self, window):
        return self._block(read_window(self._dataset, self.location, window.col, window.row, window.width, window.height))

    def read_decimated(self, max_size):
        """The whole raster at most max_size pixels on its longer side (nearest), and the coarse grid."""
        scale = max(1.0, max(self.grid.width, self.grid.height) / max_size)
        width, height = max(1, round(self.grid.width / scale)), max(1, round(self.grid.height / scale))
        values = read_window(
            self._dataset,
            self.location,
            0,
            0,
            self.grid.width,
            self.grid.height,
            buf_xsize=width,
            buf_ysize=height,
            resample_alg=gdal.GRIORA_NearestNeighbour,
        )
        grid = Grid(
            self.grid.crs,
            self.grid.x0,
            self.grid.y0,
            self.grid.res_x * self.grid.width / width,
            self.grid.res_y * self.grid.height / height,
            width,
            height,
        )
        return self._block(values), grid

    def close(self):
        self._dataset = None
