"""resample: nearest and aggregate against brute force over pixel centres (same CRS and across CRSs)."""

import numpy as np
import pytest
from osgeo import gdal
from pyproj import Transformer

from geoembed.analysis import aligned_sums, resample
from geoembed.analysis.aligned_sums import group_sums
from geoembed.analysis.resample import AggregateRaster, coarser, nearest
from geoembed.loaders.errors import GeoEmbedError
from geoembed.loaders.model import NODATA
from geoembed.loaders.open import open_embeddings
from geoembed.loaders.raster.grid import Grid, Window
from geoembed.loaders.raster.writer import write_geotiff
from tests.unit.helpers import QuietLog, assert_one_line, find_spec, tile_path
from tests.unit.test_analysis_memraster import UTM31, MemRaster, random_raster

MERCATOR = "EPSG:3857"


def read_all(raster, size=None):
    """(values, valid) of a whole raster read block by block (its own block size when size is None)."""
    g = raster.grid
    values = np.full((raster.band_count, g.height, g.width), np.nan, dtype=np.float32)
    valid = np.zeros((g.height, g.width), dtype=bool)
    windows = list(raster.blocks()) if size is None else list(raster.blocks(size))
    for window, block in windows:
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        values[:, rows, cols] = block.values
        valid[rows, cols] = block.valid
    return values, valid


def target_centres(grid):
    xs = grid.x0 + (np.arange(grid.width) + 0.5) * grid.res_x
    ys = grid.y0 - (np.arange(grid.height) + 0.5) * grid.res_y
    return np.meshgrid(xs, ys)


def source_centres(raster):
    g = raster.grid
    xs = g.x0 + (np.arange(g.width) + 0.5) * g.res_x
    ys = g.y0 - (np.arange(g.height) + 0.5) * g.res_y
    return np.meshgrid(xs, ys)


def brute_nearest(raster, grid):
    """Each target pixel: the source pixel containing its centre (mapped with pyproj when the CRSs differ)."""
    g = raster.grid
    gx, gy = target_centres(grid)
    if grid.crs != g.crs:
        gx, gy = Transformer.from_crs(grid.crs, g.crs, always_xy=True).transform(gx, gy)
    values = np.full((raster.band_count, grid.height, grid.width), np.nan, dtype=np.float32)
    valid = np.zeros((grid.height, grid.width), dtype=bool)
    for row in range(grid.height):
        for col in range(grid.width):
            x, y = gx[row, col], gy[row, col]
            if g.x0 <= x < g.x0 + g.width * g.res_x and g.y0 - g.height * g.res_y < y <= g.y0:
                sc, sr = int((x - g.x0) // g.res_x), int((g.y0 - y) // g.res_y)
                if raster.valid[sr, sc]:
                    values[:, row, col] = raster.values[:, sr, sc]
                    valid[row, col] = True
    return values, valid


def brute_aggregate(raster, grid):
    """Per target pixel: the sum of valid source vectors whose centres lie in it, L2-normalised (float64)."""
    sx, sy = source_centres(raster)
    if grid.crs != raster.grid.crs:
        sx, sy = Transformer.from_crs(raster.grid.crs, grid.crs, always_xy=True).transform(sx, sy)
    ok = raster.valid
    sx, sy = sx[ok], sy[ok]
    vectors = raster.values[:, ok].astype(np.float64)
    values = np.full((raster.band_count, grid.height, grid.width), np.nan)
    valid = np.zeros((grid.height, grid.width), dtype=bool)
    for row in range(grid.height):
        top = grid.y0 - row * grid.res_y
        in_row = (sy <= top) & (sy > top - grid.res_y)
        for col in range(grid.width):
            left = grid.x0 + col * grid.res_x
            inside = in_row & (sx >= left) & (sx < left + grid.res_x)
            if inside.any():
                total = vectors[:, inside].sum(axis=1)
                norm = np.sqrt(np.sum(total * total))
                if norm > 0:
                    values[:, row, col] = total / norm
                    valid[row, col] = True
    return values, valid


def assert_same(got, expected, atol=1e-5):
    values, valid = got
    expected_values, expected_valid = expected
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_allclose(values[:, valid], expected_values[:, valid], atol=atol)


# ---------------------------------------------------------------- nearest


@pytest.mark.parametrize("res", [3.0, 7.3, 10.0])
def test_nearest_onto_a_finer_grid_copies_the_covering_vector(res):
    raster = random_raster(20, 15, bands=4, seed=1)
    g = raster.grid
    grid = Grid(UTM31, g.x0 - 23.7, g.y0 + 11.9, res, res, int(260 / res), int(200 / res))  # overhangs the source
    out = nearest(raster, grid)
    assert out.grid == grid and out.band_names == raster.band_names
    got = read_all(out, 9)
    expected = brute_nearest(raster, grid)
    assert expected[1].sum() > 20 and (~expected[1]).sum() > 20
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0][:, got[1]], expected[0][:, expected[1]])  # exact copies
    assert np.all(got[0][:, ~got[1]] == NODATA)


