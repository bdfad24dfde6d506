"""Single-band rasters (a similarity heatmap, a confidence raster, a class map) read block by block in their own
data type, with their nodata mask and, for class maps, their class names."""

import json
import math

import numpy as np
from osgeo import gdal

from ..errors import GeoEmbedError
from ..model import EmbeddingBlock, EmbeddingRaster, Provenance
from ..remote.locations import basename, is_url
from .gdal_io import OPEN_FLAGS, check_header, crs_string, gdal_call, open_raster, read_window
from .grid import Grid

INTEGER_TYPES = (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32)


class SingleBandRaster(EmbeddingRaster):
    """Band 1 of a north-up raster. read(window) gives EmbeddingBlock(values (rows, cols) in the band's own data type,
    valid); band_count tells callers whether they were given a multi-band raster (e.g. embeddings) instead."""

    def __init__(self, location):
        self.location = location
        self.name = basename(location)
        self._dataset = _open(location)
        dataset = self._dataset
        gt = dataset.GetGeoTransform()
        if gt[2] != 0 or gt[4] != 0 or gt[5] >= 0:
            raise GeoEmbedError(f"{self.name} is not north-up; warp it to a north-up grid first (e.g. gdalwarp).")
        crs = crs_string(dataset)
        if crs is None:
            raise GeoEmbedError(f"{self.name} has no CRS; assign one first (e.g. Raster > Projections > Assign Projection).")
        self.grid = Grid(crs, gt[0], gt[3], gt[1], -gt[5], dataset.RasterXSize, dataset.RasterYSize)
        self._band_count = dataset.RasterCount
        band = dataset.GetRasterBand(1)
        self.band_names = (band.GetDescription() or "B01",)
        self.data_type = band.DataType
        self.nodata = band.GetNoDataValue()
        meta = dataset.GetMetadata() or {}
        band.GetMetadata()  # GDAL 3.6's GeoTIFF driver reads the .aux.xml (category names) only once asked for metadata
        self.class_names = _class_names(band, meta.get("GEOEMBED_CLASSES"), self.nodata)
        year = meta.get("GEOEMBED_YEAR", "")
        self.provenance = Provenance(
            product=meta.get("GEOEMBED_PRODUCT", "unknown"),
            product_name=meta.get("GEOEMBED_PRODUCT_NAME", ""),
            year=int(year) if year.isdigit() else None,
            sources=_sources(meta.get("GEOEMBED_SOURCES")),
            licence=meta.get("GEOEMBED_LICENCE", ""),
            attribution=meta.get("GEOEMBED_ATTRIBUTION", ""),
        )

    @property
    def band_count(self):
        return self._band_count

    @property
    def is_integer(self):
        return self.data_type in INTEGER_TYPES

    def read(self, window):
        values = read_window(self._dataset, self.location, window.col, window.row, window.width, window.height)[0]
        if values.dtype.kind == "f":
            valid = np.isfinite(values)
        else:
            valid = np.ones(values.shape, dtype=bool)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= values != self.nodata
        return EmbeddingBlock(values, valid)

    def close(self):
        self._dataset = None


def _open(location):
    """open_raster() for URLs; local files are opened here with their sidecar files (open_raster's remote options
    keep GDAL from listing folders, so it would not see the .aux.xml that holds a class map's category names)."""
    if is_url(location):
        return open_raster(location)
    dataset, messages = gdal_call(gdal.OpenEx, location, OPEN_FLAGS)
    if dataset is None:
        reason = messages[-1].rstrip(".") if messages else "not a raster GDAL can read"
        raise GeoEmbedError(f"Cannot open raster {location}: {reason}.")
    check_header(dataset, location)
    return dataset


def _class_names(band, geoembed_classes, nodata):
    """{value: name}: the band's category names (the nodata entry and empty names left out), else GEOEMBED_CLASSES
    as values 1..n (how geoembed:train writes class maps)."""
    names = {}
    for value, name in enumerate(band.GetRasterCategoryNames() or []):
        if name and (nodata is None or value != nodata):
            names[value] = name
    if not names and geoembed_classes:
        names = {value: name for value, name in enumerate(geoembed_classes.split("|"), start=1)}
    return names


def _sources(text):
    try:
        sources = json.loads(text or "[]")
    except ValueError:
        return []
    return sources if isinstance(sources, list) else []
