"""Window maths: a small output window reads only a small source window, in both mosaic paths."""

import math

import numpy as np
import pytest
from pyproj import Transformer

from geoembed.loaders.products.aef import BAND_NAMES, dequantize, open_tile, valid_mask
from geoembed.loaders.raster.grid import Grid, Window, grid_from_bounds, transform_bounds
from geoembed.loaders.raster.mosaic import TileMosaic
from tests.unit.helpers import SpyTile, dequant_formula, find_spec, raw_codes, tile_path


@pytest.fixture(scope="module")
def spec_and_path(aef_mirror, aef_specs):
    spec = find_spec(aef_specs, 2024, "32N")
    return spec, tile_path(aef_mirror, spec)


def _own_grid(spec):
    return Grid(f"EPSG:{spec.epsg}", spec.west, spec.south + 10 * spec.height, 10.0, 10.0, spec.width, spec.height)


def test_separable_path_reads_exactly_the_source_window(spec_and_path):
    spec, path = spec_and_path
    spy = SpyTile(open_tile(str(path)))
    grid = _own_grid(spec)
    block = TileMosaic([spy], grid, BAND_NAMES, None).read(Window(100, 50, 16, 12))
    # output rows 50..61 from the north are source rows H-62..H-51 of the south-up file
    assert spy.reads == [(100, spec.height - 62, 16, 12)]
    flipped = raw_codes(path)[:, ::-1, :]
    np.testing.assert_allclose(block.values, dequant_formula(flipped[:, 50:62, 100:116]), rtol=1e-6)
    assert block.valid.all()


def test_separable_path_at_coarser_resolution_reads_a_small_window(spec_and_path):
    spec, path = spec_and_path
    spy = SpyTile(open_tile(str(path)))
    north = spec.south + 10 * spec.height
    # 20 m pixels shifted by 5 m so that no target centre falls on a source pixel edge
    grid = Grid(spy.crs, spec.west + 5, north - 5, 20.0, 20.0, 100, 100)
    block = TileMosaic([spy], grid, BAND_NAMES, None).read(Window(30, 20, 8, 8))
    assert len(spy.reads) == 1
    col, row, width, height = spy.reads[0]
    assert width <= 16 and height <= 16
    # target centre (col c, row r) is 20c + 15 m east of the west edge and 20r + 15 m south of the north edge
    flipped = raw_codes(path)[:, ::-1, :]
    src_rows = [math.floor((20 * (20 + r) + 15) / 10) for r in range(8)]
    src_cols = [math.floor((20 * (30 + c) + 15) / 10) for c in range(8)]
    expected = dequant_formula(flipped[:, src_rows][:, :, src_cols])
    np.testing.assert_allclose(block.values, expected, rtol=1e-6)


