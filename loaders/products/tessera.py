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

import os
import re
from pathlib import Path

import numpy as np
from osgeo import gdal

from .. import catalog
from ..errors import GeoEmbedError
from ..limits import check_npy_file
from ..raster.gdal_io import crs_string, open_raster, read_window
from ..raster.geotiff_tile import GeoTiffTile, embedding_decoder
from ..raster.planning import build_mosaic, extent_lonlat, fmt, pick_year, tiles_under
from ..remote.locations import is_url
from .geoparquet import open_parquet, pyarrow_parquet

PRODUCT = catalog.TESSERA
BAND_NAMES = tuple(f"T{i:03d}" for i in range(128))
EMBEDDING = re.compile(r"^grid_(-?\d+\.\d+)_(-?\d+\.\d+)\.npy$")
EXPORT = re.compile(r"^grid_(-?\d+\.\d+)_(-?\d+\.\d+)_(\d{4})\.tiff?$")
LANDMASK = re.compile(r"^grid_(-?\d+\.\d+)_(-?\d+\.\d+)\.tiff?$")
YEAR_DIR = re.compile(r"(?:^|/)(\d{4})/grid_[^/]+/[^/]+$")
HALF_CELL_DEG = 0.05
WHAT = "a geotessera download folder, a Source Cooperative mirror, a manifest.parquet or grid_*.npy tiles"


class TesseraTile:
    """Tile protocol (see mosaic.py) over memory-mapped .npy arrays georeferenced by the landmask."""

    def __init__(self, embedding_path, scales_path, landmask_path, year):
        self.location = embedding_path
        self.year = year
        name = os.path.basename(embedding_path)
        self._landmask = open_raster(landmask_path)
        self.landmask_path = landmask_path
        self.crs = crs_string(self._landmask)
        self.geotransform = tuple(self._landmask.GetGeoTransform())
        self.width, self.height = self._landmask.RasterXSize, self._landmask.RasterYSize
        try:
            self._embedding = np.load(embedding_path, mmap_mode="r")
            self._scales = np.load(scales_path, mmap_mode="r")
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
                f"{os.path.basename(landmask_path)} is {(self.height, self.width)}; the files belong to different versions."
            )

    @property
    def bounds(self):
        c, a, _, f, _, e = self.geotransform
        return (c, f + e * self.height, c + a * self.width, f)

    def read(self, col, row, width, height):
        codes = np.asarray(self._embedding[row : row + height, col : col + width, :])
        scales = np.asarray(self._scales[row : row + height, col : col + width], dtype=np.float32)
        land = read_window(self._landmask, self.landmask_path, col, row, width, height)[0]
        if scales.ndim == 3:  # geotessera also allows one scale per band
            values = codes.astype(np.float32) * scales
            scale_ok = np.isfinite(scales).all(axis=2) & (scales != 0).any(axis=2)
        else:
            values = codes.astype(np.float32) * scales[:, :, np.newaxis]
            scale_ok = np.isfinite(scales) & (scales != 0)
        return np.ascontiguousarray(values.transpose(2, 0, 1)), scale_ok & (land != 0)

    def close(self):
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

    def read(self, col, row, width, height):
        values, valid = super().read(col, row, width, height)
        if self._landmask is not None:
            valid = valid & (read_window(self._landmask, self.landmask_path, col, row, width, height)[0] != 0)
        return values, valid

    def close(self):
        super().close()
        self._landmask = None


def _export_tile(path, landmasks):
    dataset = open_raster(path)
    if dataset.RasterCount != 128 or dataset.GetRasterBand(1).DataType != gdal.GDT_Float32:
        raise GeoEmbedError(f"{os.path.basename(path)} is not a Tessera export: expected 128 Float32 bands.")
    match = EXPORT.match(os.path.basename(path))
    tile = ExportTile(path, dataset, landmasks.get(f"grid_{match.group(1)}_{match.group(2)}"))
    tile.year = int(match.group(3))
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


