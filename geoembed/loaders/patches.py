"""Patch products (one vector per chip, in GeoParquet): read what meets the extent, rasterise onto a grid.

Reading uses column projection and row groups: geometries first (to find the rows in the extent),
then embeddings only for the row groups holding such rows. Rasterising gives each pixel the vector
of the patch that contains the pixel's centre; where patches overlap, the latest date wins, then
the patch whose centre is nearest.
"""

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyproj import CRS

from .errors import Cancelled, GeoEmbedError
from .geoparquet import geo_metadata, geometry_column, open_parquet, wkb_bounds, wkb_rings
from .grid import (
    boxes_overlap,
    grid_from_bounds,
    metres_to_crs_units,
    points_in_rings,
    transform_bounds,
    transformer,
    utm_crs_for,
)
from .model import NODATA, EmbeddingBlock, EmbeddingRaster, Provenance
from .planning import MAX_PIXELS, extent_lonlat, fmt, union
from .remote import is_url

LONLAT = "OGC:CRS84"


@dataclass
class PatchTable:
    """Patches in lon/lat: WKB geometries, ids, dates (ISO text or None), embeddings (n, dims) float32."""

    geometries: list
    ids: list
    dates: list
    embeddings: np.ndarray
    band_names: tuple
    sources: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def __len__(self):
        return len(self.geometries)


@dataclass
class PatchLayout:
    """How one product names its columns."""

    embedding_columns: tuple
    id_columns: tuple = ()
    date_columns: tuple = ()
    band_prefix: str = "E"
    date_from_path: object = None  # callable(path) -> ISO date, for files without a date column


def embedding_column(schema, layout):
    for name in layout.embedding_columns:
        if name in schema.names:
            return name
    return None


def file_crs(schema, path, log):
    """CRS of the geometry column: GeoParquet metadata, else lon/lat (said in the log)."""
    meta = geo_metadata(schema)
    column = geometry_column(schema)
    if meta is None or column not in meta.get("columns", {}):
        log.warning(f"{os.path.basename(path)} has no GeoParquet CRS; assuming lon/lat (WGS 84), as its producer does.")
        return LONLAT
    crs = meta["columns"][column].get("crs", LONLAT)
    if crs is None:
        return LONLAT
    parsed = CRS.from_user_input(crs) if isinstance(crs, str) else CRS.from_json_dict(crs)
    # GeoParquet stores x = longitude whatever the CRS's declared axis order (e.g. EPSG:4326).
    return LONLAT if parsed.is_geographic and parsed.datum.name.startswith("World Geodetic System 1984") else parsed.to_wkt()


def file_bbox(schema):
    """The file's bbox from its GeoParquet metadata (lon/lat for the usual CRS84 files), or None."""
    meta = geo_metadata(schema)
    column = geometry_column(schema)
    if meta and column in meta.get("columns", {}):
        bbox = meta["columns"][column].get("bbox")
        if bbox and len(bbox) == 4:
            return tuple(bbox)
    return None


