"""Patch products (one vector per chip, in GeoParquet): the patches that meet the extent as a raster.

The rows are read by patch_files; patch_lattice finds the UTM zone the chips were cut in and their own lattice;
patch_placement puts them on the grid (one pixel per patch on that lattice, see its docstring for the rule).
"""

import json
import os

import numpy as np

from ..errors import GeoEmbedError
from ..model import NODATA, EmbeddingBlock, EmbeddingRaster, Provenance
from ..raster.grid import transform_bounds, utm_crs_for
from ..raster.planning import extent_lonlat
from .geoparquet import open_parquet
from .patch_files import parquet_files, read_patches
from .patch_lattice import Footprints, lattice_description, native_zone
from .patch_placement import SNAPPED, contain_on_grid, date_ranks, place, snap_on_grid


class PatchRaster(EmbeddingRaster):
    """Patches placed on a grid: each pixel holds the vector of the patch the placement chose for it."""

    def __init__(self, table, placement, provenance):
        self.patches = table  # what OUTPUT_PATCHES writes (may be narrowed to the extent)
        self._embeddings = table.embeddings
        self.placement = placement
        self.grid = placement.grid
        self.band_names = table.band_names
        self.provenance = provenance
        self._index = placement.index

    def read(self, window):
        index = self._index[window.row : window.row + window.height, window.col : window.col + window.width]
        valid = index >= 0
        values = np.full((self.band_count,) + index.shape, NODATA, dtype=np.float32)
        values[:, valid] = self._embeddings[index[valid]].T
        return EmbeddingBlock(values, valid)

    def close(self):
        pass


def placement_of(table, request, point_size_m):
    """Where the table's patches go: the output CRS (the request's, else the UTM zone the chips were cut in) and the
    Placement on it."""
    if request.resolution is not None and request.resolution <= 0:
        raise GeoEmbedError(f"RESOLUTION must be greater than 0, got {request.resolution}.")
    footprints = Footprints(table.geometries)
    crs = request.crs
    if not crs:
        zone = native_zone(footprints, point_size_m)
        crs = zone.crs if zone else _centre_zone(request, footprints)
    bounds = transform_bounds(request.extent_crs, crs, request.extent) if request.extent else None
    return place(footprints, date_ranks(table.dates), crs, request.resolution, bounds, point_size_m)


def _centre_zone(request, footprints):
    """The UTM zone of the extent's centre, else of the patches' centre (when nothing tells the chips' own zone)."""
    box = extent_lonlat(request) or (footprints.lon.min(), footprints.lat.min(), footprints.lon.max(), footprints.lat.max())
    return utm_crs_for((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def build_patch_raster(table, request, product, log, variant, notes=(), point_size_m=None):
    """Place a PatchTable on a grid (see patch_placement) and describe it in the log and the provenance."""
    placement = placement_of(table, request, point_size_m or product.resolution_m)
    grid = placement.grid
    snapped = placement.rule == SNAPPED
    provenance = Provenance(
        product=product.id,
        product_name=f"{product.name}: {variant}",
        sources=table.sources,
        dequantization=product.dequantization,
        licence=product.licence,
        attribution=product.attribution,
        resampling=(
            "one pixel per patch on the patches' own lattice (where patches share a pixel: latest date, then nearest centre)"
            if snapped
            else "patch containing the pixel centre (latest date, then nearest patch centre)"
        ),
        notes=list(notes) + table.notes,
    )
    years = sorted({int(d[:4]) for d in table.dates if d and d[:4].isdigit()})
    provenance.year = years[-1] if years else None
    if snapped:
        log.info(lattice_description(placement.lattice, grid, len(table), placement.moved))
    else:
        log.info(
            f"The patches do not form one lattice of {grid.res_x:g} x {grid.res_y:g} cells in {grid.crs} "
            "(another pixel size or CRS, or overlapping fragments): each pixel takes the patch containing its centre."
        )
    log.info(
        f"Rasterising {len(table)} patch(es) of {product.id} {variant} onto a {grid.width} x {grid.height} "
        f"grid in {grid.crs} with {grid.res_x:g} x {grid.res_y:g} units per cell."
    )
    return PatchRaster(table, placement, provenance)


def patch_fields_json(vector):
    """An embedding as compact JSON text (for the vector output)."""
    return json.dumps([float(f"{v:.7g}") for v in vector], separators=(",", ":"))


def plan_patch_product(request, log, product, accept, layout, variant_of, what, notes_of=None, point_size_m=None):
    """Read the product's parquet files under SOURCE and rasterise the patches in the extent.

    point_size_m: callable(dims) -> side in metres of the patch a point geometry stands for (default: the catalog's)."""
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
    dims = table.embeddings.shape[1]
    variant = variant_of(open_parquet(first).schema_arrow, dims)
    notes = notes_of(first) if notes_of else []
    side = point_size_m(dims) if point_size_m else None
    raster = build_patch_raster(table, request, product, log, variant, notes, side)
    if wgs84 is not None:
        # Cells at the border reach past the extent (a lon/lat box is not a box in UTM): their patches may not meet
        # the extent, so they come from a second, wider read, placed on the same grid by the same rule.
        grid_lonlat = transform_bounds(raster.grid.crs, "EPSG:4326", raster.grid.bounds)
        if not _contains(wgs84, grid_lonlat):
            wider = read_patches(files, grid_lonlat, layout, _SilentLog())  # its warnings were given already
            size = side or product.resolution_m
            footprints, ranks = Footprints(wider.geometries), date_ranks(wider.dates)
            again = snap_on_grid if raster.placement.rule == SNAPPED else contain_on_grid
            raster = PatchRaster(wider, again(footprints, ranks, raster.grid, size), raster.provenance)
            raster.patches = table
    return raster


class _SilentLog:
    def info(self, message):
        pass

    warning = info


def _contains(outer, inner):
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]
