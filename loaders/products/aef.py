"""AlphaEarth Foundations (AEF) annual embeddings: tiles, index and sources.

Facts (see shared formats.md §1): 64 bands A00..A63, signed int8, -128 = nodata in every band,
de-quantisation ((q/127.5)**2)*sign(q), tiles stored south-up in the UTM zone of their folder,
paths {year}/{zone}/{EEID}-{YOFF:010d}-{XOFF:010d}.tiff under v1/annual/ next to aef_index.parquet.

AlphaEarth also reaches users as float rasters, already de-quantised: Earth Engine exports (one file or a folder
of pieces) and Major TOM's copy (aef_exports.py). A file or folder given as SOURCE may hold either kind; the data
type tells them apart (int8 tiles are de-quantised, floats are used as stored), never both in one load.
"""

import copy
import os
import re
from pathlib import Path

import numpy as np
from osgeo import gdal

from .. import catalog
from ..errors import GeoEmbedError, RemoteError, YearNotFound
from ..model import EmbeddingBlock
from ..raster.gdal_io import crs_string, is_signed_byte, open_raster, read_window
from ..raster.grid import raster_bounds
from ..raster.planning import build_mosaic, extent_lonlat, fmt, pick_year, tiles_under, year_span
from ..raster.scaled_int16 import INT16_NODATA, INT16_SCALE, TERM_DIVISOR
from ..raster.writer import Storage
from ..remote import confinement
from ..remote.cache import cached_copy
from ..remote.http_client import HttpClient
from ..remote.locations import basename, is_url, join, parent
from . import aef_exports
from .geoparquet import geometry_column, is_parquet, open_parquet, pyarrow_parquet, wkb_bounds

BAND_NAMES = tuple(f"A{i:02d}" for i in range(64))
NODATA_Q = -128
INDEX_NAME = "aef_index.parquet"
DEFAULT_ROOT = catalog.AEF.public_location
LAYOUT_MARKER = "v1/annual/"
TILE_NAME = re.compile(r"^x[0-9a-z]{16}-\d{10}-\d{10}\.(tiff?|vrt)$", re.IGNORECASE)
YEAR_ZONE = re.compile(r"(?:^|/)(?P<year>(?:19|20)\d\d)/(?P<zone>\d{1,2}[NS])/[^/]+$")

_codes = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.float64)
DEQUANT_LUT = (np.sign(_codes) * (_codes / 127.5) ** 2).astype(np.float32)
"""De-quantised value of every int8 code, indexed by the code's unsigned byte."""


def dequantize(q):
    """Float32 values of int8 codes, of any integer type (the nodata code -128 gives a value too: mask it with valid_mask).

    Computed as float32(q * |q|) / 16256.25, which IEEE division rounds correctly: bit for bit DEQUANT_LUT (a test checks
    every code). Two passes and no float temporary: the integer terms q * |q| in int16, then one division that reads
    them as float32 (4x faster than de-quantising in float32 in place, 2x faster than the LUT gather)."""
    q = np.asarray(q)
    if q.dtype != np.int8:
        q = q.astype(np.int8)
    return np.divide(terms(q), TERM_DIVISOR, dtype=np.float32)


def terms(q):
    """The integer terms q * |q| of int8 codes, as int16 (the nodata code -128 gives -16384: |q| is taken as uint8)."""
    return np.multiply(q, np.abs(q).view(np.uint8), dtype=np.int16)


def quantize(values):
    """Inverse of dequantize: round(sign(v) * sqrt(|v|) * 127.5), clipped to -127..127."""
    values = np.asarray(values, dtype=np.float64)
    return np.clip(np.round(np.sign(values) * np.sqrt(np.abs(values)) * 127.5), -127, 127).astype(np.int8)


def valid_mask(q):
    """Pixels (over axis 0 = bands) without the nodata code."""
    q = np.asarray(q)
    if q.dtype == np.int8:  # -128 is the least int8: a minimum over the bands finds it without a boolean temporary
        return q.min(axis=0) != NODATA_Q
    return ~(q == NODATA_Q).any(axis=0)


