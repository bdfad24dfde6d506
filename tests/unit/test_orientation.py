"""South-up AEF tiles come out north-up with the right values in the right places."""

import math

import numpy as np
import pytest

from geoembed.loaders.products.aef import BAND_NAMES, open_tile
from geoembed.loaders.raster.grid import Grid, Window, grid_from_bounds, transform_bounds
from geoembed.loaders.raster.mosaic import TileMosaic
from tests.fixtures.aef import PATCH_DEG, expected_values, patch_centre
from tests.unit.helpers import dequant_formula, expected_at, find_spec, raw_codes, tile_path, to_crs


@pytest.fixture(scope="module")
def south_tile(aef_mirror, aef_specs):
    """The 2024 31N tile with a nodata box; (spec, path)."""
    spec = find_spec(aef_specs, 2024, "31N")
    assert spec.nodata_boxes
    return spec, tile_path(aef_mirror, spec)


def _own_grid(spec):
    return Grid(f"EPSG:{spec.epsg}", spec.west, spec.south + 10 * spec.height, 10.0, 10.0, spec.width, spec.height)


def test_fixture_tile_is_south_up(south_tile):
    spec, path = south_tile
    tile = open_tile(str(path))
    assert tile.crs == f"EPSG:{spec.epsg}"
    assert tile.geotransform[5] > 0
    assert tile.geotransform == (spec.west, 10.0, 0.0, spec.south, 0.0, 10.0)
    assert tile.south_up
    assert (tile.width, tile.height) == (spec.width, spec.height)
    assert tile.bounds == spec.bounds
    assert (tile.year, tile.zone) == (2024, "31N")
    values, valid = tile.read(0, 0, 4, 3)
    assert values.dtype == np.float32 and values.shape == (64, 3, 4) and valid.shape == (3, 4)


def test_mosaic_on_own_footprint_is_the_vertically_flipped_tile(south_tile):
    spec, path = south_tile
    tile = open_tile(str(path))
    grid = _own_grid(spec)
    block = TileMosaic([tile], grid, BAND_NAMES, None).read(Window(0, 0, grid.width, grid.height))
    flipped = raw_codes(path)[:, ::-1, :]  # GDAL row 0 is the south: flip to put the north first
    expected_valid = ~(flipped == -128).any(axis=0)
    assert block.values.dtype == np.float32
    assert block.values.shape == (64, spec.height, spec.width)
    np.testing.assert_array_equal(block.valid, expected_valid)
    expected = dequant_formula(flipped)
    np.testing.assert_allclose(block.values[:, expected_valid], expected[:, expected_valid], rtol=1e-6, atol=0)
    # and not the unflipped array (the fixture's rows differ from north to south)
    unflipped = dequant_formula(raw_codes(path))
    assert not np.allclose(block.values[:, expected_valid], unflipped[:, expected_valid])


def test_blockwise_reading_gives_the_same_raster(south_tile):
    spec, path = south_tile
    tile = open_tile(str(path))
    mosaic = TileMosaic([tile], _own_grid(spec), BAND_NAMES, None)
    whole = mosaic.read(Window(0, 0, spec.width, spec.height))
    seen = np.zeros((spec.height, spec.width), dtype=int)
    for window, block in mosaic.blocks(100):  # 100 does not divide 320 x 256: edge blocks
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        np.testing.assert_array_equal(block.valid, whole.valid[rows, cols])
        np.testing.assert_array_equal(block.values[:, block.valid], whole.values[:, rows, cols][:, block.valid])
        seen[rows, cols] += 1
    assert (seen == 1).all()


def test_nodata_boxes_counted_from_the_north_are_invalid(south_tile):
    spec, path = south_tile
    tile = open_tile(str(path))
    block = TileMosaic([tile], _own_grid(spec), BAND_NAMES, None).read(Window(0, 0, spec.width, spec.height))
    expected = np.ones((spec.height, spec.width), dtype=bool)
    for row0, row1, col0, col1 in spec.nodata_boxes:
        expected[row0:row1, col0:col1] = False
    np.testing.assert_array_equal(block.valid, expected)


def _patch_centres_inside(bounds_lonlat, step=1):
    west, south, east, north = bounds_lonlat
    lons = np.arange(math.floor(west / PATCH_DEG) + 1, math.floor(east / PATCH_DEG), step)
    lats = np.arange(math.floor(south / PATCH_DEG) + 1, math.floor(north / PATCH_DEG), step)
    return [((i + 0.5) * PATCH_DEG, (j + 0.5) * PATCH_DEG) for i in lons for j in lats]