def test_nearest_into_another_crs():
    raster = random_raster(30, 25, bands=3, seed=2)
    west, south, east, north = Transformer.from_crs(UTM31, MERCATOR, always_xy=True).transform_bounds(*raster.grid.bounds)
    grid = Grid(MERCATOR, west - 30.0, north + 20.0, 6.0, 6.0, int((east - west + 60) / 6), int((north - south + 40) / 6))
    got = read_all(nearest(raster, grid), 16)
    expected = brute_nearest(raster, grid)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0][:, got[1]], expected[0][:, expected[1]])


# ---------------------------------------------------------------- aggregate


def aligned_target(raster, factor):
    g = raster.grid
    res = g.res_x * factor
    return Grid(g.crs, g.x0, g.y0, res, res, int(np.ceil(g.width / factor)), int(np.ceil(g.height / factor)))


@pytest.mark.parametrize("factor", [2, 3, 10])
def test_aggregate_onto_coarser_grid_equals_per_pixel_sums(factor):
    raster = random_raster(60, 45, bands=5, seed=3, holes=0.2, box=False)
    raster.valid[10:30, 20:40] = False  # whole target pixels without any valid source
    raster.values[:, ~raster.valid] = NODATA
    grid = aligned_target(raster, factor)
    agg = AggregateRaster(raster, grid)
    assert agg.grid == grid and agg.band_names == raster.band_names
    expected = brute_aggregate(raster, grid)
    assert (~expected[1]).sum() >= 1
    got = read_all(agg)
    assert_same(got, expected)
    np.testing.assert_allclose(np.linalg.norm(got[0][:, got[1]], axis=0), 1.0, atol=1e-5)
    assert_same(read_all(AggregateRaster(raster, grid), 1), expected)  # any window size gives the same
    one = AggregateRaster(raster, grid).read(Window(0, 0, grid.width, grid.height))
    assert_same((one.values, one.valid), expected)


@pytest.mark.parametrize("res", [25.0, 37.0, 14.5])
def test_aggregate_with_non_integer_ratio(res):
    raster = random_raster(50, 40, bands=4, seed=4, holes=0.1)
    g = raster.grid
    # origin offset so no source centre falls exactly on a target edge
    grid = Grid(UTM31, g.x0 - 3.3, g.y0 + 2.1, res, res, int(510 / res) + 1, int(410 / res) + 1)
    assert_same(read_all(AggregateRaster(raster, grid)), brute_aggregate(raster, grid))


def test_aggregate_into_another_crs_equals_pyproj_brute_force():
    raster = random_raster(80, 70, bands=4, seed=5, holes=0.1)
    west, south, east, north = Transformer.from_crs(UTM31, MERCATOR, always_xy=True).transform_bounds(*raster.grid.bounds)
    res = 40.0  # ~28 m on the ground at 45 N: a bit less than 3 source pixels across
    grid = Grid(MERCATOR, west - 13.7, north + 9.1, res, res, int((east - west) / res) + 2, int((north - south) / res) + 2)
    agg = AggregateRaster(raster, grid)
    expected = brute_aggregate(raster, grid)
    assert expected[1].sum() > 200
    assert_same(read_all(agg), expected)
    assert_same(read_all(AggregateRaster(raster, grid), 3), expected)


