"""Patch products (one vector per chip, in GeoParquet): rasterise the patches that meet the extent onto a grid.

The rows are read by patch_files. Rasterising gives each pixel the vector of the patch that contains
the pixel's centre; where patches overlap, the latest date wins, then the patch whose centre is nearest.
"""

import json
import math
import os

import numpy as np

from .errors import GeoEmbedError
from .geoparquet import open_parquet, wkb_bounds, wkb_rings
from .grid import grid_from_bounds, metres_to_crs_units, points_in_rings, transform_bounds, transformer, utm_crs_for
from .model import NODATA, EmbeddingBlock, EmbeddingRaster, Provenance
from .patch_files import parquet_files, read_patches
from .planning import MAX_PIXELS, extent_lonlat, union


class PatchRaster(EmbeddingRaster):
    """Patches rasterised onto a grid: each pixel holds the vector of the patch containing its centre."""

    def __init__(self, table, grid, provenance):
        self.patches = table  # what OUTPUT_PATCHES writes (may be narrowed to the extent)
        self._embeddings = table.embeddings
        self.grid = grid
        self.band_names = table.band_names
        self.provenance = provenance
        self._index = rasterise(table, grid)

    def read(self, window):
        index = self._index[window.row : window.row + window.height, window.col : window.col + window.width]
        valid = index >= 0
        values = np.full((self.band_count,) + index.shape, NODATA, dtype=np.float32)
        values[:, valid] = self._embeddings[index[valid]].T
        return EmbeddingBlock(values, valid)

    def close(self):
        pass


def patch_rings(table, crs, cell=None):
    """Every patch as rings in crs (points become squares of side cell)."""
    move = transformer("EPSG:4326", crs)
    out = []
    for wkb in table.geometries:
        rings = []
        for ring in wkb_rings(wkb):
            x, y = move.transform(ring[:, 0], ring[:, 1])
            if len(ring) == 1:  # a point: the patch is the square around it
                half = (cell or 0) / 2
                x, y = x[0] + np.array([-half, half, half, -half, -half]), y[0] + np.array([-half, -half, half, half, -half])
            rings.append(np.column_stack([x, y]))
        out.append(rings)
    return out


def typical_patch_size(rings_per_patch):
    """Median side of the patches (square root of their area), in CRS units; None for points."""
    sides = [math.sqrt(abs(_area(rings[0]))) for rings in rings_per_patch if rings and len(rings[0]) > 3]
    if not sides:
        return None
    side = float(np.median(sides))
    return round(side) if side >= 10 else round(side, 6)


def _area(ring):
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def rasterise(table, grid):
    """int32 (rows, cols) index of the patch chosen for each pixel, -1 where none."""
    rings_per_patch = patch_rings(table, grid.crs, cell=grid.res_x)
    ranks = _date_ranks(table.dates)
    best = np.full((grid.height, grid.width), -1, dtype=np.int32)
    best_rank = np.full(best.shape, -1, dtype=np.int64)
    best_distance = np.full(best.shape, np.inf)
    xs_all, ys_all = grid.pixel_centres()
    for index, rings in enumerate(rings_per_patch):
        if not rings:
            continue
        xmin = min(r[:, 0].min() for r in rings)
        xmax = max(r[:, 0].max() for r in rings)
        ymin = min(r[:, 1].min() for r in rings)
        ymax = max(r[:, 1].max() for r in rings)
        c0 = max(0, math.floor((xmin - grid.x0) / grid.res_x - 0.5))
        c1 = min(grid.width, math.ceil((xmax - grid.x0) / grid.res_x + 0.5))
        r0 = max(0, math.floor((grid.y0 - ymax) / grid.res_y - 0.5))
        r1 = min(grid.height, math.ceil((grid.y0 - ymin) / grid.res_y + 0.5))
        if c0 >= c1 or r0 >= r1:
            continue
        gx, gy = np.meshgrid(xs_all[c0:c1], ys_all[r0:r1])
        inside = points_in_rings(gx, gy, rings)
        if not inside.any():
            continue
        centre_x, centre_y = (xmin + xmax) / 2, (ymin + ymax) / 2
        distance = np.hypot(gx - centre_x, gy - centre_y)
        rank = ranks[index]
        here = (slice(r0, r1), slice(c0, c1))
        better = inside & ((rank > best_rank[here]) | ((rank == best_rank[here]) & (distance < best_distance[here])))
        best[here][better] = index
        best_rank[here][better] = rank
        best_distance[here][better] = distance[better]
    return best