def _in_box(spec, x, y):
    """Is the map point (in the tile's CRS) inside one of the tile's nodata boxes (rows from the north)?"""
    col = math.floor((x - spec.west) / 10.0)
    row = math.floor((spec.south + 10 * spec.height - y) / 10.0)
    return any(r0 <= row < r1 and c0 <= col < c1 for r0, r1, c0, c1 in spec.nodata_boxes)


def _inside(spec, x, y):
    west, south, east, north = spec.bounds
    return west < x < east and south < y < north


def test_values_at_patch_centres(south_tile):
    spec, path = south_tile
    tile = open_tile(str(path))
    grid = _own_grid(spec)
    block = TileMosaic([tile], grid, BAND_NAMES, None).read(Window(0, 0, grid.width, grid.height))
    lonlat = transform_bounds(tile.crs, "EPSG:4326", tile.bounds)
    checked = skipped = 0
    for lon, lat in _patch_centres_inside(lonlat, step=2):
        x, y = to_crs(tile.crs, lon, lat)
        if not _inside(spec, x, y):
            continue
        col, row = grid.index_of(x, y)
        if _in_box(spec, x, y):
            assert not block.valid[row, col]
            skipped += 1
            continue
        assert block.valid[row, col], (lon, lat)
        expected = expected_at(lon, lat, 2024)
        np.testing.assert_allclose(block.values[:, row, col], expected, rtol=0, atol=1e-6, err_msg=f"at {lon}, {lat}")
        # the fixture's own expectation agrees with the independent one
        np.testing.assert_allclose(expected_values(lon, lat, 2024), expected, rtol=0, atol=1e-6)
        checked += 1
    assert checked >= 40 and skipped >= 1, (checked, skipped)


def test_year_changes_the_values(aef_mirror, aef_specs):
    """2023 and 2024 tiles of the same place differ (so year mix-ups are caught)."""
    spec23, spec24 = find_spec(aef_specs, 2023, "31N"), find_spec(aef_specs, 2024, "31N")
    lon, lat = patch_centre(5.98, 44.992)
    blocks = []
    for spec in (spec23, spec24):
        tile = open_tile(str(tile_path(aef_mirror, spec)))
        grid = _own_grid(spec)
        col, row = grid.index_of(*to_crs(spec.epsg, lon, lat))
        block = TileMosaic([tile], grid, BAND_NAMES, None).read(Window(col, row, 1, 1))
        assert block.valid[0, 0]
        np.testing.assert_allclose(block.values[:, 0, 0], expected_at(lon, lat, spec.year), atol=1e-6)
        blocks.append(block.values[:, 0, 0])
    assert np.abs(blocks[0] - blocks[1]).max() > 0.05


@pytest.mark.parametrize("order", ["31N-first", "32N-first"])
def test_mosaic_across_two_utm_zones(aef_mirror, aef_specs, order):
    spec31, spec32 = find_spec(aef_specs, 2024, "31N"), find_spec(aef_specs, 2024, "32N")
    tiles = [open_tile(str(tile_path(aef_mirror, s))) for s in (spec31, spec32)]
    if order == "32N-first":
        tiles.reverse()
    extent = (5.978, 44.99, 6.022, 45.01)
    grid = grid_from_bounds("EPSG:32632", transform_bounds("EPSG:4326", "EPSG:32632", extent), 10.0)
    block = TileMosaic(tiles, grid, BAND_NAMES, None).read(Window(0, 0, grid.width, grid.height))
    west_only = east = 0
    for lon, lat in _patch_centres_inside(extent):
        col, row = grid.index_of(*to_crs("EPSG:32632", lon, lat))
        x31, y31 = to_crs(spec31.epsg, lon, lat)
        x32, y32 = to_crs(spec32.epsg, lon, lat)
        from31 = _inside(spec31, x31, y31) and not _in_box(spec31, x31, y31)
        from32 = _inside(spec32, x32, y32)
        assert block.valid[row, col] == (from31 or from32), (lon, lat)
        if not (from31 or from32):
            continue
        np.testing.assert_allclose(block.values[:, row, col], expected_at(lon, lat, 2024), atol=1e-6, err_msg=f"{lon}, {lat}")
        if lon < 6.0 and not from32:
            west_only += 1
        if lon > 6.0:
            east += 1
    # both sides of 6°E were checked, including places only the 31N tile covers
    assert west_only >= 10 and east >= 10, (west_only, east)