def _open_npy_tile(embedding_path, landmasks):
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
    return TesseraTile(embedding_path, scales, landmask, int(match.group(1)) if match else None)


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
    if not source:
        raise GeoEmbedError(f"SOURCE is required for Tessera; give {WHAT}.")
    if is_url(source):
        raise GeoEmbedError("Tessera is read from local files; download tiles with geotessera and give their folder as SOURCE.")
    if not os.path.exists(source):
        raise GeoEmbedError(f"SOURCE {source} does not exist; give {WHAT}.")
    wgs84 = extent_lonlat(request)
    if source.endswith(".parquet"):
        tiles = _tiles_from_manifest(source, wgs84, request, log)
    else:
        if os.path.isfile(source):
            embeddings = [source] if EMBEDDING.match(os.path.basename(source)) else []
            exports = [source] if EXPORT.match(os.path.basename(source)) else []
            if not embeddings and not exports:
                raise GeoEmbedError(f"{os.path.basename(source)} is not a Tessera tile: expected grid_{{lon}}_{{lat}}.npy.")
        else:
            embeddings, exports, _ = _scan(source)
        if not embeddings and not exports:
            raise GeoEmbedError(f"No Tessera tiles (grid_{{lon}}_{{lat}}.npy or exports) under {source}.")
        # Open only the tiles whose 0.1-degree cell (named by its centre) can meet the extent.
        embeddings, exports = _near(embeddings, wgs84), _near(exports, wgs84)
        if not embeddings and not exports:
            raise GeoEmbedError(f"No Tessera tile covers the extent {fmt(wgs84)} (lon/lat); check EXTENT and its CRS.")
        # Landmasks live beside the embeddings' folder tree (download and Source Cooperative layouts).
        landmasks = _scan(_dataset_root(source))[2]
        tiles = [_open_npy_tile(path, landmasks) for path in embeddings] + [_export_tile(path, landmasks) for path in exports]
    tiles = tiles_under(tiles, wgs84, "Tessera")
    tiles, year = pick_year(tiles, request, log, "Tessera")
    unmasked = [tile for tile in tiles if isinstance(tile, ExportTile) and tile.landmask_path is None]
    if unmasked:
        log.warning(
            f"No landmask found for {len(unmasked)} Tessera GeoTIFF export(s) ({os.path.basename(unmasked[0].location)}"
            f"{', ...' if len(unmasked) > 1 else ''}): water cannot be told apart from land without the landmasks, so "
            "it is kept; put the landmasks folder (global_0.1_degree_tiff_all/ or landmasks/) under SOURCE to make it nodata."
        )
    return build_mosaic(
        tiles,
        request,
        wgs84,
        PRODUCT,
        BAND_NAMES,
        year,
        log,
        utm_default=True,
        notes=[
            "int8 embeddings multiplied by their per-pixel scales (GeoTIFF exports: float32 as stored); water (landmask 0) "
            "and missing scales are nodata."
        ],
    )


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


def _tiles_from_manifest(manifest, wgs84, request, log):
    if wgs84 is None:
        raise GeoEmbedError("EXTENT is required with a Tessera manifest; set EXTENT (e.g. the map canvas).")
    names = open_parquet(manifest).schema_arrow.names
    missing = [c for c in ("lon", "lat", "year", "grid_size") if c not in names]
    if missing:
        raise GeoEmbedError(f"{os.path.basename(manifest)} is not a Tessera manifest: it lacks {', '.join(missing)}.")
    west, south, east, north = wgs84
    filters = [
        ("lon", ">=", west - HALF_CELL_DEG),
        ("lon", "<=", east + HALF_CELL_DEG),
        ("lat", ">=", south - HALF_CELL_DEG),
        ("lat", "<=", north + HALF_CELL_DEG),
        ("grid_size", ">", 0),
    ]
    if request.year is not None:
        filters.append(("year", "=", request.year))
    columns = [c for c in ("lon", "lat", "year", "grid_path") if c in names]
    rows = pyarrow_parquet().read_table(manifest, columns=columns, filters=filters).to_pylist()
    if not rows:
        when = request.year if request.year is not None else "any year"
        raise GeoEmbedError(f"The Tessera manifest lists no tile for the extent {fmt(wgs84)} in {when}; check EXTENT and YEAR.")
    root = _dataset_root(manifest)
    _, _, landmasks = _scan(os.path.join(root, "landmasks")) if os.path.isdir(os.path.join(root, "landmasks")) else _scan(root)
    npy_dir = os.path.dirname(os.path.abspath(manifest))
    tiles, seen = [], set()
    for row in rows:
        key = (row["year"], round(row["lon"] * 100), round(row["lat"] * 100))
        if key in seen:  # the manifest may repeat a tile
            continue
        seen.add(key)
        stem = f"grid_{row['lon']:.2f}_{row['lat']:.2f}"
        path = os.path.join(npy_dir, str(row["year"]), stem, f"{stem}.npy")
        if not os.path.exists(path):
            log.warning(f"Tessera tile {stem} ({row['year']}) is in the manifest but not in the mirror; its area stays nodata.")
            continue
        tiles.append(_open_npy_tile(path, landmasks))
    if not tiles:
        raise GeoEmbedError("None of the Tessera tiles the manifest lists for the extent are in the mirror; download them.")
    return tiles
