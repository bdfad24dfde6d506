"""Any other embedding raster: a multi-band raster GDAL opens, one band per dimension, used as it is stored.

SOURCE: one raster (GeoTIFF, VRT, an http(s) COG) or a folder of rasters that share their CRS and band count
(mosaicked). Float bands are embedding values; integer bands are raw values, written as they are (signed 8-bit
bands are read as signed whatever GDAL calls them). Nodata: all-zero vectors, NaN/inf and the file's noData
(geotiff_tile.embedding_decoder). Band names are the band descriptions (B01.. where a band has none).

PRODUCT=auto tries every specific product first and this one last (products.MODULES).
"""

import dataclasses
import math
import os
from pathlib import Path
from urllib.parse import urlparse

from osgeo import gdal

from .. import catalog
from ..errors import GeoEmbedError, RemoteError
from ..limits import ImplausibleFile
from ..raster.gdal_io import is_signed_byte, open_raster
from ..raster.geotiff_tile import GeoTiffTile, embedding_decoder
from ..raster.grid import metres_to_crs_units, same_crs
from ..raster.planning import build_mosaic, extent_lonlat, pick_year, tiles_under
from ..remote.locations import basename, is_url

PRODUCT = catalog.GENERIC
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt")
FLOAT_TYPES = (gdal.GDT_Float32, gdal.GDT_Float64)
COMPLEX_TYPES = tuple(getattr(gdal, name) for name in ("GDT_CInt16", "GDT_CInt32", "GDT_CFloat32", "GDT_CFloat64"))
WHAT = "a raster with one band per embedding dimension (GeoTIFF, VRT, an http(s) COG) or a folder of them"


def band_names(dataset):
    """Band descriptions, B01.. for bands without one."""
    return tuple(dataset.GetRasterBand(i + 1).GetDescription() or f"B{i + 1:02d}" for i in range(dataset.RasterCount))


def rasters_in(folder):
    """Raster files under a folder (recursively), sorted; a .vrt beside a same-named .tif is read from the .tif."""
    found = [
        p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith(".")
    ]
    stems = {p.with_suffix("") for p in found if p.suffix.lower() != ".vrt"}
    return sorted(str(p) for p in found if p.suffix.lower() != ".vrt" or p.with_suffix("") not in stems)


def _locations(source):
    if is_url(source):  # a raster's URL (a COG, a VRT); a folder cannot be listed over http
        return [source] if urlparse(source).path.lower().endswith(RASTER_SUFFIXES) else []
    if os.path.isfile(source):
        return [source]
    if os.path.isdir(source):
        return rasters_in(source)
    return []


def recognise_source(source):
    """A reason when SOURCE is (or holds) a raster of two or more bands; a one-band raster is refused here."""
    if not source:
        return None
    locations = _locations(source)
    if not locations:
        return None
    try:
        dataset = open_raster(locations[0])
    except (RemoteError, ImplausibleFile):
        raise
    except GeoEmbedError:
        return None
    if dataset.RasterCount < 2 and len(locations) == 1:
        raise GeoEmbedError(_one_band(locations[0], dataset))
    if dataset.RasterCount < 2:
        return None
    kind = _kind(dataset)
    if len(locations) == 1:
        return f"a raster of {dataset.RasterCount} {kind} bands ({basename(locations[0])})"
    return f"{len(locations)} rasters, the first of {dataset.RasterCount} {kind} bands ({basename(locations[0])})"


def _kind(dataset):
    band = dataset.GetRasterBand(1)
    return "signed 8-bit" if is_signed_byte(dataset) else gdal.GetDataTypeName(band.DataType)


def _one_band(location, dataset):
    return (
        f"{basename(location)} has {dataset.RasterCount} band(s); an embedding raster has one band per dimension (at "
        "least 2): give the embeddings themselves, not a single-band map such as a similarity heatmap."
    )


def open_generic_tile(location):
    """A tile (mosaic.py protocol) over one raster, with its band names, data type and a note on its values."""
    name = basename(location)
    dataset = open_raster(location)
    if dataset.RasterCount < 2:
        raise GeoEmbedError(_one_band(location, dataset))
    data_type = dataset.GetRasterBand(1).DataType
    if data_type in COMPLEX_TYPES:
        raise GeoEmbedError(f"{name} has complex-valued bands ({gdal.GetDataTypeName(data_type)}); embeddings are real.")
    signed_byte = is_signed_byte(dataset)
    tile = GeoTiffTile(location, dataset, embedding_decoder(dataset.GetRasterBand(1).GetNoDataValue(), signed_byte))
    if tile.crs is None or tile.geotransform == (0.0, 1.0, 0.0, 0.0, 0.0, 1.0):
        raise GeoEmbedError(f"{name} has no georeferencing (CRS and geotransform); give a georeferenced raster.")
    tile.band_names = band_names(dataset)
    tile.kind = _kind(dataset)
    tile.floating = data_type in FLOAT_TYPES
    return tile


def plan(request, log, client=None):
    source = request.source
    if not source:
        raise GeoEmbedError(f"SOURCE is required for the generic product; give {WHAT}.")
    if not is_url(source) and not os.path.exists(source):
        raise GeoEmbedError(f"SOURCE {source} does not exist; give {WHAT}.")
    locations = _locations(source)
    if not locations:
        where = f"at {source}" if is_url(source) else f"under {source}"
        raise GeoEmbedError(f"No raster (.tif, .tiff, .vrt) {where}; give {WHAT}.")
    tiles = [open_generic_tile(location) for location in locations]
    _check_alike(tiles)
    wgs84 = extent_lonlat(request)
    tiles = tiles_under(tiles, wgs84, "input raster")
    tiles, year = pick_year(tiles, request, log, "input raster")
    first = tiles[0]
    notes = [
        "Float bands: the stored embedding values, used as they are."
        if first.floating
        else f"Integer bands ({first.kind}): the raw stored values (not rescaled; no de-quantisation is known for them).",
        "All-zero vectors, NaN/inf and the file's noData value are nodata.",
    ]
    log.info(f"Generic embedding raster: {len(first.band_names)} {first.kind} bands. {notes[0]}")
    product = dataclasses.replace(PRODUCT, resolution_m=_pixel_metres(first), dims=len(first.band_names))
    return build_mosaic(tiles, request, wgs84, product, first.band_names, year, log, utm_default=False, notes=notes)


def _check_alike(tiles):
    """A folder is one mosaic: every raster has the first one's CRS and band count."""
    first = tiles[0]
    for tile in tiles[1:]:
        if tile.band_count != first.band_count:
            raise GeoEmbedError(
                f"{basename(tile.location)} has {tile.band_count} bands and {basename(first.location)} {first.band_count}; "
                "a folder is read as one mosaic: keep rasters of one embedding in it."
            )
        if not same_crs(tile.crs, first.crs):
            raise GeoEmbedError(
                f"{basename(tile.location)} is in another CRS than {basename(first.location)}; a folder is read as one "
                "mosaic: give rasters in one CRS (or load each and put them on one grid with geoembed:resample)."
            )


def _pixel_metres(tile):
    """The raster's pixel size in metres: the 'native' resolution when the output is asked in another CRS."""
    return math.hypot(tile.geotransform[1], tile.geotransform[4]) / metres_to_crs_units(tile.crs, 1.0)
