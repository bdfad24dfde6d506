"""sampling.sample against a per-point direct lookup, block grouping, bounded reads and cancel."""

import math

import numpy as np
import pytest

from geoembed.analysis.sampling import sample
from geoembed.loaders.errors import Cancelled
from geoembed.loaders.raster.grid import Window
from tests.unit.test_analysis_memraster import random_raster


def direct_lookup(raster, xs, ys):
    """Brute force, one point at a time: (values (n, bands) with NaN, valid (n,))."""
    g = raster.grid
    out = np.full((len(xs), raster.values.shape[0]), np.nan, dtype=np.float32)
    ok = np.zeros(len(xs), dtype=bool)
    for i, (x, y) in enumerate(zip(xs, ys)):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        if not (g.x0 <= x < g.x0 + g.width * g.res_x and g.y0 - g.height * g.res_y < y <= g.y0):
            continue
        col = min(int(math.floor((x - g.x0) / g.res_x)), g.width - 1)
        row = min(int(math.floor((g.y0 - y) / g.res_y)), g.height - 1)
        if raster.valid[row, col]:
            out[i] = raster.values[:, row, col]
            ok[i] = True
    return out, ok


def random_points(raster, n, seed, margin=0.3):
    """Points over the raster and a margin around it, plus points on nodata pixel centres and odd cases."""
    g = raster.grid
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = g.bounds
    dx, dy = (xmax - xmin) * margin, (ymax - ymin) * margin
    xs = list(rng.uniform(xmin - dx, xmax + dx, n))
    ys = list(rng.uniform(ymin - dy, ymax + dy, n))
    holes_r, holes_c = np.nonzero(~raster.valid)
    pick = rng.choice(len(holes_r), min(20, len(holes_r)), replace=False)
    xs += list(g.x0 + (holes_c[pick] + 0.5) * g.res_x)
    ys += list(g.y0 - (holes_r[pick] + 0.5) * g.res_y)
    # north-west corner (inside), east and south edges (outside), NaN, far away
    xs += [g.x0, xmax, g.x0 + 0.5 * g.res_x, float("nan"), 1e12]
    ys += [g.y0, g.y0 - 0.5 * g.res_y, ymin, 0.0, 1e12]
    return np.array(xs), np.array(ys)


@pytest.mark.parametrize("block", [512, 16, 7, 3, 1])
@pytest.mark.parametrize("res", [(10.0, 10.0), (10.0, 20.0), (0.25, 0.5)])
def test_sample_equals_direct_lookup(block, res):
    raster = random_raster(37, 29, bands=5, seed=3, res_x=res[0], res_y=res[1])
    xs, ys = random_points(raster, 500, seed=11)
    values, valid = sample(raster, xs, ys, block=block)
    expected, expected_valid = direct_lookup(raster, xs, ys)
    assert values.shape == (len(xs), 5) and values.dtype == np.float32
    assert valid.dtype == bool
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(values, expected)  # NaN where invalid, exact copies elsewhere
    assert expected_valid.sum() > 100 and (~expected_valid).sum() > 50  # the test sees both kinds


def test_sample_on_nodata_is_nan_and_invalid():
    raster = random_raster(20, 20, bands=4, seed=8)
    rows, cols = np.nonzero(~raster.valid)
    g = raster.grid
    xs, ys = g.x0 + (cols + 0.5) * g.res_x, g.y0 - (rows + 0.5) * g.res_y
    values, valid = sample(raster, xs, ys, block=6)
    assert not valid.any()
    assert np.isnan(values).all()


def test_point_order_does_not_matter():
    raster = random_raster(41, 33, bands=3, seed=5)
    xs, ys = random_points(raster, 300, seed=2)
    base_values, base_valid = sample(raster, xs, ys, block=8)
    perm = np.random.default_rng(9).permutation(len(xs))
    values, valid = sample(raster, xs[perm], ys[perm], block=8)
    np.testing.assert_array_equal(valid, base_valid[perm])
    np.testing.assert_array_equal(values, base_values[perm])
    expected, expected_valid = direct_lookup(raster, xs[perm], ys[perm])
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(valid, expected_valid)


def test_duplicate_points_all_get_values():
    raster = random_raster(10, 10, bands=2, seed=1, holes=0.0, box=False)
    g = raster.grid
    xs = np.array([g.x0 + 15.0] * 4 + [g.x0 + 95.0])
    ys = np.array([g.y0 - 25.0] * 4 + [g.y0 - 5.0])
    values, valid = sample(raster, xs, ys, block=4)
    assert valid.all()
    np.testing.assert_array_equal(values[:4], np.tile(raster.values[:, 2, 1], (4, 1)))
    np.testing.assert_array_equal(values[4], raster.values[:, 0, 9])


@pytest.mark.parametrize("block", [8, 5])
def test_each_block_read_once_and_only_around_its_points(block):
    raster = random_raster(40, 30, bands=3, seed=6)
    g = raster.grid
    xs, ys = random_points(raster, 120, seed=21, margin=0.1)
    sample(raster, xs, ys, block=block)
    # brute force: the pixel bounding box of the inside points of each block
    boxes = {}
    for x, y in zip(xs, ys):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        col, row = math.floor((x - g.x0) / g.res_x), math.floor((g.y0 - y) / g.res_y)
        if not (0 <= col < g.width and 0 <= row < g.height):
            continue
        key = (row // block, col // block)
        c0, r0, c1, r1 = boxes.get(key, (col, row, col, row))
        boxes[key] = (min(c0, col), min(r0, row), max(c1, col), max(r1, row))
    expected = {Window(c0, r0, c1 - c0 + 1, r1 - r0 + 1) for c0, r0, c1, r1 in boxes.values()}
    assert len(raster.reads) == len(expected), "a block was read more than once"
    assert set(raster.reads) == expected
    for window in raster.reads:  # every read stays inside one block
        assert window.col // block == (window.col + window.width - 1) // block
        assert window.row // block == (window.row + window.height - 1) // block


def test_points_all_outside_read_nothing():
    raster = random_raster(10, 10, bands=2, seed=1)
    g = raster.grid
    xs = np.array([g.x0 - 1.0, g.x0 + 1e6, np.nan])
    ys = np.array([g.y0 - 5.0, g.y0 - 5.0, g.y0 - 5.0])
    values, valid = sample(raster, xs, ys)
    assert not valid.any() and np.isnan(values).all()
    assert raster.reads == []


def test_empty_point_list():
    raster = random_raster(10, 10, bands=2, seed=1)
    values, valid = sample(raster, np.zeros(0), np.zeros(0))
    assert values.shape == (0, 2) and valid.shape == (0,)


def test_cancel_before_first_read():
    raster = random_raster(30, 30, bands=2, seed=1)
    xs, ys = random_points(raster, 50, seed=1, margin=0.0)
    with pytest.raises(Cancelled):
        sample(raster, xs, ys, block=8, is_cancelled=lambda: True)
    assert raster.reads == []


def test_cancel_between_blocks():
    raster = random_raster(30, 30, bands=2, seed=1)
    xs, ys = random_points(raster, 200, seed=1, margin=0.0)
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Cancelled):
        sample(raster, xs, ys, block=8, is_cancelled=cancelled)
    assert len(raster.reads) == 2
