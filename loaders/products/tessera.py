"""Tessera (GeoTessera) annual embeddings: int8 .npy tiles, per-pixel float32 scales, landmask georeference.

Facts (shared formats.md §2): grid_{lon:.2f}_{lat:.2f}.npy is int8 (H, W, 128) with row 0 = north and
no georeference; grid_{lon}_{lat}_scales.npy holds float32 scales (H, W); the landmask GeoTIFF
grid_{lon}_{lat}.tiff (uint8, 0 = water) carries the tile's UTM CRS and unsnapped transform.
De-quantise int8 * scale; water and non-finite or zero scales are nodata. The `--format tiff`
export grid_{lon}_{lat}_{year}.tiff is already float32 (128 bands, no nodata tag).

Water is nodata on both paths, as in the producer's own Zarr store (water has NaN scales there): the .npy path
masks it with the tile's landmask (0 = water), which it needs anyway for the georeference; the export path
masks it with the landmask of the same tile when one is found under SOURCE's dataset root (the same search the
.npy path makes). An export whose landmask is not found keeps all its pixels (non-finite and all-zero vectors
are still nodata), and the log warns once that water cannot be told apart without the landmasks.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
from osgeo import gdal

from .. import catalog
from ..errors import GeoEmbedError, YearNotFound
from ..limits import check_npy_file
from ..raster.gdal_io import crs_string, open_raster, read_window
from ..raster.geotiff_tile import GeoTiffTile, embedding_decoder
from ..raster.planning import build_mosaic, extent_lonlat, fmt, pick_year, tiles_under
from ..remote import confinement
from ..remote.cache import cached_copy
from ..remote.locations import basename, is_url, join
from ..remote.range_check import raster_location
from . import tessera_versions as versions
from .aef import mirror_client
from .geoparquet import is_parquet, open_parquet, pyarrow_parquet
from .tessera_remote import RemoteNpy

PRODUCT = catalog.TESSERA
BAND_NAMES = versions.band_names(versions.DEFAULT)
EMBEDDING = re.compile(r"^grid_(-?\d+\.\d+)_(-?\d+\.\d+)\.npy$")
EXPORT = re.compile(r"^grid_(-?\d+\.\d+)_(-?\d+\.\d+)_(\d{4})\.tiff?$")
LANDMASK = re.compile(r"^grid_(-?\d+\.\d+)_(-?\d+\.\d+)\.tiff?$")
YEAR_DIR = re.compile(r"(?:^|/)(\d{4})/grid_[^/]+/[^/]+$")
HALF_CELL_DEG = 0.05
WHAT = "a geotessera download folder, a Source Cooperative mirror, a manifest.parquet or grid_*.npy tiles"


class TesseraTile:
    """Tile protocol (see mosaic.py) over memory-mapped .npy arrays georeferenced by the landmask."""

    def __init__(self, embedding_path, scales_path, landmask_path, year, dims=versions.DIMS, arrays=None, landmask=None):
        """arrays: (embedding, scales) already opened (e.g. RemoteNpy over http); landmask: the GDAL path to open
        instead of landmask_path (e.g. /vsicurl/...). dims: read only the first dims dimensions (a v2 prefix)."""
        self.location = embedding_path
        self.year = year
        self.dims = dims
        name = basename(embedding_path)
        self._landmask = open_raster(landmask or landmask_path)
        self.landmask_path = landmask or landmask_path
        self.crs = crs_string(self._landmask)
        self.geotransform = tuple(self._landmask.GetGeoTransform())
        self.width, self.height = self._landmask.RasterXSize, self._landmask.RasterYSize
        try:
            self._embedding, self._scales = arrays or (
                np.load(embedding_path, mmap_mode="r"),
                np.load(scales_path, mmap_mode="r"),
            )
        except (OSError, ValueError) as exc:
            raise GeoEmbedError(f"Cannot read Tessera tile {name}: {exc}.") from exc
        if self._embedding.dtype != np.int8 or self._embedding.ndim != 3:
            raise GeoEmbedError(
                f"{name} is not a Tessera tile: expected int8 (H, W, 128), found {self._embedding.dtype} "
                f"{self._embedding.shape}."
            )
        if self._embedding.shape[:2] != (self.height, self.width) or self._scales.shape[:2] != (self.height, self.width):
            raise GeoEmbedError(
                f"{name} is {self._embedding.shape[:2]} pixels and its scales {self._scales.shape[:2]}, but the landmask "
                f"{basename(landmask_path)} is {(self.height, self.width)}; the files belong to different versions."
            )

    @property
    def bounds(self):
        c, a, _, f, _, e = self.geotransform
        return (c, f + e * self.height, c + a * self.width, f)

    def read(self, col, row, width, height):
        codes = np.asarray(self._embedding[row : row + height, col : col + width, : self.dims])
        scales = np.asarray(self._scales[row : row + height, col : col + width], dtype=np.float32)
        land = read_window(self._landmask, self.landmask_path, col, row, width, height)[0]
        if scales.ndim == 3:  # geotessera also allows one scale per band
            scales = scales[:, :, : self.dims]
            values = codes.astype(np.float32) * scales
            scale_ok = np.isfinite(scales).all(axis=2) & (scales != 0).any(axis=2)
        else:
            values = codes.astype(np.float32) * scales[:, :, np.newaxis]
            scale_ok = np.isfinite(scales) & (scales != 0)
        return np.ascontiguousarray(values.transpose(2, 0, 1)), scale_ok & (land != 0)

    def close(self):
        for array in (self._embedding, self._scales):
            getattr(array, "close", lambda: None)()  # RemoteNpy: its connections; a memory map closes when dropped
        self._embedding = self._scales = self._landmask = None


class ExportTile(GeoTiffTile):
    """A GeoTIFF export (float32 as stored) whose water, when its landmask is known, is nodata."""

    def __init__(self, path, dataset, landmask_path):
        super().__init__(path, dataset, embedding_decoder())  # no noData tag: NaN and all-zero vectors are nodata
        self.landmask_path = landmask_path
        self._landmask = open_raster(landmask_path) if landmask_path else None
        if self._landmask is not None and (self._landmask.RasterXSize, self._landmask.RasterYSize) != (self.width, self.height):
            raise GeoEmbedError(
                f"{os.path.basename(path)} is {self.width} x {self.height} pixels but its landmask "
                f"{os.path.basename(landmask_path)} is {self._landmask.RasterXSize} x {self._landmask.RasterYSize}; "
                "the files belong to different versions."
            )

    dims = versions.DIMS

    def read(self, col, row, width, height):
        values, valid = super().read(col, row, width, height)
        values = values[: self.dims]
        if self._landmask is not None:
            valid = valid & (read_window(self._landmask, self.landmask_path, col, row, width, height)[0] != 0)
        return values, valid

    def close(self):
        super().close()
        self._landmask = None


def _export_tile(path, landmasks, dims=versions.DIMS):
    dataset = open_raster(path)
    if dataset.RasterCount != 128 or dataset.GetRasterBand(1).DataType != gdal.GDT_Float32:
        raise GeoEmbedError(f"{os.path.basename(path)} is not a Tessera export: expected 128 Float32 bands.")
    match = EXPORT.match(os.path.basename(path))
    tile = ExportTile(path, dataset, landmasks.get(f"grid_{match.group(1)}_{match.group(2)}"))
    tile.year = int(match.group(3))
    tile.dims = dims
    return tile


def _scan(root):
    """(embedding .npy paths, export .tiff paths, {landmask name: path}) under a folder."""
    embeddings, exports, landmasks = [], [], {}
    for path in sorted(Path(root).rglob("grid_*")):
        if not path.is_file():
            continue
        if EMBEDDING.match(path.name):
            embeddings.append(str(path))
        elif EXPORT.match(path.name):
            exports.append(str(path))
        elif LANDMASK.match(path.name):
            landmasks.setdefault(path.name.rsplit(".", 1)[0], str(path))
    return embeddings, exports, landmasks


def _open_npy_tile(embedding_path, landmasks, dims=versions.DIMS):
    stem = os.path.basename(embedding_path)[: -len(".npy")]
    # The headers first: a shape, dtype or size no Tessera tile has is refused before anything is mapped or read.
    check_npy_file(embedding_path, ndim=3, dtypes=(np.int8,))
    scales = os.path.join(os.path.dirname(embedding_path), f"{stem}_scales.npy")
    if not os.path.exists(scales):
        raise GeoEmbedError(f"Tessera tile {stem} has no {stem}_scales.npy beside it; download the tile again.")
    check_npy_file(scales, dtypes=(np.float32, np.float64, np.float16))
    landmask = landmasks.get(stem)
    if landmask is None:
        raise GeoEmbedError(
            f"Tessera tile {stem} has no landmask {stem}.tiff (its only georeference); add the landmasks folder to SOURCE."
        )
    match = YEAR_DIR.search(embedding_path.replace("\\", "/"))
    return TesseraTile(embedding_path, scales, landmask, int(match.group(1)) if match else None, dims)


def recognise_source(source):
    if not source or is_url(source):
        return None
    path = Path(source)
    if path.is_file():
        if EMBEDDING.match(path.name) or EXPORT.match(path.name):
            return f"a Tessera tile ({path.name})"
        if path.suffix == ".parquet" and _is_manifest(source):
            return "a Tessera manifest"
        return None
    if path.is_dir():
        for probe in ("global_0.1_degree_representation", "npy", "global_0.1_degree_tiff_all", "landmasks"):
            if (path / probe).is_dir():
                return f"a Tessera folder ({probe}/)"
        embeddings, exports, _ = _scan(source)
        if embeddings or exports:
            return f"{len(embeddings) + len(exports)} Tessera tile(s) named grid_{{lon}}_{{lat}}"
    return None


def _is_manifest(path):
    try:
        names = set(open_parquet(path).schema_arrow.names)
    except GeoEmbedError:
        return False
    return {"lon", "lat", "year", "grid_size"} <= names


def plan(request, log, client=None):
    source = request.source
    if not source:  # PRODUCT=tessera names its public location; no other host is ever contacted unasked
        source = PRODUCT.public_location.rstrip("/")
        log.info(f"No SOURCE given: reading Tessera from its public location, {source}.")
    requested = versions.version(request.version)
    if requested is not None:
        versions.check_dimensions(requested, request.dimensions)  # refused before anything is read
    wgs84 = extent_lonlat(request)
    if is_url(source):
        tiles, found = _tiles_from_mirror(source, wgs84, request, requested, log, client)
    elif not os.path.exists(source):
        raise GeoEmbedError(f"SOURCE {source} does not exist; give {WHAT}.")
    elif source.endswith(".parquet"):
        tiles, found = _tiles_from_manifest(source, wgs84, request, requested, log)
    else:
        tiles, found = _tiles_from_folder(source, wgs84, request, requested)
    tiles = tiles_under(tiles, wgs84, "Tessera")
    tiles, year = pick_year(tiles, request, log, "Tessera")
    unmasked = [tile for tile in tiles if isinstance(tile, ExportTile) and tile.landmask_path is None]
    if unmasked:
        log.warning(
            f"No landmask found for {len(unmasked)} Tessera GeoTIFF export(s) ({os.path.basename(unmasked[0].location)}"
            f"{', ...' if len(unmasked) > 1 else ''}): water cannot be told apart from land without the landmasks, so "
            "it is kept; put the landmasks folder (global_0.1_degree_tiff_all/ or landmasks/) under SOURCE to make it nodata."
        )
    dims = tiles[0].dims if tiles else versions.DIMS
    notes = [
        "int8 embeddings multiplied by their per-pixel scales (GeoTIFF exports: float32 as stored); water (landmask 0) "
        "and missing scales are nodata.",
        f"Tessera dataset {found.name} (npy/{found.dataset_dir}, landmasks/{found.version_path}).",
    ]
    if dims < versions.DIMS:
        notes.append(f"Only the first {dims} of the 128 Matryoshka-ordered dimensions (a fast preview).")
    mosaic = build_mosaic(tiles, request, wgs84, PRODUCT, versions.band_names(found, dims), year, log, True, notes)
    mosaic.provenance.product_version = found.name
    return mosaic


def _tiles_from_folder(source, wgs84, request, requested):
    if os.path.isfile(source):
        embeddings = [source] if EMBEDDING.match(os.path.basename(source)) else []
        exports = [source] if EXPORT.match(os.path.basename(source)) else []
        if not embeddings and not exports:
            raise GeoEmbedError(f"{os.path.basename(source)} is not a Tessera tile: expected grid_{{lon}}_{{lat}}.npy.")
    else:
        embeddings, exports, _ = _scan(source)
    if not embeddings and not exports:
        raise GeoEmbedError(f"No Tessera tiles (grid_{{lon}}_{{lat}}.npy or exports) under {source}.")
    root = _dataset_root(source)
    version_of = _version_namer(root)
    found = versions.pick({version_of(path) for path in embeddings + exports}, requested, f"SOURCE {basename(source)}")
    dims = versions.check_dimensions(found, request.dimensions)
    embeddings = [path for path in embeddings if version_of(path) == found]
    exports = [path for path in exports if version_of(path) == found]
    # Open only the tiles whose 0.1-degree cell (named by its centre) can meet the extent.
    embeddings, exports = _near(embeddings, wgs84), _near(exports, wgs84)
    if not embeddings and not exports:
        raise GeoEmbedError(f"No Tessera tile covers the extent {fmt(wgs84)} (lon/lat); check EXTENT and its CRS.")
    # Landmasks live beside the embeddings' folder tree (download and Source Cooperative layouts), one set per version.
    landmasks = _landmasks(root, lambda path: version_of(path) == found)
    tiles = [_open_npy_tile(path, landmasks, dims) for path in embeddings]
    return tiles + [_export_tile(path, landmasks, dims) for path in exports], found


def _version_namer(root):
    """path -> Version: the npy/{dataset_dir}/ or landmasks/{version_path}/ folder it is in, else the version the
    folder's tessera_metadata.json (geotessera download) records, else v1 (what every older download holds)."""
    default = _metadata_version(root) or versions.DEFAULT

    def version_of(path):
        try:
            relative = os.path.relpath(path, root)
        except ValueError:  # another drive
            relative = path
        return versions.of_path(relative) or default

    return version_of