class AefTile:
    """One AEF GeoTIFF (local or remote), read in its raw (south-up) orientation."""

    band_names = BAND_NAMES

    def __init__(self, location, dataset):
        self.location = location
        self._dataset = dataset
        self.crs = crs_string(dataset)
        self.geotransform = tuple(dataset.GetGeoTransform())
        self.width, self.height = dataset.RasterXSize, dataset.RasterYSize
        match = YEAR_ZONE.search(location.replace("\\", "/"))
        self.year = int(match["year"]) if match else None
        self.zone = match["zone"] if match else None

    @property
    def bounds(self):
        return raster_bounds(self.geotransform, self.width, self.height)

    @property
    def south_up(self):
        return self.geotransform[5] > 0

    def read(self, col, row, width, height):
        """De-quantised values and valid mask of a window, in the file's own row order."""
        codes = read_window(self._dataset, self.location, col, row, width, height)
        if codes.dtype == np.uint8:
            codes = codes.view(np.int8)
        return dequantize(codes), valid_mask(codes)

    def read_linear(self, col, row, width, height):
        """(terms, valid, scale) of a window: values = terms * scale with integer terms q * |q| (0 at nodata),
        so sums over pixels stay exact integers and need no float de-quantisation."""
        codes = read_window(self._dataset, self.location, col, row, width, height)
        if codes.dtype == np.uint8:
            codes = codes.view(np.int8)
        valid = valid_mask(codes)
        linear = terms(codes)
        if not valid.all():
            np.copyto(linear, 0, where=~valid[np.newaxis])
        return linear, valid, INT16_SCALE

    def close(self):
        self._dataset = None


# --- OUTPUT_TYPE=int16: the exact 16-bit output ---------------------------------------------------------


def int16_storage(raster):
    """How write_geotiff stores a mosaic of int8 AEF tiles as Int16 terms q * |q| with band scale 1/127.5**2 (nodata
    -32768): GDAL and QGIS read back the Float32 output's values, from half the raw bytes written in about half the
    CPU time. Float AlphaEarth (Earth Engine exports, Major TOM) holds other values: refused in one line."""
    tiles = getattr(raster, "tiles", None)
    if not tiles or not all(isinstance(tile, AefTile) for tile in tiles):
        raise GeoEmbedError(
            "OUTPUT_TYPE=int16 stores int8 AlphaEarth tiles exactly, but SOURCE holds float AlphaEarth rasters (Earth "
            "Engine exports or Major TOM's copy); use OUTPUT_TYPE=float32."
        )
    raster.provenance.notes = [note.replace("as Float32", INT16_NOTE) for note in raster.provenance.notes]
    return Storage(gdal.GDT_Int16, INT16_NODATA, INT16_SCALE, lambda window: int16_block(raster, window))


INT16_NOTE = "as Int16 terms q*|q| with band scale 1/127.5^2 (the same values as Float32)"


def int16_block(raster, window):
    """EmbeddingBlock of the int16 terms of a window (0 where not valid: the writer puts nodata there)."""
    linear, valid, scale = raster.read_linear(window)
    if linear.dtype != np.int16 or scale != INT16_SCALE:
        # a block pieced together from several tiles comes as exact float values: their terms are round(v * 16256.25)
        assert scale == 1.0, scale
        linear = np.rint(linear * TERM_DIVISOR).astype(np.int16)
    return EmbeddingBlock(linear, valid)


def open_tile(location, client=None):
    """Open and check one AEF tile; a file of another kind gets a one-line explanation."""
    dataset = open_raster(location, client)
    name = os.path.basename(location.rstrip("/"))
    if dataset.RasterCount != 64 or not is_signed_byte(dataset):
        dtype = gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType) if dataset.RasterCount else "no"
        raise GeoEmbedError(
            f"{name} is not an AlphaEarth (aef) tile: expected 64 signed 8-bit bands, found "
            f"{dataset.RasterCount} {dtype} band(s); check SOURCE or choose the right PRODUCT."
        )
    return _georeferenced(AefTile(location, dataset), name)


def open_aef_raster(location):
    """An int8 AEF tile, or AlphaEarth as a float raster (an Earth Engine export, Major TOM's copy): the data type
    decides. Anything else gets a one-line explanation."""
    dataset = open_raster(location)
    name = basename(location)
    if dataset.RasterCount == 64 and is_signed_byte(dataset):
        return _georeferenced(AefTile(location, dataset), name)
    variant = aef_exports.variant_of(location, dataset)
    if variant:
        return _georeferenced(aef_exports.float_tile(location, dataset, variant), name)
    count = dataset.RasterCount
    dtype = gdal.GetDataTypeName(dataset.GetRasterBand(1).DataType) if count else "no"
    made_by = (dataset.GetMetadata() or {}).get("GEOEMBED_PRODUCT")
    if made_by:
        raise GeoEmbedError(
            f"{name} was written by GeoEmbed ({count} {dtype} bands of product {made_by}), so it is loaded already: use it "
            "directly as INPUT, or load it with PRODUCT=generic to cut or re-grid it."
        )
    raise GeoEmbedError(
        f"{name} is not AlphaEarth (aef): expected 64 signed 8-bit bands (a tile) or 64 Float32/Float64 bands named "
        f"A00..A63 (an Earth Engine export), found {count} {dtype} band(s); check SOURCE or choose the right PRODUCT."
    )


