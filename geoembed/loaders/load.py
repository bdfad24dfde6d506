"""geoembed:load without QGIS: a request in, a north-up Float32 GeoTIFF out."""

import os
from dataclasses import dataclass

from . import aef, catalog
from .errors import GeoEmbedError
from .grid import boxes_overlap, grid_from_bounds, metres_to_crs_units, same_crs, transform_bounds, utm_crs_for
from .model import Provenance
from .mosaic import TileMosaic
from .writer import check_destination, write_geotiff

MAX_PIXELS = 1 << 31


@dataclass
class LoadRequest:
    output: str
    product: str = "auto"
    source: str = None
    extent: tuple = None  # (xmin, ymin, xmax, ymax) in extent_crs
    extent_crs: str = "EPSG:4326"
    year: int = None
    crs: str = None
    resolution: float = None  # in the target CRS's units; default: the product's native 10 m
    cache_dir: str = None


@dataclass
class LoadResult:
    output: str
    product: str
    grid: object
    provenance: Provenance


class PrintLog:
    """Default log for scripts."""

    def info(self, message):
        print(message)

    def warning(self, message):
        print("Warning:", message)


def detect_product(source, classified):
    """(product id, reason) for PRODUCT=auto; classified is aef.classify_source(source)."""
    if not source:
        return "aef", "no SOURCE (the public AlphaEarth copy is the default)"
    reason = aef.recognise(*classified)
    if reason:
        return "aef", reason
    valid = ", ".join(catalog.PRODUCTS)
    raise GeoEmbedError(f"Cannot recognise {source} as any supported product ({valid}); set PRODUCT or check SOURCE.")


def run(request, log=None, progress=None, is_cancelled=None, client=None):
    """Load, mosaic and write; returns a LoadResult."""
    log = log or PrintLog()
    check_destination(request.output)
    product_id = request.product or "auto"
    if product_id != "auto":
        catalog.product(product_id)  # unknown ids get the list of valid ones
    # Classifying first makes a missing path or an unreachable URL say so, whatever PRODUCT is.
    classified = aef.classify_source(request.source, client)
    if product_id == "auto":
        product_id, reason = detect_product(request.source, classified)
        log.info(f"PRODUCT=auto: found {reason}, so reading it as {catalog.product(product_id).name} ({product_id}).")
    mosaic = plan_aef(request, log, classified)
    try:
        write_geotiff(mosaic, request.output, progress, is_cancelled)
    finally:
        mosaic.close()
    return LoadResult(request.output, product_id, mosaic.grid, mosaic.provenance)


def plan_aef(request, log, classified=None, client=None):
    """A TileMosaic of the AEF tiles that cover the request, on the requested grid."""
    if not request.source:
        log.info(f"No SOURCE given: reading the public AEF copy at {aef.DEFAULT_ROOT}.")
    kind, value = classified or aef.classify_source(request.source, client)
    wgs84 = transform_bounds(request.extent_crs, "EPSG:4326", request.extent) if request.extent else None
    if kind == "index":
        tiles, year = _tiles_from_index(value, wgs84, request, log, client)
    elif kind == "tiles":
        tiles, year = _tiles_from_folder(value, wgs84, request, log)
    else:
        tiles = [aef.open_tile(value)]
        year = tiles[0].year
        if request.year is not None and year is not None and year != request.year:
            log.warning(f"YEAR={request.year} ignored: the tile {os.path.basename(value)} is from {year}.")
    grid = _target_grid(tiles, request, wgs84)
    tiles = _order_for(grid, _covering(tiles, grid, request))
    product = catalog.AEF
    provenance = Provenance(
        product=product.id,
        product_name=product.name,
        year=year,
        sources=[tile.location for tile in tiles],
        dequantization=product.dequantization,
        licence=product.licence,
        attribution=product.attribution,
        notes=["South-up int8 tiles were read in place and written north-up as Float32."],
    )
    log.info(
        f"Mosaicking {len(tiles)} AEF tile(s) from {year or 'an unknown year'} onto a {grid.width} x {grid.height} grid "
        f"in {grid.crs} at {grid.res_x:g} units per pixel (nearest neighbour)."
    )
    return TileMosaic(tiles, grid, aef.BAND_NAMES, provenance)