def _metadata_version(root):
    path = os.path.join(root, "tessera_metadata.json")
    try:
        with open(path, encoding="utf-8") as handle:
            recorded = json.load(handle).get("dataset_version")
        return versions.version(recorded)
    except (OSError, ValueError, AttributeError, GeoEmbedError):
        return None


def _landmasks(root, keep):
    """{landmask name: path} of the landmask GeoTIFFs under root that keep(path) accepts."""
    landmasks = {}
    for path in sorted(Path(root).rglob("grid_*")):
        if path.is_file() and LANDMASK.match(path.name) and not EXPORT.match(path.name) and keep(str(path)):
            landmasks.setdefault(path.name.rsplit(".", 1)[0], str(path))
    return landmasks


def _dataset_root(path):
    """The folder above global_0.1_degree_representation/ or npy/; else the folder itself (or a tile's grandparent)."""
    resolved = Path(path).resolve()
    parts = resolved.parts
    for marker in ("global_0.1_degree_representation", "npy"):
        if marker in parts:
            return str(Path(*parts[: parts.index(marker)]))
    return str(resolved) if resolved.is_dir() else str(resolved.parents[1])


def _near(paths, wgs84):
    """Tiles whose cell, centre +- 0.05 degrees as the name says, meets the lon/lat extent (all without one)."""
    if wgs84 is None:
        return paths
    kept = []
    for path in paths:
        match = EMBEDDING.match(os.path.basename(path)) or EXPORT.match(os.path.basename(path))
        lon, lat = float(match.group(1)), float(match.group(2))
        if (
            lon + HALF_CELL_DEG >= wgs84[0]
            and lon - HALF_CELL_DEG <= wgs84[2]
            and lat + HALF_CELL_DEG >= wgs84[1]
            and (lat - HALF_CELL_DEG <= wgs84[3])
        ):
            kept.append(path)
    return kept