def _date_ranks(dates):
    known = sorted({d for d in dates if d is not None})
    order = {d: i for i, d in enumerate(known)}
    return np.array([order.get(d, -1) if d is not None else 0 for d in dates], dtype=np.int64)


def build_patch_raster(table, request, product, log, variant, notes=()):
    """Rasterise a PatchTable onto a grid in the UTM zone of the extent's centre (or CRS), cell = patch size."""
    wgs84 = extent_lonlat(request)
    lonlat_box = wgs84 or union(wkb_bounds(w) for w in table.geometries)
    crs = request.crs or utm_crs_for((lonlat_box[0] + lonlat_box[2]) / 2, (lonlat_box[1] + lonlat_box[3]) / 2)
    if request.resolution is not None and request.resolution <= 0:
        raise GeoEmbedError(f"RESOLUTION must be greater than 0, got {request.resolution}.")
    cell = request.resolution or typical_patch_size(patch_rings(table, crs)) or metres_to_crs_units(crs, product.resolution_m)
    bounds = (
        transform_bounds(request.extent_crs, crs, request.extent)
        if request.extent
        else transform_bounds("EPSG:4326", crs, lonlat_box)
    )
    grid = grid_from_bounds(crs, bounds, cell)
    if grid.width * grid.height > MAX_PIXELS:
        raise GeoEmbedError(
            f"The output would be {grid.width} x {grid.height} pixels; use a smaller EXTENT or a coarser RESOLUTION."
        )
    provenance = Provenance(
        product=product.id,
        product_name=f"{product.name}: {variant}",
        sources=table.sources,
        dequantization=product.dequantization,
        licence=product.licence,
        attribution=product.attribution,
        resampling="patch containing the pixel centre (latest date, then nearest patch centre)",
        notes=list(notes) + table.notes,
    )
    years = sorted({int(d[:4]) for d in table.dates if d and d[:4].isdigit()})
    provenance.year = years[-1] if years else None
    log.info(
        f"Rasterising {len(table)} patch(es) of {product.id} {variant} onto a {grid.width} x {grid.height} "
        f"grid in {crs} with {cell:g} units per cell."
    )
    return PatchRaster(table, grid, provenance)


def patch_fields_json(vector):
    """An embedding as compact JSON text (for the vector output)."""
    return json.dumps([float(f"{v:.7g}") for v in vector], separators=(",", ":"))


def plan_patch_product(request, log, product, accept, layout, variant_of, what, notes_of=None):
    """Read the product's parquet files under SOURCE and rasterise the patches in the extent."""
    if not request.source:
        raise GeoEmbedError(f"SOURCE is required for {product.name}; give {what}.")
    if not os.path.exists(request.source):
        raise GeoEmbedError(f"SOURCE {request.source} does not exist; give {what}.")
    files = parquet_files(request.source, accept)
    if not files:
        raise GeoEmbedError(f"No {product.name} files ({what}) under {request.source}; check SOURCE or PRODUCT.")
    wgs84 = extent_lonlat(request)
    table = read_patches(files, wgs84, layout, log)
    first = table.sources[0]  # name the variant from a file that was read, not just found
    variant = variant_of(open_parquet(first).schema_arrow, table.embeddings.shape[1])
    notes = notes_of(first) if notes_of else []
    raster = build_patch_raster(table, request, product, log, variant, notes)
    if wgs84 is not None:
        # Border cells have centres outside the extent: their patches come from a second, wider read.
        grid_lonlat = transform_bounds(raster.grid.crs, "EPSG:4326", raster.grid.bounds)
        if not _contains(wgs84, grid_lonlat):
            wider = read_patches(files, grid_lonlat, layout, _SilentLog())  # its warnings were given already
            raster = PatchRaster(wider, raster.grid, raster.provenance)
            raster.patches = table
    return raster


class _SilentLog:
    def info(self, message):
        pass

    warning = info


def _contains(outer, inner):
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]