def test_general_path_reads_a_small_window_and_takes_the_nearest_pixel(spec_and_path):
    spec, path = spec_and_path
    spy = SpyTile(open_tile(str(path)))
    bounds = transform_bounds(spy.crs, "EPSG:32631", spy.bounds)
    grid = grid_from_bounds("EPSG:32631", bounds, 10.0)
    window = Window(grid.width // 2, grid.height // 2, 16, 16)
    block = TileMosaic([spy], grid, BAND_NAMES, None).read(window)
    assert len(spy.reads) == 1
    col, row, width, height = spy.reads[0]
    # 16 x 16 target pixels, rotated by ~4 degrees between the zones: at most a few more source pixels
    assert width <= 20 and height <= 20, spy.reads
    assert width * height < spy.width * spy.height / 100
    # independent nearest neighbour: project each target centre into 32N and take the pixel under it
    to32 = Transformer.from_crs("EPSG:32631", spy.crs, always_xy=True)
    flipped = raw_codes(path)[:, ::-1, :]
    north = spec.south + 10 * spec.height
    sub = grid.window_grid(window)
    xs, ys = sub.pixel_centres()
    gx, gy = np.meshgrid(xs, ys)
    sx, sy = to32.transform(gx, gy)
    cols = np.floor((sx - spec.west) / 10.0).astype(int)
    rows = np.floor((north - sy) / 10.0).astype(int)
    assert block.valid.all()
    np.testing.assert_allclose(block.values, dequant_formula(flipped[:, rows, cols]), rtol=1e-6)


def test_window_outside_the_tile_reads_nothing(spec_and_path):
    spec, path = spec_and_path
    spy = SpyTile(open_tile(str(path)))
    grid = Grid(spy.crs, spec.west - 10_000, spec.south + 10 * spec.height, 10.0, 10.0, 2000, 2000)
    block = TileMosaic([spy], grid, BAND_NAMES, None).read(Window(0, 0, 64, 64))
    assert spy.reads == []
    assert not block.valid.any()


def test_window_on_the_tile_edge_reads_only_the_overlap(spec_and_path):
    spec, path = spec_and_path
    spy = SpyTile(open_tile(str(path)))
    # a grid that starts 5 pixels west and 3 pixels north of the tile
    grid = Grid(spy.crs, spec.west - 50, spec.south + 10 * spec.height + 30, 10.0, 10.0, 100, 100)
    block = TileMosaic([spy], grid, BAND_NAMES, None).read(Window(0, 0, 10, 10))
    assert spy.reads == [(0, spec.height - 7, 5, 7)]
    assert not block.valid[:3].any() and not block.valid[:, :5].any()
    assert block.valid[3:, 5:].all()
    flipped = raw_codes(path)[:, ::-1, :]
    np.testing.assert_allclose(block.values[:, 3:, 5:], dequant_formula(flipped[:, :7, :5]), rtol=1e-6)
    assert (block.values[:, ~block.valid] == -9999.0).all()


def test_finer_target_grid_repeats_each_source_pixel(spec_and_path):
    spec, path = spec_and_path
    spy = SpyTile(open_tile(str(path)))
    north = spec.south + 10 * spec.height
    grid = Grid(spy.crs, spec.west, north, 5.0, 5.0, 2 * spec.width, 2 * spec.height)
    block = TileMosaic([spy], grid, BAND_NAMES, None).read(Window(40, 30, 12, 10))
    assert spy.reads == [(20, spec.height - 20, 6, 5)]
    flipped = raw_codes(path)[:, ::-1, :]
    source = dequant_formula(flipped[:, 15:20, 20:26])
    np.testing.assert_allclose(block.values, source.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6)


class _NorthUp:
    """A tile stored north-up (like the .vrt Source Cooperative puts beside each .tiff)."""

    def __init__(self, tile, codes):
        self.crs, self.width, self.height, self.bounds = tile.crs, tile.width, tile.height, tile.bounds
        west, south, _, north = tile.bounds
        self.geotransform = (west, 10.0, 0.0, north, 0.0, -10.0)
        self.codes = codes  # row 0 = north
        self.reads = []

    def read(self, col, row, width, height):
        self.reads.append((int(col), int(row), int(width), int(height)))
        window = self.codes[:, row : row + height, col : col + width]
        return dequantize(window), valid_mask(window)

    def close(self):
        pass


def test_north_up_and_south_up_copies_give_the_same_output(spec_and_path):
    spec, path = spec_and_path
    tile = open_tile(str(path))
    flipped = np.ascontiguousarray(raw_codes(path)[:, ::-1, :])
    north_up = _NorthUp(tile, flipped)
    grid = Grid(tile.crs, spec.west, spec.south + 10 * spec.height, 10.0, 10.0, spec.width, spec.height)
    window = Window(200, 100, 64, 80)
    a = TileMosaic([tile], grid, BAND_NAMES, None).read(window)
    b = TileMosaic([north_up], grid, BAND_NAMES, None).read(window)
    assert north_up.reads == [(200, 100, 64, 80)]
    np.testing.assert_array_equal(a.valid, b.valid)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_allclose(a.values, dequant_formula(flipped[:, 100:180, 200:264]), rtol=1e-6)