def test_aggregate_refuses_a_finer_or_equal_target():
    raster = random_raster(20, 20, bands=2, seed=6)
    g = raster.grid
    for res in (5.0, 10.0):
        with pytest.raises(GeoEmbedError) as info:
            AggregateRaster(raster, Grid(UTM31, g.x0, g.y0, res, res, 10, 10))
        assert "nearest" in assert_one_line(info.value)
    with pytest.raises(GeoEmbedError):
        AggregateRaster(raster, Grid(MERCATOR, 260000.0, 5600000.0, 12.0, 12.0, 10, 10))  # ~8.5 m on the ground


def test_coarser():
    raster = random_raster(20, 20, bands=2, seed=7)
    g = raster.grid
    assert coarser(raster, Grid(UTM31, g.x0, g.y0, 20.0, 20.0, 10, 10))
    assert coarser(raster, Grid(UTM31, g.x0, g.y0, 10.5, 10.5, 10, 10))
    assert not coarser(raster, Grid(UTM31, g.x0, g.y0, 10.0, 10.0, 20, 20))
    assert not coarser(raster, Grid(UTM31, g.x0, g.y0, 4.0, 4.0, 50, 50))
    # EPSG:3857 at 45 N stretches by 1/cos(45) = 1.41: compared in metres on the ground, not in CRS units
    west, _, _, north = Transformer.from_crs(UTM31, MERCATOR, always_xy=True).transform_bounds(*g.bounds)
    assert not coarser(raster, Grid(MERCATOR, west, north, 12.0, 12.0, 10, 10))
    assert coarser(raster, Grid(MERCATOR, west, north, 20.0, 20.0, 10, 10))
    geographic = Grid("EPSG:4326", 3.0, 45.16, 0.0005, 0.0005, 10, 10)  # ~39 x 56 m
    assert coarser(raster, geographic)


def test_group_sums_over_runs_cut_anywhere():
    rng = np.random.default_rng(11)
    x = rng.integers(-16129, 16130, size=(3, 23, 17)).astype(np.int16)
    for factor in (1, 2, 5, 30):
        for phase in range(factor):
            got = group_sums(x, 1, phase, factor, np.int32)
            runs = np.arange(-phase, 23, factor)
            expected = np.stack([x[:, max(0, a) : a + factor].astype(np.int64).sum(axis=1) for a in runs], axis=1)
            np.testing.assert_array_equal(got, expected)
            assert got.dtype == np.int32


def aligned_target_around(raster, factor, pad):
    """A target grid whose pixels are factor x factor source pixels, reaching pad target pixels past every side."""
    g = raster.grid
    res = g.res_x * factor
    width, height = int(np.ceil(g.width / factor)) + 2 * pad, int(np.ceil(g.height / factor)) + 2 * pad
    return Grid(g.crs, g.x0 - pad * res, g.y0 + pad * res, res, res, width, height)


@pytest.mark.parametrize(("factor", "pad"), [(2, 0), (3, 1), (5, 2), (7, 0)])
def test_aligned_aggregate_reads_each_source_pixel_once_in_chunk_windows(monkeypatch, factor, pad):
    monkeypatch.setattr(aligned_sums, "CHUNK_ROWS", 8)
    monkeypatch.setattr(aligned_sums, "CHUNK_COLS", 4)
    monkeypatch.setattr(resample, "ALIGNED_BLOCK", 2)  # blocks end inside row chunks: partial rows are carried
    raster = random_raster(37, 29, bands=3, seed=8)
    grid = aligned_target_around(raster, factor, pad)
    agg = AggregateRaster(raster, grid)
    got = read_all(agg)
    agg.close()
    assert_same(got, brute_aggregate(raster, grid))
    seen = np.zeros((29, 37), dtype=int)
    for w in raster.reads:
        assert w.row % 8 == 0 or w.row == 0, w  # row chunks start on the source's own multiples of CHUNK_ROWS
        assert w.height <= 8 and w.width <= 4 and (w.col % 4 == 0), w
        seen[w.row : w.row + w.height, w.col : w.col + w.width] += 1
    np.testing.assert_array_equal(seen, 1)  # read once, all of it, in windows cut at the chunk edges