# --- manifests (local or over http) ----------------------------------------------------------


def manifest_rows(manifest, name, wgs84, year, requested, log, marked=None):
    """(rows, Version, year) of the manifest's tiles whose cell can meet wgs84, of one version and one year (the
    latest when year is None; all years when year is "all"). manifest: a local path; name: where it came from; marked:
    the version its location names (npy/{dataset_dir}/manifest.parquet)."""
    if wgs84 is None:
        raise GeoEmbedError("EXTENT is required with a Tessera manifest; set EXTENT (e.g. the map canvas).")
    names = open_parquet(manifest).schema_arrow.names
    missing = [c for c in ("lon", "lat", "year", "grid_size") if c not in names]
    if missing:
        raise GeoEmbedError(f"{basename(name)} is not a Tessera manifest: it lacks {', '.join(missing)}.")
    west, south, east, north = wgs84
    filters = [
        ("lon", ">=", west - HALF_CELL_DEG),
        ("lon", "<=", east + HALF_CELL_DEG),
        ("lat", ">=", south - HALF_CELL_DEG),
        ("lat", "<=", north + HALF_CELL_DEG),
        ("grid_size", ">", 0),
    ]
    if year not in (None, "all"):
        filters.append(("year", "=", year))
    columns = [c for c in ("lon", "lat", "year", "version", "grid_size", "scales_size") if c in names]
    rows = pyarrow_parquet().read_table(manifest, columns=columns, filters=filters).to_pylist()
    for row in rows:
        row["tessera_version"] = _row_version(row.get("version")) or marked
    found = versions.pick({marked, *(row["tessera_version"] for row in rows)}, requested, f"the manifest {basename(name)}")
    rows = [row for row in rows if row["tessera_version"] in (None, found)]
    if not rows:
        when = year if year not in (None, "all") else "any year"
        missing = YearNotFound if year not in (None, "all") else GeoEmbedError  # a YEARS run skips a missing year
        raise missing(
            f"The Tessera {found.name} manifest lists no tile for the extent {fmt(wgs84)} in {when}; check EXTENT and YEAR."
        )
    years = sorted({int(row["year"]) for row in rows})
    if year is None:
        year = years[-1]
        if len(years) > 1:
            listed = ", ".join(map(str, years))
            log.info(f"YEAR not set: using {year}, the latest of the years the manifest lists here ({listed}).")
    unique = {}
    for row in rows:  # the manifest may repeat a tile
        if year == "all" or int(row["year"]) == year:
            unique.setdefault((int(row["year"]), round(row["lon"] * 100), round(row["lat"] * 100)), row)
    return [unique[key] for key in sorted(unique)], found, year


