"""One-band rasters (a similarity heatmap, a confidence raster, a class map from geoembed:classify or geoembed:cluster)
read block by block in their own data type, with their nodata mask and, for class maps, their class names and colours.
"""

import json
import math

import numpy as np
from osgeo import gdal

from ..errors import GeoEmbedError
from ..model import EmbeddingBlock, EmbeddingRaster, Provenance
from ..remote.locations import basename
from .gdal_io import crs_string, open_raster, read_window
from .grid import Grid

INTEGER_TYPES = (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32)


class SingleBandRaster(EmbeddingRaster):
    """Band 1 of a north-up raster. read(window) gives EmbeddingBlock(values (1, rows, cols) in the band's own data
    type, so class values stay exact; valid). band_count tells callers whether they were given a multi-band raster
    (e.g. embeddings) instead; class_names {value: name} and colours {value: (r, g, b)} come from the band's category
    names, GEOEMBED_CLASSES metadata (values 1..n) and colour table, where it has them. `what` names the parameter
    the raster was given as, in messages."""

    def __init__(self, location, what="INPUT"):
        self.location = location
        self.name = basename(location)
        self.what = what
        self._dataset = dataset = open_raster(location)  # local files with their .aux.xml (category names)
        gt = dataset.GetGeoTransform()
        if gt[2] != 0 or gt[4] != 0 or gt[5] >= 0:
            raise GeoEmbedError(f"{what} {self.name} is not north-up; warp it to a north-up grid first (e.g. gdalwarp).")
        crs = crs_string(dataset)
        if crs is None:
            raise GeoEmbedError(
                f"{what} {self.name} has no CRS; assign one first (e.g. Raster > Projections > Assign Projection)."
            )
        self.grid = Grid(crs, gt[0], gt[3], gt[1], -gt[5], dataset.RasterXSize, dataset.RasterYSize)
        self._band_count = dataset.RasterCount
        band = dataset.GetRasterBand(1)
        self.band_names = (band.GetDescription() or "B01",)
        self.data_type = band.DataType
        self.nodata = band.GetNoDataValue()
        meta = dataset.GetMetadata() or {}
        band.GetMetadata()  # GDAL 3.6's GeoTIFF driver reads the .aux.xml (category names) only once asked for metadata
        self.class_names = _class_names(band, meta.get("GEOEMBED_CLASSES"), self.nodata)
        self.colours = _colours(band, self.class_names)
        year = meta.get("GEOEMBED_YEAR", "")
        self.provenance = Provenance(
            product=meta.get("GEOEMBED_PRODUCT", "unknown"),
            product_name=meta.get("GEOEMBED_PRODUCT_NAME", ""),
            year=int(year) if year.isdigit() else None,
            sources=_sources(meta.get("GEOEMBED_SOURCES")),
            dequantization=meta.get("GEOEMBED_DEQUANTIZATION", ""),
            licence=meta.get("GEOEMBED_LICENCE", ""),
            attribution=meta.get("GEOEMBED_ATTRIBUTION", ""),
            product_version=meta.get("GEOEMBED_PRODUCT_VERSION", ""),
        )

    @property
    def band_count(self):
        return self._band_count

    @property
    def is_integer(self):
        return self.data_type in INTEGER_TYPES

    def read(self, window):
        values = read_window(self._dataset, self.location, window.col, window.row, window.width, window.height)[:1]
        if values.dtype.kind == "f":
            valid = np.isfinite(values[0])
        else:
            valid = np.ones(values.shape[1:], dtype=bool)
        if self.nodata is not None and not math.isnan(self.nodata):
            valid &= values[0] != self.nodata
        return EmbeddingBlock(values, valid)

    def close(self):
        self._dataset = None


def open_class_map(location, what="INPUT"):
    """A SingleBandRaster that is a class map (one band of whole numbers); anything else is refused in one line."""
    raster = SingleBandRaster(location, what)
    problem = None
    if raster.band_count != 1:
        problem = f"has {raster.band_count} bands; give a class map (one band)"
    elif not raster.is_integer:
        problem = f"has {gdal.GetDataTypeName(raster.data_type)} values; give a class map of whole numbers"
    if problem:
        raster.close()
        raise GeoEmbedError(f"{what} {raster.name} {problem}, e.g. from geoembed:classify.")
    return raster


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


def _colours(band, names):
    """{value: (r, g, b)} of the named classes that the band's colour table holds."""
    table = band.GetRasterColorTable()
    if table is None:
        return {}
    return {value: tuple(table.GetColorEntry(value)[:3]) for value in names if value < table.GetCount()}


def _sources(text):
    try:
        sources = json.loads(text or "[]")
    except ValueError:
        return []
    return sources if isinstance(sources, list) else []