def _georeferenced(tile, name):
    if tile.crs is None or tile.geotransform == (0.0, 1.0, 0.0, 0.0, 0.0, 1.0):
        raise GeoEmbedError(f"{name} has no georeferencing (CRS or geotransform); AEF tiles and exports carry both.")
    return tile


# --- index -----------------------------------------------------------------------------------

BBOX_COLUMNS = ("wgs84_west", "wgs84_south", "wgs84_east", "wgs84_north")


def read_index(index_file, wgs84_bounds, year=None):
    """(rows, years) for an AEF GeoParquet index.

    rows: dicts with path, year, crs, utm_zone for tiles whose lon/lat footprint meets wgs84_bounds
    in `year` (the latest year with such tiles when year is None); years: all years in the index.
    Only the needed columns are read, and row groups are skipped by their statistics.
    """
    parquet = open_parquet(index_file)
    names = parquet.schema_arrow.names
    missing = [column for column in ("path", "year") if column not in names]
    if missing:
        raise GeoEmbedError(
            f"{os.path.basename(str(index_file))} is not an AEF index: it lacks the column(s) {', '.join(missing)}."
        )
    pq = pyarrow_parquet()
    years = sorted({int(y) for y in pq.read_table(index_file, columns=["year"]).column("year").to_pylist()})
    if year is not None and year not in years:
        raise YearNotFound(f"The AEF index has no tiles for {year}; available years: {year_span(years)}.", years)
    west, south, east, north = wgs84_bounds
    wanted = ["path", "year"] + [c for c in ("crs", "utm_zone") if c in names]
    year_filter = [("year", "=", year)] if year is not None else []
    if all(column in names for column in BBOX_COLUMNS):
        filters = year_filter + [
            ("wgs84_east", ">=", west),
            ("wgs84_west", "<=", east),
            ("wgs84_north", ">=", south),
            ("wgs84_south", "<=", north),
        ]
        rows = pq.read_table(index_file, columns=wanted, filters=filters).to_pylist()
    else:
        geometry = geometry_column(parquet.schema_arrow)
        if geometry is None:
            raise GeoEmbedError("The AEF index has neither wgs84_* bounds nor a geometry column; it cannot be queried.")
        table = pq.read_table(index_file, columns=wanted + [geometry], filters=year_filter or None)
        rows = []
        for row in table.to_pylist():
            box = wkb_bounds(row.pop(geometry)) if row[geometry] else None
            if box and box[2] >= west and box[0] <= east and box[3] >= south and box[1] <= north:
                rows.append(row)
    if year is None and rows:
        latest = max(int(row["year"]) for row in rows)
        rows = [row for row in rows if int(row["year"]) == latest]
    rows.sort(key=lambda row: row["path"])
    return rows, years


def resolve_index_path(index_location, path, allow_outside=False):
    """Where a tile listed in an index lives, given where the index itself was read from.

    The public indexes list s3:// (Source Cooperative) or gs:// (Google) URIs; inside a mirror
    the part after v1/annual/ is resolved next to the index, so a local folder or any http(s)
    mirror of the layout works. Paths leaving the index's folder or host are refused unless
    allow_outside (confinement.py); so is a .vrt, which may itself point at any file or host.
    """
    location = confinement.resolve(index_location, path, LAYOUT_MARKER, allow_outside)
    if not allow_outside and location.lower().split("?", 1)[0].endswith(".vrt"):
        reason = "a VRT, which may point at any file or host"
        raise confinement.refusal(path, parent(index_location), reason, basename(index_location))
    return location


def mirror_client(client, allow_outside):
    """The HTTP client for a mirror's index and tiles: redirects only to the same host unless allow_outside."""
    if allow_outside:
        return client
    if client is None:
        return HttpClient(same_host_only=True)
    confined = copy.copy(client)  # the caller's client keeps its own policy
    confined.same_host_only = True
    return confined