def _tiles_from_index(index_location, wgs84, request, log, client):
    if wgs84 is None:
        raise GeoEmbedError(
            "EXTENT is required with an AEF index, which covers the whole world; set EXTENT (e.g. the map canvas)."
        )
    local = aef.index_local_copy(index_location, request.cache_dir, client, log)
    rows, years = aef.read_index(local, wgs84, request.year)
    if not rows:
        when = request.year if request.year is not None else "any year"
        raise GeoEmbedError(f"No AEF tile covers the extent {_fmt(wgs84)} (lon/lat) in {when}; check EXTENT and its CRS.")
    year = int(rows[0]["year"])
    if request.year is None:
        log.info(f"YEAR not set: using {year}, the latest year with tiles here (the index has {aef.year_span(years)}).")
    tiles = []
    for row in rows:
        location = aef.resolve_index_path(index_location, row["path"])
        if not aef.is_url(location) and not os.path.exists(location):
            log.warning(f"Tile {row['path']} is listed in the index but missing from the mirror; its area stays nodata.")
            continue
        tiles.append(aef.open_tile(location))
    if not tiles:
        raise GeoEmbedError(
            f"None of the {len(rows)} tile(s) covering the extent exist in the mirror; download them or use the public SOURCE."
        )
    return tiles, year


def _tiles_from_folder(locations, wgs84, request, log):
    tiles = [aef.open_tile(location) for location in locations]
    if wgs84 is not None:  # choose the year among the tiles under the extent, as with an index
        tiles = [tile for tile in tiles if boxes_overlap(transform_bounds(tile.crs, "EPSG:4326", tile.bounds), wgs84)]
        if not tiles:
            raise GeoEmbedError(f"No AEF tile covers the extent {_fmt(wgs84)} (lon/lat) in the folder; check EXTENT and its CRS.")
    years = sorted({tile.year for tile in tiles if tile.year is not None})
    year = request.year
    if year is None and len(years) > 1:
        year = years[-1]
        log.info(f"YEAR not set: using {year}, the latest of the years found ({aef.year_span(years)}).")
    if year is not None:
        tiles = [tile for tile in tiles if tile.year in (year, None)]
        if not tiles:
            raise GeoEmbedError(f"No AEF tiles for {year} in the folder; years found: {aef.year_span(years)}.")
    elif years:
        year = years[0]
    return tiles, year


def _target_grid(tiles, request, wgs84):
    if request.crs:
        crs = request.crs
    elif wgs84 is not None:
        crs = utm_crs_for((wgs84[0] + wgs84[2]) / 2, (wgs84[1] + wgs84[3]) / 2)
    elif all(same_crs(tile.crs, tiles[0].crs) for tile in tiles):
        crs = tiles[0].crs
    else:
        west, south, east, north = _union(transform_bounds(t.crs, "EPSG:4326", t.bounds) for t in tiles)
        crs = utm_crs_for((west + east) / 2, (south + north) / 2)
    if request.resolution is not None and request.resolution <= 0:
        raise GeoEmbedError(f"RESOLUTION must be greater than 0, got {request.resolution}.")
    resolution = request.resolution or metres_to_crs_units(crs, catalog.AEF.resolution_m)
    if request.extent:
        bounds = transform_bounds(request.extent_crs, crs, request.extent)
    else:
        bounds = _union(transform_bounds(t.crs, crs, t.bounds) for t in tiles)
    grid = grid_from_bounds(crs, bounds, resolution)
    if grid.width * grid.height > MAX_PIXELS:
        raise GeoEmbedError(
            f"The output would be {grid.width} x {grid.height} pixels; use a smaller EXTENT or a coarser RESOLUTION."
        )
    return grid


def _covering(tiles, grid, request):
    kept = [tile for tile in tiles if boxes_overlap(transform_bounds(tile.crs, grid.crs, tile.bounds), grid.bounds)]
    if not kept:
        raise GeoEmbedError(f"No AEF tile covers the extent {_fmt(request.extent)}; check EXTENT and its CRS.")
    return kept


def _order_for(grid, tiles):
    """Tiles already in the output CRS first (copied exactly), then by name: a deterministic seam rule."""
    return sorted(tiles, key=lambda tile: (not same_crs(tile.crs, grid.crs), tile.location))


def _union(boxes):
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _fmt(bounds):
    return "(" + ", ".join(f"{v:.5g}" for v in bounds) + ")" if bounds else "(none)"