def _row_version(number):
    try:
        return versions.version(number) if number else None
    except GeoEmbedError:
        return None


def tile_stem(row):
    return f"grid_{row['lon']:.2f}_{row['lat']:.2f}"


def _tiles_from_manifest(manifest, wgs84, request, requested, log):
    marked = versions.of_path(os.path.abspath(manifest))
    rows, found, _ = manifest_rows(manifest, manifest, wgs84, request.year, requested, log, marked)
    dims = versions.check_dimensions(found, request.dimensions)
    root = _dataset_root(manifest)
    version_folder = os.path.join(root, "landmasks", found.version_path)
    if os.path.isdir(version_folder):
        landmasks = _landmasks(version_folder, lambda path: True)
    else:
        version_of = _version_namer(root)
        landmasks = _landmasks(root, lambda path: version_of(path) == found)
    tiles = []
    for row in rows:
        stem = tile_stem(row)
        path = confinement.resolve(manifest, f"{row['year']}/{stem}/{stem}.npy", allow_outside=request.allow_paths_outside_mirror)
        if not os.path.exists(path):
            log.warning(f"Tessera tile {stem} ({row['year']}) is in the manifest but not in the mirror; its area stays nodata.")
            continue
        tiles.append(_open_npy_tile(path, landmasks, dims))
    if not tiles:
        raise GeoEmbedError("None of the Tessera tiles the manifest lists for the extent are in the mirror; download them.")
    return tiles, found