# --- sources ---------------------------------------------------------------------------------


def classify_source(source, client=None):
    """('tile', location) | ('index', location) | ('tiles', [locations]) for a SOURCE value.

    In a folder, 'tiles' are the files named like AEF tiles; without any, the files named like Earth Engine
    export pieces or Major TOM cells (whether they hold AlphaEarth is told when they are opened)."""
    if not source:
        source = DEFAULT_ROOT
    lower = source.lower().rstrip("/")
    if not is_url(source) and not os.path.exists(source):
        raise GeoEmbedError(
            f"SOURCE {source} does not exist; give an AEF tile (.tiff), an {INDEX_NAME}, "
            "a folder mirroring v1/annual/, or an http(s) URL."
        )
    if lower.endswith(".parquet"):
        return "index", source
    if lower.endswith((".tif", ".tiff", ".vrt")):
        return "tile", source
    if lower.endswith((".csv", ".gpkg")):
        raise GeoEmbedError(f"Use the GeoParquet index {INDEX_NAME} (it sits beside {os.path.basename(lower)}).")
    if is_url(source):
        client = client or HttpClient()
        candidates = [join(source, LAYOUT_MARKER, INDEX_NAME), join(source, INDEX_NAME)]
        for candidate in candidates:
            if client.exists(candidate):
                return "index", candidate
        raise GeoEmbedError(f"No {INDEX_NAME} at {candidates[0]} or {candidates[1]}; give the URL of an AEF index or tile.")
    folder = Path(source)
    if folder.is_file():
        return "tile", source
    for candidate in (folder / INDEX_NAME, folder / LAYOUT_MARKER / INDEX_NAME, folder / "annual" / INDEX_NAME):
        if candidate.is_file():
            return "index", str(candidate)
    files = [p for p in folder.rglob("*") if p.is_file()]
    found = [p for p in files if TILE_NAME.match(p.name)]
    if not found:
        found = [p for p in files if aef_exports.is_candidate_name(p.name)]
    # Source Cooperative puts a north-up .vrt beside every .tiff: read each tile once, from the .tiff.
    tiffs = {p.with_suffix("") for p in found if p.suffix.lower() != ".vrt"}
    tiles = sorted(str(p) for p in found if p.suffix.lower() != ".vrt" or p.with_suffix("") not in tiffs)
    if not tiles:
        raise GeoEmbedError(
            f"No {INDEX_NAME}, no AEF tiles ({{EEID}}-{{YOFF}}-{{XOFF}}.tiff) and no Earth Engine export pieces "
            f"(PREFIX-RRRRRRRRRR-CCCCCCCCCC.tif) or Major TOM cells under {source}."
        )
    return "tiles", tiles


def recognise(kind, value):
    """A short reason when a classified SOURCE holds AEF data (used by PRODUCT=auto), else None."""
    if kind == "tiles":
        if any(TILE_NAME.match(basename(location)) for location in value):
            return f"{len(value)} AEF tile(s) named {{EEID}}-{{YOFF}}-{{XOFF}}.tiff"
        found = _what_it_holds(value[0])  # export pieces or Major TOM cells: the first one's bands tell
        return f"{len(value)} file(s) of {found}" if found else None
    if kind == "index":
        local = not is_url(value)
        if local and (not is_parquet(value) or not {"path", "year", "utm_zone"} <= set(open_parquet(value).schema_arrow.names)):
            return None
        return f"an AEF tile index ({os.path.basename(value.rstrip('/'))})"
    name = os.path.basename(value.rstrip("/"))
    if TILE_NAME.match(name):
        return f"an AEF tile name ({name})"
    return _what_it_holds(value)


def _what_it_holds(location):
    """What PRODUCT=auto says of a file that opens as AlphaEarth (an int8 tile or a float raster), else None."""
    try:
        tile = open_aef_raster(location)
    except RemoteError:
        raise
    except GeoEmbedError:
        return None
    tile.close()
    variant = getattr(tile, "variant", None)
    return aef_exports.describe(variant, tile.data_type) if variant else "64 signed 8-bit bands"


