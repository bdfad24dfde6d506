"""AlphaEarth as float rasters: Earth Engine exports and Major TOM's copy, both already de-quantised.

Earth Engine exports (shared formats.md, "Added 2026-11"): GeoTIFFs of the image's float data type (Float32 or
Float64), bands described A00..A63, values already de-quantised. Large exports come as pieces
PREFIX-RRRRRRRRRR-CCCCCCCCCC.tif (10-digit pixel row and column offsets) sharing one CRS and grid. Masked pixels
are written as 0 (no noData option), as the noData value, or NaN.

Major TOM's copy (Hugging Face Major-TOM/Core-AlphaEarth-Embeddings, formats.md §1.3, as TorchGeo reads it):
Float64, 64 bands, north-up UTM with fractional origins, no noData, one file per Major TOM grid cell at paths like
2024/U/1/L/7/471U_587L.tif (the year is a folder of the path).

Raw AEF tiles are int8 and their names x{16}-{10 digits}-{10 digits}.tiff look like export pieces: the data type
tells them apart. A GeoTIFF written by geoembed:load is never taken for an export (it is already loaded).
"""

import dataclasses
import re

from osgeo import gdal

from .. import catalog
from ..raster.geotiff_tile import GeoTiffTile, embedding_decoder
from ..remote.locations import basename

BAND_NAMES = tuple(f"A{i:02d}" for i in range(64))
PIECE_NAME = re.compile(r"^(?P<prefix>.+)-(?P<row>\d{10})-(?P<col>\d{10})\.(?:tiff?|vrt)$", re.IGNORECASE)
CELL_NAME = re.compile(r"^\d+[UD]_\d+[LR]\.tiff?$", re.IGNORECASE)
YEAR_FOLDER = re.compile(r"^(?:19|20)\d\d$")
YEAR_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
FLOAT_TYPES = (gdal.GDT_Float32, gdal.GDT_Float64)

EXPORT = "Earth Engine export"
MAJOR_TOM = "Major TOM copy"
VALUES = "float values, already de-quantised"
NOTES = {
    EXPORT: f"{EXPORT} ({VALUES}): read as stored, never de-quantised again.",
    MAJOR_TOM: (
        f"{MAJOR_TOM} of AlphaEarth (Hugging Face Major-TOM/Core-AlphaEarth-Embeddings; {VALUES}): one file per Major TOM "
        "grid cell, mosaicked with nearest neighbour."
    ),
}
NODATA_NOTE = "All-zero vectors, NaN and the file's noData value are nodata."


def is_candidate_name(name):
    """Names an AlphaEarth float raster has inside a folder: an export piece or a Major TOM cell."""
    return bool(PIECE_NAME.match(name) or CELL_NAME.match(name))


def variant_of(location, dataset):
    """EXPORT or MAJOR_TOM when the raster holds AlphaEarth as floats, else None."""
    if dataset.RasterCount != 64 or (dataset.GetMetadata() or {}).get("GEOEMBED_PRODUCT"):
        return None
    bands = [dataset.GetRasterBand(i + 1) for i in range(64)]
    if any(band.DataType not in FLOAT_TYPES for band in bands):
        return None
    names = tuple(band.GetDescription() for band in bands)
    cell = CELL_NAME.match(basename(location))
    if names == BAND_NAMES:
        return MAJOR_TOM if cell else EXPORT
    # Major TOM's cells may carry no band names (TorchGeo's copy of the layout has none): the path tells.
    return MAJOR_TOM if cell and not any(names) else None


def year_of(location, variant):
    """The year of a float raster: a year in an export's file name (before the offsets), else the nearest year
    folder of its path (Major TOM: 2024/U/1/L/7/...), else None."""
    parts = location.replace("\\", "/").split("/")
    if variant == EXPORT:
        piece = PIECE_NAME.match(parts[-1])
        stem = piece["prefix"] if piece else parts[-1].rsplit(".", 1)[0]
        years = YEAR_IN_NAME.findall(stem)
        if years:
            return int(years[-1])
    for part in reversed(parts[:-1]):
        if YEAR_FOLDER.match(part):
            return int(part)
    return None


def float_tile(location, dataset, variant):
    """A tile (mosaic.py protocol) over one float raster: values as stored, nodata by embedding_decoder's rule."""
    tile = GeoTiffTile(location, dataset, embedding_decoder(dataset.GetRasterBand(1).GetNoDataValue()))
    tile.year = year_of(location, variant)
    tile.variant = variant
    tile.data_type = gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType)
    return tile


def describe(variant, data_type):
    """What PRODUCT=auto says it found."""
    what = "an Earth Engine export of AlphaEarth" if variant == EXPORT else "Major TOM's copy of AlphaEarth"
    return f"{what} (64 {data_type} bands, {VALUES})"


def product_for(variants):
    """The AEF catalog entry, named after the float variant(s) read, with no de-quantisation."""
    label = " and ".join(sorted(variants))
    return dataclasses.replace(
        catalog.AEF,
        name=f"{catalog.AEF.name}, {label} ({VALUES})",
        dequantization=f"none: {label} ({VALUES}); all-zero vectors, NaN/inf and the file's noData are nodata",
    )


def notes_for(variants):
    return [NOTES[variant] for variant in sorted(variants)] + [NODATA_NOTE]