def test_aligned_aggregate_streams_only_when_whole_rows_fit(monkeypatch):
    monkeypatch.setattr(aligned_sums, "CHUNK_ROWS", 8)
    monkeypatch.setattr(aligned_sums, "CHUNK_COLS", 4)
    monkeypatch.setattr(resample, "ALIGNED_BLOCK", 3)
    raster = random_raster(60, 50, bands=4, seed=9, holes=0.05)
    grid = aligned_target_around(raster, 4, 1)
    expected = brute_aggregate(raster, grid)
    assert AggregateRaster(raster, grid)._stream is not None
    assert_same(read_all(AggregateRaster(raster, grid)), expected)
    monkeypatch.setattr(resample, "ACCUMULATOR_BYTES", 4 * 17 * 8 * 5)  # five rows of 17 target pixels
    wide = AggregateRaster(raster, grid)
    assert wide._stream is None
    assert_same(read_all(wide), expected)


def test_aligned_aggregate_answers_reads_in_any_order(monkeypatch):
    monkeypatch.setattr(aligned_sums, "CHUNK_ROWS", 8)
    raster = random_raster(40, 36, bands=3, seed=10)
    grid = aligned_target_around(raster, 3, 1)
    expected_values, expected_valid = brute_aggregate(raster, grid)
    agg = AggregateRaster(raster, grid)
    for window in [Window(2, 5, 4, 3), Window(0, 0, 16, 14), Window(1, 1, 3, 2), Window(5, 9, 9, 5)]:
        block = agg.read(window)
        rows, cols = slice(window.row, window.row + window.height), slice(window.col, window.col + window.width)
        assert_same((block.values, block.valid), (expected_values[:, rows, cols], expected_valid[rows, cols]))
    agg.close()


def test_aef_tile_is_aggregated_from_integer_codes(aef_mirror, aef_specs):
    """An AEF tile as INPUT: its int8 codes are summed as integers; the result equals summing de-quantised values."""
    spec = find_spec(aef_specs, 2024, "31N")
    raster = open_embeddings(str(tile_path(aef_mirror, spec)), QuietLog())
    g = raster.grid
    whole = Window(0, 0, g.width, g.height)
    terms, valid, scale = raster.read_linear(whole)
    block = raster.read(whole)
    assert terms.dtype == np.int16 and not valid.all()
    np.testing.assert_array_equal(valid, block.valid)
    np.testing.assert_array_equal(terms[:, ~valid], 0)
    np.testing.assert_allclose(terms[:, valid] * scale, block.values[:, valid], rtol=1e-6)
    reference = MemRaster(block.values, block.valid, g)
    for factor in (3, 10):
        grid = aligned_target_around(reference, factor, 1)
        agg = AggregateRaster(open_embeddings(str(tile_path(aef_mirror, spec)), QuietLog()), grid)
        got = read_all(agg)
        agg.close()
        assert_same(got, brute_aggregate(reference, grid))
    raster.close()


def test_write_geotiff_of_an_aggregate(tmp_path):
    raster = random_raster(70, 50, bands=3, seed=10)
    grid = aligned_target(raster, 4)
    agg = AggregateRaster(raster, grid)
    path = write_geotiff(agg, str(tmp_path / "agg.tif"))
    agg.close()
    dataset = gdal.Open(path)
    values = dataset.ReadAsArray().astype(np.float32)
    dataset = None
    expected_values, expected_valid = brute_aggregate(raster, grid)
    valid = ~(values == NODATA).any(axis=0)
    assert_same((values, valid), (expected_values, expected_valid))


def test_aggregate_into_another_crs_reads_bounded_source_windows(monkeypatch):
    monkeypatch.setattr(resample, "SOURCE_WINDOW", 16)
    raster = random_raster(100, 90, bands=3, seed=8)
    west, south, east, north = Transformer.from_crs(UTM31, MERCATOR, always_xy=True).transform_bounds(*raster.grid.bounds)
    grid = Grid(MERCATOR, west, north, 40.0, 40.0, int((east - west) / 40) + 1, int((north - south) / 40) + 1)
    agg = AggregateRaster(raster, grid)
    assert agg.block_size == int(16 / resample._scale(raster, grid))
    got = read_all(agg)
    assert raster.reads and all(w.width <= 16 and w.height <= 16 for w in raster.reads)
    assert_same(got, brute_aggregate(raster, grid))


def test_close_closes_the_source():
    raster = random_raster(20, 20, bands=2)
    AggregateRaster(raster, aligned_target(raster, 2)).close()
    assert raster.closed
