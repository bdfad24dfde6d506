"""Shared planning for pixel products: which tiles, which year, which output grid, one mosaic."""

from ..errors import GeoEmbedError, YearNotFound
from ..model import Provenance
from .grid import boxes_overlap, footprint_in, grid_from_bounds, metres_to_crs_units, same_crs, transform_bounds, utm_crs_for
from .mosaic import TileMosaic

MAX_PIXELS = 1 << 31


def extent_lonlat(request):
    """The request's extent as lon/lat bounds, or None."""
    return transform_bounds(request.extent_crs, "EPSG:4326", request.extent) if request.extent else None


def tiles_under(tiles, wgs84, label):
    """Tiles whose footprint meets the lon/lat extent (all of them when there is no extent)."""
    if wgs84 is None:
        return tiles
    kept = [tile for tile in tiles if boxes_overlap(footprint_in(tile, "EPSG:4326"), wgs84)]
    if not kept:
        raise GeoEmbedError(f"No {label} tile covers the extent {fmt(wgs84)} (lon/lat); check EXTENT and its CRS.")
    return kept


def pick_year(tiles, request, log, label):
    """Keep the tiles of request.year (or of the latest year present); returns (tiles, year)."""
    years = sorted({tile.year for tile in tiles if tile.year is not None})
    year = request.year
    if year is None and len(years) > 1:
        year = years[-1]
        log.info(f"YEAR not set: using {year}, the latest of the years found ({year_span(years)}).")
    if year is not None:
        tiles = [tile for tile in tiles if tile.year in (year, None)]
        if not tiles:
            raise YearNotFound(f"No {label} tiles for {year} here; years found: {year_span(years)}.", years)
    elif years:
        year = years[0]
    return tiles, year


def target_grid(tiles, request, wgs84, native_m, utm_default):
    """The output grid: CRS, pixel size and extent from the request, else from the product's conventions.

    utm_default: products spread over many UTM zones (AEF, Tessera) default to the UTM zone of the
    extent's centre; others keep their files' own CRS. A request with a grid (several years on one grid) gets it.
    """
    if getattr(request, "grid", None) is not None:
        return request.grid
    common = tiles[0].crs if all(same_crs(tile.crs, tiles[0].crs) for tile in tiles) else None
    if request.crs:
        crs = request.crs
    elif utm_default and wgs84 is not None:
        crs = utm_crs_for((wgs84[0] + wgs84[2]) / 2, (wgs84[1] + wgs84[3]) / 2)
    elif common:
        crs = common
    else:
        west, south, east, north = union(transform_bounds(t.crs, "EPSG:4326", t.bounds) for t in tiles)
        crs = utm_crs_for((west + east) / 2, (south + north) / 2)
    if request.resolution is not None and request.resolution <= 0:
        raise GeoEmbedError(f"RESOLUTION must be greater than 0, got {request.resolution}.")
    native_here = common and same_crs(crs, common)
    if request.resolution:
        resolution = request.resolution
    elif native_here:
        resolution = abs(tiles[0].geotransform[1])
    else:
        resolution = metres_to_crs_units(crs, native_m)
    anchor = _tile_origin(tiles[0]) if native_here and resolution == abs(tiles[0].geotransform[1]) else (0.0, 0.0)
    if request.extent:
        bounds = transform_bounds(request.extent_crs, crs, request.extent)
    else:
        bounds = union(transform_bounds(t.crs, crs, t.bounds) for t in tiles)
    grid = grid_from_bounds(crs, bounds, resolution, anchor=anchor)
    if grid.width * grid.height > MAX_PIXELS:
        raise GeoEmbedError(
            f"The output would be {grid.width} x {grid.height} pixels; use a smaller EXTENT or a coarser RESOLUTION."
        )
    return grid


def _tile_origin(tile):
    """West and north edges of a tile (whatever its orientation): the anchor of a pixel-aligned output."""
    west, south, _, north = tile.bounds
    return west, north


def build_mosaic(tiles, request, wgs84, product, band_names, year, log, utm_default, notes=(), dequantization=None):
    """A TileMosaic of the tiles that meet the output grid, with provenance, and a line in the log."""
    grid = target_grid(tiles, request, wgs84, product.resolution_m, utm_default)
    tiles = [tile for tile in tiles if boxes_overlap(footprint_in(tile, grid.crs), grid.bounds)]
    if not tiles and getattr(request, "grid", None) is not None:
        raise YearNotFound(f"No {product.name} tile of {year} covers the grid of the other years.")
    if not tiles:
        raise GeoEmbedError(f"No {product.name} tile covers the extent {fmt(request.extent)}; check EXTENT and its CRS.")
    # Tiles already in the output CRS first (copied exactly), then by name: a deterministic seam rule.
    tiles.sort(key=lambda tile: (not same_crs(tile.crs, grid.crs), tile.location))
    provenance = Provenance(
        product=product.id,
        product_name=product.name,
        year=year,
        sources=[tile.location for tile in tiles],
        dequantization=dequantization or product.dequantization,
        licence=product.licence,
        attribution=product.attribution,
        notes=list(notes),
    )
    log.info(
        f"Mosaicking {len(tiles)} {product.id} tile(s) from {year or 'an unknown year'} onto a {grid.width} x {grid.height} "
        f"grid in {grid.crs} at {grid.res_x:g} units per pixel (nearest neighbour)."
    )
    return TileMosaic(tiles, grid, band_names, provenance)


def union(boxes):
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def year_span(years):
    if not years:
        return "none"
    if list(years) == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}-{years[-1]}"
    return ", ".join(map(str, years))


def fmt(bounds):
    return "(" + ", ".join(f"{v:.5g}" for v in bounds) + ")" if bounds else "(none)"