def index_local_copy(index_location, cache_dir=None, client=None, log=None):
    """A local path of the index: itself, or a cached copy of the remote file."""
    if not is_url(index_location):
        if not os.path.isfile(index_location):
            raise GeoEmbedError(f"Index {index_location} does not exist; check SOURCE.")
        return index_location
    return cached_copy(index_location, is_parquet, client=client, cache_dir=cache_dir, log=log)


def recognise_source(source):
    """PRODUCT=auto: a reason when SOURCE holds AEF data, else None (unreachable URLs still raise)."""
    if not source:
        return "no SOURCE (the public AlphaEarth copy is the default)"
    try:
        kind, value = classify_source(source)
    except RemoteError:
        raise
    except GeoEmbedError:
        return None
    return recognise(kind, value)


def plan(request, log, client=None):
    """A TileMosaic of the AEF tiles that cover the request, on the requested grid."""
    if not request.source:
        log.info(f"No SOURCE given: reading the public AEF copy at {DEFAULT_ROOT}.")
    allow_outside = getattr(request, "allow_paths_outside_mirror", False)
    client = mirror_client(client, allow_outside)  # the index and the tiles it lists come from the mirror's host
    kind, value = classify_source(request.source, client)
    wgs84 = extent_lonlat(request)
    if kind == "index":
        tiles, year = _tiles_from_index(value, wgs84, request, log, client)
    else:
        opened = [open_aef_raster(location) for location in (value if kind == "tiles" else [value])]
        floats = [tile for tile in opened if getattr(tile, "variant", None)]
        if floats and len(floats) < len(opened):
            raise GeoEmbedError(
                f"SOURCE {request.source} holds both int8 AEF tiles and float AlphaEarth rasters (Earth Engine exports or "
                "Major TOM's copy); give a folder with one kind."
            )
        if kind == "tiles":
            tiles, year = pick_year(tiles_under(opened, wgs84, "AEF"), request, log, "AEF")
        else:
            tiles, year = opened, opened[0].year
            if request.year is not None and year is not None and year != request.year:
                log.warning(f"YEAR={request.year} ignored: the file {basename(value)} is from {year}.")
        if floats:
            return _float_mosaic(tiles, request, wgs84, year, log)
    return build_mosaic(
        tiles,
        request,
        wgs84,
        catalog.AEF,
        BAND_NAMES,
        year,
        log,
        utm_default=True,
        notes=["South-up int8 tiles were read in place and written north-up as Float32."],
    )


def _float_mosaic(tiles, request, wgs84, year, log):
    """AlphaEarth float rasters on one grid: an export keeps its own CRS and grid (pieces are copied pixel for
    pixel); Major TOM's cells, spread over UTM zones, go to one UTM grid like the int8 tiles."""
    variants = {tile.variant for tile in tiles}
    return build_mosaic(
        tiles,
        request,
        wgs84,
        aef_exports.product_for(variants),
        BAND_NAMES,
        year,
        log,
        utm_default=aef_exports.MAJOR_TOM in variants,
        notes=aef_exports.notes_for(variants),
    )


def _tiles_from_index(index_location, wgs84, request, log, client):
    if wgs84 is None:
        raise GeoEmbedError(
            "EXTENT is required with an AEF index, which covers the whole world; set EXTENT (e.g. the map canvas)."
        )
    local = index_local_copy(index_location, request.cache_dir, client, log)
    rows, years = read_index(local, wgs84, request.year)
    if not rows:
        when = request.year if request.year is not None else "any year"
        missing = YearNotFound if request.year is not None else GeoEmbedError  # a year the index has, but not here
        raise missing(f"No AEF tile covers the extent {fmt(wgs84)} (lon/lat) in {when}; check EXTENT and its CRS.")
    year = int(rows[0]["year"])
    if request.year is None:
        log.info(f"YEAR not set: using {year}, the latest year with tiles here (the index has {year_span(years)}).")
    allow_outside = getattr(request, "allow_paths_outside_mirror", False)
    # Every path is checked before any tile is opened: a refused path means no request at all.
    locations = [(row["path"], resolve_index_path(index_location, row["path"], allow_outside)) for row in rows]
    tiles = []
    for path, location in locations:
        if not is_url(location) and not os.path.exists(location):
            log.warning(f"Tile {path} is listed in the index but missing from the mirror; its area stays nodata.")
            continue
        tiles.append(open_tile(location, client))
    if not tiles:
        raise GeoEmbedError(
            f"None of the {len(rows)} tile(s) covering the extent exist in the mirror; download them or use the public SOURCE."
        )
    return tiles, year