def mirror_manifest(source, requested, client, cache_dir, log):
    """(root URL, manifest URL, local copy, Version named by the URL) of an http(s) Tessera root or manifest URL."""
    if source.lower().split("?", 1)[0].endswith(".parquet"):
        position = source.find("/npy/")
        if position < 0:
            raise GeoEmbedError(
                f"{basename(source)} is not at npy/{{dataset}}/manifest.parquet; give the Tessera root URL (the folder "
                "holding npy/ and landmasks/) as SOURCE."
            )
        root, manifest_url = source[:position], source
    else:
        root = source.rstrip("/")
        manifest_url = join(root, "npy", (requested or versions.DEFAULT).dataset_dir, "manifest.parquet")
    local = cached_copy(manifest_url, _is_manifest_file, client=client, cache_dir=cache_dir, log=log)
    return root, manifest_url, str(local), versions.of_path(manifest_url[len(root) :])


def _is_manifest_file(path):
    return is_parquet(path) and _is_manifest(str(path))


def _tiles_from_mirror(source, wgs84, request, requested, log, client):
    """Tiles of an http(s) mirror: its manifest (cached), each tile's rows by Range requests, its landmask by GDAL's
    range reads (or a cached copy). Every path is built from the manifest's lon/lat/year under the manifest's own
    folder and checked to stay there (confinement.py)."""
    allow_outside = request.allow_paths_outside_mirror
    client = mirror_client(client, allow_outside)
    root, manifest_url, local, marked = mirror_manifest(source, requested, client, request.cache_dir, log)
    rows, found, _ = manifest_rows(local, manifest_url, wgs84, request.year, requested, log, marked)
    dims = versions.check_dimensions(found, request.dimensions)
    tiles = []
    for row in rows:
        stem = tile_stem(row)
        relative = f"{row['year']}/{stem}/{stem}"
        grid_url = confinement.resolve(manifest_url, f"{relative}.npy", allow_outside=allow_outside)
        scales_url = confinement.resolve(manifest_url, f"{relative}_scales.npy", allow_outside=allow_outside)
        mask_url = join(root, "landmasks", found.version_path, f"{stem}.tiff")
        arrays = (
            RemoteNpy(grid_url, client, row.get("grid_size"), ndim=3, dtypes=(np.int8,)),
            RemoteNpy(scales_url, client, row.get("scales_size"), dtypes=(np.float32, np.float64, np.float16)),
        )
        landmask = raster_location(mask_url, client, request.cache_dir, log)
        tile = TesseraTile(grid_url, scales_url, mask_url, int(row["year"]), dims, arrays, landmask)
        tiles.append(tile)
    log.info(f"Reading {len(tiles)} Tessera {found.name} tile(s) from {root} with HTTP Range requests.")
    return tiles, found