def read_patches(paths, wgs84, layout, log, is_cancelled=None):
    """A PatchTable of the rows of all files whose geometry meets the lon/lat extent (all rows without one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    geometries, ids, dates, vectors, sources, dims = [], [], [], [], [], None
    for path in paths:
        parquet = open_parquet(path)
        schema = parquet.schema_arrow
        name = os.path.basename(path)
        column = embedding_column(schema, layout)
        if column is None:
            wanted = " or ".join(layout.embedding_columns)
            raise GeoEmbedError(f"{name} has no embedding column ({wanted}); it is not a file of this product.")
        geometry = geometry_column(schema)
        if geometry is None:
            raise GeoEmbedError(f"{name} has no geometry column; cannot place its patches.")
        crs = file_crs(schema, path, log)
        box = file_bbox(schema)
        if wgs84 is not None and box is not None and crs == LONLAT and not boxes_overlap(box, wgs84):
            continue  # the whole file is elsewhere: not even its geometries are read
        extent = wgs84 if crs == LONLAT or wgs84 is None else transform_bounds("EPSG:4326", crs, wgs84)
        id_column = next((c for c in layout.id_columns if c in schema.names), None)
        date_column = next((c for c in layout.date_columns if c in schema.names), None)
        for group in range(parquet.num_row_groups):
            if is_cancelled and is_cancelled():
                raise Cancelled()
            wkbs = parquet.read_row_group(group, columns=[geometry]).column(0).to_pylist()
            keep = [i for i, wkb in enumerate(wkbs) if wkb and (extent is None or _meets(wkb_bounds(wkb), extent))]
            if not keep:
                continue
            columns = [column] + [c for c in (id_column, date_column) if c]
            table = parquet.read_row_group(group, columns=columns).take(pa.array(keep))
            lengths = pc.list_value_length(table.column(column)).to_numpy(zero_copy_only=False)
            if lengths.size and (lengths.min() != lengths.max() or (dims is not None and lengths[0] != dims)):
                found = sorted({*lengths.tolist(), *([dims] if dims else [])})
                raise GeoEmbedError(
                    f"{name}: embeddings of different lengths {found[:4]} in one SOURCE; give one product variant."
                )
            dims = int(lengths[0])
            flat = pc.list_flatten(table.column(column)).to_numpy(zero_copy_only=False)
            vectors.append(np.asarray(flat, dtype=np.float32).reshape(len(keep), dims))
            selected = [wkbs[i] for i in keep]
            geometries.extend(selected if crs == LONLAT else [_to_lonlat(w, crs) for w in selected])
            ids.extend(table.column(id_column).to_pylist() if id_column else [None] * len(keep))
            if date_column:
                dates.extend(_iso(v) for v in table.column(date_column).to_pylist())
            else:
                dates.extend([layout.date_from_path(path) if layout.date_from_path else None] * len(keep))
            if path not in sources:
                sources.append(path)
    if not geometries:
        raise GeoEmbedError(f"No patch in SOURCE meets the extent {fmt(wgs84)} (lon/lat); check EXTENT and its CRS.")
    embeddings = np.concatenate(vectors)
    names = tuple(f"{layout.band_prefix}{i:04d}" if dims > 999 else f"{layout.band_prefix}{i:03d}" for i in range(dims))
    return PatchTable(geometries, [None if i is None else str(i) for i in ids], dates, embeddings, names, sources)


def _meets(box, extent):
    return box is not None and box[0] <= extent[2] and extent[0] <= box[2] and box[1] <= extent[3] and extent[1] <= box[3]


def _iso(value):
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _to_lonlat(wkb, crs):
    """Re-express a projected WKB polygon in lon/lat (rare: the published patch files are lon/lat)."""
    import struct

    rings = wkb_rings(wkb)
    move = transformer(crs, "EPSG:4326")
    out = [struct.pack("<BII", 1, 3, len(rings))]
    for ring in rings:
        lon, lat = move.transform(ring[:, 0], ring[:, 1])
        out.append(struct.pack("<I", len(ring)) + np.column_stack([lon, lat]).astype("<f8").tobytes())
    return b"".join(out)


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


PARQUET_SUFFIXES = (".parquet", ".gpq", ".geoparquet")


def parquet_files(source, accept):
    """Parquet files under SOURCE (a file or a folder) whose schema accept(schema, path) likes."""
    if not source or is_url(source):
        return []
    path = Path(source)
    candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in PARQUET_SUFFIXES)
    found, unreadable = [], []
    for candidate in candidates:
        if candidate.suffix.lower() not in PARQUET_SUFFIXES:
            continue
        try:
            schema = open_parquet(str(candidate)).schema_arrow
        except GeoEmbedError as exc:
            unreadable.append(exc)
            continue
        if accept(schema, str(candidate)):
            found.append(str(candidate))
    if unreadable and not found:  # a truncated download must not read as "no files here"
        raise GeoEmbedError(
            f"{str(unreadable[0]).rstrip('.')}; {len(unreadable)} file(s) under {source} could not be read: "
            "download them again (a cut-off download looks like this)."
        )
    return found


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
